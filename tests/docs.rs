//! Every transcript in README.md and docs/*.md is what the tool prints: each ```` ```console ````
//! block is run, command by command (`$ nsplit ...`), in a scratch folder where `fixtures/`,
//! `profiles/` and `corpus/` are the repository's, and what each command prints (stdout; stderr
//! for a command that fails) is compared line for line with the lines under it. A line `...`
//! stands for any number of lines. `UPDATE_GOLDEN=1` rewrites the transcripts from the tool's
//! output (keeping each `...` and as many lines around it), for the diff to be read.
//!
//! A `$ nsplit` line outside a console block would escape the check, so none is allowed.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One command of a transcript and the lines shown under it.
struct Step {
    /// Line index of the `$ ` line in the file.
    line: usize,
    command: String,
    shown: Vec<String>,
}

/// The markdown files whose transcripts are checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The console blocks of `text`, each a list of steps.
fn transcripts(text: &str, file: &Path) -> Vec<Vec<Step>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = vec![];
    let mut fence: Option<(String, Vec<Step>)> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            match fence.take() {
                Some((kind, steps)) => {
                    if kind == "console" {
                        blocks.push(steps);
                    }
                }
                None => fence = Some((trimmed.trim_start_matches('`').trim().to_string(), vec![])),
            }
            continue;
        }
        match &mut fence {
            Some((kind, steps)) if kind == "console" => {
                if let Some(command) = line.strip_prefix("$ ") {
                    steps.push(Step {
                        line: i,
                        command: command.to_string(),
                        shown: vec![],
                    });
                } else {
                    let step = steps.last_mut().unwrap_or_else(|| {
                        panic!(
                            "{}:{}: a console block starts with a `$ ` command",
                            file.display(),
                            i + 1
                        )
                    });
                    step.shown.push(line.to_string());
                }
            }
            _ => assert!(
                !trimmed.starts_with("$ nsplit"),
                "{}:{}: a transcript outside a ```console block is not checked: {line}",
                file.display(),
                i + 1
            ),
        }
    }
    blocks
}

/// Whether `got` is what `shown` shows: line for line (trailing spaces aside), `...` standing
/// for any number of lines.
fn matches(shown: &[String], got: &[String]) -> bool {
    match shown.split_first() {
        None => got.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=got.len()).any(|skip| matches(rest, &got[skip..]))
        }
        Some((first, rest)) => got
            .split_first()
            .is_some_and(|(g, more)| first.trim_end() == g.trim_end() && matches(rest, more)),
    }
}

/// `got` cut as `shown` is: where `shown` elides, the same number of lines before and after.
fn elided_like(shown: &[String], got: &[String]) -> Vec<String> {
    let Some(at) = shown.iter().position(|l| l.trim() == "...") else {
        return got.to_vec();
    };
    let after = shown.len() - at - 1;
    if got.len() <= at + after {
        return got.to_vec();
    }
    let mut out = got[..at].to_vec();
    out.push("...".into());
    out.extend_from_slice(&got[got.len() - after..]);
    out
}

/// A scratch folder that sees the repository's models and profiles by their relative paths.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fixtures", "profiles", "corpus"] {
        let target = root().join(name);
        if target.exists() {
            std::os::unix::fs::symlink(&target, dir.path().join(name)).unwrap();
        }
    }
    dir
}

/// Run one transcript command in `dir`; its printed lines.
fn run(command: &str, dir: &Path) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(
        words.first(),
        Some(&"nsplit"),
        "transcripts run nsplit only: {command}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_nsplit"))
        .args(&words[1..])
        .current_dir(dir)
        .env("NSPLIT_PYTHON", python())
        .output()
        .unwrap();
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_transcript_in_the_docs_is_what_the_tool_prints() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let needs_corpus = |c: &str| c.contains("corpus/");
    let have_corpus = corpus().is_some();
    let mut checked = 0;
    let mut failures = vec![];
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let blocks = transcripts(&text, &file);
        if blocks.is_empty() {
            continue;
        }
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Replacements from the bottom up, so that line numbers above stay valid.
        let mut rewrites: Vec<(usize, usize, Vec<String>)> = vec![];
        // One scratch folder per file: a later command reads what an earlier one wrote.
        let dir = scratch();
        for step in blocks.iter().flatten() {
            if needs_corpus(&step.command) && !have_corpus {
                continue;
            }
            let got = run(&step.command, dir.path());
            checked += 1;
            if matches(&step.shown, &got) {
                continue;
            }
            if update {
                rewrites.push((
                    step.line + 1,
                    step.shown.len(),
                    elided_like(&step.shown, &got),
                ));
            } else {
                failures.push(format!(
                    "{}:{}: `{}` printed\n{}\n--- the document shows ---\n{}",
                    file.display(),
                    step.line + 1,
                    step.command,
                    got.join("\n"),
                    step.shown.join("\n")
                ));
            }
        }
        if update && !rewrites.is_empty() {
            for (at, len, new) in rewrites.into_iter().rev() {
                lines.splice(at..at + len, new);
            }
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "{} transcript(s) differ from what the tool prints (UPDATE_GOLDEN=1 rewrites them; read the diff):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(checked >= 10, "only {checked} transcript commands found");
}

#[test]
fn the_transcript_reader_matches_and_elides() {
    let s = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(matches(&s(&["a", "...", "d"]), &s(&["a", "b", "c", "d"])));
    assert!(matches(&s(&["a", "..."]), &s(&["a"])));
    assert!(!matches(&s(&["a", "...", "d"]), &s(&["a", "b", "c"])));
    assert!(!matches(&s(&["a", "b"]), &s(&["a", "c"])));
    assert_eq!(
        elided_like(&s(&["a", "...", "z"]), &s(&["1", "2", "3", "4"])),
        s(&["1", "...", "4"])
    );
    let md = "```console\n$ nsplit x\nout\n...\n```\n```sh\nnsplit y\n```\n";
    let blocks = transcripts(md, Path::new("x.md"));
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0][0].shown, s(&["out", "..."]));
}

/// The README's lines on accuracy are what docs/accuracy.md and docs/accuracy-onnxruntime.md
/// (written by the accuracy bench, which rewrites its line too) measured: the median, the worst
/// model and the machine.
#[test]
fn the_readme_quotes_the_accuracy_bench() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (file, marker, runtime) in [
        ("docs/accuracy.md", "accuracy", "tract"),
        (
            "docs/accuracy-onnxruntime.md",
            "accuracy-onnxruntime",
            "onnxruntime",
        ),
    ] {
        let doc = std::fs::read_to_string(root().join(file)).unwrap();
        let median = doc
            .lines()
            .find_map(|l| l.strip_prefix("Median absolute error "))
            .and_then(|l| l.split('%').next())
            .unwrap_or_else(|| panic!("{file} states its median"));
        let whole = doc.split("## Whole model").nth(1).unwrap();
        let whole = whole.split("## ").next().unwrap();
        let worst = whole
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| model"))
            .filter_map(|l| {
                l.split('|')
                    .nth(4)?
                    .trim()
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .ok()
            })
            .map(f64::abs)
            .fold(0.0, f64::max);
        let cpu = doc
            .lines()
            .find_map(|l| l.strip_prefix("Profile: "))
            .and_then(|l| l.split(" on ").nth(1))
            .and_then(|l| l.split(',').next())
            .unwrap_or_else(|| panic!("{file} names its machine"));
        let line = readme
            .split(&format!("<!-- {marker} -->"))
            .nth(1)
            .and_then(|l| l.split(&format!("<!-- /{marker} -->")).next())
            .unwrap_or_else(|| panic!("README.md has the {marker} line between its markers"));
        assert_eq!(
            line,
            format!(
                "on the machine last measured ({cpu}), median error {median}% against {runtime}'s measured time, every model within {worst:.1}%"
            ),
            "{file}"
        );
    }
}
