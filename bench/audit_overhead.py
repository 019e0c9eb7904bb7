"""Cost of the audit log on the S3 hot path: hot 4 KiB GETs (wrk, presigned
URLs, 2 threads, 16 connections) of one tenant with data-access audit off,
on, then off again, against one `orbit serve`. Prints ops/s and p99 per
phase and the ratio on/off, and checks that every GET of the "on" phase
was recorded (the audit chain verifies afterwards).

    ORBIT_BIN=target/release/orbit ~/.cache/orbit-venv/bin/python bench/audit_overhead.py [--seconds 10]

Server and wrk share the machine's CPUs: compare the ratio of one run, never
absolute figures across runs. Uses tests/e2e/orbit_e2e.py to run the server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
for var in list(os.environ):
    if var.startswith("AWS_") and var != "AWS_CA_BUNDLE":
        del os.environ[var]

from orbit_e2e import OrbitServer  # noqa: E402


def wrk(server: OrbitServer, paths: Path, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(REPO / "bench" / "rotate.lua"),
         server.s3_endpoint, "--", str(paths)],
        capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("BENCH_JSON "))
    r = json.loads(line[len("BENCH_JSON "):])
    r["ops"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def chain_length(server: OrbitServer, tenant: str) -> int:
    """Records in the tenant's chain (verify flushes the queue first)."""
    return server.cli("audit", "verify", "--tenant", tenant)["chains"][0]["records"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="orbit-audit-bench-") as tmp:
        server = OrbitServer(Path(tmp))
        server.start()
        try:
            creds = server.new_tenant_with_key(model="self-managed")
            s3 = server.s3(creds)
            s3.create_bucket(Bucket="hot")
            targets = []
            for i in range(16):
                s3.put_object(Bucket="hot", Key=f"obj-{i}", Body=os.urandom(4096))
                url = s3.generate_presigned_url("get_object", Params={"Bucket": "hot", "Key": f"obj-{i}"},
                                                ExpiresIn=3600)
                u = urlsplit(url)
                targets.append(f"{u.path}?{u.query}")
            paths = Path(tmp) / "paths.txt"
            paths.write_text("\n".join(targets) + "\n")
            wrk(server, paths, 2)  # warm-up
            results = {}
            for phase, on in (("off", False), ("on", True), ("off again", False)):
                server.cli("audit", "data-access", "--tenant", creds.tenant, "on" if on else "off")
                before = chain_length(server, creds.tenant)
                r = wrk(server, paths, args.seconds)
                # The settings change itself is one record of the chain.
                r["recorded"] = chain_length(server, creds.tenant) - before
                results[phase] = r
                errors = sum(v for k, v in r.items() if k.startswith("errors_"))
                print(f"{phase:>9}: {r['ops']:8.0f} GET/s  p50 {r['lat_p50_us'] / 1000:6.2f} ms  "
                      f"p99 {r['lat_p99_us'] / 1000:6.2f} ms  errors {errors}  audit records {r['recorded']}")
            off = (results["off"]["ops"] + results["off again"]["ops"]) / 2
            print(f"ratio on/off (ops/s): {results['on']['ops'] / off:.2f}")
            verdict = server.cli("audit", "verify", "--tenant", creds.tenant)
            print(f"chain verifies: {verdict['ok']}")
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
