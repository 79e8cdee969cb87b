//! Where a cache keeps its entries: the one topology type the service, the benchmarks
//! and the tests share.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::CacheError;

/// Which tiers sit in front of the source of truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// No cache: every read goes to the source ([`crate::Source::Bypass`]).
    None,
    /// The in-process tier only.
    L1,
    /// The shared Redis tier only.
    L2,
    /// In-process in front of Redis, kept coherent by the backplane.
    L1L2,
}

impl Topology {
    /// Every topology, in the order reports list them.
    pub const ALL: [Self; 4] = [Self::None, Self::L1, Self::L2, Self::L1L2];

    /// `none`, `l1`, `l2` or `l1+l2`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::L1L2 => "l1+l2",
        }
    }

    /// True when the in-process tier is one of the tiers.
    #[must_use]
    pub fn has_l1(self) -> bool {
        matches!(self, Self::L1 | Self::L1L2)
    }

    /// True when Redis is one of the tiers.
    #[must_use]
    pub fn has_l2(self) -> bool {
        matches!(self, Self::L2 | Self::L1L2)
    }

    /// The topology made of these tiers.
    #[must_use]
    pub fn of(l1: bool, l2: bool) -> Self {
        match (l1, l2) {
            (false, false) => Self::None,
            (true, false) => Self::L1,
            (false, true) => Self::L2,
            (true, true) => Self::L1L2,
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Topology {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Topology {
    type Err = CacheError;

    /// ```
    /// use cache::Topology;
    /// assert_eq!("l1+l2".parse::<Topology>().unwrap(), Topology::L1L2);
    /// assert!("l3".parse::<Topology>().unwrap_err().to_string().contains("none, l1, l2, l1+l2"));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                CacheError::Config(format!(
                    "unknown topology {s:?}: allowed values are none, l1, l2, l1+l2"
                ))
            })
    }
}
