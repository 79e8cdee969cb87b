//! Prometheus metrics on the `prometheus` crate: one [`Registry`] per app (no globals,
//! so every test counts on its own), exposed as text by `GET /metrics`.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route` (the spec's template, `/pets/{id}`; `unmatched` otherwise), `http_response_status_code` |
//! | `db_client_operation_duration_seconds` | histogram | `outcome` (`ok`, `error`) |
//! | `petshop_rate_limit_requests_total` | counter | `outcome` (`allowed`, `limited`), `counter` (`shared`: on Redis, `local`: in process) |
//! | `petshop_cache_…` | counters and gauges | `tier` where per tier: see [`cache`] |
//!
//! Names and units follow the OpenTelemetry semantic conventions as Prometheus spells
//! them (seconds, `_total` on counters). Requests and queries are counted by the
//! histograms' `_count`. No ratio is exported: a hit ratio is
//! `rate(petshop_cache_hits_total[5m]) / (rate(…hits…) + rate(…misses…))`, which,
//! unlike a lifetime ratio per instance, adds up across instances.

pub mod cache;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use ::cache::limit::Counter;

use crate::cache_layer::CacheLayer;

/// The service's metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    http_duration: HistogramVec,
    db_duration: HistogramVec,
    rate_limited: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in a fresh registry.
    ///
    /// # Panics
    /// Never in practice: the metric names are constants that register once.
    #[must_use]
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests, by method, route template and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &[
                "http_request_method",
                "http_route",
                "http_response_status_code",
            ],
        )
        .expect("valid metric");
        let db_duration = HistogramVec::new(
            HistogramOpts::new(
                "db_client_operation_duration_seconds",
                "Duration of the SQL statements the service runs (its _count: statements).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
            &["outcome"],
        )
        .expect("valid metric");
        // Both outcomes exist from the start: a scrape before the first statement
        // reads 0, not a missing series.
        for outcome in ["ok", "error"] {
            db_duration.with_label_values(&[outcome]);
        }
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "petshop_rate_limit_requests_total",
                "Requests the rate limiter counted, by outcome and where they were counted.",
            ),
            &["outcome", "counter"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(rate_limited.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(db_duration.clone()))
            .expect("metric registered once");
        Self {
            inner: Arc::new(Inner {
                registry,
                http_duration,
                db_duration,
                rate_limited,
            }),
        }
    }

    /// Reports the cache's counters too, read from `cache` at each scrape.
    pub fn register_cache(&self, cache: CacheLayer) {
        if let Err(e) = self
            .inner
            .registry
            .register(Box::new(cache::CacheCollector::new(cache)))
        {
            tracing::error!(error = %e, "cannot register the cache metrics");
        }
    }

    /// Counts one finished HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.inner
            .http_duration
            .with_label_values(&[method, route, status.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Makes every series of the rate limiter exist (at 0), once it is on.
    pub fn rate_limit_on(&self) {
        for outcome in ["allowed", "limited"] {
            for counter in [Counter::Shared, Counter::Local] {
                self.inner
                    .rate_limited
                    .with_label_values(&[outcome, counter.as_str()]);
            }
        }
    }

    /// Counts one request the rate limiter let through (`allowed`) or refused.
    pub fn rate_limited(&self, allowed: bool, counter: Counter) {
        let outcome = if allowed { "allowed" } else { "limited" };
        self.inner
            .rate_limited
            .with_label_values(&[outcome, counter.as_str()])
            .inc();
    }

    /// Counts one SQL statement (the database connection's metric callback).
    pub fn db_query(&self, elapsed: Duration, failed: bool) {
        let outcome = if failed { "error" } else { "ok" };
        self.inner
            .db_duration
            .with_label_values(&[outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// SQL statements counted so far.
    #[must_use]
    pub fn db_queries(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|o| {
                self.inner
                    .db_duration
                    .with_label_values(&[*o])
                    .get_sample_count()
            })
            .sum()
    }

    /// The Prometheus text exposition (format 0.0.4) of every family.
    #[must_use]
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.inner.registry.gather())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot encode metrics");
                String::new()
            })
    }
}
