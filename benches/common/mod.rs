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
