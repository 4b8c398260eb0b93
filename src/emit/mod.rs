//! Stage 6, **emit**: a cut becomes a matched pair of ONNX models.
//!
//! - head inputs: the original inputs it reads; head outputs: the boundary tensors it computes,
//!   with their original names, types and shapes, then any original output it computes;
//! - tail inputs: the boundary, the same names, types and shapes; tail outputs: the original
//!   outputs it computes;
//! - each side carries only the initializers, local functions and value_info it uses, keeps the
//!   IR version, every opset import and the metadata, and is stamped with the source model's
//!   SHA-256, the cut id and the boundary in `metadata_props`;
//! - an empty side is not written: all-cloud is a tail only, all-mobile a head only;
//! - the all-mobile head and the all-cloud tail are one model, the whole one (every node, the
//!   original inputs and outputs), stamped `whole` as its role and cut id. Written twice in one
//!   folder, the second is a hard link to the first's bytes (its data file where it has one).
//!
//! Building a half moves the source's initializers into it (no copy of the weights), and
//! [`Emitter::restore`] moves them back after writing. Weights the source keeps on disk (external
//! data, or `raw_data` left in the model file by [`crate::load`]) are copied file to file, so
//! splitting costs about the model's graph in memory however many halves are written.

mod side;

use crate::output::{ExternalData, Staging, Written};
use crate::proto::value_info;
pub use side::SideSpec;

use crate::cut::{Cut, Side};
use crate::graph::{ModelGraph, TensorId};
use crate::load::Model;
use crate::shapes::ShapeTable;
use crate::tensor::{DType, Dim, TensorInfo};
use anyhow::{bail, Result};
use onnx_protobuf::{
    type_proto, FunctionProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto,
    TensorAnnotation, TensorProto, ValueInfoProto,
};
use std::collections::{HashMap, HashSet};

/// Metadata keys stamped on both halves.
pub const META_SOURCE_SHA256: &str = "nsplit.source_sha256";
pub const META_CUT_ID: &str = "nsplit.cut_id";
pub const META_ROLE: &str = "nsplit.role";
pub const META_BOUNDARY: &str = "nsplit.boundary";

/// What [`write_pair`] wrote for one cut.
#[derive(Clone, Debug)]
pub struct WrittenPair {
    pub cut_id: String,
    pub boundary: Vec<TensorId>,
    /// `None` when the head has no work (all-cloud).
    pub head: Option<Written>,
    /// `None` when the tail has no work (all-mobile).
    pub tail: Option<Written>,
}

/// Write the head and tail of `cut` into `staging` as `head_name` and `tail_name`.
pub fn write_pair(
    emitter: &mut Emitter,
    cut: &Cut,
    staging: &mut Staging,
    head_name: &str,
    tail_name: &str,
    mode: ExternalData,
) -> Result<WrittenPair> {
    let mut written = [None, None];
    for (slot, side, name) in [(0, Side::Head, head_name), (1, Side::Tail, tail_name)] {
        if let Some(mut half) = emitter.half(cut, side)? {
            let share = if half.whole {
                emitter.whole.as_ref()
            } else {
                None
            };
            let result = staging.write_model(name, &mut half.proto, emitter.model, mode, share);
            let whole = half.whole;
            emitter.restore(half);
            let result = result?;
            if whole && emitter.whole.is_none() {
                emitter.whole = Some(result.clone());
            }
            written[slot] = Some(result);
        }
    }
    let [head, tail] = written;
    Ok(WrittenPair {
        cut_id: cut.id(emitter.graph),
        boundary: cut.boundary(emitter.graph),
        head,
        tail,
    })
}

/// Builds head and tail models from one source model.
pub struct Emitter<'a> {
    pub model: &'a mut Model,
    pub graph: &'a ModelGraph,
    pub shapes: &'a ShapeTable,
    /// SHA-256 of the source file, hex.
    pub source_sha256: String,
    /// The whole model, once written: an emitter writes into one output folder.
    whole: Option<Written>,
}

/// Role and cut id stamped on the whole model (the all-mobile head, the all-cloud tail).
pub const WHOLE: &str = "whole";

/// One half, ready to write. Its initializers are on loan from the source model.
pub struct Half {
    pub spec: SideSpec,
    pub proto: ModelProto,
    /// Every node of the model: the all-mobile head or the all-cloud tail.
    pub whole: bool,
}

impl<'a> Emitter<'a> {
    pub fn new(
        model: &'a mut Model,
        graph: &'a ModelGraph,
        shapes: &'a ShapeTable,
    ) -> Result<Emitter<'a>> {
        let source_sha256 = sha256_file(&model.path)?;
        Ok(Emitter {
            model,
            graph,
            shapes,
            source_sha256,
            whole: None,
        })
    }

    /// The half of `cut` on `side`, or `None` if that side has no work.
    pub fn half(&mut self, cut: &Cut, side: Side) -> Result<Option<Half>> {
        let boundary = cut.boundary(self.graph);
        let spec = SideSpec::of(self.graph, cut, side, &boundary);
        // A side that gives nothing (no work, or only nodes whose results no output needs: dead
        // code a model may carry) is not written: a runtime refuses a model without outputs.
        if spec.outputs.is_empty() {
            return Ok(None);
        }
        let whole = match side {
            Side::Head => cut.is_all_mobile(self.graph),
            Side::Tail => cut.is_all_cloud(),
        };
        // Both whole halves from one spec, so they are the same model.
        let (spec, boundary) = if whole {
            let all_mobile = Cut::all_mobile(self.graph);
            (
                SideSpec::of(self.graph, &all_mobile, Side::Head, &[]),
                vec![],
            )
        } else {
            (spec, boundary)
        };
        let src_graph = self.model.graph();
        let mut graph = GraphProto {
            name: src_graph.name.clone(),
            doc_string: src_graph.doc_string.clone(),
            metadata_props: src_graph.metadata_props.clone(),
            // Fields newer than our protobuf schema (a newer IR's graph metadata, ...) are kept.
            special_fields: src_graph.special_fields.clone(),
            ..Default::default()
        };
        graph.node = self.nodes(&spec);
        graph.input = spec
            .inputs
            .iter()
            .map(|&t| self.value_info(t))
            .collect::<Result<_>>()?;
        graph.output = spec
            .outputs
            .iter()
            .map(|&t| self.value_info(t))
            .collect::<Result<_>>()?;
        graph.value_info = self.inner_value_info(&spec);
        graph.initializer = self.take_initializers(&spec);
        graph.sparse_initializer = self.sparse_initializers(&spec);
        graph.quantization_annotation = self.quantization_annotations(&graph);
        if self.model.proto.ir_version < 4 {
            // Before IR 4 every initializer had to be listed among the graph inputs too.
            let listed: Vec<ValueInfoProto> = graph
                .initializer
                .iter()
                .map(|t| value_info(&t.name, &TensorInfo::new(DType(t.data_type), dims_of(t))))
                .collect();
            graph.input.extend(listed);
        }
        let src = &self.model.proto;
        let mut metadata = src.metadata_props.clone();
        let names = |ts: &[TensorId]| {
            ts.iter()
                .map(|&t| self.graph.tensor(t).name.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        let (cut_id, role) = match (whole, side) {
            (true, _) => (WHOLE.to_string(), WHOLE),
            (false, Side::Head) => (cut.id(self.graph), "head"),
            (false, Side::Tail) => (cut.id(self.graph), "tail"),
        };
        for (k, v) in [
            (META_SOURCE_SHA256, self.source_sha256.clone()),
            (META_CUT_ID, cut_id),
            (META_ROLE, role.to_string()),
            (META_BOUNDARY, names(&boundary)),
        ] {
            metadata.retain(|e| e.key != k);
            metadata.push(StringStringEntryProto {
                key: k.into(),
                value: v,
                ..Default::default()
            });
        }
        let functions = used_functions(&src.functions, &graph.node);
        let proto = ModelProto {
            ir_version: src.ir_version,
            opset_import: src.opset_import.clone(),
            producer_name: src.producer_name.clone(),
            producer_version: src.producer_version.clone(),
            domain: src.domain.clone(),
            model_version: src.model_version,
            doc_string: src.doc_string.clone(),
            graph: Some(graph).into(),
            metadata_props: metadata,
            functions,
            special_fields: src.special_fields.clone(),
            ..Default::default()
        };
        Ok(Some(Half { spec, proto, whole }))
    }

    /// Give the half's initializers back to the source model.
    pub fn restore(&mut self, half: Half) {
        let mut back: HashMap<String, TensorProto> = half
            .proto
            .graph
            .into_option()
            .map(|g| g.initializer)
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        for t in &mut self.model.proto.graph.mut_or_insert_default().initializer {
            if let Some(original) = back.remove(&t.name) {
                *t = original;
            }
        }
    }

    fn nodes(&self, spec: &SideSpec) -> Vec<NodeProto> {
        spec.nodes
            .iter()
            .map(|&n| self.model.graph().node[self.graph.op(n).index].clone())
            .collect()
    }

    /// A graph input or output's type. The original's declaration where it says everything
    /// (each dim a value or a name) or the tensor is a graph input or not a tensor; else the
    /// symbolic inferred type, completed by whatever the declaration does say. So a half declares
    /// `batch` wherever the original's dims are symbolic, never the size they were costed at. A
    /// tensor whose element type or rank is unknown cannot be an input or output of a valid model.
    fn value_info(&self, t: TensorId) -> Result<ValueInfoProto> {
        let name = &self.graph.tensor(t).name;
        let g = self.model.graph();
        let declared = g
            .input
            .iter()
            .chain(&g.output)
            .chain(&g.value_info)
            .find(|v| &v.name == name);
        let inferred = self.shapes.symbolic(t);
        let Some(v) = declared else {
            if inferred.dtype.is_none() || inferred.dims.is_none() {
                bail!(
                    "tensor `{name}` crosses the cut but its {} is unknown, so a half cannot declare it; give input shapes or cut elsewhere",
                    if inferred.dtype.is_none() { "element type" } else { "rank" }
                );
            }
            return Ok(value_info(name, inferred));
        };
        if self.graph.inputs.contains(&t) {
            return Ok(v.clone());
        }
        Ok(self.restated(v, t))
    }

    /// A declaration of the original, its type completed from the symbolic inferred one: an
    /// unnamed dim gets the inferred name or value, and a value where the inferred dim moves
    /// with an input symbol (a declaration left from export at batch 1) becomes that symbol.
    /// Everything else of the declaration (doc string, metadata, unknown fields) is kept.
    fn restated(&self, v: &ValueInfoProto, t: TensorId) -> ValueInfoProto {
        let is_tensor = matches!(
            v.type_.as_ref().and_then(|t| t.value.as_ref()),
            Some(type_proto::Value::TensorType(_))
        );
        let inferred = self.shapes.symbolic(t);
        if !is_tensor || inferred.dtype.is_none() || inferred.dims.is_none() {
            return v.clone();
        }
        let info = crate::shapes::info_from_type(&v.type_);
        let completed = completed(&info, inferred);
        let mut vi = v.clone();
        if completed != info {
            vi.type_ = value_info(&v.name, &completed).type_;
        }
        vi
    }

    /// value_info of the tensors computed inside the side: the model's own entries, and our
    /// inferred types (symbolic form) for the rest that something reads, where each dim is a
    /// value or a name. An output nothing reads (Dropout's mask) gets no inferred entry: runtimes
    /// disagree on some of those types (tract types an opset-9 mask bool, the spec float), and
    /// nothing depends on it.
    fn inner_value_info(&self, spec: &SideSpec) -> Vec<ValueInfoProto> {
        let boundary: HashSet<TensorId> =
            spec.inputs.iter().chain(&spec.outputs).copied().collect();
        let declared: HashMap<&str, &ValueInfoProto> = self
            .model
            .graph()
            .value_info
            .iter()
            .map(|v| (v.name.as_str(), v))
            .collect();
        spec.nodes
            .iter()
            .flat_map(|&n| self.graph.op(n).outputs.iter().flatten().copied())
            .filter(|t| !boundary.contains(t))
            .filter_map(|t| {
                let name = &self.graph.tensor(t).name;
                let read = !self.graph.tensor(t).consumers.is_empty();
                match declared.get(name.as_str()) {
                    Some(v) => Some(self.restated(v, t)),
                    None if !read => None,
                    None => {
                        let info = self.shapes.symbolic(t);
                        says_everything(info).then(|| value_info(name, info))
                    }
                }
            })
            .collect()
    }

    /// Move the side's initializers out of the source (they come back with [`Emitter::restore`]).
    fn take_initializers(&mut self, spec: &SideSpec) -> Vec<TensorProto> {
        let wanted: HashSet<&str> = spec
            .initializers
            .iter()
            .map(|&t| self.graph.tensor(t).name.as_str())
            .collect();
        let src = &mut self.model.proto.graph.mut_or_insert_default().initializer;
        src.iter_mut()
            .filter(|t| wanted.contains(t.name.as_str()))
            .map(|t| {
                // Keep name, type and dims in place so the source still describes the tensor.
                let stub = TensorProto {
                    name: t.name.clone(),
                    data_type: t.data_type,
                    dims: t.dims.clone(),
                    ..Default::default()
                };
                std::mem::replace(t, stub)
            })
            .collect()
    }

    /// The source's quantization annotations of the tensors the half declares or computes.
    fn quantization_annotations(&self, half: &GraphProto) -> Vec<TensorAnnotation> {
        let names: HashSet<&str> = half
            .input
            .iter()
            .chain(&half.output)
            .chain(&half.value_info)
            .map(|v| v.name.as_str())
            .chain(half.initializer.iter().map(|t| t.name.as_str()))
            .chain(
                half.node
                    .iter()
                    .flat_map(|n| n.output.iter().map(String::as_str)),
            )
            .collect();
        self.model
            .graph()
            .quantization_annotation
            .iter()
            .filter(|a| names.contains(a.tensor_name.as_str()))
            .cloned()
            .collect()
    }

    fn sparse_initializers(&self, spec: &SideSpec) -> Vec<onnx_protobuf::SparseTensorProto> {
        let wanted: HashSet<&str> = spec
            .initializers
            .iter()
            .map(|&t| self.graph.tensor(t).name.as_str())
            .collect();
        self.model
            .graph()
            .sparse_initializer
            .iter()
            .filter(|s| {
                s.values
                    .as_ref()
                    .is_some_and(|v| wanted.contains(v.name.as_str()))
            })
            .cloned()
            .collect()
    }
}

/// The element type is known and every dimension is a value or a name.
fn says_everything(info: &TensorInfo) -> bool {
    info.dtype.is_some()
        && info
            .dims
            .as_ref()
            .is_some_and(|d| d.iter().all(|d| !matches!(d, Dim::Unknown)))
}

/// What `declared` says, with `inferred` filling what it leaves open (an unnamed dim, a missing
/// element type, a missing shape) and correcting a value that `inferred` shows moving with an
/// input symbol.
fn completed(declared: &TensorInfo, inferred: &TensorInfo) -> TensorInfo {
    let dims = match (&declared.dims, &inferred.dims) {
        (Some(d), Some(i)) if d.len() == i.len() => Some(
            d.iter()
                .zip(i)
                .map(|(d, i)| match (d, i) {
                    (Dim::Unknown, _) | (Dim::Known(_), Dim::Symbol(_)) => i.clone(),
                    _ => d.clone(),
                })
                .collect(),
        ),
        (Some(d), _) => Some(d.clone()),
        (None, i) => i.clone(),
    };
    TensorInfo {
        dtype: inferred.dtype.or(declared.dtype),
        dims,
    }
}

fn dims_of(t: &TensorProto) -> Vec<u64> {
    t.dims.iter().map(|&d| d.max(0) as u64).collect()
}

/// The local functions the nodes call, directly, from subgraph bodies, or from other functions.
fn used_functions(functions: &[FunctionProto], nodes: &[NodeProto]) -> Vec<FunctionProto> {
    fn calls(nodes: &[NodeProto], out: &mut Vec<(String, String)>) {
        for n in nodes {
            out.push((n.domain.clone(), n.op_type.clone()));
            for a in &n.attribute {
                for g in a.g.as_ref().into_iter().chain(&a.graphs) {
                    calls(&g.node, out);
                }
            }
        }
    }
    let mut pending = vec![];
    calls(nodes, &mut pending);
    let mut used: HashSet<(String, String)> = HashSet::new();
    while let Some(call) = pending.pop() {
        if let Some(f) = functions
            .iter()
            .find(|f| (f.domain.as_str(), f.name.as_str()) == (call.0.as_str(), call.1.as_str()))
        {
            if used.insert(call) {
                calls(&f.node, &mut pending);
            }
        }
    }
    functions
        .iter()
        .filter(|f| used.contains(&(f.domain.clone(), f.name.clone())))
        .cloned()
        .collect()
}

/// SHA-256 of a file, hex, read in chunks.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
