"""Global namespace figures over an emulated wide-area round trip (issue 4).

    cargo build --release -p orbit
    ORBIT_BIN=$CARGO_TARGET_DIR/release/orbit ~/.cache/orbit-venv/bin/python bench/global_bench.py
    ... bench/global_bench.py --rtt-ms 50 --reads 300 --writes 40 --json figures.json   # the defaults

Four `orbit serve` sites on the multi-site harness (tests/e2e/sites.py):
`home` (the directory site and the home of every bucket here) and three
satellites `sat1`..`sat3`, whose peer traffic crosses delay proxies that add
`--rtt-ms` (default 50 ms) to every round trip between two sites. As root the
sites run in network namespaces (else on loopback; `--mode` chooses). The
benchmark's own clients are local to the site they talk to (no added delay),
as a client in that site's data centre would be. It prints:

1. Read latency of a leased, cached object: GETs of one `--read-size` object
   (4 KiB) at `sat1`, after its first read there fetched it and took a read
   lease, against the same GETs at `home`: p50 and p99 each and the ratio of
   the p50s (target: equal within noise, no round trip), plus the cold
   first read at `sat1` (one round trip or more).
2. Write latency at home with 0, 1 and 3 satellites holding leases: each
   round, every one of those satellites reads the key (so a lease covering
   it is held and the value cached), then `home` PUTs it, timed. One bucket
   per case, so leases of one case do not reach another. p50 and p99, and
   the p50 added to the case with no satellite, in ms and in round trips
   (target: about one round trip, not one per satellite). Each satellite
   then reads the key again: a read that does not return the value just
   written is counted as stale (must be 0).
3. Write throughput at a satellite: `--writers` (4) concurrent clients at
   `sat1` PUT distinct keys of `--small-size` (4 KiB) and of 4 MiB, forwarded
   to home (no write lease), then under a write lease `sat1` took on the
   prefix (acknowledged on `sat1`'s disk, flushed home in the background),
   against the same PUTs at `home`: ops/s and MB/s (1 MB = 10^6 bytes). For
   the write-lease cases, also the time the release took (the flush of what
   was still staged, then the lease given back).

Everything runs on this machine, servers and clients sharing its CPUs:
compare the ratios of one run, never absolute figures across runs. Every
request has a timeout; sites, namespaces and proxies are removed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import hermetic_aws_env  # noqa: E402

hermetic_aws_env()

from botocore.exceptions import ClientError  # noqa: E402

from histories import s3_client  # noqa: E402
from orbit_e2e import unique  # noqa: E402
from sites import Sites  # noqa: E402

HOME = "home"
SATELLITES = ["sat1", "sat2", "sat3"]
LARGE = 4 << 20


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def get_body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


class Bench:
    def __init__(self, sites: Sites, args):
        self.sites = sites
        self.args = args
        directory = sites[HOME]
        self.creds = directory.server.new_tenant_with_key()
        self.s3 = {site.name: s3_client(site.s3_endpoint, self.creds, connect_timeout=5, read_timeout=60)
                   for site in sites}

    def bucket(self, label: str) -> str:
        """A bucket homed at `home`, once every site sees it."""
        name = unique(f"gb-{label}")
        made = self.sites[HOME].cli("bucket", "create", name, "--tenant", self.creds.tenant, "--home", HOME)
        assert made.get("home_site") == HOME, made

        def seen():
            for s3 in self.s3.values():
                try:
                    s3.head_bucket(Bucket=name)
                except ClientError:
                    return False
            return True
        self.sites.wait_for(f"bucket {name} at every site", seen, timeout=30)
        return name

    # ---- 1. reads
    def reads(self) -> dict:
        a = self.args
        bucket = self.bucket("read")
        body = os.urandom(a.read_size)
        self.s3[HOME].put_object(Bucket=bucket, Key="obj", Body=body)
        sat, home = self.s3["sat1"], self.s3[HOME]
        cold = timed(lambda: get_body(sat, bucket, "obj"))
        for _ in range(20):  # warm both connections and paths
            assert get_body(sat, bucket, "obj") == body and get_body(home, bucket, "obj") == body
        at = {"sat1": [], HOME: []}
        # Alternating blocks, so drift in the machine's load hits both alike.
        block = 50
        for _ in range(max(1, a.reads // block)):
            for name, s3 in (("sat1", sat), (HOME, home)):
                for _ in range(block):
                    t = timed(lambda: get_body(s3, bucket, "obj"))
                    at[name].append(t)
        sat_p50, home_p50 = statistics.median(at["sat1"]), statistics.median(at[HOME])
        return {
            "size": a.read_size, "reads_each": len(at["sat1"]), "cold_sat1_ms": ms(cold),
            "sat1_p50_ms": ms(sat_p50), "sat1_p99_ms": ms(pct(at["sat1"], 99)),
            "home_p50_ms": ms(home_p50), "home_p99_ms": ms(pct(at[HOME], 99)),
            "ratio_p50": round(sat_p50 / home_p50, 2),
            "no_round_trip": sat_p50 - home_p50 < a.rtt_ms / 1000 / 2,
        }

    # ---- 2. writes at home with lease holders
    def writes_with_holders(self) -> dict:
        a = self.args
        out = {}
        for holders in (0, 1, 3):
            bucket = self.bucket(f"w{holders}")
            readers = [self.s3[s] for s in SATELLITES[:holders]]
            key = "hot"
            self.s3[HOME].put_object(Bucket=bucket, Key=key, Body=b"v-init")
            lat, stale = [], 0
            for i in range(a.writes + 3):
                for r in readers:
                    get_body(r, bucket, key)  # a lease covering the key, the value cached
                value = f"v-{holders}-{i}".encode()
                t = timed(lambda: self.s3[HOME].put_object(Bucket=bucket, Key=key, Body=value))
                if i >= 3:  # the first rounds set up connections and leases
                    lat.append(t)
                for r in readers:
                    stale += get_body(r, bucket, key) != value
            out[holders] = {"p50_ms": ms(statistics.median(lat)), "p99_ms": ms(pct(lat, 99)), "writes": len(lat),
                            "stale_reads": stale}
        base = out[0]["p50_ms"]
        for holders, r in out.items():
            r["added_ms"] = round(r["p50_ms"] - base, 2)
            r["added_round_trips"] = round(r["added_ms"] / a.rtt_ms, 2)
        return out

    # ---- 3. throughput of writes forwarded from a satellite
    def throughput(self) -> dict:
        a = self.args
        bucket = self.bucket("tp")
        out = {}
        for label, size, count in (("small", a.small_size, a.small_count), ("4MiB", LARGE, a.large_count)):
            body = os.urandom(size)
            for site in ("sat1", HOME):
                out[f"{label}@{site}"] = self._parallel_puts(site, bucket, f"{label}/{site}/", body, count)
            prefix = f"{label}/leased/"
            lease = self.sites["sat1"].cli("site", "acquire", "--tenant", self.creds.tenant, "--bucket", bucket,
                                           "--prefix", prefix)
            leased = self._parallel_puts("sat1", bucket, prefix, body, count)
            t0 = time.perf_counter()
            released = self.sites["sat1"].cli("site", "release", lease["lease"], "--wait-ms", "600000", timeout=700)
            assert released["released"], released
            leased["release_s"] = round(time.perf_counter() - t0, 3)
            out[f"{label}@sat1+lease"] = leased
        return out

    def _parallel_puts(self, site: str, bucket: str, prefix: str, body: bytes, count: int) -> dict:
        writers = self.args.writers
        clients = [s3_client(self.sites[site].s3_endpoint, self.creds, connect_timeout=5, read_timeout=120)
                   for _ in range(writers)]
        clients[0].put_object(Bucket=bucket, Key=prefix + "warm", Body=body)
        errors: list[str] = []

        def work(w: int):
            try:
                for i in range(w, count, writers):
                    clients[w].put_object(Bucket=bucket, Key=f"{prefix}{i}", Body=body)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{type(e).__name__}: {e}")
        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"PUTs at {site} failed: {errors[:3]}")
        return {"size": len(body), "puts": count, "writers": writers, "seconds": round(elapsed, 3),
                "ops_per_s": round(count / elapsed, 1), "mb_per_s": round(count * len(body) / elapsed / 1e6, 2)}


def report(r: dict, rtt_ms: float, mode: str) -> None:
    print(f"\nglobal namespace over an emulated {rtt_ms:g} ms round trip ({mode} mode)")
    rd = r["reads"]
    print(f"\n1. GET of a leased, cached {rd['size']} B object ({rd['reads_each']} each)")
    print(f"   {'site':<8} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"   {'sat1':<8} {rd['sat1_p50_ms']:>8} {rd['sat1_p99_ms']:>8}")
    print(f"   {'home':<8} {rd['home_p50_ms']:>8} {rd['home_p99_ms']:>8}")
    print(f"   ratio sat1/home p50 {rd['ratio_p50']}; cold first read at sat1 {rd['cold_sat1_ms']} ms; "
          f"{'no round trip' if rd['no_round_trip'] else 'A ROUND TRIP OR MORE (target missed)'}")
    print("\n2. PUT at home with satellites holding leases on the key")
    print(f"   {'holders':<8} {'p50 ms':>8} {'p99 ms':>8} {'added ms':>9} {'added RTT':>10} {'stale':>6}")
    for holders, w in r["writes"].items():
        print(f"   {holders:<8} {w['p50_ms']:>8} {w['p99_ms']:>8} {w['added_ms']:>9} {w['added_round_trips']:>10} "
              f"{w['stale_reads']:>6}")
    print("\n3. PUT throughput at sat1, forwarded to home or under a write lease, against PUTs at home")
    print(f"   {'case':<18} {'puts':>5} {'writers':>7} {'ops/s':>8} {'MB/s':>8} {'release s':>10}")
    for case, t in r["throughput"].items():
        print(f"   {case:<18} {t['puts']:>5} {t['writers']:>7} {t['ops_per_s']:>8} {t['mb_per_s']:>8} "
              f"{t.get('release_s', '-'):>10}")
    for label in ("small", "4MiB"):
        tp = r["throughput"]
        fwd, lease, home = tp[f"{label}@sat1"], tp[f"{label}@sat1+lease"], tp[f"{label}@{HOME}"]
        print(f"   {label}: under a write lease {round(lease['ops_per_s'] / fwd['ops_per_s'], 2)}x forwarding, "
              f"{round(lease['ops_per_s'] / home['ops_per_s'], 2)}x home")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtt-ms", type=float, default=50.0, help="round trip added between two sites")
    ap.add_argument("--mode", choices=["netns", "loopback"], default=None, help="default: netns as root")
    ap.add_argument("--reads", type=int, default=300, help="timed GETs at each of sat1 and home")
    ap.add_argument("--read-size", type=int, default=4096)
    ap.add_argument("--writes", type=int, default=40, help="timed PUTs per number of lease holders")
    ap.add_argument("--writers", type=int, default=4, help="concurrent clients for the throughput runs")
    ap.add_argument("--small-size", type=int, default=4096)
    ap.add_argument("--small-count", type=int, default=400)
    ap.add_argument("--large-count", type=int, default=24)
    ap.add_argument("--read-lease-ms", type=int, default=10_000)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the sites' directories (logs) after the run")
    args = ap.parse_args()
    if not os.environ.get("ORBIT_BIN"):
        release = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "orbit"
        os.environ["ORBIT_BIN"] = str(release)
    if not Path(os.environ["ORBIT_BIN"]).exists():
        print(f"global_bench: no orbit binary at {os.environ['ORBIT_BIN']} (cargo build --release -p orbit, "
              "or set ORBIT_BIN)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="orbit-global-bench-"))
    sites = Sites(work, [HOME, *SATELLITES], mode=args.mode, delay_ms=args.rtt_ms / 2, directory_site=HOME,
                  leases={"read_lease_ms": args.read_lease_ms})
    try:
        try:
            sites.start()
        except RuntimeError as e:
            for key in ("directory_site", "leases"):
                if f"unknown field `{key}`" in str(e):
                    print(f"global_bench: this orbit binary has no global namespace (its config rejects `{key}`)",
                          file=sys.stderr)
                    return 2
            raise
        sites.wait_all_reachable(timeout=60)
        bench = Bench(sites, args)
        results = {"rtt_ms": args.rtt_ms, "mode": sites.mode, "orbit_bin": os.environ["ORBIT_BIN"],
                   "reads": bench.reads(), "writes": bench.writes_with_holders(), "throughput": bench.throughput()}
    except Exception:
        print(sites.log_tails(40), file=sys.stderr)
        raise
    finally:
        sites.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args.rtt_ms, results["mode"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    stale = sum(w["stale_reads"] for w in results["writes"].values())
    if stale:
        print(f"\nERROR: {stale} satellite reads after an acknowledged write returned an older value",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
