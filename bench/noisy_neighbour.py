"""Noisy neighbour: how much one tenant's flood slows another tenant's small GETs.

  run      set up two tenants on a running Orbit (through the orbit CLI,
           operator credentials from ORBIT_ACCESS_KEY/ORBIT_SECRET_KEY),
           then measure the quiet tenant's GET latency (p50, p99) alone,
           during an unlimited flood, and during the same flood with the
           flooding tenant limited; print a table and the ratios.

The quiet tenant sends one 4 KiB GET every --interval seconds, one at a
time. The flooding tenant runs --procs processes of --threads boto3 clients
each (one connection per client, retries off) doing GETs of --flood-size
objects as fast as they can; a refused (503 SlowDown) request is counted
and sent again at once, the worst case for the server. Client processes
and server share the machine's CPUs: compare ratios of one run.

`measure()` is also used by tests/e2e/test_qos.py. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import hermetic_aws_env  # noqa: E402

KiB = 1024
MiB = 1024 * KiB


def client(endpoint: str, access_key: str, secret_key: str, max_attempts: int = 0):
    """A boto3 client; `max_attempts` counts retries (botocore's meaning), none by default."""
    import boto3
    from botocore.config import Config

    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"max_attempts": max_attempts, "mode": "standard"},
                 connect_timeout=10, read_timeout=60, max_pool_connections=4)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=cfg)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def quiet_latencies(s3, bucket: str, key: str, count: int, interval: float) -> list[float]:
    """Milliseconds of `count` GETs, one every `interval` seconds."""
    out = []
    next_at = time.monotonic()
    for _ in range(count):
        started = time.monotonic()
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        out.append((time.monotonic() - started) * 1000)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    return out


def _flood_process(endpoint, access_key, secret_key, bucket, key, threads, stop, ready, results):
    from botocore.exceptions import ClientError

    hermetic_aws_env()
    counts = {"ok": 0, "slowdown": 0, "other": 0, "bytes": 0}
    lock = threading.Lock()

    clients = [client(endpoint, access_key, secret_key) for _ in range(threads)]
    ready.put(os.getpid())

    def worker(s3):
        ok = slow = other = nbytes = 0
        while not stop.is_set():
            try:
                nbytes += len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                ok += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "SlowDown":
                    slow += 1
                else:
                    other += 1
            except Exception:  # noqa: BLE001 - a dropped connection counts, the flood goes on
                other += 1
        with lock:
            counts["ok"] += ok
            counts["slowdown"] += slow
            counts["other"] += other
            counts["bytes"] += nbytes

    ts = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results.put(counts)


class Flood:
    """A flood of GETs from other processes, until stopped."""

    def __init__(self, endpoint, creds, bucket, key, procs, threads):
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.ready = ctx.Queue()
        self.results = ctx.Queue()
        self.procs = [ctx.Process(target=_flood_process,
                                  args=(endpoint, creds[0], creds[1], bucket, key, threads,
                                        self.stop, self.ready, self.results), daemon=True)
                      for _ in range(procs)]
        self.started = 0.0

    def __enter__(self):
        for p in self.procs:
            p.start()
        # Starting Python processes with boto3 takes seconds on a busy machine.
        for _ in self.procs:
            self.ready.get(timeout=120)
        self.started = time.monotonic()
        return self

    def finish(self) -> dict:
        self.stop.set()
        total = {"ok": 0, "slowdown": 0, "other": 0, "bytes": 0}
        for _ in self.procs:
            for k, v in self.results.get(timeout=120).items():
                total[k] += v
        for p in self.procs:
            p.join(timeout=30)
        total["seconds"] = time.monotonic() - self.started
        return total

    def __exit__(self, *exc):
        if not self.stop.is_set():
            self.finish()
        for p in self.procs:
            if p.is_alive():
                p.kill()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 when unknown)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(lat: list[float]) -> dict:
    return {"p50_ms": statistics.median(lat), "p99_ms": percentile(lat, 99), "n": len(lat)}


def measure(endpoint: str, quiet: tuple, quiet_bucket: str, quiet_key: str,
            flooder: tuple, flood_bucket: str, flood_key: str, *, limit, unlimit,
            procs: int = 2, threads: int = 8, count: int = 200, interval: float = 0.02,
            ramp: float = 1.0, phases=("alone", "flood-unlimited", "flood-limited"),
            server_pid: int | None = None) -> dict:
    """Latency of the quiet tenant per phase. `limit()`/`unlimit()` set and
    clear the flooding tenant's limits."""
    s3 = client(endpoint, *quiet)
    quiet_latencies(s3, quiet_bucket, quiet_key, 20, 0.005)  # warm the connection and cache
    out = {}
    for phase in phases:
        if phase == "alone":
            cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
            out[phase] = summary(quiet_latencies(s3, quiet_bucket, quiet_key, count, interval))
            out[phase]["server_cpu"] = (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
            continue
        (limit if phase == "flood-limited" else unlimit)()
        with Flood(endpoint, flooder, flood_bucket, flood_key, procs, threads) as flood:
            time.sleep(ramp)  # let the flood reach its pace before measuring
            cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
            lat = quiet_latencies(s3, quiet_bucket, quiet_key, count, interval)
            cpu = (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
            f = flood.finish()
        out[phase] = summary(lat) | {"flood": f, "server_cpu": cpu}
    unlimit()
    return out


# ---------------------------------------------------------------- CLI driver

def orbit_cli(*args: str) -> dict | None:
    cmd = [os.environ["ORBIT_BIN"], *args, "--output", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    return json.loads(p.stdout) if p.stdout.strip() else None


def tenant_with_key(name: str) -> tuple[str, str]:
    orbit_cli("tenant", "create", name)
    orbit_cli("user", "create", "--tenant", name, "app", "--role", "read-write")
    k = orbit_cli("key", "create", "--tenant", name, "--user", "app")
    return k["access_key_id"], k["secret_access_key"]


def run(args: argparse.Namespace) -> int:
    hermetic_aws_env()
    tag = uuid.uuid4().hex[:6]
    quiet_t, flood_t = f"quiet-{tag}", f"flood-{tag}"
    quiet, flooder = tenant_with_key(quiet_t), tenant_with_key(flood_t)
    qs3, fs3 = client(args.endpoint, *quiet), client(args.endpoint, *flooder)
    qs3.create_bucket(Bucket="data")
    qs3.put_object(Bucket="data", Key="small", Body=os.urandom(4 * KiB))
    fs3.create_bucket(Bucket="data")
    fs3.put_object(Bucket="data", Key="flood", Body=os.urandom(args.flood_size))

    limit_args = ["--read-rps", str(args.limit_rps)]
    if args.limit_bps:
        limit_args += ["--read-bps", args.limit_bps]
    res = measure(args.endpoint, quiet, "data", "small", flooder, "data", "flood",
                  limit=lambda: orbit_cli("qos", "set", "--tenant", flood_t, *limit_args),
                  unlimit=lambda: orbit_cli("qos", "clear", "--tenant", flood_t),
                  procs=args.procs, threads=args.threads, count=args.count, interval=args.interval,
                  server_pid=args.server_pid)

    alone = res["alone"]
    print(f"quiet tenant: one 4 KiB GET every {args.interval * 1000:.0f} ms, {args.count} per phase; "
          f"flood: {args.procs}x{args.threads} connections of {args.flood_size // KiB} KiB GETs; "
          f"limit: {' '.join(limit_args)}")
    print(f"{'phase':<16} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7} "
          f"{'flood ok/s':>11} {'flood 503/s':>12} {'flood MiB/s':>12} {'server CPUs':>12}")
    for phase, r in res.items():
        f = r.get("flood")
        fl = ("", "", "") if f is None else (
            f"{f['ok'] / f['seconds']:.0f}", f"{f['slowdown'] / f['seconds']:.0f}",
            f"{f['bytes'] / MiB / f['seconds']:.1f}")
        print(f"{phase:<16} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['p50_ms'] / alone['p50_ms']:>7.2f} "
              f"{r['p99_ms'] / alone['p99_ms']:>7.2f} {fl[0]:>11} {fl[1]:>12} {fl[2]:>12} "
              f"{r['server_cpu']:>12.2f}")
    print("BENCH_JSON " + json.dumps(res))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--endpoint", required=True)
    r.add_argument("--procs", type=int, default=2)
    r.add_argument("--threads", type=int, default=8)
    r.add_argument("--count", type=int, default=300)
    r.add_argument("--interval", type=float, default=0.02)
    r.add_argument("--flood-size", type=int, default=256 * KiB)
    r.add_argument("--limit-rps", type=int, default=50)
    r.add_argument("--limit-bps", default="8MiB")
    r.add_argument("--server-pid", type=int, help="report this process's CPU use per phase")
    args = ap.parse_args()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
