//! Tensor element types, shapes and sizes, as the rest of the pipeline sees them.
//!
//! ONNX stores element types as integers (`TensorProto.DataType`); [`DType`] names them and knows
//! their storage size. [`TensorInfo`] is what the shapes stage knows about one tensor: a dimension
//! may be unknown, and then so is the tensor's size — it is reported, never guessed.

use serde::Serialize;
use std::fmt;

/// An ONNX tensor element type (`TensorProto.DataType`), by its ONNX number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DType(pub i32);

impl DType {
    pub const FLOAT: DType = DType(1);
    pub const UINT8: DType = DType(2);
    pub const INT8: DType = DType(3);
    pub const INT32: DType = DType(6);
    pub const INT64: DType = DType(7);
    pub const STRING: DType = DType(8);
    pub const BOOL: DType = DType(9);
    pub const FLOAT16: DType = DType(10);
    pub const DOUBLE: DType = DType(11);

    /// The ONNX name, lower-case (`float`, `int64`, `float16`, ...).
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "float",
            2 => "uint8",
            3 => "int8",
            4 => "uint16",
            5 => "int16",
            6 => "int32",
            7 => "int64",
            8 => "string",
            9 => "bool",
            10 => "float16",
            11 => "double",
            12 => "uint32",
            13 => "uint64",
            14 => "complex64",
            15 => "complex128",
            16 => "bfloat16",
            17 => "float8e4m3fn",
            18 => "float8e4m3fnuz",
            19 => "float8e5m2",
            20 => "float8e5m2fnuz",
            21 => "uint4",
            22 => "int4",
            23 => "float4e2m1",
            24 => "float8e8m0",
            25 => "uint2",
            26 => "int2",
            27 => "float6e2m3",
            28 => "float6e3m2",
            _ => "undefined",
        }
    }

    /// Storage size of `count` elements in bytes (4-bit types pack two per byte). `None` for
    /// strings, whose size depends on their content, for unknown types, and for a size beyond
    /// 64 bits (which the shapes stage refuses).
    pub fn bytes_for(self, count: u64) -> Option<u64> {
        self.checked_bytes_for(count)?
    }

    /// `Some(None)` for a type without a fixed size, `None` when the size overflows 64 bits.
    pub fn checked_bytes_for(self, count: u64) -> Option<Option<u64>> {
        let bits: u64 = match self.0 {
            2 | 3 | 9 | 17..=20 | 24 => 8,
            4 | 5 | 10 | 16 => 16,
            1 | 6 | 12 => 32,
            7 | 11 | 13 | 14 => 64,
            15 => 128,
            21..=23 => 4,
            25 | 26 => 2,
            27 | 28 => 6,
            _ => return Some(None),
        };
        // ceil(count * bits / 8), without forming count * bits.
        if bits < 8 {
            Some(Some((count / 8) * bits + ((count % 8) * bits).div_ceil(8)))
        } else {
            count.checked_mul(bits / 8).map(Some)
        }
    }

    /// True for floating-point element types.
    pub fn is_float(self) -> bool {
        matches!(self.0, 1 | 10 | 11 | 16..=20 | 23 | 24 | 27 | 28)
    }

    /// The newest element type number we know (onnx 1.23's FLOAT6E3M2).
    pub const NEWEST: i32 = 28;
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(u64),
    /// A named symbolic dimension (`dim_param`), e.g. a batch size `N`.
    Symbol(String),
    /// Present but neither a value nor a name.
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// What is known about one tensor: element type and shape, either possibly unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: Option<DType>,
    /// `None` when even the rank is unknown.
    pub dims: Option<Vec<Dim>>,
}

impl TensorInfo {
    pub fn new(dtype: DType, dims: Vec<u64>) -> TensorInfo {
        TensorInfo {
            dtype: Some(dtype),
            dims: Some(dims.into_iter().map(Dim::Known).collect()),
        }
    }

    /// The concrete dimensions, if every one is known.
    pub fn concrete_dims(&self) -> Option<Vec<u64>> {
        self.dims
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Known(v) => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// Element count, if the shape is fully known (and fits in 64 bits, which the shapes stage
    /// checks of every tensor).
    pub fn elements(&self) -> Option<u64> {
        self.concrete_dims()?
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Size in bytes, if type and shape are fully known (and the type has a fixed size).
    pub fn bytes(&self) -> Option<u64> {
        self.dtype?.bytes_for(self.elements()?)
    }

    /// Whether two facts about one tensor disagree where both say something: the element type,
    /// the rank, or a dimension both fix (a symbolic or unknown one agrees with any size).
    pub fn contradicts(&self, other: &TensorInfo) -> bool {
        let dtype = matches!((self.dtype, other.dtype), (Some(a), Some(b)) if a != b);
        let shape = match (&self.dims, &other.dims) {
            (Some(a), Some(b)) => {
                a.len() != b.len()
                    || a.iter()
                        .zip(b)
                        .any(|(x, y)| matches!((x, y), (Dim::Known(x), Dim::Known(y)) if x != y))
            }
            _ => false,
        };
        dtype || shape
    }

    /// What `self` says, with `other` filling what it leaves open: `self`'s element type and
    /// fixed dims win; where the ranks differ, `self`'s shape is taken whole.
    pub fn overlaid_on(&self, other: &TensorInfo) -> TensorInfo {
        let dims = match (&self.dims, &other.dims) {
            (Some(a), Some(b)) if a.len() == b.len() => Some(
                a.iter()
                    .zip(b)
                    .map(|(a, b)| match a {
                        Dim::Known(_) => a.clone(),
                        _ => b.clone(),
                    })
                    .collect(),
            ),
            (Some(a), _) => Some(a.clone()),
            (None, b) => b.clone(),
        };
        TensorInfo {
            dtype: self.dtype.or(other.dtype),
            dims,
        }
    }

    /// Fully known: type and every dimension.
    pub fn is_complete(&self) -> bool {
        self.dtype.is_some() && self.concrete_dims().is_some()
    }

    /// Shape as text: `1x3x224x224`, `Nx3x32x32`, `scalar`, or `?` when the rank is unknown.
    pub fn shape_string(&self) -> String {
        match &self.dims {
            None => "?".into(),
            Some(d) if d.is_empty() => "scalar".into(),
            Some(d) => d
                .iter()
                .map(|d| match d {
                    // An expression (`past + 1`) in parentheses, so that `x` still separates.
                    Dim::Symbol(s)
                        if s.contains(|c: char| c.is_whitespace() || "+-*/%".contains(c)) =>
                    {
                        format!("({s})")
                    }
                    d => d.to_string(),
                })
                .collect::<Vec<_>>()
                .join("x"),
        }
    }
}

/// Serialisable view of a tensor, used in reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TensorSummary {
    pub name: String,
    /// ONNX element type name, or null when unknown.
    pub dtype: Option<&'static str>,
    /// Dimensions; a symbolic or unknown dimension is a string. Null when the rank is unknown.
    pub shape: Option<Vec<serde_json::Value>>,
    /// Size in bytes, or null when it cannot be known.
    pub bytes: Option<u64>,
}

impl TensorSummary {
    pub fn of(name: &str, info: &TensorInfo) -> TensorSummary {
        TensorSummary {
            name: name.to_string(),
            dtype: info.dtype.map(DType::name),
            shape: info.dims.as_ref().map(|dims| {
                dims.iter()
                    .map(|d| match d {
                        Dim::Known(v) => serde_json::Value::from(*v),
                        other => serde_json::Value::from(other.to_string()),
                    })
                    .collect()
            }),
            bytes: info.bytes(),
        }
    }
}

/// The most memory one tensor may need before nsplit declines to materialise it: tract's
/// analysis evaluates constant subgraphs (an `EyeLike` of a huge input allocates it) and
/// verification feeds random inputs. `NSPLIT_MEMORY_LIMIT` in GiB, 8 by default. An allocation
/// that fails aborts the process, so this is checked before, never discovered.
pub fn memory_limit() -> u64 {
    let gib = std::env::var("NSPLIT_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|g| g.is_finite() && *g > 0.0)
        .unwrap_or(8.0);
    (gib * (1u64 << 30) as f64) as u64
}

/// Bytes in binary units: `0 B`, `1.5 KiB`, `548.1 MiB`, `64.0 TiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The size of the product of `dims` as text: exact when it fits in 64 bits, else `2^N`.
pub fn magnitude(dims: &[u64]) -> String {
    if let Some(n) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) {
        return n.to_string();
    }
    let bits: f64 = dims.iter().map(|&d| (d as f64).log2()).sum();
    format!("2^{}", bits.round())
}

/// Parse a shape given on the command line: `1x3x224x224` (also `1,3,224,224`); `scalar` or an
/// empty string is rank 0.
pub fn parse_dims(text: &str) -> Result<Vec<u64>, String> {
    let text = text.trim();
    if text.is_empty() || text == "scalar" {
        return Ok(vec![]);
    }
    text.split(['x', ','])
        .map(|d| {
            d.trim().parse::<u64>().map_err(|_| {
                format!("`{d}` in `{text}` is not a dimension (expected e.g. 1x3x224x224)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn sizes_of_packed_types_round_up_and_overflow_is_none() {
        assert_eq!(DType(22).bytes_for(3), Some(2)); // int4: 12 bits
        assert_eq!(DType(27).bytes_for(3), Some(3)); // float6: 18 bits
        assert_eq!(DType(25).bytes_for(5), Some(2)); // uint2: 10 bits
        assert_eq!(DType::FLOAT.bytes_for(u64::MAX / 2), None);
        assert_eq!(DType::STRING.checked_bytes_for(4), Some(None));
        assert_eq!(DType(22).bytes_for(u64::MAX), Some(u64::MAX / 2 + 1));
    }
}
