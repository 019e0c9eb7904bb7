"""Sites and the peer channel between them, on the multi-site harness
(sites.py): peers see each other across the injected wide-area delay, the
peer port refuses what is not signed by a configured peer, and partitions
and crashes show and heal."""

from __future__ import annotations

import base64
import json
import os
import time
import tomllib

import pytest
import requests

from orbit_e2e import unique
from sites import PEER_PATH, FaultUnsupported, Sites, peer_authorization, sites_factory  # noqa: F401

ONE_WAY_MS = 25


def ping(site: str, req: int = 1, version: int = 1) -> bytes:
    return json.dumps({"version": version, "from": site, "message": {"type": "Ping", "req": req}},
                      separators=(",", ":")).encode()


def post_peer(url: str, body: bytes, authorization: str | None) -> requests.Response:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return requests.post(url + PEER_PATH, data=body, headers=headers, timeout=10)


def test_peers_see_each_other_with_the_injected_round_trip(sites_factory):
    sites = sites_factory(["eu", "us", "asia"], delay_ms=ONE_WAY_MS)
    sites.wait_all_reachable()
    for site in sites:
        # A few probes, so the figure is not the first one's connection set-up.
        time.sleep(1.0)
        view = site.sites()
        assert set(view) == {"eu", "us", "asia"}, view
        me = view[site.name]
        assert me["local"] and me["reachable"] and me["protocol_version"] == 1, me
        for name, peer in view.items():
            if name == site.name:
                continue
            assert peer["reachable"] and peer["last_error"] is None, peer
            assert peer["protocol_version"] == 1, peer
            assert peer["rtt_ms"] >= sites.round_trip_s * 1000, (
                f"{site.name} -> {name}: round trip {peer['rtt_ms']} ms is below the injected "
                f"{sites.round_trip_s * 1000} ms: the probe did not cross the delay proxy")
            assert site.metric("orbit_peer_bytes_total", peer=name, direction="out") > 0
            assert site.metric("orbit_peer_bytes_total", peer=name, direction="in") > 0
            assert site.metric("orbit_peer_requests_total", peer=name, direction="in", outcome="ok") > 0

    eu = sites["eu"]
    shown = eu.cli("site", "show", "us")
    assert shown["name"] == "us" and shown["url"].startswith("http://"), shown
    table = eu.cli("site", "list", output="table", check=False)
    assert table.returncode == 0, table.stderr
    assert "reachable" in table.stdout and "asia" in table.stdout, table.stdout
    missing = eu.cli("site", "show", "mars", check=False)
    assert missing.returncode != 0 and "mars" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    doc = requests.get(f"{eu.admin_url}/admin/v1/openapi.json", timeout=10).json()
    assert "/admin/v1/sites" in doc["paths"] and "/admin/v1/sites/{site}" in doc["paths"], list(doc["paths"])

    # Operators only: the deployment's topology is not tenant business.
    admin = eu.server.new_tenant_with_key(role="tenant-admin")
    denied = eu.cli("site", "list", creds=admin, check=False)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr

    # Each site's S3 endpoint answers the test process.
    for site in sites:
        creds = site.server.new_tenant_with_key()
        s3 = site.s3(creds)
        bucket = unique("b")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"hello " + site.name.encode())
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello " + site.name.encode()


def test_the_peer_port_refuses_what_a_configured_peer_did_not_sign(sites_factory):
    sites = sites_factory(["eu", "us"])
    eu = sites["eu"]
    url = eu.peer_direct_url
    secret = eu.secrets["us"]
    sites.wait_all_reachable()

    def refused(reason: str) -> float:
        return eu.metric("orbit_peer_refused_total", reason=reason)

    body = ping("us")
    cases = [
        ("unsigned", None),
        ("bad_signature", peer_authorization("us", "not-the-pair-secret-at-all", body)),
        ("unknown_site", peer_authorization("mars", secret, body)),
        ("stale_timestamp", peer_authorization("us", secret, body, timestamp=time.time() - 3600)),
        ("malformed", "Bearer abc"),
    ]
    before = {reason: refused(reason) for reason, _ in cases}
    answers = {}
    for reason, authz in cases:
        r = post_peer(url, body, authz)
        assert r.status_code == 401, (reason, r.status_code, r.text)
        answers[reason] = r.text
    for reason, _ in cases:
        assert refused(reason) == before[reason] + 1, (reason, eu.metrics())
    # Whether a site name is configured cannot be learnt from the answer.
    assert answers["unknown_site"] == answers["bad_signature"]

    # The same request, signed now with the pair's secret, is answered.
    ok = post_peer(url, body, peer_authorization("us", secret, body))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"version": 1, "from": "eu", "message": {"type": "Pong", "req": 1}}
    assert ok.headers.get("x-orbit-peer-signature", "").startswith("ORBIT-HMAC-SHA256 Credential=eu,")

    # A newer protocol version gets orbit-site's typed refusal, not a misreading.
    newer = ping("us", version=2)
    r = post_peer(url, newer, peer_authorization("us", secret, newer))
    assert r.status_code == 422, r.text
    assert r.json() == {"refusal": {"UnsupportedVersion": {"supported": 1}}}
    # A one-way lease message gets no answer (204): giving back a lease
    # this site never granted is harmless.
    release = json.dumps({"version": 1, "from": "us",
                          "message": {"type": "ReleaseLease", "lease": {"epoch": 1, "seq": 1}}}).encode()
    r = post_peer(url, release, peer_authorization("us", secret, release))
    assert r.status_code == 204, r.text
    # A write lease in a bucket this site is not home to: refused, typed.
    acquire = json.dumps({"version": 1, "from": "us",
                          "message": {"type": "AcquireWriteLease", "req": 2,
                                      "scope": {"bucket": "00000000-0000-0000-0000-000000000000",
                                                "prefix": "ckpt/"}}}).encode()
    r = post_peer(url, acquire, peer_authorization("us", secret, acquire))
    assert r.status_code == 422 and r.json() == {"refusal": "NotHome"}, r.text
    # Flushed writes travel with their bytes on the data route, never bare.
    flush = json.dumps({"version": 1, "from": "us",
                        "message": {"type": "FlushWrites", "req": 3, "lease": {"epoch": 1, "seq": 1},
                                    "writes": []}}).encode()
    r = post_peer(url, flush, peer_authorization("us", secret, flush))
    assert r.status_code == 422 and r.json() == {"refusal": "NotImplemented"}, r.text
    # The signer must be the envelope's sender.
    spoof = ping("asia")
    assert post_peer(url, spoof, peer_authorization("us", secret, spoof)).status_code == 401
    assert refused("site_mismatch") >= 1
    # No secret reaches the log.
    assert secret not in eu.server.log_tail(10_000)


def test_a_partitioned_site_shows_unreachable_and_recovers_after_healing(sites_factory):
    sites = sites_factory(["eu", "us"], delay_ms=5)
    sites.wait_all_reachable()
    sites.partition("us")
    down = sites.wait_reachable("eu", "us", reachable=False)
    assert down["last_error"], down
    sites.heal("us")
    up = sites.wait_reachable("eu", "us", reachable=True, timeout=60)
    assert up["last_error"] is None and up["rtt_ms"] >= sites.round_trip_s * 1000, up
    sites.wait_reachable("us", "eu", reachable=True, timeout=60)


def test_a_killed_site_recovers_after_restart(sites_factory):
    sites = sites_factory(["eu", "us"], delay_ms=5)
    sites.wait_all_reachable()
    sites.kill9("us")
    sites.wait_reachable("eu", "us", reachable=False)
    sites.restart("us")
    sites.wait_reachable("eu", "us", reachable=True, timeout=60)
    sites.wait_reachable("us", "eu", reachable=True, timeout=60)


def test_loopback_mode_delays_partitions_and_heals(sites_factory):
    """The loopback mode runs even where namespaces are available."""
    sites = sites_factory(["eu", "us"], mode="loopback", delay_ms=20)
    assert sites.mode == "loopback" and sites["eu"].s3_endpoint.startswith("http://127.0.0.1:")
    sites.wait_all_reachable()
    time.sleep(1.0)
    assert sites["eu"].sites()["us"]["rtt_ms"] >= 40
    sites.partition("eu")
    sites.wait_reachable("us", "eu", reachable=False)
    sites.wait_reachable("eu", "us", reachable=False)
    sites.heal("eu")
    sites.wait_all_reachable(timeout=60)



def test_the_lease_tables_are_shown_to_operators_and_the_home_epoch_grows_at_every_start(sites_factory):
    sites = sites_factory(["eu", "us"], delay_ms=5)
    sites.wait_all_reachable()
    eu = sites["eu"]
    table = eu.cli("site", "leases")
    assert table == {"site": "eu", "home_epoch": 1, "granted": [], "held": []}, table
    doc = requests.get(f"{eu.admin_url}/admin/v1/openapi.json", timeout=10).json()
    assert "/admin/v1/sites/leases" in doc["paths"], list(doc["paths"])
    admin = eu.server.new_tenant_with_key(role="tenant-admin")
    denied = eu.cli("site", "leases", creds=admin, check=False)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    # Persisted: a lease of the previous incarnation is never taken for one of this.
    sites.restart("eu", kill=True)
    sites.wait_reachable("us", "eu", reachable=True, timeout=60)
    assert sites["eu"].cli("site", "leases")["home_epoch"] == 2


# ---------------------------------------------------------------- faults and config of the harness

def timed_transfer(s3, bucket: str, key: str, body: bytes) -> tuple[float, float]:
    """Seconds to PUT `body` and to GET it back (compared byte for byte)."""
    t0 = time.monotonic()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    t1 = time.monotonic()
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    t2 = time.monotonic()
    assert got == body
    return t1 - t0, t2 - t1


def test_a_bandwidth_cap_slows_transfers_over_the_site_link_until_cleared(sites_factory):
    sites = sites_factory(["eu", "us"], delay_ms=5)
    sites.require_netns("a bandwidth cap")
    us = sites["us"]
    creds = us.server.new_tenant_with_key()
    # A far client: its requests cross a delay proxy and then the site's link.
    proxy = sites.client_proxy("us", delay_ms=5)
    s3 = us.s3(creds, endpoint=f"http://{proxy.address}")
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(2 << 20)
    free_put, free_get = timed_transfer(s3, bucket, "free", body)

    mbit = 4.0
    sites.cap_bandwidth("us", mbit)
    capped_put, capped_get = timed_transfer(s3, bucket, "capped", body)
    # A lower bound only: the link cannot carry the bytes faster than the
    # cap (less the token bucket's burst); a slow machine only adds time.
    floor = 0.75 * len(body) * 8 / (mbit * 1e6)
    assert capped_put >= floor and capped_get >= floor, (capped_put, capped_get, floor)
    shaped = sites.shaped_bytes("us")
    assert shaped["in"] >= len(body) and shaped["out"] >= len(body), shaped

    sites.clear_faults("us")
    assert sites.shaped_bytes("us") == {"in": 0, "out": 0}
    again_put, again_get = timed_transfer(s3, bucket, "free-again", body)
    assert again_put < capped_put / 2 and again_get < capped_get / 2, (
        (free_put, free_get), (capped_put, capped_get), (again_put, again_get))

    # One direction only: what leaves the site is capped, what enters is not.
    sites.cap_bandwidth("us", mbit, direction="out")
    put_in, get_out = timed_transfer(s3, bucket, "out-only", body)
    assert get_out >= floor and put_in < get_out / 2, (put_in, get_out)
    print(f"2 MiB through us's link: free put {free_put:.2f}s get {free_get:.2f}s; capped at {mbit} Mbit/s "
          f"put {capped_put:.2f}s get {capped_get:.2f}s (floor {floor:.2f}s); out-only put {put_in:.2f}s "
          f"get {get_out:.2f}s")


def test_dropped_packets_cut_a_peer_off_until_cleared_and_the_client_still_reaches_it(sites_factory):
    sites = sites_factory(["eu", "us", "asia"], delay_ms=5)
    sites.require_netns("dropping packets")
    sites.wait_all_reachable()

    sites.drop_packets("us", to="eu")
    sites.wait_reachable("eu", "us", reachable=False)
    sites.wait_reachable("us", "eu", reachable=False)
    # Only that pair: asia still talks with both, and the test still reaches us.
    for a, b in (("asia", "us"), ("us", "asia"), ("asia", "eu")):
        assert sites[a].sites()[b]["reachable"], (a, b, sites[a].sites())
    counts = sites.drop_counts("us")
    assert set(counts) == {"eu"} and counts["eu"]["dropped"] > 0, counts
    assert sites.drop_counts("eu")["us"]["dropped"] > 0, sites.drop_counts("eu")

    sites.clear_faults("us")
    assert sites.drop_counts("us") == {} and sites.drop_counts("eu") == {}
    sites.wait_reachable("eu", "us", reachable=True, timeout=60)
    sites.wait_reachable("us", "eu", reachable=True, timeout=60)

    # Every peer at once.
    sites.drop_packets("asia")
    sites.wait_reachable("eu", "asia", reachable=False)
    sites.wait_reachable("us", "asia", reachable=False)
    assert sites["eu"].sites()["us"]["reachable"]
    sites.clear_faults()
    sites.wait_all_reachable(timeout=60)


def test_a_fraction_of_packets_is_dropped_at_random(sites_factory):
    sites = sites_factory(["eu", "us"], delay_ms=2, probe_interval_ms=100)
    sites.require_netns("dropping packets")
    sites.wait_all_reachable()
    sites.drop_packets("us", to="eu", fraction=0.3)

    def enough():
        c = sites.drop_counts("us")["eu"]
        return c if c["seen"] >= 150 else None
    c = sites.wait_for("150 packets between us and eu", enough, timeout=60)
    # 0.3 of each packet's chance: far from 0 and from 1 (bounds > 4 standard deviations away).
    ratio = c["dropped"] / c["seen"]
    print(f"fraction 0.3: {c['dropped']} of {c['seen']} packets dropped ({ratio:.2f})")
    assert 0.12 <= ratio <= 0.5, c
    sites.clear_faults("us")
    sites.wait_reachable("eu", "us", reachable=True, timeout=60)


def test_site_configs_take_extra_toml_directory_site_and_leases(tmp_path, sites_factory):
    made = Sites(tmp_path / "cfg", ["eu", "us", "asia"], mode="loopback",
                 extra_toml='region = "eu-west-9"\n[cache]\nram_bytes = 1048576\n',
                 site_toml={"asia": '[backends.spare]\nkind = "local"\npath = "/tmp/spare"\n'},
                 directory_site="eu",
                 leases={"read_lease_ms": 2000, "drift": 0.01, "margin_ms": 200})
    try:
        configs = {s.name: tomllib.loads(s.server.config_path.read_text()) for s in made}
        for name, cfg in configs.items():
            assert cfg["site"] == name and cfg["region"] == "eu-west-9", cfg
            assert cfg["cache"] == {"ram_bytes": 1048576}, cfg
            assert cfg["leases"] == {"read_lease_ms": 2000, "drift": 0.01, "margin_ms": 200}, cfg
            assert set(cfg["peers"]) == {"eu", "us", "asia"} - {name}, cfg
        # The directory site keeps the default (itself); the others name it.
        assert "directory_site" not in configs["eu"]
        assert configs["us"]["directory_site"] == "eu" == configs["asia"]["directory_site"]
        # One master key for the whole deployment, so mirrored secrets open everywhere.
        keys = {s.server.extra_env["ORBIT_MASTER_KEY"] for s in made}
        assert len(keys) == 1 and len(base64.b64decode(keys.pop())) == 32
        assert configs["asia"]["backends"] == {"spare": {"kind": "local", "path": "/tmp/spare"}}, configs["asia"]
        assert "backends" not in configs["us"]
        # Faults on the wire need namespaces.
        with pytest.raises(FaultUnsupported, match="netns"):
            made.cap_bandwidth("us", 10)
        with pytest.raises(FaultUnsupported, match="netns"):
            made.drop_packets("us")
    finally:
        made.close()

    # A config piece that repeats a key the harness writes is refused before any start.
    with pytest.raises(ValueError, match="not valid TOML"):
        Sites(tmp_path / "dup", ["eu"], mode="loopback", extra_toml="peer_timeout_ms = 5\n")

    # Tables in extra_toml no longer swallow the harness's own top-level keys: sites start.
    sites = sites_factory(["eu", "us"], extra_toml='region = "eu-west-9"\n[cache]\nram_bytes = 8388608\n')
    sites.wait_all_reachable()
