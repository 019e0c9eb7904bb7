//! The global namespace at run time: two and three sites in one process over
//! loopback peer listeners, a bucket homed at the first. Each test asserts
//! what a client sees (values, errors) and what crossed the wide area
//! (the runtime's counters), never how long something took.

mod common;

use common::*;
use orbit_core::ListQuery;
use orbit_types::{Error, Resource};
use std::time::Duration;

const BUCKET: &str = "data";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_satellite_serves_records_bytes_and_listings_from_its_cache_with_no_peer_traffic() {
    let w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    let data = pattern(700_000, 3); // three chunks of 256 KiB
    w.sites[0].ns.put_object(&h, BUCKET, "dir/a", put(&data)).await.unwrap();

    // No lease yet: read through from home, and a lease is asked for.
    assert_eq!(read(&w.sites[1], &s, BUCKET, "dir/a").await.unwrap(), data);
    assert_eq!(list(&w.sites[1], &s, BUCKET, "dir/").await.unwrap(), vec!["dir/a"]);
    leased(&w, 1).await;
    assert_eq!(w.sites[0].sites.table().granted.len(), 1, "home lists the lease it granted");
    // Under the lease: fetched once, then served from cache.
    assert_eq!(read(&w.sites[1], &s, BUCKET, "dir/a").await.unwrap(), data);
    assert_eq!(list(&w.sites[1], &s, BUCKET, "dir/").await.unwrap(), vec!["dir/a"]);
    let before = w.sites[1].sites.stats().snapshot();
    for _ in 0..3 {
        assert_eq!(read(&w.sites[1], &s, BUCKET, "dir/a").await.unwrap(), data);
        assert_eq!(list(&w.sites[1], &s, BUCKET, "dir/").await.unwrap(), vec!["dir/a"]);
    }
    let head = w.sites[1].ns.head_object(&s, BUCKET, "dir/a", &Default::default()).await.unwrap().0;
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.user_metadata.get("color").map(String::as_str), Some("blue"));
    let after = w.sites[1].sites.stats().snapshot();
    assert_eq!(after.hits - before.hits, 7, "3 reads, 3 listings and a HEAD served from cache");
    assert_eq!(after.fetches, before.fetches, "no record or listing fetched from home");
    assert_eq!(after.read_throughs, before.read_throughs);
    assert_eq!(after.chunks_fetched, before.chunks_fetched, "no byte fetched from home");
    // A prefetch at the satellite warms its cache from home.
    w.sites[0].ns.put_object(&h, BUCKET, "dir/b", put(&data)).await.unwrap();
    assert_eq!(w.sites[1].ns.warm_object(s.tenant_id, BUCKET, "dir/b").await.unwrap(), Some(data.len() as u64));
    let warmed = w.sites[1].sites.stats().snapshot().chunks_fetched;
    assert_eq!(read(&w.sites[1], &s, BUCKET, "dir/b").await.unwrap(), data);
    assert_eq!(w.sites[1].sites.stats().snapshot().chunks_fetched, warmed, "prefetched chunks are served from cache");
    // A missing key is cached as missing, too.
    let missing = read(&w.sites[1], &s, BUCKET, "dir/none").await;
    assert!(matches!(missing, Err(Error::NotFound(Resource::Object))), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_home_invalidates_every_satellite_before_it_is_acknowledged() {
    let w = World::new(&["home", "east", "west"]).await;
    let key = w.provision(BUCKET).await;
    let h = w.caller(0, &key).await;
    w.sites[0].ns.put_object(&h, BUCKET, "k", put(b"one")).await.unwrap();
    for i in 1..3 {
        let c = w.caller(i, &key).await;
        assert_eq!(read(&w.sites[i], &c, BUCKET, "k").await.unwrap(), b"one");
        leased(&w, i).await;
        assert_eq!(read(&w.sites[i], &c, BUCKET, "k").await.unwrap(), b"one");
        assert_eq!(list(&w.sites[i], &c, BUCKET, "").await.unwrap(), vec!["k"]);
    }
    for round in 0..5u8 {
        let value = vec![b'a' + round; 10];
        w.sites[0].ns.put_object(&h, BUCKET, "k", put(&value)).await.unwrap();
        // Acknowledged at home: no site may return the old value any more.
        for i in 1..3 {
            let c = w.caller(i, &key).await;
            assert_eq!(read(&w.sites[i], &c, BUCKET, "k").await.unwrap(), value, "round {round} at site {i}");
        }
    }
    w.sites[0].ns.put_object(&h, BUCKET, "k2", put(b"new")).await.unwrap();
    w.sites[0].ns.delete_object(&h, BUCKET, "k").await.unwrap();
    for i in 1..3 {
        let c = w.caller(i, &key).await;
        assert_eq!(list(&w.sites[i], &c, BUCKET, "").await.unwrap(), vec!["k2"], "the listing shows the writes");
        assert!(matches!(read(&w.sites[i], &c, BUCKET, "k").await, Err(Error::NotFound(Resource::Object))));
        assert!(w.sites[i].sites.stats().snapshot().invalidations_received >= 5);
    }
    let home = w.sites[0].sites.stats().snapshot();
    assert!(home.invalidations_sent >= 10, "{home:?}");
    assert!(home.gate_waits >= 5, "writes waited for the satellites' acknowledgements: {home:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_at_a_satellite_are_forwarded_to_home_with_the_callers_rights() {
    let w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    let data = pattern(600_000, 9);
    // A lease first, so the satellite has something to invalidate.
    assert!(read(&w.sites[1], &s, BUCKET, "f").await.is_err());
    leased(&w, 1).await;
    assert!(matches!(read(&w.sites[1], &s, BUCKET, "f").await, Err(Error::NotFound(Resource::Object))));
    let rec = w.sites[1].ns.put_object(&s, BUCKET, "f", put(&data)).await.unwrap();
    assert_eq!(rec.size, data.len() as u64);
    assert_eq!(read(&w.sites[0], &h, BUCKET, "f").await.unwrap(), data, "committed at home");
    assert_eq!(read(&w.sites[1], &s, BUCKET, "f").await.unwrap(), data, "and read back at the satellite");
    let src = orbit_core::CopySource { bucket: BUCKET.into(), key: "f".into(), conditions: Default::default() };
    w.sites[1]
        .ns
        .copy_object(&s, BUCKET, "g", src, orbit_core::MetadataDirective::Copy, Default::default())
        .await
        .unwrap();
    assert_eq!(read(&w.sites[1], &s, BUCKET, "g").await.unwrap(), data);
    w.sites[1].ns.delete_object(&s, BUCKET, "f").await.unwrap();
    assert!(matches!(read(&w.sites[0], &h, BUCKET, "f").await, Err(Error::NotFound(Resource::Object))));
    assert!(matches!(read(&w.sites[1], &s, BUCKET, "f").await, Err(Error::NotFound(Resource::Object))));
    assert_eq!(list(&w.sites[1], &s, BUCKET, "").await.unwrap(), vec!["g"]);
    assert_eq!(w.sites[1].sites.stats().snapshot().forwarded, 3);
    // Usage is counted at home only.
    assert!(
        w.sites[1]
            .meta
            .scan(orbit_meta::Table::Objects, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 10)
            .await
            .unwrap()
            .is_empty(),
        "the satellite never writes its own object table for the bucket"
    );

    // A read-only user is refused at the satellite already, and home checks too.
    let t = w.sites[0].dir.tenant_by_name(&"acme".parse().unwrap()).await.unwrap();
    let reader = w.sites[0].dir.create_user(&t, &"rita".parse().unwrap(), orbit_types::Role::ReadOnly).await.unwrap();
    let (rk, _) = w.sites[0].dir.create_key(&reader, None).await.unwrap();
    let forged = orbit_tenancy::Caller { role: orbit_types::Role::ReadWrite, ..w.caller(0, &rk.access_key_id).await };
    let refused = w.sites[1].ns.put_object(&forged, BUCKET, "x", put(b"no")).await;
    assert!(
        matches!(refused, Err(Error::NotFound(_) | Error::AccessDenied)),
        "home decides with its own records: {refused:?}"
    );
    // Copies between buckets of different homes, both ways: the bytes are
    // read where they are served and written where the destination lives.
    let mine = w.sites[1].ns.create_bucket(&s, "local").await.unwrap();
    assert_eq!(mine.home_site, "sat");
    let src = orbit_core::CopySource { bucket: BUCKET.into(), key: "g".into(), conditions: Default::default() };
    let copied =
        w.sites[1].ns.copy_object(&s, "local", "g", src, orbit_core::MetadataDirective::Copy, Default::default()).await;
    assert_eq!(copied.unwrap().size, data.len() as u64);
    assert_eq!(read(&w.sites[1], &s, "local", "g").await.unwrap(), data, "homed here, copied from home");
    let back = orbit_core::CopySource { bucket: "local".into(), key: "g".into(), conditions: Default::default() };
    w.sites[1]
        .ns
        .copy_object(&s, BUCKET, "from-sat", back, orbit_core::MetadataDirective::Copy, Default::default())
        .await
        .unwrap();
    assert_eq!(read(&w.sites[0], &h, BUCKET, "from-sat").await.unwrap(), data, "copied to home from the satellite");
    // Copy-source conditions are the copy's: a mismatch is 412.
    let stale = orbit_core::CopySource {
        bucket: BUCKET.into(),
        key: "g".into(),
        conditions: orbit_core::ReadConditions { if_match: Some("\"nope\"".into()), ..Default::default() },
    };
    let refused = w.sites[1]
        .ns
        .copy_object(&s, "local", "h", stale, orbit_core::MetadataDirective::Copy, Default::default())
        .await;
    assert!(matches!(refused, Err(Error::PreconditionFailed)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_satellite_never_serves_a_value_older_than_an_acknowledged_write() {
    let w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    w.sites[0].ns.put_object(&h, BUCKET, "k", put(b"old")).await.unwrap();
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"old");
    leased(&w, 1).await;
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"old");
    // Partition: neither site reaches the other.
    w.links[0].cut();
    w.links[1].cut();
    let home = w.sites[0].ns.clone();
    let write = tokio::spawn(async move { home.put_object(&h, BUCKET, "k", put(b"new")).await });
    // Until the write is acknowledged the satellite may serve the old value
    // (its lease still holds) or nothing; never afterwards.
    let mut served_old = 0;
    while !write.is_finished() {
        match read(&w.sites[1], &s, BUCKET, "k").await {
            Ok(v) => {
                assert_eq!(v, b"old");
                served_old += 1;
            }
            Err(e) => assert!(matches!(e, Error::Unavailable(_)), "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), write).await.unwrap().unwrap().unwrap();
    assert!(served_old > 0, "the lease kept serving the cached value during the partition");
    let after = read(&w.sites[1], &s, BUCKET, "k").await;
    assert!(matches!(after, Err(Error::Unavailable(_))), "lease expired, home unreachable: 503, not stale: {after:?}");
    assert!(matches!(list(&w.sites[1], &s, BUCKET, "").await, Err(Error::Unavailable(_))));
    assert_eq!(w.sites[0].sites.stats().snapshot().gate_waits, 1);
    // Healed: the new value, and a new lease.
    w.links[0].mend();
    w.links[1].mend();
    let mut healed = None;
    for _ in 0..100 {
        if let Ok(v) = read(&w.sites[1], &s, BUCKET, "k").await {
            healed = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healed.as_deref(), Some(&b"new"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_satellite_holds_no_lease_and_reads_what_home_has() {
    let mut w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    w.sites[0].ns.put_object(&h, BUCKET, "k", put(b"v1")).await.unwrap();
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v1");
    leased(&w, 1).await;
    w.restart(1).await;
    assert!(w.sites[1].sites.table().held.is_empty(), "no lease survives a restart");
    w.sites[0].ns.put_object(&h, BUCKET, "k", put(b"v2")).await.unwrap();
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v2");
    assert_eq!(w.sites[1].sites.stats().snapshot().read_throughs, 1);
    leased(&w, 1).await;
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v2");
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v2");
    assert_eq!(w.sites[1].sites.stats().snapshot().hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_home_waits_out_the_leases_of_its_previous_incarnation() {
    let mut w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let h = w.caller(0, &key).await;
    // Never granted: the first write after a restart does not wait.
    let epoch = w.sites[0].sites.table().home_epoch;
    w.restart(0).await;
    assert_eq!(w.sites[0].sites.table().home_epoch, epoch + 1);
    w.sites[0].ns.put_object(&h, BUCKET, "k", put(b"v1")).await.unwrap();
    assert_eq!(w.sites[0].sites.stats().snapshot().gate_waits, 0);

    let s = w.caller(1, &key).await;
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v1");
    leased(&w, 1).await;
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v1");
    // Home crashes having granted a lease it no longer remembers; the
    // satellite keeps serving under it. A write must wait until it surely expired.
    w.restart(0).await;
    assert!(w.sites[0].sites.table().granted.is_empty());
    let home = w.sites[0].ns.clone();
    let write = tokio::spawn(async move { home.put_object(&h, BUCKET, "k", put(b"v2")).await });
    // While the write waits, the satellite still serves v1. Once it sees v2,
    // home has applied the write and its acknowledgement is on the way: a
    // read overlapping the acknowledgement may see either value.
    let mut old_reads = 0;
    let mut new_seen: Option<std::time::Instant> = None;
    while !write.is_finished() {
        match read(&w.sites[1], &s, BUCKET, "k").await.as_deref() {
            Ok(b"v1") => {
                assert!(new_seen.is_none(), "v1 read after v2 was seen");
                old_reads += 1;
            }
            Ok(b"v2") => {
                let since = *new_seen.get_or_insert_with(std::time::Instant::now);
                assert!(since.elapsed() < Duration::from_secs(2), "v2 is visible but the write is not acknowledged");
            }
            Ok(other) => panic!("unexpected value {other:?}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(old_reads > 0, "the satellite served under its lease while the write waited");
    tokio::time::timeout(Duration::from_secs(10), write).await.unwrap().unwrap().unwrap();
    assert_eq!(w.sites[0].sites.stats().snapshot().gate_waits, 1, "the write waited out the recovery window");
    assert_eq!(read(&w.sites[1], &s, BUCKET, "k").await.unwrap(), b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_a_listing_are_cached_per_query_and_dropped_by_a_write_they_show() {
    let w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    for k in ["p/1", "p/2", "p/3", "q/1"] {
        w.sites[0].ns.put_object(&h, BUCKET, k, put(b"x")).await.unwrap();
    }
    list(&w.sites[1], &s, BUCKET, "p/").await.unwrap();
    leased(&w, 1).await;
    let page = |after: Option<&str>| ListQuery {
        prefix: "p/".into(),
        start_after: after.map(Into::into),
        max_keys: 2,
        ..Default::default()
    };
    let sat = &w.sites[1].ns;
    let first = sat.list_objects(&s, BUCKET, &page(None)).await.unwrap();
    let second = sat.list_objects(&s, BUCKET, &page(Some("p/2"))).await.unwrap();
    assert_eq!(first.objects.iter().map(|o| o.0.as_str()).collect::<Vec<_>>(), ["p/1", "p/2"]);
    assert!(first.is_truncated);
    assert_eq!(second.objects.iter().map(|o| o.0.as_str()).collect::<Vec<_>>(), ["p/3"]);
    let before = w.sites[1].sites.stats().snapshot();
    sat.list_objects(&s, BUCKET, &page(None)).await.unwrap();
    sat.list_objects(&s, BUCKET, &page(Some("p/2"))).await.unwrap();
    assert_eq!(w.sites[1].sites.stats().snapshot().hits - before.hits, 2);
    // A write outside the prefix leaves the pages; one inside drops them.
    w.sites[0].ns.put_object(&h, BUCKET, "q/2", put(b"x")).await.unwrap();
    let mid = w.sites[1].sites.stats().snapshot();
    sat.list_objects(&s, BUCKET, &page(Some("p/2"))).await.unwrap();
    assert_eq!(w.sites[1].sites.stats().snapshot().hits - mid.hits, 1);
    w.sites[0].ns.put_object(&h, BUCKET, "p/4", put(b"x")).await.unwrap();
    let second = sat.list_objects(&s, BUCKET, &page(Some("p/2"))).await.unwrap();
    assert_eq!(second.objects.iter().map(|o| o.0.as_str()).collect::<Vec<_>>(), ["p/3", "p/4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_at_a_satellite_is_forwarded_step_by_step_and_completes_at_home() {
    let w = World::new(&["home", "sat"]).await;
    let key = w.provision(BUCKET).await;
    let (h, s) = (w.caller(0, &key).await, w.caller(1, &key).await);
    let sat = &w.sites[1].ns;
    // Leased with the key cached as missing, so completion must invalidate it.
    assert!(read(&w.sites[1], &s, BUCKET, "ckpt/model").await.is_err());
    leased(&w, 1).await;
    assert!(matches!(read(&w.sites[1], &s, BUCKET, "ckpt/model").await, Err(Error::NotFound(Resource::Object))));
    let up =
        sat.create_upload(&s, BUCKET, "ckpt/model", Default::default(), Default::default(), None, None).await.unwrap();
    let upload_id = up.id.to_string();
    let first = pattern(5 << 20, 1);
    let second = pattern(1000, 2);
    let mut etags = Vec::new();
    for (n, data) in [(1u32, &first), (2, &second)] {
        let part = sat
            .upload_part(
                &s,
                BUCKET,
                "ckpt/model",
                &upload_id,
                n,
                body(data),
                Some(data.len() as u64),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        etags.push(part.etag);
    }
    let parts = sat.list_parts(&s, BUCKET, "ckpt/model", &upload_id, None, 1000).await.unwrap();
    assert_eq!(parts.parts.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
    let uploads = sat.list_uploads(&s, BUCKET, "ckpt/", None, None, None, 1000).await.unwrap();
    assert_eq!(uploads.uploads.len(), 1);
    let done = sat
        .complete_upload(
            &s,
            BUCKET,
            "ckpt/model",
            &upload_id,
            etags
                .iter()
                .enumerate()
                .map(|(i, e)| orbit_core::CompletedPart { number: i as u32 + 1, etag: e.clone(), checksum: None })
                .collect(),
            Default::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.parts_count, Some(2));
    let whole = [first.clone(), second.clone()].concat();
    assert_eq!(read(&w.sites[0], &h, BUCKET, "ckpt/model").await.unwrap(), whole);
    assert_eq!(read(&w.sites[1], &s, BUCKET, "ckpt/model").await.unwrap(), whole, "the missing entry was invalidated");
    // Part copies across homes, both ways: into an upload homed at home
    // from a bucket homed here, and into one homed here from home's bucket.
    let mine = sat.create_bucket(&s, "local").await.unwrap();
    assert_eq!(mine.home_site, "sat");
    sat.put_object(&s, "local", "src", put(&second)).await.unwrap();
    let copy_into = |bucket: &'static str, key: &'static str, from: (&'static str, &'static str), range| {
        let (sat, s) = (sat.clone(), s.clone());
        async move {
            let up =
                sat.create_upload(&s, bucket, key, Default::default(), Default::default(), None, None).await.unwrap();
            let id = up.id.to_string();
            let src =
                orbit_core::CopySource { bucket: from.0.into(), key: from.1.into(), conditions: Default::default() };
            let part = sat.upload_part_copy(&s, bucket, key, &id, 1, src, range).await?;
            let done = orbit_core::CompletedPart { number: 1, etag: part.etag, checksum: None };
            sat.complete_upload(&s, bucket, key, &id, vec![done], Default::default(), None).await
        }
    };
    copy_into(BUCKET, "ckpt/copied", ("local", "src"), None).await.unwrap();
    assert_eq!(read(&w.sites[0], &h, BUCKET, "ckpt/copied").await.unwrap(), second, "copied into home's upload");
    let range = Some(orbit_core::ByteRange::FromTo { first: 10, last: Some(1_000_009) });
    copy_into("local", "part", (BUCKET, "ckpt/model"), range).await.unwrap();
    assert_eq!(read(&w.sites[1], &s, "local", "part").await.unwrap(), whole[10..1_000_010], "a range of home's object");
    let past = Some(orbit_core::ByteRange::FromTo { first: 0, last: Some(whole.len() as u64) });
    let refused = copy_into("local", "past", (BUCKET, "ckpt/model"), past).await;
    assert!(matches!(refused, Err(Error::InvalidArgument(_))), "a copy range is never clamped: {refused:?}");

    // An aborted upload is gone at home too; an unknown one is NoSuchUpload.
    let up =
        sat.create_upload(&s, BUCKET, "ckpt/tmp", Default::default(), Default::default(), None, None).await.unwrap();
    sat.abort_upload(&s, BUCKET, "ckpt/tmp", &up.id.to_string()).await.unwrap();
    let gone = w.sites[0].ns.list_parts(&h, BUCKET, "ckpt/tmp", &up.id.to_string(), None, 10).await;
    assert!(matches!(gone, Err(Error::NotFound(Resource::Upload))), "{gone:?}");
    let unknown = sat.abort_upload(&s, BUCKET, "ckpt/tmp", &up.id.to_string()).await;
    assert!(matches!(unknown, Err(Error::NotFound(Resource::Upload))), "{unknown:?}");
}
