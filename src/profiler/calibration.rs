//! The context factors: how much slower each kernel and op class runs inside a network than
//! alone, measured on four calibration networks timed in place between the grid's passes.

use super::grid::{bn_stats, model, op, weight};
use super::Reference;
use crate::analysis::Analysis;
use crate::cost::profile::{in_cache_key, DeviceProfile, Figures};
use crate::cost::OpClass;
use crate::profiler::measure::{measure, weighted_median, Measured};
use crate::proto::{attr_int, attr_ints, float_value_info};
use crate::runtime::Runtime;
use crate::shapes::InputShapes;
use anyhow::{Context, Result};
use onnx_protobuf::{AttributeProto, ModelProto, NodeProto, TensorProto};
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The calibration networks and their per-node times so far: each timed a few times after
/// each pass over the grid (not all at the end), so that they see the same states of the
/// machine as the grid, and each node's time is the typical one ([`Measured::typical`]). Timed
/// all at once at the end, a slow minute there moved every context factor by 20% between two
/// profiles (docs/accuracy.md).
pub(super) struct Calibration {
    /// Each network's timings, each with the reference's time around it.
    nets: Vec<(Analysis, Vec<(Measured, f64)>)>,
    runtime: Runtime,
}

impl Calibration {
    /// The suite ([`calibration_nets`]; the quick profile's, the small CNN alone) written to
    /// `dir` and analysed.
    pub(super) fn new(dir: &Path, quick: bool, runtime: Runtime) -> Result<Calibration> {
        let mut nets = vec![];
        for (name, model) in calibration_nets(quick) {
            let path = super::write_model(dir, &format!("{name}.onnx"), &model)?;
            let analysis = Analysis::run(&path, &InputShapes::default())
                .with_context(|| format!("analysing the calibration network {name}"))?;
            nets.push((analysis, vec![]));
        }
        Ok(Calibration { nets, runtime })
    }

    /// Time each network once more (the median of `runs`), the reference before and after
    /// each.
    pub(super) fn time(&mut self, runs: usize, reference: &mut Reference) -> Result<()> {
        for (analysis, timings) in &mut self.nets {
            timings.push(reference.around(|| {
                measure(analysis, self.runtime, runs).context("timing a calibration network")
            })?);
        }
        Ok(())
    }
}

/// A key's fusion groups must be predicted at this much in all (ms, weighted by their
/// [`context_share`](DeviceProfile::context_share)) for a factor of its own: below it, a few
/// microseconds of timer noise would set the factor.
const OWN_FACTOR_MIN_MS: f64 = 0.25;

/// A group whose data is at most this share of the cache counts as staying in it.
const IN_CACHE_SHARE: f64 = 0.25;

/// A class's groups that stay in cache must be predicted at this share of the reference conv's
/// typical time in all for an `in_cache:<class>` factor (0.017 ms on a 2-core AMD EPYC): they
/// run in microseconds. Relative, so that the same groups count on a machine ten times slower,
/// where the three 1000-way Softmaxes at the networks' ends (cold starts, 7-9x their time
/// alone) would pass an absolute bar and set a Softmax factor of their own.
const IN_CACHE_MIN_REFERENCES: f64 = 0.25;

/// One fusion group of a calibration network (tract times a fused chain as one kernel), which
/// calibrates the kernel and class of its heaviest predicted member.
#[derive(Clone)]
struct Group {
    /// Its time in the network, at the machine's typical speed (ms).
    took: f64,
    /// Its members' predicted times alone (ms).
    alone: f64,
    /// The part of `alone` that a kernel's or class's own factor scales (each member's
    /// predicted time by its [`context_share`](DeviceProfile::context_share)).
    scaled: f64,
    /// Each member's class and the part of its predicted time that no own factor scales (its
    /// time alone less its scaled part), which its class's in-cache factor scales.
    members: Vec<(OpClass, f64)>,
    /// The class of the heaviest predicted member.
    class: OpClass,
    /// That member's kernel (`op:<OpType>`), where the profile has a regression of it.
    kernel: Option<String>,
}

impl Group {
    /// Whether its data stays in cache: the part of its predicted time that its bytes' share of
    /// the cache scales at most [`IN_CACHE_SHARE`] of it.
    fn in_cache(&self) -> bool {
        self.took > 0.0 && self.alone > 0.0 && self.scaled <= IN_CACHE_SHARE * self.alone
    }

    /// The keys it calibrates: its class, and its kernel where it has one.
    fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.class.name()).chain(self.kernel.as_deref())
    }
}

/// Ops run slower inside a network than alone (each finds the caches full of the previous ones'
/// data, much of it dirty, and a shared last-level cache that other tenants also fill), and
/// memory-bound ops more than compute-bound ones. Per kernel (`op:<OpType>`, where the profile
/// has that regression) and per op class, the factor f that makes the calibration networks'
/// fusion groups ([`network_groups`]) add up to their time, each member slowed by
/// g x (1 - s) + f x s, s its [`context_share`](DeviceProfile::context_share) and g its
/// class's factor for ops whose data stays in cache ([`in_cache_factors`], taken first). Only
/// groups predicted at 0.05 ms or more count (a `Flatten` that tract makes a no-op says nothing
/// of a `Concat`), and only keys whose groups add up to [`OWN_FACTOR_MIN_MS`]; the networks'
/// other classes take the networks' whole factor, and classes they lack none. Sums over groups,
/// because what a factor must get right is a network's sum: the fully connected layers (run at
/// 1.5x their time alone after convolutions have filled the cache) and LRN and pools (under 1x)
/// each need their own. Clamped to [0.5, 3].
pub(super) fn context_factors(
    fitted: &DeviceProfile,
    calibration: &Calibration,
    reference_ms: f64,
) -> Result<BTreeMap<String, f64>> {
    let mut groups = vec![];
    let mut classes = BTreeSet::new();
    for (a, timings) in &calibration.nets {
        groups.extend(network_groups(fitted, a, timings, reference_ms)?);
        classes.extend(a.graph.ops().map(|(n, _)| a.features.get(n).class.name()));
    }
    Ok(solve(
        &groups,
        &classes,
        IN_CACHE_MIN_REFERENCES * reference_ms,
    ))
}

/// [`context_factors`] from the calibration networks' `groups` and the `classes` they hold,
/// the in-cache factors first (of classes whose in-cache groups add up to `in_cache_min_ms`).
fn solve(
    groups: &[Group],
    classes: &BTreeSet<&str>,
    in_cache_min_ms: f64,
) -> BTreeMap<String, f64> {
    let in_cache = in_cache_factors(groups, in_cache_min_ms);
    // took = alone + (g - 1) x (alone - scaled) + (f - 1) x scaled, g each member's class's
    // in-cache factor: per key, the sums over its groups of what f must explain (took less the
    // rest) and of the part f scales.
    let unexplained = |group: &Group| {
        let in_cache_part: f64 = group
            .members
            .iter()
            .map(|&(class, stays)| {
                let g = in_cache.get(&in_cache_key(class)).copied().unwrap_or(1.0);
                (g - 1.0) * stays
            })
            .sum();
        group.took - group.alone - in_cache_part
    };
    let add = |sums: &mut (f64, f64), group: &Group| {
        sums.0 += unexplained(group);
        sums.1 += group.scaled;
    };
    let mut by_key: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut whole = (0.0, 0.0);
    for group in groups {
        add(&mut whole, group);
        if group.alone < 0.05 || group.took <= 0.0 {
            continue;
        }
        for key in group.keys() {
            add(by_key.entry(key.to_string()).or_default(), group);
        }
    }
    let factor = |(unexplained, scaled): (f64, f64)| 1.0 + unexplained / scaled;
    let mut factors: BTreeMap<String, f64> = by_key
        .into_iter()
        .filter(|(_, s)| s.1 >= OWN_FACTOR_MIN_MS)
        .map(|(key, s)| (key, factor(s)))
        .collect();
    factors.extend(in_cache);
    // The other classes the networks have run at their whole factor. A class they lack
    // (recurrent ops) gets no factor: nothing measured says how a network slows it, and the
    // CNN's ratio put a one-GRU model 24% over its measured time (docs/accuracy.md).
    if whole.1 > 0.0 {
        for &class in classes {
            factors.entry(class.to_string()).or_insert(factor(whole));
        }
    }
    factors
        .into_iter()
        .map(|(key, f)| (key, clamp_factor(f)))
        .collect()
}

/// A context factor clamped to [0.5, 3], the range every factor of a profile is kept in.
fn clamp_factor(f: f64) -> f64 {
    f.clamp(0.5, 3.0)
}

/// Ops whose data stays in cache (groups of a share up to [`IN_CACHE_SHARE`]) still run slower
/// inside a network, and by class: in the micro network on a 2-core AMD EPYC, pools 1.19-1.25x
/// their time alone and convs 0.81-1.06x. One factor for them all (the pools' 1.25) put every
/// model of microseconds 15-40% over its measured time (docs/accuracy.md). Per class whose
/// in-cache groups are predicted at `min_ms` in all (`in_cache:<class>`, clamped as the others), the
/// typical group's ratio (the median weighted by predicted time), not the ratio of the sums: a
/// tiny op at a network's end, after heavy convs (a 1000-way Softmax, 7-9x its time alone
/// there), pays a cold start that a model of microseconds never does. Other classes get none:
/// their in-cache groups add up to too little to say (a few Relus, a small Gemm).
fn in_cache_factors(groups: &[Group], min_ms: f64) -> BTreeMap<String, f64> {
    let mut by_class: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for group in groups.iter().filter(|g| g.in_cache()) {
        by_class
            .entry(in_cache_key(group.class))
            .or_default()
            .push((group.took / group.alone, group.alone));
    }
    by_class
        .into_iter()
        .filter(|(_, ratios)| ratios.iter().map(|r| r.1).sum::<f64>() >= min_ms)
        .map(|(key, ratios)| (key, clamp_factor(weighted_median(ratios))))
        .collect()
}

/// A calibration network's fusion groups, each its time at the machine's typical speed (the
/// typical one of its `timings`, each scaled to the profile's `reference_ms` as the grid's
/// samples are) against its members' times predicted alone by `fitted`.
fn network_groups(
    fitted: &DeviceProfile,
    a: &Analysis,
    timings: &[(Measured, f64)],
    reference_ms: f64,
) -> Result<Vec<Group>> {
    anyhow::ensure!(!timings.is_empty(), "the calibration network was not timed");
    let at_typical: Vec<Measured> = timings
        .iter()
        .map(|(m, state)| m.scaled(reference_ms / state))
        .collect();
    let measured = Measured::typical(&at_typical);
    let predicted = |n: NodeIndex| fitted.node_latency_ms(a.features.get(n)).unwrap_or(0.0);
    let scaled = |n: NodeIndex| {
        Figures::of_node(a.features.get(n))
            .map_or(0.0, |work| predicted(n) * fitted.context_share(&work))
    };
    let mut owners: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for (n, owner) in measured.fusion_owners(a) {
        owners.entry(owner).or_default().push(n);
    }
    Ok(owners
        .into_iter()
        .map(|(owner, members)| {
            let heaviest = a.features.get(
                members
                    .iter()
                    .copied()
                    .max_by(|&x, &y| predicted(x).total_cmp(&predicted(y)))
                    .unwrap_or(owner),
            );
            let kernel = format!("op:{}", heaviest.regression_op);
            Group {
                took: measured.per_node_ms.get(&owner).copied().unwrap_or(0.0),
                alone: members.iter().map(|&n| predicted(n)).sum(),
                scaled: members.iter().map(|&n| scaled(n)).sum(),
                members: members
                    .iter()
                    .map(|&n| (a.features.get(n).class, predicted(n) - scaled(n)))
                    .collect(),
                class: heaviest.class,
                kernel: fitted.regressions.contains_key(&kernel).then_some(kernel),
            }
        })
        .collect())
}

/// The calibration suite, by name: networks of the profiled families, none of them a model
/// accuracy is judged on. The quick profile takes the first alone.
fn calibration_nets(quick: bool) -> Vec<(&'static str, ModelProto)> {
    // The provenance's words for this list: `describe_suite`.
    let mut nets = vec![("calibration-cnn", small_cnn())];
    if !quick {
        nets.push(("calibration-classifier", classifier()));
        nets.push(("calibration-residual", residual()));
        nets.push(("calibration-micro", micro()));
    }
    nets
}

/// The suite [`calibration_nets`] builds, in words, for a profile's provenance.
pub(super) fn describe_suite(quick: bool) -> &'static str {
    if quick {
        "a small calibration CNN"
    } else {
        "four calibration networks (a small CNN, a classifier, a residual net, a micro CNN)"
    }
}

/// A small CNN (convs 3x3 and 1x1 with BatchNormalization and Relu, a `[C, 1, 1]`-scaled
/// BatchNormalization as exported DenseNets have on pooled maps, max pools, a global pool, a
/// classifier).
fn small_cnn() -> ModelProto {
    let mut net = Chain::new(3);
    // A 3x3 first layer of 64 channels, as SqueezeNet 1.1's: 27 inputs per output, so its time
    // goes to writing 3.2 MB, and a network slows it 1.15-1.5x where it slows the 7x7 and 11x11
    // first layers of ResNet-50, ZFNet and AlexNet 0.9-1.2x (docs/accuracy.md). With 32
    // channels (1.6 MB, inside the L2 cache) the thin layers' factor missed that.
    net.conv_bn_relu(64, 3, 2, true);
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
    net.fully_connected(256, &[1000]);
    net.push("Softmax", vec![], vec![]);
    // A 224x224 input, as the nets it calibrates for: feature maps of 1.6-3.2 MB, past the L2
    // cache of a phone or a 2-core server, as theirs are (on a 112x112 input they fit in it).
    net.into_model(&[1, 3, 224, 224])
}

/// An older-style classifier: a strided 7x7 stem, convs with pools and an LRN between them,
/// then fully connected layers whose weights (220 MB) pass through the cache on every run.
fn classifier() -> ModelProto {
    let mut net = Chain::new(3);
    net.conv_bn_relu(96, 7, 2, false);
    net.max_pool(3, 2, 1);
    // On 96 x 48 x 48 (1.8 MB read and written): an LRN whose data outgrows the cache, as the
    // nets' do, so that its factor is measured in full rather than inferred from a fraction.
    net.push("LRN", vec![], vec![attr_int("size", 5)]);
    net.conv_bn_relu(192, 5, 1, false);
    net.max_pool(2, 2, 0);
    net.conv_bn_relu(256, 3, 1, false);
    net.max_pool(2, 2, 0);
    net.conv_bn_relu(256, 3, 1, false);
    net.max_pool(2, 2, 0);
    net.push("Flatten", vec![], vec![]);
    net.fully_connected(9216, &[4096, 4096, 1000]);
    net.push("Softmax", vec![], vec![]);
    // 192x192 in: 256 x 6 x 6 = 9216 features into the first fully connected layer.
    net.into_model(&[1, 3, 192, 192])
}

/// A network of microseconds whose data stays in cache: small convs and pools on a 40x40
/// input, a global pool, two small fully connected layers.
fn micro() -> ModelProto {
    let mut net = Chain::new(3);
    net.conv_bn_relu(16, 3, 1, false);
    net.max_pool(2, 2, 0);
    net.conv_bn_relu(32, 3, 1, false);
    net.max_pool(2, 2, 0);
    net.conv_bn_relu(32, 1, 1, false);
    net.push("GlobalAveragePool", vec![], vec![]);
    net.push("Flatten", vec![], vec![]);
    net.fully_connected(32, &[64, 10]);
    net.push("Softmax", vec![], vec![]);
    net.into_model(&[1, 3, 40, 40])
}

/// A residual network: a stem, bottleneck blocks (1x1 reduce, 3x3, 1x1 expand, the residual
/// sum) at two widths, a strided 1x1 projection between them, a global pool and a classifier.
fn residual() -> ModelProto {
    let mut net = Chain::new(3);
    net.conv_bn_relu(64, 7, 2, true);
    net.max_pool(3, 2, 1);
    net.conv_bn_relu(256, 1, 1, true);
    net.bottleneck(64);
    net.bottleneck(64);
    net.conv_bn_relu(512, 1, 2, true);
    net.bottleneck(128);
    net.push("GlobalAveragePool", vec![], vec![]);
    net.push("Flatten", vec![], vec![]);
    net.fully_connected(512, &[1000]);
    net.push("Softmax", vec![], vec![]);
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
        self.conv_bn(cout, k, stride, bn);
        self.push("Relu", vec![], vec![]);
    }

    /// A `k`x`k` convolution to `cout` channels, then a BatchNormalization if `bn`.
    fn conv_bn(&mut self, cout: i64, k: i64, stride: i64, bn: bool) {
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
    }

    /// A bottleneck block on the chain's channels: 1x1 down to `mid`, 3x3, 1x1 back up, each
    /// with a BatchNormalization, the block's input added back, then a Relu.
    fn bottleneck(&mut self, mid: i64) {
        let (skip, channels) = (self.x.clone(), self.channels);
        self.conv_bn_relu(mid, 1, 1, true);
        self.conv_bn_relu(mid, 3, 1, true);
        self.conv_bn(channels, 1, 1, true);
        let i = self.nodes.len();
        let out = format!("t{i}");
        let mut sum = op("Add", &[&skip, &self.x], &[&out], vec![]);
        sum.name = format!("add{i}");
        self.nodes.push(sum);
        self.x = out;
        self.push("Relu", vec![], vec![]);
    }

    /// Fully connected layers to each width in turn on a flat input of `features`, a Relu
    /// between them.
    fn fully_connected(&mut self, mut features: i64, widths: &[i64]) {
        for (j, &width) in widths.iter().enumerate() {
            if j > 0 {
                self.push("Relu", vec![], vec![]);
            }
            let i = self.nodes.len();
            let fc = vec![
                weight(&format!("fc{i}_w"), &[width, features]),
                weight(&format!("fc{i}_b"), &[width]),
            ];
            self.push("Gemm", fc, vec![attr_int("transB", 1)]);
            features = width;
        }
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
    use crate::profiler::tests::analyse;

    /// A group of one op of `class`, predicted at `alone` ms (`scaled` of it by its own
    /// factor), that took `took` ms in a network.
    fn group(class: OpClass, took: f64, alone: f64, scaled: f64) -> Group {
        Group {
            took,
            alone,
            scaled,
            members: vec![(class, alone - scaled)],
            class,
            kernel: None,
        }
    }

    /// In-cache groups give each class with enough of them its own factor (the weighted
    /// median, not the ratio of the sums), none to the others; the own factors are solved with
    /// each member's class's in-cache factor.
    #[test]
    fn in_cache_factors_by_class_and_own_factors_after_them() {
        let groups = vec![
            // In cache: pools at 1.25x and 1.2x (and a light one at 8x), convs at 1.0x, a Relu.
            group(OpClass::Pool, 0.075, 0.06, 0.0),
            group(OpClass::Pool, 0.036, 0.03, 0.0),
            group(OpClass::Pool, 0.008, 0.001, 0.0),
            group(OpClass::Conv, 0.04, 0.04, 0.004),
            group(OpClass::Activation, 0.014, 0.01, 0.0),
            // Out of cache: a conv 0.2 ms over its time alone, 1.0 ms of it scaled by its own
            // factor and 0.1 ms by the convs' in-cache factor (1.0): f = 1 + 0.2 / 1.0.
            group(OpClass::Conv, 1.3, 1.1, 1.0),
        ];
        let classes: BTreeSet<&str> = ["pool", "conv", "activation"].into();
        let f = solve(&groups, &classes, 0.02);
        let close = |key: &str, want: f64| {
            let got = f[key];
            assert!((got - want).abs() < 1e-9, "{key}: {got} against {want}");
        };
        close("in_cache:pool", 1.25);
        close("in_cache:conv", 1.0);
        // 0.01 ms of Relus is too little to say.
        assert!(!f.contains_key("in_cache:activation"), "{f:?}");
        close("conv", 1.0 + 0.2 / 1.0);
        // With the pools' in-cache factor 1.5 instead, the big conv's own factor is unchanged
        // (its class's in-cache factor is still 1.0).
        let mut slower = groups.clone();
        slower[0].took = 0.09;
        slower[1].took = 0.045;
        let g = solve(&slower, &classes, 0.02);
        assert!((g["in_cache:pool"] - 1.5).abs() < 1e-9, "{g:?}");
        assert!((g["conv"] - 1.2).abs() < 1e-9, "{g:?}");
        // A higher bar leaves the convs (0.04 ms) without an in-cache factor of their own.
        assert!(!solve(&groups, &classes, 0.06).contains_key("in_cache:conv"));
    }

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
