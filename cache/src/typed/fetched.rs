//! What a read returns: the value, and where it came from.

use serde::Serialize;

use crate::tier::TierKind;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// The in-process tier.
    HitL1,
    /// The shared tier.
    HitL2,
    /// Not cached: the loader ran (or another caller's load was awaited).
    Miss,
    /// The cache was not used: caching is off ([`crate::Topology::None`]), or a write
    /// this instance could not yet tell Redis about concerns the key (see
    /// [`crate::CacheClient`]'s recovery). The loader ran.
    Bypass,
    /// The loader failed or timed out and the last good value was served instead
    /// (serve-stale, see [`crate::policy::StaleConfig`]): it may be older than the source.
    Stale,
}

impl Source {
    /// True for [`Source::HitL1`] and [`Source::HitL2`].
    #[must_use]
    pub fn is_hit(self) -> bool {
        matches!(self, Self::HitL1 | Self::HitL2)
    }

    /// True for [`Source::Stale`]: a fallback that may be older than the source.
    #[must_use]
    pub fn is_stale(self) -> bool {
        self == Self::Stale
    }

    /// The `X-Cache` header value: `HIT-L1`, `HIT-L2`, `MISS`, `BYPASS` or `STALE`.
    #[must_use]
    pub fn as_header(self) -> &'static str {
        match self {
            Self::HitL1 => "HIT-L1",
            Self::HitL2 => "HIT-L2",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale => "STALE",
        }
    }
}

impl From<TierKind> for Source {
    fn from(t: TierKind) -> Self {
        match t {
            TierKind::L1 => Self::HitL1,
            TierKind::L2 => Self::HitL2,
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched<T> {
    /// The value.
    pub value: T,
    /// Which tier answered, or whether the loader ran.
    pub source: Source,
}
