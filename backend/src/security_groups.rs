//! Security groups: named sets of rules, attached to instances.
//!
//! 1. Every VPC has a `default` group, made the first time anything asks for the account's
//!    groups: it lets in traffic from its own members and out to anywhere, as on AWS. Its id
//!    is derived from the account and VPC, so making it twice makes the same group.
//! 2. A new group starts with AWS's default egress rule (all traffic to `0.0.0.0/0`);
//!    clients such as Terraform revoke it first and then add their own.
//! 3. Rules are stored one peer each (EC2's `SecurityGroupRule`) after [`normalize_rule`]
//!    has settled their protocol and ports, so that a rule authorized twice is found
//!    whatever spelling the client used, and revoking matches what was authorized.
//! 4. A group cannot go while an instance or another group's rule uses it.
//!
//! Enforcement on the hosts is not here: this module is the record of what is allowed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use storage::tables::{SECURITY_GROUPS, SECURITY_GROUP_NAMES};
use storage::{NameRecord, Reads, RulePeer, SecurityGroupRecord, SecurityGroupRuleRecord, WriteTx};

use crate::{ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// Most rules per group and direction, as AWS's default quota.
pub const MAX_RULES_PER_DIRECTION: usize = 60;

/// A rule as a request states it, before normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: PeerSpec,
    pub description: Option<String>,
}

/// A rule's peer as a request states it: a group may be named instead of given by id (in the
/// default VPC).
#[derive(Debug, Clone, PartialEq)]
pub enum PeerSpec {
    Ipv4(String),
    Ipv6(String),
    Group(GroupRef),
    PrefixList(String),
}

/// The protocol name EC2 echoes for a protocol given by name or number; `None` if unknown.
fn protocol_name(given: &str) -> Option<String> {
    let lower = given.trim().to_ascii_lowercase();
    let named = match lower.as_str() {
        "-1" | "all" => "-1",
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        "icmpv6" | "58" => "icmpv6",
        number => return number.parse::<u8>().ok().map(|n| n.to_string()),
    };
    Some(named.to_owned())
}

/// A rule's protocol and ports as stored: ports for tcp and udp (both required, in order),
/// ICMP type and code (`-1` for any), nothing for the other protocols, whose ports EC2
/// ignores.
pub fn normalize_ports(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> Result<(String, Option<i32>, Option<i32>)> {
    let name = protocol_name(protocol).ok_or_else(|| {
        invalid("IpProtocol", format!("Invalid value '{protocol}' for IP protocol. Unknown protocol."))
    })?;
    match name.as_str() {
        "tcp" | "udp" => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(invalid(
                    "FromPort",
                    format!(
                        "Invalid value for portRange. Must specify both from and to ports with {}.",
                        name.to_uppercase()
                    ),
                ));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(invalid(
                    "FromPort",
                    format!("Invalid value for portRange: from port {from}, to port {to}."),
                ));
            }
            Ok((name, Some(from), Some(to)))
        }
        "icmp" | "icmpv6" => {
            let (kind, code) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&kind) || !(-1..=255).contains(&code) {
                return Err(invalid("FromPort", format!("Invalid value for ICMP type {kind} or code {code}.")));
            }
            Ok((name, Some(kind), Some(code)))
        }
        _ => Ok((name, None, None)),
    }
}

/// A CIDR in its canonical form (`10.0.0.0/8`); host bits set are refused, as EC2 does.
pub fn normalize_cidr(text: &str, v6: bool) -> Result<String> {
    let bad = || {
        let name = if v6 { "CidrIpv6" } else { "CidrIp" };
        invalid(name, format!("Value ({text}) for parameter cidrIp is invalid. This is not a valid CIDR block."))
    };
    let (address, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if v6 {
        let address: Ipv6Addr = address.parse().map_err(|_| bad())?;
        if prefix > 128 || (prefix < 128 && u128::from(address) & (u128::MAX >> prefix) != 0) {
            return Err(bad());
        }
        Ok(format!("{address}/{prefix}"))
    } else {
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        if prefix > 32 || (prefix < 32 && u32::from(address) & (u32::MAX >> prefix) != 0) {
            return Err(bad());
        }
        Ok(format!("{address}/{prefix}"))
    }
}

/// Whether two rules allow the same thing (descriptions aside).
fn same_rule(a: &SecurityGroupRuleRecord, b: &SecurityGroupRuleRecord) -> bool {
    (a.egress, &a.protocol, a.from_port, a.to_port, &a.peer) == (b.egress, &b.protocol, b.from_port, b.to_port, &b.peer)
}

/// EC2's wording of a rule in `InvalidPermission` messages.
fn describe_rule(rule: &SecurityGroupRuleRecord) -> String {
    let peer = match &rule.peer {
        RulePeer::Ipv4 { cidr } | RulePeer::Ipv6 { cidr } => cidr.clone(),
        RulePeer::Group { group_id, .. } => group_id.clone(),
        RulePeer::PrefixList { id } => id.clone(),
    };
    let protocol = if rule.protocol == "-1" { "ALL".to_owned() } else { rule.protocol.to_uppercase() };
    let ports = match (rule.from_port, rule.to_port) {
        (Some(from), Some(to)) => format!(", from port: {from}, to port: {to}"),
        _ => String::new(),
    };
    format!("peer: {peer}, {protocol}{ports}, ALLOW")
}

fn not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::SecurityGroup, id: id.to_owned() }
}

fn group_key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

fn name_key(account: &str, vpc_id: &str, name: &str) -> String {
    format!("{account}/{vpc_id}/{name}")
}

/// The id of `vpc_id`'s default group.
pub fn default_group_id(account: &str, vpc_id: &str) -> String {
    ids::derived_id("sg", &[account, vpc_id, "default"])
}

fn all_traffic_to_anywhere() -> SecurityGroupRuleRecord {
    SecurityGroupRuleRecord {
        id: ids::resource_id("sgr"),
        egress: true,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() },
        description: None,
    }
}

/// Makes `vpc_id`'s default group inside `tx` if it does not exist yet.
pub(crate) fn ensure_default_group(tx: &WriteTx, account: &str, vpc_id: &str) -> Result<()> {
    let id = default_group_id(account, vpc_id);
    if tx.get(&SECURITY_GROUPS, &group_key(account, &id))?.is_some() {
        return Ok(());
    }
    let from_members = SecurityGroupRuleRecord {
        id: ids::resource_id("sgr"),
        egress: false,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: RulePeer::Group { group_id: id.clone(), account: account.to_owned() },
        description: None,
    };
    let group = SecurityGroupRecord {
        id: id.clone(),
        account: account.to_owned(),
        vpc_id: vpc_id.to_owned(),
        name: "default".into(),
        description: "default VPC security group".into(),
        default: true,
        rules: vec![from_members, all_traffic_to_anywhere()],
        created_ms: now_ms(),
    };
    tx.insert(&SECURITY_GROUPS, &group_key(account, &id), &group)?;
    tx.insert(&SECURITY_GROUP_NAMES, &name_key(account, vpc_id, "default"), &NameRecord { id })?;
    Ok(())
}

/// The ids of the groups an instance is launched into: those named by id or by name, or the
/// VPC's default group when none is named. Every group must be in `vpc_id`.
pub(crate) fn resolve_launch_groups(
    tx: &WriteTx,
    account: &str,
    vpc_id: &str,
    ids: &[String],
    names: &[String],
) -> Result<Vec<String>> {
    ensure_default_group(tx, account, vpc_id)?;
    let mut resolved = Vec::new();
    for id in ids {
        let group = tx.get(&SECURITY_GROUPS, &group_key(account, id))?.ok_or_else(|| not_found(id))?;
        if group.vpc_id != vpc_id {
            return Err(invalid(
                "SecurityGroupId",
                format!("Security group {id} and subnet belong to different networks."),
            ));
        }
        resolved.push(group.id);
    }
    for name in names {
        let entry = tx.get(&SECURITY_GROUP_NAMES, &name_key(account, vpc_id, name))?;
        resolved.push(
            entry.ok_or_else(|| Error::SecurityGroupNameNotFound { name: name.clone(), vpc_id: vpc_id.to_owned() })?.id,
        );
    }
    if resolved.is_empty() {
        resolved.push(default_group_id(account, vpc_id));
    }
    resolved.dedup();
    Ok(resolved)
}

/// Which group a request means: by id, or by name in the default VPC.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRef {
    Id(String),
    Name(String),
}

fn group_id_in(tx: &impl Reads, account: &str, vpc_id: &str, group: &GroupRef) -> Result<String> {
    match group {
        GroupRef::Id(id) => Ok(id.clone()),
        GroupRef::Name(name) => tx
            .get(&SECURITY_GROUP_NAMES, &name_key(account, vpc_id, name))?
            .map(|n| n.id)
            .ok_or_else(|| Error::SecurityGroupNameNotFound { name: name.clone(), vpc_id: vpc_id.to_owned() }),
    }
}

impl Backend {
    /// CreateSecurityGroup, in the account's default VPC (the only VPC there is).
    pub fn create_security_group(
        &self,
        account: &str,
        default_vpc: &str,
        vpc_id: Option<&str>,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<SecurityGroupRecord> {
        let vpc_id = match vpc_id {
            Some(id) => self.vpc(account, id)?.id,
            None => self.default_vpc(account, default_vpc)?.ok_or(Error::NoDefaultVpc)?,
        };
        let vpc_id = vpc_id.as_str();
        for (field, value) in [("GroupName", name), ("GroupDescription", description)] {
            if value.is_empty() || value.chars().count() > 255 {
                return Err(invalid(field, format!("Value for {field} must be 1 to 255 characters long.")));
            }
            // EC2 allows a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$* in a VPC.
            if let Some(bad) =
                value.chars().find(|c| !(c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(*c)))
            {
                return Err(invalid(field, format!("Character '{bad}' is not allowed in {field}.")));
            }
        }
        if name.eq_ignore_ascii_case("default") {
            return Err(invalid("GroupName", "Cannot use reserved security group name: default"));
        }
        if name.starts_with("sg-") {
            return Err(invalid("GroupName", "Group names may not be in the format sg-*."));
        }
        tags::validate_tags(tags)?;
        self.store().write(|tx| {
            ensure_default_group(tx, account, vpc_id)?;
            let names = name_key(account, vpc_id, name);
            if tx.get(&SECURITY_GROUP_NAMES, &names)?.is_some() {
                return Err(Error::SecurityGroupDuplicate { name: name.to_owned(), vpc_id: vpc_id.to_owned() });
            }
            let group = SecurityGroupRecord {
                id: ids::resource_id("sg"),
                account: account.to_owned(),
                vpc_id: vpc_id.to_owned(),
                name: name.to_owned(),
                description: description.to_owned(),
                default: false,
                rules: vec![all_traffic_to_anywhere()],
                created_ms: now_ms(),
            };
            tx.insert(&SECURITY_GROUPS, &group_key(account, &group.id), &group)?;
            tx.insert(&SECURITY_GROUP_NAMES, &names, &NameRecord { id: group.id.clone() })?;
            tags::put_tags(tx, account, &group.id, tags)?;
            Ok(group)
        })
    }

    /// Every group of the account, its default group included, by id.
    pub fn security_groups(&self, account: &str, default_vpc: &str) -> Result<Vec<SecurityGroupRecord>> {
        self.ensure_default_security_group(account, default_vpc)?;
        let groups = self.store().read(|tx| tx.scan(&SECURITY_GROUPS, &format!("{account}/")))?;
        Ok(groups.into_iter().map(|(_, g)| g).collect())
    }

    /// Makes the VPC's `default` group on first need, as every VPC has one.
    pub fn ensure_default_security_group(&self, account: &str, default_vpc: &str) -> Result<()> {
        // An account whose default VPC was deleted has no default group to make.
        let Some(default_vpc) = self.default_vpc(account, default_vpc)? else { return Ok(()) };
        let default_vpc = default_vpc.as_str();
        let default_id = default_group_id(account, default_vpc);
        if self.store().read(|tx| tx.get(&SECURITY_GROUPS, &group_key(account, &default_id)))?.is_none() {
            self.store().write(|tx| ensure_default_group(tx, account, default_vpc))?;
        }
        Ok(())
    }

    /// The ids of the VPC's groups named `names`, as asked; a name of no group is an error.
    pub fn security_group_ids_named(&self, account: &str, vpc_id: &str, names: &[String]) -> Result<Vec<String>> {
        self.store().read(|tx| {
            names.iter().map(|name| group_id_in(tx, account, vpc_id, &GroupRef::Name(name.clone()))).collect()
        })
    }

    /// The names of the account's groups among `ids` (by id), read one by one: a page of
    /// instances costs its own groups, not the account's.
    pub fn security_group_names_of<'a>(
        &self,
        account: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, String>> {
        self.store().read(|tx| {
            let mut names = HashMap::new();
            for id in ids {
                if names.contains_key(id) {
                    continue;
                }
                let key = group_key(account, id);
                if let Some(group) = tx.get_part::<_, storage::SecurityGroupName>(&SECURITY_GROUPS, &key)? {
                    names.insert(group.id, group.name);
                }
            }
            Ok(names)
        })
    }

    /// DeleteSecurityGroup; answers the deleted group's id.
    pub fn delete_security_group(&self, account: &str, default_vpc: &str, group: &GroupRef) -> Result<String> {
        self.store().write(|tx| {
            let id = group_id_in(tx, account, default_vpc, group)?;
            let record = tx.get(&SECURITY_GROUPS, &group_key(account, &id))?.ok_or_else(|| not_found(&id))?;
            if record.default {
                return Err(Error::CannotDelete(format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                )));
            }
            let in_use = tx.any_live_instance_with(account, "instance.group-id", &id, |_| true)?;
            let referenced = tx.scan(&SECURITY_GROUPS, &format!("{account}/"))?.into_iter().any(|(_, g)| {
                g.id != id
                    && g.rules.iter().any(|r| matches!(&r.peer, RulePeer::Group { group_id, .. } if *group_id == id))
            });
            if in_use || referenced || crate::interfaces::in_group(tx, account, &id)? {
                return Err(Error::DependencyViolation(format!("resource {id} has a dependent object")));
            }
            tx.remove(&SECURITY_GROUPS, &group_key(account, &id))?;
            tx.remove(&SECURITY_GROUP_NAMES, &name_key(account, &record.vpc_id, &record.name))?;
            tags::drop_tags(tx, account, &id)?;
            for rule in &record.rules {
                tags::drop_tags(tx, account, &rule.id)?;
            }
            Ok(id)
        })
    }

    /// Turns request rules into stored ones: protocol and ports settled, CIDRs canonical,
    /// referenced groups resolved and checked.
    fn rules_from_specs(
        &self,
        tx: &WriteTx,
        account: &str,
        vpc_id: &str,
        egress: bool,
        specs: &[RuleSpec],
    ) -> Result<Vec<SecurityGroupRuleRecord>> {
        if specs.is_empty() {
            return Err(Error::MissingParameter("IpPermissions".into()));
        }
        specs
            .iter()
            .map(|spec| {
                let (protocol, from_port, to_port) = normalize_ports(&spec.protocol, spec.from_port, spec.to_port)?;
                let peer = match &spec.peer {
                    PeerSpec::Ipv4(cidr) => RulePeer::Ipv4 { cidr: normalize_cidr(cidr, false)? },
                    PeerSpec::Ipv6(cidr) => RulePeer::Ipv6 { cidr: normalize_cidr(cidr, true)? },
                    PeerSpec::PrefixList(id) => {
                        return Err(invalid("PrefixListId", format!("The prefix list '{id}' does not exist.")))
                    }
                    PeerSpec::Group(group) => {
                        let group_id = group_id_in(tx, account, vpc_id, group)?;
                        let peer = tx.get(&SECURITY_GROUPS, &group_key(account, &group_id))?;
                        let peer = peer.ok_or_else(|| not_found(&group_id))?;
                        // A group's members are addresses of its VPC: in another VPC the same
                        // addresses are other guests, maybe another account's.
                        if peer.vpc_id != vpc_id {
                            return Err(invalid(
                                "GroupId",
                                format!(
                                    "You have specified two resources that belong to different networks ({group_id})."
                                ),
                            ));
                        }
                        RulePeer::Group { group_id, account: account.to_owned() }
                    }
                };
                if let Some(text) = &spec.description {
                    if text.chars().count() > 255 {
                        return Err(invalid("Description", "Rule descriptions are at most 255 characters long."));
                    }
                }
                Ok(SecurityGroupRuleRecord {
                    id: ids::resource_id("sgr"),
                    egress,
                    protocol,
                    from_port,
                    to_port,
                    peer,
                    description: spec.description.clone().filter(|d| !d.is_empty()),
                })
            })
            .collect()
    }

    /// The group a rule change names, with its key, inside the change's transaction.
    fn group_for_change(
        &self,
        tx: &WriteTx,
        account: &str,
        default_vpc: &str,
        group: &GroupRef,
    ) -> Result<(String, SecurityGroupRecord)> {
        ensure_default_group(tx, account, default_vpc)?;
        let id = group_id_in(tx, account, default_vpc, group)?;
        let key = group_key(account, &id);
        let record = tx.get(&SECURITY_GROUPS, &key)?.ok_or_else(|| not_found(&id))?;
        Ok((key, record))
    }

    /// AuthorizeSecurityGroupIngress/Egress: adds every rule or none; answers the group as it
    /// is now and the new rules.
    pub fn authorize_security_group(
        &self,
        account: &str,
        default_vpc: &str,
        group: &GroupRef,
        egress: bool,
        specs: &[RuleSpec],
        rule_tags: &[(String, String)],
    ) -> Result<(SecurityGroupRecord, Vec<SecurityGroupRuleRecord>)> {
        tags::validate_tags(rule_tags)?;
        self.network_changed_after(self.store().write(|tx| {
            let (key, mut record) = self.group_for_change(tx, account, default_vpc, group)?;
            let added = self.rules_from_specs(tx, account, &record.vpc_id, egress, specs)?;
            for (index, rule) in added.iter().enumerate() {
                if record.rules.iter().chain(&added[..index]).any(|r| same_rule(r, rule)) {
                    return Err(Error::PermissionDuplicate(describe_rule(rule)));
                }
            }
            record.rules.extend(added.iter().cloned());
            if record.rules.iter().filter(|r| r.egress == egress).count() > MAX_RULES_PER_DIRECTION {
                return Err(Error::RulesLimitExceeded);
            }
            tx.insert(&SECURITY_GROUPS, &key, &record)?;
            for rule in &added {
                tags::put_tags(tx, account, &rule.id, rule_tags)?;
            }
            Ok((record, added))
        }))
    }

    /// RevokeSecurityGroupIngress/Egress, by rule or by rule id: removes every one or none;
    /// answers the group's id and the removed rules.
    pub fn revoke_security_group(
        &self,
        account: &str,
        default_vpc: &str,
        group: &GroupRef,
        egress: bool,
        specs: &[RuleSpec],
        rule_ids: &[String],
    ) -> Result<(String, Vec<SecurityGroupRuleRecord>)> {
        self.network_changed_after(self.store().write(|tx| {
            let (key, mut record) = self.group_for_change(tx, account, default_vpc, group)?;
            let mut revoked = Vec::new();
            if !specs.is_empty() {
                for wanted in self.rules_from_specs(tx, account, &record.vpc_id, egress, specs)? {
                    let position = record
                        .rules
                        .iter()
                        .position(|r| same_rule(r, &wanted))
                        .ok_or_else(|| Error::PermissionNotFound(describe_rule(&wanted)))?;
                    revoked.push(record.rules.remove(position));
                }
            }
            for rule_id in rule_ids {
                let position =
                    record.rules.iter().position(|r| &r.id == rule_id && r.egress == egress).ok_or_else(|| {
                        Error::ResourceNotFound { kind: ResourceKind::SecurityGroupRule, id: rule_id.clone() }
                    })?;
                revoked.push(record.rules.remove(position));
            }
            if revoked.is_empty() {
                return Err(Error::MissingParameter("IpPermissions".into()));
            }
            tx.insert(&SECURITY_GROUPS, &key, &record)?;
            for rule in &revoked {
                tags::drop_tags(tx, account, &rule.id)?;
            }
            Ok((record.id, revoked))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::backend;

    fn tcp(port: i32, cidr: &str) -> RuleSpec {
        RuleSpec {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            peer: PeerSpec::Ipv4(cidr.into()),
            description: None,
        }
    }

    #[test]
    fn protocols_and_ports_are_settled_as_ec2_echoes_them() {
        assert_eq!(normalize_ports("6", Some(22), Some(22)).unwrap(), ("tcp".into(), Some(22), Some(22)));
        assert_eq!(normalize_ports("-1", Some(0), Some(0)).unwrap(), ("-1".into(), None, None));
        assert_eq!(normalize_ports("ICMP", None, None).unwrap(), ("icmp".into(), Some(-1), Some(-1)));
        assert_eq!(normalize_ports("47", Some(1), Some(2)).unwrap(), ("47".into(), None, None));
        assert!(normalize_ports("tcp", Some(22), None).is_err());
        assert!(normalize_ports("udp", Some(100), Some(99)).is_err());
        assert!(normalize_ports("tcp", Some(0), Some(65536)).is_err());
        assert!(normalize_ports("bogus", None, None).is_err());
        assert!(normalize_ports("256", None, None).is_err());
    }

    #[test]
    fn cidrs_are_canonical_and_host_bits_refused() {
        assert_eq!(normalize_cidr("0.0.0.0/0", false).unwrap(), "0.0.0.0/0");
        assert_eq!(normalize_cidr("2001:DB8::/32", true).unwrap(), "2001:db8::/32");
        assert!(normalize_cidr("10.0.0.1/8", false).is_err());
        assert!(normalize_cidr("10.0.0.0", false).is_err());
        assert!(normalize_cidr("10.0.0.0/33", false).is_err());
        assert!(normalize_cidr("::/0", false).is_err());
    }

    #[test]
    fn groups_start_with_default_egress_and_refuse_duplicates() {
        let b = backend();
        let group = b.create_security_group("a", "vpc-1", None, "web", "web servers", &[]).unwrap();
        assert_eq!(group.rules.len(), 1);
        assert!(group.rules[0].egress && group.rules[0].protocol == "-1");
        assert!(matches!(
            b.create_security_group("a", "vpc-1", None, "web", "again", &[]),
            Err(Error::SecurityGroupDuplicate { .. })
        ));
        assert!(matches!(
            b.create_security_group("a", "vpc-1", Some("vpc-2"), "x", "x", &[]),
            Err(Error::ResourceNotFound { kind: ResourceKind::Vpc, .. })
        ));
        // Another account has its own namespace, and each has a default group.
        b.create_security_group("b", "vpc-9", None, "web", "web servers", &[]).unwrap();
        let names: Vec<String> = b.security_groups("a", "vpc-1").unwrap().into_iter().map(|g| g.name).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"default".to_owned()) && names.contains(&"web".to_owned()));

        let id = GroupRef::Id(group.id.clone());
        let ssh = tcp(22, "0.0.0.0/0");
        b.authorize_security_group("a", "vpc-1", &id, false, std::slice::from_ref(&ssh), &[]).unwrap();
        let spelled_otherwise = RuleSpec { protocol: "6".into(), description: Some("again".into()), ..ssh.clone() };
        assert!(matches!(
            b.authorize_security_group("a", "vpc-1", &id, false, &[spelled_otherwise], &[]),
            Err(Error::PermissionDuplicate(_))
        ));
        // All or nothing: one duplicate in a batch adds none of it.
        let batch = [tcp(80, "0.0.0.0/0"), tcp(22, "0.0.0.0/0")];
        assert!(b.authorize_security_group("a", "vpc-1", &id, false, &batch, &[]).is_err());
        let stored = b.security_groups("a", "vpc-1").unwrap().into_iter().find(|g| g.id == group.id).unwrap();
        assert_eq!(stored.rules.len(), 2);
        assert!(matches!(
            b.revoke_security_group("a", "vpc-1", &id, false, &[tcp(443, "0.0.0.0/0")], &[]),
            Err(Error::PermissionNotFound(_))
        ));
        let (_, revoked) = b.revoke_security_group("a", "vpc-1", &id, false, &[ssh], &[]).unwrap();
        assert_eq!(revoked[0].from_port, Some(22));
        let all = RuleSpec {
            protocol: "-1".into(),
            from_port: Some(0),
            to_port: Some(0),
            peer: PeerSpec::Ipv4("0.0.0.0/0".into()),
            description: None,
        };
        b.revoke_security_group("a", "vpc-1", &id, true, &[all], &[]).unwrap();
    }

    #[test]
    fn groups_in_use_or_referenced_cannot_go() {
        let b = backend();
        let web = b.create_security_group("a", "vpc-1", None, "web", "web", &[]).unwrap();
        let db = b.create_security_group("a", "vpc-1", None, "db", "db", &[]).unwrap();
        let from_web = RuleSpec {
            protocol: "tcp".into(),
            from_port: Some(5432),
            to_port: Some(5432),
            peer: PeerSpec::Group(GroupRef::Name("web".into())),
            description: None,
        };
        let (_, rules) =
            b.authorize_security_group("a", "vpc-1", &GroupRef::Id(db.id.clone()), false, &[from_web], &[]).unwrap();
        assert_eq!(rules[0].peer, RulePeer::Group { group_id: web.id.clone(), account: "a".into() });
        assert!(matches!(
            b.delete_security_group("a", "vpc-1", &GroupRef::Name("web".into())),
            Err(Error::DependencyViolation(_))
        ));
        let default = GroupRef::Id(default_group_id("a", "vpc-1"));
        assert!(matches!(b.delete_security_group("a", "vpc-1", &default), Err(Error::CannotDelete(_))));
        assert_eq!(b.delete_security_group("a", "vpc-1", &GroupRef::Id(db.id.clone())).unwrap(), db.id);
        assert_eq!(b.delete_security_group("a", "vpc-1", &GroupRef::Name("web".into())).unwrap(), web.id);
        assert!(matches!(
            b.delete_security_group("a", "vpc-1", &GroupRef::Id(web.id)),
            Err(Error::ResourceNotFound { .. })
        ));
    }
}
