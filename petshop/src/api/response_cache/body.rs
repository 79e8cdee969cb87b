//! The stored bytes of a cached response: packing the content type, the body and
//! where a list's total goes; writing the total and the `cached` marker into the body
//! without parsing it as a value.

use bytes::{Bytes, BytesMut};

/// A body stored without one number: where it goes.
pub(super) const NO_HOLE: u32 = u32::MAX;

/// The stored value: the content type's length (one byte), the content type, where the
/// total goes in the body (4 bytes, [`NO_HOLE`] for none), the body.
pub(super) fn pack(content_type: &[u8], hole: Option<usize>, body: &[u8]) -> Option<Bytes> {
    let len = u8::try_from(content_type.len()).ok()?;
    let hole = match hole {
        Some(at) => u32::try_from(at).ok().filter(|&at| at != NO_HOLE)?,
        None => NO_HOLE,
    };
    let mut out = BytesMut::with_capacity(5 + content_type.len() + body.len());
    out.extend_from_slice(&[len]);
    out.extend_from_slice(content_type);
    out.extend_from_slice(&hole.to_be_bytes());
    out.extend_from_slice(body);
    Some(out.freeze())
}

/// The content type, where the total goes, the body.
pub(super) fn unpack(value: &Bytes) -> Option<(Bytes, Option<usize>, Bytes)> {
    let len = usize::from(*value.first()?);
    let hole = value.get(1 + len..5 + len)?;
    let hole = u32::from_be_bytes(hole.try_into().ok()?);
    let body = value.slice(5 + len..);
    let hole = if hole == NO_HOLE {
        None
    } else {
        Some(usize::try_from(hole).ok().filter(|&at| at <= body.len())?)
    };
    Some((value.slice(1..=len), hole, body))
}

/// `body` without the digits of its top-level `total` member, and where they were.
pub(super) fn without_total(body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let at = member(body, b"\"total\":")?;
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| ([&body[..at], &body[at + digits..]].concat(), at))
}

/// `body` with `total` written at `hole`.
pub(super) fn with_total(body: &[u8], hole: usize, total: u64) -> Bytes {
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

/// Where the top-level `cached` member's value begins, and what it says, in a JSON
/// object as serde writes it (no whitespace). Only the top level counts: a nested
/// object's `cached` is data.
pub(super) fn marker(body: &[u8]) -> Option<(usize, bool)> {
    let at = member(body, b"\"cached\":")?;
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

/// `body` with its top-level `cached` member saying `cached` (a copy), or `None` when
/// it has none.
pub(super) fn with_cached(body: &[u8], cached: bool) -> Option<Vec<u8>> {
    let (at, now) = marker(body)?;
    let old: &[u8] = if now { b"true" } else { b"false" };
    let new: &[u8] = if cached { b"true" } else { b"false" };
    Some([&body[..at], new, &body[at + old.len()..]].concat())
}

/// The body to store: `"cached":true`.
pub(super) fn spliced(body: &[u8]) -> Option<Vec<u8>> {
    with_cached(body, true)
}

/// The same body saying `"cached":false` again (an answer shared by a load in flight).
pub(super) fn unspliced(body: &[u8]) -> Option<Vec<u8>> {
    with_cached(body, false)
}
