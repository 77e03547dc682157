//! The harness itself works: every benchmark runs at a tiny size and writes what the report
//! reads, and the report renders tables and plots from it. Figures are not judged here (a
//! benchmark never fails on a number); wrong answers are, since the load generator counts
//! them as errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stratus-bench"))
}

/// The `stratus` binary of the profile these tests were built with (`cargo build --bins`).
fn stratus_bin() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_stratus-bench"));
    let bin = exe.with_file_name("stratus");
    assert!(bin.exists(), "{} is missing: build it first (cargo build --workspace --bins)", bin.display());
    bin
}

fn run(command: &mut Command) {
    let output = command.output().expect("stratus-bench runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn scheduler_inproc_api_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");

    run(bench().args(["scheduler", "--hosts", "300", "--instances", "3000", "--out"]).arg(&out));
    let scheduler = json(&out.join("scheduler.json"));
    let timings = scheduler["timings"].as_array().unwrap();
    assert_eq!(timings.len(), 6, "three policies, one and a hundred instances");
    assert!(timings.iter().all(|t| t["placed"].as_u64() == t["count"].as_u64()), "{timings:?}");

    run(bench().args(["inproc", "--instances", "40", "--iterations", "200", "--out"]).arg(&out));
    let costs = json(&out.join("inproc-40.json"));
    assert_eq!(costs["costs"].as_array().unwrap().len(), 4);

    run(bench()
        .args(["api", "--quick", "--stages", "30", "--seconds", "0.5", "--stratus-bin"])
        .arg(stratus_bin())
        .arg("--out")
        .arg(&out));
    let api = json(&out.join("api.json"));
    let runs = api["runs"].as_array().unwrap();
    for (scenario, system) in [
        ("run-instances-1", "stratus"),
        ("run-instances-1", "moto"),
        ("describe-by-id", "bare-hyper"),
        ("describe-by-id", "stratus"),
        ("describe-by-id", "moto"),
        ("describe-all", "stratus"),
        ("describe-tag-filter", "stratus"),
        ("describe-tag-filter", "moto"),
    ] {
        let found: Vec<&Value> = runs.iter().filter(|r| r["scenario"] == scenario && r["system"] == system).collect();
        assert!(!found.is_empty(), "no {scenario} run against {system}");
        for run in found {
            assert!(run["requests"].as_u64().unwrap() > 0, "{run}");
            assert_eq!(run["errors"].as_u64(), Some(0), "wrong answers: {run}");
        }
    }
    assert!(api["rss"].as_array().unwrap().iter().any(|r| r["system"] == "stratus" && r["stored"] == 30));
    let idle = api["idle"].as_array().unwrap();
    assert!(idle
        .iter()
        .any(|i| i["system"] == "stratus" && i["stored"] == 30 && i["server_ms_per_s"].as_f64().unwrap() >= 0.0));

    let plots = dir.path().join("plots");
    run(bench().args(["report", "--results"]).arg(&out).arg("--out").arg(&plots));
    let tables = std::fs::read_to_string(plots.join("results.md")).unwrap();
    for heading in ["### API", "### Stratus's own CPU", "### Scheduler", "Idle ("] {
        assert!(tables.contains(heading), "{heading} missing from:\n{tables}");
    }
    for plot in ["api-describe-by-id.svg", "api-rss.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).unwrap_or_else(|e| panic!("{plot}: {e}"));
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{plot} is not a labelled SVG");
    }
}

/// The OVN reconciliation benchmark at 20 ports, against the northbound database
/// `scripts/setup-host` runs (required under `scripts/test`, skipped elsewhere without it).
#[test]
fn ovn_reconciliation() {
    let nb = Path::new("/run/stratus/ovn/ovnnb_db.sock");
    if !nb.exists() {
        assert!(std::env::var("STRATUS_TEST_QEMU").as_deref() != Ok("1"), "OVN is not running: run scripts/setup-host");
        eprintln!("skipping: OVN is not running");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    run(bench().args(["ovn", "--ports", "20", "--repetitions", "1", "--out"]).arg(&out));
    let ovn = json(&out.join("ovn.json"));
    assert_eq!((ovn["ports"].as_u64(), ovn["subnets"].as_u64()), (Some(20), Some(1)));
    // Subnet, router, router port, DHCP options, 20 ports and their port group: many commands.
    assert!(ovn["commands_first_apply"].as_u64().unwrap() > 20, "{ovn}");
    for timing in ["first_apply", "in_step", "one_port_added", "one_port_changed", "bare_nbctl_create"] {
        assert!(ovn["median_ms"][timing].as_f64().is_some_and(|t| t > 0.0), "{timing}: {ovn}");
    }
}

#[test]
fn monitoring() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    run(bench().args(["monitoring", "--fleets", "1x0,2x5", "--samples", "3", "--day-instances", "1"]).args([
        "--history-instances",
        "3",
        "--history-hours",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]));
    let report = json(&out.join("monitoring.json"));
    let fleets = report["collection"].as_array().unwrap();
    assert_eq!(fleets.len(), 2);
    assert_eq!(fleets[1]["instances"], 10);
    assert!(report["bytes_per_instance_day_allocated"].as_f64().unwrap() > 0.0);
    let queries = report["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0]["datapoints"], 60, "an hour of minutes for one instance");
}
