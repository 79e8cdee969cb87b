//! Time to live: every entry has one, and it is never zero or unbounded.

use std::fmt;
use std::time::Duration;

use crate::CacheError;

/// A time to live: at least one millisecond, at most [`Ttl::MAX`].
///
/// There is no way to store an entry without one: every write of [`crate::tier::Cache`]
/// and [`crate::typed::TypedCache`] takes a `Ttl`, and a `Ttl` cannot be zero or infinite.
///
/// ```
/// use std::time::Duration;
/// use cache::Ttl;
///
/// let ttl = Ttl::new(Duration::from_secs(60)).unwrap();
/// assert_eq!(ttl.as_duration(), Duration::from_secs(60));
/// assert!(Ttl::new(Duration::ZERO).is_err());
/// const FIVE: Ttl = Ttl::secs(5); // checked at compile time in a const
/// assert_eq!(FIVE.as_millis(), 5_000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(Duration);

impl Ttl {
    /// The longest TTL accepted: 30 days. Longer-lived data does not belong in a cache.
    pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    /// The shortest TTL accepted: Redis `PX` counts whole milliseconds.
    pub const MIN: Duration = Duration::from_millis(1);

    /// A TTL of `d`, or [`CacheError::Config`] when `d` is below a millisecond or above [`Ttl::MAX`].
    pub fn new(d: Duration) -> Result<Self, CacheError> {
        if d < Self::MIN {
            return Err(CacheError::Config(format!(
                "a TTL must be at least 1ms, got {d:?}"
            )));
        }
        if d > Self::MAX {
            return Err(CacheError::Config(format!(
                "a TTL must be at most 30 days, got {d:?}"
            )));
        }
        Ok(Self(d))
    }

    /// A TTL of `n` seconds; panics (at compile time in a `const`) unless `1 <= n <= 30 days`.
    #[must_use]
    pub const fn secs(n: u64) -> Self {
        assert!(n >= 1 && n <= 30 * 24 * 3600, "TTL out of range");
        Self(Duration::from_secs(n))
    }

    /// A TTL of `n` milliseconds; panics (at compile time in a `const`) unless in range.
    #[must_use]
    pub const fn millis(n: u64) -> Self {
        assert!(n >= 1 && n <= 30 * 24 * 3600 * 1000, "TTL out of range");
        Self(Duration::from_millis(n))
    }

    /// The TTL as a [`Duration`].
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// The TTL in whole milliseconds (what Redis `PX` takes), at least 1.
    #[must_use]
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The smaller of this TTL and `remaining`, or `None` when `remaining` is under a millisecond.
    ///
    /// Used when an L2 hit is promoted: the L1 copy must not outlive the shared entry.
    #[must_use]
    pub fn clamp_to(self, remaining: Duration) -> Option<Self> {
        Self::new(self.0.min(remaining)).ok()
    }

    /// This TTL shortened by a random amount of up to `percent` % (never lengthened).
    ///
    /// Spreads the expiry of entries written together so a hot set does not expire at
    /// once. `percent` above 100 is treated as 100; the result stays at least 1ms.
    #[must_use]
    pub fn jittered(self, percent: u8) -> Self {
        if percent == 0 {
            return self;
        }
        let max_cut = self.0.as_secs_f64() * f64::from(percent.min(100)) / 100.0;
        let cut = rand::random::<f64>() * max_cut;
        let d = Duration::from_secs_f64((self.0.as_secs_f64() - cut).max(0.0));
        Self(d.max(Self::MIN))
    }
}

impl fmt::Debug for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ttl({:?})", self.0)
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = CacheError;
    fn try_from(d: Duration) -> Result<Self, Self::Error> {
        Self::new(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sub_millisecond_and_over_long_ttls_are_rejected() {
        assert!(Ttl::new(Duration::ZERO).is_err());
        assert!(Ttl::new(Duration::from_micros(999)).is_err());
        assert!(Ttl::new(Ttl::MAX + Duration::from_secs(1)).is_err());
        assert!(Ttl::new(Ttl::MAX).is_ok());
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_the_percentage() {
        let ttl = Ttl::secs(100);
        for _ in 0..1000 {
            let j = ttl.jittered(10).as_duration();
            assert!(j <= Duration::from_secs(100));
            assert!(j >= Duration::from_secs(90));
        }
        assert_eq!(ttl.jittered(0), ttl);
    }

    #[test]
    fn jitter_spreads_expiries() {
        let ttl = Ttl::secs(100);
        let distinct: std::collections::HashSet<_> = (0..100).map(|_| ttl.jittered(20)).collect();
        assert!(
            distinct.len() > 50,
            "jitter produced only {} values",
            distinct.len()
        );
    }

    #[test]
    fn clamping_never_lengthens_and_drops_sub_millisecond_remainders() {
        let ttl = Ttl::secs(60);
        assert_eq!(ttl.clamp_to(Duration::from_secs(5)), Some(Ttl::secs(5)));
        assert_eq!(ttl.clamp_to(Duration::from_secs(600)), Some(ttl));
        assert_eq!(ttl.clamp_to(Duration::ZERO), None);
    }
}
