#!/usr/bin/env bash
# Training-epoch simulation: how long would a GPU sit idle waiting for data
# read from a far-away bucket, directly and through Orbit?
#
#   bash bench/epoch_sim.sh
#   EPOCH_SHARDS=8 EPOCH_SHARD_MIB=2 bash bench/epoch_sim.sh     # quick check
#
# What it measures. A consumer reads the shards of a dataset in order, in
# batches (1 MiB), and after each batch "computes" for a fixed time (10 ms
# per MiB: a GPU consuming 100 MiB/s); a reader thread fetches ahead into a
# bounded queue (2 batches), as a real data loader overlaps I/O with
# compute. The time the compute loop blocks on that queue is the time the
# GPU waits on I/O; the GPU-idle fraction is that wait over the epoch time.
# The far backend is moto's S3 server behind a delay proxy of our own (this
# kernel has no netem): 25 ms each way (50 ms RTT) and a 100 MiB/s cap per
# direction by default. Runs, each over the whole dataset:
#   direct          boto3 to moto through the proxy
#   orbit-cold      boto3 to Orbit just restarted (its RAM-only cache empty);
#                   Orbit's backend `far` is moto behind the same proxy
#   orbit-warm      a second epoch right after (EPOCH_WARM_RUN=1, default)
#   orbit-prefetch  Orbit restarted again, `orbit prefetch start --wait` over
#                   the dataset's prefix, then the epoch (skipped, printing
#                   "prefetch unavailable", when the binary has no prefetch)
# It prints a table with the parameters: per run the epoch time, the wait,
# the GPU-idle %, the throughput (MiB/s of data consumed), the time to the
# first batch, the longest single wait, the MiB and connections that crossed
# the emulated link during the epoch, and Orbit's chunk-cache hit %; then
# whether the target (GPU idle under 5% after prefetch) was met. An epoch
# should compute for a few seconds at least (the defaults: 3.84 s), or the
# first request's latency alone weighs on the idle fraction.
#
# Steps: creates the venv ${ORBIT_VENV:-$HOME/.cache/orbit-venv} with boto3
# and moto[server] when missing; builds Orbit in release (cargo build
# --release -p orbit; honours CARGO_TARGET_DIR; skipped when ORBIT_BIN names a
# binary); runs bench/epoch_sim.py, which starts moto, the proxy and Orbit on
# free 127.0.0.1 ports in a temporary directory, writes the dataset (into a
# plain moto bucket, and through Orbit into a bucket on the far backend),
# runs the epochs and prints the report. On any exit, Ctrl-C included, every
# process it started is stopped and the temporary directory removed. Only
# 127.0.0.1 is used.
#
# Environment:
#   EPOCH_SHARDS=48               shards in the dataset
#   EPOCH_SHARD_MIB=8             size of a shard (MiB, may be fractional)
#   EPOCH_BATCH_KIB=1024          batch the consumer takes at a time
#   EPOCH_COMPUTE_MS_PER_MIB=10   compute time per MiB consumed
#   EPOCH_QUEUE_DEPTH=2           batches the reader thread may queue ahead
#   EPOCH_RTT_MS=50               round trip added by the proxy (half each way)
#   EPOCH_BANDWIDTH_MIBPS=100     cap per direction, shared by all connections (0: none)
#   EPOCH_HANDSHAKE=0             1: the proxy charges each new connection one RTT
#                                 (moto closes every connection after one response,
#                                 so this charges every backend request; off by default)
#   EPOCH_CACHE_RAM_BYTES=536870912   Orbit's RAM cache
#   EPOCH_CHUNK_BYTES=4194304     Orbit's chunk size
#   EPOCH_WARM_RUN=1              0: no second Orbit epoch after the cold one
#   EPOCH_TARGET_PCT=5            GPU-idle target after prefetch, in %
#   EPOCH_ENFORCE=0               1: exit 3 when the target is missed
#   EPOCH_TIMEOUT=600             bound on the whole run after the build (s)
#   EPOCH_KEEP=0                  1: keep the temporary directory (logs, config)
#   ORBIT_BIN                     use this orbit binary instead of building one
#   ORBIT_VENV                    virtualenv for boto3 and moto
#
# Exit status: 0, or 1 when a run failed, 3 with EPOCH_ENFORCE=1 and the
# target missed. With the defaults a run takes about a minute after the build.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)
BENCH_DIR="$REPO_ROOT/bench"
VENV=${ORBIT_VENV:-$HOME/.cache/orbit-venv}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
EPOCH_KEEP=${EPOCH_KEEP:-0}
EPOCH_TIMEOUT=${EPOCH_TIMEOUT:-600}

section() { printf '\n==== %s ====\n' "$*"; }
die() { echo "epoch_sim.sh: error: $*" >&2; exit 1; }

num() { # name value: a non-negative number
    [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 must be a non-negative number (got '$2')"
}
num EPOCH_SHARDS "${EPOCH_SHARDS:=48}"
num EPOCH_SHARD_MIB "${EPOCH_SHARD_MIB:=8}"
num EPOCH_BATCH_KIB "${EPOCH_BATCH_KIB:=1024}"
num EPOCH_COMPUTE_MS_PER_MIB "${EPOCH_COMPUTE_MS_PER_MIB:=10}"
num EPOCH_QUEUE_DEPTH "${EPOCH_QUEUE_DEPTH:=2}"
num EPOCH_RTT_MS "${EPOCH_RTT_MS:=50}"
num EPOCH_BANDWIDTH_MIBPS "${EPOCH_BANDWIDTH_MIBPS:=100}"
num EPOCH_HANDSHAKE "${EPOCH_HANDSHAKE:=0}"
num EPOCH_CACHE_RAM_BYTES "${EPOCH_CACHE_RAM_BYTES:=536870912}"
num EPOCH_CHUNK_BYTES "${EPOCH_CHUNK_BYTES:=4194304}"
num EPOCH_WARM_RUN "${EPOCH_WARM_RUN:=1}"
num EPOCH_TARGET_PCT "${EPOCH_TARGET_PCT:=5}"
num EPOCH_ENFORCE "${EPOCH_ENFORCE:=0}"
[[ $EPOCH_TIMEOUT =~ ^[0-9]+$ ]] && [ "$EPOCH_TIMEOUT" -ge 30 ] \
    || die "EPOCH_TIMEOUT must be a whole number of seconds, at least 30 (got '$EPOCH_TIMEOUT')"

# ------------------------------------------------------------------ cleanup
WORK=""
DRIVER_PID=""

stop_pid() { # pid name grace_seconds
    local pid=$1 name=$2 grace=$3 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "epoch_sim.sh: $name ($pid) did not stop in ${grace}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    # The driver stops its own servers; give it time to, then stop whatever
    # it recorded in the pid file and left running (it may have been killed).
    stop_pid "$DRIVER_PID" "epoch_sim.py" 60
    [ -n "$DRIVER_PID" ] && wait "$DRIVER_PID" 2>/dev/null
    if [ -n "$WORK" ] && [ -f "$WORK/pids" ]; then
        local pid tag
        while read -r pid tag; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
            # Only a process that is still the one recorded (not a reused pid).
            case $tag in
                orbit) grep -qa -- "$WORK/orbit.toml" "/proc/$pid/cmdline" 2>/dev/null || continue ;;
                proxy) grep -qa -- "$WORK/proxy.port" "/proc/$pid/cmdline" 2>/dev/null || continue ;;
                moto) grep -qa -- "moto.server" "/proc/$pid/cmdline" 2>/dev/null || continue ;;
                *) continue ;;
            esac
            stop_pid "$pid" "$tag" 20
        done <"$WORK/pids"
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$EPOCH_KEEP" = 1 ]; then
            echo "kept the temporary directory: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "epoch_sim.sh: interrupted; stopping" >&2; exit 130' INT
trap 'echo "epoch_sim.sh: terminated; stopping" >&2; exit 143' TERM

# ------------------------------------------------------------------ install
section "dependencies"
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    die "python3 with venv is missing (as root on Debian: apt-get install -y python3 python3-venv python3-pip)"
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating virtualenv $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import boto3, botocore, moto.server, flask' >/dev/null 2>&1; then
    echo "installing boto3 and moto[server] into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check boto3 "moto[server]"
fi
PY="$VENV/bin/python"
echo "python: $("$PY" -c 'import sys, boto3, moto; print(sys.version.split()[0], "boto3", boto3.__version__, "moto", moto.__version__)')"

# ------------------------------------------------------------------ build
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
orbit_release_binary

# ------------------------------------------------------------------ run
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-epoch-sim.XXXXXX")
# A copy of the binary: Orbit restarts during the run, and a concurrent
# build must not swap the binary between two of its starts.
cp "$ORBIT_BIN" "$WORK/orbit-bin"
# In the background and waited for, so that INT/TERM reach the trap at once.
timeout --signal=TERM --kill-after=60 "$EPOCH_TIMEOUT" \
    "$PY" "$BENCH_DIR/epoch_sim.py" run \
    --orbit-bin "$WORK/orbit-bin" --work "$WORK" \
    --shards "$EPOCH_SHARDS" --shard-mib "$EPOCH_SHARD_MIB" --batch-kib "$EPOCH_BATCH_KIB" \
    --compute-ms-per-mib "$EPOCH_COMPUTE_MS_PER_MIB" --depth "$EPOCH_QUEUE_DEPTH" \
    --rtt-ms "$EPOCH_RTT_MS" --bandwidth-mibps "$EPOCH_BANDWIDTH_MIBPS" --handshake "$EPOCH_HANDSHAKE" \
    --cache-ram-bytes "$EPOCH_CACHE_RAM_BYTES" --chunk-bytes "$EPOCH_CHUNK_BYTES" \
    --warm-run "$EPOCH_WARM_RUN" --target-pct "$EPOCH_TARGET_PCT" --enforce "$EPOCH_ENFORCE" &
DRIVER_PID=$!
rc=0
wait "$DRIVER_PID" || rc=$?
DRIVER_PID=""
[ "$rc" -eq 124 ] && echo "epoch_sim.sh: the run took longer than EPOCH_TIMEOUT=${EPOCH_TIMEOUT}s" >&2

section "orbit log"
if [ -f "$WORK/orbit.log" ]; then
    lines=$(wc -l <"$WORK/orbit.log")
    problems=$(grep -cE ' (WARN|ERROR) ' "$WORK/orbit.log" || true)
    echo "$lines lines, $problems WARN/ERROR"
    if [ "$problems" -gt 0 ]; then
        grep -E ' (WARN|ERROR) ' "$WORK/orbit.log" | tail -n 20
    fi
fi
exit "$rc"
