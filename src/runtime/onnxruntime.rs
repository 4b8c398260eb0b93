//! Running models in onnxruntime, what inference servers run, through the `ort` crate.
//!
//! The library is loaded at run time (`load-dynamic`): nothing is downloaded or linked at build
//! time, and nsplit builds and runs without it. It is found at `$ORT_DYLIB_PATH`, else inside
//! the Python `onnxruntime` package of `$NSPLIT_PYTHON`, `$VIRTUAL_ENV/bin/python` or `python3`
//! (`onnxruntime/capi/libonnxruntime.so.*`). One library is loaded per process; sessions run on
//! one thread, with basic graph optimisations for a check and every optimisation for a timing
//! (as servers run it), and onnxruntime's own log is silenced (failures come back as errors).
//! Per-kernel times come from onnxruntime's own profiler ([`Loaded::time_per_node`]).

use anyhow::{anyhow, bail, Context, Result};
use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynTensorValueType, DynValue, TensorElementType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use tract_onnx::prelude::{DatumType, Tensor};

/// The loaded library, or why it could not be loaded; decided once per process.
static RUNTIME: Mutex<Option<std::result::Result<Library, String>>> = Mutex::new(None);

struct Library {
    /// Kept alive: onnxruntime allows one environment per process, ever.
    env: Environment,
    library: PathBuf,
}

/// The library onnxruntime was loaded from, or why it is not available. Loads it on first use.
pub fn available() -> std::result::Result<PathBuf, String> {
    let mut rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let loaded = rt.get_or_insert_with(|| load_library().map_err(|e| format!("{e:#}")));
    match loaded {
        Ok(l) => Ok(l.library.clone()),
        Err(why) => Err(why.clone()),
    }
}

fn load_library() -> Result<Library> {
    let library = find_library()?;
    let builder = ort::init_from(&library).map_err(|e| {
        // The loader's own text (dlerror) sits in the error's source.
        let detail = match &e {
            ort::LoadDynamicError::Dlopen { error, .. } => std::error::Error::source(error)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        anyhow!(
            "cannot load onnxruntime from {}: {e}{detail}",
            library.display()
        )
    })?;
    let env = builder
        .with_name("nsplit")
        .with_telemetry(false)
        .build()
        .map_err(|e| anyhow!("cannot start onnxruntime: {e}"))?;
    if std::env::var_os("ORT_LOG").is_none() {
        env.set_log_level(LogLevel::Fatal);
    }
    Ok(Library { env, library })
}

/// `$ORT_DYLIB_PATH`, else `capi/libonnxruntime.so*` of the Python onnxruntime package.
fn find_library() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // Absolute: ort resolves a relative path against the executable's folder.
        return p
            .canonicalize()
            .with_context(|| format!("ORT_DYLIB_PATH={} is not a file", p.display()));
    }
    let python = std::env::var("NSPLIT_PYTHON")
        .ok()
        .or_else(|| {
            let venv = PathBuf::from(std::env::var_os("VIRTUAL_ENV")?).join("bin/python");
            venv.exists().then(|| venv.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "python3".into());
    // find_spec locates the package without importing it.
    let script = "import importlib.util as u; s = u.find_spec('onnxruntime'); \
                  print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| {
            format!("cannot run `{python}` to find onnxruntime; set ORT_DYLIB_PATH")
        })?;
    let package = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || package.is_empty() {
        bail!("`{python}` has no onnxruntime package (pip install onnxruntime, or set ORT_DYLIB_PATH)");
    }
    let capi = Path::new(&package).join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .with_context(|| format!("cannot list {}", capi.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("libonnxruntime.so")
                || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
                || n == "onnxruntime.dll"
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no libonnxruntime in {}", capi.display()))
}

/// A model loaded in an onnxruntime session.
pub struct Loaded {
    session: Session,
    path: PathBuf,
    optimise: super::Optimise,
}

/// A session builder as every session here is made: one thread (as tract runs, and as a
/// profile times a kernel), onnxruntime's own log silenced.
fn session(optimise: super::Optimise, profile_to: Option<&Path>, path: &Path) -> Result<Session> {
    // Calling into ort before a successful load panics: load (once) first.
    available().map_err(|why| anyhow!("onnxruntime is not available: {why}"))?;
    let env = match RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(Ok(l)) => l.env.clone(),
        _ => bail!("onnxruntime is not available"),
    };
    let build = || -> ort::Result<Session> {
        let mut builder = Session::builder(&env)?
            .with_intra_threads(1)?
            .with_inter_threads(1)?
            .with_optimization_level(match optimise {
                super::Optimise::ForOneRun => GraphOptimizationLevel::Level1,
                super::Optimise::Fully => GraphOptimizationLevel::All,
            })?
            .with_log_level(LogLevel::Fatal)?;
        if let Some(prefix) = profile_to {
            builder = builder.with_profiling(prefix)?;
        }
        builder.commit_from_file(path)
    };
    build().map_err(|e| anyhow!("{e}"))
}

/// Load the model at `path` into a session.
pub fn load(path: &Path, optimise: super::Optimise) -> Result<Loaded> {
    Ok(Loaded {
        session: session(optimise, None, path)?,
        path: path.to_path_buf(),
        optimise,
    })
}

/// The version of the loaded library (`1.22.0`), from its file name
/// (`libonnxruntime.so.1.22.0`); `None` where the name does not carry it.
pub fn version() -> Option<String> {
    let library = available().ok()?;
    let name = library.file_name()?.to_str()?;
    let v = name
        .strip_prefix("libonnxruntime.so.")
        .or_else(|| name.strip_prefix("libonnxruntime.")?.strip_suffix(".dylib"))?;
    v.split('.')
        .all(|p| p.parse::<u32>().is_ok())
        .then(|| v.to_string())
}

impl Loaded {
    /// Run, feeding the inputs the model declares from `values` by name; every output by name.
    pub fn run(&mut self, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        let inputs = feed(&self.session, values)?;
        let outputs = self.session.run(inputs).map_err(|e| anyhow!("{e}"))?;
        let mut out = HashMap::new();
        for (name, value) in outputs.iter() {
            // A sequence or map (a classifier's per-class probabilities in ai.onnx.ml) has no
            // tensor to hand on or compare: it is left out, and the caller sees it missing.
            if !matches!(value.dtype(), ort::value::ValueType::Tensor { .. }) {
                continue;
            }
            out.insert(
                name.to_string(),
                from_value(&value).with_context(|| format!("output `{name}`"))?,
            );
        }
        Ok(out)
    }

    /// Wall time (ms) of each of `runs` runs on `values`, after `warmup` untimed ones. The
    /// values are converted once, before the runs, as an app hands a runtime its buffers.
    pub fn time(
        &mut self,
        values: &HashMap<String, Tensor>,
        warmup: usize,
        runs: usize,
    ) -> Result<Vec<f64>> {
        let inputs = feed(&self.session, values)?;
        let mut one = || -> Result<f64> {
            let t = Instant::now();
            let inputs: Vec<(&str, &DynValue)> =
                inputs.iter().map(|(n, v)| (n.as_str(), v)).collect();
            self.session.run(inputs).map_err(|e| anyhow!("{e}"))?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        for _ in 0..warmup {
            one()?;
        }
        (0..runs).map(|_| one()).collect()
    }

    /// Each kernel's time in each of `runs` runs on `values` (after one untimed run), from
    /// onnxruntime's own profiler, and the time of each of `runs` runs without it (ms). A kernel is named as onnxruntime
    /// names its node: the ONNX node's name, or for a node its optimiser made, a name of its
    /// own (`<output>_nchwc` for a conv in the blocked layout, `ReorderInput` for a layout
    /// change). A session with profiling on is made for the purpose and dropped after.
    pub fn time_per_node(
        &mut self,
        values: &HashMap<String, Tensor>,
        runs: usize,
    ) -> Result<(Vec<super::NodeTime>, Vec<f64>)> {
        let dir = tempfile::tempdir()?;
        let mut session = session(self.optimise, Some(&dir.path().join("ort")), &self.path)?;
        let inputs = feed(&session, values)?;
        for _ in 0..=runs {
            let inputs: Vec<(&str, &DynValue)> =
                inputs.iter().map(|(n, v)| (n.as_str(), v)).collect();
            session.run(inputs).map_err(|e| anyhow!("{e}"))?;
        }
        let file = session.end_profiling().map_err(|e| anyhow!("{e}"))?;
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading onnxruntime's profile {file}"))?;
        let events: Vec<ProfileEvent> = serde_json::from_str(&text)
            .with_context(|| format!("onnxruntime's profile {file} is not its usual JSON"))?;
        let (mut nodes, _) = per_run(&events);
        // The first run is the warm-up.
        for n in &mut nodes {
            n.ms.remove(0);
        }
        // The runs' own times without the profiler, whose bookkeeping around every kernel
        // would count in them.
        let totals = self.time(values, 1, runs)?;
        Ok((nodes, totals))
    }

    /// Zeros of every input's declared type and size; an error names an input that is not
    /// fully declared.
    pub fn zeros(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for input in self.session.inputs() {
            let name = input.name();
            let ort::value::ValueType::Tensor { ty, shape, .. } = input.dtype() else {
                bail!("input `{name}` is not a tensor");
            };
            let dims: Vec<usize> = shape
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect::<Option<_>>()
                .with_context(|| format!("input `{name}` has no concrete shape"))?;
            out.insert(name.to_string(), Tensor::zero_dt(datum_type(*ty)?, &dims)?);
        }
        Ok(out)
    }
}

/// The inputs `session` declares, from `values` by name, as onnxruntime values.
fn feed(session: &Session, values: &HashMap<String, Tensor>) -> Result<Vec<(String, DynValue)>> {
    session
        .inputs()
        .iter()
        .map(|input| {
            let name = input.name();
            let v = values
                .get(name)
                .ok_or_else(|| anyhow!("no value for input `{name}`"))?;
            Ok((
                name.to_string(),
                to_value(v).with_context(|| format!("input `{name}`"))?,
            ))
        })
        .collect()
}

/// One event of onnxruntime's profile (Chrome's trace format): a kernel's run
/// (`cat: "Node"`, `name: "<node>_kernel_time"`) or a session's step (`cat: "Session"`,
/// `name: "model_run"` once a run), `dur` in microseconds.
#[derive(serde::Deserialize)]
struct ProfileEvent {
    cat: String,
    name: String,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    args: ProfileArgs,
}

#[derive(serde::Deserialize, Default)]
struct ProfileArgs {
    #[serde(default)]
    op_name: String,
}

/// Each kernel's time in each run, and each run's time (ms), in the order the runs were
/// recorded: a run's kernels come before its `model_run` event.
fn per_run(events: &[ProfileEvent]) -> (Vec<super::NodeTime>, Vec<f64>) {
    let mut nodes: Vec<super::NodeTime> = vec![];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut this_run: HashMap<usize, f64> = HashMap::new();
    let mut totals = vec![];
    for e in events {
        if e.cat == "Session" && e.name == "model_run" {
            for (i, n) in nodes.iter_mut().enumerate() {
                n.ms.push(this_run.get(&i).copied().unwrap_or(0.0));
            }
            this_run.clear();
            totals.push(e.dur / 1e3);
        } else if let Some(name) = e
            .name
            .strip_suffix("_kernel_time")
            .filter(|_| e.cat == "Node")
        {
            let i = *index.entry(name.to_string()).or_insert_with(|| {
                nodes.push(super::NodeTime {
                    name: name.to_string(),
                    op: e.args.op_name.clone(),
                    // A kernel first seen in a later run ran in none before it.
                    ms: vec![0.0; totals.len()],
                });
                nodes.len() - 1
            });
            *this_run.entry(i).or_default() += e.dur / 1e3;
        }
    }
    (nodes, totals)
}

/// Run the model at `path`, feeding the inputs it declares from `values` by name; every output
/// by name.
pub fn run(path: &Path, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    load(path, super::Optimise::ForOneRun)?.run(values)
}

fn element_type(dt: DatumType) -> Result<TensorElementType> {
    use TensorElementType as T;
    Ok(match dt {
        DatumType::F32 => T::Float32,
        DatumType::F64 => T::Float64,
        DatumType::F16 => T::Float16,
        DatumType::I8 => T::Int8,
        DatumType::I16 => T::Int16,
        DatumType::I32 => T::Int32,
        DatumType::I64 => T::Int64,
        DatumType::U8 => T::Uint8,
        DatumType::U16 => T::Uint16,
        DatumType::U32 => T::Uint32,
        DatumType::U64 => T::Uint64,
        DatumType::Bool => T::Bool,
        other => bail!("onnxruntime is not fed {other:?} tensors here"),
    })
}

fn datum_type(t: TensorElementType) -> Result<DatumType> {
    use TensorElementType as T;
    Ok(match t {
        T::Float32 => DatumType::F32,
        T::Float64 => DatumType::F64,
        T::Float16 => DatumType::F16,
        T::Int8 => DatumType::I8,
        T::Int16 => DatumType::I16,
        T::Int32 => DatumType::I32,
        T::Int64 => DatumType::I64,
        T::Uint8 => DatumType::U8,
        T::Uint16 => DatumType::U16,
        T::Uint32 => DatumType::U32,
        T::Uint64 => DatumType::U64,
        T::Bool => DatumType::Bool,
        other => bail!("cannot compare {other} tensors"),
    })
}

/// A tract tensor as an onnxruntime value: an onnxruntime-owned tensor of the same element
/// type and shape, its bytes copied in (both sides are little-endian, bool one byte).
fn to_value(t: &Tensor) -> Result<DynValue> {
    let ty = element_type(t.datum_type())?;
    let allocator = ort::memory::Allocator::default();
    let mut v = ort::value::DynTensor::new(&allocator, ty, t.shape().to_vec())?;
    let bytes = t.as_bytes();
    if !bytes.is_empty() {
        let dst = v.data_ptr_mut().cast::<u8>();
        // SAFETY: `v` was allocated for exactly this element type and shape, so it holds
        // `bytes.len()` bytes, and the two buffers are distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }
    Ok(v.into_dyn())
}

/// An onnxruntime output as a tract tensor.
fn from_value(v: &DynValue) -> Result<Tensor> {
    let ort::value::ValueType::Tensor { ty, shape, .. } = v.dtype() else {
        bail!("not a tensor but {}", v.dtype());
    };
    let dt = datum_type(*ty)?;
    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let mut t = Tensor::zero_dt(dt, &shape)?;
    let len = t.as_bytes().len();
    if len > 0 {
        let view = v.view().downcast::<DynTensorValueType>()?;
        let src = view.data_ptr().cast::<u8>();
        if src.is_null() {
            bail!("onnxruntime returned no data");
        }
        // SAFETY: the value is a CPU tensor of this element type and shape, so it holds `len`
        // bytes; `t` was just allocated with the same length.
        let src = unsafe { std::slice::from_raw_parts(src, len) };
        t.as_bytes_mut().copy_from_slice(src);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_events_split_into_runs() {
        // As onnxruntime 1.22 writes them: fences around each kernel, the run's own event after
        // its kernels; a kernel that ran in the second run only.
        let text = r#"[
            {"cat": "Session", "name": "session_initialization", "dur": 5673},
            {"cat": "Node", "name": "conv_out_nchwc_fence_before", "dur": 0, "args": {"op_name": "Conv"}},
            {"cat": "Node", "name": "conv_out_nchwc_kernel_time", "dur": 126, "args": {"op_name": "Conv"}},
            {"cat": "Node", "name": "fc_kernel_time", "dur": 11, "args": {"op_name": "Gemm"}},
            {"cat": "Session", "name": "model_run", "dur": 460},
            {"cat": "Node", "name": "conv_out_nchwc_kernel_time", "dur": 54, "args": {"op_name": "Conv"}},
            {"cat": "Node", "name": "ReorderOutput_kernel_time", "dur": 3, "args": {"op_name": "ReorderOutput"}},
            {"cat": "Node", "name": "fc_kernel_time", "dur": 4, "args": {"op_name": "Gemm"}},
            {"cat": "Session", "name": "model_run", "dur": 211}
        ]"#;
        let events: Vec<ProfileEvent> = serde_json::from_str(text).unwrap();
        let (nodes, totals) = per_run(&events);
        assert_eq!(totals, vec![0.46, 0.211]);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["conv_out_nchwc", "fc", "ReorderOutput"]);
        assert_eq!(nodes[0].op, "Conv");
        assert_eq!(nodes[0].ms, vec![0.126, 0.054]);
        assert_eq!(nodes[2].ms, vec![0.0, 0.003]);
    }
}
