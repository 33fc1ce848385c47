"""Tests of the moto launcher, the failoverd_moto extension and lab_world.py.

Run (after tests/support/setup.sh):

    .venv/bin/python -m pytest -q tests/support

Each test module run starts its own moto servers on free loopback ports and stops them.
"""

from __future__ import annotations

import gzip
import json
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.model
import cbor2
import pytest
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"


class Moto:
    """A moto_server.py child process."""

    def __init__(self, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "moto_server.py"), "--port", "0", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.ready_line = self.proc.stdout.readline().rstrip("\n")
        assert self.ready_line.startswith("MOTO_READY port="), self.ready_line
        self.port = int(self.ready_line.split("=", 1)[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Moto]:
    moto = Moto()
    yield moto
    moto.stop()


@pytest.fixture
def moto(server: Moto) -> Moto:
    """The module's server, emptied: every backend reset, transition delay back to 0."""
    assert server.post("/moto-api/reset", {})[0] == 200
    assert server.post("/_failoverd/rds/settings", {"transition_seconds": 0})[0] == 200
    return server


def error_of(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ------------------------------------------------------------------------- launcher


def test_ready_line_and_exit_on_stdin_eof() -> None:
    moto = Moto()
    assert moto.ready_line == f"MOTO_READY port={moto.port}"
    assert moto.client("sts").get_caller_identity()["Account"] == ACCOUNT
    assert moto.proc.stdin is not None
    moto.proc.stdin.close()
    assert moto.proc.wait(timeout=10) == 0
    assert moto.proc.stdout is not None and moto.proc.stdout.read() == ""  # one line, nothing else


def test_exit_on_sigterm() -> None:
    moto = Moto()
    moto.proc.send_signal(signal.SIGTERM)
    try:
        assert moto.proc.wait(timeout=10) == 0
    finally:
        moto.stop()


# ------------------------------------------------------------------------- rds


def make_global(moto: Moto, *, members: int = 2) -> dict[str, str]:
    """lab-style global cluster: writer 'hot' in us-east-1, secondary 'cold' in us-west-2."""
    east, west = moto.client("rds", "us-east-1"), moto.client("rds", "us-west-2")
    hot = east.create_db_cluster(
        DBClusterIdentifier="hot",
        Engine="aurora-postgresql",
        MasterUsername="u",
        MasterUserPassword="password1",
    )["DBCluster"]["DBClusterArn"]
    east.create_db_instance(
        DBInstanceIdentifier="hot-1",
        DBClusterIdentifier="hot",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    east.create_global_cluster(GlobalClusterIdentifier="g", SourceDBClusterIdentifier=hot)
    arns = {"hot": hot}
    if members > 1:
        arns["cold"] = west.create_db_cluster(
            DBClusterIdentifier="cold", Engine="aurora-postgresql", GlobalClusterIdentifier="g"
        )["DBCluster"]["DBClusterArn"]
        west.create_db_instance(
            DBInstanceIdentifier="cold-1",
            DBClusterIdentifier="cold",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
    return arns


def writers(moto: Moto) -> dict[str, bool]:
    members = moto.client("rds").describe_global_clusters(GlobalClusterIdentifier="g")["GlobalClusters"][0][
        "GlobalClusterMembers"
    ]
    return {m["DBClusterArn"].rsplit(":", 1)[1]: m["IsWriter"] for m in members}


def instance_writer(moto: Moto, region: str, cluster: str) -> bool:
    found = moto.client("rds", region).describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
    return any(m["IsClusterWriter"] for m in found["DBClusterMembers"])


def test_switchover_moves_the_writer(moto: Moto) -> None:
    arns = make_global(moto)
    assert writers(moto) == {"hot": True, "cold": False}
    assert instance_writer(moto, "us-east-1", "hot") and not instance_writer(moto, "us-west-2", "cold")

    result = moto.client("rds", "us-west-2").switchover_global_cluster(
        GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"]
    )["GlobalCluster"]
    assert result["GlobalClusterIdentifier"] == "g"
    assert writers(moto) == {"hot": False, "cold": True}
    assert not instance_writer(moto, "us-east-1", "hot") and instance_writer(moto, "us-west-2", "cold")

    moto.client("rds").switchover_global_cluster(
        GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["hot"]
    )
    assert writers(moto) == {"hot": True, "cold": False}


def test_failover_with_data_loss(moto: Moto) -> None:
    arns = make_global(moto)
    rds = moto.client("rds", "us-west-2")
    assert error_of(
        lambda: rds.failover_global_cluster(
            GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"]
        )
    ) == ("InvalidParameterCombination", 400)
    rds.failover_global_cluster(
        GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"], AllowDataLoss=True
    )
    assert writers(moto) == {"hot": False, "cold": True}
    rds.failover_global_cluster(
        GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["hot"], Switchover=True
    )
    assert writers(moto) == {"hot": True, "cold": False}


def test_global_cluster_errors(moto: Moto) -> None:
    arns = make_global(moto)
    rds = moto.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="loner",
        Engine="aurora-postgresql",
        MasterUsername="u",
        MasterUserPassword="password1",
    )
    loner = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:loner"
    assert error_of(
        lambda: rds.switchover_global_cluster(
            GlobalClusterIdentifier="nope", TargetDbClusterIdentifier=arns["cold"]
        )
    ) == ("GlobalClusterNotFoundFault", 404)
    assert error_of(
        lambda: rds.switchover_global_cluster(
            GlobalClusterIdentifier="g",
            TargetDbClusterIdentifier=f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:gone",
        )
    ) == ("DBClusterNotFoundFault", 404)
    assert error_of(
        lambda: rds.switchover_global_cluster(GlobalClusterIdentifier="g", TargetDbClusterIdentifier=loner)
    ) == ("InvalidGlobalClusterStateFault", 400)
    assert error_of(
        lambda: rds.failover_global_cluster(
            GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["hot"], AllowDataLoss=True
        )
    ) == ("InvalidGlobalClusterStateFault", 400)
    assert error_of(lambda: rds.describe_global_clusters(GlobalClusterIdentifier="nope")) == (
        "GlobalClusterNotFoundFault",
        404,
    )
    assert writers(moto) == {"hot": True, "cold": False}


def test_switchover_in_progress_for_the_transition_delay(moto: Moto) -> None:
    arns = make_global(moto)
    assert moto.post("/_failoverd/rds/settings", {"transition_seconds": 1.0}) == (
        200,
        {"transition_seconds": 1.0},
    )
    rds = moto.client("rds", "us-west-2")
    started = rds.switchover_global_cluster(
        GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"]
    )
    cluster = started["GlobalCluster"]
    assert cluster["Status"] == "switching-over"
    assert cluster["FailoverState"] == {
        "Status": "failing-over",
        "FromDbClusterArn": arns["hot"],
        "ToDbClusterArn": arns["cold"],
        "IsDataLossAllowed": False,
    }
    assert writers(moto) == {"hot": True, "cold": False}  # not yet
    assert error_of(
        lambda: rds.switchover_global_cluster(
            GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"]
        )
    ) == ("InvalidGlobalClusterStateFault", 400)

    deadline = time.monotonic() + 30
    while (
        rds.describe_global_clusters(GlobalClusterIdentifier="g")["GlobalClusters"][0]["Status"]
        != "available"
    ):
        assert time.monotonic() < deadline, "switchover never completed"
        time.sleep(0.1)
    final = rds.describe_global_clusters(GlobalClusterIdentifier="g")["GlobalClusters"][0]
    assert "FailoverState" not in final
    assert writers(moto) == {"hot": False, "cold": True}


def test_remove_from_global_cluster_across_regions(moto: Moto) -> None:
    arns = make_global(moto)
    west = moto.client("rds", "us-west-2")
    removed = west.remove_from_global_cluster(GlobalClusterIdentifier="g", DbClusterIdentifier=arns["cold"])
    cluster = removed["GlobalCluster"]
    assert cluster["GlobalClusterIdentifier"] == "g"
    assert [m["DBClusterArn"] for m in cluster["GlobalClusterMembers"]] == [arns["hot"]]
    assert writers(moto) == {"hot": True}
    assert (
        moto.client("rds", "us-west-2").describe_global_clusters(GlobalClusterIdentifier="g")[
            "GlobalClusters"
        ][0]["GlobalClusterMembers"]
        == cluster["GlobalClusterMembers"]
    )
    # standalone now: no global cluster, and a writer instance of its own
    cold = west.describe_db_clusters(DBClusterIdentifier="cold")["DBClusters"][0]
    assert "GlobalClusterIdentifier" not in cold
    assert instance_writer(moto, "us-west-2", "cold") and instance_writer(moto, "us-east-1", "hot")

    # again: AWS's answer for a member that is already detached
    code, status = error_of(
        lambda: west.remove_from_global_cluster(GlobalClusterIdentifier="g", DbClusterIdentifier=arns["cold"])
    )
    assert (code, status) == ("InvalidParameterValue", 400)
    # the last member (the writer) can go too; an identifier works as well as an ARN
    east = moto.client("rds", "us-east-1")
    east.remove_from_global_cluster(GlobalClusterIdentifier="g", DbClusterIdentifier="hot")
    assert writers(moto) == {}
    east.delete_global_cluster(GlobalClusterIdentifier="g")


def test_remove_from_global_cluster_errors(moto: Moto) -> None:
    arns = make_global(moto)
    west = moto.client("rds", "us-west-2")
    assert error_of(
        lambda: west.remove_from_global_cluster(
            GlobalClusterIdentifier="nope", DbClusterIdentifier=arns["cold"]
        )
    ) == ("GlobalClusterNotFoundFault", 404)
    assert error_of(
        lambda: west.remove_from_global_cluster(
            GlobalClusterIdentifier="g", DbClusterIdentifier=f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:gone"
        )
    ) == ("DBClusterNotFoundFault", 404)
    # the primary cannot leave while a secondary remains
    assert error_of(
        lambda: west.remove_from_global_cluster(GlobalClusterIdentifier="g", DbClusterIdentifier=arns["hot"])
    ) == ("InvalidGlobalClusterStateFault", 400)
    # nor anyone while a switchover is in progress
    moto.post("/_failoverd/rds/settings", {"transition_seconds": 30})
    west.switchover_global_cluster(GlobalClusterIdentifier="g", TargetDbClusterIdentifier=arns["cold"])
    assert error_of(
        lambda: west.remove_from_global_cluster(GlobalClusterIdentifier="g", DbClusterIdentifier=arns["cold"])
    ) == ("InvalidGlobalClusterStateFault", 400)
    assert writers(moto) == {"hot": True, "cold": False}


# ------------------------------------------------------------------------- cloudwatch (RPC v2 CBOR)

CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/"

#: A GetMetricData request body exactly as the AWS SDK for Rust (aws-sdk-cloudwatch 1.140.0, the
#: one in Cargo.lock) sent it from failoverd to moto, captured by a logging proxy: indefinite-length
#: maps, StartTime/EndTime as tag 1 doubles (2026-11-28T14:12:37.773962Z .. 14:44:37.773962Z).
RUST_SDK_GET_METRIC_DATA = bytes.fromhex(
    "bf714d6574726963446174615175657269657381bf624964636c61676a4d657472696353746174bf664d6574"
    "726963bf694e616d657370616365674157532f5244536a4d65747269634e616d65781c4175726f7261476c6f"
    "62616c44425265706c69636174696f6e4c61676a44696d656e73696f6e7381bf644e616d65734442436c7573"
    "7465724964656e7469666965726556616c7565686c61622d636f6c64ffff66506572696f64183c6453746174"
    "674d6178696d756dff6a52657475726e44617461f5ff69537461727454696d65c1fb41dac2b8557188976745"
    "6e6454696d65c1fb41dac2ba35718897665363616e42797254696d657374616d70417363656e64696e67ff"
)


#: More requests of the Rust SDK, captured the same way from a throwaway aws-sdk-cloudwatch client
#: (Credentials "testing", region us-west-2): four AuroraGlobalDBReplicationLag points for
#: app-cold at 2026-11-28T14:49..14:52Z (120, 250, 80, 3 ms), the alarm api-5xx (Sum of app/5xx by
#: Api=public over 60 s, 2 periods, > 5.0), its state set to ALARM, and DescribeAlarms of it.
RUST_SDK_REQUESTS = {
    "PutMetricData": bytes.fromhex(
        "bf694e616d657370616365674157532f5244536a4d65747269634461746184bf6a4d65747269634e616d6578"
        "1c4175726f7261476c6f62616c44425265706c69636174696f6e4c61676a44696d656e73696f6e7381bf644e"
        "616d65734442436c75737465724964656e7469666965726556616c7565686170702d636f6c64ff6954696d65"
        "7374616d70c1fb41dac2ba770000006556616c7565fb405e00000000000064556e69746c4d696c6c69736563"
        "6f6e6473ffbf6a4d65747269634e616d65781c4175726f7261476c6f62616c44425265706c69636174696f6e"
        "4c61676a44696d656e73696f6e7381bf644e616d65734442436c75737465724964656e746966696572655661"
        "6c7565686170702d636f6c64ff6954696d657374616d70c1fb41dac2ba860000006556616c7565fb406f4000"
        "0000000064556e69746c4d696c6c697365636f6e6473ffbf6a4d65747269634e616d65781c4175726f726147"
        "6c6f62616c44425265706c69636174696f6e4c61676a44696d656e73696f6e7381bf644e616d65734442436c"
        "75737465724964656e7469666965726556616c7565686170702d636f6c64ff6954696d657374616d70c1fb41"
        "dac2ba950000006556616c7565fb405400000000000064556e69746c4d696c6c697365636f6e6473ffbf6a4d"
        "65747269634e616d65781c4175726f7261476c6f62616c44425265706c69636174696f6e4c61676a44696d65"
        "6e73696f6e7381bf644e616d65734442436c75737465724964656e7469666965726556616c7565686170702d"
        "636f6c64ff6954696d657374616d70c1fb41dac2baa40000006556616c7565fb400800000000000064556e69"
        "746c4d696c6c697365636f6e6473ffff"
    ),
    "PutMetricAlarm": bytes.fromhex(
        "bf69416c61726d4e616d65676170692d3578786a4d65747269634e616d6563357878694e616d657370616365"
        "63617070695374617469737469636353756d6a44696d656e73696f6e7381bf644e616d65634170696556616c"
        "7565667075626c6963ff66506572696f64183c714576616c756174696f6e506572696f647302695468726573"
        "686f6c64fb401400000000000072436f6d70617269736f6e4f70657261746f7274477265617465725468616e"
        "5468726573686f6c64ff"
    ),
    "SetAlarmState": bytes.fromhex(
        "bf69416c61726d4e616d65676170692d3578786a537461746556616c756565414c41524d6b53746174655265"
        "61736f6e65636865636bff"
    ),
    "DescribeAlarms": bytes.fromhex("bf6a416c61726d4e616d657381676170692d357878ff"),
}


def rust_sdk_headers(region: str) -> dict[str, str]:
    """The headers the Rust SDK sends (signature left as it was: moto does not check it)."""
    return {
        "content-type": "application/cbor",
        "smithy-protocol": "rpc-v2-cbor",
        "accept": "application/cbor",
        "x-amzn-query-mode": "true",
        "x-amz-user-agent": "aws-sdk-rust/1.7.0 ua/2.1 api/cloudwatch/1.140.0 os/linux lang/rust/1.95.0",
        "x-amz-date": "20261128T144337Z",
        "authorization": f"AWS4-HMAC-SHA256 Credential=lab/20261128/{region}/monitoring/aws4_request, "
        "SignedHeaders=accept;content-length;content-type;host;smithy-protocol;x-amz-date;"
        "x-amz-user-agent;x-amzn-query-mode, Signature=c02a352c804b57782cbc6ae7084b700c2ec5fcd084ca86bdb9680396f91e721d",
    }


def cbor_call(
    moto: Moto, operation: str, body: bytes, region: str = "us-west-2", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        moto.endpoint + CBOR_PATH + operation,
        data=body,
        method="POST",
        headers=rust_sdk_headers(region) if headers is None else headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def tagged_time(seconds: float) -> bytes:
    """A timestamp as RPC v2 CBOR carries it: tag 1, then the epoch seconds (int or double)."""
    return cbor2.dumps(cbor2.CBORTag(1, int(seconds) if float(seconds).is_integer() else float(seconds)))


def double(value: float) -> bytes:
    return b"\xfb" + struct.pack(">d", value)


@pytest.fixture
def cbor_cloudwatch(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 CloudWatch client that speaks smithy-rpc-v2-cbor (botocore's own CBOR serialiser
    and parser, an independent implementation) instead of the JSON protocol it would pick."""
    order = botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS
    monkeypatch.setattr(
        botocore.model,
        "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS",
        ("smithy-rpc-v2-cbor", *(p for p in order if p != "smithy-rpc-v2-cbor")),
    )

    def make(region: str = "us-west-2") -> Any:
        client = moto.client("cloudwatch", region)
        assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
        return client

    return make


def test_cloudwatch_over_rpc_v2_cbor(moto: Moto, cbor_cloudwatch: Any) -> None:
    west = cbor_cloudwatch("us-west-2")
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    dims = [{"Name": "DBClusterIdentifier", "Value": "cold"}]
    put = west.put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "AuroraGlobalDBReplicationLag",
                "Dimensions": dims,
                "Value": float(v),
                "Unit": "Milliseconds",
                "Timestamp": now - timedelta(minutes=3 - i),
            }
            for i, v in enumerate([120, 250, 80])
        ],
    )
    headers = put["ResponseMetadata"]["HTTPHeaders"]
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["content-type"] == "application/cbor"

    metrics = west.list_metrics(Namespace="AWS/RDS")["Metrics"]
    assert metrics == [
        {"Namespace": "AWS/RDS", "MetricName": "AuroraGlobalDBReplicationLag", "Dimensions": dims}
    ]
    assert cbor_cloudwatch("us-east-1").list_metrics()["Metrics"] == []  # regional, like moto's JSON

    data = west.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "lag",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/RDS",
                        "MetricName": "AuroraGlobalDBReplicationLag",
                        "Dimensions": dims,
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampAscending",
    )["MetricDataResults"][0]
    assert data["Values"] == [120.0, 250.0, 80.0]
    assert data["Timestamps"] == [now - timedelta(minutes=3 - i) for i in range(3)]

    west.put_metric_alarm(
        AlarmName="api-5xx",
        Namespace="app",
        MetricName="5xx",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=2,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    west.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="test")
    alarms = west.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"]
    assert [(a["AlarmName"], a["StateValue"], a["Threshold"], a["EvaluationPeriods"]) for a in alarms] == [
        ("api-5xx", "ALARM", 5.0, 2)
    ]
    assert isinstance(alarms[0]["StateUpdatedTimestamp"], datetime)
    assert west.describe_alarms(StateValue="OK")["MetricAlarms"] == []

    with pytest.raises(ClientError) as info:
        west.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="test")
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_cloudwatch_rpc_v2_cbor_wire_format(moto: Moto) -> None:
    """What the Rust SDK sends, byte for byte, and the encoding it needs back: its decoder takes
    a CBOR double (never an integer) for a double member, an integer for an int, tag 1 for a
    timestamp."""
    moto.client("cloudwatch", "us-west-2").put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "AuroraGlobalDBReplicationLag",
                "Value": 2.0,
                "Dimensions": [{"Name": "DBClusterIdentifier", "Value": "lab-cold"}],
                "Timestamp": datetime(2026, 11, 28, 14, 30, tzinfo=timezone.utc),
            }
        ],
    )
    status, headers, body = cbor_call(moto, "GetMetricData", RUST_SDK_GET_METRIC_DATA)
    assert status == 200, body
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["content-type"] == "application/cbor"
    result = cbor2.loads(body)["MetricDataResults"][0]
    assert result["Id"] == "lag" and result["StatusCode"] == "Complete"
    # moto's periods start at StartTime (14:12:37.77): the 14:30:00 point is in the 14:29:37 one
    period = datetime(2026, 11, 28, 14, 29, 37, tzinfo=timezone.utc)
    assert result["Timestamps"] == [period]
    assert result["Values"] == [2.0]
    assert cbor2.dumps("Timestamps") + b"\x81" + tagged_time(period.timestamp()) in body  # tag 1
    assert cbor2.dumps("Values") + b"\x81" + double(2.0) in body  # a double, though integral

    # PutMetricAlarm in CBOR (definite lengths this time), DescribeAlarms with an empty body
    alarm = cbor2.dumps(
        {
            "AlarmName": "lag",
            "Namespace": "AWS/RDS",
            "MetricName": "AuroraGlobalDBReplicationLag",
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 3,
            "Threshold": 5000.0,
            "ComparisonOperator": "GreaterThanThreshold",
        }
    )
    status, headers, body = cbor_call(moto, "PutMetricAlarm", alarm)
    assert (status, cbor2.loads(body), headers["smithy-protocol"]) == (200, {}, "rpc-v2-cbor")
    status, _, body = cbor_call(moto, "DescribeAlarms", b"")
    assert status == 200
    described = cbor2.loads(body)["MetricAlarms"][0]
    assert described["AlarmName"] == "lag" and described["StateValue"] == "OK"
    assert isinstance(described["StateUpdatedTimestamp"], datetime)
    assert cbor2.dumps("Threshold") + double(5000.0) in body
    assert cbor2.dumps("Period") + cbor2.dumps(60) in body
    assert cbor2.dumps("EvaluationPeriods") + cbor2.dumps(3) in body
    assert cbor2.dumps("StateUpdatedTimestamp") + b"\xc1" in body
    # regional: the alarm is in us-west-2 only
    assert cbor2.loads(cbor_call(moto, "DescribeAlarms", b"", "us-east-1")[2])["MetricAlarms"] == []

    # an unknown alarm -> the modeled error, with the query-compatible code in the header
    status, headers, body = cbor_call(
        moto, "SetAlarmState", cbor2.dumps({"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
    )
    assert status == 404
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["content-type"] == "application/cbor"
    assert headers["x-amzn-query-error"] == "ResourceNotFound;Sender"
    error = cbor2.loads(body)
    assert error["__type"] == "com.amazonaws.cloudwatch#ResourceNotFound" and "message" in error

    # an invalid parameter: moto's validation, in CBOR
    status, headers, body = cbor_call(
        moto, "SetAlarmState", cbor2.dumps({"AlarmName": "lag", "StateValue": "MAYBE", "StateReason": "x"})
    )
    assert status == 400, body
    assert cbor2.loads(body)["__type"].startswith("com.amazonaws.cloudwatch#")
    assert headers["x-amzn-query-error"].endswith(";Sender")


def test_cloudwatch_rpc_v2_cbor_replays_the_rust_sdk(moto: Moto) -> None:
    for operation in ("PutMetricData", "PutMetricAlarm", "SetAlarmState"):
        status, headers, body = cbor_call(moto, operation, RUST_SDK_REQUESTS[operation])
        assert (status, cbor2.loads(body)) == (200, {}), operation
        assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["content-type"] == "application/cbor"
    status, _, body = cbor_call(moto, "DescribeAlarms", RUST_SDK_REQUESTS["DescribeAlarms"])
    assert status == 200
    [alarm] = cbor2.loads(body)["MetricAlarms"]
    assert (alarm["AlarmName"], alarm["StateValue"], alarm["StateReason"]) == ("api-5xx", "ALARM", "check")
    assert (alarm["Threshold"], alarm["Period"], alarm["EvaluationPeriods"]) == (5.0, 60, 2)
    assert alarm["Dimensions"] == [{"Name": "Api", "Value": "public"}]
    # what the SDK stored, read back over moto's JSON protocol
    cloudwatch = moto.client("cloudwatch", "us-west-2")
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="AuroraGlobalDBReplicationLag",
        Dimensions=[{"Name": "DBClusterIdentifier", "Value": "app-cold"}],
        StartTime=datetime(2026, 11, 28, 14, 49, tzinfo=timezone.utc),
        EndTime=datetime(2026, 11, 28, 14, 53, tzinfo=timezone.utc),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert sorted((p["Timestamp"].minute, p["Maximum"], p["Unit"]) for p in points) == [
        (49, 120.0, "Milliseconds"),
        (50, 250.0, "Milliseconds"),
        (51, 80.0, "Milliseconds"),
        (52, 3.0, "Milliseconds"),
    ]


def test_cloudwatch_rpc_v2_cbor_protocol_errors(moto: Moto) -> None:
    status, headers, body = cbor_call(moto, "NoSuchOperation", b"")
    assert status == 404 and headers["smithy-protocol"] == "rpc-v2-cbor"
    assert cbor2.loads(body)["__type"].endswith("#UnknownOperationException")
    status, _, body = cbor_call(moto, "ListMetrics", b"\xff\x00 not cbor")
    assert status == 400 and cbor2.loads(body)["__type"].endswith("#SerializationException")
    status, _, body = cbor_call(moto, "ListMetrics", cbor2.dumps([1, 2]))
    assert status == 400 and cbor2.loads(body)["__type"].endswith("#SerializationException")
    # a gzip-compressed body, as the SDKs send a large PutMetricData
    put = cbor2.dumps(
        {
            "Namespace": "app",
            "MetricData": [
                {"MetricName": f"m{i}", "Value": float(i), "Timestamp": cbor2.CBORTag(1, 1795000000 + i)}
                for i in range(300)
            ],
        }
    )
    headers = {**rust_sdk_headers("us-west-2"), "content-encoding": "gzip"}
    status, _, body = cbor_call(moto, "PutMetricData", gzip.compress(put), headers=headers)
    assert (status, cbor2.loads(body)) == (200, {})
    listed = cbor2.loads(cbor_call(moto, "ListMetrics", cbor2.dumps({"Namespace": "app"}))[2])["Metrics"]
    assert len(listed) == 300
    # an unsigned request still reaches CloudWatch (us-east-1)
    status, _, body = cbor_call(
        moto,
        "ListMetrics",
        b"",
        headers={"content-type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
    )
    assert (status, cbor2.loads(body)) == (200, {"Metrics": []})
    # other services' RPC v2 paths go to moto untouched (which does not serve them)
    request = urllib.request.Request(
        moto.endpoint + "/service/AmazonSSM/operation/GetParameter",
        data=b"",
        method="POST",
        headers=rust_sdk_headers("us-west-2"),
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.headers.get("smithy-protocol") is None


# ------------------------------------------------------------------------- backup


def seed_vault(moto: Moto) -> str:
    moto.client("backup", "us-west-2").create_backup_vault(BackupVaultName="cold")
    return f"arn:aws:backup:us-west-2:{ACCOUNT}:backup-vault:cold"


def test_recovery_points_listing_filters_and_pages(moto: Moto) -> None:
    seed_vault(moto)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    aurora = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:hot"
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t"
    points = [
        {
            "Region": "us-west-2",
            "BackupVaultName": "cold",
            "ResourceArn": aurora if i % 2 else table,
            "CreationDate": (base + timedelta(hours=i)).isoformat(),
            "Status": "PARTIAL" if i == 6 else "COMPLETED",
        }
        for i in range(7)
    ]
    status, body = moto.post("/_failoverd/backup/recovery-points", points)
    assert status == 201 and len(body["RecoveryPoints"]) == 7
    backup = moto.client("backup", "us-west-2")

    pages = list(
        backup.get_paginator("list_recovery_points_by_backup_vault").paginate(
            BackupVaultName="cold", PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(p["RecoveryPoints"]) for p in pages] == [3, 3, 1]
    listed = [p for page in pages for p in page["RecoveryPoints"]]
    assert [p["CreationDate"] for p in listed] == sorted((p["CreationDate"] for p in listed), reverse=True)
    assert {p["RecoveryPointArn"] for p in listed} == {p["RecoveryPointArn"] for p in body["RecoveryPoints"]}

    by_arn = backup.list_recovery_points_by_backup_vault(BackupVaultName="cold", ByResourceArn=aurora)[
        "RecoveryPoints"
    ]
    assert len(by_arn) == 3 and {p["ResourceType"] for p in by_arn} == {"Aurora"}
    after = backup.list_recovery_points_by_backup_vault(
        BackupVaultName="cold", ByCreatedAfter=base + timedelta(hours=4, minutes=30)
    )["RecoveryPoints"]
    assert [p["Status"] for p in after] == ["PARTIAL", "COMPLETED"]
    before = backup.list_recovery_points_by_backup_vault(
        BackupVaultName="cold", ByCreatedBefore=base + timedelta(minutes=30), ByResourceType="DynamoDB"
    )
    assert len(before["RecoveryPoints"]) == 1
    assert backup.describe_backup_vault(BackupVaultName="cold")["NumberOfRecoveryPoints"] == 7


def test_recovery_point_errors(moto: Moto) -> None:
    seed_vault(moto)
    backup = moto.client("backup", "us-west-2")
    assert error_of(lambda: backup.list_recovery_points_by_backup_vault(BackupVaultName="nope")) == (
        "ResourceNotFoundException",
        400,
    )
    assert error_of(
        lambda: backup.list_recovery_points_by_backup_vault(BackupVaultName="cold", NextToken="junk")
    ) == ("InvalidParameterValueException", 400)
    arn = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:hot"
    for bad in (
        {"Region": "us-west-2", "BackupVaultName": "nope", "ResourceArn": arn},
        {"Region": "us-west-2", "BackupVaultName": "cold"},
        {"Region": "us-west-2", "BackupVaultName": "cold", "ResourceArn": arn, "Status": "DONE"},
        {"Region": "us-west-2", "BackupVaultName": "cold", "ResourceArn": arn, "Colour": "red"},
        {"Region": "us-west-2", "BackupVaultName": "cold", "ResourceArn": arn, "CreationDate": "yesterday"},
    ):
        status, body = moto.post("/_failoverd/backup/recovery-points", bad)
        assert status == 400 and body["error"], bad
    # the vault is in us-west-2 only
    assert moto.client("backup", "us-east-1").list_copy_jobs()["CopyJobs"] == []


def test_copy_jobs_listing(moto: Moto) -> None:
    vault = seed_vault(moto)
    arn = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:hot"
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    jobs = [
        {
            "Region": "us-east-1",
            "ResourceArn": arn,
            "DestinationBackupVaultArn": vault,
            "State": state,
            "CreationDate": (base + timedelta(hours=i)).isoformat(),
        }
        for i, state in enumerate(["COMPLETED", "COMPLETED", "FAILED", "RUNNING"])
    ]
    status, body = moto.post("/_failoverd/backup/copy-jobs", jobs)
    assert status == 201
    east = moto.client("backup", "us-east-1")
    failed = east.list_copy_jobs(ByState="FAILED")["CopyJobs"]
    assert [j["CopyJobId"] for j in failed] == [body["CopyJobs"][2]["CopyJobId"]]
    assert failed[0]["StatusMessage"] and failed[0]["ResourceType"] == "Aurora"
    assert len(east.list_copy_jobs(ByDestinationVaultArn=vault)["CopyJobs"]) == 4
    assert len(east.list_copy_jobs(ByDestinationVaultArn=vault + "x")["CopyJobs"]) == 0
    assert len(east.list_copy_jobs(ByCreatedAfter=base + timedelta(minutes=90))["CopyJobs"]) == 2
    first = east.list_copy_jobs(MaxResults=3)
    assert len(first["CopyJobs"]) == 3 and first["NextToken"]
    assert len(east.list_copy_jobs(MaxResults=3, NextToken=first["NextToken"])["CopyJobs"]) == 1
    assert moto.client("backup", "us-west-2").list_copy_jobs()["CopyJobs"] == []


# ------------------------------------------------------------------------- cognito


def test_user_pool_replicas(moto: Moto) -> None:
    east = moto.client("cognito-idp", "us-east-1")
    pool = east.create_user_pool(PoolName="p")["UserPool"]
    assert east.list_user_pool_replicas(UserPoolId=pool["Id"])["UserPoolReplicas"] == [
        {"RegionName": "us-east-1", "Status": "ACTIVE", "Role": "PRIMARY", "UserPoolArn": pool["Arn"]}
    ]
    replica = east.create_user_pool_replica(UserPoolId=pool["Id"], RegionName="us-west-2")["UserPoolReplica"]
    assert replica["Role"] == "SECONDARY" and ":us-west-2:" in replica["UserPoolArn"]
    west = moto.client("cognito-idp", "us-west-2")
    west.update_user_pool_replica(UserPoolId=pool["Id"], RegionName="us-west-2", Status="INACTIVE")
    listed = west.list_user_pool_replicas(UserPoolId=pool["Id"])["UserPoolReplicas"]
    assert [(r["RegionName"], r["Role"], r["Status"]) for r in listed] == [
        ("us-east-1", "PRIMARY", "ACTIVE"),
        ("us-west-2", "SECONDARY", "INACTIVE"),
    ]
    assert error_of(lambda: east.list_user_pool_replicas(UserPoolId="us-east-1_nope")) == (
        "ResourceNotFoundException",
        400,
    )
    assert error_of(lambda: east.create_user_pool_replica(UserPoolId=pool["Id"], RegionName="us-west-2")) == (
        "InvalidParameterException",
        400,
    )
    assert error_of(
        lambda: moto.client("cognito-idp", "eu-west-1").list_user_pool_replicas(UserPoolId=pool["Id"])
    ) == ("ResourceNotFoundException", 400)


# ------------------------------------------------------------------------- lab world


def run_lab_world(endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "lab_world.py"), "--endpoint", endpoint],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lab_world_is_deterministic() -> None:
    worlds = []
    for _ in range(2):
        moto = Moto()
        try:
            first = run_lab_world(moto.endpoint)
            assert first.returncode == 0, first.stderr
            worlds.append(json.loads(first.stdout))
            again = run_lab_world(moto.endpoint)
            assert again.returncode != 0 and "already holds" in again.stderr
        finally:
            moto.stop()
    assert worlds[0] == worlds[1]
    # lab/world.json is what config/lab.yaml is written against: regenerate it on purpose.
    assert worlds[0] == json.loads((HERE.parent.parent / "lab" / "world.json").read_text())
    world = worlds[0]
    assert world["route53"]["hosted_zone_id"] and world["cognito"]["pools"]["us-east-1"]["id"].startswith(
        "us-east-1_"
    )
    assert [j["state"] for j in world["backup"]["copy_jobs"]].count("FAILED") == 1
    assert world["aurora"]["clusters"]["us-east-1"]["role"] == "writer"
