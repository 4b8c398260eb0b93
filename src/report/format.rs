//! Formatting for people: sizes, counts, shapes and figures as the reports write them.

use crate::selection::BoundaryTensor;
use crate::tensor::TensorSummary;

/// `1x3x224x224`, `scalar`, or `?` for an unknown rank.
pub fn shape_text(t: &TensorSummary) -> String {
    match &t.shape {
        None => "?".into(),
        Some(d) if d.is_empty() => "scalar".into(),
        Some(d) => d
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join("x"),
    }
}

/// What a tensor a cut sends is, after its name: `float 1x120 (480 B)`.
pub fn sent_text(b: &BoundaryTensor) -> String {
    let summary = TensorSummary {
        name: b.name.clone(),
        dtype: None,
        shape: b.shape.clone(),
        bytes: b.bytes,
    };
    format!(
        "{} {} ({})",
        b.dtype.as_deref().unwrap_or("?"),
        shape_text(&summary),
        b.bytes.map_or("?".into(), human_bytes)
    )
}

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A count with a decimal unit: `950`, `1.23 M`, `4.09 G`.
pub fn human_count(v: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    UNITS
        .iter()
        .find(|(scale, _)| v as f64 >= *scale)
        .map_or(v.to_string(), |(scale, unit)| {
            format!("{:.2} {unit}", v as f64 / scale)
        })
}

pub use crate::tensor::human_bytes;

/// A figure for people: 3 significant digits, no exponent for everyday sizes.
pub fn fig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

/// The file name of `path` (the whole path where it has none), for titles.
pub fn file_name(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    path.file_name().map_or(path.display().to_string(), |n| {
        n.to_string_lossy().into_owned()
    })
}
