"""The fast read path (crates/orbit-s3/src/fast_read.rs): plain whole-object
GETs and HEADs are answered without s3s's routing, everything else by s3s.

Both paths must answer alike: these tests send each request once as the fast
path takes it and once with a header that sends it to s3s (an If-None-Match
that holds, so the answer is still a 200), and compare status, body and every
header but Date and x-amz-request-id. The server's counter of fast reads
tells which path answered. Refusals (bad or expired signatures, other
tenants, missing keys) must come from s3s, exactly as before.
"""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
import requests

from orbit_e2e import sign_headers, unique

GENERAL = {"If-None-Match": '"no-object-has-this-etag"'}
VOLATILE = {"date", "x-amz-request-id"}


def fast_reads(orbit) -> dict[str, float]:
    text = requests.get(f"{orbit.admin_url}/metrics", timeout=10).text
    counts = {"GetObject": 0.0, "HeadObject": 0.0}
    for m in re.finditer(r'^orbit_s3_fast_reads_total\{op="(\w+)"\} (\S+)$', text, re.M):
        counts[m.group(1)] = float(m.group(2))
    return counts


def comparable(resp: requests.Response) -> tuple[int, dict, bytes]:
    headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in VOLATILE}
    return resp.status_code, headers, resp.content


@pytest.fixture
def objects(s3, bucket):
    """Objects whose headers exercise every field a whole-object read sends."""
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x" * 4096, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    s3.put_object(
        Bucket=bucket, Key="dir/with headers & spaces+plus~", Body=b"{}",
        ContentType="application/json", ContentEncoding="identity",
        ContentDisposition='attachment; filename="a.json"', ContentLanguage="en-GB",
        CacheControl="max-age=60", Expires="Wed, 21 Oct 2037 07:28:00 GMT",
        Metadata={"owner": "team-a", "Mixed-Case": "Value With Spaces"},
    )
    up = s3.create_multipart_upload(Bucket=bucket, Key="multi", ChecksumAlgorithm="SHA1")
    part = s3.upload_part(Bucket=bucket, Key="multi", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 1024,
                          ChecksumAlgorithm="SHA1")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="multi", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"],
                                    "ChecksumSHA1": part["ChecksumSHA1"]}]},
    )
    return {"plain": b"x" * 4096, "empty": b"", "dir/with headers & spaces+plus~": b"{}", "multi": b"m" * 1024}


def test_presigned_reads_answer_as_s3s_does(orbit, s3, bucket, objects):
    before = fast_reads(orbit)
    for key in objects:
        for op, send in (("get_object", requests.get), ("head_object", requests.head)):
            url = s3.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
            fast = send(url, timeout=30)
            general = send(url, headers=GENERAL, timeout=30)
            assert fast.status_code == 200, (key, op, fast.status_code, fast.content[:300])
            assert fast.content == (objects[key] if op == "get_object" else b"")
            assert comparable(fast) == comparable(general), (key, op)
    after = fast_reads(orbit)
    assert after["GetObject"] - before["GetObject"] == len(objects)
    assert after["HeadObject"] - before["HeadObject"] == len(objects)


def test_header_signed_reads_answer_as_s3s_does(orbit, rw, bucket, objects):
    before = fast_reads(orbit)
    for key in objects:
        path = f"/{bucket}/{urllib.parse.quote(key, safe='/~')}"
        url = f"{orbit.s3_endpoint}{path}"
        # With and without the checksum mode AWS SDKs now send by default on GetObject.
        for extra in ({}, {"x-amz-checksum-mode": "ENABLED"}):
            for method, send in (("GET", requests.get), ("HEAD", requests.head)):
                signed = sign_headers(method, url, rw.access_key, rw.secret_key, headers=extra)
                fast = send(url, headers=signed, timeout=30)
                signed = sign_headers(method, url, rw.access_key, rw.secret_key, headers={**extra, **GENERAL})
                general = send(url, headers=signed, timeout=30)
                assert fast.status_code == 200, (key, method, fast.status_code, fast.content[:300])
                assert comparable(fast) == comparable(general), (key, method, extra)
                if extra and key != "empty":
                    assert any(h.startswith("x-amz-checksum-") for h in comparable(fast)[1]), (key, method)
        # AWS SDKs add x-id=GetObject to the query; it is signed like any parameter.
        sdk_url = f"{url}?x-id=GetObject"
        sdk = requests.get(sdk_url, headers=sign_headers("GET", sdk_url, rw.access_key, rw.secret_key), timeout=30)
        assert sdk.status_code == 200 and sdk.content == objects[key]
    after = fast_reads(orbit)
    assert after["GetObject"] - before["GetObject"] == 3 * len(objects)
    assert after["HeadObject"] - before["HeadObject"] == 2 * len(objects)


def test_sdk_reads_take_the_fast_path(orbit, s3, bucket, objects):
    before = fast_reads(orbit)
    got = s3.get_object(Bucket=bucket, Key="dir/with headers & spaces+plus~")
    assert got["Body"].read() == b"{}"
    assert got["ContentType"] == "application/json"
    assert got["Metadata"] == {"owner": "team-a", "mixed-case": "Value With Spaces"}
    head = s3.head_object(Bucket=bucket, Key="plain")
    assert head["ContentLength"] == 4096
    after = fast_reads(orbit)
    assert after["GetObject"] - before["GetObject"] == 1
    assert after["HeadObject"] - before["HeadObject"] == 1


def test_what_the_fast_path_does_not_take_is_still_answered(orbit, s3, bucket, objects):
    before = fast_reads(orbit)
    ranged = s3.get_object(Bucket=bucket, Key="plain", Range="bytes=10-19")
    assert ranged["ContentRange"] == "bytes 10-19/4096" and ranged["Body"].read() == b"x" * 10
    # A tab is a valid header character that S3 still sends RFC 2047-encoded.
    s3.put_object(Bucket=bucket, Key="tabbed", Body=b"u", Metadata={"note": "a\tb"})
    got = s3.get_object(Bucket=bucket, Key="tabbed")
    assert got["Body"].read() == b"u" and got["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-note"].startswith("=?UTF-8?")
    params = {"Bucket": bucket, "Key": "plain", "VersionId": "null"}
    versioned = requests.get(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600), timeout=30)
    assert versioned.status_code == 200 and versioned.content == b"x" * 4096
    # Presigned downloads often name the file to save: response-* overrides are s3s's.
    params = {"Bucket": bucket, "Key": "plain", "ResponseContentDisposition": 'attachment; filename="p.bin"',
              "ResponseContentType": "application/x-test"}
    renamed = requests.get(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600), timeout=30)
    assert renamed.status_code == 200 and renamed.content == b"x" * 4096
    assert renamed.headers["Content-Disposition"] == 'attachment; filename="p.bin"'
    assert renamed.headers["Content-Type"] == "application/x-test"
    after = fast_reads(orbit)
    # The range, the versionId and the overrides go to s3s; the metadata to encode is found only once the
    # record is read, so that GET is handed over then (and answered by s3s).
    assert after["GetObject"] == before["GetObject"]


def test_refusals_come_from_s3s(orbit, s3, rw, bucket, objects, new_tenant_with_key):
    before = fast_reads(orbit)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "plain"}, ExpiresIn=600)

    sig = re.search(r"X-Amz-Signature=([0-9a-f]{64})", url).group(1)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    bad = requests.get(url.replace(sig, flipped), timeout=30)
    assert bad.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in bad.content

    # A valid signature for one key does not open another.
    other = requests.get(url.replace("/plain?", "/empty?"), timeout=30)
    assert other.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in other.content

    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "plain"}, ExpiresIn=1)
    time.sleep(2.5)
    expired = requests.get(short, timeout=30)
    assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content

    missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"}, ExpiresIn=600)
    gone = requests.get(missing, timeout=30)
    assert gone.status_code == 404 and b"<Code>NoSuchKey</Code>" in gone.content

    # Another tenant, validly signed, learns nothing of this tenant's bucket.
    stranger = orbit.s3(new_tenant_with_key(role="read-write"))
    theirs = stranger.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "plain"}, ExpiresIn=600)
    refused = requests.get(theirs, timeout=30)
    assert refused.status_code in (403, 404) and b"xxxx" not in refused.content
    assert b"<Code>NoSuchBucket</Code>" in refused.content or b"<Code>AccessDenied</Code>" in refused.content

    # An unknown key id.
    path = f"/{bucket}/plain"
    forged = sign_headers("GET", f"{orbit.s3_endpoint}{path}", "AKNOSUCHKEY000000000", rw.secret_key)
    unknown = requests.get(f"{orbit.s3_endpoint}{path}", headers=forged, timeout=30)
    assert unknown.status_code == 403 and b"<Code>InvalidAccessKeyId</Code>" in unknown.content

    after = fast_reads(orbit)
    assert after == before, "no refused request may count as served by the fast path"
