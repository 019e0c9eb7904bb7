"""Helper for bench/hot_read.sh (run with the benchmark's virtualenv python).

  prepare  write the same random objects to nginx's root and to an Orbit
           bucket (boto3, operator key), make SigV4 presigned GET URLs for
           Orbit, check one GET per object on both servers byte for byte, and
           write the wrk request-target files (one path?query per line).
  report   turn the results of the wrk runs into the table and the
           orbit/nginx ratios; exit 3 with BENCH_ENFORCE=1 when a target is
           missed or any run had errors.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from benchlib import hermetic_aws_env

MiB = 1024 * 1024

# label -> (size in bytes, distinct objects, wrk connections, target ratio of nginx ops/s)
SIZES = {
    "4KiB": (4 * 1024, 16, 16, 0.6),
    "1MiB": (1 * MiB, 8, 4, 0.8),
    "64MiB": (64 * MiB, 4, 4, 0.8),
}
BUCKET = "hot-read-bench"
PREFIX = "hot"


def key_for(label: str, i: int) -> str:
    return f"{PREFIX}/{label.lower()}-{i:02d}.bin"




def http_get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method="GET")
    # No proxy, ever: the servers are on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def prepare(args: argparse.Namespace) -> int:
    hermetic_aws_env()
    import boto3
    from botocore.config import Config

    endpoint = f"http://127.0.0.1:{args.orbit_port}"
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=cfg,
    )
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass

    nginx_root = Path(args.nginx_root)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    for label in args.sizes:
        size, count, _conns, _target = SIZES[label]
        t0 = time.monotonic()
        orbit_targets, nginx_targets = [], []
        for i in range(count):
            # Random (incompressible) bytes, different per object.
            data = os.urandom(size)
            digest = hashlib.sha256(data).hexdigest()
            key = key_for(label, i)

            path = nginx_root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            nginx_targets.append("/" + key)

            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
            url = s3.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=args.expiry
            )
            parts = urlsplit(url)
            if parts.hostname != "127.0.0.1":
                raise SystemExit(f"presigned URL has an unexpected host: {url}")
            orbit_targets.append(parts.path + ("?" + parts.query if parts.query else ""))

            # One checked GET per object and server (this also starts warming).
            for name, u in (
                ("orbit", f"{endpoint}{orbit_targets[-1]}"),
                ("nginx", f"http://127.0.0.1:{args.nginx_port}{nginx_targets[-1]}"),
            ):
                status, body = http_get(u)
                if status != 200 or hashlib.sha256(body).hexdigest() != digest:
                    raise SystemExit(
                        f"check GET of {key} from {name} failed: HTTP {status}, "
                        f"{len(body)} bytes (expected {size}); body starts {body[:300]!r}"
                    )
            del data
        (out / f"orbit-{label}.txt").write_text("\n".join(orbit_targets) + "\n")
        (out / f"nginx-{label}.txt").write_text("\n".join(nginx_targets) + "\n")
        print(f"  {label}: {count} objects written to nginx root and s3://{BUCKET}/{PREFIX}/, "
              f"checked byte for byte on both ({time.monotonic() - t0:.1f} s)")
    return 0


def report(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    problems = []
    for r in rows:
        secs = r["duration_us"] / 1e6
        r["ops"] = r["requests"] / secs if secs > 0 else 0.0
    # Per (server, size): the round with the median ops/s represents it; the
    # ratio is the median of the rounds' own ratios (each round measures both
    # servers back to back, so drift of the machine cancels out within it).
    rounds: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        rounds.setdefault((r["server"], r["size"]), []).append(r)
    by = {k: sorted(v, key=lambda r: r["ops"])[len(v) // 2] for k, v in rounds.items()}

    print()
    n_rounds = max((r.get("round", 1) for r in rows), default=0)
    print(f"Hot GET, {args.seconds} s per cell, each row the median of {n_rounds} round(s), "
          f"wrk -t{args.threads}, nginx {args.nginx_workers}")
    hdr = (f"{'size':>6} {'conns':>5} {'server':<6} {'ops/s':>10} {'MiB/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
           f"{'CPU us/op':>10} {'errors':>7}")
    print(hdr)
    print("-" * len(hdr))
    for label in args.sizes:
        size, _count, conns, _target = SIZES[label]
        for server in ("nginx", "orbit"):
            r = by.get((server, label))
            if r is None:
                print(f"{label:>6} {conns:>5} {server:<6} {'(no result)':>10}")
                problems.append(f"{server} {label}: no result")
                continue
            ops = r["ops"]
            mibs = ops * size / MiB
            errors = sum(x[k] for x in rounds[(server, label)] for k in x if k.startswith("errors_"))
            r["mibs"] = mibs
            r["errors"] = errors
            r["cpu_us_op"] = r["server_cpu_s"] * 1e6 / r["requests"] if r.get("requests") else float("nan")
            if errors:
                problems.append(f"{server} {label}: {errors} errors "
                                f"({', '.join(f'{k[7:]}={r[k]}' for k in r if k.startswith('errors_') and r[k])})")
            if r["requests"] and r["bytes"] / r["requests"] < size:
                problems.append(f"{server} {label}: responses average {r['bytes'] / r['requests']:.0f} bytes, "
                                f"less than the object size {size}")
            print(f"{label:>6} {conns:>5} {server:<6} {ops:>10.1f} {mibs:>9.1f} "
                  f"{r['lat_p50_us'] / 1000:>8.2f} {r['lat_p99_us'] / 1000:>8.2f} "
                  f"{r['cpu_us_op']:>10.1f} {errors:>7d}")

    print()
    print(f"{'size':>6} {'orbit/nginx ops/s':>18} {'target':>7}  {'verdict':<13} {'orbit/nginx CPU per op':>22}"
          f"  ratio by round")
    missed = []
    for label in args.sizes:
        _size, _count, _conns, target = SIZES[label]
        n, o = by.get(("nginx", label)), by.get(("orbit", label))
        if not n or not o or not n.get("ops"):
            print(f"{label:>6} {'n/a':>18} {target:>7.2f}  no data")
            missed.append(label)
            continue
        per_round = {r.get("round", 1): r["ops"] for r in rounds[("nginx", label)] if r["ops"]}
        ratios = sorted(x["ops"] / per_round[x.get("round", 1)] for x in rounds[("orbit", label)]
                        if x.get("round", 1) in per_round)
        ratio = ratios[len(ratios) // 2] if ratios else o["ops"] / n["ops"]
        ok = ratio >= target
        if not ok:
            missed.append(label)
        cpu = o["cpu_us_op"] / n["cpu_us_op"] if n.get("cpu_us_op") else float("nan")
        spread = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{label:>6} {ratio:>18.3f} {target:>7.2f}  {'meets target' if ok else 'BELOW target':<13} {cpu:>21.1f}x"
              f"  {spread}")

    if problems:
        print()
        print("problems:")
        for p in problems:
            print(f"  - {p}")
    print()
    print("Server and load generator share this machine's CPUs: compare the ratios, not absolute figures.")
    print("CPU us/op is the server's own CPU time (all processes and threads) per request during the")
    print("measured run; where nginx's is far below the CPU available, wrk (the client) or other load")
    print("limits ops/s, and the ops/s ratio understates the servers' difference.")
    if args.enforce and (missed or problems):
        return 3
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    pp = sub.add_parser("prepare")
    pp.add_argument("--orbit-port", type=int, required=True)
    pp.add_argument("--nginx-port", type=int, required=True)
    pp.add_argument("--nginx-root", required=True)
    pp.add_argument("--out-dir", required=True)
    pp.add_argument("--access-key", required=True)
    pp.add_argument("--secret-key", required=True)
    pp.add_argument("--expiry", type=int, default=3600)
    pp.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))

    rp = sub.add_parser("report")
    rp.add_argument("--results", required=True)
    rp.add_argument("--seconds", required=True)
    rp.add_argument("--threads", required=True)
    rp.add_argument("--nginx-workers", required=True)
    rp.add_argument("--enforce", action="store_true")
    rp.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))

    sp = sub.add_parser("conns")
    sp.add_argument("label", choices=list(SIZES))

    args = p.parse_args()
    if args.cmd == "prepare":
        return prepare(args)
    if args.cmd == "report":
        return report(args)
    if args.cmd == "conns":
        print(SIZES[args.label][2])
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
