//! TLS to Redis (`rediss://`): what the tier trusts and, for mutual TLS, what it
//! presents. One [`RedisTls`] serves every connection the tier opens, on one server
//! or a cluster: commands, the backplane's subscription, the rate limiter, the flush.
//!
//! The certificates are checked when they are given ([`RedisTls::ca_pem`] and the
//! client certificate's setters) and again, as a pair, when the tier is built, so a bad
//! file stops start-up instead of failing every connection later. The server's
//! certificate is always verified (redis' `tls-rustls-insecure` is not enabled); one
//! that is not trusted fails the connection like an unreachable Redis, and
//! [`CacheError::is_certificate_rejected`] tells the two apart.
//!
//! rustls needs one process-level crypto provider. This crate compiles in ring (as
//! sqlx does) and, when a TLS tier is built and no provider is installed yet, installs
//! ring's, so a dependency that also enables aws-lc-rs cannot leave the choice
//! ambiguous (rustls would panic at the first handshake).

use std::fmt;
use std::sync::Arc;

use redis::{ClientTlsConfig, TlsCertificates};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::CacheError;

/// How the tier's `rediss://` connections verify the server and whom they present
/// themselves as. The default trusts the public roots bundled with the crate
/// (webpki-roots) and presents no client certificate.
///
/// ```
/// use cache::tier::{RedisTier, RedisTls};
/// # let certs = cache::testing::TestCerts::generate();
/// # let (ca, cert, key) = (certs.ca_pem(), certs.client_cert_pem(), certs.client_key_pem());
/// // PEM bytes, e.g. std::fs::read("ca.crt")
/// let tls = RedisTls::new()
///     .ca_pem(ca)? // a private CA instead of the public roots
///     .client_cert_pem(cert)? // mutual TLS: a certificate and its key
///     .client_key_pem(key)?;
/// let l2 = RedisTier::builder("rediss://127.0.0.1:6380").tls(tls);
/// # Ok::<(), cache::CacheError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    ca: Option<Vec<u8>>,
    client_cert: Option<Vec<u8>>,
    client_key: Option<Vec<u8>>,
}

impl fmt::Debug for RedisTls {
    // Never the key's bytes, not even in a debug line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("private_ca", &self.ca.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RedisTls {
    /// The public roots, no client certificate.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the CA certificates in `pem` (one or more `CERTIFICATE` blocks)
    /// instead of the public roots.
    ///
    /// # Errors
    /// [`CacheError::Config`] when `pem` holds no certificate or one that cannot be a
    /// trust anchor.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, CacheError> {
        let pem = pem.into();
        let mut store = RootCertStore::empty();
        for cert in chain(&pem).map_err(|e| config(format!("the CA certificate: {e}")))? {
            store
                .add(cert)
                .map_err(|e| config(format!("the CA certificate is not a trust anchor: {e}")))?;
        }
        self.ca = Some(pem);
        Ok(self)
    }

    /// Presents the certificate chain in `pem` (the client's first) for mutual TLS;
    /// needs [`RedisTls::client_key_pem`].
    ///
    /// # Errors
    /// [`CacheError::Config`] when `pem` holds no certificate.
    pub fn client_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, CacheError> {
        let pem = pem.into();
        chain(&pem).map_err(|e| config(format!("the client certificate: {e}")))?;
        self.client_cert = Some(pem);
        Ok(self)
    }

    /// The private key of the client certificate (PKCS#8, PKCS#1 or SEC1 PEM).
    ///
    /// # Errors
    /// [`CacheError::Config`] when `pem` holds no private key.
    pub fn client_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, CacheError> {
        let pem = pem.into();
        key(&pem).map_err(|e| config(format!("the client key: {e}")))?;
        self.client_key = Some(pem);
        Ok(self)
    }

    /// Whether a private CA replaces the public roots.
    #[must_use]
    pub fn has_private_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// Checks the whole, as [`RedisTierBuilder::build`](super::RedisTierBuilder::build)
    /// does: a client certificate comes with its key, and the key is the certificate's.
    ///
    /// # Errors
    /// [`CacheError::Config`] saying which of the two is wrong.
    pub fn check(&self) -> Result<(), CacheError> {
        self.client_tls().map(|_| ())
    }

    /// Checks the whole and gives redis' form of it.
    pub(super) fn certificates(&self) -> Result<TlsCertificates, CacheError> {
        Ok(TlsCertificates {
            client_tls: self.client_tls()?,
            root_cert: self.ca.clone(),
        })
    }

    fn client_tls(&self) -> Result<Option<ClientTlsConfig>, CacheError> {
        let client_tls = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(cert), Some(key_pem)) => {
                let pair = chain(cert).and_then(|c| Ok((c, key(key_pem)?)));
                let (certs, private) =
                    pair.map_err(|e| config(format!("the client certificate: {e}")))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .and_then(|b| {
                        b.with_root_certificates(RootCertStore::empty())
                            .with_client_auth_cert(certs, private)
                    })
                    .map_err(|e| {
                        config(format!("the client key does not fit its certificate: {e}"))
                    })?;
                Some(ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key_pem.clone(),
                })
            }
            _ => {
                return Err(config(
                    "a client certificate needs its key and a key its certificate \
                     (RedisTls::client_cert_pem and client_key_pem: both or neither)",
                ));
            }
        };
        Ok(client_tls)
    }
}

/// Installs ring as the process' crypto provider unless one is installed already.
pub(crate) fn install_ring_if_none() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Whether `url` asks for TLS.
pub(super) fn is_tls_url(url: &str) -> bool {
    url.starts_with("rediss://")
}

fn config(message: impl Into<String>) -> CacheError {
    CacheError::Config(message.into())
}

fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the PEM".into());
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key in the PEM: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_a_certificate_is_refused_with_what_it_should_be() {
        let e = RedisTls::new().ca_pem(&b"hello"[..]).unwrap_err();
        assert!(e.to_string().contains("the CA certificate"), "{e}");
        let e = RedisTls::new().client_cert_pem(&b""[..]).unwrap_err();
        assert!(e.to_string().contains("CERTIFICATE"), "{e}");
        let e = RedisTls::new()
            .client_key_pem(&b"-----BEGIN X-----"[..])
            .unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
    }

    #[test]
    fn the_debug_form_never_shows_the_key() {
        let tls = RedisTls {
            client_key: Some(b"secret".to_vec()),
            ..RedisTls::default()
        };
        let shown = format!("{tls:?}");
        assert!(
            !shown.contains("secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
