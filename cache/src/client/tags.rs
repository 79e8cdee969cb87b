//! Tag versions as this instance knows them: Redis is the truth (a tag's version is the
//! tag sequence at which it was last invalidated); the local copy answers L1 hits, which
//! only happen while the backplane vouches for L1 (it is forgotten whenever the
//! backplane reconnects), and is the truth when there is no shared tier.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tier::{EntryTags, RedisTier};
use crate::{CacheError, Tag};

/// How many tag versions the local copy keeps before it starts over.
const MAX_KNOWN: usize = 200_000;

/// Whether an entry's tags still hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagCheck {
    /// None was invalidated after its load began.
    Current,
    /// One was; this instance learnt it at `since`.
    Invalidated {
        /// When the earliest such invalidation reached this instance.
        since: Instant,
    },
}

#[derive(Clone, Copy, Debug)]
struct Known {
    version: u64,
    learned: Instant,
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<Tag, Known>,
    /// The highest tag sequence this instance has seen.
    seq: u64,
    /// Without a shared tier: the version of every tag not in `known`.
    floor: u64,
}

#[derive(Debug)]
pub(crate) struct TagVersions {
    state: Mutex<State>,
    l2: Option<RedisTier>,
    /// How many tag versions the local copy keeps before it starts over.
    max_known: usize,
    /// Moves whenever the local copy changes; an entry checked at this epoch needs no
    /// second look.
    epoch: AtomicU64,
}

impl TagVersions {
    pub(crate) fn new(l2: Option<RedisTier>) -> Self {
        Self {
            state: Mutex::default(),
            l2,
            max_known: MAX_KNOWN,
            epoch: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The tag sequence a load beginning now is at least as recent as (never ahead of
    /// Redis: an entry stamped with it is judged conservatively).
    pub(crate) fn as_of(&self) -> u64 {
        let local = self.lock().seq;
        self.l2
            .as_ref()
            .map_or(local, |l2| l2.tag_sequence().max(local))
    }

    /// Whether the tags of an entry held in L1 still hold, from the local copy (asking
    /// Redis for the tags it has not seen yet).
    pub(crate) async fn check(&self, tags: &EntryTags) -> Result<TagCheck, CacheError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if tags.checked_at() == epoch {
            return Ok(TagCheck::Current);
        }
        let unknown: Vec<Tag> = {
            let state = self.lock();
            tags.names()
                .iter()
                .filter(|t| !state.known.contains_key(*t))
                .cloned()
                .collect()
        };
        if !unknown.is_empty()
            && let Some(l2) = &self.l2
        {
            let (seq, versions) = l2.read_tags(&unknown).await?;
            // Fetched, not heard: when they changed is unknown, so as long ago as can be.
            let long_ago = Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or_else(Instant::now);
            let mut state = self.lock();
            // Fetched tags count against the same bound as heard ones: a shop's
            // `pet:{id}` tags would otherwise grow the local copy without end.
            let over = state.known.len() + unknown.len() > self.max_known;
            if over {
                self.start_over(&mut state);
            }
            state.seq = state.seq.max(seq);
            for (tag, version) in unknown.into_iter().zip(versions) {
                state.known.entry(tag).or_insert(Known {
                    version,
                    learned: long_ago,
                });
            }
            drop(state);
            if over {
                self.changed();
            }
        }
        let state = self.lock();
        let mut since: Option<Instant> = None;
        for tag in tags.names() {
            let known = state.known.get(tag).copied().unwrap_or(Known {
                version: state.floor,
                learned: Instant::now(),
            });
            if known.version > tags.as_of() {
                since = Some(since.map_or(known.learned, |s| s.min(known.learned)));
            }
        }
        drop(state);
        Ok(match since {
            None => {
                tags.set_checked_at(epoch);
                TagCheck::Current
            }
            Some(since) => TagCheck::Invalidated { since },
        })
    }

    /// Records that `tags` were invalidated at sequence `seq` (heard from another
    /// instance, or done here).
    pub(crate) fn learn(&self, seq: u64, tags: &[Tag]) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.known.len() + tags.len() > self.max_known {
            self.start_over(&mut state);
        }
        state.seq = state.seq.max(seq);
        for tag in tags {
            let slot = state.known.entry(tag.clone()).or_insert(Known {
                version: 0,
                learned: now,
            });
            if seq > slot.version {
                *slot = Known {
                    version: seq,
                    learned: now,
                };
            }
        }
        drop(state);
        self.changed();
    }

    /// Forgets the local copy. Without a shared tier it is the truth, so every tag then
    /// counts as invalidated now (a cold L1, never a stale one).
    fn start_over(&self, state: &mut State) {
        state.known.clear();
        if self.l2.is_none() {
            state.seq += 1;
            state.floor = state.seq;
        }
    }

    /// Invalidates `tags` and returns their new version.
    pub(crate) async fn bump(&self, tags: &[Tag]) -> Result<u64, CacheError> {
        let seq = match &self.l2 {
            Some(l2) => l2.bump_tags(tags).await?,
            None => self.lock().seq + 1,
        };
        self.learn(seq, tags);
        Ok(seq)
    }

    /// Forgets the local copy (the backplane reconnected: what it missed is unknown).
    pub(crate) fn forget(&self) {
        if self.l2.is_some() {
            let mut state = self.lock();
            self.start_over(&mut state);
            drop(state);
            self.changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Entry;

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| Tag::new(n).unwrap()).collect()
    }

    #[tokio::test]
    async fn without_a_shared_tier_an_entry_holds_until_one_of_its_tags_is_bumped() {
        let v = TagVersions::new(None);
        let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["pet:1", "all"]));
        let t = entry.tags().unwrap();
        assert_eq!(v.check(t).await.unwrap(), TagCheck::Current);
        v.bump(&tags(&["pet:2"])).await.unwrap();
        assert_eq!(v.check(t).await.unwrap(), TagCheck::Current);
        let before = Instant::now();
        v.bump(&tags(&["all"])).await.unwrap();
        let TagCheck::Invalidated { since } = v.check(t).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since >= before);
        let fresh = Entry::new(&b"y"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        assert_eq!(
            v.check(fresh.tags().unwrap()).await.unwrap(),
            TagCheck::Current
        );
    }

    #[tokio::test]
    async fn starting_over_without_a_shared_tier_makes_every_older_entry_stale() {
        let v = TagVersions::new(None);
        let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["a"]));
        v.start_over(&mut v.lock());
        v.changed();
        assert!(matches!(
            v.check(entry.tags().unwrap()).await.unwrap(),
            TagCheck::Invalidated { .. }
        ));
    }

    #[tokio::test]
    async fn tags_fetched_from_redis_are_bounded_like_heard_ones() {
        let redis = crate::testing::RedisServer::spawn();
        let l2 = RedisTier::builder(redis.url()).prefix("t").build().unwrap();
        // The sequence starts from Redis' clock: learn it, as the client's first read does.
        l2.read_tags(&[]).await.unwrap();
        let mut v = TagVersions::new(Some(l2));
        v.max_known = 3;
        for id in 0..10 {
            let name = format!("pet:{id}");
            let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&[&name]));
            assert_eq!(
                v.check(entry.tags().unwrap()).await.unwrap(),
                TagCheck::Current
            );
            assert!(
                v.lock().known.len() <= 3,
                "the local copy outgrew its bound"
            );
        }
        // Starting over forgets nothing that matters: a bump still reaches old entries.
        let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["pet:0"]));
        v.bump(&tags(&["pet:0"])).await.unwrap();
        assert!(matches!(
            v.check(entry.tags().unwrap()).await.unwrap(),
            TagCheck::Invalidated { .. }
        ));
    }
}
