//! What an adaptive client believes of the network, the server and its own predictions, learned
//! from the requests it makes: the conditions [`super::choose`] decides under.
//!
//! Each belief is a smoothed mean of what requests measured ([`Smoothed`]): recent requests
//! count most, one slow request moves it by a fraction only, and a step (two measurements in
//! a row over twice or under half the mean: a network that changed) is taken at once. The
//! round trip comes from probes (the server's health check, a request with no payload); the
//! uplink from each request's upload, its time less the server's and the round trip; each
//! cut's tail time from the server's own statistics, over the cloud profile's prediction (their
//! mean is the server's load); and each cut's head time from the head's runs, over the mobile
//! profile's prediction, so that a profile that is off, for every node or for some, stops
//! mattering after a few requests.

use super::Conditions;
use crate::selection::{CutEntry, SelectionTable};
use serde::Serialize;
use std::collections::BTreeMap;

/// The weight of a new measurement in a smoothed mean: after five requests the first weighs
/// under a fifth.
pub const WEIGHT: f64 = 0.3;

/// A measurement this many times over or under the mean is a step, once the next one confirms
/// it.
pub const STEP: f64 = 2.0;

/// Uploads smaller than this (bytes) are not timed for the uplink: a few kilobytes say
/// nothing of it, hidden in the round trip's noise.
pub const MIN_MEASURED_UPLOAD: u64 = 16 << 10;

/// A switch needs the new cut predicted this much below the current one: predictions that
/// move with every request's noise would flip the choice on every request.
pub const HYSTERESIS: f64 = 0.1;

/// An exponentially weighted mean of positive measurements, taken on their logarithms (so
/// that a rate and its inverse, a time, smooth alike), empty until its first measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Smoothed {
    pub value: Option<f64>,
    /// Measurements taken so far.
    pub samples: usize,
    /// A step not yet confirmed: the last measurement, when it was over [`STEP`] times or
    /// under 1/[`STEP`] of the mean.
    #[serde(skip)]
    pending: Option<f64>,
}

/// Which way a belief's change costs the app most if it is not believed: a step that way is
/// taken at once. A link that got slow costs seconds per request sent into it, while believing
/// it slow for a while costs a few milliseconds per request until a probe says otherwise; a
/// server's load or a head's time that is wrong for a request or two costs milliseconds, and a
/// single slow request is no reason to leave a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worse {
    Lower,
    Higher,
}

impl Smoothed {
    /// Take one measurement in: the first is the mean; later ones weigh [`WEIGHT`], but a step
    /// the `worse` way, or the second of two steps in a row to the same side, becomes the mean.
    pub fn add(&mut self, x: f64, worse: Option<Worse>) {
        if !(x.is_finite() && x > 0.0) {
            return;
        }
        self.samples += 1;
        let Some(v) = self.value else {
            self.value = Some(x);
            return;
        };
        let side = |y: f64| {
            if y > STEP * v {
                1
            } else if y < v / STEP {
                -1
            } else {
                0
            }
        };
        let step = side(x);
        let at_once = match worse {
            Some(Worse::Lower) => step == -1,
            Some(Worse::Higher) => step == 1,
            None => false,
        };
        if at_once || (step != 0 && self.pending.is_some_and(|p| side(p) == step)) {
            self.value = Some(x);
            self.pending = None;
            return;
        }
        self.pending = (step != 0).then_some(x);
        self.value = Some((v.ln() + WEIGHT * (x.ln() - v.ln())).exp());
    }

    /// Whether the last measurement was a step that the next must confirm.
    pub fn unconfirmed(&self) -> bool {
        self.pending.is_some()
    }

    /// The mean, or `default` before any measurement.
    pub fn or(&self, default: f64) -> f64 {
        self.value.unwrap_or(default)
    }
}

/// What one request measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The cut that ran.
    pub cut: String,
    /// The head's time here (ms); `None` for all-cloud.
    pub head_ms: Option<f64>,
    /// The request to the server; `None` for all-mobile.
    pub request: Option<RequestObservation>,
}

/// What a request to the server measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestObservation {
    pub upload_bytes: u64,
    /// From sending to the answer (ms).
    pub request_ms: f64,
    /// The request's time in the server, from its statistics (ms); `None` where it has none.
    pub server_ms: Option<f64>,
}

/// The client's beliefs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Beliefs {
    pub uplink_mbps: Smoothed,
    pub rtt_ms: Smoothed,
    /// Per cut id: its tail's time in the server over the cloud profile's prediction at load 1.
    /// Their geometric mean is the server's load (as the main job's `cloud_load`), each one
    /// over it the tail's own factor: a profile can be off for one tail and not another.
    pub server_factor: BTreeMap<String, Smoothed>,
    /// Per cut id: the head's measured time over the mobile profile's prediction.
    pub head_factor: BTreeMap<String, Smoothed>,
}

impl Beliefs {
    /// A probe's round trip (ms): the time of a request that carries nothing.
    pub fn probed(&mut self, rtt_ms: f64) {
        self.rtt_ms.add(rtt_ms, None);
    }

    /// Learn from one request of `table`'s cut `o.cut`.
    pub fn observe(&mut self, table: &SelectionTable, o: &Observation) {
        let Some(cut) = table.cuts.iter().find(|c| c.id == o.cut) else {
            return;
        };
        if let Some(head_ms) = o.head_ms.filter(|_| cut.mobile_ms > 0.0) {
            self.head_factor
                .entry(cut.id.clone())
                .or_default()
                .add(head_ms / cut.mobile_ms, None);
        }
        let Some(r) = &o.request else {
            return;
        };
        let unloaded = unloaded_server_ms(table, cut);
        if let Some(server_ms) = r.server_ms.filter(|_| unloaded > 0.0) {
            self.server_factor
                .entry(cut.id.clone())
                .or_default()
                .add(server_ms / unloaded, None);
        }
        self.uploaded(
            r.upload_bytes,
            r.request_ms - r.server_ms.unwrap_or(0.0),
            MIN_MEASURED_UPLOAD,
        );
    }

    /// A probe's upload of `bytes` (sized to the believed uplink, so any size counts),
    /// answered `ms` after it began.
    pub fn uplink_probed(&mut self, bytes: u64, ms: f64) {
        self.uploaded(bytes, ms, 0);
    }

    /// An upload of `bytes` (counted from `min_bytes` up) whose transfer (round trip included)
    /// took `transfer_ms`: the uplink, from its time less a round trip, and at least a quarter
    /// of the transfer, so that an upload the round trip's noise hides (on a fast link) still
    /// says the link is fast.
    fn uploaded(&mut self, bytes: u64, transfer_ms: f64, min_bytes: u64) {
        if bytes >= min_bytes && transfer_ms > 0.0 {
            let wire_ms = (transfer_ms - self.rtt_ms.or(0.0)).max(0.25 * transfer_ms);
            let mbps = crate::plan::network::MS_PER_BYTE_AT_1_MBPS * bytes as f64 / wire_ms;
            self.uplink_mbps.add(mbps, Some(Worse::Lower));
        }
    }

    /// The conditions to choose under: the beliefs, the table's own where there are none yet.
    pub fn conditions(&self, uplink_mbps: f64, network: Option<String>) -> Conditions {
        let server_load = geometric_mean(&self.server_factor);
        Conditions {
            uplink_mbps: self.uplink_mbps.or(uplink_mbps),
            network,
            rtt_ms: self.rtt_ms.value,
            server_load,
            head_factor: values(&self.head_factor).collect(),
            // A head not yet run: as those measured (every head runs on the same phone, and a
            // profile that is off is off for them all).
            other_heads: geometric_mean(&self.head_factor).unwrap_or(1.0),
            server_factor: values(&self.server_factor)
                .map(|(id, f)| (id, f / server_load.unwrap_or(f)))
                .collect(),
        }
    }
}

/// The beliefs held, by cut id.
fn values(m: &BTreeMap<String, Smoothed>) -> impl Iterator<Item = (String, f64)> + '_ {
    m.iter().filter_map(|(id, f)| Some((id.clone(), f.value?)))
}

/// The geometric mean of the beliefs held; `None` before any.
fn geometric_mean(m: &BTreeMap<String, Smoothed>) -> Option<f64> {
    let logs: Vec<f64> = values(m).map(|(_, v)| v.ln()).collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// `cut`'s tail time on the server at load 1 (ms): the table's is at its `cloud_load`.
fn unloaded_server_ms(table: &SelectionTable, cut: &CutEntry) -> f64 {
    if table.cloud_load > 0.0 {
        cut.cloud_ms / table.cloud_load
    } else {
        0.0
    }
}

/// Whether to leave the `current` cut, predicted at `current_ms`, for the best one, predicted at
/// `best_ms`: only by more than [`HYSTERESIS`].
pub fn switch(current_ms: f64, best_ms: f64) -> bool {
    best_ms < (1.0 - HYSTERESIS) * current_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_means_follow_recent_measurements() {
        // A belief with no worse way: steps confirmed up and down.
        const W: Option<Worse> = None;
        let mut s = Smoothed::default();
        assert_eq!(s.or(7.0), 7.0);
        s.add(10.0, W);
        assert_eq!(s.value, Some(10.0));
        for _ in 0..30 {
            s.add(15.0, W);
        }
        assert!((s.or(0.0) - 15.0).abs() < 0.01, "{s:?}");
        s.add(f64::NAN, W);
        s.add(-1.0, W);
        assert_eq!(s.samples, 31);
        // One outlier moves it by its weight only (on the logarithms)...
        s.add(150.0, W);
        let moved = (15f64.ln() + WEIGHT * 10f64.ln()).exp();
        assert!((s.or(0.0) - moved).abs() < 0.01, "{s:?}");
        // ... and a normal one after it is no step.
        s.add(15.0, W);
        assert!(s.or(0.0) < moved, "{s:?}");
        // Two in a row beyond twice the mean are a step, taken at once, either way.
        s.add(1000.0, W);
        s.add(900.0, W);
        assert_eq!(s.value, Some(900.0));
        s.add(1.0, W);
        s.add(2.0, W);
        assert_eq!(s.value, Some(2.0));
        // A step the worse way is taken at once; the other way waits for its confirmation.
        let mut up = Smoothed::default();
        up.add(100.0, Some(Worse::Lower));
        up.add(2.0, Some(Worse::Lower));
        assert_eq!(up.value, Some(2.0));
        up.add(100.0, Some(Worse::Lower));
        assert!(up.or(0.0) < 10.0, "{up:?}");
    }

    #[test]
    fn requests_teach_the_round_trip_the_uplink_the_load_and_the_heads() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/golden/selection/lenet.energy.json"
        ))
        .unwrap();
        let table: SelectionTable = serde_json::from_str(&text).unwrap();
        let split = table.cuts.iter().find(|c| c.id == "h8-fece8d60").unwrap();
        let mut b = Beliefs::default();
        b.probed(10.0);
        let server_ms = 3.0 * split.cloud_ms / table.cloud_load;
        // 100 kB at 8 Mbps: 100 ms, well above the round trip's noise.
        let upload_ms = crate::plan::network::MS_PER_BYTE_AT_1_MBPS * 100e3 / 8.0;
        b.observe(
            &table,
            &Observation {
                cut: split.id.clone(),
                head_ms: Some(2.0 * split.mobile_ms),
                request: Some(RequestObservation {
                    upload_bytes: 100_000,
                    request_ms: server_ms + 10.0 + upload_ms,
                    server_ms: Some(server_ms),
                }),
            },
        );
        let c = b.conditions(1.0, Some("wifi".into()));
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.abs().max(1.0);
        assert!(near(c.uplink_mbps, 8.0), "{c:?}");
        assert_eq!(c.rtt_ms, Some(10.0));
        assert!(near(c.server_load.unwrap(), 3.0), "{c:?}");
        assert!(near(c.server_factor[&split.id], 1.0), "{c:?}");
        assert!(near(c.head_factor[&split.id], 2.0), "{c:?}");
        // Another cut's tail measured at 12x its prediction: the load is the mean of the two
        // (6x), that tail's own factor 2 over it and the first split's a half.
        let other = table.cuts.iter().find(|c| c.id == "h12-700a4498").unwrap();
        b.observe(
            &table,
            &Observation {
                cut: other.id.clone(),
                head_ms: None,
                request: Some(RequestObservation {
                    upload_bytes: 0,
                    request_ms: 100.0,
                    server_ms: Some(12.0 * other.cloud_ms / table.cloud_load),
                }),
            },
        );
        let c = b.conditions(1.0, Some("wifi".into()));
        assert!(near(c.server_load.unwrap(), 6.0), "{c:?}");
        assert!(near(c.server_factor[&other.id], 2.0), "{c:?}");
        assert!(near(c.server_factor[&split.id], 0.5), "{c:?}");
        // An all-mobile run teaches its head only; a cut the table does not list, nothing.
        b.observe(
            &table,
            &Observation {
                cut: "all-mobile".into(),
                head_ms: Some(0.5 * 0.527068),
                request: None,
            },
        );
        b.observe(
            &table,
            &Observation {
                cut: "h99-none".into(),
                head_ms: Some(1.0),
                request: None,
            },
        );
        let c = b.conditions(1.0, None);
        assert_eq!(c.head_factor.len(), 2);
        assert!(near(c.head_factor["all-mobile"], 0.5));
        assert!(super::super::choose(&table, &c).is_ok());
    }

    #[test]
    fn a_switch_needs_a_clear_gain() {
        assert!(!switch(100.0, 95.0));
        assert!(switch(100.0, 85.0));
    }
}
