//! Helpers shared by the integration tests.

use backend::security_groups::{GroupRef, PeerSpec, RuleSpec};
use backend::Backend;

/// Lets ICMP from anywhere into the default group of `account`'s VPC, so that this machine can
/// ping its guests (security groups are enforced on real hosts).
pub fn allow_ping(b: &Backend, account: &str, vpc: &str) {
    let icmp = RuleSpec {
        protocol: "icmp".into(),
        from_port: Some(-1),
        to_port: Some(-1),
        peer: PeerSpec::Ipv4("0.0.0.0/0".into()),
        description: None,
    };
    b.authorize_security_group(account, vpc, &GroupRef::Name("default".into()), false, &[icmp], &[]).unwrap();
}

/// The OVN `scripts/setup-host` runs.
pub const NORTHBOUND: &str = "unix:/run/stratus/ovn/ovnnb_db.sock";

/// OVN for a test whose guests need a network: `backend` keeps OVN's northbound state with its
/// own, its default VPC's guests get public addresses on `br-ex`'s network (198.51.100.0/24,
/// which this machine routes), and everything its installation put in OVN goes when this is
/// dropped, for good (its conductor may still sweep). That public network is one per machine:
/// this holds the lock the compat tests' servers take for it.
pub struct Network {
    _lock: std::fs::File,
    backend: std::sync::Arc<Backend>,
}

impl Network {
    /// Takes the public network for `backend` (made `with_ovn(NORTHBOUND)`).
    pub fn hold(backend: &std::sync::Arc<Backend>) -> Self {
        let lock = std::fs::File::create("/run/stratus-public-test.lock").unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        // Another installation's rows left in OVN keep their public addresses out of this pool.
        backend.reserve_public_addresses_of_others().unwrap();
        Self { _lock: lock, backend: std::sync::Arc::clone(backend) }
    }

    /// Whether the OVN `scripts/setup-host` starts runs here.
    pub fn available() -> bool {
        std::path::Path::new(NORTHBOUND.trim_start_matches("unix:")).exists()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(error) = self.backend.withdraw_network() {
            eprintln!("{error}");
        }
    }
}
