//! What the serving tests share: a model split for serving (`Case`), the main job and
//! `nsplit package` run for them, and comparing what the server answered with the original's.

use super::*;
use nsplit::runtime::npy;
use nsplit::runtime::{Runtime, Verifier};
use nsplit::selection::SelectionTable;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use tract_onnx::prelude::Tensor;

/// One model split for serving: its output folder and what its inputs are.
pub struct Case {
    pub name: &'static str,
    pub model: PathBuf,
    pub dir: PathBuf,
    /// (graph input, .npy file, value).
    pub inputs: Vec<(String, PathBuf, Tensor)>,
}

impl Case {
    pub fn new(
        name: &'static str,
        model: PathBuf,
        shapes: &[&str],
        work: &Path,
        seed: u64,
    ) -> Case {
        let dir = work.join(name);
        let a = analyse(&model, shapes);
        let values = nsplit::runtime::random_inputs(&a.graph, &a.shapes, None, seed).unwrap();
        let inputs = a
            .graph
            .inputs
            .iter()
            .map(|&t| {
                let tensor_name = a.graph.tensor(t).name.clone();
                let value = values[&tensor_name].clone();
                let file = work.join(format!("{name}.{tensor_name}.npy"));
                npy::write_npy(&file, &value).unwrap();
                (tensor_name, file, value)
            })
            .collect();
        Case {
            name,
            model,
            dir,
            inputs,
        }
    }

    pub fn input_args(&self) -> Vec<String> {
        self.inputs
            .iter()
            .flat_map(|(n, f, _)| ["--input".to_string(), format!("{n}={}", f.display())])
            .collect()
    }

    /// The original's outputs, run here.
    pub fn expected(&self) -> HashMap<String, Tensor> {
        let values: HashMap<String, Tensor> = self
            .inputs
            .iter()
            .map(|(n, _, v)| (n.clone(), v.clone()))
            .collect();
        Runtime::pick(Verifier::Auto)
            .unwrap()
            .run(&self.model, &values)
            .unwrap()
    }

    pub fn table(&self) -> SelectionTable {
        SelectionTable::load(&self.dir).unwrap()
    }

    /// `nsplit run` of cut `id`, with extra arguments.
    pub fn run(&self, url: &str, id: &str, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec![
            "run".into(),
            self.dir.display().to_string(),
            "--server".into(),
            url.into(),
            "--cut".into(),
            id.into(),
        ];
        args.extend(self.input_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nsplit(&args)
    }

    /// Run cut `id` on the server and compare every original output with the original's.
    pub fn check_cut(&self, url: &str, id: &str, work: &Path) {
        let out = work.join(format!("{}.{id}.npz", self.name));
        let o = self.run(url, id, &["--out", out.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{} cut {id}: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        let got: HashMap<String, Tensor> = npy::read_npz(&out).unwrap().into_iter().collect();
        assert_close(&self.expected(), &got, &format!("{} cut {id}", self.name));
        eprintln!(
            "{} cut {id}:\n{}",
            self.name,
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

pub fn assert_close(expected: &HashMap<String, Tensor>, got: &HashMap<String, Tensor>, what: &str) {
    for (name, e) in expected {
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no output `{name}` (got {:?})", got.keys()));
        assert_eq!(g.shape(), e.shape(), "{what}: `{name}`");
        let (e, g) = (e.cast_to::<f32>().unwrap(), g.cast_to::<f32>().unwrap());
        let (e, g) = (
            e.to_plain_array_view::<f32>().unwrap(),
            g.to_plain_array_view::<f32>().unwrap(),
        );
        for (i, (a, b)) in e.iter().zip(g.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "{what}: `{name}`[{i}] is {b}, the original computes {a}"
            );
        }
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn nsplit_ok(args: &[&str]) -> Output {
    let o = nsplit(args);
    assert!(o.status.success(), "nsplit {args:?}: {}", stderr(&o));
    o
}

/// The main job on `model` into `dir` over the buckets file, unverified, with `extra` arguments.
pub fn plan_into(model: &Path, dir: &Path, buckets: Option<&Path>, extra: &[&str]) {
    let mut args = vec![
        model.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--no-verify",
    ];
    if let Some(b) = buckets {
        args.extend(["--buckets", b.to_str().unwrap()]);
    }
    args.extend(extra);
    nsplit_ok(&args);
}

/// `nsplit package DIR --triton REPO` with `extra` arguments.
pub fn package_into(dir: &Path, repo: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "package",
        dir.to_str().unwrap(),
        "--triton",
        repo.to_str().unwrap(),
    ];
    args.extend(extra);
    nsplit(&args)
}
