//! The ceiling of a mix (Amdahl): what it could reach if its reads and its writes only
//! added up, from the same service's reads alone and writes alone in the same run.
//!
//! A mix of `r` reads and `w = 1 - r` writes costs at least `r / reads + w / writes`
//! seconds per request, where `reads` and `writes` are the throughputs of its reads
//! alone (with a warm cache: every read a hit where there is a cache) and of its
//! writes alone. A mix row's `of_ceiling` is its throughput over `1 / (r / reads + w /
//! writes)`: below 1, its writes cost its reads more than their own time (the pages
//! and counts they invalidate and reload, and what waits on them).

use crate::results::Row;
use crate::workload::Workload;

/// The reads alone and the writes alone of the mix `workload` (a [`Workload::Mix`] or
/// [`Workload::SeedMix`] with both reads and writes), and its share of reads; `None`
/// for any other workload.
#[must_use]
pub fn parts(workload: Workload) -> Option<(Workload, Workload, f64)> {
    match workload {
        Workload::Mix { read_percent } if (1..100).contains(&read_percent) => Some((
            Workload::Mix { read_percent: 100 },
            Workload::Mix { read_percent: 0 },
            f64::from(read_percent) / 100.0,
        )),
        Workload::SeedMix { read_percent } if (1..100).contains(&read_percent) => Some((
            Workload::SeedMix { read_percent: 100 },
            Workload::SeedMix { read_percent: 0 },
            f64::from(read_percent) / 100.0,
        )),
        _ => None,
    }
}

/// The mix a workload name is (`mix-95/5`, `seed-95/5`), parsed back.
fn mix_named(name: &str) -> Option<Workload> {
    let (kind, shares) = name.split_once('-')?;
    let (reads, _) = shares.split_once('/')?;
    let read_percent: u8 = reads.parse().ok()?;
    match kind {
        "mix" => Some(Workload::Mix { read_percent }),
        "seed" => Some(Workload::SeedMix { read_percent }),
        _ => None,
    }
}

/// The ceiling of a mix with `read_share` reads from its reads alone and writes alone
/// (req/s); `None` when either was not measured.
#[must_use]
pub fn ceiling(read_share: f64, reads_rps: f64, writes_rps: f64) -> Option<f64> {
    (reads_rps > 0.0 && writes_rps > 0.0)
        .then(|| 1.0 / (read_share / reads_rps + (1.0 - read_share) / writes_rps))
}

/// Sets `of_ceiling` of every mix row among `rows` (one service's rows) whose reads
/// alone and writes alone are there too.
pub fn set_of_ceiling(rows: &mut [Row]) {
    let rps_of = |rows: &[Row], w: Workload| {
        let name = w.to_string();
        rows.iter().find(|r| r.workload == name).map(|r| r.rps)
    };
    let found: Vec<Option<f64>> = rows
        .iter()
        .map(|r| {
            let (reads, writes, share) = parts(mix_named(&r.workload)?)?;
            let c = ceiling(share, rps_of(rows, reads)?, rps_of(rows, writes)?)?;
            Some(r.rps / c)
        })
        .collect();
    for (r, x) in rows.iter_mut().zip(found) {
        r.of_ceiling = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: &str, rps: f64) -> Row {
        Row {
            workload: workload.to_owned(),
            rps,
            ..Row::default()
        }
    }

    #[test]
    fn the_ceiling_adds_the_costs_of_reads_and_writes() {
        // Reads alone 45.9k req/s and writes alone 3.5k: a 95/5 mix tops out at 28.6k.
        let c = ceiling(0.95, 45_900.0, 3_500.0).unwrap();
        assert!((c - 28_600.0).abs() < 100.0, "{c}");
        assert_eq!(ceiling(0.95, 0.0, 3_500.0), None);
    }

    #[test]
    fn a_mix_row_is_set_against_its_own_service_s_parts() {
        let mut rows = vec![
            row("mix-100/0", 45_900.0),
            row("mix-95/5", 14_600.0),
            row("mix-80/20", 5_000.0),
            row("mix-0/100", 3_500.0),
            row("seed-95/5", 1_000.0),
            row("hot", 50_000.0),
        ];
        set_of_ceiling(&mut rows);
        let x = rows[1].of_ceiling.unwrap();
        assert!((x - 0.51).abs() < 0.01, "{x}");
        assert!(rows[2].of_ceiling.is_some());
        // Its parts are not mixes; the seed mix's parts were not measured.
        assert_eq!(
            [
                rows[0].of_ceiling,
                rows[3].of_ceiling,
                rows[4].of_ceiling,
                rows[5].of_ceiling
            ],
            [None; 4]
        );
    }

    #[test]
    fn names_parse_back_to_the_mixes_they_print() {
        for w in [Workload::Mix { read_percent: 95 }, Workload::SEED_MIX] {
            assert_eq!(mix_named(&w.to_string()), Some(w));
        }
        assert_eq!(mix_named("hot"), None);
    }
}
