//! A Triton model repository of the tails: every cut with a tail becomes a model
//! `<name>/config.pbtxt` + `<name>/1/model.onnx` (its external data beside it), served by
//! Triton's onnxruntime backend, or by its Python backend with a `model.py` that runs the tail
//! in onnxruntime (`--triton-backend python`, for servers without the onnxruntime backend).
//!
//! A tail whose every input and output starts with the same symbolic dimension (a batch `N`
//! the original declares) is batchable: its config has `max_batch_size` and
//! `dynamic_batching`, and its dims leave the batch out, as Triton wants. Any other tail gets
//! `max_batch_size: 0` and its full dims (-1 for a symbolic one).

use crate::output::Staging;
use crate::runtime::datatype::WireType;
use crate::selection::SelectionTable;
use crate::tensor::Dim;
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The Python-backend model: runs `model.onnx` beside it in onnxruntime, batches included.
pub const MODEL_PY: &str = include_str!("model.py");

/// Which Triton backend serves the tails.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum TritonBackend {
    /// `platform: "onnxruntime_onnx"`: Triton's onnxruntime backend (GPU where the server has one).
    #[default]
    Onnxruntime,
    /// Triton's Python backend running `model.py` (onnxruntime in the server's Python).
    Python,
}

/// How the repository's models are configured.
#[derive(Clone, Debug)]
pub struct TritonOptions {
    pub backend: TritonBackend,
    /// `max_batch_size` of a batchable tail; 0 turns batching off.
    pub max_batch_size: u32,
    /// `dynamic_batching.max_queue_delay_microseconds`: how long a request may wait for others.
    pub queue_delay_us: u64,
    /// What the served models are named after (`<name>-<cut id>`); the source model's file stem
    /// when `None`. Two models with one stem (`model.onnx`, as many packages name them) share a
    /// repository under two names.
    pub name: Option<String>,
}

/// `max_batch_size` of a batchable tail when none is given.
pub const DEFAULT_MAX_BATCH: u32 = 8;

impl Default for TritonOptions {
    fn default() -> Self {
        TritonOptions {
            backend: TritonBackend::Onnxruntime,
            max_batch_size: DEFAULT_MAX_BATCH,
            queue_delay_us: 0,
            name: None,
        }
    }
}

/// One input or output of a Triton model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelTensor {
    pub name: String,
    pub wire: WireType,
    /// Without the batch dimension when the model batches; -1 for a dimension of any size.
    pub dims: Vec<i64>,
}

/// A tail as a Triton model.
#[derive(Clone, Debug, PartialEq)]
pub struct TritonModel {
    pub name: String,
    pub inputs: Vec<ModelTensor>,
    pub outputs: Vec<ModelTensor>,
    /// 0 when the model does not batch.
    pub max_batch_size: u32,
}

/// The model name of a cut's tail: `name` (else the source model's file stem) and the cut id,
/// in the characters Triton and URLs take without escaping.
pub fn model_name(source: &str, name: Option<&str>, cut_id: &str) -> String {
    let stem = name.map(String::from).unwrap_or_else(|| {
        Path::new(source)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    format!("{stem}-{cut_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl TritonModel {
    /// Describe the tail ONNX file at `tail` as the Triton model `name`.
    pub fn of_tail(tail: &Path, name: &str, opts: &TritonOptions) -> Result<TritonModel> {
        let shown = tail.display();
        let io = super::HalfIo::read(tail)?;
        let describe =
            |vi: &onnx_protobuf::ValueInfoProto| -> Result<(String, WireType, Vec<Dim>)> {
                let info = crate::shapes::info_from_type(&vi.type_);
                let dtype = info
                    .dtype
                    .with_context(|| format!("{shown}: `{}` has no element type", vi.name))?;
                let wire =
                    WireType::of_onnx(dtype).with_context(|| format!("{shown}: `{}`", vi.name))?;
                let dims = info.dims.with_context(|| {
                    format!(
                        "{shown}: `{}` has no declared shape, which Triton needs",
                        vi.name
                    )
                })?;
                Ok((vi.name.clone(), wire, dims))
            };
        let inputs = io.inputs.iter().map(describe).collect::<Result<Vec<_>>>()?;
        let outputs = io
            .outputs
            .iter()
            .map(describe)
            .collect::<Result<Vec<_>>>()?;
        let batch = batch_symbol(&inputs, &outputs).filter(|_| opts.max_batch_size > 0);
        let tensor = |(name, wire, dims): (String, WireType, Vec<Dim>)| {
            let skip = usize::from(batch.is_some());
            ModelTensor {
                name,
                wire,
                dims: dims[skip..]
                    .iter()
                    .map(|d| match d {
                        Dim::Known(v) => *v as i64,
                        _ => -1,
                    })
                    .collect(),
            }
        };
        Ok(TritonModel {
            name: name.to_string(),
            inputs: inputs.into_iter().map(tensor).collect(),
            outputs: outputs.into_iter().map(tensor).collect(),
            max_batch_size: if batch.is_some() {
                opts.max_batch_size
            } else {
                0
            },
        })
    }

    /// config.pbtxt, in protobuf text format.
    pub fn config_pbtxt(&self, opts: &TritonOptions, origin: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {origin}");
        let _ = writeln!(s, "name: {}", quoted(&self.name));
        match opts.backend {
            TritonBackend::Onnxruntime => {
                let _ = writeln!(s, "platform: \"onnxruntime_onnx\"");
            }
            TritonBackend::Python => {
                let _ = writeln!(s, "backend: \"python\"");
            }
        }
        let _ = writeln!(s, "max_batch_size: {}", self.max_batch_size);
        for (key, tensors) in [("input", &self.inputs), ("output", &self.outputs)] {
            let _ = writeln!(s, "{key} [");
            for (i, t) in tensors.iter().enumerate() {
                let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
                let _ = writeln!(s, "  {{");
                let _ = writeln!(s, "    name: {}", quoted(&t.name));
                let _ = writeln!(s, "    data_type: {}", t.wire.triton);
                if dims.is_empty() {
                    // Triton takes no empty dims: a scalar (per batch item) is [1] reshaped.
                    let _ = writeln!(s, "    dims: [ 1 ]");
                    let _ = writeln!(s, "    reshape: {{ shape: [ ] }}");
                } else {
                    let _ = writeln!(s, "    dims: [ {} ]", dims.join(", "));
                }
                let _ = writeln!(s, "  }}{}", if i + 1 < tensors.len() { "," } else { "" });
            }
            let _ = writeln!(s, "]");
        }
        if self.max_batch_size > 0 {
            let _ = writeln!(s, "dynamic_batching {{");
            let _ = writeln!(s, "  max_queue_delay_microseconds: {}", opts.queue_delay_us);
            let _ = writeln!(s, "}}");
        }
        if opts.backend == TritonBackend::Python {
            // model.py runs onnxruntime on the CPU; one process per instance.
            let _ = writeln!(s, "instance_group [ {{ kind: KIND_CPU, count: 1 }} ]");
        }
        s
    }
}

/// The symbol every input and output starts with, if there is one.
fn batch_symbol(
    inputs: &[(String, WireType, Vec<Dim>)],
    outputs: &[(String, WireType, Vec<Dim>)],
) -> Option<String> {
    let first = |dims: &Vec<Dim>| match dims.first() {
        Some(Dim::Symbol(s)) => Some(s.clone()),
        _ => None,
    };
    let symbol = first(&inputs.first()?.2)?;
    inputs
        .iter()
        .chain(outputs)
        .all(|(_, _, dims)| first(dims).as_deref() == Some(symbol.as_str()))
        .then_some(symbol)
}

/// A model folder already in the repository may be replaced only when nsplit wrote it for the
/// same source model: two models with the same file stem would otherwise replace each other.
fn refuse_foreign(folder: &Path, source: &str) -> Result<()> {
    let config = folder.join("config.pbtxt");
    if !folder.exists() {
        return Ok(());
    }
    let first = std::fs::read_to_string(&config).unwrap_or_default();
    let first = first.lines().next().unwrap_or("");
    if first.starts_with("# Written by nsplit") && first.contains(&format!(" of {source} (sha256"))
    {
        return Ok(());
    }
    bail!(
        "{} already holds a model that nsplit did not write for {source}; remove it, or package into another repository",
        folder.display()
    )
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A tail to package: the cut, and where its ONNX file is now.
pub struct TailFile {
    pub cut_id: String,
    pub path: PathBuf,
}

impl TailFile {
    /// The tails of the table's cuts, each file found where `path_of` says.
    pub fn of_table(table: &SelectionTable, path_of: impl Fn(&str) -> PathBuf) -> Vec<TailFile> {
        table
            .cuts
            .iter()
            .filter_map(|c| {
                c.tail.as_ref().map(|t| TailFile {
                    cut_id: c.id.clone(),
                    path: path_of(t),
                })
            })
            .collect()
    }
}

/// Write a Triton model for each tail into `staging`, under `prefix` (`triton/` inside an
/// output folder, empty for a repository of its own). Returns (cut id, model name) pairs.
pub fn write_repository(
    table: &SelectionTable,
    tails: &[TailFile],
    staging: &mut Staging,
    prefix: &str,
    opts: &TritonOptions,
) -> Result<Vec<(String, String)>> {
    let mut names = vec![];
    for tail in tails {
        let name = model_name(&table.model.path, opts.name.as_deref(), &tail.cut_id);
        let model = TritonModel::of_tail(&tail.path, &name, opts)?;
        let origin = format!(
            "Written by nsplit {}: the tail of cut {} of {} (sha256 {}).",
            env!("CARGO_PKG_VERSION"),
            tail.cut_id,
            table.model.path,
            table.model.sha256
        );
        let folder = format!("{prefix}{name}");
        if prefix.is_empty() {
            // In a repository of its own, other models may live; DIR/triton is all nsplit's.
            refuse_foreign(&staging.target().join(&folder), &table.model.path)?;
        }
        staging.write_text(
            &format!("{folder}/config.pbtxt"),
            &model.config_pbtxt(opts, &origin),
        )?;
        staging.copy_file(&tail.path, &format!("{folder}/1/model.onnx"))?;
        // The data files the tail names (its own `NAME.data`; the whole model's second name
        // reads the first's) keep their names beside model.onnx.
        for data_name in crate::load::Model::load(&tail.path)?.data_files()? {
            let data = tail.path.with_file_name(&data_name);
            staging.copy_file(&data, &format!("{folder}/1/{data_name}"))?;
        }
        if opts.backend == TritonBackend::Python {
            staging.write_text(&format!("{folder}/1/model.py"), MODEL_PY)?;
        }
        names.push((tail.cut_id.clone(), name));
    }
    if names.is_empty() {
        bail!("no cut in the selection table has a tail: everything runs on the phone, and there is nothing to serve");
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_plain() {
        assert_eq!(
            model_name("fixtures/lenet.onnx", None, "h8-fece8d60"),
            "lenet-h8-fece8d60"
        );
        assert_eq!(
            model_name("a b.v2.onnx", None, "all-cloud"),
            "a_b_v2-all-cloud"
        );
        assert_eq!(
            model_name("ocr/det/model.onnx", Some("ocr det"), "h3-0f"),
            "ocr_det-h3-0f"
        );
    }

    #[test]
    fn names_are_quoted_for_protobuf_text() {
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
