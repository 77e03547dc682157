//! What Stratus wants OVN to hold for one installation: the logical network its store
//! describes. Names are OVN's row names (unique in the database); owners are the Stratus
//! resources the rows stand for.

/// Everything one installation wants in OVN's northbound database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub installation: String,
    /// The installation's data dir, marked on its routers ([`crate::DATA_DIR`]); empty: none.
    pub data_dir: String,
    pub routers: Vec<Router>,
    pub switches: Vec<Switch>,
    /// Port groups with their ACLs (security groups), made after the ports they hold.
    pub port_groups: Vec<PortGroup>,
}

/// A logical router: one VPC's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub name: String,
    pub owner: String,
    pub ports: Vec<RouterPort>,
    pub static_routes: Vec<StaticRoute>,
    pub nats: Vec<Nat>,
    pub policies: Vec<Policy>,
}

/// A route of a router: `prefix` via `nexthop`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaticRoute {
    pub prefix: String,
    pub nexthop: String,
}

/// A NAT rule of a router: `dnat_and_snat` (1:1, an Elastic IP) or `snat` (many to one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nat {
    pub kind: &'static str,
    pub external_ip: String,
    /// An address (`dnat_and_snat`) or a CIDR (`snat`).
    pub logical_ip: String,
}

/// A routing policy of a router: what it does with packets that match, above ordinary
/// routing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Policy {
    pub priority: u16,
    pub matches: String,
    /// `allow`, `drop` or `reroute` (to [`Policy::nexthop`]).
    pub action: &'static str,
    /// Where `reroute` sends what matches: an address on one of the router's subnets.
    pub nexthop: Option<String>,
}

/// A router's leg into one subnet: its gateway address there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPort {
    pub name: String,
    pub mac: String,
    /// `10.0.1.1/24`.
    pub networks: Vec<String>,
    /// The chassis that carries this port's traffic when it is a gateway port (the router's
    /// leg into a public network, where NAT happens).
    pub gateway_chassis: Option<String>,
}

/// A logical switch: one subnet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub name: String,
    pub owner: String,
    /// The router port this switch is joined to (a switch port of type `router` is made for it).
    pub router_port: Option<String>,
    /// Gateway ports of routers that join this (public) switch.
    pub gateway_legs: Vec<String>,
    /// The physical network this switch reaches through each chassis's bridge mapping
    /// (a `localnet` port).
    pub localnet: Option<String>,
    /// OVN answers DHCP on this switch with these options.
    pub dhcp: Option<Dhcp>,
    pub ports: Vec<SwitchPort>,
}

impl Switch {
    /// The name of the switch port joining this switch to its router.
    pub fn router_leg(&self) -> String {
        format!("{}-router", self.name)
    }

    /// Every switch port of type `router` this switch has: its name and its router port.
    pub fn legs(&self) -> Vec<(String, String)> {
        let main = self.router_port.iter().map(|p| (self.router_leg(), p.clone()));
        main.chain(self.gateway_legs.iter().map(|p| (format!("{p}-leg"), p.clone()))).collect()
    }

    /// The name of its `localnet` port.
    pub fn localnet_port(&self) -> String {
        format!("{}-localnet", self.name)
    }
}

/// DHCP as OVN serves it on one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    /// `10.0.1.0/24`.
    pub cidr: String,
    /// The router's address, which also answers as the DHCP server.
    pub router: String,
    /// The MAC the DHCP server answers from (the router port's).
    pub server_mac: String,
    /// What fits in the overlay's packets.
    pub mtu: u32,
    pub dns_server: String,
    pub lease_secs: u32,
}

impl Dhcp {
    /// OVN's `DHCP_Options.options`, in key order.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let mut options = vec![
            ("dns_server", self.dns_server.clone()),
            ("lease_time", self.lease_secs.to_string()),
            ("mtu", self.mtu.to_string()),
            ("router", self.router.clone()),
            ("server_id", self.router.clone()),
            ("server_mac", self.server_mac.clone()),
        ];
        options.sort();
        options
    }
}

/// A switch port: one network interface's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPort {
    /// Also the `external_ids:iface-id` of the host's OVS interface that plugs the guest.
    pub name: String,
    pub owner: String,
    pub mac: String,
    /// Its IPv4 addresses.
    pub addresses: Vec<String>,
    /// Whether frames must come from its MAC and addresses (EC2's source/destination check).
    pub port_security: bool,
    /// A port of one of the installation's own services (the metadata service), not a guest's:
    /// OVN's DHCP leaves it alone.
    pub service: bool,
    /// The chassis the port is bound on (`options:requested-chassis`): none, any that plugs it;
    /// two while its guest migrates, the first still active and the second taking over when the
    /// guest announces itself there (`activation-strategy=rarp`), so that the switch-over does
    /// not wait for the old binding to be torn down.
    pub requested_chassis: Vec<String>,
}

impl SwitchPort {
    /// The port's `options`, as OVN should hold them.
    pub fn options(&self) -> std::collections::BTreeMap<String, String> {
        let mut options = std::collections::BTreeMap::new();
        if !self.requested_chassis.is_empty() {
            options.insert("requested-chassis".to_owned(), self.requested_chassis.join(","));
        }
        if self.requested_chassis.len() > 1 {
            options.insert("activation-strategy".to_owned(), "rarp".to_owned());
        }
        options
    }

    /// OVN's `addresses` entry: `"MAC IP…"`.
    pub fn address_entry(&self) -> String {
        std::iter::once(self.mac.as_str())
            .chain(self.addresses.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A port group: a set of switch ports (by name) and the ACLs that apply to them. Its name is
/// what ACL matches refer to (`@name`, and `$name_ip4` for its members' addresses, which OVN
/// keeps by itself), so it must be an identifier: letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroup {
    pub name: String,
    pub owner: String,
    pub ports: Vec<String>,
    pub acls: Vec<Acl>,
}

/// One ACL row, as OVN evaluates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    /// `from-lport` (what a port sends) or `to-lport` (what it receives).
    pub direction: &'static str,
    pub priority: u16,
    pub matches: String,
    /// `allow-related`, `allow` or `drop`.
    pub action: &'static str,
}
