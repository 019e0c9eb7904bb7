"""One directory for every site (issue 4, tenancy side), on the multi-site
harness (sites.py): tenants, users, keys and buckets are managed at the
directory site (`eu` here) and mirrored to the others, so a key works and a
bucket is visible everywhere; admin writes elsewhere are refused naming the
directory site; a satellite cut off from it keeps serving what it has.

Only bucket-level operations cross sites here; objects are read and written
at the bucket's own home (cross-site object access is the lease protocol's)."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from orbit_e2e import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, expect_client_error, free_port, orbit_bin, unique
from sites import Sites, sites_factory  # noqa: F401

ONE_WAY_MS = 10
PULL_MS = 300
DIRECTORY_TOML = f'directory_site = "eu"\ndirectory_pull_interval_ms = {PULL_MS}\n'


def make_sites(sites_factory, names=("eu", "us", "asia")) -> Sites:
    # Every site of one deployment shares the master key that seals secrets.
    master = base64.b64encode(os.urandom(32)).decode()
    return sites_factory(list(names), delay_ms=ONE_WAY_MS, extra_toml=DIRECTORY_TOML,
                         extra_env={"ORBIT_MASTER_KEY": master})


def bucket_names(s3) -> list[str]:
    return sorted(b["Name"] for b in s3.list_buckets()["Buckets"])


def test_a_tenant_made_at_the_directory_site_works_at_every_site(sites_factory):
    sites = make_sites(sites_factory)
    eu = sites["eu"]
    acme = eu.server.new_tenant_with_key()
    eu.cli("bucket", "create", "--tenant", acme.tenant, "datasets")
    eu.cli("bucket", "create", "--tenant", acme.tenant, "models")
    other = eu.server.new_tenant_with_key()
    eu.cli("bucket", "create", "--tenant", other.tenant, "datasets")
    eu.cli("bucket", "create", "--tenant", other.tenant, "private-plans")
    shown_at_eu = {b["name"]: b for b in eu.cli("bucket", "list", "--tenant", acme.tenant)}

    for name in ("us", "asia"):
        site = sites[name]
        # No waiting: the unknown key makes the site pull the directory at once.
        assert bucket_names(site.s3(acme)) == ["datasets", "models"], name
        assert bucket_names(site.s3(other)) == ["datasets", "private-plans"], name
        site.s3(acme).head_bucket(Bucket="models")
        status, code, _ = expect_client_error(site.s3(acme).head_bucket, Bucket="private-plans")
        assert status == 404, (name, code)
        shown = {b["name"]: b for b in site.cli("bucket", "list", "--tenant", acme.tenant)}
        assert set(shown) == {"datasets", "models"}
        for b, rec in shown.items():
            # The same bucket: same home, same creation time (ids are not shown).
            assert rec["home_site"] == "eu" and rec["created_ms"] == shown_at_eu[b]["created_ms"], rec
        status = site.cli("site", "directory")
        assert status["directory_site"] == "eu" and not status["is_directory_site"], status
        assert status["records_mirrored"] > 0 and status["last_sync_ms"] and status["last_error"] is None, status
        assert site.metric("orbit_directory_sync_total", outcome="applied") >= 1
    assert eu.cli("site", "directory")["is_directory_site"] is True


def test_a_deleted_key_stops_working_at_every_site(sites_factory):
    sites = make_sites(sites_factory)
    eu = sites["eu"]
    creds = eu.server.new_tenant_with_key()
    for name in ("us", "asia"):
        sites[name].s3(creds).list_buckets()
    eu.cli("key", "delete", "--tenant", creds.tenant, creds.access_key)

    def refused_everywhere():
        codes = []
        for name in ("eu", "us", "asia"):
            try:
                sites[name].s3(creds).list_buckets()
                return None
            except Exception as exc:  # botocore ClientError
                codes.append(getattr(exc, "response", {}).get("Error", {}).get("Code"))
        return codes
    # Bound: one pull interval plus a round trip; allow for a loaded machine.
    codes = Sites.wait_for("the deleted key refused at every site", refused_everywhere, timeout=10, interval=0.1)
    assert set(codes) == {"InvalidAccessKeyId"}, codes


def test_create_bucket_at_a_satellite_is_homed_there_and_seen_everywhere(sites_factory):
    sites = make_sites(sites_factory)
    eu, us, asia = sites["eu"], sites["us"], sites["asia"]
    creds = eu.server.new_tenant_with_key(model="self-managed")
    s3_us = us.s3(creds)
    s3_us.create_bucket(Bucket="checkpoints")
    # Usable at once where it was made: it is homed there.
    s3_us.put_object(Bucket="checkpoints", Key="step-1/model.pt", Body=b"weights")
    assert s3_us.get_object(Bucket="checkpoints", Key="step-1/model.pt")["Body"].read() == b"weights"
    for site in (eu, asia):
        site.s3(creds).head_bucket(Bucket="checkpoints")  # an unknown bucket pulls at once
        homes = {b["name"]: b["home_site"] for b in site.cli("bucket", "list", "--tenant", creds.tenant)}
        assert homes == {"checkpoints": "us"}, (site.name, homes)
    assert "checkpoints" in bucket_names(asia.s3(creds))
    # The name is the tenant's everywhere.
    status, code, _ = expect_client_error(asia.s3(creds).create_bucket, Bucket="checkpoints")
    assert status == 409 or code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists", "InvalidRequest"), code

    # Deletion is the home's: elsewhere a clear error, at home only once empty.
    status, code, message = expect_client_error(asia.s3(creds).delete_bucket, Bucket="checkpoints")
    assert status == 400 and code == "InvalidRequest" and "`us`" in message, (status, code, message)
    status, code, _ = expect_client_error(s3_us.delete_bucket, Bucket="checkpoints")
    assert code == "BucketNotEmpty", code
    s3_us.delete_object(Bucket="checkpoints", Key="step-1/model.pt")
    s3_us.delete_bucket(Bucket="checkpoints")
    for site in (eu, us, asia):
        Sites.wait_for(f"the bucket gone at {site.name}",
                       lambda: not site.cli("bucket", "list", "--tenant", creds.tenant), timeout=10)

    # A bucket homed at the directory site can be deleted from a satellite: the home checks.
    eu.s3(creds).create_bucket(Bucket="scratch")
    us.s3(creds).delete_bucket(Bucket="scratch")
    status, _, _ = expect_client_error(eu.s3(creds).head_bucket, Bucket="scratch")
    assert status == 404


def test_admin_writes_at_a_satellite_are_refused_naming_the_directory_site(sites_factory):
    sites = make_sites(sites_factory)
    eu, us = sites["eu"], sites["us"]
    creds = eu.server.new_tenant_with_key()
    us.s3(creds).list_buckets()  # mirrored now

    res = us.cli("tenant", "create", unique("tn"), check=False)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "directory site `eu`" in lines[0], res.stderr
    for args in (("user", "create", "--tenant", creds.tenant, unique("u"), "--role", "read-write"),
                 ("key", "delete", "--tenant", creds.tenant, creds.access_key),
                 ("bucket", "create", "--tenant", creds.tenant, unique("b"))):
        res = us.cli(*args, check=False)
        assert res.returncode != 0 and "directory site `eu`" in res.stderr, (args, res.stderr)
    r = us.server.admin("PUT", f"/admin/v1/tenants/{creds.tenant}/qos", body={"read_rps": 5})
    assert r.status_code == 409 and "`eu`" in r.json()["error"]["message"], r.text
    # Reads work, and show the mirrored records.
    assert creds.tenant in {t["name"] for t in us.cli("tenant", "list")}
    us.s3(creds).list_buckets()

    # The operator places a bucket at another site from the directory site.
    b = eu.cli("bucket", "create", "--tenant", creds.tenant, "near-gpus", "--home", "asia")
    assert b["home_site"] == "asia"
    res = eu.cli("bucket", "create", "--tenant", creds.tenant, "nowhere", "--home", "mars", check=False)
    assert res.returncode != 0 and "mars" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_satellites_keep_serving_while_the_directory_site_is_partitioned(sites_factory):
    sites = make_sites(sites_factory)
    eu, us, asia = sites["eu"], sites["us"], sites["asia"]
    creds = eu.server.new_tenant_with_key()
    eu.cli("bucket", "create", "--tenant", creds.tenant, "datasets")
    for site in (us, asia):
        assert bucket_names(site.s3(creds)) == ["datasets"]

    sites.partition("eu")
    try:
        def failing():
            s = us.cli("site", "directory")
            return s if s["last_error"] else None
        status = Sites.wait_for("the mirror at us reporting the directory site unreachable", failing, timeout=15)
        assert "eu" in status["last_error"], status
        for site in (us, asia):
            assert bucket_names(site.s3(creds)) == ["datasets"], site.name
            site.s3(creds).head_bucket(Bucket="datasets")
        # A bucket can't be created without the directory site: a retryable error, not a half-made bucket.
        status_code, code, _ = expect_client_error(us.s3(creds).create_bucket, Bucket="later")
        assert status_code == 503, code
    finally:
        sites.heal("eu")
    # TCP connections stalled by the partition take their retransmission time to recover.
    Sites.wait_for("the mirror at us healthy again", lambda: us.cli("site", "directory")["last_error"] is None,
                   timeout=30)
    fresh = eu.server.new_tenant_with_key()
    assert bucket_names(us.s3(fresh)) == []


def test_a_directory_site_that_is_not_a_peer_is_refused_at_start(tmp_path):
    config = (f'data_dir = "{tmp_path / "data"}"\n'
              f's3_addr = "127.0.0.1:{free_port()}"\nadmin_addr = "127.0.0.1:{free_port()}"\n'
              'site = "eu"\ndirectory_site = "mars"\n')
    path = tmp_path / "orbit.toml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORBIT_")}
    env.update(NO_COLOR="1", ORBIT_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY, ORBIT_ROOT_SECRET_KEY=ROOT_SECRET_KEY)
    try:
        p = subprocess.run([orbit_bin(), "serve", "--config", str(path)], capture_output=True, text=True,
                           env=env, timeout=10, stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    except subprocess.TimeoutExpired:
        pytest.fail("orbit serve kept running with a directory site that is not a peer")
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors and "`directory_site`" in errors[0] and "mars" in errors[0], p.stderr
