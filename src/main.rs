//! The `nsplit` command line: argument parsing only; the work is in the library.

use anyhow::Context;
use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use nsplit::annotate::{Annotations, Profiles};
use nsplit::cost::profile::Role;
use nsplit::cost::profiler::ProfileOptions;
use nsplit::emit::ExternalData;
use nsplit::shapes::InputShapes;
use nsplit::split::split_at;
use nsplit::verify::{verify, Outcome, VerifyOptions, EXIT_UNVERIFIABLE};
use nsplit::Analysis;
use std::path::PathBuf;
use std::process::ExitCode;

/// Split ONNX models between a phone and a server.
///
/// nsplit reads an ONNX model, builds its graph, infers every tensor's type and shape, and
/// predicts each node's cost, in order to choose where to cut the model so that the head runs on
/// the phone and the tail on a server (the Neurosurgeon system, ASPLOS 2017, for DAG-shaped
/// models).
///
/// Results for programs go to stdout (JSON, CSV); messages for people go to stderr.
/// Exit codes: 0 success, 1 an error in the input or the run, 2 a usage error.
const ANNOTATE_EXAMPLES: &str = "\
Examples:
  nsplit annotate fixtures/lenet.onnx
  nsplit annotate model.onnx --input-shape images=1x3x224x224 --format json > model.json
  nsplit annotate model.onnx --format csv > nodes.csv

The JSON format is documented in docs/annotations.md.";

const GUIDE: &str = "\
Example:
  nsplit annotate fixtures/lenet.onnx

The user guide is docs/user-guide.md in the source repository.";

#[derive(Parser)]
#[command(name = "nsplit", version, max_term_width = 100, after_help = GUIDE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// Fix a graph input's shape: NAME=DIMS, e.g. images=1x3x224x224. Repeat for each input.
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shape: Vec<String>,
        /// Output format: an aligned table, the JSON document (docs/annotations.md), or CSV with
        /// one row per node output.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Mobile device profile: a built-in name (jetson-tk1) or a profile JSON file
        /// (docs/profiles.md).
        #[arg(long, default_value = "jetson-tk1", value_name = "NAME|FILE")]
        mobile: String,
        /// Server profile: a built-in name (titan-x) or a profile JSON file.
        #[arg(long, default_value = "titan-x", value_name = "NAME|FILE")]
        cloud: String,
        /// Also run the model here with tract and report measured time per node (the median
        /// of 5 runs after a warm-up) beside the predictions, and the whole-model time.
        #[arg(long)]
        measure: bool,
    },
    /// Cut the model by hand after the named tensors and write head.onnx and tail.onnx.
    ///
    /// The head is every node needed to compute the named tensors; everything else is the
    /// tail. The boundary (every tensor the tail reads that the head computes, or a graph input
    /// the tail reads) is printed with its type, shape and size. Both halves keep the IR
    /// version, opset imports and metadata, carry only the weights they use, and are stamped with
    /// the source's SHA-256, the cut id and the boundary (metadata_props nsplit.*). An empty
    /// side is not written: naming the graph outputs gives a head only (all on the phone).
    #[command(after_long_help = SPLIT_EXAMPLES)]
    Split {
        /// The ONNX model.
        model: PathBuf,
        /// Tensors the head must compute, comma-separated (names from `nsplit annotate`).
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            value_name = "TENSOR[,TENSOR..]"
        )]
        at: Vec<String>,
        /// Output folder (created if missing). Files appear only when all are written.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Fix a graph input's shape: NAME=DIMS. Repeat for each input.
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shape: Vec<String>,
        /// Store weights in a separate `<half>.onnx.data` file: auto (when the source did, or a
        /// half exceeds 2 GiB), always, or never (halves over 2 GiB are external regardless).
        #[arg(long, value_enum, default_value_t = ExternalData::Auto)]
        external_data: ExternalData,
    },
    /// Measure this machine and write a device profile (the deployment phase).
    ///
    /// Times each op class (conv, matmul, pooling, normalisation, activations, elementwise,
    /// softmax, data movement, LSTM) with tract over a grid of configurations, fits a linear and
    /// a logarithmic regression of latency on FLOPs and bytes per class, keeps the one with the
    /// lower error on held-out samples, and writes the profile (docs/profiles.md), labelled
    /// "measured" with this machine's description. Power is not measured: a mobile profile
    /// records the --power-w assumption.
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
    },
    /// Check that HEAD then TAIL computes what ORIGINAL computes, with tract.
    ///
    /// Runs ORIGINAL, then HEAD and TAIL, on the same seeded random inputs (floats in [-1, 1),
    /// integers in {0, 1}, booleans true), and prints the largest absolute and relative
    /// difference of every original output. Give `-` for a half that does not exist
    /// (all-cloud or all-mobile). Exit code 0 when every element is within
    /// atol + rtol x |original|, 1 on a mismatch or bad input, 3 when tract cannot run the models.
    Verify {
        original: PathBuf,
        /// The head model, or `-` if there is none.
        head: String,
        /// The tail model, or `-` if there is none.
        tail: String,
        /// Fix a graph input's shape: NAME=DIMS. Repeat for each input.
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shape: Vec<String>,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Relative tolerance.
        #[arg(long, default_value_t = 1e-4)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = 1e-5)]
        atol: f64,
    },
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

#[derive(Copy, Clone, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Annotate {
            model,
            input_shape,
            format,
            mobile,
            cloud,
            measure,
        } => {
            let profiles = Profiles::resolve(&mobile, &cloud)?;
            let analysis = Analysis::run(&model, &InputShapes::parse(&input_shape)?)?;
            let mut report = Annotations::of(&analysis, &profiles);
            if measure {
                let measured = nsplit::measure::measure(&analysis, 5)
                    .with_context(|| format!("cannot measure {} with tract", model.display()))?;
                report = report.with_measurements(&analysis, &measured);
            }
            let text = match format {
                Format::Table => report.to_table(),
                Format::Json => report.to_json(),
                Format::Csv => report.to_csv(),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Split {
            model,
            at,
            out,
            input_shape,
            external_data,
        } => {
            let report = split_at(
                &model,
                &at,
                &out,
                &InputShapes::parse(&input_shape)?,
                external_data,
            )?;
            print!("{}", report.to_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile {
            out,
            role,
            quick,
            power_w,
        } => {
            let opts = ProfileOptions {
                role,
                quick,
                power_w,
            };
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .expect("valid template"),
            );
            let profile = nsplit::cost::profiler::profile(&opts, |total, label| {
                bar.set_length(total as u64);
                bar.inc(1);
                bar.set_message(label.to_string());
            })?;
            bar.finish_and_clear();
            profile.write(&out)?;
            eprintln!(
                "wrote {} ({} regressions)",
                out.display(),
                profile.regressions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            original,
            head,
            tail,
            input_shape,
            seed,
            rtol,
            atol,
        } => {
            let opts = VerifyOptions {
                input_shapes: InputShapes::parse(&input_shape)?,
                seed,
                rtol,
                atol,
            };
            let half = |s: &str| (s != "-").then(|| PathBuf::from(s));
            let outcome = verify(
                &original,
                half(&head).as_deref(),
                half(&tail).as_deref(),
                &opts,
            )?;
            print!("{}", outcome.to_text());
            Ok(match outcome {
                Outcome::Unverifiable(_) => ExitCode::from(EXIT_UNVERIFIABLE),
                o if o.passed() => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            })
        }
    }
}
