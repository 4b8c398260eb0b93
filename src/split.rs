//! `nsplit split`: a cut by hand, at named tensors.

use crate::analysis::Analysis;
use crate::cut::Cut;
use crate::emit::{write_pair, Emitter, WrittenPair};
use crate::graph::TensorId;
use crate::output::{ExternalData, Staging};
use crate::setting::Setting;
use crate::shapes::{InputShapes, Sizes};
use crate::tensor::TensorSummary;
use crate::verify::{Outcome, Reference, VerifyOptions};
use anyhow::{bail, Result};
use std::fmt::Write;
use std::path::Path;

/// What a split wrote, for printing.
pub struct SplitReport {
    pub pair: WrittenPair,
    pub boundary: Vec<TensorSummary>,
    /// How the halves were checked against the original, when they were.
    pub verification: Option<Outcome>,
}

/// Cut `model` so that the head computes exactly the tensors in `at` (and everything they need),
/// and write `DIR/head.onnx` and `DIR/tail.onnx`. With `verify`, the halves are run before they
/// are put in place, at the given sizes (or generated ones) and at a second point: a half that
/// declares a dim its runtime does not produce, or a pair that does not compute the original's
/// outputs, is an error and nothing is written.
pub fn split_at(
    model: &Path,
    at: &[String],
    out: &Path,
    shapes: &InputShapes,
    mode: ExternalData,
    verify: Option<&VerifyOptions>,
) -> Result<SplitReport> {
    // A cut at named tensors needs their types and ranks, not sizes: given sizes only add
    // bytes to the report.
    let mut a = Analysis::run_with(model, shapes, Sizes::Optional)?;
    let mut tensors = vec![];
    for name in at {
        tensors.extend(cut_point(&a, name)?);
    }
    let cut = Cut::upstream_of(&a.graph, &tensors);
    let mut staging = Staging::new(out)?;
    let Analysis {
        model: m,
        graph,
        shapes,
        ..
    } = &mut a;
    let mut emitter = Emitter::new(m, graph, shapes)?;
    let pair = write_pair(
        &mut emitter,
        &cut,
        &mut staging,
        "head.onnx",
        "tail.onnx",
        mode,
    )?;
    let verification = match verify {
        Some(opts) => Some(check(model, &pair, &staging, opts)?),
        None => None,
    };
    staging.commit()?;
    let boundary = pair
        .boundary
        .iter()
        .map(|&t| TensorSummary::of(&a.graph.tensor(t).name, a.shapes.get(t)))
        .collect();
    Ok(SplitReport {
        pair,
        boundary,
        verification,
    })
}

/// Run the staged halves against the original; an error unless they match it.
fn check(
    model: &Path,
    pair: &WrittenPair,
    staging: &Staging,
    opts: &VerifyOptions,
) -> Result<Outcome> {
    let analysis = Analysis::run_with(model, &opts.input_shapes, Sizes::DefaultOne)?;
    let reference = match Reference::new(&analysis, opts)? {
        Ok(r) => r,
        Err(why) => return Ok(Outcome::Unverifiable(why)),
    };
    let staged = |w: &Option<crate::output::Written>| w.as_ref().map(|w| staging.staged(&w.name));
    let (head, tail) = (staged(&pair.head), staged(&pair.tail));
    let outcome = reference.check(head.as_deref(), tail.as_deref(), opts)?;
    match outcome {
        Outcome::Compared { .. } if !outcome.passed() => bail!(
            "cut {}: head then tail does not compute what {} computes; nothing was written ({} writes the halves unchecked)\n{}",
            pair.cut_id,
            model.display(),
            Setting::NoVerify,
            outcome.to_text().trim_end()
        ),
        Outcome::Rejected(why) => bail!(
            "cut {}: {why}; nothing was written ({} writes the halves unchecked)",
            pair.cut_id,
            Setting::NoVerify
        ),
        outcome => Ok(outcome),
    }
}

/// The tensors a cut at `name` sends: the tensor of the top-level graph of that name, or else
/// the outputs of the node of that name (a cut after it). A name found only inside a subgraph
/// is an error that says so (a cut cannot pass through a subgraph).
fn cut_point(a: &Analysis, name: &str) -> Result<Vec<TensorId>> {
    if let Some(t) = a.graph.tensor_id(name) {
        return Ok(vec![t]);
    }
    if let Some((_, op)) = a
        .graph
        .ops()
        .find(|(_, op)| a.model.graph().node[op.index].name == name)
    {
        let outputs: Vec<TensorId> = op.outputs.iter().flatten().copied().collect();
        if outputs.is_empty() {
            bail!("node `{name}` has no outputs to cut after");
        }
        return Ok(outputs);
    }
    for (_, op) in a.graph.ops() {
        let node = &a.model.graph().node[op.index];
        let inside = node
            .attribute
            .iter()
            .flat_map(|at| at.g.as_ref().into_iter().chain(&at.graphs))
            .any(|g| defines(g, name));
        if inside {
            bail!(
                "`{name}` is computed inside a subgraph of node `{}` ({}); a cut cannot pass through a subgraph, cut before or after that node",
                op.label(),
                op.op_type
            );
        }
    }
    bail!("`{name}` is neither a tensor nor a node of the model's graph (`nsplit annotate` lists both)");
}

fn defines(g: &onnx_protobuf::GraphProto, name: &str) -> bool {
    g.node.iter().any(|n| {
        n.output.iter().any(|o| o == name)
            || n.attribute
                .iter()
                .flat_map(|a| a.g.as_ref().into_iter().chain(&a.graphs))
                .any(|g| defines(g, name))
    })
}

impl SplitReport {
    /// The boundary and what was written, for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cut {}: {} tensor(s) cross",
            self.pair.cut_id,
            self.boundary.len()
        );
        for t in &self.boundary {
            let shape = t.shape.as_ref().map_or("?".to_string(), |d| {
                d.iter()
                    .map(|v| match v.as_str() {
                        Some(s)
                            if s.contains(|c: char| c.is_whitespace() || "+-*/%".contains(c)) =>
                        {
                            format!("({s})")
                        }
                        Some(s) => s.to_string(),
                        None => v.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("x")
            });
            let bytes = t.bytes.map_or("?".into(), |b| b.to_string());
            let _ = writeln!(
                out,
                "  {}  {}  {}  {} bytes",
                t.name,
                t.dtype.unwrap_or("?"),
                shape,
                bytes
            );
        }
        match &self.verification {
            Some(o @ Outcome::Compared { runtime, .. }) => {
                let _ = writeln!(
                    out,
                    "verified in {runtime} at {}: every declared dim as computed, outputs within tolerance (max abs diff {:.3e})",
                    o.points().join("; "),
                    o.max_abs().unwrap_or(0.0)
                );
                for n in o.notes() {
                    let _ = writeln!(out, "  note: {n}");
                }
            }
            Some(o) => {
                let _ = write!(out, "{}", o.to_text());
            }
            None => {}
        }
        for (role, w) in [("head", &self.pair.head), ("tail", &self.pair.tail)] {
            match w {
                Some(w) => {
                    let _ = write!(out, "{role}: {} ({} bytes", w.path.display(), w.bytes);
                    if let Some(d) = &w.data_file {
                        let _ = write!(out, ", data {} ({} bytes)", d.display(), w.data_bytes);
                    }
                    let _ = writeln!(out, ")");
                }
                None => {
                    let why = if role == "head" {
                        "everything runs on the server"
                    } else {
                        "everything runs on the phone"
                    };
                    let _ = writeln!(out, "{role}: none ({why})");
                }
            }
        }
        out
    }
}
