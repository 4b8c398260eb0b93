//! Running models in onnxruntime, what inference servers run, through the `ort` crate.
//!
//! The library is loaded at run time (`load-dynamic`): nothing is downloaded or linked at build
//! time, and nsplit builds and runs without it. It is found at `$ORT_DYLIB_PATH`, else inside
//! the Python `onnxruntime` package of `$NSPLIT_PYTHON`, `$VIRTUAL_ENV/bin/python` or `python3`
//! (`onnxruntime/capi/libonnxruntime.so.*`). One library is loaded per process; sessions run on
//! one thread with basic graph optimisations, and onnxruntime's own log is silenced (failures
//! come back as errors).

use anyhow::{anyhow, bail, Context, Result};
use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynTensorValueType, DynValue, TensorElementType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
pub struct Loaded(Session);

/// Load the model at `path` into a session.
pub fn load(path: &Path, optimise: super::Optimise) -> Result<Loaded> {
    // Calling into ort before a successful load panics: load (once) first.
    available().map_err(|why| anyhow!("onnxruntime is not available: {why}"))?;
    let env = match RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(Ok(l)) => l.env.clone(),
        _ => bail!("onnxruntime is not available"),
    };
    let build = || -> ort::Result<Session> {
        Session::builder(&env)?
            .with_intra_threads(1)?
            .with_optimization_level(match optimise {
                super::Optimise::ForOneRun => GraphOptimizationLevel::Level1,
                super::Optimise::Fully => GraphOptimizationLevel::All,
            })?
            .with_log_level(LogLevel::Fatal)?
            .commit_from_file(path)
    };
    Ok(Loaded(build().map_err(|e| anyhow!("{e}"))?))
}

impl Loaded {
    /// Run, feeding the inputs the model declares from `values` by name; every output by name.
    pub fn run(&mut self, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        let session = &mut self.0;
        let mut feed: Vec<(String, DynValue)> = vec![];
        for input in session.inputs() {
            let name = input.name();
            let v = values
                .get(name)
                .ok_or_else(|| anyhow!("no value for input `{name}`"))?;
            feed.push((
                name.to_string(),
                to_value(v).with_context(|| format!("input `{name}`"))?,
            ));
        }
        let outputs = session.run(feed).map_err(|e| anyhow!("{e}"))?;
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
