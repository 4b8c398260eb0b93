//! Stage 7, **verify**: run the original and head-then-tail with tract on the same seeded random
//! inputs and compare every original output.
//!
//! Inputs: floats uniform in [-1, 1); integers in {0, 1} (a safe range for indices and ids);
//! booleans true (masks keep everything). A model tract cannot load or run is reported as
//! [`Outcome::Unverifiable`], distinct from a mismatch.

use crate::shapes::InputShapes;
use crate::tensor::DType;
use crate::Analysis;
use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;

/// Exit code of `nsplit verify` when tract cannot run the models.
pub const EXIT_UNVERIFIABLE: u8 = 3;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub input_shapes: InputShapes,
    pub seed: u64,
    pub rtol: f64,
    pub atol: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            input_shapes: InputShapes::default(),
            seed: 0,
            rtol: 1e-4,
            atol: 1e-5,
        }
    }
}

/// How one output of head-then-tail compares with the original's.
#[derive(Clone, Debug, Serialize)]
pub struct OutputDiff {
    pub name: String,
    pub elements: usize,
    pub max_abs: f64,
    pub max_rel: f64,
    /// Every element within `atol + rtol * |original|` (and shapes equal).
    pub ok: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// Compared every original output.
    Compared(Vec<OutputDiff>),
    /// tract could not run a model; the reason.
    Unverifiable(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Compared(d) if d.iter().all(|d| d.ok))
    }

    /// One line per output, for people.
    pub fn to_text(&self) -> String {
        match self {
            Outcome::Unverifiable(why) => format!("unverified: {why}\n"),
            Outcome::Compared(diffs) => {
                let mut out = String::new();
                for d in diffs {
                    out += &format!(
                        "{}  {}  max abs {:.3e}  max rel {:.3e}  ({} elements)\n",
                        if d.ok { "ok      " } else { "MISMATCH" },
                        d.name,
                        d.max_abs,
                        d.max_rel,
                        d.elements
                    );
                }
                out
            }
        }
    }
}

/// Run `original`, and `head` then `tail` (either may be absent for all-cloud / all-mobile), and
/// compare. Errors are problems with the inputs themselves (unreadable model, bad shapes).
pub fn verify(
    original: &Path,
    head: Option<&Path>,
    tail: Option<&Path>,
    opts: &VerifyOptions,
) -> Result<Outcome> {
    let analysis = Analysis::run(original, &opts.input_shapes)?;
    Ok(match Reference::new(&analysis, opts)? {
        Ok(reference) => reference.check(head, tail, opts)?,
        Err(why) => Outcome::Unverifiable(why),
    })
}

/// The original's inputs and outputs, computed once and compared with any number of pairs.
pub struct Reference {
    pub inputs: HashMap<String, Tensor>,
    pub expected: HashMap<String, Tensor>,
}

impl Reference {
    /// Run the original on seeded random inputs; `Ok(Err(why))` when tract cannot run it.
    pub fn new(
        analysis: &Analysis,
        opts: &VerifyOptions,
    ) -> Result<std::result::Result<Reference, String>> {
        let inputs = random_inputs(analysis, opts.seed)?;
        let original = &analysis.model.path;
        Ok(match run_model(original, &inputs) {
            Ok(mut expected) => {
                expected.retain(|name, _| analysis.graph.tensor_id(name).is_some());
                Ok(Reference { inputs, expected })
            }
            Err(e) => Err(format!("tract cannot run {}: {e:#}", original.display())),
        })
    }

    /// Run head then tail on the reference inputs and compare every original output.
    pub fn check(
        &self,
        head: Option<&Path>,
        tail: Option<&Path>,
        opts: &VerifyOptions,
    ) -> Result<Outcome> {
        let mut values = self.inputs.clone();
        for half in [head, tail].into_iter().flatten() {
            match run_model(half, &values) {
                Ok(out) => values.extend(out),
                Err(e) => {
                    return Ok(Outcome::Unverifiable(format!(
                        "tract cannot run {}: {e:#}",
                        half.display()
                    )))
                }
            }
        }
        let mut diffs = vec![];
        for (name, want) in &self.expected {
            let got = values
                .get(name)
                .ok_or_else(|| anyhow!("no half computes the original output `{name}`"))?;
            diffs.push(compare(name, want, got, opts)?);
        }
        diffs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Outcome::Compared(diffs))
    }
}

/// Seeded random values for the original model's inputs, at their analysed shapes.
pub fn random_inputs(a: &Analysis, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for &t in &a.graph.inputs {
        let name = &a.graph.tensor(t).name;
        let info = a.shapes.get(t);
        let dims: Vec<usize> = info
            .concrete_dims()
            .ok_or_else(|| {
                anyhow!("input `{name}` has no concrete shape; give one with --input-shape")
            })?
            .iter()
            .map(|&d| d as usize)
            .collect();
        let n: usize = dims.iter().product();
        let dtype = info
            .dtype
            .ok_or_else(|| anyhow!("input `{name}` has no element type"))?;
        let ints = |rng: &mut ChaCha8Rng| {
            (0..n)
                .map(|_| rng.random_range(0..2i64))
                .collect::<Vec<i64>>()
        };
        let tensor = match dtype {
            DType::FLOAT => Tensor::from_shape(
                &dims,
                &(0..n)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect::<Vec<_>>(),
            )?,
            DType::DOUBLE => Tensor::from_shape(
                &dims,
                &(0..n)
                    .map(|_| rng.random_range(-1.0f64..1.0))
                    .collect::<Vec<_>>(),
            )?,
            DType::FLOAT16 => Tensor::from_shape(
                &dims,
                &(0..n)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect::<Vec<_>>(),
            )?
            .cast_to::<f16>()?
            .into_owned(),
            DType::BOOL => Tensor::from_shape(&dims, &vec![true; n])?,
            DType::INT64 => Tensor::from_shape(&dims, &ints(&mut rng))?,
            DType::INT32 => Tensor::from_shape(
                &dims,
                &ints(&mut rng).iter().map(|&v| v as i32).collect::<Vec<_>>(),
            )?,
            DType::INT8 => Tensor::from_shape(
                &dims,
                &ints(&mut rng).iter().map(|&v| v as i8).collect::<Vec<_>>(),
            )?,
            DType::UINT8 => Tensor::from_shape(
                &dims,
                &ints(&mut rng).iter().map(|&v| v as u8).collect::<Vec<_>>(),
            )?,
            other => anyhow::bail!("input `{name}`: cannot make random values of type {other}"),
        };
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}

/// Run one model with tract, feeding the inputs it declares from `values` by name.
pub fn run_model(path: &Path, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let path = path.to_path_buf();
    let values = values.clone();
    // tract can panic on models it does not support; that is "cannot run", not a crash.
    crate::guard::contain(move || -> Result<HashMap<String, Tensor>> {
        let mut model = tract_onnx::onnx().model_for_path(&path)?;
        let input_names: Vec<String> = model
            .input_outlets()?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let mut feed = tvec![];
        for (ix, name) in input_names.iter().enumerate() {
            let v = values
                .get(name)
                .ok_or_else(|| anyhow!("no value for input `{name}`"))?;
            model.set_input_fact(ix, InferenceFact::dt_shape(v.datum_type(), v.shape()))?;
            feed.push(v.clone().into_tvalue());
        }
        let output_names: Vec<String> = model
            .output_outlets()?
            .iter()
            .map(|&o| {
                model
                    .outlet_label(o)
                    .map(String::from)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let plan = model.into_optimized()?.into_runnable()?;
        let outputs = plan.run(feed)?;
        Ok(output_names
            .into_iter()
            .zip(outputs.into_iter().map(|v| v.into_tensor()))
            .collect())
    })
    .unwrap_or_else(|panic| Err(anyhow!("tract panicked: {panic}")))
}

fn compare(name: &str, want: &Tensor, got: &Tensor, opts: &VerifyOptions) -> Result<OutputDiff> {
    let elements = want.len();
    if want.shape() != got.shape() {
        return Ok(OutputDiff {
            name: name.into(),
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
    let (mut max_abs, mut max_rel, mut ok) = (0f64, 0f64, true);
    for (a, b) in w.iter().zip(g.iter()) {
        if a.is_nan() && b.is_nan() || a == b {
            continue;
        }
        let diff = (a - b).abs();
        max_abs = max_abs.max(diff);
        max_rel = max_rel.max(diff / a.abs().max(f64::MIN_POSITIVE));
        ok &= diff <= opts.atol + opts.rtol * a.abs();
    }
    Ok(OutputDiff {
        name: name.into(),
        elements,
        max_abs,
        max_rel,
        ok,
    })
}
