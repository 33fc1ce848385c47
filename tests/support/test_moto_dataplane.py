"""Tests of the data-plane DNS failover emulation in failoverd_moto: CloudWatch alarms that
evaluate (failoverd_moto.alarms), Route 53 CLOUDWATCH_METRIC health checks and TestDNSAnswer
(failoverd_moto.route53), and the /_failoverd/clock and /_failoverd/route53/resolve endpoints.

Run:

    .venv/bin/python -m pytest -q tests/support/test_moto_dataplane.py

The module starts one moto server on a free loopback port (the launcher and helpers of
test_failoverd_moto.py); every test resets it and freezes its alarm clock at T0, so alarm
evaluation depends only on the datapoints and the times the test sets. Nothing sleeps.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import cbor2
import pytest
from test_failoverd_moto import Moto, cbor_call, error_of

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
NAMESPACE = "failoverd/dataplane"
METRIC = "FailoverRequested"
DIMENSIONS = [{"Name": "Service", "Value": "app"}]
STANDBY = "us-west-2"
ZONE = "example.com."
APP = "app.example.com."
PRIMARY_IP, SECONDARY_IP = "192.0.2.10", "198.51.100.10"
CHECKER_REGIONS = {
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
}

_references = itertools.count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def set_clock(moto: Moto, seconds: float) -> None:
    assert moto.post("/_failoverd/clock", {"now": at(seconds).isoformat()}) == (
        200,
        {"now": at(seconds).isoformat(), "frozen": True},
    )


def get_json(moto: Moto, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(moto.endpoint + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server() -> Iterator[Moto]:
    moto = Moto()
    yield moto
    moto.stop()


@pytest.fixture
def moto(server: Moto) -> Iterator[Moto]:
    """The module's server, emptied, its alarm clock frozen at T0 (real time again afterwards)."""
    assert server.post("/moto-api/reset", {})[0] == 200
    set_clock(server, 0)
    yield server
    assert server.post("/_failoverd/clock", {"now": None})[1]["frozen"] is False


# ------------------------------------------------------------------------- helpers


def put_alarm(cloudwatch: Any, name: str, **overrides: Any) -> None:
    """An alarm on the failover metric: Maximum >= 1 over one 60-second period unless overridden
    (an override of ``None`` leaves the parameter out)."""
    params: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": NAMESPACE,
        "MetricName": METRIC,
        "Dimensions": DIMENSIONS,
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    params.update(overrides)
    cloudwatch.put_metric_alarm(**{k: v for k, v in params.items() if v is not None})


def put_value(
    cloudwatch: Any, value: float, seconds: float, dimensions: list[dict[str, str]] = DIMENSIONS
) -> None:
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {"MetricName": METRIC, "Dimensions": dimensions, "Value": value, "Timestamp": at(seconds)}
        ],
    )


def alarm(cloudwatch: Any, name: str) -> dict[str, Any]:
    [found] = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return found


def state(cloudwatch: Any, name: str) -> str:
    return str(alarm(cloudwatch, name)["StateValue"])


def alarm_check(route53: Any, name: str, region: str = STANDBY, **config: Any) -> str:
    """A CLOUDWATCH_METRIC health check on alarm ``name``; its id."""
    return str(
        route53.create_health_check(
            CallerReference=f"dataplane-{next(_references)}",
            HealthCheckConfig={
                "Type": "CLOUDWATCH_METRIC",
                "AlarmIdentifier": {"Region": region, "Name": name},
                **config,
            },
        )["HealthCheck"]["Id"]
    )


def checker_status(route53: Any, check_id: str) -> str:
    """The status every checker reports (they all agree for an alarm-based check)."""
    observations = route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
    assert {o["Region"] for o in observations} == CHECKER_REGIONS
    statuses = {o["StatusReport"]["Status"] for o in observations}
    assert len(statuses) == 1, statuses
    return statuses.pop()


def healthy(route53: Any, check_id: str) -> bool:
    status = checker_status(route53, check_id)
    assert status.startswith(("Success: ", "Failure: ")), status
    return status.startswith("Success: ")


def make_zone(route53: Any) -> str:
    return str(
        route53.create_hosted_zone(Name=ZONE, CallerReference="dataplane")["HostedZone"]["Id"].split("/")[-1]
    )


def record(name: str, value: str, **policy: Any) -> dict[str, Any]:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name,
            "Type": "A",
            "TTL": 30,
            "ResourceRecords": [{"Value": value}],
            **policy,
        },
    }


def failover_records(route53: Any, zone: str, primary: str | None, secondary: str | None = None) -> None:
    """PRIMARY and SECONDARY A records for APP with the given health checks (``None``: none)."""
    changes = []
    for role, value, check in (("PRIMARY", PRIMARY_IP, primary), ("SECONDARY", SECONDARY_IP, secondary)):
        extra = {"HealthCheckId": check} if check else {}
        changes.append(record(APP, value, SetIdentifier=role.lower(), Failover=role, **extra))
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def weighted_records(
    route53: Any, zone: str, weights: dict[str, int], checks: dict[str, str] | None = None
) -> None:
    changes = []
    for value, weight in weights.items():
        extra = {"HealthCheckId": checks[value]} if checks and value in checks else {}
        changes.append(record(APP, value, SetIdentifier=value, Weight=weight, **extra))
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def dns(route53: Any, zone: str, name: str = APP, rtype: str = "A") -> tuple[str, list[str]]:
    answer = route53.test_dns_answer(HostedZoneId=zone, RecordName=name, RecordType=rtype)
    assert answer["Protocol"] == "UDP" and answer["Nameserver"].startswith("ns-")
    assert (answer["RecordName"], answer["RecordType"]) == (name, rtype)
    return answer["ResponseCode"], answer["RecordData"]


def resolve(
    moto: Moto, zone: str, samples: int, name: str = APP, rtype: str = "A", seed: int = 0
) -> dict[str, Any]:
    query = urllib.parse.urlencode(
        {"zone": zone, "name": name, "type": rtype, "samples": samples, "seed": seed}
    )
    status, body = get_json(moto, f"/_failoverd/route53/resolve?{query}")
    assert status == 200, body
    return dict(body)


# ------------------------------------------------------------------------- alarms


def test_alarm_follows_put_metric_data(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(cw, "failover", Period=10)
    created = alarm(cw, "failover")
    assert (created["StateValue"], created["StateReason"]) == ("OK", "Unchecked: Initial alarm creation")
    assert created["StateUpdatedTimestamp"] == T0

    set_clock(moto, 5)
    put_value(cw, 1.0, 5, dimensions=[])  # another metric (no dimensions): no effect
    put_value(cw, 1.0, 5, dimensions=[*DIMENSIONS, {"Name": "Extra", "Value": "x"}])
    assert state(cw, "failover") == "OK"
    put_value(cw, 1.0, 5)
    fired = alarm(cw, "failover")
    assert fired["StateValue"] == "ALARM"
    assert fired["StateUpdatedTimestamp"] == at(5)
    assert fired["StateReason"] == (
        "Threshold Crossed: 1 out of the last 1 datapoints [1.0 (28/11/26 11:59:55)] was greater than or "
        "equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    data = json.loads(fired["StateReasonData"])
    assert (data["statistic"], data["period"], data["threshold"], data["recentDatapoints"]) == (
        "Maximum",
        10,
        1.0,
        [1.0],
    )
    assert data["queryDate"] == "2026-11-28T12:00:05.000+0000"
    assert [s["AlarmName"] for s in cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]] == ["failover"]

    set_clock(moto, 16)  # the 1.0 at T0+5 is out of the window (T0+6, T0+16]
    put_value(cw, 0.0, 16)
    recovered = alarm(cw, "failover")
    assert (recovered["StateValue"], recovered["StateUpdatedTimestamp"]) == ("OK", at(16))
    assert recovered["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [0.0 ")
    assert "was not greater than or equal to the threshold (1.0)" in recovered["StateReason"]

    history = cw.describe_alarm_history(AlarmName="failover")["AlarmHistoryItems"]
    assert [(h["HistorySummary"], h["Timestamp"], h["HistoryItemType"]) for h in history] == [
        ("Alarm updated from ALARM to OK", at(16), "StateUpdate"),
        ("Alarm updated from OK to ALARM", at(5), "StateUpdate"),
    ]
    newest = json.loads(history[0]["HistoryData"])
    assert newest["oldState"]["stateValue"] == "ALARM" and newest["newState"]["stateValue"] == "OK"
    assert newest["newState"]["stateReasonData"]["recentDatapoints"] == [0.0]
    oldest_first = cw.describe_alarm_history(AlarmName="failover", ScanBy="TimestampAscending", MaxRecords=1)
    assert [h["Timestamp"] for h in oldest_first["AlarmHistoryItems"]] == [at(5)]
    rest = cw.describe_alarm_history(
        AlarmName="failover", ScanBy="TimestampAscending", NextToken=oldest_first["NextToken"]
    )
    assert [h["Timestamp"] for h in rest["AlarmHistoryItems"]] == [at(16)] and "NextToken" not in rest
    assert error_of(lambda: cw.describe_alarm_history(NextToken="junk")) == ("InvalidNextToken", 400)

    # re-putting the alarm keeps its state and history (moto alone would reset both)
    set_clock(moto, 20)
    put_value(cw, 3.0, 20)
    put_alarm(cw, "failover", Period=10, AlarmDescription="updated")
    updated = alarm(cw, "failover")
    assert (updated["StateValue"], updated["AlarmDescription"]) == ("ALARM", "updated")
    assert len(cw.describe_alarm_history(AlarmName="failover")["AlarmHistoryItems"]) == 3


def test_alarm_evaluates_through_rpc_v2_cbor(moto: Moto) -> None:
    """The Rust SDK's protocol: the alarm evaluates on a CBOR PutMetricData and a CBOR read."""
    alarm_body = {
        "AlarmName": "cbor",
        "Namespace": NAMESPACE,
        "MetricName": METRIC,
        "Dimensions": DIMENSIONS,
        "Statistic": "Sum",
        "Period": 30,
        "EvaluationPeriods": 1,
        "Threshold": 2.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    status, _, body = cbor_call(moto, "PutMetricAlarm", cbor2.dumps(alarm_body))
    assert (status, cbor2.loads(body)) == (200, {})
    set_clock(moto, 30)
    put = {
        "Namespace": NAMESPACE,
        "MetricData": [
            {
                "MetricName": METRIC,
                "Dimensions": DIMENSIONS,
                "Value": 2.0,
                "Timestamp": cbor2.CBORTag(1, at(s).timestamp()),
            }
            for s in (10, 20)
        ],
    }
    status, _, body = cbor_call(moto, "PutMetricData", cbor2.dumps(put))
    assert (status, cbor2.loads(body)) == (200, {})
    status, _, body = cbor_call(moto, "DescribeAlarms", cbor2.dumps({"AlarmNames": ["cbor"]}))
    assert status == 200
    [described] = cbor2.loads(body)["MetricAlarms"]
    assert described["StateValue"] == "ALARM"  # Sum 4.0 > 2.0
    assert described["StateUpdatedTimestamp"] == at(30)
    assert state(moto.client("cloudwatch", STANDBY), "cbor") == "ALARM"  # the same alarm over JSON
    status, _, body = cbor_call(moto, "DescribeAlarmHistory", cbor2.dumps({"AlarmName": "cbor"}))
    assert status == 200
    assert [h["HistorySummary"] for h in cbor2.loads(body)["AlarmHistoryItems"]] == [
        "Alarm updated from OK to ALARM"
    ]

    # a read after the window moved on re-evaluates it: no data in (T0+40, T0+70]
    set_clock(moto, 70)
    status, _, body = cbor_call(moto, "DescribeAlarms", b"")
    assert cbor2.loads(body)["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"


def test_treat_missing_data(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    for treat in ("missing", "ignore", "breaching", "notBreaching"):
        put_alarm(cw, treat, Period=10, EvaluationPeriods=2, DatapointsToAlarm=1, TreatMissingData=treat)
    set_clock(moto, 1)
    put_value(cw, 5.0, 1)
    assert {t: state(cw, t) for t in ("missing", "ignore", "breaching", "notBreaching")} == dict.fromkeys(
        ("missing", "ignore", "breaching", "notBreaching"), "ALARM"
    )
    set_clock(moto, 25)  # nothing in (T0+5, T0+25]
    assert {t: state(cw, t) for t in ("missing", "ignore", "breaching", "notBreaching")} == {
        "missing": "INSUFFICIENT_DATA",
        "ignore": "ALARM",
        "breaching": "ALARM",
        "notBreaching": "OK",
    }
    assert alarm(cw, "missing")["StateReason"] == "Insufficient Data: 2 datapoints were unknown."
    # ignore keeps any state, and data moves it again
    put_value(cw, 0.0, 25)
    assert (state(cw, "ignore"), state(cw, "missing")) == ("OK", "OK")
    set_clock(moto, 60)
    assert (state(cw, "ignore"), state(cw, "missing")) == ("OK", "INSUFFICIENT_DATA")


def test_datapoints_to_alarm_m_out_of_n(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(
        cw,
        "two-of-three",
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
        Threshold=2.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    set_clock(moto, 30)
    # periods (T0, T0+10], (T0+10, T0+20], (T0+20, T0+30]: sums 5, 1, 1 -> one breaching of three
    for value, seconds in ((5.0, 5), (1.0, 15), (1.0, 25)):
        put_value(cw, value, seconds)
    assert state(cw, "two-of-three") == "OK"
    put_value(cw, 3.0, 28)  # newest period sums to 4: two of three
    fired = alarm(cw, "two-of-three")
    assert fired["StateValue"] == "ALARM"
    assert fired["StateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints [4.0 ")
    assert "(minimum 2 datapoints for OK -> ALARM transition)" in fired["StateReason"]
    # without DatapointsToAlarm it is 3 of 3: two breaching periods (5 and 4) are not enough
    put_alarm(
        cw,
        "three-of-three",
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=3,
        Threshold=2.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    put_value(cw, 0.0, 30)
    assert alarm(cw, "three-of-three")["StateReason"] == "Unchecked: Initial alarm creation"  # still OK
    put_value(cw, 2.0, 15)  # the middle period sums to 3 now
    assert (state(cw, "three-of-three"), state(cw, "two-of-three")) == ("ALARM", "ALARM")


def test_extended_statistic_percentile(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    for name, threshold in (("p90-high", 9.5), ("p90-low", 8.5)):
        put_alarm(
            cw,
            name,
            Statistic=None,
            ExtendedStatistic="p90",
            Threshold=threshold,
            ComparisonOperator="GreaterThanThreshold",
        )
    cw.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {"MetricName": METRIC, "Dimensions": DIMENSIONS, "Values": [float(v) for v in range(1, 11)]}
        ],
    )
    assert (state(cw, "p90-high"), state(cw, "p90-low")) == ("OK", "ALARM")  # p90 of 1..10 is 9


def test_set_alarm_state_holds_until_the_next_evaluation(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(cw, "manual", TreatMissingData="notBreaching")
    set_clock(moto, 1)
    cw.set_alarm_state(AlarmName="manual", StateValue="ALARM", StateReason="drill")
    held = alarm(cw, "manual")
    assert (held["StateValue"], held["StateReason"], held["StateUpdatedTimestamp"]) == (
        "ALARM",
        "drill",
        at(1),
    )
    set_clock(moto, 60)  # 59 s later: no evaluation due yet (standard alarms evaluate every minute)
    assert state(cw, "manual") == "ALARM"
    set_clock(moto, 61)  # due: no data is not breaching
    assert state(cw, "manual") == "OK"

    cw.set_alarm_state(AlarmName="manual", StateValue="ALARM", StateReason="drill again")
    assert state(cw, "manual") == "ALARM"
    put_value(cw, 0.0, 61)  # data for its metric evaluates it at once
    assert state(cw, "manual") == "OK"
    summaries = [
        h["HistorySummary"] for h in cw.describe_alarm_history(AlarmName="manual")["AlarmHistoryItems"]
    ]
    assert summaries == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK",
        "Alarm updated from OK to ALARM",
    ]


# ------------------------------------------------------------------------- route 53 health checks


def test_cloudwatch_metric_health_check_shape_and_errors(moto: Moto) -> None:
    put_alarm(moto.client("cloudwatch", STANDBY), "failover")
    put_alarm(moto.client("cloudwatch", STANDBY), "fast", Period=10)
    r53 = moto.client("route53")
    check_id = r53.create_health_check(
        CallerReference="shape",
        HealthCheckConfig={
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": STANDBY, "Name": "failover"},
            "InsufficientDataHealthStatus": "Healthy",
        },
    )["HealthCheck"]["Id"]
    expected = {
        "Id": check_id,
        "CallerReference": "shape",
        "HealthCheckConfig": {
            "Type": "CLOUDWATCH_METRIC",
            "Inverted": False,
            "Disabled": False,
            "AlarmIdentifier": {"Region": STANDBY, "Name": "failover"},
            "InsufficientDataHealthStatus": "Healthy",
        },
        "HealthCheckVersion": 1,
        "CloudWatchAlarmConfiguration": {
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Period": 60,
            "MetricName": METRIC,
            "Namespace": NAMESPACE,
            "Statistic": "Maximum",
            "Dimensions": DIMENSIONS,
        },
    }
    assert r53.get_health_check(HealthCheckId=check_id)["HealthCheck"] == expected
    assert r53.list_health_checks()["HealthChecks"] == [expected]

    http = {"Type": "HTTPS", "FullyQualifiedDomainName": "app.example.com", "Port": 443, "ResourcePath": "/"}
    assert error_of(
        lambda: r53.create_health_check(
            CallerReference="basic",
            HealthCheckConfig={**http, "AlarmIdentifier": {"Region": STANDBY, "Name": "failover"}},
        )
    ) == ("InvalidInput", 400)
    for config in (
        {"Type": "CLOUDWATCH_METRIC"},
        {"Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": "mars-1", "Name": "failover"}},
        {
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": STANDBY, "Name": "fast"},
        },  # high resolution
        {
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": STANDBY, "Name": "failover"},
            "InsufficientDataHealthStatus": "Maybe",
        },
    ):
        assert error_of(lambda: r53.create_health_check(CallerReference="bad", HealthCheckConfig=config)) == (
            "InvalidInput",
            400,
        ), config
    # an alarm that does not exist yet is accepted (its configuration is not reported)
    later = alarm_check(r53, "not-yet")
    assert "CloudWatchAlarmConfiguration" not in r53.get_health_check(HealthCheckId=later)["HealthCheck"]

    # other types keep moto's shape and status
    https = r53.create_health_check(CallerReference="https", HealthCheckConfig=http)["HealthCheck"]
    assert https["HealthCheckConfig"]["Port"] == 443 and "AlarmIdentifier" not in https["HealthCheckConfig"]
    [observation] = r53.get_health_check_status(HealthCheckId=https["Id"])["HealthCheckObservations"]
    assert observation["StatusReport"]["Status"].startswith("Success: HTTP Status Code: 200")


def test_health_check_status_follows_the_standby_alarm(moto: Moto) -> None:
    standby = moto.client("cloudwatch", STANDBY)
    put_alarm(standby, "failover")
    # an alarm of the same name in another region must not matter
    put_alarm(moto.client("cloudwatch", "us-east-1"), "failover")
    moto.client("cloudwatch", "us-east-1").set_alarm_state(
        AlarmName="failover", StateValue="ALARM", StateReason="x"
    )
    r53 = moto.client("route53")  # Route 53 is global
    check_id = alarm_check(r53, "failover")

    set_clock(moto, 10)
    put_value(standby, 0.0, 10)
    observations = r53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
    assert len(observations) == 8 and len({o["IPAddress"] for o in observations}) == 8
    assert {o["StatusReport"]["CheckedTime"] for o in observations} == {at(10)}
    assert (
        checker_status(r53, check_id) == "Success: CloudWatch alarm failover in us-west-2 is in the OK state."
    )

    set_clock(moto, 20)
    put_value(standby, 1.0, 20)  # failoverd's move: one PutMetricData in the standby region
    assert (
        checker_status(r53, check_id)
        == "Failure: CloudWatch alarm failover in us-west-2 is in the ALARM state."
    )
    set_clock(moto, 90)
    put_value(standby, 0.0, 90)
    assert healthy(r53, check_id)


def test_inverted_and_insufficient_data_health_status(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(cw, "failover")
    put_alarm(cw, "other", TreatMissingData="notBreaching")
    r53 = moto.client("route53")
    checks = {
        "healthy": alarm_check(r53, "failover", InsufficientDataHealthStatus="Healthy"),
        "unhealthy": alarm_check(r53, "failover", InsufficientDataHealthStatus="Unhealthy"),
        "last": alarm_check(r53, "failover", InsufficientDataHealthStatus="LastKnownStatus"),
        "inverted": alarm_check(
            r53, "failover", InsufficientDataHealthStatus="LastKnownStatus", Inverted=True
        ),
    }

    def health() -> dict[str, bool]:
        return {name: healthy(r53, check) for name, check in checks.items()}

    set_clock(moto, 10)
    put_value(cw, 1.0, 10)
    assert health() == {"healthy": False, "unhealthy": False, "last": False, "inverted": True}
    set_clock(moto, 200)  # no data for a while: INSUFFICIENT_DATA, last known state ALARM
    assert state(cw, "failover") == "INSUFFICIENT_DATA"
    assert health() == {"healthy": True, "unhealthy": False, "last": False, "inverted": True}
    assert checker_status(r53, checks["last"]) == (
        "Failure: CloudWatch alarm failover in us-west-2 has insufficient data "
        "(InsufficientDataHealthStatus LastKnownStatus, last known state ALARM)."
    )
    put_value(cw, 0.0, 200)
    set_clock(moto, 400)  # insufficient again, now after OK
    assert health() == {"healthy": True, "unhealthy": False, "last": True, "inverted": False}
    assert checker_status(r53, checks["inverted"]).endswith("; the health check is inverted.")

    # UpdateHealthCheck: Inverted, InsufficientDataHealthStatus, AlarmIdentifier
    r53.update_health_check(HealthCheckId=checks["inverted"], Inverted=False)
    r53.update_health_check(HealthCheckId=checks["last"], InsufficientDataHealthStatus="Unhealthy")
    r53.update_health_check(
        HealthCheckId=checks["unhealthy"], AlarmIdentifier={"Region": STANDBY, "Name": "other"}
    )
    assert health() == {"healthy": True, "unhealthy": True, "last": False, "inverted": True}
    config = r53.get_health_check(HealthCheckId=checks["unhealthy"])["HealthCheck"]["HealthCheckConfig"]
    assert config["AlarmIdentifier"] == {"Region": STANDBY, "Name": "other"}
    assert config["InsufficientDataHealthStatus"] == "Unhealthy"
    assert error_of(
        lambda: r53.update_health_check(HealthCheckId=checks["last"], InsufficientDataHealthStatus="Maybe")
    ) == ("InvalidInput", 400)
    # a disabled check is healthy; inverting it is how to stop traffic (AWS's advice)
    r53.update_health_check(HealthCheckId=checks["last"], Disabled=True)
    assert checker_status(r53, checks["last"]) == "Success: The health check is disabled."
    r53.update_health_check(HealthCheckId=checks["last"], Inverted=True)
    assert not healthy(r53, checks["last"])


# ------------------------------------------------------------------------- TestDNSAnswer


def test_failover_answer_follows_the_alarm(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(cw, "failover")
    r53 = moto.client("route53")
    zone = make_zone(r53)
    check_id = alarm_check(r53, "failover")
    failover_records(r53, zone, primary=check_id)
    assert dns(r53, zone) == ("NOERROR", [PRIMARY_IP])

    set_clock(moto, 10)
    put_value(cw, 1.0, 10)  # no Route 53 call: traffic moves through the health check
    assert dns(r53, zone) == ("NOERROR", [SECONDARY_IP])
    assert resolve(moto, zone, 10) == {"answers": {SECONDARY_IP: 10}, "health": {check_id: False}}

    set_clock(moto, 80)
    put_value(cw, 0.0, 80)
    assert dns(r53, zone) == ("NOERROR", [PRIMARY_IP])

    # both unhealthy: Route 53 answers the primary
    put_alarm(cw, "standby-broken", MetricName="StandbyBroken", TreatMissingData="breaching")
    assert state(cw, "standby-broken") == "OK"  # not evaluated yet: due a minute after creation
    set_clock(moto, 140)
    secondary_check = alarm_check(r53, "standby-broken")
    failover_records(r53, zone, primary=check_id, secondary=secondary_check)
    put_value(cw, 1.0, 140)
    assert resolve(moto, zone, 1)["health"] == {check_id: False, secondary_check: False}
    assert dns(r53, zone) == ("NOERROR", [PRIMARY_IP])


def test_dns_answer_codes_simple_records_and_aliases(moto: Moto) -> None:
    r53 = moto.client("route53")
    zone = make_zone(r53)
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                record("www.example.com.", "203.0.113.7"),
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "api.example.com.",
                        "Type": "CNAME",
                        "TTL": 30,
                        "ResourceRecords": [{"Value": "www.example.com"}],
                    },
                },
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "alias.example.com.",
                        "Type": "A",
                        "AliasTarget": {
                            "HostedZoneId": zone,
                            "DNSName": "www.example.com.",
                            "EvaluateTargetHealth": False,
                        },
                    },
                },
            ]
        },
    )
    assert dns(r53, zone, "www.example.com") == ("NOERROR", ["203.0.113.7"])
    assert dns(r53, zone, "WWW.example.com.") == ("NOERROR", ["203.0.113.7"])
    assert dns(r53, zone, "www.example.com.", "AAAA") == ("NOERROR", [])
    assert dns(r53, zone, "nope.example.com.") == ("NXDOMAIN", [])
    assert dns(r53, zone, "api.example.com.") == ("NOERROR", ["www.example.com"])  # the CNAME
    assert dns(r53, zone, "alias.example.com.") == ("NOERROR", ["203.0.113.7"])
    assert error_of(
        lambda: r53.test_dns_answer(HostedZoneId="ZNOPE", RecordName="www.example.com", RecordType="A")
    ) == ("NoSuchHostedZone", 404)
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [record("geo.example.com.", "192.0.2.1", SetIdentifier="eu", Region="eu-west-1")]
        },
    )
    assert error_of(
        lambda: r53.test_dns_answer(HostedZoneId=zone, RecordName="geo.example.com", RecordType="A")
    ) == (
        "InvalidInput",
        400,
    )


def test_weighted_answers(moto: Moto) -> None:
    r53 = moto.client("route53")
    zone = make_zone(r53)
    weighted_records(r53, zone, {PRIMARY_IP: 90, SECONDARY_IP: 10})
    answers = Counter(value for _ in range(200) for value in dns(r53, zone)[1])
    assert sum(answers.values()) == 200 and 160 <= answers[PRIMARY_IP] <= 195, answers

    weighted_records(r53, zone, {PRIMARY_IP: 0, SECONDARY_IP: 100})
    assert Counter(value for _ in range(50) for value in dns(r53, zone)[1]) == {SECONDARY_IP: 50}

    # all zero: equal chances
    weighted_records(r53, zone, {PRIMARY_IP: 0, SECONDARY_IP: 0})
    even = resolve(moto, zone, 1000)["answers"]
    assert set(even) == {PRIMARY_IP, SECONDARY_IP} and 400 <= even[PRIMARY_IP] <= 600, even


def test_weighted_answers_skip_unhealthy_records(moto: Moto) -> None:
    cw = moto.client("cloudwatch", STANDBY)
    put_alarm(cw, "primary-down")
    put_alarm(cw, "secondary-down")
    r53 = moto.client("route53")
    zone = make_zone(r53)
    checks = {PRIMARY_IP: alarm_check(r53, "primary-down"), SECONDARY_IP: alarm_check(r53, "secondary-down")}
    weighted_records(r53, zone, {PRIMARY_IP: 90, SECONDARY_IP: 10}, checks)
    set_clock(moto, 10)
    put_value(cw, 1.0, 10)  # both alarms watch the same metric: both unhealthy -> all count as healthy
    assert resolve(moto, zone, 1)["health"] == {checks[PRIMARY_IP]: False, checks[SECONDARY_IP]: False}
    both_down = resolve(moto, zone, 1000)["answers"]
    assert 850 <= both_down[PRIMARY_IP] <= 950, both_down
    cw.put_metric_alarm(
        AlarmName="secondary-down",
        Namespace=NAMESPACE,
        MetricName="SecondaryDown",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    set_clock(moto, 70)  # the updated alarm evaluates at the next read: OK
    assert resolve(moto, zone, 100) == {
        "answers": {SECONDARY_IP: 100},
        "health": {checks[PRIMARY_IP]: False, checks[SECONDARY_IP]: True},
    }
    assert dns(r53, zone) == ("NOERROR", [SECONDARY_IP])
    # a healthy zero-weight record is used when every weighted one is unhealthy
    weighted_records(r53, zone, {PRIMARY_IP: 100, SECONDARY_IP: 0}, checks)
    assert resolve(moto, zone, 20)["answers"] == {SECONDARY_IP: 20}


# ------------------------------------------------------------------------- admin endpoints


def test_resolve_endpoint(moto: Moto) -> None:
    r53 = moto.client("route53")
    zone = make_zone(r53)
    weighted_records(r53, zone, {PRIMARY_IP: 90, SECONDARY_IP: 10})
    first = resolve(moto, zone, 1000, seed=7)
    assert first == resolve(moto, zone, 1000, seed=7)  # deterministic per seed
    assert set(first) == {"answers", "health"} and first["health"] == {}
    assert sum(first["answers"].values()) == 1000 and 850 <= first["answers"][PRIMARY_IP] <= 950
    assert resolve(moto, zone, 3, name="nope.example.com.") == {"answers": {}, "health": {}}

    status, body = get_json(moto, "/_failoverd/route53/resolve?zone=ZNOPE&name=x.example.com&type=A")
    assert status == 404 and "ZNOPE" in body["error"]
    for query in (
        f"zone={zone}&type=A",
        f"zone={zone}&name={APP}&type=A&samples=0",
        f"zone={zone}&name={APP}&type=A&samples=x",
    ):
        status, body = get_json(moto, f"/_failoverd/route53/resolve?{query}")
        assert status == 400 and body["error"], query


def test_clock_endpoint(moto: Moto) -> None:
    status, body = get_json(moto, "/_failoverd/clock")
    assert (status, body) == (200, {"now": T0.isoformat(), "frozen": True})
    assert moto.post("/_failoverd/clock", {"now": "2026-11-28T13:00:00"}) == (
        200,
        {"now": "2026-11-28T13:00:00+00:00", "frozen": True},
    )
    assert moto.post("/_failoverd/clock", {"now": T0.timestamp()})[1]["now"] == T0.isoformat()
    for bad in ({"now": "yesterday"}, {"then": 1}, [1], {"now": True}):
        status, body = moto.post("/_failoverd/clock", bad)
        assert status == 400 and body["error"], bad
    status, body = moto.post("/_failoverd/clock", {"now": None})
    assert status == 200 and body["frozen"] is False
    assert abs(datetime.fromisoformat(body["now"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)
