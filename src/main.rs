//! The `nsplit` command line: parse the flags ([`flags`]) and dispatch to the library.

mod flags;

use anyhow::{Context, Result};
use clap::Parser;
use flags::{Cli, Command, Format};
use nsplit::profiler::ProfileOptions;
use nsplit::report::Annotations;
use nsplit::selection::SelectionTable;
use nsplit::split::split_at;
use nsplit::verify::{verify, Outcome, VerifyOptions, EXIT_UNVERIFIABLE};
use nsplit::Analysis;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The library's messages name settings; the command line names them by their flags.
    nsplit::setting::name_with(flags::flag_name);
    // Started by the library as the process that runs tract's shape analysis: answer and stop.
    match nsplit::shapes::serve_tract_analysis_if_child() {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    }
    if let Some(hint) = flags::mistyped_command(std::env::args_os().nth(1).as_deref()) {
        eprintln!("error: {hint}");
        return ExitCode::from(2);
    }
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
    let Some(command) = cli.command else {
        let (model, out, opts) = cli.job.options()?;
        let report = nsplit::job::run(&model, &out, &opts)?;
        print!("{}", nsplit::job::summary(&report));
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Select {
            dir,
            bandwidth,
            network,
            rtt,
            server_load,
        } => {
            let conditions = nsplit::client::Conditions {
                uplink_mbps: bandwidth,
                network,
                rtt_ms: rtt,
                server_load,
                ..Default::default()
            };
            let answer = nsplit::client::answer(&dir, &SelectionTable::load(&dir)?, &conditions)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Package { dir, triton, opts } => package(&dir, &triton, &opts.options()),
        Command::Run(args) => run_pair(&args),
        Command::Annotate {
            model,
            shapes,
            format,
            profiles,
            measure,
            runtime,
            plot,
        } => {
            let profiles = profiles.resolve()?;
            annotate(
                &model,
                &shapes.parse()?,
                format,
                &profiles,
                measure.then_some(runtime.into()),
                plot.as_deref(),
            )
        }
        Command::Split {
            model,
            at,
            out,
            shapes,
            external_data,
            no_verify,
            verifier,
            samples,
        } => {
            let input_shapes = shapes.parse()?;
            let check = VerifyOptions {
                input_shapes: input_shapes.clone(),
                verifier: verifier.into(),
                samples: samples.read()?,
                ..VerifyOptions::default()
            };
            let check = (!no_verify).then_some(&check);
            let report = split_at(
                &model,
                &at,
                &out,
                &input_shapes,
                external_data.into(),
                check,
            )?;
            print!("{}", report.to_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile {
            out,
            role,
            quick,
            power_w,
            name,
            runtime,
        } => {
            let opts = ProfileOptions {
                role: role.into(),
                quick,
                power_w,
                runtime: runtime.into(),
            };
            profile(&opts, name, &out)
        }
        Command::Verify {
            original,
            head,
            tail,
            shapes,
            seed,
            rtol,
            atol,
            verifier,
            samples,
        } => {
            let opts = VerifyOptions {
                input_shapes: shapes.parse()?,
                seed,
                rtol,
                atol,
                verifier: verifier.into(),
                samples: samples.read()?,
            };
            check_pair(&original, &head, &tail, &opts)
        }
    }
}

/// `nsplit run`: one request (or, with `--calibrate`, every served cut in turn).
fn run_pair(args: &flags::RunArgs) -> Result<ExitCode> {
    let opts = args.options()?;
    if let Some(file) = &args.calibrate {
        return calibrate(&args.dir, &opts, file, args.json);
    }
    if args.adaptive {
        let requests = args.requests.unwrap_or(1);
        let trace = nsplit::client::adaptive::run_adaptive(&args.dir, &opts, requests)?;
        if let Some(out) = &args.out {
            nsplit::runtime::npy::write_npz(out, &trace.outputs)?;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&trace)?);
        } else {
            print!("{}", trace.to_text());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = nsplit::client::run::run(&args.dir, &opts)?;
    if let Some(out) = &args.out {
        nsplit::runtime::npy::write_npz(out, &report.values)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `nsplit run --calibrate FILE`: measure the protocol's cost and write the table's buckets
/// with it.
fn calibrate(
    dir: &std::path::Path,
    opts: &nsplit::client::run::RunOptions,
    file: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let calibration = nsplit::client::calibrate::calibrate(dir, opts)?;
    let table = nsplit::selection::SelectionTable::load(dir)?;
    let buckets = calibration.buckets_file(&table);
    nsplit::output::write_file(file, buckets.to_json().as_bytes())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&calibration)?);
    } else {
        print!("{}", calibration.to_text());
        println!(
            "wrote {}: plan with --buckets {} to count it",
            file.display(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `nsplit annotate`: the per-node report, measured where asked, plotted where asked.
fn annotate(
    model: &std::path::Path,
    shapes: &nsplit::shapes::InputShapes,
    format: Format,
    profiles: &nsplit::cost::Profiles,
    measure: Option<nsplit::runtime::Runtime>,
    plot: Option<&std::path::Path>,
) -> Result<ExitCode> {
    if let Some(empty) = shapes.empty() {
        eprintln!("warning: --input-shape {empty}, an empty tensor: its nodes cost 0");
    }
    let analysis = Analysis::run(model, shapes)?;
    let mut report = Annotations::of(&analysis, profiles);
    if let Some(runtime) = measure {
        let measured = nsplit::profiler::measure::measure(&analysis, runtime, 5)
            .with_context(|| format!("cannot measure {} with {runtime}", model.display()))?;
        report = report.with_measurements(&analysis, &measured, runtime);
    }
    if let Some(plot) = plot {
        let svg = nsplit::report::figures::node_chart(&report)?;
        nsplit::output::write_file(plot, svg.as_bytes())?;
    }
    let text = match format {
        Format::Table => report.to_table(),
        Format::Json => report.to_json(),
        Format::Csv => report.to_csv(),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `nsplit profile`: profile this machine, with a progress bar, and write the profile.
fn profile(opts: &ProfileOptions, name: Option<String>, out: &std::path::Path) -> Result<ExitCode> {
    // Ticking from the start: building and fitting take tens of seconds between steps.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed:>4} {bar:30} {pos}/{len} {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message("starting");
    let mut profile = nsplit::profiler::profile(opts, |total, label| {
        if total > 0 {
            bar.set_length(total as u64);
            bar.inc(1);
        }
        bar.set_message(label.to_string());
    })?;
    bar.finish_and_clear();
    if let Some(name) = name {
        profile.name = name;
    }
    profile.write(out)?;
    eprintln!(
        "wrote {} ({} regressions{})",
        out.display(),
        profile.regressions.len(),
        profile.spread.map_or(String::new(), |s| format!(
            ", rerun spread {:.1}%",
            100.0 * s
        ))
    );
    if let Some(warning) = nsplit::profiler::noise_warning(&profile) {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `nsplit verify`: head then tail (`-` for none) against the original; the exit code says
/// whether they matched, differed, or could not be compared.
fn check_pair(
    original: &std::path::Path,
    head: &str,
    tail: &str,
    opts: &VerifyOptions,
) -> Result<ExitCode> {
    let half = |s: &str| (s != "-").then(|| PathBuf::from(s));
    let outcome = verify(original, half(head).as_deref(), half(tail).as_deref(), opts)?;
    print!("{}", outcome.to_text());
    Ok(match outcome {
        Outcome::Unverifiable(_) => ExitCode::from(EXIT_UNVERIFIABLE),
        o if o.passed() => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// `nsplit package`: the Triton repository of an output folder's tails.
fn package(
    dir: &std::path::Path,
    triton: &std::path::Path,
    opts: &nsplit::serve::triton::TritonOptions,
) -> Result<ExitCode> {
    let names = nsplit::serve::package(dir, triton, opts)?;
    for (cut, model) in &names {
        println!("{cut}: {}", triton.join(model).display());
    }
    eprintln!(
        "wrote {} model(s) into {}; {} names them",
        names.len(),
        triton.display(),
        dir.join("selection.json").display()
    );
    Ok(ExitCode::SUCCESS)
}
