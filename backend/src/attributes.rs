//! Instance attributes: what DescribeInstanceAttribute reads and ModifyInstanceAttribute
//! changes, one attribute per call as in EC2.
//!
//! Changes that need the guest off (type, user data, EBS optimisation, kernel, ramdisk) are
//! refused with
//! `IncorrectInstanceState` unless the instance is stopped; a new type takes effect at the
//! next start, where placement charges the new size. The switches (termination and stop
//! protection, shutdown behaviour, security groups) apply at once to any instance not yet
//! terminated.

use base64::Engine;
use storage::tables::INSTANCES;
use storage::{InstanceRecord, InstanceState, MetadataOptions};

use crate::instances::MAX_USER_DATA;
use crate::{invalid, Backend, Error, ResourceKind, Result};

/// One ModifyInstanceAttribute change.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeChange {
    InstanceType(String),
    /// The raw user data (the wire's base64 already decoded); empty removes it.
    UserData(Vec<u8>),
    DisableApiTermination(bool),
    DisableApiStop(bool),
    /// `stop` or `terminate`.
    ShutdownBehavior(String),
    EbsOptimized(bool),
    /// The security groups, by id, replacing the instance's (in its VPC).
    SecurityGroups(Vec<String>),
    /// The primary interface's source/destination check: OVN's port security on its port.
    SourceDestCheck(bool),
    /// `DeleteOnTermination` of the volumes at these devices.
    DeleteOnTermination(Vec<(String, bool)>),
    /// The image whose kernel the instance boots from next (empty: its own image's). Kernels
    /// are files only admins register, so a tenant names an image it may launch, never a path.
    Kernel(String),
    /// The image whose initrd it boots with next (empty: its own image's).
    Ramdisk(String),
}

/// EC2's `MetadataOptions` as sent (RunInstances, ModifyInstanceMetadataOptions); what is not
/// given stays as in `base`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataChange {
    pub http_tokens: Option<String>,
    pub http_endpoint: Option<String>,
    pub hop_limit: Option<i32>,
    pub instance_metadata_tags: Option<String>,
}

/// `base` with `change` applied, each value checked as EC2 does.
pub fn apply_metadata_change(base: &MetadataOptions, change: &MetadataChange) -> Result<MetadataOptions> {
    fn switch(value: &Option<String>, name: &'static str, on: &str, off: &str, current: bool) -> Result<bool> {
        match value.as_deref() {
            None => Ok(current),
            Some(v) if v == on => Ok(true),
            Some(v) if v == off => Ok(false),
            Some(v) => {
                Err(invalid(name, format!("Value ({v}) for parameter {name} is invalid. Expected: '{on}', '{off}'.")))
            }
        }
    }
    let hop_limit = match change.hop_limit {
        None => base.hop_limit,
        Some(hops @ 1..=64) => hops as u8,
        Some(hops) => {
            return Err(invalid(
                "HttpPutResponseHopLimit",
                format!("Value ({hops}) for parameter HttpPutResponseHopLimit is invalid. Expected: 1 to 64."),
            ))
        }
    };
    Ok(MetadataOptions {
        tokens_required: switch(&change.http_tokens, "HttpTokens", "required", "optional", base.tokens_required)?,
        endpoint_enabled: switch(&change.http_endpoint, "HttpEndpoint", "enabled", "disabled", base.endpoint_enabled)?,
        hop_limit,
        tags_enabled: switch(
            &change.instance_metadata_tags,
            "InstanceMetadataTags",
            "enabled",
            "disabled",
            base.tags_enabled,
        )?,
    })
}

impl Backend {
    /// ModifyInstanceMetadataOptions: applies at once (the metadata service reads redb on
    /// every request); answers the instance as changed.
    pub fn modify_metadata_options(&self, account: &str, id: &str, change: &MetadataChange) -> Result<InstanceRecord> {
        self.store().write(|tx| {
            let key = format!("{account}/{id}");
            let mut record = tx
                .get(&INSTANCES, &key)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.to_owned() })?;
            if record.state == InstanceState::Terminated {
                return Err(Error::IncorrectInstanceState { id: id.to_owned(), state: "terminated", verb: "modified" });
            }
            record.metadata = apply_metadata_change(&record.metadata, change)?;
            tx.insert(&INSTANCES, &key, &record)?;
            Ok(record)
        })
    }

    /// One instance of `account`'s, by id.
    pub fn instance(&self, account: &str, id: &str) -> Result<InstanceRecord> {
        self.store()
            .read(|tx| tx.get(&INSTANCES, &format!("{account}/{id}")))?
            .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.to_owned() })
    }

    /// ModifyInstanceCreditSpecification: `(instance id, credits)` pairs in one transaction,
    /// each succeeding or failing on its own (burstable types only), as EC2 reports them.
    pub fn set_cpu_credits(&self, account: &str, changes: &[(String, String)]) -> Result<Vec<Result<()>>> {
        self.store().write(|tx| {
            let mut results = Vec::new();
            for (id, credits) in changes {
                let key = format!("{account}/{id}");
                let result = match tx.get(&INSTANCES, &key)? {
                    _ if credits != "standard" && credits != "unlimited" => Err(invalid(
                        "CpuCredits",
                        format!(
                            "Value ({credits}) for parameter cpuCredits is invalid. Expected: 'standard', 'unlimited'."
                        ),
                    )),
                    None => Err(Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.clone() }),
                    Some(r) if r.cpu_credits.is_none() => Err(Error::UnsupportedOperation(format!(
                        "The instance '{id}' is not a burstable performance instance."
                    ))),
                    Some(r) if r.state == InstanceState::Terminated => {
                        Err(Error::IncorrectInstanceState { id: id.clone(), state: "terminated", verb: "modified" })
                    }
                    Some(mut record) => {
                        record.cpu_credits = Some(credits.clone());
                        tx.insert(&INSTANCES, &key, &record)?;
                        Ok(())
                    }
                };
                results.push(result);
            }
            Ok::<_, Error>(results)
        })
    }

    /// Checks that `image` is one `account` may launch, available, with a kernel (`kernel`) or
    /// an initrd to boot from: what `KernelId` and `RamdiskId` may name.
    pub(crate) fn check_boot_file_image(&self, account: &str, image: &str, kernel: bool) -> Result<()> {
        let found = self.image(account, image)?;
        let has = if kernel { found.kernel.is_some() } else { found.initrd.is_some() };
        if !has || found.state != storage::ImageState::Available {
            let (name, what) = if kernel { ("Kernel", "kernel") } else { ("Ramdisk", "ramdisk") };
            return Err(invalid(name, format!("The image {image} has no {what} to boot from.")));
        }
        Ok(())
    }

    pub fn modify_instance_attribute(&self, account: &str, id: &str, change: AttributeChange) -> Result<()> {
        let spec = match &change {
            AttributeChange::InstanceType(name) => Some(
                self.topology()
                    .instance_type(name)
                    .ok_or_else(|| invalid("InstanceType", format!("Invalid value '{name}' for InstanceType.")))?
                    .clone(),
            ),
            _ => None,
        };
        if let AttributeChange::UserData(data) = &change {
            if data.len() > MAX_USER_DATA {
                return Err(invalid("UserData", format!("User data is limited to {MAX_USER_DATA} bytes")));
            }
        }
        if let AttributeChange::ShutdownBehavior(value) = &change {
            if value != "stop" && value != "terminate" {
                return Err(invalid(
                    "InstanceInitiatedShutdownBehavior",
                    format!("Value ({value}) for parameter instanceInitiatedShutdownBehavior is invalid. Expected: 'stop', 'terminate'."),
                ));
            }
        }
        if let AttributeChange::DeleteOnTermination(changes) = &change {
            return self.set_delete_on_termination(account, id, changes);
        }
        if let AttributeChange::Kernel(image) | AttributeChange::Ramdisk(image) = &change {
            if !image.is_empty() {
                self.check_boot_file_image(account, image, matches!(change, AttributeChange::Kernel(_)))?;
            }
        }
        let key = format!("{account}/{id}");
        self.network_changed_after(self.store().write(|tx| {
            let mut record = tx
                .get(&INSTANCES, &key)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.to_owned() })?;
            let needs_stopped = matches!(
                change,
                AttributeChange::InstanceType(_)
                    | AttributeChange::UserData(_)
                    | AttributeChange::EbsOptimized(_)
                    | AttributeChange::Kernel(_)
                    | AttributeChange::Ramdisk(_)
            );
            let allowed = if needs_stopped {
                record.state == InstanceState::Stopped
            } else {
                !matches!(record.state, InstanceState::Terminated | InstanceState::ShuttingDown)
            };
            if !allowed {
                return Err(Error::IncorrectInstanceState {
                    id: id.to_owned(),
                    state: record.state.name(),
                    verb: "modified",
                });
            }
            match change {
                AttributeChange::InstanceType(_) => {
                    if let Some(spec) = spec {
                        record.instance_type = spec.name;
                        record.vcpus = spec.vcpus;
                        record.memory_mib = spec.memory_mib;
                    }
                }
                AttributeChange::UserData(data) => {
                    record.user_data =
                        (!data.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(data));
                }
                AttributeChange::DisableApiTermination(on) => record.disable_api_termination = on,
                AttributeChange::DisableApiStop(on) => record.disable_api_stop = on,
                AttributeChange::ShutdownBehavior(value) => record.shutdown_behavior = value,
                AttributeChange::EbsOptimized(on) => record.ebs_optimized = on,
                AttributeChange::SecurityGroups(ids) => {
                    record.security_group_ids =
                        crate::security_groups::resolve_launch_groups(tx, account, &record.vpc_id, &ids, &[])?;
                }
                AttributeChange::SourceDestCheck(on) => {
                    set_source_dest_check(&mut record, on);
                }
                // Volumes, not the instance: changed above.
                AttributeChange::DeleteOnTermination(_) => {}
                AttributeChange::Kernel(image) => record.kernel_image = (!image.is_empty()).then_some(image),
                AttributeChange::Ramdisk(image) => record.ramdisk_image = (!image.is_empty()).then_some(image),
            }
            tx.insert(&INSTANCES, &key, &record)?;
            Ok(())
        }))
    }
}

/// Sets an instance's source/destination check (OVN's port security on its port).
pub(crate) fn set_source_dest_check(record: &mut InstanceRecord, on: bool) {
    record.source_dest_check = on;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{running_instance, test_disk, test_driver_backend};

    #[test]
    fn metadata_changes_keep_what_is_not_given_and_check_values() {
        let base = MetadataOptions::default();
        assert!(!base.tokens_required && base.endpoint_enabled && base.hop_limit == 1 && !base.tags_enabled);
        let change = MetadataChange { http_tokens: Some("required".into()), hop_limit: Some(2), ..Default::default() };
        let changed = apply_metadata_change(&base, &change).unwrap();
        assert_eq!(changed, MetadataOptions { tokens_required: true, hop_limit: 2, ..base.clone() });
        let off = MetadataChange { http_endpoint: Some("disabled".into()), ..Default::default() };
        assert_eq!(
            apply_metadata_change(&changed, &off).unwrap(),
            MetadataOptions { endpoint_enabled: false, ..changed }
        );
        for bad in [
            MetadataChange { http_tokens: Some("mandatory".into()), ..Default::default() },
            MetadataChange { hop_limit: Some(0), ..Default::default() },
            MetadataChange { hop_limit: Some(65), ..Default::default() },
            MetadataChange { instance_metadata_tags: Some("on".into()), ..Default::default() },
        ] {
            assert!(matches!(apply_metadata_change(&base, &bad), Err(Error::InvalidParameter { .. })), "{bad:?}");
        }
    }

    #[test]
    fn attributes_follow_the_instance_state() {
        let dir = tempfile::tempdir().unwrap();
        let b = test_driver_backend(dir.path());
        let image = b
            .register_image(
                "acct",
                crate::images::NewImage { name: "img".into(), disk: test_disk(dir.path()), ..Default::default() },
            )
            .unwrap();
        let id = running_instance(&b, "acct", &image.id).id;
        let key = format!("acct/{id}");
        assert_eq!(b.instance("acct", &id).unwrap().state, InstanceState::Running);

        // Switches apply while running; size and user data need the instance stopped.
        b.modify_instance_attribute("acct", &id, AttributeChange::DisableApiStop(true)).unwrap();
        assert!(matches!(
            b.stop_instances("acct", std::slice::from_ref(&id), false),
            Err(Error::OperationNotPermitted(_))
        ));
        b.modify_instance_attribute("acct", &id, AttributeChange::DisableApiStop(false)).unwrap();
        b.modify_instance_attribute("acct", &id, AttributeChange::ShutdownBehavior("terminate".into())).unwrap();
        let bad = AttributeChange::ShutdownBehavior("hibernate".into());
        assert!(matches!(b.modify_instance_attribute("acct", &id, bad), Err(Error::InvalidParameter { .. })));
        let resize = AttributeChange::InstanceType("t3.small".into());
        let refused = b.modify_instance_attribute("acct", &id, resize.clone());
        assert!(matches!(refused, Err(Error::IncorrectInstanceState { state: "running", .. })), "{refused:?}");

        b.stop_instances("acct", std::slice::from_ref(&id), true).unwrap();
        b.converge(&key).unwrap();
        b.modify_instance_attribute("acct", &id, resize).unwrap();
        b.modify_instance_attribute("acct", &id, AttributeChange::UserData(b"#!/bin/sh\necho hi\n".to_vec())).unwrap();
        let unknown = AttributeChange::InstanceType("z9.huge".into());
        assert!(matches!(b.modify_instance_attribute("acct", &id, unknown), Err(Error::InvalidParameter { .. })));
        let too_big = AttributeChange::UserData(vec![b'x'; MAX_USER_DATA + 1]);
        assert!(matches!(b.modify_instance_attribute("acct", &id, too_big), Err(Error::InvalidParameter { .. })));
        let record = b.instance("acct", &id).unwrap();
        assert_eq!((record.instance_type.as_str(), record.vcpus, record.memory_mib), ("t3.small", 2, 2048));
        assert_eq!(record.user_data.as_deref(), Some("IyEvYmluL3NoCmVjaG8gaGkK"));
        assert_eq!(record.shutdown_behavior, "terminate");
        assert!(matches!(
            b.modify_instance_attribute("other", &id, AttributeChange::EbsOptimized(true)),
            Err(Error::ResourceNotFound { .. })
        ));

        // The next start boots the new size.
        b.start_instances("acct", std::slice::from_ref(&id)).unwrap();
        b.converge(&key).unwrap();
        assert_eq!(b.instance("acct", &id).unwrap().state, InstanceState::Running);
    }

    #[test]
    fn kernel_and_ramdisk_come_from_images_the_account_may_launch() {
        let dir = tempfile::tempdir().unwrap();
        let b = test_driver_backend(dir.path());
        let file = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, name).unwrap();
            path.to_string_lossy().into_owned()
        };
        let image = |account: &str, name: &str, kernel: Option<String>, initrd: Option<String>| {
            let new = crate::images::NewImage {
                name: name.into(),
                disk: test_disk(dir.path()),
                kernel,
                initrd,
                cmdline: Some("console=ttyS0".into()),
                ..Default::default()
            };
            b.register_image(account, new).unwrap()
        };
        let own = image("acct", "own", Some(file("vmlinuz-own")), Some(file("initrd-own")));
        let newer = image("acct", "newer", Some(file("vmlinuz-newer")), Some(file("initrd-newer")));
        let bare = image("acct", "bare", None, None);
        let theirs = image("other", "theirs", Some(file("vmlinuz-theirs")), None);
        let id = running_instance(&b, "acct", &own.id).id;
        let key = format!("acct/{id}");
        let host = b.hosts().iter().next().unwrap().clone();
        let booted = || {
            let xml = host.driver.definition(&id).unwrap().unwrap();
            let tag = |t: &str| {
                xml.split(&format!("<{t}>")).nth(1).and_then(|r| r.split('<').next()).unwrap_or("").to_owned()
            };
            (tag("kernel"), tag("initrd"))
        };
        assert_eq!(booted(), (own.kernel.clone().unwrap(), own.initrd.clone().unwrap()));

        let kernel = AttributeChange::Kernel(newer.id.clone());
        let running = b.modify_instance_attribute("acct", &id, kernel.clone());
        assert!(matches!(running, Err(Error::IncorrectInstanceState { state: "running", .. })), "{running:?}");
        b.stop_instances("acct", std::slice::from_ref(&id), true).unwrap();
        b.converge(&key).unwrap();
        for refused in [AttributeChange::Kernel(bare.id.clone()), AttributeChange::Ramdisk(theirs.id.clone())] {
            assert!(b.modify_instance_attribute("acct", &id, refused.clone()).is_err(), "{refused:?}");
        }
        let hidden = b.modify_instance_attribute("acct", &id, AttributeChange::Kernel(theirs.id.clone()));
        assert!(matches!(hidden, Err(Error::ResourceNotFound { kind: ResourceKind::Image, .. })), "{hidden:?}");
        b.modify_instance_attribute("acct", &id, kernel).unwrap();
        let restart = |b: &Backend| {
            b.start_instances("acct", std::slice::from_ref(&id)).unwrap();
            b.converge(&key).unwrap();
            assert_eq!(b.instance("acct", &id).unwrap().state, InstanceState::Running);
            let seen = booted();
            b.stop_instances("acct", std::slice::from_ref(&id), true).unwrap();
            b.converge(&key).unwrap();
            seen
        };
        assert_eq!(restart(&b), (newer.kernel.clone().unwrap(), own.initrd.clone().unwrap()));
        b.modify_instance_attribute("acct", &id, AttributeChange::Ramdisk(newer.id.clone())).unwrap();
        let record = b.instance("acct", &id).unwrap();
        assert_eq!(
            (record.kernel_image.as_deref(), record.ramdisk_image.as_deref()),
            (Some(&*newer.id), Some(&*newer.id))
        );
        assert_eq!(restart(&b), (newer.kernel.clone().unwrap(), newer.initrd.clone().unwrap()));
        // Empty: back to the instance's own image.
        b.modify_instance_attribute("acct", &id, AttributeChange::Kernel(String::new())).unwrap();
        b.modify_instance_attribute("acct", &id, AttributeChange::Ramdisk(String::new())).unwrap();
        assert_eq!(restart(&b), (own.kernel.unwrap(), own.initrd.unwrap()));
    }
}
