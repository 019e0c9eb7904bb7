//! The home side: the write gate of buckets homed at this site.

use super::Sites;
use async_trait::async_trait;
use orbit_core::{BucketRecord, WriteGate, WritePass};
use orbit_site::{HomeEvent, HomeSite, MonoTime, WriteId, WriteOrigin};
use orbit_types::{Error, ObjectKey, Result};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::oneshot;

tokio::task_local! {
    /// The site a write at home is made for: a satellite's forwarded write,
    /// or a write-lease holder's flushed or written-through one. The holder
    /// of a write lease over the key may write it; nobody else may.
    pub(crate) static WRITING_FOR: orbit_site::SiteId;
}

/// The home state machine and the writes waiting at its gate.
pub(crate) struct HomeState {
    pub(crate) site: HomeSite,
    waiting: HashMap<WriteId, oneshot::Sender<()>>,
}

impl HomeState {
    pub(crate) fn new(site: HomeSite) -> Self {
        Self { site, waiting: HashMap::new() }
    }

    /// Wakes the writes whose gate opened; returns the other events.
    fn settle(&mut self, events: Vec<HomeEvent>) -> Vec<HomeEvent> {
        let mut rest = Vec::new();
        for e in events {
            match e {
                HomeEvent::WriteReady(id) => {
                    if let Some(tx) = self.waiting.remove(&id) {
                        let _ = tx.send(());
                    }
                }
                other => rest.push(other),
            }
        }
        rest
    }

    pub(crate) fn tick(&mut self, now: MonoTime) -> Vec<HomeEvent> {
        let before = self.site.read_leases().len();
        let events = self.site.tick(now);
        let after = self.site.read_leases().len();
        // A tick only drops leases that surely expired (releases and recalls
        // come as messages).
        if before > after {
            metrics::counter!("orbit_lease_expired_total").increment((before - after) as u64);
        }
        super::metrics::set_granted(after);
        self.settle(events)
    }

    pub(crate) fn on_message(
        &mut self,
        now: MonoTime,
        from: &orbit_site::SiteId,
        message: orbit_site::Message,
    ) -> Vec<HomeEvent> {
        let events = self.site.on_message(now, from, message);
        self.settle(events)
    }

    pub(crate) fn recall_write_lease(&mut self, now: MonoTime, lease: orbit_site::LeaseId) -> Vec<HomeEvent> {
        let events = self.site.recall_write_lease(now, lease);
        self.settle(events)
    }

    fn end(&mut self, now: MonoTime, write: WriteId, committed: bool) -> Vec<HomeEvent> {
        self.waiting.remove(&write);
        let events = if committed { self.site.finish_write(now, write) } else { self.site.abort_write(now, write) };
        self.settle(events)
    }
}

/// orbit-core's write gate, over [`HomeSite`].
pub(crate) struct Gate {
    pub(crate) sites: Sites,
}

/// Abandons a write whose caller went away while it waited.
struct Pending {
    sites: Sites,
    write: Option<WriteId>,
}

impl Pending {
    fn into_pass(mut self) -> WritePass {
        let Some(write) = self.write.take() else { return WritePass::free() };
        let sites = self.sites.clone();
        WritePass::new(move |committed| sites.end_write(write, committed))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(write) = self.write.take() {
            self.sites.end_write(write, false);
        }
    }
}

impl Sites {
    fn end_write(&self, write: WriteId, committed: bool) {
        let now = self.inner.clock.now();
        let events = self.inner.home.lock().map(|mut h| h.end(now, write, committed)).unwrap_or_default();
        self.home_events(events);
    }
}

#[async_trait]
impl WriteGate for Gate {
    async fn open(&self, bucket: &BucketRecord, keys: &[String]) -> Result<WritePass> {
        let keys = keys.iter().map(|k| ObjectKey::new(k)).collect::<std::result::Result<Vec<_>, _>>()?;
        let inner = &self.sites.inner;
        let started = Instant::now();
        let (write, ready, events) = {
            let mut home = inner.home.lock().map_err(|_| Error::Internal("home lease state poisoned".into()))?;
            let now = inner.clock.now();
            let (gate, events) = home.site.begin_write(now, bucket.id, keys, WriteOrigin::Local);
            let write = match gate {
                orbit_site::Gate::Proceed(w) => w,
                // No read lease overlaps a write lease (the acquisition
                // recalled them, and grants over it are redirected), so the
                // holder's own writes need no invalidation.
                orbit_site::Gate::Redirect { holder } if WRITING_FOR.try_with(|s| *s == holder).unwrap_or(false) => {
                    return Ok(WritePass::free());
                }
                orbit_site::Gate::Redirect { holder } => {
                    return Err(Error::Unavailable(format!(
                        "site `{holder}` holds a write lease over the key: it takes the writes of that prefix until \
                         it gives the lease back"
                    )));
                }
            };
            let ready = events.contains(&HomeEvent::WriteReady(write));
            let rx = if ready {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                home.waiting.insert(write, tx);
                Some(rx)
            };
            (write, rx, home.settle(events))
        };
        let pending = Pending { sites: self.sites.clone(), write: Some(write) };
        self.sites.home_events(events);
        if let Some(rx) = ready {
            // Ends once every covering lease is invalidated or surely expired
            // (the ticker drives expiries), or with the site going down.
            rx.await.map_err(|_| Error::Unavailable("the site is shutting down".into()))?;
            inner.stats.record_gate_wait(started.elapsed());
        }
        Ok(pending.into_pass())
    }

    fn key_held_elsewhere(&self, bucket: &BucketRecord, key: &str) -> bool {
        let Ok(key) = ObjectKey::new(key) else { return false };
        self.sites.inner.home.lock().is_ok_and(|h| h.site.write_lease_holder(bucket.id, &key).is_some())
    }

    fn listing_held_elsewhere(&self, bucket: &BucketRecord, prefix: &str) -> bool {
        self.sites
            .inner
            .home
            .lock()
            .is_ok_and(|h| matches!(h.site.list(bucket.id, prefix), orbit_site::HomeRead::Redirect { .. }))
    }
}
