//! Figures for people, as SVG drawn with plotters, the two pictures the paper explains itself
//! with and the chart that explains a selection table:
//!
//! - [`breakpoint_chart`]: each cut's predicted objective against uplink bandwidth (log axes),
//!   the breakpoints marked and labelled in Mbps (`DIR/selection.svg`);
//! - [`cuts_chart`]: per candidate cut, end-to-end latency stacked as phone, transfer and server,
//!   and the phone's energy, on one network (`DIR/cuts.svg`);
//! - [`node_chart`]: per node, predicted phone latency and output size
//!   (`nsplit annotate --plot`), the paper's per-layer figure.

use super::annotate::Annotations;
use super::format::{fig, file_name};
use crate::cut::Cut;
use crate::plan::selection::{cost_line, CostLine, SelectionTable};
use crate::plan::{predict, BandwidthBucket, Objective, Plan, Prediction};
use crate::Analysis;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";
/// Colours of the series, in order (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// The breakpoint markers' colour.
const MARKER: RGBColor = RGBColor(90, 90, 90);
/// Phone, transfer and server parts of a stacked bar.
const PARTS: [(&str, RGBColor); 3] = [
    ("phone", RGBColor(31, 119, 180)),
    ("transfer", RGBColor(255, 127, 14)),
    ("server", RGBColor(44, 160, 44)),
];

fn drawing<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the figure: {e:?}")
}

/// The series' legend, in the upper right corner.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)
}

/// `lo..hi` widened so that a log axis has room: a positive, non-empty range.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (1e-3, 1.0);
    }
    (lo / 1.5, (hi * 1.5).max(lo * 10.0))
}

/// What the objective is, with its unit.
fn objective_label(objective: Objective) -> &'static str {
    match objective {
        Objective::Latency => "end-to-end latency (ms)",
        Objective::Energy => "phone energy (mJ)",
    }
}

/// The breakpoint chart: each cut's objective `constant + per_inverse_mbps / B` from `from` to
/// `to` Mbps (one series per cut, labelled with its id), and a marker at each breakpoint,
/// labelled `<B> Mbps` at the marker's x.
pub fn breakpoint_chart(
    title: &str,
    objective: Objective,
    lines: &[(String, CostLine)],
    (from, to): (f64, f64),
    breakpoints: &[f64],
) -> Result<String> {
    let xs: Vec<f64> = (0..=240)
        .map(|k| from * (to / from).powf(k as f64 / 240.0))
        .collect();
    let curves: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|(_, l)| xs.iter().map(|&x| (x, l.at_mbps(x))).collect())
        .collect();
    let (ylo, yhi) = log_range(curves.iter().flatten().map(|&(_, y)| y));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d((from..to).log_scale(), (ylo..yhi).log_scale())
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("uplink bandwidth (Mbps)")
            .y_desc(objective_label(objective))
            .x_label_formatter(&|v| fig(*v))
            .y_label_formatter(&|v| fig(*v))
            .draw()
            .map_err(drawing)?;
        for (i, ((id, _), points)) in lines.iter().zip(curves).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = points.into_iter().filter(|&(_, y)| y > 0.0).collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(drawing)?
                .label(id.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        for &b in breakpoints {
            chart
                .draw_series([PathElement::new(
                    [(b, ylo), (b, yhi)],
                    MARKER.stroke_width(1),
                )])
                .map_err(drawing)?;
            let label = format!("{} Mbps", fig(b));
            let style = (FONT, 13).into_font().color(&MARKER);
            chart
                .draw_series([Text::new(label, (b, yhi), style)])
                .map_err(drawing)?;
        }
        legend(&mut chart)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// `DIR/selection.svg`: [`breakpoint_chart`] of a selection table.
pub fn selection_chart(table: &SelectionTable) -> Result<String> {
    let lines: Vec<(String, CostLine)> = table
        .cuts
        .iter()
        .map(|c| (c.id.clone(), c.objective_at_bandwidth))
        .collect();
    let pieces = &table.breakpoints.pieces;
    let breakpoints: Vec<f64> = pieces
        .iter()
        .take(pieces.len().saturating_sub(1))
        .map(|p| p.to_mbps)
        .collect();
    let name = file_name(&table.model.path);
    breakpoint_chart(
        &format!(
            "{name}: each cut's predicted {} against uplink, {} network",
            objective_label(table.objective),
            table.breakpoints.network.name
        ),
        table.objective,
        &lines,
        (table.breakpoints.from_mbps, table.breakpoints.to_mbps),
        &breakpoints,
    )
}

/// [`breakpoint_chart`] of a plan: its cuts' lines on the sweep network and its breakpoints.
pub fn plan_breakpoint_chart(a: &Analysis, plan: &Plan, objective: Objective) -> Result<String> {
    let lines: Vec<(String, CostLine)> = plan
        .cuts
        .iter()
        .zip(&plan.sweep_lines)
        .map(|(c, &l)| (c.id(&a.graph), cost_line(l)))
        .collect();
    let n = plan.breakpoints.len();
    let breakpoints: Vec<f64> = plan.breakpoints[..n.saturating_sub(1)]
        .iter()
        .map(|b| b.to_mbps)
        .collect();
    let (from, to) = match (plan.breakpoints.first(), plan.breakpoints.last()) {
        (Some(f), Some(l)) => (f.from_mbps, l.to_mbps),
        _ => (0.1, 1000.0),
    };
    breakpoint_chart(
        &format!(
            "{}: each cut's predicted {} against uplink",
            file_name(&a.model.path),
            objective_label(objective)
        ),
        objective,
        &lines,
        (from, to),
        &breakpoints,
    )
}

/// [`cuts_chart`] of a plan on `bucket`: every cut of the plan, with all-mobile and all-cloud,
/// fewest head nodes first (a cut whose transfer has no known size is left out).
pub fn plan_cuts_chart(
    a: &Analysis,
    plan: &Plan,
    bucket: &BandwidthBucket,
    cloud_load: f64,
) -> Result<String> {
    let mut cuts: Vec<&Cut> = plan.cuts.iter().collect();
    let (all_mobile, all_cloud) = (Cut::all_mobile(&a.graph), Cut::all_cloud(&a.graph));
    for extra in [&all_mobile, &all_cloud] {
        if !cuts.iter().any(|c| c.id(&a.graph) == extra.id(&a.graph)) {
            cuts.push(extra);
        }
    }
    cuts.sort_by_key(|c| c.head_nodes(&a.graph).count());
    let bars: Vec<(String, Prediction)> = cuts
        .into_iter()
        .filter_map(|c| {
            let p = predict::predict(&a.graph, &a.shapes, &plan.costs, c, bucket, cloud_load)?;
            Some((c.id(&a.graph), p))
        })
        .collect();
    cuts_chart(
        &format!(
            "{}: each cut on {} ({} Mbps up, RTT {} ms)",
            file_name(&a.model.path),
            bucket.name,
            bucket.uplink_mbps,
            bucket.rtt_ms
        ),
        &bars,
    )
}

/// A panel on `area` for one bar per cut (`n` of them, labelled by the caller), its y axis from
/// 0 past `max`.
fn bar_panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    n: usize,
    max: f64,
    y_desc: &str,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n as f64, 0.0..(max * 1.25).max(1e-3))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc("cut")
        .y_desc(y_desc)
        .y_label_formatter(&|v| fig(*v))
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// Per candidate cut on one network: its end-to-end latency stacked as phone, transfer and
/// server (left), and the phone's energy (right). One bar per cut, labelled with its id.
pub fn cuts_chart(title: &str, cuts: &[(String, Prediction)]) -> Result<String> {
    let n = cuts.len().max(1);
    // Each bar is labelled with its cut's id above it.
    let ids = |top: &dyn Fn(&Prediction) -> f64| -> Vec<Text<'static, (f64, f64), String>> {
        cuts.iter()
            .enumerate()
            .map(|(i, (id, p))| {
                let style = (FONT, 12).into_font().color(&BLACK);
                Text::new(id.clone(), (i as f64 + 0.2, top(p)), style)
            })
            .collect()
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(title, (FONT, 18)).map_err(drawing)?;
        let (left, right) = root.split_horizontally(SIZE.0 * 3 / 5);
        let ms_max = cuts.iter().map(|(_, p)| p.total_ms).fold(0.0, f64::max);
        let mut chart = bar_panel(&left, n, ms_max, "end-to-end latency (ms)")?;
        for (k, &(part, color)) in PARTS.iter().enumerate() {
            let bars = cuts.iter().enumerate().map(|(i, (_, p))| {
                let stack = [p.mobile_ms, p.transfer_ms, p.cloud_ms];
                let base: f64 = stack[..k].iter().sum();
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.2, base), (x + 0.8, base + stack[k])],
                    color.filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label(part)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .draw_series(ids(&|p| p.total_ms + 0.04 * ms_max))
            .map_err(drawing)?;
        legend(&mut chart)?;
        let mj_max = cuts.iter().map(|(_, p)| p.mobile_mj).fold(0.0, f64::max);
        let mut chart = bar_panel(&right, n, mj_max, "phone energy (mJ)")?;
        let bars = cuts.iter().enumerate().map(|(i, (_, p))| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, p.mobile_mj)],
                PALETTE[4].filled(),
            )
        });
        chart.draw_series(bars).map_err(drawing)?;
        chart
            .draw_series(ids(&|p| p.mobile_mj + 0.04 * mj_max))
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// Per node in topological order: predicted phone latency (bars, left axis) and the size of
/// what the node outputs (line, right axis), as the paper draws its layers.
pub fn node_chart(report: &Annotations) -> Result<String> {
    let nodes = &report.nodes;
    let n = nodes.len().max(1) as f64;
    let ms: Vec<f64> = nodes.iter().map(|r| r.mobile_ms.unwrap_or(0.0)).collect();
    let kb: Vec<f64> = nodes
        .iter()
        .map(|r| r.outputs.iter().filter_map(|o| o.bytes).sum::<u64>() as f64 / 1024.0)
        .collect();
    let ms_max = ms.iter().copied().fold(0.0, f64::max);
    let kb_max = kb.iter().copied().fold(0.0, f64::max);
    let name = file_name(&report.model.path);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{name}: per node, predicted latency on {} and output size",
                    report.profiles.mobile
                ),
                (FONT, 18),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .right_y_label_area_size(72)
            .build_cartesian_2d(0.0..n, 0.0..(ms_max * 1.15).max(1e-3))
            .map_err(drawing)?
            .set_secondary_coord(0.0..n, 0.0..(kb_max * 1.15).max(1e-3));
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("node (topological order)")
            .y_desc("predicted phone latency (ms)")
            .x_label_formatter(&|v| format!("{}", v.floor() as usize))
            .y_label_formatter(&|v| fig(*v))
            .draw()
            .map_err(drawing)?;
        chart
            .configure_secondary_axes()
            .y_desc("output size (KB)")
            .label_style((FONT, 12))
            .y_label_formatter(&|v| fig(*v))
            .draw()
            .map_err(drawing)?;
        let color = PARTS[0].1;
        chart
            .draw_series(ms.iter().enumerate().map(|(i, &v)| {
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, v)], color.filled())
            }))
            .map_err(drawing)?
            .label("phone latency (ms)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let color = PARTS[1].1;
        chart
            .draw_secondary_series(LineSeries::new(
                kb.iter().enumerate().map(|(i, &v)| (i as f64 + 0.5, v)),
                color.stroke_width(2),
            ))
            .map_err(drawing)?
            .label("output size (KB)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        legend(&mut chart)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}
