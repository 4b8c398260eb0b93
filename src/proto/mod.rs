//! Building ONNX messages: nodes, attributes, tensors, value infos and models. One builder for
//! every model nsplit makes: the emitter's declarations, the profiler's one-node models and
//! calibration network, and the fixture generator's test models.
//!
//! `onnx-protobuf` writes proto3-style (a field equal to 0 is not written), so every attribute
//! gets an explicit type: an INT attribute with `i == 0` is still well-formed.
//!
//! [`wire`] reads and writes models at the wire level, so weights move file to file.

pub mod wire;

use crate::tensor::{DType, Dim, TensorInfo};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension::Value, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A node named `name` running `op` (default domain).
pub fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.to_string(),
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: ty.into(),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        i,
        ..attr(name, AttributeType::INT)
    }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: ints.to_vec(),
        ..attr(name, AttributeType::INTS)
    }
}

pub fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        f,
        ..attr(name, AttributeType::FLOAT)
    }
}

pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t).into(),
        ..attr(name, AttributeType::TENSOR)
    }
}

pub fn attr_graph(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        g: Some(g).into(),
        ..attr(name, AttributeType::GRAPH)
    }
}

/// A float tensor; data stored as little-endian `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor; data stored as little-endian `raw_data`.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::INT64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A `ValueInfoProto` from what is known: element type, and the dims (symbolic ones by name,
/// unknown ones left empty). No shape at all when the rank is unknown.
pub fn value_info(name: &str, info: &TensorInfo) -> ValueInfoProto {
    let shape = info.dims.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Known(v) => Some(Value::DimValue(*v as i64)),
                    Dim::Symbol(s) => Some(Value::DimParam(s.clone())),
                    Dim::Unknown => None,
                },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let tt = type_proto::Tensor {
        elem_type: info.dtype.map_or(0, |d| d.0),
        shape: shape.into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tt)),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// A float tensor's value info with fixed dims.
pub fn float_value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dims = dims.iter().map(|&d| Dim::Known(d as u64)).collect();
    value_info(
        name,
        &TensorInfo {
            dtype: Some(DType::FLOAT),
            dims: Some(dims),
        },
    )
}

pub fn opset(domain: &str, version: i64) -> OperatorSetIdProto {
    OperatorSetIdProto {
        domain: domain.to_string(),
        version,
        ..Default::default()
    }
}

/// A model of `graph` at IR `ir_version`, importing `opsets` (domain, version).
pub fn model(graph: GraphProto, ir_version: i64, opsets: &[(&str, i64)]) -> ModelProto {
    ModelProto {
        ir_version,
        opset_import: opsets.iter().map(|&(d, v)| opset(d, v)).collect(),
        graph: Some(graph).into(),
        ..Default::default()
    }
}
