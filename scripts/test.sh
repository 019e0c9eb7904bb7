#!/usr/bin/env bash
# Runs every test of Orbit: the Rust unit/integration tests, then the
# black-box end-to-end suite (tests/e2e) against the built binary with real
# clients (aws-cli, boto3). Installs what it needs on a fresh Debian machine
# (as root); quick when everything is already there.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)

section() { printf '\n==================== %s ====================\n' "$*"; }

VENV=${ORBIT_VENV:-$HOME/.cache/orbit-venv}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
PY_PACKAGES=(awscli boto3 "moto[server]" azure-storage-blob pytest pytest-timeout requests)

section "Python environment ($VENV)"
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3 and python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import boto3, botocore, pytest, pytest_timeout, requests, awscli, moto.server, flask, azure.storage.blob' >/dev/null 2>&1 \
   || [ ! -x "$VENV/bin/aws" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
else
    echo "already installed: ${PY_PACKAGES[*]}"
fi
"$VENV/bin/python" --version
"$VENV/bin/aws" --version

section "system packages"
if ! command -v rclone >/dev/null 2>&1; then
    echo "installing rclone with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq rclone >/dev/null
fi
# sed reads all of it: `head` would close the pipe early and, under pipefail, fail the run with SIGPIPE.
rclone version | sed -n 1p
# The multi-site tests (tests/e2e/sites.py) build network namespaces, veth
# pairs and a bridge with `ip` when running as root; elsewhere they run on
# loopback. Their wire faults use `tc` (iproute2: tbf bandwidth caps) and
# `nft` (nftables: packet drops inside the namespaces).
if [ "$(id -u)" -eq 0 ]; then
    missing=()
    command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
    command -v nft >/dev/null 2>&1 || missing+=(nftables)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

if [ -f "$REPO_ROOT/Cargo.toml" ]; then
    section "cargo test --workspace"
    cargo test --workspace

    section "backend conformance against a real S3 server (moto)"
    MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/orbit-moto-$$.log" 2>&1 &
    MOTO_PID=$!
    trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
    "$VENV/bin/python" - "$MOTO_PORT" <<'PY'
import sys, time, boto3
port = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
for _ in range(100):
    try:
        s3.create_bucket(Bucket="orbit-conformance")
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
PY
    ORBIT_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT" ORBIT_TEST_S3_BUCKET=orbit-conformance \
        cargo test -p orbit-backend -- --ignored s3_backend
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    trap - EXIT

    section "backend conformance against Azurite (the Azure Blob emulator, from npm)"
    AZURITE_DIR=${ORBIT_AZURITE_DIR:-$HOME/.cache/orbit-azurite}
    if ! command -v npm >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
    fi
    if [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
        mkdir -p "$AZURITE_DIR"
        (cd "$AZURITE_DIR" && npm install --no-audit --no-fund --silent azurite@3.35.0)
    fi
    AZ_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    AZ_DATA=$(mktemp -d)
    "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
        --location "$AZ_DATA" --skipApiVersionCheck --silent >"$AZ_DATA/azurite.log" 2>&1 &
    AZ_PID=$!
    trap 'kill $AZ_PID 2>/dev/null || true; rm -rf "$AZ_DATA"' EXIT
    "$VENV/bin/python" - "$AZ_PORT" <<'PY'
import sys, time
from azure.storage.blob import BlobServiceClient
port = sys.argv[1]
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
for _ in range(100):
    try:
        BlobServiceClient.from_connection_string(conn).create_container("orbit-conformance")
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("azurite did not start")
PY
    ORBIT_TEST_AZURE_ENDPOINT="http://127.0.0.1:$AZ_PORT/devstoreaccount1" ORBIT_TEST_AZURE_CONTAINER=orbit-conformance \
        cargo test -p orbit-backend -- --ignored azure_backend
    kill "$AZ_PID" 2>/dev/null || true
    # Azurite may still be writing its files as it stops: wait for it first.
    wait "$AZ_PID" 2>/dev/null || true
    rm -rf "$AZ_DATA" || true
    trap - EXIT

    section "cargo build -p orbit -p orbit-lincheck"
    cargo build -p orbit -p orbit-lincheck
    # The e2e suite tampers with a stopped server's audit log through this helper.
    cargo build -p orbit --example audit-tamper
else
    echo "no Cargo.toml at $REPO_ROOT: nothing to build" >&2
    exit 1
fi

ORBIT_BIN=${ORBIT_BIN:-$TARGET_DIR/debug/orbit}
export ORBIT_BIN
# The linearizability checker the e2e histories are judged by.
ORBIT_LINCHECK_BIN=${ORBIT_LINCHECK_BIN:-$TARGET_DIR/debug/orbit-lincheck}
export ORBIT_LINCHECK_BIN
if [ ! -x "$ORBIT_BIN" ]; then
    echo "orbit binary not found at $ORBIT_BIN" >&2
    exit 1
fi

section "end-to-end tests (tests/e2e) against $ORBIT_BIN"
# The suite runs the venv's aws-cli; put the venv first on PATH.
export PATH="$VENV/bin:$PATH"
export ORBIT_AWS_CLI="$VENV/bin/aws"
set +e
"$VENV/bin/python" -m pytest tests/e2e -q -ra --durations=10 --timeout=300 \
    -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
section "done (pytest exit code $rc)"
exit "$rc"
