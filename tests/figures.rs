//! The figures (docs/selection.md, docs/user-guide.md): every SVG parses as XML, names every cut,
//! and the breakpoint chart marks its breakpoints where selection.json has them, read back
//! through the chart's own axis.

use crate::common::*;
use std::path::Path;

/// Every `<text>` of an SVG: (x, y, content), the document parsed as XML on the way.
fn texts(path: &Path) -> Vec<(f64, f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let at = |a: &str| n.attribute(a).unwrap_or("0").parse::<f64>().unwrap();
            (at("x"), at("y"), n.text().unwrap_or("").trim().to_string())
        })
        .collect()
}

/// The SVG's rectangles filled with `fill`.
fn rects(path: &Path, fill: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(fill))
        .count()
}

/// The horizontal log axes, one per panel from the top: the tick labels of a row of at least
/// three numbers sharing a y (the y axis's labels share an x instead), fitted as pixel
/// x = a + b ln(value) by least squares. Returned with the row's y.
fn log_axes(texts: &[(f64, f64, String)]) -> Vec<(f64, (f64, f64))> {
    let numbers: Vec<(f64, f64, f64)> = texts
        .iter()
        .filter_map(|(x, y, t)| Some((*x, *y, t.parse::<f64>().ok()?)))
        .collect();
    let mut rows: Vec<f64> = numbers.iter().map(|n| n.1).collect();
    rows.sort_by(f64::total_cmp);
    rows.dedup();
    rows.into_iter()
        .filter_map(|row| {
            let ticks: Vec<(f64, f64)> = numbers
                .iter()
                .filter(|n| n.1 == row)
                .map(|&(x, _, v)| (v.ln(), x))
                .collect();
            if ticks.len() < 3 {
                return None;
            }
            let n = ticks.len() as f64;
            let (mx, my) = (
                ticks.iter().map(|t| t.0).sum::<f64>() / n,
                ticks.iter().map(|t| t.1).sum::<f64>() / n,
            );
            let b = ticks.iter().map(|t| (t.0 - mx) * (t.1 - my)).sum::<f64>()
                / ticks.iter().map(|t| (t.0 - mx).powi(2)).sum::<f64>();
            Some((row, (my - b * mx, b)))
        })
        .collect()
}

/// LeNet for phone energy on a Wi-Fi sweep: three cuts and two breakpoints.
fn lenet_energy(out: &Path) -> serde_json::Value {
    let o = nsplit(&[
        "fixtures/lenet.onnx",
        "--out",
        out.to_str().unwrap(),
        "--objective",
        "energy",
        "--base-network",
        "wifi",
        "--no-verify",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap()).unwrap()
}

/// A panel per network of selection.json: each draws every cut (a legend entry each), marks
/// that network's breakpoints where its table has them (read back through the panel's own
/// axis), and marks each bucket on it with the cut it chose.
#[test]
fn the_breakpoint_chart_draws_every_cut_and_marks_the_tables_breakpoints() {
    let dir = tempfile::tempdir().unwrap();
    let sel = lenet_energy(dir.path());
    let texts = texts(&dir.path().join("selection.svg"));
    let networks = sel["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 3, "3g, lte, wifi");
    let cuts: Vec<&str> = sel["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(cuts.len() >= 3, "{cuts:?}");
    for id in &cuts {
        assert_eq!(
            texts.iter().filter(|t| t.2 == *id).count(),
            networks.len(),
            "a series (legend entry) for cut {id} in each panel: {texts:?}"
        );
    }
    let axes = log_axes(&texts);
    assert_eq!(axes.len(), networks.len(), "an x axis per panel: {axes:?}");
    let mut seen = 0;
    for (k, n) in networks.iter().enumerate() {
        // This panel's texts lie between the previous panel's axis and its own.
        let (row, (a, b)) = axes[k];
        let above = if k == 0 { 0.0 } else { axes[k - 1].0 };
        let mine = |t: &&(f64, f64, String)| t.1 > above && t.1 < row;
        let pieces = n["pieces"].as_array().unwrap();
        let wanted: Vec<f64> = pieces[..pieces.len() - 1]
            .iter()
            .map(|p| p["to_mbps"].as_f64().unwrap())
            .collect();
        let marks: Vec<f64> = texts
            .iter()
            .filter(mine)
            .filter(|t| t.2.ends_with(" Mbps"))
            .map(|t| t.0)
            .collect();
        assert_eq!(marks.len(), wanted.len(), "{n}: {texts:?}");
        for (px, want) in marks.iter().zip(&wanted) {
            let at = ((px - a) / b).exp();
            assert!(
                (at / want - 1.0).abs() < 0.02,
                "a breakpoint drawn at {px} px = {at} Mbps; selection.json has {want}"
            );
        }
        seen += wanted.len();
        for bucket in sel["buckets"].as_array().unwrap() {
            let name = bucket["network"]["name"].as_str().unwrap();
            if n["buckets"].as_array().unwrap().iter().any(|b| b == name) {
                let label = format!("{name}: {}", bucket["cut"].as_str().unwrap());
                assert!(
                    texts.iter().filter(mine).any(|t| t.2 == label),
                    "{label} in panel {k}: {texts:?}"
                );
            }
        }
    }
    assert!(seen >= 3, "{seen} breakpoints drawn");
}

#[test]
fn the_cuts_chart_labels_every_cut_in_both_panels() {
    let dir = tempfile::tempdir().unwrap();
    let sel = lenet_energy(dir.path());
    let texts = texts(&dir.path().join("cuts.svg"));
    // cuts.svg draws the middle bucket's network; its choice is marked in both panels.
    let buckets = sel["buckets"].as_array().unwrap();
    let chosen = buckets[buckets.len() / 2]["cut"].as_str().unwrap();
    for c in sel["cuts"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let label = if id == chosen {
            format!("{id} (chosen)")
        } else {
            id.to_string()
        };
        assert_eq!(
            texts.iter().filter(|t| t.2 == label).count(),
            2,
            "cut {id}: a latency bar and an energy bar: {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t.2 == "chosen"), "legend: chosen");
    for part in ["phone", "transfer", "server"] {
        assert!(texts.iter().any(|t| t.2 == part), "legend {part}");
    }
    let md = std::fs::read_to_string(dir.path().join("selection.md")).unwrap();
    assert!(md.contains("[selection.svg](selection.svg)") && md.contains("[cuts.svg](cuts.svg)"));
}

#[test]
fn annotate_plots_a_bar_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("lenet.svg");
    let o = nsplit(&[
        "annotate",
        "fixtures/lenet.onnx",
        "--format",
        "json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes = report["nodes"].as_array().unwrap().len();
    // The phone-latency bars, and the legend's swatch.
    assert_eq!(rects(&svg, "#1F77B4"), nodes + 1);
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|t| t.2 == "output size (KiB)"),
        "{texts:?}"
    );
    // Each bar is named: its node and op.
    for n in report["nodes"].as_array().unwrap() {
        let label = format!(
            "{} {}",
            n["name"].as_str().unwrap(),
            n["op"].as_str().unwrap()
        );
        assert!(texts.iter().any(|t| t.2 == label), "{label}: {texts:?}");
    }
    // A folder that does not exist: an error naming the file, nothing written.
    let bad = dir.path().join("missing/plot.svg");
    let o = nsplit(&[
        "annotate",
        "fixtures/lenet.onnx",
        "--plot",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("plot.svg"));
    assert!(!bad.exists());
}
