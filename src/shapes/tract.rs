//! Shapes from tract-onnx's type analysis.
//!
//! tract gets a copy of the graph in which large floating-point initializers are replaced by
//! typed graph inputs: shapes never depend on weight values, and this keeps a multi-GiB model's
//! weights out of tract's memory. Analysis is obstinate: a node tract cannot handle (an op it
//! lacks, an unsupported attribute) does not stop it learning everything else.

use crate::graph::{ModelGraph, TensorId};
use crate::load::Model;
use crate::tensor::{value_info_of, DType, Dim, TensorInfo};
use anyhow::{anyhow, Result};
use onnx_protobuf::{GraphProto, Message, ModelProto};
use std::collections::HashMap;
use tract_onnx::prelude::{DatumType, Framework, InferenceModelExt};
use tract_onnx::tract_hir::infer::Factoid;

/// Floating-point initializers larger than this are given to tract as typed inputs, not values.
const LIFT_BYTES: u64 = 64 * 1024;

pub struct TractFacts {
    pub facts: Vec<(TensorId, TensorInfo)>,
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
    let bytes = analysis_model(model, graph, inputs, value_info).write_to_bytes()?;
    let dir = model.dir.to_str().map(String::from);
    let limit = time_limit();
    // tract runs on a thread of its own: on a malformed model it can panic (a panic there costs
    // us its facts, not the run) or never finish, and then it is left behind after `limit`.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tract-analysis".into())
        .spawn(move || {
            let run = crate::guard::contain(|| -> Result<Found> {
                let onnx = tract_onnx::onnx();
                let proto = onnx.proto_model_for_read(&mut &bytes[..])?;
                let mut parsed = onnx.parse(&proto, dir.as_deref())?;
                let problem = parsed.model.analyse(true).err().map(|e| format!("{e:#}"));
                let mut facts = vec![];
                for (name, outlet) in &parsed.outlets_by_name {
                    if let Ok(fact) = parsed.model.outlet_fact(*outlet) {
                        facts.push((name.clone(), info_of(fact)));
                    }
                }
                Ok((facts, problem))
            });
            let _ = tx.send(run);
        })?;
    let (named, problem) = match rx.recv_timeout(limit) {
        Ok(Ok(found)) => found?,
        Ok(Err(panic)) => return Err(anyhow!("tract panicked while analysing the model: {panic}")),
        Err(_) => {
            return Err(anyhow!(
                "tract's analysis did not finish within {limit:?} (NSPLIT_TRACT_TIMEOUT); shapes come from the declarations and our rules"
            ))
        }
    };
    let facts = named
        .into_iter()
        .filter_map(|(name, info)| Some((graph.tensor_id(&name)?, info)))
        .collect();
    Ok(TractFacts { facts, problem })
}

/// What the analysis thread finds: facts by tensor name, and tract's first error.
type Found = (Vec<(String, TensorInfo)>, Option<String>);

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

fn info_of(fact: &tract_onnx::prelude::InferenceFact) -> TensorInfo {
    let dtype = fact.datum_type.concretize().and_then(onnx_dtype);
    let dims = fact.shape.concretize().map(|dims| {
        dims.iter()
            .map(|d| match d.to_i64() {
                Ok(v) if v >= 0 => Dim::Known(v as u64),
                _ => Dim::Unknown,
            })
            .collect()
    });
    TensorInfo { dtype, dims }
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
) -> ModelProto {
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
        g.input
            .push(match inputs.get(&t).filter(|i| i.is_complete()) {
                Some(info) => value_info_of(name, info),
                None => src
                    .input
                    .iter()
                    .find(|v| &v.name == name)
                    .cloned()
                    .unwrap_or_default(),
            });
    }
    for init in &src.initializer {
        let info = TensorInfo::new(
            DType(init.data_type),
            init.dims.iter().map(|&d| d.max(0) as u64).collect(),
        );
        if DType(init.data_type).is_float() && info.bytes().unwrap_or(0) > LIFT_BYTES {
            g.input.push(value_info_of(&init.name, &info));
        } else {
            g.initializer.push(init.clone());
        }
    }
    ModelProto {
        ir_version: model.proto.ir_version,
        opset_import: model.proto.opset_import.clone(),
        graph: Some(g).into(),
        ..Default::default()
    }
}
