//! The repository itself works on a machine that has never seen it: nothing tracked points into
//! one machine's folders, and nothing tracked is a symbolic link (a committed `.venv` link once
//! broke every fresh clone's CI).

use crate::common::root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Folders that hold one machine's files. Spelt in pieces so that this file does not match.
fn machine_folders() -> Vec<String> {
    ["work", "home", "root", "Users", "mnt/c"]
        .iter()
        .map(|d| format!("/{d}/"))
        .collect()
}

/// The tracked files as (mode, path): `git ls-files -s` where this is a git checkout, else every
/// file under the root outside the folders that are never tracked.
fn tracked_files() -> Vec<(String, PathBuf)> {
    let out = Command::new("git")
        .args(["ls-files", "-s", "-z"])
        .current_dir(root())
        .output();
    if let Some(out) = out.ok().filter(|o| o.status.success()) {
        return out
            .stdout
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = String::from_utf8_lossy(e);
                let (meta, path) = e
                    .split_once('\t')
                    .expect("git ls-files -s: mode sha stage\\tpath");
                let mode = meta.split(' ').next().unwrap_or_default().to_string();
                (mode, root().join(path))
            })
            .collect();
    }
    eprintln!(
        "*** not a git checkout: checking every file under {} ***",
        root().display()
    );
    let mut files = vec![];
    walk(&root(), &mut files);
    files
}

fn walk(dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if [".git", "target", "corpus", ".venv", "dist"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            files.push(("120000".into(), path));
        } else if kind.is_dir() {
            walk(&path, files);
        } else {
            files.push(("100644".into(), path));
        }
    }
}

#[test]
fn no_tracked_symbolic_links() {
    let links: Vec<_> = tracked_files()
        .into_iter()
        .filter(|(mode, _)| mode == "120000")
        .map(|(_, p)| p.strip_prefix(root()).unwrap_or(&p).display().to_string())
        .collect();
    assert!(
        links.is_empty(),
        "symbolic links are tracked (they dangle on other machines): {links:?}"
    );
}

#[test]
fn no_absolute_path_of_a_machine_in_tracked_files() {
    let folders = machine_folders();
    let mut hits = vec![];
    let files = tracked_files();
    assert!(
        files.len() > 50,
        "found only {} files: is this the repository?",
        files.len()
    );
    for (mode, path) in files {
        if mode == "120000" {
            continue; // reported by no_tracked_symbolic_links
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // Models and other binaries are searched too: an absolute external-data path is as
        // broken on another machine as one in a script.
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if let Some(f) = folders.iter().find(|f| line.contains(f.as_str())) {
                let rel = path
                    .strip_prefix(root())
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                hits.push(format!("{rel}:{}: {f}", n + 1));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "absolute paths of one machine in tracked files:\n{}",
        hits.join("\n")
    );
}

#[test]
fn venv_is_ignored_in_every_form() {
    // `/.venv/` matches only a folder; a link named .venv got committed past it once.
    for probe in [".venv", ".venv/bin/python"] {
        let out = Command::new("git")
            .args(["check-ignore", "--no-index", "-q", probe])
            .current_dir(root())
            .status();
        match out {
            Ok(s) if s.code() == Some(128) || s.code().is_none() => {
                eprintln!("*** not a git checkout: .gitignore not checked ***");
                return;
            }
            Ok(s) => assert!(s.success(), "{probe} is not ignored by .gitignore"),
            Err(e) => {
                eprintln!("*** git not found ({e}): .gitignore not checked ***");
                return;
            }
        }
    }
}
