//! Running models in tract, the verifier where onnxruntime is not installed.

use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Run one model with tract, feeding the inputs it declares from `values` by name.
pub fn run(path: &Path, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let path = path.to_path_buf();
    let values = values.clone();
    // tract can panic on models it does not support; that is "cannot run", not a crash.
    crate::guard::contain(move || -> Result<HashMap<String, Tensor>> {
        // value_info may name symbolic dims (`N`) that tract cannot unify with the concrete
        // inputs it is given; the facts it needs follow from the inputs.
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(&path)?;
        let input_names: Vec<String> = model
            .input_outlets()?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let mut feed = tvec![];
        for (ix, name) in input_names.iter().enumerate() {
            let v = values
                .get(name)
                .ok_or_else(|| anyhow!("no value for input `{name}`"))?;
            // The input facts are replaced by the values' below; first hold the values to the
            // declaration, as onnxruntime does, so a frozen dimension is refused here too.
            check_declared(name, model.input_fact(ix)?, v)?;
            model.set_input_fact(ix, InferenceFact::dt_shape(v.datum_type(), v.shape()))?;
            feed.push(v.clone().into_tvalue());
        }
        let output_names: Vec<String> = model
            .output_outlets()?
            .iter()
            .map(|&o| {
                model
                    .outlet_label(o)
                    .map(String::from)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        // Typed, neither decluttered nor optimised: a check runs each model once, and those
        // passes can take minutes on a large model (DeepFace: 537 s optimised, over 5 min
        // decluttered, 5 s typed) for a run of a second.
        let plan = model.into_typed()?.into_runnable()?;
        let outputs = plan.run(feed)?;
        Ok(output_names
            .into_iter()
            .zip(outputs.into_iter().map(|v| v.into_tensor()))
            .collect())
    })
    .unwrap_or_else(|panic| Err(anyhow!("tract panicked: {panic}")))
}

/// A value fed to an input agrees with the input's declaration: element type, rank, and every
/// dimension the declaration gives as a number.
fn check_declared(name: &str, declared: &InferenceFact, v: &Tensor) -> Result<()> {
    if let Some(dt) = declared.datum_type.concretize() {
        if dt != v.datum_type() {
            bail!(
                "input `{name}` is declared {dt:?} but is given {:?}",
                v.datum_type()
            );
        }
    }
    if declared.shape.is_open() {
        return Ok(());
    }
    let dims: Vec<_> = declared.shape.dims().collect();
    if dims.len() != v.rank() {
        bail!(
            "input `{name}` is declared with rank {} but is given shape {:?}",
            dims.len(),
            v.shape()
        );
    }
    for (axis, d) in dims.iter().enumerate() {
        if let Some(Ok(n)) = d.concretize().map(|d| d.to_i64()) {
            if n as usize != v.shape()[axis] {
                bail!(
                    "invalid dimensions for input `{name}`: axis {axis} is declared {n}, given {} (shape {:?})",
                    v.shape()[axis],
                    v.shape()
                );
            }
        }
    }
    Ok(())
}
