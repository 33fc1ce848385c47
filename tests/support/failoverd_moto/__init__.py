"""failoverd's extension of moto: the AWS operations failoverd needs that moto 5.2.5 lacks.

Loaded into the moto server process by ``tests/support/moto_server.py``:

* RDS ``SwitchoverGlobalCluster`` / ``FailoverGlobalCluster`` (and a ``DescribeGlobalClusters``
  that honours ``GlobalClusterIdentifier``) — :mod:`failoverd_moto.rds`
* Backup ``ListRecoveryPointsByBackupVault`` / ``ListCopyJobs`` — :mod:`failoverd_moto.backup`
* Cognito ``ListUserPoolReplicas`` / ``CreateUserPoolReplica`` / ``UpdateUserPoolReplica`` —
  :mod:`failoverd_moto.cognito`
* test-only seeding endpoints under ``/_failoverd/`` — :mod:`failoverd_moto.admin`

Every operation answers through moto's botocore-model-driven serialisers (``ActionResult``), and
errors are ``ServiceException``s with the codes of the AWS model, so the wire format is AWS's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import backup, cognito, rds
from .admin import AdminMiddleware

__all__ = ["AdminMiddleware", "install", "wrap"]


def install() -> None:
    """Patch the operations into moto's response classes. Call before serving requests."""
    rds.install()
    backup.install()
    cognito.install()


def wrap(
    app: Callable[..., Iterable[bytes]],
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Install the extension and return ``app`` with the ``/_failoverd/`` endpoints in front."""
    install()
    return AdminMiddleware(app)
