//! Stage 7, **verify**: run the original and head-then-tail on the same seeded random inputs and
//! compare every original output, in onnxruntime (what inference servers run) where it is
//! installed, else in tract.
//!
//! A model with symbolic input dimensions is checked at two points: the sizes given (batch 1 by
//! default) and every symbolic dimension moved to another size (batch 3), so a half that froze a
//! dimension fails. Inputs: floats uniform in [-1, 1); integers in {0, 1} (a safe range for
//! indices and ids); booleans true (masks keep everything). A model the runtime cannot load or
//! run is reported as [`Outcome::Unverifiable`], distinct from a mismatch.

use crate::analysis::Analysis;
use crate::runtime::{random_inputs, Runtime, SampleInputs, Verifier};
use crate::setting::Setting;
use crate::shapes::{InputShapes, Sizes};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;

/// Exit code of `nsplit verify` when no runtime can run the models.
pub const EXIT_UNVERIFIABLE: u8 = 3;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub input_shapes: InputShapes,
    pub seed: u64,
    pub rtol: f64,
    pub atol: f64,
    pub verifier: Verifier,
    /// Real inputs to compare on, in place of (or set into) the random ones.
    pub samples: SampleInputs,
}

/// Relative tolerance of a comparison when none is given.
pub const DEFAULT_RTOL: f64 = 1e-4;
/// Absolute tolerance of a comparison when none is given.
pub const DEFAULT_ATOL: f64 = 1e-5;

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            input_shapes: InputShapes::default(),
            seed: 0,
            rtol: DEFAULT_RTOL,
            atol: DEFAULT_ATOL,
            verifier: Verifier::Auto,
            samples: SampleInputs::default(),
        }
    }
}

/// How one output of head-then-tail compares with the original's, at one point.
#[derive(Clone, Debug, Serialize)]
pub struct OutputDiff {
    pub name: String,
    /// The input sizes of the point (`images=3x3x32x32`).
    pub sizes: String,
    pub elements: usize,
    pub max_abs: f64,
    pub max_rel: f64,
    /// Every element within `atol + rtol * |original|` (and shapes equal).
    pub ok: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// Compared every original output at every point.
    Compared {
        runtime: Runtime,
        diffs: Vec<OutputDiff>,
        /// What was not compared, and why: a point the original itself does not run at (a model
        /// whose symbolic dimension only takes some sizes), a runtime passed over, a point whose
        /// outputs are all empty. Reported, not failed.
        notes: Vec<String>,
    },
    /// The runtime runs the original but refuses a half (a frozen dimension, a missing input):
    /// the halves are wrong. The reason.
    Rejected(String),
    /// No runtime could run the original; the reason.
    Unverifiable(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Compared { diffs, .. } if diffs.iter().all(|d| d.ok))
    }

    /// The points compared, in order (`images=1x3x32x32`, `images=3x3x32x32`).
    pub fn points(&self) -> Vec<String> {
        let mut points: Vec<String> = vec![];
        if let Outcome::Compared { diffs, .. } = self {
            for d in diffs {
                if !points.contains(&d.sizes) {
                    points.push(d.sizes.clone());
                }
            }
        }
        points
    }

    /// What was not compared, and why.
    pub fn notes(&self) -> &[String] {
        match self {
            Outcome::Compared { notes, .. } => notes,
            _ => &[],
        }
    }

    /// Largest absolute difference over every output and point, when compared.
    pub fn max_abs(&self) -> Option<f64> {
        match self {
            Outcome::Compared { diffs, .. } => diffs.iter().map(|d| d.max_abs).reduce(f64::max),
            Outcome::Rejected(_) | Outcome::Unverifiable(_) => None,
        }
    }

    /// One line per output and point, for people.
    pub fn to_text(&self) -> String {
        match self {
            Outcome::Unverifiable(why) => format!("unverified: {why}\n"),
            Outcome::Rejected(why) => format!("FAILED: {why}\n"),
            Outcome::Compared {
                runtime,
                diffs,
                notes,
            } => {
                let mut out = format!("compared in {runtime} at {}\n", self.points().join("; "));
                for d in diffs {
                    out += &format!(
                        "{}  {}  max abs {:.3e}  max rel {:.3e}  ({} elements, {})\n",
                        if d.ok { "ok      " } else { "MISMATCH" },
                        d.name,
                        d.max_abs,
                        d.max_rel,
                        d.elements,
                        d.sizes
                    );
                }
                for n in notes {
                    out += &format!("note: {n}\n");
                }
                out
            }
        }
    }
}

/// Run `original`, and `head` then `tail` (either may be absent for all-cloud / all-mobile), and
/// compare. A symbolic input dimension without a given size is checked at 1 and at 3. Errors
/// are problems with the inputs themselves (unreadable model, bad shapes).
pub fn verify(
    original: &Path,
    head: Option<&Path>,
    tail: Option<&Path>,
    opts: &VerifyOptions,
) -> Result<Outcome> {
    let analysis = Analysis::run_with(original, &opts.input_shapes, Sizes::DefaultOne)?;
    Ok(match Reference::new(&analysis, opts)? {
        Ok(reference) => reference.check(head, tail, opts)?,
        Err(why) => Outcome::Unverifiable(why),
    })
}

/// The original's inputs and outputs at one point.
pub struct Point {
    /// The input sizes (`images=1x3x32x32`).
    pub sizes: String,
    pub inputs: HashMap<String, Tensor>,
    pub expected: HashMap<String, Tensor>,
}

/// The original's outputs, computed once per point and compared with any number of pairs.
pub struct Reference {
    pub runtime: Runtime,
    pub points: Vec<Point>,
    /// What is not compared and why (points the original does not run at, runtimes passed
    /// over), one line each.
    pub notes: Vec<String>,
    /// What the original declares of its tensors (outputs, value_info): a half that restates a
    /// declaration the original's own graph contradicts is the model's fault, not the split's.
    pub declared: HashMap<String, crate::tensor::TensorInfo>,
}

impl Reference {
    fn push(
        &mut self,
        analysis: &Analysis,
        sizes: String,
        inputs: HashMap<String, Tensor>,
        mut expected: HashMap<String, Tensor>,
    ) {
        expected.retain(|name, _| analysis.graph.tensor_id(name).is_some());
        self.points.push(Point {
            sizes,
            inputs,
            expected,
        });
    }

    /// Run the original on seeded random inputs at each point, in the first runtime that can;
    /// `Ok(Err(why))` when none can.
    pub fn new(
        analysis: &Analysis,
        opts: &VerifyOptions,
    ) -> Result<std::result::Result<Reference, String>> {
        opts.samples.check(&analysis.graph, &analysis.shapes)?;
        if let Some((t, bytes)) = analysis
            .shapes
            .largest_activation(&analysis.graph)
            .filter(|&(_, b)| b > crate::tensor::memory_limit())
        {
            return Ok(Err(format!(
                "running the model needs `{}` of {}, over the memory limit of {} (NSPLIT_MEMORY_LIMIT)",
                analysis.graph.tensor(t).name,
                crate::tensor::human_bytes(bytes),
                crate::tensor::human_bytes(crate::tensor::memory_limit())
            )));
        }
        let (runtimes, mut problems) = Runtime::candidates(opts.verifier);
        for runtime in runtimes {
            match Reference::in_runtime(analysis, opts, runtime)? {
                Ok(mut r) => {
                    // Say why a preferred runtime was passed over.
                    r.notes.splice(0..0, problems);
                    return Ok(Ok(r));
                }
                Err(why) => problems.push(why),
            }
        }
        let mut why = problems.join("; ");
        if opts.samples.samples.is_empty() {
            why += &format!(
                " (on random inputs: a model steered by an input's value needs real ones, {} FILE.npz or {} NAME=VALUE)",
                Setting::SampleInputs,
                Setting::InputValue
            );
        }
        Ok(Err(why))
    }

    fn in_runtime(
        analysis: &Analysis,
        opts: &VerifyOptions,
        runtime: Runtime,
    ) -> Result<std::result::Result<Reference, String>> {
        let original = &analysis.model.path;
        let g = analysis.model.graph();
        let mut reference = Reference {
            runtime,
            points: vec![],
            notes: vec![],
            declared: g
                .output
                .iter()
                .chain(&g.value_info)
                .map(|v| (v.name.clone(), crate::shapes::info_from_type(&v.type_)))
                .collect(),
        };
        // Loaded once and run at every point: a big model is read once, and held once.
        let mut loaded = match runtime.load_for_check(original) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Err(format!(
                    "{runtime} cannot run {}: {}",
                    original.display(),
                    one_line(&e)
                )))
            }
        };
        if !opts.samples.samples.is_empty() {
            // Real inputs: each sample is a point, run as it is.
            for (label, sample) in &opts.samples.samples {
                let label = format!("{label} ({})", sizes_label(analysis, sample));
                match loaded.run(sample) {
                    Ok(expected) => reference.push(analysis, label, sample.clone(), expected),
                    Err(e) => {
                        return Ok(Err(format!(
                            "{runtime} cannot run {} on {label}: {}",
                            original.display(),
                            one_line(&e)
                        )))
                    }
                }
            }
            return Ok(Ok(reference));
        }
        // The sizes given (or picked) first; where the original does not run at picked sizes,
        // larger ones.
        let shapes = &analysis.shapes;
        let random = |sizes: Option<&InputShapes>, seed: u64| -> Result<HashMap<String, Tensor>> {
            let mut values = random_inputs(&analysis.graph, shapes, sizes, seed)?;
            opts.samples
                .apply_values(&analysis.graph, shapes, &mut values, seed)?;
            Ok(values)
        };
        let own = [crate::shapes::VerifyPoints {
            first: None,
            seconds: vec![],
        }];
        let candidates = if shapes.verify_points.is_empty() {
            &own[..]
        } else {
            &shapes.verify_points[..]
        };
        let mut failed = None;
        for candidate in candidates {
            let inputs = random(candidate.first.as_ref(), opts.seed)?;
            let label = sizes_label(analysis, &inputs);
            match loaded.run(&inputs) {
                Ok(expected) => {
                    if let Some(why) = failed.take() {
                        reference.notes.push(why);
                    }
                    reference.push(analysis, label, inputs, expected);
                    // The first second point the original runs at.
                    let mut passed_over = vec![];
                    for second in &candidate.seconds {
                        let inputs = random(Some(second), opts.seed.wrapping_add(1))?;
                        let label = sizes_label(analysis, &inputs);
                        match loaded.run(&inputs) {
                            Ok(expected) => {
                                reference.push(analysis, label, inputs, expected);
                                passed_over.clear();
                                break;
                            }
                            Err(e) => passed_over.push(format!(
                                "not compared at {label}: {runtime} cannot run the original there: {}",
                                one_line(&e)
                            )),
                        }
                    }
                    reference.notes.extend(passed_over.into_iter().take(1));
                    break;
                }
                Err(e) => {
                    failed.get_or_insert(format!(
                        "{runtime} cannot run {} at {label}: {}",
                        original.display(),
                        one_line(&e)
                    ));
                }
            }
        }
        if reference.points.is_empty() {
            return Ok(Err(failed.unwrap_or_default()));
        }
        Ok(Ok(reference))
    }

    /// Run head then tail on the reference inputs at each point and compare every original
    /// output.
    pub fn check(
        &self,
        head: Option<&Path>,
        tail: Option<&Path>,
        opts: &VerifyOptions,
    ) -> Result<Outcome> {
        let runtime = self.runtime;
        let mut diffs = vec![];
        let mut notes = self.notes.clone();
        // Each half loaded once and run at every point, one half at a time.
        let mut values: Vec<HashMap<String, Tensor>> =
            self.points.iter().map(|p| p.inputs.clone()).collect();
        for half in [head, tail].into_iter().flatten() {
            let file = half
                .file_name()
                .unwrap_or(half.as_os_str())
                .to_string_lossy();
            let declared = declared_outputs(half)?;
            let mut loaded = runtime.load_for_check(half);
            for (point, values) in self.points.iter().zip(&mut values) {
                let out = match &mut loaded {
                    Ok(m) => m.run(values),
                    Err(e) => Err(anyhow::anyhow!("{e:#}")),
                };
                match out {
                    Ok(out) => {
                        if let Some(wrong) = undeclared_shape(&declared, &self.declared, &out) {
                            return Ok(Outcome::Rejected(format!(
                                "{file} declares {wrong} at {}",
                                point.sizes
                            )));
                        }
                        values.extend(out)
                    }
                    Err(e) => {
                        return Ok(Outcome::Rejected(format!(
                            "{runtime} runs the original at {} but not {file}: {}",
                            point.sizes,
                            one_line(&e)
                        )))
                    }
                }
            }
        }
        for (point, values) in self.points.iter().zip(values) {
            let mut at_point = vec![];
            for (name, want) in &point.expected {
                let Some(got) = values.get(name) else {
                    return Ok(Outcome::Rejected(format!(
                        "no half computes the original output `{name}`"
                    )));
                };
                at_point.push(compare(name, &point.sizes, want, got, opts)?);
            }
            if at_point.iter().all(|d| d.elements == 0) {
                notes.push(format!(
                    "at {}: every output is empty, so nothing was compared there (give sizes with {})",
                    point.sizes,
                    Setting::InputShape
                ));
            }
            at_point.sort_by(|a, b| a.name.cmp(&b.name));
            diffs.extend(at_point);
        }
        if !diffs.is_empty() && diffs.iter().all(|d| d.elements == 0) {
            return Ok(Outcome::Unverifiable(format!(
                "every output is empty at every size tried ({}); nothing was compared: give sizes with {}",
                self.points
                    .iter()
                    .map(|p| p.sizes.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                Setting::InputShape
            )));
        }
        Ok(Outcome::Compared {
            runtime,
            diffs,
            notes,
        })
    }
}

/// A half's graph outputs as it declares them, read without its weights (and without the
/// warnings loading a model says: the original's were said).
fn declared_outputs(half: &Path) -> Result<Vec<(String, crate::tensor::TensorInfo)>> {
    use onnx_protobuf::Message;
    let file =
        std::fs::File::open(half).with_context(|| format!("cannot read {}", half.display()))?;
    let len = file.metadata()?.len();
    let shrunk = crate::proto::wire::shrink(std::io::BufReader::new(file), len, 4096)
        .with_context(|| format!("cannot read {}", half.display()))?;
    let model = onnx_protobuf::ModelProto::parse_from_bytes(&shrunk.bytes)
        .with_context(|| format!("{} is not a valid ONNX model", half.display()))?;
    Ok(model
        .graph
        .output
        .iter()
        .map(|o| (o.name.clone(), crate::shapes::info_from_type(&o.type_)))
        .collect())
}

/// The first declared output whose computed value has another rank or differs from a number
/// it declares (a runtime checks the dims of a model's inputs, not of its outputs), described.
fn undeclared_shape(
    declared: &[(String, crate::tensor::TensorInfo)],
    original: &HashMap<String, crate::tensor::TensorInfo>,
    computed: &HashMap<String, Tensor>,
) -> Option<String> {
    use crate::tensor::Dim;
    declared.iter().find_map(|(name, info)| {
        if original.get(name) == Some(info) {
            return None;
        }
        let (dims, value) = (info.dims.as_ref()?, computed.get(name)?);
        let fits = dims.len() == value.rank()
            && dims
                .iter()
                .zip(value.shape())
                .all(|(d, &v)| !matches!(d, Dim::Known(k) if *k != v as u64));
        (!fits).then(|| {
            let shape: Vec<String> = value.shape().iter().map(usize::to_string).collect();
            format!(
                "`{name}` {}, but it computes {}",
                info.shape_string(),
                if shape.is_empty() {
                    "a scalar".into()
                } else {
                    shape.join("x")
                }
            )
        })
    })
}

/// An error and its causes on one line (onnxruntime's messages span several).
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `name=dims` of every input, in the graph's order.
fn sizes_label(a: &Analysis, inputs: &HashMap<String, Tensor>) -> String {
    a.graph
        .inputs
        .iter()
        .filter_map(|&t| {
            let name = &a.graph.tensor(t).name;
            let v = inputs.get(name)?;
            let dims: Vec<String> = v.shape().iter().map(usize::to_string).collect();
            Some(format!(
                "{name}={}",
                if dims.is_empty() {
                    "scalar".into()
                } else {
                    dims.join("x")
                }
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn compare(
    name: &str,
    sizes: &str,
    want: &Tensor,
    got: &Tensor,
    opts: &VerifyOptions,
) -> Result<OutputDiff> {
    let elements = want.len();
    if want.shape() != got.shape() {
        return Ok(OutputDiff {
            name: name.into(),
            sizes: sizes.into(),
            elements,
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            ok: false,
        });
    }
    if want.datum_type() == String::datum_type() {
        let ok = want == got;
        let d = if ok { 0.0 } else { f64::INFINITY };
        return Ok(OutputDiff {
            name: name.into(),
            sizes: sizes.into(),
            elements,
            max_abs: d,
            max_rel: d,
            ok,
        });
    }
    let (w, g) = (want.cast_to::<f64>()?, got.cast_to::<f64>()?);
    let (w, g) = (
        w.to_plain_array_view::<f64>()?,
        g.to_plain_array_view::<f64>()?,
    );
    // Half precision holds about three decimal digits: a model that computes in float16 rounds
    // a boundary value the original kept wider inside a fused kernel, a few units in its last
    // place, so its outputs are held to float16's tolerance.
    let (rtol, atol) = if want.datum_type() == f16::datum_type() {
        (opts.rtol.max(1e-2), opts.atol.max(1e-3))
    } else {
        (opts.rtol, opts.atol)
    };
    let (mut max_abs, mut max_rel, mut ok) = (0f64, 0f64, true);
    for (a, b) in w.iter().zip(g.iter()) {
        if a.is_nan() && b.is_nan() || a == b {
            continue;
        }
        let diff = (a - b).abs();
        max_abs = max_abs.max(diff);
        max_rel = max_rel.max(diff / a.abs().max(f64::MIN_POSITIVE));
        ok &= diff <= atol + rtol * a.abs();
    }
    Ok(OutputDiff {
        name: name.into(),
        sizes: sizes.into(),
        elements,
        max_abs,
        max_rel,
        ok,
    })
}
