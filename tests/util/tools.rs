//! Helpers for the tests of the operator files (alerts, dashboards, examples): repository
//! paths, YAML loading, and running the real Prometheus tools.
//!
//! A missing tool is a failure, not a skip: the panic names the Debian package that provides
//! it, so the suite's runner can install it.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// An external command-line tool and the Debian package that ships it.
pub struct Tool {
    pub name: &'static str,
    pub package: &'static str,
}

pub const PROMTOOL: Tool = Tool {
    name: "promtool",
    package: "prometheus",
};

pub const AMTOOL: Tool = Tool {
    name: "amtool",
    package: "prometheus-alertmanager",
};

pub const PROMETHEUS: Tool = Tool {
    name: "prometheus",
    package: "prometheus",
};

pub const ALERTMANAGER: Tool = Tool {
    name: "prometheus-alertmanager",
    package: "prometheus-alertmanager",
};

impl Tool {
    /// Starts `tool args...` in the background with stdout discarded and stderr piped (for
    /// the servers, which log there).
    pub fn spawn(&self, args: &[String]) -> Child {
        Command::new(self.name)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| self.failed(e))
    }

    /// Panics naming the Debian package when the tool is not installed.
    fn failed(&self, e: std::io::Error) -> ! {
        if e.kind() == ErrorKind::NotFound {
            panic!(
                "`{}` is not installed; it is provided by the Debian package `{}` \
                 (apt-get install {})",
                self.name, self.package, self.package
            );
        }
        panic!("could not run `{}`: {e}", self.name)
    }
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `repo_root()/relative`.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// Reads a file, panicking with its path on failure.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses a single-document YAML file.
pub fn read_yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Parses every document of a (possibly multi-document) YAML file. Documents are separated by
/// `---` lines (the only form used in this repository); empty documents are skipped.
pub fn read_yaml_documents(path: &Path) -> Vec<serde_yaml::Value> {
    let text = read(path);
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().expect("starts with one document");
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            serde_yaml::from_str(doc).unwrap_or_else(|e| {
                panic!("{} document {i} is not valid YAML: {e}", path.display())
            })
        })
        .filter(|doc: &serde_yaml::Value| !doc.is_null())
        .collect()
}

/// Runs `tool args...` in `dir` and returns its combined stdout and stderr; panics unless it
/// exits successfully.
pub fn run_ok(tool: &Tool, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(tool.name)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| tool.failed(e));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`{} {}` (in {}) failed with {}:\n{text}",
        tool.name,
        args.join(" "),
        dir.display(),
        output.status
    );
    text
}
