//! Time as the runtime tells it: milliseconds on a monotonic clock of its choosing.

use core::ops::{Add, Sub};

/// A point in time: milliseconds since an epoch the runtime picks (boot, process start).
/// Only differences matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

/// The earlier of two optional instants (`None` is "never").
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Duration {
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }
    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1000))
    }
    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long a peer may stay silent before it is gone: [`MISSED_HEARTBEATS`] intervals of
    /// `self` (saturating).
    pub const fn silence_limit(self) -> Duration {
        Duration(self.0.saturating_mul(MISSED_HEARTBEATS))
    }
}

/// Heartbeat intervals a peer may miss before the connection is considered gone.
pub const MISSED_HEARTBEATS: u64 = 3;

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}
