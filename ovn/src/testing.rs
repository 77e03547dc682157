//! A real OVN for tests (Debian's `ovn-central` and `openvswitch-switch`): databases started in
//! a temporary directory and stopped when dropped. Compiled with the `testing` feature only.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Whether OVN is installed; under the full suite (`STRATUS_TEST_QEMU=1`, set by
/// `scripts/test` after `scripts/setup-host` installed it) its absence is a failure.
pub fn ovn_present() -> bool {
    let present = Path::new(NB_SCHEMA).exists() && which("ovsdb-server") && which("ovn-nbctl");
    if !present && std::env::var("STRATUS_TEST_QEMU").as_deref() == Ok("1") {
        panic!("OVN is not installed: run scripts/setup-host");
    }
    present
}

pub fn which(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

/// Runs `program`, which must succeed; answers its standard output.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One `ovsdb-server` serving a fresh database of `schema`, in `dir`.
pub struct Db {
    pub dir: PathBuf,
    pub name: String,
    pid: u32,
}

impl Db {
    pub fn start(dir: &Path, name: &str, schema: &str, extra: &[&str]) -> Self {
        let db = dir.join(format!("{name}.db"));
        run("ovsdb-tool", &["create", &db.to_string_lossy(), schema]);
        let sock = dir.join(format!("{name}.sock"));
        let pidfile = dir.join(format!("{name}.pid"));
        let mut args = vec![
            db.to_string_lossy().into_owned(),
            format!("--remote=punix:{}", sock.display()),
            format!("--pidfile={}", pidfile.display()),
            format!("--unixctl={}", dir.join(format!("{name}.ctl")).display()),
            format!("--log-file={}", dir.join(format!("{name}.log")).display()),
            "--no-chdir".into(),
            "--detach".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("ovsdb-server", &args);
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        Self { dir: dir.to_owned(), name: name.to_owned(), pid }
    }

    /// A northbound database.
    pub fn northbound(dir: &Path) -> Self {
        Self::start(dir, "nb", NB_SCHEMA, &[])
    }

    pub fn socket(&self) -> String {
        format!("unix:{}", self.dir.join(format!("{}.sock", self.name)).display())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}
