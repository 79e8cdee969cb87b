//! SVG plots of a comparison: throughput and p99 per configuration (one panel per
//! workload), and stale reads per configuration (nginx microcache included).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::results::{Report, Row};

const PANEL: (u32, u32) = (520, 360);
const COLORS: [RGBColor; 4] = [
    RGBColor(120, 120, 120), // none
    RGBColor(31, 119, 180),  // l1
    RGBColor(255, 127, 14),  // l2
    RGBColor(44, 160, 44),   // l1+l2
];

fn color_of(topology: &str) -> RGBColor {
    match topology {
        "l1" => COLORS[1],
        "l2" => COLORS[2],
        "l1+l2" => COLORS[3],
        _ => COLORS[0],
    }
}

/// Writes `<base>-throughput.svg`, `<base>-p99.svg` and `<base>-stale.svg` into `dir`.
pub fn write_all(report: &Report, dir: &Path, base: &str) -> Result<Vec<PathBuf>> {
    let throughput = dir.join(format!("{base}-throughput.svg"));
    per_workload(report, &throughput, "requests/s", |r| r.rps)?;
    let p99 = dir.join(format!("{base}-p99.svg"));
    per_workload(report, &p99, "p99 latency (µs)", |r| r.p99_us)?;
    let stale = dir.join(format!("{base}-stale.svg"));
    stale_reads(report, &stale)?;
    Ok(vec![throughput, p99, stale])
}

fn workloads(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &report.rows {
        if !out.contains(&r.workload) {
            out.push(r.workload.clone());
        }
    }
    out
}

fn per_workload(
    report: &Report,
    path: &Path,
    what: &str,
    value: impl Fn(&Row) -> f64,
) -> Result<()> {
    let names = workloads(report);
    let cols = 2u32;
    let rows = u32::try_from(names.len().div_ceil(2).max(1))?;
    let root = SVGBackend::new(path, (PANEL.0 * cols, PANEL.1 * rows)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((rows as usize, cols as usize));
    for (name, area) in names.iter().zip(panels.iter()) {
        let bars: Vec<(String, f64, &str)> = report
            .rows
            .iter()
            .filter(|r| &r.workload == name)
            .map(|r| (r.config(), value(r), r.topology.as_str()))
            .collect();
        bar_panel(area, &format!("{name}: {what}"), &bars)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn bar_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    bars: &[(String, f64, &str)],
) -> Result<()> {
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0) * 1.1;
    #[allow(clippy::cast_precision_loss)]
    let x_range = -0.5f64..(n as f64 - 0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(110)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, 0.0..top)
        .map_err(|e| anyhow!("{e}"))?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            labels.get(i as usize).cloned().unwrap_or_default()
        })
        .x_label_style(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, topology))| {
            #[allow(clippy::cast_precision_loss)]
            let x = i as f64;
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, *v)], color_of(topology).filled())
        }))
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn stale_reads(report: &Report, path: &Path) -> Result<()> {
    // Summed over the workloads, one bar per configuration (a variant is a
    // configuration of its own), then the microcache's: nginx's stale reads beside ours.
    let mut bars: Vec<(String, f64, &str)> = Vec::new();
    for rows in [&report.rows, &report.microcache.rows] {
        for r in rows.iter() {
            #[allow(clippy::cast_precision_loss)]
            let stale = r.stale_reads as f64;
            let label = r.config();
            match bars.iter_mut().find(|b| b.0 == label) {
                Some(bar) => bar.1 += stale,
                None => bars.push((label, stale, r.topology.as_str())),
            }
        }
    }
    let root = SVGBackend::new(path, (PANEL.0 * 2, PANEL.1 + 60)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    bar_panel(&root, "stale reads per configuration", &bars)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
