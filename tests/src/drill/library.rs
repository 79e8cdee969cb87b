//! The drill over `CacheClient`s and an in-memory source: the freshness checker with a
//! fault schedule.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, CacheError, Namespace, Strategy, Topology, Ttl, WriteConsistency};

use super::{Read, Target, Truth, Write};
use crate::freshness::{Keys, MemorySource};

/// Entries live long: staleness must not be hidden by expiry.
const TTL: Ttl = Ttl::secs(600);

/// One `CacheClient` instance over the shared source.
#[derive(Debug)]
pub struct ClientTarget {
    client: CacheClient,
    source: Arc<MemorySource>,
    rows: Namespace,
}

impl ClientTarget {
    /// `instances` clients of `strategy` over `topology`, reaching Redis at `redis_url`
    /// with the pet shop's default timeout (50 ms).
    ///
    /// # Panics
    /// When a client cannot be built.
    #[must_use]
    pub fn instances(
        strategy: Strategy,
        consistency: WriteConsistency,
        topology: Topology,
        redis_url: &str,
        source: &Arc<MemorySource>,
        instances: usize,
    ) -> Vec<Arc<Self>> {
        let keys = Keys::unique();
        (0..instances)
            .map(|_| {
                let mut b = CacheClient::builder(&keys.builder)
                    .strategy(strategy)
                    .write_consistency(consistency)
                    .entity(&keys.rows, &[&keys.lists]);
                if topology.has_l1() {
                    b = b.l1(MokaTier::builder());
                }
                if topology.has_l2() {
                    b = b.l2(RedisTier::builder(redis_url).op_timeout(Duration::from_millis(50)));
                }
                Arc::new(Self {
                    client: b.build().expect("a valid client"),
                    source: source.clone(),
                    rows: keys.rows.clone(),
                })
            })
            .collect()
    }

    /// The client.
    #[must_use]
    pub fn client(&self) -> &CacheClient {
        &self.client
    }

    /// Two `l1+l2` clients over a fresh source of rows `0..=ids` (1 ms reads), their
    /// backplanes connected.
    ///
    /// # Panics
    /// When a backplane does not connect within 10 s.
    pub async fn for_drill(
        strategy: Strategy,
        consistency: WriteConsistency,
        redis_url: &str,
        ids: i64,
    ) -> (Vec<Arc<Self>>, Arc<MemorySource>) {
        let source = MemorySource::new(ids + 1, Duration::from_millis(1));
        let targets = Self::instances(strategy, consistency, Topology::L1L2, redis_url, &source, 2);
        for t in &targets {
            assert!(
                t.client.wait_for_backplane(Duration::from_secs(10)).await,
                "the backplane did not connect"
            );
        }
        (targets, source)
    }
}

impl Target for ClientTarget {
    async fn read(&self, id: i64) -> Read {
        let source = self.source.clone();
        let got = self
            .client
            .get_entity(&self.rows, id, TTL, || async move {
                Ok::<_, Infallible>(source.read(id).await)
            })
            .await;
        match got {
            Ok(f) => Read::Value {
                version: f.value.map(|r| r.version),
                x_cache: f.source.as_header(),
            },
            Err(e) => Read::Failed(e.to_string()),
        }
    }

    async fn write(&self, id: i64, version: u64) -> Write {
        let ticket = match self.client.begin_write(&self.rows, Some(id)).await {
            Ok(ticket) => ticket,
            Err(CacheError::WriteRefused { .. }) => return Write::Refused,
            Err(e) => return Write::Failed(e.to_string()),
        };
        let row = self.source.set(id, version);
        self.client.finish_write(ticket, id, Some(&row), TTL).await;
        Write::Acked
    }

    async fn pending(&self) -> u64 {
        self.client.stats().recovery.pending
    }
}

impl Truth for MemorySource {
    async fn version(&self, id: i64) -> Option<u64> {
        self.peek(id)
    }
}
