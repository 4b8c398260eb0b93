//! The main job end to end: golden selection tables, an independent re-computation of the
//! choices from annotations.json, verified pairs, `nsplit select`, and failures that leave
//! nothing behind.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The golden selection tables (golden/selection/*.json).
fn golden_tables() -> Vec<PathBuf> {
    let mut tables: Vec<PathBuf> = std::fs::read_dir(root().join("golden/selection"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    tables.sort();
    tables
}

/// Run the main job into a fresh folder; panics with stderr on failure.
fn job(model: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    let mut args = vec![model, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = nsplit(&args);
    assert!(
        o.status.success(),
        "nsplit {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (tmp, out)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Relative path of a model for the command line (goldens record the path as given).
fn rel(path: &Path) -> String {
    let corpus = corpus().unwrap_or_default();
    match path.strip_prefix(root()) {
        Ok(r) => r.display().to_string(),
        Err(_) => path
            .display()
            .to_string()
            .replace(&corpus.display().to_string(), "corpus/onnx-backend"),
    }
}

/// Round-trip-free networks at 50 and 2 Mbps, where the small fixtures have mid-network cuts.
fn lan_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = round_trip_free_buckets(dir.path(), &[50.0, 2.0]);
    let s = path.display().to_string();
    (dir, s)
}

/// Golden selection.json (field for field) and selection.md (byte for byte) for every fixture
/// and light model-zoo net under the default profiles and buckets, plus an energy plan.
#[test]
fn selection_tables_match_golden() {
    let mut models: Vec<(String, Vec<String>)> = FIXTURES
        .iter()
        .map(|(n, s)| {
            let shapes = s
                .iter()
                .flat_map(|s| ["--input-shape".to_string(), s.to_string()]);
            (format!("fixtures/{n}"), shapes.collect())
        })
        .collect();
    models.extend(light_models().iter().map(|p| (rel(p), vec![])));
    let corpus_dir = corpus().map(|d| d.display().to_string());
    for (model, shapes) in &models {
        let path = if model.starts_with("corpus/") {
            model.replace("corpus/onnx-backend", corpus_dir.as_deref().unwrap())
        } else {
            model.clone()
        };
        for (suffix, extra) in [("", vec![]), (".energy", vec!["--objective", "energy"])] {
            let mut args: Vec<&str> = shapes.iter().map(String::as_str).collect();
            args.push("--no-verify");
            args.extend(extra);
            let (_tmp, out) = job(&path, &args);
            let stem = Path::new(model).file_stem().unwrap().to_string_lossy();
            let fix = |s: String| match &corpus_dir {
                Some(c) => s.replace(c.as_str(), "corpus/onnx-backend"),
                None => s,
            };
            let json = fix(std::fs::read_to_string(out.join("selection.json")).unwrap());
            check_golden_json(&format!("selection/{stem}{suffix}.json"), &json);
            let md = fix(std::fs::read_to_string(out.join("selection.md")).unwrap());
            check_golden(&format!("selection/{stem}{suffix}.md"), &md);
        }
    }
}

/// Compare JSON documents field for field (numbers to 1e-9 relative); `UPDATE_GOLDEN=1`
/// rewrites the golden file.
fn check_golden_json(rel: &str, actual: &str) {
    let path = root().join("golden").join(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = read_json(&path);
    let got: Value = serde_json::from_str(actual).unwrap();
    if let Err(at) = same(&want, &got, "$") {
        panic!(
            "{} differs at {at} (run with UPDATE_GOLDEN=1 to accept, then read the diff)",
            path.display()
        );
    }
}

fn same(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Number(w), Value::Number(g)) => {
            let (w, g) = (w.as_f64().unwrap(), g.as_f64().unwrap());
            if (w - g).abs() <= 1e-9 * w.abs().max(g.abs()) {
                Ok(())
            } else {
                Err(format!("{at}: {w} vs {g}"))
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Err(format!("{at}: {} vs {} items", w.len(), g.len()));
            }
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                same(w, g, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(w), Value::Object(g)) => {
            let (wk, gk): (Vec<_>, Vec<_>) = (w.keys().collect(), g.keys().collect());
            if wk != gk {
                return Err(format!("{at}: fields {wk:?} vs {gk:?}"));
            }
            for (k, v) in w {
                same(v, &g[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("{at}: {w} vs {g}")),
    }
}

/// From annotations.json alone (and the networks in selection.json), redo the paper's prefix
/// scan for the chain models and find the choices selection.json made.
#[test]
fn prefix_scan_from_annotations_matches_selection() {
    let (_lan_dir, lan) = lan_file();
    let mut models: Vec<String> = ["lenet.onnx", "lstm.onnx", "gru.onnx", "custom_domain.onnx"]
        .iter()
        .map(|m| fixture(m).display().to_string())
        .collect();
    models.extend(light_models().iter().map(|p| p.display().to_string()));
    let mut checked = 0;
    for model in &models {
        for buckets in ["3g,lte,wifi", lan.as_str()] {
            let (_tmp, out) = job(
                model,
                &["--no-verify", "--buckets", buckets, "--cloud-load", "2"],
            );
            let sel = read_json(&out.join("selection.json"));
            if sel["method"] != "chain_scan" {
                continue;
            }
            let ann = read_json(&out.join("annotations.json"));
            for b in sel["buckets"].as_array().unwrap() {
                let (k, total) = scan(&ann, &b["network"], 2.0);
                let cut = sel["cuts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["id"] == b["cut"])
                    .unwrap();
                assert_eq!(
                    cut["head_nodes"].as_u64().unwrap() as usize,
                    k,
                    "{model} {}: scan chose a head of {k} nodes, selection {}",
                    b["network"]["name"],
                    b["cut"]
                );
                let reported = b["predicted"]["total_ms"].as_f64().unwrap();
                assert!(
                    (reported - total).abs() <= 1e-5 * total,
                    "{model}: {reported} vs {total}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} bucket choices checked");
}

/// The paper's latency(j), over the non-constant nodes in annotation order; the first minimum.
fn scan(ann: &Value, net: &Value, load: f64) -> (usize, f64) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let nodes: Vec<&Value> = ann["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n.get("constant").is_none())
        .collect();
    let produced_at: std::collections::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |o| (o["name"].as_str().unwrap(), i))
        })
        .collect();
    let position = |tensor: &str| produced_at.get(tensor).copied();
    let mut sizes: std::collections::HashMap<String, f64> = Default::default();
    for t in ann["model"]["inputs"].as_array().unwrap() {
        sizes.insert(t["name"].as_str().unwrap().into(), f(&t["bytes"]));
    }
    for n in &nodes {
        for o in n["outputs"].as_array().unwrap() {
            sizes.insert(o["name"].as_str().unwrap().into(), f(&o["bytes"]));
        }
    }
    let outputs: Vec<&str> = ann["model"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    let (up, down, rtt) = (
        f(&net["uplink_mbps"]),
        f(&net["downlink_mbps"]),
        f(&net["rtt_ms"]),
    );
    let mut best = (0, f64::INFINITY);
    for j in 0..=nodes.len() {
        let mut total = 0.0;
        let mut crossing: std::collections::BTreeSet<&str> = Default::default();
        let mut replies = false;
        for (i, n) in nodes.iter().enumerate() {
            if i < j {
                total += f(&n["mobile_ms"]);
                continue;
            }
            total += load * f(&n["cloud_ms"]);
            for input in n["inputs"].as_array().unwrap() {
                let name = input.as_str().unwrap();
                let from_head = match position(name) {
                    Some(p) => p < j,
                    None => sizes.contains_key(name), // a graph input (weights are not in sizes)
                };
                if from_head {
                    crossing.insert(name);
                }
            }
            for o in n["outputs"].as_array().unwrap() {
                if outputs.contains(&o["name"].as_str().unwrap()) {
                    replies = true;
                    total += 8e-3 * f(&o["bytes"]) / down;
                }
            }
        }
        total += crossing.iter().map(|t| 8e-3 * sizes[*t] / up).sum::<f64>();
        if replies {
            total += rtt;
        }
        if total < best.1 * (1.0 - 1e-9) {
            best = (j, total);
        }
    }
    best
}

/// The README's main job, as the README writes it: on a bundled model and the default networks
/// it chooses a mid cut in at least one bucket (a newcomer sees a split), and it writes the
/// all-mobile head as the fallback although no bucket there chooses it.
#[test]
fn the_readme_main_job_shows_a_split() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find_map(|l| l.strip_prefix("cargo run --release -- "))
        .expect("README.md runs the main job with `cargo run --release -- ...`");
    assert!(
        !line.contains("--buckets"),
        "the README's main job plans for the default networks: {line}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    let args: Vec<String> = line
        .split_whitespace()
        .map(|a| match a {
            "dist/" | "dist" => out.display().to_string(),
            a => a.to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = nsplit(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sel = read_json(&out.join("selection.json"));
    let chosen: Vec<&str> = sel["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cut"].as_str().unwrap())
        .collect();
    assert!(
        chosen.iter().any(|c| c.starts_with('h')),
        "no default bucket chooses a mid cut: {chosen:?}"
    );
    assert!(chosen.contains(&"all-mobile") || sel["fallback"] == "all-mobile");
    assert!(out.join("all-mobile.head.onnx").is_file());
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("wifi"), "{printed}");
}

/// The fallback: where no bucket chooses all-mobile, the main job writes it anyway, and a request
/// whose server does not answer is answered with it; with `--no-fallback` it is not written,
/// and the same request fails saying why and what to do.
#[test]
fn the_fallback_answers_for_a_missing_server_and_its_absence_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.npy");
    let zeros = tract_onnx::prelude::Tensor::zero::<f32>(&[1, 3, 224, 224]).unwrap();
    nsplit::runtime::npy::write_npy(&image, &zeros).unwrap();
    // Nothing listens there.
    let server = format!("http://127.0.0.1:{}", nsplit::dev::free_port());
    for with_fallback in [true, false] {
        // Wi-Fi from 15 Mbps up: the mid cut, then all-cloud; nowhere all-mobile.
        let mut args = vec![
            "--mobile",
            "jetson-tk1-cpu",
            "--buckets",
            "wifi",
            "--range",
            "15..1000",
            "--base-network",
            "wifi",
            "--no-verify",
        ];
        if !with_fallback {
            args.push("--no-fallback");
        }
        let (_tmp, out) = job("fixtures/camera_cnn.onnx", &args);
        let sel = read_json(&out.join("selection.json"));
        let chosen = sel["buckets"][0]["cut"].as_str().unwrap().to_string();
        assert!(chosen.starts_with('h'), "Wi-Fi chose {chosen}");
        assert_eq!(out.join("all-mobile.head.onnx").is_file(), with_fallback);
        let o = nsplit(&[
            "run",
            out.to_str().unwrap(),
            "--server",
            &server,
            "--input",
            &format!("image={}", image.display()),
            "--model",
            "camera_cnn",
            "--network",
            "wifi",
            "--bandwidth",
            "18.88",
        ]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        if with_fallback {
            assert_eq!(sel["fallback"], "all-mobile");
            let md = std::fs::read_to_string(out.join("selection.md")).unwrap();
            assert!(md.contains("`all-mobile` is no bucket's choice"), "{md}");
            assert!(o.status.success(), "{stderr}");
            assert!(
                stdout.contains(&format!("ran all-mobile, not {chosen}")),
                "{stdout}"
            );
        } else {
            assert!(sel.get("fallback").is_none(), "{sel}");
            assert!(!o.status.success(), "{stdout}");
            assert!(
                stderr.contains("no all-mobile pair") && stderr.contains("--no-fallback"),
                "{stderr}"
            );
        }
    }
}

/// The README's main command: pairs are written and verified, the table lists them, and
/// `nsplit select` answers from it.
#[test]
fn main_job_writes_verified_pairs_and_select_reads_them() {
    let (_lan_dir, lan) = lan_file();
    let (_tmp, out) = job(
        "fixtures/lenet.onnx",
        &[
            "--buckets",
            &lan,
            "--objective",
            "energy",
            "--cloud-load",
            "3",
        ],
    );
    let sel = read_json(&out.join("selection.json"));
    let cuts = sel["cuts"].as_array().unwrap();
    assert!(cuts.len() >= 2, "expected a mid-network cut: {cuts:?}");
    for c in cuts {
        assert_eq!(c["verification"]["status"], "passed", "{c}");
        for side in ["head", "tail"] {
            if let Some(f) = c[side].as_str() {
                assert!(out.join(f).is_file(), "{f} missing");
            }
        }
    }
    assert!(out.join("selection.md").is_file() && out.join("annotations.json").is_file());
    // Every breakpoint piece names a listed cut, and select agrees with the pieces.
    for p in sel["breakpoints"]["pieces"].as_array().unwrap() {
        let mid = (p["from_mbps"].as_f64().unwrap() * p["to_mbps"].as_f64().unwrap()).sqrt();
        let o = nsplit(&[
            "select",
            out.to_str().unwrap(),
            "--bandwidth",
            &mid.to_string(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(answer["cut"], p["cut"], "at {mid} Mbps");
        let cut = cuts.iter().find(|c| c["id"] == p["cut"]).unwrap();
        match cut["head"].as_str() {
            Some(h) => assert_eq!(answer["head"], out.join(h).display().to_string()),
            None => assert!(answer["head"].is_null()),
        }
    }
    let o = nsplit(&["select", out.to_str().unwrap(), "--bandwidth", "-1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bandwidth"));

    // A table written before margins (no tie_within, no margin) still reads.
    let mut old = sel.clone();
    old.as_object_mut().unwrap().remove("tie_within");
    for b in old["buckets"].as_array_mut().unwrap() {
        b.as_object_mut().unwrap().remove("margin");
    }
    std::fs::write(out.join("selection.json"), old.to_string()).unwrap();
    let o = nsplit(&["select", out.to_str().unwrap(), "--bandwidth", "10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every golden table's margins say what they claim: the runner-up is another listed cut, the
/// choice is the best of the listed cuts on its network (relative >= 0), and near_tie is exactly
/// relative < tie_within; a table of one cut has no margins.
#[test]
fn margins_name_the_next_best_cut_and_flag_ties() {
    let mut seen_tie = false;
    for path in golden_tables() {
        let sel = read_json(&path);
        let tie_within = sel["tie_within"].as_f64().unwrap();
        assert!(tie_within >= 0.1, "{}", path.display());
        let ids: Vec<&str> = sel["cuts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        for b in sel["buckets"].as_array().unwrap() {
            let m = &b["margin"];
            if ids.len() == 1 {
                assert!(m.is_null(), "{}: {b}", path.display());
                continue;
            }
            if m.is_null() {
                // Only a choice predicted to cost nothing has no margin.
                let objective = if sel["objective"] == "energy" {
                    "mobile_mj"
                } else {
                    "total_ms"
                };
                assert_eq!(b["predicted"][objective], 0.0, "{}: {b}", path.display());
                continue;
            }
            let runner_up = m["runner_up"].as_str().unwrap();
            assert!(
                ids.contains(&runner_up) && runner_up != b["cut"],
                "{}: {b}",
                path.display()
            );
            let relative = m["relative"].as_f64().unwrap();
            assert!(
                relative >= -1e-6,
                "{}: the choice is not the best listed cut: {b}",
                path.display()
            );
            assert_eq!(
                m["near_tie"],
                relative < tie_within,
                "{}: {b}",
                path.display()
            );
            seen_tie |= relative < tie_within;
        }
    }
    assert!(
        seen_tie,
        "no golden table has a near tie: the check above saw only one branch"
    );
}

/// The app's lookup is the plan: for every bucket of every golden table, `nsplit select` at the
/// bucket's network and uplink answers the cut the table (and the printed summary) chose, with
/// the objective the bucket predicts.
#[test]
fn select_returns_every_buckets_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut asked = 0;
    for path in golden_tables() {
        std::fs::copy(&path, tmp.path().join("selection.json")).unwrap();
        let sel = read_json(&path);
        let objective = if sel["objective"] == "energy" {
            "mobile_mj"
        } else {
            "total_ms"
        };
        for b in sel["buckets"].as_array().unwrap() {
            let (name, mbps) = (
                b["network"]["name"].as_str().unwrap(),
                b["network"]["uplink_mbps"].as_f64().unwrap(),
            );
            let o = nsplit(&[
                "select",
                tmp.path().to_str().unwrap(),
                "--network",
                name,
                "--bandwidth",
                &mbps.to_string(),
            ]);
            assert!(
                o.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(
                answer["cut"],
                b["cut"],
                "{}: select on {name} at {mbps} Mbps",
                path.display()
            );
            let (got, want) = (
                answer["predicted"].as_f64().unwrap(),
                b["predicted"][objective].as_f64().unwrap(),
            );
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1e-9),
                "{}: on {name}: select predicts {got}, the bucket {want}",
                path.display()
            );
            asked += 1;
        }
    }
    assert!(asked >= 60, "only {asked} buckets in the golden tables");
}

/// The client's rule is the lookup's: over every golden table, network and a range of uplinks,
/// the cut of least predicted objective from the table's lines (asked under a round trip a
/// nanosecond off, so that the lines decide rather than the breakpoints) is the breakpoints'
/// cut, or ties it to the table's six digits. Conditions move the choice as they should: a
/// server a million times slower or a round trip of a thousand seconds leave all-mobile where
/// the table has it (with the latency objective; the energy objective ignores both), and
/// `nsplit select` takes them as flags and refuses bad ones by name.
#[test]
fn the_client_chooses_by_the_tables_lines_under_its_conditions() {
    use nsplit::client::{choose, Conditions};
    use nsplit::selection::SelectionTable;
    let tmp = tempfile::tempdir().unwrap();
    let (mut asked, mut moved) = (0, 0);
    for path in golden_tables() {
        std::fs::copy(&path, tmp.path().join("selection.json")).unwrap();
        let table = SelectionTable::load(tmp.path()).unwrap();
        let latency = table.objective == nsplit::plan::Objective::Latency;
        let has_all_mobile = table.cuts.iter().any(|c| c.tail.is_none());
        let networks =
            std::iter::once(None).chain(table.networks.iter().map(|n| Some(n.buckets[0].clone())));
        for network in networks {
            let rtt = network
                .as_deref()
                .and_then(|n| table.network(n))
                .map_or(table.breakpoints.network.rtt_ms, |n| n.network.rtt_ms);
            for k in 0..40 {
                let mbps = 0.05 * 1.4f64.powi(k);
                let at = |rtt_ms: Option<f64>, server_load: Option<f64>| Conditions {
                    uplink_mbps: mbps,
                    network: network.clone(),
                    rtt_ms,
                    server_load,
                    ..Conditions::default()
                };
                let (planned, _) = table.select(mbps, network.as_deref()).unwrap();
                let as_planned = choose(&table, &at(None, None)).unwrap();
                assert_eq!(as_planned.cut.id, planned.id);
                let by_lines = choose(&table, &at(Some(rtt + 1e-9), None)).unwrap();
                let tie = (by_lines.predicted - as_planned.predicted).abs()
                    <= 1e-5 * as_planned.predicted.abs().max(1e-9);
                assert!(
                    by_lines.cut.id == planned.id || tie,
                    "{}: on {network:?} at {mbps} Mbps the lines choose {} ({}), the breakpoints {} ({})",
                    path.display(),
                    by_lines.cut.id,
                    by_lines.predicted,
                    planned.id,
                    as_planned.predicted
                );
                for far in [at(None, Some(table.cloud_load * 1e6)), at(Some(1e6), None)] {
                    let c = choose(&table, &far).unwrap();
                    if !latency {
                        assert_eq!(c.cut.id, planned.id, "{}: energy moved", path.display());
                    } else if has_all_mobile {
                        assert!(
                            c.cut.tail.is_none(),
                            "{}: {far:?} chose {}",
                            path.display(),
                            c.cut.id
                        );
                        moved += usize::from(planned.tail.is_some());
                    }
                }
                asked += 1;
            }
        }
    }
    assert!(asked >= 1000, "only {asked} lookups");
    assert!(moved >= 20, "far conditions moved only {moved} choices");

    // The flags: the answer says what it assumed; a bad value names its flag.
    let out = tmp.path().to_str().unwrap();
    std::fs::copy(
        root().join("golden/selection/lenet.json"),
        tmp.path().join("selection.json"),
    )
    .unwrap();
    let o = nsplit(&[
        "select",
        out,
        "--bandwidth",
        "10",
        "--rtt",
        "2.5",
        "--server-load",
        "0.5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (answer["rtt_ms"].as_f64(), answer["server_load"].as_f64()),
        (Some(2.5), Some(0.5))
    );
    let plain: Value =
        serde_json::from_slice(&nsplit(&["select", out, "--bandwidth", "10"]).stdout).unwrap();
    assert!(plain.get("rtt_ms").is_none() && plain.get("server_load").is_none());
    for (flag, value, says) in [
        ("--rtt", "-1", "0 ms or more"),
        ("--server-load", "0", "positive"),
    ] {
        let o = nsplit(&[
            "select",
            out,
            "--bandwidth",
            "10",
            &format!("{flag}={value}"),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(flag) && err.contains(says),
            "{flag} {value}: {err}"
        );
    }
}

/// A model tract cannot run still gets its split, marked unverified with the reason.
#[test]
fn a_model_tract_cannot_run_is_split_and_marked_unverified() {
    use onnx_protobuf::{Message, ModelProto, OperatorSetIdProto};
    let mut m =
        ModelProto::parse_from_bytes(&std::fs::read(fixture("custom_domain.onnx")).unwrap())
            .unwrap();
    let graph = m.graph.mut_or_insert_default();
    let gelu = graph.node.iter_mut().find(|n| n.op_type == "Gelu").unwrap();
    gelu.op_type = "NoSuchOp".into();
    gelu.domain = "com.example.unknown".into();
    let out_name = gelu.output[0].clone();
    m.opset_import.push(OperatorSetIdProto {
        domain: "com.example.unknown".into(),
        version: 1,
        ..Default::default()
    });
    let mut vi = m.graph.input[0].clone();
    vi.name = out_name;
    m.graph.mut_or_insert_default().value_info.push(vi); // [1, 16] float, like the MatMul before it
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("unknown_op.onnx");
    std::fs::write(&model, m.write_to_bytes().unwrap()).unwrap();
    let (_t, out) = job(model.to_str().unwrap(), &[]);
    let sel = read_json(&out.join("selection.json"));
    for c in sel["cuts"].as_array().unwrap() {
        assert_eq!(c["verification"]["status"], "unverified", "{c}");
        let why = c["verification"]["reason"].as_str().unwrap();
        // Both runtimes were tried (onnxruntime where installed) and neither runs it.
        assert!(why.contains("tract cannot run"), "{why}");
        assert!(why.contains("onnxruntime"), "{why}");
    }
}

/// With onnxruntime deliberately absent the job still verifies every pair, in tract, and says
/// so; asking for onnxruntime then marks the pairs unverified with the reason.
#[test]
fn without_onnxruntime_tract_verifies() {
    let absent = [("ORT_DYLIB_PATH", "no-such-libonnxruntime.so")];
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    let run = |extra: &[&str]| {
        let mut args = vec!["fixtures/lenet.onnx", "--out", out.to_str().unwrap()];
        args.extend(extra);
        let o = nsplit_with_env(&args, &absent);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            read_json(&out.join("selection.json")),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (sel, text) = run(&[]);
    for c in sel["cuts"].as_array().unwrap() {
        assert_eq!(c["verification"]["status"], "passed", "{c}");
        assert_eq!(c["verification"]["verifier"], "tract", "{c}");
    }
    assert!(text.contains("verified by tract"), "{text}");
    let (sel, _) = run(&["--verifier", "onnxruntime"]);
    for c in sel["cuts"].as_array().unwrap() {
        assert_eq!(c["verification"]["status"], "unverified", "{c}");
        let why = c["verification"]["reason"].as_str().unwrap();
        assert!(
            why.contains("onnxruntime is not available") && why.contains("ORT_DYLIB_PATH"),
            "{why}"
        );
    }
}

/// Bad requests fail with a message naming the problem and leave no output folder.
#[test]
fn bad_requests_fail_cleanly_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    let o = out.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["fixtures/symbolic_batch.onnx", "--out", o],
            "--input-shape images=",
        ),
        (
            vec!["fixtures/lenet.onnx", "--out", o, "--buckets", "5g"],
            "5g",
        ),
        (
            vec!["fixtures/lenet.onnx", "--out", o, "--buckets", "0"],
            "uplink_mbps",
        ),
        (
            vec!["fixtures/lenet.onnx", "--out", o, "--range", "10..1"],
            "0 < FROM < TO",
        ),
        (
            vec!["fixtures/lenet.onnx", "--out", o, "--cloud-load", "0"],
            "--cloud-load",
        ),
        (
            vec!["fixtures/bad/truncated.onnx", "--out", o],
            "truncated.onnx",
        ),
        (
            vec!["fixtures/lenet.onnx", "--out", o, "--mobile", "nope"],
            "nope",
        ),
    ] {
        let r = nsplit(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    let r = nsplit(&["select", tmp.path().to_str().unwrap(), "--bandwidth", "5"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("selection.json"));
}

/// A second run into the same folder replaces the first run's pairs.
#[test]
fn rerun_removes_stale_pairs() {
    let (_lan_dir, lan) = lan_file();
    let (_tmp, out) = job(
        "fixtures/lenet.onnx",
        &["--no-verify", "--buckets", &lan, "--objective", "energy"],
    );
    let first: Vec<String> = onnx_files(&out);
    assert!(first.len() > 1);
    let o = nsplit(&[
        "fixtures/lenet.onnx",
        "--out",
        out.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(o.status.success());
    assert_eq!(onnx_files(&out), vec!["all-mobile.head.onnx".to_string()]);
}

fn onnx_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".onnx"))
        .collect();
    v.sort();
    v
}
