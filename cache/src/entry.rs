//! Entries: encoded payloads plus what the tiers need to know about them, and the L2
//! envelope they travel in.
//!
//! # L2 envelope (format 2)
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CK"
//! 2       1     format version (2)
//! 3       1     codec id (1 = bincode, 2 = JSON)
//! 4       1     flags (reserved; 0)
//! 5       8     created_at, ms since the Unix epoch, little-endian
//! 13      8     expires_at, ms since the Unix epoch, little-endian
//! 21      8     generation of the shared tier it was written in, little-endian
//! 29      ..    payload
//! ```
//!
//! Format 1 (no generation, a 21-byte header) is still read, as generation 0: such an
//! entry is never current. Anything else under one of our keys (foreign bytes, a future
//! format, garbage) fails [`Entry::from_envelope`] and is treated by the tiers as a
//! counted miss.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::CacheError;

const MAGIC: &[u8; 2] = b"CK";
const FORMAT: u8 = 2;
/// The format before generations, still read.
const FORMAT_1: u8 = 1;
const FORMAT_1_HEADER: usize = 21;
/// Size of the envelope header ahead of the payload.
pub const ENVELOPE_HEADER: usize = 29;
/// Bytes an L1 entry is charged beyond its key and payload (bookkeeping, `Arc`s).
pub(crate) const ENTRY_OVERHEAD: usize = 96;

type Memo = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// An encoded value with its codec id and creation time.
///
/// Clones are cheap (the payload is shared `Bytes`). An entry also carries a shared,
/// type-erased memo of its decoded value: [`crate::typed::TypedCache`] decodes an L1 entry at
/// most once, and later L1 hits clone the decoded value instead of decoding again.
#[derive(Clone)]
pub struct Entry {
    payload: Bytes,
    codec: u8,
    flags: u8,
    created_ms: u64,
    memo: Memo,
}

impl Entry {
    /// An entry of `payload` encoded by the codec with id `codec`, created at `created_ms`.
    pub fn new(payload: impl Into<Bytes>, codec: u8, created_ms: u64) -> Self {
        Self {
            payload: payload.into(),
            codec,
            flags: 0,
            created_ms,
            memo: Memo::default(),
        }
    }

    /// The encoded value.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The id of the codec that encoded the payload.
    #[must_use]
    pub fn codec_id(&self) -> u8 {
        self.codec
    }

    /// When the value was written, in ms since the Unix epoch.
    #[must_use]
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// What this entry counts against an L1 byte budget, with its key.
    #[must_use]
    pub fn weight(&self, key_len: usize) -> usize {
        key_len + self.payload.len() + ENTRY_OVERHEAD
    }

    pub(crate) fn memo<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.memo
            .get()
            .cloned()
            .and_then(|a| a.downcast::<T>().ok())
    }

    pub(crate) fn set_memo<T: Any + Send + Sync>(&self, value: Arc<T>) {
        let _ = self.memo.set(value);
    }

    /// The envelope bytes stored in L2 for this entry, expiring at `expires_ms`, written
    /// in the shared tier's `generation`.
    #[must_use]
    pub fn to_envelope(&self, expires_ms: u64, generation: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENVELOPE_HEADER + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.push(self.codec);
        out.push(self.flags);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&expires_ms.to_le_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads an envelope, or fails with a decode error.
    pub fn from_envelope(bytes: Bytes) -> Result<Envelope, CacheError> {
        if bytes.len() < 3 || &bytes[..2] != MAGIC {
            return Err(CacheError::Decode(
                "not a cache envelope (bad magic)".into(),
            ));
        }
        let header = match bytes[2] {
            FORMAT => ENVELOPE_HEADER,
            FORMAT_1 => FORMAT_1_HEADER,
            other => {
                return Err(CacheError::Decode(format!(
                    "unsupported envelope format {other}"
                )));
            }
        };
        if bytes.len() < header {
            return Err(CacheError::Decode(format!(
                "envelope too short: {} bytes",
                bytes.len()
            )));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (created_ms, expires_ms) = (u64_at(5), u64_at(13));
        if expires_ms < created_ms {
            return Err(CacheError::Decode(
                "envelope expires before it was created".into(),
            ));
        }
        let generation = if header == ENVELOPE_HEADER {
            u64_at(21)
        } else {
            0
        };
        let entry = Self {
            codec: bytes[3],
            flags: bytes[4],
            created_ms,
            payload: bytes.slice(header..),
            memo: Memo::default(),
        };
        Ok(Envelope {
            entry,
            expires_ms,
            generation,
        })
    }
}

/// A decoded L2 envelope.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The entry.
    pub entry: Entry,
    /// When it expires, in ms since the Unix epoch.
    pub expires_ms: u64,
    /// The shared tier's generation it was written in (0 for format 1).
    pub generation: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("bytes", &self.payload.len())
            .field("codec", &self.codec)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_payload_codec_times_and_generation() {
        let e = Entry::new(&b"hello"[..], 2, 1000);
        let bytes = Bytes::from(e.to_envelope(5000, 77));
        let back = Entry::from_envelope(bytes).unwrap();
        assert_eq!(back.entry.payload().as_ref(), b"hello");
        assert_eq!((back.entry.codec_id(), back.entry.created_ms()), (2, 1000));
        assert_eq!((back.expires_ms, back.generation), (5000, 77));
    }

    #[test]
    fn a_format_1_envelope_is_read_as_generation_0() {
        let mut v1 = b"CK\x01\x02\x00".to_vec();
        v1.extend_from_slice(&10u64.to_le_bytes());
        v1.extend_from_slice(&20u64.to_le_bytes());
        v1.extend_from_slice(b"old");
        let back = Entry::from_envelope(Bytes::from(v1)).unwrap();
        assert_eq!(back.entry.payload().as_ref(), b"old");
        assert_eq!((back.expires_ms, back.generation), (20, 0));
    }

    #[test]
    fn foreign_short_future_and_inconsistent_envelopes_are_decode_errors() {
        let good = Entry::new(&b"x"[..], 1, 10).to_envelope(20, 1);
        let mut future = good.clone();
        future[2] = 9;
        let mut backwards = good.clone();
        backwards[13..21].copy_from_slice(&1u64.to_le_bytes());
        for bad in [
            b"plain string".to_vec(),
            b"CK".to_vec(),
            good[..ENVELOPE_HEADER - 1].to_vec(),
            vec![0xff; 64],
            future,
            backwards,
        ] {
            let err = Entry::from_envelope(Bytes::from(bad)).unwrap_err();
            assert!(err.is_decode(), "{err}");
        }
    }

    #[test]
    fn the_memo_is_shared_by_clones_and_checked_by_type() {
        let e = Entry::new(&b""[..], 1, 0);
        let c = e.clone();
        e.set_memo(Arc::new(5u32));
        assert_eq!(c.memo::<u32>().as_deref(), Some(&5));
        assert!(c.memo::<String>().is_none());
    }
}
