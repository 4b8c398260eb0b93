//! Running models in tract: the verifier where onnxruntime is not installed, and the runtime
//! the profiler and `--measure` time (device profiles are measured with it).

use super::NodeTime;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};
use tract_onnx::tract_hir::infer::Factoid;

/// A model parsed by tract, planned for the input sizes of its last run.
pub struct Loaded {
    model: InferenceModel,
    inputs: Vec<String>,
    outputs: Vec<String>,
    optimise: super::Optimise,
    plan: Option<Plan>,
}

/// A plan, and the input types and shapes it was made for.
type Plan = (Vec<(DatumType, Vec<usize>)>, Arc<TypedSimplePlan>);

/// The version profiles and reports name (the `tract-onnx` requirement in Cargo.toml).
pub const VERSION: &str = "tract-onnx 0.23";

/// Parse the model at `path`.
pub fn load(path: &Path, optimise: super::Optimise) -> Result<Loaded> {
    let path = path.to_path_buf();
    contained(move || {
        // value_info may name symbolic dims (`N`) that tract cannot unify with the concrete
        // inputs it is given; the facts it needs follow from the inputs.
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(&path)?;
        let inputs = model
            .input_outlets()?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let outputs = model
            .output_outlets()?
            .iter()
            .map(|&o| {
                model
                    .outlet_label(o)
                    .map(String::from)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        Ok(Loaded {
            model,
            inputs,
            outputs,
            optimise,
            plan: None,
        })
    })
}

impl Loaded {
    /// Run, feeding the inputs the model declares from `values` by name; every output by name.
    /// The plan is made on the first run and again only when the input sizes change.
    pub fn run(&mut self, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        contained(|| {
            let (plan, feed) = self.planned(values)?;
            let outputs = plan.run(feed)?;
            Ok(self
                .outputs
                .iter()
                .cloned()
                .zip(outputs.into_iter().map(|v| v.into_tensor()))
                .collect())
        })
    }

    /// Wall time (ms) of each of `runs` runs on `values`, after `warmup` untimed ones.
    pub fn time(
        &mut self,
        values: &HashMap<String, Tensor>,
        warmup: usize,
        runs: usize,
    ) -> Result<Vec<f64>> {
        contained(|| {
            let (plan, feed) = self.planned(values)?;
            for _ in 0..warmup {
                plan.run(feed.clone())?;
            }
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    plan.run(feed.clone())?;
                    Ok(t.elapsed().as_secs_f64() * 1e3)
                })
                .collect()
        })
    }

    /// Each plan node's time in each of `runs` runs on `values` (after one untimed run), and
    /// each run's wall time (ms).
    pub fn time_per_node(
        &mut self,
        values: &HashMap<String, Tensor>,
        runs: usize,
    ) -> Result<(Vec<NodeTime>, Vec<f64>)> {
        contained(|| {
            let (plan, feed) = self.planned(values)?;
            let mut nodes: Vec<NodeTime> = plan
                .model()
                .nodes()
                .iter()
                .map(|n| NodeTime {
                    name: n.name.clone(),
                    op: n.op().name().to_string(),
                    ms: vec![],
                })
                .collect();
            let mut totals = vec![];
            for run in 0..=runs {
                let mut times = vec![0f64; nodes.len()];
                let mut state = SimpleState::new(&plan)?;
                let start = Instant::now();
                state.run_plan_with_eval(feed.clone(), |ctx, st, node, input| {
                    let t = Instant::now();
                    let r = eval(ctx, st, node, input);
                    times[node.id] += t.elapsed().as_secs_f64() * 1e3;
                    r
                })?;
                if run > 0 {
                    totals.push(start.elapsed().as_secs_f64() * 1e3);
                    for (n, ms) in nodes.iter_mut().zip(times) {
                        n.ms.push(ms);
                    }
                }
            }
            Ok((nodes, totals))
        })
    }

    /// Zeros of every input's declared type and size; an error names an input that is not
    /// fully declared.
    pub fn zeros(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (ix, name) in self.inputs.iter().enumerate() {
            let fact = self.model.input_fact(ix)?;
            let dt = fact
                .datum_type
                .concretize()
                .with_context(|| format!("input `{name}` has no declared type"))?;
            let shape = fact
                .shape
                .as_concrete_finite()?
                .with_context(|| format!("input `{name}` has no concrete shape"))?;
            out.insert(name.clone(), Tensor::zero_dt(dt, &shape)?);
        }
        Ok(out)
    }

    /// The plan for `values`' types and sizes (made again only when they change), and the
    /// values in the order the model declares its inputs.
    fn planned(
        &mut self,
        values: &HashMap<String, Tensor>,
    ) -> Result<(Arc<TypedSimplePlan>, TVec<TValue>)> {
        let mut feed = tvec![];
        let mut facts = vec![];
        for (ix, name) in self.inputs.iter().enumerate() {
            let v = values
                .get(name)
                .ok_or_else(|| anyhow!("no value for input `{name}`"))?;
            // First hold the values to the declaration, as onnxruntime does, so a frozen
            // dimension is refused here too.
            check_declared(name, self.model.input_fact(ix)?, v)?;
            facts.push((v.datum_type(), v.shape().to_vec()));
            feed.push(v.clone().into_tvalue());
        }
        if self
            .plan
            .as_ref()
            .is_none_or(|(made_for, _)| *made_for != facts)
        {
            let mut model = self.model.clone();
            for (ix, (dt, shape)) in facts.iter().enumerate() {
                model.set_input_fact(ix, InferenceFact::dt_shape(*dt, shape))?;
            }
            // Typed, neither decluttered nor optimised, for one run: a check runs each model
            // once, and those passes can take minutes on a large model (DeepFace: 537 s
            // optimised, over 5 min decluttered, 5 s typed) for a run of a second.
            let typed = model.into_typed()?;
            let plan = match self.optimise {
                super::Optimise::ForOneRun => typed.into_runnable()?,
                super::Optimise::Fully => typed.into_optimized()?.into_runnable()?,
            };
            self.plan = Some((facts, plan));
        }
        let (_, plan) = self.plan.as_ref().expect("planned above");
        Ok((plan.clone(), feed))
    }
}

/// Run one model with tract, feeding the inputs it declares from `values` by name.
pub fn run(path: &Path, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    load(path, super::Optimise::ForOneRun)?.run(values)
}

/// Run `f`; tract can panic on models it does not support, and that is "cannot run", not a
/// crash.
fn contained<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::guard::contain(f).unwrap_or_else(|panic| Err(anyhow!("tract panicked: {panic}")))
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
