//! Time as the lease protocol sees it: a monotonic instant of a site's own
//! clock, passed in by the caller so tests control it, and the timing bounds.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An instant of one site's monotonic clock, in nanoseconds since an
/// arbitrary origin. Instants of two different sites are never compared: the
/// protocol only ever measures intervals on one clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(u64);

impl MonoTime {
    pub const fn from_nanos(n: u64) -> Self {
        Self(n)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating (an instant beyond the end of time never arrives).
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// The timing parameters both sides must agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseTiming {
    /// How long a read lease lasts, counted by the satellite from when it sent
    /// its request.
    pub read_lease: Duration,
    /// The most the rate of one site's clock may exceed another's, as a
    /// fraction (0.01 = one clock may run 1% faster than the other).
    pub drift: f64,
    /// Added on top of the drift bound: covers the granularity of timers and
    /// scheduling delay between a satellite's validity check and its reading
    /// of the cached entry. (A response still streaming after the lease ended
    /// is fine: the read began before any write that follows.)
    pub margin: Duration,
    /// A satellite renews a lease in use once less than this remains.
    pub renew_before: Duration,
    /// How often unanswered requests and invalidations are sent again.
    pub retry_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            read_lease: Duration::from_secs(10),
            drift: 0.01,
            margin: Duration::from_millis(500),
            renew_before: Duration::from_secs(4),
            retry_every: Duration::from_millis(500),
        }
    }
}

impl LeaseTiming {
    /// How long after it granted or renewed a lease (by its own clock) the
    /// home site may take the lease as surely expired at the holder:
    /// `duration * (1 + drift) + margin`. The holder stops serving at
    /// `asked_at + duration` by its own clock, and asked_at came before the
    /// grant in real time, so if the two clocks' rates differ by at most
    /// `drift` the holder has stopped by then.
    pub fn surely_expired_after(&self, duration: Duration) -> Duration {
        duration.mul_f64(1.0 + self.drift.max(0.0)) + self.margin
    }

    /// Checks the parameters once, at start-up, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.read_lease.is_zero() {
            return Err("lease timing: read_lease must be positive".into());
        }
        if !(self.drift.is_finite() && self.drift >= 0.0 && self.drift < 1.0) {
            return Err("lease timing: drift must be in [0, 1)".into());
        }
        if self.renew_before >= self.read_lease {
            return Err("lease timing: renew_before must be shorter than read_lease".into());
        }
        if self.retry_every.is_zero() {
            return Err("lease timing: retry_every must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surely_expired_is_duration_stretched_by_drift_plus_margin() {
        let t = LeaseTiming {
            read_lease: Duration::from_secs(10),
            drift: 0.01,
            margin: Duration::from_millis(500),
            ..LeaseTiming::default()
        };
        assert_eq!(t.surely_expired_after(t.read_lease), Duration::from_millis(10_600));
    }

    #[test]
    fn bad_timing_names_the_field() {
        let t = LeaseTiming { drift: -1.0, ..LeaseTiming::default() };
        assert!(t.validate().unwrap_err().contains("drift"));
        assert!(LeaseTiming::default().validate().is_ok());
    }
}
