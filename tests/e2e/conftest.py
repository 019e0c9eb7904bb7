"""Fixtures for Orbit's black-box end-to-end suite.

One `orbit serve` per test module (tests make their own tenants and buckets
with unique names, so they can share it); tests that kill or restart the
server make their own with `orbit_factory`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orbit_e2e  # noqa: E402
from orbit_e2e import ACTIVE_SERVERS, OrbitServer  # noqa: E402

# Keep boto3/botocore hermetic: no profile, config or endpoint from the machine.
for _var in list(os.environ):
    if _var.startswith("AWS_") and _var != "AWS_CA_BUNDLE":
        del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = orbit_e2e.empty_aws_config()
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = orbit_e2e.empty_aws_config()
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_sessionstart(session):
    binary = orbit_e2e.orbit_bin()
    if not os.path.exists(binary):
        raise pytest.UsageError(
            f"orbit binary not found at {binary}: build it (cargo build -p orbit) or set ORBIT_BIN")


@pytest.fixture(scope="module")
def orbit(tmp_path_factory):
    """A running server shared by the tests of one module."""
    server = OrbitServer(tmp_path_factory.mktemp("orbit"))
    server.start()
    yield server
    alive = server.is_running()
    rc = server.proc.returncode
    server.close()
    if not alive:
        pytest.fail(f"orbit server died during the module (exit {rc}); log tail:\n{server.log_tail()}")


@pytest.fixture
def orbit_factory(tmp_path):
    """Make extra servers (own data dirs) that are cleaned up after the test."""
    made: list[OrbitServer] = []

    def make(start: bool = True, name: str = "srv", **kw) -> OrbitServer:
        server = OrbitServer(tmp_path / f"{name}{len(made)}", **kw)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def cli(orbit):
    return orbit.cli


@pytest.fixture
def new_tenant_with_key(orbit):
    return orbit.new_tenant_with_key


@pytest.fixture
def rw(orbit):
    """A fresh tenant with a read-write key; returns Creds."""
    return orbit.new_tenant_with_key(role="read-write")


@pytest.fixture
def s3(orbit, rw):
    """boto3 client of a fresh read-write tenant."""
    return orbit.s3(rw)


@pytest.fixture
def bucket(s3):
    name = orbit_e2e.unique("b")
    s3.create_bucket(Bucket=name)
    return name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for server in list(ACTIVE_SERVERS):
            state = "running" if server.is_running() else f"exited {server.proc.returncode}"
            rep.sections.append((
                f"orbit log tail ({server.log_path}, {state})",
                server.log_tail(60),
            ))
