//! A client of the Open Inference Protocol (KServe v2 REST), which Triton, KServe and Seldon
//! MLServer speak, with Triton's binary tensor extension: tensor data travels as raw bytes after a
//! JSON header (`Inference-Header-Content-Length`), not as JSON numbers, so a 1 MB boundary
//! costs 1 MB on the wire.
//!
//! Every failure is one error naming the server's URL: nothing listening, a timeout, a model
//! the server does not have, or the server's own message for a request it refused. Those where
//! the server did not answer, or answered that it cannot now (HTTP 5xx), are [`Unavailable`]: an
//! app answers such a request on the phone alone.

use crate::runtime::datatype::WireType;
use crate::setting::Setting;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tract_onnx::prelude::Tensor;

/// The header that says how long the JSON part of a binary request or response is.
const HEADER_LENGTH: &str = "Inference-Header-Content-Length";
/// Responses larger than this are refused (a guard, not a tensor limit anyone should meet).
const MAX_RESPONSE_BYTES: u64 = 4 << 30;

/// The server did not answer (nothing listening, a timeout) or answered that it cannot now
/// (HTTP 5xx): found with `anyhow::Error::downcast_ref::<Unavailable>()`.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// An inference server, by its base URL (`http://127.0.0.1:8000`).
pub struct Server {
    pub url: String,
    agent: ureq::Agent,
    timeout: Duration,
}

/// A model's inputs or outputs as the server declares them (`GET /v2/models/NAME`).
#[derive(Clone, Debug, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    /// -1 for a dimension of any size (a batch dimension among them).
    pub shape: Vec<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default)]
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// A model's cumulative statistics (Triton's statistics extension, `GET .../stats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelStats {
    /// Samples answered (a request of batch 4 counts 4).
    pub inference_count: u64,
    /// Requests answered successfully.
    pub success_count: u64,
    /// Model executions: fewer than requests when the server batched them.
    pub execution_count: u64,
    /// Time the successful requests spent in the server, queue and compute, in total.
    pub success_ns: u64,
    /// (batch size, executions at that size).
    pub batches: Vec<(u64, u64)>,
}

impl Server {
    pub fn new(url: &str, timeout: Duration) -> Result<Server> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!(
                "{} `{url}`: give the server's URL, e.g. http://127.0.0.1:8000",
                Setting::Server
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Server {
            url,
            agent,
            timeout,
        })
    }

    /// `GET /v2/health/ready`: the server is up and its models are loaded.
    pub fn ready(&self) -> Result<()> {
        let (status, body) = self.get("/v2/health/ready")?;
        if status != 200 {
            return Err(Unavailable(format!(
                "the inference server at {} is not ready (HTTP {status}){}",
                self.url,
                server_message(&body)
            ))
            .into());
        }
        Ok(())
    }

    /// The time (ms) to send about `bytes` to the server and hear back, to measure the uplink
    /// with a payload of a known size and no model run: a POST of the model repository's
    /// index (`/v2/repository/index`, Triton's repository extension) whose JSON is padded with
    /// whitespace, which the server reads whole and answers at once. An error where the
    /// server has no such endpoint (or does not answer).
    pub fn upload_probe(&self, bytes: usize) -> Result<f64> {
        let mut body = br#"{"ready":true}"#.to_vec();
        body.resize(bytes.max(body.len()), b' ');
        let start = std::time::Instant::now();
        let mut response = self
            .agent
            .post(&format!("{}/v2/repository/index", self.url))
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let _ = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if status != 200 {
            bail!(
                "the inference server at {} has no repository index to probe the uplink with (HTTP {status})",
                self.url
            );
        }
        Ok(ms)
    }

    /// `GET /v2/models/NAME`: the model's declared inputs and outputs.
    pub fn metadata(&self, model: &str) -> Result<ModelMetadata> {
        let (status, body) = self.get(&format!("/v2/models/{}", path_segment(model)))?;
        match status {
            200 => serde_json::from_slice(&body).with_context(|| {
                format!("{}: the metadata of model `{model}` is not the protocol's", self.url)
            }),
            400 | 404 => bail!(
                "the inference server at {} has no model `{model}` ready{} (is the repository nsplit wrote for this folder loaded? see docs/deploy.md)",
                self.url,
                server_message(&body)
            ),
            _ => Err(refusal(
                status,
                format!(
                    "the inference server at {} answered HTTP {status} for model `{model}`{}",
                    self.url,
                    server_message(&body)
                ),
            )),
        }
    }

    /// `GET /v2/models/NAME/stats`, where the server has Triton's statistics extension.
    pub fn statistics(&self, model: &str) -> Option<ModelStats> {
        let (status, body) = self
            .get(&format!("/v2/models/{}/stats", path_segment(model)))
            .ok()?;
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_slice(&body).ok()?;
        let s = v.get("model_stats")?.as_array()?.first()?;
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        Some(ModelStats {
            inference_count: n(s.get("inference_count")),
            execution_count: n(s.get("execution_count")),
            success_count: n(s.pointer("/inference_stats/success/count")),
            success_ns: n(s.pointer("/inference_stats/success/ns")),
            batches: s
                .get("batch_stats")
                .and_then(Value::as_array)
                .map(|b| {
                    b.iter()
                        .map(|b| (n(b.get("batch_size")), n(b.pointer("/compute_infer/count"))))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `POST /v2/models/NAME/infer` with binary tensors: send `inputs`, receive `outputs`.
    pub fn infer(
        &self,
        model: &str,
        inputs: &[(String, &Tensor)],
        outputs: &[String],
    ) -> Result<Vec<(String, Tensor)>> {
        let mut header_inputs = vec![];
        let mut data: Vec<&[u8]> = vec![];
        for (name, t) in inputs {
            let wire = WireType::of_datum(t.datum_type()).with_context(|| format!("`{name}`"))?;
            let bytes = t.as_bytes();
            header_inputs.push(json!({
                "name": name,
                "shape": t.shape(),
                "datatype": wire.kserve,
                "parameters": {"binary_data_size": bytes.len()},
            }));
            data.push(bytes);
        }
        let header = json!({
            "inputs": header_inputs,
            "outputs": outputs
                .iter()
                .map(|n| json!({"name": n, "parameters": {"binary_data": true}}))
                .collect::<Vec<_>>(),
        })
        .to_string();
        let mut body =
            Vec::with_capacity(header.len() + data.iter().map(|d| d.len()).sum::<usize>());
        body.extend_from_slice(header.as_bytes());
        data.iter().for_each(|d| body.extend_from_slice(d));

        let url = format!("{}/v2/models/{}/infer", self.url, path_segment(model));
        let response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .header(HEADER_LENGTH, header.len().to_string())
            .send(&body[..]);
        let mut response = response.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let json_length = response
            .headers()
            .get(HEADER_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        if status != 200 {
            return Err(refusal(
                status,
                format!(
                    "the inference server at {} refused the request to model `{model}` (HTTP {status}){}",
                    self.url,
                    server_message(&body)
                ),
            ));
        }
        decode_response(&body, json_length)
            .with_context(|| format!("{}: the response of model `{model}`", self.url))
    }

    fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.url))
            .call()
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 24)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        Ok((status, body))
    }

    /// One sentence for a request that did not get an answer.
    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        let url = &self.url;
        let late = || {
            format!(
                "the inference server at {url} did not answer within {:.3} s ({})",
                self.timeout.as_secs_f64(),
                Setting::Timeout
            )
        };
        let refused = |why: &dyn std::fmt::Display| {
            format!(
                "cannot connect to the inference server at {url}: {why} (is it running and listening there?)"
            )
        };
        let message = match e {
            ureq::Error::Timeout(_) => late(),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => refused(&e),
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => refused(&"connection refused"),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => late(),
                _ => format!("the inference server at {url}: {io}"),
            },
            e => format!("the inference server at {url}: {e}"),
        };
        Unavailable(message).into()
    }
}

/// An answer other than success, as an error: [`Unavailable`] where the server says it cannot
/// now (HTTP 5xx), else the request's own fault.
fn refusal(status: u16, message: String) -> anyhow::Error {
    if status >= 500 {
        Unavailable(message).into()
    } else {
        anyhow!(message)
    }
}

/// A response's outputs: a JSON header, then each output's raw bytes in the order listed
/// (`binary_data_size`), or JSON numbers where the server answered without the extension.
fn decode_response(body: &[u8], json_length: Option<usize>) -> Result<Vec<(String, Tensor)>> {
    let json_length = json_length.unwrap_or(body.len());
    if json_length > body.len() {
        bail!(
            "its JSON header is said to be {json_length} bytes, the body has {}",
            body.len()
        );
    }
    let header: Value = serde_json::from_slice(&body[..json_length]).context("not JSON")?;
    let mut rest = &body[json_length..];
    let outputs = header
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no `outputs`"))?;
    let mut tensors = vec![];
    for o in outputs {
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let datatype = o.get("datatype").and_then(Value::as_str).unwrap_or("?");
        let dt = WireType::of_kserve(datatype)
            .and_then(|w| w.datum())
            .with_context(|| format!("output `{name}`"))?;
        let shape: Vec<usize> = o
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("output `{name}` has no shape"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("output `{name}` has a shape that is not sizes"))?;
        let expected = shape
            .iter()
            .try_fold(dt.size_of(), |n, &d| n.checked_mul(d))
            .ok_or_else(|| anyhow!("output `{name}` has shape {shape:?}, too large"))?;
        let tensor = match o
            .pointer("/parameters/binary_data_size")
            .and_then(Value::as_u64)
        {
            Some(size) => {
                let size = size as usize;
                if size != expected || size > rest.len() {
                    bail!(
                        "output `{name}` ({datatype} {shape:?}) says {size} bytes, {expected} expected, {} left",
                        rest.len()
                    );
                }
                let (bytes, tail) = rest.split_at(size);
                rest = tail;
                if dt == tract_onnx::prelude::DatumType::Bool && bytes.iter().any(|&b| b > 1) {
                    bail!("output `{name}` is BOOL but holds bytes other than 0 and 1");
                }
                // SAFETY: `bytes` holds the shape's elements of `dt` (bools 0 or 1), little-endian as the
                // protocol sends them (checked above).
                unsafe { Tensor::from_raw_dt(dt, &shape, bytes)? }
            }
            None => json_tensor(o, dt, &shape).with_context(|| format!("output `{name}`"))?,
        };
        tensors.push((name, tensor));
    }
    Ok(tensors)
}

/// An output sent as JSON numbers (a server without the binary extension).
fn json_tensor(o: &Value, dt: tract_onnx::prelude::DatumType, shape: &[usize]) -> Result<Tensor> {
    use tract_onnx::prelude::DatumType as D;
    let data = o
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no data"))?;
    let floats: Vec<f64> = data
        .iter()
        .map(|v| v.as_f64().or_else(|| v.as_bool().map(|b| b as u8 as f64)))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("data that is not numbers"))?;
    let t = Tensor::from_shape(shape, &floats)?;
    Ok(match dt {
        D::F64 => t,
        D::Bool => t.cast_to::<f32>()?.cast_to_dt(D::Bool)?.into_owned(),
        _ => t.cast_to_dt(dt)?.into_owned(),
    })
}

/// The server's `{"error": "..."}` text, as ": TEXT" on one line.
fn server_message(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > 500 {
        let end = (0..=500)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
        text.push_str("...");
    }
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A model name as one URL path segment.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_outputs_follow_the_json_header_in_order() {
        let header = json!({"outputs": [
            {"name": "a", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
            {"name": "b", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}},
        ]})
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(1f32.to_le_bytes());
        body.extend(2f32.to_le_bytes());
        body.extend(7i64.to_le_bytes());
        let out = decode_response(&body, Some(header.len())).unwrap();
        assert_eq!(out[0].1, Tensor::from_shape(&[2], &[1f32, 2.]).unwrap());
        assert_eq!(out[1].1, Tensor::from_shape(&[1], &[7i64]).unwrap());
        let short = decode_response(&body[..body.len() - 1], Some(header.len()));
        assert!(format!("{:#}", short.unwrap_err()).contains("8 bytes, 8 expected, 7 left"));
    }

    #[test]
    fn json_outputs_are_read_too() {
        let body = json!({"outputs": [
            {"name": "y", "datatype": "INT32", "shape": [1, 2], "data": [3, 4]},
        ]})
        .to_string();
        let out = decode_response(body.as_bytes(), None).unwrap();
        assert_eq!(out[0].1, Tensor::from_shape(&[1, 2], &[3i32, 4]).unwrap());
    }

    #[test]
    fn model_names_are_escaped_in_paths() {
        assert_eq!(path_segment("lenet-h8_x.1"), "lenet-h8_x.1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
