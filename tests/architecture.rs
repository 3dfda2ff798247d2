//! The layering of `src/`, enforced: each top-level folder is a layer, and a module may use its
//! own layer and the layers below it, never one above. Every `crate::` and `super::` path
//! counts — `use` lines, inline paths and doc links alike — so a shortcut upwards fails here
//! with the file, the line and the two layers. `docs/architecture.md` draws the same map.

use std::path::{Path, PathBuf};

/// The layers, bottom first. A layer may use itself and anything earlier in this list.
const LAYERS: &[&str] = &[
    "sqlite",
    "config",
    "backup_dir",
    "collect",
    "checks",
    "fleet",
    "actions",
    "metrics",
    "service",
    "http",
    "cli",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// One use of a higher layer.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
    text: String,
}

/// The module path of a file under `src/` (`collect/write.rs` → `[collect, write]`,
/// `collect/mod.rs` → `[collect]`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// Every path in `line` that starts at `crate::` or at one or more `super::`, resolved to the
/// first module it names below the crate root.
fn targets(line: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && rest.starts_with("crate::") {
            if let Some(seg) = segment(&rest["crate::".len()..]) {
                found.push(seg);
            }
            i += "crate::".len();
        } else if boundary && rest.starts_with("super::") {
            let mut ups = 0;
            let mut r = rest;
            while let Some(next) = r.strip_prefix("super::") {
                ups += 1;
                r = next;
            }
            let kept = module.len().saturating_sub(ups);
            match module[..kept].first() {
                Some(layer) => found.push(layer.clone()),
                None => found.extend(segment(r)),
            }
            i += ups * "super::".len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// The identifier at the start of `s`, or the first one of a `{a, b}` group (each listed).
fn segment(s: &str) -> Option<String> {
    let ident: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// Checks one file's text; `relative` is its path under `src/`.
fn check_file(relative: &Path, text: &str) -> Vec<Violation> {
    let module = module_path(relative);
    let Some(own) = module.first().and_then(|l| rank(l).map(|r| (l.clone(), r))) else {
        return Vec::new();
    };
    let mut in_tests = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("mod tests") {
            in_tests = true;
        }
        // Inside an inline `mod tests`, `super::` is the file's own module.
        let mut m = module.clone();
        if in_tests {
            m.push("tests".into());
        }
        for t in targets(line, &m) {
            let Some(r) = rank(&t) else { continue };
            if r > own.1 {
                out.push(Violation {
                    file: relative.display().to_string(),
                    line: n + 1,
                    from: own.0.clone(),
                    to: t,
                    text: line.trim().to_string(),
                });
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for f in &files {
        let relative = f.strip_prefix(&src).unwrap();
        violations.extend(check_file(relative, &std::fs::read_to_string(f).unwrap()));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "src/{}:{}: {} uses {} (a layer above it): {}",
                v.file, v.line, v.from, v.to, v.text
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "layers are, bottom first: {}\n{}",
        LAYERS.join(" < "),
        report.join("\n")
    );
}

#[test]
fn every_top_level_folder_is_a_layer_with_its_map_paragraph() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            rank(&name).is_some(),
            "src/{name}/ is not a layer: add it to LAYERS here and to docs/architecture.md"
        );
        let head = std::fs::read_to_string(p.join("mod.rs")).unwrap();
        assert!(
            head.starts_with("//! "),
            "src/{name}/mod.rs must open with a //! paragraph saying what it owns"
        );
    }
}

#[test]
fn the_check_catches_upward_paths_of_every_form() {
    let upward = [
        "use crate::http::AppState;",
        "let x = crate::metrics::render(&s);",
        "/// See [`crate::cli::parse`].",
        "use super::super::service::scheduler;",
    ];
    for line in upward {
        let v = check_file(Path::new("collect/write.rs"), line);
        assert_eq!(v.len(), 1, "not caught: {line}");
    }
    let fine = [
        "use crate::sqlite::connection;",
        "use super::Collector;",
        "use crate::config::Settings;",
        "let t = crate::unix_now();",
        "let s = \"discreate::http\";",
    ];
    for line in fine {
        assert!(
            check_file(Path::new("collect/write.rs"), line).is_empty(),
            "false alarm: {line}"
        );
    }
    // `super::` inside a file's test module is the file itself.
    let text = "mod tests {\n    use super::*;\n}";
    assert!(check_file(Path::new("sqlite/wal.rs"), text).is_empty());
}
