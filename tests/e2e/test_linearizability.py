"""Per-key linearizability of one site, judged by orbit-lincheck.

Concurrent boto3 clients put, get and delete a few keys of one bucket while
every call and return is recorded on one clock (this process's monotonic
clock) in orbit-lincheck's JSON-lines format. The multi-site situations of
issue 4 (partitioned satellite, satellite kill -9, home restart) will reuse
this recorder once sites are wired together.
"""

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

import orbit_e2e

CLIENTS = 6
OPS_PER_CLIENT = 60
KEYS = ["lin/a", "lin/b", "lin/c"]


def lincheck_bin() -> str:
    env = os.environ.get("ORBIT_LINCHECK_BIN")
    if env:
        return env
    # Built next to the orbit binary (cargo build -p orbit -p orbit-lincheck).
    return str(Path(orbit_e2e.orbit_bin()).with_name("orbit-lincheck"))


class Recorder:
    """Calls and returns, stamped with one clock shared by all clients."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, client: str, op: str, key: str, value: str | None = None) -> int:
        with self.lock:
            self.next_id += 1
            event = {"kind": "call", "id": self.next_id, "client": client, "op": op, "key": key,
                     "time": time.monotonic_ns()}
            if value is not None:
                event["value"] = value
            self.events.append(event)
            return self.next_id

    def ret(self, op_id: int, status: str, value: str | None = None) -> None:
        with self.lock:
            event = {"kind": "return", "id": op_id, "time": time.monotonic_ns(), "status": status}
            if status == "ok":
                event["value"] = value
            self.events.append(event)

    def write(self, path: Path, extra: list[dict] = ()) -> None:
        with open(path, "w") as f:
            for e in [*self.events, *extra]:
                f.write(json.dumps(e) + "\n")


def client_loop(orbit, creds, bucket: str, rec: Recorder, name: str, seed: int) -> None:
    s3 = orbit.s3(creds)
    rng = random.Random(seed)
    for i in range(OPS_PER_CLIENT):
        key = rng.choice(KEYS)
        r = rng.random()
        if r < 0.4:
            value = f"{name}-{i}"
            op = rec.call(name, "put", key, value)
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=value.encode())
                rec.ret(op, "ok")
            except (ClientError, BotoCoreError):
                rec.ret(op, "unknown")  # may or may not have taken effect
        elif r < 0.5:
            op = rec.call(name, "delete", key)
            try:
                s3.delete_object(Bucket=bucket, Key=key)
                rec.ret(op, "ok")
            except (ClientError, BotoCoreError):
                rec.ret(op, "unknown")
        else:
            op = rec.call(name, "get", key)
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                rec.ret(op, "ok", body)
            except ClientError as e:
                if orbit_e2e.client_error(e)[1] == "NoSuchKey":
                    rec.ret(op, "ok", None)
                else:
                    rec.ret(op, "unknown")
            except BotoCoreError:
                rec.ret(op, "unknown")


def run_lincheck(path: Path) -> tuple[int, str]:
    out = subprocess.run([lincheck_bin(), str(path)], capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def test_concurrent_clients_of_one_site_see_a_linearizable_history(orbit, rw, s3, bucket, tmp_path):
    rec = Recorder()
    threads = [
        threading.Thread(target=client_loop, args=(orbit, rw, bucket, rec, f"c{i}", 1000 + i))
        for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = tmp_path / "history.jsonl"
    rec.write(history)
    rc, out = run_lincheck(history)
    assert rc == 0, out
    assert out.startswith("ok: "), out
    print(out.strip())

    # The same history with one planted stale read must fail: a get that
    # starts after every operation ended returns an older value of a key than
    # the one a final read saw. This shows the check can fail end to end.
    key, stale = None, None
    for k in KEYS:
        try:
            final = s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode()
        except ClientError:
            final = None
        older = [e["value"] for e in rec.events if e.get("op") == "put" and e["key"] == k and e["value"] != final]
        if older:
            key, stale = k, older[0]
            final_read = final
            break
    assert key is not None, "no key was written twice"
    now = time.monotonic_ns()
    planted = [
        {"kind": "call", "id": 10**9, "client": "final", "op": "get", "key": key, "time": now},
        {"kind": "return", "id": 10**9, "time": now + 1, "status": "ok", "value": final_read},
        {"kind": "call", "id": 10**9 + 1, "client": "stale", "op": "get", "key": key, "time": now + 2},
        {"kind": "return", "id": 10**9 + 1, "time": now + 3, "status": "ok", "value": stale},
    ]
    rec.write(history, planted)
    rc, out = run_lincheck(history)
    assert rc == 1, out
    assert f'key "{key}"' in out, out
