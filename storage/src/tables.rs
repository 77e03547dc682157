//! Every table, in one place.

use crate::{
    AccessKeyRecord, AccountRecord, AddressRecord, ClientTokenRecord, HostAllocationRecord, HostStateRecord,
    HostUsageRecord, ImageRecord, IndexEntry, InstanceRecord, InternetGatewayRecord, KeyPairRecord,
    LaunchTemplateRecord, LaunchTemplateVersionRecord, LeaseBlockRecord, LeaseRecord, MetaRecord, MetricSeriesRecord,
    MigrationRecord, MigrationTraceRecord, NameRecord, NatGatewayRecord, NetworkAclRecord, NetworkInterfaceRecord,
    RouteTableRecord, SecretRecord, SecurityGroupRecord, SnapshotRecord, SubnetRecord, Table, TagRecord, VolumeRecord,
    VpcRecord,
};

pub const ACCOUNTS: Table<AccountRecord> = Table::new("accounts");
pub const ACCESS_KEYS: Table<AccessKeyRecord> = Table::new("access_keys");
pub const KEY_PAIRS: Table<KeyPairRecord> = Table::new("key_pairs");
pub const KEY_PAIR_NAMES: Table<NameRecord> = Table::new("key_pair_names");
pub const TAGS: Table<TagRecord> = Table::new("tags");
pub const IMAGES: Table<ImageRecord> = Table::new("images");
pub const INSTANCES: Table<InstanceRecord> = Table::new("instances");
pub const CLIENT_TOKENS: Table<ClientTokenRecord> = Table::new("client_tokens");
pub const LEASES: Table<LeaseRecord> = Table::new("leases");
pub const MIGRATIONS: Table<MigrationRecord> = Table::new("migrations");
pub const MIGRATION_TRACES: Table<MigrationTraceRecord> = Table::new("migration_traces");
pub const HOST_STATES: Table<HostStateRecord> = Table::new("host_states");
pub const SECURITY_GROUPS: Table<SecurityGroupRecord> = Table::new("security_groups");
pub const VOLUMES: Table<VolumeRecord> = Table::new("volumes");
pub const SNAPSHOTS: Table<SnapshotRecord> = Table::new("snapshots");
/// Key: `{snapshot id}`. A deleted snapshot whose file stays until every volume promised its
/// data (a launch's, or CreateVolume's, whose file is made later) has its file.
pub const RETIRED_SNAPSHOTS: Table<SnapshotRecord> = Table::new("retired_snapshots");
/// Key: `{account}/{vpc id}/{group name}`.
pub const SECURITY_GROUP_NAMES: Table<NameRecord> = Table::new("security_group_names");

/// Key: `{account}/{vpc id}`.
pub const VPCS: Table<VpcRecord> = Table::new("vpcs");
/// Key: `{account}/{subnet id}`.
pub const SUBNETS: Table<SubnetRecord> = Table::new("subnets");
/// Key: `{account}/{internet gateway id}`.
pub const INTERNET_GATEWAYS: Table<InternetGatewayRecord> = Table::new("internet_gateways");
/// Key: `{account}/{route table id}`.
pub const ROUTE_TABLES: Table<RouteTableRecord> = Table::new("route_tables");

/// Key: `{account}/{allocation id}`.
pub const ADDRESSES: Table<AddressRecord> = Table::new("addresses");
/// Key: `{account}/{nat gateway id}`.
pub const NAT_GATEWAYS: Table<NatGatewayRecord> = Table::new("nat_gateways");
/// Key: `{account}/{network interface id}` (interfaces made with CreateNetworkInterface).
pub const NETWORK_INTERFACES: Table<NetworkInterfaceRecord> = Table::new("network_interfaces");
/// Key: host id: the pool hosts dedicated to an account.
pub const HOST_ALLOCATIONS: Table<HostAllocationRecord> = Table::new("host_allocations");
/// The series of metric history ([`crate::metrics`]), by name.
pub const METRIC_SERIES: Table<MetricSeriesRecord> = Table::new("metric_series");
/// Key: `{account}/{launch template id}`.
pub const LAUNCH_TEMPLATES: Table<LaunchTemplateRecord> = Table::new("launch_templates");
/// Key: `{account}/{launch template name}`.
pub const LAUNCH_TEMPLATE_NAMES: Table<NameRecord> = Table::new("launch_template_names");
/// Key: `{account}/{launch template id}/{version number, 20 digits}`.
pub const LAUNCH_TEMPLATE_VERSIONS: Table<LaunchTemplateVersionRecord> = Table::new("launch_template_versions");
/// Who holds each public address of the pool. Key: the address; the value names
/// `{account}/{allocation id}`.
pub const PUBLIC_ADDRESSES: Table<NameRecord> = Table::new("public_addresses");

/// The installation's secrets, by purpose.
pub const SECRETS: Table<SecretRecord> = Table::new("secrets");
/// The database's own facts (the derived tables' layout).
pub const META: Table<MetaRecord> = Table::new("meta");
/// Derived ([`crate::derived`]): key `{instance id}/{account}` for each instance.
pub const INSTANCE_IDS: Table<IndexEntry> = Table::new("instance_ids");
/// Derived: key `{account}/{reservation id}/{instance id}` for each instance.
pub const RESERVATIONS: Table<IndexEntry> = Table::new("reservations");
/// Derived: what each host's instances hold of it. Key: host id.
pub const HOST_USAGE: Table<HostUsageRecord> = Table::new("host_usage");
/// Derived: key [`crate::derived::tag_index_prefix`] + resource id.
pub const TAG_INDEX: Table<IndexEntry> = Table::new("tag_index");
/// Derived: key [`crate::derived::tag_index_prefix`] + `{reservation id}/{instance id}` for
/// each tag of each instance: an instance tag filter's matches in DescribeInstances' order.
pub const TAGGED_RESERVATIONS: Table<IndexEntry> = Table::new("tagged_reservations");
/// Derived: key `{account}/{state name}/{reservation id}/{instance id}` for each instance: an
/// instance state filter's matches in DescribeInstances' order.
pub const STATE_RESERVATIONS: Table<IndexEntry> = Table::new("state_reservations");
/// Derived: key [`crate::derived::attribute_prefix`] + `{reservation id}/{instance id}` for
/// each of an instance's [`crate::derived::INDEXED_ATTRIBUTES`]: an exact DescribeInstances
/// filter on one of them finds its matches in DescribeInstances' order.
pub const ATTRIBUTE_RESERVATIONS: Table<IndexEntry> = Table::new("attribute_reservations");
/// Derived: key `{account}/{instance id}/{volume id}` for each attached volume.
pub const VOLUME_ATTACHMENTS: Table<IndexEntry> = Table::new("volume_attachments");
/// Derived: key [`crate::derived::lease_block_key`].
pub const LEASE_BLOCKS: Table<LeaseBlockRecord> = Table::new("lease_blocks");
/// Derived: key `{snapshot id}/{owner}` for each snapshot (snapshots are listed across
/// owners).
pub const SNAPSHOT_IDS: Table<IndexEntry> = Table::new("snapshot_ids");
/// Derived: key `{image id}/{owner}` for each image (images are listed across owners).
pub const IMAGE_IDS: Table<IndexEntry> = Table::new("image_ids");
/// Derived: key `{account}/{network interface id}/{instance id}` for each instance's primary
/// interface, `{account}/{network interface id}/` for each interface of its own.
pub const INTERFACES: Table<IndexEntry> = Table::new("interfaces");
/// Derived: key `{account}/{instance id}/{network interface id}` for each attached interface.
pub const INTERFACE_ATTACHMENTS: Table<IndexEntry> = Table::new("interface_attachments");
/// Derived: key `{account}/{attachment id}/{network interface id}` for each attached interface
/// of its own ([`crate::derived::attachment_ids_prefix`]): DetachNetworkInterface, which names
/// the attachment alone, finds its interface without reading the account's.
pub const ATTACHMENT_IDS: Table<IndexEntry> = Table::new("attachment_ids");
/// Derived: key `{account}/{rule id}/{group id}` for each security group rule.
pub const GROUP_RULES: Table<IndexEntry> = Table::new("group_rules");
/// Derived: key `{account}/{instance id}` (the instance's own key) for each instance that is
/// not terminated: what the sweep and the monitoring look after.
pub const LIVE_INSTANCES: Table<IndexEntry> = Table::new("live_instances");
/// Derived: key [`crate::derived::termination_key`] for each terminated instance with its
/// time of termination, in that order: the purge reads only what has expired.
pub const TERMINATIONS: Table<IndexEntry> = Table::new("terminations");
/// Derived: key `{host id}/{account}/{instance id}` for each instance that is not terminated,
/// under the host it is on and, while it migrates, under its target too.
pub const HOST_INSTANCES: Table<IndexEntry> = Table::new("host_instances");
/// Derived: each VPC's default network ACL, key `{account}/{acl id}`
/// ([`crate::derived::network_acl_id`]): the ACLs are listed in id order like any resource.
pub const NETWORK_ACLS: Table<NetworkAclRecord> = Table::new("network_acls");
/// Derived: key `{account}/{vpc id}/{subnet id}` for each subnet ([`crate::derived::vpc_subnets_prefix`]).
pub const VPC_SUBNETS: Table<IndexEntry> = Table::new("vpc_subnets");
/// Derived: key `{account}/{network interface id}/{allocation id}` for each associated Elastic
/// IP ([`crate::derived::address_associations_prefix`]): a page of instances or interfaces
/// reads its own interfaces' addresses, not the account's.
pub const ADDRESS_ASSOCIATIONS: Table<IndexEntry> = Table::new("address_associations");

/// Created at open, so that readers never meet a missing table.
pub const ALL: &[&str] = &[
    "accounts",
    "access_keys",
    "key_pairs",
    "key_pair_names",
    "tags",
    "images",
    "instances",
    "client_tokens",
    "leases",
    "migrations",
    "migration_traces",
    "host_states",
    "security_groups",
    "security_group_names",
    "volumes",
    "snapshots",
    "retired_snapshots",
    "meta",
    "secrets",
    "instance_ids",
    "reservations",
    "host_usage",
    "tag_index",
    "tagged_reservations",
    "state_reservations",
    "attribute_reservations",
    "volume_attachments",
    "lease_blocks",
    "image_ids",
    "interfaces",
    "group_rules",
    "vpcs",
    "subnets",
    "internet_gateways",
    "route_tables",
    "addresses",
    "public_addresses",
    "nat_gateways",
    "network_interfaces",
    "interface_attachments",
    "launch_templates",
    "launch_template_names",
    "launch_template_versions",
    "snapshot_ids",
    "host_allocations",
    "metric_series",
    "live_instances",
    "host_instances",
    "terminations",
    "network_acls",
    "vpc_subnets",
    "address_associations",
    "attachment_ids",
];

#[cfg(test)]
mod tests {
    /// A table left out of [`ALL`] is missing until its first write, and every read of it
    /// before then fails.
    #[test]
    fn every_table_is_created_at_open() {
        let source = include_str!("tables.rs");
        let names: Vec<&str> =
            source.split("Table::new(\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
        assert!(names.len() > 40, "{names:?}");
        for name in names {
            assert!(super::ALL.contains(&name), "{name} is not in ALL");
        }
    }
}
