"""Helpers for Orbit's black-box end-to-end suite.

Everything here talks to a real `orbit serve` process over loopback: the admin
CLI (the same binary), the admin REST API (ORBIT-HMAC-SHA256 signed), boto3,
aws-cli and raw HTTP with hand-made SigV4 signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
S3_DOMAIN = "s3.orbit.test"
MiB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

ROOT_ACCESS_KEY = "ORBITROOTE2E00000001"
ROOT_SECRET_KEY = "orbit-e2e-root-secret-key-0123456789abcdef"


def orbit_bin() -> str:
    env = os.environ.get("ORBIT_BIN")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO_ROOT / "target")
    return str(Path(target) / "debug" / "orbit")


def aws_bin() -> str:
    env = os.environ.get("ORBIT_AWS_CLI")
    if env:
        return env
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    found = shutil.which("aws")
    if not found:
        raise RuntimeError("aws-cli not found (install awscli or set ORBIT_AWS_CLI)")
    return found


# ---------------------------------------------------------------- utilities


def unique(prefix: str = "t") -> str:
    """A unique lowercase name usable as tenant, user or bucket name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: Iterable[bytes]) -> str:
    parts = list(parts)
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f"{digest}-{len(parts)}"


def multipart_etag_from_md5s(md5s: Iterable[str]) -> str:
    md5s = list(md5s)
    digest = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest()
    return f"{digest}-{len(md5s)}"


def strip_etag(etag: str) -> str:
    return etag.strip().strip('"')


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_b64(data: bytes) -> str:
    return b64(crc32c(data).to_bytes(4, "big"))


def sha1_b64(data: bytes) -> str:
    return b64(hashlib.sha1(data).digest())


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


CHECKSUM_FUNCS = {
    "CRC32": crc32_b64,
    "CRC32C": crc32c_b64,
    "SHA1": sha1_b64,
    "SHA256": sha256_b64,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def client_error(exc: ClientError) -> tuple[int, str, str]:
    """(HTTP status, S3 error code, message) of a botocore ClientError."""
    resp = exc.response
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    err = resp.get("Error", {})
    return status, err.get("Code", ""), err.get("Message", "")


def expect_client_error(fn, *args, **kwargs) -> tuple[int, str, str]:
    try:
        fn(*args, **kwargs)
    except ClientError as exc:
        return client_error(exc)
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded but an error was expected")


def parse_s3_error(body: bytes) -> tuple[str, str]:
    """(Code, Message) from an S3 XML error body ('' when absent)."""
    text = body.decode("utf-8", "replace")
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    msg = re.search(r"<Message>(.*?)</Message>", text, re.S)
    return (code.group(1) if code else "", msg.group(1) if msg else "")


def as_list(obj: Any, *keys: str) -> list:
    """Accept either a JSON array or an object wrapping one."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        for k in keys + ("items", "data", "results"):
            if isinstance(obj.get(k), list):
                return obj[k]
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    raise AssertionError(f"expected a JSON list, got {obj!r}")


# ----------------------------------------------------------- SigV4 by hand


class RawS3SigV4Auth(SigV4Auth):
    """SigV4 for S3 without path normalisation; honours a preset
    X-Amz-Content-SHA256 header (UNSIGNED-PAYLOAD, STREAMING-..., a hash)."""

    def _normalize_url_path(self, path):  # noqa: D401 - botocore hook
        return path


def sign_headers(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    headers: dict | None = None,
    body: bytes = b"",
    payload_hash: str | None = None,
    region: str = REGION,
) -> dict:
    """Return the headers (Authorization, X-Amz-Date, X-Amz-Content-SHA256 and
    the given ones) for a SigV4-signed request. `url` must already be
    percent-encoded exactly as it will be sent."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    req.headers["X-Amz-Content-SHA256"] = payload_hash or hashlib.sha256(body).hexdigest()
    RawS3SigV4Auth(Credentials(access_key, secret_key), "s3", region).add_auth(req)
    return {k: v for k, v in req.headers.items()}


@dataclass
class RawResponse:
    status: int
    headers: dict
    body: bytes

    @property
    def code(self) -> str:
        return parse_s3_error(self.body)[0]

    @property
    def message(self) -> str:
        return parse_s3_error(self.body)[1]

    def header(self, name: str, default=None):
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return default


def raw_request(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict | None = None,
    body: bytes = b"",
    timeout: float = 60,
) -> RawResponse:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if not any(k.lower() == "host" for k in hdrs):
            hdrs["Host"] = f"{host}:{port}"
        if body and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        if method in ("PUT", "POST") and not body and not any(
            k.lower() in ("content-length", "transfer-encoding") for k in hdrs
        ):
            hdrs["Content-Length"] = "0"
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k: v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def aws_chunked_unsigned_trailer(data: bytes, checksum_name: str, checksum_value: str,
                                 chunk_size: int = 64 * 1024) -> bytes:
    """Body in the aws-chunked form newer SDKs send with
    x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER."""
    out = bytearray()
    for i in range(0, len(data), chunk_size):
        chunk = data[i:i + chunk_size]
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    out += b"0\r\n"
    out += f"{checksum_name}:{checksum_value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def aws_chunked_signed(data: bytes, seed_signature: str, secret_key: str, amz_date: str,
                       region: str = REGION, chunk_size: int = 64 * 1024) -> bytes:
    """Body in the STREAMING-AWS4-HMAC-SHA256-PAYLOAD form (signed chunks)."""
    date = amz_date[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    k = _hmac(("AWS4" + secret_key).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    k = _hmac(k, "aws4_request")
    prev = seed_signature
    out = bytearray()
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for chunk in chunks:
        sts = "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
            hashlib.sha256(chunk).hexdigest(),
        ])
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
        prev = sig
    return bytes(out)


def signed_chunk_len(data_len: int, chunk_size: int = 64 * 1024) -> int:
    total = 0
    sizes = [chunk_size] * (data_len // chunk_size)
    if data_len % chunk_size:
        sizes.append(data_len % chunk_size)
    sizes.append(0)
    for s in sizes:
        total += len(f"{s:x};chunk-signature=") + 64 + 2 + s + 2
    return total


# ------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Creds:
    tenant: str | None
    user: str | None
    access_key: str
    secret_key: str

    # allow `tenant, user, ak, sk = creds`
    def __iter__(self):
        return iter((self.tenant, self.user, self.access_key, self.secret_key))


ROOT = Creds(None, None, ROOT_ACCESS_KEY, ROOT_SECRET_KEY)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    args: list

    @property
    def json(self):
        text = self.stdout.strip()
        return json.loads(text) if text else None


# ------------------------------------------------------------------ server

ACTIVE_SERVERS: list["OrbitServer"] = []

_EMPTY_AWS_CONFIG = Path(tempfile.gettempdir()) / f"orbit-e2e-empty-aws-config-{os.getpid()}"


def empty_aws_config() -> str:
    if not _EMPTY_AWS_CONFIG.exists():
        _EMPTY_AWS_CONFIG.write_text("")
    return str(_EMPTY_AWS_CONFIG)


class OrbitServer:
    """One `orbit serve` process on free loopback ports with its own data dir."""

    def __init__(self, base_dir: Path, *, root_creds: Creds | None = ROOT,
                 s3_domain: str = S3_DOMAIN, extra_env: dict | None = None,
                 config_toml: str | None = None, host: str = "127.0.0.1",
                 cmd_prefix: list[str] | None = None):
        """`config_toml`: text of a TOML config file, written beside the data
        dir and passed with --config (the address and data-dir flags still
        override what it says). `host`: the address the S3 and admin ports
        listen on; `cmd_prefix`: run the server under it (e.g. `ip netns exec
        NS`, which execs, so the process is still the server's)."""
        self.host = host
        self.cmd_prefix = list(cmd_prefix or [])
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "orbit.log"
        self.config_path: Path | None = None
        if config_toml is not None:
            self.config_path = self.base_dir / "orbit.toml"
            self.config_path.write_text(config_toml)
        self.root_creds = root_creds
        self.s3_domain = s3_domain
        self.extra_env = dict(extra_env or {})
        self.s3_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.s3_port:
            self.admin_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self.starts = 0

    # ---- addresses
    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def s3_addr(self) -> str:
        return f"{self.host}:{self.s3_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    @property
    def admin_addr(self) -> str:
        return f"{self.host}:{self.admin_port}"

    @property
    def root(self) -> Creds:
        if self.root_creds is not None:
            return self.root_creds
        data = json.loads((self.data_dir / "root-credentials.json").read_text())
        return Creds(None, None, data["access_key_id"], data["secret_access_key"])

    # ---- lifecycle
    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORBIT_")}
        if "ORBIT_MASTER_KEY" in os.environ:
            env["ORBIT_MASTER_KEY"] = os.environ["ORBIT_MASTER_KEY"]
        env.setdefault("RUST_LOG", os.environ.get("ORBIT_E2E_RUST_LOG", "info"))
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain log lines in orbit.log
        if self.root_creds is not None:
            env["ORBIT_ROOT_ACCESS_KEY"] = self.root_creds.access_key
            env["ORBIT_ROOT_SECRET_KEY"] = self.root_creds.secret_key
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> "OrbitServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        binary = orbit_bin()
        if not os.path.exists(binary):
            raise RuntimeError(f"orbit binary not found at {binary} (set ORBIT_BIN)")
        for attempt in range(3):
            if attempt and (not port_is_free(self.s3_port) or not port_is_free(self.admin_port)):
                self.s3_port, self.admin_port = free_port(), free_port()
            self._log_file = open(self.log_path, "ab")
            self.starts += 1
            self._log_file.write(
                f"\n===== e2e: start #{self.starts} s3={self.s3_addr} admin={self.admin_addr} =====\n".encode())
            self._log_file.flush()
            cmd = self.cmd_prefix + [binary, "serve", "--data-dir", str(self.data_dir),
                   "--s3-addr", self.s3_addr, "--admin-addr", self.admin_addr]
            if self.s3_domain:
                cmd += ["--s3-domain", self.s3_domain]
            if self.config_path is not None:
                cmd += ["--config", str(self.config_path)]
            self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self._env(),
                                         cwd=str(self.base_dir))
            if self._wait_healthy(timeout):
                if self not in ACTIVE_SERVERS:
                    ACTIVE_SERVERS.append(self)
                return self
            if self.proc.poll() is None:
                break  # running but never healthy: not a port problem
            self._log_file.close()
            if "address" not in self.log_tail(20).lower():  # not a bind failure: do not retry
                break
        tail = self.log_tail()
        self.kill9(missing_ok=True)
        raise RuntimeError(f"orbit did not become healthy within {timeout}s; log tail:\n{tail}")

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(f"{self.admin_url}/health", timeout=2)
                if r.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0, check: bool = True) -> int:
        """Graceful stop; asserts exit code 0 unless check=False."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"orbit did not exit within {timeout}s of signal {sig}; log tail:\n{self.log_tail()}")
        rc = self.proc.returncode
        if self._log_file:
            self._log_file.close()
        if check:
            assert rc == 0, f"orbit exited with {rc} after signal {sig}; log tail:\n{self.log_tail()}"
        return rc

    def kill9(self, missing_ok: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        elif not missing_ok:
            raise AssertionError(f"orbit had already exited ({self.proc.returncode}); log tail:\n{self.log_tail()}")
        if self._log_file:
            self._log_file.close()

    def restart(self, kill: bool = False, timeout: float = 30.0) -> "OrbitServer":
        if kill:
            self.kill9(missing_ok=True)
        elif self.is_running():
            self.stop()
        return self.start(timeout=timeout)

    def close(self) -> None:
        if self.is_running():
            try:
                self.stop(check=False, timeout=15)
            except AssertionError:
                pass
        if self in ACTIVE_SERVERS:
            ACTIVE_SERVERS.remove(self)

    def log_tail(self, lines: int = 80) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def assert_alive(self, creds: Creds | None = None) -> None:
        assert self.is_running(), f"orbit exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
        r = requests.get(f"{self.admin_url}/health", timeout=10)
        assert r.status_code == 200, r.text
        if creds is not None:
            self.s3(creds).list_buckets()

    # ---- admin CLI
    def cli_env(self, creds: Creds | None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORBIT_")}
        env["ORBIT_ADMIN_URL"] = self.admin_url
        c = creds or self.root
        env["ORBIT_ACCESS_KEY"] = c.access_key
        env["ORBIT_SECRET_KEY"] = c.secret_key
        return env

    def cli_run(self, *args: str, creds: Creds | None = None, output: str | None = "json",
                env: dict | None = None, timeout: float = 60) -> CliResult:
        cmd = [orbit_bin()] + [str(a) for a in args]
        if output:
            cmd += ["--output", output]
        run_env = env if env is not None else self.cli_env(creds)
        p = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return CliResult(p.returncode, p.stdout, p.stderr, cmd)

    def cli(self, *args: str, creds: Creds | None = None, check: bool = True, **kw):
        """Run the admin CLI with --output json. check=True: assert success and
        return the parsed JSON (None when nothing printed). check=False: return
        the CliResult."""
        res = self.cli_run(*args, creds=creds, **kw)
        if not check:
            return res
        assert res.returncode == 0, (
            f"{' '.join(res.args)} exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}")
        try:
            return res.json
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{' '.join(res.args)} printed non-JSON: {res.stdout!r}") from exc

    def new_tenant(self, model: str = "admin-only", name: str | None = None) -> str:
        name = name or unique("tn")
        self.cli("tenant", "create", name, "--model", model)
        return name

    def new_user(self, tenant: str, role: str = "read-write", name: str | None = None,
                 creds: Creds | None = None) -> str:
        name = name or unique("u")
        self.cli("user", "create", "--tenant", tenant, name, "--role", role, creds=creds)
        return name

    def new_key(self, tenant: str, user: str, creds: Creds | None = None) -> Creds:
        out = self.cli("key", "create", "--tenant", tenant, "--user", user, creds=creds)
        assert isinstance(out, dict), out
        return Creds(tenant, user, out["access_key_id"], out["secret_access_key"])

    def new_tenant_with_key(self, role: str = "read-write", model: str = "admin-only",
                            tenant: str | None = None) -> Creds:
        tenant = tenant or self.new_tenant(model=model)
        user = self.new_user(tenant, role=role)
        return self.new_key(tenant, user)

    # ---- S3 clients
    def s3(self, creds: Creds, *, endpoint: str | None = None, addressing_style: str = "path",
           max_attempts: int = 1, region: str = REGION, **config_kw):
        cfg = Config(signature_version="s3v4", s3={"addressing_style": addressing_style},
                     retries={"max_attempts": max_attempts, "mode": "standard"},
                     connect_timeout=10, read_timeout=120, **config_kw)
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint or self.s3_endpoint, region_name=region,
            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
            config=cfg)

    def aws_env(self, creds: Creds, config_file: str | None = None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("AWS_") and k != "AWS_CA_BUNDLE") and not k.startswith("ORBIT_")}
        env.update({
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": config_file or empty_aws_config(),
            "AWS_SHARED_CREDENTIALS_FILE": empty_aws_config(),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        })
        return env

    def aws(self, *args: str, creds: Creds, check: bool = True, timeout: float = 300,
            parse_json: bool = False, config: str | None = None):
        """Run aws-cli against the S3 endpoint. `config`: text of an AWS config
        file to use instead of the empty one."""
        cmd = [aws_bin(), "--endpoint-url", self.s3_endpoint, *[str(a) for a in args]]
        config_file = None
        if config is not None:
            config_file = str(Path(tempfile.gettempdir()) / f"orbit-e2e-aws-config-{uuid.uuid4().hex[:8]}")
            Path(config_file).write_text(config)
        p = subprocess.run(cmd, capture_output=True, text=True,
                           env=self.aws_env(creds, config_file),
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, (
                f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout[-3000:]}\n"
                f"stderr: {p.stderr[-3000:]}")
        if parse_json:
            return json.loads(p.stdout) if p.stdout.strip() else None
        return p

    # ---- admin REST API
    def admin(self, method: str, path: str, *, creds: Creds | None = None, body: Any = None,
              timestamp: int | None = None, auth: bool = True, signature: str | None = None,
              secret_for_signing: str | None = None, headers: dict | None = None,
              timeout: float = 30) -> requests.Response:
        """Signed admin API request. `path` includes the query string."""
        if body is None:
            data = b""
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data:
            hdrs.setdefault("Content-Type", "application/json")
        if auth:
            c = creds or self.root
            ts = str(int(time.time()) if timestamp is None else timestamp)
            sig = signature or admin_signature(secret_for_signing or c.secret_key, method, path, ts, data)
            hdrs["Authorization"] = (
                f"ORBIT-HMAC-SHA256 Credential={c.access_key}, Timestamp={ts}, Signature={sig}")
        return requests.request(method, self.admin_url + path, data=data, headers=hdrs,
                                timeout=timeout)

    # ---- raw S3
    def raw_s3(self, method: str, path: str, creds: Creds | None, *, headers: dict | None = None,
               body: bytes = b"", payload_hash: str | None = None, host: str | None = None,
               timeout: float = 60) -> RawResponse:
        """A hand-made request to the S3 port; SigV4-signed when creds given.
        `path` is sent verbatim (percent-encode it yourself)."""
        hdrs = dict(headers or {})
        if host:
            hdrs["Host"] = host
        if creds is not None:
            url_host = host or f"127.0.0.1:{self.s3_port}"
            hdrs = sign_headers(method, f"http://{url_host}{path}", creds.access_key,
                                creds.secret_key, headers=hdrs, body=body,
                                payload_hash=payload_hash)
        return raw_request("127.0.0.1", self.s3_port, method, path, headers=hdrs, body=body,
                           timeout=timeout)


def admin_signature(secret: str, method: str, path_and_query: str, timestamp: str,
                    body: bytes) -> str:
    msg = "\n".join([method.upper(), path_and_query, str(timestamp),
                     hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def encode_key(key: str) -> str:
    return quote(key, safe="/~")


def admin_error(resp: requests.Response) -> tuple[int, str, str]:
    """(status, code, message) of an admin API error; asserts the JSON shape."""
    try:
        body = resp.json()
    except ValueError as exc:
        raise AssertionError(f"admin error body is not JSON: {resp.status_code} {resp.text!r}") from exc
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    assert "code" in err and "message" in err, body
    return resp.status_code, err["code"], err["message"]


def list_all_keys(client, bucket: str, prefix: str = "") -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def wait_until(pred, timeout: float = 10, interval: float = 0.1, msg: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {msg}")
        time.sleep(interval)



# ------------------------------------------- a remote S3 store (not Orbit)


def toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML for these values)."""
    return json.dumps(str(value))


def s3_backend_toml(name: str, **fields) -> str:
    """A `[backends.NAME]` table; None values are left out, bools written as TOML."""
    lines = [f"[backends.{toml_str(name)}]"]
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {toml_str(value)}")
    return "\n".join(lines) + "\n"


class MotoServer:
    """moto's stand-alone S3 server (`python -m moto.server`) on a free
    loopback port: a real S3 endpoint that is not Orbit, for remote backends.

    Duck-types what conftest's failure report needs (proc, log_path,
    is_running, log_tail), so it can sit in ACTIVE_SERVERS beside Orbit."""

    ACCESS_KEY = "MOTOADMINKEY00000001"
    SECRET_KEY = "moto-admin-secret-key"

    def __init__(self, base_dir: Path, python: str | None = None):
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / "moto.log"
        self.python = python or os.environ.get("ORBIT_MOTO_PYTHON") or sys.executable
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "MotoServer":
        probe = subprocess.run([self.python, "-c", "import moto.server, flask"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            raise RuntimeError(
                f"moto[server] is not installed for {self.python} (pip install 'moto[server]', "
                f"or set ORBIT_MOTO_PYTHON): {probe.stderr.strip().splitlines()[-1:]}")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and not k.startswith("ORBIT_")}
        env["PYTHONUNBUFFERED"] = "1"
        for attempt in range(3):
            if attempt:
                self.port = free_port()
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"\n===== e2e: moto on {self.endpoint} =====\n".encode())
            self._log_file.flush()
            self.proc = subprocess.Popen(
                [self.python, "-m", "moto.server", "-p", str(self.port), "-H", "127.0.0.1"],
                stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=str(self.base_dir))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    requests.get(self.endpoint + "/", timeout=2)
                    if self not in ACTIVE_SERVERS:
                        ACTIVE_SERVERS.append(self)
                    return self
                except requests.RequestException:
                    time.sleep(0.1)
            if self.proc.poll() is None:
                break  # running but never answering: not a port clash
            self._log_file.close()
        tail = self.log_tail()
        self.close()
        raise RuntimeError(f"moto server did not start within {timeout}s; log tail:\n{tail}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log_file:
            self._log_file.close()
        if self in ACTIVE_SERVERS:
            ACTIVE_SERVERS.remove(self)

    def client(self):
        """boto3 straight to moto (not through any proxy)."""
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                     retries={"max_attempts": 3, "mode": "standard"},
                     connect_timeout=10, read_timeout=60)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.ACCESS_KEY, aws_secret_access_key=self.SECRET_KEY, config=cfg)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """{key: size} of every object in a bucket of the store."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


_SIGV4_CREDENTIAL = re.compile(rb"Credential=([A-Za-z0-9]{4,128})/")


class TcpProxy:
    """A TCP proxy on 127.0.0.1 (a free port) in front of `target`, that a
    test switches down (new connections are reset at once, open ones are
    dropped) and back up. It also notes the SigV4 access key ids it sees in
    the traffic towards the target (`access_keys`)."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._up = True
        self._closed = False
        self._pairs: set[_ProxiedConnection] = set()
        self.accepted = 0   # connections passed on to the target
        self.rejected = 0   # connections reset because the proxy was down
        self.dropped = 0    # open connections cut by down()
        self.access_keys: set[str] = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"tcp-proxy-{self.port}")
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._up

    def down(self) -> None:
        """Refuse new connections (accept and reset) and cut every open one."""
        with self._lock:
            self._up = False
            pairs = list(self._pairs)
        for pair in pairs:
            pair.abort()
        with self._lock:
            self.dropped += len(pairs)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pairs:
                    return
            time.sleep(0.02)

    def up(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._closed = True
        self.down()
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closed:
                    return
                continue
            client.settimeout(None)
            with self._lock:
                up = self._up and not self._closed
            if not up:
                with self._lock:
                    self.rejected += 1
                _reset(client)
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _ProxiedConnection(self, client, upstream)
            with self._lock:
                if not self._up or self._closed:
                    pair.abort()
                    pair.close_sockets()
                    self.rejected += 1
                    continue
                self.accepted += 1
                self._pairs.add(pair)
            pair.start()

    def _finished(self, pair: "_ProxiedConnection") -> None:
        with self._lock:
            self._pairs.discard(pair)

    def _sniff(self, data: bytes) -> None:
        for m in _SIGV4_CREDENTIAL.finditer(data):
            self.access_keys.add(m.group(1).decode())


def _reset(sock: socket.socket) -> None:
    """Make close() send RST (abortive close), and wake any blocked reader."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _ProxiedConnection:
    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self._lock = threading.Lock()
        self._running = 2

    def start(self) -> None:
        for src, dst, sniff in ((self.client, self.upstream, True),
                                (self.upstream, self.client, False)):
            threading.Thread(target=self._pump, args=(src, dst, sniff), daemon=True,
                             name=f"tcp-proxy-{self.proxy.port}-pump").start()

    def abort(self) -> None:
        _reset(self.client)
        _reset(self.upstream)

    def close_sockets(self) -> None:
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, sniff: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                if sniff:
                    self.proxy._sniff(tail + data)
                    tail = data[-200:]
                dst.sendall(data)
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        except OSError:
            self.abort()  # one side broke: break the other too
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self.close_sockets()
                self.proxy._finished(self)
