"""The operator/tenant flow with the real aws-cli: the Orbit CLI makes a
tenant, a user and a key; the tenant then works with `aws s3` and
`aws s3api` unmodified."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import requests

from orbit_e2e import (
    MiB,
    crc32_b64,
    md5_hex,
    multipart_etag,
    sha256_b64,
    strip_etag,
    unique,
)


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def tenant(orbit):
    """Created exactly as an operator would: through the Orbit CLI."""
    name = unique("lab")
    out = orbit.cli("tenant", "create", name)
    assert out["name"] == name
    orbit.cli("user", "create", "--tenant", name, "trainer", "--role", "read-write")
    return orbit.new_key(name, "trainer")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "model.bin"
    with open(path, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MiB))
    return path


@pytest.fixture
def aws(orbit, tenant):
    def run(*args, **kw):
        return orbit.aws(*args, creds=tenant, **kw)
    return run


@pytest.fixture
def s3api(aws):
    def run(*args, **kw):
        return aws("s3api", *args, parse_json=True, **kw)
    return run


@pytest.fixture
def bucket(aws):
    name = unique("cli")
    out = aws("s3", "mb", f"s3://{name}").stdout
    assert f"make_bucket: {name}" in out
    return name


def ls_keys(output: str) -> list[str]:
    """Keys (or PRE prefixes) from `aws s3 ls` output."""
    keys = []
    for line in output.splitlines():
        line = line.rstrip()
        if not line:
            continue
        if line.lstrip().startswith("PRE "):
            keys.append(line.split("PRE ", 1)[1])
        else:
            keys.append(line.split(None, 3)[3])
    return keys


def test_mb_ls_rb(aws, s3api, orbit, tenant):
    name = unique("cli")
    aws("s3", "mb", f"s3://{name}")
    assert name in aws("s3", "ls").stdout
    assert name in [b["Name"] for b in s3api("list-buckets")["Buckets"]]
    # rb on a non-empty bucket fails without --force
    s3 = orbit.s3(tenant)
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    res = aws("s3", "rb", f"s3://{name}", check=False)
    assert res.returncode != 0 and "BucketNotEmpty" in res.stderr, res.stderr
    aws("s3", "rb", f"s3://{name}", "--force")
    assert name not in aws("s3", "ls").stdout
    res = aws("s3api", "head-bucket", "--bucket", name, check=False)
    assert res.returncode != 0 and "404" in res.stderr


def test_small_files_and_100mib_multipart(aws, s3api, bucket, big_file, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for i in range(5):
        data = os.urandom(1000 * (i + 1))
        (src / f"small-{i}.txt").write_bytes(data)
        files[f"small-{i}.txt"] = md5_hex(data)
    (src / "nested").mkdir()
    (src / "nested" / "deep.txt").write_bytes(b"deep")
    files["nested/deep.txt"] = md5_hex(b"deep")

    out = aws("s3", "cp", "--recursive", str(src), f"s3://{bucket}/small/").stdout
    assert out.count("upload:") == len(files)
    for rel, md5 in files.items():
        head = s3api("head-object", "--bucket", bucket, "--key", f"small/{rel}")
        assert strip_etag(head["ETag"]) == md5
        assert head["ContentLength"] > 0

    # 100 MiB: aws-cli switches to multipart (8 MiB parts) by itself
    aws("s3", "cp", str(big_file), f"s3://{bucket}/models/model.bin")
    head = s3api("head-object", "--bucket", bucket, "--key", "models/model.bin")
    assert head["ContentLength"] == 100 * MiB
    data = big_file.read_bytes()
    parts = [data[i:i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert strip_etag(head["ETag"]) == multipart_etag(parts), "md5-of-md5s with -N suffix"
    assert strip_etag(head["ETag"]).endswith(f"-{len(parts)}")
    del data, parts

    dl = tmp_path / "download.bin"
    aws("s3", "cp", f"s3://{bucket}/models/model.bin", str(dl))
    assert file_md5(dl) == file_md5(big_file)

    # sync down the small tree and compare
    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{bucket}/small/", str(down))
    for rel, md5 in files.items():
        assert file_md5(down / rel) == md5, rel


def test_ls_prefix_and_recursive(aws, bucket, orbit, tenant):
    s3 = orbit.s3(tenant)
    keys = ["logs/2024/a.log", "logs/2024/b.log", "logs/2025/c.log", "logs/top.log",
            "data/x.csv", "root.txt"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    top = ls_keys(aws("s3", "ls", f"s3://{bucket}/").stdout)
    assert sorted(top) == ["data/", "logs/", "root.txt"]
    logs = ls_keys(aws("s3", "ls", f"s3://{bucket}/logs/").stdout)
    assert sorted(logs) == ["2024/", "2025/", "top.log"]
    rec = ls_keys(aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout)
    assert sorted(rec) == sorted(keys)
    rec = ls_keys(aws("s3", "ls", "--recursive", f"s3://{bucket}/logs/2024").stdout)
    assert sorted(rec) == ["logs/2024/a.log", "logs/2024/b.log"]
    # prefix that is not a "directory"
    part = ls_keys(aws("s3", "ls", f"s3://{bucket}/logs/to").stdout)
    assert part == ["top.log"]
    sizes = aws("s3", "ls", "--recursive", "--summarize", f"s3://{bucket}/").stdout
    assert "Total Objects: 6" in sizes
    assert f"Total Size: {sum(len(k) for k in keys)}" in sizes


def test_list_objects_v2_prefix_delimiter_pagination(s3api, bucket, orbit, tenant):
    s3 = orbit.s3(tenant)
    keys = [f"shards/{i:03d}.tar" for i in range(25)] + ["meta/a", "meta/b", "top"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")

    res = s3api("list-objects-v2", "--bucket", bucket, "--delimiter", "/")
    assert sorted(p["Prefix"] for p in res["CommonPrefixes"]) == ["meta/", "shards/"]
    assert [o["Key"] for o in res["Contents"]] == ["top"]

    res = s3api("list-objects-v2", "--bucket", bucket, "--prefix", "meta/")
    assert [o["Key"] for o in res["Contents"]] == ["meta/a", "meta/b"]

    shard_keys = sorted(k for k in keys if k.startswith("shards/"))
    # CLI auto-pagination with a page size of 7: all keys, in order
    res = s3api("list-objects-v2", "--bucket", bucket, "--prefix", "shards/", "--page-size", "7")
    assert [o["Key"] for o in res["Contents"]] == shard_keys

    # one page of 7, by hand, following continuation tokens
    collected, token, pages = [], None, 0
    while True:
        args = ["list-objects-v2", "--bucket", bucket, "--prefix", "shards/", "--max-keys", "7",
                "--no-paginate"]
        if token:
            args += ["--continuation-token", token]
        res = s3api(*args)
        pages += 1
        batch = [o["Key"] for o in res.get("Contents", [])]
        assert len(batch) <= 7 and res["KeyCount"] == len(batch)
        collected += batch
        if not res["IsTruncated"]:
            break
        token = res["NextContinuationToken"]
        assert pages < 10
    assert collected == shard_keys and pages == 4

    # --max-items gives a NextToken the CLI can resume from
    res = s3api("list-objects-v2", "--bucket", bucket, "--prefix", "shards/", "--page-size", "7",
                "--max-items", "10")
    first = [o["Key"] for o in res["Contents"]]
    assert first == shard_keys[:10] and res.get("NextToken")
    res = s3api("list-objects-v2", "--bucket", bucket, "--prefix", "shards/", "--page-size", "7",
                "--starting-token", res["NextToken"])
    assert first + [o["Key"] for o in res["Contents"]] == shard_keys

    # v1 through the CLI as well
    res = s3api("list-objects", "--bucket", bucket, "--prefix", "shards/", "--page-size", "7")
    assert [o["Key"] for o in res["Contents"]] == shard_keys


def test_ranged_get(aws, s3api, bucket, tmp_path):
    data = os.urandom(100_000)
    src = tmp_path / "r.bin"
    src.write_bytes(data)
    aws("s3", "cp", str(src), f"s3://{bucket}/r.bin")
    out = tmp_path / "part"
    res = s3api("get-object", "--bucket", bucket, "--key", "r.bin", "--range", "bytes=1000-1999",
                str(out))
    assert out.read_bytes() == data[1000:2000]
    assert res["ContentRange"] == "bytes 1000-1999/100000"
    assert res["ContentLength"] == 1000
    res = s3api("get-object", "--bucket", bucket, "--key", "r.bin", "--range", "bytes=-10",
                str(out))
    assert out.read_bytes() == data[-10:]
    res = aws("s3api", "get-object", "--bucket", bucket, "--key", "r.bin", "--range",
              "bytes=200000-300000", str(out), check=False)
    assert res.returncode != 0 and "InvalidRange" in res.stderr


@pytest.mark.parametrize("algo,fn", [("CRC32", crc32_b64), ("SHA256", sha256_b64)])
def test_checksums(aws, s3api, bucket, tmp_path, algo, fn):
    data = os.urandom(250_000)
    src = tmp_path / "ck.bin"
    src.write_bytes(data)
    key = f"ck-{algo}"
    put = s3api("put-object", "--bucket", bucket, "--key", key, "--body", str(src),
                "--checksum-algorithm", algo)
    assert put.get(f"Checksum{algo}") == fn(data), put
    head = s3api("head-object", "--bucket", bucket, "--key", key, "--checksum-mode", "ENABLED")
    assert head.get(f"Checksum{algo}") == fn(data), head
    out = tmp_path / "ck.out"
    got = s3api("get-object", "--bucket", bucket, "--key", key, "--checksum-mode", "ENABLED",
                str(out))
    assert got.get(f"Checksum{algo}") == fn(data), got
    assert out.read_bytes() == data


def test_cp_between_keys_and_buckets(aws, s3api, bucket, tmp_path, big_file):
    other = unique("cli")
    aws("s3", "mb", f"s3://{other}")
    data = os.urandom(300_000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    aws("s3", "cp", str(src), f"s3://{bucket}/orig.bin", "--content-type", "application/x-test",
        "--metadata", "owner=lab,stage=raw")
    aws("s3", "cp", f"s3://{bucket}/orig.bin", f"s3://{bucket}/copy.bin")
    aws("s3", "cp", f"s3://{bucket}/orig.bin", f"s3://{other}/elsewhere.bin")
    for b, k in ((bucket, "copy.bin"), (other, "elsewhere.bin")):
        head = s3api("head-object", "--bucket", b, "--key", k)
        assert strip_etag(head["ETag"]) == md5_hex(data)
        assert head["ContentType"] == "application/x-test"
        assert head["Metadata"] == {"owner": "lab", "stage": "raw"}
    out = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{other}/elsewhere.bin", str(out))
    assert out.read_bytes() == data

    # a large copy goes through UploadPartCopy
    aws("s3", "cp", str(big_file), f"s3://{bucket}/big.bin", "--quiet")
    aws("s3", "cp", f"s3://{bucket}/big.bin", f"s3://{other}/big-copy.bin")
    head = s3api("head-object", "--bucket", other, "--key", "big-copy.bin")
    assert head["ContentLength"] == 100 * MiB
    dl = tmp_path / "big-copy.bin"
    aws("s3", "cp", f"s3://{other}/big-copy.bin", str(dl))
    assert file_md5(dl) == file_md5(big_file)

    # mv = copy + delete
    aws("s3", "mv", f"s3://{bucket}/copy.bin", f"s3://{bucket}/moved.bin")
    keys = [o["Key"] for o in s3api("list-objects-v2", "--bucket", bucket)["Contents"]]
    assert "copy.bin" not in keys and "moved.bin" in keys


def test_presign(aws, bucket, tmp_path):
    data = os.urandom(77_777)
    src = tmp_path / "p.bin"
    src.write_bytes(data)
    aws("s3", "cp", str(src), f"s3://{bucket}/shared/p.bin")
    # aws-cli v1 presigns with SigV2 unless told otherwise; Orbit speaks SigV4
    config = "[default]\ns3 =\n    signature_version = s3v4\n"
    url = aws("s3", "presign", f"s3://{bucket}/shared/p.bin", "--expires-in", "300",
              config=config).stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature" in url
    r = requests.get(url, timeout=60)
    assert r.status_code == 200 and r.content == data
    sig = url.split("X-Amz-Signature=")[1][:64]
    bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    r = requests.get(url.replace(sig, bad), timeout=60)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.text


def test_rm_and_rb(aws, s3api, bucket, orbit, tenant):
    s3 = orbit.s3(tenant)
    for k in ("a", "dir/b", "dir/c", "dir/sub/d"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"z")
    out = aws("s3", "rm", f"s3://{bucket}/a").stdout
    assert f"delete: s3://{bucket}/a" in out
    aws("s3", "rm", "--recursive", f"s3://{bucket}/dir/sub/")
    keys = [o["Key"] for o in s3api("list-objects-v2", "--bucket", bucket)["Contents"]]
    assert keys == ["dir/b", "dir/c"]
    aws("s3", "rm", "--recursive", f"s3://{bucket}/")
    assert s3api("list-objects-v2", "--bucket", bucket).get("Contents", []) == []
    out = aws("s3", "rb", f"s3://{bucket}").stdout
    assert f"remove_bucket: {bucket}" in out
    assert bucket not in aws("s3", "ls").stdout


def test_multipart_via_s3api(s3api, bucket, tmp_path):
    up = s3api("create-multipart-upload", "--bucket", bucket, "--key", "mp")["UploadId"]
    p1, p2 = os.urandom(5 * MiB), os.urandom(1234)
    etags = []
    for n, p in ((1, p1), (2, p2)):
        f = tmp_path / f"part{n}"
        f.write_bytes(p)
        etags.append(s3api("upload-part", "--bucket", bucket, "--key", "mp", "--upload-id", up,
                           "--part-number", str(n), "--body", str(f))["ETag"])
    uploads = s3api("list-multipart-uploads", "--bucket", bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [up]
    parts = s3api("list-parts", "--bucket", bucket, "--key", "mp", "--upload-id", up)["Parts"]
    assert [p["Size"] for p in parts] == [len(p1), len(p2)]
    done = s3api("complete-multipart-upload", "--bucket", bucket, "--key", "mp", "--upload-id", up,
                 "--multipart-upload", json.dumps({"Parts": [
                     {"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}]}))
    assert strip_etag(done["ETag"]) == multipart_etag([p1, p2])
    up2 = s3api("create-multipart-upload", "--bucket", bucket, "--key", "mp2")["UploadId"]
    s3api("abort-multipart-upload", "--bucket", bucket, "--key", "mp2", "--upload-id", up2)
    assert s3api("list-multipart-uploads", "--bucket", bucket).get("Uploads", []) == []


def test_delete_objects_via_s3api(s3api, bucket, orbit, tenant):
    s3 = orbit.s3(tenant)
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    res = s3api("delete-objects", "--bucket", bucket, "--delete",
                json.dumps({"Objects": [{"Key": "a"}, {"Key": "b"}]}))
    assert sorted(d["Key"] for d in res["Deleted"]) == ["a", "b"]
    assert [o["Key"] for o in s3api("list-objects-v2", "--bucket", bucket)["Contents"]] == ["c"]


def test_wrong_credentials_with_awscli(orbit):
    from orbit_e2e import Creds
    bad = Creds(None, None, "AKIDONOTEXIST000000", "nope")
    res = orbit.aws("s3", "ls", creds=bad, check=False)
    assert res.returncode != 0 and "InvalidAccessKeyId" in res.stderr
