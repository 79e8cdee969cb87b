//! What an L1 really costs in resident memory against its byte budget.
//!
//! ```text
//! cargo run --release -p cache --example l1_memory -- [BUDGET_MIB] [KEYS] [MODE] [ROUNDS]
//! ```
//!
//! Fills an L1-only client bounded by `BUDGET_MIB` (default 8) with `KEYS` distinct
//! entries (default 300,000, far more than fit), each a pet-sized value read through
//! [`CacheClient::get_entity`] (MODE `entity`, the default: an encoded payload and its
//! decoded copy), or a raw pre-encoded body (MODE `raw`, as the pet shop's response
//! cache holds), then goes over every key again (`ROUNDS` in all, default 3) so that eviction churns. It prints
//! the resident set (from `/proc/self/statm`) before and after and what the tier
//! charged. Each budget runs in a process of its own (a process's resident set rarely
//! shrinks), beside a baseline process with no L1 doing the same reads; the last line
//! is the growth over that baseline against the budget. `tier:N` (N-byte payloads set
//! straight into the tier, `ROUNDS` = 1) is how [`cache::tier::MokaTier`]'s per-entry
//! overhead was measured.

use std::time::Duration;

use bytes::Bytes;
use cache::tier::{Cache, Entry, MokaTier};
use cache::{CacheClient, KeyBuilder, Strategy, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pet {
    id: i64,
    name: String,
    species: String,
    age: i32,
    happiness: i32,
    created_at: String,
    updated_at: String,
}

fn pet(id: i64) -> Pet {
    Pet {
        id,
        name: format!("pet number {id}"),
        species: "cat".into(),
        age: (id % 20) as i32,
        happiness: (id % 100) as i32,
        created_at: "2026-11-26T14:22:00.000000Z".into(),
        updated_at: "2026-11-26T14:22:00.000000Z".into(),
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The parent: one child process per budget (0, the baseline without an L1, then the
/// budget asked for), each printing its resident growth; then the net growth.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("L1_MEMORY_CHILD").is_some() {
        return child(&args);
    }
    let growth = |budget: &str| -> anyhow::Result<(u64, String)> {
        let mut child_args = args.clone();
        if child_args.is_empty() {
            child_args.push("8".into());
        }
        child_args[0] = budget.into();
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(&child_args)
            .env("L1_MEMORY_CHILD", "1")
            .output()?;
        anyhow::ensure!(out.status.success(), "child failed: {out:?}");
        let text = String::from_utf8(out.stdout)?;
        let bytes = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("growth_bytes="))
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no growth in {text:?}"))?;
        Ok((bytes, text.trim().to_owned()))
    };
    let budget_mib: u64 = args.first().map_or(Ok(8), |a| a.parse())?;
    let (base, base_line) = growth("0")?;
    let (with, with_line) = growth(&budget_mib.to_string())?;
    println!("{base_line}\n{with_line}");
    let net = with.saturating_sub(base);
    println!(
        "L1 of {budget_mib} MiB: resident growth over no L1 = {:.1} MiB ({:.2}x the budget)",
        mib(net),
        net as f64 / (budget_mib << 20).max(1) as f64
    );
    Ok(())
}

#[tokio::main]
async fn child(args: &[String]) -> anyhow::Result<()> {
    let mut args = args.iter().cloned();
    let budget_mib: u64 = args.next().map_or(Ok(8), |a| a.parse())?;
    let keys_n: i64 = args.next().map_or(Ok(300_000), |a| a.parse())?;
    let mode = args.next().unwrap_or_else(|| "entity".into());
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let budget = budget_mib << 20;

    let keys = KeyBuilder::new("petshop")?;
    let ns = keys.namespace("pet")?;
    // Budget 0: no L1 at all, the baseline the others are measured against.
    let mut builder = CacheClient::builder(&keys)
        .strategy(Strategy::CacheAside)
        .entity(&ns, &[]);
    if budget > 0 {
        builder = builder.l1(MokaTier::builder().max_bytes(budget));
    }
    let client = builder.build()?;
    let tier = match client.l1() {
        Some(l1) => l1.clone(),
        None => MokaTier::builder().max_bytes(1).build()?,
    };
    let ttl = Ttl::secs(3600);
    let before = resident_bytes();

    for _round in 0..rounds {
        for id in 0..keys_n {
            match mode.as_str() {
                m if m.starts_with("tier:") => {
                    let n: usize = m[5..].parse()?;
                    tier.set(&ns.id(id), Entry::new(vec![b'x'; n], 0, 0), ttl)
                        .await?;
                }
                "tier" => {
                    let body = Bytes::from(serde_json::to_vec(&pet(id))?);
                    let key = ns.id(id);
                    tier.set(&key, Entry::new(body, 0, 0), ttl).await?;
                }
                "raw" => {
                    let body = Bytes::from(serde_json::to_vec(&pet(id))?);
                    let load = || async move { Ok::<_, std::io::Error>(body) };
                    client.read(&ns, id, ttl).load(load).await?;
                }
                _ => {
                    let load = || async move { Ok::<_, std::io::Error>(Some(pet(id))) };
                    client.get_entity(&ns, id, ttl, load).await?;
                }
            }
        }
    }
    tier.run_pending_tasks().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tier.run_pending_tasks().await;
    let after = resident_bytes();
    let growth = after.saturating_sub(before);
    println!(
        "mode={mode} budget={budget_mib} MiB keys={keys_n} held={} charged={:.1} MiB \
         resident growth={:.1} MiB growth_bytes={growth}",
        tier.entry_count(),
        mib(tier.weighted_size()),
        mib(growth),
    );
    Ok(())
}
