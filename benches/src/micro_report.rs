//! Turns criterion's estimates of `benches/micro.rs` into a markdown table of ns/op and
//! ratios to the raw baselines measured in the same run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// The payload groups of the micro-benchmarks, in table order.
pub const GROUPS: [&str; 3] = ["pet", "page10", "page100"];

/// Each benchmark, its baseline, and the target ratio (report only, never asserted).
pub const BASELINES: &[(&str, &str, Option<f64>)] = &[
    ("raw_moka_get", "", None),
    ("typed_l1_hit", "raw_moka_get", Some(2.0)),
    ("tiered_l1_hit", "raw_moka_get", None),
    ("raw_redis_get", "", None),
    ("raw_redis_get_decode", "raw_redis_get", None),
    ("typed_l2_hit", "raw_redis_get_decode", Some(1.2)),
    ("tiered_l2_promote", "raw_redis_get_decode", None),
    ("raw_moka_insert", "", None),
    ("set_l1", "raw_moka_insert", None),
    ("miss_load_fill_l1", "raw_moka_insert", None),
    ("raw_redis_set_encode", "", None),
    ("set_l2", "raw_redis_set_encode", None),
    ("set_l1l2", "raw_redis_set_encode", None),
    ("miss_load_fill_l1l2", "raw_redis_set_encode", None),
    ("raw_redis_del", "", None),
    ("delete_l1l2", "raw_redis_del", None),
    ("bincode_encode", "", None),
    ("json_encode", "bincode_encode", None),
    ("bincode_decode", "", None),
    ("json_decode", "bincode_decode", None),
];

/// Where criterion writes, found the way criterion finds it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the target directory `cargo metadata` reports,
/// else the workspace's `target/criterion`.
#[must_use]
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(manifest_dir)
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok());
    if let Some(target) = metadata
        .as_ref()
        .and_then(|m| m.get("target_directory")?.as_str())
    {
        return PathBuf::from(target).join("criterion");
    }
    manifest_dir.join("../target/criterion")
}

/// Mean ns/op of `group/bench`, if criterion has measured it.
pub fn mean_ns(dir: &Path, group: &str, bench: &str) -> Option<f64> {
    let path = dir.join(group).join(bench).join("new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("mean")?.get("point_estimate")?.as_f64()
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The markdown table of every measured benchmark under `dir`.
#[must_use]
pub fn markdown(dir: &Path) -> String {
    let mut s = String::from(
        "# Micro-benchmarks\n\nMean time per operation (criterion); ratio = benchmark / its \
         raw baseline in the same run. Targets are reported, never asserted.\n",
    );
    for group in GROUPS {
        let _ = writeln!(s, "\n## {group}\n");
        let _ = writeln!(
            s,
            "| benchmark | time/op | baseline | baseline time/op | ratio | target |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---|");
        for &(bench, base, target) in BASELINES {
            let Some(ns) = mean_ns(dir, group, bench) else {
                continue;
            };
            let base_ns = (!base.is_empty())
                .then(|| mean_ns(dir, group, base))
                .flatten();
            let ratio = base_ns.map(|b| ns / b);
            let target = match (target, ratio) {
                (Some(t), Some(r)) => format!("≤ {t}× {}", if r <= t { "met" } else { "missed" }),
                (Some(t), None) => format!("≤ {t}×"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| {bench} | {} | {} | {} | {} | {target} |",
                fmt_ns(ns),
                if base.is_empty() { "-" } else { base },
                base_ns.map_or_else(|| "-".to_owned(), fmt_ns),
                ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×")),
            );
        }
    }
    s
}

/// Writes the table to `out` and returns it.
pub fn write(dir: &Path, out: &Path) -> Result<String> {
    let md = markdown(dir);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
    Ok(md)
}

/// `benches/results/micro.md`.
#[must_use]
pub fn default_out() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results/micro.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(dir: &Path, group: &str, bench: &str, ns: f64) {
        let d = dir.join(group).join(bench).join("new");
        std::fs::create_dir_all(&d).unwrap();
        let json = serde_json::json!({"mean": {"point_estimate": ns}});
        std::fs::write(d.join("estimates.json"), json.to_string()).unwrap();
    }

    #[test]
    fn ratios_are_taken_against_the_baseline_of_the_same_group() {
        let dir = tempfile::tempdir().unwrap();
        estimate(dir.path(), "pet", "raw_moka_get", 100.0);
        estimate(dir.path(), "pet", "typed_l1_hit", 150.0);
        estimate(dir.path(), "page10", "typed_l1_hit", 900.0);
        let md = markdown(dir.path());
        assert!(
            md.contains("| typed_l1_hit | 150 ns | raw_moka_get | 100 ns | 1.50× | ≤ 2× met |"),
            "{md}"
        );
        assert!(
            md.contains("| typed_l1_hit | 900 ns | raw_moka_get | - | - | ≤ 2× |"),
            "{md}"
        );
    }
}
