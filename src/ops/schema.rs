//! The ONNX operator schemas of the pinned onnx release, and the checks onnx's checker makes of a
//! node against its schema: the op exists at the model's opset and is not deprecated, its
//! attributes are ones the op defines and of the type it defines, required attributes are there,
//! and its input and output counts are in range with no required one left empty.
//!
//! The schemas are data (`schemas.json`, written by `scripts/gen_op_schemas.py` from the onnx
//! the project pins), so the check needs no Python at run time. Nodes of other domains
//! (com.microsoft, a vendor's, a model-local function's) are not checked; neither are nodes of a
//! domain imported at an opset newer than this release knows.

use super::Attrs;
use crate::tensor::DType;
use anyhow::{bail, Result};
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

#[derive(Deserialize)]
struct File {
    source: Source,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Source {
    onnx: String,
    opsets: BTreeMap<String, i64>,
}

/// `[domain, op, since_version, deprecated, {attribute: [type, required]}, inputs, min_in,
/// max_in, outputs, min_out, max_out, input type parameters, {type parameter: element types},
/// output type parameters]`;
/// inputs and outputs as `s`ingle, `o`ptional, `v`ariadic, `V`ariadic of mixed types.
#[derive(Deserialize)]
struct Row(
    String,
    String,
    i64,
    bool,
    BTreeMap<String, (i32, bool)>,
    Vec<String>,
    usize,
    usize,
    Vec<String>,
    usize,
    usize,
    Vec<String>,
    BTreeMap<String, Option<Vec<i32>>>,
    Vec<String>,
);

/// Every schema version of every op, by (domain, op), oldest first.
pub struct Schemas {
    /// The onnx release the schemas come from.
    pub onnx: String,
    by_op: HashMap<(String, String), Vec<Row>>,
    opsets: BTreeMap<String, i64>,
}

/// The schemas of the pinned onnx release.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let file: File = serde_json::from_str(include_str!("schemas.json"))
            .expect("schemas.json is written by scripts/gen_op_schemas.py");
        let mut by_op: HashMap<(String, String), Vec<Row>> = HashMap::new();
        for row in file.rows {
            by_op
                .entry((row.0.clone(), row.1.clone()))
                .or_default()
                .push(row);
        }
        for versions in by_op.values_mut() {
            versions.sort_by_key(|r| r.2);
        }
        Schemas {
            onnx: file.source.onnx,
            by_op,
            opsets: file.source.opsets,
        }
    })
}

/// The domain as the schemas name it (`ai.onnx` is the default domain, "").
fn canonical(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ""
    } else {
        domain
    }
}

/// A domain as messages name it.
fn shown(domain: &str) -> &str {
    if domain.is_empty() {
        "the default domain"
    } else {
        domain
    }
}

/// Type names as onnx prints them, by `AttributeProto.AttributeType` number.
fn type_name(t: i32) -> String {
    use onnx_protobuf::attribute_proto::AttributeType;
    match <AttributeType as protobuf::Enum>::from_i32(t) {
        Some(t) => format!("{t:?}"),
        None => format!("type number {t}"),
    }
}

/// Check the element types of the top-level nodes' inputs and outputs against their schemas'
/// type constraints: each one's type is one its parameter allows, and those sharing a parameter
/// (`T`) share a type (an output declared float after an int64 `Relu` is caught here). `dtype`
/// gives a tensor's element type where it is known.
pub fn check_types(model: &ModelProto, dtype: &dyn Fn(&str) -> Option<i32>) -> Result<()> {
    let check = Check::of(model);
    let Some(g) = model.graph.as_ref() else {
        return Ok(());
    };
    for (index, node) in g.node.iter().enumerate() {
        let attrs = Attrs::of(node, index);
        let Some(row) = check.schema(node, &attrs)? else {
            continue;
        };
        let op = &row.1;
        let mut bound: HashMap<&str, (i32, &str)> = HashMap::new();
        let sides = [
            ("input", &node.input, &row.5, &row.11),
            ("output", &node.output, &row.8, &row.13),
        ];
        for (what, names, options, params) in sides {
            for (i, name) in names.iter().enumerate() {
                let (Some(param), Some(option)) = (
                    formal_at(options, params, i),
                    formal_at(options, options, i),
                ) else {
                    continue;
                };
                let Some(dt) = (!name.is_empty()).then(|| dtype(name)).flatten() else {
                    continue;
                };
                if let Some(Some(types)) = row.12.get(param) {
                    if !types.contains(&dt) {
                        let names: Vec<&str> = types.iter().map(|&t| DType(t).name()).collect();
                        bail!(attrs.error(format!(
                            "{what} {i} `{name}` is {}, which {op} does not allow as {param} (it allows {})",
                            DType(dt).name(),
                            names.join(", ")
                        )));
                    }
                }
                if option == "V" {
                    continue;
                }
                match bound.get(param.as_str()) {
                    Some(&(other, other_name)) if other != dt => bail!(attrs.error(format!(
                        "`{other_name}` ({}) and `{name}` ({}) must have the same type ({param})",
                        DType(other).name(),
                        DType(dt).name()
                    ))),
                    Some(_) => {}
                    None => {
                        bound.insert(param, (dt, name));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Schemas (domain, op, since) whose attributes onnx does not check (`AllowUncheckedAttributes`):
/// onnx's checker accepts any other attribute there, and onnxruntime ignores it, so neither do
/// we refuse it. Found by running the checker on a node of every schema of the pinned release
/// with an attribute no schema defines.
const UNCHECKED_ATTRIBUTES: &[(&str, &str, i64)] = &[("", "LayerNormalization", 17)];

/// Check every node of `model`, subgraphs included, against its schema.
pub fn check_model(model: &ModelProto) -> Result<()> {
    match model.graph.as_ref() {
        Some(g) => Check::of(model).graph(g),
        None => Ok(()),
    }
}

struct Check<'a> {
    schemas: &'static Schemas,
    opsets: HashMap<&'a str, i64>,
    functions: HashSet<(&'a str, &'a str)>,
}

impl<'a> Check<'a> {
    fn of(model: &'a ModelProto) -> Check<'a> {
        Check {
            schemas: schemas(),
            opsets: model
                .opset_import
                .iter()
                .map(|o| (canonical(&o.domain), o.version))
                .collect(),
            functions: model
                .functions
                .iter()
                .map(|f| (f.domain.as_str(), f.name.as_str()))
                .collect(),
        }
    }

    fn graph(&self, g: &GraphProto) -> Result<()> {
        for (index, node) in g.node.iter().enumerate() {
            self.node(node, index)?;
            for a in &node.attribute {
                for body in a.g.as_ref().into_iter().chain(&a.graphs) {
                    self.graph(body)?;
                }
            }
        }
        Ok(())
    }

    /// The schema in force for `node`; `None` where nsplit does not check the node (another
    /// domain, a model-local function, an opset newer than the schemas).
    fn schema(&self, node: &NodeProto, attrs: &Attrs) -> Result<Option<&'static Row>> {
        let domain = canonical(&node.domain);
        let Some(&newest) = self.schemas.opsets.get(domain) else {
            return Ok(None); // not an onnx domain
        };
        let local = (node.domain.as_str(), node.op_type.as_str());
        if self.functions.contains(&local) {
            return Ok(None);
        }
        let Some(&version) = self.opsets.get(domain) else {
            bail!(attrs.error(format!(
                "the model imports no opset of {}; add one to its opset_import",
                shown(domain)
            )));
        };
        if version > newest {
            return Ok(None); // written by a newer onnx than the schemas know
        }
        let schema = self
            .schemas
            .by_op
            .get(&(domain.to_string(), node.op_type.clone()))
            .and_then(|versions| versions.iter().rev().find(|r| r.2 <= version));
        match schema {
            Some(row) => Ok(Some(row)),
            None => bail!(attrs.error(format!(
                "`{}` is not an operator of {} at opset {version}",
                node.op_type,
                shown(domain)
            ))),
        }
    }

    fn node(&self, node: &NodeProto, index: usize) -> Result<()> {
        let attrs = Attrs::of(node, index);
        let Some(row) = self.schema(node, &attrs)? else {
            return Ok(());
        };
        let Row(
            _,
            op,
            since,
            deprecated,
            defined,
            inputs,
            min_in,
            max_in,
            outputs,
            min_out,
            max_out,
            ..,
        ) = row;
        let domain = canonical(&node.domain);
        let shown = shown(domain);
        let version = self.opsets.get(domain).copied().unwrap_or(*since);
        if *deprecated {
            bail!(attrs.error(format!(
                "{op} is deprecated from opset {since} of {shown}, which the model imports ({version})"
            )));
        }
        for a in &node.attribute {
            if !a.ref_attr_name.is_empty() {
                continue; // a function body's reference, resolved where the function is called
            }
            let Some(&(expected, _)) = defined.get(&a.name) else {
                if UNCHECKED_ATTRIBUTES.contains(&(domain, op.as_str(), *since)) {
                    continue;
                }
                bail!(attrs.error(format!(
                    "{op} (opset {since}) has no attribute `{}`",
                    a.name
                )));
            };
            let actual = a.type_.value();
            if actual != expected {
                bail!(attrs.error(format!(
                    "attribute `{}` must be of type {}, but it is {}",
                    a.name,
                    type_name(expected),
                    type_name(actual)
                )));
            }
        }
        for (name, &(_, required)) in defined {
            if required && !node.attribute.iter().any(|a| &a.name == name) {
                bail!(attrs.error(format!("its required attribute `{name}` is missing")));
            }
        }
        formal("input", &node.input, inputs, *min_in, *max_in, op, &attrs)?;
        formal(
            "output",
            &node.output,
            outputs,
            *min_out,
            *max_out,
            op,
            &attrs,
        )
    }
}

/// The type the schema in force gives attribute `name` of `op` (for an attribute written
/// without its type, whose value alone does not tell: an empty list reads back as nothing).
pub fn attribute_type(opsets: &[OperatorSetIdProto], node: &NodeProto, name: &str) -> Option<i32> {
    let domain = canonical(&node.domain);
    let version = opsets
        .iter()
        .find(|o| canonical(&o.domain) == domain)?
        .version;
    let versions = schemas()
        .by_op
        .get(&(domain.to_string(), node.op_type.clone()))?;
    let row = versions.iter().rev().find(|r| r.2 <= version)?;
    row.4.get(name).map(|&(t, _)| t)
}

/// The entry of `list` (options or type parameters, one per formal parameter) for actual input
/// or output `i`: past the last formal parameter, only a variadic one continues.
fn formal_at<'a>(options: &[String], list: &'a [String], i: usize) -> Option<&'a String> {
    let variadic = options.last().is_some_and(|o| o.eq_ignore_ascii_case("v"));
    list.get(i).or(list.last().filter(|_| variadic))
}

/// An attribute with no value set.
pub fn carries_nothing(a: &onnx_protobuf::AttributeProto) -> bool {
    a.i == 0
        && a.f == 0.0
        && a.s.is_empty()
        && a.ints.is_empty()
        && a.floats.is_empty()
        && a.strings.is_empty()
        && a.t.is_none()
        && a.g.is_none()
        && a.tensors.is_empty()
        && a.graphs.is_empty()
}

/// A node's inputs (or outputs) against the schema's formal parameters: a count in range, and
/// no single (required) one left empty. Past the last formal parameter only a variadic one
/// continues.
fn formal(
    what: &str,
    names: &[String],
    options: &[String],
    min: usize,
    max: usize,
    op: &str,
    attrs: &Attrs,
) -> Result<()> {
    if names.len() < min || names.len() > max {
        let range = if max >= i32::MAX as usize {
            format!("at least {min}")
        } else if min == max {
            min.to_string()
        } else {
            format!("{min} to {max}")
        };
        bail!(attrs.error(format!(
            "has {} {what}s, but {op} takes {range}",
            names.len()
        )));
    }
    for (i, name) in names.iter().enumerate() {
        let option = formal_at(options, options, i);
        if name.is_empty() && option.is_some_and(|o| o == "s") {
            bail!(attrs.error(format!(
                "{what} {i} of {op} is required, but it is left empty"
            )));
        }
    }
    Ok(())
}

/// The element types of `node`'s outputs that its schema tells from its inputs' (`input(i)`,
/// where known): an output whose type parameter allows one type has it; one that shares its
/// parameter with an input has that input's; `Cast`, `CastLike`, `Constant` and
/// `ConstantOfShape` say theirs in an attribute or input. `None` where nothing tells (another
/// domain, a parameter bound by no known input).
pub fn output_dtypes(
    model: &ModelProto,
    node: &NodeProto,
    input: &dyn Fn(usize) -> Option<i32>,
) -> Vec<Option<i32>> {
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let tensor_type = |name: &str| attr(name).and_then(|a| a.t.as_ref()).map(|t| t.data_type);
    let named = match (canonical(&node.domain), node.op_type.as_str()) {
        ("", "Cast") => Some(attr("to").map(|a| a.i as i32)),
        ("", "CastLike") => Some(input(1)),
        ("", "ConstantOfShape") => Some(tensor_type("value").or(Some(DType::FLOAT.0))),
        ("", "Constant") => Some(tensor_type("value").or_else(|| {
            let of = |n: &str| attr(n).is_some();
            if of("value_float") || of("value_floats") {
                Some(DType::FLOAT.0)
            } else if of("value_int") || of("value_ints") {
                Some(DType::INT64.0)
            } else {
                None
            }
        })),
        _ => None,
    };
    if let Some(dt) = named {
        return vec![dt.filter(|&t| t != 0)];
    }
    let attrs = Attrs::of(node, 0);
    let Ok(Some(row)) = Check::of(model).schema(node, &attrs) else {
        return vec![None; node.output.len()];
    };
    let mut bound: HashMap<&str, i32> = HashMap::new();
    for i in 0..node.input.len() {
        let (Some(param), Some(option)) =
            (formal_at(&row.5, &row.11, i), formal_at(&row.5, &row.5, i))
        else {
            continue;
        };
        if option == "V" || node.input[i].is_empty() {
            continue;
        }
        if let Some(dt) = input(i).filter(|&t| t != 0) {
            bound.entry(param.as_str()).or_insert(dt);
        }
    }
    (0..node.output.len())
        .map(|i| {
            let param = formal_at(&row.8, &row.13, i)?;
            match row.12.get(param) {
                Some(Some(types)) if types.len() == 1 => Some(types[0]),
                _ => bound.get(param.as_str()).copied(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_load_and_pick_the_version_in_force() {
        let s = schemas();
        assert!(!s.onnx.is_empty());
        let conv = &s.by_op[&(String::new(), "Conv".to_string())];
        assert!(conv.iter().all(|r| r.4.contains_key("strides")));
        let reshape = &s.by_op[&(String::new(), "Reshape".to_string())];
        // Reshape took its shape as an attribute before opset 5.
        assert!(reshape[0].4.contains_key("shape"));
        assert!(reshape
            .iter()
            .rev()
            .find(|r| r.2 <= 17)
            .is_some_and(|r| !r.4.contains_key("shape")));
    }
}
