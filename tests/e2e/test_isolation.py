"""Tenant isolation: another tenant's bucket must look exactly like a bucket
that exists nowhere, for every S3 operation; the admin API must not reveal
whether another tenant exists."""

from __future__ import annotations

import hashlib

import pytest
import requests
from botocore.exceptions import ClientError

from orbit_e2e import admin_error, client_error, md5_hex, parse_s3_error, unique, MiB


def normalised(err, *names):
    status, code, msg = err
    for n in names:
        msg = msg.replace(n, "<NAME>")
    return status, code, msg


def run_op(fn):
    try:
        fn()
    except ClientError as exc:
        return client_error(exc)
    return None  # success


@pytest.fixture
def world(orbit):
    """Tenant A with a private bucket (an object and an open multipart upload),
    tenant B with its own bucket."""
    a = orbit.new_tenant_with_key()
    b = orbit.new_tenant_with_key()
    sa, sb = orbit.s3(a), orbit.s3(b)
    abucket = unique("secret")
    sa.create_bucket(Bucket=abucket)
    sa.put_object(Bucket=abucket, Key="data/one.txt", Body=b"tenant A private data",
                  Metadata={"owner": "a"})
    mpu = sa.create_multipart_upload(Bucket=abucket, Key="mpu/obj")["UploadId"]
    part = sa.upload_part(Bucket=abucket, Key="mpu/obj", UploadId=mpu, PartNumber=1,
                          Body=b"p" * 1024)
    bown = unique("own")
    sb.create_bucket(Bucket=bown)
    sb.put_object(Bucket=bown, Key="src", Body=b"tenant B data")
    bmpu = sb.create_multipart_upload(Bucket=bown, Key="b-mpu")["UploadId"]
    return dict(a=a, b=b, sa=sa, sb=sb, abucket=abucket, mpu=mpu, part_etag=part["ETag"],
                bown=bown, bmpu=bmpu)


def s3_ops(w):
    """(name, fn(client, bucket)) for every S3 operation on a foreign bucket."""
    mpu, etag, bown, bmpu = w["mpu"], w["part_etag"], w["bown"], w["bmpu"]
    return [
        ("head_bucket", lambda c, bk: c.head_bucket(Bucket=bk)),
        ("get_bucket_location", lambda c, bk: c.get_bucket_location(Bucket=bk)),
        ("list_objects", lambda c, bk: c.list_objects(Bucket=bk)),
        ("list_objects_v2", lambda c, bk: c.list_objects_v2(Bucket=bk)),
        ("list_objects_v2_prefix", lambda c, bk: c.list_objects_v2(Bucket=bk, Prefix="data/",
                                                                   Delimiter="/")),
        ("list_multipart_uploads", lambda c, bk: c.list_multipart_uploads(Bucket=bk)),
        ("get_object", lambda c, bk: c.get_object(Bucket=bk, Key="data/one.txt")),
        ("get_object_missing_key", lambda c, bk: c.get_object(Bucket=bk, Key="nope")),
        ("get_object_range", lambda c, bk: c.get_object(Bucket=bk, Key="data/one.txt",
                                                        Range="bytes=0-3")),
        ("head_object", lambda c, bk: c.head_object(Bucket=bk, Key="data/one.txt")),
        ("put_object_overwrite", lambda c, bk: c.put_object(Bucket=bk, Key="data/one.txt",
                                                            Body=b"overwritten!")),
        ("put_object_new", lambda c, bk: c.put_object(Bucket=bk, Key="planted", Body=b"x")),
        ("delete_object", lambda c, bk: c.delete_object(Bucket=bk, Key="data/one.txt")),
        ("delete_objects", lambda c, bk: c.delete_objects(
            Bucket=bk, Delete={"Objects": [{"Key": "data/one.txt"}, {"Key": "mpu/obj"}]})),
        ("create_multipart_upload", lambda c, bk: c.create_multipart_upload(Bucket=bk,
                                                                            Key="planted-mpu")),
        ("upload_part", lambda c, bk: c.upload_part(Bucket=bk, Key="mpu/obj", UploadId=mpu,
                                                    PartNumber=2, Body=b"evil" * 100)),
        ("list_parts", lambda c, bk: c.list_parts(Bucket=bk, Key="mpu/obj", UploadId=mpu)),
        ("complete_multipart_upload", lambda c, bk: c.complete_multipart_upload(
            Bucket=bk, Key="mpu/obj", UploadId=mpu,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})),
        ("abort_multipart_upload", lambda c, bk: c.abort_multipart_upload(
            Bucket=bk, Key="mpu/obj", UploadId=mpu)),
        ("copy_object_into_foreign", lambda c, bk: c.copy_object(
            Bucket=bk, Key="data/one.txt", CopySource={"Bucket": bown, "Key": "src"})),
        ("copy_object_from_foreign", lambda c, bk: c.copy_object(
            Bucket=bown, Key="stolen", CopySource={"Bucket": bk, "Key": "data/one.txt"})),
        ("upload_part_copy_from_foreign", lambda c, bk: c.upload_part_copy(
            Bucket=bown, Key="b-mpu", UploadId=bmpu, PartNumber=1,
            CopySource={"Bucket": bk, "Key": "data/one.txt"})),
        ("delete_bucket", lambda c, bk: c.delete_bucket(Bucket=bk)),
    ]


def assert_a_untouched(w):
    sa, bk = w["sa"], w["abucket"]
    got = sa.get_object(Bucket=bk, Key="data/one.txt")
    assert got["Body"].read() == b"tenant A private data"
    assert got["Metadata"] == {"owner": "a"}
    keys = [o["Key"] for o in sa.list_objects_v2(Bucket=bk).get("Contents", [])]
    assert keys == ["data/one.txt"], keys
    uploads = sa.list_multipart_uploads(Bucket=bk).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mpu/obj", w["mpu"])]
    parts = sa.list_parts(Bucket=bk, Key="mpu/obj", UploadId=w["mpu"]).get("Parts", [])
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, w["part_etag"], 1024)]
    assert bk in [b["Name"] for b in sa.list_buckets()["Buckets"]]


def test_list_buckets_shows_only_own(orbit, world):
    b_names = {b["Name"] for b in world["sb"].list_buckets()["Buckets"]}
    assert b_names == {world["bown"]}
    a_names = {b["Name"] for b in world["sa"].list_buckets()["Buckets"]}
    assert a_names == {world["abucket"]}


@pytest.mark.parametrize("op_name", [name for name, _ in s3_ops(
    dict(mpu="u", part_etag="e", bown="o", bmpu="m"))])
def test_foreign_bucket_looks_missing(orbit, world, op_name):
    fn = dict(s3_ops(world))[op_name]
    sb = world["sb"]
    foreign, missing = world["abucket"], unique("nx")

    on_foreign = run_op(lambda: fn(sb, foreign))
    on_missing = run_op(lambda: fn(sb, missing))
    assert on_foreign is not None, f"{op_name} on another tenant's bucket succeeded"
    assert on_missing is not None, f"{op_name} on a bucket that exists nowhere succeeded"
    assert on_foreign[0] == 404 and on_foreign[1] in ("NoSuchBucket", "404"), on_foreign
    assert normalised(on_foreign, foreign) == normalised(on_missing, missing)
    assert_a_untouched(world)
    # and B gained nothing
    keys = [o["Key"] for o in world["sb"].list_objects_v2(Bucket=world["bown"]).get("Contents", [])]
    assert keys == ["src"], keys


def test_foreign_bucket_same_name_before_and_after_deletion(orbit, world):
    """The strongest form: the very same request, byte for byte, while the
    bucket exists in tenant A and after A deleted it."""
    sb, sa, bk = world["sb"], world["sa"], world["abucket"]
    ops = [("get_object", lambda: sb.get_object(Bucket=bk, Key="data/one.txt")),
           ("list_objects_v2", lambda: sb.list_objects_v2(Bucket=bk)),
           ("put_object", lambda: sb.put_object(Bucket=bk, Key="x", Body=b"x")),
           ("head_bucket", lambda: sb.head_bucket(Bucket=bk))]
    raw_path = f"/{bk}/data/one.txt"
    before = [run_op(fn) for _, fn in ops]
    raw_before = orbit.raw_s3("GET", raw_path, world["b"])
    sa.abort_multipart_upload(Bucket=bk, Key="mpu/obj", UploadId=world["mpu"])
    sa.delete_object(Bucket=bk, Key="data/one.txt")
    sa.delete_bucket(Bucket=bk)
    after = [run_op(fn) for _, fn in ops]
    raw_after = orbit.raw_s3("GET", raw_path, world["b"])
    for (name, _), x, y in zip(ops, before, after):
        assert x is not None and x == y, (name, x, y)
    assert raw_before.status == raw_after.status == 404
    assert parse_s3_error(raw_before.body) == parse_s3_error(raw_after.body)
    assert raw_before.code == "NoSuchBucket"


def test_presigned_and_virtual_host_requests_to_foreign_bucket(orbit, world):
    sb, bk = world["sb"], world["abucket"]
    missing = unique("nx")
    results = []
    for name in (bk, missing):
        url = sb.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "data/one.txt"},
                                        ExpiresIn=300)
        r = requests.get(url, timeout=30)
        code, msg = parse_s3_error(r.content)
        results.append((r.status_code, code, msg.replace(name, "<NAME>")))
        assert b"tenant A private data" not in r.content
    assert results[0] == results[1]
    assert results[0][:2] == (404, "NoSuchBucket")

    results = []
    for name in (bk, missing):
        host = f"{name}.{orbit.s3_domain}:{orbit.s3_port}"
        r = orbit.raw_s3("GET", "/data/one.txt", world["b"], host=host)
        results.append((r.status, r.code, r.message.replace(name, "<NAME>")))
        assert b"tenant A private data" not in r.body
    assert results[0] == results[1]
    assert results[0][:2] == (404, "NoSuchBucket")
    assert_a_untouched(world)


def test_both_tenants_own_datasets(orbit):
    a = orbit.new_tenant_with_key()
    b = orbit.new_tenant_with_key()
    sa, sb = orbit.s3(a), orbit.s3(b)
    sa.create_bucket(Bucket="datasets")
    sb.create_bucket(Bucket="datasets")  # same name, other tenant: allowed

    files_a = {"train/0001.bin": b"A" * 1000, "train/0002.bin": b"A2" * 300, "README": b"lab A"}
    files_b = {"train/0001.bin": b"B" * 2000, "val/0001.bin": b"B-val", "README": b"lab B"}
    for k, v in files_a.items():
        sa.put_object(Bucket="datasets", Key=k, Body=v)
    for k, v in files_b.items():
        sb.put_object(Bucket="datasets", Key=k, Body=v)

    for client, files in ((sa, files_a), (sb, files_b)):
        listing = client.list_objects_v2(Bucket="datasets")["Contents"]
        assert sorted(o["Key"] for o in listing) == sorted(files)
        for o in listing:
            assert o["Size"] == len(files[o["Key"]])
            assert o["ETag"].strip('"') == md5_hex(files[o["Key"]])
        for k, v in files.items():
            assert client.get_object(Bucket="datasets", Key=k)["Body"].read() == v
        prefixes = client.list_objects_v2(Bucket="datasets", Delimiter="/").get("CommonPrefixes", [])
        assert sorted(p["Prefix"] for p in prefixes) == sorted({k.split("/")[0] + "/"
                                                                for k in files if "/" in k})
        assert [x["Name"] for x in client.list_buckets()["Buckets"]] == ["datasets"]

    # B does not see A's key that B lacks
    status, code, _ = run_op(lambda: sb.get_object(Bucket="datasets", Key="train/0002.bin"))
    assert (status, code) == (404, "NoSuchKey")

    # deleting in one tenant leaves the other alone
    sa.delete_objects(Bucket="datasets", Delete={"Objects": [{"Key": k} for k in files_a]})
    sa.delete_bucket(Bucket="datasets")
    assert sb.get_object(Bucket="datasets", Key="train/0001.bin")["Body"].read() == b"B" * 2000
    sb.head_bucket(Bucket="datasets")
    status, code, _ = run_op(lambda: sa.head_bucket(Bucket="datasets"))
    assert status == 404

    # and A can make it again, empty
    sa.create_bucket(Bucket="datasets")
    assert sa.list_objects_v2(Bucket="datasets").get("Contents", []) == []
    assert len(sb.list_objects_v2(Bucket="datasets")["Contents"]) == len(files_b)


def test_multipart_of_same_named_buckets_are_separate(orbit):
    a = orbit.new_tenant_with_key()
    b = orbit.new_tenant_with_key()
    sa, sb = orbit.s3(a), orbit.s3(b)
    for c in (sa, sb):
        c.create_bucket(Bucket="checkpoints")
    ua = sa.create_multipart_upload(Bucket="checkpoints", Key="ckpt")["UploadId"]
    sa.upload_part(Bucket="checkpoints", Key="ckpt", UploadId=ua, PartNumber=1, Body=b"a" * 10)
    assert sb.list_multipart_uploads(Bucket="checkpoints").get("Uploads", []) == []
    # B cannot use A's upload id in its own same-named bucket either
    err = run_op(lambda: sb.upload_part(Bucket="checkpoints", Key="ckpt", UploadId=ua,
                                        PartNumber=2, Body=b"b" * 10))
    assert err is not None and err[0] == 404 and err[1] == "NoSuchUpload", err
    err = run_op(lambda: sb.complete_multipart_upload(
        Bucket="checkpoints", Key="ckpt", UploadId=ua,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": md5_hex(b"a" * 10)}]}))
    assert err is not None and err[1] == "NoSuchUpload", err
    err = run_op(lambda: sb.abort_multipart_upload(Bucket="checkpoints", Key="ckpt", UploadId=ua))
    assert err is not None and err[1] == "NoSuchUpload", err
    parts = sa.list_parts(Bucket="checkpoints", Key="ckpt", UploadId=ua)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 10)]
    sa.complete_multipart_upload(Bucket="checkpoints", Key="ckpt", UploadId=ua,
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": parts[0]["ETag"]}]})
    assert sa.get_object(Bucket="checkpoints", Key="ckpt")["Body"].read() == b"a" * 10
    assert run_op(lambda: sb.get_object(Bucket="checkpoints", Key="ckpt"))[1] == "NoSuchKey"


def test_keys_cannot_cross_tenants_by_name(orbit):
    """A bucket name with a tenant-looking prefix never reaches the other tenant."""
    a = orbit.new_tenant_with_key()
    b = orbit.new_tenant_with_key()
    sa, sb = orbit.s3(a), orbit.s3(b)
    sa.create_bucket(Bucket="models")
    sa.put_object(Bucket="models", Key="k", Body=b"A")
    for guess in (f"{a.tenant}-models", f"{a.tenant}.models", f"{a.tenant}models"):
        if len(guess) > 63:
            continue
        err = run_op(lambda: sb.get_object(Bucket=guess, Key="k"))
        assert err is not None and err[0] in (400, 404), (guess, err)
    # an encoded separator in the path is part of an opaque key, not a way out
    r = orbit.raw_s3("GET", f"/{a.tenant}%2Fmodels/k", b)
    assert r.status in (400, 403, 404), (r.status, r.body)
    assert r.body != b"A"


# ---------------------------------------------------------- admin API


def admin_matrix(tenant, user, bucket, access_key):
    return [
        ("GET", f"/admin/v1/tenants/{tenant}", None),
        ("DELETE", f"/admin/v1/tenants/{tenant}", None),
        ("GET", f"/admin/v1/tenants/{tenant}/users", None),
        ("POST", f"/admin/v1/tenants/{tenant}/users", {"name": "intruder", "role": "tenant-admin"}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/users/{user}", None),
        ("GET", f"/admin/v1/tenants/{tenant}/keys?user={user}", None),
        ("POST", f"/admin/v1/tenants/{tenant}/users/{user}/keys", {}),
        ("GET", f"/admin/v1/tenants/{tenant}/keys", None),
        ("DELETE", f"/admin/v1/tenants/{tenant}/keys/{access_key}", None),
        ("GET", f"/admin/v1/tenants/{tenant}/buckets", None),
        ("POST", f"/admin/v1/tenants/{tenant}/buckets", {"name": "planted"}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/buckets/{bucket}", None),
        ("GET", f"/admin/v1/audit?tenant={tenant}", None),
        ("GET", f"/admin/v1/audit/verify?tenant={tenant}", None),
        ("GET", f"/admin/v1/tenants/{tenant}/audit-settings", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/audit-settings", {"data_access": True}),
        ("GET", f"/admin/v1/tenants/{tenant}/limits", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/limits", {"max_users": 1000}),
        ("GET", f"/admin/v1/tenants/{tenant}/users/{user}/grants", None),
        ("POST", f"/admin/v1/tenants/{tenant}/users/{user}/grants", {"bucket": bucket, "access": "read"}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/users/{user}/grants?bucket={bucket}&access=read", None),
        # cache, pins, layout, prefetch
        ("GET", f"/admin/v1/tenants/{tenant}/cache", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/cache-share", {"ram_bytes": 1 << 20}),
        ("PUT", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/cache", {"admission": "first-miss"}),
        ("POST", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/pins", {"prefix": ""}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/pins?prefix=", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/mode", {"mode": "validate"}),
        ("GET", f"/admin/v1/tenants/{tenant}/prefetch", None),
        ("POST", f"/admin/v1/tenants/{tenant}/prefetch", {"bucket": bucket}),
        # rate limits, quotas, usage and billing records
        ("GET", f"/admin/v1/tenants/{tenant}/qos", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/qos", {"read_rps": 1}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/qos", None),
        ("GET", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/qos", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/qos", {"read_rps": 1}),
        ("GET", f"/admin/v1/tenants/{tenant}/quota", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/quota", {"max_bytes": 1, "kind": "hard"}),
        ("DELETE", f"/admin/v1/tenants/{tenant}/quota", None),
        ("GET", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/quota", None),
        ("PUT", f"/admin/v1/tenants/{tenant}/buckets/{bucket}/quota", {"max_objects": 1, "kind": "hard"}),
        ("GET", f"/admin/v1/tenants/{tenant}/usage", None),
        ("GET", f"/admin/v1/tenants/{tenant}/usage/report", None),
        ("GET", f"/admin/v1/tenants/{tenant}/usage/report?format=csv", None),
        ("POST", f"/admin/v1/tenants/{tenant}/usage/recount?fix=true", None),
    ]


SPEC_PATHS = {"/admin/v1/audit", "/admin/v1/audit/verify", "/admin/v1/tenants/{tenant}/limits",
              "/admin/v1/tenants/{tenant}/audit-settings", "/admin/v1/tenants/{tenant}/users/{user}/grants",
              "/admin/v1/tenants/{tenant}", "/admin/v1/tenants/{tenant}/users",
              "/admin/v1/tenants/{tenant}/users/{user}/keys", "/admin/v1/tenants/{tenant}/keys",
              "/admin/v1/tenants/{tenant}/buckets"}


def test_admin_api_tenant_admin_of_b_against_a(orbit):
    a = orbit.new_tenant_with_key(model="self-managed")
    orbit.cli("bucket", "create", "--tenant", a.tenant, "a-bucket")
    b_tenant = orbit.new_tenant(model="self-managed")
    b_admin = orbit.new_key(b_tenant, orbit.new_user(b_tenant, role="tenant-admin"))
    # Every role of B, not only its admin: data roles have no admin rights anywhere.
    b_roles = [b_admin] + [orbit.new_key(b_tenant, orbit.new_user(b_tenant, role=r)) for r in ("read-write", "read-only")]
    missing = unique("nx")
    doc_paths = set(requests.get(f"{orbit.admin_url}/admin/v1/openapi.json", timeout=10)
                    .json().get("paths", {}))

    orbit.cli("grant", "add", "--tenant", a.tenant, "--user", a.user, "--bucket", "a-bucket", "--access", "read")

    def state():
        return (orbit.cli("user", "list", "--tenant", a.tenant),
                orbit.cli("tenant", "show", a.tenant),
                orbit.cli("qos", "show", "--tenant", a.tenant),
                orbit.cli("quota", "show", "--tenant", a.tenant),
                orbit.cli("prefetch", "list", "--tenant", a.tenant),
                orbit.cli("key", "list", "--tenant", a.tenant),
                orbit.cli("bucket", "list", "--tenant", a.tenant),
                orbit.cli("grant", "list", "--tenant", a.tenant, "--user", a.user),
                orbit.cli("tenant", "limits", "show", a.tenant),
                orbit.cli("audit", "data-access", "--tenant", a.tenant, "show"),
                [r for r in orbit.cli("audit", "list", "--tenant", a.tenant) if r["action"] != "audit.list"])

    before = state()

    real = admin_matrix(a.tenant, a.user, "a-bucket", a.access_key)
    fake = admin_matrix(missing, a.user, "a-bucket", a.access_key)
    for who in b_roles:
        for (method, path, body), (_, fpath, _) in zip(real, fake):
            r1 = orbit.admin(method, path, creds=who, body=body)
            r2 = orbit.admin(method, fpath, creds=who, body=body)
            e1, e2 = admin_error(r1), admin_error(r2)
            assert normalised(e1, a.tenant) == normalised(e2, missing), (who.user, method, path, e1, e2)
            template = path.split("?")[0].replace(a.tenant, "{tenant}").replace(a.user, "{user}")
            if template in SPEC_PATHS or template in doc_paths:
                assert e1[:2] == (403, "AccessDenied"), (who.user, method, path, e1)
            else:
                assert e1[0] in (403, 404, 405), (who.user, method, path, e1)
            assert a.secret_key not in r1.text

    after = state()
    assert before == after
    # B's admin probed A: those refusals are in B's chain, never in A's.
    probes = orbit.cli("audit", "list", "--tenant", b_tenant, "--user", b_admin.user)
    assert probes and all(r["outcome"] in ("denied", "not-found", "http-405") for r in probes)
    assert orbit.cli("tenant", "show", a.tenant)["name"] == a.tenant
    orbit.s3(a).list_buckets()

    # the CLI gives the same error either way
    r1 = orbit.cli("user", "list", "--tenant", a.tenant, creds=b_admin, check=False)
    r2 = orbit.cli("user", "list", "--tenant", missing, creds=b_admin, check=False)
    assert r1.returncode != 0 and r1.returncode == r2.returncode
    assert r1.stderr.replace(a.tenant, "<T>") == r2.stderr.replace(missing, "<T>")


def test_admin_api_list_tenants_by_tenant_admin_reveals_nothing(orbit):
    a_tenant = orbit.new_tenant(model="self-managed")
    b_tenant = orbit.new_tenant(model="self-managed")
    b_admin = orbit.new_key(b_tenant, orbit.new_user(b_tenant, role="tenant-admin"))
    r = orbit.admin("GET", "/admin/v1/tenants", creds=b_admin)
    if r.status_code == 200:
        assert a_tenant not in r.text
    else:
        assert admin_error(r)[:2] == (403, "AccessDenied")


def test_data_dir_never_uses_keys_as_paths(orbit):
    creds = orbit.new_tenant_with_key()
    s3 = orbit.s3(creds)
    s3.create_bucket(Bucket="layout")
    marker = "very-distinctive-key-name-" + hashlib.sha1(creds.tenant.encode()).hexdigest()[:8]
    s3.put_object(Bucket="layout", Key=f"dir/{marker}.bin", Body=b"z" * MiB)
    assert (orbit.data_dir / "meta.redb").exists()
    assert (orbit.data_dir / "objects").is_dir()
    for path in orbit.data_dir.rglob("*"):
        assert marker not in str(path), path
        assert "layout" not in path.name, path
