#!/usr/bin/env bash
# `make lab`: failoverd against a local emulated two-region AWS.
#
# 1. prepares the Python test bed (.venv with the pinned moto and failoverd's extension);
# 2. starts moto on 127.0.0.1:4566 and seeds the two-region world of lab/README.md;
# 3. starts one emulated Kubernetes cluster per region (tests/support/kube_emulator.py, HTTPS,
#    token lab-kube-token, CA under .lab/kube/<region>/, seeded from lab/kube/<region>.json):
#    us-east-1 on 127.0.0.1:6443, us-west-2 on 127.0.0.1:6444;
# 4. builds and runs failoverd on config/lab.yaml (API on http://127.0.0.1:8080).
# LAB_DNS_MODE=data_plane: the records' health checks follow the data-plane DNS signal
# (docs/architecture.md), and failoverd runs on .lab/lab-data-plane.yaml: config/lab.yaml with
# dns.mode data_plane and the seeded signals.
# Ctrl-C stops failoverd and the emulators.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_PORT=${MOTO_PORT:-4566}
KUBE_TOKEN=lab-kube-token
# region:port of the emulated clusters
KUBE_CLUSTERS="us-east-1:6443 us-west-2:6444"
mkdir -p .lab
tests/support/setup.sh

for port in "$MOTO_PORT" 6443 6444; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "lab: port $port is in use (a previous lab still running?); stop it first" >&2
    exit 1
  fi
done

echo "lab: starting the AWS emulator on 127.0.0.1:$MOTO_PORT"
.venv/bin/python tests/support/moto_server.py --host 127.0.0.1 --port "$MOTO_PORT" --ignore-stdin \
  > .lab/moto.out 2> .lab/moto.log &
MOTO_PID=$!
cleanup() {
  for f in .lab/endpoint-hot.pid .lab/endpoint-cold.pid .lab/lag-feed.pid .lab/kube-us-east-1.pid \
    .lab/kube-us-west-2.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q MOTO_READY .lab/moto.out 2>/dev/null && break
  kill -0 "$MOTO_PID" 2>/dev/null || { echo "lab: the emulator failed:" >&2; cat .lab/moto.log >&2; exit 1; }
  sleep 0.1
done
grep -q MOTO_READY .lab/moto.out || { echo "lab: the emulator did not start" >&2; exit 1; }

for cluster in $KUBE_CLUSTERS; do
  region=${cluster%%:*} port=${cluster##*:}
  echo "lab: starting the emulated Kubernetes cluster of $region on https://127.0.0.1:$port"
  mkdir -p ".lab/kube/$region"
  .venv/bin/python tests/support/kube_emulator.py --host 127.0.0.1 --port "$port" --ignore-stdin \
    --tls-dir ".lab/kube/$region" --token "$KUBE_TOKEN" --seed "lab/kube/$region.json" \
    > ".lab/kube/$region/ready.out" 2> ".lab/kube/$region/emulator.log" &
  echo $! > ".lab/kube-$region.pid"
done
for cluster in $KUBE_CLUSTERS; do
  region=${cluster%%:*}
  for _ in $(seq 1 300); do
    grep -q KUBE_READY ".lab/kube/$region/ready.out" 2>/dev/null && break
    kill -0 "$(cat ".lab/kube-$region.pid")" 2>/dev/null ||
      { echo "lab: the $region cluster failed:" >&2; cat ".lab/kube/$region/emulator.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q KUBE_READY ".lab/kube/$region/ready.out" ||
    { echo "lab: the $region cluster did not start" >&2; exit 1; }
done

echo "lab: seeding the two-region world"
LAB_DNS_MODE=${LAB_DNS_MODE:-api}
.venv/bin/python tests/support/lab_world.py --endpoint "http://127.0.0.1:$MOTO_PORT" \
  --dns-mode "$LAB_DNS_MODE" --out .lab/world.json > /dev/null
CONFIG=config/lab.yaml
if [ "$LAB_DNS_MODE" = data_plane ]; then
  CONFIG=.lab/lab-data-plane.yaml
  .venv/bin/python - .lab/world.json config/lab.yaml "$CONFIG" <<'PY'
import json, sys
world, base, out = sys.argv[1:]
signals = json.load(open(world))["signals"]["regions"]
text = open(base).read()
# The same files, seen from .lab/ instead of config/.
text = (text.replace("../.lab/", "")
        .replace("tokens_file: lab-tokens.yaml", "tokens_file: ../config/lab-tokens.yaml")
        .replace("{file: lab-kube-token}", "{file: ../config/lab-kube-token}"))
block = "  mode: data_plane\n  data_plane:\n    signals:\n" + "".join(
    f"      {region}: {{alarm: {s['alarm']}, health_check: {s['health_check']}}}\n"
    for region, s in sorted(signals.items()))
anchor = "  wait_ttl_after_insync: false\n"
assert anchor in text, "config/lab.yaml changed shape"
open(out, "w").write(text.replace(anchor, anchor + block))
PY
fi

echo "lab: starting the regions' application endpoints (hot :8081, cold :8082) and the lag feed"
.venv/bin/python lab/endpoint.py --port 8081 & echo $! > .lab/endpoint-hot.pid
.venv/bin/python lab/endpoint.py --port 8082 & echo $! > .lab/endpoint-cold.pid
.venv/bin/python lab/lag_feed.py --endpoint "http://127.0.0.1:$MOTO_PORT" > .lab/lag-feed.log 2>&1 &
echo $! > .lab/lag-feed.pid

# A fresh emulator each time: the recorded state of an earlier lab would describe another world.
rm -rf .lab/state

# FAILOVERD_BIN runs a binary already built (a debug build, say) instead of building one.
if [ -n "${FAILOVERD_BIN:-}" ]; then
  FAILOVERD="$FAILOVERD_BIN"
else
  cargo build --release --locked --bin failoverd
  # The binary lands in cargo's target directory (CARGO_TARGET_DIR when set).
  FAILOVERD="${CARGO_TARGET_DIR:-target}/release/failoverd"
fi
export AWS_ACCESS_KEY_ID=lab AWS_SECRET_ACCESS_KEY=lab AWS_EC2_METADATA_DISABLED=true
cat <<INFO

  failoverd lab — API http://127.0.0.1:8080  (emulated AWS on http://127.0.0.1:$MOTO_PORT)
  Emulated Kubernetes (token $KUBE_TOKEN): us-east-1 https://127.0.0.1:6443, us-west-2 https://127.0.0.1:6444
    curl -s --cacert .lab/kube/us-west-2/ca.pem -H 'Authorization: Bearer $KUBE_TOKEN' \\
      https://127.0.0.1:6444/apis/apps/v1/namespaces/web/deployments/api
    curl -s http://127.0.0.1:8080/metrics | grep ^failoverd_
    curl -s -H 'Authorization: Bearer lab-viewer-token' http://127.0.0.1:8080/v1/status
    FAILOVERD_TOKEN=lab-viewer-token $FAILOVERD status
  Lose the hot region:  kill \$(cat .lab/endpoint-hot.pid)   (the policy then creates a failover
    run waiting for approval: FAILOVERD_TOKEN=lab-operator-token $FAILOVERD approve ID;
    then $FAILOVERD run failback --reason back — the walkthrough is in lab/README.md)
  Ctrl-C stops everything.

INFO
"$FAILOVERD" serve --config "$CONFIG"
