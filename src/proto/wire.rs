//! The protobuf wire format, just enough to keep a model's weights out of memory.
//!
//! A model's weights are the `raw_data` of its top-level initializers (`ModelProto.graph` = 7,
//! `GraphProto.initializer` = 5, `TensorProto.raw_data` = 9). [`shrink`] reads a model file and
//! returns its bytes with each large `raw_data` replaced by a one-byte [`PLACEHOLDER`], and where
//! each one sits in the file, so the model parses without its weights. [`splice`] does the
//! reverse on a serialised model about to be written: each placeholder becomes a [`Piece::Range`]
//! of a file, with every enclosing length corrected, so the file written is byte for byte what
//! protobuf writes with the data in memory, and the data moves file to file.
//!
//! Everything else (field order, unknown fields, other tensors) is left to `protobuf` itself:
//! this module only rewrites lengths on one path of the message tree.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek};
use std::path::PathBuf;

const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_RAW_DATA: u64 = 9;
const LEN: u64 = 2;

/// What stands in for a `raw_data` left in the file.
pub const PLACEHOLDER: &[u8] = &[0];

/// `len` bytes at `offset` of `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRange {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// A model file read by [`shrink`].
pub struct Shrunk {
    /// The model with each streamed `raw_data` replaced by [`PLACEHOLDER`].
    pub bytes: Vec<u8>,
    /// Per streamed initializer, its position among the graph's initializers and where its
    /// `raw_data` is in the file: (ordinal, offset, length).
    pub streamed: Vec<(usize, u64, u64)>,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Level {
    Model,
    Graph,
    Tensor,
}

impl Level {
    /// The message a length-delimited field holds, where it is on the path to `raw_data`.
    fn child(self, field: u64) -> Option<Level> {
        match (self, field) {
            (Level::Model, MODEL_GRAPH) => Some(Level::Graph),
            (Level::Graph, GRAPH_INITIALIZER) => Some(Level::Tensor),
            _ => None,
        }
    }
}

/// Read the serialised `ModelProto` in `r` (`len` bytes), leaving every top-level initializer's
/// `raw_data` of at least `min` bytes in the file. An error means the bytes are not a well-formed
/// message; the caller's protobuf parser says why in its own words.
pub fn shrink<R: BufRead + Seek>(r: R, len: u64, min: u64) -> Result<Shrunk> {
    let mut reader = Reader { r, pos: 0 };
    let mut state = ScanState {
        min,
        graph_seen: false,
        ordinal: 0,
        current: None,
        streamed: vec![],
    };
    let mut bytes = vec![];
    reader.message(len, Level::Model, &mut bytes, &mut state)?;
    Ok(Shrunk {
        bytes,
        streamed: state.streamed,
    })
}

struct ScanState {
    min: u64,
    graph_seen: bool,
    ordinal: usize,
    /// The span of the tensor being read, if its (last) raw_data is streamed.
    current: Option<(u64, u64)>,
    streamed: Vec<(usize, u64, u64)>,
}

struct Reader<R> {
    r: R,
    pos: u64,
}

impl<R: BufRead + Seek> Reader<R> {
    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.r.read_exact(&mut b).context("truncated")?;
        self.pos += 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }

    fn copy(&mut self, n: u64, out: &mut Vec<u8>) -> Result<()> {
        let got = (&mut self.r).take(n).read_to_end(out)?;
        if got as u64 != n {
            bail!("truncated");
        }
        self.pos += n;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.r.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }

    /// Copy the message's fields up to `end` into `out`, descending along the path to raw_data.
    fn message(
        &mut self,
        end: u64,
        level: Level,
        out: &mut Vec<u8>,
        st: &mut ScanState,
    ) -> Result<()> {
        while self.pos < end {
            let tag = self.varint()?;
            let (field, wire) = (tag >> 3, tag & 7);
            put_varint(out, tag);
            match wire {
                0 => {
                    let v = self.varint()?;
                    put_varint(out, v);
                }
                1 => self.copy(8, out)?,
                5 => self.copy(4, out)?,
                LEN => {
                    let n = self.varint()?;
                    if self.pos.checked_add(n).is_none_or(|e| e > end) {
                        bail!("a field runs past its message");
                    }
                    if let Some(child) = level.child(field) {
                        if child == Level::Graph {
                            if st.graph_seen {
                                // protobuf keeps the last graph, not a merge: let it decide.
                                bail!("the graph field appears twice");
                            }
                            st.graph_seen = true;
                        }
                        let mut content = vec![];
                        if child == Level::Tensor {
                            st.current = None;
                        }
                        self.message(self.pos + n, child, &mut content, st)?;
                        if child == Level::Tensor {
                            if let Some((offset, len)) = st.current.take() {
                                st.streamed.push((st.ordinal, offset, len));
                            }
                            st.ordinal += 1;
                        }
                        put_varint(out, content.len() as u64);
                        out.extend_from_slice(&content);
                    } else if level == Level::Tensor && field == TENSOR_RAW_DATA && n >= st.min {
                        st.current = Some((self.pos, n)); // the last raw_data wins, as in protobuf
                        self.skip(n)?;
                        put_varint(out, PLACEHOLDER.len() as u64);
                        out.extend_from_slice(PLACEHOLDER);
                    } else {
                        if level == Level::Tensor && field == TENSOR_RAW_DATA {
                            st.current = None;
                        }
                        put_varint(out, n);
                        self.copy(n, out)?;
                    }
                }
                _ => bail!("wire type {wire} (groups) is not used by ONNX"),
            }
        }
        if self.pos != end {
            bail!("a field runs past its message");
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_at(buf: &[u8], i: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*i).context("truncated")?;
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// A file to write: bytes in memory and ranges of other files, in order.
#[derive(Debug, Default)]
pub struct Rope {
    pub pieces: Vec<Piece>,
    pub len: u64,
}

#[derive(Debug)]
pub enum Piece {
    Bytes(Vec<u8>),
    Range(FileRange),
}

impl Rope {
    fn bytes(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        match self.pieces.last_mut() {
            Some(Piece::Bytes(last)) => last.extend_from_slice(b),
            _ => self.pieces.push(Piece::Bytes(b.to_vec())),
        }
    }

    fn varint(&mut self, v: u64) {
        let mut b = vec![];
        put_varint(&mut b, v);
        self.bytes(&b);
    }

    fn append(&mut self, other: Rope) {
        for p in other.pieces {
            match p {
                Piece::Bytes(b) => self.bytes(&b),
                Piece::Range(r) => {
                    self.len += r.len;
                    self.pieces.push(Piece::Range(r));
                }
            }
        }
    }
}

/// The serialised model `bytes` with the `raw_data` of each initializer in `ranges` (by position
/// among the graph's initializers; each must hold [`PLACEHOLDER`]) taken from its file range.
pub fn splice(bytes: &[u8], ranges: &HashMap<usize, FileRange>) -> Result<Rope> {
    let mut ordinal = 0;
    let mut used = 0;
    let rope = splice_message(bytes, Level::Model, None, ranges, &mut ordinal, &mut used)?;
    if used != ranges.len() {
        bail!("internal error: {used} of {} tensors spliced", ranges.len());
    }
    Ok(rope)
}

fn splice_message(
    buf: &[u8],
    level: Level,
    tensor: Option<usize>,
    ranges: &HashMap<usize, FileRange>,
    ordinal: &mut usize,
    used: &mut usize,
) -> Result<Rope> {
    let mut rope = Rope::default();
    let mut i = 0;
    while i < buf.len() {
        let start = i;
        let tag = varint_at(buf, &mut i)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint_at(buf, &mut i)?;
            }
            1 => i += 8,
            5 => i += 4,
            LEN => {
                let n = varint_at(buf, &mut i)? as usize;
                let body = buf.get(i..i + n).context("truncated")?;
                i += n;
                let range = tensor.and_then(|t| ranges.get(&t));
                if let Some(child) = level.child(field) {
                    let own = (child == Level::Tensor).then_some(*ordinal);
                    if child == Level::Tensor {
                        *ordinal += 1;
                    }
                    let inner = splice_message(body, child, own, ranges, ordinal, used)?;
                    rope.varint(tag);
                    rope.varint(inner.len);
                    rope.append(inner);
                    continue;
                } else if let (Level::Tensor, TENSOR_RAW_DATA, Some(range)) = (level, field, range)
                {
                    if body != PLACEHOLDER {
                        bail!("internal error: a tensor to splice carries data");
                    }
                    *used += 1;
                    rope.varint(tag);
                    rope.varint(range.len);
                    rope.len += range.len;
                    rope.pieces.push(Piece::Range(range.clone()));
                    continue;
                }
            }
            _ => bail!("internal error: wire type {wire} in a model we serialised"),
        }
        if i > buf.len() {
            bail!("truncated");
        }
        rope.bytes(&buf[start..i]);
    }
    Ok(rope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{GraphProto, Message, ModelProto, TensorProto};
    use std::io::Cursor;

    fn model(data: &[Vec<u8>]) -> ModelProto {
        let graph = GraphProto {
            name: "g".into(),
            initializer: data
                .iter()
                .enumerate()
                .map(|(i, d)| TensorProto {
                    name: format!("t{i}"),
                    dims: vec![d.len() as i64],
                    data_type: 2,
                    raw_data: d.clone(),
                    doc_string: "after raw_data in field order".into(),
                    ..Default::default()
                })
                .collect(),
            doc_string: "after the initializers".into(),
            ..Default::default()
        };
        ModelProto {
            ir_version: 8,
            graph: Some(graph).into(),
            producer_name: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn shrink_then_splice_gives_the_same_bytes() {
        // Sizes around varint steps (127/128, 16383/16384), so the lengths change width.
        let data: Vec<Vec<u8>> = [5usize, 127, 128, 300, 16383, 16384, 70000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        let bytes = model(&data).write_to_bytes().unwrap();
        let path = PathBuf::from("model.onnx");
        let shrunk = shrink(Cursor::new(&bytes), bytes.len() as u64, 128).unwrap();
        assert_eq!(
            shrunk.streamed.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
        let parsed = ModelProto::parse_from_bytes(&shrunk.bytes).unwrap();
        assert_eq!(parsed.graph.initializer[1].raw_data, data[1]);
        assert_eq!(parsed.graph.initializer[2].raw_data, PLACEHOLDER);
        assert_eq!(parsed.graph.doc_string, "after the initializers");

        let ranges = shrunk
            .streamed
            .iter()
            .map(|&(i, offset, len)| {
                let path = path.clone();
                (i, FileRange { path, offset, len })
            })
            .collect();
        let rope = splice(&shrunk.bytes, &ranges).unwrap();
        let mut out = vec![];
        for p in &rope.pieces {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Range(r) => {
                    out.extend_from_slice(&bytes[r.offset as usize..(r.offset + r.len) as usize])
                }
            }
        }
        assert_eq!(rope.len, bytes.len() as u64);
        assert_eq!(out, bytes);
    }

    #[test]
    fn a_length_past_the_end_is_an_error_even_when_it_wraps() {
        // tag 8 (ir_version)... then field 20 (training_info), length 2^64 - 1.
        let mut bytes = vec![0x08, 0x08, 0xa2, 0x01];
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        assert!(shrink(Cursor::new(&bytes), bytes.len() as u64, 1).is_err());
    }

    #[test]
    fn a_second_graph_field_is_left_to_protobuf() {
        let one = model(&[vec![1; 300]]).write_to_bytes().unwrap();
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        assert!(shrink(Cursor::new(&twice), twice.len() as u64, 128).is_err());
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        let bytes = model(&[vec![1; 300]]).write_to_bytes().unwrap();
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            let r = shrink(Cursor::new(&bytes[..cut]), cut as u64, 128);
            assert!(r.is_err(), "cut at {cut}");
        }
    }
}
