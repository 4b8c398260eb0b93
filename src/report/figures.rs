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
use crate::analysis::Analysis;
use crate::cut::Cut;
use crate::plan::{predict, BandwidthBucket, Objective, Plan, Prediction};
use crate::selection::{cost_line, CostLine, SelectionTable};
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";
/// Colours of the series, in order (Tableau 10).
pub const PALETTE: [RGBColor; 10] = [
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
    legend_at(chart, SeriesLabelPosition::UpperRight)
}

/// The series' legend at `position`.
fn legend_at<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
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

/// Tick values for a log axis over [lo, hi]: 1, 2, 3, 4, 5, 6 and 8 times the powers of ten in
/// range, so that a range within a decade or two (where the lines of a small model cross) is
/// labelled too; over a wider range 1, 2 and 5 times them, then the powers of ten alone (every
/// k-th), at most 12 in all.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const MOST: usize = 12;
    let mantissa = |v: f64| (v / 10f64.powf(v.log10().floor())).round() as u32;
    let mut ticks = vec![];
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi && ticks.len() < 10_000 {
        for m in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0] {
            let v = m * decade;
            if (lo..=hi).contains(&v) {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > MOST {
        ticks.retain(|&v| matches!(mantissa(v), 1 | 2 | 5));
    }
    if ticks.len() > MOST {
        ticks.retain(|&v| mantissa(v) == 1);
        let step = ticks.len().div_ceil(MOST);
        ticks = ticks.into_iter().step_by(step).collect();
    }
    ticks
}

/// What the objective is, with its unit.
fn objective_label(objective: Objective) -> &'static str {
    match objective {
        Objective::Latency => "end-to-end latency (ms)",
        Objective::Energy => "phone energy (mJ)",
    }
}

/// One panel of a breakpoint chart: the cuts' objective lines on one network.
pub struct Panel {
    /// The network, as the panel's caption says it.
    pub title: String,
    /// (cut id, its objective against the uplink), in the table's order of cuts.
    pub lines: Vec<(String, CostLine)>,
    /// The uplink range drawn, Mbps.
    pub range: (f64, f64),
    /// Where the best cut changes, Mbps.
    pub breakpoints: Vec<f64>,
    /// The buckets on this network: (name, uplink Mbps, chosen cut id), marked on the chart.
    pub marks: Vec<(String, f64, String)>,
}

/// The breakpoint chart: per network (a panel each, stacked), each cut's objective
/// `constant + per_inverse_mbps / B` over the panel's range (one series per cut, one colour per
/// cut id throughout), a marker at each breakpoint labelled `<B> Mbps` and the objective there
/// (where the lines cross), and each bucket's uplink marked with its name and a dot on the cut
/// it chose.
pub fn breakpoint_chart(title: &str, objective: Objective, panels: &[Panel]) -> Result<String> {
    let mut ids: Vec<&str> = vec![];
    for (id, _) in panels.iter().flat_map(|p| &p.lines) {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    let colour = |id: &str| PALETTE[ids.iter().position(|i| *i == id).unwrap_or(0) % PALETTE.len()];
    let height = if panels.len() <= 1 {
        SIZE.1
    } else {
        60 + 320 * panels.len() as u32
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(title, (FONT, 18)).map_err(drawing)?;
        for (panel, area) in panels
            .iter()
            .zip(root.split_evenly((panels.len().max(1), 1)))
        {
            draw_panel(&area, objective, panel, &colour)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// One network's panel of [`breakpoint_chart`].
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    objective: Objective,
    panel: &Panel,
    colour: &dyn Fn(&str) -> RGBColor,
) -> Result<()> {
    let (from, to) = panel.range;
    let xs: Vec<f64> = (0..=240)
        .map(|k| from * (to / from).powf(k as f64 / 240.0))
        .collect();
    let curves: Vec<Vec<(f64, f64)>> = panel
        .lines
        .iter()
        .map(|(_, l)| xs.iter().map(|&x| (x, l.at_mbps(x))).collect())
        .collect();
    let (ylo, yhi) = log_range(curves.iter().flatten().map(|&(_, y)| y));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 14))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (from..to).log_scale(),
            (ylo..yhi).log_scale().with_key_points(log_ticks(ylo, yhi)),
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("uplink bandwidth (Mbps)")
        .y_desc(objective_label(objective))
        .x_label_formatter(&|v| fig(*v))
        .y_label_formatter(&|v| fig(*v))
        .draw()
        .map_err(drawing)?;
    for ((id, _), points) in panel.lines.iter().zip(curves) {
        let color = colour(id);
        let points: Vec<(f64, f64)> = points.into_iter().filter(|&(_, y)| y > 0.0).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(drawing)?
            .label(id.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let best = |x: f64| {
        panel
            .lines
            .iter()
            .map(|(_, l)| l.at_mbps(x))
            .fold(f64::INFINITY, f64::min)
    };
    let unit = match objective {
        Objective::Latency => "ms",
        Objective::Energy => "mJ",
    };
    // Labels of breakpoints close together step down the panel, so they do not overlap.
    let mut level = 0;
    for (i, &b) in panel.breakpoints.iter().enumerate() {
        let close = i > 0 && b / panel.breakpoints[i - 1] < (to / from).powf(0.08);
        level = if close { (level + 1) % 3 } else { 0 };
        chart
            .draw_series([PathElement::new(
                [(b, ylo), (b, yhi)],
                MARKER.stroke_width(1),
            )])
            .map_err(drawing)?;
        let style = (FONT, 12).into_font().color(&MARKER);
        let at_y = yhi * (ylo / yhi).powf(0.05 * level as f64);
        chart
            .draw_series([Text::new(
                format!("{} Mbps", fig(b)),
                (b, at_y),
                style.clone(),
            )])
            .map_err(drawing)?;
        // The objective where the lines cross, beside the crossing.
        let at = best(b);
        chart
            .draw_series([Circle::new((b, at), 3, MARKER.filled())])
            .map_err(drawing)?;
        let below = at * (ylo / yhi).powf(0.05 * level as f64);
        chart
            .draw_series([Text::new(format!("{} {unit}", fig(at)), (b, below), style)])
            .map_err(drawing)?;
    }
    draw_marks(&mut chart, panel, colour, (ylo, yhi), &best)?;
    // Middle right: below the breakpoint labels, above where the lines of sending cuts settle
    // at high bandwidths.
    legend_at(&mut chart, SeriesLabelPosition::MiddleRight)
}

/// Each bucket's uplink in a panel: a dashed line, its choice's point, and its name.
fn draw_marks<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    panel: &Panel,
    colour: &dyn Fn(&str) -> RGBColor,
    (ylo, yhi): (f64, f64),
    best: &dyn Fn(f64) -> f64,
) -> Result<()> {
    let (from, to) = panel.range;
    for (name, mbps, cut) in &panel.marks {
        if !(from..=to).contains(mbps) {
            continue;
        }
        let color = colour(cut);
        let dashes = (0..24).map(|k| {
            let y = |f: f64| ylo * (yhi / ylo).powf(f);
            PathElement::new(
                [
                    (*mbps, y(k as f64 / 24.0)),
                    (*mbps, y((k as f64 + 0.5) / 24.0)),
                ],
                BLACK.mix(0.5).stroke_width(1),
            )
        });
        chart.draw_series(dashes).map_err(drawing)?;
        let at = panel
            .lines
            .iter()
            .find(|(id, _)| id == cut)
            .map_or(best(*mbps), |(_, l)| l.at_mbps(*mbps));
        let style = (FONT, 12).into_font().color(&BLACK);
        chart
            .draw_series([Circle::new((*mbps, at), 5, color.filled())])
            .map_err(drawing)?;
        chart
            .draw_series([Text::new(
                format!("{name}: {cut}"),
                (*mbps, ylo * (yhi / ylo).powf(0.06)),
                style,
            )])
            .map_err(drawing)?;
    }
    Ok(())
}

/// `DIR/selection.svg`: [`breakpoint_chart`] of a selection table, a panel per network (the
/// breakpoint sweep's alone for a table written before networks were listed).
pub fn selection_chart(table: &SelectionTable) -> Result<String> {
    let inner = |pieces: &[crate::selection::Piece]| -> Vec<f64> {
        pieces
            .iter()
            .take(pieces.len().saturating_sub(1))
            .map(|p| p.to_mbps)
            .collect()
    };
    let mut panels: Vec<Panel> = table
        .networks
        .iter()
        .map(|n| {
            let net = &n.network;
            Panel {
                title: format!(
                    "{} (RTT {} ms, {} radio, downlink {}x uplink)",
                    n.buckets.join(", "),
                    net.rtt_ms,
                    net.radio.name,
                    fig(net.downlink_mbps / net.uplink_mbps)
                ),
                lines: table
                    .cuts
                    .iter()
                    .filter_map(|c| Some((c.id.clone(), *n.objective_at_bandwidth.get(&c.id)?)))
                    .collect(),
                range: (n.from_mbps, n.to_mbps),
                breakpoints: inner(&n.pieces),
                marks: table
                    .buckets
                    .iter()
                    .filter(|b| n.buckets.contains(&b.network.name))
                    .map(|b| (b.network.name.clone(), b.network.uplink_mbps, b.cut.clone()))
                    .collect(),
            }
        })
        .collect();
    if panels.is_empty() {
        panels.push(Panel {
            title: format!("{} network", table.breakpoints.network.name),
            lines: table
                .cuts
                .iter()
                .map(|c| (c.id.clone(), c.objective_at_bandwidth))
                .collect(),
            range: (table.breakpoints.from_mbps, table.breakpoints.to_mbps),
            breakpoints: inner(&table.breakpoints.pieces),
            marks: vec![],
        });
    }
    let name = file_name(&table.model.path);
    breakpoint_chart(
        &format!(
            "{name}: each cut's predicted {} against uplink",
            objective_label(table.objective)
        ),
        table.objective,
        &panels,
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
    let range = match (plan.breakpoints.first(), plan.breakpoints.last()) {
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
        &[Panel {
            title: "downlink = uplink".into(),
            lines,
            range,
            breakpoints,
            marks: vec![],
        }],
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
    let chosen = plan
        .buckets
        .iter()
        .find(|b| b.bucket == *bucket)
        .map(|b| plan.cuts[b.cut].id(&a.graph));
    cuts_chart(
        &format!(
            "{}: each cut on {} ({} Mbps up, RTT {} ms)",
            file_name(&a.model.path),
            bucket.name,
            bucket.uplink_mbps,
            bucket.rtt_ms
        ),
        &bars,
        chosen.as_deref(),
    )
}

/// A panel on `area` for one bar per cut (`n` of them, labelled by the caller), its y axis from
/// 0 past `max`, room below for the cuts' ids.
fn bar_panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    n: usize,
    max: f64,
    y_desc: &str,
    label_room: u32,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(label_room)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n as f64, 0.0..(max * 1.15).max(1e-3))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .y_label_formatter(&|v| fig(*v))
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// Each bar's cut id under it, rotated so that long ids never overlap; the chosen cut's in bold
/// with a star.
fn bar_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    cuts: &[(String, Prediction)],
    chosen: Option<&str>,
) -> Result<()> {
    for (i, (id, _)) in cuts.iter().enumerate() {
        // The chart's coordinates are the backend's; the area draws from its own corner.
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let (bx, by) = area.get_base_pixel();
        let (x, y) = (x - bx, y - by);
        let is_chosen = chosen == Some(id.as_str());
        let font = if is_chosen {
            (FONT, 12).into_font().style(FontStyle::Bold)
        } else {
            (FONT, 12).into_font()
        };
        let label = if is_chosen {
            format!("{id} (chosen)")
        } else {
            id.clone()
        };
        let style = TextStyle::from(font).transform(FontTransform::Rotate90);
        area.draw(&Text::new(label, (x + 6, y + 6), style))
            .map_err(drawing)?;
    }
    Ok(())
}

/// Per candidate cut on one network: its end-to-end latency stacked as phone, transfer and
/// server (left), and the phone's energy (right). One bar per cut, its id under it; `chosen`
/// (the plan's choice on that network) is outlined. A part too thin to see (under 1% of the
/// axis) is drawn at 1%, and the legend says so.
pub fn cuts_chart(
    title: &str,
    cuts: &[(String, Prediction)],
    chosen: Option<&str>,
) -> Result<String> {
    let n = cuts.len().max(1);
    let longest = cuts
        .iter()
        .map(|(id, _)| id.chars().count() + 9)
        .max()
        .unwrap_or(8);
    let label_room = 20 + 7 * longest as u32;
    let outline = |i: usize, top: f64| {
        let x = i as f64;
        Rectangle::new([(x + 0.12, 0.0), (x + 0.88, top)], BLACK.stroke_width(2))
    };
    let chosen_at = chosen.and_then(|c| cuts.iter().position(|(id, _)| id == c));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(title, (FONT, 18)).map_err(drawing)?;
        let (left, right) = root.split_horizontally(SIZE.0 * 3 / 5);
        let ms_max = cuts.iter().map(|(_, p)| p.total_ms).fold(0.0, f64::max);
        // Each bar's phone, transfer and server parts as drawn: a part too thin to see at 1%.
        let thin = 0.01 * ms_max;
        let stacks: Vec<[f64; 3]> = cuts
            .iter()
            .map(|(_, p)| {
                [p.mobile_ms, p.transfer_ms, p.cloud_ms].map(|v| {
                    if v > 0.0 {
                        v.max(thin)
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mut chart = bar_panel(&left, n, ms_max, "end-to-end latency (ms)", label_room)?;
        for (k, &(part, color)) in PARTS.iter().enumerate() {
            let bars = stacks.iter().enumerate().map(|(i, stack)| {
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
        if let Some(i) = chosen_at {
            chart
                .draw_series([outline(i, stacks[i].iter().sum())])
                .map_err(drawing)?
                .label("chosen")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLACK.stroke_width(2))
                });
        }
        chart
            .draw_series([Text::new(
                "parts under 1% drawn at 1%".to_string(),
                (0.05, ms_max * 1.12),
                (FONT, 11).into_font().color(&MARKER),
            )])
            .map_err(drawing)?;
        legend(&mut chart)?;
        bar_labels(&left, &chart, cuts, chosen)?;
        let mj_max = cuts.iter().map(|(_, p)| p.mobile_mj).fold(0.0, f64::max);
        let mut chart = bar_panel(&right, n, mj_max, "phone energy (mJ)", label_room)?;
        let bars = cuts.iter().enumerate().map(|(i, (_, p))| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, p.mobile_mj)],
                PALETTE[4].filled(),
            )
        });
        chart.draw_series(bars).map_err(drawing)?;
        if let Some(i) = chosen_at {
            chart
                .draw_series([outline(i, cuts[i].1.mobile_mj)])
                .map_err(drawing)?;
        }
        bar_labels(&right, &chart, cuts, chosen)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// Per node in topological order: predicted phone latency (bars, left axis) and the size of
/// what the node outputs (line, right axis), as the paper draws its layers; each bar's node
/// name and op under it. Nodes that only build weights from constants are left out: the
/// planner folds them and charges neither side.
pub fn node_chart(report: &Annotations) -> Result<String> {
    let nodes: Vec<_> = report.nodes.iter().filter(|r| !r.constant).collect();
    let n = nodes.len().max(1) as f64;
    let ms: Vec<f64> = nodes.iter().map(|r| r.mobile_ms.unwrap_or(0.0)).collect();
    let kib: Vec<f64> = nodes
        .iter()
        .map(|r| r.outputs.iter().filter_map(|o| o.bytes).sum::<u64>() as f64 / 1024.0)
        .collect();
    let ms_max = ms.iter().copied().fold(0.0, f64::max);
    let kib_max = kib.iter().copied().fold(0.0, f64::max);
    let name = file_name(&report.model.path);
    let names: Vec<String> = nodes
        .iter()
        .map(|r| {
            let full = format!("{} {}", r.name, r.op);
            let short: String = full.chars().take(24).collect();
            if short.len() < full.len() {
                format!("{short}…")
            } else {
                short
            }
        })
        .collect();
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(4);
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
            .x_label_area_size(30 + 6 * longest as u32)
            .y_label_area_size(72)
            .right_y_label_area_size(72)
            .build_cartesian_2d(0.0..n, 0.0..(ms_max * 1.15).max(1e-3))
            .map_err(drawing)?
            .set_secondary_coord(0.0..n, 0.0..(kib_max * 1.15).max(1e-3));
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("predicted phone latency (ms)")
            .y_label_formatter(&|v| fig(*v))
            .draw()
            .map_err(drawing)?;
        chart
            .configure_secondary_axes()
            .y_desc("output size (KiB)")
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
                kib.iter().enumerate().map(|(i, &v)| (i as f64 + 0.5, v)),
                color.stroke_width(2),
            ))
            .map_err(drawing)?
            .label("output size (KiB)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        legend(&mut chart)?;
        // Each bar's node name and op under it, rotated; past 40 nodes, every k-th.
        let every = nodes.len().div_ceil(40).max(1);
        let style = TextStyle::from((FONT, 10).into_font()).transform(FontTransform::Rotate90);
        for (i, label) in names.iter().enumerate().step_by(every) {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(label.clone(), (x + 5, y + 4), style.clone()))
                .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::log_ticks;

    #[test]
    fn log_ticks_label_narrow_ranges_and_thin_wide_ones() {
        assert_eq!(log_ticks(3.0, 9.0), vec![3.0, 4.0, 5.0, 6.0, 8.0]);
        for (lo, hi) in [(0.578, 727_336.0), (1e-3, 1e12), (1e-30, 1e30), (0.9, 1.1)] {
            let ticks = log_ticks(lo, hi);
            assert!(ticks.len() <= 12, "{lo}..{hi}: {ticks:?}");
            assert!(ticks.iter().all(|t| (lo..=hi).contains(t)), "{ticks:?}");
        }
    }
}
