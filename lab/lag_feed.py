"""Keeps the lab's Aurora lag moving: every 10 s, puts a fresh AuroraGlobalDBReplicationLag and
AuroraGlobalDBRPOLag datapoint for the cold cluster into the emulated CloudWatch.

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

INTERVAL_SECONDS = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--cluster", default="lab-cold")
    parser.add_argument("--spike", action="store_true", help="lag over budget (8-12 s) for 5 minutes")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id="lab",
        aws_secret_access_key="lab",
    )
    started = time.monotonic()
    step = 0
    while True:
        spiking = args.spike and time.monotonic() - started < 300
        if spiking:
            lag_ms = random.uniform(8000, 12000)
        else:
            lag_ms = 1050 + 950 * math.sin(step / 6) + random.uniform(-50, 50)
        now = datetime.datetime.now(datetime.timezone.utc)
        dimensions = [{"Name": "DBClusterIdentifier", "Value": args.cluster}]
        cloudwatch.put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {"MetricName": "AuroraGlobalDBReplicationLag", "Dimensions": dimensions, "Timestamp": now,
                 "Value": round(lag_ms, 1), "Unit": "Milliseconds"},
                {"MetricName": "AuroraGlobalDBRPOLag", "Dimensions": dimensions, "Timestamp": now,
                 "Value": round(lag_ms * 4, 1), "Unit": "Milliseconds"},
            ],
        )
        step += 1
        time.sleep(INTERVAL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
