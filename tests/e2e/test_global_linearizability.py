"""Per-key linearizability across sites (issue 4), judged by orbit-lincheck.

Three sites on the multi-site harness (sites.py), a wide-area delay between
them: `eu` is the bucket's home, `us` and `asia` its satellites, and `asia`
also the directory site (tenants, keys and buckets are made there and
mirrored), so each fault below hits one role only. Two clients at every
site put, get and delete four keys of the bucket with unique values
(histories.py) while one of the four situations of the issue plays out:
normal operation, a satellite partitioned and healed (its link down, or
every packet between it and the other sites dropped while its clients
still reach it), a satellite killed with -9 and restarted, and the home
site killed with -9 and restarted. Leases are short (2 s) so each run
lasts about half a minute.

Every run must pass orbit-lincheck, and must have done real work: enough
completed operations at every site before the fault and after it healed,
and reads at each site that returned values written at another site; with
nothing failing, no operation may fail; a satellite that cannot reach home
must refuse reads (503) once its lease surely expired, and answer promptly.
"""

from __future__ import annotations

import time
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from histories import Client, History, Workload, s3_client
from orbit_e2e import unique
from sites import Sites, sites_factory  # noqa: F401

HOME, SATELLITE, DIRECTORY = "eu", "us", "asia"
NAMES = [HOME, SATELLITE, DIRECTORY]
ONE_WAY_MS = 10
READ_LEASE_MS = 2000
LEASES = {"read_lease_ms": READ_LEASE_MS, "drift": 0.01, "margin_ms": 200, "renew_before_ms": 800,
          "retry_every_ms": 200}
# When home takes an unreachable satellite's lease as surely expired.
LEASE_BOUND_S = READ_LEASE_MS / 1000 * (1 + LEASES["drift"]) + LEASES["margin_ms"] / 1000
KEYS = ["g/a", "g/b", "g/c", "g/d"]
CLIENTS_PER_SITE = 2

# Phases of a run with a fault, in seconds: before it, during it, after it.
WARM_S, FAULT_S, TAIL_S = 8.0, 7.0, 12.0
# How long a killed site stays down.
DOWN_S = 5.0
# Completed operations a site must show in a phase for the run to count.
MIN_OK_OPS = 25
MIN_REMOTE_READS = 3

pytestmark = pytest.mark.timeout(300)


def start_global_sites(sites_factory) -> Sites:
    return sites_factory(NAMES, delay_ms=ONE_WAY_MS, directory_site=DIRECTORY, leases=LEASES)


def global_bucket(sites: Sites):
    """A tenant and key made at the directory site and a bucket homed at
    `eu`, once every site knows both."""
    directory = sites[DIRECTORY]
    creds = directory.server.new_tenant_with_key()
    bucket = unique("glob")
    made = directory.cli("bucket", "create", bucket, "--tenant", creds.tenant, "--home", HOME)
    assert made["home_site"] == HOME, made

    def visible_everywhere():
        for site in sites:
            s3 = s3_client(site.s3_endpoint, creds)
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError:
                return False
        return True
    sites.wait_for(f"bucket {bucket} visible at every site", visible_everywhere, timeout=15)
    for site in sites:
        listed = {b["name"]: b for b in site.cli("bucket", "list", "--tenant", creds.tenant)}
        assert listed[bucket]["home_site"] == HOME, (site.name, listed)
    return creds, bucket


def run_situation(sites: Sites, creds, bucket: str, tmp_path, duration_s: float,
                  schedule: list[tuple[float, str, Callable[[], None]]]) -> History:
    """Clients at every site for `duration_s`; at each (seconds, label,
    action) of `schedule` the action runs and the history is marked with
    the label when it is done. The history must pass orbit-lincheck."""
    history = History()
    clients = [Client(f"{site.name}-c{i}", site.name, site.s3_endpoint)
               for site in sites for i in range(CLIENTS_PER_SITE)]
    workload = Workload(keys=KEYS, max_ops=5000, duration_s=duration_s, think_s=0.03, seed=4)
    start = time.monotonic()
    run = workload.start(clients, creds, bucket, history)
    try:
        for at_s, label, action in schedule:
            time.sleep(max(0.0, start + at_s - time.monotonic()))
            action()
            history.mark(label)
    finally:
        run.join()
    verdict = history.check(tmp_path / "history.jsonl")
    print(verdict.output.strip())
    for label, t in [("whole run", None), *history.marks]:
        print(label, history.summary(start=t))
    print("errors by site:", {site.name: dict(history.error_kinds(site.name)) for site in sites})
    assert verdict.ok, verdict.output
    return history


def window(history: History, start: str | None, end: str | None = None, skip_s: float = 0.0) -> dict:
    """Per-site counts of the operations called between two marks (the run's
    start/end when None), leaving out the first `skip_s` seconds."""
    t0 = history.mark_time(start) + int(skip_s * 1e9) if start else None
    t1 = history.mark_time(end) if end else None
    return history.summary(start=t0, end=t1)


def ok_ops(counts: dict) -> int:
    return sum(n for k, n in counts.items() if k.endswith("_ok"))


def assert_refuses_reads(history: History, site: str, start: str, end: str, what: str) -> None:
    """Reads at `site` called once its lease had surely expired after mark
    `start`, and answered before mark `end`: there must be a few, none
    served, refused with 503 ServiceUnavailable (a site that cannot reach
    home and holds no valid lease refuses, promptly, rather than hang)."""
    t0 = history.mark_time(start) + int((LEASE_BOUND_S + 1.0) * 1e9)
    t1 = history.mark_time(end)
    gets = [o for o in history.operations()
            if o.site == site and o.op == "get" and o.call >= t0 and o.ret is not None and o.ret < t1]
    served = [o for o in gets if o.status == "ok"]
    assert not served, f"{what}: {site} served {len(served)} reads past its lease: {served[:3]}"
    assert len(gets) >= 2, (
        f"{what}: {site} answered {len(gets)} reads in the {(t1 - t0) / 1e9:.1f} s after its lease surely "
        f"expired (it should refuse them with 503, not hold them): {history.error_kinds(site)}")
    errors = {o.error for o in gets}
    assert errors == {"ServiceUnavailable"}, f"{what}: {site} refused reads with {errors}"


def assert_did_real_work(counts: dict[str, dict], sites: list[str], what: str) -> None:
    """Each site completed enough operations, wrote, and read values that
    clients of other sites wrote."""
    for site in sites:
        c = counts.get(site, {})
        assert ok_ops(c) >= MIN_OK_OPS, f"{what}: {site} completed only {ok_ops(c)} operations: {c}"
        assert c.get("put_ok", 0) >= 3, f"{what}: {site} completed too few puts: {c}"
        assert c.get("reads_remote", 0) >= MIN_REMOTE_READS, (
            f"{what}: {site} read too few values written at other sites: {c}")


def test_normal_operation_is_linearizable_across_sites(sites_factory, tmp_path):
    sites = start_global_sites(sites_factory)
    creds, bucket = global_bucket(sites)
    history = run_situation(sites, creds, bucket, tmp_path, duration_s=20, schedule=[])
    assert_did_real_work(history.summary(), NAMES, "normal operation")
    # With every site up and reachable, nothing is refused and nothing times out.
    for site in sites:
        failed = {k: n for k, n in history.summary()[site.name].items() if k.endswith(("_fail", "_unknown"))}
        assert not failed, (site.name, failed, dict(history.error_kinds(site.name)))
        r = site.server.admin("GET", "/admin/v1/sites/leases")
        assert r.status_code == 200 and isinstance(r.json(), (list, dict)), (site.name, r.status_code, r.text)


@pytest.mark.parametrize("how", ["link-down", "peers-dropped"])
def test_a_partitioned_satellite_never_serves_stale_data(sites_factory, tmp_path, how):
    sites = start_global_sites(sites_factory)
    if how == "peers-dropped":
        sites.require_netns("dropping the packets between sites")
    creds, bucket = global_bucket(sites)
    if how == "link-down":
        cut, heal = (lambda: sites.partition(SATELLITE)), (lambda: sites.heal(SATELLITE))
        # In netns mode the link down cuts the satellite's clients off too.
        clients_reach_it = sites.mode == "loopback"
    else:
        cut, heal = (lambda: sites.drop_packets(SATELLITE)), (lambda: sites.clear_faults(SATELLITE))
        clients_reach_it = True
    history = run_situation(sites, creds, bucket, tmp_path, duration_s=WARM_S + FAULT_S + TAIL_S, schedule=[
        (WARM_S, "cut", cut),
        (WARM_S + FAULT_S, "healed", heal),
    ])
    assert_did_real_work(window(history, None, "cut"), NAMES, "before the partition")
    # The rest went on: home and the other satellite kept writing and reading
    # once the cut satellite's lease had surely expired.
    during = window(history, "cut", "healed", skip_s=LEASE_BOUND_S)
    for site in (HOME, DIRECTORY):
        c = during.get(site, {})
        assert c.get("put_ok", 0) >= 3 and c.get("get_ok", 0) >= 3, (site, during)
    if clients_reach_it:
        # Past its lease, the cut satellite refuses reads rather than serve what it cached.
        assert_refuses_reads(history, SATELLITE, "cut", "healed", "partitioned")
    # And it serves again once healed (allowing for the probes and a new lease).
    assert_did_real_work(window(history, "healed", skip_s=4.0), [SATELLITE], "after healing")


def test_a_satellite_killed_and_restarted_never_serves_stale_data(sites_factory, tmp_path):
    sites = start_global_sites(sites_factory)
    creds, bucket = global_bucket(sites)
    history = run_situation(sites, creds, bucket, tmp_path, duration_s=WARM_S + DOWN_S + TAIL_S, schedule=[
        (WARM_S, "killed", lambda: sites.kill9(SATELLITE)),
        (WARM_S + DOWN_S, "restarted", lambda: sites.restart(SATELLITE)),
    ])
    assert_did_real_work(window(history, None, "killed"), NAMES, "before the kill")
    # Home waits out the dead satellite's lease, then writes go on.
    during = window(history, "killed", "restarted", skip_s=LEASE_BOUND_S)
    for site in (HOME, DIRECTORY):
        assert during.get(site, {}).get("put_ok", 0) >= 3, (site, during)
    assert_did_real_work(window(history, "restarted", skip_s=2.0), [SATELLITE], "after the restart")


def test_the_home_site_restarted_loses_no_acknowledged_write(sites_factory, tmp_path):
    sites = start_global_sites(sites_factory)
    creds, bucket = global_bucket(sites)
    history = run_situation(sites, creds, bucket, tmp_path, duration_s=WARM_S + DOWN_S + TAIL_S, schedule=[
        (WARM_S, "killed", lambda: sites.kill9(HOME)),
        (WARM_S + DOWN_S, "restarted", lambda: sites.restart(HOME)),
    ])
    assert_did_real_work(window(history, None, "killed"), NAMES, "before the kill")
    # While home is down the satellites serve nothing past their leases.
    for site in (SATELLITE, DIRECTORY):
        assert_refuses_reads(history, site, "killed", "restarted", "home down")
    # After the restart home waits out the leases it may have granted, then
    # every site reads and writes again, satellites through home.
    assert_did_real_work(window(history, "restarted", skip_s=LEASE_BOUND_S + 1.0), NAMES, "after the restart")


def test_a_write_lease_taken_and_given_back_mid_run_is_linearizable(sites_factory, tmp_path):
    """A satellite takes a write lease on the keys' prefix mid-run, writes
    under it (acknowledged on its own disk) while the other sites' reads are
    redirected to it and their writes refused, then gives it back: one
    history across both hand-overs must pass the checker."""
    sites = start_global_sites(sites_factory)
    creds, bucket = global_bucket(sites)
    holder = sites[SATELLITE]
    lease: dict = {}

    def acquire():
        lease.update(holder.cli("site", "acquire", "--tenant", creds.tenant, "--bucket", bucket, "--prefix", "g/"))

    def release():
        assert holder.cli("site", "release", lease["lease"])["released"] is True

    held_s = 8.0
    history = run_situation(sites, creds, bucket, tmp_path, duration_s=WARM_S + held_s + TAIL_S, schedule=[
        (WARM_S, "acquired", acquire),
        (WARM_S + held_s, "released", release),
    ])
    assert_did_real_work(window(history, None, "acquired"), NAMES, "before the write lease")
    during = window(history, "acquired", "released")
    # The holder wrote under the lease; home and the third site read its
    # values (redirected to it) and could not write the prefix.
    assert during.get(SATELLITE, {}).get("put_ok", 0) >= 3, during
    assert holder.metric("orbit_lease_held_writes_total") >= 3
    # Home gives the prefix back a moment before the release command
    # returns: writes called in that last moment may succeed there.
    held_fully = history.summary(start=history.mark_time("acquired"),
                                 end=history.mark_time("released") - int(1.5e9))
    for site in (HOME, DIRECTORY):
        c = during.get(site, {})
        assert c.get("get_ok", 0) >= 3 and c.get("reads_remote", 0) >= 1, (site, during)
        assert held_fully.get(site, {}).get("put_ok", 0) == 0, (site, held_fully)
    assert_did_real_work(window(history, "released", skip_s=3.0), NAMES, "after the release")
