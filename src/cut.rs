//! A cut of the model: which nodes run on the phone (the head) and which on the server (the tail).
//!
//! A [`Cut`] is a set of head op nodes closed under predecessors: a head node's inputs are all
//! computed in the head. Nodes that compute only from weights (`Constant`, `ConstantOfShape` of a
//! constant, ...) are not placed by the cut: each side that reads them carries its own copy, so
//! weights never cross the network. The [`boundary`](Cut::boundary) is every tensor a tail node
//! reads that the tail does not compute: outputs of head nodes, and graph inputs the tail reads
//! (the phone sends those as they are). Each crosses once, however many tail nodes read it, and a
//! tensor read inside an `If`/`Loop`/`Scan` body counts as read by that node, so a cut can never
//! pass through a subgraph.

use crate::graph::{GraphNode, ModelGraph, Producer, TensorId};
use anyhow::{bail, Result};
use petgraph::graph::NodeIndex;
use std::collections::HashSet;

/// Which side of a cut a node runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Head,
    Tail,
}

/// A head set of op nodes, closed under predecessors (constant-only nodes excepted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Indexed by `NodeIndex::index()`; true for head op nodes. Constant-only nodes are false.
    head: Vec<bool>,
    /// [`constant_nodes`] of the graph, computed once with the cut.
    constant: Vec<bool>,
}

/// Op nodes that read only weights; they are copied to each side that needs them.
pub fn constant_nodes(graph: &ModelGraph) -> Vec<bool> {
    let weights = graph.weight_tensors();
    let mut constant = vec![false; graph.graph.node_count()];
    for (n, op) in graph.ops() {
        constant[n.index()] = op.reads().iter().all(|t| weights[t.0]);
    }
    constant
}

impl Cut {
    /// Everything on the server: the head is empty.
    pub fn all_cloud(graph: &ModelGraph) -> Cut {
        Cut::normalised(graph, vec![false; graph.graph.node_count()])
    }

    /// Everything on the phone.
    pub fn all_mobile(graph: &ModelGraph) -> Cut {
        Cut::from_nodes(graph, graph.order.iter().copied())
            .expect("all nodes are closed under predecessors")
    }

    /// The first `k` op nodes of the topological order (a prefix is always closed).
    pub fn prefix(graph: &ModelGraph, k: usize) -> Cut {
        Cut::from_nodes(graph, graph.order.iter().take(k).copied())
            .expect("a topological prefix is closed")
    }

    /// Every node needed to compute the given tensors (their producers and all ancestors).
    pub fn upstream_of(graph: &ModelGraph, tensors: &[TensorId]) -> Cut {
        let mut head = vec![false; graph.graph.node_count()];
        let mut stack: Vec<NodeIndex> = tensors
            .iter()
            .filter_map(|&t| match graph.tensor(t).producer {
                Producer::Node(n, _) => Some(n),
                _ => None,
            })
            .collect();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut head[n.index()], true) {
                continue;
            }
            stack.extend(graph.op_predecessors(n));
        }
        Cut::normalised(graph, head)
    }

    /// A head from a set of op nodes; an error names a head node whose input comes from the tail.
    pub fn from_nodes(
        graph: &ModelGraph,
        nodes: impl IntoIterator<Item = NodeIndex>,
    ) -> Result<Cut> {
        let mut head = vec![false; graph.graph.node_count()];
        for n in nodes {
            if !matches!(graph.graph[n], GraphNode::Op(_)) {
                bail!("graph node {} is not an op node", n.index());
            }
            head[n.index()] = true;
        }
        let cut = Cut::normalised(graph, head);
        for (n, op) in graph.ops().filter(|(n, _)| cut.head[n.index()]) {
            if let Some(p) = graph
                .op_predecessors(n)
                .find(|p| !cut.head[p.index()] && !cut.constant[p.index()])
            {
                bail!(
                    "not a valid cut: head node `{}` reads from `{}`, which would run on the server",
                    op.label(),
                    graph.op(p).label()
                );
            }
        }
        Ok(cut)
    }

    /// Constant-only nodes never belong to a side.
    fn normalised(graph: &ModelGraph, mut head: Vec<bool>) -> Cut {
        let constant = constant_nodes(graph);
        for (h, &c) in head.iter_mut().zip(&constant) {
            *h &= !c;
        }
        Cut { head, constant }
    }

    /// Whether an op node reads only weights (it runs on every side that needs it).
    pub fn is_constant(&self, n: NodeIndex) -> bool {
        self.constant[n.index()]
    }

    /// The side a (non-constant) op node runs on.
    pub fn side(&self, n: NodeIndex) -> Side {
        if self.head[n.index()] {
            Side::Head
        } else {
            Side::Tail
        }
    }

    /// Head op nodes in topological order.
    pub fn head_nodes<'a>(&'a self, graph: &'a ModelGraph) -> impl Iterator<Item = NodeIndex> + 'a {
        graph.order.iter().copied().filter(|n| self.head[n.index()])
    }

    /// Whether the head is empty (everything on the server).
    pub fn is_all_cloud(&self) -> bool {
        !self.head.iter().any(|&h| h)
    }

    /// Whether the tail has no work (everything on the phone).
    pub fn is_all_mobile(&self, graph: &ModelGraph) -> bool {
        graph
            .order
            .iter()
            .all(|n| self.head[n.index()] || self.constant[n.index()])
    }

    /// The tensors that cross from phone to server, each once, in a stable order: graph inputs
    /// in declaration order, then head outputs in topological order of their producers.
    pub fn boundary(&self, graph: &ModelGraph) -> Vec<TensorId> {
        let in_tail = |n: NodeIndex| !self.head[n.index()] && !self.constant[n.index()];
        let crosses = |t: TensorId| graph.tensor(t).consumers.iter().any(|&c| in_tail(c));
        let mut out: Vec<TensorId> = graph
            .inputs
            .iter()
            .copied()
            .filter(|&t| crosses(t))
            .collect();
        let mut seen: HashSet<TensorId> = out.iter().copied().collect();
        for n in self.head_nodes(graph) {
            for &t in graph.op(n).outputs.iter().flatten() {
                if crosses(t) && seen.insert(t) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// A short identifier, the same on every run and machine: the number of head nodes and the
    /// start of a SHA-256 of their positions in the file. `all-cloud` / `all-mobile` for those.
    pub fn id(&self, graph: &ModelGraph) -> String {
        use sha2::{Digest, Sha256};
        if self.is_all_cloud() {
            return "all-cloud".into();
        }
        if self.is_all_mobile(graph) {
            return "all-mobile".into();
        }
        let mut nodes: Vec<usize> = self.head_nodes(graph).map(|n| graph.op(n).index).collect();
        nodes.sort_unstable();
        let mut h = Sha256::new();
        for i in &nodes {
            h.update((*i as u64).to_le_bytes());
        }
        let digest = h.finalize();
        format!(
            "h{}-{:02x}{:02x}{:02x}{:02x}",
            nodes.len(),
            digest[0],
            digest[1],
            digest[2],
            digest[3]
        )
    }

    /// Whether a node is in the head.
    pub fn contains(&self, n: NodeIndex) -> bool {
        self.head[n.index()]
    }
}
