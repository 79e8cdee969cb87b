//! `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE`: read and checked
//! once at start-up into the Redis tier's [`RedisTls`]. A file that cannot be read, or
//! does not hold what its variable says, stops start-up naming the variable.

use std::path::{Path, PathBuf};

use cache::CacheError;
use cache::tier::RedisTls;

use super::{ConfigError, err};

/// The three files, as set (blank: unset).
pub(super) struct TlsFiles {
    pub(super) ca: Option<PathBuf>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

impl TlsFiles {
    /// The TLS settings of the Redis at `urls` (`None`: no file is set, so `rediss://`
    /// trusts the public roots).
    pub(super) fn load(&self, urls: &[String]) -> Result<Option<RedisTls>, ConfigError> {
        let set = [
            ("REDIS_TLS_CA_FILE", &self.ca),
            ("REDIS_TLS_CERT_FILE", &self.cert),
            ("REDIS_TLS_KEY_FILE", &self.key),
        ];
        let Some((first, _)) = set.iter().find(|(_, path)| path.is_some()) else {
            return Ok(None);
        };
        if urls.is_empty() || !urls.iter().all(|u| u.starts_with("rediss://")) {
            return Err(err(
                first,
                "needs Redis over TLS: a rediss:// REDIS_URL (or REDIS_CLUSTER_NODES, every node rediss://)",
            ));
        }
        let mut tls = RedisTls::new();
        if let Some(path) = &self.ca {
            let pem = read("REDIS_TLS_CA_FILE", path)?;
            tls = tls
                .ca_pem(pem)
                .map_err(|e| invalid("REDIS_TLS_CA_FILE", path, "a PEM CA certificate", &e))?;
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let cert_pem = read("REDIS_TLS_CERT_FILE", cert)?;
                let key_pem = read("REDIS_TLS_KEY_FILE", key)?;
                tls = tls
                    .client_cert_pem(cert_pem)
                    .map_err(|e| invalid("REDIS_TLS_CERT_FILE", cert, "a PEM certificate", &e))?
                    .client_key_pem(key_pem)
                    .map_err(|e| invalid("REDIS_TLS_KEY_FILE", key, "a PEM private key", &e))?;
                tls.check().map_err(|e| {
                    invalid(
                        "REDIS_TLS_KEY_FILE",
                        key,
                        "the key of REDIS_TLS_CERT_FILE's certificate",
                        &e,
                    )
                })?;
            }
            (None, None) => {}
            (cert, _) => {
                return Err(err(
                    if cert.is_some() {
                        "REDIS_TLS_CERT_FILE"
                    } else {
                        "REDIS_TLS_KEY_FILE"
                    },
                    "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (mutual TLS): set both or neither",
                ));
            }
        }
        Ok(Some(tls))
    }
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| err(var, format!("cannot read {}: {e}", path.display())))
}

fn invalid(var: &'static str, path: &Path, wanted: &str, e: &CacheError) -> ConfigError {
    let why = match e {
        CacheError::Config(why) => why.clone(),
        other => other.to_string(),
    };
    err(var, format!("{} is not {wanted}: {why}", path.display()))
}
