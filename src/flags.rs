//! The command line's flags and their help: the manual of `nsplit` (`--help`). Parsing only;
//! `main.rs` dispatches to the library.

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use nsplit::client::run::{CutChoice, RunOptions};
use nsplit::cost::profile::{DeviceProfile, BUILT_IN};
use nsplit::cost::Profiles;
use nsplit::job::JobOptions;
use nsplit::plan::{network, PlanOptions, Sweep};
use nsplit::runtime::SampleInputs;
use nsplit::serve::triton::TritonOptions;
use nsplit::shapes::InputShapes;
use std::path::PathBuf;

const ANNOTATE_EXAMPLES: &str = "\
Examples:
  nsplit annotate fixtures/lenet.onnx
  nsplit annotate model.onnx --input-shape images=1x3x224x224 --format json > model.json
  nsplit annotate model.onnx --format csv > nodes.csv

The JSON format is documented in docs/annotations.md.";

const GUIDE: &str = "\
Examples:
  nsplit fixtures/lenet.onnx --out dist/
  nsplit model.onnx --out dist/ --buckets 0.5,2,10,50 --objective energy
  nsplit model.onnx --out dist/ --input-shape images=1x3x224x224 --mobile phone.json
  nsplit select dist/ --bandwidth 7.5
  nsplit annotate fixtures/lenet.onnx

Output folder: one <cut>.head.onnx / <cut>.tail.onnx pair per distinct chosen cut (a side with
no work is not written), selection.json (docs/selection.md), selection.md, annotations.json,
selection.svg (each cut's objective against bandwidth, breakpoints marked), cuts.svg (every cut's
latency and energy on one network), and with --triton a Triton model repository of the tails in triton/ (docs/deploy.md).
The user guide is docs/user-guide.md in the source repository.";

/// Split ONNX models between a phone and a server.
///
/// The main job, `nsplit MODEL --out DIR`, reads the model, predicts every node's latency on the
/// phone and on the server and its phone energy (device profiles), chooses the best cut for each
/// network (bandwidth bucket) and the exact bandwidths where the best cut changes, writes a
/// matched head/tail pair of ONNX files for every distinct chosen cut, checks each pair against
/// the original (in onnxruntime where it is installed, else tract), and writes the selection
/// table.
///
/// Results for programs go to files or stdout as JSON; messages for people go to stderr.
/// Exit codes: 0 success, 1 an error in the input or the run, 2 a usage error, 3 (verify only)
/// no runtime can run the original.
#[derive(Parser)]
#[command(
    name = "nsplit",
    version,
    max_term_width = 100,
    after_help = GUIDE,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub job: JobArgs,
}

/// The main job's arguments.
#[derive(Args)]
pub struct JobArgs {
    /// The ONNX model. External data files must sit beside it.
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// Output folder (created if missing). Files appear only when all are written and checked;
    /// pairs a previous run wrote there and this run did not are removed.
    #[arg(long, value_name = "DIR", required = true)]
    out: Option<PathBuf>,
    #[command(flatten)]
    profiles: ProfileArgs,
    /// Networks to choose a cut for: names (3g, lte, wifi), uplink bandwidths in Mbps (e.g.
    /// 0.5,2,10,50; downlink taken equal, RTT and radio of --base-network), mixed, or a buckets
    /// JSON file (docs/user-guide.md).
    #[arg(long, default_value = network::DEFAULT_BUCKETS, value_name = "LIST|FILE")]
    buckets: String,
    /// What to minimise: end-to-end latency, or the phone's energy (compute + radio).
    #[arg(long, value_enum, default_value_t = Objective::Latency)]
    objective: Objective,
    /// Server load factor: server latency is multiplied by K.
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    cloud_load: f64,
    /// Uplink range (Mbps) over which the exact breakpoints are computed.
    #[arg(long, default_value = network::DEFAULT_SWEEP_RANGE, value_name = "FROM..TO")]
    range: String,
    /// The network (3g, lte, wifi) whose RTT and radio power a bare bandwidth uses, in
    /// --buckets and in the breakpoint range.
    #[arg(long, default_value = network::DEFAULT_BASE_NETWORK, value_name = "NETWORK")]
    base_network: String,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    samples: SampleArgs,
    /// Do not check the pairs against the original (they are marked "skipped").
    #[arg(long)]
    no_verify: bool,
    /// Write the all-mobile pair only where a bucket chooses it. By default it is always
    /// written (selection.json's `fallback`): the app answers with it when the server is down,
    /// refuses or is too slow. Leave it out only for a model the phone cannot hold; `nsplit run`
    /// then has no answer without the server and says so.
    #[arg(long)]
    no_fallback: bool,
    /// Also write the pairs the planner chooses with the server K times faster and K times
    /// slower than --cloud and --cloud-load say (latency only; 1: only the pairs chosen as
    /// profiled). No bucket chooses them: they are there for a runtime that measures the
    /// server (nsplit run --adaptive), which then finds the pair it needs in the folder.
    #[arg(long, default_value_t = nsplit::plan::DEFAULT_SERVER_SPREAD, value_name = "K")]
    server_spread: f64,
    /// The runtime that checks each pair: onnxruntime where it is installed ($ORT_DYLIB_PATH or
    /// the Python onnxruntime package), else tract. selection.json says which one did.
    #[arg(long, value_enum, default_value_t = Verifier::Auto)]
    verifier: Verifier,
    /// Store weights in a separate `<file>.data`: auto (when the source did, or a half exceeds
    /// 2 GiB), always, or never.
    #[arg(long, value_enum, default_value_t = ExternalData::Auto)]
    external_data: ExternalData,
    /// Also write a Triton model repository of the tails into DIR/triton (docs/deploy.md);
    /// selection.json names each cut's model.
    #[arg(long)]
    triton: bool,
    #[command(flatten)]
    triton_opts: TritonArgs,
}

/// `--input-shape`, for every command that reads a model.
#[derive(Args)]
pub struct ShapeArgs {
    /// Fix a graph input's shape: NAME=DIMS, e.g. images=1x3x224x224. Repeat for each input.
    /// Needed where an input has a symbolic dimension (a batch `N`) and sizes matter: the
    /// main job, annotate and verify; split uses it for the boundary's sizes in bytes and the
    /// sizes it checks the halves at.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    input_shape: Vec<String>,
}

impl ShapeArgs {
    pub fn parse(&self) -> Result<InputShapes> {
        InputShapes::parse(&self.input_shape)
    }
}

/// `--sample-inputs` and `--input-value`: real inputs for every run of the model.
#[derive(Args)]
pub struct SampleArgs {
    /// Real inputs to check the halves on, instead of random ones: an .npz with one array per
    /// graph input (np.savez), or a folder of them (each one a sample). Repeat for more.
    #[arg(long = "sample-inputs", value_name = "FILE.npz|DIR")]
    sample_inputs: Vec<PathBuf>,
    /// A value for every element of an input, the rest random: NAME=VALUE, e.g. sr=16000 for a
    /// model steered by its sample rate, or NAME=LO..HI for integers drawn from a range (token
    /// ids within a vocabulary). Repeat for each input.
    #[arg(long = "input-value", value_name = "NAME=VALUE")]
    input_value: Vec<String>,
}

impl SampleArgs {
    pub fn read(&self) -> Result<SampleInputs> {
        SampleInputs::read(&self.sample_inputs, &self.input_value)
    }
}

/// `--mobile` and `--cloud`: the device profiles predictions come from.
#[derive(Args)]
pub struct ProfileArgs {
    #[arg(long, default_value = nsplit::cost::profile::DEFAULT_MOBILE, value_name = "NAME|FILE", help = profile_help("Mobile device", nsplit::cost::profile::Role::Mobile))]
    mobile: String,
    #[arg(long, default_value = nsplit::cost::profile::DEFAULT_CLOUD, value_name = "NAME|FILE", help = profile_help("Server", nsplit::cost::profile::Role::Cloud))]
    cloud: String,
}

impl ProfileArgs {
    pub fn resolve(&self) -> Result<Profiles> {
        Profiles::resolve(&self.mobile, &self.cloud)
    }
}

/// The help of a profile flag, naming the built-in profiles of `role` first.
fn profile_help(device: &str, role: nsplit::cost::profile::Role) -> String {
    let (mine, others): (Vec<&str>, Vec<&str>) = BUILT_IN
        .iter()
        .map(|(name, _)| *name)
        .partition(|name| DeviceProfile::resolve(name).is_ok_and(|p| p.role == role));
    format!(
        "{device} profile: a built-in name ({}; also {}) or a profile JSON file (docs/profiles.md)",
        mine.join(", "),
        others.join(", ")
    )
}

/// How Triton serves the tails.
#[derive(Args, Clone)]
pub struct TritonArgs {
    /// The tails' Triton backend: onnxruntime (`platform: "onnxruntime_onnx"`), or python (a
    /// model.py running the tail in onnxruntime, for servers without the onnxruntime backend).
    #[arg(long, value_enum, default_value_t = TritonBackend::Onnxruntime)]
    triton_backend: TritonBackend,
    /// max_batch_size of a tail that can batch (its inputs and outputs start with the original's
    /// symbolic batch dimension); 0 turns batching off.
    #[arg(long, default_value_t = nsplit::serve::triton::DEFAULT_MAX_BATCH, value_name = "N")]
    triton_max_batch: u32,
    /// How long Triton's dynamic batcher may hold a request waiting for others, microseconds.
    #[arg(long, default_value_t = 0, value_name = "US")]
    triton_queue_delay_us: u64,
    /// Name the served models `NAME-<cut id>` instead of after the model's file stem: two models
    /// with one file name (`model.onnx`, as many packages ship them) can then share a repository.
    #[arg(long, value_name = "NAME")]
    triton_name: Option<String>,
}

impl TritonArgs {
    pub fn options(&self) -> TritonOptions {
        TritonOptions {
            backend: self.triton_backend.into(),
            max_batch_size: self.triton_max_batch,
            queue_delay_us: self.triton_queue_delay_us,
            name: self.triton_name.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Print every node's op class, output tensors, FLOPs and bytes.
    ///
    /// For each node in topological order: its name, op, class (conv, matmul, pool,
    /// elementwise, activation, norm, softmax, recurrent, data_movement, control_flow, other),
    /// every output tensor with its element type, shape and size, the FLOPs it performs (a
    /// multiply-accumulate counts as 2), the bytes it reads and writes, and the weight bytes it
    /// reads; then the totals. Tensors whose size cannot be known are listed, never guessed.
    ///
    /// Shapes come from tract's analysis, the model's own value_info, and ONNX shape rules for
    /// ops tract lacks. A symbolic input dimension (e.g. a batch `N`) must be fixed with
    /// --input-shape.
    #[command(after_long_help = ANNOTATE_EXAMPLES)]
    Annotate {
        /// The ONNX model. External data files must sit beside it.
        model: PathBuf,
        #[command(flatten)]
        shapes: ShapeArgs,
        /// Output format: an aligned table, the JSON document (docs/annotations.md), or CSV with
        /// one row per node output.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        profiles: ProfileArgs,
        /// Also run the model here and report measured time per node (the median of 5 runs
        /// after a warm-up) beside the predictions, and the whole-model time.
        #[arg(long)]
        measure: bool,
        /// The runtime --measure runs the model in: compare a profile with the runtime it was
        /// taken in (the profile's `runtime` field). onnxruntime's per-node times come from its
        /// own profiler, under the names of the nodes its optimiser made.
        #[arg(long, value_enum, default_value_t = Runtime::Tract, requires = "measure")]
        runtime: Runtime,
        /// Also draw, as SVG into FILE, each node's predicted phone latency and output size
        /// (the paper's per-layer figure).
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// Cut the model by hand after the named tensors and write head.onnx and tail.onnx.
    ///
    /// The head is every node needed to compute the named tensors; everything else is the
    /// tail. The boundary (every tensor the tail reads that the head computes, or a graph input
    /// the tail reads) is printed with its type, shape and size. Both halves keep the IR
    /// version, opset imports and metadata, carry only the weights they use, and are stamped with
    /// the source's SHA-256, the cut id and the boundary (metadata_props nsplit.*). An empty
    /// side is not written: naming the graph outputs gives a head only (all on the phone).
    ///
    /// No sizes are needed: a model with symbolic input dimensions (a batch `N`) splits as it
    /// is, and both halves declare `N` wherever the original does, so a server can batch the
    /// tail. --input-shape only adds the boundary's sizes in bytes to the report.
    #[command(after_long_help = SPLIT_EXAMPLES)]
    Split {
        /// The ONNX model.
        model: PathBuf,
        /// Tensors the head must compute, comma-separated (names from `nsplit annotate`); a
        /// node's name cuts after that node (the head computes all its outputs).
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            value_name = "TENSOR|NODE[,..]"
        )]
        at: Vec<String>,
        /// Output folder (created if missing). Files appear only when all are written.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        shapes: ShapeArgs,
        /// Store weights in a separate `<half>.onnx.data` file: auto (when the source did, or a
        /// half exceeds 2 GiB), always, or never (halves over 2 GiB are external regardless).
        #[arg(long, value_enum, default_value_t = ExternalData::Auto)]
        external_data: ExternalData,
        /// Write the halves without running them. By default they are run against the original
        /// at the given sizes (batch 1 where none is given) and at a second point, before they
        /// are put in place: a half that declares a dim it does not compute, or a pair that
        /// does not compute the original's outputs, is an error and nothing is written.
        #[arg(long)]
        no_verify: bool,
        /// The runtime that checks the halves: onnxruntime where it is installed, else tract.
        #[arg(long, value_enum, default_value_t = Verifier::Auto)]
        verifier: Verifier,
        #[command(flatten)]
        samples: SampleArgs,
    },
    /// Measure this machine and write a device profile (the deployment phase).
    ///
    /// Times each op class and kernel variant (convs: im2col, pointwise, depthwise, direct;
    /// matmul, pooling, normalisation, activations, elementwise and broadcasts, softmax, data
    /// movement, LSTM, GRU) with tract over a grid of configurations, in six short passes,
    /// taking each one's typical median, the trimmed mean over the passes (a shared machine's
    /// speed changes from second to second, and whole networks run at its mean speed), each
    /// median scaled to the machine's typical speed by a reference conv timed around it. Fits a
    /// linear, a logarithmic and a hinged (cache cliff) regression of latency on FLOPs and
    /// bytes per class or variant and keeps the simplest within one standard error of the best
    /// by cross-validation. Measures the per-run overhead (chains of Relus, after each pass)
    /// and, on four calibration networks timed in place (a small CNN, a classifier, a residual
    /// net, a micro CNN), how much slower each kernel and class runs inside a network than
    /// alone, and, per class, ops whose data stays in cache (an op takes the one or the other in
    /// proportion to its bytes over this machine's L2 cache). Writes the profile (docs/profiles.md),
    /// labelled "measured" with this machine's description and its rerun spread; warns when the
    /// machine was too noisy to trust (spread over 10%). Power is not measured: a mobile
    /// profile records the --power-w assumption.
    /// About a minute and a half on 2 cores.
    #[command(after_long_help = PROFILE_EXAMPLES)]
    Profile {
        /// Where to write the profile JSON.
        #[arg(long, value_name = "PROFILE.json")]
        out: PathBuf,
        /// Whether this machine plays the phone or the server.
        #[arg(long, value_enum, default_value_t = Role::Mobile)]
        role: Role,
        /// A small grid and few repetitions (under a minute), for tests and a first look.
        #[arg(long)]
        quick: bool,
        /// Active power (W) assumed for every op class of a mobile profile.
        #[arg(long, default_value_t = 5.0)]
        power_w: f64,
        /// The profile's name, shown in reports (default `measured-<architecture>`, with
        /// `-onnxruntime` after it for that runtime).
        #[arg(long)]
        name: Option<String>,
        /// The runtime that times the models: the one that will run this side's halves.
        /// Profile a server for Triton (whose backends run onnxruntime) with onnxruntime: on
        /// the nets measured here it runs them 1.4-5x faster than tract. The profile records
        /// the runtime and its version.
        #[arg(long, value_enum, default_value_t = Runtime::Tract)]
        runtime: Runtime,
    },
    /// Which pair an app should use at a measured uplink bandwidth (the run-time lookup).
    ///
    /// Reads only DIR/selection.json, finds the breakpoint interval containing the bandwidth
    /// (clamped to the planned range), and prints a JSON object: the cut id, the head and tail
    /// files (null for an empty side), and the predicted objective at that bandwidth. With
    /// --rtt or --server-load (conditions other than those planned for), every cut of the
    /// table is predicted again from its line on the network, and the least answers.
    Select {
        /// An output folder of `nsplit MODEL --out DIR`.
        dir: PathBuf,
        /// Measured uplink bandwidth in Mbps.
        #[arg(long, value_name = "MBPS")]
        bandwidth: f64,
        /// The kind of network measured: a bucket's name (3g, lte, wifi, or one of a buckets
        /// file). With the energy objective the best cut depends on the radio, not on bandwidth
        /// alone. Without it, the breakpoint sweep's network (--base-network) answers.
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
        /// The round trip to the server now, in ms, where it differs from the network's
        /// (selection.json lists each network's rtt_ms). Every cut that sends a request is
        /// predicted again with it, and the least predicted cut answers.
        #[arg(long, value_name = "MS")]
        rtt: Option<f64>,
        /// The server's load now: its time over the cloud profile's prediction, as the main
        /// job's --cloud-load (selection.json's cloud_load). Each tail's time scales with it.
        #[arg(long, value_name = "K")]
        server_load: Option<f64>,
    },
    /// Write a Triton model repository of an output folder's tails.
    ///
    /// For every cut of DIR/selection.json with a tail: REPO/<model>-<cut>/config.pbtxt and
    /// REPO/<model>-<cut>/1/model.onnx (external data beside it). Each input and output is
    /// declared with its Triton data type and dims; a tail whose inputs and outputs all start
    /// with the original's symbolic batch dimension gets max_batch_size and dynamic_batching.
    /// Models of other names in REPO are left alone; DIR/selection.json then names each cut's
    /// model (`triton_model`), which `nsplit run` asks the server for.
    #[command(after_long_help = PACKAGE_EXAMPLES)]
    Package {
        /// An output folder of `nsplit MODEL --out DIR`.
        dir: PathBuf,
        /// The model repository to write into (created if missing).
        #[arg(long, value_name = "REPO")]
        triton: PathBuf,
        #[command(flatten)]
        opts: TritonArgs,
    },
    /// Run a split request: the head here, the tail on an inference server.
    ///
    /// Picks the pair of DIR for --bandwidth (as `nsplit select` does) or by --cut, runs the
    /// head on the given inputs (onnxruntime where it is installed, else tract), sends the
    /// boundary tensors to the server's model with the Open Inference Protocol (KServe v2 REST,
    /// with Triton's binary tensor extension), and receives the outputs. All-mobile
    /// runs here alone; all-cloud sends the inputs. Prints the measured head, transfer and
    /// server times (the server's own, from its statistics where it has them) beside the
    /// planner's predictions; --out writes the outputs as an .npz archive (np.load).
    #[command(after_long_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Check that HEAD then TAIL computes what ORIGINAL computes, in onnxruntime or tract.
    ///
    /// Runs ORIGINAL, then HEAD and TAIL, on the same seeded random inputs (floats in [-1, 1),
    /// integers in {0, 1}, booleans true; --input-value sets an input, --sample-inputs gives
    /// real ones), and prints the largest absolute and relative
    /// difference of every original output. Give `-` for a half that does not exist
    /// (all-cloud or all-mobile). Symbolic input dimensions are checked at two sizes: those
    /// given with --input-shape (1 where none is given) and each moved by two or more (batch 1
    /// and 3), so a half that froze a dimension fails. Give sizes for symbolic spatial dims (a
    /// convolution's input of 1x1 has no output to compare).
    ///
    /// onnxruntime is loaded from $ORT_DYLIB_PATH, else from the Python onnxruntime package of
    /// $NSPLIT_PYTHON, $VIRTUAL_ENV or python3 (pip install onnxruntime). Exit code 0 when every
    /// element is within atol + rtol x |original|, 1 on a mismatch, when the runtime refuses a
    /// half it should run (a frozen dimension, a missing input) or on bad input, 3 when no
    /// runtime can run the original.
    Verify {
        original: PathBuf,
        /// The head model, or `-` if there is none.
        head: String,
        /// The tail model, or `-` if there is none.
        tail: String,
        #[command(flatten)]
        shapes: ShapeArgs,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Relative tolerance.
        #[arg(long, default_value_t = nsplit::verify::DEFAULT_RTOL)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = nsplit::verify::DEFAULT_ATOL)]
        atol: f64,
        /// The runtime that runs the models: onnxruntime where it is installed, else tract.
        #[arg(long, value_enum, default_value_t = Verifier::Auto)]
        verifier: Verifier,
        #[command(flatten)]
        samples: SampleArgs,
    },
}

/// `nsplit run`'s arguments.
#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["bandwidth", "cut", "calibrate"])))]
pub struct RunArgs {
    /// An output folder of `nsplit MODEL --out DIR`, with served tails (`nsplit package`).
    pub dir: PathBuf,
    /// The inference server's URL, e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A graph input from a NumPy file. Repeat for each input.
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    input: Vec<String>,
    /// Run the pair the selection table chooses at this uplink bandwidth (Mbps).
    #[arg(long, value_name = "MBPS")]
    bandwidth: Option<f64>,
    /// The network the bandwidth was measured on (a bucket's name), as for `nsplit select`.
    #[arg(long, value_name = "NAME", requires = "bandwidth")]
    network: Option<String>,
    /// Run this cut (an id from selection.json).
    #[arg(long, value_name = "ID")]
    cut: Option<String>,
    /// Measure what a request costs beyond the network: run every cut with a served tail in
    /// turn (--repeat requests each), fit a constant per request and a cost per MB to each
    /// request's round trip less the server's time, and write the table's buckets with that
    /// cost (`protocol`) to FILE, to plan with `--buckets FILE`. Run it where the network
    /// itself takes no time (the server on loopback or on the LAN).
    #[arg(long, value_name = "BUCKETS.json")]
    pub calibrate: Option<PathBuf>,
    /// The served model's name, where it is not the one selection.json names.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Write the outputs here, one array per output tensor.
    #[arg(long, value_name = "FILE.npz")]
    pub out: Option<PathBuf>,
    /// Give up on the server after this long, per request.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
    /// Timed runs; the report gives their medians (after one untimed head run).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
    /// The runtime of the head: onnxruntime where it is installed, else tract.
    #[arg(long, value_enum, default_value_t = Verifier::Auto)]
    runtime: Verifier,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Neurosurgeon's runtime: make --requests requests, each choosing its pair under what the
    /// client has measured so far (uplink, round trip, the server's load from its statistics,
    /// each head's speed here), starting from --bandwidth; a pair changes only when another is
    /// predicted 10% faster. Where the server does not answer, the request runs all-mobile and
    /// the server is tried again after a backoff. Prints a line per request (--json: the trace).
    #[arg(long, requires_all = ["bandwidth", "requests"])]
    pub adaptive: bool,
    /// The number of requests of an adaptive run.
    #[arg(long, value_name = "N", requires = "adaptive")]
    pub requests: Option<usize>,
}

impl RunArgs {
    /// The request's options.
    pub fn options(&self) -> Result<RunOptions> {
        let timeout = self.timeout;
        if !(timeout.is_finite() && timeout > 0.0) {
            bail!("--timeout must be a positive number of seconds, got {timeout}");
        }
        let inputs = self
            .input
            .iter()
            .map(|i| {
                i.split_once('=')
                    .map(|(n, f)| (n.to_string(), PathBuf::from(f)))
                    .with_context(|| format!("--input `{i}`: expected NAME=FILE.npy"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunOptions {
            server: self.server.clone(),
            inputs,
            choice: match (self.bandwidth, &self.cut) {
                (Some(mbps), _) => CutChoice::Bandwidth {
                    mbps,
                    network: self.network.clone(),
                },
                (None, Some(c)) => CutChoice::Id(c.clone()),
                // --calibrate: each served cut in turn, set by the calibration.
                (None, None) => CutChoice::Id(String::new()),
            },
            model: self.model.clone(),
            timeout: std::time::Duration::try_from_secs_f64(timeout)
                .context("--timeout is too large")?,
            runtime: self.runtime.into(),
            repeat: self.repeat,
        })
    }
}

const PROFILE_EXAMPLES: &str = "\
Examples:
  nsplit profile --out phone.json --role mobile     # run on the phone (aarch64 build)
  nsplit profile --out server.json --role cloud
  nsplit annotate model.onnx --mobile phone.json --cloud server.json";

const SPLIT_EXAMPLES: &str = "\
Examples:
  nsplit split fixtures/lenet.onnx --at pool2_out --out dist/
  nsplit split fixtures/inception_block.onnx --at b1_relu_out,b2a_relu_out --out dist/
  nsplit verify fixtures/lenet.onnx dist/head.onnx dist/tail.onnx";

const PACKAGE_EXAMPLES: &str = "\
Examples:
  nsplit fixtures/lenet.onnx --out dist/ --objective energy
  nsplit package dist/ --triton models/
  nsplit package dist/ --triton models/ --triton-backend python --triton-max-batch 16
  tritonserver --model-repository models/

The same repository comes with the main job's --triton (into DIR/triton). docs/deploy.md.";

const RUN_EXAMPLES: &str = "\
Examples:
  python -c 'import numpy as np; np.save(\"x.npy\", np.random.rand(1,1,28,28).astype(np.float32))'
  nsplit run dist/ --server http://127.0.0.1:8000 --input input=x.npy --bandwidth 10
  nsplit run dist/ --server http://127.0.0.1:8000 --input input=x.npy --cut all-cloud --out y.npz
  nsplit run dist/ --server http://127.0.0.1:8000 --input input=x.npy --cut h8-fece8d60 --repeat 20 --json";

#[derive(Copy, Clone, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl JobArgs {
    /// The model, the output folder, and the job's options.
    pub fn options(self) -> Result<(PathBuf, PathBuf, JobOptions)> {
        let (model, out) = (
            self.model.expect("clap requires MODEL"),
            self.out.expect("clap requires --out"),
        );
        let base = network::reference_network(&self.base_network).context("--base-network")?;
        let opts = JobOptions {
            input_shapes: self.shapes.parse()?,
            profiles: self.profiles.resolve()?,
            plan: PlanOptions {
                objective: self.objective.into(),
                cloud_load: self.cloud_load,
                buckets: network::parse_buckets(&self.buckets, &base)?,
                sweep: Sweep::parse(&self.range, base)
                    .with_context(|| format!("--range `{}`", self.range))?,
                fallback: !self.no_fallback,
                server_spread: self.server_spread,
            },
            verify: !self.no_verify,
            verifier: self.verifier.into(),
            samples: self.samples.read()?,
            external_data: self.external_data.into(),
            progress: true,
            triton: self.triton.then(|| self.triton_opts.options()),
        };
        Ok((model, out, opts))
    }
}

/// A first argument that is no file and no command but close to a command's name (`anotate`):
/// clap would take it for the model path and complain about `--out`, so say what was meant.
pub fn mistyped_command(first: Option<&std::ffi::OsStr>) -> Option<String> {
    use clap::CommandFactory;
    let word = first?.to_str()?;
    if word.starts_with('-') || std::path::Path::new(word).exists() || word.contains(['.', '/']) {
        return None;
    }
    let cli = Cli::command();
    let names: Vec<String> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    if word == "help" || cli.find_subcommand(word).is_some() {
        return None;
    }
    let (best, distance) = names
        .iter()
        .map(|n| (n, strsim::damerau_levenshtein(n, word)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= 2 || best.starts_with(word)).then(|| {
        format!(
            "`{word}` is neither a command nor a model file; did you mean `nsplit {best}`? (commands: {})",
            names.join(", ")
        )
    })
}

/// A choice of the library's (an enum) as the command line spells it: the same variants, each
/// documented for `--help`, and the conversion to the library's type. The library derives no
/// clap traits.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident => $lib:ty { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$name> for $lib {
            fn from(choice: $name) -> $lib {
                match choice {
                    $($name::$variant => <$lib>::$variant),+
                }
            }
        }
    };
}

choice! {
    /// What the planner minimises (`--objective`).
    Objective => nsplit::plan::Objective {
        /// End-to-end latency (ms): phone compute, upload, round trip, server compute, download.
        Latency,
        /// Phone energy (mJ): compute plus the radio while uploading (the paper's energy(j)).
        Energy,
    }
}

choice! {
    /// Which runtime checks the halves (`--verifier`) or runs them (`nsplit run --runtime`).
    Verifier => nsplit::runtime::Verifier {
        /// onnxruntime where it is installed and runs the model, else tract.
        Auto,
        /// onnxruntime only (`$ORT_DYLIB_PATH`, or the Python onnxruntime package).
        Onnxruntime,
        /// tract only.
        Tract,
    }
}

choice! {
    /// Which runtime times the models (`nsplit profile --runtime`, `annotate --measure
    /// --runtime`): the one that will run the halves on that side.
    Runtime => nsplit::runtime::Runtime {
        /// tract, in nsplit itself: what a Rust app runs, and what cross-compiles to a phone.
        Tract,
        /// onnxruntime through its library (`$ORT_DYLIB_PATH`, or the Python onnxruntime
        /// package): what Triton and onnxruntime mobile run.
        Onnxruntime,
    }
}

choice! {
    /// When halves store their weights in a separate data file (`--external-data`).
    ExternalData => nsplit::output::ExternalData {
        /// External when the source model used external data, or when a half exceeds 2 GiB.
        Auto,
        Always,
        /// Inline, except for a half over 2 GiB, which protobuf cannot write inline.
        Never,
    }
}

choice! {
    /// Which side of the split a profile describes (`nsplit profile --role`).
    Role => nsplit::cost::profile::Role {
        Mobile,
        Cloud,
    }
}

choice! {
    /// Which Triton backend serves the tails (`--triton-backend`).
    TritonBackend => nsplit::serve::triton::TritonBackend {
        /// `platform: "onnxruntime_onnx"`: Triton's onnxruntime backend (GPU where the server has one).
        Onnxruntime,
        /// Triton's Python backend running `model.py` (onnxruntime in the server's Python).
        Python,
    }
}

/// How the command line names each setting the library's messages mention (installed by
/// `main`, [`nsplit::setting::name_with`]).
pub fn flag_name(setting: nsplit::setting::Setting) -> &'static str {
    use nsplit::setting::Setting;
    match setting {
        Setting::InputShape => "--input-shape",
        Setting::SampleInputs => "--sample-inputs",
        Setting::InputValue => "--input-value",
        Setting::Buckets => "--buckets",
        Setting::CloudLoad => "--cloud-load",
        Setting::EnergyObjective => "--objective energy",
        Setting::Bandwidth => "--bandwidth",
        Setting::Network => "--network",
        Setting::NoVerify => "--no-verify",
        Setting::NoFallback => "--no-fallback",
        Setting::ServerSpread => "--server-spread",
        Setting::Triton => "--triton",
        Setting::PackageTriton => "`nsplit package DIR --triton REPO`",
        Setting::Server => "--server",
        Setting::Timeout => "--timeout",
        Setting::RunInput => "--input",
        Setting::ServedModel => "--model",
        Setting::RoundTrip => "--rtt",
        Setting::ServerLoad => "--server-load",
    }
}
