"""Write leases (issue 4): a checkpoint written at a satellite under a write
lease, read at the home site and at a third site through redirection,
surviving the holder's kill -9 and restart, reaching home after release; and
an operator's revocation of a lease whose holder does not come back.

Three sites on the multi-site harness: `eu` is the bucket's home, `us` takes
the write lease, `asia` is a third site (and the directory site). Clients are
boto3 (puts, a multipart upload, deletes, listings) and the orbit CLI (the
lease operations).
"""

from __future__ import annotations

import io
import os

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from histories import s3_client
from orbit_e2e import client_error, unique
from sites import Sites, sites_factory  # noqa: F401

HOME, HOLDER, THIRD = "eu", "us", "asia"
LEASES = {"read_lease_ms": 2000, "drift": 0.01, "margin_ms": 200, "renew_before_ms": 800, "retry_every_ms": 200}

pytestmark = pytest.mark.timeout(300)


def start(sites_factory) -> Sites:
    return sites_factory([HOME, HOLDER, THIRD], delay_ms=10, directory_site=THIRD, leases=LEASES)


def bucket_homed_at_eu(sites: Sites):
    creds = sites[THIRD].server.new_tenant_with_key()
    bucket = unique("ckpt")
    made = sites[THIRD].cli("bucket", "create", bucket, "--tenant", creds.tenant, "--home", HOME)
    assert made["home_site"] == HOME, made

    def visible():
        for site in sites:
            try:
                s3_client(site.s3_endpoint, creds).head_bucket(Bucket=bucket)
            except ClientError:
                return False
        return True
    sites.wait_for(f"bucket {bucket} at every site", visible, timeout=15)
    return creds, bucket


def cut_off(sites: Sites, name: str, peer: str) -> None:
    """Stop the traffic between two sites, the test still reaching both."""
    if sites.fabric is not None:
        sites.drop_packets(name, to=peer)
    else:
        sites.partition(name)


def reconnect(sites: Sites, name: str) -> None:
    if sites.fabric is not None:
        sites.clear_faults(name)
    else:
        sites.heal(name)


def read(site, creds, bucket, key) -> bytes:
    return s3_client(site.s3_endpoint, creds).get_object(Bucket=bucket, Key=key)["Body"].read()


def status_of(site, creds, bucket, key) -> int:
    try:
        s3_client(site.s3_endpoint, creds).head_object(Bucket=bucket, Key=key)
        return 200
    except ClientError as e:
        return client_error(e)[0]


def listed(site, creds, bucket, prefix) -> list[str]:
    page = s3_client(site.s3_endpoint, creds).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in page.get("Contents", []))


def held(site, lease: str) -> dict | None:
    table = site.cli("site", "write-leases")
    return next((w for w in table["held"] if w["lease"] == lease), None)


def test_checkpoint_written_under_a_write_lease(sites_factory):
    sites = start(sites_factory)
    creds, bucket = bucket_homed_at_eu(sites)
    eu, us, asia = sites[HOME], sites[HOLDER], sites[THIRD]
    s3_eu, s3_us, s3_asia = (s3_client(s.s3_endpoint, creds) for s in (eu, us, asia))
    s3_eu.put_object(Bucket=bucket, Key="ckpt/README", Body=b"old run")
    s3_eu.put_object(Bucket=bucket, Key="other/kept", Body=b"outside the lease")
    # asia holds a read lease over the bucket: the acquisition must recall it.
    assert read(asia, creds, bucket, "ckpt/README") == b"old run"
    assert read(asia, creds, bucket, "ckpt/README") == b"old run"

    # A lease is taken where the bucket is not homed, and only once.
    refused = eu.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "ckpt/",
                     check=False)
    assert refused.returncode != 0 and "homed at this site" in refused.stderr, refused.stderr
    lease = us.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "ckpt/")
    assert lease["state"] == "held" and lease["site"] == HOME and lease["prefix"] == "ckpt/", lease
    lease_id = lease["lease"]
    granted = eu.cli("site", "write-leases")["granted"]
    assert [(g["lease"], g["site"], g["prefix"]) for g in granted] == [(lease_id, HOLDER, "ckpt/")], granted
    other = asia.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "ckpt/a",
                     "--wait-ms", "3000", check=False)
    assert other.returncode != 0 and "holds a write lease" in other.stderr, other.stderr

    # The checkpoint: shards, one multipart object, the old README deleted.
    shards = {f"ckpt/shard-{i}": os.urandom(300_000 + i) for i in range(4)}
    for key, body in shards.items():
        s3_us.put_object(Bucket=bucket, Key=key, Body=body)
    s3_us.delete_object(Bucket=bucket, Key="ckpt/README")
    big = os.urandom(11 * 1024 * 1024)
    boto3_us = boto3.client("s3", endpoint_url=us.s3_endpoint, region_name="us-east-1",
                            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key)
    boto3_us.upload_fileobj(io.BytesIO(big), bucket, "ckpt/optimizer.bin",
                            Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    shards["ckpt/optimizer.bin"] = big
    assert us.metric("orbit_lease_held_writes_total") >= 5

    # Read at the holder, at home and at the third site (both redirected to
    # the holder), listings included; the deleted key is gone everywhere.
    for site in (us, eu, asia):
        for key, body in shards.items():
            assert read(site, creds, bucket, key) == body, (site.name, key)
        assert status_of(site, creds, bucket, "ckpt/README") == 404, site.name
        assert listed(site, creds, bucket, "ckpt/") == sorted(shards), site.name
        assert read(site, creds, bucket, "other/kept") == b"outside the lease"
    assert eu.metric("orbit_lease_redirected_reads_total") > 0
    assert asia.metric("orbit_lease_redirected_reads_total") > 0
    # Only the holder writes the prefix; elsewhere in the bucket anyone does.
    for s3 in (s3_eu, s3_asia):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="ckpt/intruder", Body=b"x")
        assert client_error(e.value)[0] == 503, client_error(e.value)
    s3_asia.put_object(Bucket=bucket, Key="other/new", Body=b"fine")

    # A write acknowledged while home is out of reach, then the holder is
    # killed: the prefix is unavailable elsewhere (never stale), and the write
    # survives the holder's restart.
    sites.wait_for("every staged write flushed", lambda: held(us, lease_id)["unflushed"] == 0, timeout=20)
    cut_off(sites, HOLDER, HOME)
    late = os.urandom(70_000)
    s3_us.put_object(Bucket=bucket, Key="ckpt/late", Body=late)
    assert held(us, lease_id)["unflushed"] == 1
    sites.kill9(HOLDER)
    reconnect(sites, HOLDER)
    assert status_of(eu, creds, bucket, "ckpt/shard-0") == 503
    assert status_of(asia, creds, bucket, "ckpt/late") == 503
    sites.restart(HOLDER)
    assert read(us, creds, bucket, "ckpt/late") == late
    shards["ckpt/late"] = late
    for site in (eu, asia):
        sites.wait_for(f"{site.name} reads through the restarted holder",
                       lambda: status_of(site, creds, bucket, "ckpt/late") == 200, timeout=20)
        assert read(site, creds, bucket, "ckpt/late") == late
    sites.wait_for("the holder flushed after its restart", lambda: held(us, lease_id)["unflushed"] == 0, timeout=20)

    # Release: everything reaches home, which serves the prefix on its own
    # again, the holder stopped.
    released = us.cli("site", "release", lease_id)
    assert released["released"] is True, released
    assert us.cli("site", "write-leases")["held"] == []
    assert eu.cli("site", "write-leases")["granted"] == []
    us.server.stop()
    for key, body in shards.items():
        assert read(eu, creds, bucket, key) == body, key
    assert status_of(eu, creds, bucket, "ckpt/README") == 404
    assert listed(eu, creds, bucket, "ckpt/") == sorted(shards)
    s3_eu.put_object(Bucket=bucket, Key="ckpt/next-run", Body=b"home writes again")


def test_revocation_declares_the_unflushed_writes_lost(sites_factory):
    sites = start(sites_factory)
    creds, bucket = bucket_homed_at_eu(sites)
    eu, us = sites[HOME], sites[HOLDER]
    s3_us = s3_client(us.s3_endpoint, creds)
    lease_id = us.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "run/")["lease"]
    s3_us.put_object(Bucket=bucket, Key="run/flushed", Body=b"reached home")
    sites.wait_for("the first write flushed", lambda: held(us, lease_id)["unflushed"] == 0, timeout=20)
    cut_off(sites, HOLDER, HOME)
    s3_us.put_object(Bucket=bucket, Key="run/stranded", Body=b"never reaches home")
    sites.kill9(HOLDER)
    reconnect(sites, HOLDER)
    # The holder is gone: its prefix is unavailable, not stale.
    assert status_of(eu, creds, bucket, "run/flushed") == 503

    outcome = eu.cli("site", "revoke", lease_id)
    assert outcome["holder"] == HOLDER and outcome["lost_after"] == 1, outcome
    assert "lost" in outcome["statement"], outcome
    assert read(eu, creds, bucket, "run/flushed") == b"reached home"
    assert status_of(eu, creds, bucket, "run/stranded") == 404
    s3_client(eu.s3_endpoint, creds).put_object(Bucket=bucket, Key="run/after", Body=b"home owns it again")

    # The holder returns, learns of the revocation, and discards what it
    # held: it never serves the lost write.
    sites.restart(HOLDER)
    sites.wait_for("the holder dropped the revoked lease",
                   lambda: us.cli("site", "write-leases")["held"] == [], timeout=30)
    lost = us.cli("site", "write-leases")["lost"]
    assert [(entry["lease"], entry["keys"]) for entry in lost] == [(lease_id, ["run/stranded"])], lost
    assert status_of(us, creds, bucket, "run/stranded") == 404
    assert read(us, creds, bucket, "run/flushed") == b"reached home"
    assert read(us, creds, bucket, "run/after") == b"home owns it again"


def test_staged_writes_keep_their_bucket_and_copies_cross_homes(sites_factory):
    sites = start(sites_factory)
    creds, bucket = bucket_homed_at_eu(sites)
    eu, us = sites[HOME], sites[HOLDER]
    s3_eu, s3_us = s3_client(eu.s3_endpoint, creds), s3_client(us.s3_endpoint, creds)
    lease_id = us.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "")["lease"]
    cut_off(sites, HOLDER, HOME)
    s3_us.put_object(Bucket=bucket, Key="only-at-us", Body=b"staged")
    # Home's own tables are empty, but the bucket is not: it is not deleted.
    with pytest.raises(ClientError) as e:
        s3_eu.delete_bucket(Bucket=bucket)
    assert client_error(e.value)[:2] == (409, "BucketNotEmpty"), client_error(e.value)
    reconnect(sites, HOLDER)
    sites.wait_for("the staged write flushed", lambda: held(us, lease_id)["unflushed"] == 0, timeout=20)
    assert us.cli("site", "release", lease_id)["released"] is True
    assert read(eu, creds, bucket, "only-at-us") == b"staged"

    # CopyObject between buckets of different homes, both ways, at a satellite.
    local = unique("at-us")
    s3_us.create_bucket(Bucket=local)
    s3_us.copy_object(Bucket=local, Key="copied", CopySource={"Bucket": bucket, "Key": "only-at-us"})
    assert read(us, creds, local, "copied") == b"staged"
    s3_us.put_object(Bucket=local, Key="native", Body=b"made at us", Metadata={"origin": "us"})
    s3_us.copy_object(Bucket=bucket, Key="from-us", CopySource={"Bucket": local, "Key": "native"})
    got = s3_eu.get_object(Bucket=bucket, Key="from-us")
    assert got["Body"].read() == b"made at us" and got["Metadata"] == {"origin": "us"}, got["Metadata"]
    with pytest.raises(ClientError) as e:
        s3_us.copy_object(Bucket=local, Key="x", CopySource={"Bucket": bucket, "Key": "only-at-us"},
                          CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    assert client_error(e.value)[:2] == (412, "PreconditionFailed"), client_error(e.value)
