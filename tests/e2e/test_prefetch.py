"""Prefetch jobs and the chunk cache over a remote store.

A bucket lives on a real S3 server that is not Orbit (moto), behind a proxy
the tests can take down. A prefetch job warms Orbit's cache with a prefix or
a manifest; once it is done, every prefetched object reads back whole with
the remote store unreachable, and an object outside the selection does not.
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from orbit_e2e import REGION, MiB, s3_backend_toml, unique
from test_remote_backend import (  # noqa: F401  (module fixtures)
    REMOTE_ACCESS_KEY,
    REMOTE_SECRET_KEY,
    RESTART_BUCKET,
    create_bucket_api,
    orbit,
    remote,
    remote_is_up_after_each_test,
    s3_client,
)


def fill(client, bucket: str, keys: list[str], size: int) -> dict[str, bytes]:
    data = {}
    for i, key in enumerate(keys):
        body = os.urandom(size - i)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        data[key] = body
    return data


def tenant_bucket(orbit):
    creds = orbit.new_tenant_with_key()
    name = unique("pf")
    create_bucket_api(orbit, creds.tenant, name, "remote")
    return creds, name, s3_client(orbit, creds)


def test_prefetched_prefix_is_served_while_the_remote_is_down(orbit, remote):
    creds, bucket, s3 = tenant_bucket(orbit)
    train = fill(s3, bucket, [f"train/shard-{i:02}" for i in range(6)], 5 * MiB + 123)
    other = fill(s3, bucket, ["val/shard-00"], 64 * 1024)

    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket,
                        "--prefix", "train/", "--wait", timeout=120)
    assert res.returncode == 0, (res.stdout, res.stderr)
    job = res.json
    assert job["state"] == "done", job
    assert (job["objects_done"], job["objects_total"]) == (6, 6), job
    assert job["bytes_done"] == job["bytes_total"] == sum(len(v) for v in train.values()), job
    listed = orbit.cli("prefetch", "list", "--tenant", creds.tenant)
    assert [j["id"] for j in listed] == [job["id"]]
    status = orbit.cli("prefetch", "status", "--tenant", creds.tenant, job["id"])
    assert status["state"] == "done"

    remote.proxy.down()
    for key, body in train.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert got == body, f"{key} came back different while the remote was down"
        part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=4194000-4194999")["Body"].read()
        assert part == body[4194000:4195000]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="val/shard-00")["Body"].read()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    remote.proxy.up()
    assert s3.get_object(Bucket=bucket, Key="val/shard-00")["Body"].read() == other["val/shard-00"]


def test_manifest_jobs_cancel_and_errors(orbit, remote, tmp_path):
    creds, bucket, s3 = tenant_bucket(orbit)
    data = fill(s3, bucket, ["a/1", "a/2", "b/1"], 100_000)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("a/2\n\nb/1\nmissing/key\n")
    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket,
                        "--manifest", str(manifest), "--wait", timeout=120)
    assert res.returncode == 0, (res.stdout, res.stderr)
    job = res.json
    assert (job["state"], job["manifest_keys"], job["objects_done"]) == ("done", 3, 2), job

    remote.proxy.down()
    assert s3.get_object(Bucket=bucket, Key="b/1")["Body"].read() == data["b/1"]
    # A job whose reads all fail ends with errors counted, and --wait says so.
    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket,
                        "--prefix", "a/1", "--wait", timeout=120)
    assert res.returncode != 0 and res.stderr.startswith("error:"), (res.stdout, res.stderr)
    remote.proxy.up()

    # Cancelling a finished job leaves it as it was.
    cancelled = orbit.cli("prefetch", "cancel", "--tenant", creds.tenant, job["id"])
    assert cancelled["state"] == "done"
    # Unknown ids, unknown buckets and bad selections are clear errors.
    for args in (["status", "--tenant", creds.tenant, "0" * 32],
                 ["start", "--tenant", creds.tenant, "--bucket", "no-such-bucket"]):
        res = orbit.cli_run("prefetch", *args)
        assert res.returncode != 0 and res.stderr.startswith("error:"), (args, res.stderr)
    r = orbit.admin("POST", f"/admin/v1/tenants/{creds.tenant}/prefetch",
                    body={"bucket": bucket, "prefix": "a", "keys": ["a/1"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidArgument"


def test_jobs_are_invisible_to_other_tenants(orbit, remote):
    creds, bucket, s3 = tenant_bucket(orbit)
    fill(s3, bucket, ["x"], 1000)
    job = orbit.cli("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket)
    other_tenant = orbit.new_tenant(model="self-managed")
    admin = orbit.new_user(other_tenant, role="tenant-admin")
    other = orbit.new_key(other_tenant, admin)
    for path in (f"/admin/v1/tenants/{creds.tenant}/prefetch",
                 f"/admin/v1/tenants/{creds.tenant}/prefetch/{job['id']}",
                 f"/admin/v1/tenants/no-such-tenant/prefetch"):
        r = orbit.admin("GET", path, creds=other)
        assert r.status_code == 403, (path, r.status_code, r.text)
    r = orbit.admin("GET", f"/admin/v1/tenants/{other_tenant}/prefetch/{job['id']}", creds=other)
    assert r.status_code == 404, r.text
    assert orbit.cli("prefetch", "list", "--tenant", other_tenant, creds=other) == []


def test_bucket_cache_policy_through_the_cli(orbit, remote):
    creds, bucket, s3 = tenant_bucket(orbit)
    out = orbit.cli("bucket", "cache", "--tenant", creds.tenant, bucket, "--admission", "second-miss", "--ttl", "600")
    assert out["cache"] == {"admission": "second-miss", "ttl_seconds": 600}, out
    listed = {b["name"]: b for b in orbit.cli("bucket", "list", "--tenant", creds.tenant)}
    assert listed[bucket]["cache"]["admission"] == "second-miss"
    # Read once: with admission on the second miss, nothing is kept.
    data = fill(s3, bucket, ["once"], 300_000)["once"]
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == data
    remote.proxy.down()
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="once")["Body"].read()
    remote.proxy.up()
    # A prefetch job caches regardless of the admission policy.
    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket, "--wait", timeout=120)
    assert res.returncode == 0, res.stderr
    remote.proxy.down()
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == data
    remote.proxy.up()
    bad = orbit.cli_run("bucket", "cache", "--tenant", creds.tenant, "no-such-bucket")
    assert bad.returncode != 0 and bad.stderr.startswith("error:")


def test_cache_shares_are_set_by_the_operator_only(orbit, remote):
    creds, bucket, s3 = tenant_bucket(orbit)
    out = orbit.cli("tenant", "cache-share", creds.tenant, "--ram-bytes", str(64 * MiB))
    assert out["cache_share_bytes"] == 64 * MiB, out
    assert orbit.cli("tenant", "show", creds.tenant)["cache_share_bytes"] == 64 * MiB
    # The tenant's reads and prefetches now go to its own partition, and are served from it.
    data = fill(s3, bucket, ["mine"], 2 * MiB)["mine"]
    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket, "--wait", timeout=120)
    assert res.returncode == 0, res.stderr
    remote.proxy.down()
    assert s3.get_object(Bucket=bucket, Key="mine")["Body"].read() == data
    remote.proxy.up()
    # Only operators reserve cache, even tenant-admins of self-managed tenants.
    t = orbit.new_tenant(model="self-managed")
    admin = orbit.new_key(t, orbit.new_user(t, role="tenant-admin"))
    r = orbit.admin("PUT", f"/admin/v1/tenants/{t}/cache-share", body={"ram_bytes": MiB}, creds=admin)
    assert r.status_code == 403, r.text
    r = orbit.admin("PUT", f"/admin/v1/tenants/{t}/cache-share", body={"ram_bytes": 0})
    assert r.status_code == 400, r.text
    out = orbit.cli("tenant", "cache-share", creds.tenant, "--none")
    assert out["cache_share_bytes"] is None
    bad = orbit.cli_run("tenant", "cache-share", creds.tenant)
    assert bad.returncode != 0


def test_metrics_count_cache_and_prefetch_work_without_naming_tenants(orbit, remote):
    import requests

    creds, bucket, s3 = tenant_bucket(orbit)
    fill(s3, bucket, ["m/1", "m/2"], 200_000)
    res = orbit.cli_run("prefetch", "start", "--tenant", creds.tenant, "--bucket", bucket, "--wait", timeout=120)
    assert res.returncode == 0, res.stderr
    s3.get_object(Bucket=bucket, Key="m/1")["Body"].read()
    text = requests.get(f"{orbit.admin_url}/metrics", timeout=10).text

    def value(line_start: str) -> float:
        rows = [l for l in text.splitlines() if l.startswith(line_start)]
        assert rows, f"no {line_start} in /metrics"
        return sum(float(r.rsplit(" ", 1)[1]) for r in rows)

    assert value('orbit_cache_hits_total{tier="ram",tenant=') >= 1
    assert value("orbit_prefetch_bytes_total") >= 200_000 + 199_999
    assert value('orbit_s3_requests_total{method="GET",status="200"}') >= 1
    assert value('orbit_backend_requests_total{backend="remote",op="put",outcome="ok"}') >= 2
    for secret in (creds.tenant, bucket, creds.access_key):
        assert secret not in text, f"/metrics reveals {secret!r}"


def test_pinned_prefix_outlives_restarts_and_outages(orbit_factory, remote):
    """A pinned prefix stays on the site's disk: after a restart (RAM cache
    empty) and with the remote store down, pinned objects still read whole,
    others do not; once unpinned, they are gone from the site."""
    config = s3_backend_toml(
        "remote", kind="s3", endpoint=remote.proxy.endpoint, bucket=RESTART_BUCKET,
        region=REGION, prefix="site-pin", allow_http=True,
        access_key_id=REMOTE_ACCESS_KEY, secret_access_key=REMOTE_SECRET_KEY)
    # RAM too small for the pinned data, so the pinned tier must serve it.
    config += "[cache]\nram_bytes = 4194304\nchunk_size = 1048576\npinned_bytes = 67108864\n"
    server = orbit_factory(name="pin", config_toml=config)
    creds = server.new_tenant_with_key()
    bucket = unique("pin")
    create_bucket_api(server, creds.tenant, bucket, "remote")
    s3 = s3_client(server, creds)
    hot = fill(s3, bucket, [f"hot/{i}" for i in range(5)], 3 * MiB + 7)
    cold = fill(s3, bucket, ["cold/0"], 100_000)

    res = server.cli_run("bucket", "pin", "--tenant", creds.tenant, bucket, "--prefix", "hot/", "--wait", timeout=120)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert (res.json["state"], res.json["objects_done"]) == ("done", 5), res.json
    listed = {b["name"]: b for b in server.cli("bucket", "list", "--tenant", creds.tenant)}
    assert listed[bucket]["pinned_prefixes"] == ["hot/"]

    server.restart()
    s3 = s3_client(server, creds)
    remote.proxy.down()
    for key, body in hot.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
        part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=2097000-2098999")["Body"].read()
        assert part == body[2097000:2099000], key
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="cold/0")["Body"].read()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    remote.proxy.up()
    assert s3.get_object(Bucket=bucket, Key="cold/0")["Body"].read() == cold["cold/0"]

    stats = server.cli("tenant", "cache-stats", creds.tenant)
    assert stats["hits"]["pinned"] >= 5 and stats["hit_bytes"]["pinned"] > 0, stats
    assert stats["misses"] >= 1 and 0 < stats["hit_ratio"] < 1, stats
    # The RAM tier (4 MiB) evicted to hold 15 MiB of reads, and says so.
    import requests
    text = requests.get(f"{server.admin_url}/metrics", timeout=10).text
    evicted = [l for l in text.splitlines() if l.startswith('orbit_cache_evictions_total{tier="ram"}')]
    assert evicted and float(evicted[0].rsplit(" ", 1)[1]) > 0, evicted

    # Pinned space is the site's: tenant-admins can neither pin nor unpin,
    # and may read only their own tenant's figures.
    other = server.new_tenant(model="self-managed")
    admin = server.new_key(other, server.new_user(other, role="tenant-admin"))
    for method, path, body in (
            ("POST", f"/admin/v1/tenants/{other}/buckets/x/pins", {"prefix": ""}),
            ("DELETE", f"/admin/v1/tenants/{other}/buckets/x/pins?prefix=", None),
            ("GET", f"/admin/v1/tenants/{creds.tenant}/cache", None),
            ("GET", "/admin/v1/tenants/no-such-tenant/cache", None)):
        r = server.admin(method, path, body=body, creds=admin)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    own = server.admin("GET", f"/admin/v1/tenants/{other}/cache", creds=admin)
    assert own.status_code == 200 and own.json()["misses"] == 0, own.text

    bad = server.cli_run("bucket", "unpin", "--tenant", creds.tenant, bucket, "--prefix", "cold/")
    assert bad.returncode != 0 and bad.stderr.startswith("error:"), bad.stderr
    out = server.cli("bucket", "unpin", "--tenant", creds.tenant, bucket, "--prefix", "hot/")
    assert out["pinned_prefixes"] == [], out
    server.restart()
    s3 = s3_client(server, creds)
    remote.proxy.down()
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="hot/0")["Body"].read()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
