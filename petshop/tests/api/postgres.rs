//! The CRUD + seed-sequence suite on PostgreSQL, in a uniquely named database created
//! from `PETSHOP_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped afterwards, even when the test fails. Skipped, loudly, when it is unset.

use std::future::Future;

use petshop::testing::{FreshDatabase, VAR};
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{bounded, spawn_with_extra};
use crate::matrix::{Expect, seed_sequence};

/// Runs `test` against the URL of a fresh database, then drops the database.
async fn with_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(VAR) else {
        // Straight to the process's stderr: libtest captures `eprintln!` of a passing
        // test, and a skip nobody sees is a silent pass.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: PostgreSQL tests need {VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres) ***\n"
        );
        return;
    };
    let db = FreshDatabase::create(&admin_url, "petshop_test")
        .await
        .expect("create the test database");
    let outcome = tokio::spawn(test(db.url().to_owned())).await;
    drop(db);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn crud_and_the_seed_sequence_hold_on_postgres() {
    bounded(with_fresh_database(|url| async move {
        for (strategy, tiers) in [
            ("cache-aside", "l1"),
            ("write-through", "l1+l2"),
            ("versioned", "l2"),
        ] {
            let app = spawn_with_extra(strategy, tiers, &[("DATABASE_URL", url.as_str())]).await;
            // Each configuration starts from an empty table.
            app.state
                .db
                .execute_unprepared("TRUNCATE pet RESTART IDENTITY")
                .await
                .unwrap();
            seed_sequence(&app, &Expect::new(strategy, tiers)).await;
        }
        // The seed command works on PostgreSQL too, and the stats agree with it.
        let app = spawn_with_extra("cache-aside", "none", &[("DATABASE_URL", url.as_str())]).await;
        app.state
            .db
            .execute_unprepared("TRUNCATE pet RESTART IDENTITY")
            .await
            .unwrap();
        let n = petshop::service::seed::seed(&app.state.db, 2_500, 42)
            .await
            .unwrap();
        assert_eq!(n, 2_500);
        let stats = app.get("/stats").await;
        assert_eq!(stats.json["total_pets"], 2_500, "{}", stats.text);
        let page = app.get("/pets?species=cat&limit=5&offset=3").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.json["pets"].as_array().unwrap().len(), 5);
        // Totals are sums over `pet_count`, which the triggers kept through the
        // TRUNCATE and the seed: they agree with counting the rows.
        for (query, filter) in [
            ("", "TRUE"),
            ("species=cat", "species = 'cat'"),
            (
                "species=dog&min_age=3&max_age=7",
                "species = 'dog' AND age BETWEEN 3 AND 7",
            ),
            ("min_age=10", "age >= 10"),
        ] {
            let row = app
                .state
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    format!("SELECT COUNT(*) FROM pet WHERE {filter}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let counted: i64 = row.try_get_by_index(0).unwrap();
            let listed = app.get(&format!("/pets?{query}")).await;
            assert_eq!(listed.json["total"], counted, "{query}");
        }
    }))
    .await;
}

#[tokio::test]
async fn instances_started_together_on_a_fresh_database_all_come_up() {
    bounded(with_fresh_database(|url| async move {
        // Arrange: six instances, as `docker compose up --scale app=6` starts them.
        let config =
            crate::helpers::config(&[("DATABASE_URL", url.as_str()), ("CACHE_TIERS", "l1")]);

        // Act: they start at the same moment, each running the migrations.
        let started: Vec<_> = (0..6)
            .map(|_| {
                let config = config.clone();
                tokio::spawn(async move { petshop::startup::build_state(&config).await })
            })
            .collect();

        // Assert: every one came up, and the schema was made exactly once.
        for (i, s) in started.into_iter().enumerate() {
            let state = s.await.expect("no panic");
            assert!(state.is_ok(), "instance {i} failed: {:?}", state.err());
        }
        let db = Database::connect(url.as_str()).await.unwrap();
        let applied = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        use migrations::MigratorTrait as _;
        let all = migrations::Migrator::migrations().len() as i64;
        assert_eq!(applied, all, "every migration applied once");
    }))
    .await;
}

/// Whether the connection `db` runs on is encrypted (`pg_stat_ssl`).
async fn encrypted(db: &sea_orm::DatabaseConnection) -> bool {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// `url` with `query` appended to its parameters.
fn with_params(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// One setting of the server (`SHOW name`).
async fn show(url: &str, name: &str) -> String {
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!("SHOW {name}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

#[tokio::test]
async fn the_database_over_tls_is_encrypted_verified_and_a_wrong_ca_stops_start_up() {
    bounded(with_fresh_database(|url| async move {
        use std::io::Write as _;
        if show(&url, "ssl").await != "on" {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: the PostgreSQL server of {VAR} has ssl off ***\n"
            );
            return;
        }
        // sslmode=require: encrypted, the server not verified.
        let required = with_params(&url, "sslmode=require");
        let app =
            spawn_with_extra("cache-aside", "l1", &[("DATABASE_URL", required.as_str())]).await;
        assert!(encrypted(&app.state.db).await);
        let made = app
            .post("/pets", &crate::helpers::new_pet("Rex", "dog", 3, 50))
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
        let id = made.json["id"].as_i64().unwrap();
        assert_eq!(app.get(&format!("/pets/{id}")).await.json["name"], "Rex");

        // verify-full against the server's own certificate (self-signed, for
        // `localhost`), when this process can read it.
        let cert = show(&url, "ssl_cert_file").await;
        if std::fs::metadata(&cert).is_ok() {
            let local = url.replacen("127.0.0.1", "localhost", 1);
            let verified = with_params(&local, &format!("sslmode=verify-full&sslrootcert={cert}"));
            let config = crate::helpers::config(&[
                ("DATABASE_URL", verified.as_str()),
                ("CACHE_TIERS", "l1"),
            ]);
            let state = petshop::startup::build_state(&config).await.unwrap();
            assert!(encrypted(&state.db).await);
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: verify-full, {cert} (the server's certificate) is not readable here ***\n"
            );
        }

        // verify-full against a CA that did not sign the server's certificate.
        let certs = cache::testing::TestCerts::generate();
        let wrong = with_params(
            &url,
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                certs.ca_file().display()
            ),
        );
        let config =
            crate::helpers::config(&[("DATABASE_URL", wrong.as_str()), ("CACHE_TIERS", "l1")]);
        let err = petshop::startup::build_state(&config)
            .await
            .expect_err("a server certificate the CA did not sign is refused")
            .to_string();
        let _ = writeln!(std::io::stderr(), "a wrong CA: {err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    }))
    .await;
}
