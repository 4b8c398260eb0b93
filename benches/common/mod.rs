//! Helpers the benchmark binaries share: each measurement runs in a fresh child process so its
//! peak memory is its own.
#![allow(dead_code)]

use std::path::Path;

/// The command-line arguments, without the `--bench` cargo adds.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The run with the median time of `runs` runs of (seconds, peak RSS bytes).
pub fn median(runs: usize, mut f: impl FnMut() -> (f64, u64)) -> (f64, u64) {
    let mut all: Vec<(f64, u64)> = (0..runs).map(|_| f()).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all[runs / 2]
}

/// Python with onnx: `$NSPLIT_PYTHON`, else the repository's `.venv/bin/python`, else `python3`.
pub fn python(root: &Path) -> String {
    std::env::var("NSPLIT_PYTHON").ok().unwrap_or_else(|| {
        let venv = root.join(".venv/bin/python");
        if venv.exists() {
            venv.to_string_lossy().into_owned()
        } else {
            "python3".into()
        }
    })
}

/// Replace the part of the Markdown file `path` between `<!-- NAME:begin -->` and
/// `<!-- NAME:end -->` with `content` (appending both markers and it when absent), so that two
/// benchmarks can each regenerate their own part of one document.
pub fn replace_section(path: &Path, name: &str, content: &str) {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{}\n{end}", content.trim_end());
    let new = match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{}\n\n{block}\n", doc.trim_end()),
    };
    std::fs::write(path, new).unwrap();
}

/// The part of the Markdown file `path` between the markers [`replace_section`] writes, with
/// them; empty when absent.
pub fn section(path: &Path, name: &str) -> String {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => doc[b..e + end.len()].to_string(),
        _ => String::new(),
    }
}
