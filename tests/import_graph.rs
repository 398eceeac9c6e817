//! The crate's files import each other without cycles, and no lower layer
//! imports a higher one (shared/ARCHITECTURE.md: http → admission /
//! directory / engine → store → nothing of ours). Read from the sources
//! themselves: every `use` and every `crate::`/`super::`/`self::` path outside
//! comments and unit tests, resolved to the file that defines it. A `mod x;`
//! declaration is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `src/`, by module path (`core/engine/place`).
fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                dirs.push(e);
            } else if e.extension().is_some_and(|x| x == "rs") {
                let rel = e.strip_prefix(root).unwrap().with_extension("");
                let mut m: Module = rel.iter().map(|s| s.to_string_lossy().into()).collect();
                if matches!(m.last().map(String::as_str), Some("mod" | "lib")) {
                    m.pop();
                }
                out.insert(m, e);
            }
        }
    }
    out
}

/// The source without comments, string literals and `#[cfg(test)]` modules.
fn code(src: &str) -> String {
    let cut = src.find("#[cfg(test)]\nmod tests").unwrap_or(src.len());
    let src = &src[..cut];
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i = src[i..].find("*/").map_or(b.len(), |j| i + j + 2);
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i = src[i + 3..].find('\'').map_or(b.len(), |j| i + 3 + j + 1);
            out.push_str("' '");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
            out.push_str("' '");
        } else if b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#\"") {
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let from = i + 2 + hashes;
            i = src[from..]
                .find(&close)
                .map_or(b.len(), |j| from + j + close.len());
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let t = tree.split(" as ").next().unwrap_or("").trim();
        return vec![t.to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// The paths a file names: its `use` trees and inline `crate::`/`super::` paths.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The `use` trees, and the code around them for the inline paths.
    let mut inline = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(k) = rest.find("use ") {
        let before = rest[..k].chars().last();
        let after = &rest[k + 4..];
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
            let end = after.find(';').unwrap_or(after.len());
            out.extend(expand(&after[..end]));
            inline.push_str(&rest[..k]);
            rest = &after[end..];
        } else {
            inline.push_str(&rest[..k + 4]);
            rest = after;
        }
    }
    inline.push_str(rest);
    let code = inline.as_str();
    let bytes = code.as_bytes();
    for head in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(head) {
            let at = from + k;
            from = at + head.len();
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':')
            {
                continue;
            }
            let len = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            out.push(code[at..at + len].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The file module a path names, seen from module `from`.
fn resolve(path: &str, from: &Module, all: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Module = match *segs.first()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    segs.remove(0);
    while segs.first() == Some(&"super") {
        base.pop();
        segs.remove(0);
    }
    let full: Module = base
        .into_iter()
        .chain(segs.iter().map(|s| s.to_string()))
        .collect();
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| !m.is_empty() && all.contains_key(m))
}

/// Modules declared `#[cfg(test)] mod x;`: unit tests in a file of their own.
fn test_modules(all: &BTreeMap<Module, PathBuf>) -> BTreeSet<Module> {
    let mut out = BTreeSet::new();
    for (m, file) in all {
        let src = fs::read_to_string(file).unwrap();
        let mut rest = src.as_str();
        while let Some(k) = rest.find("#[cfg(test)]") {
            rest = rest[k + "#[cfg(test)]".len()..].trim_start();
            let decl = rest.strip_prefix("mod ").and_then(|r| r.split_once(';'));
            if let Some((name, _)) = decl.filter(|(n, _)| !n.contains('{')) {
                let mut child = m.clone();
                child.push(name.trim().to_string());
                out.insert(child);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = modules(&root);
    for t in test_modules(&all) {
        all.remove(&t);
    }
    let mut edges = BTreeMap::new();
    for (m, file) in &all {
        let src = code(&fs::read_to_string(file).unwrap());
        let deps: BTreeSet<Module> = paths(&src)
            .iter()
            .filter_map(|p| resolve(p, m, &all))
            .filter(|d| d != m)
            .collect();
        edges.insert(m.clone(), deps);
    }
    edges
}

fn name(m: &Module) -> String {
    m.join("/")
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 50, "read {} files", g.len());
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let members: BTreeSet<&Module> = c.iter().collect();
            let arrows: Vec<String> = c
                .iter()
                .map(|m| {
                    let to: Vec<String> = g[m]
                        .iter()
                        .filter(|d| members.contains(d))
                        .map(name)
                        .collect();
                    format!("{} -> {}", name(m), to.join(", "))
                })
                .collect();
            arrows.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", text.join("\n"));
}

/// Layers that must not import the ones named after them.
const BELOW: &[(&str, &[&str])] = &[
    (
        "core/trunks",
        &[
            "core/engine",
            "core/http",
            "core/admission",
            "core/directory",
        ],
    ),
    (
        "core/store",
        &[
            "core/events",
            "core/webhooks",
            "core/engine",
            "core/http",
            "core/admission",
            "core/directory",
            "core/cluster",
            "core/journal",
        ],
    ),
    (
        "core/events",
        &[
            "core/webhooks",
            "core/engine",
            "core/http",
            "core/admission",
            "core/directory",
        ],
    ),
    (
        "core/cluster",
        &[
            "core/http",
            "core/admission",
            "core/directory",
            "core/engine",
            "core/webhooks",
        ],
    ),
    (
        "core/admission",
        &[
            "core/http",
            "core/engine",
            "core/directory",
            "core/webhooks",
        ],
    ),
    ("core/directory", &["core/http", "core/webhooks"]),
    (
        "core/engine",
        &[
            "core/http",
            "core/admission",
            "core/directory",
            "core/cluster",
            "core/webhooks",
        ],
    ),
    (
        "core/webhooks",
        &[
            "core/http",
            "core/engine",
            "core/admission",
            "core/directory",
            "core/cluster",
        ],
    ),
    ("core/gcra", &["core"]),
    ("core/log", &["core"]),
];

#[test]
fn no_lower_layer_imports_a_higher_one() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, deps) in &g {
        let from_name = name(from);
        for (layer, above) in BELOW {
            if from_name != *layer && !from_name.starts_with(&format!("{layer}/")) {
                continue;
            }
            for d in deps {
                let d_name = name(d);
                let hit = above.iter().any(|a| {
                    (d_name == *a || d_name.starts_with(&format!("{a}/")))
                        && !(d_name == *layer || d_name.starts_with(&format!("{layer}/")))
                        && !(*a == "core" && (d_name == "core" || d_name == from_name))
                });
                if hit {
                    wrong.push(format!("{from_name} -> {d_name}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "lower layers importing higher ones:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn use_trees_are_read_whole() {
    // The reader itself: nested groups, `self`, renames and inline paths.
    let p = paths("use super::{a, b::{c, self}, d as e};\nfn f() { crate::x::y(); }");
    assert_eq!(
        p,
        [
            "super::a",
            "super::b::c",
            "super::b",
            "super::d",
            "crate::x::y"
        ]
    );
    let c = code("// crate::a\nlet s = \"crate::b\"; /* super::c */ crate::d");
    assert_eq!(paths(&c), ["crate::d"]);
    // Char literals are not strings; lifetimes are neither.
    let c = code("let q = '\"'; let e = '\\''; fn f<'a>(x: &'a str) { crate::e::f(); }");
    assert_eq!(paths(&c), ["crate::e::f"]);
}
