//! Security group rules between the wire and the domain, shared by the group handlers.
//!
//! On the wire a rule is an `IpPermission`: one protocol and port range with lists of peers
//! (CIDRs, groups, prefix lists). The domain stores one rule per peer, so requests are
//! flattened here and answers regrouped by protocol and ports, in the order first authorized.

use backend::security_groups::{GroupRef, PeerSpec, RuleSpec};
use ec2api::Code;
use ec2api::{
    Ec2Error, IpPermission, IpRange, Ipv6Range, PrefixListId, ReferencedSecurityGroup, SecurityGroupRule,
    UserIdGroupPair,
};
use storage::{RulePeer, SecurityGroupRecord, SecurityGroupRuleRecord};

use super::{tag_list, tags_from_specs};
use crate::context::Ctx;

/// Authorize, either direction: adds the rules and answers them as `SecurityGroupRule`s.
pub async fn authorize(
    ctx: &Ctx,
    group: GroupRef,
    egress: bool,
    specs: Vec<RuleSpec>,
    tag_specs: Option<Vec<ec2api::TagSpecification>>,
) -> Result<Vec<SecurityGroupRule>, Ec2Error> {
    let tags = tags_from_specs(tag_specs, "security-group-rule")?;
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let tags_for_view = tags.clone();
    let (group, added) =
        ctx.call(move |b| b.authorize_security_group(&account, &vpc, &group, egress, &specs, &tags)).await?;
    Ok(added.iter().map(|r| rule_view(&group, r, &tags_for_view)).collect())
}

/// Revoke, either direction, by rules or rule ids: answers the removed rules.
pub async fn revoke(
    ctx: &Ctx,
    group: GroupRef,
    egress: bool,
    specs: Vec<RuleSpec>,
    rule_ids: Vec<String>,
) -> Result<Vec<ec2api::RevokedSecurityGroupRule>, Ec2Error> {
    let account = ctx.account().to_owned();
    let vpc = ctx.principal.default_vpc_id.clone();
    let (group_id, revoked) =
        ctx.call(move |b| b.revoke_security_group(&account, &vpc, &group, egress, &specs, &rule_ids)).await?;
    Ok(revoked.iter().map(|r| revoked_view(&group_id, r)).collect())
}

/// The group a request names, by `GroupId` or (default VPC) `GroupName`.
/// `missing` names the parameter to report when neither is given.
pub fn group_ref(id: Option<String>, name: Option<String>, missing: &str) -> Result<GroupRef, Ec2Error> {
    match (id.filter(|i| !i.is_empty()), name.filter(|n| !n.is_empty())) {
        (Some(id), _) => {
            check_group_id(&id)?;
            Ok(GroupRef::Id(id))
        }
        (None, Some(name)) => Ok(GroupRef::Name(name)),
        (None, None) => Err(Ec2Error::missing_parameter(missing)),
    }
}

/// Group ids must look like ids (`InvalidGroupId.Malformed`).
pub fn check_group_id(id: &str) -> Result<(), Ec2Error> {
    match backend::ResourceKind::of_id(id) {
        Some(backend::ResourceKind::SecurityGroup) => Ok(()),
        _ => Err(crate::errors::malformed(backend::ResourceKind::SecurityGroup, id)),
    }
}

/// The rules a request asks for: `IpPermissions.N`, or the older top-level form
/// (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`, `SourceSecurityGroupName`).
pub struct Legacy {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidr_ip: Option<String>,
    pub source_group_name: Option<String>,
}

/// The older top-level rule of any Authorize/Revoke request (the four share these fields).
macro_rules! legacy {
    ($req:expr) => {
        $crate::handlers::rules::Legacy {
            ip_protocol: $req.ip_protocol,
            from_port: $req.from_port,
            to_port: $req.to_port,
            cidr_ip: $req.cidr_ip,
            source_group_name: $req.source_security_group_name,
        }
    };
}
pub(crate) use legacy;

pub fn rule_specs(permissions: Option<Vec<IpPermission>>, legacy: Legacy) -> Result<Vec<RuleSpec>, Ec2Error> {
    let permissions = permissions.unwrap_or_default();
    if permissions.is_empty() {
        let peer = match (legacy.cidr_ip, legacy.source_group_name) {
            (Some(cidr), _) => PeerSpec::Ipv4(cidr),
            (None, Some(name)) => PeerSpec::Group(GroupRef::Name(name)),
            (None, None) => return Ok(vec![]),
        };
        return Ok(vec![RuleSpec {
            protocol: legacy.ip_protocol.unwrap_or_else(|| "-1".into()),
            from_port: legacy.from_port,
            to_port: legacy.to_port,
            peer,
            description: None,
        }]);
    }
    let mut specs = Vec::new();
    for (index, p) in permissions.into_iter().enumerate() {
        let path = format!("IpPermissions.{}", index + 1);
        let protocol = p.ip_protocol.ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.IpProtocol")))?;
        let mut peers = Vec::new();
        for (i, range) in p.ip_ranges.unwrap_or_default().into_iter().enumerate() {
            let cidr = range
                .cidr_ip
                .ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.IpRanges.{}.CidrIp", i + 1)))?;
            peers.push((PeerSpec::Ipv4(cidr), range.description));
        }
        for (i, range) in p.ipv6_ranges.unwrap_or_default().into_iter().enumerate() {
            let cidr = range
                .cidr_ipv6
                .ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.Ipv6Ranges.{}.CidrIpv6", i + 1)))?;
            peers.push((PeerSpec::Ipv6(cidr), range.description));
        }
        for (i, pair) in p.user_id_group_pairs.unwrap_or_default().into_iter().enumerate() {
            let group = group_ref(pair.group_id, pair.group_name, &format!("{path}.Groups.{}.GroupId", i + 1))?;
            let peer = PeerSpec::Group(group);
            peers.push((peer, pair.description));
        }
        for (i, list) in p.prefix_list_ids.unwrap_or_default().into_iter().enumerate() {
            let id = list
                .prefix_list_id
                .ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.PrefixListIds.{}.PrefixListId", i + 1)))?;
            peers.push((PeerSpec::PrefixList(id), list.description));
        }
        if peers.is_empty() {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("{path} names no source or destination (IpRanges, Ipv6Ranges, Groups or PrefixListIds)."),
            ));
        }
        for (peer, description) in peers {
            specs.push(RuleSpec {
                protocol: protocol.clone(),
                from_port: p.from_port,
                to_port: p.to_port,
                peer,
                description,
            });
        }
    }
    Ok(specs)
}

/// Rules regrouped as `IpPermission`s: one per protocol and port range, in first-seen order.
pub fn permissions<'a>(rules: impl Iterator<Item = &'a SecurityGroupRuleRecord>) -> Vec<IpPermission> {
    let mut out: Vec<IpPermission> = Vec::new();
    for rule in rules {
        let (from, to) = (rule.from_port, rule.to_port);
        let position = out.iter().position(|p| {
            p.ip_protocol.as_deref() == Some(rule.protocol.as_str()) && p.from_port == from && p.to_port == to
        });
        let index = position.unwrap_or_else(|| {
            out.push(IpPermission {
                ip_protocol: Some(rule.protocol.clone()),
                from_port: from,
                to_port: to,
                ip_ranges: Some(vec![]),
                ipv6_ranges: Some(vec![]),
                prefix_list_ids: Some(vec![]),
                user_id_group_pairs: Some(vec![]),
            });
            out.len() - 1
        });
        let permission = &mut out[index];
        let description = rule.description.clone();
        match &rule.peer {
            RulePeer::Ipv4 { cidr } => permission
                .ip_ranges
                .get_or_insert_with(Vec::new)
                .push(IpRange { cidr_ip: Some(cidr.clone()), description }),
            RulePeer::Ipv6 { cidr } => permission
                .ipv6_ranges
                .get_or_insert_with(Vec::new)
                .push(Ipv6Range { cidr_ipv6: Some(cidr.clone()), description }),
            RulePeer::Group { group_id, account } => {
                permission.user_id_group_pairs.get_or_insert_with(Vec::new).push(UserIdGroupPair {
                    group_id: Some(group_id.clone()),
                    user_id: Some(account.clone()),
                    description,
                    ..Default::default()
                })
            }
            RulePeer::PrefixList { id } => permission
                .prefix_list_ids
                .get_or_insert_with(Vec::new)
                .push(PrefixListId { prefix_list_id: Some(id.clone()), description }),
        }
    }
    out
}

/// One rule as `SecurityGroupRule` (DescribeSecurityGroupRules, Authorize's answer). EC2
/// shows `-1` for the ports of a rule that has none.
pub fn rule_view(
    group: &SecurityGroupRecord,
    rule: &SecurityGroupRuleRecord,
    tags: &[(String, String)],
) -> SecurityGroupRule {
    let mut view = SecurityGroupRule {
        security_group_rule_id: Some(rule.id.clone()),
        group_id: Some(group.id.clone()),
        group_owner_id: Some(group.account.clone()),
        is_egress: Some(rule.egress),
        ip_protocol: Some(rule.protocol.clone()),
        from_port: Some(rule.from_port.unwrap_or(-1)),
        to_port: Some(rule.to_port.unwrap_or(-1)),
        description: rule.description.clone(),
        tags: Some(tag_list(tags)),
        ..Default::default()
    };
    match &rule.peer {
        RulePeer::Ipv4 { cidr } => view.cidr_ipv4 = Some(cidr.clone()),
        RulePeer::Ipv6 { cidr } => view.cidr_ipv6 = Some(cidr.clone()),
        RulePeer::PrefixList { id } => view.prefix_list_id = Some(id.clone()),
        RulePeer::Group { group_id, account } => {
            view.referenced_group_info = Some(ReferencedSecurityGroup {
                group_id: Some(group_id.clone()),
                user_id: Some(account.clone()),
                ..Default::default()
            })
        }
    }
    view
}

/// Revoke's answer for each removed rule.
pub fn revoked_view(group_id: &str, rule: &SecurityGroupRuleRecord) -> ec2api::RevokedSecurityGroupRule {
    let mut view = ec2api::RevokedSecurityGroupRule {
        security_group_rule_id: Some(rule.id.clone()),
        group_id: Some(group_id.to_owned()),
        is_egress: Some(rule.egress),
        ip_protocol: Some(rule.protocol.clone()),
        from_port: Some(rule.from_port.unwrap_or(-1)),
        to_port: Some(rule.to_port.unwrap_or(-1)),
        description: rule.description.clone(),
        ..Default::default()
    };
    match &rule.peer {
        RulePeer::Ipv4 { cidr } => view.cidr_ipv4 = Some(cidr.clone()),
        RulePeer::Ipv6 { cidr } => view.cidr_ipv6 = Some(cidr.clone()),
        RulePeer::PrefixList { id } => view.prefix_list_id = Some(id.clone()),
        RulePeer::Group { group_id, .. } => view.referenced_group_id = Some(group_id.clone()),
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, ports: Option<(i32, i32)>, peer: RulePeer) -> SecurityGroupRuleRecord {
        SecurityGroupRuleRecord {
            id: "sgr-1".into(),
            egress: false,
            protocol: protocol.into(),
            from_port: ports.map(|p| p.0),
            to_port: ports.map(|p| p.1),
            peer,
            description: None,
        }
    }

    #[test]
    fn permissions_regroup_rules_by_protocol_and_ports() {
        let rules = [
            rule("tcp", Some((22, 22)), RulePeer::Ipv4 { cidr: "0.0.0.0/0".into() }),
            rule("-1", None, RulePeer::Group { group_id: "sg-1".into(), account: "a".into() }),
            rule("tcp", Some((22, 22)), RulePeer::Ipv6 { cidr: "::/0".into() }),
        ];
        let perms = permissions(rules.iter());
        assert_eq!(perms.len(), 2);
        assert_eq!(perms[0].ip_ranges.as_ref().unwrap().len(), 1);
        assert_eq!(perms[0].ipv6_ranges.as_ref().unwrap()[0].cidr_ipv6.as_deref(), Some("::/0"));
        assert_eq!((perms[1].from_port, perms[1].to_port), (None, None));
        assert_eq!(perms[1].user_id_group_pairs.as_ref().unwrap()[0].group_id.as_deref(), Some("sg-1"));
    }

    #[test]
    fn permissions_flatten_to_one_spec_per_peer() {
        let perm = IpPermission {
            ip_protocol: Some("tcp".into()),
            from_port: Some(80),
            to_port: Some(80),
            ip_ranges: Some(vec![
                IpRange { cidr_ip: Some("10.0.0.0/8".into()), description: Some("lan".into()) },
                IpRange { cidr_ip: Some("192.168.0.0/16".into()), description: None },
            ]),
            user_id_group_pairs: Some(vec![UserIdGroupPair { group_name: Some("web".into()), ..Default::default() }]),
            ..Default::default()
        };
        let legacy =
            || Legacy { ip_protocol: None, from_port: None, to_port: None, cidr_ip: None, source_group_name: None };
        let specs = rule_specs(Some(vec![perm]), legacy()).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].description.as_deref(), Some("lan"));
        assert_eq!(specs[2].peer, PeerSpec::Group(GroupRef::Name("web".into())));
        let empty = IpPermission { ip_protocol: Some("-1".into()), ..Default::default() };
        assert_eq!(rule_specs(Some(vec![empty]), legacy()).unwrap_err().code(), "InvalidParameterValue");
        let old = Legacy {
            ip_protocol: Some("tcp".into()),
            from_port: Some(22),
            to_port: Some(22),
            cidr_ip: Some("1.2.3.4/32".into()),
            source_group_name: None,
        };
        assert_eq!(rule_specs(None, old).unwrap()[0].peer, PeerSpec::Ipv4("1.2.3.4/32".into()));
    }
}
