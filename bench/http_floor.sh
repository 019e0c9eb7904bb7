#!/usr/bin/env bash
# The floor under the hot GET benchmark: nginx against bench/http_floor (hyper
# on Orbit's S3 threading model answering a fixed 4 KiB body, nothing else on
# the path), same wrk load as bench/hot_read.sh's 4 KiB cell, same run.
#
#   bash bench/http_floor.sh
#
# Read it beside hot_read.sh: floor/nginx says what the HTTP stack and the
# threading model allow on this machine; Orbit's CPU per request above the
# floor's is the S3 layer's and Orbit's own.
#
# Installs nginx and wrk (apt-get, as root) when missing; builds
# bench/http_floor with cargo (its own workspace; honours CARGO_TARGET_DIR);
# listens on free loopback ports only; removes its temporary directory on exit.
#
# Environment: BENCH_SECONDS=10 per cell and round, BENCH_ROUNDS=3,
# BENCH_CONNS=16, BENCH_THREADS (floor threads; default one per CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNS=${BENCH_CONNS:-16}
BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
die() { echo "http_floor.sh: error: $*" >&2; exit 1; }
for v in BENCH_SECONDS BENCH_ROUNDS BENCH_CONNS BENCH_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] && [ "${!v}" -le 600 ] || die "$v must be a number from 1 to 600 (got '${!v}')"
done

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "needs ${missing[*]} (apt-get install as root)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build -q --release --manifest-path bench/http_floor/Cargo.toml --target-dir "$TARGET_DIR/http-floor"
FLOOR="$TARGET_DIR/http-floor/release/http-floor"

WORK=$(mktemp -d /tmp/orbit-http-floor.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on port $1"
}

mkdir -p "$WORK/root" "$WORK/tmp"
head -c 4096 /dev/urandom >"$WORK/root/obj"
NGINX_PORT=$(free_port)
FLOOR_PORT=$(free_port)
{
    echo "daemon off; master_process on; worker_processes $(nproc); pid $WORK/nginx.pid;"
    echo "error_log $WORK/error.log warn;"
    if [ "$(id -u)" -eq 0 ]; then echo "user root;"; fi
    cat <<NGINX
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log off; sendfile on; tcp_nodelay on; keepalive_requests 100000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $WORK/tmp;
    server { listen 127.0.0.1:$NGINX_PORT; root $WORK/root; location / { } }
}
NGINX
} >"$WORK/nginx.conf"
"$NGINX" -p "$WORK/" -e "$WORK/error.log" -c "$WORK/nginx.conf" </dev/null >"$WORK/nginx.out" 2>&1 &
PIDS+=($!)
"$FLOOR" "$FLOOR_PORT" "$BENCH_THREADS" </dev/null >"$WORK/floor.out" 2>&1 &
PIDS+=($!)
wait_port "$NGINX_PORT"
wait_port "$FLOOR_PORT"

ops() { # port
    wrk -t2 -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" "http://127.0.0.1:$1/obj" | awk '/^Requests\/sec:/ {print $2}'
}
echo "4 KiB GET, wrk -t2 -c$BENCH_CONNS, ${BENCH_SECONDS}s per cell; nginx $(nproc) workers, floor $BENCH_THREADS threads"
printf '%6s %12s %12s %12s\n' round nginx floor floor/nginx
ratios=()
for r in $(seq 1 "$BENCH_ROUNDS"); do
    n=$(ops "$NGINX_PORT")
    f=$(ops "$FLOOR_PORT")
    [ -n "$n" ] && [ -n "$f" ] || die "wrk printed no result"
    ratio=$(awk -v a="$f" -v b="$n" 'BEGIN { printf "%.2f", a / b }')
    ratios+=("$ratio")
    printf '%6s %12.0f %12.0f %12s\n' "$r" "$n" "$f" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "floor/nginx, median of rounds: $median"
