"""AWS Backup recovery points and copy jobs for moto's Backup backend.

moto 5.2.5 has backup vaults and plans but no recovery points, copy jobs, or the operations that
list them. This module adds ``ListRecoveryPointsByBackupVault`` and ``ListCopyJobs`` to
``moto.backup.responses.BackupResponse`` (routes added to ``moto.backup.urls``), serialised by
moto's model-driven rest-json serialiser, and the seeding functions behind the test endpoints
``POST /_failoverd/backup/recovery-points`` and ``POST /_failoverd/backup/copy-jobs`` (see
``failoverd_moto.admin`` for the HTTP side).

Seeded items are stored on the regional ``BackupBackend``, so ``/moto-api/reset`` clears them.

Filters implemented, as named in the AWS API:

* ListRecoveryPointsByBackupVault: ``ByResourceArn``, ``ByResourceType``, ``ByBackupPlanId``,
  ``ByCreatedBefore``, ``ByCreatedAfter``, ``ByParentRecoveryPointArn``; ``MaxResults`` (1-1000)
  and ``NextToken``. Unknown vault -> ``ResourceNotFoundException``. Newest first.
* ListCopyJobs: ``ByResourceArn``, ``ByState``, ``ByCreatedBefore``, ``ByCreatedAfter``,
  ``ByResourceType``, ``ByDestinationVaultArn``, ``ByAccountId``, ``ByCompleteBefore``,
  ``ByCompleteAfter``, ``ByParentJobId``, ``BySourceRecoveryPointArn``; ``MaxResults`` and
  ``NextToken``. Newest first.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from moto.backup import urls as backup_urls
from moto.backup.models import BackupBackend, Vault, backup_backends
from moto.backup.responses import BackupResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import get_service_model
from moto.moto_api._internal import mock_random

RECOVERY_POINT_STATUSES = {"COMPLETED", "PARTIAL", "DELETING", "EXPIRED", "AVAILABLE", "STOPPED", "CREATING"}
COPY_JOB_STATES = {"CREATED", "RUNNING", "COMPLETED", "FAILED", "PARTIAL"}

#: Resource type as AWS Backup reports it, by the service part of the resource ARN.
_RESOURCE_TYPES = {
    "rds": "Aurora",
    "dynamodb": "DynamoDB",
    "elasticfilesystem": "EFS",
    "s3": "S3",
    "fsx": "FSx",
    "storagegateway": "Storage Gateway",
    "redshift": "Redshift",
}


class ResourceNotFoundException(ServiceException):
    code = "ResourceNotFoundException"


class InvalidParameterValueException(ServiceException):
    code = "InvalidParameterValueException"


class SeedError(ValueError):
    """A seeding request that does not describe a valid item (answered with HTTP 400)."""


# --------------------------------------------------------------------------- storage


def _store(backend: BackupBackend) -> dict[str, list[dict[str, Any]]]:
    """Per-region storage living on the moto backend (so a moto reset clears it)."""
    store = backend.__dict__.get("_failoverd_store")
    if store is None:
        store = {"recovery_points": [], "copy_jobs": []}
        backend.__dict__["_failoverd_store"] = store
    return store


def resource_type_of(resource_arn: str) -> str:
    """AWS Backup's ``ResourceType`` for a resource ARN (``Aurora`` for any RDS cluster ARN)."""
    parts = resource_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise SeedError(f"not an ARN: {resource_arn!r}")
    service, resource = parts[2], parts[5]
    if service == "rds":
        return "Aurora" if resource.startswith("cluster") else "RDS"
    if service == "ec2":
        return "EBS" if resource.startswith("volume") else "EC2"
    return _RESOURCE_TYPES.get(service, service)


def _timestamp(value: Any, field: str) -> datetime:
    """Accept ISO 8601 text or epoch seconds; return an aware UTC datetime."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise SeedError(f"{field}: not an ISO 8601 timestamp: {value!r}") from err
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise SeedError(f"{field}: expected ISO 8601 text or epoch seconds, got {value!r}")


def _shape_members(shape_name: str) -> set[str]:
    return set(get_service_model("backup").shape_for(shape_name).members)


def _check_fields(item: dict[str, Any], shape_name: str, extra: set[str]) -> None:
    unknown = set(item) - _shape_members(shape_name) - extra
    if unknown:
        raise SeedError(f"unknown field(s) for {shape_name}: {', '.join(sorted(unknown))}")


def _utcnow() -> datetime:
    return datetime.now(tz=timezone.utc)


def seed_recovery_point(item: dict[str, Any]) -> dict[str, Any]:
    """Store one recovery point; ``item`` uses the ``RecoveryPointByBackupVault`` field names
    plus ``Region`` and optional ``AccountId``. Returns the stored recovery point."""
    item = dict(item)
    _check_fields(item, "RecoveryPointByBackupVault", {"Region", "AccountId"})
    for required in ("Region", "BackupVaultName", "ResourceArn"):
        if not item.get(required):
            raise SeedError(f"{required} is required")
    region = item.pop("Region")
    account_id = item.pop("AccountId", None) or "123456789012"
    backend = backup_backends[account_id][region]
    vault = backend.vaults.get(item["BackupVaultName"])
    if vault is None:
        raise SeedError(f"backup vault {item['BackupVaultName']} does not exist in {region}")
    status = item.setdefault("Status", "COMPLETED")
    if status not in RECOVERY_POINT_STATUSES:
        raise SeedError(f"Status must be one of {sorted(RECOVERY_POINT_STATUSES)}")
    for field in ("CreationDate", "InitiationDate", "CompletionDate", "LastRestoreTime"):
        if item.get(field) is not None:
            item[field] = _timestamp(item[field], field)
    item.setdefault("CreationDate", _utcnow())
    if status == "COMPLETED":
        item.setdefault("CompletionDate", item["CreationDate"])
    item.setdefault(
        "RecoveryPointArn",
        f"arn:aws:backup:{region}:{account_id}:recovery-point:{mock_random.uuid4()}",
    )
    item["BackupVaultArn"] = vault.backup_vault_arn
    item.setdefault("ResourceType", resource_type_of(item["ResourceArn"]))
    item.setdefault("ResourceName", item["ResourceArn"].split(":")[-1])
    item.setdefault("IamRoleArn", f"arn:aws:iam::{account_id}:role/service-role/AWSBackupDefaultServiceRole")
    item.setdefault("IsEncrypted", False)
    item.setdefault("VaultType", "BACKUP_VAULT")
    _store(backend)["recovery_points"].append(item)
    vault.num_of_recovery_points += 1
    return item


def seed_copy_job(item: dict[str, Any]) -> dict[str, Any]:
    """Store one copy job in ``Region`` (the region that ran the copy, i.e. the source's);
    ``item`` uses the ``CopyJob`` field names plus ``Region``. Returns the stored job."""
    item = dict(item)
    _check_fields(item, "CopyJob", {"Region"})
    for required in ("Region", "ResourceArn", "DestinationBackupVaultArn"):
        if not item.get(required):
            raise SeedError(f"{required} is required")
    region = item.pop("Region")
    account_id = item.setdefault("AccountId", "123456789012")
    state = item.setdefault("State", "COMPLETED")
    if state not in COPY_JOB_STATES:
        raise SeedError(f"State must be one of {sorted(COPY_JOB_STATES)}")
    for field in ("CreationDate", "CompletionDate"):
        if item.get(field) is not None:
            item[field] = _timestamp(item[field], field)
    item.setdefault("CreationDate", _utcnow())
    if state in ("COMPLETED", "FAILED", "PARTIAL"):
        item.setdefault("CompletionDate", item["CreationDate"])
    if state == "FAILED":
        item.setdefault("StatusMessage", "Copy job failed.")
    item.setdefault("CopyJobId", str(mock_random.uuid4()).upper())
    item.setdefault("ResourceType", resource_type_of(item["ResourceArn"]))
    item.setdefault("ResourceName", item["ResourceArn"].split(":")[-1])
    item.setdefault("IamRoleArn", f"arn:aws:iam::{account_id}:role/service-role/AWSBackupDefaultServiceRole")
    _store(backup_backends[account_id][region])["copy_jobs"].append(item)
    return item


# --------------------------------------------------------------------------- listing


def _page(items: list[dict[str, Any]], params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Offset pagination with an opaque token; ``MaxResults`` 1..1000, default 1000."""
    limit = params.get("MaxResults") or 1000
    if not 1 <= int(limit) <= 1000:
        raise InvalidParameterValueException("MaxResults must be between 1 and 1000.")
    start = 0
    if params.get("NextToken"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(params["NextToken"]))["offset"])
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidParameterValueException("Invalid NextToken.") from err
    end = start + int(limit)
    token = None
    if end < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode()
    return items[start:end], token


def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return _timestamp(value, "filter")


def _filtered(
    items: Iterable[dict[str, Any]],
    params: dict[str, Any],
    filters: dict[str, Callable[[dict[str, Any], Any], bool]],
) -> list[dict[str, Any]]:
    chosen = [
        i for i in items if all(f(i, params[k]) for k, f in filters.items() if params.get(k) is not None)
    ]
    return sorted(chosen, key=lambda i: i["CreationDate"], reverse=True)


def _eq(field: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda item, wanted: item.get(field) == wanted


def _before(field: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda item, limit: item.get(field) is not None and item[field] < _as_dt(limit)


def _after(field: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda item, limit: item.get(field) is not None and item[field] > _as_dt(limit)


_RECOVERY_POINT_FILTERS = {
    "ByResourceArn": _eq("ResourceArn"),
    "ByResourceType": _eq("ResourceType"),
    "ByBackupPlanId": lambda item, plan: (item.get("CreatedBy") or {}).get("BackupPlanId") == plan,
    "ByCreatedBefore": _before("CreationDate"),
    "ByCreatedAfter": _after("CreationDate"),
    "ByParentRecoveryPointArn": _eq("ParentRecoveryPointArn"),
}

_COPY_JOB_FILTERS = {
    "ByResourceArn": _eq("ResourceArn"),
    "ByState": _eq("State"),
    "ByCreatedBefore": _before("CreationDate"),
    "ByCreatedAfter": _after("CreationDate"),
    "ByResourceType": _eq("ResourceType"),
    "ByDestinationVaultArn": _eq("DestinationBackupVaultArn"),
    "ByAccountId": _eq("AccountId"),
    "ByCompleteBefore": _before("CompletionDate"),
    "ByCompleteAfter": _after("CompletionDate"),
    "ByParentJobId": _eq("ParentJobId"),
    "BySourceRecoveryPointArn": _eq("SourceRecoveryPointArn"),
    "ByMessageCategory": _eq("MessageCategory"),
}


def _parsed_params(response: BackupResponse) -> dict[str, Any]:
    """Parse the request with moto's model-driven rest-json parser."""
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _list_recovery_points_by_backup_vault(self: BackupResponse) -> ActionResult:
    params = _parsed_params(self)
    vault_name = params["BackupVaultName"]
    if vault_name not in self.backup_backend.vaults:
        raise ResourceNotFoundException(f"Backup vault {vault_name} does not exist.")
    points = [p for p in _store(self.backup_backend)["recovery_points"] if p["BackupVaultName"] == vault_name]
    page, token = _page(_filtered(points, params, _RECOVERY_POINT_FILTERS), params)
    return ActionResult({"RecoveryPoints": page, "NextToken": token})


def _list_copy_jobs(self: BackupResponse) -> ActionResult:
    params = _parsed_params(self)
    jobs = _store(self.backup_backend)["copy_jobs"]
    page, token = _page(_filtered(jobs, params, _COPY_JOB_FILTERS), params)
    return ActionResult({"CopyJobs": page, "NextToken": token})


def install() -> None:
    """Add the operations and their routes to moto's Backup service (idempotent)."""
    BackupResponse.list_recovery_points_by_backup_vault = _list_recovery_points_by_backup_vault
    BackupResponse.list_copy_jobs = _list_copy_jobs
    # DescribeBackupVault: moto keeps the count as num_of_recovery_points, which its
    # model-driven serialiser does not find under NumberOfRecoveryPoints.
    Vault.number_of_recovery_points = property(lambda vault: vault.num_of_recovery_points)
    backup_urls.url_paths.setdefault(
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$", BackupResponse.dispatch
    )
    backup_urls.url_paths.setdefault("{0}/copy-jobs/$", BackupResponse.dispatch)
