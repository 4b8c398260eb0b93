//! Neurosurgeon's runtime over a trace: the adaptive client (`nsplit run --adaptive`) against
//! the oracle and every fixed choice, through a real Triton behind a shaping proxy on loopback.
//!
//! This machine is phone and server: the heads run in tract on one core (the phone), the tails
//! in Triton's Python backend (onnxruntime on both cores, two to four times the phone's speed). Each model is planned with the built-in x86-2core profile (tract on a machine
//! like this one) for both sides, the server guessed 2x faster (`--cloud-load 0.5`), for buckets
//! at the trace's uplinks; the client learns the rest. The trace, per model: the uplink at 2
//! Mbps, 32, 4; 32 with a load on the server (two other clients sending the model's split
//! requests without pause); the server killed; the server restarted (on another port, behind
//! the same proxy). In each phase the oracle is found first (every cut of the table timed
//! through the link, the median of a few requests each; the fastest is the measured best), then
//! the adaptive client (one client for the whole trace) makes `REQUESTS` requests, each timed as
//! the oracle's are, with any probe the client made before it. A fixed choice is a cut run in every phase
//! (all-mobile, as `nsplit run` falls back, while the server is down).
//!
//! ```sh
//! scripts/fetch-corpus.sh            # the light nets
//! cargo bench --bench trace          # needs .venv-triton; rewrites its section of docs/deploy.md
//! ```

use nsplit::client::adaptive::AdaptiveClient;
use nsplit::client::run::{run, CutChoice, RunOptions};
use nsplit::dev::proxy::Proxy;
use nsplit::dev::{succeed, Triton};
use nsplit::runtime::Verifier;
use nsplit::selection::SelectionTable;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests of the adaptive client per phase.
const REQUESTS: usize = 20;
/// Timed requests per cut for the oracle, after the pair's first.
const ORACLE_REPEAT: usize = 5;
/// Other clients sending requests while the server is loaded.
const LOADERS: usize = 2;
/// What the table guesses of the server: twice the x86-2core profile's speed.
const CLOUD_LOAD: &str = "0.5";

/// One phase of the trace.
struct Phase {
    name: &'static str,
    uplink_mbps: f64,
    load: bool,
    server: ServerIs,
}

#[derive(Clone, Copy, PartialEq)]
enum ServerIs {
    Up,
    Killed,
    Restarted,
}

const TRACE: [Phase; 6] = [
    Phase {
        name: "2 Mbps",
        uplink_mbps: 2.0,
        load: false,
        server: ServerIs::Up,
    },
    Phase {
        name: "32 Mbps",
        uplink_mbps: 32.0,
        load: false,
        server: ServerIs::Up,
    },
    Phase {
        name: "4 Mbps",
        uplink_mbps: 4.0,
        load: false,
        server: ServerIs::Up,
    },
    Phase {
        name: "32 Mbps, server loaded",
        uplink_mbps: 32.0,
        load: true,
        server: ServerIs::Up,
    },
    Phase {
        name: "server killed",
        uplink_mbps: 32.0,
        load: false,
        server: ServerIs::Killed,
    },
    Phase {
        name: "server restarted",
        uplink_mbps: 32.0,
        load: false,
        server: ServerIs::Restarted,
    },
];

/// What one phase measured for one model.
struct PhaseResult {
    /// Each cut's median total (ms) through the link in this phase.
    cuts: Vec<(String, f64)>,
    /// The adaptive client's requests: (cut, why, wall ms).
    steps: Vec<(String, String, f64)>,
}

impl PhaseResult {
    fn oracle(&self) -> &(String, f64) {
        self.cuts
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a cut")
    }

    fn adaptive_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.2).sum::<f64>() / self.steps.len() as f64
    }

    /// Changes of cut from the previous phase's last request on; probes left out (a probe
    /// runs once and the client goes back).
    fn switches(&self, before: Option<&str>) -> usize {
        let mut last = before.map(str::to_string);
        let mut n = 0;
        for (cut, why, _) in &self.steps {
            if why == "probe" {
                continue;
            }
            if last.as_deref().is_some_and(|l| l != cut) {
                n += 1;
            }
            last = Some(cut.clone());
        }
        n
    }
}

fn main() {
    let root = nsplit::dev::root();
    let nsplit = env!("CARGO_BIN_EXE_nsplit");
    let python = nsplit::dev::triton_python();
    let work = root.join("target/bench-trace");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let light = root.join("corpus/onnx-backend/light");
    let mut models = vec![root.join("fixtures/camera_cnn.onnx")];
    for net in ["light_squeezenet", "light_bvlc_alexnet", "light_zfnet512"] {
        let path = light.join(format!("{net}.onnx"));
        if path.exists() {
            models.push(path);
        } else {
            eprintln!("{} absent (scripts/fetch-corpus.sh)", path.display());
        }
    }
    let args = nsplit::dev::args();
    if !args.is_empty() {
        models.retain(|m| {
            args.iter()
                .any(|a| m.to_string_lossy().contains(a.as_str()))
        });
    }

    let buckets = work.join("buckets.json");
    let file = nsplit::plan::network::BucketsFile::without_round_trip(
        &[2.0, 4.0, 32.0],
        &nsplit::plan::network::reference_network("wifi").unwrap(),
    );
    std::fs::write(&buckets, file.to_json()).unwrap();

    let mut report = String::new();
    let mut summary = vec![];
    let mut figures = vec![];
    for model in &models {
        let stem = model.file_stem().unwrap().to_string_lossy().into_owned();
        eprintln!("{stem}...");
        let dir = work.join(&stem);
        let repo = work.join(format!("{stem}-repo"));
        succeed(
            Command::new(nsplit)
                .arg(model)
                .args(["--out", dir.to_str().unwrap(), "--no-verify"])
                .args(["--mobile", "x86-2core", "--cloud", "x86-2core"])
                .args(["--cloud-load", CLOUD_LOAD])
                .args(["--buckets", buckets.to_str().unwrap()]),
        );
        succeed(
            Command::new(nsplit)
                .args(["package", dir.to_str().unwrap(), "--triton"])
                .arg(&repo)
                .args(["--triton-backend", "python"]),
        );
        let input = nsplit::dev::write_first_input(model, &work.join(format!("{stem}.npy")));
        let results = trace_one(&python, &dir, &repo, &input, &work);
        let table = SelectionTable::load(&dir).unwrap();
        let (text, line) = model_report(&stem, &table, &results);
        report.push_str(&text);
        summary.push(line);
        figures.push((stem, results));
    }

    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "Generated by `cargo bench --bench trace` on {} ({}). Each row is a phase of {REQUESTS} requests; \
         times are ms per request. The oracle is the cut that measured fastest in the phase (every cut of \
         the table, {ORACLE_REPEAT} timed requests each, through the same link); the adaptive client's time \
         is its requests' measured time (head and request, as the oracle's, and any probe before them; \
         a pair's first opening left out, as the oracle's); a fixed choice \
         runs one cut throughout (all-mobile while the server is down). Switches: changes of the adaptive \
         client's cut in the phase, from the phase before's last, leaving out its probes.\n",
        nsplit::profiler::machine::machine_description(),
        nsplit::profiler::machine::today()
    );
    for line in &summary {
        let _ = writeln!(doc, "{line}");
    }
    let _ = writeln!(doc, "\n![the trace](figures/trace.svg)\n");
    doc.push_str(&report);
    nsplit::dev::replace_section(&root.join("docs/deploy.md"), "trace", &doc);
    std::fs::write(root.join("docs/figures/trace.svg"), trace_chart(&figures)).unwrap();
    println!("{doc}");
}

/// Run the trace on one model's folder; the Triton of `repo` started, killed and restarted.
fn trace_one(
    python: &Path,
    dir: &Path,
    repo: &Path,
    input: &(String, PathBuf),
    work: &Path,
) -> Vec<PhaseResult> {
    let table = SelectionTable::load(dir).unwrap();
    let log = |n: &str| {
        work.join(format!(
            "{}-{n}.log",
            dir.file_name().unwrap().to_string_lossy()
        ))
    };
    let mut triton = Triton::start_with(
        python,
        repo,
        &log("triton"),
        &[("NSPLIT_TAIL_THREADS", "2")],
    );
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let proxy = Proxy::start(port(&triton.url));
    // The first phase's link before the client opens: it probes the network as it opens.
    proxy.set(|s| s.uplink_mbps = Some(TRACE[0].uplink_mbps));
    let opts = |choice: CutChoice, repeat: usize| RunOptions {
        server: Some(proxy.url()),
        inputs: vec![input.clone()],
        choice,
        model: None,
        timeout: Duration::from_secs(10),
        runtime: Verifier::Tract,
        repeat,
    };
    let mut client = AdaptiveClient::open(
        dir,
        &opts(
            CutChoice::Bandwidth {
                mbps: TRACE[0].uplink_mbps,
                network: Some(table.buckets[0].network.name.clone()),
            },
            1,
        ),
    )
    .unwrap();
    let mut results = vec![];
    for phase in &TRACE {
        eprintln!("  {}", phase.name);
        proxy.set(|s| s.uplink_mbps = Some(phase.uplink_mbps));
        match phase.server {
            ServerIs::Up => {}
            ServerIs::Killed => triton.stop(),
            ServerIs::Restarted => {
                triton = Triton::start_with(
                    python,
                    repo,
                    &log("triton2"),
                    &[("NSPLIT_TAIL_THREADS", "2")],
                );
                proxy.set(|s| s.target = port(&triton.url));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let loaders: Vec<_> = (0..if phase.load { LOADERS } else { 0 })
            .map(|k| {
                let (stop, dir, url, input) = (
                    stop.clone(),
                    dir.to_path_buf(),
                    triton.url.clone(),
                    input.clone(),
                );
                let splits: Vec<String> = table
                    .cuts
                    .iter()
                    .filter(|c| c.tail.is_some())
                    .map(|c| c.id.clone())
                    .collect();
                std::thread::spawn(move || {
                    // Another app's requests, straight to the server: every split in turn.
                    let mut i = k;
                    while !stop.load(Ordering::Relaxed) {
                        let o = RunOptions {
                            server: Some(url.clone()),
                            inputs: vec![input.clone()],
                            choice: CutChoice::Id(splits[i % splits.len()].clone()),
                            model: None,
                            timeout: Duration::from_secs(30),
                            runtime: Verifier::Tract,
                            repeat: 5,
                        };
                        let _ = run(&dir, &o);
                        i += 1;
                    }
                })
            })
            .collect();
        if phase.load {
            std::thread::sleep(Duration::from_secs(2));
        }
        // The oracle: every cut through the link now.
        let cuts: Vec<(String, f64)> = table
            .cuts
            .iter()
            .filter(|c| phase.server != ServerIs::Killed || c.tail.is_none())
            .map(|c| {
                let r = run(dir, &opts(CutChoice::Id(c.id.clone()), ORACLE_REPEAT)).unwrap();
                (c.id.clone(), r.measured.total_ms.unwrap())
            })
            .collect();
        // Each request as the oracle's are measured (head and request), with any probe the
        // client made before it.
        let steps = (0..REQUESTS)
            .map(|_| {
                let (step, _) = client.request().unwrap();
                let ms = step.total_ms + step.probe_ms.unwrap_or(0.0);
                (step.cut, step.reason, ms)
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        for l in loaders {
            let _ = l.join();
        }
        results.push(PhaseResult { cuts, steps });
    }
    results
}

/// A model's table of phases and its summary line.
fn model_report(stem: &str, table: &SelectionTable, results: &[PhaseResult]) -> (String, String) {
    let mut s = format!(
        "### {stem}\n\nCuts in the folder: {}.\n\n| phase | oracle | oracle ms | adaptive ms | adaptive / oracle | switches | cuts the client ran | every cut's ms |\n|---|---|---:|---:|---:|---:|---|---|\n",
        table.cuts.iter().map(|c| format!("`{}`", c.id)).collect::<Vec<_>>().join(", ")
    );
    let mut before: Option<String> = None;
    let (mut oracle_sum, mut adaptive_sum) = (0.0, 0.0);
    let mut worst_switches = 0;
    let mut mid_wins = 0;
    for (phase, r) in TRACE.iter().zip(results) {
        let (oracle, oracle_ms) = r.oracle();
        let adaptive = r.adaptive_ms();
        let switches = r.switches(before.as_deref());
        worst_switches = worst_switches.max(switches);
        mid_wins += usize::from(oracle.starts_with('h'));
        oracle_sum += oracle_ms;
        adaptive_sum += adaptive;
        let mut ran: Vec<(String, usize)> = vec![];
        for (cut, _, _) in &r.steps {
            match ran.iter_mut().find(|(c, _)| c == cut) {
                Some(e) => e.1 += 1,
                None => ran.push((cut.clone(), 1)),
            }
        }
        let _ =
            writeln!(
            s,
            "| {} | `{oracle}` | {oracle_ms:.1} | {adaptive:.1} | {:.2} | {switches} | {} | {} |",
            phase.name,
            adaptive / oracle_ms,
            ran.iter().map(|(c, n)| format!("`{c}` x{n}")).collect::<Vec<_>>().join(", "),
            r.cuts.iter().map(|(c, ms)| format!("{c} {ms:.1}")).collect::<Vec<_>>().join(", ")
        );
        before = r.steps.last().map(|s| s.0.clone());
    }
    // Fixed choices: one cut throughout, all-mobile while the server is down.
    let fallback = table
        .fallback
        .clone()
        .unwrap_or_else(|| "all-mobile".into());
    let fixed: Vec<(String, f64)> = table
        .cuts
        .iter()
        .map(|c| {
            let sum: f64 = results
                .iter()
                .map(|r| {
                    let at = |id: &str| r.cuts.iter().find(|(x, _)| x == id).map(|x| x.1);
                    at(&c.id).or_else(|| at(&fallback)).unwrap_or(f64::NAN)
                })
                .sum();
            (c.id.clone(), sum / results.len() as f64)
        })
        .collect();
    let n = results.len() as f64;
    let (oracle_mean, adaptive_mean) = (oracle_sum / n, adaptive_sum / n);
    let best_fixed = fixed
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap();
    let _ = writeln!(
        s,
        "\nOver the trace: the oracle {oracle_mean:.1} ms per request, the adaptive client {adaptive_mean:.1} ms ({:+.1}%); fixed choices: {}.\n",
        100.0 * (adaptive_mean / oracle_mean - 1.0),
        fixed
            .iter()
            .map(|(c, ms)| format!("`{c}` {ms:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let line = format!(
        "- **{stem}**: adaptive {adaptive_mean:.1} ms per request against the oracle's {oracle_mean:.1} ({:+.1}%; target within 10%) and the best fixed choice's {:.1} (`{}`; {}); at most {worst_switches} switch(es) in a phase (target 1); the oracle a mid cut in {mid_wins} of {} phases.",
        100.0 * (adaptive_mean / oracle_mean - 1.0),
        best_fixed.1,
        best_fixed.0,
        if adaptive_mean < best_fixed.1 { "below it" } else { "**not below it**" },
        results.len()
    );
    (s, line)
}

/// The figure: per model, each request's latency against the request, coloured by
/// the cut that ran, the phases marked.
fn trace_chart(models: &[(String, Vec<PhaseResult>)]) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let height = 260 * models.len() as u32;
        let area = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        area.fill(&WHITE).unwrap();
        let panels = area.split_evenly((models.len(), 1));
        let palette = nsplit::report::figures::PALETTE;
        for ((stem, results), panel) in models.iter().zip(panels.iter()) {
            let points: Vec<(usize, f64, String)> = results
                .iter()
                .flat_map(|r| r.steps.iter())
                .enumerate()
                .map(|(i, (cut, _, ms))| (i, ms.max(0.1), cut.clone()))
                .collect();
            let hi = points.iter().fold(0f64, |hi, p| hi.max(p.1));
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{stem}: each request's time and the cut that ran"),
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(55)
                .build_cartesian_2d(0..points.len(), 0.0..hi * 1.15)
                .unwrap();
            chart
                .configure_mesh()
                .x_desc("request")
                .y_desc("ms")
                .disable_x_mesh()
                .draw()
                .unwrap();
            let mut cuts: Vec<String> = vec![];
            for p in &points {
                if !cuts.contains(&p.2) {
                    cuts.push(p.2.clone());
                }
            }
            for (k, cut) in cuts.iter().enumerate() {
                let color = palette[k % palette.len()];
                chart
                    .draw_series(
                        points
                            .iter()
                            .filter(|p| &p.2 == cut)
                            .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                    )
                    .unwrap()
                    .label(cut.clone())
                    .legend(move |(x, y)| Circle::new((x, y), 3, color.filled()));
            }
            for (k, phase) in TRACE.iter().enumerate() {
                let x = k * REQUESTS;
                chart
                    .draw_series(LineSeries::new([(x, 0.0), (x, hi * 1.15)], BLACK.mix(0.3)))
                    .unwrap();
                chart
                    .draw_series(std::iter::once(Text::new(
                        phase.name.to_string(),
                        (x + 1, hi * 1.12),
                        ("sans-serif", 11),
                    )))
                    .unwrap();
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .unwrap();
        }
        area.present().unwrap();
    }
    svg
}
