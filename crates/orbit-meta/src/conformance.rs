//! One behaviour suite that every [`MetaStore`] implementation must pass.

use crate::{MetaError, MetaStore, MetaStoreExt, Table, Txn};
use std::ops::Bound;

pub async fn run_all(store: &dyn MetaStore) {
    put_get_delete(store).await;
    scans_are_ordered_and_bounded(store).await;
    conditions_guard_the_whole_commit(store).await;
    prefix_helpers(store).await;
    counters_add_and_bound(store).await;
}

async fn put_get_delete(s: &dyn MetaStore) {
    assert_eq!(s.get(Table::Tenants, b"a").await.unwrap(), None);
    s.commit(Txn::new().put(Table::Tenants, b"a".to_vec(), b"1".to_vec())).await.unwrap();
    assert_eq!(s.get(Table::Tenants, b"a").await.unwrap(), Some(b"1".to_vec()));
    // Tables are separate namespaces.
    assert_eq!(s.get(Table::Users, b"a").await.unwrap(), None);
    s.commit(Txn::new().delete(Table::Tenants, b"a".to_vec())).await.unwrap();
    assert_eq!(s.get(Table::Tenants, b"a").await.unwrap(), None);
}

async fn scans_are_ordered_and_bounded(s: &dyn MetaStore) {
    let mut txn = Txn::new();
    for k in ["b/2", "b/10", "a", "b/1", "c", "b/\u{ff}"] {
        txn.push_put(Table::Objects, k.as_bytes().to_vec(), k.as_bytes().to_vec());
    }
    s.commit(txn).await.unwrap();
    let all = s.scan(Table::Objects, Bound::Unbounded, Bound::Unbounded, 100).await.unwrap();
    let keys: Vec<_> = all.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect();
    assert_eq!(keys, ["a", "b/1", "b/10", "b/2", "b/\u{ff}", "c"]);
    let two = s.scan(Table::Objects, Bound::Excluded(b"a".to_vec()), Bound::Unbounded, 2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].0, b"b/1");
    let none =
        s.scan(Table::Objects, Bound::Included(b"z".to_vec()), Bound::Excluded(b"a".to_vec()), 10).await.unwrap();
    assert!(none.is_empty());
}

async fn conditions_guard_the_whole_commit(s: &dyn MetaStore) {
    s.commit(Txn::new().put(Table::Buckets, b"x".to_vec(), b"v1".to_vec())).await.unwrap();
    // A failing condition writes nothing, not even the ops that came first.
    let err = s
        .commit(
            Txn::new()
                .require_equals(Table::Buckets, b"x".to_vec(), b"other".to_vec())
                .put(Table::Buckets, b"y".to_vec(), b"1".to_vec())
                .put(Table::Buckets, b"x".to_vec(), b"v2".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Conflict));
    assert_eq!(s.get(Table::Buckets, b"y").await.unwrap(), None);
    assert_eq!(s.get(Table::Buckets, b"x").await.unwrap(), Some(b"v1".to_vec()));

    s.commit(Txn::new().require_equals(Table::Buckets, b"x".to_vec(), b"v1".to_vec()).put(
        Table::Buckets,
        b"x".to_vec(),
        b"v2".to_vec(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        s.commit(Txn::new().require_absent(Table::Buckets, b"x".to_vec())).await,
        Err(MetaError::Conflict)
    ));
    s.commit(Txn::new().require_absent(Table::Buckets, b"nope".to_vec())).await.unwrap();

    s.commit(Txn::new().put(Table::Parts, b"p/1".to_vec(), b"".to_vec())).await.unwrap();
    assert!(matches!(
        s.commit(Txn::new().require_prefix_empty(Table::Parts, b"p/".to_vec())).await,
        Err(MetaError::Conflict)
    ));
    s.commit(Txn::new().require_prefix_empty(Table::Parts, b"q/".to_vec())).await.unwrap();
    s.commit(Txn::new().require_prefix_empty(Table::Parts, b"p/1x".to_vec())).await.unwrap();
}

async fn prefix_helpers(s: &dyn MetaStore) {
    let mut txn = Txn::new();
    for k in ["pre/a", "pre/b", "pre/c", "prf", "pr"] {
        txn.push_put(Table::Gc, k.as_bytes().to_vec(), b"".to_vec());
    }
    s.commit(txn).await.unwrap();
    let all = s.scan_prefix(Table::Gc, b"pre/", None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    let after = s.scan_prefix(Table::Gc, b"pre/", Some(b"pre/a"), 10).await.unwrap();
    assert_eq!(after.iter().map(|(k, _)| k.as_slice()).collect::<Vec<_>>(), [b"pre/b", b"pre/c"]);
    assert_eq!(crate::prefix_end(b"ab\xff"), Some(b"ac".to_vec()));
    assert_eq!(crate::prefix_end(b"\xff\xff"), None);
}

async fn counters_add_and_bound(s: &dyn MetaStore) {
    let read = |v: Option<Vec<u8>>| v.map(|b| crate::counter_value(&b).unwrap());
    // An absent counter is 0; adds accumulate, negative ones too.
    s.commit(Txn::new().put(Table::Settings, b"other".to_vec(), b"x".to_vec())).await.unwrap();
    let mut t = Txn::new();
    t.push_add(Table::Usage, b"c".to_vec(), 7);
    t.push_add(Table::Usage, b"c".to_vec(), 5);
    s.commit(t).await.unwrap();
    assert_eq!(read(s.get(Table::Usage, b"c").await.unwrap()), Some(12));
    let mut t = Txn::new();
    t.push_add(Table::Usage, b"c".to_vec(), -2);
    s.commit(t).await.unwrap();
    assert_eq!(read(s.get(Table::Usage, b"c").await.unwrap()), Some(10));
    // The bound is checked before the ops: 10 <= 10 holds, 10 <= 9 does not and writes nothing.
    let mut t = Txn::new();
    t.push_require_at_most(Table::Usage, b"c".to_vec(), 10);
    t.push_add(Table::Usage, b"c".to_vec(), 1);
    s.commit(t).await.unwrap();
    let mut t = Txn::new().put(Table::Settings, b"side".to_vec(), b"1".to_vec());
    t.push_require_at_most(Table::Usage, b"c".to_vec(), 10);
    t.push_add(Table::Usage, b"c".to_vec(), 1);
    assert!(matches!(s.commit(t).await, Err(MetaError::Conflict)));
    assert_eq!(read(s.get(Table::Usage, b"c").await.unwrap()), Some(11));
    assert_eq!(s.get(Table::Settings, b"side").await.unwrap(), None);
    // An absent counter is within any non-negative bound.
    let mut t = Txn::new();
    t.push_require_at_most(Table::Usage, b"absent".to_vec(), 0);
    s.commit(t).await.unwrap();
    // A value that is not a counter is corrupt, not silently reset.
    let mut t = Txn::new();
    t.push_add(Table::Settings, b"other".to_vec(), 1);
    assert!(matches!(s.commit(t).await, Err(MetaError::Corrupt(_))));
    assert_eq!(s.get(Table::Settings, b"other").await.unwrap(), Some(b"x".to_vec()));
}
