#!/usr/bin/env bash
# Benchmark (c) of issue 8: the npm tool `cognito-backup-restore` backing up a hot pool and
# restoring it into an empty cold pool on the same test bed (moto from tests/support), for
# comparison with `cargo bench --bench cognito`. Prints users/s of backup and restore, and what
# the restored pool lacks (groups, memberships, disabled state).
#
# Usage: bench/cognito_backup_restore.sh [USERS]   (default 100; the tool's restore is paced at
# one user every 2 s by design, so 100 users take over three minutes).
# Needs the test bed's virtualenv (tests/support/setup.sh) and npm; installs the tool into a
# temporary directory with npm.
set -euo pipefail
users="${1:-100}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
moto_pid=""
cleanup() {
    if [[ -n "$moto_pid" ]]; then kill "$moto_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$work" && npm install --silent --no-audit --no-fund cognito-backup-restore@1.3.2 >/dev/null 2>&1)

# moto on a free loopback port; it exits when its stdin closes, so keep a pipe open.
mkfifo "$work/moto.in"
"$root/.venv/bin/python" "$root/tests/support/moto_server.py" --host 127.0.0.1 --port 0 \
    <"$work/moto.in" >"$work/moto.out" 2>"$work/moto.err" &
moto_pid=$!
exec 3>"$work/moto.in"
port=""
for _ in $(seq 1 180); do
    port="$(sed -n 's/^MOTO_READY port=\([0-9]*\).*/\1/p' "$work/moto.out" | head -1)"
    [[ -n "$port" ]] && break
    sleep 0.5
done
[[ -n "$port" ]] || { echo "moto did not start" >&2; cat "$work/moto.err" >&2; exit 1; }
endpoint="http://127.0.0.1:$port"

ids="$("$root/.venv/bin/python" - "$endpoint" "$users" <<'PY'
import sys
from concurrent.futures import ThreadPoolExecutor
import boto3

endpoint, users = sys.argv[1], int(sys.argv[2])
def client(region):
    return boto3.client("cognito-idp", region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
schema = [{"Name": n, "AttributeDataType": "String", "Mutable": True} for n in ("email", "tenant", "plan")]
hot, cold = client("us-east-1"), client("us-west-2")
hot_pool = hot.create_user_pool(PoolName="bench", Schema=schema)["UserPool"]["Id"]
cold_pool = cold.create_user_pool(PoolName="bench", Schema=schema)["UserPool"]["Id"]
for g in ("admins", "operators", "viewers"):
    hot.create_group(UserPoolId=hot_pool, GroupName=g)
def seed(n):
    name = f"user{n:06}"
    hot.admin_create_user(UserPoolId=hot_pool, Username=name, MessageAction="SUPPRESS", UserAttributes=[
        {"Name": "email", "Value": f"{name}@bench.test"}, {"Name": "email_verified", "Value": "true"},
        {"Name": "given_name", "Value": f"User{n}"}, {"Name": "custom:tenant", "Value": f"t{n % 7}"},
        {"Name": "custom:plan", "Value": "pro"}])
    hot.admin_add_user_to_group(UserPoolId=hot_pool, Username=name, GroupName=("admins", "operators", "viewers")[n % 3])
    if n % 10 == 0:
        hot.admin_disable_user(UserPoolId=hot_pool, Username=name)
with ThreadPoolExecutor(8) as pool:
    list(pool.map(seed, range(1, users + 1)))
print(hot_pool, cold_pool)
PY
)"
read -r hot_pool cold_pool <<<"$ids"

cat >"$work/run.js" <<'JS'
const path = require("path");
const work = process.argv[2];
const AWS = require(path.join(work, "node_modules/aws-sdk"));
const { backupUsers, restoreUsers } = require(path.join(work, "node_modules/cognito-backup-restore"));
const [endpoint, hotPool, coldPool, users] = process.argv.slice(3);
const client = (region) => new AWS.CognitoIdentityServiceProvider({
  endpoint, region, accessKeyId: "testing", secretAccessKey: "testing" });
(async () => {
  const hot = client("us-east-1"), cold = client("us-west-2");
  let t = Date.now();
  await backupUsers(hot, hotPool, work, 0);
  const backupS = (Date.now() - t) / 1000;
  const file = path.join(work, `${hotPool}.json`);
  t = Date.now();
  await restoreUsers(cold, coldPool, file, "Temp-Passw0rd!", undefined, 0);
  // restoreUsers resolves when the file is parsed; the paced creates continue: wait for them.
  let listed = [];
  for (let i = 0; i < 100000; i++) {
    listed = [];
    let token;
    do {
      const page = await cold.listUsers({ UserPoolId: coldPool, PaginationToken: token }).promise();
      listed.push(...page.Users);
      token = page.PaginationToken;
    } while (token);
    if (listed.length >= Number(users)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const restoreS = (Date.now() - t) / 1000;
  const groups = (await cold.listGroups({ UserPoolId: coldPool }).promise()).Groups.length;
  const disabled = listed.filter((u) => !u.Enabled).length;
  console.log(`cognito-backup-restore, ${users} users: backup ${backupS.toFixed(2)} s ` +
    `(${(users / backupS).toFixed(1)} users/s), restore ${restoreS.toFixed(2)} s ` +
    `(${(users / restoreS).toFixed(2)} users/s); restored pool: ${listed.length} users, ` +
    `${groups} groups (hot: 3), ${disabled} disabled (hot: ${Math.floor(users / 10)})`);
})().catch((e) => { console.error(e); process.exit(1); });
JS
node "$work/run.js" "$work" "$endpoint" "$hot_pool" "$cold_pool" "$users"
