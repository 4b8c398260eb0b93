//! docs/paper-reproduction.md's tables are generated: regenerate them from a shapes-only zoo
//! (plans depend on shapes, not weight values, so this is the same computation as
//! `cargo bench --bench paper`) and compare with the committed doc: every scenario, the paper's
//! transfer model and server and nsplit's realistic one.

use crate::common;

use nsplit::dev::paper as report;

#[test]
fn paper_reproduction_tables_are_current() {
    let zoo = tempfile::tempdir().unwrap();
    crate::common::succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_nsplit-fixtures")).args([
            "--zoo",
            zoo.path().to_str().unwrap(),
            "--shapes-only",
        ]),
    );
    let tables = report::tables(zoo.path());
    let figures = report::figures(zoo.path());
    let dir = common::root().join("docs/figures");
    let path = common::root().join("docs/paper-reproduction.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let new = report::with_tables(&doc, &tables).expect("the doc's generated-section markers");
        std::fs::write(&path, new).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for (name, svg) in &figures {
            std::fs::write(dir.join(name), svg).unwrap();
        }
        return;
    }
    for (name, svg) in &figures {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            committed == *svg,
            "docs/figures/{name} is stale: run this test with UPDATE_GOLDEN=1 (or `cargo bench --bench paper`) and look at it"
        );
    }
    let start = doc.find(report::BEGIN).expect("begin marker in the doc");
    let end = doc.find(report::END).expect("end marker in the doc") + report::END.len();
    let committed = &doc[start..end];
    if committed != tables.trim_end() {
        let line = committed
            .lines()
            .zip(tables.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "docs/paper-reproduction.md is stale at generated line {}:\n  doc:  {:?}\n  code: {:?}\nrun `cargo bench --bench paper` (or this test with UPDATE_GOLDEN=1) and read the diff",
            line + 1,
            committed.lines().nth(line),
            tables.lines().nth(line)
        );
    }
}
