"""Quotas, usage accounting and metering, black-box: hard quotas refuse with
QuotaExceeded (bytes and objects, bucket and tenant, put/copy/multipart),
soft quotas let writes through and count, concurrent writers never overshoot
a hard quota, usage equals a recount after kill -9, hourly records match a
scripted workload and reconcile with /metrics, and one tenant's admin sees
only its own usage."""

from __future__ import annotations

import re
import threading

import pytest
import requests

from orbit_e2e import MiB, admin_error, expect_client_error, unique


def metric_values(orbit, name: str) -> dict[str, float]:
    """{label text: value} of every sample of a metric in /metrics."""
    text = requests.get(f"{orbit.admin_url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def metric(orbit, name: str, **labels) -> float:
    total = 0.0
    for lbl, v in metric_values(orbit, name).items():
        if all(f'{k}="{val}"' in lbl for k, val in labels.items()):
            total += v
    return total


def bucket_with_key(orbit):
    creds = orbit.new_tenant_with_key()
    s3 = orbit.s3(creds)
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    return creds, s3, bucket


def assert_quota_exceeded(fn, *args, limit_text: str, **kw):
    status, code, message = expect_client_error(fn, *args, **kw)
    assert (status, code) == (403, "QuotaExceeded"), (status, code, message)
    assert limit_text in message, message
    return message


def absent(s3, bucket, key):
    status, code, _ = expect_client_error(s3.head_object, Bucket=bucket, Key=key)
    return status == 404


# ------------------------------------------------------------------ hard quotas


def test_hard_bucket_quota_on_bytes_and_objects(orbit):
    creds, s3, bucket = bucket_with_key(orbit)
    q = orbit.cli("quota", "set", "--tenant", creds.tenant, "--bucket", bucket, "--max-bytes", "1KiB",
                  "--max-objects", "3", "--kind", "hard")
    assert (q["kind"], q["max_bytes"], q["max_objects"]) == ("hard", 1024, 3)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 600)
    msg = assert_quota_exceeded(s3.put_object, Bucket=bucket, Key="b", Body=b"x" * 500, limit_text="1024 bytes")
    assert creds.tenant not in msg
    assert absent(s3, bucket, "b")
    s3.put_object(Bucket=bucket, Key="b", Body=b"x" * 424)  # exactly at the limit
    s3.put_object(Bucket=bucket, Key="c", Body=b"")
    assert_quota_exceeded(s3.put_object, Bucket=bucket, Key="d", Body=b"", limit_text="3 objects")
    # Shrinking an object and deleting are never refused.
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100)
    s3.delete_object(Bucket=bucket, Key="c")
    s3.put_object(Bucket=bucket, Key="d", Body=b"x" * 10)
    shown = orbit.cli("quota", "show", "--tenant", creds.tenant, "--bucket", bucket)
    assert shown["usage"] == {"bytes": 534, "objects": 3}
    cleared = orbit.cli("quota", "clear", "--tenant", creds.tenant, "--bucket", bucket)
    assert cleared["kind"] is None
    s3.put_object(Bucket=bucket, Key="e", Body=b"x" * 2000)


def test_hard_tenant_quota_covers_copy_and_multipart(orbit):
    creds, s3, bucket = bucket_with_key(orbit)
    other = unique("b")
    s3.create_bucket(Bucket=other)
    orbit.cli("quota", "set", "--tenant", creds.tenant, "--max-bytes", str(12 * MiB), "--max-objects", "3")
    s3.put_object(Bucket=bucket, Key="five", Body=b"5" * (5 * MiB))
    s3.copy_object(Bucket=other, Key="copy1", CopySource={"Bucket": bucket, "Key": "five"})
    # A second copy would hold 15 MiB in the tenant, over 12 MiB.
    assert_quota_exceeded(s3.copy_object, Bucket=other, Key="copy2",
                          CopySource={"Bucket": bucket, "Key": "five"}, limit_text=f"{12 * MiB} bytes")
    assert absent(s3, other, "copy2")
    # Parts count as they are stored: a 5 MiB part does not fit either.
    up = s3.create_multipart_upload(Bucket=other, Key="mp")["UploadId"]
    assert_quota_exceeded(s3.upload_part, Bucket=other, Key="mp", UploadId=up, PartNumber=1,
                          Body=b"p" * (5 * MiB), limit_text="bytes")
    # A small part fits; completing it would make a third... then a fourth object.
    p = s3.upload_part(Bucket=other, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 1000)
    s3.put_object(Bucket=bucket, Key="third", Body=b"3")
    assert_quota_exceeded(s3.complete_multipart_upload, Bucket=other, Key="mp", UploadId=up,
                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]},
                          limit_text="3 objects")
    assert absent(s3, other, "mp")
    s3.delete_object(Bucket=bucket, Key="third")
    s3.complete_multipart_upload(Bucket=other, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    usage = orbit.cli("usage", "show", "--tenant", creds.tenant)
    assert usage["usage"] == {"bytes": 10 * MiB + 1000, "objects": 3}
    assert sum(b["usage"]["bytes"] for b in usage["buckets"]) == usage["usage"]["bytes"]


# ------------------------------------------------------------------ soft quotas


def test_soft_quota_lets_writes_through_and_counts(orbit):
    creds, s3, bucket = bucket_with_key(orbit)
    before = metric(orbit, "orbit_quota_soft_exceeded_total", scope="bucket", resource="objects")
    orbit.cli("quota", "set", "--tenant", creds.tenant, "--bucket", bucket, "--max-objects", "1", "--kind", "soft")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"data")
    after = metric(orbit, "orbit_quota_soft_exceeded_total", scope="bucket", resource="objects")
    assert after - before == 2
    assert orbit.cli("quota", "show", "--tenant", creds.tenant, "--bucket", bucket)["usage"]["objects"] == 3
    text = requests.get(f"{orbit.admin_url}/metrics", timeout=10).text
    assert creds.tenant not in text and bucket not in text
    assert "soft quota exceeded" in orbit.log_tail(400)


# ------------------------------------------------------------------ concurrency


def test_concurrent_writers_never_overshoot_a_hard_quota(orbit):
    creds, _, bucket = bucket_with_key(orbit)
    size, limit = 1000, 10_000
    orbit.cli("quota", "set", "--tenant", creds.tenant, "--bucket", bucket, "--max-bytes", str(limit))
    ok, refused, other = [], [], []
    lock = threading.Lock()

    def writer(n):
        s3 = orbit.s3(creds)
        for j in range(3):
            key = f"w{n}-{j}"
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=b"z" * size)
                with lock:
                    ok.append(key)
            except Exception as exc:  # noqa: BLE001 - sorted below
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                with lock:
                    (refused if code == "QuotaExceeded" else other).append((key, repr(exc)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other, other
    # The check is part of the commit: no overshoot at all.
    assert len(ok) == limit // size, (len(ok), len(refused))
    s3 = orbit.s3(creds)
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert set(listed) == set(ok)
    for key, _ in refused:
        assert absent(s3, bucket, key)
    shown = orbit.cli("quota", "show", "--tenant", creds.tenant, "--bucket", bucket)
    assert shown["usage"] == {"bytes": sum(listed.values()), "objects": len(listed)}
    assert shown["usage"]["bytes"] <= limit


# ------------------------------------------------------------------ crash


def test_usage_equals_recount_after_kill9(orbit_factory):
    srv = orbit_factory()
    creds = srv.new_tenant_with_key()
    s3 = srv.s3(creds)
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    up = s3.create_multipart_upload(Bucket=bucket, Key="pending")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="pending", UploadId=up, PartNumber=1, Body=b"p" * 4096)
    stop = threading.Event()

    def writer(n):
        c = srv.s3(creds)
        i = 0
        while not stop.is_set():
            try:
                key = f"w{n}-{i % 5}"
                if i % 4 == 3:
                    c.delete_object(Bucket=bucket, Key=key)
                else:
                    c.put_object(Bucket=bucket, Key=key, Body=b"k" * (1000 + 37 * i))
            except Exception:  # noqa: BLE001 - the server is killed under the writers
                pass
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    import time
    time.sleep(2.0)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join()
    srv.start()
    drift = srv.cli("usage", "recount", "--tenant", creds.tenant)
    assert drift and all(d["counted"] == d["actual"] for d in drift), drift
    listed = srv.s3(creds).list_objects_v2(Bucket=bucket).get("Contents", [])
    usage = srv.cli("usage", "show", "--tenant", creds.tenant)
    assert usage["usage"]["objects"] == len(listed)
    # The unfinished upload's part is stored bytes too.
    assert usage["usage"]["bytes"] == sum(o["Size"] for o in listed) + 4096


def test_recount_is_operator_only_and_reports_no_drift(orbit):
    creds, s3, bucket = bucket_with_key(orbit)
    s3.put_object(Bucket=bucket, Key="k", Body=b"abc")
    drift = orbit.cli("usage", "recount", "--tenant", creds.tenant, "--fix")
    assert all(not d["corrected"] for d in drift), drift
    admin = orbit.new_key(creds.tenant, orbit.new_user(creds.tenant, role="tenant-admin"))
    r = orbit.admin("POST", f"/admin/v1/tenants/{creds.tenant}/usage/recount", creds=admin)
    assert admin_error(r)[:2] == (403, "AccessDenied")


# ------------------------------------------------------------------ metering


def test_hourly_records_match_the_workload_and_reconcile_with_metrics(orbit_factory):
    srv = orbit_factory()
    creds = srv.new_tenant_with_key()
    s3 = srv.s3(creds)
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)                                      # write 1
    sizes = [1000, 2000, 3000, 4000, 5000]
    for i, n in enumerate(sizes):                                        # write 5
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=bytes([i]) * n)
    for _ in range(4):                                                   # read 4: 1 miss, 3 hits
        assert len(s3.get_object(Bucket=bucket, Key="k0")["Body"].read()) == 1000
    for i in (1, 2, 3):                                                  # read 3
        s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read()
    s3.get_object(Bucket=bucket, Key="k4", Range="bytes=0-99")["Body"].read()  # read 1: 100 bytes
    s3.head_object(Bucket=bucket, Key="k1")                              # read 1
    s3.head_object(Bucket=bucket, Key="k2")                              # read 1
    for _ in range(3):                                                   # list 3
        s3.list_objects_v2(Bucket=bucket)
    s3.list_buckets()                                                    # list 1, no bucket
    s3.delete_object(Bucket=bucket, Key="k3")                            # delete 2
    s3.delete_object(Bucket=bucket, Key="k4")

    records = srv.cli("usage", "report", "--tenant", creds.tenant, "--format", "json", output=None)
    mine = [r for r in records if r["bucket"] == bucket]
    totals = {k: sum(r[k] for r in mine) for k in mine[0] if isinstance(mine[0][k], (int, float))}
    assert totals["write_requests"] == 6
    assert totals["read_requests"] == 10
    assert totals["list_requests"] == 3
    assert totals["delete_requests"] == 2
    assert totals["bytes_in"] == sum(sizes)
    assert totals["bytes_out"] == 4 * 1000 + 2000 + 3000 + 4000 + 100
    assert totals["cache_hit_chunks"] == 3 and totals["cache_hit_bytes"] == 3000
    assert totals["byte_hours"] > 0
    last = max(mine, key=lambda r: r["hour"])
    assert (last["stored_bytes"], last["objects"]) == (6000, 3)
    root = [r for r in records if r["bucket"] == ""]
    assert sum(r["list_requests"] for r in root) == 1

    # Everything this fresh server metered is this tenant's: totals reconcile.
    everything = records
    for cls in ("read", "write", "list", "delete"):
        assert metric(srv, "orbit_metered_requests_total", **{"class": cls}) == \
            sum(r[f"{cls}_requests"] for r in everything), cls
    assert metric(srv, "orbit_metered_bytes_total", direction="in") == totals["bytes_in"]
    assert metric(srv, "orbit_metered_bytes_total", direction="out") == totals["bytes_out"]
    assert metric(srv, "orbit_metered_cache_hit_bytes_total") == totals["cache_hit_bytes"]

    csv = srv.cli_run("usage", "report", "--tenant", creds.tenant, "--bucket", bucket, "--format", "csv",
                      output=None, creds=None)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert sum(int(r["write_requests"]) for r in rows) == 6
    assert sum(int(r["bytes_out"]) for r in rows) == totals["bytes_out"]

    # Records survive a graceful restart, and a time window selects hours.
    srv.stop()
    srv.start()
    again = srv.cli("usage", "report", "--tenant", creds.tenant, "--bucket", bucket, output=None)
    assert sum(r["write_requests"] for r in again) == 6
    none = srv.cli("usage", "report", "--tenant", creds.tenant, "--to", "2000-01-01T00:00:00Z", output=None)
    assert none == []
    bad = srv.cli_run("usage", "report", "--tenant", creds.tenant, "--from", "yesterday", output=None)
    assert bad.returncode != 0 and "RFC 3339" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ isolation


def test_tenant_admin_sees_only_its_own_usage(orbit):
    a = orbit.new_tenant_with_key()
    orbit.s3(a).create_bucket(Bucket="shared-name")
    orbit.cli("quota", "set", "--tenant", a.tenant, "--max-bytes", "1GiB")
    b = orbit.new_tenant_with_key()
    orbit.s3(b).create_bucket(Bucket="shared-name")
    b_admin = orbit.new_key(b.tenant, orbit.new_user(b.tenant, role="tenant-admin"))

    own = orbit.admin("GET", f"/admin/v1/tenants/{b.tenant}/usage", creds=b_admin)
    assert own.status_code == 200, own.text
    assert [x["bucket"] for x in own.json()["buckets"]] == ["shared-name"]
    assert orbit.admin("GET", f"/admin/v1/tenants/{b.tenant}/quota", creds=b_admin).status_code == 200
    assert orbit.admin("GET", f"/admin/v1/tenants/{b.tenant}/usage/report", creds=b_admin).status_code == 200
    # Setting quotas is the operator's.
    r = orbit.admin("PUT", f"/admin/v1/tenants/{b.tenant}/quota", creds=b_admin, body={"max_bytes": 10})
    assert admin_error(r)[:2] == (403, "AccessDenied")

    missing = unique("nx")
    for path in ("/usage", "/quota", "/usage/report", "/buckets/shared-name/quota", "/usage?bucket=shared-name"):
        r1 = orbit.admin("GET", f"/admin/v1/tenants/{a.tenant}{path}", creds=b_admin)
        r2 = orbit.admin("GET", f"/admin/v1/tenants/{missing}{path}", creds=b_admin)
        e1, e2 = admin_error(r1), admin_error(r2)
        assert e1[:2] == (403, "AccessDenied"), (path, e1)
        assert e1 == e2, (path, e1, e2)
        assert "1073741824" not in r1.text
    r1 = orbit.cli("usage", "show", "--tenant", a.tenant, creds=b_admin, check=False)
    r2 = orbit.cli("usage", "show", "--tenant", missing, creds=b_admin, check=False)
    assert r1.returncode != 0 and r1.returncode == r2.returncode
    assert r1.stderr.replace(a.tenant, "<T>") == r2.stderr.replace(missing, "<T>")
    doc = requests.get(f"{orbit.admin_url}/admin/v1/openapi.json", timeout=10).json()
    for p in ("/admin/v1/tenants/{tenant}/quota", "/admin/v1/tenants/{tenant}/buckets/{bucket}/quota",
              "/admin/v1/tenants/{tenant}/usage", "/admin/v1/tenants/{tenant}/usage/report"):
        assert p in doc["paths"], p


def test_cli_refuses_bad_sizes_and_empty_quotas(orbit):
    t = orbit.new_tenant()
    r = orbit.cli_run("quota", "set", "--tenant", t, "--max-bytes", "10XB")
    assert r.returncode != 0 and "unknown unit" in r.stderr
    r = orbit.admin("PUT", f"/admin/v1/tenants/{t}/quota", body={"kind": "hard"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")
    r = orbit.admin("PUT", f"/admin/v1/tenants/{t}/quota", body={"max_bytes": 5, "kind": "medium"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")
    q = orbit.cli("quota", "set", "--tenant", t, "--max-objects", "5", "--kind", "soft")
    assert (q["kind"], q["max_bytes"], q["max_objects"]) == ("soft", None, 5)
