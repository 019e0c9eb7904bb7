"""Per-key linearizability of one site, judged by orbit-lincheck.

Concurrent boto3 clients put, get and delete a few keys of one bucket while
every call and return is recorded on one clock (histories.py). The same
recorder runs the multi-site situations of issue 4
(test_global_linearizability.py).
"""

import socket
import time
from collections import Counter

from histories import Client, History, Workload, planted_stale_read, s3_client
from orbit_e2e import client_error, free_port, unique

CLIENTS = 6
OPS_PER_CLIENT = 60
KEYS = ["lin/a", "lin/b", "lin/c"]


def test_concurrent_clients_of_one_site_see_a_linearizable_history(orbit, rw, bucket, tmp_path):
    history = History()
    clients = [Client(f"c{i}", "local", orbit.s3_endpoint) for i in range(CLIENTS)]
    run = Workload(keys=KEYS, max_ops=OPS_PER_CLIENT, duration_s=120, seed=1000).start(clients, rw, bucket, history)
    run.join()
    verdict = history.check(tmp_path / "history.jsonl")
    assert verdict.ok, verdict.output
    print(verdict.output.strip())

    # Not vacuous: every client did all its operations, nearly all answered,
    # and reads saw values other clients wrote.
    counts = history.summary()["local"]
    assert counts["ops"] == CLIENTS * OPS_PER_CLIENT, counts
    failed = sum(n for k, n in counts.items() if k.endswith(("_fail", "_unknown")))
    assert failed == 0, (counts, history.error_kinds())
    assert counts.get("reads_value", 0) >= 20, counts

    # The same history with one planted stale read must fail: a get that
    # starts after every operation ended returns an older value of a key than
    # the one a final read saw. This shows the check can fail end to end.
    s3 = s3_client(orbit.s3_endpoint, rw)
    finals = {}
    for k in KEYS:
        try:
            finals[k] = s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode()
        except Exception as e:  # noqa: BLE001 - only NoSuchKey is expected
            assert client_error(e)[1] == "NoSuchKey", e
            finals[k] = None
    planted = planted_stale_read(history, finals)
    assert planted is not None, "no key was written twice"
    key, events = planted
    verdict = history.check(tmp_path / "history.jsonl", extra=events)
    assert verdict.returncode == 1, verdict.output
    assert f'key "{key}"' in verdict.output, verdict.output


def test_the_recorder_tells_refused_from_unknown_outcomes(orbit, rw, bucket):
    """A refusal (4xx) surely did nothing: `fail`; a connection error or a
    request that got no answer may have taken effect: `unknown`; a get that
    failed is `unknown` (ignored by the checker)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections and never answers
    closed = free_port()
    history = History()
    clients = [
        Client("no-bucket", "a", orbit.s3_endpoint),
        Client("no-server", "b", f"http://127.0.0.1:{closed}"),
        Client("no-answer", "c", f"http://127.0.0.1:{silent.getsockname()[1]}"),
    ]
    try:
        workload = Workload(keys=["k"], put=1, delete=1, get=1, max_ops=6, duration_s=60, seed=7,
                            connect_timeout=1, read_timeout=0.5)
        workload.start(clients, rw, "no-such-bucket-" + bucket, history).join()
    finally:
        silent.close()
    by_client = {}
    for o in history.operations():
        by_client.setdefault(o.client, Counter())[(o.op, o.status)] += 1
    for name, expected_write in (("no-bucket", "fail"), ("no-server", "unknown"), ("no-answer", "unknown")):
        counts = by_client[name]
        assert sum(counts.values()) == 6, (name, counts)
        assert {status for (op, status) in counts if op != "get"} <= {expected_write}, (name, counts)
        assert {status for (op, status) in counts if op == "get"} <= {"unknown"}, (name, counts)
    assert history.error_kinds("a") and set(history.error_kinds("a")) == {"NoSuchBucket"}, history.error_kinds("a")
    assert set(history.error_kinds("b")) == {"EndpointConnectionError"}, history.error_kinds("b")
    assert set(history.error_kinds("c")) == {"ReadTimeoutError"}, history.error_kinds("c")


def test_a_site_killed_and_restarted_mid_run_keeps_a_linearizable_history(orbit_factory, tmp_path):
    """kill -9 in the middle of concurrent writes: acknowledged writes
    survive the restart and the whole history, with the outcomes the crash
    left unknown, is linearizable."""
    server = orbit_factory()
    creds = server.new_tenant_with_key()
    bucket = unique("lin")
    server.s3(creds).create_bucket(Bucket=bucket)
    history = History()
    clients = [Client(f"k{i}", "local", server.s3_endpoint) for i in range(4)]
    run = Workload(keys=KEYS, max_ops=1000, duration_s=12, think_s=0.01, seed=2000).start(
        clients, creds, bucket, history)
    time.sleep(4)
    history.mark("killed")
    server.kill9()
    time.sleep(1)
    server.start()
    history.mark("restarted")
    run.join()
    verdict = history.check(tmp_path / "history.jsonl")
    assert verdict.ok, verdict.output
    before = history.summary(end=history.mark_time("killed"))["local"]
    after = history.summary(start=history.mark_time("restarted"))["local"]
    assert before.get("put_ok", 0) >= 20 and after.get("put_ok", 0) >= 20, (before, after)
    assert after.get("reads_value", 0) >= 10, after
    print(verdict.output.strip(), history.summary())
