//! One file per action: the only place where wire shapes meet domain types.

pub mod allocate_address;
pub mod allocate_hosts;
pub mod assign_private_ip_addresses;
pub mod associate_address;
pub mod associate_route_table;
pub mod attach_internet_gateway;
pub mod attach_network_interface;
pub mod attach_volume;
pub mod authorize_security_group_egress;
pub mod authorize_security_group_ingress;
pub mod cancel_instance_migration;
pub mod copy_image;
pub mod copy_snapshot;
pub mod create_default_subnet;
pub mod create_default_vpc;
pub mod create_image;
pub mod create_internet_gateway;
pub mod create_key_pair;
pub mod create_launch_template;
pub mod create_launch_template_version;
pub mod create_nat_gateway;
pub mod create_network_interface;
pub mod create_route;
pub mod create_route_table;
pub mod create_security_group;
pub mod create_snapshot;
pub mod create_snapshots;
pub mod create_subnet;
pub mod create_tags;
pub mod create_volume;
pub mod create_vpc;
pub mod delete_internet_gateway;
pub mod delete_key_pair;
pub mod delete_launch_template;
pub mod delete_launch_template_versions;
pub mod delete_nat_gateway;
pub mod delete_network_interface;
pub mod delete_route;
pub mod delete_route_table;
pub mod delete_security_group;
pub mod delete_snapshot;
pub mod delete_subnet;
pub mod delete_tags;
pub mod delete_volume;
pub mod delete_vpc;
pub mod deregister_image;
pub mod describe;
pub mod describe_account_attributes;
pub mod describe_addresses;
pub mod describe_addresses_attribute;
pub mod describe_availability_zones;
pub mod describe_dhcp_options;
pub mod describe_hosts;
pub mod describe_image_attribute;
pub mod describe_images;
pub mod describe_instance_attribute;
pub mod describe_instance_credit_specifications;
pub mod describe_instance_migrations;
pub mod describe_instance_status;
pub mod describe_instance_type_offerings;
pub mod describe_instance_types;
pub mod describe_instances;
pub mod describe_internet_gateways;
pub mod describe_key_pairs;
pub mod describe_launch_template_versions;
pub mod describe_launch_templates;
pub mod describe_nat_gateways;
pub mod describe_network_acls;
pub mod describe_network_interface_attribute;
pub mod describe_network_interfaces;
pub mod describe_regions;
pub mod describe_route_tables;
pub mod describe_security_group_rules;
pub mod describe_security_groups;
pub mod describe_snapshot_attribute;
pub mod describe_snapshots;
pub mod describe_subnets;
pub mod describe_tags;
pub mod describe_volumes;
pub mod describe_volumes_modifications;
pub mod describe_vpc_attribute;
pub mod describe_vpcs;
pub mod detach_internet_gateway;
pub mod detach_network_interface;
pub mod detach_volume;
pub mod disable_ebs_encryption_by_default;
pub mod disable_serial_console_access;
pub mod disassociate_address;
pub mod disassociate_route_table;
pub mod enable_ebs_encryption_by_default;
pub mod enable_serial_console_access;
pub mod estimate_instance_migration;
pub mod get_console_output;
pub mod get_ebs_default_kms_key_id;
pub mod get_ebs_encryption_by_default;
pub mod get_instance_uefi_data;
pub mod get_serial_console_access_status;
pub mod import_key_pair;
mod launch_template_shape;
pub mod migrate_instance;
pub mod modify_ebs_default_kms_key_id;
pub mod modify_hosts;
pub mod modify_image_attribute;
pub mod modify_instance_attribute;
pub mod modify_instance_credit_specification;
pub mod modify_instance_metadata_options;
pub mod modify_launch_template;
pub mod modify_network_interface_attribute;
pub mod modify_snapshot_attribute;
pub mod modify_subnet_attribute;
pub mod modify_volume;
pub mod modify_vpc_attribute;
mod nat_gateway_shape;
mod network_interface_shape;
mod networks;
mod permissions;
pub mod reboot_instances;
pub mod register_image;
pub mod release_address;
pub mod release_hosts;
pub mod replace_route;
pub mod replace_route_table_association;
pub mod reset_ebs_default_kms_key_id;
pub mod reset_image_attribute;
pub mod reset_snapshot_attribute;
pub mod revoke_security_group_egress;
pub mod revoke_security_group_ingress;
mod routes;
mod rules;
pub mod run_instances;
pub(crate) mod shapes;
pub mod start_instance_migration_post_copy;
pub mod start_instances;
pub mod stop_instances;
pub mod terminate_instances;
pub mod unassign_private_ip_addresses;

use std::borrow::Cow;

use chrono::{TimeZone, Utc};
use ec2api::filter::Filterable;
use ec2api::query::Timestamp;
use ec2api::{Ec2Error, Tag, TagSpecification};

/// Actions only admin accounts may call (Stratus's extensions, and changing hosts).
/// (ModifyHosts is a tenant's for its dedicated hosts; `HostMaintenance` in it is the admin's.)
pub const ADMIN_ONLY: &[&str] = &[
    "MigrateInstance",
    "EstimateInstanceMigration",
    "DescribeInstanceMigrations",
    "CancelInstanceMigration",
    "StartInstanceMigrationPostCopy",
];

/// A resource under the filter engine: the item, its tags, and how it answers filter names.
pub struct Row<'a, T> {
    pub item: &'a T,
    pub tags: &'a [(String, String)],
    pub fields: for<'x> fn(&'x T, &str) -> Vec<Cow<'x, str>>,
}

impl<T> Filterable for Row<'_, T> {
    fn filter_values(&self, name: &str) -> Vec<Cow<'_, str>> {
        (self.fields)(self.item, name)
    }

    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
}

pub const NO_TAGS: &[(String, String)] = &[];

/// Tags from `TagSpecification.N` for a resource being created as `resource_type`.
pub fn tags_from_specs(
    specs: Option<Vec<TagSpecification>>,
    resource_type: &str,
) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut tags = Vec::new();
    for (index, spec) in specs.unwrap_or_default().into_iter().enumerate() {
        let given = spec.resource_type.unwrap_or_default();
        if given != resource_type {
            return Err(Ec2Error::invalid_value(
                &format!("TagSpecification.{}.ResourceType", index + 1),
                &given,
                &format!("Expected '{resource_type}' for this action."),
            ));
        }
        tags.extend(tag_pairs(spec.tags, &format!("TagSpecification.{}.Tag", index + 1))?);
    }
    Ok(tags)
}

/// `Tag.N.Key` / `Tag.N.Value` pairs; a key is required, a missing value is empty.
pub fn tag_pairs(tags: Option<Vec<Tag>>, path: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    tags.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, tag)| {
            let key = tag.key.ok_or_else(|| Ec2Error::missing_parameter(&format!("{path}.{}.Key", i + 1)))?;
            Ok((key, tag.value.unwrap_or_default()))
        })
        .collect()
}

pub fn tag_list(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

/// A resource's ARN. No account is known to clients that skip requesting it, but ours is.
pub fn arn(region: &str, account: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:{kind}/{id}")
}

pub fn timestamp(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A count for an EC2 `Long` (saturating: EC2 longs are signed).
pub fn long(v: u64) -> Option<i64> {
    Some(i64::try_from(v).unwrap_or(i64::MAX))
}

/// An optional EC2 `Integer` parameter that must not be negative.
pub fn positive(value: Option<i32>, name: &str) -> Result<Option<u32>, Ec2Error> {
    value
        .map(|n| {
            u32::try_from(n).map_err(|_| Ec2Error::invalid_value(name, &n.to_string(), "Expected a positive number."))
        })
        .transpose()
}

/// An `on`/`off` parameter.
pub fn on_off(name: &str, value: Option<&str>) -> Result<Option<bool>, Ec2Error> {
    match value {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(Ec2Error::invalid_value(name, other, "Expected: 'on', 'off'.")),
    }
}

/// A count for an EC2 `Integer`.
pub fn int(v: u64) -> Option<i32> {
    Some(i32::try_from(v).unwrap_or(i32::MAX))
}

/// An `AttributeValue` holding `v`.
pub fn attribute(v: impl Into<String>) -> Option<ec2api::AttributeValue> {
    Some(ec2api::AttributeValue { value: Some(v.into()) })
}

/// An `AttributeBooleanValue` holding `on`.
pub fn flag(on: bool) -> Option<ec2api::AttributeBooleanValue> {
    Some(ec2api::AttributeBooleanValue { value: Some(on) })
}

/// A filter field with one value.
pub fn one<'a>(value: impl Into<Cow<'a, str>>) -> Vec<Cow<'a, str>> {
    vec![value.into()]
}

/// Ids of one kind must look like ids of that kind before they are looked up (EC2's
/// `.Malformed` codes).
pub fn check_ids(ids: &[String], kind: backend::ResourceKind) -> Result<(), Ec2Error> {
    match ids.iter().find(|id| backend::ResourceKind::of_id(id) != Some(kind)) {
        Some(bad) => Err(crate::errors::malformed(kind, bad)),
        None => Ok(()),
    }
}

/// Every requested id must name something the caller may see; the ones that do not are named
/// in one `…NotFound`, as EC2 answers (another account's resource among them, indistinguishably).
pub fn ensure_found(
    kind: backend::ResourceKind,
    ids: &[String],
    found: impl Fn(&String) -> bool,
) -> Result<(), Ec2Error> {
    let missing: Vec<&String> = ids.iter().filter(|id| !found(id)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::errors::not_found(kind, &missing))
    }
}
