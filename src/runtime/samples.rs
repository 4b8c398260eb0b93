//! Real input values (`--sample-inputs`, `--input-value`), for every place that would otherwise
//! run a model on random ones: a model steered by an input's value (a sample rate of 8000 or
//! 16000, a token id that must be in range) fails on random values in every runtime.

use super::npy;
use crate::graph::ModelGraph;
use crate::shapes::ShapeTable;
use crate::tensor::DType;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use tract_onnx::prelude::*;

/// Inputs to run a model on instead of random values.
#[derive(Clone, Debug, Default)]
pub struct SampleInputs {
    /// Whole samples, each a value for every graph input (an `.npz` each): run as they are, each
    /// one a point of its own.
    pub samples: Vec<(String, HashMap<String, Tensor>)>,
    /// One value for an input, every element of it (`NAME=VALUE`, e.g. `sr=16000`), or integers
    /// drawn from a range (`NAME=LO..HI`, both included: token ids within a vocabulary), in
    /// every generated point; the rest of the inputs stay random.
    pub values: BTreeMap<String, String>,
}

impl SampleInputs {
    /// Read `.npz` files (a folder: every `.npz` in it, in name order) and `NAME=VALUE` items.
    pub fn read(paths: &[PathBuf], values: &[String]) -> Result<SampleInputs> {
        let mut files = vec![];
        for path in paths {
            if path.is_dir() {
                let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                    .with_context(|| format!("cannot read the folder {}", path.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "npz"))
                    .collect();
                inside.sort();
                if inside.is_empty() {
                    bail!("{} holds no .npz file of sample inputs", path.display());
                }
                files.extend(inside);
            } else {
                files.push(path.clone());
            }
        }
        let mut samples = vec![];
        for file in files {
            let arrays = npy::read_npz(&file)?;
            let label = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            samples.push((label, arrays.into_iter().collect()));
        }
        let mut parsed = BTreeMap::new();
        for item in values {
            let Some((name, value)) = item.split_once('=') else {
                bail!("input value `{item}` must be NAME=VALUE, e.g. sr=16000");
            };
            let value = value.trim();
            let number = value.parse::<f64>().is_ok() || ["true", "false"].contains(&value);
            if !number && range(value).is_none() {
                bail!("input value `{item}`: `{value}` is not a number, true/false or an integer range LO..HI");
            }
            parsed.insert(name.to_string(), value.to_string());
        }
        Ok(SampleInputs {
            samples,
            values: parsed,
        })
    }

    /// Neither samples nor values: runs are on random inputs.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.values.is_empty()
    }

    /// Every sample and value names a graph input, and a sample gives each one.
    pub fn check(&self, graph: &ModelGraph, shapes: &ShapeTable) -> Result<()> {
        let inputs: Vec<&str> = graph
            .inputs
            .iter()
            .map(|&t| graph.tensor(t).name.as_str())
            .collect();
        let unknown = |name: &str, what: &str| {
            anyhow!(
                "{what} names `{name}`, which is not a graph input; the inputs are: {}",
                inputs.join(", ")
            )
        };
        for name in self.values.keys() {
            if !inputs.contains(&name.as_str()) {
                return Err(unknown(name, "an input value"));
            }
        }
        for (label, sample) in &self.samples {
            for name in sample.keys() {
                if !inputs.contains(&name.as_str()) {
                    return Err(unknown(name, &format!("sample {label}")));
                }
            }
            for &t in &graph.inputs {
                let name = &graph.tensor(t).name;
                let Some(v) = sample.get(name) else {
                    bail!("sample {label} has no array `{name}`; it needs one per graph input");
                };
                let rank = shapes.symbolic(t).dims.as_ref().map(Vec::len);
                if rank.is_some_and(|r| r != v.rank()) {
                    bail!(
                        "sample {label}: `{name}` has shape {:?}, but the model declares {}",
                        v.shape(),
                        shapes.symbolic(t).shape_string()
                    );
                }
            }
        }
        Ok(())
    }

    /// `values` with each input given a value set to it (cast to the input's type).
    pub fn apply_values(
        &self,
        graph: &ModelGraph,
        shapes: &ShapeTable,
        values: &mut HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<()> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (name, value) in &self.values {
            let Some(t) = graph.tensor_id(name) else {
                continue;
            };
            let Some(old) = values.get(name) else {
                continue;
            };
            let dtype = shapes
                .get(t)
                .dtype
                .ok_or_else(|| anyhow!("input `{name}` has no element type"))?;
            let numbers: Vec<f64> = match (value.as_str(), range(value)) {
                ("true", _) => vec![1.0; old.len()],
                ("false", _) => vec![0.0; old.len()],
                (_, Some((lo, hi))) => (0..old.len())
                    .map(|_| rng.random_range(lo..=hi) as f64)
                    .collect(),
                (v, None) => {
                    let number: f64 = v.parse().map_err(|_| anyhow!("`{v}` is not a number"))?;
                    vec![number; old.len()]
                }
            };
            let filled = Tensor::from_shape(old.shape(), &numbers)?;
            let datum = super::datatype::WireType::of_onnx(dtype)?.datum()?;
            let cast = if dtype == DType::BOOL {
                filled.cast_to::<bool>()?.into_owned()
            } else {
                filled.cast_to_dt(datum)?.into_owned()
            };
            values.insert(name.clone(), cast);
        }
        Ok(())
    }
}

/// `LO..HI` as an integer range, both ends included.
fn range(value: &str) -> Option<(i64, i64)> {
    let (lo, hi) = value.split_once("..")?;
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}
