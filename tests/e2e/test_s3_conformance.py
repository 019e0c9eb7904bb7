"""Behaviours a public S3 conformance run (ceph s3-tests) found Orbit deviating
from S3 on, each pinned by a test of our own named after the behaviour."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError

from orbit_e2e import MiB, expect_client_error, multipart_etag, strip_etag, unique


def put_keys(s3, bucket, keys):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


# ------------------------------------------------------ ListObjectVersions


def test_list_object_versions_on_unversioned_bucket_lists_null_versions(s3, bucket):
    put_keys(s3, bucket, ["a", "b/c", "d"])
    res = s3.list_object_versions(Bucket=bucket)
    versions = res["Versions"]
    assert [v["Key"] for v in versions] == ["a", "b/c", "d"]
    assert all(v["VersionId"] == "null" and v["IsLatest"] for v in versions)
    assert strip_etag(versions[0]["ETag"]) == hashlib.md5(b"a").hexdigest()
    assert versions[0]["Size"] == 1
    assert not res["IsTruncated"]
    assert "DeleteMarkers" not in res


def test_list_object_versions_paginates_by_key_marker(s3, bucket):
    put_keys(s3, bucket, ["k1", "k2", "k3"])
    res = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert [v["Key"] for v in res["Versions"]] == ["k1", "k2"]
    assert res["IsTruncated"] and res["NextKeyMarker"] == "k2" and res["NextVersionIdMarker"] == "null"
    res = s3.list_object_versions(Bucket=bucket, KeyMarker=res["NextKeyMarker"],
                                  VersionIdMarker=res["NextVersionIdMarker"])
    assert [v["Key"] for v in res["Versions"]] == ["k3"] and not res["IsTruncated"]


def test_list_object_versions_with_delimiter_groups_prefixes(s3, bucket):
    put_keys(s3, bucket, ["dir/x", "dir/y", "top"])
    res = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in res["Versions"]] == ["top"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["dir/"]


def test_emptying_bucket_through_versions_listing(s3, bucket):
    """What terraform's force_destroy and cleanup scripts do."""
    put_keys(s3, bucket, ["x", "y"])
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert not res.get("Errors")
    s3.delete_bucket(Bucket=bucket)


def test_list_object_versions_unknown_bucket_is_no_such_bucket(s3):
    status, code, _ = expect_client_error(s3.list_object_versions, Bucket="no-such-bucket-here")
    assert (status, code) == (404, "NoSuchBucket")


# ----------------------------------------------------------------- listings


def test_list_url_encoding_keeps_slashes(s3, bucket):
    put_keys(s3, bucket, ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b"])
    for list_fn in (s3.list_objects, s3.list_objects_v2):
        res = list_fn(Bucket=bucket, Delimiter="/", EncodingType="url")
        assert res["Delimiter"] == "/"
        assert [o["Key"] for o in res["Contents"]] == ["asdf%2Bb"]
        assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["foo%2B1/", "foo/", "quux%20ab/"]


def test_list_v1_echoes_prefix_unencoded(s3, bucket):
    # boto3 asks ListObjects (v1) for encoding-type=url itself and decodes keys,
    # markers and delimiters, not the echoed Prefix: S3 sends that one as given.
    put_keys(s3, bucket, ["foo/bar", "\nline"])
    assert s3.list_objects(Bucket=bucket, Prefix="foo/")["Prefix"] == "foo/"
    res = s3.list_objects(Bucket=bucket, Prefix="\n")
    assert res["Prefix"] == "\n"
    assert [o["Key"] for o in res["Contents"]] == ["\nline"]


def test_list_empty_delimiter_is_no_delimiter(s3, bucket):
    put_keys(s3, bucket, ["a/b", "c"])
    for list_fn in (s3.list_objects, s3.list_objects_v2):
        res = list_fn(Bucket=bucket, Delimiter="")
        assert "Delimiter" not in res
        assert [o["Key"] for o in res["Contents"]] == ["a/b", "c"]
        assert "CommonPrefixes" not in res


def test_list_max_keys_zero_is_not_truncated(s3, bucket):
    put_keys(s3, bucket, ["a", "b"])
    for list_fn in (s3.list_objects, s3.list_objects_v2):
        res = list_fn(Bucket=bucket, MaxKeys=0)
        assert res["IsTruncated"] is False
        assert res.get("Contents", []) == []


def test_list_v1_echoes_empty_marker(s3, bucket):
    put_keys(s3, bucket, ["a"])
    assert s3.list_objects(Bucket=bucket)["Marker"] == ""


# ------------------------------------------------------- conditional reads


def test_not_modified_carries_etag_and_last_modified(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"bar")["ETag"]
    head = s3.head_object(Bucket=bucket, Key="k")
    last_modified = head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    for fn in (s3.get_object, s3.head_object):
        for cond in ({"IfNoneMatch": etag}, {"IfModifiedSince": head["LastModified"]}):
            with pytest.raises(ClientError) as info:
                fn(Bucket=bucket, Key="k", **cond)
            meta = info.value.response["ResponseMetadata"]
            assert meta["HTTPStatusCode"] == 304, (fn, cond)
            assert meta["HTTPHeaders"]["etag"] == etag, (fn, cond)
            assert meta["HTTPHeaders"]["last-modified"] == last_modified, (fn, cond)


# --------------------------------------------------------------- multipart


def test_complete_multipart_retried_after_success_returns_same_object(s3, bucket):
    key = "mp"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    bodies = [b"a" * (5 * MiB), b"b" * 1024]
    parts = []
    for n, body in enumerate(bodies, start=1):
        e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": e})
    first = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    assert strip_etag(first["ETag"]) == strip_etag(again["ETag"]) == multipart_etag(bodies)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(bodies)


def test_complete_multipart_retry_with_other_parts_is_no_such_upload(s3, bucket):
    key = "mp"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=b"one")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    wrong = '"' + hashlib.md5(b"other").hexdigest() + '"'
    status, code, _ = expect_client_error(s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=up,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": wrong}]})
    assert (status, code) == (404, "NoSuchUpload")


def test_complete_multipart_retry_after_overwrite_is_no_such_upload(s3, bucket):
    key = "mp"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=b"one")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": e}]}
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload=parts)
    s3.put_object(Bucket=bucket, Key=key, Body=b"newer")
    status, code, _ = expect_client_error(s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=up,
                                          MultipartUpload=parts)
    assert (status, code) == (404, "NoSuchUpload")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"newer"


# ------------------------------------------------------------- ListBuckets


def test_list_buckets_paginates_with_max_buckets(s3):
    assert s3.list_buckets(MaxBuckets=1)["Buckets"] == []
    names = sorted(f"pg-{i}-{unique('b')}" for i in range(3))
    for n in names:
        s3.create_bucket(Bucket=n)
    seen, token = [], None
    for _ in range(5):
        kw = {"ContinuationToken": token} if token else {}
        res = s3.list_buckets(MaxBuckets=2, **kw)
        assert len(res["Buckets"]) <= 2
        seen += [b["Name"] for b in res["Buckets"]]
        token = res.get("ContinuationToken")
        if not token:
            break
    assert seen == names
    res = s3.list_buckets(MaxBuckets=3)
    assert [b["Name"] for b in res["Buckets"]] == names and "ContinuationToken" not in res
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == names


def test_list_buckets_bad_max_buckets_is_invalid_argument(s3):
    for bad in (10001, 99999):  # botocore itself refuses values below 1
        status, code, _ = expect_client_error(s3.list_buckets, MaxBuckets=bad)
        assert (status, code) == (400, "InvalidArgument"), bad


# --------------------------------------------------------------- request id


def test_error_body_request_id_matches_header(orbit, rw, bucket):
    res = orbit.raw_s3("GET", f"/{bucket}/missing", rw)
    assert res.status == 404
    header = res.header("x-amz-request-id")
    assert header
    assert f"<RequestId>{header}</RequestId>".encode() in res.body


def test_every_response_names_its_request(s3, bucket):
    ids = set()
    for _ in range(3):
        meta = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]
        ids.add(meta["RequestId"])
    assert len(ids) == 3 and all(ids)
