"""Histories of concurrent S3 clients, judged by orbit-lincheck.

Clients, each bound to one S3 endpoint (one site), put, get and delete a few
keys of one bucket with values no other operation writes, while every call
and return is stamped with one clock: this process's monotonic clock, which
is valid across sites because every site runs on this one machine. The
history is written in orbit-lincheck's JSON-lines format and checked by the
`orbit-lincheck` binary (per-key linearizability of a register: put, get,
delete; listings are not in its model, so clients do not list).

Outcomes, as the checker reads them:
- a put or delete that returned is `ok`; one refused with a 4xx surely did
  not happen: `fail`; anything else (a 5xx such as a satellite's 503, a
  timeout, a cut or refused connection) may or may not have taken effect:
  `unknown`, free to take effect at any time after its call, or never;
- a get that returned is `ok` with what it read (absent for NoSuchKey); any
  other get tells nothing and is recorded `unknown`, which the checker
  ignores.

Every client issues one operation at a time, with a short pause drawn at
random between operations, until it has done `max_ops` or the run is
stopped or its `duration_s` is up; boto3 runs with short timeouts and no
retries, so a fault shows as the outcome of the one operation it hit.

    history = History()
    clients = [Client(f"{site.name}-c{i}", site.name, site.s3_endpoint) for ...]
    run = Workload(keys=KEYS, duration_s=30).start(clients, creds, bucket, history)
    history.mark("partition"); ...; history.mark("healed")
    run.join()
    verdict = history.check(tmp_path / "history.jsonl")
    assert verdict.ok, verdict.output
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import orbit_e2e
from orbit_e2e import REGION, Creds


def lincheck_bin() -> str:
    env = os.environ.get("ORBIT_LINCHECK_BIN")
    if env:
        return env
    # Built next to the orbit binary (cargo build -p orbit -p orbit-lincheck).
    return str(Path(orbit_e2e.orbit_bin()).with_name("orbit-lincheck"))


def s3_client(endpoint: str, creds: Creds, *, connect_timeout: float = 2.0, read_timeout: float = 8.0):
    """A boto3 client for history runs: no retries, short timeouts, so a
    fault is the outcome of the one operation it hit."""
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"max_attempts": 1, "mode": "standard"},
                 connect_timeout=connect_timeout, read_timeout=read_timeout)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key, config=cfg)


# ---------------------------------------------------------------- the history

@dataclass
class Operation:
    """One operation of a history, joined from its call and return."""
    id: int
    client: str
    site: str
    op: str
    key: str
    value: str | None  # put: the value written; get that returned ok: what it read
    call: int
    ret: int | None
    status: str  # ok, fail, unknown (no return counts as unknown)
    error: str | None = None


@dataclass
class Verdict:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.output.startswith("ok: ")


class History:
    """Calls and returns of many clients, stamped with one clock."""

    def __init__(self):
        self._lock = threading.Lock()
        self.events: list[dict] = []
        self.marks: list[tuple[str, int]] = []
        self.site_of: dict[str, str] = {}
        self.errors: dict[int, str] = {}
        self._status: dict[int, str] = {}
        self._next_id = 0

    @staticmethod
    def now() -> int:
        return time.monotonic_ns()

    def register(self, client: str, site: str) -> None:
        with self._lock:
            assert client not in self.site_of, f"client name {client} used twice"
            self.site_of[client] = site

    def call(self, client: str, op: str, key: str, value: str | None = None) -> int:
        with self._lock:
            self._next_id += 1
            event = {"kind": "call", "id": self._next_id, "client": client, "op": op, "key": key,
                     "time": self.now()}
            if value is not None:
                event["value"] = value
            self.events.append(event)
            return self._next_id

    def ret(self, op_id: int, status: str, value: str | None = None, error: str | None = None) -> None:
        assert status in ("ok", "fail", "unknown"), status
        with self._lock:
            event = {"kind": "return", "id": op_id, "time": self.now(), "status": status}
            if status == "ok" and value is not None:
                event["value"] = value
            self.events.append(event)
            self._status[op_id] = status
            if error is not None:
                self.errors[op_id] = error

    def last_status(self, op_id: int) -> str | None:
        """The status the operation returned with (None before it returned)."""
        with self._lock:
            return self._status.get(op_id)

    def mark(self, label: str) -> int:
        """Note a moment (a fault injected, healed) on the history's clock."""
        t = self.now()
        with self._lock:
            self.marks.append((label, t))
        return t

    def mark_time(self, label: str) -> int:
        return next(t for name, t in self.marks if name == label)

    # ---- reading it back
    def operations(self) -> list[Operation]:
        with self._lock:
            events = list(self.events)
        ops: dict[int, Operation] = {}
        for e in events:
            if e["kind"] == "call":
                ops[e["id"]] = Operation(e["id"], e["client"], self.site_of.get(e["client"], "?"), e["op"],
                                         e["key"], e.get("value"), e["time"], None, "unknown")
            else:
                o = ops[e["id"]]
                o.ret, o.status = e["time"], e["status"]
                if o.op == "get":
                    o.value = e.get("value") if e["status"] == "ok" else None
                o.error = self.errors.get(e["id"])
        return sorted(ops.values(), key=lambda o: o.call)

    def writer_of(self) -> dict[str, str]:
        """Each value put, by the client that put it."""
        return {e["value"]: e["client"] for e in self.events
                if e["kind"] == "call" and e["op"] == "put"}

    def summary(self, start: int | None = None, end: int | None = None) -> dict[str, dict[str, int]]:
        """Counts per site, of operations called in [start, end): `<op>_<status>`
        for each operation and outcome, `reads_value` (gets that returned a
        value), `reads_remote` (of those, values put by a client of another
        site) and `ops`."""
        writers = self.writer_of()
        out: dict[str, Counter] = defaultdict(Counter)
        for o in self.operations():
            if (start is not None and o.call < start) or (end is not None and o.call >= end):
                continue
            c = out[o.site]
            c["ops"] += 1
            c[f"{o.op}_{o.status}"] += 1
            if o.op == "get" and o.status == "ok" and o.value is not None:
                c["reads_value"] += 1
                if self.site_of.get(writers.get(o.value, ""), o.site) != o.site:
                    c["reads_remote"] += 1
        return {site: dict(c) for site, c in out.items()}

    def error_kinds(self, site: str | None = None) -> Counter:
        """The errors recorded (S3 code or exception class), for a failure message."""
        return Counter(o.error for o in self.operations()
                       if o.error is not None and (site is None or o.site == site))

    # ---- checking
    def write(self, path: Path, extra: Iterable[dict] = ()) -> Path:
        with self._lock:
            events = [*self.events, *extra]
        with open(path, "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        return path

    def check(self, path: Path, extra: Iterable[dict] = (), timeout: float = 240.0) -> Verdict:
        """Write the history to `path` and judge it with orbit-lincheck."""
        self.write(path, extra)
        out = subprocess.run([lincheck_bin(), str(path)], capture_output=True, text=True, timeout=timeout)
        return Verdict(out.returncode, out.stdout + out.stderr)


# ---------------------------------------------------------------- clients

@dataclass
class Client:
    """A client bound to one site's S3 endpoint."""
    name: str
    site: str
    endpoint: str


def write_outcome(exc: Exception) -> tuple[str, str]:
    """(status, error) of a put or delete that raised."""
    if isinstance(exc, ClientError):
        status, code, _ = orbit_e2e.client_error(exc)
        # A 4xx is a refusal: nothing was applied. A 5xx (a satellite's 503
        # among them) may come after the write reached home.
        return ("fail" if 400 <= (status or 0) < 500 else "unknown"), code or str(status)
    # Even a connection error is `unknown`, not `fail`: runs with a satellite
    # killed mid-run recorded puts that raised EndpointConnectionError and
    # were read back afterwards, so the request had reached the site.
    return "unknown", type(exc).__name__


@dataclass
class Workload:
    """What each client does: operations on `keys` drawn with these weights,
    a random pause of mean `think_s` between two (and `error_pause_s` after
    one that failed), at most `max_ops` each, for at most `duration_s`."""
    keys: list[str]
    put: float = 0.4
    delete: float = 0.1
    get: float = 0.5
    max_ops: int = 500
    duration_s: float = 60.0
    think_s: float = 0.0
    # After an operation that did not succeed, as a real client backs off:
    # an outage then leaves tens of unknown outcomes, not thousands.
    error_pause_s: float = 0.2
    seed: int = 1
    connect_timeout: float = 2.0
    read_timeout: float = 8.0

    def start(self, clients: list[Client], creds: Creds, bucket: str, history: History) -> "Run":
        return Run(self, clients, creds, bucket, history).start()


@dataclass
class Run:
    workload: Workload
    clients: list[Client]
    creds: Creds
    bucket: str
    history: History
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _crashes: list[str] = field(default_factory=list)

    def start(self) -> "Run":
        deadline = time.monotonic() + self.workload.duration_s
        for i, c in enumerate(self.clients):
            self.history.register(c.name, c.site)
            t = threading.Thread(target=self._client, args=(c, self.workload.seed * 1000 + i, deadline),
                                 name=f"history-{c.name}", daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for every client (its last operation ends within the client
        timeouts); fails if a client thread died of something unexpected."""
        limit = (self.workload.duration_s + 2 * (self.workload.connect_timeout + self.workload.read_timeout)
                 if timeout is None else timeout)
        deadline = time.monotonic() + limit
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"clients still running after {limit:.0f}s: {alive}"
        assert not self._crashes, "client threads crashed:\n" + "\n".join(self._crashes)

    def _client(self, c: Client, seed: int, deadline: float) -> None:
        try:
            self._loop(c, seed, deadline)
        except Exception as e:  # noqa: BLE001 - reported by join
            self._crashes.append(f"{c.name}: {type(e).__name__}: {e}")

    def _loop(self, c: Client, seed: int, deadline: float) -> None:
        w, h = self.workload, self.history
        s3 = s3_client(c.endpoint, self.creds, connect_timeout=w.connect_timeout, read_timeout=w.read_timeout)
        rng = random.Random(seed)
        total = w.put + w.delete + w.get
        for i in range(w.max_ops):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            key = rng.choice(w.keys)
            r = rng.random() * total
            if r < w.put:
                value = f"{c.name}:{i}"
                op = h.call(c.name, "put", key, value)
                try:
                    s3.put_object(Bucket=self.bucket, Key=key, Body=value.encode())
                    h.ret(op, "ok")
                except (ClientError, BotoCoreError) as e:
                    h.ret(op, *write_outcome(e))
            elif r < w.put + w.delete:
                op = h.call(c.name, "delete", key)
                try:
                    s3.delete_object(Bucket=self.bucket, Key=key)
                    h.ret(op, "ok")
                except (ClientError, BotoCoreError) as e:
                    h.ret(op, *write_outcome(e))
            else:
                op = h.call(c.name, "get", key)
                try:
                    body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
                    h.ret(op, "ok", body)
                except ClientError as e:
                    status, code, _ = orbit_e2e.client_error(e)
                    if code == "NoSuchKey":
                        h.ret(op, "ok", None)
                    else:
                        h.ret(op, "unknown", error=code or str(status))
                except BotoCoreError as e:
                    h.ret(op, "unknown", error=type(e).__name__)
            last = h.last_status(op)
            if last != "ok" and w.error_pause_s > 0:
                self._stop.wait(w.error_pause_s)
            elif w.think_s > 0:
                self._stop.wait(rng.uniform(0, 2 * w.think_s))


def planted_stale_read(history: History, final_values: dict[str, str | None]) -> tuple[str, list[dict]] | None:
    """Two gets after every operation of `history` ended, in sequence: the
    first reads a key's final value, the second an older value of it. Any
    history with these appended is not linearizable; returns (key, events)
    or None when no key was written twice."""
    for key, final in final_values.items():
        older = [e["value"] for e in history.events
                 if e["kind"] == "call" and e["op"] == "put" and e["key"] == key and e["value"] != final]
        if not older:
            continue
        now = History.now()
        base = 10**12
        return key, [
            {"kind": "call", "id": base, "client": "planted-final", "op": "get", "key": key, "time": now},
            {"kind": "return", "id": base, "time": now + 1, "status": "ok", "value": final},
            {"kind": "call", "id": base + 1, "client": "planted-stale", "op": "get", "key": key, "time": now + 2},
            {"kind": "return", "id": base + 1, "time": now + 3, "status": "ok", "value": older[0]},
        ]
    return None
