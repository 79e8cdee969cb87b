//! Redis over TLS (`rediss://`, `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`,
//! `REDIS_TLS_KEY_FILE`), with a CA and certificates made for the test: the shop's
//! cache, rate limiter and flush over mutual TLS; a server certificate from another CA
//! costs the cache, never an answer, and the log says why; bad files stop start-up
//! naming their variable.

use std::io::Read;
use std::process::Stdio;

use cache::testing::{ClientAuth, RedisServer, TestCerts};
use petshop::config::{Config, ConfigError};

use crate::helpers::{bounded, config, spawn_config};
use crate::server::{Binary, free_addr, http, petshop, tempdir, wait_until_up};

const TOKEN: &str = "a-long-enough-admin-token";

fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn path(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn an_unreadable_or_invalid_ca_file_stops_start_up_naming_redis_tls_ca_file() {
    let certs = TestCerts::generate();
    let garbage = certs.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = certs.dir().join("missing.pem");
    for (file, says) in [
        (path(missing), "cannot read"),
        (path(garbage), "is not a PEM CA certificate"),
        // A private key where the CA should be.
        (path(certs.client_key_file()), "is not a PEM CA certificate"),
    ] {
        let e = from(&[
            ("REDIS_URL", "rediss://127.0.0.1:6380"),
            ("REDIS_TLS_CA_FILE", &file),
        ])
        .unwrap_err();
        assert_eq!(e.var, "REDIS_TLS_CA_FILE", "{e}");
        assert!(e.message.contains(says) && e.message.contains(&file), "{e}");
    }
}

#[test]
fn a_client_certificate_without_its_key_names_both_variables() {
    let certs = TestCerts::generate();
    for (var, file) in [
        ("REDIS_TLS_CERT_FILE", path(certs.client_cert_file())),
        ("REDIS_TLS_KEY_FILE", path(certs.client_key_file())),
    ] {
        let e = from(&[("REDIS_URL", "rediss://127.0.0.1:6380"), (var, &file)]).unwrap_err();
        assert_eq!(e.var, var);
        assert!(
            e.message.contains("REDIS_TLS_CERT_FILE") && e.message.contains("REDIS_TLS_KEY_FILE"),
            "{e}"
        );
    }
    // Both, but the key is another certificate's.
    let other = TestCerts::generate();
    let e = from(&[
        ("REDIS_URL", "rediss://127.0.0.1:6380"),
        ("REDIS_TLS_CERT_FILE", &path(certs.client_cert_file())),
        ("REDIS_TLS_KEY_FILE", &path(other.client_key_file())),
    ])
    .unwrap_err();
    assert_eq!(e.var, "REDIS_TLS_KEY_FILE", "{e}");
}

#[test]
fn tls_files_need_a_rediss_url_and_blank_ones_are_unset() {
    let certs = TestCerts::generate();
    let ca = path(certs.ca_file());
    for vars in [
        &[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_TLS_CA_FILE", ca.as_str()),
        ][..],
        &[("REDIS_TLS_CA_FILE", ca.as_str())][..],
        &[
            ("REDIS_CLUSTER_NODES", "rediss://a:7000,redis://b:7001"),
            ("REDIS_TLS_CA_FILE", ca.as_str()),
        ][..],
    ] {
        let e = from(vars).unwrap_err();
        assert_eq!(e.var, "REDIS_TLS_CA_FILE", "{e}");
        assert!(e.message.contains("rediss://"), "{e}");
    }
    let blank = from(&[
        ("REDIS_URL", "rediss://127.0.0.1:6380"),
        ("REDIS_TLS_CA_FILE", " "),
        ("REDIS_TLS_CERT_FILE", ""),
    ])
    .unwrap();
    assert_eq!((blank.redis_tls, blank.redis_tls_ca_file), (None, None));
    let set = from(&[
        ("REDIS_CLUSTER_NODES", "rediss://a:7000,rediss://b:7001"),
        ("REDIS_TLS_CA_FILE", ca.as_str()),
    ])
    .unwrap();
    assert!(set.redis_tls.is_some_and(|t| t.has_private_ca()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_the_shop_caches_in_redis_limits_on_redis_and_flushes_it() {
    bounded(async {
        let certs = TestCerts::generate();
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::Required);
        let (url, ca, cert, key) = (
            redis.url(),
            path(certs.ca_file()),
            path(certs.client_cert_file()),
            path(certs.client_key_file()),
        );
        let app = spawn_config(
            config(&[
                ("REDIS_URL", &url),
                ("REDIS_TLS_CA_FILE", &ca),
                ("REDIS_TLS_CERT_FILE", &cert),
                ("REDIS_TLS_KEY_FILE", &key),
                ("CACHE_TIERS", "l2"),
                ("REDIS_OP_TIMEOUT", "2s"),
                ("RATE_LIMIT", "100/1m"),
                ("ADMIN_TOKEN", TOKEN),
            ]),
            Some(redis),
        )
        .await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        assert_eq!(app.get(&path).await.x_cache(), "MISS");
        let hit = app.get(&path).await;
        assert_eq!((hit.status, hit.x_cache()), (200, "HIT-L2"), "{}", hit.text);

        let ready = app.get("/ready").await;
        assert_eq!(ready.json["redis"]["status"], "up", "{}", ready.text);
        assert_eq!(ready.json["rate_limit"], "shared", "{}", ready.text);

        let r = app.flush(Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(
            (r.status, r.json["flushed"].as_bool()),
            (200, Some(true)),
            "{}",
            r.text
        );
        assert_eq!(app.get(&path).await.x_cache(), "MISS");
    })
    .await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_logged_naming_redis_url_and_the_ca_file() {
    bounded(async {
        let (certs, stranger) = (TestCerts::generate(), TestCerts::generate());
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::No);
        let (dir, addr) = (tempdir(), free_addr());
        let seeded = petshop(&dir, &[], &["seed", "--pets", "5"])
            .output()
            .unwrap();
        assert!(
            seeded.status.success(),
            "{}",
            String::from_utf8_lossy(&seeded.stderr)
        );

        let (url, bind, ca) = (redis.url(), addr.to_string(), path(stranger.ca_file()));
        let env = [
            ("BIND", bind.as_str()),
            ("REDIS_URL", url.as_str()),
            ("REDIS_TLS_CA_FILE", ca.as_str()),
            ("REDIS_OP_TIMEOUT", "2s"),
        ];
        let mut bin = Binary(
            petshop(&dir, &env, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until_up(addr, &mut bin.0).await;

        // Reads are answered from the database, never a 5xx.
        for _ in 0..3 {
            let (status, _, pet) = http(addr, "GET", "/pets/1", None).await;
            assert_eq!((status, pet["id"].as_i64()), (200, Some(1)));
        }
        let (status, _, ready) = http(addr, "GET", "/ready", None).await;
        assert_eq!(
            (status, &ready["redis"]["status"]),
            (200, &"degraded".into())
        );

        // The log lines (on stdout), once the process is gone.
        let mut stdout = bin.0.stdout.take().unwrap();
        drop(bin);
        let mut log = String::new();
        stdout.read_to_string(&mut log).unwrap();
        let warning = log
            .lines()
            .find(|l| l.contains("server certificate"))
            .unwrap_or_else(|| panic!("no warning about the certificate in:\n{log}"));
        assert!(
            warning.contains("REDIS_URL") && warning.contains(&ca) && warning.contains("WARN"),
            "{warning}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn the_binary_refuses_an_invalid_ca_file_naming_the_variable() {
    bounded(async {
        let dir = tempdir();
        let garbage = dir.join("ca.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
        let ca = path(garbage);
        let env = [
            ("REDIS_URL", "rediss://127.0.0.1:1"),
            ("REDIS_TLS_CA_FILE", ca.as_str()),
        ];
        let out = petshop(&dir, &env, &[]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("REDIS_TLS_CA_FILE") && err.contains(&ca),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
