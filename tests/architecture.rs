//! The module graph stays one-way (ARCHITECTURE.md): no cycle between the top-level modules of
//! `src/`, leaves import nothing of the gateway above them, and only the binary knows the
//! simulator crate. Read from the source text, so it runs in `cargo test` with no extra tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules at the bottom of the graph and the only gateway modules each may use. `config` is the
/// validated configuration every layer reads, `error` the plain error kinds; the rest import
/// nothing of the gateway.
const LEAVES: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("clock", &[]),
    ("error", &[]),
    ("eventstream", &[]),
    ("shutdown", &[]),
    ("logging", &[]),
    ("metrics", &["error"]),
    ("aws", &["config"]),
];

/// The crate root and the binary wire modules together; they are not part of the graph.
const ROOTS: &[&str] = &["lib", "main", "demo"];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// Every top-level module a file names through `crate::`: paths (`crate::a::b`) and the first
/// segment of each entry of a grouped import (`use crate::{a::b, c}`), nested groups included.
fn referenced_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `bedrock_balancer_crate::` or `$crate::` are not this crate's paths.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut expect_ident = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_ident = true,
                    c if c.is_whitespace() => {}
                    _ if expect_ident && depth == 0 => {
                        let name = ident_at(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            found.insert(name.to_owned());
                        }
                        expect_ident = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

fn top_module(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// module -> module it uses -> files that use it.
fn module_graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(f))
        .filter(|m| !ROOTS.contains(&m.as_str()))
        .collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = top_module(file);
        if ROOTS.contains(&from.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let entry = graph.entry(from.clone()).or_default();
        for to in referenced_modules(&text) {
            if to != from && modules.contains(&to) {
                let shown = file.strip_prefix(src()).unwrap().display().to_string();
                entry.entry(to).or_default().insert(shown);
            }
        }
    }
    graph
}

/// One cycle of the graph, as the modules along it (first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| p == node).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

fn describe(graph: &Graph, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|pair| {
            let files = &graph[&pair[0]][&pair[1]];
            format!("{} -> {} (in {files:?})", pair[0], pair[1])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the scan found the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "a cycle between top-level modules:\n{}",
            describe(&graph, &cycle)
        );
    }
}

#[test]
fn leaves_import_nothing_of_the_gateway() {
    let graph = module_graph();
    for (leaf, allowed) in LEAVES {
        let used = graph.get(*leaf).cloned().unwrap_or_default();
        for (module, files) in used {
            assert!(
                allowed.contains(&module.as_str()),
                "leaf `{leaf}` uses `{module}` in {files:?}; it may use only {allowed:?}"
            );
        }
    }
}

#[test]
fn only_the_binary_knows_the_simulator() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let top = top_module(&file);
        if top == "main" || top == "demo" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("bedrock_balancer_sim"),
            "{} uses the simulator crate; only the binary may",
            file.display()
        );
    }
    let sim_manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/Cargo.toml"))
            .unwrap();
    assert!(
        !sim_manifest.contains("bedrock-balancer ") && !sim_manifest.contains("bedrock-balancer="),
        "the simulator must not depend on the gateway crate"
    );
}

/// The checker itself: it must see grouped and nested imports, and find a cycle that is there.
#[test]
fn the_checker_sees_grouped_imports_and_cycles() {
    let text = "use crate::a::X;\nuse crate::{b::{Y, Z}, c, self as me};\nlet _ = crate::d::f();\n$crate::e::g; other_crate::h";
    let found: Vec<String> = referenced_modules(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d"]);

    let edge = |from: &str, to: &str| {
        (
            from.to_owned(),
            BTreeMap::from([(to.to_owned(), BTreeSet::from(["x.rs".to_owned()]))]),
        )
    };
    let acyclic: Graph = [edge("a", "b"), edge("b", "c")].into_iter().collect();
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic: Graph = [edge("a", "b"), edge("b", "c"), edge("c", "a")]
        .into_iter()
        .collect();
    let cycle = find_cycle(&cyclic).unwrap();
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}
