//! Real clients against the real `stratus` binary.
//!
//! The scenarios are pytest files in `compat-tests/py/` (their `conftest.py` starts
//! `stratus serve` on a free loopback port and a fresh data dir); each test here runs one file
//! so that a failure names the client. `scripts/test` builds the binary before the tests run.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `stratus` binary of the profile these tests were built with.
pub fn stratus_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/stratus
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("stratus");
    assert!(
        bin.exists(),
        "{} is missing: build it first (scripts/test does: cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

/// Runs one pytest file of `compat-tests/py` and fails with its exit status.
pub fn run_pytest(file: &str) {
    run_pytest_with(file, &[]);
}

/// As [`run_pytest`], with more environment for the scenarios (`STRATUS_TEST_STORE=postgres`
/// puts every server's state in a PostgreSQL database of its own).
pub fn run_pytest_with(file: &str, env: &[(&str, &str)]) {
    let root = repo_root();
    let started = std::time::Instant::now();
    // The slowest steps of each file are printed, so a slow suite shows where its time went.
    let status = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "--durations=5"])
        .arg(root.join("compat-tests/py").join(file))
        .env("STRATUS_BIN", stratus_bin())
        .envs(env.iter().copied())
        .current_dir(&root)
        .status()
        .expect("python3 runs");
    // Straight to stderr: the test harness would swallow an `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "{file}: {:.0} s", started.elapsed().as_secs_f64());
    assert!(status.success(), "pytest {file} failed: {status}");
}
