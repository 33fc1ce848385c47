"""Cognito user pool multi-Region replicas for moto's Cognito backend.

moto 5.2.5 has none of the user pool replica operations that AWS's model (cognito-idp
2016-04-18) defines. This module adds three of them to
``moto.cognitoidp.responses.CognitoIdpResponse``, serialised by moto's model-driven json 1.1
serialiser:

* ``CreateUserPoolReplica`` (``UserPoolId``, ``RegionName``): records a secondary replica with
  status ``ACTIVE``. Only the replica's record is kept: no user pool is created in the target
  region, so user operations there are not served.
* ``UpdateUserPoolReplica`` (``UserPoolId``, ``RegionName``, ``Status`` ``ACTIVE``|``INACTIVE``).
* ``ListUserPoolReplicas`` (``UserPoolId``): the primary (``Role`` ``PRIMARY``, the pool's own
  region) followed by the secondaries, as the AWS documentation describes ("all replicas ...
  including both primary and secondary"). Callable in the primary's region or in a replica's.

``DeleteUserPoolReplica`` is not implemented. A replica's ``UserPoolArn`` keeps the pool ID and
names the replica's region. Unknown pool -> ``ResourceNotFoundException``; a replica in the
pool's own region, a duplicate, or a bad status -> ``InvalidParameterException``.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cognitoidp.models import CognitoIdpUserPool, cognitoidp_backends
from moto.cognitoidp.responses import CognitoIdpResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult


class ResourceNotFoundException(ServiceException):
    code = "ResourceNotFoundException"


class InvalidParameterException(ServiceException):
    code = "InvalidParameterException"


def _replicas(pool: CognitoIdpUserPool) -> list[dict[str, Any]]:
    replicas = pool.__dict__.get("_failoverd_replicas")
    if replicas is None:
        replicas = pool.__dict__["_failoverd_replicas"] = []
    return replicas


def _find_pool(account_id: str, region: str, pool_id: str) -> CognitoIdpUserPool:
    """The primary pool with ``pool_id``, seen from ``region`` (its own or a replica's)."""
    for backend in cognitoidp_backends[account_id].values():
        pool = backend.user_pools.get(pool_id)
        if pool is None:
            continue
        if pool.region == region or any(r["RegionName"] == region for r in _replicas(pool)):
            return pool
    raise ResourceNotFoundException(f"User pool {pool_id} does not exist.")


def _params(response: CognitoIdpResponse) -> dict[str, Any]:
    return json.loads(response.body or "{}")


def _replica_entry(pool: CognitoIdpUserPool, region: str) -> dict[str, Any]:
    for replica in _replicas(pool):
        if replica["RegionName"] == region:
            return replica
    raise ResourceNotFoundException(f"User pool {pool.id} has no replica in {region}.")


def _create_user_pool_replica(self: CognitoIdpResponse) -> ActionResult:
    params = _params(self)
    pool = _find_pool(self.current_account, self.region, params.get("UserPoolId", ""))
    region = params.get("RegionName", "")
    if not region or region == pool.region:
        raise InvalidParameterException("RegionName must be a region other than the primary's.")
    if any(r["RegionName"] == region for r in _replicas(pool)):
        raise InvalidParameterException(f"User pool {pool.id} already has a replica in {region}.")
    replica = {
        "RegionName": region,
        "Status": "ACTIVE",
        "Role": "SECONDARY",
        "UserPoolArn": pool.arn.replace(f":{pool.region}:", f":{region}:", 1),
    }
    _replicas(pool).append(replica)
    return ActionResult({"UserPoolReplica": replica})


def _update_user_pool_replica(self: CognitoIdpResponse) -> ActionResult:
    params = _params(self)
    pool = _find_pool(self.current_account, self.region, params.get("UserPoolId", ""))
    status = params.get("Status")
    if status not in ("ACTIVE", "INACTIVE"):
        raise InvalidParameterException("Status must be ACTIVE or INACTIVE.")
    replica = _replica_entry(pool, params.get("RegionName", ""))
    replica["Status"] = status
    return ActionResult({"UserPoolReplica": replica})


def _list_user_pool_replicas(self: CognitoIdpResponse) -> ActionResult:
    params = _params(self)
    pool = _find_pool(self.current_account, self.region, params.get("UserPoolId", ""))
    primary = {"RegionName": pool.region, "Status": "ACTIVE", "Role": "PRIMARY", "UserPoolArn": pool.arn}
    return ActionResult({"UserPoolReplicas": [primary, *_replicas(pool)]})


def install() -> None:
    """Add the operations to moto's Cognito response class (idempotent)."""
    CognitoIdpResponse.create_user_pool_replica = _create_user_pool_replica
    CognitoIdpResponse.update_user_pool_replica = _update_user_pool_replica
    CognitoIdpResponse.list_user_pool_replicas = _list_user_pool_replicas
