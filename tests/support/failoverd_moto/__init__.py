"""failoverd's extension of moto: the AWS operations failoverd needs that moto 5.2.5 lacks.

Loaded into the moto server process by ``tests/support/moto_server.py``:

* RDS ``SwitchoverGlobalCluster`` / ``FailoverGlobalCluster`` (and a ``DescribeGlobalClusters``
  that honours ``GlobalClusterIdentifier``) — :mod:`failoverd_moto.rds`
* Backup ``ListRecoveryPointsByBackupVault`` / ``ListCopyJobs`` — :mod:`failoverd_moto.backup`
* Cognito ``ListUserPoolReplicas`` / ``CreateUserPoolReplica`` / ``UpdateUserPoolReplica`` —
  :mod:`failoverd_moto.cognito`
* RDS ``RemoveFromGlobalCluster`` across regions — :mod:`failoverd_moto.rds`
* CloudWatch over Smithy RPC v2 CBOR (the AWS SDK for Rust's protocol for CloudWatch), bridged to
  moto's CloudWatch — :mod:`failoverd_moto.cloudwatch`
* CloudWatch metric alarms that evaluate their metric (on ``PutMetricData`` and when read, with
  ``TreatMissingData`` and ``DatapointsToAlarm``), on a clock tests can freeze, and
  ``DescribeAlarmHistory`` — :mod:`failoverd_moto.alarms`
* Route 53 ``CLOUDWATCH_METRIC`` health checks (``AlarmIdentifier``,
  ``InsufficientDataHealthStatus``, a ``GetHealthCheckStatus`` that follows the alarm) and
  ``TestDNSAnswer`` for simple, failover and weighted records — :mod:`failoverd_moto.route53`
* test-only seeding endpoints under ``/_failoverd/`` — :mod:`failoverd_moto.admin`

Every operation answers through moto's botocore-model-driven serialisers (``ActionResult``), and
errors are ``ServiceException``s with the codes of the AWS model, so the wire format is AWS's.
The RPC v2 CBOR bridge re-encodes moto's CloudWatch answers following the botocore model shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import alarms, backup, cognito, rds, route53
from .admin import AdminMiddleware
from .cloudwatch import RpcV2CborMiddleware

__all__ = ["AdminMiddleware", "RpcV2CborMiddleware", "install", "wrap"]


def install() -> None:
    """Patch the operations into moto's response classes. Call before serving requests."""
    rds.install()
    backup.install()
    cognito.install()
    alarms.install()
    route53.install()


def wrap(
    app: Callable[..., Iterable[bytes]],
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Install the extension and return ``app`` with the ``/_failoverd/`` endpoints and the
    CloudWatch RPC v2 CBOR bridge in front."""
    install()
    return AdminMiddleware(RpcV2CborMiddleware(app))
