//! The dangerous interleavings, one by one, with every message delivered,
//! lost or reordered by hand and every clock set explicitly.

use orbit_site::{
    Gate, HomeEvent, HomeRead, HomeSite, LeaseScope, LeaseTiming, Message, MonoTime, Outgoing, ReadPlan,
    SatelliteEvent, SatelliteSite, SiteId, WriteKind, WriteOrigin,
};
use orbit_types::{BucketId, ObjectKey};
use std::time::Duration;

fn bucket() -> BucketId {
    BucketId::from_slice(&[9; 16]).expect("16 bytes")
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).expect("valid key")
}

fn timing() -> LeaseTiming {
    LeaseTiming {
        read_lease: Duration::from_secs(10),
        drift: 0.01,
        margin: Duration::from_millis(500),
        renew_before: Duration::from_secs(4),
        retry_every: Duration::from_millis(500),
    }
}

/// Home's clock, in ms; the satellites' clocks have other origins, as real
/// monotonic clocks do.
fn h(ms: u64) -> MonoTime {
    MonoTime::from_nanos(ms * 1_000_000)
}
fn s(ms: u64) -> MonoTime {
    MonoTime::from_nanos(7_000_000_000_000 + ms * 1_000_000)
}

fn home_site() -> SiteId {
    SiteId::new("home")
}
fn sat1() -> SiteId {
    SiteId::new("sat1")
}
fn sat2() -> SiteId {
    SiteId::new("sat2")
}

fn home() -> HomeSite {
    HomeSite::start(home_site(), timing(), 1, Vec::new(), h(0), true)
}

fn satellite(name: SiteId) -> SatelliteSite {
    SatelliteSite::start(name, timing(), Vec::new(), 0)
}

fn home_sends(events: &[HomeEvent]) -> Vec<Outgoing> {
    events.iter().filter_map(|e| if let HomeEvent::Send(o) = e { Some(o.clone()) } else { None }).collect()
}

fn sat_sends(events: &[SatelliteEvent]) -> Vec<Message> {
    events.iter().filter_map(|e| if let SatelliteEvent::Send(o) = e { Some(o.message.clone()) } else { None }).collect()
}

fn one_message(events: &[SatelliteEvent]) -> Message {
    let m = sat_sends(events);
    assert_eq!(m.len(), 1, "{events:?}");
    m[0].clone()
}

fn reply_to(events: &[HomeEvent], to: &SiteId) -> Message {
    let m: Vec<_> = home_sends(events).into_iter().filter(|o| &o.to == to).collect();
    assert_eq!(m.len(), 1, "{events:?}");
    m[0].message.clone()
}

fn ready(events: &[HomeEvent]) -> bool {
    events.iter().any(|e| matches!(e, HomeEvent::WriteReady(_)))
}

/// `sat` asks at satellite time `asked`, home grants at `granted`, the grant
/// arrives at `arrives`; then `k` is fetched and cached.
fn lease_and_cache(home: &mut HomeSite, sat: &mut SatelliteSite, prefix: &str, k: &ObjectKey, asked: u64) {
    let ask = one_message(&sat.request_read_lease(s(asked), &home_site(), LeaseScope::new(bucket(), prefix)));
    let grant = reply_to(&home.on_message(h(asked + 10), sat.site(), ask), sat.site());
    sat.on_message(s(asked + 20), &home_site(), grant);
    let ReadPlan::Fetch(f) = sat.read(s(asked + 30), bucket(), k) else { panic!("a valid lease plans a fetch") };
    assert_eq!(home.read(bucket(), k), HomeRead::Local { cacheable: true });
    assert!(sat.complete_fetch(s(asked + 40), f, true));
    assert_eq!(sat.read(s(asked + 50), bucket(), k), ReadPlan::Cached);
}

#[test]
fn invalidation_lost_and_holder_partitioned_home_waits_until_the_lease_surely_expired() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    lease_and_cache(&mut home, &mut sat, "data/", &k, 0);

    // The write starts; its invalidation (and every resend) is lost.
    let (Gate::Proceed(w), events) = home.begin_write(h(100), bucket(), vec![k.clone()], WriteOrigin::Local) else {
        panic!("no write lease here")
    };
    assert!(matches!(reply_to(&events, &sat1()), Message::Invalidate { .. }));
    assert!(!ready(&events));

    // Granted at home time 10: surely expired at 10 + 10 s * 1.01 + 0.5 s.
    let events = home.tick(h(10 + 10_600 - 1));
    assert!(!ready(&events), "acknowledged before the holder surely stopped serving");
    assert!(home_sends(&events).iter().any(|o| matches!(o.message, Message::Invalidate { .. })), "resent");
    assert_eq!(home.tick(h(10 + 10_600)), vec![HomeEvent::WriteReady(w)]);

    // The partitioned holder stops by its own clock, counted from its request.
    assert_eq!(sat.read(s(9_999), bucket(), &k), ReadPlan::Cached);
    assert_eq!(sat.read(s(10_000), bucket(), &k), ReadPlan::ReadThrough);
}

#[test]
fn a_renewal_racing_an_invalidation_carries_it() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    lease_and_cache(&mut home, &mut sat, "data/", &k, 0);

    // In use and under 4 s left: the satellite renews.
    let renew = one_message(&sat.tick(s(6_100)));
    assert!(matches!(renew, Message::RenewLease { .. }));
    // A write starts at home; its invalidation is lost...
    let (Gate::Proceed(w), _lost) = home.begin_write(h(6_200), bucket(), vec![k.clone()], WriteOrigin::Local) else {
        panic!()
    };
    // ...and the renewal arrives after it: the answer repeats the invalidation.
    let renewed = reply_to(&home.on_message(h(6_300), &sat1(), renew), &sat1());
    let Message::LeaseRenewed { invalidations, .. } = &renewed else { panic!("{renewed:?}") };
    assert_eq!(invalidations.len(), 1);
    let ack = one_message(&sat.on_message(s(6_400), &home_site(), renewed));
    assert!(matches!(ack, Message::InvalidateAck { .. }));
    assert!(!sat.is_cached(bucket(), &k), "extended the lease but kept the stale entry");
    assert!(matches!(sat.read(s(6_500), bucket(), &k), ReadPlan::Fetch(_)));
    // The lease is extended from when the renewal was sent.
    assert!(sat.valid_leases(s(16_099)).len() == 1 && sat.valid_leases(s(16_100)).is_empty());
    assert_eq!(home.on_message(h(6_500), &sat1(), ack), vec![HomeEvent::WriteReady(w)]);
}

#[test]
fn a_lease_granted_after_a_write_started_cannot_cache_the_old_value() {
    let (mut home, mut a, mut b) = (home(), satellite(sat1()), satellite(sat2()));
    let k = key("data/x");
    lease_and_cache(&mut home, &mut a, "data/", &k, 0);
    // The write waits on sat1 (its invalidation is lost).
    let (Gate::Proceed(w), _) = home.begin_write(h(100), bucket(), vec![k.clone()], WriteOrigin::Local) else {
        panic!()
    };
    // sat2 gets a lease while the write is in the gate, and reads the key:
    // it may serve the old value (the write is not acknowledged) but not keep it.
    let ask = one_message(&b.request_read_lease(s(200), &home_site(), LeaseScope::bucket(bucket())));
    let grant = reply_to(&home.on_message(h(210), &sat2(), ask), &sat2());
    b.on_message(s(220), &home_site(), grant);
    let ReadPlan::Fetch(f) = b.read(s(230), bucket(), &k) else { panic!() };
    assert_eq!(home.read(bucket(), &k), HomeRead::Local { cacheable: false });
    assert!(!b.complete_fetch(s(240), f, false));
    assert!(matches!(b.read(s(250), bucket(), &k), ReadPlan::Fetch(_)));
    // Once committed, the new value may be cached.
    home.finish_write(h(20_000), w);
    assert_eq!(home.read(bucket(), &k), HomeRead::Local { cacheable: true });
}

#[test]
fn an_invalidation_overtaking_its_grant_is_acknowledged_and_the_grant_still_works() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    let ask = one_message(&sat.request_read_lease(s(0), &home_site(), LeaseScope::new(bucket(), "data/")));
    let grant = reply_to(&home.on_message(h(10), &sat1(), ask), &sat1());
    let (_, events) = home.begin_write(h(20), bucket(), vec![k.clone()], WriteOrigin::Local);
    let invalidate = reply_to(&events, &sat1());
    // The invalidation arrives first, for a lease the satellite does not know yet.
    let ack = one_message(&sat.on_message(s(30), &home_site(), invalidate));
    assert!(matches!(ack, Message::InvalidateAck { .. }));
    assert!(ready(&home.on_message(h(40), &sat1(), ack)));
    sat.on_message(s(50), &home_site(), grant);
    assert_eq!(sat.valid_leases(s(60)).len(), 1);
}

#[test]
fn a_fetch_answered_before_an_invalidation_but_arriving_after_it_is_not_cached() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    let ask = one_message(&sat.request_read_lease(s(0), &home_site(), LeaseScope::new(bucket(), "data/")));
    let grant = reply_to(&home.on_message(h(10), &sat1(), ask), &sat1());
    sat.on_message(s(20), &home_site(), grant);
    let ReadPlan::Fetch(f) = sat.read(s(30), bucket(), &k) else { panic!() };
    // Home answers with the old value, cacheable, then a write starts.
    assert_eq!(home.read(bucket(), &k), HomeRead::Local { cacheable: true });
    let (_, events) = home.begin_write(h(40), bucket(), vec![k.clone()], WriteOrigin::Local);
    sat.on_message(s(50), &home_site(), reply_to(&events, &sat1()));
    assert!(!sat.complete_fetch(s(60), f, true), "cached a value an invalidation already condemned");
}

#[test]
fn clock_drift_exactly_at_the_bound_with_no_margin_still_stops_the_holder_first() {
    // Home's clock runs 1% faster than the satellite's: home time = real * 1.01.
    let t = LeaseTiming { margin: Duration::ZERO, ..timing() };
    let mut home = HomeSite::start(home_site(), t.clone(), 1, Vec::new(), h(0), true);
    let mut sat = SatelliteSite::start(sat1(), t, Vec::new(), 0);
    let k = key("x");
    let real_to_home = |real_ms: u64| h(real_ms * 101 / 100);
    let ask = one_message(&sat.request_read_lease(s(0), &home_site(), LeaseScope::bucket(bucket())));
    let grant = reply_to(&home.on_message(real_to_home(0), &sat1(), ask), &sat1());
    sat.on_message(s(0), &home_site(), grant);
    let ReadPlan::Fetch(f) = sat.read(s(0), bucket(), &k) else { panic!() };
    assert!(sat.complete_fetch(s(0), f, true));
    let (_, _lost) = home.begin_write(real_to_home(1), bucket(), vec![k.clone()], WriteOrigin::Local);
    // Real 9.999 s: the satellite still serves; home must not be ready.
    assert_eq!(sat.read(s(9_999), bucket(), &k), ReadPlan::Cached);
    assert!(!ready(&home.tick(real_to_home(9_999))));
    // Real 10 s: home's clock reads 10.1 s = 10 s * 1.01, it may acknowledge,
    // and the satellite has stopped.
    assert!(ready(&home.tick(real_to_home(10_000))));
    assert_ne!(sat.read(s(10_000), bucket(), &k), ReadPlan::Cached);
}

#[test]
fn a_write_lease_recalls_read_leases_first_and_is_recalled_with_unflushed_writes() {
    let (mut home, mut writer, mut reader) = (home(), satellite(sat1()), satellite(sat2()));
    let k = key("ckpt/step-1");
    lease_and_cache(&mut home, &mut reader, "ckpt/", &k, 0);

    let acquire = one_message(&writer.acquire_write_lease(s(100), &home_site(), LeaseScope::new(bucket(), "ckpt/")));
    let events = home.on_message(h(110), &sat1(), acquire);
    let recall = reply_to(&events, &sat2());
    assert!(matches!(recall, Message::RecallReadLease { .. }));
    assert!(home_sends(&events).iter().all(|o| o.to != sat1()), "granted before the readers were recalled");
    let ack = one_message(&reader.on_message(s(120), &home_site(), recall));
    assert!(!reader.is_cached(bucket(), &k) && reader.valid_leases(s(120)).is_empty());
    let events = home.on_message(h(130), &sat2(), ack);
    assert!(events.contains(&HomeEvent::WriteLeasesChanged));
    let grant = reply_to(&events, &sat1());
    writer.on_message(s(140), &home_site(), grant);

    // The holder acknowledges writes locally; everyone else is redirected.
    for (i, name) in ["ckpt/a", "ckpt/b", "ckpt/c"].iter().enumerate() {
        assert_eq!(writer.local_write(bucket(), &key(name), WriteKind::Put, format!("v{i}")), Some(i as u64 + 1));
    }
    assert_eq!(writer.read(s(150), bucket(), &k), ReadPlan::Local);
    assert_eq!(home.read(bucket(), &k), HomeRead::Redirect { holder: sat1() });
    assert_eq!(
        home.begin_write(h(150), bucket(), vec![k.clone()], WriteOrigin::Local).0,
        Gate::Redirect { holder: sat1() }
    );
    let ask = one_message(&reader.request_read_lease(s(150), &home_site(), LeaseScope::bucket(bucket())));
    assert!(matches!(reply_to(&home.on_message(h(150), &sat2(), ask), &sat2()), Message::Redirect { .. }));

    // Recall: the holder stops taking writes and flushes all three.
    let lease = home.write_leases()[0].lease;
    let recall = reply_to(&home.recall_write_lease(h(200), lease), &sat1());
    let flush = one_message(&writer.on_message(s(210), &home_site(), recall));
    let Message::FlushWrites { writes, .. } = &flush else { panic!("{flush:?}") };
    assert_eq!(writes.len(), 3);
    assert_eq!(writer.local_write(bucket(), &k, WriteKind::Put, "late".into()), None);
    assert!(writer.write_lease_busy(bucket(), &k));

    let events = home.on_message(h(220), &sat1(), flush.clone());
    let applied: Vec<_> = events
        .iter()
        .filter_map(|e| if let HomeEvent::ApplyFlushed { writes, .. } = e { Some(writes.len()) } else { None })
        .collect();
    assert_eq!(applied, vec![3]);
    // A duplicate of the flush applies nothing twice.
    let dup = home.on_message(h(230), &sat1(), flush);
    assert!(!dup.iter().any(|e| matches!(e, HomeEvent::ApplyFlushed { .. })));
    let release = one_message(&writer.on_message(s(240), &home_site(), reply_to(&events, &sat1())));
    assert!(matches!(release, Message::ReleaseWriteLease { flushed_upto: 3, .. }));
    // Regression: once its release is sent, home may take writes at any
    // moment, so the holder no longer serves the prefix as its own.
    assert_ne!(writer.read(s(245), bucket(), &k), ReadPlan::Local);
    let events = home.on_message(h(250), &sat1(), release);
    assert!(events.contains(&HomeEvent::WriteLeasesChanged));
    writer.on_message(s(260), &home_site(), reply_to(&events, &sat1()));
    assert!(writer.write_lease_state().is_empty());
    assert_eq!(home.read(bucket(), &k), HomeRead::Local { cacheable: true });
}

fn write_lease(home: &mut HomeSite, sat: &mut SatelliteSite, prefix: &str) {
    let acquire = one_message(&sat.acquire_write_lease(s(0), &home_site(), LeaseScope::new(bucket(), prefix)));
    let grant = reply_to(&home.on_message(h(0), sat.site(), acquire), sat.site());
    sat.on_message(s(0), &home_site(), grant);
}

#[test]
fn operator_revoke_declares_unflushed_writes_lost_and_the_holder_discards_them() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    write_lease(&mut home, &mut sat, "ckpt/");
    sat.local_write(bucket(), &key("ckpt/1"), WriteKind::Put, "a".into());
    let flush = one_message(&sat.tick(s(10)));
    home.on_message(h(20), &sat1(), flush); // applied; the ack is lost
    sat.local_write(bucket(), &key("ckpt/2"), WriteKind::Put, "b".into());
    let persisted = sat.write_lease_state();
    drop(sat); // kill -9

    let lease = home.write_leases()[0].lease;
    let (statement, events) = home.revoke_write_lease(h(1_000), lease).expect("held");
    assert_eq!(statement.lost_after, 1);
    assert_eq!(statement.holder, sat1());
    assert!(events.contains(&HomeEvent::WriteLeasesChanged));
    assert_eq!(home.read(bucket(), &key("ckpt/2")), HomeRead::Local { cacheable: true });

    // The holder comes back with its durable state and tries to flush.
    let mut sat = SatelliteSite::start(sat1(), timing(), persisted, 1_000);
    assert_eq!(sat.local_write(bucket(), &key("ckpt/3"), WriteKind::Put, "c".into()), None);
    let flush = one_message(&sat.tick(s(2_000)));
    let revoked = reply_to(&home.on_message(h(2_010), &sat1(), flush), &sat1());
    let events = sat.on_message(s(2_020), &home_site(), revoked);
    let lost: Vec<u64> = events
        .iter()
        .flat_map(|e| if let SatelliteEvent::WritesLost { writes, .. } = e { writes.clone() } else { Vec::new() })
        .map(|w| w.seq)
        .collect();
    assert_eq!(lost, vec![2]);
    assert!(sat.write_lease_state().is_empty());
}

#[test]
fn a_restarted_satellite_trusts_no_read_lease() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    lease_and_cache(&mut home, &mut sat, "data/", &k, 0);
    let mut sat = SatelliteSite::start(sat1(), timing(), sat.write_lease_state(), 1_000);
    assert!(sat.valid_leases(s(100)).is_empty());
    assert_eq!(sat.read(s(100), bucket(), &k), ReadPlan::ReadThrough);
}

#[test]
fn a_restarted_home_waits_out_the_leases_it_forgot_and_keeps_write_leases() {
    let (mut home, mut sat, mut writer) = (home(), satellite(sat1()), satellite(sat2()));
    lease_and_cache(&mut home, &mut sat, "data/", &key("data/x"), 0);
    write_lease(&mut home, &mut writer, "ckpt/");
    let persisted = home.write_leases();

    let mut home = HomeSite::start(home_site(), timing(), 2, persisted, h(1_000), false);
    let (_, events) = home.begin_write(h(1_000), bucket(), vec![key("data/x")], WriteOrigin::Local);
    assert!(!ready(&events));
    assert!(!ready(&home.tick(h(1_000 + 10_600 - 1))));
    assert!(ready(&home.tick(h(1_000 + 10_600))));
    assert_eq!(home.read(bucket(), &key("ckpt/1")), HomeRead::Redirect { holder: sat2() });
    // A renewal of a lease of the previous incarnation is refused.
    let renew = one_message(&sat.tick(s(6_100)));
    let answer = reply_to(&home.on_message(h(1_100), &sat1(), renew), &sat1());
    assert!(matches!(answer, Message::LeaseUnknown { .. }));
    sat.on_message(s(6_200), &home_site(), answer);
    assert_eq!(sat.read(s(6_300), bucket(), &key("data/x")), ReadPlan::ReadThrough);
}

#[test]
fn a_late_duplicate_grant_is_given_back_not_kept_by_nobody() {
    // Regression: a resent acquisition answered after the satellite had moved
    // on left home believing in a lease the satellite never held.
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let stale = Message::AcquireWriteLease { req: orbit_site::RequestId(77), scope: LeaseScope::bucket(bucket()) };
    let grant = reply_to(&home.on_message(h(0), &sat1(), stale), &sat1());
    let give_back = one_message(&sat.on_message(s(0), &home_site(), grant));
    assert!(matches!(give_back, Message::ReleaseWriteLease { .. }));
    let events = home.on_message(h(10), &sat1(), give_back);
    assert!(events.contains(&HomeEvent::WriteLeasesChanged));
    assert!(home.write_leases().is_empty());
}

#[test]
fn a_second_request_of_the_holder_never_gets_the_lease_it_is_giving_back() {
    // Regression: the same lease id granted to two requests of one holder was
    // released by one and kept by the other.
    let (mut home, mut sat) = (home(), satellite(sat1()));
    write_lease(&mut home, &mut sat, "ckpt/");
    let other =
        Message::AcquireWriteLease { req: orbit_site::RequestId(99), scope: LeaseScope::new(bucket(), "ckpt/") };
    let answer = reply_to(&home.on_message(h(10), &sat1(), other), &sat1());
    assert!(matches!(answer, Message::Refused { .. }), "{answer:?}");
}

#[test]
fn a_restored_write_lease_takes_no_write_until_home_confirms_it() {
    // Regression: a holder killed right after its release was processed came
    // back, acknowledged writes under a lease home had dropped, and lost them.
    let (mut home, mut sat) = (home(), satellite(sat1()));
    write_lease(&mut home, &mut sat, "ckpt/");
    let persisted = sat.write_lease_state();
    let lease = persisted[0].lease;
    let release = one_message(&sat.release_write_lease(s(10), &home_site(), lease));
    home.on_message(h(20), &sat1(), release); // released at home; the answer is lost with the crash

    let mut sat = SatelliteSite::start(sat1(), timing(), persisted, 1_000);
    assert_eq!(sat.local_write(bucket(), &key("ckpt/1"), WriteKind::Put, "a".into()), None);
    assert!(sat.write_lease_busy(bucket(), &key("ckpt/1")));
    let probe = one_message(&sat.tick(s(100)));
    let answer = reply_to(&home.on_message(h(110), &sat1(), probe), &sat1());
    let events = sat.on_message(s(120), &home_site(), answer);
    assert!(matches!(events[..], [SatelliteEvent::WriteLeaseReleased { .. }]), "{events:?}");
    assert!(sat.write_lease_state().is_empty());
    assert!(!sat.write_lease_busy(bucket(), &key("ckpt/1")));
}

#[test]
fn a_read_lease_recalled_before_its_grant_arrives_is_never_taken() {
    // Regression (found by the random schedules): the recall overtook the
    // grant, the satellite acknowledged a lease it did not know, home forgot
    // the lease, and the grant arriving afterwards made a lease nobody would
    // ever invalidate.
    let (mut home, mut reader, mut writer) = (home(), satellite(sat1()), satellite(sat2()));
    let ask = one_message(&reader.request_read_lease(s(0), &home_site(), LeaseScope::bucket(bucket())));
    let grant = reply_to(&home.on_message(h(10), &sat1(), ask.clone()), &sat1());
    let acquire = one_message(&writer.acquire_write_lease(s(20), &home_site(), LeaseScope::new(bucket(), "b/")));
    let recall = reply_to(&home.on_message(h(30), &sat2(), acquire), &sat1());
    let ack = one_message(&reader.on_message(s(40), &home_site(), recall));
    home.on_message(h(50), &sat1(), ack);
    assert!(home.read_leases().is_empty());
    reader.on_message(s(60), &home_site(), grant);
    assert!(reader.valid_leases(s(70)).is_empty(), "took a lease home has forgotten");
    // The request is still pending and is sent again.
    assert!(matches!(one_message(&reader.tick(s(600))), Message::GrantReadLease { .. }));
}

#[test]
fn a_new_lease_request_never_extends_a_lease_past_an_unacknowledged_invalidation() {
    // Regression (found by the random schedules): a second request for the
    // same scope was answered with the same lease, renewed, and the
    // satellite extended it without ever seeing the invalidation it missed.
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let k = key("data/x");
    lease_and_cache(&mut home, &mut sat, "data/", &k, 0);
    let first = home.read_leases()[0].0;
    let (_, _lost) = home.begin_write(h(100), bucket(), vec![k.clone()], WriteOrigin::Local);
    let again = Message::GrantReadLease { req: orbit_site::RequestId(500), scope: LeaseScope::new(bucket(), "data/") };
    let answer = reply_to(&home.on_message(h(200), &sat1(), again), &sat1());
    let Message::ReadLeaseGranted { lease, .. } = answer else { panic!("{answer:?}") };
    assert_ne!(lease, first);
    // The write still waits for the first lease, and only until its old bound.
    assert!(!ready(&home.tick(h(10 + 10_600 - 1))));
    assert!(ready(&home.tick(h(10 + 10_600))));
}

#[test]
fn a_write_drops_the_listings_that_show_its_key_and_only_those() {
    let (mut home, mut sat) = (home(), satellite(sat1()));
    let ask = one_message(&sat.request_read_lease(s(0), &home_site(), LeaseScope::new(bucket(), "data/")));
    sat.on_message(s(20), &home_site(), reply_to(&home.on_message(h(10), &sat1(), ask), &sat1()));
    // A listing needs a lease over all of it.
    assert_eq!(sat.list(s(30), bucket(), "other/"), ReadPlan::ReadThrough);
    assert_eq!(sat.list(s(30), bucket(), ""), ReadPlan::ReadThrough);
    for prefix in ["data/", "data/a/", "data/b/"] {
        let ReadPlan::Fetch(f) = sat.list(s(30), bucket(), prefix) else { panic!("{prefix}") };
        assert!(sat.complete_fetch(s(40), f, true));
        assert_eq!(sat.list(s(50), bucket(), prefix), ReadPlan::Cached);
    }
    let (_, events) = home.begin_write(h(60), bucket(), vec![key("data/a/new")], WriteOrigin::Local);
    sat.on_message(s(70), &home_site(), reply_to(&events, &sat1()));
    assert!(matches!(sat.list(s(80), bucket(), "data/"), ReadPlan::Fetch(_)));
    assert!(matches!(sat.list(s(80), bucket(), "data/a/"), ReadPlan::Fetch(_)));
    assert_eq!(sat.list(s(80), bucket(), "data/b/"), ReadPlan::Cached);
}

#[test]
fn a_refusal_ends_a_request_unless_home_is_only_busy() {
    let mut sat = satellite(sat1());
    let ask = one_message(&sat.request_read_lease(s(0), &home_site(), LeaseScope::bucket(bucket())));
    let Message::GrantReadLease { req, .. } = ask else { panic!() };
    let busy = Message::Refused { req, reason: orbit_site::Refusal::Busy };
    assert!(sat.on_message(s(10), &home_site(), busy).is_empty());
    assert!(matches!(one_message(&sat.tick(s(600))), Message::GrantReadLease { .. }), "busy: sent again");
    let not_home = Message::Refused { req, reason: orbit_site::Refusal::NotHome };
    let events = sat.on_message(s(700), &home_site(), not_home);
    assert!(matches!(events[..], [SatelliteEvent::Refused { .. }]), "{events:?}");
    assert!(sat_sends(&sat.tick(s(2_000))).is_empty(), "a refused request is not sent again");
}

#[test]
fn a_forwarded_write_to_a_write_leased_prefix_is_redirected_and_not_applied() {
    let (mut home, mut holder, mut other) = (home(), satellite(sat1()), satellite(sat2()));
    write_lease(&mut home, &mut holder, "ckpt/");
    let (req, events) = other.forward_write(&home_site(), bucket(), key("ckpt/1"), WriteKind::Put);
    let answer = reply_to(&home.on_message(h(10), &sat2(), one_message(&events)), &sat2());
    let events = other.on_message(s(20), &home_site(), answer);
    assert!(
        matches!(&events[..], [SatelliteEvent::Redirected { req: r, holder, .. }] if *r == req && *holder == sat1())
    );
}
