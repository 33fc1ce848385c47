"""Route 53 health checks that follow CloudWatch alarms, and ``TestDNSAnswer``, for moto.

moto 5.2.5 accepts ``CreateHealthCheck`` with ``Type: CLOUDWATCH_METRIC`` but drops
``AlarmIdentifier`` and ``InsufficientDataHealthStatus``, answers it with the fields of an HTTP
check (``Port`` 80, ``RequestInterval`` 30...), and ``GetHealthCheckStatus`` answers one fixed
"Success: HTTP Status Code: 200" observation from us-east-1 for every health check. It has no
``TestDNSAnswer``. This module patches ``moto.route53.responses.Route53`` (answers go through
moto's model-driven rest-xml serialiser):

CLOUDWATCH_METRIC health checks

* ``CreateHealthCheck`` stores ``AlarmIdentifier {Region, Name}`` and
  ``InsufficientDataHealthStatus``; ``UpdateHealthCheck`` may change them (and ``Inverted``,
  ``Disabled``, as moto already does). ``GetHealthCheck`` / ``ListHealthChecks`` answer AWS's
  shape: ``HealthCheckConfig {Type, Inverted, Disabled, AlarmIdentifier,
  InsufficientDataHealthStatus}`` and ``CloudWatchAlarmConfiguration`` (the alarm's
  ``EvaluationPeriods``, ``Threshold``, ``ComparisonOperator``, ``Period``, ``MetricName``,
  ``Namespace``, ``Statistic``, ``Dimensions``; left out while the alarm does not exist).
* ``InvalidInput`` (400): an ``AlarmIdentifier`` on another type (AWS's message "Invalid
  parameter : Basic health checks must not have an metric region specified."); a
  CLOUDWATCH_METRIC check without one; a ``Region`` that is no CloudWatch region; an
  ``InsufficientDataHealthStatus`` other than ``Healthy | Unhealthy | LastKnownStatus``; an
  existing alarm that Route 53 does not support — AWS documents that only alarms on
  standard-resolution metrics with the statistics ``Average | Minimum | Maximum | Sum |
  SampleCount`` are supported, so a ``Period`` under 60 s, an ``ExtendedStatistic`` or a
  metric-math alarm is refused. An alarm that does not exist (yet) is accepted.
* ``GetHealthCheckStatus`` answers one observation per Route 53 health-checker region
  (:data:`CHECKERS`, with addresses from Route 53's published checker ranges), each with
  ``StatusReport {Status, CheckedTime}``. The status is derived from the alarm's current
  *evaluated* state (:func:`failoverd_moto.alarms.evaluated_alarm`) in the alarm's region and
  the health check's account: ``OK`` -> healthy, ``ALARM`` -> unhealthy, ``INSUFFICIENT_DATA``
  (or no such alarm) -> per ``InsufficientDataHealthStatus``, where ``LastKnownStatus`` (also the
  behaviour when it is not set) is the status of the alarm's latest ``OK``/``ALARM`` state in its
  history, healthy when it never had one. A disabled check is healthy. ``Inverted`` is applied
  last. ``Status`` reads "Success: ..." or "Failure: ..." and says why. ``CheckedTime`` is
  :func:`failoverd_moto.alarms.now`. Other health check types keep moto's answer.

``TestDNSAnswer`` (``GET /2013-04-01/testdnsanswer?hostedzoneid=&recordname=&recordtype=``)

Answers as Route 53's name servers would, with ``Nameserver`` (the zone's first name server),
``RecordName`` and ``RecordType`` as asked, ``RecordData`` (the values), ``ResponseCode``
(``NXDOMAIN`` when no record has the name, ``NOERROR`` otherwise, with no data when the name has
no record of the type) and ``Protocol`` ``UDP``. ``resolverip`` and the EDNS0 client subnet are
accepted and do not matter for the routing policies emulated:

* simple record: its values;
* failover: the PRIMARY when it is healthy, else the SECONDARY when it is healthy, else the
  PRIMARY (when all records are unhealthy Route 53 treats them all as healthy);
* weighted: one record, chosen with probability proportional to ``Weight`` among the healthy
  records with a non-zero weight; if there are none, among the healthy zero-weight records with
  equal probability; if no record is healthy, among all (non-zero weights first), as Route 53
  does. The choice comes from a pseudo-random generator seeded with :data:`DNS_SEED` kept on the
  Route 53 backend, so a sequence of queries after ``/moto-api/reset`` is always answered the same;
* a record is healthy when it has no ``HealthCheckId`` or its health check is healthy: for
  CLOUDWATCH_METRIC checks as in ``GetHealthCheckStatus`` above; every other type (and a health
  check that no longer exists) counts as healthy, as moto's ``GetHealthCheckStatus`` reports them;
* alias records: an alias to a record of the same hosted zone is answered with that record's
  answer (and with ``EvaluateTargetHealth`` it is healthy only when a record of the target is);
  an alias to anything else is answered with the target's ``DNSName`` and is healthy unless its
  own health check says otherwise;
* when the name has no record of the type but has a CNAME, the CNAME is answered.

Latency, geolocation, geoproximity, IP-based and multivalue-answer records are not emulated:
``TestDNSAnswer`` on them is ``InvalidInput``. Wildcard records are not matched.

:func:`resolve_samples` is the same resolution repeated n times with its own seeded generator,
behind ``GET /_failoverd/route53/resolve`` (see :mod:`failoverd_moto.admin`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from moto.core.responses import ActionResult
from moto.route53 import urls as route53_urls
from moto.route53.exceptions import InvalidInput, NoSuchHealthCheck
from moto.route53.models import FakeZone, HealthCheck, RecordSet, Route53Backend, route53_backends
from moto.route53.responses import Route53

from . import alarms
from .cloudwatch import service_model

CLOUDWATCH_METRIC = "CLOUDWATCH_METRIC"
INSUFFICIENT_DATA_HEALTH_STATUSES = ("Healthy", "Unhealthy", "LastKnownStatus")
#: Route 53's health-checker regions (the ``HealthCheckRegion`` values) and, for each, an address
#: in that region's published ``ROUTE53_HEALTHCHECKS`` range.
CHECKERS: dict[str, str] = {
    "us-east-1": "107.23.255.11",
    "us-west-1": "54.183.255.139",
    "us-west-2": "54.244.52.203",
    "eu-west-1": "54.228.16.11",
    "ap-southeast-1": "54.251.31.139",
    "ap-southeast-2": "54.252.79.139",
    "ap-northeast-1": "54.248.220.11",
    "sa-east-1": "54.232.40.75",
}
#: Seed of the generator that picks weighted records in ``TestDNSAnswer``.
DNS_SEED = 53
#: Most alias records followed for one answer (Route 53 refuses alias loops at creation).
MAX_ALIAS_DEPTH = 8
MAX_SAMPLES = 100_000


# ------------------------------------------------------------------------- health


@dataclass(frozen=True)
class Health:
    """A health check's status as a Route 53 checker reports it."""

    healthy: bool
    status: str


def alarm_health(check: HealthCheck) -> Health:
    """The status of a CLOUDWATCH_METRIC health check, from its alarm's evaluated state."""
    identifier = check.alarm_identifier or {}
    region, name = identifier.get("Region", ""), identifier.get("Name", "")
    alarm = alarms.evaluated_alarm(check.alarm_account, region, name)
    mode = check.insufficient_data_health_status or "LastKnownStatus"
    state = alarm.state_value if alarm is not None else alarms.INSUFFICIENT_DATA
    subject = f"CloudWatch alarm {name} in {region}"
    if check.disabled:
        healthy, why = True, "the health check is disabled"
    elif state == alarms.OK:
        healthy, why = True, f"{subject} is in the OK state"
    elif state == alarms.ALARM:
        healthy, why = False, f"{subject} is in the ALARM state"
    else:
        if mode == "LastKnownStatus":
            known = alarms.last_known_state(alarm) if alarm is not None else None
            healthy = known != alarms.ALARM
            last = f", last known state {known}" if known else ", no last known state"
        else:
            healthy, last = mode == "Healthy", ""
        problem = "has insufficient data" if alarm is not None else "does not exist"
        why = f"{subject} {problem} (InsufficientDataHealthStatus {mode}{last})"
    if check.inverted:
        healthy, why = not healthy, f"{why}; the health check is inverted"
    return Health(healthy, f"{'Success' if healthy else 'Failure'}: {why[0].upper()}{why[1:]}.")


def routing_health(check: HealthCheck) -> bool:
    """Whether Route 53 routes to records with ``check``: see the module documentation."""
    return alarm_health(check).healthy if check.type_ == CLOUDWATCH_METRIC else True


def _validate_alarm(
    account_id: str, check_type: str | None, identifier: dict[str, Any] | None, insufficient: str | None
) -> None:
    if identifier and check_type != CLOUDWATCH_METRIC:
        raise InvalidInput(
            "Invalid parameter : Basic health checks must not have an metric region specified."
        )
    if check_type != CLOUDWATCH_METRIC:
        return
    if insufficient is not None and insufficient not in INSUFFICIENT_DATA_HEALTH_STATUSES:
        raise InvalidInput(
            f"Invalid parameter : InsufficientDataHealthStatus must be one of "
            f"{', '.join(INSUFFICIENT_DATA_HEALTH_STATUSES)}."
        )
    if identifier is None:
        return
    region, name = identifier.get("Region"), identifier.get("Name")
    if not region or not name:
        raise InvalidInput("Invalid parameter : AlarmIdentifier needs a Region and a Name.")
    if region not in service_model("route53").shape_for("CloudWatchRegion").enum:
        raise InvalidInput(f"Invalid parameter : {region} is not a CloudWatch region.")
    alarm = alarms.find_alarm(account_id, region, name)
    if alarm is not None and (
        alarm.extended_statistic
        or alarm.metric_data_queries
        or alarm.statistic not in alarms.STATISTICS
        or int(alarm.period or 0) < 60
    ):
        raise InvalidInput(
            f"Invalid parameter : CloudWatch alarm {name} in {region} is not supported by Route 53 health "
            "checks: only alarms on standard-resolution metrics (Period of 60 seconds or more) with the "
            "statistic Average, Minimum, Maximum, Sum or SampleCount are."
        )


# ------------------------------------------------------------------------- health check shape

_moto_health_check_config = cast(property, HealthCheck.__dict__["health_check_config"])


def _health_check_config(self: HealthCheck) -> dict[str, Any]:
    if self.type_ != CLOUDWATCH_METRIC:
        return cast(dict[str, Any], _moto_health_check_config.fget(self))  # type: ignore[misc]
    return {
        "Type": self.type_,
        "Inverted": self.inverted,
        "Disabled": self.disabled,
        "AlarmIdentifier": self.alarm_identifier,
        "InsufficientDataHealthStatus": self.insufficient_data_health_status,
    }


def _cloud_watch_alarm_configuration(self: HealthCheck) -> dict[str, Any] | None:
    if self.type_ != CLOUDWATCH_METRIC or not self.alarm_identifier:
        return None
    alarm = alarms.find_alarm(
        self.alarm_account, self.alarm_identifier["Region"], self.alarm_identifier["Name"]
    )
    if alarm is None:
        return None
    return {
        "EvaluationPeriods": alarm.evaluation_periods,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison_operator,
        "Period": alarm.period,
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Statistic": alarm.statistic,
        "Dimensions": [{"Name": d.name, "Value": d.value} for d in alarm.dimensions],
    }


# ------------------------------------------------------------------------- health check operations

_moto_create_health_check = Route53.create_health_check
_moto_update_health_check = Route53.update_health_check
_moto_get_health_check_status = Route53.get_health_check_status


def _identifier(value: dict[str, Any]) -> dict[str, str]:
    return {"Region": value["Region"], "Name": value["Name"]}


def _create_health_check(self: Route53) -> ActionResult:
    config = self._get_param("HealthCheckConfig") or {}
    identifier = config.get("AlarmIdentifier")
    insufficient = config.get("InsufficientDataHealthStatus")
    _validate_alarm(self.current_account, config.get("Type"), identifier, insufficient)
    if config.get("Type") == CLOUDWATCH_METRIC and not identifier:
        raise InvalidInput(
            "Invalid parameter : AlarmIdentifier is required for CLOUDWATCH_METRIC health checks."
        )
    result = _moto_create_health_check(self)
    check = cast(dict[str, HealthCheck], result.result)["HealthCheck"]
    if check.type_ == CLOUDWATCH_METRIC:
        check.alarm_account = self.current_account
        check.alarm_identifier = _identifier(identifier)
        check.insufficient_data_health_status = insufficient
    return result


def _update_health_check(self: Route53) -> ActionResult:
    check = self.backend.get_health_check(self._get_param("HealthCheckId"))
    identifier = self._get_param("AlarmIdentifier")
    insufficient = self._get_param("InsufficientDataHealthStatus")
    _validate_alarm(self.current_account, check.type_, identifier, insufficient)
    result = _moto_update_health_check(self)
    if check.type_ == CLOUDWATCH_METRIC:
        if identifier:
            check.alarm_identifier = _identifier(identifier)
        if insufficient is not None:
            check.insufficient_data_health_status = insufficient
    return result


def _get_health_check_status(self: Route53) -> ActionResult:
    check = self.backend.get_health_check(self._get_param("HealthCheckId"))
    if check.type_ != CLOUDWATCH_METRIC:
        return _moto_get_health_check_status(self)
    health = alarm_health(check)
    checked = alarms.now()
    observations = [
        {
            "Region": region,
            "IPAddress": address,
            "StatusReport": {"Status": health.status, "CheckedTime": checked},
        }
        for region, address in CHECKERS.items()
    ]
    return ActionResult({"HealthCheckObservations": observations})


# ------------------------------------------------------------------------- DNS resolution


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


@dataclass(frozen=True)
class Answer:
    """What the name servers answer: values, DNS response code, and whether a record was healthy."""

    values: list[str]
    code: str
    healthy: bool


@dataclass
class Resolver:
    """Answers queries for one hosted zone; health checks are evaluated once per resolver."""

    backend: Route53Backend
    zone: FakeZone
    rng: random.Random
    health: dict[str, bool] = field(default_factory=dict)

    def check_healthy(self, health_check_id: str) -> bool:
        if health_check_id not in self.health:
            try:
                check = self.backend.get_health_check(health_check_id)
            except NoSuchHealthCheck:
                self.health[health_check_id] = True
            else:
                self.health[health_check_id] = routing_health(check)
        return self.health[health_check_id]

    def _local_alias(self, record: RecordSet) -> bool:
        target = str(record.alias_target.get("HostedZoneId", "")).replace("/hostedzone/", "")
        return target == self.zone.resource_id

    def record_healthy(self, record: RecordSet, depth: int) -> bool:
        healthy = self.check_healthy(record.health_check_id) if record.health_check_id else True
        alias = record.alias_target
        if healthy and alias and alias.get("EvaluateTargetHealth") and self._local_alias(record):
            healthy = self.answer(alias["DNSName"], record.type, depth + 1).healthy
        return healthy

    def values(self, record: RecordSet, depth: int) -> list[str]:
        alias = record.alias_target
        if alias:
            if self._local_alias(record):
                return self.answer(alias["DNSName"], record.type, depth + 1).values
            return [alias["DNSName"]]
        return [value if isinstance(value, str) else value["Value"] for value in record.records]

    def _weighted(self, group: list[RecordSet], healthy: list[RecordSet]) -> RecordSet:
        pool = [r for r in healthy if int(r.weight) > 0] or healthy or group
        weighted = [r for r in pool if int(r.weight) > 0]
        if weighted:
            return self.rng.choices(weighted, weights=[int(r.weight) for r in weighted])[0]
        return self.rng.choice(pool)

    def choose(self, name: str, rtype: str, group: list[RecordSet], depth: int) -> tuple[RecordSet, bool]:
        """The record Route 53 answers from ``group`` (the records of one name and type), and
        whether any record of the group is healthy."""
        healthy = [r for r in group if self.record_healthy(r, depth)]
        if any(r.failover for r in group):
            primary = next((r for r in group if r.failover == "PRIMARY"), None)
            secondary = next((r for r in group if r.failover == "SECONDARY"), None)
            if primary is not None and primary in healthy:
                chosen = primary
            elif secondary is not None and secondary in healthy:
                chosen = secondary
            else:
                chosen = cast(RecordSet, primary or secondary)
        elif any(r.weight is not None for r in group):
            chosen = self._weighted(group, healthy)
        elif len(group) == 1 and not group[0].set_identifier:
            chosen = group[0]
        else:
            raise InvalidInput(
                f"failoverd_moto does not emulate the routing policy of {name} {rtype} "
                "(only simple, failover and weighted records are answered)."
            )
        return chosen, bool(healthy)

    def answer(self, name: str, rtype: str, depth: int = 0) -> Answer:
        if depth > MAX_ALIAS_DEPTH:
            raise InvalidInput(f"Alias records for {name} point at each other.")
        at_name = [r for r in self.zone.rrsets if _fqdn(r.name) == _fqdn(name)]
        if not at_name:
            return Answer([], "NXDOMAIN", False)
        group = [r for r in at_name if r.type == rtype] or [r for r in at_name if r.type == "CNAME"]
        if not group:
            return Answer([], "NOERROR", False)
        chosen, healthy = self.choose(name, rtype, group, depth)
        return Answer(self.values(chosen, depth), "NOERROR", healthy)


def _dns_rng(backend: Route53Backend) -> random.Random:
    """The backend's generator for weighted answers (a moto reset starts it again)."""
    return cast(random.Random, backend.__dict__.setdefault("_failoverd_dns_rng", random.Random(DNS_SEED)))


def _test_dns_answer(self: Route53) -> ActionResult:
    zone = self.backend.get_hosted_zone(self._get_param("HostedZoneId"))
    name, rtype = self._get_param("RecordName"), self._get_param("RecordType")
    answer = Resolver(self.backend, zone, _dns_rng(self.backend)).answer(name, rtype)
    return ActionResult(
        {
            "Nameserver": zone.delegation_set.name_servers[0],
            "RecordName": name,
            "RecordType": rtype,
            "RecordData": answer.values,
            "ResponseCode": answer.code,
            "Protocol": "UDP",
        }
    )


def resolve_samples(
    account_id: str, zone_id: str, name: str, rtype: str, samples: int, seed: int
) -> dict[str, Any]:
    """What ``samples`` queries for ``name``/``rtype`` in the zone would be answered:
    ``{"answers": {value: count}, "health": {health check id: healthy}}``. The health checks are
    evaluated once; weighted choices come from a generator seeded with ``seed``. Raises moto's
    ``NoSuchHostedZone`` for an unknown zone and ``InvalidInput`` for a policy not emulated."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be between 1 and {MAX_SAMPLES}")
    backend = route53_backends[account_id]["aws"]
    resolver = Resolver(backend, backend.get_hosted_zone(zone_id), random.Random(seed))
    answers: Counter[str] = Counter()
    for _ in range(samples):
        answers.update(resolver.answer(name, rtype).values)
    return {"answers": dict(answers), "health": dict(resolver.health)}


def install() -> None:
    """Patch the health check operations and add ``TestDNSAnswer`` to moto's Route 53 (idempotent)."""
    HealthCheck.alarm_account = None  # class defaults, set on CLOUDWATCH_METRIC checks
    HealthCheck.alarm_identifier = None
    HealthCheck.insufficient_data_health_status = None
    HealthCheck.health_check_config = property(_health_check_config)
    HealthCheck.cloud_watch_alarm_configuration = property(_cloud_watch_alarm_configuration)
    Route53.create_health_check = _create_health_check
    Route53.update_health_check = _update_health_check
    Route53.get_health_check_status = _get_health_check_status
    Route53.test_dns_answer = _test_dns_answer
    route53_urls.url_paths.setdefault(r"{0}/(?P<api_version>[\d_-]+)/testdnsanswer$", Route53.dispatch)
