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

/// What this instance knows of one tag: its latest version and the one before, each
/// with when it learnt of it, and from which version on it has heard every bump.
#[derive(Clone, Copy, Debug)]
struct Known {
    version: u64,
    learned: Instant,
    /// The bump before `version`, as heard.
    prev: Option<(u64, Instant)>,
    /// Every bump after this version was heard here; of earlier ones, when they
    /// happened is unknown.
    complete_from: u64,
}

impl Known {
    /// A version read from Redis, not heard: when it changed is unknown.
    fn fetched(version: u64, long_ago: Instant) -> Self {
        Self {
            version,
            learned: long_ago,
            prev: None,
            complete_from: version,
        }
    }

    /// When this instance learnt of the first invalidation after `as_of` (`long_ago`
    /// when it cannot tell), or `None`: none since. The soft-invalidation bound runs
    /// from the first one: a later bump of the same tag does not restart it.
    fn first_after(&self, as_of: u64, long_ago: Instant) -> Option<Instant> {
        if self.version <= as_of {
            return None;
        }
        Some(match self.prev {
            Some((v, _)) if v <= as_of => self.learned,
            Some((_, t)) if as_of >= self.complete_from => t,
            None if as_of >= self.complete_from => self.learned,
            _ => long_ago,
        })
    }

    /// This tag bumped to `version` (newer than what is known), learnt `now`.
    fn bumped(self, version: u64, now: Instant) -> Self {
        Self {
            version,
            learned: now,
            prev: Some((self.version, self.learned)),
            complete_from: self.prev.map_or(self.complete_from, |(v, _)| v),
        }
    }
}

/// What a check goes by for one tag: what this instance knows of it, or what Redis said
/// of it during the check (the newer of the two: a hold may have made this instance
/// forget it meanwhile, or an older message taught it an older version). `None`: it
/// cannot be told (a shared tier whose version of it this check did not read), which
/// counts as invalidated long ago, never as current. Without a shared tier an unknown
/// tag is at the floor: nothing bumped it since the last start-over.
fn resolve(
    known: Option<Known>,
    fetched: Option<u64>,
    shared: bool,
    floor: u64,
    long_ago: Instant,
) -> Option<Known> {
    match (known, fetched) {
        (Some(k), Some(v)) if v > k.version => Some(Known::fetched(v, long_ago)),
        (Some(k), _) => Some(k),
        (None, Some(v)) => Some(Known::fetched(v, long_ago)),
        (None, None) if shared => None,
        (None, None) => Some(Known::fetched(floor, long_ago)),
    }
}

fn long_ago() -> Instant {
    Instant::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or_else(Instant::now)
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<Tag, Known>,
    /// The highest tag sequence this instance has seen.
    seq: u64,
    /// Without a shared tier: the version of every tag not in `known`.
    floor: u64,
    /// With a shared tier: Redis' tag sequence read once the backplane had subscribed
    /// (every bump after it is heard here), until the local copy starts over.
    heard_from: Option<u64>,
    /// How many times the local copy started over.
    resets: u64,
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
        // What Redis said of the unknown tags, in this check.
        let mut fetched: HashMap<Tag, u64> = HashMap::new();
        if !unknown.is_empty()
            && let Some(l2) = &self.l2
        {
            let (seq, versions) = l2.read_tags(&unknown).await?;
            fetched.extend(unknown.iter().cloned().zip(versions.iter().copied()));
            // Fetched, not heard: when they changed is unknown, so as long ago as can be.
            let long_ago = long_ago();
            let mut state = self.lock();
            // Fetched tags count against the same bound as heard ones: a shop's
            // `pet:{id}` tags would otherwise grow the local copy without end.
            let over = state.known.len() + unknown.len() > self.max_known;
            if over {
                self.start_over(&mut state);
            }
            state.seq = state.seq.max(seq);
            for (tag, version) in unknown.into_iter().zip(versions) {
                state
                    .known
                    .entry(tag)
                    .or_insert(Known::fetched(version, long_ago));
            }
            drop(state);
            if over {
                self.changed();
            }
        }
        let state = self.lock();
        let long_ago = long_ago();
        let mut since: Option<Instant> = None;
        for tag in tags.names() {
            let first = match resolve(
                state.known.get(tag).copied(),
                fetched.get(tag).copied(),
                self.l2.is_some(),
                state.floor,
                long_ago,
            ) {
                Some(known) => known.first_after(tags.as_of(), long_ago),
                None => Some(long_ago),
            };
            if let Some(first) = first {
                since = Some(since.map_or(first, |s| s.min(first)));
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
        // A tag first heard now: with a shared tier, every bump after `heard_from` was
        // heard (bumps before the backplane subscribed were not), so its history starts
        // there, or at this bump when that is unknown; without one, every bump since the
        // floor happened here.
        let complete_from = if self.l2.is_some() {
            state.heard_from.unwrap_or(seq)
        } else {
            state.floor
        };
        for tag in tags {
            match state.known.get_mut(tag) {
                Some(slot) if seq > slot.version => *slot = slot.bumped(seq, now),
                Some(_) => {}
                None => {
                    state.known.insert(
                        tag.clone(),
                        Known {
                            version: seq,
                            learned: now,
                            prev: None,
                            complete_from,
                        },
                    );
                }
            }
        }
        drop(state);
        self.changed();
    }

    /// Forgets the local copy. Without a shared tier it is the truth, so every tag then
    /// counts as invalidated now (a cold L1, never a stale one).
    fn start_over(&self, state: &mut State) {
        state.known.clear();
        state.heard_from = None;
        state.resets += 1;
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

    /// Forgets what this instance knows of `tags` (the next check of an entry carrying
    /// one asks Redis).
    pub(crate) fn forget_tags(&self, tags: &[Tag]) {
        if self.l2.is_some() && !tags.is_empty() {
            let mut state = self.lock();
            for tag in tags {
                state.known.remove(tag);
            }
            drop(state);
            self.changed();
        }
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

    /// The backplane has subscribed and this was forgotten: reads Redis' tag sequence,
    /// after which every bump is heard here, so that the first bump heard of a tag
    /// can date the entries loaded after it. Unread (Redis failed), a tag's history
    /// starts at its first heard bump.
    pub(crate) async fn hear_from_now(&self) {
        let Some(l2) = &self.l2 else {
            return;
        };
        let resets = self.lock().resets;
        if let Ok((seq, _)) = l2.read_tags(&[]).await {
            let mut state = self.lock();
            // Only if the copy did not start over meanwhile (another reconnect).
            if state.resets == resets {
                state.heard_from = Some(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Entry;

    #[test]
    fn a_tag_forgotten_while_it_is_checked_is_never_current_with_a_shared_tier() {
        let (now, long_ago) = (Instant::now(), super::long_ago());
        let at = |v| Known::fetched(v, now);
        // Forgotten between the fetch and the verdict, nothing fetched: invalid, not 0.
        assert!(resolve(None, None, true, 0, long_ago).is_none());
        // Without a shared tier an unknown tag is at the floor.
        assert_eq!(resolve(None, None, false, 7, long_ago).unwrap().version, 7);
        // Forgotten after the fetch: what Redis said.
        assert_eq!(
            resolve(None, Some(9), true, 0, long_ago).unwrap().version,
            9
        );
        // An older version learnt meanwhile does not hide the newer one Redis gave.
        assert_eq!(
            resolve(Some(at(5)), Some(9), true, 0, long_ago)
                .unwrap()
                .version,
            9
        );
        assert_eq!(
            resolve(Some(at(12)), Some(9), true, 0, long_ago)
                .unwrap()
                .version,
            12
        );
    }

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
    async fn an_entry_counts_as_invalidated_from_the_first_bump_after_its_load_not_the_last() {
        let v = TagVersions::new(None);
        let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        let t = entry.tags().unwrap();
        let before_first = Instant::now();
        v.bump(&tags(&["all"])).await.unwrap();
        let after_first = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        // Bumped again: the entry's soft bound still runs from the first bump.
        v.bump(&tags(&["all"])).await.unwrap();
        let TagCheck::Invalidated { since } = v.check(t).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since >= before_first && since <= after_first, "{since:?}");
        // And again: the first bump after its load is no longer known here, so it counts
        // from long ago (never from a later bump).
        v.bump(&tags(&["all"])).await.unwrap();
        let TagCheck::Invalidated { since } = v.check(t).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since.elapsed() > Duration::from_secs(60), "{since:?}");
        // An entry loaded between the bumps: from the first bump after its load.
        let later = Entry::new(&b"y"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        let before = Instant::now();
        v.bump(&tags(&["all"])).await.unwrap();
        let TagCheck::Invalidated { since } = v.check(later.tags().unwrap()).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since >= before);
    }

    #[tokio::test]
    async fn with_a_shared_tier_the_first_bump_heard_of_a_tag_cannot_date_older_entries() {
        let redis = crate::testing::RedisServer::spawn();
        let l2 = RedisTier::builder(redis.url()).prefix("t").build().unwrap();
        l2.read_tags(&[]).await.unwrap();
        let v = TagVersions::new(Some(l2));
        let entry = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        // Heard first at this bump: earlier, unheard bumps may have come before it.
        v.learn(v.as_of() + 5, &tags(&["all"]));
        let TagCheck::Invalidated { since } = v.check(entry.tags().unwrap()).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since.elapsed() > Duration::from_secs(60), "dated long ago");
        // From the second bump on, the history is known.
        let later = Entry::new(&b"y"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        let before = Instant::now();
        v.learn(v.as_of() + 1, &tags(&["all"]));
        let TagCheck::Invalidated { since } = v.check(later.tags().unwrap()).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since >= before);
    }

    #[tokio::test]
    async fn once_it_hears_from_now_on_a_first_heard_bump_dates_entries_loaded_after_that() {
        let redis = crate::testing::RedisServer::spawn();
        let l2 = RedisTier::builder(redis.url()).prefix("t").build().unwrap();
        l2.read_tags(&[]).await.unwrap();
        let v = TagVersions::new(Some(l2));
        v.forget();
        let older = Entry::new(&b"x"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        v.l2.as_ref()
            .unwrap()
            .bump_tags(&tags(&["other"]))
            .await
            .unwrap();
        v.hear_from_now().await;
        let newer = Entry::new(&b"y"[..], 1, 0).with_tags(v.as_of(), tags(&["all"]));
        let before = Instant::now();
        v.bump(&tags(&["all"])).await.unwrap();
        let TagCheck::Invalidated { since } = v.check(newer.tags().unwrap()).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(since >= before, "dated from the bump");
        let TagCheck::Invalidated { since } = v.check(older.tags().unwrap()).await.unwrap() else {
            panic!("still current after its tag was bumped");
        };
        assert!(
            since.elapsed() > Duration::from_secs(60),
            "loaded before the point from which every bump is heard: long ago"
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
