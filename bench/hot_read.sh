#!/usr/bin/env bash
# Hot GET benchmark: Orbit against nginx serving the same bytes, same run.
#
#   bash bench/hot_read.sh
#
# What it measures: GET throughput (ops/s, MiB/s of object bytes) and latency
# (p50, p99) of objects that are already hot (written, read once and warmed),
# for 4 KiB objects at 16 connections and 1 MiB and 64 MiB objects at 4
# connections (wrk, 2 threads, keep-alive, requests round-robin over a few
# distinct objects per size), first against nginx serving them as static
# files, then against Orbit serving them from a bucket through SigV4
# presigned GET URLs. It prints one table and the ratio orbit/nginx of ops/s
# per size, against the targets (>= 0.6 for 4 KiB, >= 0.8 for 1 MiB and up).
#
# Server and load generator share the machine's CPUs: compare the ratios of
# one run, never absolute figures across runs or machines.
#
# Steps: installs nginx, wrk (apt-get, as root) and boto3 (into the venv
# ${ORBIT_VENV:-$HOME/.cache/orbit-venv}) when missing; builds Orbit in release
# (cargo build --release -p orbit; honours CARGO_TARGET_DIR; skipped when
# ORBIT_BIN names a binary); starts `orbit serve` and nginx on free loopback
# ports with their own temporary directories; writes the objects; warms and
# measures; stops both servers and removes its temporary directory on any
# exit. Only 127.0.0.1 is used.
#
# Environment:
#   BENCH_SECONDS=10          measured seconds per server and size, per round
#   BENCH_ROUNDS=3            rounds: nginx and Orbit measured in turn, each round;
#                             the reported ratio is the median of the rounds' ratios
#   BENCH_WARMUP_SECONDS=2    warm-up seconds per server and size (not reported)
#   BENCH_SIZES="4KiB 1MiB 64MiB"   which sizes to run
#   BENCH_NGINX_WORKERS=auto  nginx worker_processes (auto or a number)
#   BENCH_ENFORCE=0           1: exit 3 when a target is missed or a run had errors
#   BENCH_KEEP=0              1: keep the temporary directory (logs, wrk output)
#   ORBIT_BIN                 use this orbit binary instead of building one
#   ORBIT_VENV                virtualenv for boto3
#
# With the defaults the run (after the first build) takes about 1.5 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)
BENCH_DIR="$REPO_ROOT/bench"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-2}
BENCH_SIZES=${BENCH_SIZES:-"4KiB 1MiB 64MiB"}
BENCH_NGINX_WORKERS=${BENCH_NGINX_WORKERS:-auto}
BENCH_ENFORCE=${BENCH_ENFORCE:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
WRK_THREADS=2
VENV=${ORBIT_VENV:-$HOME/.cache/orbit-venv}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}

# Fixed operator credential for this throw-away server (loopback only).
ROOT_ACCESS_KEY="ORBITBENCHHOTREAD001"
ROOT_SECRET_KEY="orbit-bench-hot-read-secret-0123456789"

section() { printf '\n==== %s ====\n' "$*"; }
die() { echo "hot_read.sh: error: $*" >&2; exit 1; }

for v in BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_ROUNDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] && [ "${!v}" -le 600 ] \
        || die "$v must be a whole number of seconds from 1 to 600 (got '${!v}')"
done
[[ $BENCH_NGINX_WORKERS =~ ^(auto|[1-9][0-9]?)$ ]] \
    || die "BENCH_NGINX_WORKERS must be auto or a number (got '$BENCH_NGINX_WORKERS')"
for s in $BENCH_SIZES; do
    case $s in 4KiB|1MiB|64MiB) ;; *) die "unknown size '$s' in BENCH_SIZES (4KiB, 1MiB, 64MiB)";; esac
done

# ------------------------------------------------------------------ cleanup
WORK=""
ORBIT_PID=""
NGINX_PID=""
CHILD_PID=""        # wrk or the prepare step, while one runs
CREATED_POLICY_RC=""

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
        echo "hot_read.sh: $name ($pid) did not stop in ${grace}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_pid "$CHILD_PID" "child" 2
    stop_pid "$NGINX_PID" "nginx" 10
    stop_pid "$ORBIT_PID" "orbit" 25
    if [ -n "$CREATED_POLICY_RC" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$BENCH_KEEP" = 1 ]; then
            echo "kept the temporary directory: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command in the background and wait for it, so that INT/TERM reach
# the trap at once and the child is stopped by cleanup.
run_child() {
    "$@" &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

# ------------------------------------------------------------------ install
section "dependencies"
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_apt+=(python3 python3-venv python3-pip)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${need_apt[*]}: install them (as root on Debian: apt-get install -y ${need_apt[*]})"
    fi
    echo "installing with apt-get: ${need_apt[*]}"
    # The nginx package starts a system nginx on port 80 unless services are
    # kept from starting; keep them from starting for the install only.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
    if [ -n "$CREATED_POLICY_RC" ]; then
        rm -f /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=""
    fi
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
WRK=$(command -v wrk)

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating virtualenv $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import boto3, botocore' >/dev/null 2>&1; then
    echo "installing boto3 into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check boto3
fi
PY="$VENV/bin/python"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
echo "wrk:   $("$WRK" -v 2>&1 | awk 'NR == 1 {print $2}')"
echo "boto3: $("$PY" -c 'import boto3; print(boto3.__version__)')"

# ------------------------------------------------------------------ build
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
orbit_release_binary

# ------------------------------------------------------------------ servers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-hot-read.XXXXXX")
mkdir -p "$WORK/nginx/root" "$WORK/nginx/tmp" "$WORK/orbit-data" "$WORK/targets" "$WORK/wrk"

# Three distinct free loopback ports, held together while picked.
read -r S3_PORT ADMIN_PORT NGINX_PORT < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)

log_tail() { # file
    echo "---- last 40 lines of $1 ----" >&2
    tail -n 40 "$1" >&2 2>/dev/null || true
    echo "----" >&2
}

wait_listening() { # name pid port logfile seconds
    local name=$1 pid=$2 port=$3 log=$4 secs=$5 i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            log_tail "$log"
            die "$name exited (status $rc) before listening on 127.0.0.1:$port"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log_tail "$log"
    die "$name did not listen on 127.0.0.1:$port within ${secs}s"
}

check_alive() { # name pid logfile
    if ! kill -0 "$2" 2>/dev/null; then
        log_tail "$3"
        die "$1 (pid $2) died during the benchmark"
    fi
}

section "servers"
ORBIT_LOG_FILE="$WORK/orbit.log"
ORBIT_ROOT_ACCESS_KEY="$ROOT_ACCESS_KEY" ORBIT_ROOT_SECRET_KEY="$ROOT_SECRET_KEY" \
    "$ORBIT_BIN" serve --data-dir "$WORK/orbit-data" \
    --s3-addr "127.0.0.1:$S3_PORT" --admin-addr "127.0.0.1:$ADMIN_PORT" \
    </dev/null >"$ORBIT_LOG_FILE" 2>&1 &
ORBIT_PID=$!
wait_listening orbit "$ORBIT_PID" "$S3_PORT" "$ORBIT_LOG_FILE" 60
echo "orbit: pid $ORBIT_PID, S3 on 127.0.0.1:$S3_PORT, admin on 127.0.0.1:$ADMIN_PORT, data in $WORK/orbit-data"

NGINX_CONF="$WORK/nginx/nginx.conf"
NGINX_LOG_FILE="$WORK/nginx/error.log"
{
    echo "daemon off;"
    echo "master_process on;"
    echo "worker_processes $BENCH_NGINX_WORKERS;"
    echo "pid $WORK/nginx/nginx.pid;"
    echo "error_log $NGINX_LOG_FILE warn;"
    if [ "$(id -u)" -eq 0 ]; then echo "user root;"; fi
    cat <<EOF
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;
        root $WORK/nginx/root;
        location / { }
    }
}
EOF
} >"$NGINX_CONF"
"$NGINX" -p "$WORK/nginx/" -e "$NGINX_LOG_FILE" -c "$NGINX_CONF" </dev/null >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
wait_listening nginx "$NGINX_PID" "$NGINX_PORT" "$NGINX_LOG_FILE" 20
sleep 0.2
NGINX_WORKER_COUNT=$(pgrep -P "$NGINX_PID" 2>/dev/null | wc -l || true)
NGINX_DESC="worker_processes $BENCH_NGINX_WORKERS ($NGINX_WORKER_COUNT worker processes)"
echo "nginx: pid $NGINX_PID on 127.0.0.1:$NGINX_PORT, $NGINX_DESC, sendfile on, tcp_nodelay on," \
     "access_log off, open_file_cache on, keepalive_requests unlimited"
echo "machine: $(nproc) CPUs (shared by servers and wrk)"

# ------------------------------------------------------------------ objects
section "objects"
# shellcheck disable=SC2086
run_child timeout 600 "$PY" "$BENCH_DIR/hot_read.py" prepare \
    --orbit-port "$S3_PORT" --nginx-port "$NGINX_PORT" \
    --nginx-root "$WORK/nginx/root" --out-dir "$WORK/targets" \
    --access-key "$ROOT_ACCESS_KEY" --secret-key "$ROOT_SECRET_KEY" \
    --expiry 3600 --sizes $BENCH_SIZES \
    || { log_tail "$ORBIT_LOG_FILE"; die "writing or checking the objects failed"; }

# ------------------------------------------------------------------ measure
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# CPU time (user + system, in clock ticks) used so far by the given processes
# (all their threads): the server side's cost per request, which still tells
# when the shared CPUs, not the server, limit ops/s.
cpu_ticks() { # pid...
    local p total=0 t
    for p in "$@"; do
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

run_wrk() { # server port label conns seconds outfile
    local server=$1 port=$2 label=$3 conns=$4 secs=$5 out=$6
    run_child timeout $((secs + 60)) "$WRK" -t"$WRK_THREADS" -c"$conns" -d"${secs}s" \
        --timeout 30s --latency -s "$BENCH_DIR/rotate.lua" \
        "http://127.0.0.1:$port" -- "$WORK/targets/$server-$label.txt" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk against $server ($label) failed"; }
    grep -q '^BENCH_JSON ' "$out" || { cat "$out" >&2; die "wrk against $server ($label) printed no result"; }
}

section "measure (${BENCH_ROUNDS} rounds of ${BENCH_SECONDS}s per cell, ${BENCH_WARMUP_SECONDS}s warm-up, wrk -t$WRK_THREADS)"
for label in $BENCH_SIZES; do
    conns=$("$PY" "$BENCH_DIR/hot_read.py" conns "$label")
    for server in nginx orbit; do
        if [ "$server" = nginx ]; then port=$NGINX_PORT; else port=$S3_PORT; fi
        run_wrk "$server" "$port" "$label" "$conns" "$BENCH_WARMUP_SECONDS" "$WORK/wrk/warm-$server-$label.txt"
    done
    # On a shared machine throughput drifts by tens of percent within minutes:
    # measure the two servers in turn, several times, and compare within rounds.
    for round in $(seq 1 "$BENCH_ROUNDS"); do
    for server in nginx orbit; do
        if [ "$server" = nginx ]; then port=$NGINX_PORT; else port=$S3_PORT; fi
        out="$WORK/wrk/$server-$label-r$round.txt"
        if [ "$server" = nginx ]; then
            # shellcheck disable=SC2207
            pids=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
        else
            pids=("$ORBIT_PID")
        fi
        cpu_before=$(cpu_ticks "${pids[@]}")
        run_wrk "$server" "$port" "$label" "$conns" "$BENCH_SECONDS" "$out"
        cpu_after=$(cpu_ticks "${pids[@]}")
        cpu_s=$(awk -v a="$cpu_after" -v b="$cpu_before" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (a - b) / t }')
        sed -n "s/^BENCH_JSON {/{\"server\": \"$server\", \"size\": \"$label\", \"round\": $round, \"conns\": $conns, \"server_cpu_s\": $cpu_s, /p" \
            "$out" >>"$RESULTS"
        printf '  %-6s round %s %-5s c=%-3s %s\n' "$label" "$round" "$server" "$conns" \
            "$(grep -E '^ *Requests/sec' "$out" | tr -s ' ')"
        check_alive orbit "$ORBIT_PID" "$ORBIT_LOG_FILE"
        check_alive nginx "$NGINX_PID" "$NGINX_LOG_FILE"
    done
    done
done

# ------------------------------------------------------------------ report
section "results"
enforce=()
[ "$BENCH_ENFORCE" = 1 ] && enforce=(--enforce)
report_rc=0
# shellcheck disable=SC2086
"$PY" "$BENCH_DIR/hot_read.py" report --results "$RESULTS" --seconds "$BENCH_SECONDS" \
    --threads "$WRK_THREADS" --nginx-workers "$NGINX_DESC" --sizes $BENCH_SIZES "${enforce[@]}" \
    || report_rc=$?

section "orbit log"
lines=$(wc -l <"$ORBIT_LOG_FILE")
problems=$(grep -cE ' (WARN|ERROR) ' "$ORBIT_LOG_FILE" || true)
echo "$lines lines, $problems WARN/ERROR"
if [ "$problems" -gt 0 ]; then
    grep -E ' (WARN|ERROR) ' "$ORBIT_LOG_FILE" | tail -n 20
fi
nginx_problems=$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$NGINX_LOG_FILE" 2>/dev/null || true)
echo "nginx error log: ${nginx_problems:-0} warn/error lines"
if [ "${nginx_problems:-0}" -gt 0 ]; then
    grep -E '\[(warn|error|crit|alert|emerg)\]' "$NGINX_LOG_FILE" | tail -n 10
fi

exit "$report_rc"
