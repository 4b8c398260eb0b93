//! The main job, `nsplit MODEL --out DIR`: every stage in order.
//!
//! Analyse the model, plan a cut per bandwidth bucket and the breakpoints, write one head/tail
//! pair per distinct chosen cut, check each pair against the original (onnxruntime, else tract,
//! at the given sizes and at a second batch size where the batch is symbolic), and write the
//! selection table (`selection.json`, `selection.md`) and the per-node predictions
//! (`annotations.json`). Everything is staged and verified first and moved into DIR at the end,
//! so a failed run leaves no partial output.

use crate::analysis::Analysis;
use crate::cost::Profiles;
use crate::emit::{write_pair, Emitter};
use crate::output::{ExternalData, Staging};
use crate::plan::{plan, Plan, PlanOptions};
use crate::report::figures;
use crate::report::Annotations;
use crate::runtime::Runtime;
use crate::selection::{CutFiles, SelectionTable, TableInputs, Verification, VerificationStatus};
use crate::serve::triton::TailFile;
use crate::setting::Setting;
use crate::shapes::InputShapes;
use crate::verify::{Outcome, Reference, VerifyOptions};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};

/// Everything the main job needs besides the model and the output folder.
pub struct JobOptions {
    pub input_shapes: InputShapes,
    pub profiles: Profiles,
    pub plan: PlanOptions,
    /// Check every pair against the original (`--no-verify` turns it off).
    pub verify: bool,
    /// The runtime that checks them (`--verifier`).
    pub verifier: crate::runtime::Verifier,
    /// Real inputs to check them on (`--sample-inputs`, `--input-value`).
    pub samples: crate::runtime::SampleInputs,
    pub external_data: ExternalData,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Also write a Triton model repository of the tails into `DIR/triton` (`--triton`).
    pub triton: Option<crate::serve::triton::TritonOptions>,
}

/// What the job wrote.
pub struct JobReport {
    pub out: PathBuf,
    pub table: SelectionTable,
}

/// Run the whole pipeline on `model` and write the results into `out`.
pub fn run(model: &Path, out: &Path, opts: &JobOptions) -> Result<JobReport> {
    if let Some(empty) = opts.input_shapes.empty() {
        bail!(
            "{} {empty}, an empty tensor: every node would cost 0 and nothing would be sent, so there is nothing to plan; give the sizes the model runs at",
            Setting::InputShape
        );
    }
    let mut a = Analysis::run(model, &opts.input_shapes)?;
    require_concrete_inputs(&a)?;
    let plan = plan(&a, &opts.profiles, &opts.plan)
        .with_context(|| format!("{}: cannot plan", model.display()))?;

    let steps = plan.cuts.len() * if opts.verify { 2 } else { 1 };
    let bar = progress_bar(opts.progress, steps);
    let mut staging = Staging::new(out)?;
    let previous = SelectionTable::load(out).ok();

    // One pair per distinct cut.
    let mut pairs = vec![];
    let source_sha256 = {
        let crate::analysis::Analysis {
            model: m,
            graph,
            shapes,
            ..
        } = &mut a;
        let mut emitter = Emitter::new(m, graph, shapes)?;
        for cut in &plan.cuts {
            let id = cut.id(graph);
            bar.set_message(format!("writing {id}"));
            let (head, tail) = (format!("{id}.head.onnx"), format!("{id}.tail.onnx"));
            let written = write_pair(
                &mut emitter,
                cut,
                &mut staging,
                &head,
                &tail,
                opts.external_data,
            )
            .with_context(|| format!("cannot write the pair of cut {id}"))?;
            pairs.push((id, written.head.map(|_| head), written.tail.map(|_| tail)));
            bar.inc(1);
        }
        emitter.source_sha256.clone()
    };

    let files = verify_pairs(&a, model, opts, pairs, &staging, &bar)?;
    bar.finish_and_clear();

    let mut table = SelectionTable::build(TableInputs {
        analysis: &a,
        profiles: &opts.profiles,
        plan: &plan,
        objective: opts.plan.objective,
        cloud_load: opts.plan.cloud_load,
        sweep: &opts.plan.sweep,
        source_sha256,
        files,
    });
    serve_tails(&mut table, &mut staging, out, opts.triton.as_ref())?;
    staging.write_text("selection.json", &table.to_json())?;
    staging.write_text("selection.svg", &figures::selection_chart(&table)?)?;
    staging.write_text("cuts.svg", &cuts_chart(&a, &plan, &opts.plan)?)?;
    staging.write_text("selection.md", &crate::report::selection::markdown(&table))?;
    staging.write_text(
        "annotations.json",
        &Annotations::with_costs(&a, &opts.profiles, &plan.costs).to_json(),
    )?;
    staging.commit()?;
    if let Some(previous) = previous {
        remove_stale_pairs(out, &previous, &table);
    }
    Ok(JobReport {
        out: out.to_path_buf(),
        table,
    })
}

/// Check each staged pair against the original (run once), or mark it skipped: what the table
/// says of each pair. A pair that computes something else is an error (a bug in nsplit).
fn verify_pairs(
    a: &Analysis,
    model: &Path,
    opts: &JobOptions,
    pairs: Vec<(String, Option<String>, Option<String>)>,
    staging: &Staging,
    bar: &ProgressBar,
) -> Result<Vec<CutFiles>> {
    let mut files = vec![];
    let reference = if opts.verify {
        bar.set_message("running the original");
        let vopts = VerifyOptions {
            input_shapes: opts.input_shapes.clone(),
            verifier: opts.verifier,
            samples: opts.samples.clone(),
            ..VerifyOptions::default()
        };
        Some((Reference::new(a, &vopts)?, vopts))
    } else {
        None
    };
    // The all-mobile head and the all-cloud tail are one file (the whole model): checked once.
    let mut whole: Option<Verification> = None;
    for (id, head, tail) in pairs {
        let is_whole = id == "all-mobile" || id == "all-cloud";
        let verification = match (&reference, whole.as_ref().filter(|_| is_whole)) {
            (_, Some(checked)) => {
                bar.inc(1);
                checked.clone()
            }
            (None, _) => Verification::skipped(),
            (Some((Err(why), _)), _) => Verification::unverified(why.clone()),
            (Some((Ok(reference), vopts)), _) => {
                bar.set_message(format!("verifying {id}"));
                let staged = |f: &Option<String>| f.as_ref().map(|f| staging.staged(f));
                let (h, t) = (staged(&head), staged(&tail));
                let outcome = reference.check(h.as_deref(), t.as_deref(), vopts)?;
                bar.inc(1);
                match outcome {
                    Outcome::Unverifiable(why) => Verification::unverified(why),
                    o if o.passed() => Verification {
                        status: VerificationStatus::Passed,
                        verifier: Some(reference.runtime),
                        sizes: o.points(),
                        reason: (!o.notes().is_empty()).then(|| o.notes().join("; ")),
                        max_abs_diff: o.max_abs(),
                    },
                    o => bail!(
                        "cut {id}: head then tail does not compute what {} computes; nothing was written. This is a bug in nsplit: please report it with the model.\n{}",
                        model.display(),
                        o.to_text().trim_end()
                    ),
                }
            }
        };
        if is_whole {
            whole = Some(verification.clone());
        }
        files.push(CutFiles {
            head,
            tail,
            verification,
        });
    }
    Ok(files)
}

/// With `triton`, the tails' Triton repository (`triton/`) and the models' names in the
/// table; a note where there is no tail to serve, or where an earlier run's repository is left.
fn serve_tails(
    table: &mut SelectionTable,
    staging: &mut Staging,
    out: &Path,
    triton: Option<&crate::serve::triton::TritonOptions>,
) -> Result<()> {
    if let Some(triton) = triton {
        let tails = TailFile::of_table(table, |file| staging.staged(file));
        let names = if tails.is_empty() {
            // All-mobile everywhere: nothing to serve, and no repository (an earlier one would
            // serve tails this plan no longer uses).
            let _ = std::fs::remove_dir_all(out.join("triton"));
            table.notes.push(format!(
                "{}: every cut runs on the phone alone, so there is no tail to serve and no Triton repository was written",
                Setting::Triton
            ));
            vec![]
        } else {
            crate::serve::triton::write_repository(table, &tails, staging, "triton/", triton)
                .context("cannot write the Triton repository")?
        };
        crate::serve::name_models(table, &names);
    }
    if triton.is_none() && out.join("triton").is_dir() {
        table.notes.push(format!(
            "triton/ holds the Triton repository of an earlier run, left as it was: its tails may not be this run's, so selection.json names none of its models; {} with REPO = DIR/triton (or {} with the main job) writes it again",
            Setting::PackageTriton,
            Setting::Triton
        ));
    }
    Ok(())
}

/// `cuts.svg`: every cut of the plan, with all-mobile and all-cloud, on the middle network of
/// the buckets (LTE for the default three).
fn cuts_chart(a: &Analysis, plan: &Plan, opts: &PlanOptions) -> Result<String> {
    let Some(bucket) = opts.buckets.get(opts.buckets.len() / 2) else {
        bail!("no network to draw the cuts on");
    };
    figures::plan_cuts_chart(a, plan, bucket, opts.cloud_load)
}

/// A graph input of unknown shape makes every prediction downstream of it unknown: ask for it.
fn require_concrete_inputs(a: &Analysis) -> Result<()> {
    for &t in &a.graph.inputs {
        let info = a.shapes.get(t);
        if info.concrete_dims().is_none() {
            let name = &a.graph.tensor(t).name;
            bail!(
                "{}: input `{name}` has shape {}, which is not fixed; give it with {} {name}=DIMS (e.g. 1x3x224x224)",
                a.model.path.display(),
                info.shape_string(),
                Setting::InputShape
            );
        }
    }
    Ok(())
}

/// Pairs a previous run wrote into `out` that this run did not write again.
fn remove_stale_pairs(out: &Path, previous: &SelectionTable, now: &SelectionTable) {
    let current: Vec<&String> = now
        .cuts
        .iter()
        .flat_map(|c| c.head.iter().chain(&c.tail))
        .collect();
    for file in previous
        .cuts
        .iter()
        .flat_map(|c| c.head.iter().chain(&c.tail))
    {
        // Only bare file names an earlier run wrote, never a path elsewhere.
        if current.contains(&file) || file.contains(['/', '\\']) || !file.ends_with(".onnx") {
            continue;
        }
        let _ = std::fs::remove_file(out.join(file));
        let _ = std::fs::remove_file(out.join(format!("{file}.data")));
    }
}

fn progress_bar(show: bool, steps: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("a valid template"),
    );
    bar
}

/// A short report for people: the choice per network and the breakpoints.
pub fn summary(r: &JobReport) -> String {
    use std::fmt::Write;
    let t = &r.table;
    let mut out = String::new();
    let unit = match t.objective {
        crate::plan::Objective::Latency => "latency",
        crate::plan::Objective::Energy => "phone energy",
    };
    let _ = writeln!(
        out,
        "{}: best cut for {unit}, {} -> {} ({})",
        t.model.path,
        t.profiles.mobile,
        t.profiles.cloud,
        match t.method {
            crate::plan::Method::ChainScan => "prefix scan",
            crate::plan::Method::MinCut => "min cut",
        }
    );
    bucket_rows(&mut out, t);
    let sending: Vec<_> = t.cuts.iter().filter(|c| !c.boundary.is_empty()).collect();
    if !sending.is_empty() {
        let _ = writeln!(
            out,
            "  cuts (h<nodes on the phone>-<hash of which nodes>) and what each sends:"
        );
        for c in sending {
            let sent: Vec<String> = c
                .boundary
                .iter()
                .map(|b| format!("{} {}", b.name, crate::report::format::sent_text(b)))
                .collect();
            let _ = writeln!(out, "    {:<20} {}", c.id, sent.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "  breakpoints (the best cut from each uplink; nsplit select DIR --network NAME --bandwidth MBPS):"
    );
    let line = |pieces: &[crate::selection::Piece]| {
        pieces
            .iter()
            .map(|p| format!("{} from {} Mbps", p.cut, p.from_mbps))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for n in &t.networks {
        let _ = writeln!(out, "    {}: {}", n.buckets.join(", "), line(&n.pieces));
    }
    let _ = writeln!(
        out,
        "wrote {}: {} pair(s) ({}), selection.json, selection.md, annotations.json",
        r.out.display(),
        t.cuts.len(),
        verified_text(t)
    );
    if let Some(id) = t.fallback_only() {
        let _ = writeln!(
            out,
            "  {id}: no bucket's choice, written as the fallback (the app's answer while the server cannot give one)"
        );
    }
    for c in t
        .cuts
        .iter()
        .filter(|c| c.verification.status == VerificationStatus::Unverified)
    {
        let _ = writeln!(
            out,
            "  {} unverified: {}",
            c.id,
            c.verification.reason.as_deref().unwrap_or("")
        );
    }
    for n in &t.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The summary's table: per bucket, its cut, predictions and ratios against the baselines.
fn bucket_rows(out: &mut String, t: &SelectionTable) {
    use std::fmt::Write;
    let energy = t.objective == crate::plan::Objective::Energy;
    // The ratios are of the objective: times faster, or times less phone energy.
    let ratio = |base: f64, chosen: f64| -> String {
        if chosen > 0.0 {
            format!("{:.2}x", base / chosen)
        } else {
            "n/a".into()
        }
    };
    let _ = writeln!(
        out,
        "  {:<8} {:>10}  {:<20} {:>10} {:>10}  {:>12}  {:>13}",
        "network", "uplink", "cut", "total ms", "phone mJ", "vs all-cloud", "vs all-mobile"
    );
    for b in &t.buckets {
        let p = &b.predicted;
        let (vs_cloud, vs_mobile) = if energy {
            (
                b.all_cloud
                    .as_ref()
                    .map_or("n/a".into(), |c| ratio(c.mobile_mj, p.mobile_mj)),
                ratio(b.all_mobile.mobile_mj, p.mobile_mj),
            )
        } else {
            (
                b.speedup_vs_all_cloud
                    .map_or("n/a".into(), |s| format!("{s:.2}x")),
                format!("{:.2}x", b.speedup_vs_all_mobile),
            )
        };
        let _ = writeln!(
            out,
            "  {:<8} {:>5} Mbps  {:<20} {:>10.2} {:>10.2}  {:>12}  {:>13}",
            b.network.name,
            b.network.uplink_mbps,
            b.cut,
            p.total_ms,
            p.mobile_mj,
            vs_cloud,
            vs_mobile
        );
    }
    let _ = writeln!(
        out,
        "  (vs: how many times {} than running everything on the server / on the phone)",
        if energy {
            "less phone energy"
        } else {
            "faster"
        }
    );
}

/// How many pairs each runtime verified (`2 verified by onnxruntime`).
fn verified_text(t: &SelectionTable) -> String {
    let mut verified: Vec<String> = vec![];
    for runtime in [Runtime::Onnxruntime, Runtime::Tract] {
        let n = t
            .cuts
            .iter()
            .filter(|c| c.verification.status == VerificationStatus::Passed)
            .filter(|c| c.verification.verifier == Some(runtime))
            .count();
        if n > 0 {
            verified.push(format!("{n} verified by {runtime}"));
        }
    }
    if verified.is_empty() {
        verified.push("0 verified".into());
    }
    verified.join(", ")
}
