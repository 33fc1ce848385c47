"""Keeps the lab's Aurora lag moving, following the topology: every 10 s, reads the global
database's members (DescribeGlobalClusters, asked of us-east-1: moto keeps global clusters
there) and puts a fresh AuroraGlobalDBReplicationLag and AuroraGlobalDBRPOLag datapoint for each
*secondary* member, in that member's region, as Aurora does. After a switchover or failover the
old writer is the secondary and gets the lag, so failoverd can always tell whether a switch back
would be safe; a member that left the global database (detach-and-promote) gets none.

The lag wanders between 100 ms and 2 s; `--spike` makes it climb past the lab's 5 s budget for a
few minutes, so the lag gauge and the FailoverdAuroraLagOverBudget alert can be watched.

    .venv/bin/python lab/lag_feed.py --endpoint http://127.0.0.1:4566 [--spike]
"""

import argparse
import datetime
import math
import random
import signal
import sys
import time

import boto3
import botocore.exceptions

INTERVAL_SECONDS = 10
#: moto keeps every global cluster in us-east-1's backend (DescribeGlobalClusters there sees all).
TOPOLOGY_REGION = "us-east-1"


def client(service, endpoint, region):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="lab",
        aws_secret_access_key="lab",
    )


def secondaries(rds, global_cluster):
    """(region, cluster identifier) of each non-writer member of ``global_cluster``."""
    found = rds.describe_global_clusters(GlobalClusterIdentifier=global_cluster)["GlobalClusters"]
    out = []
    for member in found[0]["GlobalClusterMembers"] if found else []:
        if member.get("IsWriter"):
            continue
        # arn:aws:rds:<region>:<account>:cluster:<id>
        parts = member["DBClusterArn"].split(":")
        out.append((parts[3], parts[6]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--global-cluster", default="lab-global")
    parser.add_argument("--spike", action="store_true", help="lag over budget (8-12 s) for 5 minutes")
    parser.add_argument("--once", action="store_true", help="one round, then exit (for checks)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rds = client("rds", args.endpoint, TOPOLOGY_REGION)
    cloudwatch = {}
    started = time.monotonic()
    step = 0
    last_seen = None
    while True:
        spiking = args.spike and time.monotonic() - started < 300
        if spiking:
            lag_ms = random.uniform(8000, 12000)
        else:
            lag_ms = 1050 + 950 * math.sin(step / 6) + random.uniform(-50, 50)
        try:
            targets = secondaries(rds, args.global_cluster)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            print(f"lag_feed: DescribeGlobalClusters failed: {err}", file=sys.stderr, flush=True)
            targets = []
        if targets != last_seen:
            print(f"lag_feed: secondaries now {targets or 'none'}", file=sys.stderr, flush=True)
            last_seen = targets
        now = datetime.datetime.now(datetime.timezone.utc)
        for region, cluster in targets:
            if region not in cloudwatch:
                cloudwatch[region] = client("cloudwatch", args.endpoint, region)
            dimensions = [{"Name": "DBClusterIdentifier", "Value": cluster}]
            try:
                cloudwatch[region].put_metric_data(
                    Namespace="AWS/RDS",
                    MetricData=[
                        {"MetricName": "AuroraGlobalDBReplicationLag", "Dimensions": dimensions,
                         "Timestamp": now, "Value": round(lag_ms, 1), "Unit": "Milliseconds"},
                        {"MetricName": "AuroraGlobalDBRPOLag", "Dimensions": dimensions,
                         "Timestamp": now, "Value": round(lag_ms * 4, 1), "Unit": "Milliseconds"},
                    ],
                )
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
                print(f"lag_feed: PutMetricData {region}/{cluster} failed: {err}", file=sys.stderr, flush=True)
        if args.once:
            return 0
        step += 1
        time.sleep(INTERVAL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
