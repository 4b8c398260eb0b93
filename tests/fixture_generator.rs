//! The committed fixtures are exactly what the generator writes: rerunning it changes no byte.

use crate::common::root;
use std::process::Command;

#[test]
fn generator_reproduces_committed_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    crate::common::succeed(
        Command::new(env!("CARGO_BIN_EXE_nsplit-fixtures"))
            .arg("--out")
            .arg(dir.path()),
    );
    let mut compared = 0;
    for sub in ["", "bad"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let name = path.file_name().unwrap();
            let committed = root().join("fixtures").join(sub).join(name);
            let fresh = std::fs::read(&path).unwrap();
            let kept = std::fs::read(&committed)
                .unwrap_or_else(|e| panic!("{} not committed: {e}", committed.display()));
            assert!(fresh == kept, "{} differs from what the generator writes now; regenerate with `cargo run --bin nsplit-fixtures`", committed.display());
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} files generated");
}
