//! `nsplit run`: one request the way an app makes it. The head runs here (onnxruntime where it
//! is installed, else tract), its boundary tensors go to the inference server serving the tail
//! (Open Inference Protocol, binary tensors), and the outputs come back. The measured head,
//! transfer and server times are reported next to the planner's predictions.
//!
//! All-mobile runs here alone; all-cloud sends the model's inputs. A request whose pair the
//! table chose (by bandwidth) never fails for want of the server: where the server does not
//! answer, or answers that it cannot now, it runs all-mobile and says why.

use crate::runtime::npy;
use crate::runtime::{Runtime, Verifier};
use crate::selection::{CutEntry, SelectionTable};
use crate::serve::kserve::{ModelMetadata, ModelStats, Server, Unavailable};
use crate::serve::HalfIo;
use crate::setting::Setting;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tract_onnx::prelude::Tensor;

/// Which pair to run.
#[derive(Clone, Debug)]
pub enum CutChoice {
    /// The cut the selection table chooses at this uplink (Mbps), on a bucket's network (by
    /// name) or, without one, on the breakpoint sweep's network, as `nsplit select` does.
    Bandwidth { mbps: f64, network: Option<String> },
    /// A cut by its id.
    Id(String),
}

#[derive(Clone)]
pub struct RunOptions {
    /// The server's base URL; needed unless the cut runs on the phone alone.
    pub server: Option<String>,
    /// (graph input, .npy file).
    pub inputs: Vec<(String, PathBuf)>,
    pub choice: CutChoice,
    /// The served model's name, where it is not the one selection.json names.
    pub model: Option<String>,
    pub timeout: Duration,
    /// The runtime of the head.
    pub runtime: Verifier,
    /// Timed runs (after one untimed head run); the report gives their medians.
    pub repeat: usize,
}

/// Milliseconds, measured (medians over the runs) or predicted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub head_ms: f64,
    /// Upload, download and protocol overhead: the request's round trip less the server's time;
    /// `null` where that is not known.
    pub transfer_ms: Option<f64>,
    /// The request's time in the server (queue and compute), from its statistics; `null` where
    /// the server has none (or, predicted, nothing runs there).
    pub server_ms: Option<f64>,
    /// Head plus the whole request.
    pub total_ms: Option<f64>,
}

/// A tensor's description in the report.
#[derive(Clone, Debug, Serialize)]
pub struct TensorDescription {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub cut: String,
    /// The server and the model that ran the tail; `null` for all-mobile.
    pub server: Option<String>,
    pub model: Option<String>,
    /// The runtime that ran the head; `null` for all-cloud.
    pub head_runtime: Option<Runtime>,
    pub runs: usize,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub measured: Timings,
    /// The planner's figures for this cut (selection.json); the transfer only where a bandwidth
    /// was given.
    pub predicted: Timings,
    /// The uplink the prediction is for, Mbps.
    pub predicted_at_mbps: Option<f64>,
    pub outputs: Vec<TensorDescription>,
    /// Where the chosen pair could not reach the server and all-mobile answered instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(skip)]
    pub values: Vec<(String, Tensor)>,
}

/// Why a request ran all-mobile rather than the pair the table chose.
#[derive(Clone, Debug, Serialize)]
pub struct Fallback {
    /// The cut the table chose.
    pub chosen: String,
    /// What the server did (did not answer, refused, answered HTTP 5xx).
    pub reason: String,
}

/// Run the pair of `dir` chosen by `opts` on the inputs it names. Where the table chose it (by
/// bandwidth) and the server is [`Unavailable`], run all-mobile instead: an app still answers.
pub fn run(dir: &Path, opts: &RunOptions) -> Result<RunReport> {
    let error = match run_pair(dir, opts) {
        Ok(report) => return Ok(report),
        Err(e) => e,
    };
    let chosen_by_table = matches!(opts.choice, CutChoice::Bandwidth { .. });
    let Some(reason) = error
        .downcast_ref::<Unavailable>()
        .filter(|_| chosen_by_table)
        .map(ToString::to_string)
    else {
        return Err(error);
    };
    let table = SelectionTable::load(dir)?;
    let chosen = choose(&table, &opts.choice)?.id.clone();
    let all_mobile = table
        .fallback_cut()
        .with_context(|| format!("{reason}, and the phone cannot answer alone"))?;
    let mut report = run_pair(
        dir,
        &RunOptions {
            choice: CutChoice::Id(all_mobile.id.clone()),
            ..opts.clone()
        },
    )?;
    report.fallback = Some(Fallback { chosen, reason });
    Ok(report)
}

/// Run the pair of `dir` chosen by `opts`, whatever the server does.
fn run_pair(dir: &Path, opts: &RunOptions) -> Result<RunReport> {
    let table = SelectionTable::load(dir)?;
    let cut = choose(&table, &opts.choice)?;
    let values = read_inputs(&opts.inputs)?;
    let mut pair = Pair::open(dir, cut, opts, &values)?;

    let mut runs: Vec<(f64, Option<f64>, Option<f64>)> = vec![];
    let mut last = None;
    // One untimed head run first (the first run of a model allocates and plans); the server
    // sees only timed requests.
    pair.warm_up(&values)?;
    for _ in 0..opts.repeat.max(1) {
        let r = pair.request(&table, &values)?;
        runs.push((r.head_ms, r.request_ms, r.server_ms));
        last = Some(r);
    }
    let last = last.expect("one run at least");

    let measured = median_run(&runs);
    let (at_mbps, predicted) = predicted_timings(
        &table,
        cut,
        &opts.choice,
        &values,
        last.upload_bytes,
        last.download_bytes,
    );
    Ok(RunReport {
        cut: cut.id.clone(),
        server: pair.tail.as_ref().map(|t| t.server.url.clone()),
        model: pair.tail.as_ref().map(|t| t.name.clone()),
        head_runtime: pair.head.as_ref().map(|h| h.runtime),
        runs: runs.len(),
        upload_bytes: last.upload_bytes,
        download_bytes: last.download_bytes,
        measured,
        predicted,
        predicted_at_mbps: at_mbps,
        outputs: last
            .outputs
            .iter()
            .map(|(name, t)| TensorDescription {
                name: name.clone(),
                datatype: crate::runtime::datatype::WireType::of_datum(t.datum_type())
                    .map_or(format!("{:?}", t.datum_type()), |w| w.kserve.to_string()),
                shape: t.shape().to_vec(),
            })
            .collect(),
        fallback: None,
        values: last.outputs,
    })
}

/// The model's input values from their NumPy files, each name once.
pub(crate) fn read_inputs(inputs: &[(String, PathBuf)]) -> Result<HashMap<String, Tensor>> {
    let mut values = HashMap::new();
    for (name, file) in inputs {
        let t = npy::read_npy(file).with_context(|| format!("{} {name}", Setting::RunInput))?;
        if values.insert(name.clone(), t).is_some() {
            bail!("{} {name} is given twice", Setting::RunInput);
        }
    }
    Ok(values)
}

/// A cut's head, loaded here, and its tail, on the server: ready for requests.
pub(crate) struct Pair {
    pub cut: CutEntry,
    head: Option<Head>,
    pub tail: Option<Tail>,
}

/// A head loaded in a runtime.
struct Head {
    runtime: Runtime,
    model: crate::runtime::LoadedModel,
    path: PathBuf,
}

/// What one request measured, and the original's outputs it computed.
pub(crate) struct Request {
    pub head_ms: f64,
    /// From sending the boundary to the answer; `None` for all-mobile.
    pub request_ms: Option<f64>,
    /// The request's time in the server, from its statistics.
    pub server_ms: Option<f64>,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub outputs: Vec<(String, Tensor)>,
}

impl Pair {
    /// Check that `values` are the inputs `cut`'s first half reads, load its head and reach its
    /// served tail (the server's metadata checked against the tail's).
    pub fn open(
        dir: &Path,
        cut: &CutEntry,
        opts: &RunOptions,
        values: &HashMap<String, Tensor>,
    ) -> Result<Pair> {
        // Each half's declared inputs and outputs, read once.
        let read = |file: &Option<String>| file.as_ref().map(|f| HalfIo::read(&dir.join(f)));
        let (head_io, tail_io) = (read(&cut.head).transpose()?, read(&cut.tail).transpose()?);
        check_inputs(cut, head_io.as_ref(), tail_io.as_ref(), values)?;
        let head = match &cut.head {
            Some(file) => {
                let runtime = Runtime::pick(opts.runtime)?;
                let path = dir.join(file);
                let model = runtime.load(&path).with_context(|| {
                    format!("{runtime} cannot load the head {}", path.display())
                })?;
                Some(Head {
                    runtime,
                    model,
                    path,
                })
            }
            None => None,
        };
        let tail = match &tail_io {
            Some(io) => Some(Tail::connect(cut, io, opts)?),
            None => None,
        };
        Ok(Pair {
            cut: cut.clone(),
            head,
            tail,
        })
    }

    /// One untimed run of the head.
    pub fn warm_up(&mut self, values: &HashMap<String, Tensor>) -> Result<()> {
        self.run_head(values).map(|_| ())
    }

    fn run_head(&mut self, values: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        match &mut self.head {
            Some(h) => h
                .model
                .run(values)
                .with_context(|| format!("{} cannot run the head {}", h.runtime, h.path.display())),
            None => Ok(HashMap::new()),
        }
    }

    /// One request: the head here, then the tail on the server.
    pub fn request(
        &mut self,
        table: &SelectionTable,
        values: &HashMap<String, Tensor>,
    ) -> Result<Request> {
        let start = Instant::now();
        let head_out = self.run_head(values)?;
        let head_ms = ms(start.elapsed());
        let boundary: Vec<&str> = self.cut.boundary.iter().map(|b| b.name.as_str()).collect();
        let Some(tail) = &self.tail else {
            return Ok(Request {
                head_ms,
                request_ms: None,
                server_ms: None,
                upload_bytes: 0,
                download_bytes: 0,
                outputs: model_outputs(&table.model.outputs, vec![], head_out, &[]),
            });
        };
        let sent: Vec<(String, &Tensor)> = tail
            .metadata
            .inputs
            .iter()
            .map(|i| {
                let v = head_out.get(&i.name).or_else(|| values.get(&i.name));
                v.map(|v| (i.name.clone(), v)).ok_or_else(|| {
                    anyhow!("model `{}` on {} takes `{}`, which neither the head computes nor an {} gives", tail.name, tail.server.url, i.name, Setting::RunInput)
                })
            })
            .collect::<Result<_>>()?;
        tail.check(&sent)?;
        let upload_bytes = sent.iter().map(|(_, t)| t.as_bytes().len() as u64).sum();
        let before = tail.server.statistics(&tail.name);
        let start = Instant::now();
        let received = tail.server.infer(&tail.name, &sent, &tail.outputs)?;
        let request_ms = ms(start.elapsed());
        let server_ms = server_time(&tail.server, &tail.name, before);
        let download_bytes = received
            .iter()
            .map(|(_, t)| t.as_bytes().len() as u64)
            .sum();
        Ok(Request {
            head_ms,
            request_ms: Some(request_ms),
            server_ms,
            upload_bytes,
            download_bytes,
            outputs: model_outputs(&table.model.outputs, received, head_out, &boundary),
        })
    }
}

/// The median run by total, with its own parts, so that they add up to its total: (head ms,
/// request ms, server ms) per run.
fn median_run(runs: &[(f64, Option<f64>, Option<f64>)]) -> Timings {
    let total = |r: &(f64, Option<f64>, Option<f64>)| r.0 + r.1.unwrap_or(0.0);
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| total(&runs[a]).total_cmp(&total(&runs[b])));
    let (head_ms, request, server_ms) = runs[order[(order.len() - 1) / 2]];
    let transfer_ms = match (request, server_ms) {
        (Some(r), Some(s)) => Some((r - s).max(0.0)),
        _ => None,
    };
    // A server time above the request's round trip (clocks apart) is capped at it.
    let server_ms = match (request, server_ms) {
        (Some(r), Some(s)) => Some(s.min(r)),
        _ => None,
    };
    Timings {
        head_ms,
        transfer_ms,
        server_ms,
        // The request whole, whether or not the server's statistics could tell its own time
        // (other clients' requests answered meanwhile).
        total_ms: Some(head_ms + request.unwrap_or(0.0)),
    }
}

/// What the table predicts for this request: its compute scaled to the request's batch, and,
/// where the pair was chosen by bandwidth, the transfer on the network the lookup read; with
/// that bandwidth.
fn predicted_timings(
    table: &SelectionTable,
    cut: &CutEntry,
    choice: &CutChoice,
    values: &HashMap<String, Tensor>,
    upload_bytes: u64,
    download_bytes: u64,
) -> (Option<f64>, Timings) {
    // The table's compute figures are for the sizes planned at; a request of another batch
    // scales them by the ratio of what the phone reads (the graph inputs) and of what the server
    // reads (the boundary), as the work of most layers grows with the batch.
    let planned_inputs: u64 = table.model.inputs.iter().filter_map(|t| t.bytes).sum();
    let given_inputs: u64 = values.values().map(|t| t.as_bytes().len() as u64).sum();
    let ratio = |actual: u64, planned: u64| {
        if actual > 0 && planned > 0 {
            actual as f64 / planned as f64
        } else {
            1.0
        }
    };
    let head_scale = ratio(given_inputs, planned_inputs);
    let tail_scale = if cut.head.is_some() {
        ratio(upload_bytes, cut.upload_bytes)
    } else {
        head_scale
    };
    let (at_mbps, network) = match choice {
        CutChoice::Bandwidth { mbps, network } => (Some(*mbps), network.as_deref()),
        CutChoice::Id(_) => (None, None),
    };
    let predicted = {
        // The network the lookup read: its RTT, and its downlink in proportion to the uplink.
        let net = network
            .and_then(|name| table.network(name))
            .map_or(&table.breakpoints.network, |n| &n.network);
        let transfer_ms = at_mbps.map(|b| {
            net.at_uplink(b)
                .transfer_ms(upload_bytes, download_bytes, cut.tail.is_some())
        });
        let served = cut.tail.is_some();
        let r = crate::selection::round6;
        let (head_ms, cloud_ms) = (r(cut.mobile_ms * head_scale), r(cut.cloud_ms * tail_scale));
        Timings {
            head_ms,
            transfer_ms: transfer_ms.filter(|_| served).map(r),
            server_ms: served.then_some(cloud_ms),
            total_ms: if served {
                transfer_ms.map(|t| r(head_ms + t + cloud_ms))
            } else {
                Some(head_ms)
            },
        }
    };
    (at_mbps, predicted)
}

fn choose<'a>(table: &'a SelectionTable, choice: &CutChoice) -> Result<&'a CutEntry> {
    match choice {
        CutChoice::Bandwidth { mbps, network } => Ok(table.select(*mbps, network.as_deref())?.0),
        CutChoice::Id(id) => table.cuts.iter().find(|c| &c.id == id).with_context(|| {
            let ids: Vec<&str> = table.cuts.iter().map(|c| c.id.as_str()).collect();
            format!(
                "selection.json has no cut `{id}`; its cuts are {}",
                ids.join(", ")
            )
        }),
    }
}

/// Every input the first half reads is given, and nothing else.
fn check_inputs(
    cut: &CutEntry,
    head: Option<&HalfIo>,
    tail: Option<&HalfIo>,
    values: &HashMap<String, Tensor>,
) -> Result<()> {
    let mut needed: Vec<String> = head.map(HalfIo::input_names).unwrap_or_default();
    if let Some(tail) = tail {
        let boundary: Vec<&str> = cut.boundary.iter().map(|b| b.name.as_str()).collect();
        // A boundary tensor is a graph input the tail reads directly when the head does not
        // output it; all-cloud's boundary is every input.
        let head_outputs = head.map(HalfIo::output_names).unwrap_or_default();
        let computed_by_head =
            |n: &String| boundary.contains(&n.as_str()) && head_outputs.contains(n);
        for n in tail.input_names() {
            if !(needed.contains(&n) || computed_by_head(&n)) {
                needed.push(n);
            }
        }
    }
    let missing: Vec<&String> = needed.iter().filter(|n| !values.contains_key(*n)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|n| format!("{} {n}=FILE.npy", Setting::RunInput))
            .collect();
        bail!("cut {} needs the input(s) {}", cut.id, list.join(" "));
    }
    if let Some(extra) = values.keys().find(|n| !needed.contains(n)) {
        bail!(
            "{} {extra}: cut {} reads no input of that name; it reads {}",
            Setting::RunInput,
            cut.id,
            needed.join(", ")
        );
    }
    Ok(())
}

/// The served tail: its server, name, and what the server says it takes and gives.
pub(crate) struct Tail {
    pub server: Server,
    pub name: String,
    metadata: ModelMetadata,
    outputs: Vec<String>,
}

impl Tail {
    fn connect(cut: &CutEntry, tail: &HalfIo, opts: &RunOptions) -> Result<Tail> {
        let url = opts.server.as_deref().with_context(|| {
            format!(
                "cut {} runs its tail on a server: give it with {} URL",
                cut.id,
                Setting::Server
            )
        })?;
        let name = match (&opts.model, &cut.triton_model) {
            (Some(m), _) | (None, Some(m)) => m.clone(),
            (None, None) => bail!(
                "selection.json names no served model for cut {}: write a Triton repository with {}, or name the model with {}",
                cut.id,
                Setting::PackageTriton,
                Setting::ServedModel
            ),
        };
        let server = Server::new(url, opts.timeout)?;
        let metadata = server.metadata(&name)?;
        let outputs: Vec<String> = metadata.outputs.iter().map(|o| o.name.clone()).collect();
        // The served model is this tail: it takes the tail's inputs and gives its outputs.
        let mut takes: Vec<String> = metadata.inputs.iter().map(|i| i.name.clone()).collect();
        let mut wants = tail.input_names();
        takes.sort();
        wants.sort();
        let missing: Vec<String> = tail
            .output_names()
            .into_iter()
            .filter(|o| !outputs.contains(o))
            .collect();
        if takes != wants || !missing.is_empty() {
            bail!(
                "model `{name}` on {url} takes {takes:?} and gives {outputs:?}, not the inputs {wants:?} and outputs of cut {} (the repository was not written from this folder: write it again with `nsplit package`)",
                cut.id
            );
        }
        Ok(Tail {
            server,
            name,
            metadata,
            outputs,
        })
    }

    /// What is about to be sent agrees with what the server's model takes.
    fn check(&self, sent: &[(String, &Tensor)]) -> Result<()> {
        for (declared, (name, t)) in self.metadata.inputs.iter().zip(sent) {
            let wire = crate::runtime::datatype::WireType::of_datum(t.datum_type())
                .with_context(|| format!("`{name}`"))?;
            let rewrite = "the repository was not written from this folder, or was edited since: write it again with `nsplit package`";
            if declared.datatype != wire.kserve {
                bail!(
                    "model `{}` on {} takes `{name}` as {}, but this cut sends {} ({rewrite})",
                    self.name,
                    self.server.url,
                    declared.datatype,
                    wire.kserve
                );
            }
            let fits = declared.shape.len() == t.rank()
                && declared
                    .shape
                    .iter()
                    .zip(t.shape())
                    .all(|(&d, &s)| d < 0 || d as usize == s);
            if !fits {
                bail!(
                    "model `{}` on {} takes `{name}` with shape {:?}, but this cut sends {:?} ({rewrite})",
                    self.name,
                    self.server.url,
                    declared.shape,
                    t.shape()
                );
            }
        }
        Ok(())
    }
}

/// The request's time in the server: the growth of its successful requests' total time, when
/// this request was the only one answered in between. The server may count a request a moment
/// after answering it: the statistics are read again for up to 100 ms until it shows.
fn server_time(server: &Server, model: &str, before: Option<ModelStats>) -> Option<f64> {
    let before = before?;
    let start = Instant::now();
    loop {
        let after = server.statistics(model)?;
        if after.success_count == before.success_count + 1 {
            return Some(after.success_ns.saturating_sub(before.success_ns) as f64 / 1e6);
        }
        if after.success_count > before.success_count + 1
            || start.elapsed() > Duration::from_millis(100)
        {
            return None; // other requests were answered meanwhile, or this one is not counted
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The original's outputs in its order, from the server's answer or the head's outputs (a
/// graph output the tail also reads is a head output only). A table without the list (older
/// ones) gives the head's outputs that are not boundary tensors and the server's, by name.
fn model_outputs(
    names: &[String],
    received: Vec<(String, Tensor)>,
    mut head: HashMap<String, Tensor>,
    boundary: &[&str],
) -> Vec<(String, Tensor)> {
    let mut received: HashMap<String, Tensor> = received.into_iter().collect();
    if names.is_empty() {
        let mut rest: Vec<(String, Tensor)> = head
            .into_iter()
            .filter(|(n, _)| !boundary.contains(&n.as_str()))
            .chain(received)
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        return rest;
    }
    names
        .iter()
        .filter_map(|n| {
            let t = received.remove(n).or_else(|| head.remove(n))?;
            Some((n.clone(), t))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl RunReport {
    /// The report for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let where_ = match (&self.server, &self.model, &self.head_runtime) {
            (Some(url), Some(m), Some(rt)) => format!("head here in {rt}, tail `{m}` on {url}"),
            (Some(url), Some(m), None) => format!("everything on {url} as `{m}`"),
            (_, _, Some(rt)) => format!("everything here in {rt}"),
            _ => String::new(),
        };
        if let Some(f) = &self.fallback {
            let _ = writeln!(s, "ran all-mobile, not {}: {}", f.chosen, f.reason);
        }
        let _ = writeln!(
            s,
            "cut {} ({where_}), the median of {} run(s)",
            self.cut, self.runs
        );
        let at = self
            .predicted_at_mbps
            .map_or(String::new(), |b| format!(" at {b} Mbps"));
        let _ = writeln!(
            s,
            "  {:<9} {:>12} {:>22}",
            "",
            "measured",
            format!("predicted{at}")
        );
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
        let rows = [
            (
                "head",
                Some(self.measured.head_ms),
                Some(self.predicted.head_ms),
            ),
            (
                "transfer",
                self.measured.transfer_ms,
                self.predicted.transfer_ms,
            ),
            ("server", self.measured.server_ms, self.predicted.server_ms),
            ("total", self.measured.total_ms, self.predicted.total_ms),
        ];
        for (label, m, p) in rows {
            let _ = writeln!(s, "  {label:<9} {:>12} {:>22}", f(m), f(p));
        }
        if self.server.is_some() {
            let _ = writeln!(
                s,
                "  sent {} B, received {} B",
                self.upload_bytes, self.download_bytes
            );
        }
        for o in &self.outputs {
            let _ = writeln!(s, "  output {} {} {:?}", o.name, o.datatype, o.shape);
        }
        s
    }
}
