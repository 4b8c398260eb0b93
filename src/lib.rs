//! # nsplit
//!
//! Split ONNX models between a phone and a server: the Neurosurgeon system (Kang et al.,
//! ASPLOS 2017) as a compiler pass, extended to DAG-shaped models.
//!
//! The pipeline runs one way, one module per stage:
//!
//! ```text
//! load ─► graph ─► shapes ─► cost ─► plan ─► emit ─► verify
//! ```
//!
//! - [`load`]: the ONNX file and its external data ([`load::Model`]);
//! - [`graph`]: the petgraph graph with explicit inputs, initializers and outputs, subgraph
//!   captures as edges, a stable topological order ([`graph::ModelGraph`]);
//! - [`shapes`]: every tensor's type and shape ([`shapes::ShapeTable`]);
//! - [`cost`]: per-node features: op class, FLOPs, bytes, weights ([`cost::NodeFeatures`]);
//! - [`cut`]: a head/tail partition and its boundary ([`cut::Cut`]);
//! - [`emit`]: matched head/tail ONNX files ([`emit::Emitter`]);
//! - [`verify`]: head-then-tail against the original, under tract;
//! - [`plan`]: the best cut per network and the exact breakpoints ([`plan::Plan`]);
//! - [`serve`]: the tails in a Triton repository, and `nsplit run`'s client (head here, tail
//!   on an inference server);
//! - [`annotate`]: the per-node report (`nsplit annotate`);
//! - [`job`]: the main job, every stage in order (`nsplit MODEL --out DIR`).
//!
//! [`Analysis::run`] runs the stages up to cost.

pub mod cost;
pub mod cut;
#[cfg(feature = "dev")]
pub mod dev;
pub mod emit;
pub mod graph;
pub mod guard;
pub mod job;
pub mod load;

pub mod ops;
pub mod output;
pub mod plan;
pub mod proto;
pub mod report;
pub mod runtime;
pub mod serve;
pub mod shapes;
pub mod split;
pub mod tensor;
pub mod verify;
pub mod warn;

use anyhow::{Context, Result};
use std::path::Path;

/// A model carried through load, graph, shapes and cost.
pub struct Analysis {
    pub model: load::Model,
    pub graph: graph::ModelGraph,
    pub shapes: shapes::ShapeTable,
    pub features: cost::Features,
}

impl Analysis {
    /// Load `path` and run the analysis stages on it; every symbolic input dimension must be
    /// given a size.
    pub fn run(path: &Path, input_shapes: &shapes::InputShapes) -> Result<Analysis> {
        Analysis::run_with(path, input_shapes, shapes::Sizes::Required)
    }

    /// Load `path` and run the analysis stages on it, with missing sizes handled as `sizes` says.
    pub fn run_with(
        path: &Path,
        input_shapes: &shapes::InputShapes,
        sizes: shapes::Sizes,
    ) -> Result<Analysis> {
        let model = load::Model::load(path)?;
        let shown = path.display();
        let graph = graph::ModelGraph::build(model.graph())
            .with_context(|| format!("{shown}: invalid graph"))?;
        let shapes = shapes::infer_with(
            &model,
            &graph,
            input_shapes,
            shapes::Sources::default(),
            sizes,
        )
        .with_context(|| format!("{shown}"))?;
        for warning in &shapes.warnings {
            warn::once(&format!("{shown}: {warning}"));
        }
        let features =
            cost::features(&model, &graph, &shapes).with_context(|| format!("{shown}"))?;
        Ok(Analysis {
            model,
            graph,
            shapes,
            features,
        })
    }
}
