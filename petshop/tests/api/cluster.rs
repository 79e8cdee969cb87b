//! The pet shop on a 3-master Redis Cluster (`REDIS_CLUSTER_NODES`): both tiers in use,
//! and a master killed under it costs cache hits, never a 5xx or a stale answer.

use std::time::{Duration, Instant};

use cache::testing::RedisCluster;
use petshop::config::Topology;
use serde_json::json;

use crate::helpers::{bounded, config, spawn_config};

#[test]
fn cluster_nodes_turn_on_both_tiers_and_exclude_redis_url() {
    let vars = |v: &[(&str, &str)]| {
        petshop::config::Config::from_vars(v.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    };
    let c = vars(&[("REDIS_CLUSTER_NODES", "redis://a:7000,redis://b:7001")]).unwrap();
    assert_eq!(c.cache_tiers, Topology::L1L2);
    assert_eq!(
        c.redis_cluster_nodes.as_deref(),
        Some(&["redis://a:7000".to_owned(), "redis://b:7001".to_owned()][..])
    );
    let both = vars(&[
        ("REDIS_URL", "redis://a:7000"),
        ("REDIS_CLUSTER_NODES", "redis://a:7000"),
    ])
    .unwrap_err();
    assert_eq!(both.var, "REDIS_CLUSTER_NODES");
    let bad = vars(&[("REDIS_CLUSTER_NODES", "a:7000")]).unwrap_err();
    assert_eq!(bad.var, "REDIS_CLUSTER_NODES");
    assert!(bad.message.contains("redis://host:port"), "{}", bad.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_the_shop_costs_hits_not_errors_and_its_pets_come_back() {
    bounded(async {
        let mut cluster = RedisCluster::spawn();
        let seeds = cluster.seeds().join(",");
        let app = spawn_config(
            config(&[
                ("REDIS_CLUSTER_NODES", &seeds),
                ("CACHE_STRATEGY", "cache-aside"),
            ]),
            None,
        )
        .await;
        assert!(
            app.state
                .cache
                .wait_for_backplane(Duration::from_secs(10))
                .await
        );
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        assert_eq!(app.get(&path).await.x_cache(), "MISS");
        assert_eq!(app.get(&path).await.x_cache(), "HIT-L1");

        // Act: the master of this pet's key dies.
        let victim = cluster.master_of(&format!("petshop:pet:id:{id}"));
        tokio::task::block_in_place(|| cluster.kill(victim));

        // Reads and writes still answer, from the database.
        for _ in 0..5 {
            let r = app.get(&path).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let r = app.patch(&path, &json!({"name": "Rex II"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app.get(&path).await;
        assert_eq!((r.status, r.json["name"].as_str()), (200, Some("Rex II")));
        assert!(app.get("/pets?species=dog").await.status == 200);

        // It returns (same port, same nodes.conf): the pet is read fresh and cached again.
        tokio::task::block_in_place(|| cluster.restart(victim));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = app.get(&path).await;
            assert_eq!((r.status, r.json["name"].as_str()), (200, Some("Rex II")));
            if r.x_cache() == "HIT-L1" || r.x_cache() == "HIT-L2" {
                break;
            }
            assert!(Instant::now() < deadline, "the pet was never cached again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
