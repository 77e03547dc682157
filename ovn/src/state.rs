//! The rows one installation owns, as `ovn-nbctl --format=json` reports them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Error, Northbound, Result, INSTALLATION};

/// One row: its UUID, name, `external_ids` and the other columns read, each as a set of
/// strings (an atom is a set of one; a UUID is its string) or as a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub sets: BTreeMap<String, Vec<String>>,
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
}

impl Row {
    pub fn set(&self, column: &str) -> &[String] {
        self.sets.get(column).map_or(&[], Vec::as_slice)
    }

    pub fn map(&self, column: &str) -> Option<&BTreeMap<String, String>> {
        self.maps.get(column)
    }

    pub fn external(&self, key: &str) -> Option<&str> {
        self.external_ids.get(key).map(String::as_str)
    }
}

/// What one installation holds in OVN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub routers: Vec<Row>,
    pub router_ports: Vec<Row>,
    pub switches: Vec<Row>,
    pub switch_ports: Vec<Row>,
    /// DHCP option sets (no name: their owner is the switch's name).
    pub dhcp: Vec<Row>,
    pub port_groups: Vec<Row>,
    /// The ACLs of the installation's port groups (no name: their owner is the group's name).
    pub acls: Vec<Row>,
    /// Routers' static routes, NAT rules and policies (no name: their owner is the router's).
    pub static_routes: Vec<Row>,
    pub nats: Vec<Row>,
    pub policies: Vec<Row>,
    /// Every gateway chassis binding of the database (they carry no marks; few exist).
    pub gateway_chassis: Vec<Row>,
}

impl Current {
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
            && self.router_ports.is_empty()
            && self.switches.is_empty()
            && self.switch_ports.is_empty()
            && self.dhcp.is_empty()
            && self.port_groups.is_empty()
            && self.acls.is_empty()
            && self.static_routes.is_empty()
            && self.nats.is_empty()
            && self.policies.is_empty()
    }
}

const TABLES: [(&str, &str); 10] = [
    ("Logical_Router", "_uuid,name,external_ids,static_routes,nat,policies"),
    ("Logical_Router_Port", "_uuid,name,external_ids,mac,networks,gateway_chassis"),
    ("Logical_Switch", "_uuid,name,external_ids"),
    ("Logical_Switch_Port", "_uuid,name,external_ids,type,addresses,port_security,options,dhcpv4_options"),
    ("DHCP_Options", "_uuid,external_ids,cidr,options"),
    ("Port_Group", "_uuid,name,external_ids,ports,acls"),
    ("ACL", "_uuid,external_ids,direction,priority,match,action"),
    ("Logical_Router_Static_Route", "_uuid,external_ids,ip_prefix,nexthop"),
    ("NAT", "_uuid,external_ids,type,external_ip,logical_ip"),
    ("Logical_Router_Policy", "_uuid,external_ids,priority,match,action,nexthops"),
];

/// Reads every table in one `ovn-nbctl` call: each call fetches the whole database before it
/// runs its commands, so one call per table cost as many full reads (a third of a second per
/// sweep at 1,000 ports).
pub(crate) fn read(nb: &Northbound, installation: &str) -> Result<Current> {
    let condition = format!("external_ids:{INSTALLATION}={}", crate::quote(installation));
    let mut args: Vec<String> = vec!["--format=json".into()];
    for (table, columns) in TABLES {
        args.extend(["--".into(), format!("--columns={columns}"), "find".into(), table.into(), condition.clone()]);
    }
    args.extend(["--".into(), "--columns=_uuid,name,chassis_name,priority".into(), "list".into()]);
    args.push("Gateway_Chassis".into());
    let text = nb.nbctl(&args)?;
    // One JSON document per command, in order.
    let mut tables = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|document| parse_value(&document.map_err(|e| Error::Unreadable(e.to_string()))?))
        .collect::<Result<Vec<_>>>()?;
    if tables.len() != TABLES.len() + 1 {
        return Err(Error::Unreadable(format!("{} answers to {} reads", tables.len(), TABLES.len() + 1)));
    }
    let gateway_chassis = tables.pop().unwrap_or_default();
    let [routers, router_ports, switches, switch_ports, dhcp, port_groups, acls, static_routes, nats, policies]: [Vec<
        Row,
    >;
        10] = tables.try_into().map_err(|_| Error::Unreadable("table count".into()))?;
    Ok(Current {
        routers,
        router_ports,
        switches,
        switch_ports,
        dhcp,
        port_groups,
        acls,
        static_routes,
        nats,
        policies,
        gateway_chassis,
    })
}

/// Rows out of `{"headings": [...], "data": [[...], ...]}`.
#[cfg(test)]
fn parse(text: &str) -> Result<Vec<Row>> {
    parse_value(&serde_json::from_str(text).map_err(|e| Error::Unreadable(e.to_string()))?)
}

/// Rows out of one parsed answer: `{"headings": [...], "data": [[...], ...]}`.
fn parse_value(value: &Value) -> Result<Vec<Row>> {
    let unreadable = |what: &str| {
        Error::Unreadable(format!("{what} in {}", value.to_string().chars().take(200).collect::<String>()))
    };
    let headings: Vec<&str> = value["headings"]
        .as_array()
        .ok_or_else(|| unreadable("no headings"))?
        .iter()
        .map(|h| h.as_str().unwrap_or_default())
        .collect();
    let mut rows = Vec::new();
    for data in value["data"].as_array().ok_or_else(|| unreadable("no data"))? {
        let cells = data.as_array().ok_or_else(|| unreadable("a row that is no array"))?;
        let mut row = Row::default();
        for (heading, cell) in headings.iter().zip(cells) {
            match (*heading, cell) {
                ("_uuid", cell) => row.uuid = atoms(cell).into_iter().next().unwrap_or_default(),
                ("name", cell) => row.name = atoms(cell).into_iter().next().unwrap_or_default(),
                ("external_ids", cell) => row.external_ids = map(cell),
                (column, cell) if is_map(cell) => {
                    row.maps.insert((*column).to_owned(), map(cell));
                }
                (column, cell) => {
                    row.sets.insert((*column).to_owned(), atoms(cell));
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn is_map(cell: &Value) -> bool {
    cell.get(0).and_then(Value::as_str) == Some("map")
}

/// A set, or a single atom, as strings (a UUID as its string).
fn atoms(cell: &Value) -> Vec<String> {
    match cell {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Array(parts) => match (parts.first().and_then(Value::as_str), parts.get(1)) {
            (Some("set"), Some(Value::Array(items))) => items.iter().flat_map(atoms).collect(),
            (Some("uuid" | "named-uuid"), Some(Value::String(uuid))) => vec![uuid.clone()],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn map(cell: &Value) -> BTreeMap<String, String> {
    let Some(Value::Array(pairs)) = cell.get(1) else { return BTreeMap::new() };
    pairs
        .iter()
        .filter_map(|pair| {
            let key = atoms(pair.get(0)?).into_iter().next()?;
            let value = atoms(pair.get(1)?).into_iter().next()?;
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_sets_atoms_maps_and_uuids() {
        let text = r#"{"data":[[["uuid","422f"],"p1",["map",[["stratus-installation","abc"]]],"52:54:00:00:00:01 10.0.1.10",["set",[]],["map",[["router-port","r1"]]],["uuid","fc42"]],
            [["uuid","5a5a"],"p2",["map",[]],["set",["a","b"]],"x",["map",[]],["set",[]]]],
            "headings":["_uuid","name","external_ids","addresses","port_security","options","dhcpv4_options"]}"#;
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].uuid.as_str(), rows[0].name.as_str()), ("422f", "p1"));
        assert_eq!(rows[0].external(INSTALLATION), Some("abc"));
        assert_eq!(rows[0].set("addresses"), ["52:54:00:00:00:01 10.0.1.10"]);
        assert!(rows[0].set("port_security").is_empty());
        assert_eq!(rows[0].map("options").unwrap()["router-port"], "r1");
        assert_eq!(rows[0].set("dhcpv4_options"), ["fc42"]);
        assert_eq!(rows[1].set("addresses"), ["a", "b"]);
        assert!(rows[1].set("dhcpv4_options").is_empty());
        assert!(parse("not json").is_err() && parse("{}").is_err());
    }
}
