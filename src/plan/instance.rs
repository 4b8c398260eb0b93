//! The planning problem, stripped of ONNX: items to place on the phone or the server, what each
//! costs on either side, and the tensors that cost a transfer when they cross.
//!
//! Every cost is a [`Linear`] in x = 1/uplink (Mbps⁻¹): for a fixed placement the total is
//! `a + b·x`, which is what makes exact breakpoints possible. An [`Instance`] is built from a
//! model ([`Instance::build`]) or by hand (tests, benchmarks); the chain scan, the min-cut and
//! brute force all read the same instance, so they can be compared exactly.

use super::network::{BandwidthBucket, Protocol, MS_PER_BYTE_AT_1_MBPS};
use crate::cost::NodeCosts;
use crate::graph::{ModelGraph, Producer, TensorId};
use crate::shapes::ShapeTable;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A cost `a + b·x`, x = 1/uplink Mbps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub a: f64,
    pub b: f64,
}

impl Linear {
    pub fn at(self, x: f64) -> f64 {
        self.a + self.b * x
    }
}

impl std::ops::Add for Linear {
    type Output = Linear;
    fn add(self, o: Linear) -> Linear {
        Linear {
            a: self.a + o.a,
            b: self.b + o.b,
        }
    }
}

impl std::ops::Mul<f64> for Linear {
    type Output = Linear;
    fn mul(self, k: f64) -> Linear {
        Linear {
            a: self.a * k,
            b: self.b * k,
        }
    }
}

/// What the planner minimises.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// End-to-end latency (ms): phone compute, upload, round trip, server compute, download.
    Latency,
    /// Phone energy (mJ): compute plus the radio while uploading (the paper's energy(j)).
    Energy,
}

/// How the result comes back: at a fixed downlink (a bucket), or at a fixed multiple of the
/// uplink (a breakpoint sweep, so that the download time is linear in x too).
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Downlink {
    Fixed(f64),
    SameAsUplink,
    /// Downlink = this × uplink: a network's own downlink/uplink ratio, swept.
    TimesUplink(f64),
}

/// A network as the instance prices it.
#[derive(Clone, Debug)]
pub struct Link {
    pub rtt_ms: f64,
    /// What each request and each byte cost beyond the network (added to the round trip and to
    /// each transfer's constant part: it does not change with the bandwidth).
    pub protocol: Protocol,
    pub downlink: Downlink,
    pub alpha_u_mw_per_mbps: f64,
    pub beta_mw: f64,
}

impl Link {
    pub fn of_bucket(b: &BandwidthBucket) -> Link {
        Link {
            rtt_ms: b.rtt_ms,
            protocol: b.protocol,
            downlink: Downlink::Fixed(b.downlink_mbps),
            alpha_u_mw_per_mbps: b.radio.alpha_u_mw_per_mbps,
            beta_mw: b.radio.beta_mw,
        }
    }

    /// `like`'s round trip and radio, with the downlink equal to the uplink.
    pub fn sweep(like: &BandwidthBucket) -> Link {
        Link {
            downlink: Downlink::SameAsUplink,
            ..Link::of_bucket(like)
        }
    }

    /// `network` at any uplink: its round trip and radio, its downlink in the same ratio to the
    /// uplink. At `network`'s own uplink it prices exactly as [`Link::of_bucket`].
    pub fn along(network: &BandwidthBucket) -> Link {
        Link {
            downlink: Downlink::TimesUplink(network.downlink_mbps / network.uplink_mbps),
            ..Link::of_bucket(network)
        }
    }

    /// Milliseconds to upload `bytes`: 8·bytes/(10⁶·B) s = 8e-3·bytes·x ms, plus the
    /// protocol's cost of the bytes.
    pub fn upload_ms(&self, bytes: u64) -> Linear {
        Linear {
            a: self.protocol.bytes_ms(bytes),
            b: MS_PER_BYTE_AT_1_MBPS * bytes as f64,
        }
    }

    /// Milliseconds to download `bytes`, plus the protocol's cost of the bytes.
    pub fn download_ms(&self, bytes: u64) -> Linear {
        let over_the_air = match self.downlink {
            Downlink::Fixed(mbps) => Linear {
                a: MS_PER_BYTE_AT_1_MBPS * bytes as f64 / mbps,
                b: 0.0,
            },
            Downlink::SameAsUplink => Linear {
                a: 0.0,
                b: MS_PER_BYTE_AT_1_MBPS * bytes as f64,
            },
            Downlink::TimesUplink(ratio) => Linear {
                a: 0.0,
                b: MS_PER_BYTE_AT_1_MBPS * bytes as f64 / ratio,
            },
        };
        Linear {
            a: over_the_air.a + self.protocol.bytes_ms(bytes),
            ..over_the_air
        }
    }

    /// Radio energy (mJ) to upload `bytes`: (α_u·B + β) mW × 8e-3·bytes/B ms
    /// = 8e-6·bytes·(α_u + β·x) mJ.
    pub fn upload_mj(&self, bytes: u64) -> Linear {
        // MS_PER_BYTE_AT_1_MBPS, and mW x ms = µJ: 10⁻³ more for mJ.
        let k = 8e-6 * bytes as f64;
        Linear {
            a: k * self.alpha_u_mw_per_mbps,
            b: k * self.beta_mw,
        }
    }
}

/// A tensor that costs a transfer when it crosses from the phone to the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// The item that computes it; `None` for a graph input (it starts on the phone).
    pub producer: Option<usize>,
    /// Items that read it. It crosses once if any of them runs on the server.
    pub consumers: Vec<usize>,
    /// `None`: its size is unknown, so it must not cross.
    pub cost: Option<Linear>,
}

/// The planning problem: place each item on the phone (head) or the server (tail), heads closed
/// under the producer→consumer order of the transfers.
#[derive(Clone, Debug, Default)]
pub struct Instance {
    /// Cost of each item on the phone.
    pub mobile: Vec<Linear>,
    /// Cost of each item on the server; `None` where it may not run there.
    pub cloud: Vec<Option<Linear>>,
    pub transfers: Vec<Transfer>,
    /// Paid once when any of `reply_items` runs on the server (the phone waits for a reply).
    pub rtt: Linear,
    pub reply_items: Vec<usize>,
}

/// What an instance's items are in the model.
pub struct ModelItems {
    /// Item i is graph node `nodes[i]`: the op nodes that are not constant-only, in topological
    /// order.
    pub nodes: Vec<petgraph::graph::NodeIndex>,
    /// Tensors of unknown size that a cut would have to send (or bring back), by name.
    pub unknown_size: Vec<String>,
}

impl ModelItems {
    /// The cut whose head is the items marked in `head`.
    pub fn cut(&self, graph: &ModelGraph, head: &[bool]) -> anyhow::Result<crate::cut::Cut> {
        let nodes = self
            .nodes
            .iter()
            .zip(head)
            .filter(|(_, &h)| h)
            .map(|(&n, _)| n);
        crate::cut::Cut::from_nodes(graph, nodes)
    }
}

impl Instance {
    pub fn len(&self) -> usize {
        self.mobile.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mobile.is_empty()
    }

    /// The model's instance for `objective` on `link`, with server times multiplied by
    /// `cloud_load`.
    pub fn build(
        graph: &ModelGraph,
        shapes: &ShapeTable,
        costs: &NodeCosts,
        objective: Objective,
        cloud_load: f64,
        link: &Link,
    ) -> (Instance, ModelItems) {
        let constant = crate::cut::constant_nodes(graph);
        let nodes: Vec<_> = graph
            .order
            .iter()
            .copied()
            .filter(|n| !constant[n.index()])
            .collect();
        let item: HashMap<_, _> = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut unknown_size = vec![];
        let bytes = |t: TensorId| shapes.get(t).bytes();
        let mut inst = Instance::default();
        let latency = objective == Objective::Latency;
        for (i, &n) in nodes.iter().enumerate() {
            let c = costs.get(n);
            inst.mobile.push(Linear {
                a: if latency { c.mobile_ms } else { c.mobile_mj },
                b: 0.0,
            });
            let mut cloud = Some(Linear {
                a: if latency {
                    c.cloud_ms * cloud_load
                } else {
                    0.0
                },
                b: 0.0,
            });
            // Graph outputs computed on the server come back to the phone, which waits for them.
            let mut replies = false;
            for &t in graph.op(n).outputs.iter().flatten() {
                if !graph.tensor(t).is_output {
                    continue;
                }
                replies = true;
                match bytes(t) {
                    Some(size) if latency => {
                        cloud = cloud.map(|c| c + link.download_ms(size));
                    }
                    Some(_) => {}
                    None => {
                        cloud = None;
                        unknown_size.push(graph.tensor(t).name.clone());
                    }
                }
            }
            inst.cloud.push(cloud);
            if replies {
                inst.reply_items.push(i);
            }
        }
        if latency {
            inst.rtt = Linear {
                a: link.rtt_ms + link.protocol.request_ms,
                b: 0.0,
            };
        }
        for (k, tensor) in graph.tensors.iter().enumerate() {
            let producer = match tensor.producer {
                Producer::GraphInput => None,
                Producer::Node(n, _) => match item.get(&n) {
                    Some(&i) => Some(i),
                    None => continue, // a constant-only node's output: a weight
                },
                Producer::Initializer => continue,
            };
            let mut consumers: Vec<usize> = tensor
                .consumers
                .iter()
                .filter_map(|c| item.get(c).copied())
                .collect();
            consumers.sort_unstable();
            consumers.dedup();
            if consumers.is_empty() {
                continue;
            }
            let cost = bytes(TensorId(k)).map(|size| match objective {
                Objective::Latency => link.upload_ms(size),
                Objective::Energy => link.upload_mj(size),
            });
            if cost.is_none() {
                unknown_size.push(tensor.name.clone());
            }
            inst.transfers.push(Transfer {
                producer,
                consumers,
                cost,
            });
        }
        (
            inst,
            ModelItems {
                nodes,
                unknown_size,
            },
        )
    }

    /// Whether `head` is closed: no head item reads a tensor computed on the server.
    pub fn is_closed(&self, head: &[bool]) -> bool {
        self.transfers.iter().all(|t| match t.producer {
            Some(p) if !head[p] => t.consumers.iter().all(|&c| !head[c]),
            _ => true,
        })
    }

    /// The cost of placing `head` on the phone and the rest on the server, as a line in x;
    /// `None` when it sends (or brings back) a tensor of unknown size.
    pub fn cost(&self, head: &[bool]) -> Option<Linear> {
        let mut total = Linear::default();
        for ((&in_head, &mobile), &cloud) in head.iter().zip(&self.mobile).zip(&self.cloud) {
            total = total + if in_head { mobile } else { cloud? };
        }
        for t in &self.transfers {
            let on_phone = t.producer.is_none_or(|p| head[p]);
            if on_phone && t.consumers.iter().any(|&c| !head[c]) {
                total = total + t.cost?;
            }
        }
        if self.reply_items.iter().any(|&i| !head[i]) {
            total = total + self.rtt;
        }
        Some(total)
    }

    /// The cheapest closed head set at `x` by trying every subset (tests only: 2^n).
    pub fn brute_force(&self, x: f64) -> (Vec<bool>, f64) {
        assert!(self.len() <= 20, "brute force is for small instances");
        let mut best: Option<(Vec<bool>, f64)> = None;
        for mask in 0u32..(1 << self.len()) {
            let head: Vec<bool> = (0..self.len()).map(|i| mask >> i & 1 == 1).collect();
            if !self.is_closed(&head) {
                continue;
            }
            if let Some(c) = self.cost(&head) {
                let c = c.at(x);
                if best.as_ref().is_none_or(|(_, b)| c < *b) {
                    best = Some((head, c));
                }
            }
        }
        best.expect("all on the phone is always possible")
    }
}
