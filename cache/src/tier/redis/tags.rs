//! Tag versions: a tag's version is the tag sequence at which it was last invalidated;
//! an entry is current while every one of its tags is at most the sequence its load
//! began at (see `scripts.rs`).

use std::sync::atomic::Ordering;

use super::{RedisTier, keys, scripts};
use crate::{CacheError, Tag};

impl RedisTier {
    fn tag_keys(&self) -> Result<(String, String), CacheError> {
        let prefix = self.inner.prefix.as_deref().ok_or_else(|| {
            CacheError::Config("tags need a key prefix (RedisTierBuilder::prefix)".into())
        })?;
        Ok((keys::tags(prefix), keys::tag_sequence(prefix)))
    }

    /// The tag sequence now and the versions of `tags`, in one round trip.
    pub(crate) async fn read_tags(&self, tags: &[Tag]) -> Result<(u64, Vec<u64>), CacheError> {
        let (hash, seq) = self.tag_keys()?;
        let names: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
        let values: Vec<u64> = self
            .eval("read_tags", &scripts::READ_TAGS, vec![hash, seq], names)
            .await?;
        let Some((&sequence, versions)) = values.split_first() else {
            return Err(CacheError::Decode("read_tags: no sequence".into()));
        };
        if versions.len() != tags.len() {
            return Err(CacheError::Decode("read_tags: versions missing".into()));
        }
        self.inner.tag_seq.fetch_max(sequence, Ordering::SeqCst);
        Ok((sequence, versions.to_vec()))
    }

    /// Invalidates `tags` in one step: they all take the next tag sequence, which is
    /// returned.
    pub(crate) async fn bump_tags(&self, tags: &[Tag]) -> Result<u64, CacheError> {
        let (hash, seq) = self.tag_keys()?;
        let names: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
        let sequence: u64 = self
            .eval("bump_tags", &scripts::BUMP_TAGS, vec![hash, seq], names)
            .await?;
        self.inner.tag_seq.fetch_max(sequence, Ordering::SeqCst);
        Ok(sequence)
    }
}
