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

mod ops;
mod rules;
mod tract;

pub use tract::serve_if_child as serve_tract_analysis_if_child;

use crate::graph::{ModelGraph, TensorId};
use crate::load::Model;
use crate::setting::Setting;
use crate::tensor::{DType, Dim, TensorInfo};
use anyhow::{bail, Context, Result};
use onnx_protobuf::{type_proto, TypeProto, ValueInfoProto};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A first point to verify at and the second points to try with it.
#[derive(Clone, Debug)]
pub struct VerifyPoints {
    /// Input sizes, by input name; `None`: the table's own (the given or picked sizes).
    pub first: Option<InputShapes>,
    /// Where every symbolic dim has moved (batch +2, others +32), then fallbacks that move
    /// fewer, for a model whose dims depend on each other in ways no name says.
    pub seconds: Vec<InputShapes>,
}

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
                bail!(
                    "{} `{item}` must be NAME=DIMS, e.g. input=1x3x224x224",
                    Setting::InputShape
                );
            };
            let dims = crate::tensor::parse_dims(dims)
                .map_err(|e| anyhow::anyhow!("{} {name}: {e}", Setting::InputShape))?;
            map.insert(name.to_string(), dims);
        }
        Ok(InputShapes(map))
    }

    /// The first given input with a dim of 0, described (`images=0x3x32x32: dim 0 is 0`): an
    /// empty tensor, which a model may well run on (ONNX's own tests do), but which computes
    /// nothing to time or send, so no plan can be made at that size.
    pub fn empty(&self) -> Option<String> {
        self.0.iter().find_map(|(name, dims)| {
            let axis = dims.iter().position(|&d| d == 0)?;
            let shape: Vec<String> = dims.iter().map(u64::to_string).collect();
            Some(format!("{name}={}: dim {axis} is 0", shape.join("x")))
        })
    }
}

/// Per-tensor type and shape, indexed by [`TensorId`], in two forms: concrete, at the sizes given
/// to the symbolic input dimensions (for sizes and costs), and symbolic, as the tensor is for
/// every size (for what the emitted halves declare).
#[derive(Clone, Debug)]
pub struct ShapeTable {
    /// Concrete facts at the given sizes. Where sizes were optional and not given
    /// ([`Sizes::Optional`]), this is the symbolic form: no size is invented.
    pub info: Vec<TensorInfo>,
    /// The same tensors for every size of the symbolic input dimensions: a dimension is
    /// `Known` where it is the same at every point tried, `Symbol` where it moves (an input's
    /// `batch`, `2*batch`, or a name of its own, `frames_dim2`), and `Unknown` where it was not
    /// found.
    /// Equal to `info` for a model without symbolic inputs.
    pub symbolic: Vec<TensorInfo>,
    /// Where verification runs, in order of preference: the given (or picked) sizes first, then,
    /// where some size was picked (1), other first points, for a model that does not run at the
    /// picked sizes ([`Symbols::retries`]: a strided conv or an STFT window does not run at 1, and
    /// a model may need two dims it names apart one apart). Each with its second points, where
    /// the symbolic dims have moved, in order of preference ([`Symbols::seconds`]). Empty
    /// without symbolic inputs.
    pub verify_points: Vec<VerifyPoints>,
    pub source: Vec<ShapeSource>,
    /// Why tract's analysis could not be used in full, if it could not.
    pub tract_problem: Option<String>,
    /// Tensors where our ONNX rules overruled tract's answer, described.
    pub conflicts: Vec<String>,
    /// What the user should know about how the shapes were found: a shared dim name the given
    /// sizes split, a declaration that overruled our own inference. One line each.
    pub warnings: Vec<String>,
}

impl ShapeTable {
    pub fn get(&self, t: TensorId) -> &TensorInfo {
        &self.info[t.0]
    }

    /// The tensor's type and shape for every size of the symbolic inputs.
    pub fn symbolic(&self, t: TensorId) -> &TensorInfo {
        &self.symbolic[t.0]
    }

    /// The largest tensor that is not stored in the model (an input or a computed one), by
    /// size in bytes where it is known.
    pub fn largest_activation(&self, graph: &ModelGraph) -> Option<(TensorId, u64)> {
        self.info
            .iter()
            .enumerate()
            .filter(|(k, _)| graph.tensors[*k].producer != crate::graph::Producer::Initializer)
            .filter_map(|(k, i)| Some((TensorId(k), i.bytes()?)))
            // The first of equals: the tensor nearest the inputs.
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0 .0.cmp(&a.0 .0)))
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

/// Whether every symbolic input dimension needs a size (`--input-shape`). Costs and plans need
/// sizes; a split at named tensors needs only types and ranks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// A symbolic input dimension without a given size is an error that names the flag to add.
    Required,
    /// Missing sizes are allowed; the concrete table then holds the symbolic form.
    Optional,
    /// A missing size is 1 (verification's first point: batch 1).
    DefaultOne,
}

/// Infer every tensor's type and shape; every symbolic input dimension must be given a size.
pub fn infer(model: &Model, graph: &ModelGraph, given: &InputShapes) -> Result<ShapeTable> {
    infer_with(model, graph, given, Sources::default(), Sizes::Required)
}

/// Infer every tensor's type and shape from the chosen sources.
pub fn infer_from(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
    sources: Sources,
) -> Result<ShapeTable> {
    infer_with(model, graph, given, sources, Sizes::Required)
}

/// Infer every tensor's type and shape, concrete and symbolic.
///
/// The symbolic form is found by running the concrete inference at several points: the given
/// sizes, the second verification point (batch 1 -> 3), and two points far from both, where every
/// symbolic dimension that is not a batch moves by about a thousand (a strided conv, pool, slice
/// or STFT window collapses small sizes to 0 or 1 and would look constant there). A dimension is
/// a number only where it is that number at every point; one that moves exactly as an input
/// symbol does is that symbol; any other moving one (`2*batch`, the frames of an STFT) gets a
/// name of its own ([`Symbols::generalise`]), and one not found anywhere stays unnamed.
/// This holds wherever the concrete sources hold (tract, value_info, our rules), which is
/// further than tract's symbolic analysis reaches (convolutions over symbolic dims, ...).
pub fn infer_with(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
    sources: Sources,
    sizes: Sizes,
) -> Result<ShapeTable> {
    let declared = declared_inputs(model, graph, given)?;
    let symbols = Symbols::of(&declared, given, sizes)?;
    let first = symbols.inputs(&declared, given, 0);
    // At sizes the user chose (or a model without symbolic inputs), inputs that do not fit
    // together are an error; at sizes we picked, they only leave tensors unknown.
    let first_point = if symbols.defaulted {
        Point::Picked
    } else {
        Point::Given
    };
    let table = infer_at(model, graph, &first, sources, first_point)?;
    let (symbols, mut table, base_moved) =
        read_where_it_runs(model, graph, given, sources, &declared, symbols, table);
    table
        .warnings
        .splice(0..0, symbols.warnings.iter().cloned());
    if symbols.is_empty() {
        table.symbolic = table.info.clone();
        return Ok(table);
    }
    let mut points = vec![table.info.clone()];
    for point in 1..POINTS {
        let inputs = symbols.inputs(&declared, given, point);
        points.push(infer_at(model, graph, &inputs, sources, Point::Moved)?.info);
    }
    let tract_ran = !table
        .tract_problem
        .as_deref()
        .is_some_and(|p| p.starts_with(TRACT_NOT_RUN));
    let proofs = match sources.tract && tract_ran {
        true => symbolic_facts(model, graph, &symbols.named_inputs(&declared)),
        false => vec![None; graph.tensors.len()],
    };
    table.symbolic = (0..table.info.len())
        .map(|k| {
            let facts: Vec<&TensorInfo> = points.iter().map(|p| &p[k]).collect();
            symbols.generalise(&graph.tensors[k].name, &facts, proofs[k].as_ref())
        })
        .collect();
    for d in &declared {
        // A graph input is what it declares, for every size.
        table.symbolic[d.tensor.0] = d.info.clone();
    }
    table.verify_points = verify_points(graph, given, &declared, &symbols, base_moved);
    if !symbols.all_given {
        // Sizes were optional and some were not given: report no invented size.
        table.info = table.symbolic.clone();
    }
    Ok(table)
}

/// Where verification runs: the table's own point (or, where the shapes were read at a larger
/// base, that base's sizes) and the retries' first points, each with its second points.
fn verify_points(
    graph: &ModelGraph,
    given: &InputShapes,
    declared: &[DeclaredInput],
    symbols: &Symbols,
    base_moved: bool,
) -> Vec<VerifyPoints> {
    let sizes_of = |inputs: &HashMap<TensorId, TensorInfo>| {
        InputShapes(
            inputs
                .iter()
                .filter_map(|(&t, info)| {
                    Some((graph.tensor(t).name.clone(), info.concrete_dims()?))
                })
                .collect(),
        )
    };
    // A point whose inputs would not fit in memory is not tried (a retry at 1024 of every dim of
    // an input all of whose dims are symbolic).
    let fits = |inputs: &HashMap<TensorId, TensorInfo>| {
        inputs
            .values()
            .try_fold(0u64, |sum, info| match info.dims {
                Some(_) => sum.checked_add(info.bytes().unwrap_or(0)),
                None => Some(sum),
            })
            .is_some_and(|b| b <= crate::tensor::memory_limit())
    };
    let point_of = |symbols: &Symbols, first: bool| {
        let at_first = symbols.inputs(declared, given, 0);
        let first_sizes = sizes_of(&at_first);
        let seconds = symbols
            .seconds()
            .iter()
            .map(|s| s.inputs(declared, given, 1))
            .filter(|inputs| fits(inputs))
            .map(|inputs| sizes_of(&inputs))
            .fold(vec![], |mut all: Vec<InputShapes>, p| {
                // A "second" point equal to the first compares nothing new.
                if p.0 != first_sizes.0 && !all.iter().any(|q| q.0 == p.0) {
                    all.push(p);
                }
                all
            });
        (first || fits(&at_first)).then(|| VerifyPoints {
            first: (!first).then_some(first_sizes),
            seconds,
        })
    };
    std::iter::once(point_of(symbols, !base_moved))
        .chain(symbols.retries().iter().map(|s| point_of(s, false)))
        .flatten()
        .collect()
}

/// Where the picked sizes (1) leave ranks unknown because tract fails there (the model does not
/// run at them: an STFT window over 1 sample), the symbols and table at the first larger size
/// (16, 64, 256, 1024) that leaves no rank unknown, else the one that leaves fewest; and whether
/// the base moved.
fn read_where_it_runs(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
    sources: Sources,
    declared: &[DeclaredInput],
    mut symbols: Symbols,
    mut table: ShapeTable,
) -> (Symbols, ShapeTable, bool) {
    let mut moved = false;
    if !(symbols.defaulted && table.tract_problem.is_some() && rank_unknown(&table) > 0) {
        return (symbols, table, moved);
    }
    for size in [16, 64, 256, 1024] {
        let Some(larger) = symbols.larger(size, &[]) else {
            break;
        };
        let inputs = larger.inputs(declared, given, 0);
        let Ok(there) = infer_at(model, graph, &inputs, sources, Point::Picked) else {
            continue;
        };
        if rank_unknown(&there) < rank_unknown(&table) {
            let warnings = std::mem::take(&mut symbols.warnings);
            (symbols, table, moved) = (larger, there, true);
            symbols.warnings = warnings;
            if rank_unknown(&table) == 0 {
                break;
            }
        }
    }
    (symbols, table, moved)
}

/// How a tract problem begins where its analysis was not run at all.
const TRACT_NOT_RUN: &str = "tract's analysis was not run";

/// Each tensor's type as tract's symbolic analysis derives it from the inputs with their dims
/// named; `None` where it found nothing, or after an `If` it could not settle, or a `Loop` or
/// `Scan` (the same distrust as at concrete sizes). Best effort: what tract found before a
/// problem is kept (each fact follows from its rules), a run that failed proves nothing, and
/// where nothing is proved the probes alone decide.
fn symbolic_facts(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
) -> Vec<Option<TensorInfo>> {
    let mut out = vec![None; graph.tensors.len()];
    let Ok(found) = tract::analyse_symbolic(model, graph, inputs) else {
        return out;
    };
    let tainted = after_control_flow(graph, &found.settled);
    for (t, info) in found.facts {
        if !tainted[t.0] && !graph.inputs.contains(&t) {
            out[t.0] = Some(info);
        }
    }
    out
}

/// How many tensors' ranks a table leaves unknown.
fn rank_unknown(table: &ShapeTable) -> usize {
    table.info.iter().filter(|i| i.dims.is_none()).count()
}

/// The points the inference runs at: the given sizes, the second verification point, and two
/// far ones.
const POINTS: usize = 4;

/// Which assignment of the symbolic input dimensions an inference runs at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Point {
    /// The sizes the user gave (or the model's own, without symbolic inputs).
    Given,
    /// The first point, with some size picked for the user (1).
    Picked,
    /// Every symbolic dimension moved, to tell which dims follow it.
    Moved,
}

/// The concrete inference at one assignment of the graph inputs. Beyond the first point the
/// model's concrete value_info is not used: in a model with symbolic inputs it may hold the
/// sizes it was exported at (`1 x 16` for a `batch x 16`), true at no other point; and there a
/// node whose inputs do not fit together tells nothing rather than failing.
fn infer_at(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
    sources: Sources,
    point: Point,
) -> Result<ShapeTable> {
    let n = graph.tensors.len();
    let mut table = ShapeTable {
        info: vec![TensorInfo::default(); n],
        symbolic: vec![],
        verify_points: vec![],
        source: vec![ShapeSource::Unknown; n],
        tract_problem: None,
        conflicts: vec![],
        warnings: vec![],
    };
    let g = model.graph();

    for (&t, info) in inputs {
        table.set(t, info.clone(), ShapeSource::Declared);
    }
    for init in &g.initializer {
        if let Some(t) = graph.tensor_id(&init.name) {
            let dims = stored_dims("initializer", &init.name, &init.dims)?;
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
                let dims = stored_dims("sparse initializer", &v.name, &sparse.dims)?;
                table.set(
                    t,
                    TensorInfo::new(DType(v.data_type), dims),
                    ShapeSource::Initializer,
                );
            }
        }
    }

    // Attributes are checked before tract sees the model (some invalid ones, a OneHot axis of
    // 2^62, send its analysis into a loop), and our rules size what they can: tract's analysis
    // evaluates constant subgraphs, so a tensor beyond the memory limit would abort the process.
    let mut probe = table.clone();
    rules::apply(model, graph, &mut probe, rules::Use::Learn { sizes: false })?;
    let too_large = probe
        .largest_activation(graph)
        .filter(|&(_, b)| b > crate::tensor::memory_limit());
    if let (true, Some((t, b))) = (sources.tract, too_large) {
        table.tract_problem = Some(format!(
            "{TRACT_NOT_RUN}: `{}` would take {}, over the memory limit of {} (NSPLIT_MEMORY_LIMIT), and tract evaluates what it can; shapes come from the declarations and our rules",
            graph.tensor(t).name,
            crate::tensor::human_bytes(b),
            crate::tensor::human_bytes(crate::tensor::memory_limit())
        ));
    } else if sources.tract {
        match tract::analyse(model, graph, inputs, point != Point::Moved) {
            Ok(found) => {
                let tainted = after_control_flow(graph, &found.settled);
                for (t, info) in found.facts {
                    // After control flow only the element type: both branches must give the
                    // same types, not the same shapes.
                    let info = if tainted[t.0] {
                        TensorInfo {
                            dtype: info.dtype,
                            dims: None,
                        }
                    } else {
                        info
                    };
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
                let info = info_from_type(&vi.type_);
                if point == Point::Moved && info.is_complete() {
                    continue;
                }
                declare(graph, &mut table, t, info, point)?;
            }
        }
    }

    let using = match (sources.rules, point) {
        (false, _) => rules::Use::Check,
        (true, Point::Given) => rules::Use::Learn { sizes: true },
        (true, Point::Picked) => rules::Use::Learn { sizes: false },
        (true, Point::Moved) => rules::Use::LearnLeniently,
    };
    rules::apply(model, graph, &mut table, using)?;
    check_sizes(graph, &table)?;
    if point != Point::Moved {
        check_types(model, graph, &mut table, &probe)?;
    }
    if point == Point::Given {
        check_declarations(graph, &declared, &probe)?;
    }
    Ok(table)
}

/// A declaration that what the ONNX rules derive from the inputs and weights alone contradicts
/// is wrong by the specification: the model is refused, as onnx's checker (whose inference
/// derives the same) refuses it. (A declared shape tract's complete fact contradicts is refused
/// in [`declare`]; a declared element type tract contradicts is tract's fault, and the
/// declaration wins there.)
fn check_declarations(
    graph: &ModelGraph,
    declared: &[&ValueInfoProto],
    derived: &ShapeTable,
) -> Result<()> {
    for vi in declared {
        let Some(t) = graph.tensor_id(&vi.name) else {
            continue;
        };
        let (said, found) = (info_from_type(&vi.type_), &derived.info[t.0]);
        if derived.source[t.0] == ShapeSource::Rule && said.contradicts(found) {
            bail!(
                "`{}` is declared {} {}, but{} computes {} {}; correct the model's declaration of it",
                vi.name,
                said.dtype.map_or("?", DType::name),
                said.shape_string(),
                match graph.tensor(t).producer {
                    crate::graph::Producer::Node(n, _) => {
                        let op = graph.op(n);
                        format!(" node `{}` ({})", op.label(), op.op_type)
                    }
                    _ => " the graph".into(),
                },
                found.dtype.map_or("?", DType::name),
                found.shape_string()
            );
        }
    }
    Ok(())
}

/// Take what the model declares of a computed tensor. Where tract's analysis says otherwise, the
/// declaration wins and the disagreement is a warning: a model that onnx's checker accepts and
/// onnxruntime runs declares what it computes, and our inference is the suspect (tract types a
/// ConstantOfShape double where ONNX says float, and everything downstream with it). Beyond the
/// first point only the element type and rank are taken: declared sizes may be the export's.
fn declare(
    graph: &ModelGraph,
    table: &mut ShapeTable,
    t: TensorId,
    said: TensorInfo,
    point: Point,
) -> Result<()> {
    // Before the declarations, only tract has said anything of a computed tensor (a partial
    // fact, an element type alone, leaves the source unset).
    let found = &table.info[t.0];
    let computed = matches!(graph.tensor(t).producer, crate::graph::Producer::Node(..));
    if !computed || !said.contradicts(found) {
        table.merge(t, said, ShapeSource::ValueInfo);
        return Ok(());
    }
    let shape_only = TensorInfo {
        dtype: None,
        dims: said.dims.clone(),
    };
    if point == Point::Given && found.is_complete() && shape_only.contradicts(found) {
        // tract's shapes follow the specification wherever it computes them fully (its known
        // departures are element types): a declared shape it contradicts is wrong.
        bail!(
            "`{}` is declared {} {}, but the graph computes {} {}; correct the model's declaration of it",
            graph.tensor(t).name,
            said.dtype.map_or("?", DType::name),
            said.shape_string(),
            found.dtype.map_or("?", DType::name),
            found.shape_string()
        );
    }
    if point != Point::Moved {
        table.warnings.push(format!(
            "`{}`{} is declared {} {}, but our inference (tract) computes {} {}; using the declaration",
            graph.tensor(t).name,
            producer_label(graph, t),
            said.dtype.map_or("?", DType::name),
            said.shape_string(),
            found.dtype.map_or("?", DType::name),
            found.shape_string()
        ));
    }
    // Beyond the first point, a declared size may be the export's: only the type and rank.
    let said = if point == Point::Moved {
        TensorInfo {
            dtype: said.dtype,
            dims: said.dims.map(|d| vec![Dim::Unknown; d.len()]),
        }
    } else {
        said
    };
    let info = said.overlaid_on(found);
    table.set(t, info, ShapeSource::ValueInfo);
    Ok(())
}

/// ` (node `conv1`, Conv)` for a computed tensor, nothing for an input or initializer.
pub(crate) fn producer_label(graph: &ModelGraph, t: TensorId) -> String {
    match graph.tensor(t).producer {
        crate::graph::Producer::Node(n, _) => {
            let op = graph.op(n);
            format!(" (node `{}`, {})", op.label(), op.op_type)
        }
        _ => String::new(),
    }
}

/// Element types against the operators' type constraints. Types the model states (graph
/// inputs, initializers, value_info, outputs), and those the ONNX rules derive from its inputs
/// and weights alone (`derived`), that break a constraint make the model invalid: an error. One
/// that breaks only with a type tract's analysis gave is our inference's fault: a warning.
fn check_types(
    model: &Model,
    graph: &ModelGraph,
    table: &mut ShapeTable,
    derived: &ShapeTable,
) -> Result<()> {
    let g = model.graph();
    let mut stated: HashMap<&str, i32> = HashMap::new();
    for vi in g.input.iter().chain(&g.value_info).chain(&g.output) {
        if let Some(dt) = info_from_type(&vi.type_).dtype {
            stated.insert(vi.name.as_str(), dt.0);
        }
    }
    for init in &g.initializer {
        stated.insert(init.name.as_str(), init.data_type);
    }
    // What the model states, and what the ONNX rules derive from its inputs and weights alone
    // (as onnx's own inference would): a break there is the model's.
    let spec = |name: &str| {
        stated.get(name).copied().or_else(|| {
            let t = graph.tensor_id(name)?;
            (derived.source[t.0] == ShapeSource::Rule).then_some(derived.info[t.0].dtype?.0)
        })
    };
    crate::ops::schema::check_types(&model.proto, &spec)
        .context("the model breaks an operator's type constraints")?;
    let dtype = |name: &str| Some(table.info[graph.tensor_id(name)?.0].dtype?.0);
    if let Err(e) = crate::ops::schema::check_types(&model.proto, &dtype) {
        table.warnings.push(format!(
            "our type inference breaks an operator's type constraints ({e:#}); the model's declarations do not, so the model is taken as valid and the halves may need checking"
        ));
    }
    Ok(())
}

/// The dims a stored tensor declares; a negative one is an error naming it.
fn stored_dims(what: &str, name: &str, dims: &[i64]) -> Result<Vec<u64>> {
    dims.iter()
        .map(|&d| {
            u64::try_from(d).map_err(|_| {
                anyhow::anyhow!("{what} `{name}` has dims {dims:?}: a dimension cannot be negative")
            })
        })
        .collect()
}

/// Every fully shaped tensor's element count and byte size must fit in 64 bits: a size that
/// wrapped around would make sending it look free.
fn check_sizes(graph: &ModelGraph, table: &ShapeTable) -> Result<()> {
    for (k, info) in table.info.iter().enumerate() {
        let Some(dims) = info.concrete_dims() else {
            continue;
        };
        let fits = ops::checked_product(&dims).map(|n| {
            info.dtype
                .is_none_or(|dt| dt.checked_bytes_for(n).is_some())
        });
        if fits != Some(true) {
            bail!(
                "`{}` ({} {}) would hold {} elements, too many to count in 64 bits; is a dimension wrong?",
                graph.tensors[k].name,
                info.dtype.map_or("?", DType::name),
                info.shape_string(),
                crate::tensor::magnitude(&dims)
            );
        }
    }
    Ok(())
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

/// Tensors computed by an `If`/`Loop`/`Scan` node or downstream of one. Where an `If`'s
/// condition is unknown, tract settles its outputs from one branch (the affine_grid conformance
/// tests show it typing an `If` output after the wrong branch), so its facts there are not
/// taken; value_info and our rules still apply. An `If` whose condition tract computed (`settled`:
/// a test of a dim that is fixed at these sizes, as silero's decoder tests its state's) was
/// folded into the branch that runs before tract's last analysis, and its outputs are taken.
fn after_control_flow(graph: &ModelGraph, settled: &HashSet<TensorId>) -> Vec<bool> {
    let mut tainted = vec![false; graph.tensors.len()];
    for (_, op) in graph.ops() {
        let settled = op.op_type == "If"
            && op
                .inputs
                .first()
                .and_then(|t| *t)
                .is_some_and(|c| settled.contains(&c));
        let control = !settled && matches!(op.op_type.as_str(), "If" | "Loop" | "Scan");
        if control || op.reads().iter().any(|t| tainted[t.0]) {
            for t in op.outputs.iter().flatten() {
                tainted[t.0] = true;
            }
        }
    }
    tainted
}

/// A graph input as the model declares it.
struct DeclaredInput {
    tensor: TensorId,
    name: String,
    info: TensorInfo,
    /// A tensor type (not a sequence, map or optional): only these need shapes.
    is_tensor: bool,
}

/// The graph inputs' declarations, with every `--input-shape` checked: it must name a graph
/// input and agree with the declared rank and concrete dimensions.
fn declared_inputs(
    model: &Model,
    graph: &ModelGraph,
    given: &InputShapes,
) -> Result<Vec<DeclaredInput>> {
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
                "{} names `{name}`, which is not a graph input; the inputs are: {}",
                Setting::InputShape,
                names.join(", ")
            );
        }
    }
    let mut out = vec![];
    for &t in &graph.inputs {
        let name = graph.tensor(t).name.clone();
        let decl = declared.get(name.as_str());
        let info = decl.map(|v| info_from_type(&v.type_)).unwrap_or_default();
        let is_tensor = decl.is_some_and(|v| {
            matches!(
                v.type_.as_ref().and_then(|t| t.value.as_ref()),
                Some(type_proto::Value::TensorType(_))
            )
        });
        if let (Some(dims), Some(decl)) = (given.0.get(&name), &info.dims) {
            let compatible = decl.len() == dims.len()
                && decl
                    .iter()
                    .zip(dims)
                    .all(|(d, v)| !matches!(d, Dim::Known(k) if k != v));
            if !compatible {
                bail!(
                    "{} {name}={}: the model declares `{name}` as {}",
                    Setting::InputShape,
                    dims.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("x"),
                    info.shape_string()
                );
            }
        }
        out.push(DeclaredInput {
            tensor: t,
            name,
            info,
            is_tensor,
        });
    }
    Ok(out)
}

/// A symbolic dimension of the graph inputs and its size at each inference point.
#[derive(Clone)]
struct Symbol {
    /// The `dim_param`, or `?input:axis` for a dimension that names nothing downstream: an
    /// unnamed one, paddle2onnx's `?`, or a name the given sizes split.
    key: String,
    /// What a dim that moves as this one is called in the halves.
    name: String,
    /// Sizes at the points: given (or 1), the second verification point, then two far ones.
    at: [u64; POINTS],
    /// Axis 0 of every input it sizes.
    batch_like: bool,
    /// Its first size was picked (1), not given.
    picked: bool,
}

/// The symbolic dimensions of the graph inputs.
struct Symbols {
    list: Vec<Symbol>,
    /// `dim_param`s that name nothing: each occurrence is a dimension of its own.
    split: HashSet<String>,
    /// Every symbolic dimension was given a size.
    all_given: bool,
    /// Some symbolic dimension took a default size (1), not one the user gave.
    defaulted: bool,
    /// Names the given sizes split, said once each.
    warnings: Vec<String>,
    /// `dim_param`s that are expressions of other symbols (`past + 1`), by their text.
    exprs: HashMap<String, DimExpr>,
}

/// A dim the model declares as an expression of symbols, as the dynamo exporter writes them
/// (`past + 1`, `2*s0`, `floor(s0/2)`): its size follows from theirs.
#[derive(Clone)]
struct DimExpr {
    text: String,
    expr: exmex::FlatEx<f64>,
}

impl DimExpr {
    /// `text` as an expression of symbols: it parses, is not one bare name, and either names
    /// only one symbol and has a number (`2*s0`) or names only symbols the model also uses as
    /// dims of their own (`past + 1` beside a `past`). `sequence-length` alone stays a name.
    fn parse(text: &str, plain: &HashSet<&str>) -> Option<DimExpr> {
        use exmex::prelude::*;
        let spelled = text
            .replace("ceiling(", "ceil(")
            .replace("Floor(", "floor(");
        let expr = exmex::parse::<f64>(&spelled).ok()?;
        let vars: Vec<&str> = expr.var_names().iter().map(String::as_str).collect();
        if vars.is_empty() || vars == [text] {
            return None;
        }
        // Every name in the text must be a variable: exmex reads `e`, `E`, `PI`, `TAU` as
        // constants, and a dim named so is a symbol, not a number.
        let mut names = vec![];
        let mut word = String::new();
        for ch in spelled.chars().chain([' ']) {
            if ch.is_alphanumeric() || ch == '_' {
                word.push(ch);
            } else if !word.is_empty() {
                if !word.starts_with(|c: char| c.is_ascii_digit()) {
                    names.push(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
        if names
            .iter()
            .any(|n| !vars.contains(&n.as_str()) && n != "floor" && n != "ceil")
        {
            return None;
        }
        let mut rest = spelled.clone();
        for v in &vars {
            rest = rest.replace(v, "");
        }
        let numbered = vars.len() == 1 && rest.chars().any(|c| c.is_ascii_digit());
        let named = vars.iter().all(|v| plain.contains(v));
        (numbered || named).then(|| DimExpr {
            text: text.to_string(),
            expr,
        })
    }

    fn vars(&self) -> Vec<String> {
        use exmex::prelude::*;
        self.expr.var_names().to_vec()
    }

    /// Its size where each symbol has the size `size_of` gives; `None` where one has none, or
    /// the expression is not a whole number of at least 0 there.
    fn eval(&self, size_of: impl Fn(&str) -> Option<u64>) -> Option<u64> {
        use exmex::prelude::*;
        let values: Option<Vec<f64>> = self
            .expr
            .var_names()
            .iter()
            .map(|v| size_of(v).map(|x| x as f64))
            .collect();
        let v = self.expr.eval(&values?).ok()?;
        (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(62)).then_some(v as u64)
    }

    /// The size of its one unknown symbol `var` for which it is `want`, the others at `size_of`'s
    /// sizes: for an affine expression (what exporters write), solved from two evaluations; for
    /// one that divides, the smallest that gives it.
    fn solve(&self, var: &str, want: u64, size_of: impl Fn(&str) -> Option<u64>) -> Option<u64> {
        let at = |x: u64| self.eval(|v| if v == var { Some(x) } else { size_of(v) });
        let affine = || {
            let (f0, f1) = (at(16)? as i128, at(17)? as i128);
            let slope = f1 - f0;
            if slope == 0 || (want as i128 - f0) % slope != 0 {
                return None;
            }
            let x = u64::try_from(16 + (want as i128 - f0) / slope).ok()?;
            (at(x) == Some(want)).then_some(x)
        };
        // Not affine (`floor(s0/2)`, `(s0 - 1)/2 + 1`): the smallest size that gives `want`,
        // among the few where a divided size can land.
        affine().or_else(|| {
            (0..=want.saturating_mul(4).saturating_add(64).min(1 << 20))
                .find(|&x| at(x) == Some(want))
        })
    }
}

/// paddle2onnx writes `?` for every unknown dim: one name for sizes that differ.
const NAMES_NOTHING: &str = "?";

impl Symbols {
    /// The size the given sizes settle each dim name at (name, size, the input that gave it). A
    /// name the model gives dims that the sizes set apart (two sizes for one name) is a hint
    /// the sizes overrule: it is split (each of its dims a symbol of its own), with a warning.
    fn settle_given_names(
        &mut self,
        declared: &[DeclaredInput],
        given: &InputShapes,
    ) -> Vec<(String, u64, String)> {
        let mut seen: Vec<(String, u64, String)> = vec![];
        for d in declared.iter().filter(|d| d.is_tensor) {
            let (Some(dims), Some(g)) = (&d.info.dims, given.0.get(&d.name)) else {
                continue;
            };
            for (axis, dim) in dims.iter().enumerate() {
                let Dim::Symbol(name) = dim else {
                    continue;
                };
                if self.exprs.contains_key(name) {
                    continue;
                }
                match seen.iter().find(|s| &s.0 == name) {
                    Some((_, size, by)) if *size != g[axis] && !self.split.contains(name) => {
                        self.warnings.push(format!(
                            "the model names dims of `{by}` and `{}` `{name}`, but the sizes given differ ({size} and {}); taking the sizes, each such dim a size of its own",
                            d.name, g[axis]
                        ));
                        self.split.insert(name.clone());
                    }
                    Some(_) => {}
                    None => seen.push((name.clone(), g[axis], d.name.clone())),
                }
            }
        }
        seen
    }

    /// Which symbols are a batch: axis 0 of every input they size (and no variable of an
    /// expression).
    fn batch_like(&self, declared: &[DeclaredInput]) -> HashMap<String, bool> {
        let mut batch_like: HashMap<String, bool> = HashMap::new();
        for d in declared.iter().filter(|d| d.is_tensor) {
            let Some(dims) = &d.info.dims else { continue };
            for (axis, dim) in dims.iter().enumerate() {
                if !matches!(dim, Dim::Known(_)) {
                    let key = self.key(&d.name, axis, dim);
                    let here = axis == 0 && dims.len() > 1;
                    *batch_like.entry(key).or_insert(here) &= here;
                }
            }
        }
        for e in self.exprs.values() {
            for v in e.vars() {
                batch_like.insert(v, false);
            }
        }
        batch_like
    }

    /// Settle each symbol's size once, from any input `--input-shape` gives it for, else 1 or an
    /// error as `sizes` says. A name the model gives dims that the given sizes set apart (two
    /// sizes for one name) is a hint the sizes overrule: each of its dims is its own symbol.
    fn of(declared: &[DeclaredInput], given: &InputShapes, sizes: Sizes) -> Result<Symbols> {
        let mut symbols = Symbols {
            list: vec![],
            split: HashSet::from([NAMES_NOTHING.to_string()]),
            all_given: true,
            defaulted: false,
            warnings: vec![],
            exprs: HashMap::new(),
        };
        let params = || {
            declared
                .iter()
                .filter(|d| d.is_tensor)
                .flat_map(|d| d.info.dims.iter().flatten())
                .filter_map(|d| match d {
                    Dim::Symbol(s) => Some(s.as_str()),
                    _ => None,
                })
        };
        let bare = |p: &str| {
            let mut chars = p.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let plain: HashSet<&str> = params().filter(|p| bare(p)).collect();
        for p in params().filter(|p| !bare(p)) {
            if let Some(e) = DimExpr::parse(p, &plain) {
                symbols.exprs.insert(p.to_string(), e);
            }
        }
        let seen = symbols.settle_given_names(declared, given);
        let batch_like = symbols.batch_like(declared);
        for d in declared.iter().filter(|d| d.is_tensor) {
            let Some(dims) = &d.info.dims else {
                if !given.0.contains_key(&d.name) && sizes != Sizes::Optional {
                    bail!(
                        "input `{}` has no declared shape; give it one with {} {}=DIMS",
                        d.name,
                        Setting::InputShape,
                        d.name
                    );
                }
                continue;
            };
            for (axis, dim) in dims.iter().enumerate() {
                if matches!(dim, Dim::Known(_)) {
                    continue;
                }
                let key = symbols.key(&d.name, axis, dim);
                if symbols.list.iter().any(|s| s.key == key) || symbols.exprs.contains_key(&key) {
                    continue;
                }
                let mut picked = false;
                let settled = seen.iter().find(|s| s.0 == key).map(|s| s.1);
                let first = match given.0.get(&d.name).map(|g| g[axis]).or(settled) {
                    Some(size) => size,
                    None if sizes == Sizes::Required => {
                        let example: Vec<String> = dims
                            .iter()
                            .map(|d| match d {
                                Dim::Known(v) => v.to_string(),
                                _ => "1".into(),
                            })
                            .collect();
                        bail!(
                            "input `{}` has symbolic dimension `{dim}` (shape {}); give it a size with {} {}={}",
                            d.name,
                            d.info.shape_string(),
                            Setting::InputShape,
                            d.name,
                            example.join("x")
                        );
                    }
                    None => {
                        symbols.all_given &= sizes == Sizes::DefaultOne;
                        symbols.defaulted = true;
                        picked = true;
                        1
                    }
                };
                let name = if key.starts_with('?') {
                    format!("{}_dim{axis}", d.name)
                } else {
                    key.clone()
                };
                let at = Symbols::points(first, symbols.list.len() as u64, batch_like[&key])
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{} {}: size {first} is too large",
                            Setting::InputShape,
                            d.name
                        )
                    })?;
                symbols.list.push(Symbol {
                    at,
                    batch_like: batch_like[&key],
                    key,
                    name,
                    picked,
                });
            }
        }
        symbols.settle_expressions(declared, given, sizes)?;
        Ok(symbols)
    }

    /// The symbols that only expressions name (`past` of `past + 1`) get sizes: solved from a
    /// size given for an expression, else picked (the smallest from 1 at which every expression
    /// is a whole number of at least 1). A given size that contradicts an expression is an error
    /// naming it.
    fn settle_expressions(
        &mut self,
        declared: &[DeclaredInput],
        given: &InputShapes,
        sizes: Sizes,
    ) -> Result<()> {
        let mut vars: Vec<String> = self.exprs.values().flat_map(DimExpr::vars).collect();
        vars.sort();
        vars.dedup();
        vars.retain(|v| !self.list.iter().any(|s| &s.key == v));
        let dims_given = || {
            declared.iter().filter_map(|d| {
                let g = given.0.get(&d.name)?;
                Some(
                    d.info
                        .dims
                        .iter()
                        .flatten()
                        .zip(g)
                        .map(move |(dim, &size)| (d, dim, size)),
                )
            })
        };
        let mut found: HashMap<String, u64> = HashMap::new();
        for _ in 0..vars.len() {
            for (_, dim, size) in dims_given().flatten() {
                let Some(e) = (match dim {
                    Dim::Symbol(p) => self.exprs.get(p),
                    _ => None,
                }) else {
                    continue;
                };
                let known = |v: &str| {
                    self.list
                        .iter()
                        .find(|s| s.key == v)
                        .map(|s| s.at[0])
                        .or_else(|| found.get(v).copied())
                };
                let open: Vec<String> = e
                    .vars()
                    .into_iter()
                    .filter(|v| known(v).is_none())
                    .collect();
                if let [var] = &open[..] {
                    if let Some(x) = e.solve(var, size, known) {
                        found.insert(var.clone(), x);
                    }
                }
            }
        }
        let mut open: Vec<&String> = vars.iter().filter(|v| !found.contains_key(*v)).collect();
        if !open.is_empty() && sizes == Sizes::Required {
            let e = self
                .exprs
                .values()
                .find(|e| e.vars().contains(open[0]))
                .expect("a var of an expression");
            bail!(
                "the symbol `{}` of the input dimension `{}` has no size; give a size to an input that has it with {}",
                open[0],
                e.text,
                Setting::InputShape
            );
        }
        // Picked: the smallest size from 1 up at which every expression is a whole size.
        let mut size = 1;
        if !open.is_empty() {
            size = self.smallest_whole_size(&found, &open);
            self.defaulted = true;
            self.all_given &= sizes == Sizes::DefaultOne;
        }
        for v in vars.iter() {
            let (first, picked) = match found.get(v) {
                Some(&x) => (x, false),
                None => (size, true),
            };
            let at = Symbols::points(first, self.list.len() as u64, false)
                .ok_or_else(|| anyhow::anyhow!("size {first} of `{v}` is too large"))?;
            self.list.push(Symbol {
                key: v.clone(),
                name: v.clone(),
                at,
                batch_like: false,
                picked,
            });
        }
        open.clear();
        self.check_given_expressions(dims_given().flatten())
    }

    /// Sizes given for an expression (`dims`: input, dim, size) must be what it is at its
    /// symbols' sizes; one that is not is an error naming the expression.
    fn check_given_expressions<'d>(
        &self,
        dims: impl Iterator<Item = (&'d DeclaredInput, &'d Dim, u64)>,
    ) -> Result<()> {
        for (d, dim, size) in dims {
            let Dim::Symbol(p) = dim else { continue };
            let Some(e) = self.exprs.get(p) else { continue };
            let at = e.eval(|v| self.size_at(v, 0));
            if at != Some(size) {
                let values: Vec<String> = e
                    .vars()
                    .iter()
                    .filter_map(|v| Some(format!("{v} = {}", self.size_at(v, 0)?)))
                    .collect();
                bail!(
                    "{} {}: the model declares this dimension `{}`, which is {} where {}, not {size}",
                    Setting::InputShape,
                    d.name,
                    e.text,
                    at.map_or("not a size".into(), |a| a.to_string()),
                    values.join(", ")
                );
            }
        }
        Ok(())
    }

    /// The smallest size from 1 (below 64) at which, with `open` at that size and the rest at
    /// `found`'s or the symbols' own, every expression is a whole size (at least 1).
    fn smallest_whole_size(&self, found: &HashMap<String, u64>, open: &[&String]) -> u64 {
        let whole = |trial: &HashMap<String, u64>| {
            self.exprs.values().all(|e| {
                e.eval(|v| {
                    self.list
                        .iter()
                        .find(|s| s.key == v)
                        .map(|s| s.at[0])
                        .or_else(|| trial.get(v).copied())
                })
                .is_some_and(|x| x >= 1)
            })
        };
        let mut size = 1;
        while size < 64 {
            let mut trial = found.clone();
            trial.extend(open.iter().map(|v| ((*v).clone(), size)));
            if whole(&trial) {
                break;
            }
            size += 1;
        }
        size
    }

    /// The size of a symbol or expression (by its key) at a point.
    fn size_at(&self, key: &str, point: usize) -> Option<u64> {
        if let Some(s) = self.list.iter().find(|s| s.key == key) {
            return Some(s.at[point]);
        }
        self.exprs
            .get(key)?
            .eval(|v| self.list.iter().find(|s| s.key == v).map(|s| s.at[point]))
    }

    /// A symbol's sizes at the points, from its first. The second point (verification's: batch
    /// +2, any other +32, which keeps a size a multiple of 32 where it was, as strided nets with
    /// upsampling need) and the first far one move every symbol of a kind by the same amount, so that sizes the model
    /// needs related keep their relation (TorchScript names each input's axes apart: a mask's
    /// `past_plus_one` must stay one more than the cache's `past`); the last moves each symbol
    /// apart (`k`), which tells two symbols of equal size apart. A batch (axis 0 of every input
    /// it sizes) moves a little: memory grows with it and nothing strides over it. Any other
    /// moves by about a thousand at the far points, beyond what strided convs, pools, slices and
    /// STFT windows collapse.
    fn points(first: u64, k: u64, batch_like: bool) -> Option<[u64; POINTS]> {
        let moves = if batch_like {
            [2, 1, 3 + (2u64 << k.min(20))]
        } else {
            // 32 * 2^k: no sum of two symbols moves as twice a third (`past + seq` is not
            // `2*total`), as it would with offsets in arithmetic progression.
            [32, 1021, 2053 + (32u64 << k.min(20))]
        };
        Some([
            first,
            first.checked_add(moves[0])?,
            first.checked_add(moves[1])?,
            first.checked_add(moves[2])?,
        ])
    }

    /// The same symbols, each at the sizes `at` gives it (from its index and itself).
    fn resized(&self, at: impl Fn(usize, &Symbol) -> [u64; POINTS]) -> Symbols {
        Symbols {
            list: self
                .list
                .iter()
                .enumerate()
                .map(|(k, s)| Symbol {
                    at: at(k, s),
                    ..s.clone()
                })
                .collect(),
            split: self.split.clone(),
            all_given: self.all_given,
            defaulted: self.defaulted,
            warnings: vec![],
            exprs: self.exprs.clone(),
        }
    }

    /// Indices of the symbols whose size was picked and that are not a batch: those the retries
    /// move.
    fn open(&self) -> Vec<usize> {
        (0..self.list.len())
            .filter(|&k| self.list[k].picked && !self.list[k].batch_like)
            .collect()
    }

    /// The same symbols with every picked one that is not a batch starting at `size` plus its
    /// offset (the i-th such symbol, `offsets[i]`, 0 past the end); `None` when there is none.
    fn larger(&self, size: u64, offsets: &[u64]) -> Option<Symbols> {
        let open = self.open();
        (!open.is_empty()).then(|| {
            self.resized(|k, s| match open.iter().position(|&o| o == k) {
                Some(i) => {
                    let offset = offsets.get(i).copied().unwrap_or(0);
                    Symbols::points(size + offset, k as u64, false).unwrap_or(s.at)
                }
                None => s.at,
            })
        })
    }

    /// The second points to try, as symbols whose point 1 differs: every symbol moved (the
    /// points' own), others by 3 rather than 32 (a model with a short position table), only
    /// those that are not a batch, only the batches, then each of the first four alone.
    fn seconds(&self) -> Vec<Symbols> {
        let with = |second: &dyn Fn(usize, &Symbol) -> u64| {
            self.resized(|k, s| {
                let mut at = s.at;
                at[1] = second(k, s);
                at
            })
        };
        let moved = |s: &Symbol, by_other: u64| s.at[0] + if s.batch_like { 2 } else { by_other };
        let mut out = vec![
            with(&|_, s| s.at[1]),
            with(&|_, s| moved(s, 3)),
            with(&|_, s| if s.batch_like { s.at[0] } else { moved(s, 32) }),
            with(&|_, s| if s.batch_like { moved(s, 32) } else { s.at[0] }),
        ];
        for alone in 0..self.list.len().min(4) {
            out.push(with(&|k, s| {
                if k == alone {
                    moved(s, 32)
                } else {
                    s.at[0]
                }
            }));
        }
        out
    }

    /// Where the original does not run at the picked sizes: every picked symbol that is not a
    /// batch at 1 and 16, each 0 or 1 more than the others in every combination (the first four
    /// such symbols: a size the model needs one more than another's, as a mask over the cache
    /// and the new token), then all at 64, 256 and 1024.
    fn retries(&self) -> Vec<Symbols> {
        let picked = self.open();
        let open = picked.len().min(4);
        let combinations: Vec<Vec<u64>> = (0..1u64 << open)
            .map(|bits| (0..open).map(|i| (bits >> i) & 1).collect())
            .collect();
        let mut out = vec![];
        for size in [1, 16] {
            for offsets in &combinations {
                if size == 1 && offsets.iter().all(|&o| o == 0) {
                    continue; // the picked sizes themselves
                }
                out.extend(self.larger(size, offsets));
            }
        }
        for size in [64, 256, 1024] {
            out.extend(self.larger(size, &[]));
        }
        // One alone at a larger size, the others picked: a dim the model reads as a batch
        // (a state's) beside a window that must be long.
        if picked.len() > 1 {
            for size in [16, 64, 256, 1024] {
                for &alone in picked.iter().take(4) {
                    out.push(self.resized(|k, s| match k == alone {
                        true => Symbols::points(size, k as u64, false).unwrap_or(s.at),
                        false => s.at,
                    }));
                }
            }
        }
        out
    }

    fn key(&self, input: &str, axis: usize, dim: &Dim) -> String {
        match dim {
            Dim::Symbol(s) if !self.split.contains(s) => s.clone(),
            _ => format!("?{input}:{axis}"),
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The graph inputs at one point: each symbolic dimension at that point's size.
    fn inputs(
        &self,
        declared: &[DeclaredInput],
        given: &InputShapes,
        point: usize,
    ) -> HashMap<TensorId, TensorInfo> {
        let mut out = HashMap::new();
        for d in declared {
            let mut info = d.info.clone();
            if let Some(dims) = &mut info.dims {
                for (axis, dim) in dims.iter_mut().enumerate() {
                    if matches!(dim, Dim::Known(_)) {
                        continue;
                    }
                    let key = self.key(&d.name, axis, dim);
                    if let Some(size) = self.size_at(&key, point) {
                        *dim = Dim::Known(size);
                    }
                }
            } else if let Some(g) = given.0.get(&d.name) {
                // No declared shape, so nothing to generalise: the given one at every point.
                info.dims = Some(g.iter().map(|&v| Dim::Known(v)).collect());
            }
            out.insert(d.tensor, info);
        }
        out
    }

    /// The graph inputs with each symbolic dimension named, for tract's symbolic analysis: a
    /// symbol by its name, an expression (`past + 1`) as written.
    fn named_inputs(&self, declared: &[DeclaredInput]) -> HashMap<TensorId, TensorInfo> {
        let mut out = HashMap::new();
        for d in declared {
            let mut info = d.info.clone();
            for (axis, dim) in info.dims.iter_mut().flatten().enumerate() {
                if matches!(dim, Dim::Known(_)) {
                    continue;
                }
                let key = self.key(&d.name, axis, dim);
                if self.exprs.contains_key(&key) {
                    *dim = Dim::Symbol(key);
                } else if let Some(s) = self.list.iter().find(|s| s.key == key) {
                    *dim = Dim::Symbol(s.name.clone());
                }
            }
            out.insert(d.tensor, info);
        }
        out
    }

    /// What a tensor (`name`) is for every size, from its facts at the points and what tract's
    /// symbolic analysis proves of it (`proof`). A dim is a number where tract derives that
    /// number for every size and no point says otherwise, or, where tract derives nothing, where
    /// it is that number at every point; a dim tract derives as an expression of the input
    /// symbols is never a number. One that moves as an input symbol is that symbol; one that
    /// moves as `a*s + b` of one symbol is named so (`2*batch`, `seq - 1`, as the dynamo exporter
    /// writes dims); any other moving one is named by tract's expression, or after the tensor
    /// and axis (`frames_dim2`). A number and a proof that disagree give a name. A name never
    /// says more than "not a fixed number": the halves declare it, and a runtime checks only
    /// numbers.
    fn generalise(
        &self,
        name: &str,
        facts: &[&TensorInfo],
        proof: Option<&TensorInfo>,
    ) -> TensorInfo {
        // The rank from the points that know it (else from the proof); one that moves (a
        // Squeeze of the batch) is not declarable. A point that knows no shape knows no dim.
        let ranks: Vec<usize> = facts
            .iter()
            .filter_map(|f| f.dims.as_ref().map(Vec::len))
            .collect();
        let proof_dims = proof.and_then(|p| p.dims.as_ref());
        let rank = match ranks.first() {
            Some(&rank) => ranks.iter().all(|&r| r == rank).then_some(rank),
            None => proof_dims.map(Vec::len),
        };
        let unknown = Dim::Unknown;
        let dims = rank.map(|rank| {
            let proved = |axis: usize| {
                proof_dims
                    .filter(|d| d.len() == rank)
                    .map_or(&unknown, |d| &d[axis])
            };
            (0..rank)
                .map(|axis| {
                    let at: Vec<&Dim> = facts
                        .iter()
                        .map(|f| f.dims.as_ref().map_or(&unknown, |d| &d[axis]))
                        .collect();
                    let known: Vec<u64> = at
                        .iter()
                        .filter_map(|d| match d {
                            Dim::Known(v) => Some(*v),
                            _ => None,
                        })
                        .collect();
                    let fresh = || format!("{}_dim{axis}", name.replace(char::is_whitespace, "_"));
                    let expression = || match proved(axis) {
                        Dim::Symbol(e) => e.clone(),
                        _ => fresh(),
                    };
                    let all_known = known.len() == at.len();
                    let steady = known.iter().all(|&x| x == known[0]);
                    match proved(axis) {
                        // Proved constant, and no point says otherwise.
                        Dim::Known(w) if known.iter().all(|x| x == w) => Dim::Known(*w),
                        // A proof the points contradict: not a number.
                        Dim::Known(_) => Dim::Symbol(fresh()),
                        // Not proved constant: a name, whatever the points say.
                        Dim::Symbol(_) if all_known && !steady => {
                            Dim::Symbol(self.name_of(&known).unwrap_or_else(expression))
                        }
                        Dim::Symbol(e) => Dim::Symbol(e.clone()),
                        // No proof: the points decide.
                        Dim::Unknown if all_known && steady => Dim::Known(known[0]),
                        Dim::Unknown if all_known => {
                            Dim::Symbol(self.name_of(&known).unwrap_or_else(fresh))
                        }
                        Dim::Unknown if at.iter().all(|d| *d == at[0]) => at[0].clone(),
                        // Found at some points only, but different there: not a number,
                        // whatever it is elsewhere.
                        Dim::Unknown if !steady => Dim::Symbol(fresh()),
                        Dim::Unknown => Dim::Unknown,
                    }
                })
                .collect()
        });
        TensorInfo {
            dtype: facts
                .iter()
                .find_map(|f| f.dtype)
                .or_else(|| proof.and_then(|p| p.dtype)),
            dims,
        }
    }

    /// The name of a dim with sizes `v` at the points: an input symbol it moves as, or `a*s + b`
    /// of one (integers, `a` positive).
    fn name_of(&self, v: &[u64]) -> Option<String> {
        if let Some(s) = self.list.iter().find(|s| s.at[..] == v[..]) {
            return Some(s.name.clone());
        }
        let v: Vec<i128> = v.iter().map(|&x| x as i128).collect();
        self.list.iter().find_map(|s| {
            let at: Vec<i128> = s.at.iter().map(|&x| x as i128).collect();
            let (ds, dv) = (at[3] - at[2], v[3] - v[2]);
            if ds == 0 || dv % ds != 0 || dv / ds <= 0 {
                return None;
            }
            let a = dv / ds;
            let b = v[2] - a * at[2];
            if !at.iter().zip(&v).all(|(s, x)| a * s + b == *x) {
                return None;
            }
            let term = if a == 1 {
                s.name.clone()
            } else {
                format!("{a}*{}", s.name)
            };
            Some(match b {
                0 => term,
                b if b > 0 => format!("{term} + {b}"),
                b => format!("{term} - {}", -b),
            })
        })
    }
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
