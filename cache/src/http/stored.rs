//! The stored bytes of a cached answer: its content type, its `ETag`, where a live
//! number goes and the body; and the JSON surgery done once when an answer is stored
//! (the `cached` marker, a live member cut out), without parsing the body as a value.

use bytes::{Bytes, BytesMut};
use xxhash_rust::xxh3::xxh3_64;

/// A body stored without one number: where it goes.
const NO_HOLE: u32 = u32::MAX;

/// One stored answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub(super) content_type: Bytes,
    /// The hash of the body a hit writes (0 when a live number makes it per answer).
    pub(super) etag: u64,
    /// Where the live number goes in `body`.
    pub(super) hole: Option<usize>,
    pub(super) body: Bytes,
}

/// The stored value: the content type's length (one byte), the content type, the
/// `ETag`'s hash (8 bytes), where the live number goes in the body (4 bytes,
/// [`NO_HOLE`] for none), the body.
pub(super) fn pack(
    content_type: &[u8],
    etag: u64,
    hole: Option<usize>,
    body: &[u8],
) -> Option<Bytes> {
    let len = u8::try_from(content_type.len()).ok()?;
    let hole = match hole {
        Some(at) => u32::try_from(at).ok().filter(|&at| at != NO_HOLE)?,
        None => NO_HOLE,
    };
    let mut out = BytesMut::with_capacity(13 + content_type.len() + body.len());
    out.extend_from_slice(&[len]);
    out.extend_from_slice(content_type);
    out.extend_from_slice(&etag.to_be_bytes());
    out.extend_from_slice(&hole.to_be_bytes());
    out.extend_from_slice(body);
    Some(out.freeze())
}

/// A stored value read back; `None` for garbage (never a panic).
pub(super) fn unpack(value: &Bytes) -> Option<Stored> {
    let len = usize::from(*value.first()?);
    let etag = u64::from_be_bytes(value.get(1 + len..9 + len)?.try_into().ok()?);
    let hole = u32::from_be_bytes(value.get(9 + len..13 + len)?.try_into().ok()?);
    let body = value.slice(13 + len..);
    let hole = if hole == NO_HOLE {
        None
    } else {
        Some(usize::try_from(hole).ok().filter(|&at| at <= body.len())?)
    };
    Some(Stored {
        content_type: value.slice(1..=len),
        etag,
        hole,
        body,
    })
}

/// The hash an `ETag` is made of.
pub(super) fn etag_of(body: &[u8]) -> u64 {
    xxh3_64(body).max(1)
}

/// The weak `ETag` header value of `hash` (weak: a hit and the answer of the load that
/// stored it differ only in the `cached` marker).
pub(super) fn etag_header(hash: u64) -> String {
    format!("W/\"{hash:016x}\"")
}

/// `body` without the digits of its top-level member `key` (`"name":`), and where they
/// were.
pub(super) fn without_number(body: &[u8], key: &[u8]) -> Option<(Vec<u8>, usize)> {
    let at = member(body, key)?;
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| ([&body[..at], &body[at + digits..]].concat(), at))
}

/// `body` with `total` written at `hole`.
pub(super) fn with_number(body: &[u8], hole: usize, total: u64) -> Bytes {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = total;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &buf[at..];
    let mut out = BytesMut::with_capacity(body.len() + digits.len());
    out.extend_from_slice(&body[..hole]);
    out.extend_from_slice(digits);
    out.extend_from_slice(&body[hole..]);
    out.freeze()
}

/// Where the top-level marker member's value (`key` is `"name":`) begins, and what it
/// says, in a JSON object as serde writes it (no whitespace). Only the top level
/// counts: a nested object's member of that name is data.
pub(super) fn marker(body: &[u8], key: &[u8]) -> Option<(usize, bool)> {
    let at = member(body, key)?;
    match &body[at..] {
        v if v.starts_with(b"false") => Some((at, false)),
        v if v.starts_with(b"true") => Some((at, true)),
        _ => None,
    }
}

/// Where the value of the top-level member `key` (`"name":`) begins in a JSON object
/// as serde writes it (no whitespace). A nested object's member of that name is data.
pub(super) fn member(body: &[u8], key: &[u8]) -> Option<usize> {
    if body.first() != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                let key_start =
                    depth == 1 && matches!(body.get(i.wrapping_sub(1)), Some(b'{' | b','));
                if key_start && body[i..].starts_with(key) {
                    return Some(i + key.len());
                }
                in_string = true;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `body` with its top-level marker member `key` saying `cached` (a copy), or `None`
/// when it has none.
pub(super) fn with_marker(body: &[u8], key: &[u8], cached: bool) -> Option<Vec<u8>> {
    let (at, now) = marker(body, key)?;
    let old: &[u8] = if now { b"true" } else { b"false" };
    let new: &[u8] = if cached { b"true" } else { b"false" };
    Some([&body[..at], new, &body[at + old.len()..]].concat())
}
