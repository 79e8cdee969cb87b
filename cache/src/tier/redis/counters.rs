//! Version counters: one per namespace (or tag), advanced by writes, read by readers
//! who cannot trust their local copy; and the generation of every entry. A missing
//! counter starts at the server's clock (see `scripts.rs`), so it never goes back.

use super::{RedisTier, keys, scripts};
use crate::CacheError;

impl RedisTier {
    /// The versions of the namespaces `roots` and whether a strict write holds each (a
    /// reader must then go to the source), in one round trip.
    pub(crate) async fn read_versions(
        &self,
        roots: &[&str],
    ) -> Result<Vec<(u64, bool)>, CacheError> {
        let prefix = self.inner.prefix.as_deref().ok_or_else(|| {
            CacheError::Config("versions need a key prefix (RedisTierBuilder::prefix)".into())
        })?;
        let mut names: Vec<String> = roots.iter().map(|r| keys::counter(r)).collect();
        names.push(keys::held(prefix));
        let args: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
        let values: Vec<u64> = self
            .eval("read_versions", &scripts::READ_VERSIONS, names, args)
            .await?;
        if values.len() != 2 * roots.len() {
            return Err(CacheError::Decode(format!(
                "read_versions: {} namespaces asked, {} values returned",
                roots.len(),
                values.len()
            )));
        }
        Ok(values.chunks(2).map(|p| (p[0], p[1] == 1)).collect())
    }

    /// Advances the counters of `roots` by one, in one round trip, and returns their new
    /// values.
    pub(crate) async fn bump_counters(&self, roots: &[&str]) -> Result<Vec<u64>, CacheError> {
        let names: Vec<String> = roots.iter().map(|r| keys::counter(r)).collect();
        self.counters("bump_counters", &scripts::BUMP_COUNTERS, names)
            .await
    }

    /// The generation counter's key; `None` for a tier without a prefix (no generations:
    /// every entry is written and read as generation 0).
    pub(super) fn generation_key(&self) -> Option<String> {
        self.inner.prefix.as_deref().map(keys::generation)
    }

    /// Reads the current generation from Redis (starting it if it is missing) and
    /// remembers it.
    pub(super) async fn read_generation(&self) -> Result<u64, CacheError> {
        let Some(key) = self.generation_key() else {
            return Ok(0);
        };
        let value = self
            .counters("read_generation", &scripts::READ_COUNTERS, vec![key])
            .await?[0];
        self.learn_generation(value);
        Ok(value)
    }

    /// Starts a new generation: every entry written before it is unreachable from now
    /// on, for every instance. Returns it.
    pub(crate) async fn bump_generation(&self) -> Result<u64, CacheError> {
        let Some(key) = self.generation_key() else {
            return Ok(0);
        };
        let value = self
            .counters("bump_generation", &scripts::BUMP_COUNTERS, vec![key])
            .await?[0];
        self.learn_generation(value);
        Ok(value)
    }

    /// The generation to write entries in now: the last one seen, or read from Redis
    /// before anything was.
    pub(super) async fn current_generation(&self) -> Result<u64, CacheError> {
        match self.generation() {
            0 if self.generation_key().is_some() => self.read_generation().await,
            known => Ok(known),
        }
    }

    async fn counters(
        &self,
        op: &'static str,
        script: &'static redis::Script,
        names: Vec<String>,
    ) -> Result<Vec<u64>, CacheError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let asked = names.len();
        let values: Vec<u64> = self.eval(op, script, names, Vec::new()).await?;
        if values.len() == asked {
            Ok(values)
        } else {
            Err(CacheError::Decode(format!(
                "{op}: {asked} counters asked, {} returned",
                values.len()
            )))
        }
    }
}
