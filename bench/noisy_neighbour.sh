#!/usr/bin/env bash
# Noisy neighbour: one tenant floods Orbit with GETs, another does steady
# small GETs; how much does the flood slow the quiet tenant, with the
# flooding tenant unlimited and with it limited (orbit qos set)?
#
#   bash bench/noisy_neighbour.sh
#
# Prints the quiet tenant's p50 and p99 GET latency alone, during an
# unlimited flood and during the same flood with the flooder limited, the
# ratios to "alone", the flood's accepted and refused (SlowDown) requests
# and MiB per second, and the CPUs the server used (1.00 = one core busy). Server and clients share the machine's CPUs: compare
# the ratios of one run, never absolute figures across runs.
#
# Steps: builds Orbit in release (skipped when ORBIT_BIN names a binary),
# starts `orbit serve` on free loopback ports in a temporary directory,
# makes two tenants through the orbit CLI, runs bench/noisy_neighbour.py,
# stops the server and removes the directory on any exit.
#
# Environment:
#   NN_PROCS=2 NN_THREADS=8   flood client processes x boto3 clients (connections) each
#   NN_COUNT=300              quiet GETs per phase
#   NN_INTERVAL=0.02          seconds between quiet GETs
#   NN_FLOOD_SIZE=262144      bytes per flood GET
#   NN_LIMIT_RPS=50           the flooder's read-rps limit in the limited phase
#   NN_LIMIT_BPS=8MiB         ... and its read-bps limit ("" for none)
#   ORBIT_BIN                 use this orbit binary instead of building one
#   ORBIT_VENV                virtualenv with boto3 (default ~/.cache/orbit-venv)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)
BENCH_DIR="$REPO_ROOT/bench"
VENV=${ORBIT_VENV:-$HOME/.cache/orbit-venv}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
PY="$VENV/bin/python"

ROOT_ACCESS_KEY="ORBITBENCHNOISY00001"
ROOT_SECRET_KEY="orbit-bench-noisy-neighbour-secret-0123"

section() { printf '\n==== %s ====\n' "$*"; }
die() { echo "noisy_neighbour.sh: error: $*" >&2; exit 1; }

[ -x "$PY" ] && "$PY" -c 'import boto3' 2>/dev/null \
    || die "no virtualenv with boto3 at $VENV (create it: python3 -m venv $VENV && $VENV/bin/pip install boto3)"

WORK=""
ORBIT_PID=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$ORBIT_PID" ] && kill -0 "$ORBIT_PID" 2>/dev/null; then
        kill -TERM "$ORBIT_PID"
        wait "$ORBIT_PID" 2>/dev/null
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
orbit_release_binary

section "server"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-noisy.XXXXXX")
read -r S3_PORT ADMIN_PORT < <("$PY" - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PYEOF
)
ORBIT_ROOT_ACCESS_KEY="$ROOT_ACCESS_KEY" ORBIT_ROOT_SECRET_KEY="$ROOT_SECRET_KEY" \
    "$ORBIT_BIN" serve --data-dir "$WORK/data" --s3-addr "127.0.0.1:$S3_PORT" \
    --admin-addr "127.0.0.1:$ADMIN_PORT" </dev/null >"$WORK/orbit.log" 2>&1 &
ORBIT_PID=$!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null && break
    kill -0 "$ORBIT_PID" 2>/dev/null || { tail -n 30 "$WORK/orbit.log" >&2; die "orbit exited"; }
    sleep 0.1
done
echo "orbit: pid $ORBIT_PID, S3 127.0.0.1:$S3_PORT, admin 127.0.0.1:$ADMIN_PORT; machine: $(nproc) CPUs"

section "measure"
export ORBIT_BIN ORBIT_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
export ORBIT_ACCESS_KEY="$ROOT_ACCESS_KEY" ORBIT_SECRET_KEY="$ROOT_SECRET_KEY"
timeout 900 "$PY" "$BENCH_DIR/noisy_neighbour.py" run --endpoint "http://127.0.0.1:$S3_PORT" \
    --procs "${NN_PROCS:-2}" --threads "${NN_THREADS:-8}" --count "${NN_COUNT:-300}" \
    --interval "${NN_INTERVAL:-0.02}" --flood-size "${NN_FLOOD_SIZE:-262144}" \
    --limit-rps "${NN_LIMIT_RPS:-50}" --limit-bps "${NN_LIMIT_BPS-8MiB}" --server-pid "$ORBIT_PID"
kill -0 "$ORBIT_PID" 2>/dev/null || die "orbit died during the benchmark"
