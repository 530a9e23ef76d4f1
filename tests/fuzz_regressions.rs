//! The fuzz corpus as a regression suite: every committed input of each
//! target (`fuzz/seeds/<target>/`, and `fuzz/regressions/<target>/`, the
//! small forms of the attacks of issue 12) goes through the target's own
//! code, on a thread with a worker's 2 MiB stack. Each must return, with an
//! entry or an error; a panic or a stack overflow fails the suite.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use std::path::{Path, PathBuf};

/// The inputs of `target` under `dir`, in name order.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A target's name and what it does with one input.
type Target = (&'static str, fn(&[u8]));

#[test]
fn every_seed_and_regression_input_returns() {
    let targets: [Target; 4] = [
        ("hashedrekord", common::hashedrekord),
        ("dsse", common::dsse),
        ("intoto", common::intoto),
        ("rekord", common::rekord),
    ];
    for (target, run) in targets {
        for dir in ["seeds", "regressions"] {
            let files = inputs(dir, target);
            assert!(!files.is_empty(), "no {dir} for {target}");
            for path in files {
                let data = std::fs::read(&path).unwrap();
                let outcome = std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(move || run(&data))
                    .unwrap()
                    .join();
                assert!(outcome.is_ok(), "{} panicked", path.display());
            }
        }
    }
}
