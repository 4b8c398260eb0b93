//! Tests that time things and need the machine to themselves: cargo runs one test binary after
//! another, so nothing of the main suite (`tests`) runs beside these. Within this binary they
//! take turns too (each holds the turn of a test that starts a server).

#[allow(dead_code, unused_imports)]
mod common;

use common::serving::*;
use common::*;
use nsplit::dev::Triton;
use nsplit::runtime::Verifier;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `profile` (a profile file or built-in name) with every time it predicts multiplied by
/// `factor`, as the server: a profile deliberately off.
fn profile_off_by(profile: &str, factor: f64, out: &Path) {
    use nsplit::cost::profile::{DeviceProfile, Role};
    let mut p = DeviceProfile::resolve(profile).unwrap();
    p.role = Role::Cloud;
    p.name = format!("{}-x{factor}", p.name);
    for r in p.regressions.values_mut() {
        for c in &mut r.coefficients {
            *c *= factor;
        }
    }
    p.fallback.peak_gflops /= factor;
    p.fallback.memory_gbps /= factor;
    p.fallback.overhead_ms *= factor;
    p.run_overhead_ms *= factor;
    p.write(out).unwrap();
}

/// A server profile 3x off, either way: the adaptive client's choices reach the oracle's (the
/// table's cut that measured fastest, every one timed through the same shaped link) within 20
/// requests, and stay there. The profiles are off by 3x from the server's speed as measured
/// first (Triton's onnxruntime against the built-in x86-2core profile, tract on a machine like
/// this one).
#[test]
fn the_adaptive_client_converges_on_a_server_profile_3x_off() {
    use nsplit::client::adaptive::AdaptiveClient;
    use nsplit::client::run::{run, CutChoice, RunOptions};
    use nsplit::dev::proxy::Proxy;
    let Some((python, _turn)) = triton_python() else {
        return;
    };
    const UPLINK_MBPS: f64 = 200.0;
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets = round_trip_free_buckets(work, &[UPLINK_MBPS]);
    let inputs = |case: &Case| -> Vec<(String, PathBuf)> {
        case.inputs
            .iter()
            .map(|(n, f, _)| (n.clone(), f.clone()))
            .collect()
    };

    // The server's speed over the x86-2core profile's: the whole model served, timed.
    let measure = Case::new("measure", fixture("camera_cnn.onnx"), &[], work, 7);
    plan_into(
        &measure.model,
        &measure.dir,
        Some(&buckets),
        &[
            "--mobile",
            "x86-2core",
            "--cloud",
            "x86-2core",
            "--cloud-load",
            "0.01",
        ],
    );
    let first = work.join("first");
    assert!(
        package_into(&measure.dir, &first, &["--triton-backend", "python"])
            .status
            .success()
    );
    let served = measure
        .table()
        .cuts
        .into_iter()
        .find(|c| c.tail.is_some())
        .expect("a cut with a tail");
    let speed = {
        let _triton = Triton::start(&python, &first, &work.join("first.log"));
        let opts = RunOptions {
            server: Some(_triton.url.clone()),
            inputs: inputs(&measure),
            choice: CutChoice::Id(served.id.clone()),
            model: None,
            timeout: Duration::from_secs(10),
            runtime: Verifier::Tract,
            repeat: 9,
        };
        let r = run(&measure.dir, &opts).unwrap();
        r.measured.server_ms.unwrap() / (served.cloud_ms / measure.table().cloud_load)
    };
    eprintln!("the server runs at {speed:.3}x the x86-2core profile's times");

    let repo = work.join("repo");
    let mut cases = vec![];
    for (off, name) in [(3.0, "slow"), (1.0 / 3.0, "fast")] {
        let case = Case::new(name, fixture("camera_cnn.onnx"), &[], work, 7);
        let cloud = work.join(format!("{name}.json"));
        profile_off_by("x86-2core", speed * off, &cloud);
        // The pairs for a server up to 10x off, not the default 3x: the speed measured above
        // moves with what else this machine runs (1.5x when the whole suite runs beside it,
        // against 0.44-0.55x alone), and the test is of the client, not of the spread.
        plan_into(
            &case.model,
            &case.dir,
            Some(&buckets),
            &[
                "--mobile",
                "x86-2core",
                "--cloud",
                cloud.to_str().unwrap(),
                "--server-spread",
                "10",
            ],
        );
        let o = package_into(
            &case.dir,
            &repo,
            &["--triton-backend", "python", "--triton-name", name],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        cases.push(case);
    }
    let triton = Triton::start(&python, &repo, &work.join("triton.log"));
    let port = triton
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let proxy = Proxy::start(port);
    proxy.set(|s| s.uplink_mbps = Some(UPLINK_MBPS));

    let mut wrong = vec![];
    for case in &cases {
        let table = case.table();
        let network = table.buckets[0].network.name.clone();
        let opts = |choice: CutChoice, repeat: usize| RunOptions {
            server: Some(proxy.url()),
            inputs: inputs(case),
            choice,
            model: None,
            timeout: Duration::from_secs(10),
            runtime: Verifier::Tract,
            repeat,
        };
        // The oracle: every cut of the table timed through the link; the fastest, where it is
        // clearly the fastest.
        let oracle = || -> (Option<String>, Vec<(String, f64)>) {
            let mut measured: Vec<(String, f64)> = table
                .cuts
                .iter()
                .map(|c| {
                    let r = run(&case.dir, &opts(CutChoice::Id(c.id.clone()), 7)).unwrap();
                    (c.id.clone(), r.measured.total_ms.unwrap())
                })
                .collect();
            measured.sort_by(|a, b| a.1.total_cmp(&b.1));
            let clear = measured.len() >= 2 && measured[1].1 > 1.2 * measured[0].1;
            (clear.then(|| measured[0].0.clone()), measured)
        };
        // The machine's speed moves with what runs beside the test (the whole suite does): a
        // run counts where the oracle is the same, and clear, before and after the client's
        // requests; up to three runs.
        let mut judged = false;
        for attempt in 1..=3 {
            let (before, measured) = oracle();
            let mut client = AdaptiveClient::open(
                &case.dir,
                &opts(
                    CutChoice::Bandwidth {
                        mbps: UPLINK_MBPS,
                        network: Some(network.clone()),
                    },
                    1,
                ),
            )
            .unwrap();
            let steps: Vec<_> = (0..30).map(|_| client.request().unwrap().0).collect();
            let (after, measured_after) = oracle();
            let cuts: Vec<&str> = steps.iter().map(|s| s.cut.as_str()).collect();
            eprintln!(
                "{} (run {attempt}): oracle {measured:?}, then {measured_after:?}; the client ran {cuts:?}",
                case.name
            );
            let Some(oracle) = before.filter(|b| after.as_ref() == Some(b)) else {
                continue;
            };
            let chosen = &table.buckets[0].cut;
            wrong.push(chosen != &oracle);
            // From the 20th request on, the oracle's cut, but for the probes of quiet spells.
            assert!(
                steps[19..]
                    .iter()
                    .all(|s| s.cut == oracle || s.reason == "probe"),
                "{}: the table chose {chosen}, the oracle is {oracle}; the client ran {cuts:?}",
                case.name
            );
            judged = true;
            break;
        }
        assert!(
            judged,
            "{}: in three runs the cuts measured no clear fastest, the same before and after the client's requests (the machine too busy to judge by)",
            case.name
        );
    }
    // A server 3x slower than it is keeps the table from splitting where splitting is best.
    assert!(
        wrong[0],
        "the table with the slow profile chose the oracle's cut"
    );
}
