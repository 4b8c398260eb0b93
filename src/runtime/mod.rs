//! Running models: onnxruntime (what inference servers run) and tract, behind one interface,
//! for the stages that run models (the profiler and `--measure`, verification, `nsplit run`).
//!
//! - [`tract`]: load, plan for the inputs' sizes, run, time (whole runs or per node);
//! - [`onnxruntime`]: the same through the `ort` crate, loaded at run time;
//! - [`random_inputs`]: seeded values for a model's inputs, and [`SampleInputs`]: real ones;
//! - [`npy`]: tensors in NumPy files (`.npy`, `.npz`);
//! - [`datatype`]: one element type under ONNX's, Triton's, the protocol's and NumPy's names.

pub mod datatype;
pub mod npy;
pub mod onnxruntime;
mod samples;
pub mod tract;

pub use samples::SampleInputs;

use crate::graph::ModelGraph;
use crate::setting::Setting;
use crate::shapes::{InputShapes, ShapeTable};
use crate::tensor::DType;
use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;

/// Which runtime checks the halves (`--verifier`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Verifier {
    /// onnxruntime where it is installed and runs the model, else tract.
    #[default]
    Auto,
    /// onnxruntime only (`$ORT_DYLIB_PATH`, or the Python onnxruntime package).
    Onnxruntime,
    /// tract only.
    Tract,
}

/// A runtime that ran a check.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Onnxruntime,
    Tract,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Onnxruntime => "onnxruntime",
            Runtime::Tract => "tract",
        }
    }

    /// The runtime and its version as a profile records them: `tract-onnx 0.23`,
    /// `onnxruntime 1.22.0` (the loaded library's), with how it runs a model here (one thread,
    /// every optimisation).
    pub fn describe(self) -> String {
        match self {
            Runtime::Tract => format!("{} (1 thread, optimised)", tract::VERSION),
            Runtime::Onnxruntime => format!(
                "onnxruntime {} (CPU, 1 thread, every graph optimisation)",
                onnxruntime::version().unwrap_or_else(|| "of unknown version".into())
            ),
        }
    }

    /// Where this runtime can run models here: onnxruntime only where its library loads.
    pub fn ensure_available(self) -> Result<()> {
        match self {
            Runtime::Onnxruntime => onnxruntime::available()
                .map(|_| ())
                .map_err(|why| anyhow!("onnxruntime is not available: {why}")),
            Runtime::Tract => Ok(()),
        }
    }

    /// Run one model, feeding the inputs it declares from `values` by name.
    pub fn run(
        self,
        path: &Path,
        values: &HashMap<String, Tensor>,
    ) -> Result<HashMap<String, Tensor>> {
        match self {
            Runtime::Onnxruntime => onnxruntime::run(path, values),
            Runtime::Tract => tract::run(path, values),
        }
    }

    /// Load one model to run it many times, optimised as an app would run it (a check runs
    /// each model once and skips the optimisation passes).
    pub fn load(self, path: &Path) -> Result<LoadedModel> {
        Ok(match self {
            Runtime::Onnxruntime => {
                LoadedModel::Onnxruntime(onnxruntime::load(path, Optimise::Fully)?)
            }
            Runtime::Tract => LoadedModel::Tract(Box::new(tract::load(path, Optimise::Fully)?)),
        })
    }

    /// Load one model to run it at a few sizes, as a check does (little optimisation).
    pub fn load_for_check(self, path: &Path) -> Result<LoadedModel> {
        Ok(match self {
            Runtime::Onnxruntime => {
                LoadedModel::Onnxruntime(onnxruntime::load(path, Optimise::ForOneRun)?)
            }
            Runtime::Tract => LoadedModel::Tract(Box::new(tract::load(path, Optimise::ForOneRun)?)),
        })
    }

    /// The runtime `verifier` picks: onnxruntime where it is available, else tract.
    pub fn pick(verifier: Verifier) -> Result<Runtime> {
        let (usable, problems) = Runtime::candidates(verifier);
        usable
            .first()
            .copied()
            .ok_or_else(|| anyhow!("{}", problems.join("; ")))
    }

    /// The runtimes `verifier` tries, in order, with why each unavailable one is left out.
    pub(crate) fn candidates(verifier: Verifier) -> (Vec<Runtime>, Vec<String>) {
        let wanted = match verifier {
            Verifier::Auto => vec![Runtime::Onnxruntime, Runtime::Tract],
            Verifier::Onnxruntime => vec![Runtime::Onnxruntime],
            Verifier::Tract => vec![Runtime::Tract],
        };
        let mut problems = vec![];
        let usable = wanted
            .into_iter()
            .filter(|r| match r {
                Runtime::Onnxruntime => onnxruntime::available()
                    .map_err(|why| problems.push(format!("onnxruntime is not available: {why}")))
                    .is_ok(),
                Runtime::Tract => true,
            })
            .collect();
        (usable, problems)
    }
}

/// How much a runtime optimises a model before running it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Optimise {
    /// Little: a check runs each model once (tract typed; onnxruntime's basic level).
    ForOneRun,
    /// Everything the runtime does (tract's optimiser; onnxruntime's every level).
    Fully,
}

/// A model loaded in a runtime, run as often as wanted.
pub enum LoadedModel {
    Onnxruntime(onnxruntime::Loaded),
    Tract(Box<tract::Loaded>),
}

impl LoadedModel {
    /// Run, feeding the inputs the model declares from `values` by name; every output by name.
    pub fn run(&mut self, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        match self {
            LoadedModel::Onnxruntime(m) => m.run(values),
            LoadedModel::Tract(m) => m.run(values),
        }
    }

    /// Wall time (ms) of each of `runs` runs on `values`, after `warmup` untimed ones.
    pub fn time(
        &mut self,
        values: &HashMap<String, Tensor>,
        warmup: usize,
        runs: usize,
    ) -> Result<Vec<f64>> {
        match self {
            LoadedModel::Onnxruntime(m) => m.time(values, warmup, runs),
            LoadedModel::Tract(m) => m.time(values, warmup, runs),
        }
    }

    /// Each of the runtime's kernels' time in each of `runs` runs on `values` (after one
    /// untimed run), and each run's time (ms).
    pub fn time_per_node(
        &mut self,
        values: &HashMap<String, Tensor>,
        runs: usize,
    ) -> Result<(Vec<NodeTime>, Vec<f64>)> {
        match self {
            LoadedModel::Onnxruntime(m) => m.time_per_node(values, runs),
            LoadedModel::Tract(m) => m.time_per_node(values, runs),
        }
    }

    /// Zeros of every input's declared type and size.
    pub fn zeros(&self) -> Result<HashMap<String, Tensor>> {
        match self {
            LoadedModel::Onnxruntime(m) => m.zeros(),
            LoadedModel::Tract(m) => m.zeros(),
        }
    }

    /// Values for every input at its declared type and size, floats as [`random_inputs`]
    /// makes them (uniform in [-1, 1), seeded), other types zero. Real data has both signs:
    /// onnxruntime's PRelu runs 6x slower on it than on zeros, which take its fast path.
    pub fn random_values(&self, seed: u64) -> Result<HashMap<String, Tensor>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut zeros: Vec<(String, Tensor)> = self.zeros()?.into_iter().collect();
        zeros.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = HashMap::new();
        for (name, t) in zeros {
            let value = uniform_floats(&mut rng, t.shape(), t.datum_type())?.unwrap_or(t);
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// Floats uniform in [-1, 1) of shape `dims` and element type `dt`, drawn from `rng`, as a
/// model's float inputs are fed; `None` (and nothing drawn) for a type that is no float.
fn uniform_floats(rng: &mut ChaCha8Rng, dims: &[usize], dt: DatumType) -> Result<Option<Tensor>> {
    if !matches!(dt, DatumType::F32 | DatumType::F64 | DatumType::F16) {
        return Ok(None);
    }
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let t = Tensor::from_shape(dims, &values)?;
    Ok(Some(match dt {
        DatumType::F64 => t.cast_to::<f64>()?.into_owned(),
        DatumType::F16 => t.cast_to::<f16>()?.into_owned(),
        _ => t,
    }))
}

/// One kernel a runtime ran and its time in each timed run.
pub struct NodeTime {
    /// The runtime's name for it: the ONNX node's name; in tract, it followed by `.` and a
    /// suffix for a piece an op was lowered to; in onnxruntime, a name of its own for a node its
    /// optimiser made (`<output>_nchwc`, `ReorderInput`).
    pub name: String,
    /// The runtime's op (`Conv`, `OptMatMul`, `FusedConv`, ...).
    pub op: String,
    pub ms: Vec<f64>,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Seeded random values for a model's inputs, at `sizes` where it names the input, else at the
/// analysed shapes: floats uniform in [-1, 1), integers in {0, 1} (a safe range for indices and
/// ids), booleans true (masks keep everything).
pub fn random_inputs(
    graph: &ModelGraph,
    shapes: &ShapeTable,
    sizes: Option<&InputShapes>,
    seed: u64,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for &t in &graph.inputs {
        let name = &graph.tensor(t).name;
        let info = shapes.get(t);
        let dims: Vec<usize> = sizes
            .and_then(|s| s.0.get(name).cloned())
            .or_else(|| info.concrete_dims())
            .ok_or_else(|| {
                anyhow!(
                    "input `{name}` has no concrete shape; give one with {}",
                    Setting::InputShape
                )
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
        let floats = |rng: &mut ChaCha8Rng, dt| -> Result<Tensor> {
            Ok(uniform_floats(rng, &dims, dt)?.expect("a float type"))
        };
        let tensor = match dtype {
            DType::FLOAT => floats(&mut rng, DatumType::F32)?,
            DType::DOUBLE => floats(&mut rng, DatumType::F64)?,
            DType::FLOAT16 => floats(&mut rng, DatumType::F16)?,
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
