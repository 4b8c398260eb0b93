//! The analysis stages run together: a model carried through load, graph, shapes and cost, what
//! every later stage (the profiler, plan, emit, the reports) starts from.

use crate::cost::{self, Features};
use crate::graph::ModelGraph;
use crate::load::Model;
use crate::shapes::{self, InputShapes, ShapeTable, Sizes};
use crate::warn;
use anyhow::{Context, Result};
use std::path::Path;

/// A model carried through load, graph, shapes and cost.
pub struct Analysis {
    pub model: Model,
    pub graph: ModelGraph,
    pub shapes: ShapeTable,
    pub features: Features,
}

impl Analysis {
    /// Load `path` and run the analysis stages on it; every symbolic input dimension must be
    /// given a size.
    pub fn run(path: &Path, input_shapes: &InputShapes) -> Result<Analysis> {
        Analysis::run_with(path, input_shapes, Sizes::Required)
    }

    /// Load `path` and run the analysis stages on it, with missing sizes handled as `sizes` says.
    pub fn run_with(path: &Path, input_shapes: &InputShapes, sizes: Sizes) -> Result<Analysis> {
        let model = Model::load(path)?;
        let shown = path.display();
        let graph =
            ModelGraph::build(model.graph()).with_context(|| format!("{shown}: invalid graph"))?;
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
