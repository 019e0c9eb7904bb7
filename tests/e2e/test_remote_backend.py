"""Buckets on a remote S3 backend.

A real S3 server that is not Orbit (moto's stand-alone server) holds the
bytes; a TCP proxy of ours sits between Orbit and it so tests can take the
remote store down and bring it back. Orbit is configured with a named backend
`remote` (`[backends.remote]`, kind "s3") pointing at the proxy, and tests
place buckets on it through the admin API or the CLI (`--backend remote`).
Checks go both through Orbit (boto3, the CLI, the admin API) and straight to
moto with boto3 (where the bytes landed, under which names).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from orbit_e2e import (
    REGION,
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    MiB,
    MotoServer,
    OrbitServer,
    TcpProxy,
    admin_error,
    expect_client_error,
    free_port,
    list_all_keys,
    md5_hex,
    multipart_etag,
    orbit_bin,
    s3_backend_toml,
    strip_etag,
    toml_str,
    unique,
    wait_until,
)

REMOTE_BUCKET = "orbit-store"      # the bucket in moto behind backend `remote`
COLD_BUCKET = "orbit-cold"         # the bucket in moto behind the env-credentials test's backend
RESTART_BUCKET = "orbit-restart"   # the bucket in moto behind the restart test's backend
PREFIX = "site-a"
REMOTE_ACCESS_KEY = "ORBITREMOTETOMLKEY01"
REMOTE_SECRET_KEY = "orbit-remote-toml-secret"
ENV_ACCESS_KEY = "ORBITREMOTEENVKEY001"
ENV_SECRET_KEY = "orbit-remote-env-secret"

# Long enough for a debug build on a busy machine, short enough that a hang
# (instead of a 503 or a closed connection) fails the test rather than the module.
FAULT_READ_TIMEOUT = 30


@dataclass
class Remote:
    moto: MotoServer
    proxy: TcpProxy

    def keys(self, bucket: str = REMOTE_BUCKET) -> dict[str, int]:
        return self.moto.objects(bucket)

    def new_keys(self, before: dict[str, int], bucket: str = REMOTE_BUCKET) -> dict[str, int]:
        return {k: s for k, s in self.keys(bucket).items() if k not in before}

    def holding(self, data: bytes, keys, bucket: str = REMOTE_BUCKET) -> list[str]:
        """The remote keys (among `keys`) whose stored bytes contain `data`."""
        return [k for k in keys if data in self.moto.read(bucket, k)]


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    base = tmp_path_factory.mktemp("moto")
    moto = MotoServer(base)
    moto.start()
    proxy = None
    try:
        client = moto.client()
        client.create_bucket(Bucket=REMOTE_BUCKET)
        client.create_bucket(Bucket=COLD_BUCKET)
        client.create_bucket(Bucket=RESTART_BUCKET)
        proxy = TcpProxy("127.0.0.1", moto.port)
        yield Remote(moto, proxy)
    finally:
        if proxy is not None:
            proxy.close()
        alive = moto.is_running()
        moto.close()
    if not alive:
        pytest.fail(f"moto died during the module; log tail:\n{moto.log_tail()}")


def remote_backend_config(remote: Remote) -> str:
    return s3_backend_toml(
        "remote", kind="s3", endpoint=remote.proxy.endpoint, bucket=REMOTE_BUCKET,
        region=REGION, prefix=PREFIX, allow_http=True,
        access_key_id=REMOTE_ACCESS_KEY, secret_access_key=REMOTE_SECRET_KEY)


@pytest.fixture(scope="module")
def orbit(tmp_path_factory, remote):
    """One Orbit for the module, with the backend `remote` besides the default one."""
    server = OrbitServer(tmp_path_factory.mktemp("orbit"), config_toml=remote_backend_config(remote))
    server.start()
    yield server
    alive = server.is_running()
    rc = server.proc.returncode
    server.close()
    if not alive:
        pytest.fail(f"orbit server died during the module (exit {rc}); log tail:\n{server.log_tail()}")


@pytest.fixture(autouse=True)
def remote_is_up_after_each_test(remote):
    remote.proxy.up()
    yield
    remote.proxy.up()


# ----------------------------------------------------------------- helpers


def s3_client(orbit: OrbitServer, creds, read_timeout: float = FAULT_READ_TIMEOUT):
    """boto3 on Orbit with retries disabled and a bounded read timeout."""
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"max_attempts": 1, "mode": "standard"},
                 connect_timeout=10, read_timeout=read_timeout)
    return boto3.session.Session().client(
        "s3", endpoint_url=orbit.s3_endpoint, region_name=REGION,
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key, config=cfg)


def create_bucket_api(orbit: OrbitServer, tenant: str, name: str, backend: str | None = None) -> dict:
    body = {"name": name}
    if backend is not None:
        body["backend"] = backend
    r = orbit.admin("POST", f"/admin/v1/tenants/{tenant}/buckets", body=body)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    out = r.json()
    assert out["name"] == name, out
    assert out.get("backend") == (backend or "default"), out
    return out


def buckets_api(orbit: OrbitServer, tenant: str) -> dict[str, str]:
    """{bucket name: backend} from the admin API's bucket list."""
    r = orbit.admin("GET", f"/admin/v1/tenants/{tenant}/buckets")
    assert r.status_code == 200, r.text
    out = {}
    for b in r.json():
        assert "backend" in b, f"bucket JSON without a backend field: {b}"
        out[b["name"]] = b["backend"]
    return out


def remote_bucket_with_key(orbit: OrbitServer, prefix: str = "rb"):
    """A fresh tenant with a read-write key and a bucket on the remote backend."""
    creds = orbit.new_tenant_with_key()
    name = unique(prefix)
    create_bucket_api(orbit, creds.tenant, name, "remote")
    return creds, name, s3_client(orbit, creds)


def assert_no_s3_name_in(remote_keys, *names: str) -> None:
    for rk in remote_keys:
        for n in names:
            assert rk != n and n not in rk, f"remote key {rk!r} exposes the S3 key (part) {n!r}"


def assert_cli_error(res) -> None:
    assert res.returncode != 0, f"expected failure, got rc=0 stdout={res.stdout!r}"
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert lines and (lines[0].startswith("error:") or lines[-1].startswith("error:")), res.stderr


def assert_503(fn, *args, **kwargs) -> None:
    t0 = time.monotonic()
    try:
        status, code, message = expect_client_error(fn, *args, **kwargs)
    except ReadTimeoutError as exc:
        raise AssertionError(f"no answer within {FAULT_READ_TIMEOUT}s while the remote was down") from exc
    took = time.monotonic() - t0
    assert (status, code) == (503, "ServiceUnavailable"), (status, code, f"after {took:.1f}s")
    for internal in (REMOTE_BUCKET, PREFIX + "/", "127.0.0.1"):
        assert internal not in message, f"the 503 shows the client internal details: {message!r}"


def get_body(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


# ------------------------------------------------------------------- tests


def test_round_trip_on_remote_backend(orbit, remote, tmp_path):
    creds, bucket, s3 = remote_bucket_with_key(orbit, "rt")
    assert buckets_api(orbit, creds.tenant) == {bucket: "remote"}
    token = unique("tok")
    small_key = f"rt/small-{token}.bin"
    small = os.urandom(200_000)

    before = remote.keys()
    put = s3.put_object(Bucket=bucket, Key=small_key, Body=small)
    assert strip_etag(put["ETag"]) == md5_hex(small)
    assert get_body(s3, bucket, small_key) == small
    head = s3.head_object(Bucket=bucket, Key=small_key)
    assert head["ContentLength"] == len(small)
    assert strip_etag(head["ETag"]) == md5_hex(small)

    # the bytes went to moto, under the prefix, under names of Orbit's own
    new = remote.new_keys(before)
    assert new, "a PUT to a bucket on the remote backend wrote nothing to the remote store"
    assert all(k.startswith(PREFIX + "/") for k in new), sorted(new)
    assert remote.holding(small, new), f"the object's bytes are in none of the new remote blobs {sorted(new)}"
    assert_no_s3_name_in(new, small_key, token, f"small-{token}.bin")
    assert REMOTE_ACCESS_KEY in remote.proxy.access_keys, remote.proxy.access_keys

    # 20 MiB through boto3's multipart upload (8 MiB parts)
    big_key = f"rt/big-{token}.bin"
    big = os.urandom(20 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(big)
    before = remote.keys()
    s3.upload_file(str(path), bucket, big_key, Config=TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=2))
    head = s3.head_object(Bucket=bucket, Key=big_key)
    assert head["ContentLength"] == len(big)
    assert strip_etag(head["ETag"]) == multipart_etag([big[:8 * MiB], big[8 * MiB:16 * MiB], big[16 * MiB:]])
    assert md5_hex(get_body(s3, bucket, big_key)) == md5_hex(big)
    new = remote.new_keys(before)
    assert all(k.startswith(PREFIX + "/") for k in new), sorted(new)
    assert sum(new.values()) >= len(big), f"only {sum(new.values())} bytes reached the remote: {new}"
    assert_no_s3_name_in(new, big_key, token)

    # ranged GETs: across the part boundary, inside a part, the suffix
    for rng, want in [
        (f"bytes={8 * MiB - 100}-{8 * MiB + 99}", big[8 * MiB - 100:8 * MiB + 100]),
        (f"bytes={17 * MiB}-{17 * MiB + 4095}", big[17 * MiB:17 * MiB + 4096]),
        ("bytes=-1000", big[-1000:]),
        ("bytes=5-9", big[5:10]),
    ]:
        resp = s3.get_object(Bucket=bucket, Key=big_key, Range=rng)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert resp["Body"].read() == want, rng
    assert get_body(s3, bucket, small_key, Range="bytes=100-199") == small[100:200]

    # listing with prefix and delimiter
    for k in ("dir/a", "dir/b", "dir/sub/c", "dir/sub/d", "other"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in resp.get("Contents", [])] == ["dir/a", "dir/b"]
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["dir/sub/"]
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in resp.get("Contents", [])] == ["other"]
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["dir/", "rt/"]
    assert sorted(list_all_keys(s3, bucket, prefix="rt/")) == sorted([small_key, big_key])
    v1 = s3.list_objects(Bucket=bucket, Prefix="dir/sub/")
    assert [o["Key"] for o in v1.get("Contents", [])] == ["dir/sub/c", "dir/sub/d"]

    # copy: within the remote bucket, and to and from a local bucket of the same tenant
    s3.copy_object(Bucket=bucket, Key="copies/small", CopySource={"Bucket": bucket, "Key": small_key})
    assert get_body(s3, bucket, "copies/small") == small
    local = unique("local")
    s3.create_bucket(Bucket=local)
    assert buckets_api(orbit, creds.tenant)[local] == "default"
    s3.copy_object(Bucket=local, Key="from-remote", CopySource={"Bucket": bucket, "Key": small_key})
    assert get_body(s3, local, "from-remote") == small
    s3.put_object(Bucket=local, Key="local-src", Body=b"local bytes")
    s3.copy_object(Bucket=bucket, Key="copies/from-local", CopySource={"Bucket": local, "Key": "local-src"})
    assert get_body(s3, bucket, "copies/from-local") == b"local bytes"

    # delete: gone from Orbit, the copies stay intact
    s3.delete_object(Bucket=bucket, Key=small_key)
    assert expect_client_error(s3.get_object, Bucket=bucket, Key=small_key)[:2] == (404, "NoSuchKey")
    assert small_key not in list_all_keys(s3, bucket)
    assert get_body(s3, bucket, "copies/small") == small
    assert get_body(s3, local, "from-remote") == small
    s3.delete_object(Bucket=bucket, Key=big_key)
    assert sorted(list_all_keys(s3, bucket, prefix="rt/")) == []

    # nothing Orbit wrote to the store sits outside its prefix or carries an S3 key
    all_remote = remote.keys()
    assert all(k.startswith(PREFIX + "/") for k in all_remote), sorted(all_remote)
    assert_no_s3_name_in(all_remote, small_key, big_key, token, "copies/small", "dir/sub/c")


def test_two_tenants_share_the_remote_backend_but_not_objects(orbit, remote):
    a, b = orbit.new_tenant_with_key(), orbit.new_tenant_with_key()
    for creds in (a, b):
        create_bucket_api(orbit, creds.tenant, "datasets", "remote")
        assert buckets_api(orbit, creds.tenant) == {"datasets": "remote"}
    sa, sb = s3_client(orbit, a), s3_client(orbit, b)
    data_a, data_b = os.urandom(100_000), os.urandom(100_001)

    before = remote.keys()
    sa.put_object(Bucket="datasets", Key="train/0001.bin", Body=data_a)
    sb.put_object(Bucket="datasets", Key="train/0001.bin", Body=data_b)
    sa.put_object(Bucket="datasets", Key="only-a", Body=b"a's own")
    new = remote.new_keys(before)
    holding_a, holding_b = remote.holding(data_a, new), remote.holding(data_b, new)
    assert holding_a and holding_b, sorted(new)
    assert not set(holding_a) & set(holding_b), "two tenants' objects share a remote blob"
    assert all(k.startswith(PREFIX + "/") for k in new), sorted(new)

    assert get_body(sa, "datasets", "train/0001.bin") == data_a
    assert get_body(sb, "datasets", "train/0001.bin") == data_b
    assert sorted(list_all_keys(sa, "datasets")) == ["only-a", "train/0001.bin"]
    assert list_all_keys(sb, "datasets") == ["train/0001.bin"]
    assert expect_client_error(sb.get_object, Bucket="datasets", Key="only-a")[:2] == (404, "NoSuchKey")
    assert expect_client_error(sb.head_object, Bucket="datasets", Key="only-a")[0] == 404

    # a copy source names a bucket of the caller's tenant only
    sb.copy_object(Bucket="datasets", Key="copy", CopySource={"Bucket": "datasets", "Key": "train/0001.bin"})
    assert get_body(sb, "datasets", "copy") == data_b

    # deleting in one tenant leaves the other's object alone
    sa.delete_object(Bucket="datasets", Key="train/0001.bin")
    assert get_body(sb, "datasets", "train/0001.bin") == data_b
    assert list_all_keys(sa, "datasets") == ["only-a"]
    orbit.cli("bucket", "delete", "--tenant", a.tenant, "datasets", "--force")
    assert get_body(sb, "datasets", "train/0001.bin") == data_b
    assert sorted(list_all_keys(sb, "datasets")) == ["copy", "train/0001.bin"]


def test_cli_bucket_create_backend_and_json_field(orbit, remote):
    creds = orbit.new_tenant_with_key()
    tenant = creds.tenant
    out = orbit.cli("bucket", "create", "--tenant", tenant, "on-remote", "--backend", "remote")
    assert out["name"] == "on-remote" and out["backend"] == "remote", out
    out = orbit.cli("bucket", "create", "--tenant", tenant, "on-default")
    assert out["name"] == "on-default" and out["backend"] == "default", out
    out = orbit.cli("bucket", "create", "--tenant", tenant, "explicit-default", "--backend", "default")
    assert out["backend"] == "default", out
    s3 = s3_client(orbit, creds)
    s3.create_bucket(Bucket="via-s3")  # S3 CreateBucket: the default backend

    listed = orbit.cli("bucket", "list", "--tenant", tenant)
    assert {b["name"]: b["backend"] for b in listed} == {
        "on-remote": "remote", "on-default": "default", "explicit-default": "default",
        "via-s3": "default"}, listed
    assert buckets_api(orbit, tenant) == {
        "on-remote": "remote", "on-default": "default", "explicit-default": "default",
        "via-s3": "default"}
    table = orbit.cli_run("bucket", "list", "--tenant", tenant, output="table")
    assert table.returncode == 0 and "on-remote" in table.stdout, table.stderr

    # placement is real: only the remote bucket's bytes reach the remote store
    remote_data, local_data = os.urandom(50_000), os.urandom(50_001)
    before = remote.keys()
    for name in ("on-default", "explicit-default", "via-s3"):
        s3.put_object(Bucket=name, Key="k", Body=local_data)
    assert not remote.holding(local_data, remote.new_keys(before)), "a default-backend bucket wrote remotely"
    s3.put_object(Bucket="on-remote", Key="k", Body=remote_data)
    assert remote.holding(remote_data, remote.new_keys(before))
    for name, data in (("on-remote", remote_data), ("on-default", local_data), ("via-s3", local_data)):
        assert get_body(s3, name, "k") == data


def test_unknown_backend_name_is_refused(orbit):
    tenant = orbit.new_tenant()
    r = orbit.admin("POST", f"/admin/v1/tenants/{tenant}/buckets",
                    body={"name": "nowhere", "backend": "no-such-backend"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")
    assert_cli_error(orbit.cli("bucket", "create", "--tenant", tenant, "nowhere-cli",
                               "--backend", "no-such-backend", check=False))
    assert orbit.cli("bucket", "list", "--tenant", tenant) == []
    # the refused names are still free
    create_bucket_api(orbit, tenant, "nowhere", "remote")
    create_bucket_api(orbit, tenant, "nowhere-cli")


BAD_CONFIGS = {
    "unknown-kind": ("kind", dict(kind="ftp", endpoint="http://127.0.0.1:9", bucket="b", region=REGION)),
    "missing-bucket": ("bucket", dict(kind="s3", endpoint="http://127.0.0.1:9", region=REGION,
                                      allow_http=True)),
    # No endpoint is not an error: it means AWS itself.
    "azure-missing-container": ("container", dict(kind="azure", account="acct")),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_backend_config_refused_at_start(tmp_path, case):
    field, fields = BAD_CONFIGS[case]
    s3_port, admin_port = free_port(), free_port()
    config = (f"data_dir = {toml_str(tmp_path / 'data')}\n"
              f"s3_addr = {toml_str(f'127.0.0.1:{s3_port}')}\n"
              f"admin_addr = {toml_str(f'127.0.0.1:{admin_port}')}\n"
              + s3_backend_toml("broken", **fields))
    path = tmp_path / "orbit.toml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORBIT_")}
    env.update(NO_COLOR="1", ORBIT_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY, ORBIT_ROOT_SECRET_KEY=ROOT_SECRET_KEY)
    try:
        p = subprocess.run([orbit_bin(), "serve", "--config", str(path)], capture_output=True, text=True,
                           env=env, timeout=10, stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"orbit serve kept running with a bad config ({case}):\n{config}\n"
                    f"output: {exc.stderr!r}")
    assert p.returncode != 0, f"orbit serve accepted a bad config ({case}):\n{config}\n{p.stderr}"
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors, f"no `error:` line on stderr: {p.stderr!r}"
    assert any(field in line for line in errors), (
        f"the error does not name the field `{field}`: {errors}")


def test_remote_down_put_get_503_then_recover(orbit, remote):
    creds, bucket, s3 = remote_bucket_with_key(orbit, "down")
    a, b = os.urandom(1 * MiB), b"small object written before the outage"
    s3.put_object(Bucket=bucket, Key="before/a", Body=a)
    s3.put_object(Bucket=bucket, Key="before/b", Body=b)
    new, overwrite = os.urandom(512 * 1024), os.urandom(300_000)

    remote.proxy.down()
    rejected = remote.proxy.rejected
    try:
        assert_503(s3.put_object, Bucket=bucket, Key="during/new", Body=new)
        assert_503(s3.put_object, Bucket=bucket, Key="before/a", Body=overwrite)
        assert_503(lambda **kw: s3.get_object(**kw)["Body"].read(), Bucket=bucket, Key="before/a")
        assert_503(lambda **kw: s3.get_object(**kw)["Body"].read(), Bucket=bucket, Key="before/b",
                   Range="bytes=0-9")
        assert remote.proxy.rejected > rejected, "Orbit answered without trying the remote store"
        # listings come from metadata: if one is served during the outage, it shows nothing partial
        try:
            during = list_all_keys(s3, bucket)
        except ClientError:
            during = None
        if during is not None:
            assert sorted(during) == ["before/a", "before/b"], during
    finally:
        remote.proxy.up()

    assert sorted(list_all_keys(s3, bucket)) == ["before/a", "before/b"]
    assert expect_client_error(s3.head_object, Bucket=bucket, Key="during/new")[0] == 404
    assert s3.head_object(Bucket=bucket, Key="before/a")["ContentLength"] == len(a)

    # the same requests succeed again (a few seconds' grace for Orbit to notice the store is back)
    def first_get():
        try:
            return get_body(s3, bucket, "before/a")
        except ClientError:
            return None
    assert wait_until(first_get, timeout=10, interval=0.5, msg="GET to succeed after the remote came back") == a
    assert get_body(s3, bucket, "before/b", Range="bytes=0-9") == b[:10]
    put = s3.put_object(Bucket=bucket, Key="during/new", Body=new)
    assert strip_etag(put["ETag"]) == md5_hex(new)
    assert get_body(s3, bucket, "during/new") == new
    s3.put_object(Bucket=bucket, Key="before/a", Body=overwrite)
    assert get_body(s3, bucket, "before/a") == overwrite
    assert get_body(s3, bucket, "before/b") == b
    assert sorted(list_all_keys(s3, bucket)) == ["before/a", "before/b", "during/new"]


def test_multipart_upload_part_while_remote_down(orbit, remote):
    creds, bucket, s3 = remote_bucket_with_key(orbit, "mpdown")
    key = "ckpt/model.bin"
    p1, p2 = os.urandom(5 * MiB), os.urandom(1 * MiB)
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=p1)["ETag"]

    remote.proxy.down()
    try:
        assert_503(s3.upload_part, Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2)
    finally:
        remote.proxy.up()
    assert list_all_keys(s3, bucket) == []

    def part2():
        try:
            return s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2)["ETag"]
        except ClientError:
            return None
    e2 = wait_until(part2, timeout=10, interval=0.5, msg="UploadPart to succeed after the remote came back")
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert strip_etag(done["ETag"]) == multipart_etag([p1, p2])
    assert get_body(s3, bucket, key) == p1 + p2
    assert get_body(s3, bucket, key, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}") == (p1 + p2)[5 * MiB - 10:5 * MiB + 10]


def test_get_cut_mid_stream_is_short_never_wrong(orbit, remote):
    creds, bucket, s3 = remote_bucket_with_key(orbit, "cut")
    data = os.urandom(24 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)

    resp = s3.get_object(Bucket=bucket, Key="big")
    assert resp["ContentLength"] == len(data)
    got = resp["Body"].read(256 * 1024)
    remote.proxy.down()  # cuts Orbit's open connection to the store mid-body
    t0 = time.monotonic()
    try:
        while True:
            chunk = resp["Body"].read(1 * MiB)
            if not chunk:
                break
            got += chunk
        outcome = "complete"
    except ReadTimeoutError as exc:
        raise AssertionError(
            f"the GET hung for {time.monotonic() - t0:.1f}s after the remote store went away "
            f"({len(got)} of {len(data)} bytes) instead of ending the connection") from exc
    except Exception as exc:  # noqa: BLE001 - any short-body error of botocore/urllib3 will do
        outcome = f"cut short ({type(exc).__name__})"
    finally:
        remote.proxy.up()
    assert len(got) <= len(data)
    assert got == data[:len(got)], f"wrong bytes in the body ({outcome}, {len(got)} bytes read)"
    print(f"GET cut mid-stream: {outcome}, {len(got)} of {len(data)} bytes")
    if outcome == "complete":
        assert got == data, f"the body ended early without an error: {len(got)} of {len(data)} bytes"

    # the store is back: the whole object, intact
    assert md5_hex(get_body(s3, bucket, "big")) == md5_hex(data)
    orbit.assert_alive(creds)


def test_delete_removes_object_from_listing(orbit, remote):
    creds, bucket, s3 = remote_bucket_with_key(orbit, "del")
    for k in ("keep", "gone/1", "gone/2", "gone/3"):
        s3.put_object(Bucket=bucket, Key=k, Body=os.urandom(10_000))
    s3.delete_object(Bucket=bucket, Key="gone/1")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "gone/2"}, {"Key": "gone/3"}]})
    assert sorted(d["Key"] for d in resp.get("Deleted", [])) == ["gone/2", "gone/3"], resp
    assert list_all_keys(s3, bucket) == ["keep"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="gone/")["KeyCount"] == 0
    assert expect_client_error(s3.get_object, Bucket=bucket, Key="gone/1")[:2] == (404, "NoSuchKey")
    assert expect_client_error(s3.head_object, Bucket=bucket, Key="gone/2")[0] == 404
    s3.delete_object(Bucket=bucket, Key="gone/1")  # deleting again is not an error
    s3.put_object(Bucket=bucket, Key="gone/1", Body=b"back")
    assert get_body(s3, bucket, "gone/1") == b"back"
    assert sorted(list_all_keys(s3, bucket)) == ["gone/1", "keep"]


def test_backend_credentials_from_environment(orbit_factory, remote):
    """A backend named `cold-store` without keys in the file takes them from
    ORBIT_BACKEND_COLD_STORE_*; no `prefix` puts blobs at the bucket's top."""
    config = s3_backend_toml("cold-store", kind="s3", endpoint=remote.proxy.endpoint,
                             bucket=COLD_BUCKET, region=REGION, allow_http=True)
    server = orbit_factory(name="envcreds", config_toml=config, extra_env={
        "ORBIT_BACKEND_COLD_STORE_ACCESS_KEY_ID": ENV_ACCESS_KEY,
        "ORBIT_BACKEND_COLD_STORE_SECRET_ACCESS_KEY": ENV_SECRET_KEY,
    })
    creds = server.new_tenant_with_key()
    create_bucket_api(server, creds.tenant, "cold", "cold-store")
    s3 = s3_client(server, creds)
    data = os.urandom(64_000)
    before = remote.keys(COLD_BUCKET)
    remote.proxy.access_keys.clear()
    s3.put_object(Bucket="cold", Key="archive/x.bin", Body=data)
    assert get_body(s3, "cold", "archive/x.bin") == data
    assert ENV_ACCESS_KEY in remote.proxy.access_keys, remote.proxy.access_keys
    new = remote.new_keys(before, COLD_BUCKET)
    assert remote.holding(data, new, COLD_BUCKET), sorted(new)
    assert_no_s3_name_in(new, "archive/x.bin", "x.bin")
    # `remote` is a backend of the module's server, not of this one
    r = server.admin("POST", f"/admin/v1/tenants/{creds.tenant}/buckets",
                     body={"name": "elsewhere", "backend": "remote"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")


def test_remote_bucket_survives_restart(orbit_factory, remote):
    """The bucket's backend is part of its record: after a restart the bucket
    is still on `remote` and its objects still read from the store."""
    config = s3_backend_toml(
        "remote", kind="s3", endpoint=remote.proxy.endpoint, bucket=RESTART_BUCKET,
        region=REGION, prefix="site-r", allow_http=True,
        access_key_id=REMOTE_ACCESS_KEY, secret_access_key=REMOTE_SECRET_KEY)
    server = orbit_factory(name="restart", config_toml=config)
    creds = server.new_tenant_with_key()
    create_bucket_api(server, creds.tenant, "ckpt", "remote")
    data = os.urandom(3 * MiB)
    s3_client(server, creds).put_object(Bucket="ckpt", Key="step-100/model.bin", Body=data)
    stored = remote.keys(RESTART_BUCKET)
    assert stored and all(k.startswith("site-r/") for k in stored), sorted(stored)

    server.restart()
    assert buckets_api(server, creds.tenant) == {"ckpt": "remote"}
    s3 = s3_client(server, creds)
    assert get_body(s3, "ckpt", "step-100/model.bin") == data
    s3.put_object(Bucket="ckpt", Key="step-200/model.bin", Body=data[::-1])
    assert get_body(s3, "ckpt", "step-200/model.bin") == data[::-1]
    assert sorted(list_all_keys(s3, "ckpt")) == ["step-100/model.bin", "step-200/model.bin"]
    new = remote.new_keys(stored, RESTART_BUCKET)
    assert new and all(k.startswith("site-r/") for k in new), sorted(new)
