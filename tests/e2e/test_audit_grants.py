"""Audit log, self-managed tenants with operator-set limits, and per-user
grants on buckets and prefixes, through the CLI, the admin API, boto3 and
aws-cli."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from orbit_e2e import Creds, MiB, expect_client_error, orbit_bin, unique


def tamper_bin() -> str:
    # Built beside the orbit binary by `cargo build -p orbit --example audit-tamper`.
    path = Path(orbit_bin()).parent / "examples" / "audit-tamper"
    if not path.exists():
        pytest.fail(f"{path} is missing: run cargo build -p orbit --example audit-tamper")
    return str(path)


def admin_error(r):
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    err = body.get("error", {}) if isinstance(body, dict) else {}
    return r.status_code, err.get("code", ""), err.get("message", "")


def self_managed(orbit):
    """A self-managed tenant with a tenant-admin key."""
    tenant = orbit.new_tenant(model="self-managed")
    admin = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))
    return tenant, admin


def audit(orbit, *args, creds=None):
    return orbit.cli("audit", "list", *args, creds=creds)


# ------------------------------------------------------------------ audit log


def test_admin_actions_and_refusals_are_recorded(orbit):
    tenant, admin = self_managed(orbit)
    user = orbit.new_user(tenant, role="read-write", creds=admin)
    # A refusal: a tenant-admin may not create an operator.
    r = orbit.cli("user", "create", "--tenant", tenant, "boss", "--role", "operator", creds=admin, check=False)
    assert r.returncode != 0

    records = audit(orbit, "--tenant", tenant)
    creates = [r for r in records if r["action"] == "user.create"]
    # The operator's and the tenant-admin's creations, and the refused one.
    assert [(r["actor"].split("/")[1], r["outcome"]) for r in creates][-2:] == [
        (admin.user, "ok"), (admin.user, "denied")]
    assert any(r["actor"] == "_system/root" and r["outcome"] == "ok" for r in creates)
    assert all(r["tenant"] == tenant for r in records)
    assert any(user in r["target"] for r in creates)
    # Filters.
    mine = audit(orbit, "--tenant", tenant, "--user", admin.user, "--action", "user.create")
    assert len(mine) == 2 and all(r["actor"] == f"{tenant}/{admin.user}" for r in mine)
    assert audit(orbit, "--tenant", tenant, "--since", "2999-01-01T00:00:00Z") == []
    assert audit(orbit, "--tenant", tenant, "--until", "2000-01-01T00:00:00Z") == []
    assert len(audit(orbit, "--tenant", tenant, "--limit", "1")) == 1
    bad = orbit.cli("audit", "list", "--since", "yesterday", check=False)
    assert bad.returncode != 0 and "RFC 3339" in bad.stderr


def test_authentication_failures_are_recorded(orbit):
    creds = orbit.new_tenant_with_key()
    # S3: a known key with a wrong secret goes to its tenant's chain ...
    wrong = Creds(creds.tenant, creds.user, creds.access_key, "not-the-secret-000000")
    status, code, _ = expect_client_error(orbit.s3(wrong).list_buckets)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    # ... an unknown key to the system tenant's.
    ghost = Creds(None, None, "GHOSTKEY" + unique("k")[-8:].upper(), "whatever-secret-000000")
    status, code, _ = expect_client_error(orbit.s3(ghost).list_buckets)
    assert (status, code) == (403, "InvalidAccessKeyId")
    # Admin API: a bad signature, and an unknown key.
    assert orbit.admin("GET", "/admin/v1/whoami", creds=creds, secret_for_signing="wrong").status_code == 401
    assert orbit.admin("GET", "/admin/v1/whoami", creds=ghost).status_code == 401

    own = audit(orbit, "--tenant", creds.tenant, "--action", "auth.")
    assert {(r["action"], r["access_key"]) for r in own} >= {
        ("auth.s3", creds.access_key), ("auth.admin", creds.access_key)}
    assert any(r["outcome"] == "SignatureDoesNotMatch" for r in own)
    system = audit(orbit, "--tenant", "_system", "--action", "auth.")
    ghosts = [r for r in system if r["access_key"] == ghost.access_key]
    assert {r["action"] for r in ghosts} == {"auth.s3", "auth.admin"}
    assert all(r["actor"] == "" for r in ghosts)


def test_data_access_audit_only_when_enabled(orbit):
    tenant, admin = self_managed(orbit)
    rw = orbit.new_key(tenant, orbit.new_user(tenant, role="read-write", creds=admin), creds=admin)
    s3 = orbit.s3(rw)
    s3.create_bucket(Bucket="logged")
    s3.put_object(Bucket="logged", Key="before", Body=b"x")
    assert audit(orbit, "--tenant", tenant, "--action", "s3.") == []
    assert orbit.cli("audit", "data-access", "--tenant", tenant, "show", creds=admin)["data_access"] is False

    # The tenant-admin turns it on for its own tenant.
    assert orbit.cli("audit", "data-access", "--tenant", tenant, "on", creds=admin)["data_access"] is True
    s3.get_object(Bucket="logged", Key="before")["Body"].read()
    expect_client_error(s3.get_object, Bucket="logged", Key="missing")
    s3.put_object(Bucket="logged", Key="dir/after", Body=b"y")
    ops = [(r["action"], r["target"], r["outcome"]) for r in audit(orbit, "--tenant", tenant, "--action", "s3.")]
    assert ops == [
        ("s3.GetObject", "logged/before", "ok"),
        ("s3.GetObject", "logged/missing", "NoSuchKey"),
        ("s3.PutObject", "logged/dir/after", "ok"),
    ]
    orbit.cli("audit", "data-access", "--tenant", tenant, "off", creds=admin)
    s3.get_object(Bucket="logged", Key="before")
    assert len(audit(orbit, "--tenant", tenant, "--action", "s3.")) == 3


def test_tenant_admin_sees_only_its_own_records(orbit):
    a_tenant, a_admin = self_managed(orbit)
    b_tenant, b_admin = self_managed(orbit)
    orbit.new_user(b_tenant, creds=b_admin)
    mine = audit(orbit, creds=a_admin)
    assert mine and all(r["tenant"] == a_tenant for r in mine)
    assert b_tenant not in str(mine)
    assert orbit.cli("audit", "verify", creds=a_admin)["ok"] is True

    missing = unique("nx")
    for args in (["audit", "list", "--tenant"], ["audit", "verify", "--tenant"],
                 ["audit", "data-access", "show", "--tenant"], ["tenant", "limits", "show"]):
        r1 = orbit.cli(*args, b_tenant, creds=a_admin, check=False)
        r2 = orbit.cli(*args, missing, creds=a_admin, check=False)
        assert r1.returncode != 0 and r1.returncode == r2.returncode, args
        assert r1.stderr.replace(b_tenant, "<T>") == r2.stderr.replace(missing, "<T>"), args
        assert "AccessDenied" in r1.stderr

    # Data roles see no records at all, not even their own tenant's.
    rw = orbit.new_key(a_tenant, orbit.new_user(a_tenant, creds=a_admin), creds=a_admin)
    for args in (["audit", "list"], ["audit", "verify"], ["audit", "list", "--tenant", a_tenant]):
        r = orbit.cli(*args, creds=rw, check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, args


@pytest.mark.parametrize("mode,seq", [("edit", 2), ("remove", 2), ("reorder", 2), ("truncate", 3)])
def test_tampering_with_a_stopped_servers_file_is_detected(orbit_factory, mode, seq):
    srv = orbit_factory()
    tenant = srv.new_tenant(model="self-managed")
    for _ in range(5):
        srv.new_user(tenant)
    assert len(srv.cli("audit", "list", "--tenant", tenant)) >= 5
    assert srv.cli("audit", "verify")["ok"] is True
    srv.stop()

    offline = ["audit", "verify", "--data-dir", str(srv.data_dir)]
    ok = srv.cli_run(*offline)
    assert ok.returncode == 0, ok.stderr
    subprocess.run([tamper_bin(), str(srv.data_dir), tenant, mode, str(seq)], check=True, timeout=60)

    bad = srv.cli_run(*offline)
    assert bad.returncode != 0
    assert f"audit chain of tenant {tenant} is broken at record {seq}" in bad.stderr, bad.stderr
    # Only the tampered chain is broken.
    others = [c for c in srv.cli_run(*offline).json["chains"] if c["tenant"] != tenant]
    assert others and all(c["ok"] for c in others)
    one = srv.cli_run(*offline, "--tenant", tenant)
    assert one.returncode != 0 and f"record {seq}" in one.stderr

    # The running server says the same.
    srv.start()
    online = srv.cli("audit", "verify", "--tenant", tenant, check=False)
    assert online.returncode != 0 and f"broken at record {seq}" in online.stderr


# ---------------------------------------------------- self-managed tenants


def test_self_managed_tenant_admin_works_within_limits(orbit):
    tenant, admin = self_managed(orbit)
    # Only the operator sets limits.
    r = orbit.cli("tenant", "limits", "set", tenant, "--max-users", "99", creds=admin, check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    limits = orbit.cli("tenant", "limits", "set", tenant, "--max-users", "3", "--max-keys-per-user", "1",
                       "--max-buckets", "1")
    assert limits == {"max_users": 3, "max_keys_per_user": 1, "max_buckets": 1}
    assert orbit.cli("tenant", "limits", "show", tenant, creds=admin) == limits

    u1 = orbit.new_user(tenant, creds=admin)
    u2 = orbit.new_user(tenant, creds=admin)  # the tenant-admin is the third user
    r = orbit.cli("user", "create", "--tenant", tenant, "u4", "--role", "read-only", creds=admin, check=False)
    assert r.returncode != 0
    assert f"tenant {tenant} may have at most 3 users" in r.stderr and "LimitExceeded" in r.stderr
    k1 = orbit.new_key(tenant, u1, creds=admin)
    r = orbit.cli("key", "create", "--tenant", tenant, "--user", u1, creds=admin, check=False)
    assert r.returncode != 0 and "at most 1 access keys per user" in r.stderr

    orbit.cli("bucket", "create", "--tenant", tenant, "first", creds=admin)
    r = orbit.cli("bucket", "create", "--tenant", tenant, "second", creds=admin, check=False)
    assert r.returncode != 0 and "at most 1 buckets" in r.stderr
    status, code, msg = expect_client_error(orbit.s3(k1).create_bucket, Bucket="viaS3".lower())
    assert (status, code) == (400, "TooManyBuckets") and "at most 1 buckets" in msg

    # Grants are the tenant-admin's to manage too.
    orbit.cli("grant", "add", "--tenant", tenant, "--user", u2, "--bucket", "first", "--access", "read",
              creds=admin)
    # Never beyond its tenant's own settings: no operator, no cache share, no limits.
    r = orbit.cli("user", "create", "--tenant", tenant, "op", "--role", "operator", creds=admin, check=False)
    assert r.returncode != 0
    r = orbit.cli("tenant", "cache-share", tenant, "--ram-bytes", "1048576", creds=admin, check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    # The operator, who set the limits, is not bound by them.
    orbit.new_user(tenant)
    orbit.cli("bucket", "create", "--tenant", tenant, "second")
    # Removing the limits lifts them.
    orbit.cli("tenant", "limits", "set", tenant)
    orbit.new_user(tenant, creds=admin)


def test_admin_only_tenant_admin_cannot_manage_identities_or_grants(orbit):
    tenant = orbit.new_tenant(model="admin-only")
    admin = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))
    user = orbit.new_user(tenant)
    for args in (["user", "create", "--tenant", tenant, "x", "--role", "read-only"],
                 ["key", "create", "--tenant", tenant, "--user", user],
                 ["user", "delete", "--tenant", tenant, user],
                 ["grant", "add", "--tenant", tenant, "--user", user, "--bucket", "b", "--access", "read"]):
        r = orbit.cli(*args, creds=admin, check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, args
    # It still reads its tenant (and its grants).
    assert orbit.cli("grant", "list", "--tenant", tenant, "--user", user, creds=admin) == []


# ------------------------------------------------------------------- grants


@pytest.fixture
def granted(orbit):
    """A tenant with buckets `data` and `other`, and a read-write user limited
    to read on data/train/ and write on data/out/."""
    tenant = orbit.new_tenant()
    owner = orbit.new_key(tenant, orbit.new_user(tenant))
    s3 = orbit.s3(owner)
    for b in ("data", "other"):
        s3.create_bucket(Bucket=b)
    for k in ("train/a", "train/b", "secret/x", "training/y"):
        s3.put_object(Bucket="data", Key=k, Body=k.encode())
    user = orbit.new_user(tenant)
    creds = orbit.new_key(tenant, user)
    for prefix, access in (("train/", "read"), ("out/", "write"), ("out/", "read")):
        orbit.cli("grant", "add", "--tenant", tenant, "--user", user, "--bucket", "data",
                  "--prefix", prefix, "--access", access)
    return tenant, user, creds, owner


def denied(fn, *a, **kw):
    status, code, _ = expect_client_error(fn, *a, **kw)
    assert (status, code) == (403, "AccessDenied"), (status, code)


def test_grants_listed_and_validated(orbit, granted):
    tenant, user, _, _ = granted
    got = orbit.cli("grant", "list", "--tenant", tenant, "--user", user)
    assert sorted((g["bucket"], g["prefix"], g["access"]) for g in got) == [
        ("data", "out/", "read"), ("data", "out/", "write"), ("data", "train/", "read")]
    r = orbit.cli("grant", "add", "--tenant", tenant, "--user", "nobody", "--bucket", "data", "--access", "read",
                  check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    r = orbit.cli("grant", "add", "--tenant", tenant, "--user", user, "--bucket", "Bad_Name", "--access", "read",
                  check=False)
    assert r.returncode != 0 and "InvalidArgument" in r.stderr
    r = orbit.cli("grant", "remove", "--tenant", tenant, "--user", user, "--bucket", "data", "--access", "read",
                  check=False)
    assert r.returncode != 0 and "grant does not exist" in r.stderr
    r = orbit.admin("POST", f"/admin/v1/tenants/{tenant}/users/{user}/grants",
                    body={"bucket": "data", "access": "admin"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")


def test_grants_enforced_on_every_s3_operation(orbit, granted):
    tenant, user, creds, owner = granted
    s3 = orbit.s3(creds)
    # Buckets: only those with a grant are listed or visible.
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["data"]
    s3.head_bucket(Bucket="data")
    status, _, _ = expect_client_error(s3.head_bucket, Bucket="other")
    assert status == 403
    denied(s3.list_objects_v2, Bucket="other")
    # Reads.
    assert s3.get_object(Bucket="data", Key="train/a")["Body"].read() == b"train/a"
    s3.head_object(Bucket="data", Key="train/b")
    denied(s3.get_object, Bucket="data", Key="secret/x")
    denied(s3.get_object, Bucket="data", Key="training/y")
    assert expect_client_error(s3.head_object, Bucket="data", Key="secret/x")[0] == 403
    # Listings must fall inside a read grant.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="train/")["Contents"]] == ["train/a", "train/b"]
    assert [o["Key"] for o in s3.list_objects(Bucket="data", Prefix="train/")["Contents"]] == ["train/a", "train/b"]
    denied(s3.list_objects_v2, Bucket="data")
    denied(s3.list_objects_v2, Bucket="data", Prefix="train")
    denied(s3.list_objects, Bucket="data", Prefix="")
    # Writes.
    s3.put_object(Bucket="data", Key="out/x", Body=b"x")
    denied(s3.put_object, Bucket="data", Key="train/new", Body=b"x")
    denied(s3.delete_object, Bucket="data", Key="train/a")
    s3.delete_object(Bucket="data", Key="out/x")
    # Copy: read on the source, write on the destination.
    s3.copy_object(Bucket="data", Key="out/c", CopySource={"Bucket": "data", "Key": "train/a"})
    denied(s3.copy_object, Bucket="data", Key="out/d", CopySource={"Bucket": "data", "Key": "secret/x"})
    denied(s3.copy_object, Bucket="data", Key="train/z", CopySource={"Bucket": "data", "Key": "train/a"})
    # Multi-delete is decided per key.
    res = s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "out/c"}, {"Key": "train/a"}]})
    assert [d["Key"] for d in res.get("Deleted", [])] == ["out/c"]
    assert [(e["Key"], e["Code"]) for e in res.get("Errors", [])] == [("train/a", "AccessDenied")]
    orbit.s3(owner).head_object(Bucket="data", Key="train/a")
    # Multipart: every step writes its key; part copy reads its source.
    denied(s3.create_multipart_upload, Bucket="data", Key="train/mp")
    up = s3.create_multipart_upload(Bucket="data", Key="out/mp")["UploadId"]
    p1 = s3.upload_part(Bucket="data", Key="out/mp", UploadId=up, PartNumber=1, Body=b"a" * (5 * MiB))
    p2 = s3.upload_part_copy(Bucket="data", Key="out/mp", UploadId=up, PartNumber=2,
                             CopySource={"Bucket": "data", "Key": "train/b"})
    denied(s3.upload_part_copy, Bucket="data", Key="out/mp", UploadId=up, PartNumber=3,
           CopySource={"Bucket": "data", "Key": "secret/x"})
    assert len(s3.list_parts(Bucket="data", Key="out/mp", UploadId=up)["Parts"]) == 2
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="data", Prefix="out/").get("Uploads", [])] == ["out/mp"]
    denied(s3.list_multipart_uploads, Bucket="data")
    # An upload of a key outside the grants cannot be touched even with its id.
    other_up = orbit.s3(owner).create_multipart_upload(Bucket="data", Key="secret/mp")["UploadId"]
    denied(s3.upload_part, Bucket="data", Key="secret/mp", UploadId=other_up, PartNumber=1, Body=b"x")
    denied(s3.abort_multipart_upload, Bucket="data", Key="secret/mp", UploadId=other_up)
    denied(s3.list_parts, Bucket="data", Key="secret/mp", UploadId=other_up)
    denied(s3.complete_multipart_upload, Bucket="data", Key="secret/mp", UploadId=other_up,
           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "x"}]})
    s3.complete_multipart_upload(Bucket="data", Key="out/mp", UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.head_object(Bucket="data", Key="out/mp")["ContentLength"] == 5 * MiB + len(b"train/b")
    up2 = s3.create_multipart_upload(Bucket="data", Key="out/gone")["UploadId"]
    s3.abort_multipart_upload(Bucket="data", Key="out/gone", UploadId=up2)
    # Buckets: creating or deleting one needs write on all of it.
    denied(s3.create_bucket, Bucket="fresh")
    denied(s3.delete_bucket, Bucket="other")
    orbit.cli("grant", "add", "--tenant", tenant, "--user", user, "--bucket", "fresh", "--access", "write")
    s3.create_bucket(Bucket="fresh")
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["data", "fresh"]
    s3.delete_bucket(Bucket="fresh")
    # With every grant removed, the role's tenant-wide access is back at once.
    for prefix, access in (("train/", "read"), ("out/", "write"), ("out/", "read")):
        orbit.cli("grant", "remove", "--tenant", tenant, "--user", user, "--bucket", "data",
                  "--prefix", prefix, "--access", access)
    orbit.cli("grant", "remove", "--tenant", tenant, "--user", user, "--bucket", "fresh", "--access", "write")
    assert s3.get_object(Bucket="data", Key="secret/x")["Body"].read() == b"secret/x"
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["data", "other"]


def test_role_stays_the_ceiling(orbit):
    tenant = orbit.new_tenant()
    owner = orbit.new_key(tenant, orbit.new_user(tenant))
    orbit.s3(owner).create_bucket(Bucket="bkt")
    ro = orbit.new_user(tenant, role="read-only")
    creds = orbit.new_key(tenant, ro)
    orbit.cli("grant", "add", "--tenant", tenant, "--user", ro, "--bucket", "bkt", "--access", "write")
    denied(orbit.s3(creds).put_object, Bucket="bkt", Key="k", Body=b"x")


def test_grants_enforced_through_aws_cli(orbit, granted, tmp_path):
    tenant, user, creds, _ = granted
    src = tmp_path / "f.bin"
    src.write_bytes(b"hello")
    out = orbit.aws("s3", "ls", creds=creds).stdout
    assert "data" in out and "other" not in out
    assert "a" in orbit.aws("s3", "ls", "s3://data/train/", creds=creds).stdout
    orbit.aws("s3", "cp", str(src), "s3://data/out/f.bin", creds=creds)
    orbit.aws("s3", "cp", "s3://data/train/a", str(tmp_path / "a"), creds=creds)
    for args in (["s3", "cp", "s3://data/secret/x", str(tmp_path / "x")],
                 ["s3", "cp", str(src), "s3://data/train/f.bin"],
                 ["s3", "ls", "s3://data/"],
                 ["s3", "rm", "s3://data/train/a"],
                 ["s3api", "head-bucket", "--bucket", "other"]):
        p = orbit.aws(*args, creds=creds, check=False)
        assert p.returncode != 0, args
        assert "AccessDenied" in p.stderr or "Forbidden" in p.stderr or "403" in p.stderr, (args, p.stderr)
