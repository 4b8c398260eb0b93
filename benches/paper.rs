//! Regenerates the tables of docs/paper-reproduction.md: the model zoo (shapes only) is written
//! into target/zoo-shapes, planned for the paper's networks and objectives, and the doc's
//! generated section is replaced.
//!
//! ```text
//! cargo bench --bench paper
//! ```

use nsplit::dev::paper as report;

use std::process::Command;

fn main() {
    let root = nsplit::dev::root();
    let zoo = root.join("target/zoo-shapes");
    let status = Command::new(env!("CARGO_BIN_EXE_nsplit-fixtures"))
        .args(["--zoo", zoo.to_str().unwrap(), "--shapes-only"])
        .status()
        .unwrap();
    assert!(status.success(), "the zoo generator failed");
    let tables = report::tables(&zoo);
    let doc = root.join("docs/paper-reproduction.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let new = report::with_tables(&text, &tables).expect("the doc's generated-section markers");
    std::fs::write(&doc, new).unwrap();
    println!("rewrote {}", doc.display());
    let dir = root.join("docs/figures");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, svg) in report::figures(&zoo) {
        std::fs::write(dir.join(&name), svg).unwrap();
        println!("wrote docs/figures/{name}");
    }
}
