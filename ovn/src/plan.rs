//! From what is wanted and what is there to the `ovn-nbctl` commands that close the gap.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Acl, Desired, PortGroup, Switch};
use crate::state::{Current, Row};
use crate::{quote, DATA_DIR, INSTALLATION, OWNER, PARENT};

/// One `ovn-nbctl` command and its arguments.
pub type Command = Vec<String>;

fn command(parts: &[&str]) -> Command {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// `external_ids:"key"="value"` arguments marking a row as `installation`'s.
fn marks(installation: &str, owner: &str, parent: Option<&str>) -> Vec<String> {
    let mut marks = vec![
        format!("external_ids:{}={}", quote(INSTALLATION), quote(installation)),
        format!("external_ids:{}={}", quote(OWNER), quote(owner)),
    ];
    if let Some(parent) = parent {
        marks.push(format!("external_ids:{}={}", quote(PARENT), quote(parent)));
    }
    marks
}

fn marked(row: &Row, owner: &str, parent: Option<&str>) -> bool {
    row.external(OWNER) == Some(owner) && row.external(PARENT) == parent
}

fn set_marks(table: &str, name: &str, installation: &str, owner: &str, parent: Option<&str>) -> Command {
    let mut command = command(&["set", table, name]);
    command.extend(marks(installation, owner, parent));
    command
}

/// Marks an existing row again when its marks drifted.
fn remark(
    out: &mut Vec<Command>,
    table: &str,
    row: &Row,
    name: &str,
    installation: &str,
    owner: &str,
    parent: Option<&str>,
) {
    if !marked(row, owner, parent) {
        out.push(set_marks(table, name, installation, owner, parent));
    }
}

fn by_name(rows: &[Row]) -> BTreeMap<&str, &Row> {
    rows.iter().map(|r| (r.name.as_str(), r)).collect()
}

/// `lsp-set-options`: the port's options become exactly these (none: cleared).
fn port_options(port: &str, options: &std::collections::BTreeMap<String, String>) -> Command {
    let mut set = command(&["lsp-set-options", port]);
    set.extend(options.iter().map(|(k, v)| format!("{k}={v}")));
    set
}

/// An OVSDB map value: `{"k"="v",…}`.
fn map_value(pairs: &[(&str, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", quote(k), quote(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// The commands that make `current` hold what `desired` describes. Creations come before the
/// rows that refer to them; deletions of switch ports before anything is added (their
/// addresses may be taken by new ports), of router ports before their routers.
pub fn plan(desired: &Desired, current: &Current) -> Vec<Command> {
    let installation = desired.installation.as_str();
    let mut out = Vec::new();

    let routers = by_name(&current.routers);
    let router_ports = by_name(&current.router_ports);
    let data_dir = (!desired.data_dir.is_empty()).then_some(desired.data_dir.as_str());
    for (index, router) in desired.routers.iter().enumerate() {
        let mark_router = |out: &mut Vec<Command>| {
            let mut marking = set_marks("Logical_Router", &router.name, installation, &router.owner, None);
            if let Some(dir) = data_dir {
                marking.push(format!("external_ids:{}={}", quote(DATA_DIR), quote(dir)));
            }
            out.push(marking);
        };
        match routers.get(router.name.as_str()) {
            None => {
                out.push(command(&["lr-add", &router.name]));
                mark_router(&mut out);
            }
            Some(row)
                if !marked(row, &router.owner, None) || (data_dir.is_some() && row.external(DATA_DIR) != data_dir) =>
            {
                mark_router(&mut out);
            }
            Some(_) => {}
        }
        for port in &router.ports {
            match router_ports.get(port.name.as_str()) {
                Some(row) if row.external(PARENT) == Some(router.name.as_str()) => {
                    let networks: BTreeSet<&String> = row.set("networks").iter().collect();
                    if row.set("mac") != [port.mac.clone()] || networks != port.networks.iter().collect() {
                        let networks: Vec<String> = port.networks.iter().map(|n| quote(n)).collect();
                        out.push(vec![
                            "set".into(),
                            "Logical_Router_Port".into(),
                            port.name.clone(),
                            format!("mac={}", quote(&port.mac)),
                            format!("networks=[{}]", networks.join(",")),
                        ]);
                    }
                    remark(
                        &mut out,
                        "Logical_Router_Port",
                        row,
                        &port.name,
                        installation,
                        &port.name,
                        Some(&router.name),
                    );
                    plan_gateway_chassis(&mut out, port, Some(row), current);
                }
                existing => {
                    if existing.is_some() {
                        // On another router: a port belongs to one router, so it moves.
                        out.push(command(&["lrp-del", &port.name]));
                    }
                    let mut add = command(&["lrp-add", &router.name, &port.name, &port.mac]);
                    add.extend(port.networks.iter().cloned());
                    out.push(add);
                    out.push(set_marks(
                        "Logical_Router_Port",
                        &port.name,
                        installation,
                        &port.name,
                        Some(&router.name),
                    ));
                    plan_gateway_chassis(&mut out, port, None, current);
                }
            }
        }
        let row = routers.get(router.name.as_str()).copied();
        let mut children =
            Children { out: &mut out, installation, table: "Logical_Router", parent: &router.name, row, index };
        let routes: Vec<Vec<(&str, String)>> = router
            .static_routes
            .iter()
            .map(|r| vec![("ip_prefix", r.prefix.clone()), ("nexthop", r.nexthop.clone())])
            .collect();
        children.plan("static_routes", "Logical_Router_Static_Route", &routes, &current.static_routes, "route");
        let nats: Vec<Vec<(&str, String)>> = router
            .nats
            .iter()
            .map(|n| {
                vec![
                    ("type", n.kind.to_owned()),
                    ("external_ip", n.external_ip.clone()),
                    ("logical_ip", n.logical_ip.clone()),
                ]
            })
            .collect();
        children.plan("nat", "NAT", &nats, &current.nats, "nat");
        let policies: Vec<Vec<(&str, String)>> = router
            .policies
            .iter()
            .map(|p| {
                vec![
                    ("priority", p.priority.to_string()),
                    ("match", p.matches.clone()),
                    ("action", p.action.to_owned()),
                    ("nexthops", p.nexthop.clone().unwrap_or_default()),
                ]
            })
            .collect();
        children.plan("policies", "Logical_Router_Policy", &policies, &current.policies, "policy");
    }

    let switches = by_name(&current.switches);
    let switch_ports = by_name(&current.switch_ports);
    let dhcp_rows: BTreeMap<&str, &Row> = current.dhcp.iter().filter_map(|r| Some((r.external(OWNER)?, r))).collect();
    // Addresses move between ports (a terminated instance's goes to the next launch, a
    // secondary address is reassigned), and ovn-nbctl refuses any command that would leave
    // two ports of a switch with one address, even for a moment of the batch: ports that go
    // lose their addresses and are deleted first (ovn-nbctl's check still sees a port deleted
    // earlier in the same batch, but not the addresses it had), and ports whose addresses
    // change hold their MAC alone until every port has its new addresses.
    let wanted_switch_ports: BTreeSet<String> = desired
        .switches
        .iter()
        .flat_map(|s| {
            let legs = s.legs().into_iter().map(|(leg, _)| leg);
            s.ports.iter().map(|p| p.name.clone()).chain(legs).chain(s.localnet.as_ref().map(|_| s.localnet_port()))
        })
        .collect();
    let wanted_switches: BTreeSet<&str> = desired.switches.iter().map(|s| s.name.as_str()).collect();
    for row in &current.switch_ports {
        let parent_goes = row.external(PARENT).is_some_and(|p| !wanted_switches.contains(p));
        if !wanted_switch_ports.contains(&row.name) && !parent_goes {
            out.push(command(&["lsp-set-addresses", &row.name]));
            out.push(command(&["lsp-del", &row.name]));
        }
    }
    for switch in &desired.switches {
        for port in &switch.ports {
            let Some(row) = switch_ports.get(port.name.as_str()) else { continue };
            if row.external(PARENT) == Some(switch.name.as_str()) && row.set("addresses") != [port.address_entry()] {
                out.push(command(&["lsp-set-addresses", &port.name, &port.mac]));
            }
        }
    }
    for (index, switch) in desired.switches.iter().enumerate() {
        match switches.get(switch.name.as_str()) {
            None => {
                out.push(command(&["ls-add", &switch.name]));
                out.push(set_marks("Logical_Switch", &switch.name, installation, &switch.owner, None));
            }
            Some(row) if !marked(row, &switch.owner, None) => {
                out.push(set_marks("Logical_Switch", &switch.name, installation, &switch.owner, None));
            }
            Some(_) => {}
        }
        // The DHCP options: referred to by UUID, or by the name of the row this transaction
        // creates.
        let dhcp_ref = switch.dhcp.as_ref().map(|dhcp| {
            let options = dhcp.options();
            let wanted: BTreeMap<String, String> = options.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            match dhcp_rows.get(switch.name.as_str()) {
                Some(row) => {
                    if row.set("cidr") != [dhcp.cidr.clone()] || row.map("options") != Some(&wanted) {
                        out.push(vec![
                            "set".into(),
                            "DHCP_Options".into(),
                            row.uuid.clone(),
                            format!("cidr={}", quote(&dhcp.cidr)),
                            format!("options={}", map_value(&options)),
                        ]);
                    }
                    row.uuid.clone()
                }
                None => {
                    let id = format!("@dhcp{index}");
                    let mut create = vec![
                        format!("--id={id}"),
                        "create".into(),
                        "DHCP_Options".into(),
                        format!("cidr={}", quote(&dhcp.cidr)),
                        format!("options={}", map_value(&options)),
                    ];
                    create.extend(marks(installation, &switch.name, None));
                    out.push(create);
                    id
                }
            }
        });
        for (leg, router_port) in switch.legs() {
            plan_router_leg(
                &mut out,
                installation,
                switch,
                &leg,
                &router_port,
                switch_ports.get(leg.as_str()).copied(),
            );
        }
        plan_localnet(&mut out, installation, switch, switch_ports.get(switch.localnet_port().as_str()).copied());
        for port in &switch.ports {
            let entry = port.address_entry();
            let security: Vec<String> = if port.port_security { vec![entry.clone()] } else { Vec::new() };
            let dhcp_ref = if port.service { None } else { dhcp_ref.clone() };
            match switch_ports.get(port.name.as_str()) {
                Some(row) if row.external(PARENT) == Some(switch.name.as_str()) => {
                    // Every port is a plain one (earlier versions made metadata ports localports).
                    if !row.set("type").first().map_or("", String::as_str).is_empty() {
                        out.push(command(&["lsp-set-type", &port.name, ""]));
                    }
                    if row.set("addresses") != [entry.clone()] {
                        out.push(command(&["lsp-set-addresses", &port.name, &entry]));
                    }
                    if row.set("port_security") != security.as_slice() {
                        let mut set = command(&["lsp-set-port-security", &port.name]);
                        set.extend(security.iter().cloned());
                        out.push(set);
                    }
                    let has = row.set("dhcpv4_options").first().cloned();
                    if has.as_ref() != dhcp_ref.as_ref() {
                        out.push(dhcp_reference(&port.name, dhcp_ref.as_deref()));
                    }
                    if row.map("options").cloned().unwrap_or_default() != port.options() {
                        out.push(port_options(&port.name, &port.options()));
                    }
                    remark(
                        &mut out,
                        "Logical_Switch_Port",
                        row,
                        &port.name,
                        installation,
                        &port.owner,
                        Some(&switch.name),
                    );
                }
                existing => {
                    if existing.is_some() {
                        out.push(command(&["lsp-del", &port.name]));
                    }
                    out.push(command(&["lsp-add", &switch.name, &port.name]));
                    out.push(command(&["lsp-set-addresses", &port.name, &entry]));
                    if port.port_security {
                        out.push(command(&["lsp-set-port-security", &port.name, &entry]));
                    }
                    if dhcp_ref.is_some() {
                        out.push(dhcp_reference(&port.name, dhcp_ref.as_deref()));
                    }
                    if !port.options().is_empty() {
                        out.push(port_options(&port.name, &port.options()));
                    }
                    out.push(set_marks(
                        "Logical_Switch_Port",
                        &port.name,
                        installation,
                        &port.owner,
                        Some(&switch.name),
                    ));
                }
            }
        }
    }

    plan_port_groups(&mut out, desired, current);

    // What is no longer wanted (switch ports went first): port groups, then what held them.
    let wanted_groups: BTreeSet<&str> = desired.port_groups.iter().map(|g| g.name.as_str()).collect();
    for row in &current.port_groups {
        if !wanted_groups.contains(row.name.as_str()) {
            out.push(command(&["pg-del", &row.name]));
        }
    }
    for row in &current.dhcp {
        let wanted = row
            .external(OWNER)
            .is_some_and(|owner| desired.switches.iter().any(|s| s.name == owner && s.dhcp.is_some()));
        if !wanted {
            out.push(command(&["destroy", "DHCP_Options", &row.uuid]));
        }
    }
    for row in &current.switches {
        if !wanted_switches.contains(row.name.as_str()) {
            out.push(command(&["ls-del", &row.name]));
        }
    }
    let wanted_routers: BTreeSet<&str> = desired.routers.iter().map(|r| r.name.as_str()).collect();
    let wanted_router_ports: BTreeSet<&str> =
        desired.routers.iter().flat_map(|r| r.ports.iter().map(|p| p.name.as_str())).collect();
    for row in &current.router_ports {
        let parent_goes = row.external(PARENT).is_some_and(|p| !wanted_routers.contains(p));
        if !wanted_router_ports.contains(row.name.as_str()) && !parent_goes {
            out.push(command(&["lrp-del", &row.name]));
        }
    }
    for row in &current.routers {
        if !wanted_routers.contains(row.name.as_str()) {
            out.push(command(&["lr-del", &row.name]));
        }
    }
    out
}

/// An ACL as its row reads: (direction, priority, match, action).
type AclKey = (String, String, String, String);

fn acl_key(acl: &Acl) -> AclKey {
    (acl.direction.to_owned(), acl.priority.to_string(), acl.matches.clone(), acl.action.to_owned())
}

fn row_acl_key(row: &Row) -> AclKey {
    let first = |column: &str| row.set(column).first().cloned().unwrap_or_default();
    (first("direction"), first("priority"), first("match"), first("action"))
}

/// Port groups: made with their ports, their ports set again when membership changed, and
/// their ACLs replaced as a whole (in the same transaction, so no packet sees a gap) when any
/// differs. An ACL row belongs to its group (not a root row): cleared from the group, it goes.
fn plan_port_groups(out: &mut Vec<Command>, desired: &Desired, current: &Current) {
    let installation = desired.installation.as_str();
    let port_names: BTreeMap<&str, &str> =
        current.switch_ports.iter().map(|r| (r.uuid.as_str(), r.name.as_str())).collect();
    let acls: BTreeMap<&str, &Row> = current.acls.iter().map(|r| (r.uuid.as_str(), r)).collect();
    let groups = by_name(&current.port_groups);
    for (index, group) in desired.port_groups.iter().enumerate() {
        let wanted_acls: BTreeSet<AclKey> = group.acls.iter().map(acl_key).collect();
        let acls_in_step = match groups.get(group.name.as_str()) {
            None => {
                let mut add = command(&["pg-add", &group.name]);
                add.extend(group.ports.iter().cloned());
                out.push(add);
                out.push(set_marks("Port_Group", &group.name, installation, &group.owner, None));
                false
            }
            Some(row) => {
                remark(out, "Port_Group", row, &group.name, installation, &group.owner, None);
                let held: Vec<Option<&&str>> = row.set("ports").iter().map(|u| port_names.get(u.as_str())).collect();
                let held_names: BTreeSet<&str> = held.iter().flatten().map(|n| **n).collect();
                let wanted: BTreeSet<&str> = group.ports.iter().map(String::as_str).collect();
                if held.iter().any(Option::is_none) || held_names != wanted {
                    out.push(set_ports(group));
                }
                let have: Vec<Option<AclKey>> =
                    row.set("acls").iter().map(|u| acls.get(u.as_str()).map(|r| row_acl_key(r))).collect();
                let have_keys: BTreeSet<AclKey> = have.iter().flatten().cloned().collect();
                have.iter().all(Option::is_some) && have.len() == wanted_acls.len() && have_keys == wanted_acls
            }
        };
        if !acls_in_step {
            if groups.contains_key(group.name.as_str()) {
                out.push(command(&["clear", "Port_Group", &group.name, "acls"]));
            }
            for (number, acl) in group.acls.iter().enumerate() {
                let id = format!("@acl{index}x{number}");
                let mut create = vec![
                    format!("--id={id}"),
                    "create".into(),
                    "ACL".into(),
                    format!("direction={}", acl.direction),
                    format!("priority={}", acl.priority),
                    format!("match={}", quote(&acl.matches)),
                    format!("action={}", acl.action),
                ];
                create.extend(marks(installation, &group.name, None));
                out.push(create);
                out.push(command(&["add", "Port_Group", &group.name, "acls", &id]));
            }
        }
    }
}

/// Sets a port group's ports to exactly `group.ports`.
fn set_ports(group: &PortGroup) -> Command {
    if group.ports.is_empty() {
        return command(&["clear", "Port_Group", &group.name, "ports"]);
    }
    let mut set = command(&["pg-set-ports", &group.name]);
    set.extend(group.ports.iter().cloned());
    set
}

/// `dhcpv4_options` of a port: the options' UUID (or named UUID), or none.
fn dhcp_reference(port: &str, reference: Option<&str>) -> Command {
    match reference {
        Some(reference) => command(&["set", "Logical_Switch_Port", port, &format!("dhcpv4_options={reference}")]),
        None => command(&["clear", "Logical_Switch_Port", port, "dhcpv4_options"]),
    }
}

/// The switch port `leg` of type `router` that joins `switch` to `router_port`.
fn plan_router_leg(
    out: &mut Vec<Command>,
    installation: &str,
    switch: &Switch,
    leg: &str,
    router_port: &str,
    row: Option<&Row>,
) {
    let wanted_options: BTreeMap<String, String> = [("router-port".to_owned(), router_port.to_owned())].into();
    let in_step = row.is_some_and(|row| {
        row.external(PARENT) == Some(switch.name.as_str())
            && row.set("type") == ["router"]
            && row.set("addresses") == ["router"]
            && row.map("options") == Some(&wanted_options)
    });
    if in_step {
        if row.is_some_and(|row| !marked(row, &switch.owner, Some(&switch.name))) {
            out.push(set_marks("Logical_Switch_Port", leg, installation, &switch.owner, Some(&switch.name)));
        }
        return;
    }
    if row.is_some() {
        out.push(command(&["lsp-del", leg]));
    }
    out.push(command(&["lsp-add", &switch.name, leg]));
    out.push(command(&["lsp-set-type", leg, "router"]));
    out.push(command(&["lsp-set-addresses", leg, "router"]));
    out.push(command(&["lsp-set-options", leg, &format!("router-port={router_port}")]));
    out.push(set_marks("Logical_Switch_Port", leg, installation, &switch.owner, Some(&switch.name)));
}

/// The `localnet` port through which `switch` reaches its physical network.
fn plan_localnet(out: &mut Vec<Command>, installation: &str, switch: &Switch, row: Option<&Row>) {
    let Some(network) = &switch.localnet else { return };
    let port = switch.localnet_port();
    let wanted_options: BTreeMap<String, String> = [("network_name".to_owned(), network.clone())].into();
    let in_step = row.is_some_and(|row| {
        row.external(PARENT) == Some(switch.name.as_str())
            && row.set("type") == ["localnet"]
            && row.set("addresses") == ["unknown"]
            && row.map("options") == Some(&wanted_options)
    });
    if in_step {
        return;
    }
    if row.is_some() {
        out.push(command(&["lsp-del", &port]));
    }
    out.push(command(&["lsp-add", &switch.name, &port]));
    out.push(command(&["lsp-set-type", &port, "localnet"]));
    out.push(command(&["lsp-set-addresses", &port, "unknown"]));
    out.push(command(&["lsp-set-options", &port, &format!("network_name={network}")]));
    out.push(set_marks("Logical_Switch_Port", &port, installation, &switch.owner, Some(&switch.name)));
}

/// Binds a gateway port to its chassis (or unbinds it).
fn plan_gateway_chassis(out: &mut Vec<Command>, port: &crate::model::RouterPort, row: Option<&Row>, current: &Current) {
    let bound: Vec<&Row> = row
        .map(|row| current.gateway_chassis.iter().filter(|g| row.set("gateway_chassis").contains(&g.uuid)).collect())
        .unwrap_or_default();
    let chassis_of = |g: &Row| g.set("chassis_name").first().cloned().unwrap_or_default();
    match &port.gateway_chassis {
        Some(wanted) => {
            if bound.len() != 1 || chassis_of(bound[0]) != *wanted {
                for g in &bound {
                    out.push(command(&["lrp-del-gateway-chassis", &port.name, &chassis_of(g)]));
                }
                out.push(command(&["lrp-set-gateway-chassis", &port.name, wanted, "1"]));
            }
        }
        None => {
            for g in &bound {
                out.push(command(&["lrp-del-gateway-chassis", &port.name, &chassis_of(g)]));
            }
        }
    }
}

/// Rows a parent refers to in one column (a router's routes, NAT rules, policies), each owned
/// by the parent: replaced as a whole, in the same transaction, when any differs.
struct Children<'a> {
    out: &'a mut Vec<Command>,
    installation: &'a str,
    table: &'static str,
    parent: &'a str,
    /// The parent's row, when it exists already.
    row: Option<&'a Row>,
    /// The parent's place among its kind: what keeps the new rows' names apart.
    index: usize,
}

impl Children<'_> {
    fn plan(&mut self, column: &str, child_table: &str, wanted: &[Vec<(&str, String)>], rows: &[Row], id: &str) {
        let key = |pairs: &[(&str, String)]| {
            let mut key: Vec<String> = pairs.iter().map(|(c, v)| format!("{c}={v}")).collect();
            key.sort();
            key
        };
        let wanted_keys: BTreeSet<Vec<String>> = wanted.iter().map(|w| key(w)).collect();
        let referenced = self.row.map(|r| r.set(column).to_vec()).unwrap_or_default();
        let have: Vec<Option<Vec<String>>> = referenced
            .iter()
            .map(|uuid| {
                let row = rows.iter().find(|r| &r.uuid == uuid)?;
                let columns: Vec<&str> =
                    wanted.first().map(|w| w.iter().map(|(c, _)| *c).collect()).unwrap_or_default();
                let pairs: Vec<(&str, String)> =
                    columns.iter().map(|c| (*c, row.set(c).first().cloned().unwrap_or_default())).collect();
                Some(key(&pairs))
            })
            .collect();
        let have_keys: BTreeSet<Vec<String>> = have.iter().flatten().cloned().collect();
        let in_step = have.iter().all(Option::is_some) && have.len() == wanted.len() && have_keys == wanted_keys;
        if in_step || (referenced.is_empty() && wanted.is_empty()) {
            return;
        }
        if !referenced.is_empty() {
            self.out.push(command(&["clear", self.table, self.parent, column]));
        }
        for (number, pairs) in wanted.iter().enumerate() {
            let name = format!("@{id}{}x{number}", self.index);
            let mut create = vec![format!("--id={name}"), "create".into(), child_table.to_owned()];
            // Integers go bare; everything else is a quoted string; an empty value leaves the
            // column at its default (an empty set).
            create.extend(pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(c, v)| {
                if *c == "priority" {
                    format!("{c}={v}")
                } else {
                    format!("{c}={}", quote(v))
                }
            }));
            create.extend(marks(self.installation, self.parent, None));
            self.out.push(create);
            self.out.push(command(&["add", self.table, self.parent, column, &name]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dhcp, PortGroup, Router, RouterPort, SwitchPort};

    pub(crate) fn vpc(installation: &str) -> Desired {
        Desired {
            installation: installation.into(),
            data_dir: String::new(),
            routers: vec![Router {
                name: "stratus-vpc-1".into(),
                owner: "vpc-1".into(),
                ports: vec![RouterPort {
                    name: "stratus-subnet-1-rtr".into(),
                    mac: "02:00:0a:00:01:01".into(),
                    networks: vec!["10.0.1.1/24".into()],
                    gateway_chassis: None,
                }],
                static_routes: Vec::new(),
                nats: Vec::new(),
                policies: Vec::new(),
            }],
            switches: vec![Switch {
                name: "stratus-subnet-1".into(),
                owner: "subnet-1".into(),
                router_port: Some("stratus-subnet-1-rtr".into()),
                gateway_legs: Vec::new(),
                localnet: None,
                dhcp: Some(Dhcp {
                    cidr: "10.0.1.0/24".into(),
                    router: "10.0.1.1".into(),
                    server_mac: "02:00:0a:00:01:01".into(),
                    mtu: 1400,
                    dns_server: "10.0.0.2".into(),
                    lease_secs: 3600,
                }),
                ports: vec![SwitchPort {
                    name: "eni-1".into(),
                    owner: "eni-1".into(),
                    mac: "02:00:00:00:00:10".into(),
                    addresses: vec!["10.0.1.10".into()],
                    port_security: true,
                    service: false,
                    requested_chassis: Vec::new(),
                }],
            }],
            port_groups: Vec::new(),
        }
    }

    fn acl(direction: &'static str, matches: &str, action: &'static str) -> Acl {
        Acl { direction, priority: 1002, matches: matches.into(), action }
    }

    /// `vpc` with a group holding its port, and the ACLs of that group.
    fn guarded(installation: &str) -> Desired {
        let mut d = vpc(installation);
        d.port_groups.push(PortGroup {
            name: "stratus_sg_1".into(),
            owner: "sg-1".into(),
            ports: vec!["eni-1".into()],
            acls: vec![
                acl("to-lport", "outport == @stratus_sg_1 && ip4 && ip4.src == $stratus_sg_1_ip4", "allow-related"),
                acl("from-lport", "inport == @stratus_sg_1 && ip4", "allow-related"),
            ],
        });
        d
    }

    /// The rows `guarded("i1")` leaves, on top of `applied()`.
    fn guarded_rows(current: &mut Current) {
        let mut group = row("stratus_sg_1", "i1", "sg-1", None);
        group.sets.insert("ports".into(), vec!["uuid-eni-1".into()]);
        group.sets.insert("acls".into(), vec!["acl-a".into(), "acl-b".into()]);
        current.port_groups.push(group);
        for (uuid, acl) in ["acl-a", "acl-b"].iter().zip(&guarded("i1").port_groups[0].acls) {
            let mut r = row("", "i1", "stratus_sg_1", None);
            r.uuid = (*uuid).into();
            for (column, value) in [
                ("direction", acl.direction.to_owned()),
                ("priority", acl.priority.to_string()),
                ("match", acl.matches.clone()),
                ("action", acl.action.to_owned()),
            ] {
                r.sets.insert(column.into(), vec![value]);
            }
            current.acls.push(r);
        }
    }

    #[test]
    fn port_groups_come_after_their_ports_with_their_acls() {
        let commands = plan(&guarded("i1"), &applied());
        assert_eq!(verbs(&commands), ["pg-add", "set", "create", "add", "create", "add"], "{commands:?}");
        assert_eq!(commands[0][1..], ["stratus_sg_1", "eni-1"]);
        let text = format!("{commands:?}");
        assert!(
            text.contains(r#"match=\"outport == @stratus_sg_1 && ip4 && ip4.src == $stratus_sg_1_ip4\""#),
            "{text}"
        );
        let mut current = applied();
        guarded_rows(&mut current);
        assert_eq!(plan(&guarded("i1"), &current), Vec::<Command>::new(), "in step");
        // A rule changes: the group's ACLs are replaced in one go; membership is left alone.
        let mut changed = guarded("i1");
        changed.port_groups[0].acls[1].matches = "inport == @stratus_sg_1 && ip4 && tcp".into();
        assert_eq!(verbs(&plan(&changed, &current)), ["clear", "create", "add", "create", "add"]);
        // A member leaves: only the ports are set again.
        let mut emptied = guarded("i1");
        emptied.port_groups[0].ports.clear();
        assert_eq!(plan(&emptied, &current), vec![command(&["clear", "Port_Group", "stratus_sg_1", "ports"])]);
        // The group is no longer wanted: it goes (its ACLs with it).
        assert_eq!(verbs(&plan(&vpc("i1"), &current)), ["pg-del"]);
    }

    fn verbs(commands: &[Command]) -> Vec<String> {
        commands.iter().map(|c| c.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default()).collect()
    }

    #[test]
    fn an_empty_database_gets_everything_in_reference_order() {
        let commands = plan(&vpc("i1"), &Current::default());
        let verbs = verbs(&commands);
        let position = |verb: &str| verbs.iter().position(|v| v == verb).unwrap_or_else(|| panic!("{verb}: {verbs:?}"));
        assert!(position("lr-add") < position("lrp-add") && position("ls-add") < position("lsp-add"));
        assert!(
            position("create") < verbs.iter().rposition(|v| v == "set").unwrap(),
            "options before the port names them"
        );
        let text = format!("{commands:?}");
        assert!(text.contains("router-port=stratus-subnet-1-rtr") && text.contains("dhcpv4_options=@dhcp0"), "{text}");
        assert!(text.contains(r#"external_ids:\"stratus-installation\"=\"i1\""#), "{text}");
        assert!(!verbs.iter().any(|v| v.ends_with("-del") || v == "destroy"), "nothing to delete");
    }

    fn row(name: &str, installation: &str, owner: &str, parent: Option<&str>) -> Row {
        let mut external_ids: BTreeMap<String, String> =
            [(INSTALLATION.to_owned(), installation.to_owned()), (OWNER.to_owned(), owner.to_owned())].into();
        if let Some(parent) = parent {
            external_ids.insert(PARENT.into(), parent.into());
        }
        Row { uuid: format!("uuid-{name}"), name: name.into(), external_ids, ..Default::default() }
    }

    /// What OVN holds once `vpc("i1")` was applied.
    fn applied() -> Current {
        let mut rp = row("stratus-subnet-1-rtr", "i1", "stratus-subnet-1-rtr", Some("stratus-vpc-1"));
        rp.sets.insert("mac".into(), vec!["02:00:0a:00:01:01".into()]);
        rp.sets.insert("networks".into(), vec!["10.0.1.1/24".into()]);
        let mut leg = row("stratus-subnet-1-router", "i1", "subnet-1", Some("stratus-subnet-1"));
        leg.sets.insert("type".into(), vec!["router".into()]);
        leg.sets.insert("addresses".into(), vec!["router".into()]);
        leg.maps.insert("options".into(), [("router-port".to_owned(), "stratus-subnet-1-rtr".to_owned())].into());
        let mut port = row("eni-1", "i1", "eni-1", Some("stratus-subnet-1"));
        port.sets.insert("addresses".into(), vec!["02:00:00:00:00:10 10.0.1.10".into()]);
        port.sets.insert("port_security".into(), vec!["02:00:00:00:00:10 10.0.1.10".into()]);
        port.sets.insert("dhcpv4_options".into(), vec!["uuid-dhcp".into()]);
        let mut dhcp = row("", "i1", "stratus-subnet-1", None);
        dhcp.uuid = "uuid-dhcp".into();
        dhcp.sets.insert("cidr".into(), vec!["10.0.1.0/24".into()]);
        let options = vpc("i1").switches[0].dhcp.as_ref().unwrap().options();
        dhcp.maps.insert("options".into(), options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        Current {
            routers: vec![row("stratus-vpc-1", "i1", "vpc-1", None)],
            router_ports: vec![rp],
            switches: vec![row("stratus-subnet-1", "i1", "subnet-1", None)],
            switch_ports: vec![leg, port],
            dhcp: vec![dhcp],
            ..Default::default()
        }
    }

    #[test]
    fn in_step_plans_nothing_and_drift_plans_its_repair() {
        assert_eq!(plan(&vpc("i1"), &applied()), Vec::<Command>::new());
        let mut drifted = applied();
        drifted.switch_ports[1].sets.insert("port_security".into(), vec![]);
        drifted.dhcp[0].maps.get_mut("options").unwrap().insert("mtu".into(), "9000".into());
        let commands = plan(&vpc("i1"), &drifted);
        assert_eq!(verbs(&commands), ["set", "lsp-set-port-security"], "{commands:?}");
        assert_eq!(commands[0][2], "uuid-dhcp");
    }

    #[test]
    fn a_migrating_port_is_bound_on_two_chassis_then_on_the_new_one() {
        let mut migrating = vpc("i1");
        migrating.switches[0].ports[0].requested_chassis = vec!["h1".into(), "h2".into()];
        let commands = plan(&migrating, &applied());
        assert_eq!(
            commands,
            vec![command(&["lsp-set-options", "eni-1", "activation-strategy=rarp", "requested-chassis=h1,h2"])]
        );
        let mut during = applied();
        let options = [("requested-chassis", "h1,h2"), ("activation-strategy", "rarp")];
        during.switch_ports[1].maps.insert("options".into(), options.map(|(k, v)| (k.into(), v.into())).into());
        assert_eq!(plan(&migrating, &during), Vec::<Command>::new(), "in step");
        let mut moved = vpc("i1");
        moved.switches[0].ports[0].requested_chassis = vec!["h2".into()];
        assert_eq!(plan(&moved, &during), vec![command(&["lsp-set-options", "eni-1", "requested-chassis=h2"])]);
        // A host whose chassis is unknown: no binding asked, none kept.
        assert_eq!(plan(&vpc("i1"), &during), vec![command(&["lsp-set-options", "eni-1"])]);
    }

    #[test]
    fn what_is_no_longer_wanted_goes_ports_first() {
        let commands = plan(&Desired { installation: "i1".into(), ..Default::default() }, &applied());
        // The switch's ports go with it, the router's with it: no separate deletes.
        assert_eq!(verbs(&commands), ["destroy", "ls-del", "lr-del"], "{commands:?}");
        let mut one_port_less = vpc("i1");
        one_port_less.switches[0].ports.clear();
        one_port_less.switches[0].dhcp = None;
        let commands = plan(&one_port_less, &applied());
        // A port that goes gives its addresses up first, in the same batch (a new port may take
        // them), then goes.
        assert_eq!(verbs(&commands), ["lsp-set-addresses", "lsp-del", "destroy"], "{commands:?}");
        assert_eq!((commands[0].len(), commands[1][1].as_str()), (2, "eni-1"));
    }

    #[test]
    fn values_are_quoted_whatever_they_hold() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(map_value(&[("k", "v 1".into())]), r#"{"k"="v 1"}"#);
    }
}
