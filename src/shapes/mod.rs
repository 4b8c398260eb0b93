//! Stage 3, **shapes**: element type and dimensions of every tensor of the top-level graph.
//!
//! Sources, in order of trust, each filling only what the previous left unknown:
//! 1. graph inputs as declared, with `--input-shape` fixing symbolic dimensions;
//! 2. initializers (their dims are stored);
//! 3. tract-onnx's analysis of the model ([`tract`]);
//! 4. the model's own `value_info` and output declarations, where fully concrete;
//! 5. our ONNX shape rules for common ops ([`rules`]), for what tract cannot analyse
//!    (com.microsoft.*, ai.onnx.ml.*, or a node tract fails on).
//!
//! Whatever is still unknown stays unknown and is reported; it is never guessed.

mod rules;
mod tract;

use crate::graph::{ModelGraph, TensorId};
use crate::load::Model;
use crate::tensor::{DType, Dim, TensorInfo};
use anyhow::{bail, Result};
use onnx_protobuf::{type_proto, TypeProto, ValueInfoProto};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Where a tensor's shape came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeSource {
    /// A graph input's declaration (possibly completed by `--input-shape`).
    Declared,
    Initializer,
    Tract,
    ValueInfo,
    Rule,
    Unknown,
}

/// User-given shapes for graph inputs (`--input-shape NAME=DIMS`).
#[derive(Clone, Debug, Default)]
pub struct InputShapes(pub BTreeMap<String, Vec<u64>>);

impl InputShapes {
    /// Parse `NAME=1x3x224x224` items.
    pub fn parse(items: &[String]) -> Result<InputShapes> {
        let mut map = BTreeMap::new();
        for item in items {
            let Some((name, dims)) = item.rsplit_once('=') else {
                bail!("--input-shape `{item}` must be NAME=DIMS, e.g. input=1x3x224x224");
            };
            let dims = crate::tensor::parse_dims(dims)
                .map_err(|e| anyhow::anyhow!("--input-shape {name}: {e}"))?;
            map.insert(name.to_string(), dims);
        }
        Ok(InputShapes(map))
    }
}

/// Per-tensor type and shape, indexed by [`TensorId`].
#[derive(Clone, Debug)]
pub struct ShapeTable {
    pub info: Vec<TensorInfo>,
    pub source: Vec<ShapeSource>,
    /// Why tract's analysis could not be used in full, if it could not.
    pub tract_problem: Option<String>,
    /// Tensors where our ONNX rules overruled tract's answer, described.
    pub conflicts: Vec<String>,
}

impl ShapeTable {
    pub fn get(&self, t: TensorId) -> &TensorInfo {
        &self.info[t.0]
    }

    /// Tensors whose dtype or shape is not fully known.
    pub fn unknown(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.info
            .iter()
            .enumerate()
            .filter(|(_, i)| !i.is_complete())
            .map(|(k, _)| TensorId(k))
    }
}

/// Which inference sources to consult beyond declarations and initializers. All on by default;
/// turning some off lets tests check each source alone.
#[derive(Copy, Clone, Debug)]
pub struct Sources {
    pub tract: bool,
    pub value_info: bool,
    pub rules: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            tract: true,
            value_info: true,
            rules: true,
        }
    }
}

/// Infer every tensor's type and shape.
pub fn infer(model: &Model, graph: &ModelGraph, given: &InputShapes) -> Result<ShapeTable> {
    infer_from(model, graph, given, Sources::default())
}

/// Infer every tensor's type and shape from the chosen sources.
pub fn infer_from(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
    sources: Sources,
) -> Result<ShapeTable> {
    let n = graph.tensors.len();
    let mut table = ShapeTable {
        info: vec![TensorInfo::default(); n],
        source: vec![ShapeSource::Unknown; n],
        tract_problem: None,
        conflicts: vec![],
    };
    let g = model.graph();

    let inputs = resolve_inputs(model, graph, given)?;
    for (&t, info) in &inputs {
        table.set(t, info.clone(), ShapeSource::Declared);
    }
    for init in &g.initializer {
        if let Some(t) = graph.tensor_id(&init.name) {
            let dims = init.dims.iter().map(|&d| d.max(0) as u64).collect();
            table.set(
                t,
                TensorInfo::new(DType(init.data_type), dims),
                ShapeSource::Initializer,
            );
        }
    }
    for sparse in &g.sparse_initializer {
        if let (Some(v), true) = (sparse.values.as_ref(), !sparse.dims.is_empty()) {
            if let Some(t) = graph.tensor_id(&v.name) {
                let dims = sparse.dims.iter().map(|&d| d.max(0) as u64).collect();
                table.set(
                    t,
                    TensorInfo::new(DType(v.data_type), dims),
                    ShapeSource::Initializer,
                );
            }
        }
    }

    if sources.tract {
        match tract::analyse(model, graph, &inputs) {
            Ok(found) => {
                let tainted = after_control_flow(graph);
                for (t, info) in found.facts.into_iter().filter(|(t, _)| !tainted[t.0]) {
                    table.merge(t, info, ShapeSource::Tract);
                }
                table.tract_problem = found.problem;
            }
            Err(e) => table.tract_problem = Some(format!("{e:#}")),
        }
    }

    let declared: Vec<&ValueInfoProto> = g.value_info.iter().chain(&g.output).collect();
    if sources.value_info {
        for vi in &declared {
            if let Some(t) = graph.tensor_id(&vi.name) {
                table.merge(t, info_from_type(&vi.type_), ShapeSource::ValueInfo);
            }
        }
    }

    if sources.rules {
        rules::apply(model, graph, &mut table);
    }

    Ok(table)
}

impl ShapeTable {
    fn set(&mut self, t: TensorId, info: TensorInfo, source: ShapeSource) {
        self.info[t.0] = info;
        self.source[t.0] = source;
    }

    /// Learn from `info` while the tensor is not complete: a complete `info` replaces what is
    /// known (and records `source`); a partial one only fills a missing dtype or a missing or less
    /// specific shape. Returns whether anything changed.
    pub(crate) fn merge(&mut self, t: TensorId, info: TensorInfo, source: ShapeSource) -> bool {
        let current = &mut self.info[t.0];
        if current.is_complete() {
            return false;
        }
        if info.is_complete() {
            self.set(t, info, source);
            return true;
        }
        let mut changed = false;
        if current.dtype.is_none() && info.dtype.is_some() {
            current.dtype = info.dtype;
            changed = true;
        }
        let known = |d: &Option<Vec<Dim>>| {
            d.as_ref().map_or(0, |d| {
                1 + d.iter().filter(|x| matches!(x, Dim::Known(_))).count()
            })
        };
        if known(&info.dims) > known(&current.dims) {
            current.dims = info.dims;
            changed = true;
        }
        changed
    }
}

/// Tensors computed by an `If`/`Loop`/`Scan` node or downstream of one. tract settles such
/// outputs from one branch (the affine_grid conformance tests show it typing an `If` output after
/// the wrong branch), so its facts there are not taken; value_info and our rules still apply.
fn after_control_flow(graph: &ModelGraph) -> Vec<bool> {
    let mut tainted = vec![false; graph.tensors.len()];
    for (_, op) in graph.ops() {
        let control = matches!(op.op_type.as_str(), "If" | "Loop" | "Scan");
        if control || op.reads().iter().any(|t| tainted[t.0]) {
            for t in op.outputs.iter().flatten() {
                tainted[t.0] = true;
            }
        }
    }
    tainted
}

/// Graph inputs with `--input-shape` applied. A dimension still symbolic is an error that names the
/// input and shows the flag to add: sizes of everything downstream depend on it.
fn resolve_inputs(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
) -> Result<HashMap<TensorId, TensorInfo>> {
    let declared: HashMap<&str, &ValueInfoProto> = model
        .graph()
        .input
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    for name in given.0.keys() {
        if graph
            .tensor_id(name)
            .is_none_or(|t| !graph.inputs.contains(&t))
        {
            let names: Vec<&str> = graph
                .inputs
                .iter()
                .map(|&t| graph.tensor(t).name.as_str())
                .collect();
            bail!(
                "--input-shape names `{name}`, which is not a graph input; the inputs are: {}",
                names.join(", ")
            );
        }
    }
    let mut out = HashMap::new();
    for &t in &graph.inputs {
        let name = &graph.tensor(t).name;
        let mut info = declared
            .get(name.as_str())
            .map(|v| info_from_type(&v.type_))
            .unwrap_or_default();
        let is_tensor = declared.get(name.as_str()).is_some_and(|v| {
            matches!(
                v.type_.as_ref().and_then(|t| t.value.as_ref()),
                Some(type_proto::Value::TensorType(_))
            )
        });
        if let Some(dims) = given.0.get(name) {
            if let Some(decl) = &info.dims {
                let compatible = decl.len() == dims.len()
                    && decl
                        .iter()
                        .zip(dims)
                        .all(|(d, v)| !matches!(d, Dim::Known(k) if k != v));
                if !compatible {
                    bail!(
                        "--input-shape {name}={}: the model declares `{name}` as {}",
                        dims.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join("x"),
                        info.shape_string()
                    );
                }
            }
            info.dims = Some(dims.iter().map(|&d| Dim::Known(d)).collect());
        } else if is_tensor {
            if let Some(dims) = &info.dims {
                if let Some(sym) = dims.iter().find(|d| !matches!(d, Dim::Known(_))) {
                    let example: Vec<String> = dims
                        .iter()
                        .map(|d| {
                            if let Dim::Known(v) = d {
                                v.to_string()
                            } else {
                                "1".into()
                            }
                        })
                        .collect();
                    bail!(
                        "input `{name}` has symbolic dimension `{sym}` (shape {}); give it a size with --input-shape {name}={}",
                        info.shape_string(),
                        example.join("x")
                    );
                }
            } else {
                bail!("input `{name}` has no declared shape; give it one with --input-shape {name}=DIMS");
            }
        }
        out.insert(t, info);
    }
    Ok(out)
}

/// What an ONNX `TypeProto` says about a tensor (non-tensor types give nothing).
pub fn info_from_type(tp: &protobuf::MessageField<TypeProto>) -> TensorInfo {
    let Some(type_proto::Value::TensorType(tt)) = tp.as_ref().and_then(|t| t.value.as_ref()) else {
        return TensorInfo::default();
    };
    use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
    TensorInfo {
        dtype: (tt.elem_type != 0).then_some(DType(tt.elem_type)),
        dims: tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(D::DimValue(v)) if *v >= 0 => Dim::Known(*v as u64),
                    Some(D::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        }),
    }
}
