//! The best closed head set of any DAG: a minimum s-t cut (as in DADS, Hu et al. INFOCOM 2019).
//!
//! The flow network, at a given x, with s the phone and t the server:
//!
//! - item i: s→i with its server cost (cut when i runs on the server) and i→t with its phone
//!   cost (cut when i runs on the phone);
//! - closure: consumer→producer, unbounded, so no head item reads a tail result;
//! - each transfer, counted once however many read it: an auxiliary node a with
//!   producer→a (or s→a for a graph input) carrying the transfer cost and a→consumer unbounded
//!   for every reader; a reader on the server drags a there, which cuts producer→a once;
//! - the round trip: an auxiliary node r with s→r carrying the RTT and r→reply item unbounded.
//!
//! Capacities are integers (costs in millionths of a ms or mJ) so the flow is exact; petgraph's
//! Dinic's algorithm computes it, and a residual search from s gives the source side. That side
//! is the smallest optimal head set, so ties go to the server, the same rule as the chain scan.

use super::instance::{Instance, Linear};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// Costs are rounded to this fraction of their unit (ms or mJ): 1 ns, 1 nJ.
const SCALE: f64 = 1e6;
/// An edge that must never be cut. Far above any sum of finite capacities, far below overflow.
const UNBOUNDED: u64 = 1 << 60;

fn capacity(cost: Option<Linear>, x: f64) -> u64 {
    match cost {
        Some(c) => ((c.at(x).max(0.0) * SCALE).round() as u64).min(UNBOUNDED / 4),
        None => UNBOUNDED,
    }
}

/// The smallest head set of minimum cost at `x`, and that cost (in the instance's unit).
pub fn solve(inst: &Instance, x: f64) -> (Vec<bool>, f64) {
    let n = inst.len();
    let mut g: DiGraph<(), u64> = DiGraph::with_capacity(n + inst.transfers.len() + 3, 0);
    let s = g.add_node(());
    let t = g.add_node(());
    let items: Vec<NodeIndex> = (0..n).map(|_| g.add_node(())).collect();
    let edge = |g: &mut DiGraph<(), u64>, from, to, cap: u64| {
        if cap > 0 {
            g.add_edge(from, to, cap);
        }
    };
    for (i, &item) in items.iter().enumerate() {
        // Each item pays at least the cheaper of its two sides whatever the cut: take that out
        // of both edges (the same constant for every cut, so the same optimum) and spare Dinic's
        // algorithm one trivial augmenting path per item.
        let (cloud, mobile) = (
            capacity(inst.cloud[i], x),
            capacity(Some(inst.mobile[i]), x),
        );
        let both = cloud.min(mobile);
        edge(
            &mut g,
            s,
            item,
            if cloud == UNBOUNDED {
                cloud
            } else {
                cloud - both
            },
        );
        edge(&mut g, item, t, mobile - both);
    }
    for tr in &inst.transfers {
        let from = tr.producer.map_or(s, |p| items[p]);
        let aux = g.add_node(());
        edge(&mut g, from, aux, capacity(tr.cost, x));
        for &c in &tr.consumers {
            edge(&mut g, aux, items[c], UNBOUNDED);
            if let Some(p) = tr.producer {
                edge(&mut g, items[c], items[p], UNBOUNDED);
            }
        }
    }
    if !inst.reply_items.is_empty() {
        let r = g.add_node(());
        edge(&mut g, s, r, capacity(Some(inst.rtt), x));
        for &i in &inst.reply_items {
            edge(&mut g, r, items[i], UNBOUNDED);
        }
    }
    let (_, flows) = petgraph::algo::dinics(&g, s, t);
    let source_side = residual_reachable(&g, &flows, s);
    let head: Vec<bool> = items.iter().map(|i| source_side[i.index()]).collect();
    let cost = inst
        .cost(&head)
        .expect("a finite minimum cut sends no tensor of unknown size")
        .at(x);
    (head, cost)
}

/// Nodes reachable from `s` along edges with capacity left (forward) or flow to undo (backward).
fn residual_reachable(g: &DiGraph<(), u64>, flows: &[u64], s: NodeIndex) -> Vec<bool> {
    let mut seen = vec![false; g.node_count()];
    let mut stack = vec![s];
    seen[s.index()] = true;
    while let Some(u) = stack.pop() {
        let forward = g
            .edges_directed(u, Direction::Outgoing)
            .filter(|e| flows[e.id().index()] < *e.weight())
            .map(|e| e.target());
        let backward = g
            .edges_directed(u, Direction::Incoming)
            .filter(|e| flows[e.id().index()] > 0)
            .map(|e| e.source());
        for v in forward.chain(backward).collect::<Vec<_>>() {
            if !std::mem::replace(&mut seen[v.index()], true) {
                stack.push(v);
            }
        }
    }
    seen
}
