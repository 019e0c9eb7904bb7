"""How fast the directory reaches the other sites, and what an idle mirror
costs: three sites on the multi-site harness (tests/e2e/sites.py), `eu` the
directory site, a delay proxy of ONE_WAY ms each way between sites.

Measures, at satellite `us`:
- a key created at `eu`: time from `orbit key create` returning to the first
  successful ListBuckets with it at `us` (the unknown key pulls at once),
  beside ListBuckets with a key `us` already has;
- a key deleted at `eu`: time until `us` refuses it (polled every 20 ms;
  bound: one pull interval plus a round trip);
- S3 CreateBucket at `us` (forwarded to `eu`) beside CreateBucket at `eu`;
- peer bytes `us` sends and receives while nothing changes (the unchanged
  pulls, plus liveness pings).

    ORBIT_BIN=$CARGO_TARGET_DIR/debug/orbit ~/.cache/orbit-venv/bin/python bench/directory_sync.py [--one-way-ms 25] [--rounds 10]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
for var in list(os.environ):
    if var.startswith("AWS_") and var != "AWS_CA_BUNDLE":
        del os.environ[var]

from orbit_e2e import unique  # noqa: E402
from sites import Sites  # noqa: E402


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
    return f"median {statistics.median(xs) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms (n={len(xs)})"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one-way-ms", type=float, default=25.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    args = ap.parse_args()
    master = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as tmp:
        sites = Sites(Path(tmp), ["eu", "us", "asia"], delay_ms=args.one_way_ms,
                      extra_toml='directory_site = "eu"\n', extra_env={"ORBIT_MASTER_KEY": master})
        try:
            sites.start()
            eu, us = sites["eu"], sites["us"]
            tenant = eu.server.new_tenant(model="self-managed")
            user = eu.server.new_user(tenant)
            known = eu.server.new_key(tenant, user)
            us.s3(known).list_buckets()
            print(f"sites: {sites.mode}, {args.one_way_ms} ms one way between sites; pull interval 1000 ms")

            baseline, fresh = [], []
            known_client = us.s3(known)
            for _ in range(args.rounds):
                baseline.append(timed(known_client.list_buckets))
                creds = eu.server.new_key(tenant, user)
                client = us.s3(creds)
                fresh.append(timed(client.list_buckets))
            print(f"ListBuckets at us, known key:               {ms(baseline)}")
            print(f"ListBuckets at us, key created at eu just now: {ms(fresh)}")

            refused = []
            for _ in range(max(3, args.rounds // 2)):
                creds = eu.server.new_key(tenant, user)
                client = us.s3(creds)
                client.list_buckets()
                eu.cli("key", "delete", "--tenant", tenant, creds.access_key)
                t = time.perf_counter()
                while True:
                    try:
                        client.list_buckets()
                    except Exception:
                        break
                    time.sleep(0.02)
                refused.append(time.perf_counter() - t)
            print(f"key deleted at eu -> refused at us:          {ms(refused)}")

            at_us, at_eu = [], []
            s3_us, s3_eu = us.s3(known), eu.s3(known)
            for _ in range(args.rounds):
                at_us.append(timed(lambda: s3_us.create_bucket(Bucket=unique("b"))))
                at_eu.append(timed(lambda: s3_eu.create_bucket(Bucket=unique("b"))))
            print(f"CreateBucket at us (forwarded to eu):        {ms(at_us)}")
            print(f"CreateBucket at eu (local):                  {ms(at_eu)}")

            def peer_bytes() -> float:
                return sum(us.metric("orbit_peer_bytes_total", peer=p, direction=d)
                           for p in ("eu", "asia") for d in ("in", "out"))
            before = peer_bytes()
            time.sleep(args.idle_seconds)
            rate = (peer_bytes() - before) / args.idle_seconds
            print(f"idle peer traffic at us (pulls + pings):     {rate:.0f} bytes/s "
                  f"({int(us.metric('orbit_directory_sync_total', outcome='unchanged'))} unchanged pulls so far)")
        finally:
            sites.close()


if __name__ == "__main__":
    main()
