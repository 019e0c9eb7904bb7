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

Faults on the wire, netns mode only (they raise `FaultUnsupported` on
loopback; `sites.require_netns(what)` skips a test there):

- `cap_bandwidth(name, mbit, direction="both")`: a tc token bucket (tbf) on
  the site's veth link, for what enters it, leaves it, or both (this kernel
  has tbf but no netem).
- `drop_packets(name, to=None, fraction=1.0)`: nftables rules in the
  namespaces that drop that fraction of the packets between the site and
  the peers named (all when None), both ways; the test process still
  reaches every site. `drop_counts(name)` reads how many were seen/dropped.
- `clear_faults(name=None)`: removes a site's caps and drop rules.
- `partition(name)`/`heal(name)`: the link down/up, the test cut off too.

Configuration: `extra_toml` (every site), `site_toml={name: text}`,
`directory_site="NAME"` (written into every other site's config) and
`leases={"read_lease_ms": 2000, ...}` (the `[leases]` table); the pieces may
hold top-level keys and tables, which are put in a valid order.

`client_proxy(name, delay_ms)` puts a delay proxy in front of a site's S3
port, for a client that is itself far away.

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
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import tomllib
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


def _run(cmd: list[str], check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stderr.strip()}")
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

    def inner_link(self, i: int) -> str:
        return f"obn{i}"

    def shape(self, i: int, mbit: float | None, direction: str) -> None:
        """A token bucket (tc tbf) of `mbit` on the site's link, or none.
        A qdisc shapes what leaves its device: the host end carries what
        enters the site, the namespace end what leaves it."""
        devices = []
        if direction in ("in", "both"):
            devices.append((None, self.host_links[i]))
        if direction in ("out", "both"):
            devices.append((self.namespaces[i], self.inner_link(i)))
        for ns, dev in devices:
            prefix = ["ip", "netns", "exec", ns] if ns else []
            _run([*prefix, "tc", "qdisc", "del", "dev", dev, "root"], check=False)
            if mbit is None:
                continue
            rate_bytes = mbit * 1_000_000 / 8
            # Burst: 10 ms of the rate, and never under a few full-size
            # frames; the queue holds 200 ms before tbf drops (TCP then backs off).
            burst = max(16 * 1024, int(rate_bytes / 100))
            _run([*prefix, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{int(mbit * 1000)}kbit",
                  "burst", str(burst), "latency", "200ms"])

    def qdisc_sent_bytes(self, i: int) -> dict[str, int]:
        """Bytes each end of the site's link sent through a tbf qdisc."""
        out = {}
        for label, prefix, dev in (("in", [], self.host_links[i]),
                                   ("out", ["ip", "netns", "exec", self.namespaces[i]], self.inner_link(i))):
            text = _run([*prefix, "tc", "-s", "qdisc", "show", "dev", dev]).stdout
            m = re.search(r"qdisc tbf .*?Sent (\d+) bytes", text, re.S)
            out[label] = int(m.group(1)) if m else 0
        return out

    def set_filter(self, i: int, ruleset: str) -> None:
        """Replace the site namespace's nftables table `orbit_faults` with
        `ruleset` (the chains inside `table inet orbit_faults { ... }`), or
        remove it when empty. One `nft -f` transaction, so it is atomic."""
        ns = self.namespaces[i]
        script = "table inet orbit_faults {}\ndelete table inet orbit_faults\n"
        if ruleset:
            script += f"table inet orbit_faults {{\n{ruleset}}}\n"
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)

    def filter_counters(self, i: int) -> dict[str, int]:
        """Packets counted by the named counters of the site's `orbit_faults` table."""
        p = _run(["ip", "netns", "exec", self.namespaces[i], "nft", "-j", "list", "counters",
                  "table", "inet", "orbit_faults"], check=False)
        if p.returncode != 0:
            return {}
        counters = {}
        for item in json.loads(p.stdout).get("nftables", []):
            c = item.get("counter")
            if c:
                counters[c["name"]] = c["packets"]
        return counters

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ns in self.namespaces:
            _ip("netns", "del", ns, check=False)  # takes its veth pair with it
        for host in self.host_links:
            _ip("link", "del", host, check=False)
        _ip("link", "del", self.bridge, check=False)


# ---------------------------------------------------------------- configuration

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*[A-Za-z0-9_.\"' -]+\s*\]\]?\s*(#.*)?$")


def toml_value(v: object) -> str:
    """A TOML scalar for a Python bool, int, float or str."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML scalar for {v!r}")


def split_toml(text: str) -> tuple[str, str]:
    """(top-level keys, tables) of a TOML text: everything before its first
    table header, and the rest."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _TABLE_HEADER.match(line):
            return "\n".join(lines[:i]) + "\n", "\n".join(lines[i:]) + "\n"
    return text + "\n", ""


def compose_toml(own_top: str, *texts: str) -> str:
    """One config from pieces that each may hold top-level keys and tables:
    every piece's top-level keys first, then every piece's tables. Fails
    here, naming the problem, when the result does not parse."""
    tops, tables = [own_top], []
    for t in texts:
        if t.strip():
            top, tab = split_toml(t)
            tops.append(top)
            tables.append(tab)
    text = "".join(tops) + "".join(tables)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"the composed site config is not valid TOML ({e}):\n{text}") from None
    return text


class FaultUnsupported(RuntimeError):
    """A fault this mode cannot inject (caps and drops need namespaces)."""


def _nft_id(name: str) -> str:
    """A site name as part of an nftables identifier."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


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
    """N sites whose peer traffic goes through one delay proxy per direction.

    Configuration beyond the harness's own (site name, peer address, probe
    timing, peers): `extra_toml` for every site, `site_toml[name]` for one,
    `directory_site` (set on every other site; the directory site keeps the
    default, itself) and `leases` (the `[leases]` table, values as Python
    scalars). Each text may hold top-level keys and tables: top-level keys
    are placed before the harness's tables, tables after, and the result is
    checked to parse before a site starts. `extra_env`: environment every
    site gets; with `directory_site` it includes one ORBIT_MASTER_KEY for
    all sites unless given (mirrored secrets stay sealed with it)."""

    def __init__(self, base_dir: Path, names: Iterable[str], *, mode: str | None = None,
                 delay_ms: float = 0.0, probe_interval_ms: int = 300, peer_timeout_ms: int = 1000,
                 extra_toml: str = "", site_toml: dict[str, str] | None = None,
                 directory_site: str | None = None, leases: dict[str, object] | None = None,
                 extra_env: dict[str, str] | None = None):
        self.names = list(names)
        assert len(set(self.names)) == len(self.names) >= 1
        self.mode = mode or default_mode()
        assert self.mode in ("netns", "loopback"), self.mode
        assert directory_site is None or directory_site in self.names, directory_site
        assert not set(site_toml or {}) - set(self.names), site_toml
        self.base_dir = Path(base_dir)
        self.delay_s = delay_ms / 1000.0
        self.directory_site = directory_site
        self.fabric: _Fabric | None = None
        self.proxies: dict[tuple[str, str], DelayProxy] = {}
        self.sites: dict[str, Site] = {}
        self._started = False
        # Faults in force, re-applied whole on every change.
        self._caps: dict[str, tuple[float, str]] = {}
        self._drops: dict[frozenset, float] = {}
        self._client_proxies: list[DelayProxy] = []
        self.extra_env = dict(extra_env or {})
        if directory_site is not None and "ORBIT_MASTER_KEY" not in self.extra_env:
            # Mirrored secrets are sealed with the master key: one deployment, one key.
            self.extra_env["ORBIT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        try:
            self._build(probe_interval_ms, peer_timeout_ms, extra_toml, site_toml or {}, leases)
        except Exception:
            self.close()
            raise

    def _build(self, probe_interval_ms: int, peer_timeout_ms: int, extra_toml: str,
               site_toml: dict[str, str], leases: dict[str, object] | None) -> None:
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
        leases_toml = ""
        if leases:
            leases_toml = "[leases]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in leases.items())
        for i, name in enumerate(self.names):
            top = [f'site = "{name}"', f'peer_addr = "{hosts[i]}:{peer_ports[i]}"',
                   f"peer_probe_interval_ms = {probe_interval_ms}", f"peer_timeout_ms = {peer_timeout_ms}"]
            if self.directory_site is not None and self.directory_site != name:
                top.append(f"directory_site = {toml_value(self.directory_site)}")
            tables = []
            env = dict(self.extra_env)
            for other in self.names:
                if other == name:
                    continue
                tables += [f"[peers.{other}]", f'url = "http://{self.proxies[(name, other)].address}"']
                env["ORBIT_PEER_SECRET_" + other.upper().replace("-", "_")] = pair_secret[frozenset((name, other))]
            toml = compose_toml("\n".join(top) + "\n", extra_toml, site_toml.get(name, ""),
                                "\n".join(tables) + "\n", leases_toml)
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

    # ---- faults on the wire (netns mode)
    def _require_fabric(self, what: str) -> _Fabric:
        if self.fabric is None:
            raise FaultUnsupported(f"{what} needs the netns mode (this run is `{self.mode}`)")
        return self.fabric

    def require_netns(self, what: str) -> None:
        """Skip the calling test unless the sites run in network namespaces."""
        if self.fabric is None:
            pytest.skip(f"{what} needs the netns mode ({MODE_ENV}=netns, as root); this run is `{self.mode}`")

    def cap_bandwidth(self, name: str, mbit: float, direction: str = "both") -> None:
        """Cap the site's link at `mbit` megabits/s with a tc token bucket
        (`tbf`): `in` (what enters the site), `out` (what leaves it) or
        `both`. Everything on that link is capped: peer traffic and the
        test's own requests to the site alike."""
        assert mbit > 0 and direction in ("in", "out", "both"), (mbit, direction)
        fabric = self._require_fabric("a bandwidth cap")
        fabric.shape(self.sites[name].index, None, "both")
        fabric.shape(self.sites[name].index, mbit, direction)
        self._caps[name] = (mbit, direction)

    def shaped_bytes(self, name: str) -> dict[str, int]:
        """Bytes that went through the site's caps so far, `in` and `out`."""
        return self._require_fabric("a bandwidth cap").qdisc_sent_bytes(self.sites[name].index)

    def drop_packets(self, name: str, to: str | Iterable[str] | None = None, fraction: float = 1.0) -> None:
        """Drop `fraction` of the packets (at random, each packet on its own)
        between site `name` and the peers `to` (one name, several, or every
        other site when None), both directions, with nftables rules in the
        two sites' namespaces. Only site-to-site traffic is touched: the test
        process still reaches every site's S3 and admin ports, unlike
        `partition`. Calling it again for a pair replaces its fraction."""
        assert 0.0 < fraction <= 1.0, fraction
        fabric = self._require_fabric("dropping packets")
        peers = [p for p in self.names if p != name] if to is None else [to] if isinstance(to, str) else list(to)
        for peer in peers:
            assert peer in self.sites and peer != name, peer
            self._drops[frozenset((name, peer))] = fraction
        self._apply_filters(fabric, {name, *peers})

    def drop_counts(self, name: str) -> dict[str, dict[str, int]]:
        """Per peer of `name` under a drop rule: packets of their traffic
        that left or reached `name`'s namespace (`seen`) and how many of those
        were dropped there (`dropped`). Counted since the rules last changed."""
        counters = self._require_fabric("dropping packets").filter_counters(self.sites[name].index)
        out = {}
        for pair in self._drops:
            if name in pair:
                (peer,) = pair - {name}
                out[peer] = {"seen": counters.get(f"seen_{_nft_id(peer)}", 0),
                             "dropped": counters.get(f"dropped_{_nft_id(peer)}", 0)}
        return out

    def clear_faults(self, name: str | None = None) -> None:
        """Remove the bandwidth caps and drop rules of site `name` (every
        rule between it and a peer), or of every site when None."""
        if self.fabric is None:
            return
        names = set(self.names) if name is None else {name}
        touched = set()
        for n in names:
            if self._caps.pop(n, None) is not None:
                self.fabric.shape(self.sites[n].index, None, "both")
        for pair in [p for p in self._drops if p & names]:
            del self._drops[pair]
            touched |= pair
        if touched:
            self._apply_filters(self.fabric, touched)

    def _apply_filters(self, fabric: _Fabric, names: Iterable[str]) -> None:
        """Render each named site's drop rules from `_drops`. Site A's traffic
        to peer B travels A -> proxy (A, B) on the bridge -> B, and B's to A
        over proxy (B, A): so in A's namespace the rules match A's packets to
        and from the port of proxy (A, B), and in B's those of proxy (B, A);
        together they cover every packet of both connections."""
        for name in names:
            site = self.sites[name]
            out_rules, in_rules, counters = [], [], []
            for pair, fraction in sorted(self._drops.items(), key=lambda kv: sorted(kv[0])):
                if name not in pair:
                    continue
                (peer,) = pair - {name}
                port = self.proxies[(name, peer)].port
                seen, dropped = f"seen_{_nft_id(peer)}", f"dropped_{_nft_id(peer)}"
                counters += [f"  counter {seen} {{}}\n", f"  counter {dropped} {{}}\n"]
                chance = "" if fraction >= 1.0 else f"numgen random mod 1000000 < {int(round(fraction * 1e6))} "
                match_out = f"ip daddr {fabric.gateway} tcp dport {port}"
                match_in = f"ip saddr {fabric.gateway} tcp sport {port}"
                for rules, match in ((out_rules, match_out), (in_rules, match_in)):
                    rules.append(f"    {match} counter name {seen}\n")
                    rules.append(f"    {match} {chance}counter name {dropped} drop\n")
            ruleset = ""
            if out_rules:
                ruleset = "".join(counters)
                ruleset += "  chain output {\n    type filter hook output priority 0; policy accept;\n"
                ruleset += "".join(out_rules) + "  }\n"
                ruleset += "  chain input {\n    type filter hook input priority 0; policy accept;\n"
                ruleset += "".join(in_rules) + "  }\n"
            fabric.set_filter(site.index, ruleset)

    def client_proxy(self, name: str, delay_ms: float) -> DelayProxy:
        """A delay proxy (`delay_ms` each way) in front of the site's S3 port,
        on the bridge (netns) or loopback; closed with the sites."""
        site = self.sites[name]
        host = self.fabric.gateway if self.fabric else "127.0.0.1"
        proxy = DelayProxy(host, (site.server.host, site.server.s3_port), delay_ms / 1000.0).start()
        self._client_proxies.append(proxy)
        return proxy

    # ---- processes
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
        for p in [*self.proxies.values(), *self._client_proxies]:
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
