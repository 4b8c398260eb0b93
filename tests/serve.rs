//! The split run end to end against a real Triton Inference Server (the nvidia-pytriton wheel's,
//! Python backend), started on loopback by this test and stopped by its pid: tails packaged by
//! `nsplit package`, requests made by `nsplit run`, outputs compared with the original model
//! run here; Triton's dynamic batching of a batch-capable tail; and the errors a user meets.

use crate::common::serving::*;
use crate::common::{self, *};
use nsplit::dev::Triton;
use nsplit::runtime::npy;
use nsplit::runtime::Verifier;
use nsplit::selection::SelectionTable;
use nsplit::serve::kserve::Server;
use nsplit::serve::triton::{TritonModel, TritonOptions};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tract_onnx::prelude::Tensor;

/// The run failed with exit code 1 and one line on stderr saying `what`.
fn assert_fails_with(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(what), "expected `{what}` in: {err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
}

/// The app's request never fails for want of the server: with nothing listening, the pair the
/// table chose at a high uplink (one with a tail) runs all-mobile instead, computes the
/// original's outputs and says why; a pair asked for by id still fails with the server's error.
#[test]
fn a_chosen_pair_runs_all_mobile_when_the_server_is_down() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets = round_trip_free_buckets(work, &[0.01, 1e5]);
    let lenet = Case::new("lenet", fixture("lenet.onnx"), &[], work, 1);
    plan_into(&lenet.model, &lenet.dir, Some(&buckets), &["--triton"]);
    let table = lenet.table();
    let network = table.buckets.last().unwrap().network.name.clone();
    let chosen = table.select(1e5, Some(&network)).unwrap().0.clone();
    assert!(
        chosen.tail.is_some(),
        "lenet at 1e5 Mbps chose {}",
        chosen.id
    );
    assert!(
        table.cuts.iter().any(|c| c.tail.is_none()),
        "no all-mobile pair"
    );
    let down = format!("http://127.0.0.1:{}", nsplit::dev::free_port());
    let out = work.join("fallback.npz");
    let mut args: Vec<String> = ["run", lenet.dir.to_str().unwrap(), "--server", &down]
        .map(String::from)
        .to_vec();
    args.extend(lenet.input_args());
    args.extend(
        ["--bandwidth", "1e5", "--network", &network]
            .into_iter()
            .chain(["--out", out.to_str().unwrap(), "--json"])
            .map(String::from),
    );
    let o = nsplit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["cut"], "all-mobile");
    assert_eq!(report["fallback"]["chosen"], chosen.id.as_str());
    let reason = report["fallback"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("cannot connect to the inference server at {down}")),
        "{reason}"
    );
    let got: HashMap<String, Tensor> = npy::read_npz(&out).unwrap().into_iter().collect();
    assert_close(&lenet.expected(), &got, "all-mobile in place of a split");
    let o = lenet.run(&down, &chosen.id, &[]);
    assert_fails_with(&o, "cannot connect to the inference server");
}

/// Neurosurgeon's runtime against a real Triton behind a shaping proxy, in the library
/// (`nsplit::client::adaptive`). The phone's heads run in tract, slower than the server's
/// onnxruntime, as a phone is slower than a server, and the table's predictions are the
/// built-in profiles', off by an order of magnitude here: the client corrects them from its own
/// requests. On a fast network it sends the request to the server; when the uplink drops to 2
/// Mbps it moves to all-mobile within a few requests; with the server killed every request is
/// still answered, all-mobile, with the server's error; once the server is back (another port,
/// behind the same proxy) and the network fast, it splits again. Every answer is the original's.
#[test]
fn the_adaptive_client_follows_the_network_and_survives_the_server() {
    use nsplit::client::adaptive::AdaptiveClient;
    use nsplit::client::run::{CutChoice, RunOptions};
    use nsplit::dev::proxy::Proxy;
    let Some((python, _turn)) = triton_python() else {
        return;
    };
    let Some(squeezenet) = light_models()
        .into_iter()
        .find(|m| m.ends_with("light_squeezenet.onnx"))
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets = round_trip_free_buckets(work, &[0.01, 1.0, 1e5]);
    let repo = work.join("repo");
    let case = Case::new("squeezenet", squeezenet, &[], work, 4);
    plan_into(&case.model, &case.dir, Some(&buckets), &[]);
    let o = package_into(&case.dir, &repo, &["--triton-backend", "python"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = case.table();
    assert!(
        table.cuts.iter().any(|c| c.tail.is_none()),
        "no all-mobile pair"
    );
    let network = table.buckets.last().unwrap().network.name.clone();
    let expected = case.expected();

    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let mut triton = Triton::start(&python, &repo, &work.join("triton.log"));
    let proxy = Proxy::start(port(&triton.url));
    let opts = RunOptions {
        server: Some(proxy.url()),
        inputs: case
            .inputs
            .iter()
            .map(|(n, f, _)| (n.clone(), f.clone()))
            .collect(),
        choice: CutChoice::Bandwidth {
            mbps: 1e5,
            network: Some(network),
        },
        model: None,
        timeout: Duration::from_secs(10),
        runtime: Verifier::Tract,
        repeat: 1,
    };
    let mut client = AdaptiveClient::open(&case.dir, &opts).unwrap();
    let mut request = |phase: &str| {
        let (step, outputs) = client.request().unwrap();
        let got: HashMap<String, Tensor> = outputs.into_iter().collect();
        assert_close(
            &expected,
            &got,
            &format!("{phase}: request {}", step.request),
        );
        eprintln!("{phase}: {step:?}");
        step
    };
    let splits = |s: &nsplit::client::adaptive::Step| s.cut != "all-mobile";

    // A fast network: the server, which runs the net faster than tract here.
    let fast: Vec<_> = (0..12).map(|_| request("fast")).collect();
    assert!(fast[6..].iter().all(splits), "fast: {fast:#?}");
    // A 2 Mbps uplink: the 600 kB input takes seconds; all-mobile within three requests.
    proxy.set(|s| s.uplink_mbps = Some(2.0));
    let slow: Vec<_> = (0..5).map(|_| request("slow")).collect();
    assert!(slow[3..].iter().all(|s| !splits(s)), "slow: {slow:#?}");
    // Fast again, the server killed: answered all-mobile, the server's error said.
    proxy.set(|s| s.uplink_mbps = None);
    triton.stop();
    let down: Vec<_> = (0..12).map(|_| request("down")).collect();
    assert!(down.iter().all(|s| !splits(s)), "down: {down:#?}");
    assert!(
        down.iter().any(|s| s.server_error.is_some()),
        "the server was never tried while down: {down:#?}"
    );
    // The server back on another port behind the proxy: splitting resumes.
    let triton2 = Triton::start(&python, &repo, &work.join("triton2.log"));
    proxy.set(|s| s.target = port(&triton2.url));
    let back: Vec<_> = (0..60).map(|_| request("back")).collect();
    assert!(back[back.len() - 5..].iter().all(splits), "back: {back:#?}");
}

#[test]
fn split_requests_are_served_by_triton() {
    let Some((python, _turn)) = triton_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets =
        round_trip_free_buckets(work, &[0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e5]);
    let repo = work.join("repo");

    let mut cases = vec![
        Case::new("lenet", fixture("lenet.onnx"), &[], work, 1),
        Case::new("resnet_block", fixture("resnet_block.onnx"), &[], work, 2),
        Case::new(
            "symbolic",
            fixture("symbolic_classifier.onnx"),
            &["pixels=1x3x16x16"],
            work,
            3,
        ),
    ];
    if let Some(squeezenet) = light_models()
        .into_iter()
        .find(|m| m.ends_with("light_squeezenet.onnx"))
    {
        cases.push(Case::new("squeezenet", squeezenet, &[], work, 4));
    }
    for case in &cases {
        let shapes: &[&str] = if case.name == "symbolic" {
            &["--input-shape", "pixels=1x3x16x16"]
        } else {
            &[]
        };
        plan_into(&case.model, &case.dir, Some(&buckets), shapes);
        let mut package = vec!["--triton-backend", "python"];
        if case.name == "symbolic" {
            // Batches of two, and a long wait for the second request: two concurrent requests
            // are batched for certain, and a lone one waits long enough to time out.
            package.extend([
                "--triton-max-batch",
                "2",
                "--triton-queue-delay-us",
                "6000000",
            ]);
        }
        let o = package_into(&case.dir, &repo, &package);
        assert!(o.status.success(), "{}: {}", case.name, stderr(&o));
        let ids: Vec<String> = case.table().cuts.iter().map(|c| c.id.clone()).collect();
        assert!(
            ids.iter().any(|i| i == "all-cloud") && ids.iter().any(|i| i.starts_with('h')),
            "{}: the buckets should give all-cloud and a mid cut, not {ids:?}",
            case.name
        );
        for cut in case.table().cuts {
            assert_eq!(
                cut.triton_model.is_some(),
                cut.tail.is_some(),
                "{}: selection.json names the model of every cut with a tail",
                case.name
            );
        }
    }

    // A copy of LeNet's all-cloud model whose config declares its input FP64.
    let lenet_all_cloud = repo.join("lenet-all-cloud");
    let tampered = repo.join("tampered");
    std::fs::create_dir_all(tampered.join("1")).unwrap();
    for f in ["1/model.onnx", "1/model.py"] {
        std::fs::copy(lenet_all_cloud.join(f), tampered.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(lenet_all_cloud.join("config.pbtxt")).unwrap();
    std::fs::write(
        tampered.join("config.pbtxt"),
        config
            .replace("name: \"lenet-all-cloud\"", "name: \"tampered\"")
            .replacen("TYPE_FP32", "TYPE_FP64", 1),
    )
    .unwrap();

    let mut triton = Triton::start(&python, &repo, &work.join("triton.log"));
    let url = triton.url.clone();

    // Every served config, as Triton parsed it, says what the tail declares.
    let server = Server::new(&url, Duration::from_secs(30)).unwrap();
    let python_opts = TritonOptions {
        backend: nsplit::serve::triton::TritonBackend::Python,
        ..TritonOptions::default()
    };
    for case in &cases {
        for cut in case.table().cuts.iter().filter(|c| c.tail.is_some()) {
            let name = cut.triton_model.clone().unwrap();
            let tail = TritonModel::of_tail(
                &case.dir.join(cut.tail.as_ref().unwrap()),
                &name,
                &python_opts,
            )
            .unwrap();
            let parsed = config_of(&url, &name);
            let batch = if case.name == "symbolic" { 2 } else { 0 };
            assert_eq!(parsed["max_batch_size"], batch, "{name}");
            for (key, tensors) in [("input", &tail.inputs), ("output", &tail.outputs)] {
                let served = parsed[key].as_array().unwrap();
                assert_eq!(served.len(), tensors.len(), "{name} {key}s");
                for (s, t) in served.iter().zip(tensors) {
                    assert_eq!(s["name"], t.name.as_str(), "{name}");
                    assert_eq!(s["data_type"], t.wire.triton, "{name} `{}`", t.name);
                    let dims: Vec<i64> = s["dims"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_i64().unwrap())
                        .collect();
                    assert_eq!(dims, t.dims, "{name} `{}`", t.name);
                }
            }
            // The metadata a client sees: batchable models lead with a dimension of any size.
            let meta = server.metadata(&name).unwrap();
            if batch > 0 {
                assert!(
                    meta.inputs.iter().all(|i| i.shape[0] == -1),
                    "{name}: {meta:?}"
                );
            }
        }
    }

    // Outputs through the server equal the original's, at every mid cut and all-cloud.
    for case in &cases {
        for cut in case.table().cuts.iter().filter(|c| c.tail.is_some()) {
            case.check_cut(&url, &cut.id, work);
        }
    }

    // The protocol's cost, measured (`--calibrate`): every served cut of the ResNet block in
    // turn, a buckets file with the cost in each of the table's buckets, and a table planned
    // with it that charges it to every cut with a server part.
    {
        let case = cases.iter().find(|c| c.name == "resnet_block").unwrap();
        let table = case.table();
        let file = work.join("calibrated.json");
        let mut args: Vec<String> = [
            "run",
            case.dir.to_str().unwrap(),
            "--server",
            &url,
            "--calibrate",
            file.to_str().unwrap(),
            "--repeat",
            "3",
            "--json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(case.input_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = nsplit_ok(&args);
        let cal: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let served = table.cuts.iter().filter(|c| c.tail.is_some()).count();
        let samples = cal["samples"].as_array().unwrap();
        assert_eq!(samples.len(), served, "one sample per served cut: {cal}");
        for s in samples {
            // A request over HTTP costs something beyond the server's own time.
            assert!(s["overhead_ms"].as_f64().unwrap() > 0.0, "{s}");
            assert!(s["bytes"].as_u64().unwrap() > 0, "{s}");
        }
        let protocol: nsplit::plan::network::Protocol =
            serde_json::from_value(cal["protocol"].clone()).unwrap();
        assert!(
            protocol.request_ms >= 0.0 && protocol.ms_per_mb >= 0.0 && !protocol.is_free(),
            "{protocol:?}"
        );
        let buckets = nsplit::plan::network::load_buckets(&file).unwrap();
        let names: Vec<&str> = buckets.iter().map(|b| b.name.as_str()).collect();
        let planned: Vec<&str> = table
            .buckets
            .iter()
            .map(|b| b.network.name.as_str())
            .collect();
        assert_eq!(names, planned);
        assert!(buckets.iter().all(|b| b.protocol == protocol));

        let again = work.join("resnet_block-calibrated");
        plan_into(&case.model, &again, Some(&file), &[]);
        let calibrated = SelectionTable::load(&again).unwrap();
        for (before, after) in table.buckets.iter().zip(&calibrated.buckets) {
            let (Some(b), Some(a)) = (&before.all_cloud, &after.all_cloud) else {
                continue;
            };
            let bytes = a.upload_bytes + a.download_bytes;
            let expected = protocol.request_ms + protocol.bytes_ms(bytes);
            // The table writes six significant digits.
            let rounding = 1e-5 * (a.transfer_ms + b.transfer_ms) + 1e-6;
            assert!(
                (a.transfer_ms - b.transfer_ms - expected).abs() <= rounding,
                "{}: all-cloud transfer {} ms, {} ms before, the protocol {expected} ms",
                after.network.name,
                a.transfer_ms,
                b.transfer_ms
            );
        }
    }

    // A request of batch 2 to the symbolic model: the predictions scale with the batch (the
    // table's are for batch 1), and the measured parts, of the median run, add up to its total.
    {
        let symbolic = cases.iter().find(|c| c.name == "symbolic").unwrap();
        let table = symbolic.table();
        let (name, _, one) = &symbolic.inputs[0];
        let mut values = one
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<f32>>();
        values.extend_from_within(..);
        let mut shape = one.shape().to_vec();
        shape[0] *= 2;
        let two = Tensor::from_shape(&shape, &values).unwrap();
        let file = work.join("batch2.npy");
        npy::write_npy(&file, &two).unwrap();
        for cut in table.cuts.iter().filter(|c| c.tail.is_some()) {
            let o = nsplit_ok(&[
                "run",
                symbolic.dir.to_str().unwrap(),
                "--server",
                &url,
                "--cut",
                &cut.id,
                "--input",
                &format!("{name}={}", file.display()),
                "--repeat",
                "3",
                "--json",
            ]);
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let (m, p) = (&report["measured"], &report["predicted"]);
            let parts: f64 = ["head_ms", "transfer_ms", "server_ms"]
                .iter()
                .map(|k| m[k].as_f64().unwrap_or(0.0))
                .sum();
            let total = m["total_ms"].as_f64().unwrap();
            assert!((parts - total).abs() <= 1e-9 * total.max(1.0), "{report}");
            let server = p["server_ms"].as_f64().unwrap();
            assert!(
                (server / cut.cloud_ms - 2.0).abs() < 1e-3,
                "{}: predicted server {server} ms at batch 2, the table {} at batch 1",
                cut.id,
                cut.cloud_ms
            );
        }
    }

    // Two concurrent requests to the batch-capable tail are run as one batch of two.
    let symbolic = cases.iter().find(|c| c.name == "symbolic").unwrap();
    let model = "symbolic_classifier-all-cloud";
    let before = server.statistics(model).unwrap();
    let outs = [work.join("b1.npz"), work.join("b2.npz")];
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            let mut args: Vec<String> = vec![
                "run".into(),
                symbolic.dir.display().to_string(),
                "--server".into(),
                url.clone(),
                "--cut".into(),
                "all-cloud".into(),
                "--out".into(),
                out.display().to_string(),
            ];
            args.extend(symbolic.input_args());
            Command::new(env!("CARGO_BIN_EXE_nsplit"))
                .args(&args)
                .env("NSPLIT_PYTHON", common::python())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "concurrent request: {}", stderr(&o));
    }
    for out in &outs {
        let got: HashMap<String, Tensor> = npy::read_npz(out).unwrap().into_iter().collect();
        assert_close(&symbolic.expected(), &got, "a batched request");
    }
    let after = server.statistics(model).unwrap();
    assert_eq!(
        after.inference_count - before.inference_count,
        2,
        "{after:?}"
    );
    assert_eq!(
        after.execution_count - before.execution_count,
        1,
        "two requests, one execution: {after:?}"
    );
    // One more execution of a batch of two (the batch-2 requests above made some already).
    let of_two = |s: &nsplit::serve::kserve::ModelStats| {
        s.batches.iter().find(|b| b.0 == 2).map_or(0, |b| b.1)
    };
    assert_eq!(of_two(&after) - of_two(&before), 1, "{before:?} {after:?}");

    // Bad cases: one clear error each, naming the server, and no output file.
    let lenet = &cases[0];
    let out = work.join("never.npz");
    let out_arg = ["--out", out.to_str().unwrap()];
    let down = format!("http://127.0.0.1:{}", nsplit::dev::free_port());
    let with = |more: &[&'static str]| [&out_arg[..], more].concat();
    let o = lenet.run(&down, "all-cloud", &out_arg);
    assert_fails_with(
        &o,
        &format!("cannot connect to the inference server at {down}"),
    );
    let o = lenet.run(&url, "all-cloud", &with(&["--model", "nosuch"]));
    assert_fails_with(
        &o,
        &format!("the inference server at {url} has no model `nosuch`"),
    );
    let o = lenet.run(&url, "all-cloud", &with(&["--model", "tampered"]));
    assert_fails_with(&o, "takes `input` as FP64, but this cut sends FP32");
    // A lone request to the batching model waits in Triton's queue for a partner: it times out.
    let o = symbolic.run(&url, "all-cloud", &with(&["--timeout", "1"]));
    assert_fails_with(
        &o,
        &format!("the inference server at {url} did not answer within 1.000 s"),
    );
    assert!(!out.exists(), "a failed run wrote {}", out.display());

    triton.stop();
    assert!(
        triton.exited(),
        "tritonserver still runs after being stopped"
    );
}

/// Triton's parsed config of a model (`GET /v2/models/NAME/config`).
fn config_of(url: &str, name: &str) -> serde_json::Value {
    let mut r = ureq::get(&format!("{url}/v2/models/{name}/config"))
        .call()
        .unwrap();
    serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap()
}

/// The onnxruntime-platform repository is the Python-backend one with the platform line and
/// without model.py and the CPU instance group (Triton parses the latter above, and its
/// onnxruntime backend is not installable here).
#[test]
fn onnxruntime_configs_differ_from_the_served_python_ones_only_in_the_backend() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets =
        round_trip_free_buckets(work, &[0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e5]);
    let dir = work.join("out");
    let lenet = fixture("lenet.onnx");
    plan_into(&lenet, &dir, Some(&buckets), &["--triton"]);
    let python_repo = work.join("python");
    let o = package_into(&dir, &python_repo, &["--triton-backend", "python"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ort_repo = dir.join("triton");
    let table = SelectionTable::load(&dir).unwrap();
    let mut served = 0;
    for cut in table.cuts.iter().filter(|c| c.tail.is_some()) {
        let name = cut.triton_model.as_ref().unwrap();
        let ort = std::fs::read_to_string(ort_repo.join(name).join("config.pbtxt")).unwrap();
        let py = std::fs::read_to_string(python_repo.join(name).join("config.pbtxt")).unwrap();
        assert!(ort.contains("\nplatform: \"onnxruntime_onnx\"\n"), "{ort}");
        let expected: String = py
            .replace("backend: \"python\"", "platform: \"onnxruntime_onnx\"")
            .lines()
            .filter(|l| !l.starts_with("instance_group"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(ort, expected);
        assert!(!ort_repo.join(name).join("1/model.py").exists());
        assert!(python_repo.join(name).join("1/model.py").exists());
        assert_eq!(
            std::fs::read(ort_repo.join(name).join("1/model.onnx")).unwrap(),
            std::fs::read(dir.join(cut.tail.as_ref().unwrap())).unwrap(),
            "model.onnx is the tail"
        );
        served += 1;
    }
    assert!(served >= 2, "{served} served tails");
    // A later run without --triton leaves the repository the earlier one wrote, names none of
    // its models, and says so.
    plan_into(&lenet, &dir, Some(&buckets), &[]);
    assert!(dir.join("triton").is_dir());
    let table = SelectionTable::load(&dir).unwrap();
    assert!(table.cuts.iter().all(|c| c.triton_model.is_none()));
    assert!(
        table
            .notes
            .iter()
            .any(|n| n.contains("triton/ holds the Triton repository of an earlier run")),
        "{:?}",
        table.notes
    );
}

/// A tail in external-data form keeps its data file beside model.onnx, under the name the tail
/// refers to.
#[test]
fn external_data_travels_with_the_tail() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let buckets = round_trip_free_buckets(work.path(), &[0.01, 1.0, 10.0, 1e5]);
    plan_into(
        &fixture("lenet.onnx"),
        &dir,
        Some(&buckets),
        &["--external-data", "always", "--triton"],
    );
    let table = SelectionTable::load(&dir).unwrap();
    let cut = table.cuts.iter().find(|c| c.id == "all-cloud").unwrap();
    let tail = cut.tail.as_ref().unwrap();
    let folder = dir
        .join("triton")
        .join(cut.triton_model.as_ref().unwrap())
        .join("1");
    assert_eq!(
        std::fs::read(folder.join(format!("{tail}.data"))).unwrap(),
        std::fs::read(dir.join(format!("{tail}.data"))).unwrap()
    );
}

/// Everything on the phone: nothing to serve, and `nsplit package` says so.
#[test]
fn package_of_an_all_mobile_folder_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    plan_into(&fixture("lenet.onnx"), &dir, None, &[]);
    let repo = work.path().join("repo");
    let o = package_into(&dir, &repo, &[]);
    assert_fails_with(&o, "no cut in the selection table has a tail");
    assert!(!repo.exists(), "a refused package left {}", repo.display());
}

/// Two source models with the same file stem would replace each other's folders in a shared
/// repository: the second is refused, and the first model's folder is left as it was.
#[test]
fn package_refuses_to_replace_another_models_folder() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let buckets = round_trip_free_buckets(work, &[0.01, 1.0, 10.0, 1e5]);
    let other = work.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(fixture("resnet_block.onnx"), other.join("lenet.onnx")).unwrap();
    let repo = work.join("repo");
    let mut dirs = vec![];
    for (i, model) in [fixture("lenet.onnx"), other.join("lenet.onnx")]
        .iter()
        .enumerate()
    {
        let dir = work.join(format!("out{i}"));
        plan_into(model, &dir, Some(&buckets), &[]);
        dirs.push(dir);
    }
    let package = |dir: &Path| package_into(dir, &repo, &[]);
    assert!(package(&dirs[0]).status.success());
    let config = repo.join("lenet-all-cloud/config.pbtxt");
    let before = std::fs::read(&config).unwrap();
    assert!(
        package(&dirs[0]).status.success(),
        "the same model again replaces its own"
    );
    let o = package(&dirs[1]);
    assert_fails_with(
        &o,
        "lenet-all-cloud already holds a model that nsplit did not write for",
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);
    let staged: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".nsplit-"))
        .collect();
    assert!(
        staged.is_empty(),
        "a staging folder was left beside the repository"
    );
    // Named apart, both share the repository, and the second's table names its models.
    let o = package_into(&dirs[1], &repo, &["--triton-name", "other lenet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    let theirs = repo.join("other_lenet-all-cloud/config.pbtxt");
    let text = std::fs::read_to_string(&theirs).unwrap();
    assert!(text.contains("name: \"other_lenet-all-cloud\""), "{text}");
    let table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[1].join("selection.json")).unwrap()).unwrap();
    let named: Vec<&str> = table["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["triton_model"].as_str())
        .collect();
    assert!(
        !named.is_empty() && named.iter().all(|n| n.starts_with("other_lenet-")),
        "{named:?}"
    );
}
