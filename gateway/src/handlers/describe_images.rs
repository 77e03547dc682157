use std::borrow::Cow;

use backend::listing::Item;
use ec2api::{DescribeImagesOutput, DescribeImagesRequest, Ec2Error, Image, StateReason};
use storage::ImageRecord;

use super::describe::Describe;
use super::{one, tag_list, timestamp};
use crate::context::Ctx;

const FILTERS: &[&str] = &[
    "image-id",
    "name",
    "state",
    "architecture",
    "owner-id",
    "is-public",
    "image-type",
    "description",
    "root-device-type",
    "virtualization-type",
    "hypervisor",
    "kernel-id",
    "ramdisk-id",
];

fn fields<'a>(image: &'a ImageRecord, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "image-id" => one(&image.id),
        "name" => one(&image.name),
        "state" => one(image.state.name()),
        "architecture" => one(&image.architecture),
        "owner-id" => one(&image.owner),
        "is-public" => one(image.public.to_string()),
        "image-type" => one("machine"),
        "description" => one(&image.description),
        "root-device-type" => one("ebs"),
        "virtualization-type" => one("hvm"),
        "hypervisor" => one("xen"),
        "kernel-id" => image.kernel.as_deref().map(one).unwrap_or_default(),
        "ramdisk-id" => image.initrd.as_deref().map(one).unwrap_or_default(),
        _ => vec![],
    }
}

/// `Owner.N`: `self`, or account ids. (`amazon` and `aws-marketplace` own nothing here.)
fn owned_by(image: &ImageRecord, owners: &[String], caller: &str) -> bool {
    owners.is_empty() || owners.iter().any(|o| if o == "self" { image.owner == caller } else { image.owner == *o })
}

/// `ExecutableBy.N`: `all` (public images), `self` (what the caller may launch), account ids
/// (what that account may launch, of what the caller sees). Whom another owner shares with is
/// that owner's to know: for an image the caller does not own, another account counts only
/// as its owner or through `all`.
fn executable_by(image: &ImageRecord, users: &[String], caller: &str) -> bool {
    users.is_empty()
        || users.iter().any(|u| match u.as_str() {
            "all" => image.public,
            "self" => image.launchable_by(caller),
            account if image.owner == caller => image.launchable_by(account),
            account => image.public || image.owner == account,
        })
}

pub async fn handle(ctx: &Ctx, req: DescribeImagesRequest) -> Result<DescribeImagesOutput, Ec2Error> {
    let owners = req.owners.unwrap_or_default();
    let users = req.executable_users.unwrap_or_default();
    let mut describe = Describe::of(ctx, "DescribeImages")
        .ids(req.image_ids, backend::ResourceKind::Image)?
        .filters(req.filters.as_deref(), FILTERS)?;
    describe.narrowed_by("owners", &owners);
    describe.narrowed_by("users", &users);
    let describe = describe.paged(req.max_results, req.next_token.as_deref(), 5, 1000)?;
    let caller = ctx.account().to_owned();
    let (items, next_token) = describe
        .list(ctx, fields, move |i: &ImageRecord| owned_by(i, &owners, &caller) && executable_by(i, &users, &caller))
        .await?;
    let images = items
        .into_iter()
        .map(|Item { record: i, tags }| Image {
            image_id: Some(i.id.clone()),
            name: Some(i.name.clone()),
            description: Some(i.description.clone()),
            image_location: Some(i.disk.clone()),
            owner_id: Some(i.owner.clone()),
            public: Some(i.public),
            state: Some(i.state.name().into()),
            state_reason: i
                .state_reason
                .as_ref()
                .map(|r| StateReason { code: Some(r.code.clone()), message: Some(r.message.clone()) }),
            architecture: Some(i.architecture.clone()),
            image_type: Some("machine".into()),
            // A kernel or initrd is named by its image's id, which RunInstances' KernelId and
            // RamdiskId take (as EC2's AKI and ARI ids), never by its path on the hosts.
            kernel_id: i.kernel.as_ref().map(|_| i.id.clone()),
            ramdisk_id: i.initrd.as_ref().map(|_| i.id.clone()),
            creation_date: Some(ec2api::xml::format_timestamp(&timestamp(i.created_ms))),
            root_device_type: Some("ebs".into()),
            root_device_name: Some(super::shapes::ROOT_DEVICE.into()),
            virtualization_type: Some("hvm".into()),
            hypervisor: Some("xen".into()),
            ena_support: Some(false),
            block_device_mappings: Some(vec![ec2api::BlockDeviceMapping {
                device_name: Some(super::shapes::ROOT_DEVICE.into()),
                ebs: Some(ec2api::EbsBlockDevice {
                    delete_on_termination: Some(true),
                    volume_size: super::int(i.virtual_size_bytes.div_ceil(1 << 30).max(1)),
                    volume_type: Some("gp2".into()),
                    encrypted: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            platform_details: Some("Linux/UNIX".into()),
            // Guests boot SeaBIOS, or their kernel directly: never UEFI.
            boot_mode: Some("legacy-bios".into()),
            usage_operation: Some("RunInstances".into()),
            tags: (!tags.is_empty()).then(|| tag_list(&tags)),
            ..Default::default()
        })
        .collect();
    Ok(DescribeImagesOutput { images: Some(images), next_token })
}
