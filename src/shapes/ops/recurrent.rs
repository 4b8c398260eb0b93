//! LSTM, GRU, RNN (and com.microsoft's DynamicQuantizeLSTM, an LSTM on int8 weights): `Y` is `[seq, dirs, batch, hidden]`, `Y_h` (and LSTM's `Y_c`)
//! `[dirs, batch, hidden]`; `layout = 1` puts batch first. `hidden_size` must be positive and
//! `direction` one the spec names.

use super::{Outputs, RuleCtx};
use crate::tensor::TensorInfo;
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let Some(hidden) = c.attrs.int("hidden_size")? else {
        return Ok(vec![]);
    };
    let h = c.attrs.positive_int("hidden_size", hidden)?;
    let direction = c
        .attrs
        .one_of("direction", &["forward", "reverse", "bidirectional"])?;
    let batch_first = c.attrs.is_one("layout", 0)?;
    let (Some(x), Some(dt)) = (c.dims(0), c.dtype(0)) else {
        return Ok(vec![]);
    };
    let [a, b, _] = x[..] else {
        return Ok(vec![]);
    };
    let dirs = if direction == "bidirectional" { 2 } else { 1 };
    let (seq, batch) = if batch_first { (b, a) } else { (a, b) };
    let (y, yh) = if batch_first {
        (vec![batch, seq, dirs, h], vec![batch, dirs, h])
    } else {
        (vec![seq, dirs, batch, h], vec![dirs, batch, h])
    };
    let mut out = vec![
        (0, TensorInfo::new(dt, y)),
        (1, TensorInfo::new(dt, yh.clone())),
    ];
    if matches!(c.op.op_type.as_str(), "LSTM" | "DynamicQuantizeLSTM") {
        out.push((2, TensorInfo::new(dt, yh)));
    }
    Ok(out)
}
