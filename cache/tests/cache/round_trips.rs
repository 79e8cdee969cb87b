//! What a write costs in Redis: each cache-side step is one script with the backplane
//! message sent from inside it, so a write takes at most two round trips (one before
//! the source write, one after), and one when nothing is needed before it. Counted two
//! ways: the commands a proxy in front of Redis forwarded, and the client's own
//! round-trip counters ([`cache::stats::TierSnapshot::round_trips`]).

use std::time::Duration;

use cache::stats::RoundTrip;
use cache::testing::{Fault, Proxy, RedisCluster, RedisServer};
use cache::tier::{MokaTier, RedisTier, RedisTierBuilder};
use cache::{CacheClient, KeyBuilder, Namespace, Source, Strategy, Tag, Ttl};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(10);

/// The writes of the pet shop, with tags like its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// A happiness change: the pet's tag and the stats.
    Patch,
    /// A species change: about seventy tags (the pages it leaves and enters).
    SpeciesChange,
    Create,
    Delete,
    /// A write with no tags at all (a library user's).
    PatchUntagged,
}

fn tags(names: impl IntoIterator<Item = String>) -> Vec<Tag> {
    names.into_iter().map(|n| Tag::new(n).unwrap()).collect()
}

fn blocks(species: &str, id: i64) -> impl Iterator<Item = String> {
    (0..20).map(move |level| format!("at:{species}:{level}:{}", (id / 128) >> level))
}

async fn write(client: &CacheClient, pet: &Namespace, kind: Write, id: i64) {
    let value = format!("pet {id} after a {kind:?}");
    match kind {
        Write::Patch | Write::PatchUntagged | Write::SpeciesChange => {
            let planned = match kind {
                Write::Patch => tags([format!("pet:{id}"), "stats".into()]),
                Write::SpeciesChange => tags(
                    [
                        format!("pet:{id}"),
                        "species:dog".into(),
                        "species:cat".into(),
                    ]
                    .into_iter()
                    .chain(["pets:all".into(), "counts".into(), "stats".into()])
                    .chain(blocks("dog", id))
                    .chain(blocks("cat", id))
                    .chain(blocks("*", id)),
                ),
                _ => Vec::new(),
            };
            let ticket = client
                .begin_write_tagged(pet, Some(id), planned)
                .await
                .unwrap();
            client.finish_write(ticket, id, Some(&value), TTL).await;
        }
        Write::Create => {
            let created = ["species:dog", "pets:all", "counts", "stats"].map(String::from);
            let mut ticket = client
                .begin_write_tagged(pet, None, tags(created))
                .await
                .unwrap();
            // The id is the source's: the pages it lands before are known only now.
            ticket.add_tags(tags(blocks("dog", id).chain(blocks("*", id))));
            client.finish_write(ticket, id, Some(&value), TTL).await;
        }
        Write::Delete => {
            let planned = ["species:dog", "pets:all", "counts", "stats"]
                .map(String::from)
                .into_iter()
                .chain([format!("pet:{id}")])
                .chain(blocks("dog", id))
                .chain(blocks("*", id));
            let ticket = client
                .begin_write_tagged(pet, Some(id), tags(planned))
                .await
                .unwrap();
            client.finish_write(ticket, id, None::<&String>, TTL).await;
        }
    }
}

/// The round trips the client counted, by kind.
fn counted(client: &CacheClient) -> std::collections::BTreeMap<&'static str, u64> {
    client.stats().cache.tier("l2").unwrap().round_trips.clone()
}

fn delta(
    after: &std::collections::BTreeMap<&'static str, u64>,
    before: &std::collections::BTreeMap<&'static str, u64>,
) -> Vec<(&'static str, u64)> {
    after
        .iter()
        .map(|(k, n)| (*k, n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The round trips of each write, per strategy, when the step before the source write
/// is needed (tags, or a write-through's key) and when it is not.
fn expected(strategy: Strategy, kind: Write) -> u64 {
    match (strategy, kind) {
        // Nothing before the source write: the invalidation (or bump) and its message.
        (Strategy::CacheAside | Strategy::Versioned, Write::PatchUntagged) => 1,
        _ => 2,
    }
}

fn client(keys: &KeyBuilder, strategy: Strategy, l1: bool, l2: RedisTierBuilder) -> CacheClient {
    let pet = keys.namespace("pet").unwrap();
    let builder = CacheClient::builder(keys)
        .strategy(strategy)
        .entity(&pet, &[])
        .negative_ttl(Ttl::secs(5))
        .l2(l2.op_timeout(Duration::from_secs(2)));
    let builder = if l1 {
        builder.l1(MokaTier::builder())
    } else {
        builder
    };
    builder.build().unwrap()
}

const KINDS: [Write; 5] = [
    Write::Patch,
    Write::SpeciesChange,
    Write::Create,
    Write::Delete,
    Write::PatchUntagged,
];

async fn each_write_takes_its_round_trips_through_a_proxy(strategy: Strategy) {
    let redis = RedisServer::spawn();
    let proxy = Proxy::spawn(redis.port());
    let keys = KeyBuilder::new(&format!("rt{:x}", rand::random::<u32>())).unwrap();
    let pet = keys.namespace("pet").unwrap();
    // Without L1 there is no backplane and nothing in the background: every command the
    // proxy sees is the write's.
    let writer = client(&keys, strategy, false, RedisTier::builder(proxy.url()));
    // The first write of each kind loads its scripts and learns the generation.
    for (i, kind) in KINDS.into_iter().enumerate() {
        write(&writer, &pet, kind, 1000 + i as i64).await;
    }
    for (i, kind) in KINDS.into_iter().enumerate() {
        let (sent, stats) = (proxy.commands().len(), counted(&writer));
        write(&writer, &pet, kind, 10 + i as i64).await;
        let commands = proxy.commands()[sent..].to_vec();
        let want = expected(strategy, kind);
        assert_eq!(
            commands,
            vec!["EVALSHA"; want as usize],
            "{strategy} {kind:?}: the commands sent"
        );
        assert_eq!(
            delta(&counted(&writer), &stats),
            vec![(RoundTrip::Write.as_str(), want)],
            "{strategy} {kind:?}: the round trips counted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_aside_write_takes_two_round_trips_and_one_without_tags() {
    bounded(each_write_takes_its_round_trips_through_a_proxy(
        Strategy::CacheAside,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_write_takes_two_round_trips() {
    bounded(each_write_takes_its_round_trips_through_a_proxy(
        Strategy::WriteThrough,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_write_takes_two_round_trips_and_one_without_tags() {
    bounded(each_write_takes_its_round_trips_through_a_proxy(
        Strategy::Versioned,
    ))
    .await;
}

async fn read(client: &CacheClient, pet: &Namespace, id: i64, value: &str) -> Source {
    let value = value.to_owned();
    client
        .get_entity(pet, id, TTL, || async move {
            Ok::<_, std::convert::Infallible>(Some(value))
        })
        .await
        .unwrap()
        .source
}

/// Waits until `client` has received `n` backplane messages.
async fn received(client: &CacheClient, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = client.stats().backplane.unwrap().received;
        if got >= n || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two L1+L2 instances: `a` writes through the proxy, `b` holds an L1 copy. Each of
/// `a`'s steps is one script that publishes one message (no `PUBLISH` of its own), and
/// `b` drops its copy. Returns the write's round trips, by kind.
async fn the_message_goes_out_inside_the_step(
    strategy: Strategy,
    a: &CacheClient,
    b: &CacheClient,
    proxy: Option<&Proxy>,
) -> Vec<(&'static str, u64)> {
    let keys_pet = b_namespace(b);
    assert!(a.wait_for_backplane(WAIT).await && b.wait_for_backplane(WAIT).await);
    // Warm up: the scripts are loaded, the generation known.
    write(a, &keys_pet, Write::Patch, 99).await;
    assert_eq!(read(b, &keys_pet, 7, "old").await, Source::Miss);
    assert_eq!(read(b, &keys_pet, 7, "old").await, Source::HitL1);
    let heard = received(b, 0).await;
    let sent = proxy.map(|p| p.commands().len());
    let stats = counted(a);
    write(a, &keys_pet, Write::Patch, 7).await;
    let trips = delta(&counted(a), &stats);
    if let (Some(p), Some(sent)) = (proxy, sent) {
        let commands = p.commands()[sent..].to_vec();
        assert!(
            commands.iter().all(|c| c == "EVALSHA"),
            "{strategy}: only scripts, no message of its own: {commands:?}"
        );
    }
    assert_eq!(
        received(b, heard + 2).await,
        heard + 2,
        "{strategy}: one message a step"
    );
    let after = read(b, &keys_pet, 7, "new").await;
    assert_ne!(after, Source::HitL1, "{strategy}: b dropped its copy");
    trips
}

fn b_namespace(b: &CacheClient) -> Namespace {
    let prefix = b.l2().unwrap().prefix().unwrap().to_owned();
    KeyBuilder::new(&prefix).unwrap().namespace("pet").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_l1_each_step_publishes_its_message_from_inside_its_script() {
    bounded(async {
        for strategy in Strategy::ALL {
            let redis = RedisServer::spawn();
            let proxy = Proxy::spawn(redis.port());
            let keys = KeyBuilder::new(&format!("rt{:x}", rand::random::<u32>())).unwrap();
            let a = client(&keys, strategy, true, RedisTier::builder(proxy.url()));
            let b = client(&keys, strategy, true, RedisTier::builder(redis.url()));
            let trips = the_message_goes_out_inside_the_step(strategy, &a, &b, Some(&proxy)).await;
            assert_eq!(trips, vec![("write", 2)], "{strategy}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_step_is_one_script_per_slot_its_message_sharded_with_the_counters() {
    bounded(async {
        let cluster = RedisCluster::spawn();
        for strategy in Strategy::ALL {
            let keys = KeyBuilder::new(&format!("rt{:x}", rand::random::<u32>())).unwrap();
            let tier = || RedisTier::cluster_builder(cluster.seeds());
            let (a, b) = (
                client(&keys, strategy, true, tier()),
                client(&keys, strategy, true, tier()),
            );
            let trips = the_message_goes_out_inside_the_step(strategy, &a, &b, None).await;
            // The pet's key lives in its own slot, the counters and the channel in the
            // prefix's: a step with keys takes one script on each, the key's first.
            let want = match strategy {
                Strategy::CacheAside => 3,
                Strategy::WriteThrough => 4,
                Strategy::Versioned => 2,
            };
            assert_eq!(trips, vec![("write", want)], "{strategy}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_cannot_reach_redis_is_queued_whole_and_replayed_in_one_round_trip() {
    bounded(async {
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let keys = KeyBuilder::new(&format!("rt{:x}", rand::random::<u32>())).unwrap();
        let pet = keys.namespace("pet").unwrap();
        // A breaker that stays closed: the cut is no fault that calls for a new generation.
        let writer = client(
            &keys,
            Strategy::CacheAside,
            false,
            RedisTier::builder(proxy.url()).breaker(1000, Duration::from_millis(10)),
        );
        write(&writer, &pet, Write::SpeciesChange, 1).await;
        assert_eq!(read(&writer, &pet, 1, "before").await, Source::Miss);
        assert_eq!(read(&writer, &pet, 1, "before").await, Source::HitL2);

        // Act: Redis is cut off while a species change (about seventy tags) is written.
        proxy.set(Fault::Cut);
        write(&writer, &pet, Write::SpeciesChange, 1).await;

        // Assert: the step after the source write is one queued effect, and until it is
        // replayed the pet is read from the source.
        let r = writer.stats().recovery;
        assert_eq!((r.queued, r.pending), (1, 1), "{r:?}");
        assert_eq!(read(&writer, &pet, 1, "after").await, Source::Bypass);

        // Act: Redis is back.
        let sent = proxy.commands().len();
        proxy.set(Fault::None);
        let deadline = tokio::time::Instant::now() + WAIT;
        while writer.stats().recovery.pending > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Assert: replayed as one script, and the old entry is gone.
        let r = writer.stats().recovery;
        assert_eq!((r.pending, r.replayed), (0, 1), "{r:?}");
        let scripts = proxy.commands()[sent..]
            .iter()
            // Not the reconnection's set-up, nor the replayer's probes.
            .filter(|c| !matches!(c.as_str(), "PING" | "CLIENT" | "HELLO" | "SELECT"))
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(scripts, ["EVALSHA"], "the replay");
        assert_eq!(read(&writer, &pet, 1, "after").await, Source::Miss);
    })
    .await;
}
