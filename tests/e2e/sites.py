"""Multi-site harness: N `orbit serve` processes, each its own site, whose
peer traffic crosses delay proxies of ours, with helpers to partition, heal,
kill and restart a site.

Two modes (environment variable ORBIT_E2E_SITES_MODE, default `netns` when
running as root with a working `ip netns`, else `loopback`):

- `netns`: one network namespace per site, each joined by a veth pair to a
  bridge in the test's namespace (addresses 10.213.X.0/24 chosen free). The
  delay proxies listen on the bridge address; a site's peers are the proxies.
  Partition = the site's veth link down. The S3 and admin ports of each site
  listen on its namespace address, reachable from the test process.
- `loopback`: every site on 127.0.0.1, the same proxies; partition = the
  proxies to and from the site stop (connections cut, port closed).

In both modes a site's own peer listener is also reachable directly
(`Site.peer_direct_url`), for tests that talk to it with hand-made requests.

Usage (a test module imports the fixture):

    from sites import sites_factory  # noqa: F401

    def test_x(sites_factory):
        sites = sites_factory(["eu", "us"], delay_ms=25)
        sites["eu"].cli("site", "list")
        sites.partition("us"); ...; sites.heal("us")

Everything created (processes, namespaces, links, proxies) is removed when
the test ends, also after a failure; namespaces left by a killed test run
(named after its pid) are swept at the next start.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import pytest
import requests

from orbit_e2e import OrbitServer, free_port

MODE_ENV = "ORBIT_E2E_SITES_MODE"
PEER_PATH = "/peer/v1/envelope"
SCHEME = "ORBIT-HMAC-SHA256"


# ---------------------------------------------------------------- signing

def peer_authorization(site: str, secret: str, body: bytes, timestamp: int | None = None,
                       method: str = "POST", path: str = PEER_PATH) -> str:
    """The Authorization header a site sends with a peer request (the scheme
    of orbit_types::signing)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    to_sign = f"{method}\n{path}\n{ts}\n{hashlib.sha256(body).hexdigest()}"
    sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{SCHEME} Credential={site}, Timestamp={ts}, Signature={sig}"


# ---------------------------------------------------------------- delay proxy

class _Loop:
    """One asyncio loop in a daemon thread, shared by every proxy."""

    _instance: "_Loop | None" = None

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="delay-proxies", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "_Loop":
        if cls._instance is None:
            cls._instance = _Loop()
        return cls._instance

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class DelayProxy:
    """A TCP proxy that holds every chunk for `delay_s` before passing it on,
    in each direction, so a round trip through it takes at least twice that.
    Chunks are timestamped on arrival and released in order, so the delay
    does not throttle throughput. `stop()` closes the port and cuts every
    connection; `start()` opens the same port again."""

    def __init__(self, listen_host: str, target: tuple[str, int], delay_s: float, port: int = 0):
        self.listen_host = listen_host
        self.target = target
        self.delay_s = delay_s
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task] = set()
        self._loop = _Loop.get()

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def start(self) -> "DelayProxy":
        async def go():
            self._server = await asyncio.start_server(self._handle, self.listen_host, self.port,
                                                      reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]
        self._loop.run(go())
        return self

    def stop(self) -> None:
        async def go():
            if self._server is not None:
                self._server.close()
                self._server = None
            for t in list(self._conns):
                t.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
        self._loop.run(go())

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._conns.add(task)
        u_writer = None
        try:
            _nodelay(c_writer)
            u_reader, u_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), timeout=10)
            _nodelay(u_writer)
            await asyncio.gather(self._pipe(c_reader, u_writer), self._pipe(u_reader, c_writer))
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            for w in (c_writer, u_writer):
                if w is not None:
                    w.close()
            self._conns.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def receive():
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay_s, data))
                if not data:
                    return

        async def send():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        rx = asyncio.ensure_future(receive())
        try:
            await send()
        finally:
            rx.cancel()


# ---------------------------------------------------------------- network namespaces

def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {p.stderr.strip()}")
    return p


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"orbit-probe-{os.getpid()}"
    if _ip("netns", "add", name, check=False).returncode != 0:
        return False
    _ip("netns", "del", name, check=False)
    return True


def default_mode() -> str:
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode in ("netns", "loopback"):
        return mode
    if mode:
        raise pytest.UsageError(f"{MODE_ENV} must be `netns` or `loopback`, not `{mode}`")
    return "netns" if netns_available() else "loopback"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale() -> None:
    """Remove namespaces and bridges left by test processes that died."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"orbit-(\d+)-(\d+)-\d+\b", line)
        if m and not _pid_alive(int(m.group(1))):
            _ip("netns", "del", line.split()[0], check=False)
    for line in _ip("-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        m = re.match(r"\d+: (ob(\d+)b\d+)[:@]", line)
        if m and not _pid_alive(int(m.group(2))):
            _ip("link", "del", m.group(1), check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        try:
            used.append(ipaddress.ip_network(first, strict=False))
        except ValueError:
            pass
    start = os.getpid() % 200
    for i in range(250):
        net = ipaddress.ip_network(f"10.213.{(start + i) % 250 + 1}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.213.X.0/24 subnet for the sites bridge")


class _Fabric:
    """The bridge, one namespace and veth pair per site, and their cleanup."""

    _counter = 0

    def __init__(self, count: int):
        sweep_stale()
        _Fabric._counter += 1
        pid = os.getpid()
        self.tag = f"{pid}-{_Fabric._counter}"
        self.bridge = f"ob{pid}b{_Fabric._counter}"
        assert len(self.bridge) <= 15, self.bridge
        self.net = _free_subnet()
        hosts = list(self.net.hosts())
        self.gateway = str(hosts[0])
        self.addrs = [str(hosts[9 + i]) for i in range(count)]
        self.namespaces = [f"orbit-{self.tag}-{i}" for i in range(count)]
        self.host_links = [f"ob{pid}h{_Fabric._counter}x{i}"[:15] for i in range(count)]
        self._closed = False
        atexit.register(self.close)
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self):
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.net.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (ns, host, addr) in enumerate(zip(self.namespaces, self.host_links, self.addrs)):
            _ip("netns", "add", ns)
            inner = f"obn{i}"
            _ip("link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
            _ip("link", "set", host, "master", self.bridge)
            _ip("link", "set", host, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/{self.net.prefixlen}", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "route", "add", "default", "via", self.gateway)

    def link(self, i: int, up: bool) -> None:
        _ip("link", "set", self.host_links[i], "up" if up else "down")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ns in self.namespaces:
            _ip("netns", "del", ns, check=False)  # takes its veth pair with it
        for host in self.host_links:
            _ip("link", "del", host, check=False)
        _ip("link", "del", self.bridge, check=False)


# ---------------------------------------------------------------- sites

class Site:
    """One site: its server, addresses and the secrets it shares."""

    def __init__(self, name: str, index: int, server: OrbitServer, peer_host: str, peer_port: int):
        self.name = name
        self.index = index
        self.server = server
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.secrets: dict[str, str] = {}

    @property
    def peer_direct_url(self) -> str:
        """The site's own peer listener, bypassing the delay proxies."""
        return f"http://{self.peer_host}:{self.peer_port}"

    @property
    def s3_endpoint(self) -> str:
        return self.server.s3_endpoint

    @property
    def admin_url(self) -> str:
        return self.server.admin_url

    def cli(self, *args, **kw):
        return self.server.cli(*args, **kw)

    def sites(self) -> dict[str, dict]:
        """`orbit site list` at this site, by name."""
        return {s["name"]: s for s in self.cli("site", "list")}

    def metrics(self) -> str:
        return requests.get(f"{self.admin_url}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the Prometheus text (0 when absent)."""
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def s3(self, creds, **kw):
        return self.server.s3(creds, **kw)


class Sites:
    """N sites whose peer traffic goes through one delay proxy per direction."""

    def __init__(self, base_dir: Path, names: Iterable[str], *, mode: str | None = None,
                 delay_ms: float = 0.0, probe_interval_ms: int = 300, peer_timeout_ms: int = 1000,
                 extra_toml: str = "", extra_env: dict | None = None):
        """`extra_toml`: config text every site gets; `extra_env`: environment
        every site gets (e.g. one ORBIT_MASTER_KEY for all)."""
        self.names = list(names)
        assert len(set(self.names)) == len(self.names) >= 1
        self.mode = mode or default_mode()
        assert self.mode in ("netns", "loopback"), self.mode
        self.base_dir = Path(base_dir)
        self.delay_s = delay_ms / 1000.0
        self.fabric: _Fabric | None = None
        self.proxies: dict[tuple[str, str], DelayProxy] = {}
        self.sites: dict[str, Site] = {}
        self._started = False
        try:
            self._build(probe_interval_ms, peer_timeout_ms, extra_toml, dict(extra_env or {}))
        except Exception:
            self.close()
            raise

    def _build(self, probe_interval_ms: int, peer_timeout_ms: int, extra_toml: str, extra_env: dict) -> None:
        if self.mode == "netns":
            self.fabric = _Fabric(len(self.names))
            hosts = self.fabric.addrs
            proxy_host = self.fabric.gateway
        else:
            hosts = ["127.0.0.1"] * len(self.names)
            proxy_host = "127.0.0.1"
        peer_ports = [free_port() for _ in self.names]
        # One proxy per direction a -> b, in front of b's peer listener.
        for a in self.names:
            for bi, b in enumerate(self.names):
                if a != b:
                    self.proxies[(a, b)] = DelayProxy(proxy_host, (hosts[bi], peer_ports[bi]), self.delay_s).start()
        pair_secret = {}
        for i, a in enumerate(self.names):
            for b in self.names[i + 1:]:
                pair_secret[frozenset((a, b))] = secrets.token_hex(24)
        for i, name in enumerate(self.names):
            lines = [f'site = "{name}"', f'peer_addr = "{hosts[i]}:{peer_ports[i]}"',
                     f"peer_probe_interval_ms = {probe_interval_ms}", f"peer_timeout_ms = {peer_timeout_ms}"]
            env = dict(extra_env)
            for other in self.names:
                if other == name:
                    continue
                lines += [f"[peers.{other}]", f'url = "http://{self.proxies[(name, other)].address}"']
                env["ORBIT_PEER_SECRET_" + other.upper().replace("-", "_")] = pair_secret[frozenset((name, other))]
            toml = extra_toml + "\n" + "\n".join(lines) + "\n" if extra_toml else "\n".join(lines) + "\n"
            prefix = ["ip", "netns", "exec", self.fabric.namespaces[i]] if self.fabric else None
            server = OrbitServer(self.base_dir / name, config_toml=toml, extra_env=env, host=hosts[i],
                                 cmd_prefix=prefix)
            site = Site(name, i, server, hosts[i], peer_ports[i])
            site.secrets = {o: pair_secret[frozenset((name, o))] for o in self.names if o != name}
            self.sites[name] = site

    def start(self) -> "Sites":
        for s in self.sites.values():
            s.server.start()
        self._started = True
        return self

    def __getitem__(self, name: str) -> Site:
        return self.sites[name]

    def __iter__(self):
        return iter(self.sites.values())

    @property
    def round_trip_s(self) -> float:
        """The round trip the proxies add between two sites."""
        return 2 * self.delay_s

    # ---- faults
    def partition(self, name: str) -> None:
        """Cut `name` off from every other site (and, in netns mode, from the
        test process too: query the other sites meanwhile)."""
        if self.fabric:
            self.fabric.link(self.sites[name].index, up=False)
        else:
            for (a, b), p in self.proxies.items():
                if name in (a, b) and p.running:
                    p.stop()

    def heal(self, name: str) -> None:
        if self.fabric:
            self.fabric.link(self.sites[name].index, up=True)
        else:
            for (a, b), p in self.proxies.items():
                if name in (a, b) and not p.running:
                    p.start()

    def kill9(self, name: str) -> None:
        self.sites[name].server.kill9()

    def restart(self, name: str, kill: bool = False) -> None:
        self.sites[name].server.restart(kill=kill)

    # ---- waiting
    @staticmethod
    def wait_for(what: str, pred: Callable[[], object], timeout: float = 30.0, interval: float = 0.2):
        """Poll `pred` until it returns something truthy; fail naming `what`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def wait_reachable(self, at: str, peer: str, reachable: bool = True, timeout: float = 30.0) -> dict:
        def check():
            s = self.sites[at].sites().get(peer)
            return s if s is not None and s["reachable"] == reachable else None
        state = "reachable" if reachable else "unreachable"
        return self.wait_for(f"`{peer}` {state} from `{at}`", check, timeout)

    def wait_all_reachable(self, timeout: float = 30.0) -> None:
        for a in self.names:
            for b in self.names:
                if a != b:
                    self.wait_reachable(a, b, True, timeout)

    def close(self) -> None:
        for s in self.sites.values():
            s.server.close()
            s.server.kill9(missing_ok=True)
        for p in self.proxies.values():
            if p.running:
                p.stop()
        if self.fabric:
            self.fabric.close()

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.server.log_tail(lines)}" for s in self.sites.values())


@pytest.fixture
def sites_factory(tmp_path):
    """Make and start a `Sites`; everything is torn down after the test."""
    made: list[Sites] = []

    def make(names: Iterable[str], **kw) -> Sites:
        sites = Sites(tmp_path / f"sites{len(made)}", names, **kw)
        made.append(sites)
        return sites.start()

    yield make
    for s in made:
        s.close()
