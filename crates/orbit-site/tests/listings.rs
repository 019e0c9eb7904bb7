//! Listing verdicts: home answers whether a listing may be cached, and a
//! satellite caches listing pages only under a lease and drops them when a
//! key they show is invalidated.

mod common;

use common::{bucket, key, timing};
use orbit_site::{
    Gate, HomeEvent, HomeRead, HomeSite, LeaseScope, Message, MonoTime, ReadPlan, SatelliteEvent, SatelliteSite,
    SiteId, WriteOrigin,
};

fn ms(n: u64) -> MonoTime {
    MonoTime::from_nanos(n * 1_000_000)
}

#[test]
fn a_listing_is_not_cacheable_while_a_write_under_its_prefix_is_pending() {
    let mut home = HomeSite::start(SiteId::new("home"), timing(), 1, Vec::new(), ms(0), true);
    assert_eq!(home.list(bucket(), "data/"), HomeRead::Local { cacheable: true });
    let (gate, events) = home.begin_write(ms(1), bucket(), vec![key("data/a")], WriteOrigin::Local);
    let Gate::Proceed(write) = gate else { panic!("no write lease, the write proceeds") };
    assert!(events.contains(&HomeEvent::WriteReady(write)), "no lease to wait for: ready at once");
    assert_eq!(home.list(bucket(), "data/"), HomeRead::Local { cacheable: false });
    assert_eq!(home.list(bucket(), ""), HomeRead::Local { cacheable: false }, "the whole bucket shows the key");
    assert_eq!(home.list(bucket(), "other/"), HomeRead::Local { cacheable: true });
    home.finish_write(ms(2), write);
    assert_eq!(home.list(bucket(), "data/"), HomeRead::Local { cacheable: true });
}

fn leased_satellite() -> SatelliteSite {
    let home = SiteId::new("home");
    let mut sat = SatelliteSite::start(SiteId::new("sat"), timing(), Vec::new(), 100);
    let events = sat.request_lease_for_test(&home);
    let Some(SatelliteEvent::Send(out)) = events.first() else { panic!("a lease request is sent") };
    let Message::GrantReadLease { req, scope } = out.message.clone() else { panic!("GrantReadLease") };
    let granted = Message::ReadLeaseGranted {
        req,
        lease: orbit_site::LeaseId { epoch: 1, seq: 1 },
        scope,
        duration: timing().read_lease,
    };
    sat.on_message(ms(1), &home, granted);
    sat
}

trait RequestLease {
    fn request_lease_for_test(&mut self, home: &SiteId) -> Vec<SatelliteEvent>;
}

impl RequestLease for SatelliteSite {
    fn request_lease_for_test(&mut self, home: &SiteId) -> Vec<SatelliteEvent> {
        self.request_read_lease(ms(0), home, LeaseScope::bucket(bucket()))
    }
}

#[test]
fn another_page_of_a_cached_prefix_is_fetched_under_the_lease_and_an_invalidation_drops_the_prefix() {
    let mut sat = leased_satellite();
    let ReadPlan::Fetch(first) = sat.list(ms(2), bucket(), "data/") else { panic!("leased: fetch") };
    assert!(sat.complete_fetch(ms(3), first, true));
    assert_eq!(sat.list(ms(4), bucket(), "data/"), ReadPlan::Cached);
    assert!(sat.is_listing_cached(bucket(), "data/"));
    let ReadPlan::Fetch(page2) = sat.refetch_listing(ms(5), bucket(), "data/") else { panic!("a second page") };
    // A write of a key the listing shows: both the cached prefix and the
    // page in flight are spoiled.
    let inv = Message::Invalidate {
        lease: orbit_site::LeaseId { epoch: 1, seq: 1 },
        write: orbit_site::WriteId(1),
        keys: vec![key("data/x")],
    };
    sat.on_message(ms(6), &SiteId::new("home"), inv);
    assert!(!sat.is_listing_cached(bucket(), "data/"));
    assert!(!sat.complete_fetch(ms(7), page2, true), "a page fetched across an invalidation is not kept");
    // Past the lease, no fetch under it.
    let after = ms(2 + timing().read_lease.as_millis() as u64);
    assert_eq!(sat.refetch_listing(after, bucket(), "data/"), ReadPlan::ReadThrough);
}
