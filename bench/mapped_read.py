"""What a mapped bucket's consistency mode costs a hot read.

Starts moto (the remote S3 store) and `orbit serve` with a backend `lake` on
it, then reads the same hot objects through three buckets of that backend: a
blob-layout bucket, a mapped bucket in `validate` mode and one in
`exclusive` mode. For each it prints GET latency p50/p99 (sequential boto3
GETs on one kept-alive connection) and the backend requests per GET, from
Orbit's own metrics (`orbit_backend_requests_total` by op).

    ORBIT_BIN=target/release/orbit python bench/mapped_read.py [GETS]

It reuses the end-to-end suite's helpers (tests/e2e/orbit_e2e.py) to run the
servers. Server, moto and client share the machine: compare the rows of one
run, never absolute figures across runs.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

import requests  # noqa: E402
from orbit_e2e import REGION, MotoServer, OrbitServer, s3_backend_toml, unique  # noqa: E402

LAKE = "lake"


def backend_requests(orbit: OrbitServer) -> dict[str, int]:
    text = requests.get(f"{orbit.admin_url}/metrics", timeout=10).text
    out: dict[str, int] = {}
    for m in re.finditer(r'^orbit_backend_requests_total\{([^}]*)\} (\d+)', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("backend") == LAKE:
            out[labels["op"]] = out.get(labels["op"], 0) + int(m.group(2))
    return out


def main() -> None:
    gets = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        moto = MotoServer(Path(tmp) / "moto")
        moto.start()
        orbit = None
        try:
            moto.client().create_bucket(Bucket=LAKE)
            config = s3_backend_toml(
                "lake", kind="s3", endpoint=moto.endpoint, bucket=LAKE, region=REGION, allow_http=True,
                access_key_id=MotoServer.ACCESS_KEY, secret_access_key=MotoServer.SECRET_KEY)
            orbit = OrbitServer(Path(tmp) / "orbit", config_toml=config)
            orbit.start()
            creds = orbit.new_tenant_with_key()
            s3 = orbit.s3(creds)
            buckets = {"blob layout": unique("blob")}
            orbit.cli("bucket", "create", "--tenant", creds.tenant, buckets["blob layout"], "--backend", "lake")
            for mode in ("validate", "exclusive"):
                buckets[f"mapped, {mode}"] = name = unique(mode[:3])
                orbit.cli("bucket", "create", "--tenant", creds.tenant, name, "--backend", "lake",
                          "--location-prefix", unique("loc"), "--mode", mode)
            sizes = {"4 KiB": 4096, "1 MiB": 1 << 20}
            print(f"{gets} sequential GETs per cell, each object hot in Orbit's chunk cache")
            print(f"{'bucket':<20} {'size':>6} {'p50 ms':>8} {'p99 ms':>8} {'backend HEAD/GET':>17} {'backend GET/GET':>16}")
            for label, bucket in buckets.items():
                for size_label, size in sizes.items():
                    data = os.urandom(size)
                    s3.put_object(Bucket=bucket, Key="obj", Body=data)
                    for _ in range(3):  # warm the chunk cache (and, in exclusive mode, the metadata)
                        assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == data
                    before = backend_requests(orbit)
                    lat = []
                    for _ in range(gets):
                        t0 = time.perf_counter()
                        s3.get_object(Bucket=bucket, Key="obj")["Body"].read()
                        lat.append((time.perf_counter() - t0) * 1000)
                    after = backend_requests(orbit)
                    lat.sort()
                    heads = (after.get("head", 0) - before.get("head", 0)) / gets
                    bgets = (after.get("get", 0) - before.get("get", 0)) / gets
                    print(f"{label:<20} {size_label:>6} {statistics.median(lat):>8.2f} "
                          f"{lat[int(len(lat) * 0.99) - 1]:>8.2f} {heads:>17.2f} {bgets:>16.2f}")
        finally:
            if orbit is not None:
                orbit.close()
            moto.close()


if __name__ == "__main__":
    main()
