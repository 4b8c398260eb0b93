//! One element type under its four names: ONNX's number, Triton's model-configuration name,
//! the Open Inference Protocol's (KServe v2) datatype, and tract's `DatumType` (how the client
//! holds tensors), with NumPy's type string for `.npy` files.

use crate::tensor::DType;
use anyhow::{bail, Result};
use tract_onnx::prelude::DatumType;

/// An element type a Triton model can declare.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WireType {
    pub onnx: DType,
    /// `data_type` in config.pbtxt (`TYPE_FP32`).
    pub triton: &'static str,
    /// `datatype` in the inference protocol (`FP32`).
    pub kserve: &'static str,
    /// How the client holds it; `None` where the client cannot (strings, bfloat16).
    pub datum: Option<DatumType>,
    /// NumPy's little-endian type string (`<f4`); `None` where NumPy has none.
    pub numpy: Option<&'static str>,
}

const fn wire(
    onnx: i32,
    triton: &'static str,
    kserve: &'static str,
    datum: Option<DatumType>,
    numpy: Option<&'static str>,
) -> WireType {
    WireType {
        onnx: DType(onnx),
        triton,
        kserve,
        datum,
        numpy,
    }
}

/// Every ONNX element type Triton has a name for (Triton's `model_config.proto` `DataType`).
const TYPES: [WireType; 15] = [
    wire(1, "TYPE_FP32", "FP32", Some(DatumType::F32), Some("<f4")),
    wire(2, "TYPE_UINT8", "UINT8", Some(DatumType::U8), Some("|u1")),
    wire(3, "TYPE_INT8", "INT8", Some(DatumType::I8), Some("|i1")),
    wire(
        4,
        "TYPE_UINT16",
        "UINT16",
        Some(DatumType::U16),
        Some("<u2"),
    ),
    wire(5, "TYPE_INT16", "INT16", Some(DatumType::I16), Some("<i2")),
    wire(6, "TYPE_INT32", "INT32", Some(DatumType::I32), Some("<i4")),
    wire(7, "TYPE_INT64", "INT64", Some(DatumType::I64), Some("<i8")),
    wire(8, "TYPE_STRING", "BYTES", None, None),
    wire(9, "TYPE_BOOL", "BOOL", Some(DatumType::Bool), Some("|b1")),
    wire(10, "TYPE_FP16", "FP16", Some(DatumType::F16), Some("<f2")),
    wire(11, "TYPE_FP64", "FP64", Some(DatumType::F64), Some("<f8")),
    wire(
        12,
        "TYPE_UINT32",
        "UINT32",
        Some(DatumType::U32),
        Some("<u4"),
    ),
    wire(
        13,
        "TYPE_UINT64",
        "UINT64",
        Some(DatumType::U64),
        Some("<u8"),
    ),
    wire(16, "TYPE_BF16", "BF16", None, None),
    // Listed so that a lookup by ONNX number finds nothing else by accident.
    wire(0, "TYPE_INVALID", "INVALID", None, None),
];

impl WireType {
    /// The type of an ONNX tensor; an error naming the type where Triton has none.
    pub fn of_onnx(dtype: DType) -> Result<WireType> {
        match TYPES.iter().find(|t| t.onnx == dtype && t.onnx.0 != 0) {
            Some(t) => Ok(*t),
            None => bail!("Triton has no data type for ONNX {} tensors", dtype.name()),
        }
    }

    pub fn of_datum(dt: DatumType) -> Result<WireType> {
        match TYPES.iter().find(|t| t.datum == Some(dt)) {
            Some(t) => Ok(*t),
            None => bail!("{dt:?} tensors cannot be sent to an inference server"),
        }
    }

    pub fn of_kserve(name: &str) -> Result<WireType> {
        match TYPES.iter().find(|t| t.kserve == name && t.onnx.0 != 0) {
            Some(t) => Ok(*t),
            None => bail!("unknown inference-protocol datatype `{name}`"),
        }
    }

    /// How the client holds it, or an error saying it cannot.
    pub fn datum(&self) -> Result<DatumType> {
        match self.datum {
            Some(d) => Ok(d),
            None => bail!(
                "nsplit run cannot handle {} tensors (ONNX {})",
                self.kserve,
                self.onnx.name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in TYPES.iter().filter(|t| t.onnx.0 != 0) {
            assert_eq!(WireType::of_onnx(t.onnx).unwrap(), *t);
            assert_eq!(WireType::of_kserve(t.kserve).unwrap(), *t);
            if let Some(d) = t.datum {
                assert_eq!(WireType::of_datum(d).unwrap(), *t);
            }
        }
        assert!(WireType::of_onnx(DType(0)).is_err());
        let e = WireType::of_onnx(DType(14)).unwrap_err().to_string();
        assert!(e.contains("complex64"), "{e}");
    }
}
