//! Stage 1, **load**: read an ONNX file into a [`Model`], with its external data checked.
//!
//! Weights stay on disk. Tensors stored as external data: their locations are validated here
//! (relative, inside the model's folder, the file present and long enough). Weights inside the
//! protobuf: a wire-level pass ([`crate::proto::wire::shrink`]) reads the file once and leaves
//! every initializer's `raw_data` of [`STREAM_MIN_BYTES`] or more where it is, recording its byte
//! range. Either kind is read on demand through [`Model::tensor_bytes`] and copied file to file
//! by the emitter ([`Model::file_range`]), so a model costs little more than its graph in memory.

mod external;
mod tensor_data;

pub use external::ExternalData;
pub use tensor_data::decode_i64;

use crate::proto::wire::{self, FileRange, PLACEHOLDER};
use anyhow::{bail, Context, Result};
use onnx_protobuf::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, Message, ModelProto,
    OperatorSetIdProto, TensorProto,
};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

/// A loaded ONNX model and where it came from.
#[derive(Debug)]
pub struct Model {
    /// The decoded protobuf. External tensors keep their `external_data` entries.
    pub proto: ModelProto,
    /// The path the model was read from.
    pub path: PathBuf,
    /// The folder external data locations are relative to.
    pub dir: PathBuf,
    /// Size of the `.onnx` file itself, in bytes.
    pub file_bytes: u64,
    /// Initializers whose `raw_data` stayed in the file (it holds [`PLACEHOLDER`] instead), by
    /// name: (offset, length) in the `.onnx` file.
    streamed: HashMap<String, (u64, u64)>,
    /// The files weights are read from later (the model, its external data) as they were at
    /// load: length and modification time.
    read_later: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
}

/// An initializer's `raw_data` of at least this many bytes is left in the file when the model is
/// read: big enough that the small integer tensors shape inference reads stay in memory.
pub const STREAM_MIN_BYTES: u64 = 4096;

/// IR versions we know: IR 3 is ONNX 1.0-era; IR 14 is what onnx 1.23 writes. An older one is
/// refused (IR 1 and 2 predate opset imports); a newer one is read with a warning, as long as the
/// protobuf parses: fields we do not know travel into the halves byte for byte.
pub const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=14;

impl Model {
    /// Read and validate an ONNX model file.
    pub fn load(path: &Path) -> Result<Model> {
        let shown = path.display();
        if path.is_dir() {
            let mut models: Vec<String> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .map(|p| p.display().to_string())
                .collect();
            models.sort();
            models.truncate(5);
            bail!(
                "{shown} is a folder, not an ONNX model file{}",
                if models.is_empty() {
                    String::new()
                } else {
                    format!("; it holds {}", models.join(", "))
                }
            );
        }
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        let file_bytes = file
            .metadata()
            .with_context(|| format!("cannot read {shown}"))?
            .len();
        if file_bytes == 0 {
            bail!("{shown} is empty: not an ONNX model");
        }
        let invalid = |e: protobuf::Error| {
            anyhow::anyhow!("{shown} is not a valid ONNX model: protobuf decoding failed ({e}); is the file truncated or in another format?")
        };
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (mut proto, streamed) = match wire::shrink(&mut reader, file_bytes, STREAM_MIN_BYTES) {
            Ok(shrunk) => (
                ModelProto::parse_from_bytes(&shrunk.bytes).map_err(invalid)?,
                shrunk.streamed,
            ),
            Err(_) => {
                // Not a well-formed message: protobuf's own parser says what is wrong.
                reader
                    .rewind()
                    .with_context(|| format!("cannot read {shown}"))?;
                let proto = ModelProto::parse_from_reader(&mut reader).map_err(invalid)?;
                (proto, vec![])
            }
        };
        let modified = reader
            .get_ref()
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok());
        let streamed = streamed_by_name(&mut proto, streamed, path)?;
        if proto.graph.is_none() || (proto.ir_version == 0 && proto.opset_import.is_empty()) {
            bail!("{shown} is not an ONNX model: it decodes as protobuf but has no graph and no IR version");
        }
        if proto.ir_version < *IR_VERSIONS.start() {
            bail!(
                "{shown} has IR version {}, older than the oldest we read ({}); re-export it with a current onnx (onnx.version_converter)",
                proto.ir_version,
                IR_VERSIONS.start()
            );
        }
        if proto.ir_version > *IR_VERSIONS.end() {
            crate::warn::once(&format!(
                "{shown} has IR version {}, newer than the newest we know ({}); reading it anyway, and fields we do not know are kept as they are",
                proto.ir_version,
                IR_VERSIONS.end()
            ));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let opsets = proto.opset_import.clone();
        fill_attribute_types(&mut proto.graph.mut_or_insert_default().node, &opsets);
        for f in &mut proto.functions {
            fill_attribute_types(&mut f.node, &opsets);
        }
        if proto.ir_version <= *IR_VERSIONS.end() {
            check_element_types(&proto).with_context(|| format!("{shown}"))?;
        }
        crate::ops::schema::check_model(&proto).with_context(|| format!("{shown}"))?;
        let mut model = Model {
            proto,
            path: path.to_path_buf(),
            dir,
            file_bytes,
            streamed,
            read_later: vec![(path.to_path_buf(), file_bytes, modified)],
        };
        model.check_external_data()?;
        Ok(model)
    }

    /// The top-level graph.
    pub fn graph(&self) -> &GraphProto {
        &self.proto.graph
    }

    /// Opset version imported for a domain (`""` and `"ai.onnx"` are the same domain).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        let norm = |d: &str| if d == "ai.onnx" { "" } else { d }.to_string();
        self.proto
            .opset_import
            .iter()
            .find(|o| norm(&o.domain) == norm(domain))
            .map(|o| o.version)
    }

    /// The tensor's stored bytes in ONNX little-endian layout: `raw_data`, or the range read
    /// from disk. `None` when the values sit in a typed field (`float_data`, ...) instead.
    pub fn tensor_bytes<'a>(&self, t: &'a TensorProto) -> Result<Option<Cow<'a, [u8]>>> {
        if let Some(range) = self.file_range(t)? {
            return Ok(Some(Cow::Owned(read_range(&range, &t.name)?)));
        }
        Ok((!t.raw_data.is_empty()).then_some(Cow::Borrowed(&t.raw_data[..])))
    }

    /// Where the tensor's bytes are on disk: its external data, or its `raw_data` left in the
    /// model file. `None` when they are in memory.
    pub fn file_range(&self, t: &TensorProto) -> Result<Option<FileRange>> {
        if let Some(ext) = ExternalData::of(t)? {
            let path = ext.resolve(&self.dir, &t.name)?;
            let len = match ext.length {
                Some(l) => l,
                None => std::fs::metadata(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .len()
                    .saturating_sub(ext.offset),
            };
            return Ok(Some(FileRange {
                path,
                offset: ext.offset,
                len,
            }));
        }
        Ok(self.streamed_range(t).map(|(offset, len)| FileRange {
            path: self.path.clone(),
            offset,
            len,
        }))
    }

    fn streamed_range(&self, t: &TensorProto) -> Option<(u64, u64)> {
        if t.raw_data != PLACEHOLDER {
            return None;
        }
        self.streamed.get(&t.name).copied()
    }

    /// The external data files the model reads, as written in it (relative to its folder).
    pub fn data_files(&self) -> Result<Vec<String>> {
        let mut files = vec![];
        let mut result = Ok(());
        visit_tensors(self.graph(), &mut |t| match ExternalData::of(t) {
            Ok(Some(ext)) if !files.contains(&ext.location) => files.push(ext.location),
            Ok(_) => {}
            Err(e) => result = Err(e),
        });
        result.map(|()| files)
    }

    /// The tensor with its `raw_data` in memory, for a model built to be handed to a runtime.
    pub fn materialized(&self, t: &TensorProto) -> Result<TensorProto> {
        let mut t = t.clone();
        if let Some((offset, len)) = self.streamed_range(&t) {
            let range = FileRange {
                path: self.path.clone(),
                offset,
                len,
            };
            t.raw_data = read_range(&range, &t.name)?;
        }
        Ok(t)
    }

    /// Validate every external-data reference in the model, subgraphs included, and note the
    /// data files' state.
    fn check_external_data(&mut self) -> Result<()> {
        let mut result = Ok(());
        let mut files = vec![];
        visit_tensors(self.graph(), &mut |t| {
            if result.is_ok() {
                result = ExternalData::of(t).and_then(|ext| match ext {
                    Some(ext) => {
                        ext.check(&self.dir, &t.name, &self.path)?;
                        let path = ext.resolve(&self.dir, &t.name)?;
                        if !files.contains(&path) {
                            files.push(path);
                        }
                        Ok(())
                    }
                    None => Ok(()),
                });
            }
        });
        result?;
        for path in files {
            let meta = std::fs::metadata(&path).ok();
            let (len, modified) = (
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            );
            self.read_later.push((path, len, modified));
        }
        Ok(())
    }

    /// An error if a file weights are read from has changed since the model was loaded: its
    /// byte ranges would no longer be the weights (a model saved over in place while we ran).
    pub fn check_unchanged(&self) -> Result<()> {
        for (path, len, modified) in &self.read_later {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("{} is gone since it was read", path.display()))?;
            if meta.len() != *len || meta.modified().ok() != *modified {
                bail!(
                    "{} changed while nsplit ran (its weights are read as it was at the start); run again once it is written",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Read `range` (the bytes of tensor `tensor`).
pub fn read_range(range: &FileRange, tensor: &str) -> Result<Vec<u8>> {
    use std::io::{Read, SeekFrom};
    let shown = range.path.display();
    let mut f = File::open(&range.path).with_context(|| format!("cannot open {shown}"))?;
    f.seek(SeekFrom::Start(range.offset))?;
    let len = usize::try_from(range.len).with_context(|| {
        format!(
            "tensor `{tensor}`: {} bytes do not fit in memory",
            range.len
        )
    })?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).with_context(|| {
        format!(
            "tensor `{tensor}`: cannot read {} bytes at offset {} of {shown}",
            range.len, range.offset
        )
    })?;
    Ok(buf)
}

/// The streamed initializers by name. Where two initializers share a name (an invalid model,
/// refused later with a message naming it), their bytes are read back into memory instead.
fn streamed_by_name(
    proto: &mut ModelProto,
    streamed: Vec<(usize, u64, u64)>,
    path: &Path,
) -> Result<HashMap<String, (u64, u64)>> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(HashMap::new()); // no graph: refused next, with a message that says so
    };
    let inits = &mut graph.initializer;
    let mut seen = HashSet::new();
    let repeated: HashSet<String> = inits
        .iter()
        .filter(|t| !seen.insert(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    let mut by_name = HashMap::new();
    for (ordinal, offset, len) in streamed {
        let t = inits
            .get_mut(ordinal)
            .context("internal error: a streamed initializer out of range")?;
        if repeated.contains(&t.name) {
            let range = FileRange {
                path: path.to_path_buf(),
                offset,
                len,
            };
            t.raw_data = read_range(&range, &t.name)?;
        } else {
            by_name.insert(t.name.clone(), (offset, len));
        }
    }
    Ok(by_name)
}

/// Calls `f` on every tensor stored in the graph: initializers and tensor attributes, recursively.
pub fn visit_tensors<'a>(graph: &'a GraphProto, f: &mut dyn FnMut(&'a TensorProto)) {
    graph.initializer.iter().for_each(&mut *f);
    for s in &graph.sparse_initializer {
        if let Some(v) = s.values.as_ref() {
            f(v)
        }
        if let Some(i) = s.indices.as_ref() {
            f(i)
        }
    }
    for node in &graph.node {
        for attr in &node.attribute {
            if let Some(t) = attr.t.as_ref() {
                f(t)
            }
            attr.tensors.iter().for_each(&mut *f);
            if let Some(g) = attr.g.as_ref() {
                visit_tensors(g, f)
            }
            for g in &attr.graphs {
                visit_tensors(g, f)
            }
        }
    }
}

/// Every declared tensor and stored tensor of the top-level graph has an element type ONNX
/// defines (a model from a newer IR may use newer ones, and is not checked).
fn check_element_types(proto: &ModelProto) -> Result<()> {
    use onnx_protobuf::type_proto;
    let known = |t: i32| (1..=crate::tensor::DType::NEWEST).contains(&t);
    let g = &proto.graph;
    let declared = (g.input.iter().map(|v| (Some("input"), v)))
        .chain(g.output.iter().map(|v| (Some("output"), v)))
        .chain(g.value_info.iter().map(|v| (None, v)));
    for (graph_side, v) in declared {
        let Some(type_proto::Value::TensorType(t)) =
            v.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
        };
        if let (Some(side), true) = (graph_side, t.shape.is_none()) {
            bail!("graph {side} `{}` is declared a tensor without a shape; ONNX requires one on graph inputs and outputs (at least its rank, with unnamed dims)", v.name);
        }
        if t.elem_type == 0 {
            bail!(
                "`{}` is declared a tensor without an element type; set its elem_type",
                v.name
            );
        }
        if !known(t.elem_type) {
            bail!(
                "`{}` is declared with element type {}, which ONNX does not define",
                v.name,
                t.elem_type
            );
        }
    }
    for t in &g.initializer {
        if !known(t.data_type) {
            bail!(
                "initializer `{}` has element type {}, which ONNX does not define",
                t.name,
                t.data_type
            );
        }
    }
    Ok(())
}

/// Old exporters omit `AttributeProto.type`; readers then guess from the field that is set. We
/// write with proto3 rules (a zero `i` is not written), so the type must be explicit or an `i: 0`
/// attribute would read back as empty.
///
/// Readers that ask whether a scalar is *present* (onnx's Constant inference wants `has_i()` for
/// `value_int`) also need a zero `i` or `f` on the wire: it is kept as an explicit unknown field
/// with the same number, which the writer emits.
fn fill_attribute_types(nodes: &mut [onnx_protobuf::NodeProto], opsets: &[OperatorSetIdProto]) {
    for node in nodes {
        let mut attributes = std::mem::take(&mut node.attribute);
        for attr in &mut attributes {
            if attr.type_.value() == 0 {
                // A value that tells nothing (an empty list) takes the type the op defines.
                let from_schema = crate::ops::schema::carries_nothing(attr)
                    .then(|| crate::ops::schema::attribute_type(opsets, node, &attr.name))
                    .flatten()
                    .and_then(<AttributeType as protobuf::Enum>::from_i32);
                attr.type_ = from_schema
                    .unwrap_or_else(|| guess_attribute_type(attr))
                    .into();
            }
            keep_zero_scalar(attr);
            if let Some(g) = attr.g.as_mut() {
                fill_attribute_types(&mut g.node, opsets)
            }
            for g in &mut attr.graphs {
                fill_attribute_types(&mut g.node, opsets)
            }
        }
        node.attribute = attributes;
    }
}

/// Field numbers of `AttributeProto.f` and `.i` in onnx.proto.
const ATTRIBUTE_F: u32 = 2;
const ATTRIBUTE_I: u32 = 3;

fn keep_zero_scalar(attr: &mut AttributeProto) {
    let unknown = attr.special_fields.mut_unknown_fields();
    let present = |n: u32| unknown.iter().any(|(number, _)| number == n);
    match attr.type_.enum_value() {
        Ok(AttributeType::INT) if attr.i == 0 && !present(ATTRIBUTE_I) => {
            unknown.add_varint(ATTRIBUTE_I, 0)
        }
        Ok(AttributeType::FLOAT) if attr.f == 0.0 && !present(ATTRIBUTE_F) => {
            unknown.add_fixed32(ATTRIBUTE_F, attr.f.to_bits())
        }
        _ => {}
    }
}

fn guess_attribute_type(a: &AttributeProto) -> AttributeType {
    use AttributeType::*;
    if a.t.is_some() {
        TENSOR
    } else if a.g.is_some() {
        GRAPH
    } else if a.sparse_tensor.is_some() {
        SPARSE_TENSOR
    } else if a.tp.is_some() {
        TYPE_PROTO
    } else if !a.floats.is_empty() {
        FLOATS
    } else if !a.ints.is_empty() {
        INTS
    } else if !a.strings.is_empty() {
        STRINGS
    } else if !a.tensors.is_empty() {
        TENSORS
    } else if !a.graphs.is_empty() {
        GRAPHS
    } else if !a.s.is_empty() {
        STRING
    } else if a.f != 0.0 {
        FLOAT
    } else {
        // All fields empty: an integer zero is the only value that serialises to nothing.
        INT
    }
}
