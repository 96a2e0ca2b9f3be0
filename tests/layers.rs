//! The layering the README promises, read from the source: the modules of `src/` import each
//! other without a circle (lower layers never import the actors), and the protocol core is
//! sans-IO (no tokio, no actix). Comments are skipped: a doc link is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `//` comments (doc comments included).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read file");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::NAME` paths in `code`: the top-level modules it uses.
fn used_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn the_modules_import_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Top-level module -> the top-level modules its files use.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // The binaries and the crate root sit above every layer.
        if matches!(top.as_str(), "main" | "lib" | "bin") {
            continue;
        }
        let uses = used_modules(&code(file));
        graph
            .entry(top.clone())
            .or_default()
            .extend(uses.into_iter().filter(|m| *m != top));
    }
    assert!(
        graph.contains_key("actors") && graph.contains_key("hub"),
        "{graph:?}"
    );
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        false
    };
    let mut circles = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            if reaches(used, module) {
                circles.push(format!("{module} -> {used} -> ... -> {module}"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
    for lower in [
        "protocol", "hub", "output", "stats", "relay", "client", "config",
    ] {
        let uses = graph.get(lower).cloned().unwrap_or_default();
        assert!(
            !uses.contains("actors") && !uses.contains("admin") && !uses.contains("server"),
            "{lower} imports a layer above it: {uses:?}"
        );
    }
}

#[test]
fn the_protocol_core_is_sans_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocol");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        let code = code(&file);
        for runtime in ["tokio::", "actix", "std::net", "mio::"] {
            assert!(!code.contains(runtime), "{} uses {runtime}", file.display());
        }
    }
}
