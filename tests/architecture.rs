//! The crate is the pipeline it describes: every module may use only the modules before it in
//! [`ORDER`] (docs/design.md, "Modules"), so the stages run one way and no cycle can come back.
//! Read from the sources: each `crate::<module>` path in a module's files, comments left out.

use crate::common::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The library's modules, each allowed to use only those before it. Foundations first (they know
/// nothing of the pipeline), then the stages in the order they run, then the reports, which no
/// stage reads, and the two jobs that run the stages; last the tests' and benchmarks' helpers.
#[rustfmt::skip]
const ORDER: &[&str] = &[
    // foundations
    "guard", "warn", "tensor", "ops", "proto",
    // stages
    "load", "output", "graph", "shapes", "runtime", "cost", "cut", "plan", "emit", "verify",
    "serve",
    // reports, then the jobs
    "report", "split", "job",
    // what the crate's own tests and benchmarks share (feature `dev`)
    "dev",
];

/// `crate::Analysis` holds load, graph, shapes and cost: usable from cost on.
const ANALYSIS_FROM: &str = "cost";

/// Every top-level module each library module refers to.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        // The binary (main.rs, flags.rs) and the crate root may use anything.
        if ["lib", "main", "flags"].contains(&stem.as_str()) {
            continue;
        }
        let used = out.entry(stem).or_default();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            used.extend(referenced_modules(&text));
        }
    }
    out
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return if path.extension().is_some_and(|e| e == "rs") {
            vec![path.to_path_buf()]
        } else {
            vec![]
        };
    }
    let mut files = vec![];
    for entry in std::fs::read_dir(path).unwrap() {
        files.extend(rust_files(&entry.unwrap().path()));
    }
    files
}

/// The first segment of every `crate::` path in `text` (groups `crate::{a, b::c}` included),
/// outside comments.
fn referenced_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_modules_before_it() {
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let uses = uses();
    let mut problems = vec![];
    for (module, used) in &uses {
        let Some(at) = rank(module) else {
            problems.push(format!(
                "src/{module}: not in tests/architecture.rs's ORDER; place it there and in docs/design.md"
            ));
            continue;
        };
        for u in used {
            let allowed = match u.as_str() {
                "self" => true,
                "Analysis" => at >= rank(ANALYSIS_FROM).unwrap(),
                other => rank(other).is_some_and(|r| r < at) || other == module,
            };
            if !allowed {
                problems.push(format!(
                    "src/{module} uses crate::{u}, which comes after it in the pipeline ({})",
                    ORDER.join(" -> ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The reading itself works: edges every version of the pipeline has are found.
    assert!(uses["emit"].contains("cut"), "{uses:?}");
    assert!(uses["plan"].contains("cost"), "{uses:?}");
    assert_eq!(uses.len(), ORDER.len(), "{:?}", uses.keys());
}

#[test]
fn module_references_are_read_from_paths_groups_and_not_comments() {
    let text = "use crate::graph::{ModelGraph, TensorId};\n\
                use crate::{cut, tensor::DType};\n\
                // crate::job in a comment\n\
                let x = crate::plan::plan(a); // and crate::serve\n";
    let found: Vec<String> = referenced_modules(text).into_iter().collect();
    assert_eq!(found, ["cut", "graph", "plan", "tensor"]);
}
