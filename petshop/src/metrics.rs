//! Prometheus metrics: HTTP traffic by route template, database queries, cache tiers.
//!
//! Each [`Metrics`] owns its registry (no globals), so every app instance, and so every
//! test, counts on its own. Cache counters live in the cache library; they are rendered
//! from [`cache::CacheStats`] at scrape time rather than copied into Prometheus types.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use cache::ClientStats;
use cache::stats::CacheStats;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The service's metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    db_queries: IntCounter,
    db_query_errors: IntCounter,
    db_query_duration: prometheus::Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh counters in a fresh registry.
    ///
    /// # Panics
    /// Never in practice: the metric names are constants that register once.
    #[must_use]
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "petshop_http_requests_total",
                "HTTP requests by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "petshop_http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let db_queries = IntCounter::new(
            "petshop_db_queries_total",
            "SQL statements run by the service (divide by requests for queries per request).",
        )
        .expect("valid metric");
        let db_query_errors = IntCounter::new(
            "petshop_db_query_errors_total",
            "SQL statements that failed.",
        )
        .expect("valid metric");
        let db_query_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "petshop_db_query_duration_seconds",
                "SQL statement latency.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
        )
        .expect("valid metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(db_queries.clone()),
            Box::new(db_query_errors.clone()),
            Box::new(db_query_duration.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                db_queries,
                db_query_errors,
                db_query_duration,
            }),
        }
    }

    /// Counts one finished HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.inner
            .http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one SQL statement (the database connection's metric callback).
    pub fn db_query(&self, elapsed: Duration, failed: bool) {
        self.inner.db_queries.inc();
        if failed {
            self.inner.db_query_errors.inc();
        }
        self.inner.db_query_duration.observe(elapsed.as_secs_f64());
    }

    /// SQL statements counted so far.
    #[must_use]
    pub fn db_queries(&self) -> u64 {
        self.inner.db_queries.get()
    }

    /// The Prometheus text exposition of everything, cache counters included.
    #[must_use]
    pub fn render(&self, cache: &ClientStats, redis_breaker_open: Option<bool>) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        let mut out = String::from_utf8(buf).unwrap_or_default();
        render_cache(&mut out, &cache.cache);
        if let Some(bp) = &cache.backplane {
            family(
                &mut out,
                "petshop_cache_backplane_connected",
                "gauge",
                "1 while the invalidation backplane is subscribed (L1 in use).",
            );
            let _ = writeln!(
                out,
                "petshop_cache_backplane_connected {}",
                u8::from(bp.connected)
            );
            for (name, help, v) in [
                ("published", "Invalidations published.", bp.published),
                (
                    "received",
                    "Invalidations received from other instances.",
                    bp.received,
                ),
                ("drops", "Times the subscription dropped.", bp.drops),
            ] {
                let metric = format!("petshop_cache_backplane_{name}_total");
                family(&mut out, &metric, "counter", help);
                let _ = writeln!(out, "{metric} {v}");
            }
        }
        let r = &cache.recovery;
        family(
            &mut out,
            "petshop_cache_recovery_pending",
            "gauge",
            "Cache-side effects of writes waiting for Redis to answer.",
        );
        let _ = writeln!(out, "petshop_cache_recovery_pending {}", r.pending);
        for (name, help, v) in [
            (
                "queued",
                "Cache-side effects of writes queued because Redis did not answer.",
                r.queued,
            ),
            (
                "replayed",
                "Queued effects replayed once Redis answered.",
                r.replayed,
            ),
            (
                "overflows",
                "Times the recovery queue overflowed and fell back to a flush.",
                r.overflows,
            ),
            (
                "bypassed_reads",
                "Reads sent to the database because a queued effect concerned them.",
                r.bypassed_reads,
            ),
        ] {
            let metric = format!("petshop_cache_recovery_{name}_total");
            family(&mut out, &metric, "counter", help);
            let _ = writeln!(out, "{metric} {v}");
        }
        if let Some(open) = redis_breaker_open {
            family(
                &mut out,
                "petshop_cache_redis_breaker_open",
                "gauge",
                "1 while the Redis tier's circuit breaker is open.",
            );
            let _ = writeln!(out, "petshop_cache_redis_breaker_open {}", u8::from(open));
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_cache(out: &mut String, stats: &CacheStats) {
    type Field = fn(&cache::stats::TierSnapshot) -> u64;
    let tier_counters: [(&str, &str, Field); 9] = [
        ("hits", "Reads answered by the tier.", |t| t.hits),
        ("misses", "Reads the tier could not answer.", |t| t.misses),
        ("sets", "Writes into the tier.", |t| t.sets),
        ("deletes", "Deletes sent to the tier.", |t| t.deletes),
        ("errors", "Failed tier operations.", |t| t.errors),
        ("decode_failures", "Entries that did not decode.", |t| {
            t.decode_failures
        }),
        ("evictions", "Entries dropped for space.", |t| t.evictions),
        ("expirations", "Entries dropped by TTL.", |t| t.expirations),
        (
            "short_circuits",
            "Operations skipped by the open breaker.",
            |t| t.short_circuits,
        ),
    ];
    for (name, help, get) in tier_counters {
        let metric = format!("petshop_cache_{name}_total");
        family(out, &metric, "counter", help);
        for t in &stats.tiers {
            let _ = writeln!(out, "{metric}{{tier=\"{}\"}} {}", t.tier, get(t));
        }
    }
    family(
        out,
        "petshop_cache_hit_ratio",
        "gauge",
        "Hits over reads per tier.",
    );
    for t in &stats.tiers {
        let _ = writeln!(
            out,
            "petshop_cache_hit_ratio{{tier=\"{}\"}} {}",
            t.tier,
            t.hit_ratio()
        );
    }
    for (name, help, v) in [
        (
            "calls",
            "Loader runs (trips to the database).",
            stats.loader.calls,
        ),
        ("errors", "Loader runs that failed.", stats.loader.errors),
        (
            "coalesced",
            "Callers that waited for another caller's load.",
            stats.loader.coalesced,
        ),
        (
            "timeouts",
            "Loads cut short by CACHE_LOAD_TIMEOUT.",
            stats.loader.timeouts,
        ),
        (
            "stale_served",
            "Answers served stale because the database failed.",
            stats.loader.stale_served,
        ),
        (
            "refreshes",
            "Background refreshes started by STATS_REFRESH_AHEAD.",
            stats.loader.refreshes,
        ),
    ] {
        let metric = format!("petshop_cache_loader_{name}_total");
        family(out, &metric, "counter", help);
        let _ = writeln!(out, "{metric} {v}");
    }
}
