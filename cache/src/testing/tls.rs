//! Throwaway certificates for TLS tests: a CA made for the test, a server certificate
//! for `127.0.0.1`/`localhost` and a client certificate, both signed by it, as PEM and
//! as files (for `redis-server --tls-*-file`) in a temporary directory removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::tier::RedisTls;

/// What `redis-server --tls-auth-clients` asks of clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `no`: clients present no certificate.
    No,
    /// `optional`: a certificate, if presented, must be valid.
    Optional,
    /// `yes`: mutual TLS, a client without a valid certificate is refused.
    Required,
}

impl ClientAuth {
    fn as_arg(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Optional => "optional",
            Self::Required => "yes",
        }
    }
}

/// A CA, a server certificate and a client certificate, made for one test. Cheap to
/// clone; the files go when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct TestCerts {
    inner: Arc<Files>,
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    ca: String,
    client_cert: String,
    client_key: String,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

impl TestCerts {
    /// A new CA and the two certificates it signs, written to a new temporary directory.
    ///
    /// # Panics
    /// When the keys cannot be made or the directory written.
    #[must_use]
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a CA is known by its name before its signature is checked.
        let name = format!("cache test CA {:x}", rand::random::<u64>());
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).expect("the CA certificate").pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |names: &[&str], usages: Vec<ExtendedKeyUsagePurpose>| {
            let key = KeyPair::generate().expect("a key");
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names).expect("certificate parameters");
            params.extended_key_usages = usages;
            let cert = params
                .signed_by(&key, &issuer)
                .expect("a signed certificate");
            (cert.pem(), key.serialize_pem())
        };
        // The server's certificate also authenticates a cluster node to the others
        // (`--tls-cluster`), so it may serve as a client's too.
        let (server_cert, server_key) = leaf(
            &SERVER_NAMES,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) = leaf(&[], vec![ExtendedKeyUsagePurpose::ClientAuth]);

        let dir = std::env::temp_dir().join(format!("cache-tls-{:x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).expect("a temporary directory for the certificates");
        let files = Files {
            dir,
            ca: ca_pem,
            client_cert,
            client_key,
        };
        for (name, pem) in [
            ("ca.crt", files.ca.as_str()),
            ("server.crt", &server_cert),
            ("server.key", &server_key),
            ("client.crt", &files.client_cert),
            ("client.key", &files.client_key),
        ] {
            fs::write(files.dir.join(name), pem).expect("a certificate file");
        }
        Self {
            inner: Arc::new(files),
        }
    }

    /// The directory of the files (removed when the last clone is dropped).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// `ca.crt`: the CA's certificate.
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.inner.dir.join("ca.crt")
    }

    /// `client.crt`: the client's certificate.
    #[must_use]
    pub fn client_cert_file(&self) -> PathBuf {
        self.inner.dir.join("client.crt")
    }

    /// `client.key`: the client certificate's key.
    #[must_use]
    pub fn client_key_file(&self) -> PathBuf {
        self.inner.dir.join("client.key")
    }

    /// The CA's certificate, PEM.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca
    }

    /// The client's certificate, PEM.
    #[must_use]
    pub fn client_cert_pem(&self) -> &str {
        &self.inner.client_cert
    }

    /// The client certificate's key, PEM.
    #[must_use]
    pub fn client_key_pem(&self) -> &str {
        &self.inner.client_key
    }

    /// Trusts this CA, presents no certificate.
    ///
    /// # Panics
    /// Never in practice: the CA was just made.
    #[must_use]
    pub fn tls(&self) -> RedisTls {
        RedisTls::new().ca_pem(self.ca_pem()).expect("a valid CA")
    }

    /// Trusts this CA and presents the client certificate (mutual TLS).
    ///
    /// # Panics
    /// Never in practice: the certificate was just made.
    #[must_use]
    pub fn tls_with_client_cert(&self) -> RedisTls {
        self.tls()
            .client_cert_pem(self.client_cert_pem())
            .and_then(|t| t.client_key_pem(self.client_key_pem()))
            .expect("a valid client certificate")
    }

    /// The arguments of a `redis-server` that speaks only TLS on `port`, with these
    /// certificates.
    pub(super) fn server_args(&self, port: u16, auth: ClientAuth) -> Vec<String> {
        let file = |name: &str| self.inner.dir.join(name).to_string_lossy().into_owned();
        [
            ("--port", "0".to_owned()),
            ("--tls-port", port.to_string()),
            ("--tls-cert-file", file("server.crt")),
            ("--tls-key-file", file("server.key")),
            ("--tls-ca-cert-file", file("ca.crt")),
            ("--tls-auth-clients", auth.as_arg().to_owned()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }

    /// The arguments of `redis-cli` for these certificates.
    pub(super) fn cli_args(&self) -> Vec<String> {
        let file = |name: &str| self.inner.dir.join(name).to_string_lossy().into_owned();
        vec![
            "--tls".into(),
            "--cacert".into(),
            file("ca.crt"),
            "--cert".into(),
            file("client.crt"),
            "--key".into(),
            file("client.key"),
        ]
    }

    /// A plain client of the TLS server on `port` (with the client certificate, so it
    /// passes any `--tls-auth-clients`; as `default` with the password `admin`, if given).
    pub(super) fn client(&self, port: u16, admin: Option<&str>) -> redis::Client {
        crate::tier::install_ring_if_none();
        let certs = redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: self.client_cert_pem().into(),
                client_key: self.client_key_pem().into(),
            }),
            root_cert: Some(self.ca_pem().into()),
        };
        let login = admin.map(|a| format!("default:{a}@")).unwrap_or_default();
        redis::Client::build_with_tls(format!("rediss://{login}127.0.0.1:{port}"), certs)
            .expect("a TLS client")
    }

    /// Whether `child` is up and answering TLS on `port` itself (see `owns_port`).
    pub(super) fn owns_port(
        &self,
        child: &mut Child,
        port: u16,
        admin: Option<&str>,
    ) -> Option<bool> {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(false);
        }
        let mut con = self
            .client(port, admin)
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
        Some(info.contains(&format!("process_id:{}\r\n", child.id())))
    }
}
