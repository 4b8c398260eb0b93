//! Predictions for a cut on a network: the numbers the selection table reports.
//!
//! These are computed from the [`Cut`] itself (its head nodes and its boundary, as the emitter
//! writes them), independently of the planner's [`Instance`](super::Instance); a test checks the
//! two agree, so the table never reports a figure the planner did not optimise.

use super::network::BandwidthBucket;
use crate::cost::NodeCosts;
use crate::cut::Cut;
use crate::graph::ModelGraph;
use serde::{Deserialize, Serialize};

/// A cut's predicted latency and phone energy on one network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Head compute on the phone.
    pub mobile_ms: f64,
    /// Upload, round trip and result download; 0 when everything runs on the phone.
    pub transfer_ms: f64,
    /// Tail compute on the server (times the server load factor).
    pub cloud_ms: f64,
    pub total_ms: f64,
    /// Head compute energy plus radio energy while uploading.
    pub mobile_mj: f64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

/// What a cut's two sides compute, whatever the network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideWork {
    pub head_nodes: usize,
    pub tail_nodes: usize,
    /// Head compute on the phone.
    pub mobile_ms: f64,
    /// Tail compute on the server, times the load factor.
    pub cloud_ms: f64,
    /// Head compute energy on the phone.
    pub mobile_mj: f64,
}

/// Sum the predicted work of each side of `cut` (constant-only nodes belong to neither).
pub fn side_work(graph: &ModelGraph, costs: &NodeCosts, cut: &Cut, cloud_load: f64) -> SideWork {
    let mut w = SideWork::default();
    for &n in &graph.order {
        if cut.is_constant(n) {
            continue;
        }
        let c = costs.get(n);
        if cut.contains(n) {
            w.head_nodes += 1;
            w.mobile_ms += c.mobile_ms;
            w.mobile_mj += c.mobile_mj;
        } else {
            w.tail_nodes += 1;
            w.cloud_ms += c.cloud_ms * cloud_load;
        }
    }
    w
}

impl Prediction {
    /// The figure `objective` minimises: total ms or phone mJ.
    pub fn objective(&self, objective: super::Objective) -> f64 {
        match objective {
            super::Objective::Latency => self.total_ms,
            super::Objective::Energy => self.mobile_mj,
        }
    }

    /// The figures to 6 significant digits, as the selection table writes them.
    pub fn rounded(&self) -> Prediction {
        let r = super::round6;
        Prediction {
            mobile_ms: r(self.mobile_ms),
            transfer_ms: r(self.transfer_ms),
            cloud_ms: r(self.cloud_ms),
            total_ms: r(self.total_ms),
            mobile_mj: r(self.mobile_mj),
            ..*self
        }
    }
}

/// Predict `cut` on `bucket`; `None` when a crossing tensor's size is unknown.
pub fn predict(
    graph: &ModelGraph,
    shapes: &crate::shapes::ShapeTable,
    costs: &NodeCosts,
    cut: &Cut,
    bucket: &BandwidthBucket,
    cloud_load: f64,
) -> Option<Prediction> {
    let work = side_work(graph, costs, cut, cloud_load);
    let (mobile_ms, cloud_ms) = (work.mobile_ms, work.cloud_ms);
    let mut download_bytes = 0u64;
    let mut replies = false;
    for &n in &graph.order {
        if cut.is_constant(n) || cut.contains(n) {
            continue;
        }
        for &t in graph.op(n).outputs.iter().flatten() {
            if graph.tensor(t).is_output {
                replies = true;
                download_bytes += shapes.get(t).bytes()?;
            }
        }
    }
    let mut upload_bytes = 0u64;
    for t in cut.boundary(graph) {
        upload_bytes += shapes.get(t).bytes()?;
    }
    let transfer_ms = bucket.transfer_ms(upload_bytes, download_bytes, replies);
    let radio_mj = bucket.radio.upload_w(bucket.uplink_mbps) * bucket.upload_ms(upload_bytes);
    Some(Prediction {
        mobile_ms,
        transfer_ms,
        cloud_ms,
        total_ms: mobile_ms + transfer_ms + cloud_ms,
        mobile_mj: work.mobile_mj + radio_mj,
        upload_bytes,
        download_bytes,
    })
}
