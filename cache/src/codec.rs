//! Codecs turn values into the payload bytes of an entry and back.
//!
//! [`Bincode`] (bincode 2 over serde) is the compact default; [`Json`] is readable in
//! `redis-cli` and shareable with services in other languages. The codec's id travels in
//! every L2 envelope, so an entry written by one codec is never decoded by another: it is
//! a counted miss instead.
//!
//! bincode is flagged unmaintained by RustSec (RUSTSEC-2025-0141). It stays the default
//! because it is small and fast, behind this trait, so a service can switch to [`Json`]
//! (or its own codec) with one type parameter.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The codec id of raw values: a `bytes::Bytes` value is stored as it is, by every
/// codec, and read back without a copy (an HTTP body, for instance).
pub(crate) const RAW_ID: u8 = 0;

use crate::CacheError;

/// Encodes and decodes serde values for the cache.
pub trait Codec: Clone + Default + Send + Sync + 'static {
    /// The id written into envelopes; distinct per codec.
    const ID: u8;
    /// A short name for logs and metrics.
    const NAME: &'static str;

    /// Encodes `value` into bytes.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CacheError>;

    /// Decodes bytes written by [`Codec::encode`] of the same type; anything else is an error.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CacheError>;
}

/// bincode 2 with its standard configuration (varint integers), over serde.
///
/// ```
/// use cache::codec::{Bincode, Codec};
/// let bytes = Bincode.encode(&("rex", 3u8)).unwrap();
/// assert_eq!(Bincode.decode::<(String, u8)>(&bytes).unwrap(), ("rex".to_owned(), 3));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CacheError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| CacheError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CacheError> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| CacheError::Decode(format!("bincode: {e}")))?;
        if read != bytes.len() {
            return Err(CacheError::Decode(format!(
                "bincode: {} trailing bytes",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// JSON via `serde_json`.
///
/// ```
/// use cache::codec::{Codec, Json};
/// let bytes = Json.encode(&vec![1, 2]).unwrap();
/// assert_eq!(bytes, b"[1,2]");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    const ID: u8 = 2;
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CacheError> {
        serde_json::to_vec(value).map_err(|e| CacheError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CacheError> {
        serde_json::from_slice(bytes).map_err(|e| CacheError::Decode(format!("json: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pet {
        id: i64,
        name: String,
        tags: Vec<String>,
        age: Option<u8>,
    }

    fn pet() -> Pet {
        Pet {
            id: 7,
            name: "Rex".into(),
            tags: vec!["good".into()],
            age: None,
        }
    }

    fn round_trip<C: Codec>(c: C) {
        let bytes = c.encode(&pet()).unwrap();
        assert_eq!(c.decode::<Pet>(&bytes).unwrap(), pet());
    }

    #[test]
    fn both_codecs_round_trip_a_struct() {
        round_trip(Bincode);
        round_trip(Json);
    }

    #[test]
    fn garbage_and_truncated_bytes_are_decode_errors_not_panics() {
        for bytes in [
            &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            b"",
            b"{\"id\":",
        ] {
            assert!(Bincode.decode::<Pet>(bytes).unwrap_err().is_decode());
            assert!(Json.decode::<Pet>(bytes).unwrap_err().is_decode());
        }
        let good = Bincode.encode(&pet()).unwrap();
        assert!(Bincode.decode::<Pet>(&good[..good.len() - 1]).is_err());
    }

    #[test]
    fn bincode_rejects_trailing_bytes() {
        let mut bytes = Bincode.encode(&1u32).unwrap();
        bytes.push(0);
        assert!(Bincode.decode::<u32>(&bytes).is_err());
    }
}
