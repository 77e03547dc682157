//! What the tests share: [`ovn::testing`]'s real databases, and VPCs to build.

#![allow(dead_code)]

pub use ovn::testing::*;
use ovn::{Desired, Dhcp, Router, RouterPort, Switch, SwitchPort};

/// One VPC of `installation`: router `stratus-{vpc}`, one subnet `{cidr}` (a /24 whose `.1` is
/// the router), the ports given as `(name, mac, address)`, DHCP on.
pub fn vpc(installation: &str, vpc: &str, subnet: &str, net: &str, ports: &[(&str, &str, &str)]) -> Desired {
    let router_port = format!("stratus-{subnet}-rtr");
    let gateway_mac = format!("02:00:00:{:02x}:01:01", vpc.len() + subnet.len());
    Desired {
        installation: installation.into(),
        data_dir: format!("/srv/{installation} data"),
        routers: vec![Router {
            name: format!("stratus-{vpc}"),
            owner: vpc.into(),
            ports: vec![RouterPort {
                name: router_port.clone(),
                mac: gateway_mac.clone(),
                networks: vec![format!("{net}.1/24")],
                gateway_chassis: None,
            }],
            static_routes: Vec::new(),
            nats: Vec::new(),
            policies: Vec::new(),
        }],
        switches: vec![Switch {
            name: format!("stratus-{subnet}"),
            owner: subnet.into(),
            router_port: Some(router_port),
            gateway_legs: Vec::new(),
            localnet: None,
            dhcp: Some(Dhcp {
                cidr: format!("{net}.0/24"),
                router: format!("{net}.1"),
                server_mac: gateway_mac,
                mtu: 1400,
                dns_server: format!("{net}.2"),
                lease_secs: 3600,
            }),
            ports: ports
                .iter()
                .map(|(name, mac, address)| SwitchPort {
                    name: (*name).into(),
                    owner: (*name).into(),
                    mac: (*mac).into(),
                    addresses: vec![(*address).into()],
                    port_security: true,
                    service: false,
                    requested_chassis: Vec::new(),
                })
                .collect(),
        }],
        port_groups: Vec::new(),
    }
}
