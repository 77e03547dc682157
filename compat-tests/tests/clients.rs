//! One test per client; the scenarios live in `compat-tests/py/`.

use compat_tests::{run_pytest, run_pytest_with};

#[test]
fn aws_cli() {
    run_pytest("test_aws_cli.py");
}

#[test]
fn boto3() {
    run_pytest("test_boto3.py");
}

// libtest starts tests in name order, two at a time here: the longest file (Terraform's
// provider spends ~10 s of CPU starting for every command) sorts first, so that it does not
// start last and run alone at the end.
#[test]
fn a_terraform() {
    run_pytest("test_terraform.py");
}

#[test]
fn boto3_instances() {
    run_pytest("test_instances_boto3.py");
}

#[test]
fn aws_cli_instances() {
    run_pytest("test_instances_aws_cli.py");
}

// The next longest (real guests on lab hosts, a Debian cloud guest) sort next.
#[test]
fn aws_cli_across_lab_hosts() {
    run_pytest("test_lab_aws_cli.py");
}

#[test]
fn boto3_extensions() {
    run_pytest("test_extensions_boto3.py");
}

#[test]
fn boto3_security_groups() {
    run_pytest("test_security_groups_boto3.py");
}

#[test]
fn boto3_volumes() {
    run_pytest("test_volumes_boto3.py");
}

#[test]
fn aws_cli_volumes() {
    run_pytest("test_volumes_aws_cli.py");
}

#[test]
fn moto_differential() {
    run_pytest("test_moto_differential.py");
}

#[test]
fn aws_cli_cloud_image() {
    run_pytest("test_cloud_image.py");
}

#[test]
fn boto3_cross_account() {
    run_pytest("test_cross_account.py");
}

#[test]
fn boto3_kill_campaign() {
    run_pytest("test_kill_campaign.py");
}

#[test]
fn boto3_ovn() {
    run_pytest("test_ovn_boto3.py");
}

#[test]
fn boto3_vpcs() {
    run_pytest("test_vpc_boto3.py");
}

#[test]
fn boto3_vpc_dataplane() {
    run_pytest("test_vpc_dataplane.py");
}

#[test]
fn boto3_launch_templates() {
    run_pytest("test_launch_templates_boto3.py");
}

#[test]
fn boto3_sharing() {
    run_pytest("test_sharing_boto3.py");
}

/// Every scenario file runs: a file left out of this list would never fail the suite.
#[test]
fn every_scenario_file_is_run() {
    let listed = include_str!("clients.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("compat-tests/py") {
        let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
        if name.starts_with("test_") && name.ends_with(".py") && !listed.contains(&format!("run_pytest(\"{name}\")")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "scenario files no test runs: {missing:?}");
}

#[test]
fn boto3_dedicated_hosts() {
    run_pytest("test_dedicated_hosts_boto3.py");
}

#[test]
fn boto3_monitoring() {
    run_pytest("test_monitoring_boto3.py");
}

#[test]
fn browser_console() {
    run_pytest("test_console_browser.py");
}

/// The boto3 scenario with the server's state in PostgreSQL instead of redb.
#[test]
fn boto3_on_postgres() {
    run_pytest_with("test_boto3.py", &[("STRATUS_TEST_STORE", "postgres")]);
}

#[test]
fn replicas_on_postgres() {
    run_pytest("test_replicas_postgres.py");
}

#[test]
fn postgres_primary_killed_and_standby_promoted() {
    run_pytest("test_postgres_failover.py");
}
