//! What the service says about itself: tier counters from `GET /cache/stats` and the
//! SQL query counter from `GET /metrics`, read before and after each run.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::Value;

use crate::http::HttpConn;

/// The Prometheus series counting the service's SQL queries (the `_count` of its query
/// duration histogram, summed over its label sets). The one place it is named.
pub const DB_QUERIES_METRIC: &str = "db_client_operation_duration_seconds_count";

/// Hits and misses of one tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierCounts {
    /// Reads the tier answered.
    pub hits: u64,
    /// Reads it could not.
    pub misses: u64,
}

/// The service's counters at one moment; absent parts were not readable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Per tier name (`l1`, `l2`, `none`).
    pub tiers: BTreeMap<String, TierCounts>,
    /// Sum of [`DB_QUERIES_METRIC`] over its label sets.
    pub db_queries: Option<f64>,
}

impl Snapshot {
    /// Reads both endpoints; an endpoint that fails leaves its part empty.
    pub async fn read(addr: SocketAddr) -> Self {
        let mut conn = HttpConn::new(addr);
        let mut snap = Self::default();
        if let Ok(r) = conn.get("/cache/stats").await
            && r.status.is_success()
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
        {
            collect_tiers(&v, &mut snap.tiers);
        }
        if let Ok(r) = conn.get("/metrics").await
            && r.status.is_success()
        {
            snap.db_queries = prometheus_sum(&String::from_utf8_lossy(&r.body), DB_QUERIES_METRIC);
        }
        snap
    }

    /// Hit ratio per tier between `self` (before) and `after`; tiers without reads are left out.
    #[must_use]
    pub fn hit_ratios(&self, after: &Self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (tier, a) in &after.tiers {
            let b = self.tiers.get(tier).copied().unwrap_or_default();
            let hits = a.hits.saturating_sub(b.hits);
            let reads = hits + a.misses.saturating_sub(b.misses);
            if reads > 0 {
                out.insert(tier.clone(), hits as f64 / reads as f64);
            }
        }
        out
    }

    /// SQL queries between `self` (before) and `after`.
    #[must_use]
    pub fn db_queries(&self, after: &Self) -> Option<f64> {
        Some(after.db_queries? - self.db_queries?)
    }
}

/// Finds every object with a `tier` name and `hits`/`misses` counters, wherever it sits
/// (`{"tiers":[…]}`, `{"cache":{"tiers":[…]}}`, or a map keyed by tier).
fn collect_tiers(v: &Value, out: &mut BTreeMap<String, TierCounts>) {
    match v {
        Value::Object(map) => {
            let hits = map.get("hits").and_then(Value::as_u64);
            let misses = map.get("misses").and_then(Value::as_u64);
            let name = map
                .get("tier")
                .or_else(|| map.get("name"))
                .and_then(Value::as_str);
            if let (Some(name), Some(hits), Some(misses)) = (name, hits, misses) {
                out.insert(name.to_owned(), TierCounts { hits, misses });
                return;
            }
            for (key, child) in map {
                if let (Some(h), Some(m)) = (
                    child.get("hits").and_then(Value::as_u64),
                    child.get("misses").and_then(Value::as_u64),
                ) && child.get("tier").is_none()
                    && matches!(key.as_str(), "l1" | "l2" | "none")
                {
                    out.insert(key.clone(), TierCounts { hits: h, misses: m });
                } else {
                    collect_tiers(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_tiers(i, out)),
        _ => {}
    }
}

/// The sum of every sample of `metric` in a Prometheus text exposition.
#[must_use]
pub fn prometheus_sum(text: &str, metric: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let value = if let Some(labels) = rest.strip_prefix('{') {
            labels.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None // another metric sharing the prefix
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_of_one_metric_are_summed_across_labels() {
        let text = "# HELP petshop_db_queries_total SQL\n\
                    # TYPE petshop_db_queries_total counter\n\
                    petshop_db_queries_total{op=\"select\",table=\"a b\"} 12\n\
                    petshop_db_queries_total{op=\"update\"} 3 1700000000\n\
                    petshop_db_queries_total_created 99\n\
                    other 5\n";
        assert_eq!(prometheus_sum(text, "petshop_db_queries_total"), Some(15.0));
        assert_eq!(prometheus_sum("x 1\n", "petshop_db_queries_total"), None);
        assert_eq!(prometheus_sum("m 2.5\n", "m"), Some(2.5));
    }

    #[test]
    fn tier_counters_are_found_in_lists_and_maps() {
        let list: Value = serde_json::json!({"tiers":[{"tier":"l1","hits":3,"misses":1},{"tier":"l2","hits":0,"misses":1}],"loader":{"calls":1}});
        let map: Value = serde_json::json!({"cache":{"l1":{"hits":5,"misses":5}}});
        let mut a = BTreeMap::new();
        collect_tiers(&list, &mut a);
        assert_eq!(a["l1"], TierCounts { hits: 3, misses: 1 });
        assert_eq!(a.len(), 2);
        let mut b = BTreeMap::new();
        collect_tiers(&map, &mut b);
        assert_eq!(b["l1"].hits, 5);
    }

    #[test]
    fn hit_ratios_are_computed_from_deltas() {
        let mut before = Snapshot::default();
        before.tiers.insert(
            "l1".into(),
            TierCounts {
                hits: 10,
                misses: 10,
            },
        );
        let mut after = before.clone();
        after.tiers.insert(
            "l1".into(),
            TierCounts {
                hits: 13,
                misses: 11,
            },
        );
        after.tiers.insert("l2".into(), TierCounts::default());
        let r = before.hit_ratios(&after);
        assert!((r["l1"] - 0.75).abs() < 1e-9);
        assert!(!r.contains_key("l2"));
    }
}
