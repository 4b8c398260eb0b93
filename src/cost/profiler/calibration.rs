//! The context factors: how much slower each op class runs inside a network than alone,
//! measured on a small calibration CNN timed in place between the grid's passes.

use super::grid::{bn_stats, model, op, weight};
use crate::cost::measure::{measure, Measured};
use crate::cost::profile::DeviceProfile;
use crate::proto::{attr_int, attr_ints, float_value_info};
use crate::shapes::InputShapes;
use crate::Analysis;
use anyhow::{Context, Result};
use onnx_protobuf::{AttributeProto, ModelProto, NodeProto, TensorProto};
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The calibration network and its per-node times so far: timed a few times after each pass
/// over the grid (not all at the end), so that it sees the same states of the machine as the
/// grid, and each node's time is the typical one ([`Measured::typical`]). Timed all at once at
/// the end, a slow minute
/// there moved every context factor by 20% between two profiles (docs/accuracy.md).
pub(super) struct Calibration {
    analysis: Analysis,
    timings: Vec<Measured>,
}

impl Calibration {
    pub(super) fn new(dir: &Path) -> Result<Calibration> {
        let path = super::write_model(dir, "calibration.onnx", &calibration_net())?;
        let analysis = Analysis::run(&path, &InputShapes::default())
            .context("analysing the calibration network")?;
        Ok(Calibration {
            analysis,
            timings: vec![],
        })
    }

    /// Time the network `times` times more (each the median of `runs`).
    pub(super) fn time(&mut self, times: usize, runs: usize) -> Result<()> {
        for _ in 0..times {
            self.timings
                .push(measure(&self.analysis, runs).context("timing the calibration network")?);
        }
        Ok(())
    }
}

/// Ops run slower inside a network than alone (each finds the caches full of the previous ones'
/// data, much of it dirty), and memory-bound ops more than compute-bound ones. Per op class: the
/// time its fusion groups take in a small CNN of the profiled families (timed in place by
/// [`Calibration`]; a group counts for the class of its heaviest predicted member) over the sum of their predictions. Only groups
/// predicted at 0.05 ms or more count (a `Flatten` that tract makes a no-op says nothing of a
/// `Concat`), and only classes whose groups agree within 25%; the network's other
/// classes take the whole network's ratio, and classes it lacks none. Clamped to [0.5, 3].
pub(super) fn context_factors(
    fitted: &DeviceProfile,
    calibration: &Calibration,
) -> Result<BTreeMap<String, f64>> {
    let a = &calibration.analysis;
    anyhow::ensure!(
        !calibration.timings.is_empty(),
        "the calibration network was not timed"
    );
    let measured = &Measured::typical(&calibration.timings);
    // Per fusion group (tract times a fused chain as one kernel): its time, its predicted time,
    // and the class of its heaviest predicted member, which the group calibrates.
    let predicted = |n: NodeIndex| fitted.node_latency_ms(a.features.get(n)).unwrap_or(0.0);
    let mut groups: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for (n, owner) in measured.fusion_owners(a) {
        groups.entry(owner).or_default().push(n);
    }
    // (time, predicted time, lowest and highest ratio of a group of 0.05 ms or more) per class.
    let mut sums: BTreeMap<&str, (f64, f64, f64, f64)> = BTreeMap::new();
    let mut whole = (0.0, 0.0);
    for (owner, members) in groups {
        let took = measured.per_node_ms.get(&owner).copied().unwrap_or(0.0);
        let expected: f64 = members.iter().map(|&n| predicted(n)).sum();
        whole = (whole.0 + took, whole.1 + expected);
        let heaviest = members
            .iter()
            .copied()
            .max_by(|&x, &y| predicted(x).total_cmp(&predicted(y)))
            .unwrap_or(owner);
        if expected < 0.05 || took <= 0.0 {
            continue;
        }
        let s = sums
            .entry(a.features.get(heaviest).class.name())
            .or_insert((0.0, 0.0, f64::INFINITY, 0.0));
        let ratio = took / expected;
        *s = (s.0 + took, s.1 + expected, s.2.min(ratio), s.3.max(ratio));
    }
    // A class gets a factor of its own only where its groups agree (within 25%): one number is
    // no calibration for a class whose ops the network slows unevenly.
    let mut factors: BTreeMap<String, f64> = sums
        .into_iter()
        .filter(|(_, (_, _, lo, hi))| hi / lo <= 1.25)
        .map(|(class, (took, expected, _, _))| (class.to_string(), took / expected))
        .collect();
    // The other classes the network has run at its whole ratio. A class it lacks (recurrent
    // ops) gets no factor: nothing measured says how a network slows it, and the CNN's ratio
    // put a one-GRU model 24% over its measured time (docs/accuracy.md).
    if whole.1 > 0.0 {
        for (n, _) in a.graph.ops() {
            let class = a.features.get(n).class.name();
            factors
                .entry(class.to_string())
                .or_insert(whole.0 / whole.1);
        }
    }
    Ok(factors
        .into_iter()
        .map(|(class, f)| (class, f.clamp(0.5, 3.0)))
        .collect())
}

/// A small CNN of the profiled families (convs 3x3 and 1x1 with BatchNormalization and Relu,
/// a `[C, 1, 1]`-scaled BatchNormalization as exported DenseNets have on pooled maps, max pools,
/// a global pool, a classifier), for the context factors. Not one of the models accuracy is
/// judged on.
fn calibration_net() -> ModelProto {
    let mut net = Chain::new(3);
    net.conv_bn_relu(32, 3, 2, true);
    net.conv_bn_relu(64, 3, 1, false);
    net.max_pool(2, 2, 0);
    let c = net.channels;
    let stats = bn_stats(&format!("n{}", net.nodes.len()), c);
    net.push("BatchNormalization", stats, vec![]);
    for op_type in ["Mul", "Add"] {
        let constant = weight(&format!("{op_type}{}", net.nodes.len()), &[c, 1, 1]);
        net.push(op_type, vec![constant], vec![]);
    }
    net.push("Relu", vec![], vec![]);
    net.conv_bn_relu(128, 1, 1, true);
    net.conv_bn_relu(128, 3, 1, false);
    net.max_pool(3, 2, 1);
    net.conv_bn_relu(256, 3, 1, true);
    net.push("GlobalAveragePool", vec![], vec![]);
    net.push("Flatten", vec![], vec![]);
    let c = net.channels;
    let fc = vec![weight("fc_w", &[1000, c]), weight("fc_b", &[1000])];
    net.push("Gemm", fc, vec![attr_int("transB", 1)]);
    net.push("Softmax", vec![], vec![]);
    // A 224x224 input, as the nets it calibrates for: feature maps of 1.6-3.2 MB, past the L2
    // cache of a phone or a 2-core server, as theirs are (on a 112x112 input they fit in it).
    net.into_model(&[1, 3, 224, 224])
}

/// A chain of nodes, each reading the one before; `x` is the last output.
struct Chain {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    x: String,
    channels: i64,
}

impl Chain {
    /// An empty chain on an input `x` of `channels` channels.
    fn new(channels: i64) -> Chain {
        Chain {
            nodes: vec![],
            inits: vec![],
            x: "x".into(),
            channels,
        }
    }

    /// The model of the chain, its input `x` of shape `input`.
    fn into_model(self, input: &[i64]) -> ModelProto {
        let mut nodes = self.nodes.into_iter();
        let first = nodes.next().expect("a chain of at least one node");
        let mut m = model(first, float_value_info("x", input), &self.x, self.inits);
        m.graph
            .as_mut()
            .expect("built with a graph")
            .node
            .extend(nodes);
        m
    }

    fn push(&mut self, op_type: &str, weights: Vec<TensorProto>, attrs: Vec<AttributeProto>) {
        let i = self.nodes.len();
        let out = format!("t{i}");
        let inputs: Vec<&str> = std::iter::once(self.x.as_str())
            .chain(weights.iter().map(|w| w.name.as_str()))
            .collect();
        let mut node = op(op_type, &inputs, &[&out], attrs);
        node.name = format!("{}{i}", op_type.to_lowercase());
        self.nodes.push(node);
        self.inits.extend(weights);
        self.x = out;
    }

    fn conv_bn_relu(&mut self, cout: i64, k: i64, stride: i64, bn: bool) {
        let i = self.nodes.len();
        let weights = vec![
            weight(&format!("w{i}"), &[cout, self.channels, k, k]),
            weight(&format!("b{i}"), &[cout]),
        ];
        let attrs = vec![
            attr_ints("pads", &[k / 2; 4]),
            attr_ints("strides", &[stride, stride]),
        ];
        self.push("Conv", weights, attrs);
        self.channels = cout;
        if bn {
            self.push(
                "BatchNormalization",
                bn_stats(&format!("n{i}"), cout),
                vec![],
            );
        }
        self.push("Relu", vec![], vec![]);
    }

    fn max_pool(&mut self, k: i64, stride: i64, pads: i64) {
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &[pads; 4]),
        ];
        self.push("MaxPool", vec![], attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::profiler::tests::analyse;

    #[test]
    fn epilogues_fuse_as_tract_fuses_them() {
        use crate::cost::fusion::Epilogue::{Free, ReadsActivation};
        let mut net = Chain::new(8);
        // 3x3 conv: the BatchNormalization and a per-channel scale fold into its weights, the
        // Relu after them runs apart.
        net.conv_bn_relu(16, 3, 1, true);
        let nodes = net.nodes.len();
        net.nodes.insert(nodes - 1, {
            let mut mul = op("Mul", &["t1", "scale"], &["t1s"], vec![]);
            mul.name = "scale".into();
            mul
        });
        net.inits.push(weight("scale", &[16, 1, 1]));
        net.nodes[nodes].input[0] = "t1s".into();
        // 1x1 conv: BatchNormalization and Relu both run in its kernel.
        net.conv_bn_relu(16, 1, 1, true);
        // A residual sum after a 1x1 conv runs in the kernel but still reads its other input.
        let skip = net.x.clone();
        net.conv_bn_relu(16, 1, 1, false);
        net.nodes.pop();
        let conv = net.nodes.last().unwrap().output[0].clone();
        // The skip branch listed first, as exporters often do.
        let mut sum = op("Add", &[&skip, &conv], &["sum"], vec![]);
        sum.name = "residual".into();
        net.nodes.push(sum);
        net.x = "sum".into();
        net.push("Relu", vec![], vec![]);
        let a = analyse(&net.into_model(&[1, 8, 16, 16]));
        let fused: Vec<(String, Option<crate::cost::fusion::Epilogue>)> = a
            .graph
            .ops()
            .map(|(n, op)| (op.name.clone(), a.features.get(n).fused))
            .collect();
        let expected = [
            ("conv0", None),
            ("batchnormalization1", Some(Free)),
            ("scale", Some(Free)),
            ("relu2", None),
            ("conv4", None),
            ("batchnormalization5", Some(Free)),
            ("relu6", Some(Free)),
            ("conv7", None),
            ("residual", Some(ReadsActivation)),
            ("relu9", Some(Free)),
        ];
        let expected: Vec<_> = expected.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        assert_eq!(fused, expected);
    }
}
