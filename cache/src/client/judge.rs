//! The client's judge of hits, after the lookup: an entry carrying a tag that a pending
//! write or a strict write in progress concerns is a miss; so is an L1 entry of a key
//! or namespace a strict write holds, or of a namespace version that is no longer the
//! current one (the hold or the new version may have arrived while the lookup ran); an
//! L1 entry one of whose tags was invalidated is a miss, or, in a namespace with soft
//! invalidation, served stale for a bounded time while one caller reloads it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::holds::Holds;
use super::recovery::Recovery;
use super::tags::{TagCheck, TagVersions};
use super::versions::Versions;
use crate::Key;
use crate::tier::{Hit, TierKind};
use crate::typed::{Validate, Verdict};

#[derive(Debug)]
pub(crate) struct Judge {
    pub(crate) recovery: Arc<Recovery>,
    pub(crate) holds: Arc<Holds>,
    pub(crate) tags: Arc<TagVersions>,
    pub(crate) versions: Arc<Versions>,
    /// Soft invalidation: how long an invalidated entry may still be served.
    pub(crate) soft: Option<Duration>,
}

#[async_trait]
impl Validate for Judge {
    async fn validate(&self, key: &Key, hit: &Hit) -> Verdict {
        if hit.tier == TierKind::L1 {
            let (root, version) = key.root_and_version();
            if self.holds.blocks(root, Some(key))
                || version.is_some_and(|v| !self.versions.is_still(root, v))
            {
                return Verdict::Invalid;
            }
        }
        let Some(tags) = hit.entry.tags() else {
            return Verdict::Current;
        };
        if self.recovery.blocks_tags(tags.names()) || self.holds.blocks_tags(tags.names()) {
            return Verdict::Invalid;
        }
        if hit.tier == TierKind::L2 {
            // The read script judged it against Redis, where every invalidation lands
            // before any instance hears of it.
            return Verdict::Current;
        }
        match self.tags.check(tags).await {
            Ok(TagCheck::Current) => Verdict::Current,
            Ok(TagCheck::Invalidated { since }) => match (self.soft, since.elapsed()) {
                (Some(bound), age) if age <= bound => Verdict::Stale(age),
                _ => Verdict::Invalid,
            },
            Err(e) => {
                tracing::debug!(error = %e, "tag versions unreadable: a miss");
                Verdict::Invalid
            }
        }
    }
}
