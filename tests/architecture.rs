//! The crate is the pipeline it describes: every module may use only the modules before it in
//! [`ORDER`] (docs/design.md, "Modules"), so the stages run one way and no cycle can come back.
//! Read from the sources with `syn`: every `use` tree (groups at any depth, over any number of
//! lines), every path in code and in macro arguments, `super::` and `self::` resolved from the
//! file's place in the module tree, and the crate root's re-exports (`crate::Analysis`).
//! Comments and strings are not code.

use crate::common::root;
use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The library's modules, each allowed to use only those before it. Foundations first (they know
/// nothing of the pipeline), then the stages in the order they run, then the reports, which no
/// stage reads, and the two jobs that run the stages; last the tests' and benchmarks' helpers.
#[rustfmt::skip]
const ORDER: &[&str] = &[
    // foundations
    "guard", "warn", "setting", "tensor", "ops", "proto",
    // stages
    "load", "output", "graph", "shapes", "cost", "analysis", "runtime", "profiler", "cut",
    "plan", "selection", "emit", "verify", "serve", "client",
    // reports, then the jobs
    "report", "split", "job",
    // what the crate's own tests and benchmarks share (feature `dev`)
    "dev",
];

/// The crate's files that are not library modules: the binary and the root (they may use
/// anything).
const NOT_MODULES: &[&str] = &["lib", "main", "flags"];

/// The top-level modules the code of one file refers to.
struct References<'a> {
    /// The file's module path (`["plan", "selection"]`), extended inside inline `mod`s.
    here: Vec<String>,
    /// What the crate root re-exports: `Analysis` -> `analysis`.
    reexports: &'a BTreeMap<String, String>,
    found: BTreeSet<String>,
}

impl References<'_> {
    /// The top-level module a path names, where it starts at `crate`, `super` or `self`.
    fn note(&mut self, segments: &[String]) {
        let root = |name: Option<&String>| {
            name.map(|n| self.reexports.get(n).cloned().unwrap_or_else(|| n.clone()))
        };
        let top = match segments.first().map(String::as_str) {
            Some("crate") => root(segments.get(1)),
            Some("super") => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                match self.here.len().checked_sub(ups) {
                    Some(0) => root(segments.get(ups)),
                    Some(_) => Some(self.here[0].clone()),
                    None => None,
                }
            }
            Some("self") if self.here.is_empty() => root(segments.get(1)),
            Some("self") => Some(self.here[0].clone()),
            _ => None,
        };
        if let Some(top) = top.filter(|t| t != "self" && t != "super") {
            self.found.insert(top);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.note_with(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.note_with(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.note(prefix),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn note_with(&mut self, prefix: &[String], last: &syn::Ident) {
        let mut path = prefix.to_vec();
        path.push(last.to_string());
        self.note(&path);
    }

    /// Paths in a macro's arguments (`format!("{}", crate::report::x())`), which syn keeps as
    /// tokens: every `crate`/`super`/`self` followed by `::`-separated names.
    fn tokens(&mut self, tokens: TokenStream) {
        let flat: Vec<TokenTree> = tokens.into_iter().collect();
        let mut k = 0;
        while k < flat.len() {
            match &flat[k] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(i) if ["crate", "super", "self"].contains(&&*i.to_string()) => {
                    let mut path = vec![i.to_string()];
                    let mut j = k + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (flat.get(j), flat.get(j + 1))
                    {
                        let Some(TokenTree::Ident(next)) = flat.get(j + 2) else {
                            break;
                        };
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        path.push(next.to_string());
                        j += 3;
                    }
                    if path.len() > 1 {
                        self.note(&path);
                    }
                    k = j - 1;
                }
                _ => {}
            }
            k += 1;
        }
    }
}

impl<'ast> Visit<'ast> for References<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut vec![], &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(&segments);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.here.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.here.pop();
    }
}

/// The top-level modules `text` (the file at module path `here`) refers to.
fn references(
    here: &[&str],
    text: &str,
    reexports: &BTreeMap<String, String>,
) -> Result<BTreeSet<String>, String> {
    let file = syn::parse_file(text).map_err(|e| e.to_string())?;
    let mut refs = References {
        here: here.iter().map(|s| s.to_string()).collect(),
        reexports,
        found: BTreeSet::new(),
    };
    refs.visit_file(&file);
    Ok(refs.found)
}

/// What the crate root re-exports by name (`pub use analysis::Analysis;`): name -> module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let file = syn::parse_file(lib).unwrap();
    let mut out = BTreeMap::new();
    for item in &file.items {
        let syn::Item::Use(u) = item else { continue };
        let mut stack = vec![(vec![], &u.tree)];
        while let Some((prefix, tree)) = stack.pop() {
            match tree {
                syn::UseTree::Path(p) => {
                    let mut next: Vec<String> = prefix.clone();
                    next.push(p.ident.to_string());
                    stack.push((next, &p.tree));
                }
                syn::UseTree::Name(n) if !prefix.is_empty() => {
                    out.insert(n.ident.to_string(), prefix[0].clone());
                }
                syn::UseTree::Rename(r) if !prefix.is_empty() => {
                    out.insert(r.rename.to_string(), prefix[0].clone());
                }
                syn::UseTree::Group(g) => {
                    stack.extend(g.items.iter().map(|t| (prefix.clone(), t)));
                }
                _ => {}
            }
        }
    }
    out
}

/// Every Rust file under `path` with its module path below `src/`.
fn rust_files(path: &Path, module: Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.to_path_buf(), module));
        }
        return;
    }
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        let mut m = module.clone();
        if stem != "mod" {
            m.push(stem);
        }
        rust_files(&p, m, out);
    }
}

/// Every top-level module each library module refers to.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = vec![];
    rust_files(&src, vec![], &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, module) in files {
        if module.len() == 1 && NOT_MODULES.contains(&module[0].as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let here: Vec<&str> = module.iter().map(String::as_str).collect();
        let found = references(&here, &text, &reexports)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.entry(module[0].clone()).or_default().extend(found);
    }
    out
}

/// Where `uses` breaks [`ORDER`], one line each.
fn violations(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut problems = vec![];
    for (module, used) in uses {
        let Some(at) = rank(module) else {
            problems.push(format!(
                "src/{module}: not in tests/architecture.rs's ORDER; place it there and in docs/design.md"
            ));
            continue;
        };
        for u in used {
            if u != module && rank(u).is_none_or(|r| r >= at) {
                problems.push(format!(
                    "src/{module} uses crate::{u}, which comes after it in the pipeline ({})",
                    ORDER.join(" -> ")
                ));
            }
        }
    }
    problems
}

#[test]
fn every_module_uses_only_the_modules_before_it() {
    let uses = uses();
    let problems = violations(&uses);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The reading itself works: edges every version of the pipeline has are found.
    assert!(uses["emit"].contains("cut"), "{uses:?}");
    assert!(uses["plan"].contains("cost"), "{uses:?}");
    assert!(uses["profiler"].contains("analysis"), "{uses:?}");
    assert_eq!(uses.len(), ORDER.len(), "{:?}", uses.keys());
    crate::common::check_golden("../docs/modules.md", &module_graph(&uses));
}

/// docs/modules.md: the module graph as the imports draw it (Mermaid), each module over those it
/// uses, in [`ORDER`].
fn module_graph(uses: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut out = String::from(
        "# Module graph\n\nDrawn from the imports by `tests/architecture.rs` (`cargo test --test tests architecture::`, \
         UPDATE_GOLDEN=1 to redraw): an arrow from a module to each module its code uses. Every arrow points up \
         the pipeline (docs/design.md, \"Modules\"); the test fails on one that points down, so there is no \
         cycle.\n\n```mermaid\nflowchart BT\n",
    );
    for module in ORDER {
        for used in ORDER.iter().filter(|u| *u != module) {
            if uses.get(*module).is_some_and(|u| u.contains(*used)) {
                out.push_str(&format!("    {module} --> {used}\n"));
            }
        }
    }
    out.push_str("```\n");
    out
}

fn read(here: &[&str], text: &str) -> Vec<String> {
    let reexports = BTreeMap::from([("Analysis".to_string(), "analysis".to_string())]);
    references(here, text, &reexports)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn a_group_over_several_lines_is_read() {
    let text = "use crate::{\n    cut,\n    tensor::DType,\n};\n";
    assert_eq!(read(&["plan"], text), ["cut", "tensor"]);
}

#[test]
fn names_after_a_nested_group_are_read() {
    let text = "use crate::{graph::{ModelGraph, TensorId}, cost::{self, Features}, emit};\n";
    assert_eq!(read(&["plan"], text), ["cost", "emit", "graph"]);
}

#[test]
fn comments_and_strings_are_not_code() {
    let text = "/// [the job](crate::job)\n\
                fn f() -> &'static str {\n\
                    // crate::serve in a comment\n\
                    let url = \"http://x/crate::report\";\n\
                    let _ = crate::plan::plan(url);\n\
                    \"crate::verify\"\n\
                }\n";
    assert_eq!(read(&["cut"], text), ["plan"]);
}

#[test]
fn super_and_self_resolve_from_the_files_place() {
    let text = "use super::predict::Prediction;\nuse self::inner::X;\n";
    assert_eq!(read(&["plan", "selection"], text), ["plan"]);
    // In a top-level module's file, `super` is the crate root.
    assert_eq!(read(&["cut"], "use super::graph::ModelGraph;\n"), ["graph"]);
    // Inside an inline module, one `super` more.
    let text = "mod tests { use super::super::graph::X; fn f() { super::g(); } }\n";
    assert_eq!(read(&["cut"], text), ["cut", "graph"]);
}

#[test]
fn paths_in_code_macros_and_reexports_are_read() {
    let text = "fn f() {\n\
                    let a = crate::Analysis::run(p);\n\
                    println!(\"{}\", crate::report::format::ms(1.0));\n\
                    let t: crate::tensor::DType = todo!();\n\
                }\n";
    assert_eq!(read(&["cut"], text), ["analysis", "report", "tensor"]);
}

#[test]
fn a_planted_violation_is_reported() {
    let uses = BTreeMap::from([
        ("cost".to_string(), BTreeSet::from(["plan".to_string()])),
        ("plan".to_string(), BTreeSet::from(["cost".to_string()])),
        ("nowhere".to_string(), BTreeSet::new()),
    ]);
    let problems = violations(&uses);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("src/cost uses crate::plan"),
        "{problems:?}"
    );
    assert!(problems[1].contains("src/nowhere: not in"), "{problems:?}");
}

/// Every identifier in a file, with how often it occurs (definitions included).
#[derive(Default)]
struct Idents(BTreeMap<String, usize>);

impl Idents {
    fn walk(&mut self, tokens: TokenStream) {
        for t in tokens {
            match t {
                TokenTree::Ident(i) => *self.0.entry(i.to_string()).or_default() += 1,
                TokenTree::Group(g) => self.walk(g.stream()),
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Idents {
    fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
        *self.0.entry(i.to_string()).or_default() += 1;
    }

    /// Macro arguments are tokens to syn: read every name in them.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.walk(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    /// So are attributes' (`#[arg(default_value = network::DEFAULT_BUCKETS)]`).
    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &a.meta {
            self.walk(list.tokens.clone());
        }
        syn::visit::visit_attribute(self, a);
    }
}

/// The library's public items (functions and methods, types, constants), by name.
#[derive(Default)]
struct PublicItems(Vec<String>);

impl<'ast> Visit<'ast> for PublicItems {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let public = |v: &syn::Visibility| matches!(v, syn::Visibility::Public(_));
        let name = match item {
            syn::Item::Fn(f) if public(&f.vis) => Some(&f.sig.ident),
            syn::Item::Struct(s) if public(&s.vis) => Some(&s.ident),
            syn::Item::Enum(e) if public(&e.vis) => Some(&e.ident),
            syn::Item::Const(c) if public(&c.vis) => Some(&c.ident),
            syn::Item::Static(s) if public(&s.vis) => Some(&s.ident),
            syn::Item::Type(t) if public(&t.vis) => Some(&t.ident),
            syn::Item::Trait(t) if public(&t.vis) => Some(&t.ident),
            _ => None,
        };
        self.0.extend(name.map(|n| n.to_string()));
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if matches!(f.vis, syn::Visibility::Public(_)) {
            self.0.push(f.sig.ident.to_string());
        }
        syn::visit::visit_impl_item_fn(self, f);
    }
}

/// A public item of the library that nothing names but its own definition: dead code rustc
/// cannot flag while every module is `pub`. (Read by name, so a dead item that shares its name
/// with a live one goes unseen; one that is found is surely dead.)
#[test]
fn every_public_item_is_used() {
    let mut sources = vec![];
    for dir in ["src", "tests", "benches", "fixtures/gen"] {
        rust_files(&root().join(dir), vec![dir.to_string()], &mut sources);
    }
    let mut idents = Idents::default();
    let mut public = PublicItems::default();
    for (file, module) in &sources {
        let parsed = syn::parse_file(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        idents.visit_file(&parsed);
        if module[0] == "src" && !(module.len() == 2 && NOT_MODULES.contains(&&*module[1])) {
            public.visit_file(&parsed);
        }
    }
    let mut defined: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &public.0 {
        *defined.entry(name).or_default() += 1;
    }
    let dead: Vec<&str> = defined
        .iter()
        .filter(|(name, &n)| idents.0.get(**name).copied().unwrap_or(0) <= n)
        .map(|(name, _)| *name)
        .collect();
    assert!(
        dead.is_empty(),
        "public items nothing uses (remove them, or use them): {dead:?}"
    );
}

/// Every function's length in lines, by name and file.
struct Lengths<'a> {
    file: &'a Path,
    out: Vec<(usize, String)>,
}

impl Lengths<'_> {
    fn note(&mut self, name: &syn::Ident, block: &syn::Block) {
        use syn::spanned::Spanned;
        let (start, end) = (name.span().start().line, block.span().end().line);
        let file = self.file.strip_prefix(root()).unwrap_or(self.file);
        self.out
            .push((end + 1 - start, format!("{}: fn {name}", file.display())));
    }
}

impl<'ast> Visit<'ast> for Lengths<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.note(&f.sig.ident, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.note(&f.sig.ident, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }
}

/// No function of the crate is longer than this many lines; a longer one does several things,
/// each of which deserves a name.
const MAX_FN_LINES: usize = 120;

/// The functions allowed over [`MAX_FN_LINES`]: tables of data, not steps (`grid` lists the
/// profiler's configurations). The list may only shrink: a function that leaves it must be
/// taken out, and no other may join it.
const STILL_LONG: &[&str] = &["src/profiler/grid.rs: fn grid"];

#[test]
fn no_function_is_over_120_lines() {
    let mut files = vec![];
    rust_files(&root().join("src"), vec![], &mut files);
    let mut long = BTreeMap::new();
    for (file, _) in &files {
        let parsed = syn::parse_file(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut lengths = Lengths { file, out: vec![] };
        lengths.visit_file(&parsed);
        long.extend(
            lengths
                .out
                .into_iter()
                .filter(|(n, _)| *n > MAX_FN_LINES)
                .map(|(n, f)| (f, n)),
        );
    }
    let new: Vec<String> = long
        .iter()
        .filter(|(f, _)| !STILL_LONG.contains(&f.as_str()))
        .map(|(f, n)| format!("{f}: {n} lines"))
        .collect();
    assert!(
        new.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        new.join("\n")
    );
    let split: Vec<&&str> = STILL_LONG
        .iter()
        .filter(|f| !long.contains_key(**f))
        .collect();
    assert!(
        split.is_empty(),
        "no longer over {MAX_FN_LINES} lines (take them out of STILL_LONG): {split:?}"
    );
}
