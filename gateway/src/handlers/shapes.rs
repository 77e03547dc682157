//! Domain records as EC2 wire shapes, shared by the instance handlers.

use std::collections::HashMap;

use ec2api::{
    EbsInstanceBlockDevice, GroupIdentifier, Instance, InstanceBlockDeviceMapping, InstanceMetadataOptionsResponse,
    InstanceNetworkInterface, InstanceNetworkInterfaceAttachment, InstancePrivateIpAddress, InstanceState,
    InstanceStateChange, Monitoring, Placement, StateReason,
};
use storage::{InstanceRecord, MetadataOptions, VolumeRecord};

use super::{long, tag_list, timestamp};
use backend::instances::StateChange;

pub fn state(s: storage::InstanceState) -> InstanceState {
    InstanceState { code: Some(s.code()), name: Some(s.name().to_owned()) }
}

pub fn state_changes(changes: Vec<StateChange>) -> Vec<InstanceStateChange> {
    changes
        .into_iter()
        .map(|c| InstanceStateChange {
            instance_id: Some(c.instance_id),
            previous_state: Some(state(c.previous)),
            current_state: Some(state(c.current)),
        })
        .collect()
}

/// An instance with its region-dependent DNS name, for the filter engine.
pub struct WithDns<'a> {
    pub record: &'a InstanceRecord,
    pub dns: String,
    /// What is kept beside the instance, read only for the filters that need it.
    pub joined: Option<Joined>,
}

/// An instance's volumes, public address and attached interfaces, for DescribeInstances'
/// filters on them.
#[derive(Debug, Default)]
pub struct Joined {
    pub volumes: Vec<VolumeRecord>,
    /// An Elastic IP of the primary address, else the address given at launch.
    pub public_ip: Option<String>,
    pub public_dns: Option<String>,
    pub interfaces: Vec<storage::NetworkInterfaceRecord>,
}

impl<'a> WithDns<'a> {
    pub fn new(record: &'a InstanceRecord, region: &str) -> Self {
        Self { record, dns: private_dns_name(&record.private_ip, region), joined: None }
    }
}

pub use backend::volumes::ROOT_DEVICE;

pub use backend::listing::primary_attachment_id as attachment_id;

/// `MetadataOptions` as EC2 shows them; changes apply at once, so they are always `applied`.
pub fn metadata_options(options: &MetadataOptions) -> InstanceMetadataOptionsResponse {
    let switch = |on: bool, yes: &str, no: &str| Some(if on { yes } else { no }.to_owned());
    InstanceMetadataOptionsResponse {
        state: Some("applied".into()),
        http_tokens: switch(options.tokens_required, "required", "optional"),
        http_put_response_hop_limit: Some(options.hop_limit.into()),
        http_endpoint: switch(options.endpoint_enabled, "enabled", "disabled"),
        http_protocol_ipv6: Some("disabled".into()),
        instance_metadata_tags: switch(options.tags_enabled, "enabled", "disabled"),
    }
}

/// EC2's private DNS name for an address: `ip-172-31-0-4.ec2.internal` in us-east-1.
pub fn private_dns_name(ip: &str, region: &str) -> String {
    let host = format!("ip-{}", ip.replace('.', "-"));
    if region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{region}.compute.internal")
    }
}

pub use backend::topology::partition;

/// EC2's public DNS name for a public address: `ec2-203-0-113-5.compute-1.amazonaws.com` in
/// us-east-1, `….{region}.compute.amazonaws.com` elsewhere (`.com.cn` in China's regions).
pub fn public_dns_name(ip: &str, region: &str) -> String {
    let host = format!("ec2-{}", ip.replace('.', "-"));
    if region == "us-east-1" {
        format!("{host}.compute-1.amazonaws.com")
    } else {
        format!("{host}.{region}.compute.{}", partition(region).1)
    }
}

/// What instance views take from other records of the account.
#[derive(Debug, Default)]
pub struct Joins {
    /// Security group names by id.
    pub group_names: HashMap<String, String>,
    /// Volumes by the instance they are attached to.
    pub volumes: HashMap<String, Vec<VolumeRecord>>,
    /// Elastic IPs by what they point at: `{network interface id}/{private address}`.
    pub public_ips: HashMap<String, String>,
    /// Network interfaces of their own attached, by instance.
    pub interfaces: HashMap<String, Vec<storage::NetworkInterfaceRecord>>,
}

impl Joins {
    /// For views of these instances only: their volumes are looked up, not the account's.
    /// A terminated instance has nothing attached (its volumes are released before it is
    /// terminated, its interfaces as it is), so only the others' attachments are looked up,
    /// in id order: a page costs what its live instances hold.
    pub fn for_instances(b: &backend::Backend, account: &str, records: &[InstanceRecord]) -> backend::Result<Self> {
        let mut live: Vec<&InstanceRecord> =
            records.iter().filter(|r| r.state != storage::InstanceState::Terminated).collect();
        live.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let volumes = b.volumes_of_instances(account, live.iter().map(|r| r.id.as_str()))?;
        let interfaces = b.interfaces_of_instances(account, live.iter().map(|r| r.id.as_str()))?;
        // The page's interfaces: each live instance's own and those attached to it.
        let interface_ids = live
            .iter()
            .map(|r| r.network_interface_id.as_str())
            .chain(interfaces.values().flatten().map(|i| i.id.as_str()));
        let public_ips = b
            .addresses_on_interfaces(account, interface_ids)?
            .into_iter()
            .filter_map(|a| {
                let to = a.association?;
                Some((format!("{}/{}", to.network_interface_id, to.private_ip), a.public_ip))
            })
            .collect();
        let group_names = b.security_group_names_of(
            account,
            records.iter().flat_map(|r| r.security_group_ids.iter().map(String::as_str)),
        )?;
        Ok(Self { group_names, volumes, public_ips, interfaces })
    }

    /// The Elastic IP associated with `private_ip` of interface `interface_id`, if any.
    pub fn elastic_ip(&self, interface_id: &str, private_ip: &str) -> Option<&String> {
        self.public_ips.get(&format!("{interface_id}/{private_ip}"))
    }

    /// The instance's volumes as `blockDeviceMapping`: the root first, then by device.
    pub fn block_devices(&self, record: &InstanceRecord) -> Vec<InstanceBlockDeviceMapping> {
        let mut volumes: Vec<&VolumeRecord> =
            self.volumes.get(&record.id).map(|v| v.iter().collect()).unwrap_or_default();
        volumes.sort_by_key(|v| (!v.root, v.attachment_of(&record.id).map(|a| a.device.clone())));
        volumes
            .into_iter()
            .filter_map(|v| {
                let a = v.attachment_of(&record.id)?;
                Some(InstanceBlockDeviceMapping {
                    device_name: Some(a.device.clone()),
                    ebs: Some(EbsInstanceBlockDevice {
                        attach_time: Some(timestamp(a.attach_time_ms)),
                        delete_on_termination: Some(a.delete_on_termination),
                        status: Some(a.state.name().into()),
                        volume_id: Some(v.id.clone()),
                        ..Default::default()
                    }),
                })
            })
            .collect()
    }

    /// The instance's groups, by id and name (a deleted group keeps its id only).
    pub fn groups(&self, record: &InstanceRecord) -> Vec<GroupIdentifier> {
        record
            .security_group_ids
            .iter()
            .map(|id| GroupIdentifier { group_id: Some(id.clone()), group_name: self.group_names.get(id).cloned() })
            .collect()
    }
}

pub fn instance(record: &InstanceRecord, tags: &[(String, String)], region: &str, joins: &Joins) -> Instance {
    let terminated = record.state == storage::InstanceState::Terminated;
    // A terminated instance has given its address and interface back, as on EC2.
    let (ip, dns) = if terminated {
        (None, String::new())
    } else {
        (Some(record.private_ip.clone()), private_dns_name(&record.private_ip, region))
    };
    let public_ip = joins
        .elastic_ip(&record.network_interface_id, &record.private_ip)
        .or(record.public_ip.as_ref())
        .filter(|_| !terminated);
    let public_dns = public_ip.map(|p| public_dns_name(p, region));
    let association = public_ip.map(|p| ec2api::InstanceNetworkInterfaceAssociation {
        public_ip: Some(p.clone()),
        public_dns_name: public_dns.clone(),
        ip_owner_id: Some(record.account.clone()),
        ..Default::default()
    });
    let interface = InstanceNetworkInterface {
        network_interface_id: Some(record.network_interface_id.clone()),
        description: Some(record.kept_interface.as_ref().map(|k| k.description.clone()).unwrap_or_default()),
        mac_address: Some(record.mac.clone()),
        private_ip_address: ip.clone(),
        private_dns_name: Some(dns.clone()),
        private_ip_addresses: Some(
            std::iter::once(InstancePrivateIpAddress {
                primary: Some(true),
                private_ip_address: ip.clone(),
                private_dns_name: Some(dns.clone()),
                association: association.clone(),
            })
            .chain(record.secondary_ips.iter().filter(|_| !terminated).map(|address| InstancePrivateIpAddress {
                primary: Some(false),
                private_ip_address: Some(address.clone()),
                private_dns_name: Some(private_dns_name(address, region)),
                association: joins.elastic_ip(&record.network_interface_id, address).map(|p| {
                    ec2api::InstanceNetworkInterfaceAssociation {
                        public_ip: Some(p.clone()),
                        public_dns_name: Some(public_dns_name(p, region)),
                        ip_owner_id: Some(record.account.clone()),
                        ..Default::default()
                    }
                }),
            }))
            .collect(),
        ),
        association,
        subnet_id: Some(record.subnet_id.clone()),
        vpc_id: Some(record.vpc_id.clone()),
        owner_id: Some(record.account.clone()),
        source_dest_check: Some(record.source_dest_check),
        status: Some("in-use".into()),
        interface_type: Some("interface".into()),
        groups: Some(joins.groups(record)),
        attachment: Some(InstanceNetworkInterfaceAttachment {
            attachment_id: Some(attachment_id(record)),
            attach_time: Some(timestamp(record.launch_time_ms)),
            delete_on_termination: Some(record.kept_interface.as_ref().is_none_or(|k| k.delete_on_termination)),
            device_index: Some(0),
            network_card_index: Some(0),
            status: Some("attached".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Instance {
        instance_id: Some(record.id.clone()),
        image_id: Some(record.image_id.clone()),
        kernel_id: record.kernel_image.clone(),
        ramdisk_id: record.ramdisk_image.clone(),
        instance_type: Some(record.instance_type.clone()),
        state: Some(state(record.state)),
        state_reason: record
            .state_reason
            .as_ref()
            .map(|r| StateReason { code: Some(r.code.clone()), message: Some(r.message.clone()) }),
        state_transition_reason: Some(record.state_transition_reason.clone()),
        ami_launch_index: Some(record.ami_launch_index as i32),
        launch_time: Some(timestamp(record.launch_time_ms)),
        placement: Some(Placement {
            availability_zone: Some(record.zone.clone()),
            group_name: Some(String::new()),
            tenancy: Some(if record.dedicated.is_some() { "host" } else { "default" }.into()),
            host_id: record.dedicated.as_ref().map(|_| record.host_id.clone()),
            affinity: record
                .dedicated
                .as_ref()
                .map(|d| if d.affinity_host.is_some() { "host" } else { "default" }.into()),
            ..Default::default()
        }),
        key_name: record.key_name.clone(),
        private_ip_address: ip,
        private_dns_name: Some(dns),
        public_ip_address: public_ip.cloned(),
        public_dns_name: Some(public_dns.unwrap_or_default()),
        subnet_id: (!terminated).then(|| record.subnet_id.clone()),
        vpc_id: (!terminated).then(|| record.vpc_id.clone()),
        network_interfaces: Some(if terminated {
            vec![]
        } else {
            let more =
                joins.interfaces.get(&record.id).into_iter().flatten().map(|i| attached_interface(i, region, joins));
            std::iter::once(interface).chain(more).collect()
        }),
        security_groups: Some(joins.groups(record)),
        architecture: Some("x86_64".into()),
        // Nitro (KVM-based) instances report `xen` too; clients only read it.
        hypervisor: Some("xen".into()),
        virtualization_type: Some("hvm".into()),
        root_device_type: Some("ebs".into()),
        root_device_name: Some(ROOT_DEVICE.into()),
        block_device_mappings: Some(joins.block_devices(record)),
        ebs_optimized: Some(record.ebs_optimized),
        ena_support: Some(false),
        source_dest_check: Some(record.source_dest_check),
        client_token: record.client_token.clone().or(Some(String::new())),
        monitoring: Some(Monitoring { state: Some(if record.monitoring { "enabled" } else { "disabled" }.into()) }),
        metadata_options: Some(metadata_options(&record.metadata)),
        tags: (!tags.is_empty()).then(|| tag_list(tags)),
        ..Default::default()
    }
}

/// An attached interface of its own, as DescribeInstances lists it after the primary one.
fn attached_interface(i: &storage::NetworkInterfaceRecord, region: &str, joins: &Joins) -> InstanceNetworkInterface {
    let association = |address: &str| {
        joins.elastic_ip(&i.id, address).map(|p| ec2api::InstanceNetworkInterfaceAssociation {
            public_ip: Some(p.clone()),
            public_dns_name: Some(public_dns_name(p, region)),
            ip_owner_id: Some(i.account.clone()),
            ..Default::default()
        })
    };
    InstanceNetworkInterface {
        network_interface_id: Some(i.id.clone()),
        description: Some(i.description.clone()),
        mac_address: Some(i.mac.clone()),
        private_ip_address: Some(i.private_ip.clone()),
        private_dns_name: Some(private_dns_name(&i.private_ip, region)),
        private_ip_addresses: Some(
            i.addresses()
                .enumerate()
                .map(|(index, a)| InstancePrivateIpAddress {
                    primary: Some(index == 0),
                    private_ip_address: Some(a.clone()),
                    private_dns_name: Some(private_dns_name(a, region)),
                    association: association(a),
                })
                .collect(),
        ),
        association: association(&i.private_ip),
        subnet_id: Some(i.subnet_id.clone()),
        vpc_id: Some(i.vpc_id.clone()),
        owner_id: Some(i.account.clone()),
        source_dest_check: Some(i.source_dest_check),
        status: Some("in-use".into()),
        interface_type: Some("interface".into()),
        groups: Some(
            i.security_group_ids
                .iter()
                .map(|id| GroupIdentifier {
                    group_id: Some(id.clone()),
                    group_name: joins.group_names.get(id).cloned(),
                })
                .collect(),
        ),
        attachment: i.attachment.as_ref().map(|a| InstanceNetworkInterfaceAttachment {
            attachment_id: Some(a.id.clone()),
            attach_time: Some(timestamp(a.attach_time_ms)),
            delete_on_termination: Some(a.delete_on_termination),
            device_index: Some(a.device_index as i32),
            network_card_index: Some(0),
            status: Some(a.state.name().into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A live migration as the extension actions report it.
pub fn migration(m: &storage::MigrationRecord) -> ec2api::InstanceMigration {
    let p = &m.progress;
    ec2api::InstanceMigration {
        migration_id: Some(m.id.clone()),
        instance_id: Some(m.instance_id.clone()),
        status: Some(m.status.name().into()),
        source_host_id: Some(m.source_host.clone()),
        target_host_id: Some(m.target_host.clone()),
        max_downtime_millis: m.options.max_downtime_ms.and_then(long),
        bandwidth_mi_bps: m.options.bandwidth_mibps.and_then(long),
        auto_converge: Some(m.options.auto_converge),
        allow_post_copy: Some(m.options.allow_post_copy),
        post_copy_requested: Some(m.post_copy_requested),
        timeout_seconds: m.options.timeout_secs.and_then(long),
        iterations: long(p.iterations),
        memory_total_bytes: long(p.memory_total_bytes),
        memory_processed_bytes: long(p.memory_processed_bytes),
        memory_remaining_bytes: long(p.memory_remaining_bytes),
        dirty_rate_bytes_per_second: long(p.dirty_rate_bytes_per_sec),
        bandwidth_bytes_per_second: long(p.bandwidth_bytes_per_sec),
        post_copy_requests: long(p.post_copy_requests),
        storage_copied: Some(m.target_dir.is_some()),
        disk_total_bytes: long(p.disk_total_bytes),
        disk_processed_bytes: long(p.disk_processed_bytes),
        disk_remaining_bytes: long(p.disk_remaining_bytes),
        // While a migration runs, QEMU's figure is the pause it expects, and a migration that did
        // not complete paused nothing (an aborted pre-copy) or is reported by its error.
        downtime_millis: (m.status == storage::MigrationStatus::Completed).then_some(p.downtime_ms).and_then(long),
        post_copy_pause_millis: m.post_copy_pause_ms.and_then(long),
        pings_sent: m.ping.and_then(|s| long(s.sent.into())),
        pings_answered: m.ping.and_then(|s| long(s.answered.into())),
        ping_largest_gap_millis: m.ping.and_then(|s| long(s.largest_gap_ms.into())),
        total_time_millis: long(p.time_elapsed_ms),
        setup_time_millis: long(p.setup_time_ms),
        error_message: m.error.clone(),
        start_time: Some(timestamp(m.created_ms)),
        end_time: m.finished_ms.map(timestamp),
        predicted_ending: m.prediction.as_ref().map(|p| p.ending.clone()),
        predicted_total_millis: m.prediction.as_ref().and_then(|p| p.total_ms).and_then(long),
        predicted_downtime_millis: m.prediction.as_ref().and_then(|p| long(p.downtime_ms)),
        predicted_iterations: m.prediction.as_ref().and_then(|p| long(p.iterations.into())),
        predicted_from_dirty_rate_bytes_per_second: m
            .prediction
            .as_ref()
            .and_then(|p| long(p.dirty_rate_bytes_per_sec)),
        predicted_from_first_pass_bytes: m.prediction.as_ref().and_then(|p| long(p.first_pass_bytes)),
        predicted_from_first_pass_read_millis: m.prediction.as_ref().and_then(|p| long(p.first_pass_read_ms)),
        predicted_from_bandwidth_bytes_per_second: m.prediction.as_ref().and_then(|p| long(p.bandwidth_bytes_per_sec)),
        downtime_limit_millis: Some(m.downtime_limit_ms).filter(|&ms| ms > 0).and_then(long),
        throttle_percent: long(p.throttle_percent),
        events: Some(m.events.iter().map(migration_event).collect()),
    }
}

/// One entry of a migration's timeline.
fn migration_event(e: &storage::MigrationEvent) -> ec2api::InstanceMigrationEvent {
    ec2api::InstanceMigrationEvent {
        elapsed_millis: long(e.at_ms),
        r#type: Some(e.kind.name().into()),
        iteration: long(e.iteration),
        memory_remaining_bytes: long(e.remaining_bytes),
        dirty_rate_bytes_per_second: long(e.dirty_rate_bytes_per_sec),
        bandwidth_bytes_per_second: long(e.bandwidth_bytes_per_sec),
        throttle_percent: long(e.throttle_percent),
        downtime_limit_millis: long(e.downtime_limit_ms),
        message: e.message.clone(),
    }
}

/// One volume as EC2 describes it; its attachment, if any, in `attachmentSet`.
pub fn volume(v: &VolumeRecord, tags: &[(String, String)]) -> ec2api::Volume {
    ec2api::Volume {
        volume_id: Some(v.id.clone()),
        size: super::int(v.size_gib),
        volume_type: Some(v.volume_type.clone()),
        iops: v.iops.and_then(|n| super::int(n.into())),
        throughput: v.throughput.and_then(|n| super::int(n.into())),
        availability_zone: Some(v.zone.clone()),
        create_time: Some(timestamp(v.created_ms)),
        encrypted: Some(v.encryption.is_some()),
        kms_key_id: v.encryption.as_ref().map(|e| e.kms_key_id.clone()),
        multi_attach_enabled: Some(v.multi_attach),
        snapshot_id: Some(v.snapshot_id.clone().unwrap_or_default()),
        state: Some(v.state.name().into()),
        attachments: Some(v.attachments().map(|a| volume_attachment(v, a)).collect()),
        tags: (!tags.is_empty()).then(|| tag_list(tags)),
        ..Default::default()
    }
}

/// One of a volume's attachments (a Multi-Attach volume has several).
pub fn volume_attachment(v: &VolumeRecord, a: &storage::VolumeAttachmentRecord) -> ec2api::VolumeAttachment {
    ec2api::VolumeAttachment {
        volume_id: Some(v.id.clone()),
        instance_id: Some(a.instance_id.clone()),
        device: Some(a.device.clone()),
        state: Some(a.state.name().into()),
        attach_time: Some(timestamp(a.attach_time_ms)),
        delete_on_termination: Some(a.delete_on_termination),
        ..Default::default()
    }
}

pub fn modification(v: &VolumeRecord) -> Option<ec2api::VolumeModification> {
    let m = v.modification.as_ref()?;
    let number = |n: Option<u32>| n.and_then(|n| super::int(n.into()));
    Some(ec2api::VolumeModification {
        volume_id: Some(v.id.clone()),
        modification_state: Some(m.state.name().into()),
        status_message: m.status_message.clone(),
        original_size: super::int(m.original_size_gib),
        target_size: super::int(m.target_size_gib),
        original_volume_type: Some(m.original_type.clone()),
        target_volume_type: Some(m.target_type.clone()),
        original_iops: number(m.original_iops),
        target_iops: number(m.target_iops),
        original_throughput: number(m.original_throughput),
        target_throughput: number(m.target_throughput),
        original_multi_attach_enabled: Some(v.multi_attach),
        target_multi_attach_enabled: Some(v.multi_attach),
        progress: Some(if m.state == storage::ModificationState::Modifying { 0 } else { 100 }),
        start_time: Some(timestamp(m.start_ms)),
        end_time: m.end_ms.map(timestamp),
        ..Default::default()
    })
}

pub fn snapshot(s: &storage::SnapshotRecord, tags: &[(String, String)]) -> ec2api::Snapshot {
    let done = s.state == storage::SnapshotState::Completed;
    ec2api::Snapshot {
        snapshot_id: Some(s.id.clone()),
        volume_id: Some(s.volume_id.clone()),
        volume_size: super::int(s.volume_size_gib),
        description: Some(s.description.clone()),
        state: Some(s.state.name().into()),
        state_message: s.state_message.clone(),
        progress: Some(if done { "100%" } else { "0%" }.into()),
        start_time: Some(timestamp(s.start_ms)),
        owner_id: Some(s.account.clone()),
        encrypted: Some(s.encryption.is_some()),
        kms_key_id: s.encryption.as_ref().map(|e| e.kms_key_id.clone()),
        storage_tier: Some("standard".into()),
        tags: (!tags.is_empty()).then(|| tag_list(tags)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_region_s_partition() {
        assert_eq!(public_dns_name("203.0.113.5", "us-east-1"), "ec2-203-0-113-5.compute-1.amazonaws.com");
        assert_eq!(public_dns_name("203.0.113.5", "eu-west-1"), "ec2-203-0-113-5.eu-west-1.compute.amazonaws.com");
        assert_eq!(public_dns_name("203.0.113.5", "cn-north-1"), "ec2-203-0-113-5.cn-north-1.compute.amazonaws.com.cn");
        assert_eq!(partition("us-gov-west-1"), ("aws-us-gov", "amazonaws.com"));
        assert_eq!(partition("cn-northwest-1"), ("aws-cn", "amazonaws.com.cn"));
        assert_eq!(private_dns_name("10.0.0.5", "cn-north-1"), "ip-10-0-0-5.cn-north-1.compute.internal");
    }

    /// libvirt's downtime is reported for a completed migration only (QEMU's expected pause
    /// while it runs, a pause that never came for an aborted one); the post-copy pause beside it.
    #[test]
    fn a_migration_reports_the_downtime_it_had() {
        let record = |status, pause| storage::MigrationRecord {
            id: "mig-1".into(),
            account: "123456789012".into(),
            instance_id: "i-1".into(),
            source_host: "h-1".into(),
            target_host: "h-2".into(),
            status,
            options: Default::default(),
            progress: storage::JobProgress { downtime_ms: 2060, ..Default::default() },
            cancel_requested: false,
            post_copy_requested: false,
            ping_traced: false,
            ping: None,
            error: None,
            created_ms: 0,
            finished_ms: None,
            prediction: None,
            downtime_limit_ms: 0,
            events: vec![],
            target_dir: None,
            post_copy_pause_ms: pause,
            peak_bandwidth_bytes_per_sec: 0,
        };
        use storage::MigrationStatus::*;
        for status in [Copying, PostCopy, Failed, Cancelled] {
            assert_eq!(migration(&record(status, None)).downtime_millis, None, "{status:?}");
        }
        let moved = migration(&record(Completed, Some(93)));
        assert_eq!((moved.downtime_millis, moved.post_copy_pause_millis), (Some(2060), Some(93)));
        assert_eq!(migration(&record(Completed, None)).post_copy_pause_millis, None);
    }
}
