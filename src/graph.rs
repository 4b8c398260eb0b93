//! Stage 2, **graph**: the model as a petgraph graph.
//!
//! One graph node per ONNX node, plus explicit nodes for graph inputs, initializers and graph
//! outputs, so later stages (cuts, min-cut) see every source and sink. One edge per
//! (producer, consumer, tensor): a node reading the same tensor twice has one edge for it.
//! `If`/`Loop`/`Scan` and any other node with graph attributes are opaque: every tensor their
//! bodies read from the enclosing scope (at any depth of nesting) is an input edge of the node.

use anyhow::{bail, Result};
use onnx_protobuf::{GraphProto, NodeProto};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

/// Index of a tensor in [`ModelGraph::tensors`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Where a tensor's value comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Producer {
    GraphInput,
    Initializer,
    /// Output `slot` of an op node.
    Node(NodeIndex, usize),
}

/// One named tensor of the top-level graph.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub producer: Producer,
    /// Op nodes that read it (directly or from a subgraph body), each once, in graph order.
    pub consumers: Vec<NodeIndex>,
    /// Listed in the graph's outputs.
    pub is_output: bool,
}

/// An ONNX node of the top-level graph.
#[derive(Clone, Debug)]
pub struct OpNode {
    /// Position in `GraphProto.node`.
    pub index: usize,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Declared inputs, `None` for an omitted optional input (`""`).
    pub inputs: Vec<Option<TensorId>>,
    /// Declared outputs, `None` for an omitted optional output.
    pub outputs: Vec<Option<TensorId>>,
    /// Outer-scope tensors read by the node's subgraph bodies, sorted by name.
    pub captures: Vec<TensorId>,
}

impl OpNode {
    /// A name for messages: the node name, or `#index OpType` when the node is unnamed.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("#{} {}", self.index, self.op_type)
        } else {
            self.name.clone()
        }
    }

    /// `domain.OpType`, or just `OpType` in the default domain.
    pub fn qualified_op(&self) -> String {
        match self.domain.as_str() {
            "" | "ai.onnx" => self.op_type.clone(),
            d => format!("{d}.{}", self.op_type),
        }
    }

    /// Every tensor the node reads: declared inputs then captures, each once.
    pub fn reads(&self) -> Vec<TensorId> {
        let mut seen = HashSet::new();
        self.inputs
            .iter()
            .flatten()
            .chain(&self.captures)
            .copied()
            .filter(|t| seen.insert(*t))
            .collect()
    }
}

/// A node of the model graph.
#[derive(Clone, Debug)]
pub enum GraphNode {
    Input(TensorId),
    Initializer(TensorId),
    Op(OpNode),
    Output(TensorId),
}

/// The top-level graph of a model, checked and topologically ordered.
#[derive(Debug)]
pub struct ModelGraph {
    /// Edges point from producer to consumer and carry the tensor.
    pub graph: DiGraph<GraphNode, TensorId>,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<TensorId>,
    pub initializers: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Op nodes in topological order, ties broken by position in the file.
    pub order: Vec<NodeIndex>,
    by_name: HashMap<String, TensorId>,
}

impl ModelGraph {
    /// Which tensors are weights: initializers, and outputs of nodes that read only weights
    /// (`Constant`, or e.g. `ConstantOfShape` of a constant shape, which the model zoo's light nets
    /// use to make their weights).
    pub fn weight_tensors(&self) -> Vec<bool> {
        let mut weight: Vec<bool> = self
            .tensors
            .iter()
            .map(|t| t.producer == Producer::Initializer)
            .collect();
        for (_, op) in self.ops() {
            if op.reads().iter().all(|t| weight[t.0]) {
                for t in op.outputs.iter().flatten() {
                    weight[t.0] = true;
                }
            }
        }
        weight
    }

    /// Build and check the graph: a dangling tensor, a tensor produced twice or a cycle is an error.
    pub fn build(g: &GraphProto) -> Result<ModelGraph> {
        let mut b = Builder::default();
        let initializer_names: HashSet<&str> = g
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .chain(
                g.sparse_initializer
                    .iter()
                    .filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())),
            )
            .collect();
        // IR < 4 lists initializers among the inputs too; those are weights, not real inputs.
        for vi in g
            .input
            .iter()
            .filter(|vi| !initializer_names.contains(vi.name.as_str()))
        {
            let t = b.define(&vi.name, Producer::GraphInput, "graph input")?;
            let n = b.graph.add_node(GraphNode::Input(t));
            b.inputs.push(t);
            b.source_nodes.insert(t, n);
        }
        for name in g.initializer.iter().map(|t| &t.name).chain(
            g.sparse_initializer
                .iter()
                .filter_map(|s| s.values.as_ref().map(|v| &v.name)),
        ) {
            let t = b.define(name, Producer::Initializer, "initializer")?;
            let n = b.graph.add_node(GraphNode::Initializer(t));
            b.initializers.push(t);
            b.source_nodes.insert(t, n);
        }
        // Nodes first (so every output is defined), then edges.
        let mut ops = Vec::with_capacity(g.node.len());
        for (index, node) in g.node.iter().enumerate() {
            let n = b.graph.add_node(GraphNode::Op(OpNode {
                index,
                name: node.name.clone(),
                op_type: node.op_type.clone(),
                domain: node.domain.clone(),
                inputs: vec![],
                outputs: vec![],
                captures: vec![],
            }));
            let mut outputs = vec![];
            for (slot, out) in node.output.iter().enumerate() {
                outputs.push(if out.is_empty() {
                    None
                } else {
                    Some(b.define(
                        out,
                        Producer::Node(n, slot),
                        &format!("output of node `{}`", label(node, index)),
                    )?)
                });
            }
            b.op_mut(n).outputs = outputs;
            ops.push(n);
        }
        for (index, node) in g.node.iter().enumerate() {
            let n = ops[index];
            let read = |b: &Builder, name: &str| {
                b.by_name.get(name).copied().ok_or_else(|| {
                    anyhow::anyhow!(
                        "node `{}` ({}) reads tensor `{name}`, which no node, graph input or initializer produces",
                        label(node, index),
                        node.op_type
                    )
                })
            };
            let inputs = node
                .input
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        Ok(None)
                    } else {
                        read(&b, i).map(Some)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let captures = node_captures(node)
                .iter()
                .map(|name| read(&b, name))
                .collect::<Result<Vec<_>>>()?;
            b.op_mut(n).inputs = inputs;
            b.op_mut(n).captures = captures;
            for t in b.op(n).reads() {
                let from = b.producer_node(t);
                b.graph.add_edge(from, n, t);
                b.tensors[t.0].consumers.push(n);
            }
        }
        for vi in &g.output {
            let t = *b.by_name.get(&vi.name).ok_or_else(|| {
                anyhow::anyhow!(
                    "graph output `{}` is not produced by any node, graph input or initializer",
                    vi.name
                )
            })?;
            b.tensors[t.0].is_output = true;
            let n = b.graph.add_node(GraphNode::Output(t));
            let from = b.producer_node(t);
            b.graph.add_edge(from, n, t);
            b.outputs.push(t);
        }
        let order = topological_order(&b.graph)?;
        Ok(ModelGraph {
            graph: b.graph,
            tensors: b.tensors,
            inputs: b.inputs,
            initializers: b.initializers,
            outputs: b.outputs,
            order,
            by_name: b.by_name,
        })
    }

    /// Look a tensor up by name.
    pub fn tensor_id(&self, name: &str) -> Option<TensorId> {
        self.by_name.get(name).copied()
    }

    pub fn tensor(&self, t: TensorId) -> &Tensor {
        &self.tensors[t.0]
    }

    /// The op at a graph node. Panics if the node is not an op (a programming error).
    pub fn op(&self, n: NodeIndex) -> &OpNode {
        match &self.graph[n] {
            GraphNode::Op(op) => op,
            other => panic!("graph node {n:?} is not an op: {other:?}"),
        }
    }

    /// Op nodes in topological order.
    pub fn ops(&self) -> impl Iterator<Item = (NodeIndex, &OpNode)> + '_ {
        self.order.iter().map(|&n| (n, self.op(n)))
    }

    /// The op node that produces `t`, if an op does.
    pub fn producer_op(&self, t: TensorId) -> Option<NodeIndex> {
        match self.tensor(t).producer {
            Producer::Node(n, _) => Some(n),
            _ => None,
        }
    }

    /// Op nodes that directly feed `n`.
    pub fn op_predecessors(&self, n: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .neighbors_directed(n, Direction::Incoming)
            .filter(|p| matches!(self.graph[*p], GraphNode::Op(_)))
    }
}

#[derive(Default)]
struct Builder {
    graph: DiGraph<GraphNode, TensorId>,
    tensors: Vec<Tensor>,
    by_name: HashMap<String, TensorId>,
    inputs: Vec<TensorId>,
    initializers: Vec<TensorId>,
    outputs: Vec<TensorId>,
    source_nodes: HashMap<TensorId, NodeIndex>,
}

impl Builder {
    fn define(&mut self, name: &str, producer: Producer, what: &str) -> Result<TensorId> {
        if let Some(&t) = self.by_name.get(name) {
            let first = match self.tensors[t.0].producer {
                Producer::GraphInput => "a graph input".to_string(),
                Producer::Initializer => "an initializer".to_string(),
                Producer::Node(n, _) => format!("node `{}`", self.op(n).label()),
            };
            bail!("tensor `{name}` is produced twice: by {first} and as {what}; ONNX requires one producer per tensor");
        }
        let t = TensorId(self.tensors.len());
        self.tensors.push(Tensor {
            name: name.to_string(),
            producer,
            consumers: vec![],
            is_output: false,
        });
        self.by_name.insert(name.to_string(), t);
        Ok(t)
    }

    fn op(&self, n: NodeIndex) -> &OpNode {
        match &self.graph[n] {
            GraphNode::Op(op) => op,
            _ => unreachable!("op nodes are only looked up by their own index"),
        }
    }

    fn op_mut(&mut self, n: NodeIndex) -> &mut OpNode {
        match &mut self.graph[n] {
            GraphNode::Op(op) => op,
            _ => unreachable!("op nodes are only looked up by their own index"),
        }
    }

    fn producer_node(&self, t: TensorId) -> NodeIndex {
        match self.tensors[t.0].producer {
            Producer::Node(n, _) => n,
            _ => self.source_nodes[&t],
        }
    }
}

fn label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index} {}", node.op_type)
    } else {
        node.name.clone()
    }
}

/// Names a node's subgraph bodies read from enclosing scopes, sorted.
pub fn node_captures(node: &NodeProto) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for attr in &node.attribute {
        for body in attr.g.as_ref().into_iter().chain(&attr.graphs) {
            out.extend(graph_captures(body));
        }
    }
    out
}

/// Names a graph reads but does not define itself (inputs, initializers, node outputs), recursively.
pub fn graph_captures(g: &GraphProto) -> BTreeSet<String> {
    let defined: HashSet<&str> = g
        .input
        .iter()
        .map(|v| v.name.as_str())
        .chain(g.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            g.sparse_initializer
                .iter()
                .filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())),
        )
        .chain(
            g.node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    let mut reads = BTreeSet::new();
    for node in &g.node {
        reads.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
        reads.extend(node_captures(node));
    }
    reads.extend(g.output.iter().map(|o| o.name.clone()));
    reads.retain(|name| !defined.contains(name.as_str()));
    reads
}

/// Kahn's algorithm with a min-heap on node index, so the order is stable and follows the file
/// wherever the file is already sorted (petgraph's DFS toposort does not keep file order).
fn topological_order(graph: &DiGraph<GraphNode, TensorId>) -> Result<Vec<NodeIndex>> {
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    // Parallel edges (two tensors between the same pair) are counted per edge; so is the decrement.
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = graph
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    let mut visited = 0;
    while let Some(Reverse(n)) = ready.pop() {
        visited += 1;
        if matches!(graph[n], GraphNode::Op(_)) {
            order.push(n);
        }
        for m in graph.neighbors_directed(n, Direction::Outgoing) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(Reverse(m));
            }
        }
    }
    if visited < graph.node_count() {
        let cycle = petgraph::algo::tarjan_scc(graph)
            .into_iter()
            .find(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
            .unwrap_or_default();
        let names: Vec<String> = cycle
            .iter()
            .rev()
            .filter_map(|&n| match &graph[n] {
                GraphNode::Op(op) => Some(format!("`{}`", op.label())),
                _ => None,
            })
            .collect();
        bail!(
            "the graph has a cycle through nodes {}; an ONNX graph must be acyclic",
            names.join(" -> ")
        );
    }
    Ok(order)
}
