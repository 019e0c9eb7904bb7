"""Crash safety: kill -9 while many PUTs are in flight, restart on the same
data directory, and check that no acknowledged write was lost and no partial
object is visible. Also graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

from orbit_e2e import MiB, multipart_etag, strip_etag, unique

THREADS = 8
MIN_SIZE, MAX_SIZE = 64 * 1024, 4 * MiB
HOT_KEYS = [f"hot/{i}" for i in range(6)]


@dataclass
class Write:
    key: str
    md5: str | None          # None: the key is absent (an observed deletion/absence)
    etag: str | None
    size: int
    send_t: float
    ack_t: float | None = None
    ack_seq: int | None = None
    observed: bool = False   # a state read back after a restart, not a client write
    resolved: bool = False   # unacknowledged, and a restart was observed since: it can no
                             # longer land (it either did before the crash, or never will)


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: int = 0
    errors_before_stop: list[str] = field(default_factory=list)

    def begin(self, key, md5, etag, size) -> Write:
        w = Write(key, md5, etag, size, time.monotonic())
        with self.lock:
            self.writes.append(w)
        return w

    def ack(self, w: Write) -> None:
        with self.lock:
            self.acks += 1
            w.ack_t = time.monotonic()
            w.ack_seq = self.acks

    def observe(self, key: str, md5: str | None, etag: str | None, size: int) -> None:
        now = time.monotonic()
        with self.lock:
            for w in self.writes:
                if w.key == key and w.ack_t is None:
                    w.resolved = True
            self.writes.append(Write(key, md5, etag, size, now, now, None, observed=True))

    def by_key(self) -> dict[str, list[Write]]:
        out: dict[str, list[Write]] = {}
        for w in self.writes:
            out.setdefault(w.key, []).append(w)
        return out


def allowed_states(ws: list[Write]) -> tuple[set, bool]:
    """The states a key may be in after a crash, and whether it must exist.
    The last acknowledged (or observed) state L, or any write not finished
    before L began (it may have landed after L)."""
    done = [w for w in ws if w.ack_t is not None]
    if not done:
        return {None} | {w.md5 for w in ws}, False
    last = max(done, key=lambda w: w.ack_t)
    allowed = {last.md5}
    for w in ws:
        if w is last or w.observed:
            continue
        if w.ack_t is None and not w.resolved:
            allowed.add(w.md5)
        elif w.ack_t is not None and w.ack_t > last.send_t:
            allowed.add(w.md5)
    return allowed, None not in allowed


def writer(client, bucket: str, tid: int, history: History, stop: threading.Event,
           seed: int) -> None:
    rnd = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        if tid == 0 and n % 2 == 0:
            # a multipart upload now and then
            key = rnd.choice(HOT_KEYS) if rnd.random() < 0.5 else f"mp/{tid}-{seed}-{n}"
            parts = [os.urandom(5 * MiB), os.urandom(rnd.randint(1, 512 * 1024))]
            body = b"".join(parts)
            w = history.begin(key, hashlib.md5(body).hexdigest(), multipart_etag(parts), len(body))
            try:
                up = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                etags = [client.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=i + 1,
                                            Body=p)["ETag"] for i, p in enumerate(parts)]
                res = client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": [
                        {"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
                history.ack(w)
                if strip_etag(res["ETag"]) != w.etag:
                    history.errors_before_stop.append(f"{key}: multipart etag {res['ETag']}")
            except Exception as exc:  # noqa: BLE001 - anything after the kill is expected
                if not stop.is_set():
                    history.errors_before_stop.append(f"{key}: {exc!r}")
                return
            continue
        key = rnd.choice(HOT_KEYS) if rnd.random() < 0.4 else f"t{tid}/{seed}-{n}"
        size = rnd.randint(MIN_SIZE, MAX_SIZE)
        body = os.urandom(size)
        md5 = hashlib.md5(body).hexdigest()
        w = history.begin(key, md5, md5, size)
        try:
            res = client.put_object(Bucket=bucket, Key=key, Body=body)
            history.ack(w)
            if strip_etag(res["ETag"]) != md5:
                history.errors_before_stop.append(f"{key}: etag {res['ETag']} != {md5}")
        except Exception as exc:  # noqa: BLE001
            if not stop.is_set():
                history.errors_before_stop.append(f"{key}: {exc!r}")
            return


def run_load_then(server, creds, bucket, history: History, action, *, min_acks=40,
                  max_wait=45.0, seed=0):
    """Run THREADS writers; once `min_acks` new writes were acknowledged, call
    `action()` (kill or signal) while the writers are still sending."""
    clients = [server.s3(creds) for _ in range(THREADS)]
    stop = threading.Event()
    start_acks = history.acks
    threads = [threading.Thread(target=writer, args=(clients[i], bucket, i, history, stop,
                                                     seed * 100 + i), daemon=True)
               for i in range(THREADS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + max_wait
    while history.acks - start_acks < min_acks and time.monotonic() < deadline:
        if history.errors_before_stop:
            break
        time.sleep(0.05)
    in_flight = sum(1 for w in history.writes if w.ack_t is None)
    stop.set()
    action()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "writer threads hung"
    assert not history.errors_before_stop, history.errors_before_stop[:5]
    assert history.acks - start_acks >= min_acks, (
        f"only {history.acks - start_acks} writes acknowledged in {max_wait}s")
    return in_flight


def verify(server, creds, bucket, history: History) -> dict:
    """Check the bucket against the history; record what was observed."""
    s3 = server.s3(creds)
    by_key = history.by_key()
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            listed[o["Key"]] = o
    problems = []

    for key, o in listed.items():
        if key not in by_key:
            problems.append(f"{key}: listed but never written")
            continue
        try:
            got = s3.get_object(Bucket=bucket, Key=key)
            body = got["Body"].read()
        except ClientError as exc:
            problems.append(f"{key}: listed but GET failed: {exc}")
            continue
        md5 = hashlib.md5(body).hexdigest()
        etag = strip_etag(got["ETag"])
        if len(body) != got["ContentLength"] or len(body) != o["Size"]:
            problems.append(f"{key}: size {len(body)} vs header {got['ContentLength']} vs "
                            f"listing {o['Size']} (partial object)")
        versions = {w.md5: w for w in by_key[key] if w.md5}
        if md5 not in versions:
            problems.append(f"{key}: content md5 {md5} matches no write (corrupt/partial)")
            continue
        if etag != versions[md5].etag or strip_etag(o["ETag"]) != etag:
            problems.append(f"{key}: ETag {etag}/{o['ETag']} does not match its body "
                            f"(expected {versions[md5].etag})")

    observed = {}
    for key, ws in by_key.items():
        allowed, must_exist = allowed_states(ws)
        if key in listed:
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                state = hashlib.md5(body).hexdigest()
            except ClientError as exc:
                problems.append(f"{key}: GET failed: {exc}")
                continue
        else:
            try:
                s3.head_object(Bucket=bucket, Key=key)
                problems.append(f"{key}: HEAD finds it but the listing does not")
            except ClientError:
                pass
            state = None
        if state not in allowed:
            acked = [w for w in ws if w.ack_t is not None and not w.observed]
            problems.append(
                f"{key}: state {state} not allowed (allowed {sorted(map(str, allowed))}; "
                f"{len(acked)} acknowledged writes, must_exist={must_exist})")
        observed[key] = state
    assert not problems, "\n".join(problems[:30]) + f"\n({len(problems)} problems)"
    for key, state in observed.items():
        w = next((w for w in by_key[key] if w.md5 == state), None)
        history.observe(key, state, w.etag if w else None, w.size if w else 0)
    return observed


def test_kill9_during_concurrent_puts(orbit_factory):
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    bucket = unique("crash")
    server.s3(creds).create_bucket(Bucket=bucket)
    history = History()

    for rnd in range(2):
        # metadata acknowledged just before the crash must survive it too
        extra_tenant = server.new_tenant()
        in_flight = run_load_then(server, creds, bucket, history, server.kill9, seed=rnd + 1)
        assert in_flight > 0, "the kill should hit writes in flight"
        assert not server.is_running()
        unacked = [w for w in history.writes if w.ack_t is None and not w.resolved]
        server.start()
        observed = verify(server, creds, bucket, history)
        landed = sum(1 for w in unacked if observed.get(w.key) == w.md5)
        print(f"round {rnd + 1}: {history.acks} acknowledged writes so far, {len(unacked)} "
              f"in flight at the kill, {landed} of those visible after restart, "
              f"{sum(v is not None for v in observed.values())} keys present")
        acked_keys = {w.key for w in history.writes if w.ack_t and not w.observed}
        assert acked_keys <= {k for k, v in observed.items() if v is not None}
        assert extra_tenant in [t["name"] for t in server.cli("tenant", "list")]

    # fully usable after recovery
    s3 = server.s3(creds)
    s3.put_object(Bucket=bucket, Key="after", Body=b"after recovery")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"after recovery"
    assert s3.list_multipart_uploads(Bucket=bucket) is not None
    server.stop()


def test_kill9_leaves_no_orphan_visible_and_uploads_resumable(orbit_factory):
    """An open multipart upload survives a crash (or is cleanly gone), and a
    part acknowledged before the crash is intact if the upload survives."""
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    s3 = server.s3(creds)
    s3.create_bucket(Bucket="mpcrash")
    p1 = os.urandom(5 * MiB)
    up = s3.create_multipart_upload(Bucket="mpcrash", Key="ckpt")["UploadId"]
    e1 = s3.upload_part(Bucket="mpcrash", Key="ckpt", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    server.kill9()
    server.start()
    s3 = server.s3(creds)
    uploads = s3.list_multipart_uploads(Bucket="mpcrash").get("Uploads", [])
    assert s3.list_objects_v2(Bucket="mpcrash").get("Contents", []) == []
    if uploads:
        assert [u["UploadId"] for u in uploads] == [up]
        parts = s3.list_parts(Bucket="mpcrash", Key="ckpt", UploadId=up)["Parts"]
        assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, 5 * MiB)]
        p2 = b"tail"
        e2 = s3.upload_part(Bucket="mpcrash", Key="ckpt", UploadId=up, PartNumber=2,
                            Body=p2)["ETag"]
        s3.complete_multipart_upload(Bucket="mpcrash", Key="ckpt", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        assert s3.get_object(Bucket="mpcrash", Key="ckpt")["Body"].read() == p1 + p2
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_keeps_data(orbit_factory, sig):
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    s3 = server.s3(creds)
    s3.create_bucket(Bucket="graceful")
    objects = {}
    for i in range(20):
        data = os.urandom(random.randint(1, 300_000))
        s3.put_object(Bucket="graceful", Key=f"obj/{i}", Body=data, Metadata={"i": str(i)})
        objects[f"obj/{i}"] = data
    t0 = time.monotonic()
    assert server.stop(sig=sig) == 0
    assert time.monotonic() - t0 < 30
    server.start()
    s3 = server.s3(creds)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="graceful")["Contents"]]
    assert sorted(keys) == sorted(objects)
    for k, data in objects.items():
        got = s3.get_object(Bucket="graceful", Key=k)
        assert got["Body"].read() == data
        assert got["Metadata"] == {"i": k.split("/")[1]}
    # credentials and tenants survive too
    assert creds.tenant in [t["name"] for t in server.cli("tenant", "list")]
    server.stop()


def test_sigterm_under_load(orbit_factory):
    """SIGTERM with writes in flight: exit 0, every acknowledged write intact."""
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    bucket = unique("term")
    server.s3(creds).create_bucket(Bucket=bucket)
    history = History()
    rcs = []

    def term():
        rcs.append(server.stop(sig=signal.SIGTERM, check=False, timeout=60))

    run_load_then(server, creds, bucket, history, term, min_acks=10, seed=7)
    assert rcs == [0], f"exit code {rcs}; log tail:\n{server.log_tail()}"
    server.start()
    verify(server, creds, bucket, history)
    server.stop()
