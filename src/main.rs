//! The `nsplit` command line: argument parsing only; the work is in the library.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use nsplit::annotate::Annotations;
use nsplit::shapes::InputShapes;
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
    },
}

#[derive(Copy, Clone, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Annotate {
            model,
            input_shape,
            format,
        } => {
            let analysis = Analysis::run(&model, &InputShapes::parse(&input_shape)?)?;
            let report = Annotations::of(&analysis);
            let text = match format {
                Format::Table => report.to_table(),
                Format::Json => report.to_json(),
                Format::Csv => report.to_csv(),
            };
            print!("{text}");
            Ok(())
        }
    }
}
