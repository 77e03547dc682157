//! Stratus's driver of OVN, the network engine its virtual networks run on.
//!
//! OVN is told what to build through its northbound database: logical routers (one per VPC),
//! logical switches (one per subnet) joined to their router, switch ports (one per network
//! interface, with its addresses and port security) and DHCP options (one set per subnet).
//! `ovn-northd` and every host's `ovn-controller` turn that into flows; Stratus never programs
//! a switch itself.
//!
//! The flow of one reconciliation ([`Northbound::reconcile`]):
//! 1. The caller describes what one installation wants ([`Desired`]), from its store.
//! 2. The rows that installation owns are read back: every row Stratus writes carries
//!    `external_ids:stratus-installation` (the installation id of `backend::ownership`), and
//!    rows of other installations or of other tools are never read, changed or deleted.
//! 3. [`plan`] compares the two, column by column, and answers the commands that make OVN
//!    match: create what is missing, set what drifted, delete what is no longer wanted. It is
//!    a pure function; an installation already in step plans nothing.
//! 4. The commands run as one `ovn-nbctl` transaction: OVN sees all of it or none of it, so a
//!    crash at any point leaves a state the next reconciliation finishes.
//!
//! Every call blocks (it runs `ovn-nbctl`): callers keep it off the async executor.

mod model;
mod plan;
mod state;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use model::{Acl, Desired, Dhcp, Nat, Policy, PortGroup, Router, RouterPort, StaticRoute, Switch, SwitchPort};
pub use plan::plan;
pub use state::{Current, Row};

/// The `external_ids` key naming the installation that owns a row.
pub const INSTALLATION: &str = "stratus-installation";
/// The `external_ids` key naming the Stratus resource a row stands for (`vpc-…`, `subnet-…`,
/// `eni-…`).
pub const OWNER: &str = "stratus-owner";
/// The `external_ids` key naming the router or switch a port belongs to.
pub const PARENT: &str = "stratus-parent";
/// The `external_ids` key of a router naming its installation's data dir: whether that
/// installation is gone can be told without it (`backend::ownership`).
pub const DATA_DIR: &str = "stratus-data-dir";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ovn-nbctl` could not run or the database did not answer
    #[error("OVN northbound database: {0}")]
    Unavailable(String),
    /// The database refused a transaction
    #[error("OVN refused the change: {0}")]
    Refused(String),
    /// An answer that could not be read
    #[error("unexpected answer from ovn-nbctl: {0}")]
    Unreadable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One OVN northbound database, as `ovn-nbctl` reaches it.
#[derive(Debug, Clone)]
pub struct Northbound {
    /// `unix:/path/ovnnb_db.sock`, `tcp:10.0.0.1:6641`.
    db: String,
    timeout: Duration,
    nbctl: PathBuf,
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Commands run (0: OVN was already in step).
    pub commands: usize,
}

impl Northbound {
    pub fn new(db: impl Into<String>) -> Self {
        Self { db: db.into(), timeout: Duration::from_secs(10), nbctl: PathBuf::from("ovn-nbctl") }
    }

    /// How long one `ovn-nbctl` call may wait for the database.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    /// Runs `ovn-nbctl` with `args` (commands separated by `--`); answers its standard output.
    pub fn nbctl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String> {
        let output = Command::new(&self.nbctl)
            .arg(format!("--db={}", self.db))
            .arg(format!("--timeout={}", self.timeout.as_secs().max(1)))
            .args(args)
            .output()
            .map_err(|e| Error::Unavailable(format!("running {}: {e}", self.nbctl.display())))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        // nbctl says "database connection failed" or times out (status 142: SIGALRM) when
        // the server is away; anything else is the server's answer to the transaction.
        if stderr.contains("connection failed") || stderr.contains("timeout") || output.status.code() == Some(142) {
            Err(Error::Unavailable(stderr))
        } else {
            Err(Error::Refused(stderr))
        }
    }

    /// The rows `installation` owns.
    pub fn current(&self, installation: &str) -> Result<Current> {
        state::read(self, installation)
    }

    /// Makes OVN hold what `desired` describes for its installation, and nothing else of
    /// that installation's. Idempotent; safe to run again after any failure.
    pub fn reconcile(&self, desired: &Desired) -> Result<Applied> {
        let current = self.current(&desired.installation)?;
        let commands = plan(desired, &current);
        if commands.is_empty() {
            return Ok(Applied::default());
        }
        let mut args: Vec<String> = Vec::new();
        for command in &commands {
            if !args.is_empty() {
                args.push("--".into());
            }
            args.extend(command.iter().cloned());
        }
        self.nbctl(&args)?;
        tracing::debug!(installation = %desired.installation, commands = commands.len(), "OVN reconciled");
        Ok(Applied { commands: commands.len() })
    }
}

/// A value as `ovn-nbctl` parses it in `column=value` or `column:key=value`: quoted, with
/// quotes and backslashes escaped, so that any string is one atom.
pub(crate) fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
