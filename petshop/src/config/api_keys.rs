//! `RATE_LIMIT_API_KEYS_FILE`: the API keys the service knows, as SHA-256 hashes, one
//! per line (lowercase hex, as `sha256sum` prints it; `#` starts a comment). Read once
//! at start-up: an unreadable file, or a line that is not a hash, stops start-up naming
//! the variable and the line. A restart reads a changed file.
//!
//! Only hashes are kept: the file holds no secret, and a key a client sends is hashed
//! and looked up in a set of hashes. The lookup's timing can only tell about the hash
//! of the key the client sent, never a stored one, so no comparison runs in
//! variable time over a secret. Nothing logs a key; [`KeyId::short`] names one.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ConfigError, err};

const VAR: &str = "RATE_LIMIT_API_KEYS_FILE";

/// The SHA-256 of a known key: what names its rate-limit bucket.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The hash of `key`.
    #[must_use]
    pub fn of(key: &[u8]) -> Self {
        Self(Sha256::digest(key).into())
    }

    /// The first 8 hex digits: enough to tell keys apart in a log line.
    #[must_use]
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({}…)", self.short())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits (either case) as the 32 bytes they spell.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The known keys, by hash.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(HashSet<KeyId>);

impl ApiKeys {
    /// The keys of `text` (the file's contents), or the number of the first line that is
    /// neither a hash, a comment nor blank.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut keys = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            keys.insert(KeyId(parse_hash(line).ok_or(n + 1)?));
        }
        Ok(Self(keys))
    }

    /// The keys of the file at `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `RATE_LIMIT_API_KEYS_FILE`: the file cannot be read, or
    /// a line is not a hash (its number, never its text: it may be a key).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(VAR, format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|line| {
            err(
                VAR,
                format!(
                    "{}: line {line} is not a SHA-256 hash: each line holds 64 hex digits, the \
                     sha256sum of a key (never the key itself), or a # comment",
                    path.display()
                ),
            )
        })
    }

    /// The known key `key` is, if it is one.
    #[must_use]
    pub fn find(&self, key: &[u8]) -> Option<KeyId> {
        let id = KeyId::of(key);
        self.0.contains(&id).then_some(id)
    }

    /// How many keys are known.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no key is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} known)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf %s abc | sha256sum` (FIPS 180-2's first example).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn keys_are_known_by_their_sha256_and_comments_are_skipped() {
        let file = format!(
            "# issued 2026-12\n\n{ABC}  # alice\n  {}\n",
            ABC.to_uppercase().replace("BA78", "0000")
        );
        let keys = ApiKeys::parse(&file).unwrap();
        assert_eq!(keys.len(), 2);
        let id = keys.find(b"abc").expect("abc is known");
        assert_eq!(id.to_string(), ABC);
        assert_eq!(id.short(), "ba7816bf");
        assert!(!format!("{id:?}").contains(ABC));
        assert_eq!(keys.find(b"abd"), None);
        assert_eq!(keys.find(ABC.as_bytes()), None, "the hash is not the key");
        assert!(ApiKeys::parse("# none yet\n").unwrap().is_empty());
    }

    #[test]
    fn a_line_that_is_not_a_hash_is_refused_by_its_number() {
        for (text, line) in [
            (format!("{ABC}\nabc\n"), 2),
            (format!("# c\n\n{}\n", &ABC[1..]), 3),
            (format!("{ABC}x\n"), 1),
            (format!("{}g\n", &ABC[1..]), 1),
            (format!("{ABC} {ABC}\n"), 1),
            (format!("{ABC}  -\n"), 1),
        ] {
            assert_eq!(ApiKeys::parse(&text), Err(line), "{text}");
        }
    }
}
