//! Typed, validating reads of a node's attributes (the model is tract's `pb_helpers.rs`).
//!
//! Every getter says what it expects: the attribute's type, its range, its length. A value that
//! breaks the ONNX specification is an error naming the node, the attribute, the value and what
//! the specification requires; a shape is never computed from it.

use anyhow::{bail, Result};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};

/// The attributes of one node, read with checks.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    /// The node as messages name it: its name, or `#index OpType`.
    label: String,
}

impl<'a> Attrs<'a> {
    /// `index` is the node's position in its graph, for unnamed nodes' messages.
    pub fn of(node: &'a NodeProto, index: usize) -> Attrs<'a> {
        let label = if node.name.is_empty() {
            format!("#{index} {}", node.op_type)
        } else {
            node.name.clone()
        };
        Attrs { node, label }
    }

    /// An error about this node: `node `conv1` (Conv): ...`.
    pub fn error(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("node `{}` ({}): {what}", self.label, self.node.op_type)
    }

    fn find(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        match a.type_.enum_value() {
            Ok(t) if t == ty => Ok(Some(a)),
            // An empty list serialises to nothing and is read back typeless.
            Ok(AttributeType::INT) | Ok(AttributeType::UNDEFINED)
                if ty == AttributeType::INTS && a.ints.is_empty() && a.i == 0 =>
            {
                Ok(Some(a))
            }
            other => Err(self.error(format!(
                "attribute `{name}` must be of type {ty:?}, but it is {}",
                other.map_or_else(|n| format!("type number {n}"), |t| format!("{t:?}"))
            ))),
        }
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.find(name, AttributeType::INT)?.map(|a| a.i))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An integer that must be at least 1 (`group`, `size`, `hidden_size`).
    pub fn positive_int(&self, name: &str, default: i64) -> Result<u64> {
        let v = self.int_or(name, default)?;
        if v < 1 {
            bail!(self.error(format!("`{name}` = {v}, but it must be positive")));
        }
        Ok(v as u64)
    }

    /// A boolean flag (`transA`, `transB`): any non-zero value is true, as in onnx's reference
    /// shape inference.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        Ok(self.int(name)?.map_or(default, |v| v != 0))
    }

    /// A flag that is on only at exactly 1 (`keepdims`, `ceil_mode`), as onnx reads those.
    pub fn is_one(&self, name: &str, default: i64) -> Result<bool> {
        Ok(self.int_or(name, default)? == 1)
    }

    /// A list of integers.
    pub fn ints(&self, name: &str) -> Result<Option<&'a [i64]>> {
        Ok(self
            .find(name, AttributeType::INTS)?
            .map(|a| a.ints.as_slice()))
    }

    /// A list of integers, each at least `min`, of length `len` when that is known.
    pub fn ints_at_least(
        &self,
        name: &str,
        min: i64,
        len: Option<usize>,
    ) -> Result<Option<Vec<i64>>> {
        let Some(v) = self.ints(name)? else {
            return Ok(None);
        };
        if let Some(bad) = v.iter().find(|&&x| x < min) {
            let must = if min == 1 {
                "positive".to_string()
            } else if min == 0 {
                "non-negative".to_string()
            } else {
                format!("at least {min}")
            };
            bail!(self.error(format!(
                "`{name}` = {v:?}: every entry must be {must}, and {bad} is not"
            )));
        }
        if let Some(len) = len.filter(|&l| l != v.len()) {
            bail!(self.error(format!(
                "`{name}` = {v:?} has {} {}, but the input needs {len}",
                v.len(),
                if v.len() == 1 { "entry" } else { "entries" }
            )));
        }
        Ok(Some(v.to_vec()))
    }

    /// A UTF-8 string attribute.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        let Some(a) = self.find(name, AttributeType::STRING)? else {
            return Ok(None);
        };
        match std::str::from_utf8(&a.s) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) => Err(self.error(format!("attribute `{name}` is not UTF-8 text"))),
        }
    }

    /// A string that must be one of `allowed` (`allowed[0]` when absent).
    pub fn one_of(&self, name: &str, allowed: &[&'static str]) -> Result<&'static str> {
        let Some(s) = self.string(name)? else {
            return Ok(allowed[0]);
        };
        allowed.iter().find(|&&a| a == s).copied().ok_or_else(|| {
            self.error(format!(
                "`{name}` = {s:?}, but it must be one of {allowed:?}"
            ))
        })
    }

    /// An axis attribute resolved against `rank`: in `[-rank, rank - 1]` as the spec requires
    /// (`[-rank, rank]` where `inclusive`, for Flatten).
    pub fn axis(&self, name: &str, default: i64, rank: usize, inclusive: bool) -> Result<usize> {
        let a = self.int_or(name, default)?;
        resolve_axis(a, rank, inclusive).ok_or_else(|| {
            self.error(format!(
                "`{name}` = {a} is out of range for a rank-{rank} input (allowed: {}..={})",
                -(rank as i64),
                rank as i64 - if inclusive { 0 } else { 1 }
            ))
        })
    }
}

/// A possibly negative axis resolved against a rank; `None` when out of range.
pub fn resolve_axis(a: i64, rank: usize, inclusive: bool) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a.checked_add(r)? } else { a };
    let top = if inclusive { r } else { r - 1 };
    (0..=top).contains(&a).then_some(a as usize)
}

/// The sliding-window attributes of Conv and the pooling ops, checked against the number of
/// spatial axes: positive strides, dilations and kernel, non-negative pads, one entry per axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// `kernel_shape`, when given.
    pub kernel: Option<Vec<u64>>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    /// Begins then ends, `2 x spatial` entries.
    pub pads: Vec<u64>,
    pub auto_pad: &'static str,
    pub ceil_mode: bool,
}

impl Window {
    /// Read and check the window attributes; `spatial` is the number of spatial axes when the
    /// input's rank is known (lengths are then checked too).
    pub fn parse(attrs: &Attrs, spatial: Option<usize>) -> Result<Window> {
        let unsigned = |v: Vec<i64>| v.into_iter().map(|x| x as u64).collect::<Vec<u64>>();
        let kernel = attrs
            .ints_at_least("kernel_shape", 1, spatial)?
            .map(unsigned);
        let spatial = spatial.or(kernel.as_ref().map(Vec::len));
        // An empty list is the default (some exporters write `strides: []`).
        let list = |name: &str, min: i64, len: Option<usize>, default: u64| -> Result<Vec<u64>> {
            let given = attrs
                .ints(name)?
                .filter(|v| !v.is_empty())
                .map(|_| attrs.ints_at_least(name, min, len))
                .transpose()?
                .flatten();
            Ok(match (given, len) {
                (Some(v), _) => unsigned(v),
                (None, Some(n)) => vec![default; n],
                (None, None) => vec![],
            })
        };
        let strides = list("strides", 1, spatial, 1)?;
        let dilations = list("dilations", 1, spatial, 1)?;
        let pads = list("pads", 0, spatial.map(|n| 2 * n), 0)?;
        let auto_pad =
            attrs.one_of("auto_pad", &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])?;
        if auto_pad != "NOTSET" && pads.iter().any(|&p| p != 0) {
            bail!(attrs.error(format!(
                "`pads` and `auto_pad` = {auto_pad} are both set; the spec allows one"
            )));
        }
        Ok(Window {
            kernel,
            strides,
            dilations,
            pads,
            auto_pad,
            ceil_mode: attrs.is_one("ceil_mode", 0)?,
        })
    }

    /// The output's spatial size for input spatial dims `input` and kernel `kernel` (ONNX's
    /// Conv/Pool arithmetic, `ceil_mode` included). `None` where the window does not fit the
    /// input at these sizes (it may at others); an error where the kernel's rank is wrong.
    pub fn output(&self, attrs: &Attrs, input: &[u64], kernel: &[u64]) -> Result<Option<Vec<u64>>> {
        let n = input.len();
        if kernel.len() != n {
            bail!(attrs.error(format!(
                "the kernel has {} spatial axes, but the input has {n}",
                kernel.len()
            )));
        }
        for (name, v, len) in [
            ("strides", &self.strides, n),
            ("dilations", &self.dilations, n),
            ("pads", &self.pads, 2 * n),
        ] {
            if !v.is_empty() && v.len() != len {
                bail!(attrs.error(format!(
                    "`{name}` has {} entries, but the input's {n} spatial axes need {len}",
                    v.len()
                )));
            }
        }
        let get = |v: &[u64], i: usize, default: u64| v.get(i).copied().unwrap_or(default);
        Ok((0..n)
            .map(|i| {
                // i128 holds every product of two u64 without overflow.
                let x = input[i] as i128;
                let s = get(&self.strides, i, 1) as i128;
                let k = (kernel[i] as i128 - 1) * get(&self.dilations, i, 1) as i128 + 1;
                let v = match self.auto_pad {
                    "SAME_UPPER" | "SAME_LOWER" => (x + s - 1) / s,
                    "VALID" => (x - k).div_euclid(s) + 1,
                    _ => {
                        let (begin, end) = (get(&self.pads, i, 0), get(&self.pads, i + n, 0));
                        let span = x + begin as i128 + end as i128 - k;
                        if self.ceil_mode {
                            let out = (span + s - 1).div_euclid(s) + 1;
                            // A window may not start inside the end padding.
                            if (out - 1) * s >= x + begin as i128 {
                                out - 1
                            } else {
                                out
                            }
                        } else {
                            span.div_euclid(s) + 1
                        }
                    }
                };
                if v < 1 && x > 0 {
                    return None;
                }
                u64::try_from(v.max(0)).ok()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::AttributeProto;

    fn node(attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            name: "c".into(),
            op_type: "Conv".into(),
            attribute: attrs,
            ..Default::default()
        }
    }
    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            type_: AttributeType::INTS.into(),
            ..Default::default()
        }
    }
    fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            i,
            type_: AttributeType::INT.into(),
            ..Default::default()
        }
    }

    #[test]
    fn window_checks_what_the_spec_requires() {
        let err = |attrs, spatial| {
            let n = node(attrs);
            format!("{}", Window::parse(&Attrs::of(&n, 0), spatial).unwrap_err())
        };
        assert!(err(vec![ints("strides", &[0, 0])], Some(2)).contains("`strides` = [0, 0]"));
        assert!(err(vec![ints("dilations", &[0, 1])], Some(2)).contains("positive"));
        assert!(err(vec![ints("pads", &[-1, 0, 0, 0])], Some(2)).contains("non-negative"));
        assert!(err(vec![ints("kernel_shape", &[3])], Some(2)).contains("needs 2"));
        let n = node(vec![
            ints("strides", &[2, 2]),
            ints("kernel_shape", &[3, 3]),
        ]);
        let a = Attrs::of(&n, 0);
        let w = Window::parse(&a, Some(2)).unwrap();
        assert_eq!(w.output(&a, &[7, 8], &[3, 3]).unwrap(), Some(vec![3, 3]));
        assert_eq!(w.output(&a, &[2, 8], &[3, 3]).unwrap(), None);
        assert!(w.output(&a, &[7, 8], &[3]).is_err());
    }

    #[test]
    fn typed_getters_name_node_and_attribute() {
        let n = node(vec![int("group", 0), ints("axes", &[1])]);
        let a = Attrs::of(&n, 3);
        let e = a.positive_int("group", 1).unwrap_err().to_string();
        assert_eq!(e, "node `c` (Conv): `group` = 0, but it must be positive");
        let e = a.int("axes").unwrap_err().to_string();
        assert!(e.contains("must be of type INT"), "{e}");
        assert_eq!(a.axis("missing", -1, 4, false).unwrap(), 3);
        assert!(a.axis("missing", 9, 4, false).is_err());
        assert_eq!(resolve_axis(4, 4, true), Some(4));
        assert_eq!(resolve_axis(i64::MIN, 4, false), None);
    }
}
