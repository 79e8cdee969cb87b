//! TLS to Redis (`rediss://`), on one server and on a cluster, with a CA and
//! certificates made for the test: hits through L2, the backplane, the rate limiter and
//! the flush over TLS; a server the CA does not vouch for and a mutual-TLS server
//! without our certificate degrade the tier (reads answered from the source), never fail.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use cache::limit::{Counter, RateLimiter};
use cache::testing::{ClientAuth, RedisCluster, RedisServer, TestCerts};
use cache::tier::{MokaTier, RedisTier, RedisTierBuilder, RedisTls};
use cache::{CacheClient, KeyBuilder, Namespace, Source, Ttl};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a handshake on a loaded machine: a timeout would hide its error.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

struct Shop {
    keys: KeyBuilder,
    pets: Namespace,
}

impl Shop {
    fn new() -> Self {
        let keys = KeyBuilder::new(&format!("t{:x}", rand::random::<u32>())).unwrap();
        Self {
            pets: keys.namespace("pet").unwrap(),
            keys,
        }
    }

    /// An instance with L1 and L2 over `l2`.
    fn instance(&self, l2: RedisTierBuilder) -> CacheClient {
        CacheClient::builder(&self.keys)
            .l1(MokaTier::builder())
            .l2(l2.op_timeout(OP_TIMEOUT).connect_timeout(OP_TIMEOUT))
            .entity(&self.pets, &[])
            .build()
            .unwrap()
    }

    async fn read(&self, client: &CacheClient, name: &'static str) -> (Option<String>, Source) {
        let got = client
            .get_entity(&self.pets, 1, TTL, move || async move {
                Ok::<_, Infallible>(Some(name.to_owned()))
            })
            .await
            .unwrap();
        (got.value, got.source)
    }
}

fn node(redis: &RedisServer, tls: RedisTls) -> RedisTierBuilder {
    RedisTier::builder(redis.url()).tls(tls)
}

/// A hit through L2, then a write on one instance seen by the other over the backplane.
async fn hits_and_the_backplane_work(shop: &Shop, l2: impl Fn() -> RedisTierBuilder) {
    let (a, b) = (shop.instance(l2()), shop.instance(l2()));
    for instance in [&a, &b] {
        assert!(
            instance.wait_for_backplane(WAIT).await,
            "never subscribed over TLS"
        );
    }

    // B loads pet 1; A finds it in L2, over TLS.
    assert_eq!(shop.read(&b, "Rex").await.1, Source::Miss);
    assert_eq!(shop.read(&b, "Rex").await.1, Source::HitL1);
    assert_eq!(
        shop.read(&a, "Rex").await,
        (Some("Rex".into()), Source::HitL2)
    );

    // A writes pet 1; B's L1 copy goes, told over the TLS backplane.
    let received = b.stats().backplane.unwrap().received;
    let ticket = a.begin_write(&shop.pets, Some(1)).await.unwrap();
    a.finish_write(ticket, 1, Some(&"Max".to_string()), TTL)
        .await;
    // Only the backplane can drop B's copy before its TTL: poll until it has.
    let deadline = Instant::now() + WAIT;
    let seen = loop {
        let read = shop.read(&b, "Max").await;
        if read.0.as_deref() == Some("Max") {
            break read;
        }
        assert_eq!(read.1, Source::HitL1);
        assert!(Instant::now() < deadline, "the write never reached B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(seen.1, Source::Miss);
    assert!(b.stats().backplane.unwrap().received > received);
    assert_eq!(b.backplane_connected(), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_l2_hits_and_the_backplane_carries_a_write_to_the_other_instance() {
    bounded(async {
        let certs = TestCerts::generate();
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::No);
        hits_and_the_backplane_work(&Shop::new(), || node(&redis, certs.tls())).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_on_a_cluster_l2_hits_and_the_backplane_carries_a_write() {
    bounded(async {
        let certs = TestCerts::generate();
        let cluster = tokio::task::spawn_blocking({
            let certs = certs.clone();
            move || RedisCluster::spawn_tls(&certs)
        })
        .await
        .unwrap();
        let l2 = || RedisTier::cluster_builder(cluster.seeds()).tls(certs.tls());
        hits_and_the_backplane_work(&Shop::new(), l2).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_rate_limiter_counts_on_redis_and_the_flush_empties_it() {
    bounded(async {
        let certs = TestCerts::generate();
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::Optional);
        let tier = || {
            node(&redis, certs.tls_with_client_cert())
                .prefix("shop")
                .op_timeout(OP_TIMEOUT)
                .build()
                .unwrap()
        };
        let limiter = RateLimiter::new(2, Duration::from_secs(60))
            .unwrap()
            .shared(tier());
        let decisions = [
            limiter.check("k").await,
            limiter.check("k").await,
            limiter.check("k").await,
        ];
        assert_eq!(decisions.map(|d| d.allowed), [true, true, false]);
        assert!(decisions.iter().all(|d| d.counted_by == Counter::Shared));

        // The flush (SCAN + UNLINK of the prefix) runs over TLS too.
        let l2 = tier();
        let key = KeyBuilder::new("shop")
            .unwrap()
            .namespace("pet")
            .unwrap()
            .id(1);
        let entry = cache::tier::Entry::new(&b"rex"[..], 1, 0);
        cache::tier::Cache::set(&l2, &key, entry, TTL)
            .await
            .unwrap();
        cache::tier::Cache::clear(&l2).await.unwrap();
        assert!(cache::tier::Cache::get(&l2, &key).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_degrades_the_tier_and_says_why() {
    bounded(async {
        let (certs, stranger) = (TestCerts::generate(), TestCerts::generate());
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::No);
        let shop = Shop::new();
        let client = shop.instance(node(&redis, stranger.tls()));

        // The error says the certificate was the trouble, not the network.
        let err = client.l2().unwrap().ping().await.unwrap_err();
        assert!(err.is_certificate_rejected(), "{err:?}");
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );
        // Reads are answered from the source, every time.
        for _ in 0..3 {
            let (value, source) = shop.read(&client, "Rex").await;
            assert_eq!(value.as_deref(), Some("Rex"));
            assert_ne!(source, Source::HitL2);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_works_with_the_client_certificate_and_degrades_without_it() {
    bounded(async {
        let certs = TestCerts::generate();
        let redis = RedisServer::spawn_tls(&certs, ClientAuth::Required);

        let with = node(&redis, certs.tls_with_client_cert())
            .op_timeout(OP_TIMEOUT)
            .build()
            .unwrap();
        with.ping().await.unwrap();

        let shop = Shop::new();
        let without = shop.instance(node(&redis, certs.tls()));
        for _ in 0..3 {
            assert_eq!(shop.read(&without, "Rex").await.0.as_deref(), Some("Rex"));
        }
        assert!(without.l2().unwrap().ping().await.is_err());
        assert_eq!(without.stats().cache.tier("l2").map(|t| t.hits), Some(0));
    })
    .await;
}

#[test]
fn tls_settings_need_rediss_urls_and_a_client_certificate_needs_its_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let certs = TestCerts::generate();
    let plain = RedisTier::builder("redis://127.0.0.1:1")
        .tls(certs.tls())
        .build()
        .unwrap_err();
    assert!(plain.to_string().contains("rediss://"), "{plain}");

    let half = RedisTls::new()
        .client_cert_pem(certs.client_cert_pem())
        .unwrap();
    let e = RedisTier::builder("rediss://127.0.0.1:1")
        .tls(half)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("both or neither"), "{e}");

    // A key that is not the certificate's.
    let other = TestCerts::generate();
    let mismatched = RedisTls::new()
        .client_cert_pem(certs.client_cert_pem())
        .and_then(|t| t.client_key_pem(other.client_key_pem()))
        .unwrap();
    let e = RedisTier::builder("rediss://127.0.0.1:1")
        .tls(mismatched)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}
