"""CloudWatch metric alarms that evaluate their metric, as CloudWatch's do.

moto 5.2.5 stores alarms and datapoints but never evaluates an alarm: ``StateValue`` is ``OK``
("Unchecked: Initial alarm creation") until ``SetAlarmState`` changes it, whatever the data says.
It keeps a state history per alarm (``Alarm.history``, filled by ``Alarm.update_state``) but
serves no ``DescribeAlarmHistory``. This module hooks moto's ``CloudWatchBackend`` (so every
protocol is covered: query, JSON, and the RPC v2 CBOR bridge of :mod:`failoverd_moto.cloudwatch`,
which goes through moto's JSON protocol) and adds ``DescribeAlarmHistory``.

Which alarms evaluate: metric alarms on one metric (``Namespace``, ``MetricName``,
``Dimensions`` — the exact dimension set, as CloudWatch identifies a metric —, ``Unit`` when
set), with ``Statistic`` (``SampleCount | Average | Sum | Minimum | Maximum``) or a percentile
``ExtendedStatistic`` (``p90``, ``p99.9``: nearest rank over the raw values of the period;
statistic sets do not count for percentiles) and one of the four static-threshold
``ComparisonOperator``\\s. Metric-math, anomaly-detection and composite alarms keep moto's
behaviour (they change state by ``SetAlarmState`` only).

Evaluation, purely a function of the stored datapoints and the time :func:`now`:

* the window is the ``EvaluationPeriods`` periods of ``Period`` seconds (10 and 30 s
  high-resolution periods included) *ending now*: period *k* (0 = newest) holds the datapoints
  with ``now - (k+1)*Period < Timestamp <= now - k*Period``; datapoints in the future are ignored;
* each period's datapoints are aggregated with the statistic; a period without datapoints is
  *missing*; a value is *breaching* when ``value <op> Threshold``;
* ``TreatMissingData`` ``breaching`` / ``notBreaching`` counts missing periods as breaching / not;
  ``missing`` (the default) and ``ignore`` do not count them;
* with ``M = DatapointsToAlarm`` (default ``EvaluationPeriods``): ``ALARM`` when at least M periods
  breach, ``OK`` otherwise. When every period is missing, ``missing`` gives ``INSUFFICIENT_DATA``
  and ``ignore`` keeps the current state.

CloudWatch looks further back than ``EvaluationPeriods`` (its "evaluation range") to find real
datapoints when some are missing; this window does not, so an alarm with missing periods is
decided on the real datapoints inside it.

When the state changes, ``StateValue``, ``StateReason`` ("Threshold Crossed: ..." /
"Insufficient Data: ..."), ``StateReasonData`` (CloudWatch's JSON: ``queryDate``, ``startDate``,
``statistic``, ``period``, ``recentDatapoints``, ``threshold``, ``evaluatedDatapoints``) and
``StateUpdatedTimestamp`` change, through moto's ``Alarm.update_state``, which records the
previous state in the alarm's history.

When an alarm evaluates:

* on ``PutMetricData``: every alarm on a metric that received data, at once (after moto stored
  it; a datum without ``Timestamp`` is stamped with :func:`now`);
* whenever alarm states are read (``DescribeAlarms`` in all its filters,
  ``DescribeAlarmsForMetric``, ``DescribeAlarmHistory``, and Route 53's CLOUDWATCH_METRIC health
  checks through :func:`evaluated_alarm`): every alarm whose evaluation is *due*, that is whose
  last evaluation is at least one evaluation interval old — ``min(Period, 60)`` seconds, as
  CloudWatch evaluates standard alarms every minute and high-resolution ones more often.

``SetAlarmState`` (moto's, unchanged) counts as an evaluation: the state it sets holds until the
next one (new data for the alarm's metric, or a read one interval later), as on AWS, where the
alarm "returns to its actual state" at its next evaluation. A new alarm keeps moto's initial state
until its first evaluation likewise (AWS starts alarms in ``INSUFFICIENT_DATA`` and evaluates them
within a minute; moto's ``OK`` is kept so that reading an alarm right after creating it is
unchanged). ``PutMetricAlarm`` on an existing alarm keeps its state and history (moto would reset
both) and makes it due for evaluation.

``DescribeAlarmHistory``: the ``StateUpdate`` items rebuilt from moto's history (one per state
change, ``HistorySummary`` "Alarm updated from OK to ALARM", ``HistoryData`` with ``oldState`` /
``newState``), filtered by ``AlarmName``, ``AlarmTypes`` (default ``MetricAlarm``),
``HistoryItemType``, ``StartDate``, ``EndDate``; ``ScanBy`` (default ``TimestampDescending``),
``MaxRecords`` (default 100) and ``NextToken`` (``InvalidNextToken`` when not one of ours).
Configuration-update and action items are not recorded.

The clock: :func:`now` is the real UTC time unless frozen with :func:`set_clock` (in the server,
``POST /_failoverd/clock``, see :mod:`failoverd_moto.admin`); new alarms, state changes, and
datapoints without a timestamp use it. ``/moto-api/reset`` does not unfreeze it.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from moto.cloudwatch.exceptions import CloudWatchException
from moto.cloudwatch.models import (
    Alarm,
    CloudWatchBackend,
    MetricDatum,
    MetricDatumBase,
    Statistics,
    cloudwatch_backends,
)
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
#: ComparisonOperator -> (test of ``value`` against the threshold, the words CloudWatch uses).
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
#: CloudWatch evaluates standard-resolution alarms every minute, high-resolution ones faster.
MAX_EVALUATION_INTERVAL = 60

_PERCENTILE = re.compile(r"p(100|\d{1,2}(?:\.\d+)?)")
_LOCK = threading.RLock()
_frozen: datetime | None = None


# ------------------------------------------------------------------------- clock


def _naive_utc(value: datetime) -> datetime:
    """``value`` as moto keeps timestamps: naive UTC."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def now() -> datetime:
    """The time alarms are evaluated at (naive UTC): the frozen time, or the real one."""
    return _frozen if _frozen is not None else utcnow()


def set_clock(frozen: datetime | None) -> None:
    """Freeze :func:`now` at ``frozen`` (an aware datetime, or naive UTC); ``None`` unfreezes."""
    global _frozen
    _frozen = None if frozen is None else _naive_utc(frozen)


def clock_frozen() -> bool:
    return _frozen is not None


# ------------------------------------------------------------------------- evaluation


def _percentile(extended_statistic: str) -> float | None:
    match = _PERCENTILE.fullmatch(extended_statistic)
    return float(match.group(1)) if match else None


def evaluable(alarm: Alarm) -> bool:
    """Whether ``alarm`` is a single-metric static-threshold alarm this module evaluates."""
    if alarm.rule is not None or alarm.metric_data_queries or alarm.threshold_metric_id:
        return False
    if not (alarm.namespace and alarm.metric_name and alarm.period and alarm.evaluation_periods):
        return False
    if alarm.threshold is None or alarm.comparison_operator not in COMPARISONS:
        return False
    if alarm.extended_statistic:
        return _percentile(alarm.extended_statistic) is not None
    return alarm.statistic in STATISTICS


def _dimension_set(dimensions: Iterable[Any]) -> frozenset[tuple[str, str]]:
    return frozenset((d.name, d.value) for d in dimensions)


def _metric_key(alarm: Alarm) -> tuple[str, str, frozenset[tuple[str, str]]]:
    return alarm.namespace, alarm.metric_name, _dimension_set(alarm.dimensions)


def _matches(alarm: Alarm, datum: MetricDatumBase) -> bool:
    return (
        datum.namespace == alarm.namespace
        and datum.name == alarm.metric_name
        and _dimension_set(datum.dimensions) == _dimension_set(alarm.dimensions)
        and (not alarm.unit or datum.unit == alarm.unit)
    )


@dataclass(frozen=True)
class Period:
    """One evaluation period ``(start, end]`` and its aggregated value (``None``: missing)."""

    start: datetime
    end: datetime
    value: float | None
    samples: float


def _aggregate(alarm: Alarm, points: list[MetricDatumBase], start: datetime) -> float | None:
    if not points:
        return None
    if alarm.extended_statistic:
        values = sorted(p.value for p in points if isinstance(p, MetricDatum))
        if not values:
            return None
        rank = math.ceil(float(_percentile(alarm.extended_statistic) or 0) / 100 * len(values))
        return values[max(rank, 1) - 1]
    stats = Statistics([alarm.statistic], start)
    stats.metric_data = points
    value = stats.get_statistics_for_type(alarm.statistic)
    return None if value is None else float(value)


def periods(backend: CloudWatchBackend, alarm: Alarm, at: datetime) -> list[Period]:
    """The alarm's evaluation window ending at ``at``, oldest period first."""
    length = timedelta(seconds=int(alarm.period))
    count = int(alarm.evaluation_periods)
    earliest = at - count * length
    points = [
        md
        for md in backend.get_all_metrics()
        if earliest < _naive_utc(md.timestamp) <= at and _matches(alarm, md)
    ]
    window = []
    for k in range(count - 1, -1, -1):
        end = at - k * length
        start = end - length
        inside = [p for p in points if start < _naive_utc(p.timestamp) <= end]
        stats = Statistics([], start)
        stats.metric_data = inside
        window.append(Period(start, end, _aggregate(alarm, inside, start), stats.calc_sample_count()))
    return window


@dataclass(frozen=True)
class Outcome:
    """A state an evaluation moves the alarm to, with CloudWatch's reason texts."""

    state: str
    reason: str
    reason_data: str


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _listing(chosen: list[Period]) -> str:
    return ", ".join(f"{p.value!r} ({p.start.strftime('%d/%m/%y %H:%M:%S')})" for p in reversed(chosen))


def _plural(count: int, word: str = "datapoint") -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def decide(alarm: Alarm, window: list[Period], at: datetime) -> Outcome | None:
    """The state ``window`` puts ``alarm`` in, or ``None`` to keep its current state (``ignore``
    with no datapoint)."""
    compare, words = COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    total = len(window)
    needed = int(alarm.datapoints_to_alarm or total)
    treat = alarm.treat_missing_data or "missing"
    present = [p for p in window if p.value is not None]
    breaching = [p for p in present if compare(p.value, threshold)]
    good = [p for p in present if not compare(p.value, threshold)]
    missing = total - len(present)
    bad = len(breaching) + (missing if treat == "breaching" else 0)

    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso(at),
        "startDate": _iso(window[0].start),
        "statistic": alarm.extended_statistic or alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [p.value for p in present],
        "threshold": threshold,
    }
    if present:
        data["evaluatedDatapoints"] = [
            {"timestamp": _iso(p.start), "sampleCount": float(p.samples), "value": p.value}
            for p in reversed(present)
        ]
    reason_data = json.dumps(data, separators=(",", ":"))
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        return Outcome(
            INSUFFICIENT_DATA,
            f"Insufficient Data: {_plural(total)} {'was' if total == 1 else 'were'} unknown.",
            reason_data,
        )
    if bad >= needed:
        verb = "was" if bad == 1 else "were"
        return Outcome(
            ALARM,
            f"Threshold Crossed: {bad} out of the last {total} datapoints [{_listing(breaching)}] {verb} "
            f"{words} the threshold ({threshold!r}) (minimum {_plural(needed)} for OK -> ALARM transition).",
            reason_data,
        )
    fine = len(good) + (missing if treat == "notBreaching" else 0)
    verb = "was" if fine == 1 else "were"
    return Outcome(
        OK,
        f"Threshold Crossed: {fine} out of the last {total} datapoints [{_listing(good)}] {verb} not "
        f"{words} the threshold ({threshold!r}) (minimum {_plural(total - needed + 1)} for ALARM -> OK "
        "transition).",
        reason_data,
    )


def _due(alarm: Alarm, at: datetime) -> bool:
    last: datetime | None = alarm._failoverd_evaluated_at
    interval = timedelta(seconds=min(int(alarm.period), MAX_EVALUATION_INTERVAL))
    return last is None or at - last >= interval


def _evaluate(backend: CloudWatchBackend, alarm: Alarm, at: datetime) -> None:
    outcome = decide(alarm, periods(backend, alarm, at), at)
    alarm._failoverd_evaluated_at = at
    if outcome is not None and outcome.state != alarm.state_value:
        alarm.update_state(outcome.reason, outcome.reason_data, outcome.state)
        alarm.state_updated_timestamp = at


def evaluate_alarms(
    backend: CloudWatchBackend, touched: frozenset[tuple[str, str, frozenset[tuple[str, str]]]] = frozenset()
) -> None:
    """Evaluate the alarms of ``backend`` that are due, and those on a ``touched`` metric."""
    with _LOCK:
        at = now()
        for alarm in list(backend.alarms.values()):
            if evaluable(alarm) and (_metric_key(alarm) in touched or _due(alarm, at)):
                _evaluate(backend, alarm, at)


def _backend(account_id: str, region: str) -> CloudWatchBackend | None:
    try:
        return cloudwatch_backends[account_id][region]
    except KeyError:
        return None


def find_alarm(account_id: str, region: str, name: str) -> Alarm | None:
    """The alarm ``name`` of ``account_id`` in ``region`` as it is (not evaluated), if any."""
    backend = _backend(account_id, region)
    return backend.alarms.get(name) if backend is not None else None


def evaluated_alarm(account_id: str, region: str, name: str) -> Alarm | None:
    """The alarm ``name`` of ``account_id`` in ``region``, evaluated if due; ``None`` if absent."""
    backend = _backend(account_id, region)
    alarm = backend.alarms.get(name) if backend is not None else None
    if backend is not None and alarm is not None and evaluable(alarm):
        with _LOCK:
            at = now()
            if _due(alarm, at):
                _evaluate(backend, alarm, at)
    return alarm


def last_known_state(alarm: Alarm) -> str | None:
    """The alarm's latest ``OK`` or ``ALARM`` state, current or in its history."""
    states = [alarm.state_value, *(entry[3] for entry in reversed(alarm.history))]
    return next((s for s in states if s in (OK, ALARM)), None)


# ------------------------------------------------------------------------- backend hooks

_moto_put_metric_data = CloudWatchBackend.put_metric_data
_moto_put_metric_alarm = CloudWatchBackend.put_metric_alarm
_moto_set_alarm_state = CloudWatchBackend.set_alarm_state

_Read = TypeVar("_Read", bound=Callable[..., Any])


def _put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    at = now()
    stamped = [m if m.get("Timestamp") else {**m, "Timestamp": at} for m in metric_data]
    _moto_put_metric_data(self, namespace, stamped)
    touched = frozenset(
        (namespace, m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m.get("Dimensions") or ()))
        for m in stamped
    )
    evaluate_alarms(self, touched)


def _put_metric_alarm(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Alarm:
    name = kwargs["name"] if "name" in kwargs else args[0]
    with _LOCK:
        previous = self.alarms.get(name)
        alarm = _moto_put_metric_alarm(self, *args, **kwargs)
        at = now()
        alarm.configuration_updated_timestamp = at
        if previous is None:
            alarm.state_updated_timestamp = at
            alarm._failoverd_evaluated_at = at
        else:  # an update keeps the state (AWS), and is evaluated at the next read
            for attribute in (
                "state_value",
                "state_reason",
                "state_reason_data",
                "state_updated_timestamp",
                "history",
            ):
                setattr(alarm, attribute, getattr(previous, attribute))
    return alarm


def _set_alarm_state(
    self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str, state_value: str
) -> None:
    with _LOCK:
        _moto_set_alarm_state(self, alarm_name, reason, reason_data, state_value)
        alarm = self.alarms[alarm_name]
        alarm.state_updated_timestamp = alarm._failoverd_evaluated_at = now()


def _evaluating(read: _Read) -> _Read:
    """``read`` (a backend method returning alarms) evaluating the due alarms first."""
    if getattr(read, "_failoverd_evaluating", False):
        return read

    @functools.wraps(read)
    def wrapper(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        evaluate_alarms(self)
        return read(self, *args, **kwargs)

    wrapper._failoverd_evaluating = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


_READS = (
    "describe_alarms",
    "get_alarms_by_action_prefix",
    "get_alarms_by_alarm_name_prefix",
    "get_alarms_by_alarm_names",
    "get_alarms_by_state_value",
)


# ------------------------------------------------------------------------- DescribeAlarmHistory


class InvalidNextToken(CloudWatchException):
    code = "InvalidNextToken"


def _state(reason: str, reason_data: str | None, value: str, *, with_data: bool) -> dict[str, Any]:
    state: dict[str, Any] = {"stateValue": value, "stateReason": reason}
    if with_data and reason_data:
        try:
            parsed = json.loads(reason_data)
        except ValueError:
            parsed = None
        if parsed:
            state["stateReasonData"] = parsed
    return state


def history_items(alarm: Alarm) -> list[dict[str, Any]]:
    """The alarm's state changes as ``AlarmHistoryItem``\\s, oldest first.

    moto's history holds ``(type, reason, reason data, state, timestamp)`` of the state *before*
    each change; the state after change *i* is history entry *i+1*, or the current state."""
    snapshots = [entry[1:5] for entry in alarm.history]
    snapshots.append(
        (alarm.state_reason, alarm.state_reason_data, alarm.state_value, alarm.state_updated_timestamp)
    )
    items = []
    for before, after in zip(snapshots, snapshots[1:]):
        old = _state(before[0], before[1], before[2], with_data=False)
        new = _state(after[0], after[1], after[2], with_data=True)
        items.append(
            {
                "AlarmName": alarm.name,
                "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
                "Timestamp": after[3],
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {before[2]} to {after[2]}",
                "HistoryData": json.dumps(
                    {"version": "1.0", "oldState": old, "newState": new}, separators=(",", ":")
                ),
            }
        )
    return items


def _describe_alarm_history(self: CloudWatchResponse) -> ActionResult:
    backend = self.cloudwatch_backend
    evaluate_alarms(backend)
    name = self._get_param("AlarmName")
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    item_type = self._get_param("HistoryItemType")
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    with _LOCK:
        alarms = [a for a in backend.alarms.values() if name is None or a.name == name]
        items = [i for a in alarms for i in history_items(a)]
    items = [
        i
        for i in items
        if i["AlarmType"] in types
        and (item_type is None or i["HistoryItemType"] == item_type)
        and (start is None or i["Timestamp"] >= _naive_utc(start))
        and (end is None or i["Timestamp"] <= _naive_utc(end))
    ]
    items.sort(key=lambda i: i["Timestamp"])
    if self._get_param("ScanBy") != "TimestampAscending":
        items.reverse()  # newest first, later changes first among equal timestamps
    token = self._get_param("NextToken")
    if token is not None and not (token.isdigit() and int(token) <= len(items)):
        raise InvalidNextToken("The service couldn't process the NextToken.")
    offset = int(token or 0)
    limit = int(self._get_param("MaxRecords") or 100)
    following = str(offset + limit) if offset + limit < len(items) else None
    return ActionResult({"AlarmHistoryItems": items[offset : offset + limit], "NextToken": following})


def install() -> None:
    """Hook evaluation into moto's CloudWatch backend and add ``DescribeAlarmHistory`` (idempotent)."""
    Alarm._failoverd_evaluated_at = None  # class default: never evaluated
    CloudWatchBackend.put_metric_data = _put_metric_data
    CloudWatchBackend.put_metric_alarm = _put_metric_alarm
    CloudWatchBackend.set_alarm_state = _set_alarm_state
    for read in _READS:
        setattr(CloudWatchBackend, read, _evaluating(getattr(CloudWatchBackend, read)))
    CloudWatchResponse.describe_alarm_history = _describe_alarm_history
