//! Shapes from tract-onnx's type analysis.
//!
//! tract gets a copy of the graph in which large floating-point initializers are replaced by
//! typed graph inputs: shapes never depend on weight values, and this keeps a multi-GiB model's
//! weights out of tract's memory. Analysis is obstinate: a node tract cannot handle (an op it
//! lacks, an unsupported attribute) does not stop it learning everything else.

use crate::graph::{ModelGraph, TensorId};
use crate::load::Model;
use crate::proto;
use crate::tensor::{DType, Dim, TensorInfo};
use anyhow::{anyhow, Result};
use onnx_protobuf::{GraphProto, Message, ModelProto, NodeProto};
use std::collections::{HashMap, HashSet};
use tract_onnx::prelude::{DatumType, Framework, InferenceModelExt};
use tract_onnx::tract_hir::infer::Factoid;

/// Floating-point initializers larger than this are given to tract as typed inputs, not values.
const LIFT_BYTES: u64 = 64 * 1024;

pub struct TractFacts {
    pub facts: Vec<(TensorId, TensorInfo)>,
    /// The conditions of the model's `If`s that tract computed (a test of a shape that is fixed
    /// at these sizes) and that were folded into the branch that runs, with nothing unsettled
    /// inside: their outputs are typed after that branch alone.
    pub settled: HashSet<TensorId>,
    /// The first error tract's analysis met, if any (the facts it found are still kept).
    pub problem: Option<String>,
}

/// `value_info`: give tract the model's concrete value_info (true at the sizes the model was
/// exported at, which for a model with symbolic inputs may be the only ones).
pub fn analyse(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
    value_info: bool,
) -> Result<TractFacts> {
    let mut found = analyse_model(model, graph, inputs, value_info)?;
    // At concrete sizes, a dim tract could only name (a NonZero's count) is unknown.
    for (_, info) in &mut found.facts {
        for d in info.dims.iter_mut().flatten() {
            if matches!(d, Dim::Symbol(_)) {
                *d = Dim::Unknown;
            }
        }
    }
    Ok(found)
}

/// tract's symbolic analysis: the graph inputs with their dims named (each a symbol of tract's),
/// so that every dim tract derives is an expression over them (`TDim`). A dim that comes out as
/// a number is constant for every size of the inputs, by tract's rules; one that comes out as an
/// expression (`batch`, `2*S`, `(S+1)/2`) is not proven constant.
pub fn analyse_symbolic(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
) -> Result<TractFacts> {
    analyse_model(model, graph, inputs, false)
}

fn analyse_model(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
    value_info: bool,
) -> Result<TractFacts> {
    let mut analysed = analysis_model(model, graph, inputs, value_info)?;
    let dir = model.dir.to_str().map(String::from);
    let mut folding = Folding::default();
    let mut rounds = 0;
    // tract analyses both branches of an `If` even where it knows the condition: it fails where
    // the branch that does not run is invalid at these sizes (silero's decoder squeezes a batch
    // of 1 in the branch for batch 1), and facts of that branch can reach the outputs. So each
    // `If` whose condition it computed is replaced by the branch that runs, and the model
    // analysed again, one nesting level a round; only such folded `If`s are trusted.
    let (named, problem) = loop {
        let bytes = analysed.write_to_bytes()?;
        let (named, problem) = match analyser() {
            Some(exe) => in_child(&exe, bytes, dir.clone())?,
            None => in_thread(bytes, dir.clone())?,
        };
        let truths: HashMap<String, bool> = named
            .iter()
            .filter_map(|(name, _, truth)| Some((name.clone(), (*truth)?)))
            .collect();
        rounds += 1;
        if rounds > MAX_FOLD_ROUNDS || folding.fold(&mut analysed, &truths) == 0 {
            break (named, problem);
        }
    };
    let facts = named
        .into_iter()
        .filter_map(|(name, info, _)| Some((graph.tensor_id(&name)?, info)))
        .collect();
    Ok(TractFacts {
        facts,
        settled: folding
            .settled(&analysed)
            .iter()
            .filter_map(|cond| graph.tensor_id(cond))
            .collect(),
        problem,
    })
}

/// How many times the analysis is rerun with settled `If`s folded: one nesting level a round.
const MAX_FOLD_ROUNDS: usize = 8;

/// The `If`s folded into the branch that runs, and where each inlined name came from.
#[derive(Default)]
struct Folding {
    /// The conditions (tensor names) of the model's own (top-level) `If`s that were folded.
    folded: HashSet<String>,
    /// Each name an inlined node defines -> the condition of the top-level `If` it came from.
    origin: HashMap<String, String>,
}

impl Folding {
    /// Replace each `If` of the graph whose condition is known (`truths`, by tensor name) by
    /// the nodes of the branch that runs, its outputs passed on by `Identity` nodes, as
    /// onnxruntime runs it. A branch that would define a name the graph already has (names may
    /// repeat across sibling branches) is left as it is. How many were replaced.
    fn fold(&mut self, model: &mut ModelProto, truths: &HashMap<String, bool>) -> usize {
        let g = model.graph.mut_or_insert_default();
        let mut defined: HashSet<String> = g
            .input
            .iter()
            .map(|v| v.name.clone())
            .chain(g.initializer.iter().map(|t| t.name.clone()))
            .chain(g.node.iter().flat_map(|n| n.output.iter().cloned()))
            .collect();
        let mut folded = 0;
        let mut nodes = Vec::with_capacity(g.node.len());
        for node in std::mem::take(&mut g.node) {
            let truth = (node.op_type == "If" && node.domain.is_empty())
                .then(|| node.input.first().and_then(|c| truths.get(c)))
                .flatten();
            let branch = truth.and_then(|&t| {
                let name = if t { "then_branch" } else { "else_branch" };
                node.attribute.iter().find(|a| a.name == name)?.g.as_ref()
            });
            let branch = branch.filter(|b| b.output.len() == node.output.len());
            let Some(branch) = branch.filter(|b| {
                branch_defines(b).all(|name| name.is_empty() || !defined.contains(name))
            }) else {
                nodes.push(node);
                continue;
            };
            folded += 1;
            let cond = node.input[0].clone();
            let origin = match node.output.first().and_then(|o| self.origin.get(o)) {
                Some(outer) => outer.clone(),
                None => {
                    self.folded.insert(cond.clone());
                    cond
                }
            };
            for name in branch_defines(branch) {
                defined.insert(name.to_string());
                self.origin.insert(name.to_string(), origin.clone());
            }
            g.initializer.extend(branch.initializer.iter().cloned());
            g.sparse_initializer
                .extend(branch.sparse_initializer.iter().cloned());
            nodes.extend(branch.node.iter().cloned());
            for (out, from) in node.output.iter().zip(&branch.output) {
                if !out.is_empty() && out != &from.name {
                    nodes.push(NodeProto {
                        op_type: "Identity".into(),
                        input: vec![from.name.clone()],
                        output: vec![out.clone()],
                        ..Default::default()
                    });
                }
            }
        }
        g.node = nodes;
        folded
    }

    /// The conditions of the top-level `If`s folded with nothing left unsettled inside: a
    /// control-flow node inlined from one of them and not folded in turn (an `If` tract could
    /// not settle, a `Loop`, a `Scan`) leaves its facts as doubtful as before.
    fn settled(&self, model: &ModelProto) -> HashSet<String> {
        let doubtful: HashSet<&String> = model
            .graph
            .node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "If" | "Loop" | "Scan"))
            .filter_map(|n| self.origin.get(n.output.first()?))
            .collect();
        self.folded
            .iter()
            .filter(|c| !doubtful.contains(c))
            .cloned()
            .collect()
    }
}

/// The names a branch defines: its nodes' outputs and its initializers.
fn branch_defines(branch: &GraphProto) -> impl Iterator<Item = &str> {
    branch
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .chain(branch.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            branch
                .sparse_initializer
                .iter()
                .filter_map(|t| t.values.as_ref().map(|v| v.name.as_str())),
        )
}

/// What an analysis finds: facts by tensor name (with the value of a boolean scalar tract
/// computed), and tract's first error.
type Found = (Vec<(String, TensorInfo, Option<bool>)>, Option<String>);

/// tract's analysis of a serialised model (`dir`: where its external data lives). A panic in
/// tract becomes an error.
fn analyse_bytes(bytes: &[u8], dir: Option<&str>) -> Result<Found> {
    let run = crate::guard::contain(|| -> Result<Found> {
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..])?;
        let mut parsed = onnx.parse(&proto, dir)?;
        let problem = parsed.model.analyse(true).err().map(|e| format!("{e:#}"));
        let mut facts = vec![];
        for (name, outlet) in &parsed.outlets_by_name {
            if let Ok(fact) = parsed.model.outlet_fact(*outlet) {
                facts.push((name.clone(), info_of(fact), truth_of(fact)));
            }
        }
        Ok((facts, problem))
    });
    run.unwrap_or_else(|panic| Err(anyhow!("tract panicked while analysing the model: {panic}")))
}

/// Set on the child process that runs tract's analysis (see [`serve_if_child`]): the folder the
/// model's external data is relative to, empty for none.
const CHILD_ENV: &str = "NSPLIT_TRACT_ANALYSIS_CHILD";

/// The executable that runs tract's analysis in a process of its own, where a runaway analysis
/// can be stopped: `NSPLIT_ANALYSER`, else this program when it is nsplit (whose `main` calls
/// [`serve_if_child`] first). Without one (a library caller), the analysis runs on a thread.
fn analyser() -> Option<std::path::PathBuf> {
    if let Some(exe) = std::env::var_os("NSPLIT_ANALYSER") {
        return Some(exe.into());
    }
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "nsplit").then_some(exe)
}

/// On a thread: past the time limit it is left behind (it cannot be stopped).
fn in_thread(bytes: Vec<u8>, dir: Option<String>) -> Result<Found> {
    let limit = time_limit();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tract-analysis".into())
        .spawn(move || {
            let _ = tx.send(analyse_bytes(&bytes, dir.as_deref()));
        })?;
    match rx.recv_timeout(limit) {
        Ok(found) => found,
        Err(_) => Err(anyhow!(
            "tract's analysis did not finish within {limit:?} (NSPLIT_TRACT_TIMEOUT); shapes come from the declarations and our rules"
        )),
    }
}

/// In a child process, stopped when it runs past the time limit or holds more memory than the
/// memory limit (tract evaluates constant subgraphs: a Range to 2^31 would take the machine).
fn in_child(exe: &std::path::Path, bytes: Vec<u8>, dir: Option<String>) -> Result<Found> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_ENV, dir.as_deref().unwrap_or(""));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow!("cannot start {} for tract's analysis: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = vec![];
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let (limit, memory) = (time_limit(), crate::tensor::memory_limit());
    let started = std::time::Instant::now();
    let stopped = loop {
        if child.try_wait()?.is_some() {
            break None;
        }
        if started.elapsed() > limit {
            break Some(format!(
                "did not finish within {limit:?} (NSPLIT_TRACT_TIMEOUT)"
            ));
        }
        if resident_bytes(child.id()).is_some_and(|b| b > memory) {
            break Some(format!(
                "took more than {} of memory (NSPLIT_MEMORY_LIMIT)",
                crate::tensor::human_bytes(memory)
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    if let Some(why) = stopped {
        let _ = child.kill();
        let _ = child.wait();
        return Err(anyhow!(
            "tract's analysis {why} and was stopped; shapes come from the declarations and our rules"
        ));
    }
    let _ = writer.join();
    let out = reader
        .join()
        .map_err(|_| anyhow!("reading tract's analysis failed"))??;
    let reply: Reply = serde_json::from_slice(&out).map_err(|e| {
        anyhow!("tract's analysis ended without a result ({e}); it may have crashed on this model")
    })?;
    match reply {
        Reply::Found { facts, problem } => Ok((
            facts
                .into_iter()
                .map(|f| (f.name.clone(), f.info(), f.truth))
                .collect(),
            problem,
        )),
        Reply::Failed(why) => Err(anyhow!(why)),
    }
}

/// How long tract's analysis may take: `NSPLIT_TRACT_TIMEOUT` seconds, 120 by default (the
/// largest models we know analyse in a few seconds).
fn time_limit() -> std::time::Duration {
    let secs = std::env::var("NSPLIT_TRACT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(120.0);
    std::time::Duration::from_secs_f64(secs)
}

/// A process's resident memory, where the system tells it (`/proc` on Linux).
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What the analysis child writes on stdout.
#[derive(serde::Serialize, serde::Deserialize)]
enum Reply {
    Found {
        facts: Vec<Fact>,
        problem: Option<String>,
    },
    Failed(String),
}

/// One tensor's facts as tract found them (tract names no symbols: a dim is a size or unknown).
#[derive(serde::Serialize, serde::Deserialize)]
struct Fact {
    name: String,
    dtype: Option<i32>,
    dims: Option<Vec<Option<u64>>>,
    /// The dims tract gives as an expression over the input symbols, by axis.
    #[serde(default)]
    exprs: Vec<(usize, String)>,
    #[serde(default)]
    truth: Option<bool>,
}

impl Fact {
    fn of(name: String, info: &TensorInfo, truth: Option<bool>) -> Fact {
        Fact {
            name,
            truth,
            exprs: info
                .dims
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(axis, d)| match d {
                    Dim::Symbol(e) => Some((axis, e.clone())),
                    _ => None,
                })
                .collect(),
            dtype: info.dtype.map(|d| d.0),
            dims: info.dims.as_ref().map(|d| {
                d.iter()
                    .map(|d| match d {
                        Dim::Known(v) => Some(*v),
                        _ => None,
                    })
                    .collect()
            }),
        }
    }

    fn info(&self) -> TensorInfo {
        TensorInfo {
            dtype: self.dtype.map(DType),
            dims: self.dims.as_ref().map(|d| {
                d.iter()
                    .enumerate()
                    .map(
                        |(axis, d)| match (d, self.exprs.iter().find(|e| e.0 == axis)) {
                            (Some(v), _) => Dim::Known(*v),
                            (None, Some((_, e))) => Dim::Symbol(e.clone()),
                            (None, None) => Dim::Unknown,
                        },
                    )
                    .collect()
            }),
        }
    }
}

/// The child side of tract's analysis in a process of its own: a program that uses this library
/// calls it first thing in `main` (the nsplit binary does). Started by the library as the
/// analysis child (`NSPLIT_TRACT_ANALYSIS_CHILD` set), it reads a serialised model on stdin,
/// writes the facts as JSON on stdout and returns `true`: the program should exit. Otherwise it
/// returns `false` at once.
pub fn serve_if_child() -> Result<bool> {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return Ok(false);
    };
    let dir = dir.to_string_lossy().into_owned();
    serve((!dir.is_empty()).then_some(dir.as_str()))?;
    Ok(true)
}

/// The child side: a serialised model on stdin, the facts as JSON on stdout.
fn serve(dir: Option<&str>) -> Result<()> {
    use std::io::{Read, Write};
    let mut bytes = vec![];
    std::io::stdin().read_to_end(&mut bytes)?;
    let reply = match analyse_bytes(&bytes, dir) {
        Ok((facts, problem)) => Reply::Found {
            facts: facts
                .into_iter()
                .map(|(n, i, truth)| Fact::of(n, &i, truth))
                .collect(),
            problem,
        },
        Err(e) => Reply::Failed(format!("{e:#}")),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &reply)?;
    out.flush()?;
    Ok(())
}

fn info_of(fact: &tract_onnx::prelude::InferenceFact) -> TensorInfo {
    let dtype = fact.datum_type.concretize().and_then(onnx_dtype);
    let dims = fact.shape.concretize().map(|dims| {
        dims.iter()
            .map(|d| match d.to_i64() {
                Ok(v) if v >= 0 => Dim::Known(v as u64),
                Ok(_) => Dim::Unknown,
                Err(_) => Dim::Symbol(d.to_string()),
            })
            .collect()
    });
    TensorInfo { dtype, dims }
}

/// The value of a boolean scalar whose value tract computed.
fn truth_of(fact: &tract_onnx::prelude::InferenceFact) -> Option<bool> {
    let value = fact.value.concretize()?;
    if value.datum_type() != DatumType::Bool || value.len() != 1 {
        return None;
    }
    value.cast_to_scalar::<bool>().ok()
}

/// tract's datum type as an ONNX element type. tract types shape arithmetic as `TDim`; in ONNX
/// those tensors are int64.
fn onnx_dtype(dt: DatumType) -> Option<DType> {
    Some(DType(match dt {
        DatumType::F32 => 1,
        DatumType::U8 => 2,
        DatumType::I8 => 3,
        DatumType::U16 => 4,
        DatumType::I16 => 5,
        DatumType::I32 => 6,
        DatumType::I64 | DatumType::TDim => 7,
        DatumType::String => 8,
        DatumType::Bool => 9,
        DatumType::F16 => 10,
        DatumType::F64 => 11,
        DatumType::U32 => 12,
        DatumType::U64 => 13,
        _ => return None,
    }))
}

/// The model tract sees: the same nodes, inputs fixed to the resolved shapes, and big float
/// initializers turned into typed inputs.
fn analysis_model(
    model: &Model,
    graph: &ModelGraph,
    inputs: &HashMap<TensorId, TensorInfo>,
    value_info: bool,
) -> Result<ModelProto> {
    let src = model.graph();
    let mut g = GraphProto {
        name: src.name.clone(),
        node: src.node.clone(),
        output: src.output.clone(),
        // Only concrete value_info: tract cannot unify a symbolic one (`N x 8`) with the
        // concrete inputs it is given, and would lose the facts downstream of it.
        value_info: src
            .value_info
            .iter()
            .filter(|v| {
                value_info
                    && crate::shapes::info_from_type(&v.type_)
                        .dims
                        .is_none_or(|d| d.iter().all(|d| matches!(d, Dim::Known(_))))
            })
            .cloned()
            .collect(),
        sparse_initializer: src.sparse_initializer.clone(),
        ..Default::default()
    };
    for &t in &graph.inputs {
        let name = &graph.tensor(t).name;
        g.input.push(
            match inputs
                .get(&t)
                .filter(|i| i.dtype.is_some() && i.dims.is_some())
            {
                Some(info) => proto::value_info(name, info),
                None => src
                    .input
                    .iter()
                    .find(|v| &v.name == name)
                    .cloned()
                    .unwrap_or_default(),
            },
        );
    }
    for init in &src.initializer {
        let info = TensorInfo::new(
            DType(init.data_type),
            init.dims.iter().map(|&d| d.max(0) as u64).collect(),
        );
        if DType(init.data_type).is_float() && info.bytes().unwrap_or(0) > LIFT_BYTES {
            g.input.push(proto::value_info(&init.name, &info));
        } else {
            g.initializer.push(model.materialized(init)?);
        }
    }
    Ok(ModelProto {
        ir_version: model.proto.ir_version,
        opset_import: model.proto.opset_import.clone(),
        graph: Some(g).into(),
        ..Default::default()
    })
}
