#!/usr/bin/env python3
"""Seed a realistic two-region failoverd world into a fresh moto server (with failoverd_moto).

    .venv/bin/python tests/support/lab_world.py --endpoint http://127.0.0.1:PORT \\
        [--hot us-east-1] [--cold us-west-2] [--seed 20261128] [--dns-mode api|data_plane]
        [--out FILE]

What it creates (``lab/README.md`` describes the shape):

* Aurora Global Database ``lab-global`` (aurora-postgresql): writer cluster ``lab-hot`` in the
  hot region, secondary ``lab-cold`` in the cold one, one instance each.
* Route 53 zone ``lab.failoverd.test.``: weighted ``app`` (A) and ``api`` (CNAME) records with
  set identifiers = region names, weights 100 (hot) / 0 (cold), TTL 60, each tied to a per-region
  HTTPS health check.
* Cognito user pools ``lab-users`` in both regions (same schema, custom attributes ``tenant`` and
  ``plan``); the hot pool holds 64 users (every 10th disabled, so 6) and 3 groups with members.
* AWS Backup vaults ``lab-hot-vault`` (hot) and ``lab-cold-vault`` (cold); recovery points in the
  cold vault for the Aurora cluster and a DynamoDB table; copy jobs in the hot region (one FAILED).
* CloudWatch ``AWS/RDS`` ``AuroraGlobalDBReplicationLag`` and ``AuroraGlobalDBRPOLag``
  (milliseconds, dimension ``DBClusterIdentifier=lab-cold``, cold region), one point a minute
  for the last 15 minutes.
* The data-plane DNS signal (``dns.mode: data_plane``, ``docs/architecture.md``): for each region
  R, the alarm ``lab-R-drained`` in the *other* region on ``Failoverd/RegionDrained`` with
  dimensions ``Pair=lab, Region=R`` (Maximum over 60 s, 1 of 1, ``>= 1``, missing data ignored),
  and a ``CLOUDWATCH_METRIC`` health check on it (``InsufficientDataHealthStatus``
  ``LastKnownStatus``). With ``--dns-mode data_plane`` the records' sets carry these health checks
  instead of the HTTPS ones.

IDs are deterministic: moto's random source is seeded first (``POST /moto-api/seed``), and every
call is made in a fixed order, so a fresh moto always yields the same hosted zone ID, pool IDs,
health check IDs, recovery point ARNs and copy job IDs. The seed is refused on a moto that
already holds the world. Timestamps are relative to now and are left out of the output.

Prints a JSON document with every identifier to stdout (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.config import Config

ACCOUNT_ID = "123456789012"
GLOBAL_CLUSTER = "lab-global"
ENGINE, ENGINE_VERSION = "aurora-postgresql", "16.4"
ZONE = "lab.failoverd.test."
POOL_NAME = "lab-users"
USERS, DISABLED_EVERY = 64, 10
GROUPS = [
    ("admins", "Administrators", 1),
    ("operators", "Operators of the platform", 5),
    ("viewers", "Read-only users", 10),
]
TENANTS = ["acme", "globex", "initech", "umbrella"]
PLANS = ["free", "pro", "enterprise"]
LAG_MINUTES = 15
PAIR = "lab"
SIGNAL_NAMESPACE, SIGNAL_METRIC = "Failoverd", "RegionDrained"


class Lab:
    def __init__(self, endpoint: str, hot: str, cold: str):
        self.endpoint = endpoint.rstrip("/")
        self.hot, self.cold = hot, cold
        self.now = datetime.now(tz=timezone.utc).replace(second=0, microsecond=0)

    def client(self, service: str, region: str) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def http(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise SystemExit(f"lab_world: {method} {path}: HTTP {err.code}: {err.read().decode()}") from err
        return json.loads(text) if text.strip() else None

    # ------------------------------------------------------------------ setup

    def prepare(self, seed: int) -> None:
        try:
            self.http("GET", "/_failoverd/rds/settings")
        except (urllib.error.URLError, SystemExit) as err:
            raise SystemExit(
                f"lab_world: {self.endpoint} is not a moto with failoverd_moto "
                f"(start it with tests/support/moto_server.py): {err}"
            ) from err
        existing = self.client("rds", self.hot).describe_global_clusters()["GlobalClusters"]
        if any(g["GlobalClusterIdentifier"] == GLOBAL_CLUSTER for g in existing):
            raise SystemExit("lab_world: this moto already holds the lab world; start a fresh one")
        self.http("POST", f"/moto-api/seed?a={seed}")

    # ------------------------------------------------------------------ aurora

    def aurora(self) -> dict[str, Any]:
        hot, cold = self.client("rds", self.hot), self.client("rds", self.cold)
        writer = hot.create_db_cluster(
            DBClusterIdentifier="lab-hot",
            Engine=ENGINE,
            EngineVersion=ENGINE_VERSION,
            DatabaseName="app",
            MasterUsername="failoverd",
            MasterUserPassword="lab-password-not-secret",
            StorageEncrypted=True,
        )["DBCluster"]
        hot.create_db_instance(
            DBInstanceIdentifier="lab-hot-1",
            DBClusterIdentifier="lab-hot",
            Engine=ENGINE,
            DBInstanceClass="db.r6g.large",
        )
        global_cluster = hot.create_global_cluster(
            GlobalClusterIdentifier=GLOBAL_CLUSTER, SourceDBClusterIdentifier=writer["DBClusterArn"]
        )["GlobalCluster"]
        secondary = cold.create_db_cluster(
            DBClusterIdentifier="lab-cold",
            Engine=ENGINE,
            EngineVersion=ENGINE_VERSION,
            GlobalClusterIdentifier=GLOBAL_CLUSTER,
            StorageEncrypted=True,
        )["DBCluster"]
        cold.create_db_instance(
            DBInstanceIdentifier="lab-cold-1",
            DBClusterIdentifier="lab-cold",
            Engine=ENGINE,
            DBInstanceClass="db.r6g.large",
        )
        members = cold.describe_global_clusters(GlobalClusterIdentifier=GLOBAL_CLUSTER)["GlobalClusters"][0][
            "GlobalClusterMembers"
        ]
        writer_arn = next(m["DBClusterArn"] for m in members if m["IsWriter"])
        assert writer_arn == writer["DBClusterArn"], "the hot cluster must be the writer"
        return {
            "global_cluster_id": GLOBAL_CLUSTER,
            "global_cluster_arn": global_cluster["GlobalClusterArn"],
            "global_cluster_resource_id": global_cluster["GlobalClusterResourceId"],
            "engine": ENGINE,
            "engine_version": ENGINE_VERSION,
            "writer_region": self.hot,
            "clusters": {
                self.hot: {
                    "id": "lab-hot",
                    "arn": writer["DBClusterArn"],
                    "role": "writer",
                    "instances": ["lab-hot-1"],
                    "endpoint": writer["Endpoint"],
                },
                self.cold: {
                    "id": "lab-cold",
                    "arn": secondary["DBClusterArn"],
                    "role": "secondary",
                    "instances": ["lab-cold-1"],
                    "endpoint": secondary["Endpoint"],
                },
            },
        }

    # ------------------------------------------------------------------ route 53

    def route53(self) -> dict[str, Any]:
        r53 = self.client("route53", self.hot)
        zone = r53.create_hosted_zone(
            Name=ZONE,
            CallerReference="failoverd-lab-zone",
            HostedZoneConfig={"Comment": "failoverd lab", "PrivateZone": False},
        )["HostedZone"]
        zone_id = zone["Id"].split("/")[-1]
        checks = {}
        for region in (self.hot, self.cold):
            checks[region] = r53.create_health_check(
                CallerReference=f"failoverd-lab-{region}",
                HealthCheckConfig={
                    "Type": "HTTPS",
                    "FullyQualifiedDomainName": f"app-{region}.{ZONE.rstrip('.')}",
                    "Port": 443,
                    "ResourcePath": "/healthz",
                    "RequestInterval": 30,
                    "FailureThreshold": 3,
                },
            )["HealthCheck"]["Id"]
            r53.change_tags_for_resource(
                ResourceType="healthcheck",
                ResourceId=checks[region],
                AddTags=[{"Key": "Name", "Value": f"lab-{region}"}],
            )
        addresses = {self.hot: "192.0.2.10", self.cold: "198.51.100.10"}
        weights = {self.hot: 100, self.cold: 0}
        records = [
            (f"app.{ZONE}", "A", lambda region: addresses[region]),
            (f"api.{ZONE}", "CNAME", lambda region: f"api-{region}.{ZONE}"),
        ]
        changes = []
        for name, rtype, value in records:
            for region in (self.hot, self.cold):
                changes.append(
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": rtype,
                            "SetIdentifier": region,
                            "Weight": weights[region],
                            "TTL": 60,
                            "ResourceRecords": [{"Value": value(region)}],
                            "HealthCheckId": checks[region],
                        },
                    }
                )
        change = r53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": "failoverd lab", "Changes": changes}
        )["ChangeInfo"]
        return {
            "hosted_zone_id": zone_id,
            "zone_name": ZONE,
            "health_checks": checks,
            "records": [
                {
                    "name": name,
                    "type": rtype,
                    "ttl": 60,
                    "set_identifiers": {
                        region: {"weight": weights[region], "value": value(region)}
                        for region in (self.hot, self.cold)
                    },
                }
                for name, rtype, value in records
            ],
            "initial_change_id": change["Id"].split("/")[-1],
        }

    # ------------------------------------------------------------------ data-plane signal

    def signals(self, route53: dict[str, Any], attach: bool) -> dict[str, Any]:
        """Each region's drain alarm (in the other region) and the health check following it."""
        r53 = self.client("route53", self.hot)
        other = {self.hot: self.cold, self.cold: self.hot}
        out: dict[str, Any] = {}
        for region in (self.hot, self.cold):
            alarm = f"lab-{region}-drained"
            self.client("cloudwatch", other[region]).put_metric_alarm(
                AlarmName=alarm,
                AlarmDescription=f"failoverd: ALARM drains {region} (its records turn unhealthy)",
                Namespace=SIGNAL_NAMESPACE,
                MetricName=SIGNAL_METRIC,
                Dimensions=[
                    {"Name": "Pair", "Value": PAIR},
                    {"Name": "Region", "Value": region},
                ],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                DatapointsToAlarm=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="ignore",
            )
            check = r53.create_health_check(
                CallerReference=f"failoverd-lab-signal-{region}",
                HealthCheckConfig={
                    "Type": "CLOUDWATCH_METRIC",
                    "AlarmIdentifier": {"Region": other[region], "Name": alarm},
                    "InsufficientDataHealthStatus": "LastKnownStatus",
                },
            )["HealthCheck"]["Id"]
            out[region] = {"alarm": alarm, "alarm_region": other[region], "health_check": check}
        if attach:
            sets = r53.list_resource_record_sets(HostedZoneId=route53["hosted_zone_id"])
            changes = [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {**rrset, "HealthCheckId": out[rrset["SetIdentifier"]]["health_check"]},
                }
                for rrset in sets["ResourceRecordSets"]
                if rrset.get("SetIdentifier") in out
            ]
            r53.change_resource_record_sets(
                HostedZoneId=route53["hosted_zone_id"],
                ChangeBatch={"Comment": "failoverd lab: data-plane signal", "Changes": changes},
            )
        return {"attached": attach, "namespace": SIGNAL_NAMESPACE, "metric": SIGNAL_METRIC, "regions": out}

    # ------------------------------------------------------------------ cognito

    @staticmethod
    def _pool_spec() -> dict[str, Any]:
        return {
            "PoolName": POOL_NAME,
            "AutoVerifiedAttributes": ["email"],
            "Schema": [
                {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {
                    "Name": "tenant",
                    "AttributeDataType": "String",
                    "Mutable": True,
                    "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "32"},
                },
                {
                    "Name": "plan",
                    "AttributeDataType": "String",
                    "Mutable": True,
                    "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "16"},
                },
            ],
            "UserPoolTags": {"app": "failoverd-lab"},
        }

    def cognito(self) -> dict[str, Any]:
        pools = {}
        for region in (self.hot, self.cold):
            pool = self.client("cognito-idp", region).create_user_pool(**self._pool_spec())["UserPool"]
            pools[region] = {"id": pool["Id"], "arn": pool["Arn"], "name": POOL_NAME}
        idp, pool_id = self.client("cognito-idp", self.hot), pools[self.hot]["id"]
        for name, description, precedence in GROUPS:
            idp.create_group(
                UserPoolId=pool_id, GroupName=name, Description=description, Precedence=precedence
            )
        memberships = {name: 0 for name, _, _ in GROUPS}
        disabled = []
        for n in range(1, USERS + 1):
            username = f"user{n:03d}"
            idp.admin_create_user(
                UserPoolId=pool_id,
                Username=username,
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": f"{username}@lab.failoverd.test"},
                    {"Name": "email_verified", "Value": "true"},
                    {"Name": "given_name", "Value": f"User{n}"},
                    {"Name": "family_name", "Value": "Lab"},
                    {"Name": "custom:tenant", "Value": TENANTS[n % len(TENANTS)]},
                    {"Name": "custom:plan", "Value": PLANS[n % len(PLANS)]},
                ],
            )
            groups = ["admins"] if n <= 3 else ["operators"] if n % 4 == 0 else ["viewers"]
            if n % 16 == 0:
                groups.append("viewers")  # a few users in two groups
            for group in groups:
                idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
                memberships[group] += 1
            if n % DISABLED_EVERY == 0:
                idp.admin_disable_user(UserPoolId=pool_id, Username=username)
                disabled.append(username)
        return {
            "pools": pools,
            "source_region": self.hot,
            "users": USERS,
            "disabled_users": disabled,
            "groups": {name: {"precedence": p, "members": memberships[name]} for name, _, p in GROUPS},
            "custom_attributes": ["custom:tenant", "custom:plan"],
        }

    # ------------------------------------------------------------------ backup

    def backup(self, aurora_arn: str) -> dict[str, Any]:
        vaults = {}
        for region, name in ((self.hot, "lab-hot-vault"), (self.cold, "lab-cold-vault")):
            vault = self.client("backup", region).create_backup_vault(
                BackupVaultName=name, CreatorRequestId=f"failoverd-lab-{name}"
            )
            vaults[region] = {"name": name, "arn": vault["BackupVaultArn"]}
        table = self.client("dynamodb", self.hot).create_table(
            TableName="lab-sessions",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]
        # Aurora copied every 6 h, the table daily; all copies completed.
        schedule = {aurora_arn: [1, 7, 13, 19], table["TableArn"]: [2, 26, 50]}
        points = []
        for resource_arn, hours_ago in schedule.items():
            for hours in hours_ago:
                points.append(
                    {
                        "Region": self.cold,
                        "BackupVaultName": vaults[self.cold]["name"],
                        "ResourceArn": resource_arn,
                        "SourceBackupVaultArn": vaults[self.hot]["arn"],
                        "CreationDate": (self.now - timedelta(hours=hours)).isoformat(),
                        "BackupSizeInBytes": 5_368_709_120 if resource_arn == aurora_arn else 73_400_320,
                        "Status": "COMPLETED",
                    }
                )
        seeded = self.http("POST", "/_failoverd/backup/recovery-points", points)["RecoveryPoints"]
        newest = {}
        for point in seeded:  # seeded in order: first per resource is the newest
            newest.setdefault(point["ResourceArn"], point["RecoveryPointArn"])
        jobs = [
            {
                "Region": self.hot,
                "ResourceArn": arn,
                "State": "COMPLETED",
                "SourceBackupVaultArn": vaults[self.hot]["arn"],
                "DestinationBackupVaultArn": vaults[self.cold]["arn"],
                "DestinationRecoveryPointArn": newest[arn],
                "CreationDate": (self.now - timedelta(hours=schedule[arn][0], minutes=20)).isoformat(),
                "CompletionDate": (self.now - timedelta(hours=schedule[arn][0])).isoformat(),
            }
            for arn in schedule
        ]
        jobs.append(
            {
                "Region": self.hot,
                "ResourceArn": aurora_arn,
                "State": "FAILED",
                "SourceBackupVaultArn": vaults[self.hot]["arn"],
                "DestinationBackupVaultArn": vaults[self.cold]["arn"],
                "CreationDate": (self.now - timedelta(minutes=30)).isoformat(),
                "StatusMessage": "Access denied to the destination backup vault KMS key.",
            }
        )
        copy_jobs = self.http("POST", "/_failoverd/backup/copy-jobs", jobs)["CopyJobs"]
        return {
            "vaults": vaults,
            "protected_resources": {"aurora": aurora_arn, "dynamodb": table["TableArn"]},
            "recovery_points": {
                arn: [p["RecoveryPointArn"] for p in seeded if p["ResourceArn"] == arn] for arn in schedule
            },
            "copy_jobs_region": self.hot,
            "copy_jobs": [
                {"id": j["CopyJobId"], "resource_arn": j["ResourceArn"], "state": j["State"]}
                for j in copy_jobs
            ],
        }

    # ------------------------------------------------------------------ cloudwatch

    def cloudwatch(self) -> dict[str, Any]:
        metrics = ["AuroraGlobalDBReplicationLag", "AuroraGlobalDBRPOLag"]
        data = []
        for minute in range(LAG_MINUTES, 0, -1):
            lag = 120.0 + 40.0 * (minute % 5)  # 120..280 ms, a steady saw-tooth
            for metric in metrics:
                data.append(
                    {
                        "MetricName": metric,
                        "Dimensions": [{"Name": "DBClusterIdentifier", "Value": "lab-cold"}],
                        "Timestamp": self.now - timedelta(minutes=minute),
                        "Value": lag if metric == metrics[0] else lag * 4,
                        "Unit": "Milliseconds",
                    }
                )
        cloudwatch = self.client("cloudwatch", self.cold)
        for start in range(0, len(data), 20):
            cloudwatch.put_metric_data(Namespace="AWS/RDS", MetricData=data[start : start + 20])
        return {
            "region": self.cold,
            "namespace": "AWS/RDS",
            "metrics": metrics,
            "dimensions": {"DBClusterIdentifier": "lab-cold"},
            "unit": "Milliseconds",
            "datapoints_per_metric": LAG_MINUTES,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", required=True, help="moto endpoint, e.g. http://127.0.0.1:5000")
    parser.add_argument("--hot", default="us-east-1", help="active region (default us-east-1)")
    parser.add_argument("--cold", default="us-west-2", help="standby region (default us-west-2)")
    parser.add_argument("--seed", type=int, default=20261128, help="moto random seed (default 20261128)")
    parser.add_argument(
        "--dns-mode",
        choices=["api", "data_plane"],
        default="api",
        help="data_plane: the records' sets carry the data-plane signal's health checks",
    )
    parser.add_argument("--out", help="also write the JSON document to this file")
    args = parser.parse_args(argv)
    if args.hot == args.cold:
        parser.error("--hot and --cold must differ")

    lab = Lab(args.endpoint, args.hot, args.cold)
    lab.prepare(args.seed)
    aurora = lab.aurora()
    world = {
        "account_id": ACCOUNT_ID,
        "seed": args.seed,
        "regions": {"hot": args.hot, "cold": args.cold},
        "aurora": aurora,
        "route53": lab.route53(),
        "cognito": lab.cognito(),
        "backup": lab.backup(aurora["clusters"][args.hot]["arn"]),
        "cloudwatch": lab.cloudwatch(),
    }
    # Last, so that every identifier above stays what it was before the signal existed.
    world["signals"] = lab.signals(world["route53"], args.dns_mode == "data_plane")
    text = json.dumps(world, indent=2, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
