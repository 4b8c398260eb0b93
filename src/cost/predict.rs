//! Per-node predictions: each op node's latency on the phone and on the server, and its phone
//! energy, from the device profiles. Computed once per model ([`NodeCosts::predict`]) and read by
//! the planner, the selection table and the annotation report.

use super::profile::Profiles;
use super::Features;
use crate::graph::ModelGraph;
use petgraph::graph::NodeIndex;
use std::collections::HashMap;

/// One op node's predictions; `None` where its work is unknown (an unknown shape).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct NodePrediction {
    pub mobile_ms: Option<f64>,
    pub cloud_ms: Option<f64>,
    /// Mobile latency x the profile's active power for the node's class.
    pub mobile_mj: Option<f64>,
}

/// Predicted cost of one op node on each device, as the planner counts it.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct NodeCost {
    pub mobile_ms: f64,
    pub cloud_ms: f64,
    pub mobile_mj: f64,
}

/// Every op node's predictions. The planner counts a node without a prediction on either device
/// as free; it is listed in `unpredicted`.
#[derive(Clone, Debug, Default)]
pub struct NodeCosts {
    pub by_node: HashMap<NodeIndex, NodePrediction>,
    /// Names of the nodes without a prediction, in topological order.
    pub unpredicted: Vec<String>,
}

impl NodeCosts {
    /// Every op node of `graph`'s predictions from its features.
    pub fn predict(graph: &ModelGraph, features: &Features, profiles: &Profiles) -> NodeCosts {
        let mut out = NodeCosts::default();
        for (n, op) in graph.ops() {
            let f = features.get(n);
            let mobile_ms = profiles.mobile.node_latency_ms(f);
            let p = NodePrediction {
                mobile_ms,
                cloud_ms: profiles.cloud.node_latency_ms(f),
                mobile_mj: mobile_ms
                    .zip(profiles.mobile.power_w(f.class))
                    .map(|(ms, w)| ms * w),
            };
            if p.mobile_ms.is_none() || p.cloud_ms.is_none() {
                out.unpredicted.push(op.label());
            }
            out.by_node.insert(n, p);
        }
        out
    }

    /// What the planner charges for `n`: nothing where either device's prediction is missing.
    pub fn get(&self, n: NodeIndex) -> NodeCost {
        match self.by_node.get(&n) {
            Some(&NodePrediction {
                mobile_ms: Some(mobile_ms),
                cloud_ms: Some(cloud_ms),
                mobile_mj,
            }) => NodeCost {
                mobile_ms,
                cloud_ms,
                mobile_mj: mobile_mj.unwrap_or(0.0),
            },
            _ => NodeCost::default(),
        }
    }

    /// `n`'s predictions as they are, unknowns included.
    pub fn prediction(&self, n: NodeIndex) -> NodePrediction {
        self.by_node.get(&n).copied().unwrap_or_default()
    }
}
