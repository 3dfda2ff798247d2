//! Golden files under `tests/testdata/`: compared with what a test produced, or rewritten when
//! `UPDATE_GOLDEN` is set (review the diff after an intended change).
//!
//! Include with `#[path = "util/golden.rs"] mod golden;`.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;

/// Panics with a line diff when `got` differs from `tests/testdata/{name}`; with
/// `UPDATE_GOLDEN` set, writes `got` there instead. `what` names the output in the message.
pub fn compare(name: &str, what: &str, got: &str) {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with UPDATE_GOLDEN=1",
            golden.display()
        )
    });
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|l| !want.lines().any(|w| w == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "{what} differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}
