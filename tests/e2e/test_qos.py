"""QoS: request-rate limits answered with S3 SlowDown (503, Retry-After),
bandwidth limits that pace bodies, per-bucket and per-tenant scopes, who may
set limits, bad values, and a noisy-neighbour bound."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from orbit_e2e import MiB, admin_error, client_error, unique

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import noisy_neighbour  # noqa: E402


def qos(orbit, tenant, *args, bucket=None, creds=None, check=True):
    scope = ["--tenant", tenant] + (["--bucket", bucket] if bucket else [])
    return orbit.cli("qos", *args[:1], *scope, *args[1:], creds=creds, check=check)


@pytest.fixture
def tenant(orbit):
    """A tenant with a read-write key and a bucket holding a small object."""
    creds = orbit.new_tenant_with_key()
    # No retries (botocore's max_attempts counts retries): every refusal is seen.
    s3 = orbit.s3(creds, max_attempts=0)
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 1024)
    return creds, s3, bucket


def count_reads(s3, bucket, seconds, threads=4):
    """GET as fast as a few clients can for `seconds`: (accepted, refused,
    one refusal's (status, code, Retry-After))."""
    deadline = time.monotonic() + seconds
    ok, refused, sample = [0], [0], []
    lock = threading.Lock()

    def worker():
        while time.monotonic() < deadline:
            try:
                s3.get_object(Bucket=bucket, Key="small")["Body"].read()
                with lock:
                    ok[0] += 1
            except ClientError as exc:
                status, code, _ = client_error(exc)
                headers = exc.response["ResponseMetadata"]["HTTPHeaders"]
                with lock:
                    refused[0] += 1
                    if not sample or sample[-1][1] != code:
                        sample.append((status, code, headers.get("retry-after")))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ok[0], refused[0], sample


def test_read_rate_limit_holds_and_the_rest_get_slowdown(orbit, tenant):
    creds, s3, bucket = tenant
    # Low enough that a few boto3 clients on a busy 2-core machine outpace it.
    rate, burst_s, window = 5, 1.0, 5.0
    out = qos(orbit, creds.tenant, "set", "--read-rps", str(rate), "--burst-seconds", str(burst_s))
    assert out["limits"]["read_rps"] == rate and out["limits"]["burst_seconds"] == burst_s
    ok, refused, sample = count_reads(s3, bucket, window)
    expected = rate * window + rate * burst_s
    # Within a few percent (plus one request for the edges of the window).
    assert abs(ok - expected) <= 0.05 * expected + 1, (ok, expected, refused)
    assert refused >= 10, "the clients did not outpace the limit; the test proves nothing"
    assert {s[:2] for s in sample} == {(503, "SlowDown")}, sample
    assert all(s[2] is not None and int(s[2]) >= 1 for s in sample), sample
    # Writes have their own (unset) limit.
    s3.put_object(Bucket=bucket, Key="w", Body=b"w")
    # Refusals are counted by direction, with no tenant or bucket names.
    text = requests.get(orbit.admin_url + "/metrics", timeout=10).text
    lines = [ln for ln in text.splitlines() if ln.startswith("orbit_qos_throttled_total")]
    assert any('direction="read"' in ln and float(ln.split()[-1]) >= refused for ln in lines), lines
    assert creds.tenant not in text and bucket not in text


def test_sdk_retries_of_slowdown_succeed(orbit, tenant):
    creds, s3, bucket = tenant
    qos(orbit, creds.tenant, "set", "--read-rps", "2", "--burst-seconds", "1")
    for _ in range(2):
        s3.get_object(Bucket=bucket, Key="small")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="small")
    assert client_error(exc.value)[:2] == (503, "SlowDown")
    # A client with the SDK's standard retries backs off and gets through.
    patient = orbit.s3(creds, max_attempts=6)
    for _ in range(4):
        assert patient.get_object(Bucket=bucket, Key="small")["Body"].read() == b"x" * 1024


def paced_seconds(fn):
    started = time.monotonic()
    fn()
    return time.monotonic() - started


@pytest.mark.parametrize("direction", ["read", "write"])
def test_bandwidth_limit_holds_for_a_large_object(orbit, tenant, direction):
    creds, s3, bucket = tenant
    rate, size = 2 * MiB, 10 * MiB
    body = os.urandom(size)
    if direction == "read":
        s3.put_object(Bucket=bucket, Key="big", Body=body)
    qos(orbit, creds.tenant, "set", f"--{direction}-bps", "2MiB", "--burst-seconds", "1")
    if direction == "read":
        got = []
        secs = paced_seconds(lambda: got.append(s3.get_object(Bucket=bucket, Key="big")["Body"].read()))
        assert got[0] == body
    else:
        secs = paced_seconds(lambda: s3.put_object(Bucket=bucket, Key="big", Body=body))
        assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == size
    # One second's burst goes at once, the rest at the rate: never faster
    # than the limit (by more than a few percent); slower only by the
    # machine's own speed (generous: half the rate).
    achieved = (size - rate) / secs
    assert achieved <= rate * 1.05, f"{achieved / MiB:.2f} MiB/s over a 2 MiB/s limit ({secs:.2f} s)"
    assert achieved >= rate * 0.5, f"{achieved / MiB:.2f} MiB/s under a 2 MiB/s limit ({secs:.2f} s)"


def test_bucket_limit_applies_to_that_bucket_only(orbit, tenant):
    creds, s3, bucket = tenant
    other = unique("b")
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="small", Body=b"x" * 1024)
    out = qos(orbit, creds.tenant, "set", "--read-rps", "3", bucket=bucket)
    assert out["bucket"] == bucket
    ok, refused, _ = count_reads(s3, bucket, 0.5, threads=1)
    assert refused > 0 and ok <= 5
    ok, refused, _ = count_reads(s3, other, 0.5, threads=1)
    assert refused == 0 and ok > 5
    shown = qos(orbit, creds.tenant, "show", bucket=bucket)
    assert shown["limits"]["read_rps"] == 3
    assert qos(orbit, creds.tenant, "show")["limits"]["read_rps"] is None
    # Clearing applies at once, on the running server.
    qos(orbit, creds.tenant, "clear", bucket=bucket)
    ok, refused, _ = count_reads(s3, bucket, 0.5, threads=1)
    assert refused == 0 and ok > 5


def test_one_tenants_limit_never_throttles_another(orbit, tenant):
    creds, s3, bucket = tenant
    neighbour = orbit.new_tenant_with_key()
    ns3 = orbit.s3(neighbour, max_attempts=0)
    ns3.create_bucket(Bucket=bucket)  # the same bucket name, another tenant
    ns3.put_object(Bucket=bucket, Key="small", Body=b"x" * 1024)
    qos(orbit, creds.tenant, "set", "--read-rps", "2", "--write-rps", "2")
    qos(orbit, creds.tenant, "set", "--read-rps", "2", bucket=bucket)
    ok, refused, _ = count_reads(s3, bucket, 1.0, threads=2)
    assert refused > 0
    ok, refused, _ = count_reads(ns3, bucket, 1.0, threads=2)
    assert refused == 0 and ok > 10
    for i in range(10):
        ns3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"n")


def test_only_operators_set_limits(orbit, tenant):
    creds, _, bucket = tenant
    admin = orbit.new_key(creds.tenant, orbit.new_user(creds.tenant, role="tenant-admin"))
    qos(orbit, creds.tenant, "set", "--read-rps", "7")
    # A tenant-admin reads its own tenant's limits, sets none.
    assert qos(orbit, creds.tenant, "show", creds=admin)["limits"]["read_rps"] == 7
    for args in (("set", "--read-rps", "1000"), ("clear",)):
        res = qos(orbit, creds.tenant, *args, creds=admin, check=False)
        assert res.returncode != 0 and "AccessDenied" in res.stderr, res.stderr
        res = qos(orbit, creds.tenant, *args, bucket=bucket, creds=admin, check=False)
        assert res.returncode != 0 and "AccessDenied" in res.stderr, res.stderr
    # A data user may not even read them.
    res = qos(orbit, creds.tenant, "show", creds=creds, check=False)
    assert res.returncode != 0 and "AccessDenied" in res.stderr
    assert qos(orbit, creds.tenant, "show")["limits"]["read_rps"] == 7
    # Another tenant's admin gets the same answer whether the tenant exists or not.
    path = "/admin/v1/tenants/{}/qos"
    existing = admin_error(orbit.admin("GET", path.format(orbit.new_tenant()), creds=admin))
    missing = admin_error(orbit.admin("GET", path.format(unique("nobody")), creds=admin))
    assert existing == missing and existing[:2] == (403, "AccessDenied")
    put = admin_error(orbit.admin("PUT", path.format(creds.tenant), creds=admin, body={"read_rps": 1}))
    assert put[:2] == (403, "AccessDenied")


def test_bad_values_get_clear_errors(orbit, tenant):
    creds, _, bucket = tenant
    cases = [
        (["set", "--read-rps", "0"], "read_rps must be at least 1"),
        (["set", "--write-bps", "100"], "write_bps must be at least 1024"),
        (["set", "--read-bps", "fast"], "unknown unit"),
        (["set", "--read-bps", "1.2.3MiB"], "not a byte count"),
        (["set", "--read-bps", "5 parsecs"], "unknown unit"),
        (["set", "--read-rps=-3"], "invalid value '-3' for '--read-rps"),
        (["set", "--read-rps", "5", "--burst-seconds", "0"], "burst_seconds"),
        (["set"], "give at least one of"),
    ]
    for args, needle in cases:
        res = qos(orbit, creds.tenant, *args, check=False)
        assert res.returncode != 0, args
        assert needle in res.stderr, (args, res.stderr)
        assert "panic" not in res.stderr
    res = qos(orbit, creds.tenant, "set", "--read-rps", "5", bucket=unique("nosuch"), check=False)
    assert res.returncode != 0 and "bucket does not exist" in res.stderr, res.stderr
    res = qos(orbit, unique("nosuch"), "set", "--read-rps", "5", check=False)
    assert res.returncode != 0 and "does not exist" in res.stderr, res.stderr
    path = f"/admin/v1/tenants/{creds.tenant}/qos"
    for body in ({"read_rps": -1}, {"read_rpz": 5}, {"read_bps": "lots"}, b"{not json"):
        err = admin_error(orbit.admin("PUT", path, body=body))
        assert err[:2] == (400, "InvalidArgument"), (body, err)
    # Nothing of that was stored.
    assert qos(orbit, creds.tenant, "show")["limits"] == {
        "read_rps": None, "write_rps": None, "read_bps": None, "write_bps": None, "burst_seconds": None}


def test_limits_survive_a_restart(orbit_factory):
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    server.s3(creds).create_bucket(Bucket="data")
    server.cli("qos", "set", "--tenant", creds.tenant, "--write-rps", "1")
    server.restart()
    s3 = server.s3(creds, max_attempts=0)
    s3.put_object(Bucket="data", Key="a", Body=b"a")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="data", Key="b", Body=b"b")
    assert client_error(exc.value)[:2] == (503, "SlowDown")


def test_openapi_documents_the_qos_routes(orbit):
    doc = requests.get(orbit.admin_url + "/admin/v1/openapi.json", timeout=10).json()
    for p in ("/admin/v1/tenants/{tenant}/qos", "/admin/v1/tenants/{tenant}/buckets/{bucket}/qos"):
        assert set(doc["paths"][p]) >= {"get", "put", "delete"}, doc["paths"].get(p)
    assert "QosLimits" in doc["components"]["schemas"]


# The noisy-neighbour bound (docs/ARCHITECTURE.md, "QoS"): with the flooding
# tenant limited, the quiet tenant's p99 GET latency during the flood stays
# under K x its p99 alone + C ms. Client processes and server share two
# CPUs, so the bound is generous; bench/noisy_neighbour.sh measures it.
NOISY_K, NOISY_C_MS = 4.0, 50.0


def test_noisy_neighbour_limited_flood_keeps_quiet_tenant_latency(orbit):
    quiet = orbit.new_tenant_with_key()
    flooder = orbit.new_tenant_with_key()
    qs3, fs3 = orbit.s3(quiet), orbit.s3(flooder)
    qs3.create_bucket(Bucket="data")
    qs3.put_object(Bucket="data", Key="small", Body=os.urandom(4096))
    fs3.create_bucket(Bucket="data")
    fs3.put_object(Bucket="data", Key="flood", Body=os.urandom(256 * 1024))
    res = noisy_neighbour.measure(
        orbit.s3_endpoint, (quiet.access_key, quiet.secret_key), "data", "small",
        (flooder.access_key, flooder.secret_key), "data", "flood",
        limit=lambda: orbit.cli("qos", "set", "--tenant", flooder.tenant, "--read-rps", "50",
                                "--read-bps", "8MiB"),
        unlimit=lambda: orbit.cli("qos", "clear", "--tenant", flooder.tenant),
        procs=2, threads=6, count=150, interval=0.02, phases=("alone", "flood-limited"))
    alone, limited = res["alone"], res["flood-limited"]
    flood = limited["flood"]
    secs, bps = flood["seconds"], 8 * MiB
    # The flood pushed at its limit (at least half of it) and was held to it:
    # the rate plus one burst, a few percent over for the edges.
    assert flood["bytes"] >= 0.5 * bps * secs, res
    assert flood["bytes"] <= 1.05 * bps * (secs + 1), res
    assert flood["ok"] <= 1.05 * 50 * (secs + 1), res
    assert limited["p99_ms"] <= NOISY_K * alone["p99_ms"] + NOISY_C_MS, res
