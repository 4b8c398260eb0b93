//! `nsplit run --adaptive --requests N`: Neurosurgeon's runtime. Every request chooses its pair
//! under what the client believes now ([`Beliefs`]: the uplink, the round trip, each tail's
//! time on the server, each head's speed here), runs it, and learns from what it measured. The
//! choice moves only for a clear gain ([`beliefs::HYSTERESIS`]). Requests that split measure
//! the network; a client that has run all-mobile for [`QUIET`] requests probes the round trip
//! and the uplink ([`probe_bytes`]) and chooses again, so that a network that got better is
//! noticed (at once again where it measured a step to confirm; twice as many requests later
//! each time a probe changes nothing, up to [`MAX_QUIET`]; probes kept under [`PROBE_SHARE`] of
//! the requests' time). A server that does not answer (or answers that it cannot) gets the
//! request answered with the table's fallback (all-mobile) and is tried again after a backoff
//! that doubles, up to [`MAX_BACKOFF`] requests; splitting resumes when it answers. Nothing the
//! server does fails a request.

use super::beliefs::{self, Beliefs, Observation, RequestObservation};
use super::run::{read_inputs, CutChoice, Pair, RunOptions};
use super::{choose, Conditions};
use crate::selection::SelectionTable;
use crate::serve::kserve::{Server, Unavailable};
use crate::setting::Setting;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::Tensor;

/// After this many requests without a request to the server, probe the network again; after
/// each probe that leaves the choice as it was, twice as many, up to [`MAX_QUIET`].
pub const QUIET: usize = 10;
pub const MAX_QUIET: usize = 80;
/// The longest wait, in requests, before the server is tried again.
pub const MAX_BACKOFF: usize = 32;
/// Probes take at most this share of the requests' time: on a slow link, or beside a fast
/// cut, they come less often.
pub const PROBE_SHARE: f64 = 0.1;
/// A probe uploads what the believed uplink sends in this long (ms), within [`PROBE_BYTES`]:
/// long enough to stand out of a round trip's noise, short enough to cost little. A link
/// faster than believed sends it sooner, and the next probe is larger.
pub const PROBE_WIRE_MS: f64 = 8.0;
/// The smallest and the largest probe, bytes.
pub const PROBE_BYTES: (u64, u64) = (4 << 10, 64 << 10);

/// The bytes of a probe at a believed uplink of `mbps`.
pub fn probe_bytes(mbps: f64) -> u64 {
    let bytes = PROBE_WIRE_MS / crate::plan::network::MS_PER_BYTE_AT_1_MBPS * mbps;
    (bytes as u64).clamp(PROBE_BYTES.0, PROBE_BYTES.1)
}

/// What a quiet spell's probe did: its time where it measured the uplink, and the split to run
/// in its stead.
struct QuietSpell {
    probe_ms: Option<f64>,
    explore: Option<String>,
}

/// What [`AdaptiveClient::decide`] settles: the cut and why, every cut's prediction, and
/// whether the best cut splits.
type Decision = ((String, &'static str), BTreeMap<String, f64>, bool);

/// One request of an adaptive run: what ran, why, what it took, and what the client believed
/// when it chose.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub request: usize,
    pub cut: String,
    /// Why this cut: `best`, `kept` (the best was not clearly better), `probe` (after a quiet
    /// spell), `server unavailable` (answered all-mobile), `backoff` (the server is waited for).
    pub reason: String,
    /// The objective predicted for it under the beliefs.
    pub predicted: f64,
    pub head_ms: f64,
    /// The request's time less the server's; `null` for all-mobile.
    pub transfer_ms: Option<f64>,
    pub server_ms: Option<f64>,
    pub total_ms: f64,
    /// A probe of the network before the request (its round trip and upload), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_ms: Option<f64>,
    pub believed_uplink_mbps: f64,
    pub believed_rtt_ms: Option<f64>,
    pub believed_server_load: Option<f64>,
    /// The server's error, where it did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error: Option<String>,
}

/// An adaptive run: each request's step, and the last request's outputs.
#[derive(Debug, Serialize)]
pub struct Trace {
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub outputs: Vec<(String, Tensor)>,
}

/// Where the server stands.
enum ServerState {
    Up,
    /// Not answering; tried again at request `retry_at`, `backoff` requests after it failed.
    Down {
        retry_at: usize,
        backoff: usize,
    },
}

/// `requests` requests of `dir`'s pairs, each chosen under the client's beliefs, starting from
/// the uplink and network `opts.choice` gives.
pub fn run_adaptive(dir: &Path, opts: &RunOptions, requests: usize) -> Result<Trace> {
    let mut client = AdaptiveClient::open(dir, opts)?;
    let mut trace = Trace {
        steps: vec![],
        outputs: vec![],
    };
    for _ in 0..requests {
        let (step, outputs) = client.request()?;
        trace.steps.push(step);
        trace.outputs = outputs;
    }
    Ok(trace)
}

/// An app's client of an output folder: its pairs, opened when first used, and what it believes.
pub struct AdaptiveClient {
    dir: PathBuf,
    table: SelectionTable,
    opts: RunOptions,
    /// The uplink believed before any request measured one, and the network.
    start_mbps: f64,
    network: Option<String>,
    values: HashMap<String, Tensor>,
    server: Option<Server>,
    beliefs: Beliefs,
    pairs: HashMap<String, Pair>,
    state: ServerState,
    current: Option<String>,
    /// Requests since the last one that reached the server, and how many make a quiet spell.
    quiet: usize,
    quiet_spell: usize,
    requests: usize,
    /// Whether the server takes upload probes; `None` until one is tried.
    upload_probes: Option<bool>,
}

impl AdaptiveClient {
    /// Open `dir` for requests on the inputs `opts` names, believing the uplink and network
    /// `opts.choice` gives until requests measure them; the round trip is probed now.
    pub fn open(dir: &Path, opts: &RunOptions) -> Result<AdaptiveClient> {
        let table = SelectionTable::load(dir)?;
        let CutChoice::Bandwidth { mbps, network } = &opts.choice else {
            bail!(
                "an adaptive run starts from a belief of the uplink: give {} MBPS (and {} NAME)",
                Setting::Bandwidth,
                Setting::Network
            );
        };
        let server = match &opts.server {
            Some(url) => Some(Server::new(url, opts.timeout)?),
            None => None,
        };
        let mut client = AdaptiveClient {
            dir: dir.to_path_buf(),
            start_mbps: *mbps,
            network: network.clone(),
            values: read_inputs(&opts.inputs)?,
            table,
            opts: opts.clone(),
            server,
            beliefs: Beliefs::default(),
            pairs: HashMap::new(),
            state: ServerState::Up,
            current: None,
            quiet: 0,
            quiet_spell: QUIET,
            requests: 0,
            upload_probes: None,
        };
        client.probe();
        Ok(client)
    }

    /// What the client believes now.
    pub fn beliefs(&self) -> &Beliefs {
        &self.beliefs
    }

    /// One request: choose its pair, run it (all-mobile where the server does not answer),
    /// learn from it. Its step and the original's outputs.
    pub fn request(&mut self) -> Result<(Step, Vec<(String, Tensor)>)> {
        let request = self.requests;
        self.requests += 1;
        let retry_due = match self.state {
            ServerState::Down { retry_at, .. } => request >= retry_at,
            ServerState::Up => true,
        };
        let (conditions, choice, quiet) = self.decide_after_quiet_spell(retry_due)?;
        let probe_ms = quiet.as_ref().and_then(|q| q.probe_ms);
        let ((mut id, mut reason), predictions, best_splits) = choice;
        if let Some(split) = quiet.as_ref().and_then(|q| q.explore.clone()) {
            (id, reason) = (split, "probe");
        }
        let probed = quiet.is_some();
        if self.splits(&id) && !retry_due {
            id = self.fallback("the server is unavailable")?;
            reason = "backoff";
        }
        let (measured, server_error) = match self.run_one(&id) {
            Ok(m) => {
                if self.splits(&id) {
                    self.state = ServerState::Up;
                }
                (m, None)
            }
            Err(e) => {
                let error = match e.downcast_ref::<Unavailable>() {
                    Some(unavailable) => unavailable.to_string(),
                    None => return Err(e),
                };
                let backoff = match self.state {
                    ServerState::Down { backoff, .. } => (2 * backoff).min(MAX_BACKOFF),
                    ServerState::Up => 1,
                };
                self.state = ServerState::Down {
                    retry_at: request + backoff,
                    backoff,
                };
                // The pair's connection went with the server: it is reached again when retried.
                self.pairs.remove(&id);
                id = self.fallback(&error)?;
                reason = "server unavailable";
                (self.run_one(&id)?, Some(error))
            }
        };
        let predicted = predictions.get(&id).copied().unwrap_or(f64::NAN);
        let has_head = self
            .table
            .cuts
            .iter()
            .any(|c| c.id == id && c.head.is_some());
        self.beliefs.observe(
            &self.table,
            &Observation {
                cut: id.clone(),
                head_ms: has_head.then_some(measured.head_ms),
                request: measured.request_ms.map(|r| RequestObservation {
                    upload_bytes: measured.upload_bytes,
                    request_ms: r,
                    server_ms: measured.server_ms,
                }),
            },
        );
        self.quiet = if measured.request_ms.is_some() {
            0
        } else {
            self.quiet + 1
        };
        // The next probe: at once where this one measured a step not yet confirmed, later
        // where it changed nothing; a probe the server did not answer leaves it to the backoff.
        if best_splits {
            self.quiet_spell = QUIET;
        } else if probed {
            self.quiet_spell = if self.beliefs.uplink_mbps.unconfirmed() {
                0
            } else {
                (2 * self.quiet_spell).clamp(QUIET, MAX_QUIET)
            };
        }
        let step = Step {
            request,
            cut: id.clone(),
            reason: reason.into(),
            predicted,
            head_ms: measured.head_ms,
            transfer_ms: measured
                .request_ms
                .map(|r| (r - measured.server_ms.unwrap_or(0.0)).max(0.0)),
            server_ms: measured.server_ms,
            total_ms: measured.head_ms + measured.request_ms.unwrap_or(0.0),
            probe_ms,
            believed_uplink_mbps: conditions.uplink_mbps,
            believed_rtt_ms: conditions.rtt_ms,
            believed_server_load: conditions.server_load,
            server_error,
        };
        self.current = Some(id);
        Ok((step, measured.outputs))
    }

    /// The pair that answers on the phone alone, for a request the server cannot take (`why`).
    fn fallback(&self, why: &str) -> Result<String> {
        let cut = self
            .table
            .fallback_cut()
            .with_context(|| format!("{why}, and the phone cannot answer alone"))?;
        Ok(cut.id.clone())
    }

    /// Whether cut `id` sends a request to the server.
    fn splits(&self, id: &str) -> bool {
        self.table
            .cuts
            .iter()
            .any(|c| c.id == id && c.tail.is_some())
    }

    /// One request of cut `id`, its pair opened (and kept) the first time.
    fn run_one(&mut self, id: &str) -> Result<super::run::Request> {
        if !self.pairs.contains_key(id) {
            let cut = self
                .table
                .cuts
                .iter()
                .find(|c| c.id == id)
                .with_context(|| format!("selection.json has no cut `{id}`"))?;
            let mut pair = Pair::open(&self.dir, cut, &self.opts, &self.values)?;
            // One untimed request: a model's first run, here and in the server, allocates and
            // plans (Triton's Python backend took 34 ms for SqueezeNet's first, 8 ms after),
            // and a belief taken from it would keep the client off that pair.
            pair.warm_up(&self.values)?;
            pair.request(&self.table, &self.values)?;
            self.pairs.insert(id.to_string(), pair);
        }
        let pair = self.pairs.get_mut(id).expect("opened above");
        pair.request(&self.table, &self.values)
    }

    /// [`AdaptiveClient::decide`], after a probe where a quiet spell on the phone alone calls
    /// for one: the network is measured again (not while the server is waited for: a probe of
    /// a server that does not answer takes the timeout), by a small upload where the server
    /// takes one, else by the split that uploads the most. While no request has timed the
    /// server, a split that would win were the server's time nothing runs once, so that a
    /// server profiled slower than it is gets measured (one that could not win even so is not
    /// worth a request). Probes that change nothing come ever less often.
    fn decide_after_quiet_spell(
        &mut self,
        retry_due: bool,
    ) -> Result<(Conditions, Decision, Option<QuietSpell>)> {
        let (mut conditions, mut choice) = self.decide()?;
        let spell = self
            .quiet_spell
            .max(affordable_spell(&conditions, choice.1[&choice.0 .0]));
        if self.splits(&choice.0 .0) || self.quiet < spell || !retry_due {
            return Ok((conditions, choice, None));
        }
        let probe_ms = self.probe();
        if probe_ms.is_some() {
            (conditions, choice) = self.decide()?;
        }
        let explore = if self.beliefs.server_factor.is_empty() {
            promising_split(&self.table, &conditions, &choice)
        } else if probe_ms.is_none() {
            largest_split(&self.table)
        } else {
            None
        };
        Ok((conditions, choice, Some(QuietSpell { probe_ms, explore })))
    }

    /// The cut to run under the beliefs as they are (the current one unless the best is
    /// clearly better), every cut's prediction, and whether the best splits; with the
    /// conditions it was chosen under.
    fn decide(&self) -> Result<(Conditions, Decision)> {
        let conditions = self
            .beliefs
            .conditions(self.start_mbps, self.network.clone());
        let choice = choose(&self.table, &conditions)?;
        let pick = match &self.current {
            Some(c)
                if c != &choice.cut.id
                    && !beliefs::switch(choice.predictions[c], choice.predicted) =>
            {
                (c.clone(), "kept")
            }
            _ => (choice.cut.id.clone(), "best"),
        };
        let decision = (pick, choice.predictions.clone(), choice.cut.tail.is_some());
        Ok((conditions, decision))
    }

    /// Probe the network: the round trip by the server's health check (a request that carries
    /// nothing), then the uplink by an upload of [`probe_bytes`] where the server takes one
    /// ([`Server::upload_probe`]). The probe's time (ms) where it measured the uplink.
    fn probe(&mut self) -> Option<f64> {
        let server = self.server.as_ref()?;
        let start = Instant::now();
        server.ready().ok()?;
        self.beliefs.probed(start.elapsed().as_secs_f64() * 1e3);
        if self.upload_probes == Some(false) {
            return None;
        }
        let bytes = probe_bytes(self.beliefs.uplink_mbps.or(self.start_mbps));
        let ms = server.upload_probe(bytes as usize);
        self.upload_probes = Some(ms.is_ok());
        let ms = ms.ok()?;
        self.beliefs.uplink_probed(bytes, ms);
        Some(start.elapsed().as_secs_f64() * 1e3)
    }
}

/// The fewest requests between probes for probes to take at most [`PROBE_SHARE`] of the time:
/// a probe's predicted time (a round trip and [`probe_bytes`] at the believed uplink) over
/// that share of a request's, `request_ms`; at most [`MAX_QUIET`].
fn affordable_spell(c: &Conditions, request_ms: f64) -> usize {
    let probe_ms = c.rtt_ms.unwrap_or(0.0)
        + crate::plan::network::MS_PER_BYTE_AT_1_MBPS * probe_bytes(c.uplink_mbps) as f64
            / c.uplink_mbps;
    let spell = (probe_ms / (PROBE_SHARE * request_ms.max(1e-3))).ceil();
    if spell.is_finite() {
        (spell as usize).min(MAX_QUIET)
    } else {
        MAX_QUIET
    }
}

/// The split that would beat the decision clearly were the server's time nothing: the least
/// of the splits' predictions less their tails' predicted times, where it is below the
/// decided cut's by more than the hysteresis.
fn promising_split(table: &SelectionTable, c: &Conditions, d: &Decision) -> Option<String> {
    if table.objective != crate::plan::Objective::Latency {
        return None;
    }
    let ((current, _), predictions, _) = d;
    let load = c.server_load.unwrap_or(table.cloud_load) / table.cloud_load;
    let (id, optimistic) = table
        .cuts
        .iter()
        .filter(|cut| cut.tail.is_some())
        .filter_map(|cut| {
            let factor = c.server_factor.get(&cut.id).copied().unwrap_or(1.0);
            let without_server = predictions.get(&cut.id)? - cut.cloud_ms * load * factor;
            Some((cut.id.clone(), without_server))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    beliefs::switch(*predictions.get(current)?, optimistic).then_some(id)
}

/// The split (a cut with a tail) that uploads the most: the best measure of the uplink.
fn largest_split(table: &SelectionTable) -> Option<String> {
    table
        .cuts
        .iter()
        .filter(|c| c.tail.is_some())
        .max_by_key(|c| c.upload_bytes)
        .map(|c| c.id.clone())
}

impl Trace {
    /// The trace for people: one line per request.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "{:>4}  {:<16} {:<19} {:>10} {:>10} {:>10} {:>10} {:>10}  believed uplink / rtt / load\n",
            "#", "cut", "why", "predicted", "head ms", "transfer", "server", "total"
        );
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        for st in &self.steps {
            let _ = writeln!(
                s,
                "{:>4}  {:<16} {:<19} {:>10.3} {:>10.3} {:>10} {:>10} {:>10.3}  {:.2} Mbps / {} ms / {}{}",
                st.request,
                st.cut,
                st.reason,
                st.predicted,
                st.head_ms,
                f(st.transfer_ms),
                f(st.server_ms),
                st.total_ms,
                st.believed_uplink_mbps,
                f(st.believed_rtt_ms),
                f(st.believed_server_load),
                st.server_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ({e})"))
            );
        }
        s
    }
}
