//! `nsplit run --calibrate`: what a request to the inference server costs beyond the network,
//! measured, so that the planner and the run's predictions count it.
//!
//! Every cut of the folder that has a served tail is run in turn (`--repeat` timed requests
//! each); each request's cost beyond the server's own time (its round trip less the server's
//! queue and compute, from the server's statistics) is one sample at that request's bytes (sent
//! and received). A line through the cuts' medians gives a constant per request and a cost per
//! MB ([`Protocol`]). Run it where the network itself takes no time (the server on loopback or
//! on the LAN): the planner adds the network's own time from the buckets.

use super::run::{run, CutChoice, RunOptions};
use crate::plan::network::{BucketsFile, Protocol, FORMAT};
use crate::selection::SelectionTable;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

/// One cut's requests: their bytes and their median cost beyond the server's time.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub cut: String,
    /// Sent plus received, per request.
    pub bytes: u64,
    /// The median request's round trip less the server's time (ms).
    pub overhead_ms: f64,
    /// The line's value at these bytes (ms).
    pub fitted_ms: f64,
}

/// What calibration measured, and the protocol cost it fits.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    pub server: String,
    pub requests_per_cut: usize,
    pub protocol: Protocol,
    pub samples: Vec<Sample>,
}

/// Run every served cut of `dir` on the inputs `opts` names and fit the protocol's cost.
pub fn calibrate(dir: &Path, opts: &RunOptions) -> Result<Calibration> {
    let table = SelectionTable::load(dir)?;
    let served: Vec<&str> = table
        .cuts
        .iter()
        .filter(|c| c.tail.is_some())
        .map(|c| c.id.as_str())
        .collect();
    if served.is_empty() {
        bail!(
            "{}: every cut runs on the phone alone, so no request reaches a server to measure; plan with buckets under which the server is used",
            dir.display()
        );
    }
    let mut points = vec![];
    let mut server = String::new();
    for id in served {
        let report = run(
            dir,
            &RunOptions {
                choice: CutChoice::Id(id.to_string()),
                ..opts.clone()
            },
        )?;
        let Some(overhead_ms) = report.measured.transfer_ms else {
            bail!(
                "the server at {} gives no statistics for `{}`, so its own time cannot be told from the request's: calibration needs Triton's statistics extension",
                report.server.unwrap_or_default(),
                report.model.unwrap_or_default()
            );
        };
        server = report.server.clone().unwrap_or_default();
        points.push((
            id.to_string(),
            report.upload_bytes + report.download_bytes,
            overhead_ms,
        ));
    }
    let protocol = fit(&points);
    Ok(Calibration {
        server,
        requests_per_cut: opts.repeat.max(1),
        protocol,
        samples: points
            .into_iter()
            .map(|(cut, bytes, overhead_ms)| Sample {
                cut,
                bytes,
                overhead_ms,
                fitted_ms: protocol.request_ms + protocol.bytes_ms(bytes),
            })
            .collect(),
    })
}

/// The least-squares line through (MB, ms), its slope and intercept held non-negative: a
/// constant alone (the median) where the sizes do not tell a slope.
fn fit(points: &[(String, u64, f64)]) -> Protocol {
    let xs: Vec<f64> = points.iter().map(|p| p.1 as f64 / 1e6).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.2).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let constant = || {
        let mut sorted = ys.clone();
        sorted.sort_by(f64::total_cmp);
        Protocol {
            request_ms: sorted[sorted.len() / 2].max(0.0),
            ms_per_mb: 0.0,
        }
    };
    // Sizes within a kilobyte of each other tell no slope.
    if sxx <= 1e-6 * n {
        return constant();
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    if slope < 0.0 {
        return constant();
    }
    if intercept < 0.0 {
        // Through the origin.
        let sxy0: f64 = xs.iter().zip(&ys).map(|(x, y)| x * y).sum();
        let sxx0: f64 = xs.iter().map(|x| x * x).sum();
        return Protocol {
            request_ms: 0.0,
            ms_per_mb: (sxy0 / sxx0).max(0.0),
        };
    }
    Protocol {
        request_ms: intercept,
        ms_per_mb: slope,
    }
}

impl Calibration {
    /// `table`'s buckets, each with the measured protocol cost: a buckets file to plan with
    /// (`--buckets`).
    pub fn buckets_file(&self, table: &SelectionTable) -> BucketsFile {
        BucketsFile {
            format: FORMAT.into(),
            version: 1,
            buckets: table
                .buckets
                .iter()
                .map(|b| crate::plan::BandwidthBucket {
                    protocol: self.protocol,
                    ..b.network.clone()
                })
                .collect(),
        }
    }

    /// For people: each cut's measurement and the line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "measured against {} ({} request(s) per cut): {:.3} ms per request + {:.3} ms per MB sent or received\n",
            self.server, self.requests_per_cut, self.protocol.request_ms, self.protocol.ms_per_mb
        );
        let _ = writeln!(
            s,
            "cut                 bytes  beyond the server ms  fitted ms"
        );
        for p in &self.samples {
            let _ = writeln!(
                s,
                "{:<16} {:>8}  {:>20.3}  {:>9.3}",
                p.cut, p.bytes, p.overhead_ms, p.fitted_ms
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(v: &[(u64, f64)]) -> Vec<(String, u64, f64)> {
        v.iter().map(|&(b, ms)| ("c".into(), b, ms)).collect()
    }

    #[test]
    fn a_line_through_the_cuts() {
        // 0.4 ms per request and 1.6 ms per MB, as Triton's HTTP front end cost over loopback.
        let p = fit(&points(&[
            (4_000, 0.4064),
            (600_000, 1.36),
            (2_000_000, 3.6),
        ]));
        assert!((p.request_ms - 0.4).abs() < 1e-9, "{p:?}");
        assert!((p.ms_per_mb - 1.6).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn no_slope_from_one_size_and_none_below_zero() {
        let one = fit(&points(&[(4_000, 0.5), (4_000, 0.7), (4_000, 0.6)]));
        assert_eq!((one.request_ms, one.ms_per_mb), (0.6, 0.0));
        // Bigger requests measured cheaper (noise): no negative cost per byte.
        let falling = fit(&points(&[(1_000, 0.9), (2_000_000, 0.5)]));
        assert_eq!(falling.ms_per_mb, 0.0);
        // A line that would cross below zero goes through the origin.
        let steep = fit(&points(&[(1_000_000, 1.0), (2_000_000, 3.0)]));
        assert_eq!(steep.request_ms, 0.0);
        assert!(steep.ms_per_mb > 1.0);
    }
}
