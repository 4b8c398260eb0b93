//! Decoding small integer tensors (shapes, axes, pads) that shape rules need to read.
//!
//! `onnx-protobuf`'s own `as_value()` ignores `raw_data` and panics on several types, so we decode
//! the ONNX layouts ourselves: typed fields, or little-endian `raw_data` / external bytes.

use super::Model;
use anyhow::{bail, Result};
use onnx_protobuf::TensorProto;

/// The values of an integer tensor (int64, int32, int8/16, uint8/16/32, bool) as i64.
pub fn decode_i64(model: &Model, t: &TensorProto) -> Result<Vec<i64>> {
    if let Some(bytes) = model.tensor_bytes(t)? {
        let width = match t.data_type {
            7 | 13 => 8,
            6 | 12 => 4,
            5 | 4 => 2,
            3 | 2 | 9 => 1,
            other => bail!(
                "tensor `{}`: element type {other} is not an integer type",
                t.name
            ),
        };
        if !bytes.len().is_multiple_of(width) {
            bail!(
                "tensor `{}`: {} raw bytes is not a whole number of {width}-byte elements",
                t.name,
                bytes.len()
            );
        }
        return Ok(bytes
            .chunks_exact(width)
            .map(|c| match (t.data_type, width) {
                (_, 8) => i64::from_le_bytes(c.try_into().unwrap()),
                (6, 4) => i32::from_le_bytes(c.try_into().unwrap()) as i64,
                (_, 4) => u32::from_le_bytes(c.try_into().unwrap()) as i64,
                (5, 2) => i16::from_le_bytes(c.try_into().unwrap()) as i64,
                (_, 2) => u16::from_le_bytes(c.try_into().unwrap()) as i64,
                (3, 1) => c[0] as i8 as i64,
                _ => c[0] as i64,
            })
            .collect());
    }
    Ok(match t.data_type {
        7 => t.int64_data.clone(),
        13 => t.uint64_data.iter().map(|&v| v as i64).collect(),
        // int32_data carries every narrower integer type and bool.
        2..=6 | 9 => t.int32_data.iter().map(|&v| v as i64).collect(),
        12 => t.uint64_data.iter().map(|&v| v as i64).collect(),
        other => bail!(
            "tensor `{}`: element type {other} is not an integer type",
            t.name
        ),
    })
}
