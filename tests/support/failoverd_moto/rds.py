"""Aurora Global Database switchover and failover for moto's RDS backend.

moto 5.2.5 models global clusters (``CreateGlobalCluster``, ``DescribeGlobalClusters``,
``RemoveFromGlobalCluster``...) but has neither ``SwitchoverGlobalCluster`` nor
``FailoverGlobalCluster``. This module adds both to ``moto.rds.responses.RDSResponse``;
their results go through moto's model-driven query/XML serialiser (``ActionResult``), so the
wire format is RDS's.

Behaviour, as in AWS:

* ``GlobalClusterIdentifier`` unknown -> ``GlobalClusterNotFoundFault`` (404).
* ``TargetDbClusterIdentifier`` (an ARN, or for convenience a cluster identifier) that names no
  DB cluster in any region -> ``DBClusterNotFoundFault`` (404); a cluster that is not a member of
  the global cluster, or that already is its writer -> ``InvalidGlobalClusterStateFault`` (400).
* A global cluster that is not ``available`` (an operation is already in progress) ->
  ``InvalidGlobalClusterStateFault``.
* ``FailoverGlobalCluster`` needs exactly one of ``AllowDataLoss=true`` or ``Switchover=true``
  (``InvalidParameterCombination`` otherwise); with ``Switchover=true`` it is a switchover.

The writer changes (``IsWriter`` in ``GlobalClusterMembers``) once the operation completes. By
default that is immediate. With a transition delay (``moto_server.py --global-cluster-transition
SECONDS`` or ``POST /_failoverd/rds/settings {"transition_seconds": N}``) the global cluster
stays ``switching-over`` / ``failing-over`` with a ``FailoverState`` for that long, and the old
writer is still the writer, so clients have to poll ``DescribeGlobalClusters`` like on AWS.

``RemoveFromGlobalCluster`` works across regions. moto keeps a global cluster in one region's
backend only (us-east-1's) and looks it up in the region called, so detaching a secondary
cluster from its own region silently did nothing. Here, as on AWS:

* the global cluster is found whichever region is called (``GlobalClusterNotFoundFault``, 404,
  when no region has it), and ``DbClusterIdentifier`` (an ARN, or for convenience an identifier)
  in any region (``DBClusterNotFoundFault``, 404);
* a cluster that is not a member -> ``InvalidParameterValue`` (400) "... is not found in global
  cluster ...", AWS's answer for an already detached member;
* a global cluster with a switchover/failover in progress, or its writer while secondaries
  remain -> ``InvalidGlobalClusterStateFault`` (400);
* the member leaves ``GlobalClusterMembers`` and becomes a standalone cluster: no
  ``GlobalClusterIdentifier``, a writer of its own (its first instance by promotion tier is the
  cluster writer again). The answer is the global cluster without it.

Fixes to moto's existing behaviour are installed as well:

* ``DescribeGlobalClusters`` honours ``GlobalClusterIdentifier`` (moto ignores it and returns
  every global cluster) and answers ``GlobalClusterNotFoundFault`` for an unknown one.
* ``CreateGlobalCluster`` with ``SourceDBClusterIdentifier`` makes that source cluster the writer
  (moto leaves ``IsWriter`` false for it) and sets its ``GlobalClusterIdentifier`` to the
  identifier (moto puts the ARN there).
* The DB instances of a secondary (non-writer) member cluster are all readers
  (``IsClusterWriter`` false in ``DescribeDBClusters``' ``DBClusterMembers``); after a switchover
  or failover the new primary's instances get a writer and the old primary's lose it. moto would
  otherwise always designate a writer instance in every cluster.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

#: Seconds a switchover/failover stays in progress before the writer changes. Settable at
#: run time through the seeding endpoint (see ``failoverd_moto.admin``).
SETTINGS: dict[str, float] = {"transition_seconds": 0.0}

_LOCK = threading.Lock()


class GlobalClusterNotFoundFault(RDSClientError):
    def __init__(self, identifier: str):
        super().__init__("GlobalClusterNotFoundFault", f"Global cluster {identifier} not found.")


class InvalidGlobalClusterStateFault(RDSClientError):
    def __init__(self, message: str):
        super().__init__("InvalidGlobalClusterStateFault", message)


class DBClusterNotFoundFault(RDSClientError):
    def __init__(self, identifier: str):
        super().__init__("DBClusterNotFoundFault", f"DBCluster {identifier} not found.")


class InvalidParameterCombination(RDSClientError):
    def __init__(self, message: str):
        super().__init__("InvalidParameterCombination", message)


def _find_global_cluster(backend: RDSBackend, identifier: str) -> GlobalCluster:
    """Look a global cluster up by identifier (case-insensitive, like RDS) or by ARN."""
    wanted = identifier.lower()
    for cluster in backend.global_clusters.values():
        if wanted in (cluster.global_cluster_identifier, cluster.global_cluster_arn.lower()):
            return cluster
    raise GlobalClusterNotFoundFault(identifier)


def _find_global_cluster_anywhere(account_id: str, identifier: str) -> GlobalCluster:
    """A global cluster is global: look in us-east-1's backend (where moto creates them), then in
    every other region's."""
    backends = rds_backends[account_id]
    for region in ["us-east-1", *(r for r in backends if r != "us-east-1")]:
        try:
            return _find_global_cluster(backends[region], identifier)
        except GlobalClusterNotFoundFault:
            continue
    raise GlobalClusterNotFoundFault(identifier)


def _find_db_cluster(account_id: str, identifier: str) -> DBCluster:
    """Find a DB cluster in any region of the account by ARN or identifier."""
    wanted = identifier.lower()
    for backend in rds_backends[account_id].values():
        for cluster in backend.clusters.values():
            if wanted in (cluster.db_cluster_identifier, cluster.db_cluster_arn.lower()):
                return cluster
    raise DBClusterNotFoundFault(identifier)


def _start_transition(global_cluster: GlobalCluster, target: DBCluster, *, data_loss: bool) -> None:
    """Validate and begin a switchover (``data_loss=False``) or failover of ``global_cluster``."""
    with _LOCK:
        if global_cluster.status != "available":
            raise InvalidGlobalClusterStateFault(
                f"Global cluster {global_cluster.global_cluster_identifier} is in "
                f"{global_cluster.status} state and cannot be switched over or failed over."
            )
        if target not in global_cluster.members:
            raise InvalidGlobalClusterStateFault(
                f"DB cluster {target.db_cluster_arn} is not a member of global cluster "
                f"{global_cluster.global_cluster_identifier}."
            )
        if target.is_writer:
            raise InvalidGlobalClusterStateFault(
                f"DB cluster {target.db_cluster_arn} is already the primary cluster of global "
                f"cluster {global_cluster.global_cluster_identifier}."
            )
        current = next((m for m in global_cluster.members if m.is_writer), None)
        global_cluster.status = "failing-over" if data_loss else "switching-over"
        global_cluster.failover_state = {
            "Status": "failing-over",
            "FromDbClusterArn": current.db_cluster_arn if current else None,
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": data_loss,
        }
        delay = float(SETTINGS["transition_seconds"])

    def complete() -> None:
        with _LOCK:
            for member in global_cluster.members:
                member.is_writer = member is target
            global_cluster.status = "available"
            global_cluster.failover_state = None

    if delay > 0:
        timer = threading.Timer(delay, complete)
        timer.daemon = True
        timer.start()
    else:
        complete()


def _switchover_global_cluster(self: RDSResponse) -> ActionResult:
    global_cluster = _find_global_cluster(self.global_backend, self.params["GlobalClusterIdentifier"])
    target = _find_db_cluster(self.current_account, self.params["TargetDbClusterIdentifier"])
    _start_transition(global_cluster, target, data_loss=False)
    return ActionResult({"GlobalCluster": global_cluster})


def _failover_global_cluster(self: RDSResponse) -> ActionResult:
    allow_data_loss = bool(self.params.get("AllowDataLoss", False))
    switchover = bool(self.params.get("Switchover", False))
    if allow_data_loss == switchover:
        raise InvalidParameterCombination("Exactly one of AllowDataLoss or Switchover must be set to true.")
    global_cluster = _find_global_cluster(self.global_backend, self.params["GlobalClusterIdentifier"])
    target = _find_db_cluster(self.current_account, self.params["TargetDbClusterIdentifier"])
    _start_transition(global_cluster, target, data_loss=allow_data_loss)
    return ActionResult({"GlobalCluster": global_cluster})


class InvalidParameterValue(RDSClientError):
    def __init__(self, message: str):
        super().__init__("InvalidParameterValue", message)


def _detach(global_cluster: GlobalCluster, member: DBCluster) -> None:
    """Remove ``member`` from ``global_cluster``; it becomes a standalone (writer) cluster."""
    with _LOCK:
        if member not in global_cluster.members:
            raise InvalidParameterValue(
                f"The cluster {member.db_cluster_arn} is not found in global cluster "
                f"{global_cluster.global_cluster_identifier}."
            )
        if global_cluster.status != "available":
            raise InvalidGlobalClusterStateFault(
                f"Global cluster {global_cluster.global_cluster_identifier} is in "
                f"{global_cluster.status} state; a member cannot be removed now."
            )
        if member.is_writer and len(global_cluster.members) > 1:
            raise InvalidGlobalClusterStateFault(
                f"DB cluster {member.db_cluster_arn} is the primary cluster of global cluster "
                f"{global_cluster.global_cluster_identifier}; remove the secondary clusters first."
            )
        global_cluster.members.remove(member)
        member.global_cluster_identifier = None
        member.is_writer = True
        # A writer instance again (moto's own designation, now that it is no secondary).
        member.designate_writer()


def _remove_from_global_cluster(self: RDSResponse) -> ActionResult:
    global_cluster = _find_global_cluster_anywhere(
        self.current_account, self.params["GlobalClusterIdentifier"]
    )
    member = _find_db_cluster(self.current_account, self.params["DbClusterIdentifier"])
    _detach(global_cluster, member)
    return ActionResult({"GlobalCluster": global_cluster})


def _describe_global_clusters(self: RDSResponse) -> ActionResult:
    identifier = self.params.get("GlobalClusterIdentifier")
    if identifier:
        clusters = [_find_global_cluster(self.global_backend, identifier)]
    else:
        clusters = self.global_backend.describe_global_clusters()
    return ActionResult({"GlobalClusters": clusters})


_moto_create_global_cluster = RDSBackend.create_global_cluster


def _create_global_cluster(self: RDSBackend, *args: Any, **kwargs: Any) -> GlobalCluster:
    global_cluster = _moto_create_global_cluster(self, *args, **kwargs)
    for source in global_cluster.members:
        source.is_writer = True
        # moto stores the ARN here; AWS reports (and moto's own lookups expect) the identifier.
        source.global_cluster_identifier = global_cluster.global_cluster_identifier
    return global_cluster


_moto_designate_writer = DBCluster.designate_writer


def _designate_writer(self: DBCluster) -> None:
    """A secondary cluster of a global database has no writer instance, as on AWS."""
    if self.global_cluster_identifier and not self.is_writer:
        for instance in self._members:
            instance.is_cluster_writer = False
        return
    _moto_designate_writer(self)


def install() -> None:
    """Add the operations to moto's RDS response class (idempotent)."""
    GlobalCluster.failover_state = None  # class default, serialised as FailoverState
    RDSResponse.switchover_global_cluster = _switchover_global_cluster
    RDSResponse.failover_global_cluster = _failover_global_cluster
    RDSResponse.describe_global_clusters = _describe_global_clusters
    RDSResponse.remove_from_global_cluster = _remove_from_global_cluster
    RDSBackend.create_global_cluster = _create_global_cluster
    DBCluster.designate_writer = _designate_writer
