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
