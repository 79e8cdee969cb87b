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
//! A tagged entry (format 3) has the same header with format 3, then its tags:
//!
//! ```text
//! 29      4     length L of the tag section, little-endian
//! 33      L     "{as_of}\n{tag}\n{tag}…": the tag sequence its load began at, and its tags
//! 33+L    ..    payload
//! ```
//!
//! Text, so the Redis tier's read script can check the tags where the entry lives.
//! Format 1 (no generation, a 21-byte header) is still read, as generation 0: such an
//! entry is never current. Anything else under one of our keys (foreign bytes, a future
//! format, garbage) fails [`Entry::from_envelope`] and is treated by the tiers as a
//! counted miss.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::{CacheError, Tag};

const MAGIC: &[u8; 2] = b"CK";
const FORMAT: u8 = 2;
const FORMAT_TAGGED: u8 = 3;
/// The format before generations, still read.
const FORMAT_1: u8 = 1;
const FORMAT_1_HEADER: usize = 21;
/// Size of the envelope header ahead of the payload.
pub const ENVELOPE_HEADER: usize = 29;
/// What an L1 entry costs beyond the allocations [`Entry::weight`] counts one by one:
/// moka's bookkeeping (hash-table bucket, entry info, access-order, write-order and
/// timer-wheel nodes, the `Arc` around the key) and the slot itself. Measured, not
/// derived: `cargo run --release -p cache --example l1_memory -- 1024 200000 tier:0 1`
/// fills an L1 with 200,000 empty entries; the resident growth is 507 bytes an entry, of
/// which 48 are the key. Under eviction, churn costs about 50 more (same example with a
/// budget far below the keys), hence 512.
pub(crate) const ENTRY_OVERHEAD: usize = 512;

/// What one heap allocation of `n` bytes really takes (glibc: an 8-byte header, rounded
/// up to 16, never under 32).
pub(crate) const fn allocation(n: usize) -> usize {
    let chunk = (n + 8 + 15) & !15;
    if chunk < 32 { 32 } else { chunk }
}

/// What the decoded copy of a value costs beside its encoding, estimated from the
/// encoding: the typed layer keeps one per entry it has decoded (serde values hold about
/// what they encode to, and an allocation per string or collection).
const fn memo_charge(payload_len: usize) -> usize {
    allocation(40) + 2 * payload_len + 128
}

type Memo = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

fn memo_for(codec: u8) -> Option<Memo> {
    (codec != crate::codec::RAW_ID).then(Memo::default)
}

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
    /// Only entries of a serde codec have one (raw bytes are their own value).
    memo: Option<Memo>,
    tags: Option<Arc<EntryTags>>,
}

/// The tags of an entry, and the tag sequence as it was when its load began: the entry
/// is current while none of its tags was invalidated after that.
#[derive(Debug)]
pub struct EntryTags {
    as_of: u64,
    names: Box<[Tag]>,
    /// The local tag epoch at which the entry was last found current (0: never):
    /// while nothing changed locally, a hit need not look at each tag again.
    checked: AtomicU64,
}

impl EntryTags {
    /// The tag sequence its load began at.
    #[must_use]
    pub fn as_of(&self) -> u64 {
        self.as_of
    }

    /// Its tags.
    #[must_use]
    pub fn names(&self) -> &[Tag] {
        &self.names
    }

    pub(crate) fn checked_at(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    pub(crate) fn set_checked_at(&self, epoch: u64) {
        self.checked.store(epoch, Ordering::Relaxed);
    }

    fn section(&self) -> String {
        let mut s = self.as_of.to_string();
        for t in self.names.iter() {
            s.push('\n');
            s.push_str(t.as_str());
        }
        s
    }

    fn parse(section: &[u8]) -> Result<Self, CacheError> {
        let text = std::str::from_utf8(section)
            .map_err(|_| CacheError::Decode("tag section is not UTF-8".into()))?;
        let mut lines = text.split('\n');
        let as_of = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| CacheError::Decode("tag section without its sequence".into()))?;
        let names = lines
            .map(Tag::new)
            .collect::<Result<Box<[Tag]>, _>>()
            .map_err(|e| CacheError::Decode(format!("bad tag in an entry: {e}")))?;
        Ok(Self {
            as_of,
            names,
            checked: AtomicU64::new(0),
        })
    }
}

impl Entry {
    /// An entry of `payload` encoded by the codec with id `codec`, created at `created_ms`.
    pub fn new(payload: impl Into<Bytes>, codec: u8, created_ms: u64) -> Self {
        Self {
            payload: payload.into(),
            codec,
            flags: 0,
            created_ms,
            memo: memo_for(codec),
            tags: None,
        }
    }

    /// The same entry with its payload in an allocation of its own, exactly its size: a
    /// payload that is a slice of a larger buffer (an encoder's spare capacity, a
    /// response buffer) would keep all of it alive in L1, uncounted.
    #[must_use]
    pub(crate) fn compacted(&self) -> Self {
        Self {
            payload: Bytes::copy_from_slice(&self.payload),
            ..self.clone()
        }
    }

    /// The same entry carrying `tags`, loaded when the tag sequence was `as_of`.
    #[must_use]
    pub fn with_tags(mut self, as_of: u64, tags: Vec<Tag>) -> Self {
        self.tags = (!tags.is_empty()).then(|| {
            Arc::new(EntryTags {
                as_of,
                names: tags.into_boxed_slice(),
                checked: AtomicU64::new(0),
            })
        });
        self
    }

    /// Its tags, if it has any.
    #[must_use]
    pub fn tags(&self) -> Option<&EntryTags> {
        self.tags.as_deref()
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

    /// What this entry counts against an L1 byte budget, with its key: every allocation
    /// it holds (key, payload and its shared header, tags, the decoded copy of a serde
    /// value) and moka's bookkeeping, so that the budget bounds resident memory.
    #[must_use]
    pub fn weight(&self, key_len: usize) -> usize {
        let key = allocation(16 + key_len);
        let payload = if self.payload.is_empty() {
            0
        } else {
            allocation(self.payload.len()) + allocation(24)
        };
        let tags = self.tags.as_ref().map_or(0, |t| {
            allocation(48)
                + allocation(16 * t.names.len())
                + t.names
                    .iter()
                    .map(|n| allocation(16 + n.as_str().len()))
                    .sum::<usize>()
        });
        let memo = if self.memo.is_some() {
            memo_charge(self.payload.len())
        } else {
            0
        };
        ENTRY_OVERHEAD + key + payload + tags + memo
    }

    pub(crate) fn memo<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.memo
            .as_ref()?
            .get()
            .cloned()
            .and_then(|a| a.downcast::<T>().ok())
    }

    pub(crate) fn set_memo<T: Any + Send + Sync>(&self, value: Arc<T>) {
        if let Some(memo) = &self.memo {
            let _ = memo.set(value);
        }
    }

    /// The envelope bytes stored in L2 for this entry, expiring at `expires_ms`, written
    /// in the shared tier's `generation`.
    #[must_use]
    pub fn to_envelope(&self, expires_ms: u64, generation: u64) -> Vec<u8> {
        let section = self.tags.as_ref().map(|t| t.section());
        let extra = section.as_ref().map_or(0, |s| 4 + s.len());
        let mut out = Vec::with_capacity(ENVELOPE_HEADER + extra + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(if section.is_some() {
            FORMAT_TAGGED
        } else {
            FORMAT
        });
        out.push(self.codec);
        out.push(self.flags);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&expires_ms.to_le_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
        if let Some(section) = section {
            let len = u32::try_from(section.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(section.as_bytes());
        }
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
            FORMAT | FORMAT_TAGGED => ENVELOPE_HEADER,
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
        let (tags, body) = if bytes[2] == FORMAT_TAGGED {
            let len_at = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&bytes[i..i + 4]);
                u32::from_le_bytes(b) as usize
            };
            if bytes.len() < header + 4 || bytes.len() < header + 4 + len_at(header) {
                return Err(CacheError::Decode("tag section cut short".into()));
            }
            let len = len_at(header);
            let section = &bytes[header + 4..header + 4 + len];
            (Some(Arc::new(EntryTags::parse(section)?)), header + 4 + len)
        } else {
            (None, header)
        };
        let entry = Self {
            codec: bytes[3],
            flags: bytes[4],
            created_ms,
            payload: bytes.slice(body..),
            memo: memo_for(bytes[3]),
            tags,
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
    fn a_tagged_envelope_round_trips_its_tags_and_sequence() {
        let tags = vec![Tag::new("pet:1").unwrap(), Tag::new("species:cat").unwrap()];
        let e = Entry::new(&b"page"[..], 1, 5).with_tags(77, tags.clone());
        let bytes = e.to_envelope(9, 3);
        assert_eq!(bytes[2], FORMAT_TAGGED);
        let back = Entry::from_envelope(Bytes::from(bytes)).unwrap();
        assert_eq!(back.entry.payload().as_ref(), b"page");
        assert_eq!(back.generation, 3);
        let t = back.entry.tags().unwrap();
        assert_eq!((t.as_of(), t.names()), (77, &tags[..]));
        assert!(e.weight(10) > Entry::new(&b"page"[..], 1, 5).weight(10));
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

    #[test]
    fn the_weight_counts_every_allocation_and_the_decoded_copy() {
        let raw_id = crate::codec::RAW_ID;
        let raw = Entry::new(vec![b'x'; 200], raw_id, 0);
        assert!(raw.memo.is_none(), "raw bytes need no memo");
        assert!(raw.weight(20) >= ENTRY_OVERHEAD + allocation(200) + allocation(36));
        let serde = Entry::new(vec![b'x'; 200], 1, 0);
        assert!(
            serde.weight(20) >= raw.weight(20) + 2 * 200,
            "the decoded copy counts"
        );
        assert_eq!(allocation(0), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
    }

    #[test]
    fn a_compacted_entry_owns_exactly_its_payload() {
        let buffer = Bytes::from(vec![b'x'; 4096]);
        let e = Entry::new(buffer.slice(0..10), 1, 0);
        let c = e.compacted();
        assert_eq!(c.payload(), &buffer[..10]);
        assert_ne!(
            c.payload().as_ptr(),
            buffer.as_ptr(),
            "not a view of the buffer"
        );
        c.set_memo(Arc::new(3u8));
        assert_eq!(e.memo::<u8>().as_deref(), Some(&3), "the memo stays shared");
    }
}
