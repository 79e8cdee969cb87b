//! How a read judges its hits and stamps its fills: the hooks the client uses for tags,
//! pending writes and holds, and for soft invalidation.

use std::sync::Arc;

use async_trait::async_trait;

use crate::tier::Hit;
use crate::{Key, Tag};

/// What a read makes of a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Current,
    /// It was invalidated this long ago, but recently enough to be served (marked
    /// [`super::Source::Stale`]) while one caller reloads it.
    Stale(std::time::Duration),
    /// It was invalidated: a miss.
    Invalid,
}

/// Judges hits before they are served.
#[async_trait]
pub trait Validate: Send + Sync {
    /// What to make of `hit`, found under `key`.
    async fn validate(&self, key: &Key, hit: &Hit) -> Verdict;
}

/// The tags of a loaded value.
pub type TagsOf<T> = Arc<dyn Fn(&T) -> Vec<Tag> + Send + Sync>;

/// The tag sequence now: a load stamped with it began no earlier.
pub type TagClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How a read treats its hits and what its fills carry.
pub struct ReadOptions<T> {
    /// Judges hits (none: every hit is current).
    pub validate: Option<Arc<dyn Validate>>,
    /// The tag sequence (read just before the load begins) and the tags of a loaded
    /// value: a fill carries them, and is current while none is invalidated after that
    /// sequence.
    pub tags: Option<(TagClock, TagsOf<T>)>,
}

impl<T> Clone for ReadOptions<T> {
    fn clone(&self) -> Self {
        Self {
            validate: self.validate.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl<T> ReadOptions<T> {
    /// The tag sequence a load beginning now is at least as recent as, if fills carry tags.
    pub(crate) fn as_of(&self) -> Option<u64> {
        self.tags.as_ref().map(|(clock, _)| clock())
    }

    /// What a fill of `value` loaded at `as_of` carries: the sequence and its tags.
    pub(crate) fn stamp(&self, as_of: Option<u64>, value: &T) -> Option<(u64, Vec<Tag>)> {
        let (Some(as_of), Some((_, tags_of))) = (as_of, &self.tags) else {
            return None;
        };
        Some((as_of, tags_of(value)))
    }
}

impl<T> Default for ReadOptions<T> {
    fn default() -> Self {
        Self {
            validate: None,
            tags: None,
        }
    }
}

impl<T> std::fmt::Debug for ReadOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("validate", &self.validate.is_some())
            .field("tags", &self.tags.is_some())
            .finish()
    }
}
