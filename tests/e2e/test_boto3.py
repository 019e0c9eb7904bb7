"""Per-operation S3 coverage with boto3 (and hand-made requests where boto3
cannot produce the wire form under test)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from orbit_e2e import (
    CHECKSUM_FUNCS,
    MiB,
    aws_chunked_signed,
    aws_chunked_unsigned_trailer,
    crc32_b64,
    encode_key,
    expect_client_error,
    list_all_keys,
    md5_hex,
    multipart_etag,
    raw_request,
    sha256_b64,
    sign_headers,
    signed_chunk_len,
    strip_etag,
    unique,
)


def body_of(resp) -> bytes:
    return resp["Body"].read()


# ----------------------------------------------------------------- buckets


def test_bucket_create_list_head_delete(orbit, s3):
    name = unique("bk")
    s3.create_bucket(Bucket=name)
    listed = s3.list_buckets()["Buckets"]
    assert [b["Name"] for b in listed] == [name]
    assert isinstance(listed[0]["CreationDate"], dt.datetime)
    s3.head_bucket(Bucket=name)
    loc = s3.get_bucket_location(Bucket=name)
    assert loc.get("LocationConstraint") in (None, "", "us-east-1")
    s3.delete_bucket(Bucket=name)
    assert s3.list_buckets()["Buckets"] == []
    status, code, _ = expect_client_error(s3.head_bucket, Bucket=name)
    assert status == 404
    status, code, _ = expect_client_error(s3.delete_bucket, Bucket=name)
    assert (status, code) == (404, "NoSuchBucket")
    status, code, _ = expect_client_error(s3.list_objects_v2, Bucket=name)
    assert (status, code) == (404, "NoSuchBucket")


def test_create_existing_bucket(s3, bucket):
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]


# ----------------------------------------------------------------- objects


def test_put_get_head_delete(s3, bucket):
    data = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="obj.bin", Body=data)
    assert strip_etag(put["ETag"]) == md5_hex(data)
    got = s3.get_object(Bucket=bucket, Key="obj.bin")
    assert body_of(got) == data
    assert strip_etag(got["ETag"]) == md5_hex(data)
    assert got["ContentLength"] == len(data)
    head = s3.head_object(Bucket=bucket, Key="obj.bin")
    assert head["ContentLength"] == len(data)
    assert strip_etag(head["ETag"]) == md5_hex(data)
    assert isinstance(head["LastModified"], dt.datetime)
    assert abs((dt.datetime.now(dt.timezone.utc) - head["LastModified"]).total_seconds()) < 300

    # overwrite
    data2 = b"second version"
    s3.put_object(Bucket=bucket, Key="obj.bin", Body=data2)
    assert body_of(s3.get_object(Bucket=bucket, Key="obj.bin")) == data2

    s3.delete_object(Bucket=bucket, Key="obj.bin")
    status, code, _ = expect_client_error(s3.get_object, Bucket=bucket, Key="obj.bin")
    assert (status, code) == (404, "NoSuchKey")
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="obj.bin")
    assert status == 404
    # deleting a missing key is not an error
    assert s3.delete_object(Bucket=bucket, Key="obj.bin")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert strip_etag(put["ETag"]) == "d41d8cd98f00b204e9800998ecf8427e"
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert body_of(got) == b"" and got["ContentLength"] == 0
    listing = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listing] == [("empty", 0)]


def test_opaque_keys_round_trip(s3, bucket):
    keys = ["a b.txt", "plus+sign", "percent%20literal", "unicode-ünïcødé-日本語", "q?mark",
            "hash#tag", "amp&and=eq", "dir//double//slash", "trailing/", "./dot", "x/../y",
            "~tilde", "semi;colon", "star*", "quote'\"s", "/leading-slash", "..", "a/./b",
            "%2F", "comma,colon:at@", "x" * 1024]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=f"value {i}".encode())
    assert sorted(list_all_keys(s3, bucket), key=lambda k: k.encode()) == \
        sorted(keys, key=lambda k: k.encode())
    for i, key in enumerate(keys):
        assert body_of(s3.get_object(Bucket=bucket, Key=key)) == f"value {i}".encode(), key
    # list v1 too
    v1 = s3.list_objects(Bucket=bucket, MaxKeys=1000)["Contents"]
    assert sorted(o["Key"] for o in v1) == sorted(keys)


def test_listing_order_is_bytewise(s3, bucket):
    keys = ["b", "a", "B", "a/b", "a-b", "ä", "z", "a0", "A"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_metadata_and_content_headers_round_trip(s3, bucket):
    data = gzip.compress(b"hello " * 1000)
    s3.put_object(
        Bucket=bucket, Key="meta", Body=data,
        Metadata={"author": "ada", "multi-word": "v a l u e", "empty": ""},
        ContentType="application/x-orbit-test",
        ContentDisposition='attachment; filename="report.txt"',
        CacheControl="max-age=3600, must-revalidate",
        ContentEncoding="gzip",
        ContentLanguage="en-GB",
    )
    for resp in (s3.head_object(Bucket=bucket, Key="meta"), s3.get_object(Bucket=bucket, Key="meta")):
        md = resp["Metadata"]
        assert md.get("author") == "ada" and md.get("multi-word") == "v a l u e", md
        assert resp["ContentType"] == "application/x-orbit-test"
        assert resp["ContentDisposition"] == 'attachment; filename="report.txt"'
        assert resp["CacheControl"] == "max-age=3600, must-revalidate"
        assert resp["ContentEncoding"] == "gzip"
        assert resp.get("ContentLanguage") == "en-GB"
    assert body_of(s3.get_object(Bucket=bucket, Key="meta")) == data  # stored as sent


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="noct", Body=b"x")
    ct = s3.head_object(Bucket=bucket, Key="noct")["ContentType"]
    assert ct in ("binary/octet-stream", "application/octet-stream"), ct


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="application/json",
                        ResponseContentDisposition="inline", ResponseCacheControl="no-cache")
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"


def test_delete_objects_verbose_and_quiet(s3, bucket):
    keys = [f"k{i}" for i in range(6)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in resp.get("Deleted", [])) == ["k0", "k1", "never-existed"]
    assert not resp.get("Errors")
    resp = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": "k2"}, {"Key": "k3"}], "Quiet": True})
    assert not resp.get("Deleted"), resp.get("Deleted")
    assert not resp.get("Errors")
    assert list_all_keys(s3, bucket) == ["k4", "k5"]


def test_delete_objects_many(s3, bucket):
    keys = [f"many/{i:04d}" for i in range(120)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert len(resp["Deleted"]) == 120
    assert list_all_keys(s3, bucket) == []


# ------------------------------------------------------------------ ranges


def test_ranged_get(s3, bucket):
    data = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    cases = {"bytes=0-9": (0, 9), "bytes=100-199": (100, 199), "bytes=9990-": (9990, 9999),
             "bytes=-25": (9975, 9999), "bytes=5000-999999": (5000, 9999), "bytes=0-0": (0, 0)}
    for rng, (start, end) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=rng)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert body_of(got) == data[start:end + 1], rng
        assert got["ContentRange"] == f"bytes {start}-{end}/10000", rng
        assert got["ContentLength"] == end - start + 1


def test_range_beyond_size_is_416(s3, bucket):
    s3.put_object(Bucket=bucket, Key="small", Body=b"0123456789")
    status, code, _ = expect_client_error(s3.get_object, Bucket=bucket, Key="small",
                                          Range="bytes=10-20")
    assert (status, code) == (416, "InvalidRange")
    status, code, _ = expect_client_error(s3.get_object, Bucket=bucket, Key="small",
                                          Range="bytes=100-")
    assert (status, code) == (416, "InvalidRange")


def test_ranged_get_of_multipart_object_across_parts(s3, bucket):
    p1, p2 = os.urandom(5 * MiB), os.urandom(1000)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    whole = p1 + p2
    start, end = 5 * MiB - 100, 5 * MiB + 99
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={start}-{end}")
    assert body_of(got) == whole[start:end + 1]


# ------------------------------------------------------------- conditionals


def test_conditional_get_and_head(s3, bucket):
    data = b"conditional body"
    etag = s3.put_object(Bucket=bucket, Key="c", Body=data)["ETag"]
    lm = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    earlier = lm - dt.timedelta(hours=1)

    for op in (s3.get_object, s3.head_object):
        name = op.__name__
        # If-Match
        assert op(Bucket=bucket, Key="c", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert op(Bucket=bucket, Key="c", IfMatch="*")["ResponseMetadata"]["HTTPStatusCode"] == 200
        status, code, _ = expect_client_error(op, Bucket=bucket, Key="c", IfMatch='"0000"')
        assert status == 412, (name, status)
        if op is s3.get_object:
            assert code == "PreconditionFailed"
        # If-None-Match
        status, _, _ = expect_client_error(op, Bucket=bucket, Key="c", IfNoneMatch=etag)
        assert status == 304, (name, status)
        status, _, _ = expect_client_error(op, Bucket=bucket, Key="c", IfNoneMatch="*")
        assert status == 304, (name, status)
        assert op(Bucket=bucket, Key="c", IfNoneMatch='"0000"')["ResponseMetadata"][
            "HTTPStatusCode"] == 200
        # If-Modified-Since
        status, _, _ = expect_client_error(op, Bucket=bucket, Key="c", IfModifiedSince=lm)
        assert status == 304, (name, status)
        assert op(Bucket=bucket, Key="c", IfModifiedSince=earlier)["ResponseMetadata"][
            "HTTPStatusCode"] == 200
        # If-Unmodified-Since
        status, code, _ = expect_client_error(op, Bucket=bucket, Key="c", IfUnmodifiedSince=earlier)
        assert status == 412, (name, status)
        assert op(Bucket=bucket, Key="c", IfUnmodifiedSince=lm)["ResponseMetadata"][
            "HTTPStatusCode"] == 200

    # RFC 7232 precedence, as S3 documents it
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=earlier)[
        "ResponseMetadata"]["HTTPStatusCode"] == 200
    status, _, _ = expect_client_error(s3.get_object, Bucket=bucket, Key="c", IfNoneMatch=etag,
                                       IfModifiedSince=earlier)
    assert status == 304
    assert body_of(s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)) == data


def test_conditional_put_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first")
    try:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    except ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status in (412, 501), status
        if status == 412:
            assert body_of(s3.get_object(Bucket=bucket, Key="once")) == b"first"
            return
    pytest.skip("conditional writes (If-None-Match on PUT) not supported")


# -------------------------------------------------------------------- copy


def test_copy_object_metadata_directive(s3, bucket):
    src_data = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="src", Body=src_data, ContentType="image/png",
                  Metadata={"origin": "camera", "n": "1"}, CacheControl="max-age=1")
    # COPY (the default)
    res = s3.copy_object(Bucket=bucket, Key="dst-copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert strip_etag(res["CopyObjectResult"]["ETag"]) == md5_hex(src_data)
    head = s3.head_object(Bucket=bucket, Key="dst-copy")
    assert head["Metadata"] == {"origin": "camera", "n": "1"}
    assert head["ContentType"] == "image/png"
    assert body_of(s3.get_object(Bucket=bucket, Key="dst-copy")) == src_data
    # COPY explicitly ignores new metadata
    s3.copy_object(Bucket=bucket, Key="dst-copy2", CopySource=f"{bucket}/src",
                   MetadataDirective="COPY", Metadata={"ignored": "yes"})
    assert s3.head_object(Bucket=bucket, Key="dst-copy2")["Metadata"] == {"origin": "camera",
                                                                          "n": "1"}
    # REPLACE
    s3.copy_object(Bucket=bucket, Key="dst-replace", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"fresh": "true"},
                   ContentType="text/plain")
    head = s3.head_object(Bucket=bucket, Key="dst-replace")
    assert head["Metadata"] == {"fresh": "true"}
    assert head["ContentType"] == "text/plain"
    assert body_of(s3.get_object(Bucket=bucket, Key="dst-replace")) == src_data
    # in-place REPLACE changes metadata only
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"v": "2"}
    assert body_of(s3.get_object(Bucket=bucket, Key="src")) == src_data
    # the source is unaffected by later changes of the copy
    s3.put_object(Bucket=bucket, Key="dst-copy", Body=b"changed")
    assert body_of(s3.get_object(Bucket=bucket, Key="src")) == src_data


def test_copy_between_buckets_and_special_keys(s3, bucket):
    other = unique("b")
    s3.create_bucket(Bucket=other)
    key = "dir/with space/ünï+plus?.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=b"payload")
    s3.copy_object(Bucket=other, Key=key, CopySource={"Bucket": bucket, "Key": key})
    assert body_of(s3.get_object(Bucket=other, Key=key)) == b"payload"


def test_copy_errors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    status, code, _ = expect_client_error(s3.copy_object, Bucket=bucket, Key="d",
                                          CopySource={"Bucket": bucket, "Key": "missing"})
    assert (status, code) == (404, "NoSuchKey")
    status, code, _ = expect_client_error(s3.copy_object, Bucket=bucket, Key="d",
                                          CopySource={"Bucket": unique("nx"), "Key": "src"})
    assert (status, code) == (404, "NoSuchBucket")
    status, code, _ = expect_client_error(s3.copy_object, Bucket=bucket, Key="d",
                                          CopySource={"Bucket": bucket, "Key": "src"},
                                          CopySourceIfMatch='"0000"')
    assert status == 412
    status, code, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="d")
    assert status == 404


# --------------------------------------------------------------- multipart


def test_multipart_upload_full_cycle(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(123_457)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big.bin", ContentType="application/x-big",
                                    Metadata={"kind": "checkpoint"})["UploadId"]
    assert up
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("big.bin", up)]

    etags = []
    for i, p in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=up, PartNumber=i, Body=p)
        assert strip_etag(r["ETag"]) == md5_hex(p)
        etags.append(r["ETag"])

    lp = s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=up)
    assert [(p["PartNumber"], strip_etag(p["ETag"]), p["Size"]) for p in lp["Parts"]] == [
        (i + 1, md5_hex(p), len(p)) for i, p in enumerate(parts)]
    # list_parts pagination
    page1 = s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=up, MaxParts=2)
    assert [p["PartNumber"] for p in page1["Parts"]] == [1, 2] and page1["IsTruncated"]
    page2 = s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=up, MaxParts=2,
                          PartNumberMarker=page1["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in page2["Parts"]] == [3] and not page2["IsTruncated"]

    # not visible as an object before completion
    status, code, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="big.bin")
    assert status == 404
    assert list_all_keys(s3, bucket) == []

    done = s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    expected = multipart_etag(parts)
    assert strip_etag(done["ETag"]) == expected
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert strip_etag(head["ETag"]) == expected
    assert head["ContentLength"] == sum(map(len, parts))
    assert head["ContentType"] == "application/x-big"
    assert head["Metadata"] == {"kind": "checkpoint"}
    got = body_of(s3.get_object(Bucket=bucket, Key="big.bin"))
    assert hashlib.md5(got).hexdigest() == hashlib.md5(b"".join(parts)).hexdigest()
    listing = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert strip_etag(listing[0]["ETag"]) == expected
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # the completed upload id is gone
    status, code, _ = expect_client_error(s3.list_parts, Bucket=bucket, Key="big.bin", UploadId=up)
    assert (status, code) == (404, "NoSuchUpload")


def test_multipart_part_overwrite_and_subset(s3, bucket):
    a, b, c = os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=os.urandom(5 * MiB))
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=a)["ETag"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=2, Body=b)
    e3 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=3, Body=c)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=up)["Parts"]
    assert [(p["PartNumber"], strip_etag(p["ETag"])) for p in parts] == [
        (1, md5_hex(a)), (2, md5_hex(b)), (3, md5_hex(c))]
    # complete with parts 1 and 3 only (gaps are allowed)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e3}]})
    assert strip_etag(done["ETag"]) == multipart_etag([a, c])
    assert body_of(s3.get_object(Bucket=bucket, Key="k")) == a + c


def test_multipart_abort(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=up, PartNumber=1, Body=b"x" * 1000)
    keep = s3.create_multipart_upload(Bucket=bucket, Key="kept")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=up)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("kept", keep)]
    for fn, kw in ((s3.list_parts, {}),
                   (s3.upload_part, {"PartNumber": 2, "Body": b"y"}),
                   (s3.complete_multipart_upload, {"MultipartUpload": {"Parts": [
                       {"PartNumber": 1, "ETag": md5_hex(b"x" * 1000)}]}})):
        status, code, _ = expect_client_error(fn, Bucket=bucket, Key="gone", UploadId=up, **kw)
        assert (status, code) == (404, "NoSuchUpload"), fn.__name__
    status, code, _ = expect_client_error(s3.abort_multipart_upload, Bucket=bucket, Key="gone",
                                          UploadId=up)
    assert (status, code) == (404, "NoSuchUpload")
    status, code, _ = expect_client_error(s3.list_parts, Bucket=bucket, Key="gone",
                                          UploadId="no-such-upload-id")
    assert (status, code) == (404, "NoSuchUpload")
    assert list_all_keys(s3, bucket) == []


def test_list_multipart_uploads_filters(s3, bucket):
    ids = {}
    for key in ("a/1", "a/2", "b/1", "c"):
        ids[key] = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    second = s3.create_multipart_upload(Bucket=bucket, Key="a/1")["UploadId"]
    res = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    got = sorted((u["Key"], u["UploadId"]) for u in res["Uploads"])
    assert got == sorted([("a/1", ids["a/1"]), ("a/1", second), ("a/2", ids["a/2"])])
    res = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert sorted(p["Prefix"] for p in res.get("CommonPrefixes", [])) == ["a/", "b/"]
    assert [u["Key"] for u in res.get("Uploads", [])] == ["c"]
    res = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2)
    assert len(res["Uploads"]) == 2 and res["IsTruncated"]
    for key, up in list(ids.items()) + [("a/1", second)]:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_upload_part_copy(s3, bucket):
    src = os.urandom(6 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="source", Body=src)
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    cut = 5 * MiB
    head = os.urandom(5 * MiB)  # an uploaded part before the copied ones
    r1 = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1, Body=head)
    r2 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "source"},
                             CopySourceRange=f"bytes=0-{cut - 1}")
    r3 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=3,
                             CopySource={"Bucket": bucket, "Key": "source"},
                             CopySourceRange=f"bytes={cut}-{len(src) - 1}")
    e2, e3 = r2["CopyPartResult"]["ETag"], r3["CopyPartResult"]["ETag"]
    assert strip_etag(e2) == md5_hex(src[:cut])
    assert strip_etag(e3) == md5_hex(src[cut:])
    sizes = [p["Size"] for p in s3.list_parts(Bucket=bucket, Key="assembled", UploadId=up)["Parts"]]
    assert sizes == [len(head), cut, len(src) - cut]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=up,
                                        MultipartUpload={"Parts": [
                                            {"PartNumber": 1, "ETag": r1["ETag"]},
                                            {"PartNumber": 2, "ETag": e2},
                                            {"PartNumber": 3, "ETag": e3}]})
    assert strip_etag(done["ETag"]) == multipart_etag([head, src[:cut], src[cut:]])
    assert body_of(s3.get_object(Bucket=bucket, Key="assembled")) == head + src


def test_upload_part_copy_whole_object_and_bad_range(s3, bucket):
    src = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="s", Body=src)
    up = s3.create_multipart_upload(Bucket=bucket, Key="d")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="d", UploadId=up, PartNumber=1,
                            CopySource=f"{bucket}/s")
    assert strip_etag(r["CopyPartResult"]["ETag"]) == md5_hex(src)
    status, code, _ = expect_client_error(
        s3.upload_part_copy, Bucket=bucket, Key="d", UploadId=up, PartNumber=2,
        CopySource=f"{bucket}/s", CopySourceRange="bytes=500-5000")
    assert status in (400, 416), (status, code)
    s3.complete_multipart_upload(Bucket=bucket, Key="d", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert body_of(s3.get_object(Bucket=bucket, Key="d")) == src


def test_multipart_entity_too_small(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=1, Body=b"a" * 1024)
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=2, Body=b"b" * 1024)
    status, code, _ = expect_client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="small", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1["ETag"]},
                                   {"PartNumber": 2, "ETag": e2["ETag"]}]})
    assert (status, code) == (400, "EntityTooSmall")
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="small")
    assert status == 404
    # a single small part is fine (it is the last part)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 2, "ETag": e2["ETag"]}]})
    assert strip_etag(done["ETag"]) == multipart_etag([b"b" * 1024])
    assert body_of(s3.get_object(Bucket=bucket, Key="small")) == b"b" * 1024


def test_multipart_invalid_part_and_order(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    # both parts >= 5 MiB, so that only the order is wrong below
    p1, p2 = os.urandom(5 * MiB), os.urandom(5 * MiB + 1)
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    status, code, _ = expect_client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                   {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
    assert (status, code) == (400, "InvalidPart")
    status, code, _ = expect_client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 7, "ETag": e2}]})
    assert (status, code) == (400, "InvalidPart")
    status, code, _ = expect_client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert (status, code) == (400, "InvalidPartOrder")
    # the upload survives failed completions
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert strip_etag(done["ETag"]) == multipart_etag([p1, p2])


def test_upload_part_number_limits(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for bad in (0, 10001):
        status, code, _ = expect_client_error(s3.upload_part, Bucket=bucket, Key="k", UploadId=up,
                                              PartNumber=bad, Body=b"x")
        assert status == 400, (bad, status, code)
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up)


# ---------------------------------------------------------------- listing


@pytest.fixture
def tree(s3, bucket):
    keys = ["README", "a/1", "a/2", "a/b/1", "a/b/2", "a/c/1", "b/1", "b/2", "c", "d/e/f/g"] + [
        f"p/{i:03d}" for i in range(12)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return sorted(keys)


def test_list_v2_prefix_delimiter(s3, bucket, tree):
    res = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in res["Contents"]] == ["README", "c"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["a/", "b/", "d/", "p/"]
    assert res["KeyCount"] == 6
    res = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in res["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["a/b/", "a/c/"]
    res = s3.list_objects_v2(Bucket=bucket, Prefix="a/b")
    assert [o["Key"] for o in res["Contents"]] == ["a/b/1", "a/b/2"]
    assert "CommonPrefixes" not in res or res["CommonPrefixes"] == []
    res = s3.list_objects_v2(Bucket=bucket, Prefix="zzz")
    assert res.get("Contents", []) == [] and res["KeyCount"] == 0
    res = s3.list_objects_v2(Bucket=bucket, Prefix="d/", Delimiter="/")
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["d/e/"]
    for o in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        assert o["Size"] == len(o["Key"])
        assert strip_etag(o["ETag"]) == md5_hex(o["Key"].encode())
        assert isinstance(o["LastModified"], dt.datetime)


def test_list_v2_pagination(s3, bucket, tree):
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        res = s3.list_objects_v2(Bucket=bucket, MaxKeys=4, **kw)
        pages += 1
        assert res["KeyCount"] == len(res.get("Contents", [])) <= 4
        seen += [o["Key"] for o in res.get("Contents", [])]
        if not res["IsTruncated"]:
            assert "NextContinuationToken" not in res
            break
        token = res["NextContinuationToken"]
        assert pages < 20
    assert seen == tree
    assert pages == -(-len(tree) // 4)
    # paginator with delimiter: prefixes count toward MaxKeys and are not repeated
    prefixes, keys = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert prefixes == ["a/", "b/", "d/", "p/"]
    assert keys == ["README", "c"]


def test_list_v2_start_after(s3, bucket, tree):
    res = s3.list_objects_v2(Bucket=bucket, StartAfter="a/b/2")
    assert [o["Key"] for o in res["Contents"]] == [k for k in tree if k > "a/b/2"]
    res = s3.list_objects_v2(Bucket=bucket, StartAfter="p/005", Prefix="p/", MaxKeys=3)
    assert [o["Key"] for o in res["Contents"]] == ["p/006", "p/007", "p/008"]
    assert res["IsTruncated"]
    res2 = s3.list_objects_v2(Bucket=bucket, StartAfter="p/005", Prefix="p/", MaxKeys=3,
                              ContinuationToken=res["NextContinuationToken"])
    assert [o["Key"] for o in res2["Contents"]] == ["p/009", "p/010", "p/011"]
    res = s3.list_objects_v2(Bucket=bucket, StartAfter="zzzz")
    assert res.get("Contents", []) == []


def test_list_v2_fetch_owner_and_max_keys_zero(s3, bucket, tree):
    res = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert res.get("Contents", []) == []
    res = s3.list_objects_v2(Bucket=bucket, MaxKeys=1, FetchOwner=True)
    assert len(res["Contents"]) == 1 and res["IsTruncated"]


def test_list_v1_marker_pagination(s3, bucket, tree):
    seen, marker = [], ""
    for _ in range(20):
        res = s3.list_objects(Bucket=bucket, MaxKeys=3, Marker=marker)
        batch = [o["Key"] for o in res.get("Contents", [])]
        assert len(batch) <= 3
        seen += batch
        if not res["IsTruncated"]:
            break
        marker = res.get("NextMarker") or batch[-1]
    assert seen == tree
    # with a delimiter NextMarker is given
    res = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert res["IsTruncated"]
    assert res["NextMarker"]
    res = s3.list_objects(Bucket=bucket, Delimiter="/", Prefix="a/")
    assert [o["Key"] for o in res["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["a/b/", "a/c/"]
    res = s3.list_objects(Bucket=bucket, Marker="p/009")
    assert [o["Key"] for o in res["Contents"]] == ["p/010", "p/011"]
    # full paginator over v1 with delimiter
    prefixes, keys = [], []
    for page in s3.get_paginator("list_objects").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert prefixes == ["a/", "b/", "d/", "p/"] and keys == ["README", "c"]


def test_list_v2_many_keys_default_page(s3, bucket):
    keys = [f"k/{i:05d}" for i in range(1100)]
    # DeleteObjects-free bulk: put them with a small thread pool
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    res = s3.list_objects_v2(Bucket=bucket)
    assert len(res["Contents"]) == 1000 and res["IsTruncated"]
    assert list_all_keys(s3, bucket) == keys


# -------------------------------------------------------------- checksums


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_checksum_precomputed(s3, bucket, algo):
    data = os.urandom(70_000)
    value = CHECKSUM_FUNCS[algo](data)
    put = s3.put_object(Bucket=bucket, Key=f"ck-{algo}", Body=data, **{f"Checksum{algo}": value})
    assert put.get(f"Checksum{algo}") == value
    head = s3.head_object(Bucket=bucket, Key=f"ck-{algo}", ChecksumMode="ENABLED")
    assert head.get(f"Checksum{algo}") == value
    got = s3.get_object(Bucket=bucket, Key=f"ck-{algo}", ChecksumMode="ENABLED")
    assert got.get(f"Checksum{algo}") == value
    assert body_of(got) == data


@pytest.mark.parametrize("algo", ["CRC32", "SHA1", "SHA256"])
def test_checksum_computed_by_sdk(s3, bucket, algo):
    data = os.urandom(40_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algo)
    assert put.get(f"Checksum{algo}") == CHECKSUM_FUNCS[algo](data)
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head.get(f"Checksum{algo}") == CHECKSUM_FUNCS[algo](data)


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_wrong_checksum_rejected(s3, bucket, algo):
    data = b"the real data"
    wrong = CHECKSUM_FUNCS[algo](b"other data")
    status, code, _ = expect_client_error(s3.put_object, Bucket=bucket, Key="bad", Body=data,
                                          **{f"Checksum{algo}": wrong})
    assert status == 400, (status, code)
    assert code in ("BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"), code
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="bad")
    assert status == 404


def test_wrong_content_md5_rejected(s3, bucket):
    import base64
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, code, _ = expect_client_error(s3.put_object, Bucket=bucket, Key="bad", Body=b"data",
                                          ContentMD5=wrong)
    assert status == 400 and code in ("BadDigest", "InvalidDigest"), (status, code)
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="bad")
    assert status == 404
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="good", Body=b"data", ContentMD5=right)


def test_sdk_default_checksum_behaviour(orbit, rw, bucket):
    """A default client (request_checksum_calculation=when_supported) sends
    CRC32 with every put_object and upload_part."""
    s3 = orbit.s3(rw)  # default config
    seen = []
    s3.meta.events.register("before-send.s3.*",
                            lambda request, **kw: seen.append(dict(request.headers)))
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="default", Body=data)
    assert any(k.lower().startswith("x-amz-checksum-") or k.lower() == "x-amz-trailer"
               for k in seen[-1]), seen[-1]
    assert body_of(s3.get_object(Bucket=bucket, Key="default")) == data
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == crc32_b64(data)

    up = s3.create_multipart_upload(Bucket=bucket, Key="mp-default")["UploadId"]
    p1, p2 = os.urandom(5 * MiB), os.urandom(1000)
    r1 = s3.upload_part(Bucket=bucket, Key="mp-default", UploadId=up, PartNumber=1, Body=p1)
    r2 = s3.upload_part(Bucket=bucket, Key="mp-default", UploadId=up, PartNumber=2, Body=p2)
    parts = []
    for n, r in ((1, r1), (2, r2)):
        part = {"PartNumber": n, "ETag": r["ETag"]}
        if r.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = r["ChecksumCRC32"]
        parts.append(part)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp-default", UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert body_of(s3.get_object(Bucket=bucket, Key="mp-default")) == p1 + p2


def test_multipart_with_sha256_checksums(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    p1, p2 = os.urandom(5 * MiB), os.urandom(4321)
    parts = []
    for n, p in ((1, p1), (2, p2)):
        r = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=p,
                           ChecksumAlgorithm="SHA256")
        assert r.get("ChecksumSHA256") == sha256_b64(p)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert body_of(s3.get_object(Bucket=bucket, Key="k")) == p1 + p2


def _trailer_headers(data: bytes, body: bytes, algo_header="x-amz-checksum-crc32"):
    return {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": algo_header,
        "x-amz-sdk-checksum-algorithm": algo_header.rsplit("-", 1)[1].upper(),
        "Content-Length": str(len(body)),
        "Content-Type": "application/octet-stream",
    }


def test_aws_chunked_trailer_put_object(orbit, rw, s3, bucket):
    """The wire form newer SDKs send: STREAMING-UNSIGNED-PAYLOAD-TRAILER with a
    CRC32 trailer after aws-chunked framing."""
    data = os.urandom(200_000)
    body = aws_chunked_unsigned_trailer(data, "x-amz-checksum-crc32", crc32_b64(data))
    r = orbit.raw_s3("PUT", f"/{bucket}/chunked", rw, headers=_trailer_headers(data, body),
                     body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert r.status == 200, (r.status, r.body)
    assert strip_etag(r.header("ETag", "")) == md5_hex(data)
    got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert body_of(got) == data
    assert got["ContentLength"] == len(data)
    assert got.get("ChecksumCRC32") == crc32_b64(data)
    # aws-chunked is transfer framing, not a property of the object (AWS strips it)
    assert "aws-chunked" not in (got.get("ContentEncoding") or "")


def test_aws_chunked_trailer_sha256_and_crc32c(orbit, rw, s3, bucket):
    for name, fn in (("x-amz-checksum-sha256", sha256_b64),
                     ("x-amz-checksum-crc32c", CHECKSUM_FUNCS["CRC32C"])):
        data = os.urandom(70_001)
        body = aws_chunked_unsigned_trailer(data, name, fn(data), chunk_size=8192)
        r = orbit.raw_s3("PUT", f"/{bucket}/{name}", rw, headers=_trailer_headers(data, body, name),
                         body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        assert r.status == 200, (name, r.status, r.body)
        assert body_of(s3.get_object(Bucket=bucket, Key=name)) == data


def test_aws_chunked_trailer_wrong_checksum_rejected(orbit, rw, s3, bucket):
    data = os.urandom(50_000)
    body = aws_chunked_unsigned_trailer(data, "x-amz-checksum-crc32", crc32_b64(b"not it"))
    r = orbit.raw_s3("PUT", f"/{bucket}/badtrailer", rw, headers=_trailer_headers(data, body),
                     body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert r.status == 400, (r.status, r.body)
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="badtrailer")
    assert status == 404


def test_aws_chunked_trailer_upload_part(orbit, rw, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpchunk", ChecksumAlgorithm="CRC32")[
        "UploadId"]
    p1, p2 = os.urandom(5 * MiB), os.urandom(777)
    etags = []
    for n, p in ((1, p1), (2, p2)):
        body = aws_chunked_unsigned_trailer(p, "x-amz-checksum-crc32", crc32_b64(p))
        r = orbit.raw_s3("PUT", f"/{bucket}/mpchunk?partNumber={n}&uploadId={up}", rw,
                         headers=_trailer_headers(p, body), body=body,
                         payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        assert r.status == 200, (n, r.status, r.body)
        assert strip_etag(r.header("ETag", "")) == md5_hex(p)
        etags.append(r.header("ETag"))
    parts = s3.list_parts(Bucket=bucket, Key="mpchunk", UploadId=up)["Parts"]
    assert [p["Size"] for p in parts] == [len(p1), len(p2)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpchunk", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etags[0], "ChecksumCRC32": crc32_b64(p1)},
                  {"PartNumber": 2, "ETag": etags[1], "ChecksumCRC32": crc32_b64(p2)}]})
    assert body_of(s3.get_object(Bucket=bucket, Key="mpchunk")) == p1 + p2


def _signed_chunked_put(orbit, creds, path, data, tamper=False):
    url = f"http://127.0.0.1:{orbit.s3_port}{path}"
    chunk = 64 * 1024
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Length": str(signed_chunk_len(len(data), chunk)),
    }
    signed = sign_headers("PUT", url, creds.access_key, creds.secret_key, headers=headers,
                          payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    body = aws_chunked_signed(data, seed, creds.secret_key, signed["X-Amz-Date"], chunk_size=chunk)
    assert len(body) == int(headers["Content-Length"])
    if tamper:
        i = body.index(b"\r\n") + 10
        body = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
    return raw_request("127.0.0.1", orbit.s3_port, "PUT", path, headers=signed, body=body)


def test_aws_chunked_signed_payload(orbit, rw, s3, bucket):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD (signed chunks), as minio-go and the
    Java SDK v1 send over plain http."""
    data = os.urandom(150_000)
    r = _signed_chunked_put(orbit, rw, f"/{bucket}/signed-chunks", data)
    assert r.status == 200, (r.status, r.body)
    got = s3.get_object(Bucket=bucket, Key="signed-chunks")
    assert body_of(got) == data
    assert strip_etag(got["ETag"]) == md5_hex(data)
    r = _signed_chunked_put(orbit, rw, f"/{bucket}/tampered", data, tamper=True)
    # AWS answers 403 SignatureDoesNotMatch; any refusal keeps the data safe
    assert r.status in (400, 403), (r.status, r.body)
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="tampered")
    assert status == 404


def test_unsigned_payload_header_auth(orbit, rw, s3, bucket):
    data = b"unsigned payload body"
    r = orbit.raw_s3("PUT", f"/{bucket}/unsigned", rw, body=data, payload_hash="UNSIGNED-PAYLOAD")
    assert r.status == 200, r.body
    assert body_of(s3.get_object(Bucket=bucket, Key="unsigned")) == data
    # a declared payload hash that does not match the body is refused
    r = orbit.raw_s3("PUT", f"/{bucket}/mismatch", rw, body=data,
                     payload_hash=hashlib.sha256(b"something else").hexdigest())
    # AWS: 400 XAmzContentSHA256Mismatch; any refusal keeps the data safe
    assert r.status in (400, 403), (r.status, r.body)
    status, _, _ = expect_client_error(s3.head_object, Bucket=bucket, Key="mismatch")
    assert status == 404


# -------------------------------------------------------------- presigned


def test_presigned_get_and_put(s3, bucket):
    data = os.urandom(123_456)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/put"},
                                    ExpiresIn=600)
    assert "X-Amz-Signature=" in url
    r = requests.put(url, data=data, timeout=60)
    assert r.status_code == 200, r.text
    assert strip_etag(r.headers["ETag"]) == md5_hex(data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/put"},
                                    ExpiresIn=600)
    r = requests.get(url, timeout=60)
    assert r.status_code == 200 and r.content == data
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=60)
    assert r.status_code == 206 and r.content == data[10:20]
    r = requests.head(s3.generate_presigned_url("head_object",
                                                Params={"Bucket": bucket, "Key": "pre/put"}),
                      timeout=60)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    # tampering with the URL breaks it
    r = requests.get(url.replace("pre/put", "pre/other"), timeout=60)
    assert r.status_code == 403
    # a presigned PUT URL cannot be used to GET
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/put"})
    assert requests.get(put_url, timeout=60).status_code == 403


def test_presigned_list_and_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket})
    r = requests.get(url, timeout=60)
    assert r.status_code == 200 and b"<Key>x</Key>" in r.content
    url = s3.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "x"})
    assert requests.delete(url, timeout=60).status_code == 204
    assert list_all_keys(s3, bucket) == []


# ----------------------------------------------------------- virtual host


def _via_loopback(orbit, url: str, method="GET", **kw):
    parts = urlsplit(url)
    target = f"http://127.0.0.1:{orbit.s3_port}{parts.path}"
    if parts.query:
        target += "?" + parts.query
    headers = dict(kw.pop("headers", {}))
    headers["Host"] = parts.netloc
    return requests.request(method, target, headers=headers, timeout=60, **kw)


def test_virtual_host_addressing(orbit, rw, s3, bucket):
    vhost = orbit.s3(rw, endpoint=f"http://{orbit.s3_domain}:{orbit.s3_port}",
                     addressing_style="virtual")
    data = b"virtual hosted object"
    put_url = vhost.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v/obj"})
    assert urlsplit(put_url).netloc == f"{bucket}.{orbit.s3_domain}:{orbit.s3_port}", put_url
    r = _via_loopback(orbit, put_url, "PUT", data=data)
    assert r.status_code == 200, r.text
    # readable path-style too: the same bucket
    assert body_of(s3.get_object(Bucket=bucket, Key="v/obj")) == data
    get_url = vhost.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v/obj"})
    r = _via_loopback(orbit, get_url)
    assert r.status_code == 200 and r.content == data
    list_url = vhost.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket})
    r = _via_loopback(orbit, list_url)
    assert r.status_code == 200, r.text
    assert b"<Key>v/obj</Key>" in r.content or b"<Key>v%2Fobj</Key>" in r.content, r.text
    # header-signed virtual-host requests
    host = f"{bucket}.{orbit.s3_domain}:{orbit.s3_port}"
    r = orbit.raw_s3("GET", "/v/obj", rw, host=host)
    assert r.status == 200 and r.body == data
    r = orbit.raw_s3("PUT", "/v/second", rw, host=host, body=b"2nd")
    assert r.status == 200, r.body
    assert body_of(s3.get_object(Bucket=bucket, Key="v/second")) == b"2nd"
    r = orbit.raw_s3("GET", "/?list-type=2&prefix=v%2F", rw, host=host)
    assert r.status == 200 and b"<Key>v/second</Key>" in r.body
    # the bare domain is the service endpoint: ListBuckets
    r = orbit.raw_s3("GET", "/", rw, host=f"{orbit.s3_domain}:{orbit.s3_port}")
    assert r.status == 200 and f"<Name>{bucket}</Name>".encode() in r.body, r.body
    # a virtual-host name for a bucket that does not exist
    r = orbit.raw_s3("GET", "/v/obj", rw, host=f"{unique('nx')}.{orbit.s3_domain}:{orbit.s3_port}")
    assert r.status == 404 and r.code == "NoSuchBucket"


# ----------------------------------------------------------------- misc


def test_head_and_get_with_version_id_null(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"versionless")
    head = s3.head_object(Bucket=bucket, Key="v", VersionId="null")
    assert head["ContentLength"] == len(b"versionless")
    assert body_of(s3.get_object(Bucket=bucket, Key="v", VersionId="null")) == b"versionless"


def test_get_bucket_versioning_unversioned(s3, bucket):
    res = s3.get_bucket_versioning(Bucket=bucket)
    assert res.get("Status") in (None, "Suspended")


def test_roles(orbit):
    tenant = orbit.new_tenant()
    rw = orbit.new_key(tenant, orbit.new_user(tenant, role="read-write"))
    ro = orbit.new_key(tenant, orbit.new_user(tenant, role="read-only"))
    ta = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))
    s_rw, s_ro, s_ta = orbit.s3(rw), orbit.s3(ro), orbit.s3(ta)

    s_rw.create_bucket(Bucket="shared")
    s_rw.put_object(Bucket="shared", Key="doc", Body=b"v1", Metadata={"m": "1"})
    up = s_rw.create_multipart_upload(Bucket="shared", Key="mp")["UploadId"]

    # read-only: list/get/head only
    assert [b["Name"] for b in s_ro.list_buckets()["Buckets"]] == ["shared"]
    s_ro.head_bucket(Bucket="shared")
    assert body_of(s_ro.get_object(Bucket="shared", Key="doc")) == b"v1"
    s_ro.head_object(Bucket="shared", Key="doc")
    assert [o["Key"] for o in s_ro.list_objects_v2(Bucket="shared")["Contents"]] == ["doc"]
    s_ro.list_objects(Bucket="shared")
    denied = [
        lambda: s_ro.put_object(Bucket="shared", Key="doc", Body=b"ro"),
        lambda: s_ro.put_object(Bucket="shared", Key="new", Body=b"ro"),
        lambda: s_ro.delete_object(Bucket="shared", Key="doc"),
        lambda: s_ro.create_bucket(Bucket=unique("ro")),
        lambda: s_ro.delete_bucket(Bucket="shared"),
        lambda: s_ro.create_multipart_upload(Bucket="shared", Key="ro-mp"),
        lambda: s_ro.upload_part(Bucket="shared", Key="mp", UploadId=up, PartNumber=1, Body=b"x"),
        lambda: s_ro.abort_multipart_upload(Bucket="shared", Key="mp", UploadId=up),
        lambda: s_ro.copy_object(Bucket="shared", Key="copy", CopySource="shared/doc"),
        lambda: s_ro.copy_object(Bucket="shared", Key="doc", CopySource="shared/doc",
                                 MetadataDirective="REPLACE", Metadata={"m": "2"}),
    ]
    for i, fn in enumerate(denied):
        try:
            fn()
        except ClientError as exc:
            status, code, _ = (exc.response["ResponseMetadata"]["HTTPStatusCode"],
                               exc.response["Error"]["Code"], None)
            assert (status, code) == (403, "AccessDenied"), (i, status, code)
        else:
            raise AssertionError(f"read-only operation #{i} succeeded")
    try:
        res = s_ro.delete_objects(Bucket="shared", Delete={"Objects": [{"Key": "doc"}]})
        assert not res.get("Deleted") and res.get("Errors"), res
        assert res["Errors"][0]["Code"] == "AccessDenied"
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
    got = s_rw.get_object(Bucket="shared", Key="doc")
    assert body_of(got) == b"v1" and got["Metadata"] == {"m": "1"}
    assert sorted(list_all_keys(s_rw, "shared")) == ["doc"]
    assert [u["UploadId"] for u in s_rw.list_multipart_uploads(Bucket="shared")["Uploads"]] == [up]

    # tenant-admin: like read-write
    s_ta.put_object(Bucket="shared", Key="by-admin", Body=b"a")
    s_ta.create_bucket(Bucket="admins")
    s_ta.copy_object(Bucket="admins", Key="c", CopySource="shared/doc")
    s_ta.delete_object(Bucket="admins", Key="c")
    s_ta.delete_bucket(Bucket="admins")
    s_ta.abort_multipart_upload(Bucket="shared", Key="mp", UploadId=up)
    # read-write deletes
    s_rw.delete_objects(Bucket="shared", Delete={"Objects": [{"Key": "doc"}, {"Key": "by-admin"}]})
    s_rw.delete_bucket(Bucket="shared")
    assert s_ro.list_buckets()["Buckets"] == []


def test_many_concurrent_small_requests(s3, bucket):
    from concurrent.futures import ThreadPoolExecutor

    def work(i):
        data = os.urandom(1000 + i)
        s3.put_object(Bucket=bucket, Key=f"c/{i}", Body=data)
        assert body_of(s3.get_object(Bucket=bucket, Key=f"c/{i}")) == data
        return i

    with ThreadPoolExecutor(8) as ex:
        assert sorted(ex.map(work, range(64))) == list(range(64))
    assert len(list_all_keys(s3, bucket, prefix="c/")) == 64


def test_large_single_put_streams(s3, bucket):
    data = os.urandom(20 * MiB)
    put = s3.put_object(Bucket=bucket, Key="large", Body=data)
    assert strip_etag(put["ETag"]) == md5_hex(data)
    got = s3.get_object(Bucket=bucket, Key="large")
    h = hashlib.md5()
    for chunk in got["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    assert h.hexdigest() == md5_hex(data)


def test_encoded_path_key(orbit, rw, s3, bucket):
    key = "spaces and/ünï/+plus"
    r = orbit.raw_s3("PUT", f"/{bucket}/{encode_key(key)}", rw, body=b"enc")
    assert r.status == 200, r.body
    assert body_of(s3.get_object(Bucket=bucket, Key=key)) == b"enc"
    assert list_all_keys(s3, bucket) == [key]
