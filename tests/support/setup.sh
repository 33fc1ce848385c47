#!/usr/bin/env bash
# Prepare the Python side of the AWS test bed: a virtualenv at <repo>/.venv with the pinned
# requirements of tests/support/requirements.txt (moto server, boto3, pytest).
#
# Idempotent and fast when already done: the hash of the requirements file and of the Python
# version is stamped into .venv/.requirements.sha256, and a matching stamp makes this a no-op.
# Safe to run concurrently (serialised with flock when available). On a fresh Debian machine,
# run as root, it installs python3 / python3-venv with apt-get if `python3 -m venv` is missing.
#
# Usage: tests/support/setup.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

log() { echo "setup.sh: $*" >&2; }

wanted_stamp() {
    { cat "$requirements"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [[ -x "$venv/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$(wanted_stamp 2>/dev/null)" ]]
}

if up_to_date; then
    exit 0
fi

ensure_python_venv() {
    if command -v "$python" >/dev/null 2>&1 && "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
        log "'$python -m venv' is not usable and python3-venv cannot be installed here (need apt-get as root)"
        exit 1
    fi
    log "installing python3 and python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local version_pkg=""
    if command -v "$python" >/dev/null 2>&1; then
        version_pkg="python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    fi
    # shellcheck disable=SC2086  # version_pkg may be empty
    apt-get install -y -qq python3 python3-venv $version_pkg >/dev/null ||
        apt-get install -y -qq python3 python3-venv >/dev/null
    if ! command -v "$python" >/dev/null 2>&1; then
        python=python3
    fi
}

install() {
    if up_to_date; then   # another process finished while we waited for the lock
        return
    fi
    ensure_python_venv
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
        log "creating $venv"
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    log "installing $(grep -c '==' "$requirements") pinned packages into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
    wanted_stamp >"$stamp"
    log "ready: $venv"
}

if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/failoverd-venv-$(echo "$root" | sha256sum | cut -c1-16).lock"
    flock 9
fi
install
