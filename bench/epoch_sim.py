"""Training-epoch simulation for bench/epoch_sim.sh (run with the benchmark's
virtualenv python).

A consumer reads the shards of a dataset in order, in batches, and "computes"
for a fixed time per MiB after each batch (a GPU step: it sleeps, it does not
use the CPU). A reader thread fetches ahead of it into a bounded queue, as a
real data loader overlaps I/O with compute; the time the compute loop blocks
on that queue is the time the GPU would sit idle waiting for data. The report
gives, per run, the epoch time, the wait, and the GPU-idle fraction
(wait / epoch time).

The far backend is moto's S3 server behind a delay proxy of our own (this
kernel has no netem): every chunk forwarded in either direction is held for
the one-way delay, and each direction is capped by a token bucket shared by
all connections (a link). Runs:

  direct           boto3 to moto through the proxy
  orbit-cold       boto3 to Orbit right after a restart (RAM-only cache: empty),
                   Orbit's backend behind the proxy
  orbit-warm       the same again, the second epoch on the cache the first filled
                   (optional, --warm-run)
  orbit-prefetch   Orbit restarted again, a prefetch job over the dataset's
                   prefix (`orbit prefetch start ... --wait`), then the epoch

Subcommands:
  run     the whole benchmark (starts moto, the proxy and Orbit itself)
  proxy   the delay proxy alone (used by `run`; a process of its own so that
          it never shares an interpreter lock with the consumer)

Only 127.0.0.1 is ever used. Every process started is recorded in
WORK/pids ("pid tag" per line) so that the shell wrapper can stop it even
if this driver is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import hermetic_aws_env

MiB = 1024 * 1024
REGION = "us-east-1"
MOTO_KEY = "testing"
MOTO_SECRET = "testing"
FAR_BUCKET = "far-bucket"        # moto bucket that Orbit's `far` backend uses
DIRECT_BUCKET = "direct-bucket"  # moto bucket read directly in the `direct` run
ORBIT_BUCKET = "epoch-data"      # Orbit bucket placed on the `far` backend
PREFIX = "train/"


def log(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"epoch_sim: warning: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ===================================================================== proxy


class Link:
    """One direction of an emulated wide-area link: a bandwidth cap shared by
    every connection (FIFO reservations of transmission time)."""

    BURST_S = 0.002  # transmissions may start this much ahead of the schedule

    def __init__(self, bytes_per_s: float):
        self.rate = bytes_per_s
        self.free_at = 0.0
        self.bytes = 0

    async def transmit(self, n: int) -> None:
        self.bytes += n
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.free_at)
        self.free_at = start + n / self.rate
        wait = self.free_at - now - self.BURST_S
        if wait > 0:
            await asyncio.sleep(wait)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link,
                delay: float, read_size: int, max_queued: int) -> None:
    """Forward one direction: read, pay for the bytes on the link (which
    paces the reader), hold each piece for the one-way delay, write."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue(maxsize=max_queued)

    async def rx() -> None:
        while True:
            data = await reader.read(read_size)
            if not data:
                break
            await link.transmit(len(data))
            await q.put((loop.time() + delay, data))
        await q.put(None)

    async def tx() -> None:
        while True:
            item = await q.get()
            if item is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            due, data = item
            d = due - loop.time()
            if d > 0:
                await asyncio.sleep(d)
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.ensure_future(rx()), asyncio.ensure_future(tx())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()


async def _serve_proxy(args) -> None:
    delay = args.delay_ms / 1000.0
    rate = args.bandwidth_mibps * MiB
    up, down = Link(rate), Link(rate)  # client->backend, backend->client
    read_size = 256 * 1024
    # Bytes a direction may hold in flight beyond the sockets' own buffers:
    # about twice the bandwidth-delay product, at least 1 MiB.
    bdp = rate * delay if rate > 0 else 8 * MiB
    max_queued = max(4, int(2 * bdp / read_size) + 1)
    conns = 0

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        _nodelay(c_writer)
        if args.handshake:
            # A new TCP connection over the link costs a round trip (SYN,
            # SYN-ACK) before any byte can travel: the client's first bytes
            # wait in its socket meanwhile.
            await asyncio.sleep(2 * delay)
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", args.target_port)
        except OSError as e:
            print(f"proxy: cannot reach 127.0.0.1:{args.target_port}: {e}", flush=True)
            c_writer.close()
            return
        _nodelay(u_writer)
        tasks = [
            asyncio.ensure_future(_pump(c_reader, u_writer, up, delay, read_size, max_queued)),
            asyncio.ensure_future(_pump(u_reader, c_writer, down, delay, read_size, max_queued)),
        ]
        try:
            # Done when both directions finished, or as soon as one fails
            # (a reset): then the other is torn down too.
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None for t in done if not t.cancelled()):
                    break
        finally:
            for t in tasks:
                t.cancel()
            for w in (c_writer, u_writer):
                try:
                    w.close()
                except Exception:
                    pass
            for t in tasks:
                try:
                    await t
                except BaseException:
                    pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
    port = server.sockets[0].getsockname()[1]
    tmp = Path(str(args.ready_file) + ".tmp")
    tmp.write_text(str(port))
    tmp.rename(args.ready_file)
    print(f"proxy: 127.0.0.1:{port} -> 127.0.0.1:{args.target_port}, one-way delay "
          f"{args.delay_ms} ms each direction, cap {args.bandwidth_mibps} MiB/s per direction, "
          f"connection set-up {'one RTT' if args.handshake else 'free'}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def dump_stats() -> None:
        # Counters for the driver, written atomically on SIGUSR1.
        tmp = Path(str(args.stats_file) + ".tmp")
        tmp.write_text(json.dumps({"connections": conns, "bytes_up": up.bytes,
                                   "bytes_down": down.bytes, "t": time.time()}))
        tmp.rename(args.stats_file)

    if args.stats_file:
        loop.add_signal_handler(signal.SIGUSR1, dump_stats)

    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            print(f"proxy: {conns} connections so far; {up.bytes / MiB:.1f} MiB up, "
                  f"{down.bytes / MiB:.1f} MiB down", flush=True)

    rep = asyncio.ensure_future(report())
    async with server:
        await stop.wait()
    rep.cancel()
    print(f"proxy: stopping after {conns} connections; {up.bytes / MiB:.1f} MiB up, "
          f"{down.bytes / MiB:.1f} MiB down", flush=True)


def cmd_proxy(args) -> int:
    asyncio.run(_serve_proxy(args))
    return 0


# ===================================================================== processes


def clean_env(drop_prefixes=("ORBIT_", "AWS_")) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env




def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proc:
    """A child process with its log, recorded in the pid file."""

    def __init__(self, tag: str, cmd: list[str], log_path: Path, pidfile: Path, env: dict,
                 cwd: Path):
        self.tag = tag
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(cwd))
        with open(pidfile, "a") as f:
            f.write(f"{self.proc.pid} {tag}\n")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                warn(f"{self.tag} (pid {self.proc.pid}) did not stop in {grace:.0f}s; killing it")
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log_file.close()
        return self.proc.returncode

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.tag} exited (status {self.proc.returncode}); "
                             f"last lines of {self.log_path}:\n{tail(self.log_path)}")


def wait_for(pred, timeout: float, what: str, proc: Proc | None = None, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check()
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(interval)
    extra = f"; last lines of {proc.log_path}:\n{tail(proc.log_path)}" if proc else ""
    raise BenchError(f"{what} not ready within {timeout:.0f}s{extra}")


# ===================================================================== S3 clients


def s3_client(endpoint: str, key: str, secret: str, pool: int = 10, read_timeout: float = 60):
    import boto3
    from botocore.config import Config

    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"max_attempts": 3, "mode": "standard"},
                 connect_timeout=10, read_timeout=read_timeout, max_pool_connections=pool,
                 request_checksum_calculation="when_required",
                 response_checksum_validation="when_required")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


# ===================================================================== dataset


def shard_key(i: int) -> str:
    return f"{PREFIX}shard-{i:05d}.bin"


def shard_bytes(i: int, size: int) -> bytes:
    return random.Random(0x0E90C4 + i).randbytes(size)


def write_dataset(clients: list[tuple[object, str]], shards: int, size: int,
                  threads: int = 4) -> dict[str, int]:
    """Write every shard to each (client, bucket); returns {key: crc32}."""
    crcs: dict[str, int] = {}

    def one(i: int) -> None:
        data = shard_bytes(i, size)
        crcs[shard_key(i)] = zlib.crc32(data)
        for client, bucket in clients:
            client.put_object(Bucket=bucket, Key=shard_key(i), Body=data)

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(one, i) for i in range(shards)]:
            f.result()
    return crcs


# ===================================================================== consumer


@dataclass
class EpochResult:
    name: str
    epoch_s: float = 0.0
    wait_s: float = 0.0
    first_batch_s: float = 0.0
    bytes: int = 0
    batches: int = 0
    max_wait_s: float = 0.0
    error: str | None = None
    skipped: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def idle(self) -> float:
        return self.wait_s / self.epoch_s if self.epoch_s > 0 else 0.0


def run_epoch(name: str, client, bucket: str, keys: list[str], sizes: dict[str, int],
              crcs: dict[str, int], batch_bytes: int, compute_s_per_mib: float, depth: int,
              timeout: float) -> EpochResult:
    """One epoch: a reader thread streams each shard with one GET and cuts it
    into batches, at most `depth` batches queued ahead of the compute loop."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                pass
        return False

    def reader() -> None:
        try:
            for key in keys:
                resp = client.get_object(Bucket=bucket, Key=key)
                body = resp["Body"]
                got = 0
                last = False
                while not last:
                    parts, n = [], 0
                    while n < batch_bytes:
                        piece = body.read(batch_bytes - n)
                        if not piece:
                            last = True
                            break
                        parts.append(piece)
                        n += len(piece)
                    if n == 0:
                        break
                    got += n
                    if not put((key, b"".join(parts) if len(parts) > 1 else parts[0])):
                        body.close()
                        return
                body.close()
                if got != sizes[key]:
                    raise BenchError(f"{key}: read {got} bytes, expected {sizes[key]}")
            put(None)
        except BaseException as e:  # handed to the compute loop
            put(("error", e))

    res = EpochResult(name)
    crc: dict[str, int] = {}
    t = threading.Thread(target=reader, name=f"reader-{name}", daemon=True)
    start = time.perf_counter()
    deadline = start + timeout
    t.start()
    try:
        while True:
            w0 = time.perf_counter()
            try:
                item = q.get(timeout=max(0.1, deadline - w0))
            except queue.Empty:
                raise BenchError(f"epoch did not finish within {timeout:.0f}s "
                                 f"({res.bytes / MiB:.0f} MiB consumed)") from None
            w1 = time.perf_counter()
            waited = w1 - w0
            if item is None:
                break  # the wait for the end-of-data marker is no step's idle time
            if item[0] == "error":
                raise item[1]
            key, data = item
            res.wait_s += waited
            res.max_wait_s = max(res.max_wait_s, waited)
            if res.batches == 0:
                res.first_batch_s = w1 - start
            res.batches += 1
            res.bytes += len(data)
            # The "GPU step": a fixed time per MiB. The checksum we keep to
            # verify the bytes is done inside it, the rest is slept.
            step_end = w1 + compute_s_per_mib * len(data) / MiB
            crc[key] = zlib.crc32(data, crc.get(key, 0))
            del data
            rest = step_end - time.perf_counter()
            if rest > 0:
                time.sleep(rest)
        res.epoch_s = time.perf_counter() - start
        bad = [k for k in keys if crc.get(k) != crcs[k]]
        if bad:
            raise BenchError(f"{len(bad)} shards read back with wrong bytes (first: {bad[0]})")
        if res.bytes != sum(sizes[k] for k in keys):
            raise BenchError(f"read {res.bytes} bytes, expected {sum(sizes[k] for k in keys)}")
    except BaseException as e:
        res.error = f"{type(e).__name__}: {e}"
        stop.set()
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
    finally:
        stop.set()
        t.join(timeout=5)
    return res


# ===================================================================== orbit


def parse_metrics(text: str) -> dict[str, float]:
    """Sum of every sample of each metric (labels folded), plus
    'name{backend="far"}'-style entries for backend-labelled series."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name_labels, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + v
        if "{" in name_labels:
            labels = name_labels.split("{", 1)[1].rstrip("}")
            for lab in labels.split(","):
                if lab.startswith("outcome=") or lab.startswith("op="):
                    k = f"{name}[{lab}]"
                    out[k] = out.get(k, 0.0) + v
    return out


class Orbit:
    def __init__(self, binary: str, work: Path, pidfile: Path, access: str, secret: str,
                 proxy_port: int, ram_bytes: int, chunk_bytes: int):
        self.binary = binary
        self.work = work
        self.pidfile = pidfile
        self.access = access
        self.secret = secret
        self.proxy_port = proxy_port
        self.ram_bytes = ram_bytes
        self.chunk_bytes = chunk_bytes
        self.data_dir = work / "orbit-data"
        self.config = work / "orbit.toml"
        self.log_path = work / "orbit.log"
        self.proc: Proc | None = None
        self.s3_port = self.admin_port = 0
        self.starts = 0

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write_config(self) -> None:
        self.config.write_text(f"""\
data_dir = "{self.data_dir}"
s3_addr = "127.0.0.1:{self.s3_port}"
admin_addr = "127.0.0.1:{self.admin_port}"

[cache]
ram_bytes = {self.ram_bytes}
ssd_bytes = 0
chunk_size = {self.chunk_bytes}

[backends.far]
kind = "s3"
endpoint = "http://127.0.0.1:{self.proxy_port}"
bucket = "{FAR_BUCKET}"
region = "{REGION}"
allow_http = true
access_key_id = "{MOTO_KEY}"
secret_access_key = "{MOTO_SECRET}"
""")

    def env(self) -> dict:
        env = clean_env()
        env["ORBIT_ROOT_ACCESS_KEY"] = self.access
        env["ORBIT_ROOT_SECRET_KEY"] = self.secret
        env.setdefault("RUST_LOG", os.environ.get("EPOCH_ORBIT_LOG", "info"))
        env["NO_COLOR"] = "1"
        return env

    def start(self, timeout: float = 60.0) -> None:
        for attempt in range(3):
            self.s3_port, self.admin_port = free_ports(2)
            self.write_config()
            self.starts += 1
            with open(self.log_path, "ab") as f:
                f.write(f"\n===== epoch_sim: start #{self.starts} s3=127.0.0.1:{self.s3_port} "
                        f"admin=127.0.0.1:{self.admin_port} =====\n".encode())
            self.proc = Proc("orbit", [self.binary, "serve", "--config", str(self.config)],
                             self.log_path, self.pidfile, self.env(), self.work)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.alive():
                try:
                    if http_get(self.admin_url + "/health", 2)[0] == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            if self.proc.alive():
                break
            self.proc.stop()
            if "address" not in tail(self.log_path, 20).lower():
                break  # not a port clash: no point in retrying
        raise BenchError(f"orbit did not become healthy within {timeout:.0f}s; last lines of "
                         f"{self.log_path}:\n{tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None:
            rc = self.proc.stop(grace=30)
            if rc not in (0, None):
                warn(f"orbit exited with status {rc} on SIGTERM")
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> dict[str, float]:
        try:
            status, body = http_get(self.admin_url + "/metrics", 5)
        except OSError as e:
            warn(f"GET /metrics failed: {e}")
            return {}
        if status != 200:
            warn(f"GET /metrics answered {status}")
            return {}
        return parse_metrics(body.decode("utf-8", "replace"))

    def cli(self, *args: str, timeout: float = 60, stderr_path: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        env = clean_env()
        env["ORBIT_ROOT_ACCESS_KEY"] = self.access
        env["ORBIT_ROOT_SECRET_KEY"] = self.secret
        env["ORBIT_ADMIN_URL"] = self.admin_url
        env["NO_COLOR"] = "1"
        cmd = [self.binary, *args, "--admin-url", self.admin_url]
        if stderr_path is not None:
            with open(stderr_path, "ab") as err:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=env,
                                   timeout=timeout, cwd=str(self.work))
            p.stdout = p.stdout.decode("utf-8", "replace")
            p.stderr = tail(stderr_path, 5)
        else:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                               cwd=str(self.work))
        if check and p.returncode != 0:
            raise BenchError(f"`orbit {' '.join(args)}` failed (status {p.returncode}): "
                             f"{(p.stderr or '').strip()}")
        return p


def setup_orbit_bucket(orbit: Orbit) -> tuple[str, str, str]:
    """Create the Orbit bucket on the far backend; returns (tenant, key, secret)
    of the identity to read and write it with."""
    p = orbit.cli("bucket", "create", "--tenant", "_system", ORBIT_BUCKET, "--backend", "far",
                  check=False)
    if p.returncode == 0:
        log(f"orbit bucket {ORBIT_BUCKET} created in tenant _system on backend far")
        return "_system", orbit.access, orbit.secret
    log(f"creating a bucket in _system was refused ({p.stderr.strip()}); using a tenant of its own")
    tenant, user = "epoch-sim", "loader"
    orbit.cli("tenant", "create", tenant)
    orbit.cli("user", "create", "--tenant", tenant, user, "--role", "tenant-admin")
    out = orbit.cli("key", "create", "--tenant", tenant, "--user", user, "-o", "json").stdout
    k = json.loads(out)
    access = k.get("access_key_id") or k.get("access_key") or k.get("id")
    secret = k.get("secret_access_key") or k.get("secret_key") or k.get("secret")
    if not access or not secret:
        raise BenchError(f"cannot read the key from `orbit key create -o json`: {out!r}")
    orbit.cli("bucket", "create", "--tenant", tenant, ORBIT_BUCKET, "--backend", "far")
    log(f"orbit bucket {ORBIT_BUCKET} created in tenant {tenant} on backend far")
    return tenant, access, secret


def prefetch_available(orbit: Orbit) -> bool:
    env = clean_env()
    p = subprocess.run([orbit.binary, "prefetch", "--help"], capture_output=True, text=True,
                       env=env, timeout=30)
    return p.returncode == 0 and "start" in p.stdout


def describe_jobs(orbit: Orbit, tenant: str) -> str:
    """The last prefetch job of the tenant, in one line (`orbit prefetch list`)."""
    try:
        p = orbit.cli("prefetch", "list", "--tenant", tenant, "-o", "json", check=False, timeout=30)
    except Exception as e:
        return f"`orbit prefetch list` failed: {e}"
    if p.returncode != 0:
        return f"`orbit prefetch list` failed (status {p.returncode}): {p.stderr.strip()[:300]}"
    try:
        jobs = json.loads(p.stdout)
        if isinstance(jobs, dict):
            jobs = next((v for v in jobs.values() if isinstance(v, list)), [jobs])
        job = jobs[-1]
        fields = ["id", "state", "objects_done", "objects_total", "bytes_done", "bytes_total",
                  "error"]
        return ", ".join(f"{k}={job[k]}" for k in fields if k in job and job[k] is not None)
    except (ValueError, IndexError, KeyError, TypeError, StopIteration):
        return f"(unexpected `orbit prefetch list -o json` output) {p.stdout.strip()[:300]}"


# ===================================================================== report


def fmt_row(cols: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def print_table(results: list[EpochResult], compute_s: float) -> None:
    head = ["run", "epoch s", "wait s", "GPU-idle %", "MiB/s", "1st batch s", "max wait s",
            "link MiB", "link conns", "cache hit %"]
    rows = []
    for r in results:
        if r.skipped or r.error:
            rows.append([r.name] + ["-"] * (len(head) - 1))
            continue
        link = r.extra.get("link_mib")
        conns = r.extra.get("link_conns")
        hit = r.extra.get("hit_pct")
        rows.append([r.name, f"{r.epoch_s:.2f}", f"{r.wait_s:.2f}", f"{100 * r.idle:.1f}",
                     f"{r.bytes / MiB / r.epoch_s:.1f}", f"{r.first_batch_s:.3f}",
                     f"{r.max_wait_s:.3f}", "-" if link is None else f"{link:.0f}",
                     "-" if conns is None else f"{conns}",
                     "-" if hit is None else f"{hit:.0f}"])
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
    log(fmt_row(head, widths))
    log(fmt_row(["-" * w for w in widths], widths))
    for row in rows:
        log(fmt_row(row, widths))
    for r in results:
        if r.skipped:
            log(f"  {r.name}: skipped: {r.skipped}")
        if r.error:
            log(f"  {r.name}: FAILED: {r.error}")
    log(f"  (compute alone takes {compute_s:.2f} s per epoch: the floor of 'epoch s'; "
        f"'link MiB', 'link conns': bytes toward the reader and connections across the "
        f"emulated link during the epoch; 'cache hit %': Orbit's chunk hits / (hits + misses))")


# ===================================================================== run


def cmd_run(args) -> int:
    hermetic_aws_env()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    pidfile = work / "pids"
    shard_size = int(round(args.shard_mib * MiB))
    batch_bytes = int(args.batch_kib * 1024)
    if args.shards < 1 or shard_size < 1 or batch_bytes < 1:
        raise BenchError("shards, shard size and batch size must be positive")
    if args.depth < 1:
        raise BenchError("the queue depth must be at least 1")
    dataset = args.shards * shard_size
    compute_s_per_mib = args.compute_ms_per_mib / 1000.0
    compute_s = compute_s_per_mib * dataset / MiB
    one_way_ms = args.rtt_ms / 2.0
    log("==== parameters ====")
    log(f"link to the far backend: {args.rtt_ms:g} ms RTT ({one_way_ms:g} ms each way, delay proxy), "
        + (f"bandwidth cap {args.bandwidth_mibps:g} MiB/s per direction (shared by all connections)"
           if args.bandwidth_mibps > 0 else "no bandwidth cap")
        + ("; a new connection costs one RTT" if args.handshake else
           "; connection set-up not delayed (moto closes every connection after one response)"))
    log(f"dataset: {args.shards} shards x {shard_size / MiB:g} MiB = {dataset / MiB:g} MiB "
        f"under {PREFIX!r}")
    log(f"consumer: batches of {batch_bytes / 1024:g} KiB, compute {args.compute_ms_per_mib:g} ms "
        f"per MiB ({1000 / args.compute_ms_per_mib if args.compute_ms_per_mib else float('inf'):.0f} "
        f"MiB/s), reader thread up to {args.depth} batches ahead, one streaming GET per shard")
    log(f"orbit: RAM-only chunk cache {args.cache_ram_bytes / MiB:g} MiB, chunks of "
        f"{args.chunk_bytes / MiB:g} MiB; restarted (cache emptied) before the cold and the "
        f"prefetch runs")
    log(f"machine: {os.cpu_count()} CPUs shared by moto, the proxy, Orbit and the consumer")
    if compute_s < 2:
        warn(f"an epoch computes for only {compute_s:.2f}s: the first request's latency weighs "
             f"heavily in the GPU-idle fraction (use more or larger shards for a real figure)")
    if dataset > 0.75 * args.cache_ram_bytes:
        warn(f"the dataset ({dataset / MiB:.0f} MiB) is more than 3/4 of Orbit's RAM cache "
             f"({args.cache_ram_bytes / MiB:.0f} MiB): prefetched chunks may be evicted")

    procs: list[Proc] = []
    orbit: Orbit | None = None
    results: list[EpochResult] = []
    exit_rc = 0
    try:
        # ---------------------------------------------------------- moto
        log("\n==== servers ====")
        py = sys.executable
        moto_port = free_ports(1)[0]
        moto = Proc("moto", [py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                    work / "moto.log", pidfile, dict(clean_env(), PYTHONUNBUFFERED="1"), work)
        procs.append(moto)
        moto_url = f"http://127.0.0.1:{moto_port}"
        wait_for(lambda: http_get(moto_url + "/", 2)[0] in (200, 403), 60, "moto", moto)
        log(f"moto: pid {moto.proc.pid} on {moto_url}")
        moto_s3 = s3_client(moto_url, MOTO_KEY, MOTO_SECRET, pool=8)
        for b in (FAR_BUCKET, DIRECT_BUCKET):
            moto_s3.create_bucket(Bucket=b)

        # ---------------------------------------------------------- proxy
        ready = work / "proxy.port"
        stats_file = work / "proxy.stats"
        proxy = Proc("proxy", [py, str(Path(__file__).resolve()), "proxy",
                               "--target-port", str(moto_port), "--delay-ms", str(one_way_ms),
                               "--bandwidth-mibps", str(args.bandwidth_mibps),
                               "--ready-file", str(ready), "--stats-file", str(stats_file),
                               "--handshake", str(args.handshake)],
                     work / "proxy.log", pidfile, dict(clean_env(), PYTHONUNBUFFERED="1"), work)
        procs.append(proxy)
        proxy_port = int(wait_for(lambda: ready.exists() and ready.read_text().strip(), 30,
                                  "the delay proxy", proxy))
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        log(f"delay proxy: pid {proxy.proc.pid} on {proxy_url} -> moto")

        def link_stats() -> dict:
            """The proxy's counters (connections, bytes each way) right now."""
            stats_file.unlink(missing_ok=True)
            os.kill(proxy.proc.pid, signal.SIGUSR1)
            text = wait_for(lambda: stats_file.exists() and stats_file.read_text(), 10,
                            "the proxy's counters", proxy, interval=0.01)
            return json.loads(text)

        # ---------------------------------------------------------- orbit
        orbit = Orbit(args.orbit_bin, work, pidfile, args.root_access_key, args.root_secret_key,
                      proxy_port, args.cache_ram_bytes, args.chunk_bytes)
        orbit.start()
        log(f"orbit: pid {orbit.proc.proc.pid}, S3 on {orbit.s3_url}, admin on {orbit.admin_url}, "
            f"config {orbit.config}")
        tenant, o_access, o_secret = setup_orbit_bucket(orbit)

        # ---------------------------------------------------------- dataset
        log("\n==== dataset ====")
        t0 = time.perf_counter()
        orbit_s3 = s3_client(orbit.s3_url, o_access, o_secret, pool=8, read_timeout=120)
        crcs = write_dataset([(moto_s3, DIRECT_BUCKET), (orbit_s3, ORBIT_BUCKET)],
                             args.shards, shard_size)
        log(f"wrote {args.shards} shards twice (moto directly; Orbit, which stores them on the far "
            f"backend through the proxy) in {time.perf_counter() - t0:.1f}s")
        keys = [shard_key(i) for i in range(args.shards)]
        sizes = {k: shard_size for k in keys}
        far_objs = sum(len(p.get("Contents", [])) for p in
                       moto_s3.get_paginator("list_objects_v2").paginate(Bucket=FAR_BUCKET))
        log(f"far backend bucket {FAR_BUCKET!r} now holds {far_objs} objects (Orbit blobs)")

        # ---------------------------------------------------------- link check
        log("\n==== link check ====")
        proxied = s3_client(proxy_url, MOTO_KEY, MOTO_SECRET, pool=4)
        lat_direct, lat_proxy = [], []
        for c, acc in ((moto_s3, lat_direct), (proxied, lat_proxy)):
            c.head_bucket(Bucket=DIRECT_BUCKET)  # connection set up outside the timing
            for _ in range(5):
                s = time.perf_counter()
                c.head_bucket(Bucket=DIRECT_BUCKET)
                acc.append(time.perf_counter() - s)
        s = time.perf_counter()
        n = len(proxied.get_object(Bucket=DIRECT_BUCKET, Key=keys[0])["Body"].read())
        g = time.perf_counter() - s
        s = time.perf_counter()
        moto_s3.get_object(Bucket=DIRECT_BUCKET, Key=keys[0])["Body"].read()
        g0 = time.perf_counter() - s
        log(f"HEAD bucket, median of 5: {1000 * statistics.median(lat_direct):.1f} ms straight to "
            f"moto, {1000 * statistics.median(lat_proxy):.1f} ms through the proxy")
        log(f"GET of one {n / MiB:g} MiB shard: {g:.3f}s through the proxy "
            f"({n / MiB / g:.0f} MiB/s), {g0:.3f}s straight to moto ({n / MiB / g0:.0f} MiB/s)")

        def epoch(name: str, client, bucket: str) -> EpochResult:
            log(f"-- {name}")
            m0 = orbit.metrics() if name.startswith("orbit") else None
            l0 = link_stats()
            r = run_epoch(name, client, bucket, keys, sizes, crcs, batch_bytes,
                          compute_s_per_mib, args.depth, args.epoch_timeout)
            l1 = link_stats()
            r.extra["link_mib"] = (l1["bytes_down"] - l0["bytes_down"]) / MiB
            r.extra["link_conns"] = l1["connections"] - l0["connections"]
            if m0 is not None:
                m1 = orbit.metrics()
                d = {k: m1.get(k, 0.0) - m0.get(k, 0.0) for k in m1}
                hits = d.get("orbit_cache_hits_total", 0.0)
                misses = d.get("orbit_cache_misses_total", 0.0)
                r.extra["far_mib"] = d.get("orbit_backend_bytes_requested_total", 0.0) / MiB
                r.extra["hit_pct"] = 100 * hits / (hits + misses) if hits + misses else None
                r.extra["hits"], r.extra["misses"] = hits, misses
                r.extra["backend_gets"] = d.get("orbit_backend_requests_total", 0.0)
                errs = sum(v for k, v in d.items() if k.startswith("orbit_backend_requests_total[")
                           and "outcome=" in k and "ok" not in k and "success" not in k)
                if errs:
                    r.extra["backend_errors"] = errs
            if r.error:
                log(f"   FAILED: {r.error}")
            else:
                line = (f"   epoch {r.epoch_s:.2f}s, waited {r.wait_s:.2f}s "
                        f"({100 * r.idle:.1f}% GPU idle), {r.bytes / MiB / r.epoch_s:.0f} MiB/s; "
                        f"{r.extra['link_mib']:.0f} MiB over the link in "
                        f"{r.extra['link_conns']} connections")
                if "hits" in r.extra:
                    line += (f"; Orbit: {r.extra['hits']:.0f} chunk hits, {r.extra['misses']:.0f} "
                             f"misses, {r.extra['far_mib']:.0f} MiB requested from the backend")
                    if r.extra.get("backend_errors"):
                        line += f", {r.extra['backend_errors']:.0f} failed backend requests"
                log(line)
            results.append(r)
            return r

        # ---------------------------------------------------------- epochs
        log("\n==== epochs ====")
        # Writes may have filled the cache (write-through): start cold.
        orbit.restart()
        orbit_s3 = s3_client(orbit.s3_url, o_access, o_secret, pool=4, read_timeout=120)
        log(f"orbit restarted (empty cache): S3 on {orbit.s3_url}")

        direct = s3_client(proxy_url, MOTO_KEY, MOTO_SECRET, pool=4, read_timeout=120)
        epoch("direct", direct, DIRECT_BUCKET)
        epoch("orbit-cold", orbit_s3, ORBIT_BUCKET)
        if args.warm_run:
            epoch("orbit-warm (2nd epoch)", orbit_s3, ORBIT_BUCKET)

        orbit.restart()
        orbit_s3 = s3_client(orbit.s3_url, o_access, o_secret, pool=4, read_timeout=120)
        log(f"orbit restarted (empty cache): S3 on {orbit.s3_url}")
        name = "orbit-prefetch"
        if not prefetch_available(orbit):
            log(f"-- {name}\n   prefetch unavailable (`orbit prefetch --help` fails in this "
                f"build): skipped")
            results.append(EpochResult(name, skipped="prefetch unavailable in this build"))
        else:
            log(f"-- prefetch job: orbit prefetch start --tenant {tenant} --bucket {ORBIT_BUCKET} "
                f"--prefix {PREFIX} --wait")
            m0 = orbit.metrics()
            l0 = link_stats()
            s = time.perf_counter()
            perr = work / "prefetch.stderr"
            try:
                p = orbit.cli("prefetch", "start", "--tenant", tenant, "--bucket", ORBIT_BUCKET,
                              "--prefix", PREFIX, "--wait", timeout=args.prefetch_timeout,
                              stderr_path=perr, check=False)
                prc, pout = p.returncode, p.stdout
            except subprocess.TimeoutExpired:
                prc, pout = None, ""
            took = time.perf_counter() - s
            m1 = orbit.metrics()
            l1 = link_stats()
            far = (l1["bytes_down"] - l0["bytes_down"]) / MiB
            fetched = (m1.get("orbit_backend_bytes_requested_total", 0.0)
                       - m0.get("orbit_backend_bytes_requested_total", 0.0)) / MiB
            last = tail(perr, 200).replace("\r", "\n").strip().splitlines()
            if prc == 0:
                log(f"   prefetch done in {took:.1f}s: {far:.0f} MiB over the link "
                    f"({far / took if took else 0:.0f} MiB/s) in {l1['connections'] - l0['connections']} "
                    f"connections, {fetched:.0f} MiB requested by Orbit from the backend"
                    + (f"; last progress line: {last[-1].strip()}" if last else ""))
                if pout.strip():
                    log(f"   stdout: {pout.strip()[:300]}")
                log("   job: " + describe_jobs(orbit, tenant))
                r = epoch(name, orbit_s3, ORBIT_BUCKET)
                r.extra["prefetch_s"] = took
            else:
                why = ("timed out after %.0fs" % args.prefetch_timeout if prc is None
                       else f"exited with status {prc}")
                log(f"   prefetch {why}; stderr tail:\n" + "\n".join(last[-5:]))
                results.append(EpochResult(name, error=f"prefetch job {why}"))
                log("   job: " + describe_jobs(orbit, tenant))

        for pr in procs:
            pr.check()
        orbit.proc.check()
    finally:
        # ---------------------------------------------------------- report
        if results:
            log("\n==== results ====")
            log(f"RTT {args.rtt_ms:g} ms, bandwidth cap {args.bandwidth_mibps:g} MiB/s, "
                f"{args.shards} shards x {shard_size / MiB:g} MiB, compute "
                f"{args.compute_ms_per_mib:g} ms/MiB, batch {batch_bytes / 1024:g} KiB, "
                f"queue depth {args.depth}")
            print_table(results, compute_s)
            target = next((r for r in results if r.name == "orbit-prefetch"), None)
            if target is not None and not target.skipped and not target.error:
                ok = 100 * target.idle < args.target_pct
                log(f"target: GPU idle after prefetch < {args.target_pct:g}%: "
                    f"{100 * target.idle:.1f}% -> {'met' if ok else 'MISSED'}")
                if not ok and args.enforce:
                    exit_rc = 3
                if target.extra.get("misses"):
                    log(f"note: {target.extra['misses']:.0f} chunk reads missed Orbit's cache after "
                        f"the prefetch job finished: chunks were evicted (or never kept) although "
                        f"the dataset is {dataset / MiB:.0f} MiB and the cache "
                        f"{args.cache_ram_bytes / MiB:.0f} MiB")
            elif target is not None and target.skipped:
                log(f"target: GPU idle after prefetch < {args.target_pct:g}%: not measured "
                    f"({target.skipped})")
            if any(r.error for r in results):
                exit_rc = 1
            (work / "results.json").write_text(json.dumps(
                [dict(r.__dict__, idle=r.idle) for r in results], indent=2))
        if orbit is not None:
            orbit.stop()
        for pr in reversed(procs):
            pr.stop(grace=10)
    return exit_rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("proxy", help="the delay proxy alone")
    p.add_argument("--target-port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay per direction")
    p.add_argument("--bandwidth-mibps", type=float, default=100.0, help="cap per direction (0: none)")
    p.add_argument("--ready-file", type=Path, required=True, help="gets the listening port")
    p.add_argument("--stats-file", type=Path, help="written with counters on SIGUSR1")
    p.add_argument("--handshake", type=int, default=1,
                   help="1: a new connection waits one RTT before its bytes travel")

    r = sub.add_parser("run", help="the whole benchmark")
    r.add_argument("--orbit-bin", required=True)
    r.add_argument("--work", required=True, help="temporary directory (logs, data dir, pid file)")
    r.add_argument("--shards", type=int, default=48)
    r.add_argument("--shard-mib", type=float, default=8)
    r.add_argument("--batch-kib", type=float, default=1024)
    r.add_argument("--compute-ms-per-mib", type=float, default=10)
    r.add_argument("--depth", type=int, default=2, help="batches the reader may queue ahead")
    r.add_argument("--rtt-ms", type=float, default=50)
    r.add_argument("--bandwidth-mibps", type=float, default=100)
    r.add_argument("--handshake", type=int, default=0,
                   help="1: the proxy charges a new connection one RTT (moto closes every "
                        "connection after one response, so this charges every request)")
    r.add_argument("--cache-ram-bytes", type=int, default=512 * MiB)
    r.add_argument("--chunk-bytes", type=int, default=4 * MiB)
    r.add_argument("--warm-run", type=int, default=1, help="1: also run a second Orbit epoch")
    r.add_argument("--epoch-timeout", type=float, default=120)
    r.add_argument("--prefetch-timeout", type=float, default=120)
    r.add_argument("--target-pct", type=float, default=5.0)
    r.add_argument("--enforce", type=int, default=0)
    r.add_argument("--root-access-key", default="ORBITBENCHEPOCHSIM01")
    r.add_argument("--root-secret-key", default="orbit-bench-epoch-sim-secret-0123456789")
    args = ap.parse_args()

    if args.cmd == "proxy":
        return cmd_proxy(args)

    # SIGTERM (the wrapper's trap, a timeout) unwinds through the finally
    # blocks that stop the servers.
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return cmd_run(args)
    except BenchError as e:
        print(f"epoch_sim: error: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
