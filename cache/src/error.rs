//! The one error type of the crate.

use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong inside the cache.
///
/// Reads through [`crate::CacheClient`] never surface tier errors to the caller (a
/// failing tier is logged, counted and skipped); these variants reach the caller from
/// builders, codecs used directly, loaders, and strict writes that Redis could not be
/// told about ([`CacheError::WriteRefused`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The Redis tier answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[source] Arc<redis::RedisError>),
    /// A tier did not answer within its configured timeout.
    #[error("cache operation timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: the tier is skipped for a cool-down.
    #[error("circuit breaker open: the shared tier is skipped until {0:?} from now")]
    CircuitOpen(Duration),
    /// Bytes under one of our keys did not decode (foreign, old format or garbage).
    #[error("cannot decode cached entry: {0}")]
    Decode(String),
    /// A value could not be encoded by the codec.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// A configuration value is out of its allowed range.
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The loader of `get_or_load` failed; the error is shared by every waiter.
    #[error("loader failed: {0}")]
    Loader(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A strict write ([`crate::WriteConsistency::Strict`]) was refused before the source
    /// was touched, because Redis could not be told first. Try again after `retry_after`.
    #[error("write refused: redis cannot be told first; retry after {retry_after:?}")]
    WriteRefused {
        /// When a retry may succeed (the breaker's cool-down, or a second).
        retry_after: Duration,
    },
}

impl CacheError {
    /// True when retrying later may succeed (network trouble, timeouts, an open breaker).
    ///
    /// Callers use it to decide whether to fall through to the source of truth.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
            }
            Self::Timeout(_) | Self::CircuitOpen(_) | Self::WriteRefused { .. } => true,
            Self::Decode(_) | Self::Encode(_) | Self::Config(_) | Self::Loader(_) => false,
        }
    }

    /// True when Redis refused a command to this client's user (`NOPERM`: its ACL
    /// lacks the command, a key or a channel; see [`crate::tier::RedisAcl`]): a
    /// configuration fault, which retrying does not mend.
    #[must_use]
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::Redis(e)
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm))
    }

    /// True when a TLS connection failed because the server's certificate is not
    /// trusted (an issuer the CA does not vouch for, another name, expired): a
    /// configuration fault rather than an outage, though the tier degrades alike.
    #[must_use]
    pub fn is_certificate_rejected(&self) -> bool {
        type Shared = Arc<dyn std::error::Error + Send + Sync>;
        let rejected = |e: &(dyn std::error::Error + 'static)| {
            matches!(
                e.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(_))
            )
        };
        let Self::Redis(e) = self else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(mut err) = next {
            // redis keeps its cause behind an `Arc`, and `io::Error::source` skips the
            // error it wraps: look through both.
            if let Some(shared) = err.downcast_ref::<Shared>() {
                err = shared.as_ref();
            }
            let wrapped = err
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref);
            if rejected(err) || wrapped.is_some_and(|w| rejected(w)) {
                return true;
            }
            next = err.source();
        }
        false
    }

    /// True when cached bytes were not ours or not readable: treat as a miss and overwrite.
    #[must_use]
    pub fn is_decode(&self) -> bool {
        matches!(self, Self::Decode(_))
    }
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_open_breakers_are_transient_but_decode_errors_are_not() {
        assert!(CacheError::Timeout(Duration::from_millis(5)).is_transient());
        assert!(CacheError::CircuitOpen(Duration::from_secs(1)).is_transient());
        assert!(!CacheError::Decode("x".into()).is_transient());
        assert!(CacheError::Decode("x".into()).is_decode());
    }

    #[test]
    fn an_io_error_from_redis_is_transient() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = CacheError::from(redis::RedisError::from(io));
        assert!(e.is_transient());
    }

    #[test]
    fn a_refusal_of_the_acl_is_a_permission_denial_and_not_transient() {
        // The reply a Redis user without `+scan` gets, parsed as on the wire.
        let reply = b"-NOPERM this user has no permissions to run the 'scan' command\r\n";
        let refused = redis::parse_redis_value(reply)
            .unwrap()
            .extract_error()
            .unwrap_err();
        let e = CacheError::from(refused);
        assert!(e.is_permission_denied() && !e.is_transient(), "{e}");
        assert!(e.to_string().contains("'scan'"), "{e}");
        let other = redis::parse_redis_value(b"-ERR unknown command\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        assert!(!CacheError::from(other).is_permission_denied());
        assert!(!CacheError::Timeout(Duration::from_millis(5)).is_permission_denied());
    }

    #[test]
    fn an_untrusted_server_certificate_is_told_apart_from_other_io_errors() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, bad);
        assert!(CacheError::from(redis::RedisError::from(io)).is_certificate_rejected());
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!CacheError::from(redis::RedisError::from(refused)).is_certificate_rejected());
        assert!(!CacheError::Timeout(Duration::from_millis(5)).is_certificate_rejected());
    }
}
