//! Machine images: a root disk (qcow2 or raw) a host can read, optionally with a kernel,
//! initrd and command line for direct boot.
//!
//! Images come two ways: `stratus image import` copies files into the data dir and registers
//! them for the admin account, public to all; RegisterImage points at a file already on disk.
//! Either way `qemu-img info` ([`crate::disk`]) tells the format and size before anything is stored. Accounts
//! see their own images and the public ones.
//!
//! CreateImage makes a third kind from an instance: it records a `pending` image and kicks
//! the instance's conductor work, which (before anything else it does to that instance)
//! copies the instance's root disk (its overlay and the image beneath,
//! flattened into one standalone qcow2) plus the kernel and initrd it boots with, then marks
//! the image `available`. A running guest is paused for the copy: QEMU drains and flushes its
//! disk on pause, so the copy is crash-consistent, and the guest resumes where it was (it is
//! not rebooted, whatever `NoReboot` says). A pending image found after a restart is copied
//! again from the start.

use std::path::{Path, PathBuf};

use storage::tables::{IMAGES, INSTANCES};
use storage::{ImageRecord, ImageState, InstanceRecord, InstanceState, StateReason};

use crate::disk::{link_or_copy, Disk};
use crate::hypervisor::DriverError;
use crate::instances::root_disk_path;
use crate::{disk, ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// What a new image is made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewImage {
    /// Minted unless given (the import CLI names its directory after the id first).
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub disk: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub public: bool,
    pub owned_files: Vec<String>,
    pub tags: Vec<(String, String)>,
}

fn check_file(name: &'static str, path: &str) -> Result<()> {
    let p = Path::new(path);
    if !p.is_absolute() || !p.is_file() {
        return Err(invalid(name, format!("'{path}' is not an absolute path to a readable file")));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let ok = (3..=128).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid("Name", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', '@' and '''"))
    }
}

impl Backend {
    /// Registers an image owned by `account` after checking its files. Blocks on `qemu-img`.
    pub fn register_image(&self, account: &str, new: NewImage) -> Result<ImageRecord> {
        validate_name(&new.name)?;
        tags::validate_tags(&new.tags)?;
        check_file("ImageLocation", &new.disk)?;
        for (name, path) in [("KernelId", &new.kernel), ("RamdiskId", &new.initrd)] {
            if let Some(path) = path {
                check_file(name, path)?;
            }
        }
        if new.initrd.is_some() && new.kernel.is_none() {
            return Err(invalid("RamdiskId", "A ramdisk needs a kernel"));
        }
        let disk = disk::inspect(Path::new(&new.disk))?;
        let record = ImageRecord {
            id: new.id.unwrap_or_else(|| ids::resource_id("ami")),
            owner: account.to_owned(),
            name: new.name,
            description: new.description,
            architecture: "x86_64".into(),
            disk: new.disk,
            disk_format: disk.format,
            virtual_size_bytes: disk.virtual_size_bytes,
            cmdline: new.kernel.as_ref().map(|_| new.cmdline.unwrap_or_else(|| "console=ttyS0".into())),
            kernel: new.kernel,
            initrd: new.initrd,
            public: new.public,
            launch_permissions: Vec::new(),
            copy_of: None,
            client_token: None,
            owned_files: new.owned_files,
            created_ms: now_ms(),
            state: ImageState::Available,
            source_instance: None,
            state_reason: None,
        };
        self.store().write(|tx| {
            ensure_unique_name(tx, account, &record.name)?;
            tx.insert(&IMAGES, &format!("{account}/{}", record.id), &record)?;
            tags::put_tags(tx, account, &record.id, &new.tags)?;
            Ok::<_, Error>(())
        })?;
        Ok(record)
    }

    /// Registers an imported image for the first admin account, public to every account.
    pub fn import_image(&self, mut new: NewImage) -> Result<ImageRecord> {
        let admin = self
            .list_accounts()?
            .into_iter()
            .find(|a| a.admin)
            .ok_or_else(|| invalid("account", "there is no admin account yet: start `stratus serve` once"))?;
        new.public = true;
        self.register_image(&admin.account_id, new)
    }

    /// Images `account` may see and launch: its own and the public ones, by id.
    pub fn images(&self, account: &str) -> Result<Vec<ImageRecord>> {
        let mut images: Vec<ImageRecord> = self
            .store()
            .read(|tx| tx.scan(&IMAGES, ""))?
            .into_iter()
            .map(|(_, image)| image)
            .filter(|image| image.launchable_by(account))
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(images)
    }

    /// One image `account` may see (its own, a public one, or one shared with it).
    pub fn image(&self, account: &str, id: &str) -> Result<ImageRecord> {
        self.store()
            .read(|tx| <ImageRecord as crate::listing::Listed>::fetch(tx, account, id))?
            .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Image, id: id.to_owned() })
    }

    /// Forgets an image of `account`'s and deletes the files it owns. Instances launched
    /// from it keep running: their disks are overlays that still need the image's disk, so
    /// owned files stay while any instance uses them.
    pub fn deregister_image(&self, account: &str, id: &str) -> Result<()> {
        let key = format!("{account}/{id}");
        let image = self.store().write(|tx| {
            let image = tx
                .get(&IMAGES, &key)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Image, id: id.to_owned() })?;
            tx.remove(&IMAGES, &key)?;
            tags::drop_tags(tx, account, id)?;
            Ok::<_, Error>(image)
        })?;
        if !self.image_in_use(&image.id)? {
            remove_owned_files(&image.owned_files);
        }
        Ok(())
    }

    /// CreateImage: records a pending image of the instance's root disk; the copy is done by
    /// the instance's own conductor work ([`Backend::capture_pending_images`]), so it never
    /// overlaps a start, stop or terminate of that instance.
    pub fn create_image(
        &self,
        account: &str,
        instance_id: &str,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<ImageRecord> {
        validate_name(name)?;
        tags::validate_tags(tags)?;
        let id = ids::resource_id("ami");
        let disk = self.image_dir(&id).join("disk.qcow2").to_string_lossy().into_owned();
        let record = self.store().write(|tx| {
            let instance = tx.get(&INSTANCES, &format!("{account}/{instance_id}"))?.ok_or_else(|| {
                Error::ResourceNotFound { kind: ResourceKind::Instance, id: instance_id.to_owned() }
            })?;
            if !matches!(instance.state, InstanceState::Running | InstanceState::Stopping | InstanceState::Stopped) {
                return Err(invalid(
                    "InstanceId",
                    format!(
                        "Invalid value '{instance_id}' for instanceId. Instance is not in state 'running' or 'stopping' or 'stopped'"
                    ),
                ));
            }
            ensure_unique_name(tx, account, name)?;
            // Images are kept in the clear, and an image of an encrypted root would hold its
            // data so (EC2 would encrypt the image's snapshot; Stratus does not yet).
            let root = crate::volumes::attached_volumes(tx, account, instance_id)?.into_iter().find(|v| v.root);
            if root.is_some_and(|v| v.encryption.is_some()) {
                return Err(Error::UnsupportedOperation(format!(
                    "The root volume of instance {instance_id} is encrypted, and Stratus keeps images unencrypted: an image of it would hold its data in the clear."
                )));
            }
            let record = ImageRecord {
                id: id.clone(),
                owner: account.to_owned(),
                name: name.to_owned(),
                description: description.to_owned(),
                architecture: "x86_64".into(),
                disk: disk.clone(),
                disk_format: "qcow2".into(),
                virtual_size_bytes: instance.root_disk_bytes,
                kernel: None,
                initrd: None,
                cmdline: None,
                public: false,
                launch_permissions: Vec::new(),
                copy_of: None,
                client_token: None,
                owned_files: vec![disk.clone()],
                created_ms: now_ms(),
                state: ImageState::Pending,
                source_instance: Some(instance.id),
                state_reason: None,
            };
            tx.insert(&IMAGES, &format!("{account}/{id}"), &record)?;
            tags::put_tags(tx, account, &id, tags)?;
            Ok(record)
        })?;
        self.kick(&format!("{account}/{instance_id}"));
        Ok(record)
    }

    /// Copies the instance's disk for every pending image made from it, then marks each one
    /// available (or failed). Runs as part of the instance's converge, before any state
    /// change of the instance is carried out. Blocks on the host and on `qemu-img`.
    pub(crate) fn capture_pending_images(&self, instance: &InstanceRecord) -> Result<()> {
        let pending: Vec<(String, ImageRecord)> = self
            .store()
            .read(|tx| tx.scan(&IMAGES, &format!("{}/", instance.account)))?
            .into_iter()
            .filter(|(_, i)| i.state == ImageState::Pending && i.source_instance.as_ref() == Some(&instance.id))
            .collect();
        for (key, image) in pending {
            let finished = match self.copy_instance(instance, &image) {
                // A host that does not answer may come back: the sweep retries.
                Err(error @ Error::Driver(DriverError::Unreachable(_))) => return Err(error),
                Ok(done) => done,
                Err(error) => {
                    tracing::warn!(image = %image.id, %error, "CreateImage failed");
                    let reason = StateReason {
                        code: "Server.InternalError".into(),
                        message: "Server.InternalError: Internal error on copying the instance's disk".into(),
                    };
                    ImageRecord { state: ImageState::Failed, state_reason: Some(reason), ..image.clone() }
                }
            };
            self.finish_pending_image(&key, &finished)?;
        }
        Ok(())
    }

    /// Records how a pending image's copy ended, unless it is no longer pending (deregistered
    /// meanwhile). What did not become an available image leaves nothing on disk.
    fn finish_pending_image(&self, key: &str, finished: &ImageRecord) -> Result<()> {
        let kept = self.store().write(|tx| {
            if tx.get(&IMAGES, key)?.is_none_or(|c| c.state != ImageState::Pending) {
                return Ok(false);
            }
            tx.insert(&IMAGES, key, finished)?;
            Ok::<_, Error>(true)
        })?;
        if !kept || finished.state == ImageState::Failed {
            let _ = std::fs::remove_dir_all(self.image_dir(&finished.id));
        }
        Ok(())
    }

    /// The source's kernel and initrd, linked or copied into `done`'s own folder: an image must
    /// boot after the one it came from is deregistered (which deletes imported files).
    fn own_boot_files(&self, source: &ImageRecord, done: &mut ImageRecord) -> Result<()> {
        let dir = self.image_dir(&done.id);
        for (from, name) in [(&source.kernel, "kernel"), (&source.initrd, "initrd")] {
            let Some(from) = from else { continue };
            let to = dir.join(name);
            link_or_copy(Path::new(from), &to)?;
            let to = to.to_string_lossy().into_owned();
            match name {
                "kernel" => done.kernel = Some(to.clone()),
                _ => done.initrd = Some(to.clone()),
            }
            done.owned_files.push(to);
        }
        Ok(())
    }

    /// Copies an instance's boot files into the image's directory; answers the available
    /// image. A running guest is paused for the disk copy and resumed after it.
    fn copy_instance(&self, instance: &InstanceRecord, image: &ImageRecord) -> Result<ImageRecord> {
        let dir = self.image_dir(&image.id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        let mut done = image.clone();
        if let Some(source) = self.any_image(&instance.image_id)?.filter(|s| s.kernel.is_some()) {
            self.own_boot_files(&source, &mut done)?;
            done.cmdline = source.cmdline;
        }
        let host = self.hosts().get(&instance.host_id).ok_or_else(|| Error::HostGone(instance.host_id.clone()))?;
        let active = host.driver.state(&instance.id).map_err(Error::Driver)?.is_some_and(|s| !s.is_off());
        if active {
            host.driver.suspend(&instance.id).map_err(Error::Driver)?;
        }
        let paused = std::time::Instant::now();
        // Plain to plain: an encrypted root was refused when the image was asked for.
        let copied = disk::flatten(Disk::plain(&root_disk_path(instance)), Disk::plain(Path::new(&image.disk)));
        if active {
            // A guest left paused would be down for good: failing here keeps the image
            // pending, and the retry resumes it.
            host.driver.resume(&instance.id).map_err(Error::Driver)?;
            let paused_ms = paused.elapsed().as_millis() as u64;
            tracing::info!(instance = %instance.id, image = %image.id, paused_ms, "guest paused for the image copy");
        }
        copied?;
        done.virtual_size_bytes = disk::inspect(Path::new(&image.disk))?.virtual_size_bytes;
        done.state = ImageState::Available;
        done.source_instance = None;
        Ok(done)
    }

    /// An image by id, whoever owns it (an instance may run from another account's public
    /// image).
    pub(crate) fn any_image(&self, id: &str) -> Result<Option<ImageRecord>> {
        self.store().read(|tx| {
            let Some(owner) = crate::listing::image_owner(tx, id)? else { return Ok(None) };
            Ok(tx.get(&IMAGES, &format!("{owner}/{id}"))?)
        })
    }

    /// CopyImage: a pending image of `account`'s with the disk (and boot files) of an image it
    /// may launch; the copy is the image's own conductor work ([`Backend::converge_image`]).
    /// A retry with the same `ClientToken` finds the first copy.
    pub fn copy_image(&self, account: &str, req: ImageCopy) -> Result<ImageRecord> {
        validate_name(&req.name)?;
        tags::validate_tags(&req.tags)?;
        // A retry finds its first copy, whatever has become of the source since.
        if let Some(token) = &req.client_token {
            let earlier = self
                .store()
                .read(|tx| tx.scan(&IMAGES, &format!("{account}/")))?
                .into_iter()
                .map(|(_, i)| i)
                .find(|i| i.client_token.as_ref() == Some(token));
            if let Some(earlier) = earlier {
                let same = earlier.name == req.name
                    && earlier.copy_of.as_ref().is_none_or(|source| *source == req.source_image_id);
                return if same { Ok(earlier) } else { Err(Error::IdempotentParameterMismatch(token.clone())) };
            }
        }
        let source = self.image(account, &req.source_image_id)?;
        if source.state != ImageState::Available {
            return Err(Error::ImageUnavailable(source.id));
        }
        let id = ids::resource_id("ami");
        let disk = self.image_dir(&id).join("disk.qcow2").to_string_lossy().into_owned();
        let record = self.store().write(|tx| {
            if let Some(token) = &req.client_token {
                let earlier = tx
                    .scan(&IMAGES, &format!("{account}/"))?
                    .into_iter()
                    .map(|(_, i)| i)
                    .find(|i| i.client_token.as_ref() == Some(token));
                if let Some(earlier) = earlier {
                    return Ok(earlier);
                }
            }
            ensure_unique_name(tx, account, &req.name)?;
            let record = ImageRecord {
                id: id.clone(),
                owner: account.to_owned(),
                name: req.name.clone(),
                description: req.description.clone().unwrap_or_else(|| source.description.clone()),
                architecture: source.architecture.clone(),
                disk: disk.clone(),
                disk_format: "qcow2".into(),
                virtual_size_bytes: source.virtual_size_bytes,
                kernel: None,
                initrd: None,
                cmdline: source.cmdline.clone(),
                public: false,
                launch_permissions: Vec::new(),
                owned_files: vec![disk.clone()],
                created_ms: now_ms(),
                state: ImageState::Pending,
                source_instance: None,
                state_reason: None,
                copy_of: Some(source.id.clone()),
                client_token: req.client_token.clone(),
            };
            tx.insert(&IMAGES, &format!("{account}/{id}"), &record)?;
            tags::put_tags(tx, account, &id, &req.tags)?;
            Ok::<_, Error>(record)
        })?;
        if record.state == ImageState::Pending {
            self.kick(&format!("{account}/{}", record.id));
        }
        Ok(record)
    }

    /// A copied image's work ([`Backend::copy_image`]): the source's disk flattened into the
    /// image's own folder, its kernel and initrd linked or copied there, then available; failed
    /// if the source has gone meanwhile. Blocks on `qemu-img`.
    pub(crate) fn converge_image(&self, key: &str) -> Result<()> {
        let Some(image) = self.store().read(|tx| tx.get(&IMAGES, key))? else { return Ok(()) };
        let Some(source_id) = image.copy_of.clone().filter(|_| image.state == ImageState::Pending) else {
            return Ok(());
        };
        let finished = match self.copy_image_files(&image, &source_id) {
            Ok(done) => done,
            // No verdict on the copy: the store failed, the work is retried.
            Err(error) if error.store_unavailable() => return Err(error),
            Err(error) => {
                tracing::warn!(image = %image.id, source = %source_id, %error, "CopyImage failed");
                let reason = StateReason {
                    code: "Client.InvalidAMIID.NotFound".into(),
                    message: format!("Client.InvalidAMIID.NotFound: the source image {source_id} could not be copied"),
                };
                ImageRecord { state: ImageState::Failed, state_reason: Some(reason), ..image.clone() }
            }
        };
        self.finish_pending_image(key, &finished)
    }

    fn copy_image_files(&self, image: &ImageRecord, source_id: &str) -> Result<ImageRecord> {
        let source = self
            .any_image(source_id)?
            .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Image, id: source_id.to_owned() })?;
        let dir = self.image_dir(&image.id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        let mut done = image.clone();
        self.own_boot_files(&source, &mut done)?;
        disk::flatten(Disk::plain(Path::new(&source.disk)), Disk::plain(Path::new(&image.disk)))?;
        done.virtual_size_bytes = disk::inspect(Path::new(&image.disk))?.virtual_size_bytes;
        done.state = ImageState::Available;
        done.copy_of = None;
        Ok(done)
    }

    /// Keys of the images whose copy a crash interrupted.
    pub(crate) fn unfinished_image_copies(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.store().read(|tx| {
            tx.for_each(&IMAGES, "", |key, image: ImageRecord| {
                if image.state == ImageState::Pending && image.copy_of.is_some() {
                    keys.push(key.to_owned());
                }
            })
        })?;
        Ok(keys)
    }

    /// ModifyImageAttribute `launchPermission`, or with no change ResetImageAttribute: who
    /// besides its owner may see and launch the image. Owner only.
    pub fn change_launch_permissions(
        &self,
        account: &str,
        id: &str,
        change: Option<&crate::sharing::PermissionChange>,
    ) -> Result<ImageRecord> {
        self.owned_image(account, id)?;
        self.store().write(|tx| {
            let key = format!("{account}/{id}");
            let mut image = tx
                .get(&IMAGES, &key)?
                .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Image, id: id.to_owned() })?;
            let now = crate::sharing::Permissions { public: image.public, accounts: image.launch_permissions.clone() };
            let next = match change {
                Some(change) => crate::sharing::apply(&now, change, account, ResourceKind::Image)?,
                None => crate::sharing::Permissions::default(),
            };
            (image.public, image.launch_permissions) = (next.public, next.accounts);
            tx.insert(&IMAGES, &key, &image)?;
            Ok(image)
        })
    }

    /// ModifyImageAttribute `description`. Owner only.
    pub fn set_image_description(&self, account: &str, id: &str, description: &str) -> Result<()> {
        if description.chars().count() > 255 {
            return Err(invalid("Description", "An image description is at most 255 characters."));
        }
        self.owned_image(account, id)?;
        self.store().write(|tx| {
            let key = format!("{account}/{id}");
            let Some(mut image) = tx.get(&IMAGES, &key)? else {
                return Err(Error::ResourceNotFound { kind: ResourceKind::Image, id: id.to_owned() });
            };
            image.description = description.to_owned();
            tx.insert(&IMAGES, &key, &image)?;
            Ok(())
        })
    }

    /// DescribeImageAttribute's image: visible to the caller and owned by it.
    pub fn owned_image(&self, account: &str, id: &str) -> Result<ImageRecord> {
        let image = self.image(account, id)?;
        if image.owner != account {
            return Err(Error::NotImageOwner(image.id));
        }
        Ok(image)
    }

    /// Where `stratus image import` puts an image's files.
    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.data_dir().join("images").join(id)
    }
}

fn ensure_unique_name(tx: &storage::WriteTx, account: &str, name: &str) -> Result<()> {
    if tx.scan(&IMAGES, &format!("{account}/"))?.iter().any(|(_, i)| i.name == name) {
        return Err(Error::ImageNameDuplicate(name.to_owned()));
    }
    Ok(())
}

/// A CopyImage request (the region is the gateway's to check).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageCopy {
    pub source_image_id: String,
    pub name: String,
    pub description: Option<String>,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
}

pub(crate) fn remove_owned_files(files: &[String]) {
    for file in files {
        let path = Path::new(file);
        if let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(file, %error, "could not remove an image file");
        }
        if let Some(parent) = path.parent() {
            // Only succeeds once the directory is empty, which is what we want.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{backend, test_disk};
    use std::process::Command;

    #[test]
    fn register_describe_deregister() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let disk = test_disk(dir.path());
        let new = NewImage { name: "my image".into(), disk: disk.clone(), ..Default::default() };
        let image = b.register_image("acct1", new.clone()).unwrap();
        assert_eq!(image.disk_format, "qcow2");
        assert_eq!(image.virtual_size_bytes, 64 << 20);
        assert!(image.kernel.is_none() && image.cmdline.is_none());
        assert!(matches!(b.register_image("acct1", new.clone()), Err(Error::ImageNameDuplicate(_))));
        assert_eq!(b.images("acct1").unwrap().len(), 1);
        assert!(b.images("acct2").unwrap().is_empty(), "private images stay with their owner");
        assert!(matches!(b.deregister_image("acct2", &image.id), Err(Error::ResourceNotFound { .. })));
        b.deregister_image("acct1", &image.id).unwrap();
        assert!(b.images("acct1").unwrap().is_empty());
        assert!(Path::new(&disk).exists(), "a registered (not imported) disk is not ours to delete");
    }

    #[test]
    fn public_images_are_visible_to_all() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let disk = test_disk(dir.path());
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"kernel").unwrap();
        let new = NewImage {
            name: "shared".into(),
            disk,
            kernel: Some(kernel.to_string_lossy().into()),
            public: true,
            ..Default::default()
        };
        let image = b.register_image("admin", new).unwrap();
        assert_eq!(image.cmdline.as_deref(), Some("console=ttyS0"));
        assert_eq!(b.image("someone", &image.id).unwrap().id, image.id);
    }

    /// Runs one qemu-io command; reads share the lock (`-U`), which qemu-io allows only then.
    fn qemu_io(disk: &Path, command: &str) -> bool {
        let mut cmd = Command::new("qemu-io");
        if command.starts_with("read") {
            cmd.args(["-r", "-U"]);
        }
        cmd.args(["-c", command]).arg(disk).output().unwrap().status.success()
    }

    /// CreateImage copies what the instance wrote to its disk, with the kernel it boots,
    /// from a stopped instance and from a running one (paused for the copy, then resumed).
    #[test]
    fn create_image_copies_the_instance_disk() {
        use crate::hypervisor::PowerState;
        use crate::instances::LaunchRequest;
        use crate::tests_support::{running_instance, test_driver_backend};
        use storage::InstanceState;

        let dir = tempfile::tempdir().unwrap();
        let b = test_driver_backend(dir.path());
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"kernel bytes").unwrap();
        let new = NewImage {
            name: "base".into(),
            disk: test_disk(dir.path()),
            kernel: Some(kernel.to_string_lossy().into()),
            cmdline: Some("console=ttyS0 quiet".into()),
            ..Default::default()
        };
        let base = b.register_image("acct", new).unwrap();
        let instance = running_instance(&b, "acct", &base.id);
        let key = format!("acct/{}", instance.id);
        let overlay = Path::new(&instance.dir).join("root.qcow2");
        assert!(qemu_io(&overlay, "write -P 0x5a 1M 64k"));

        // Running: answered pending at once; the copy happens in the conductor's step.
        let image = b.create_image("acct", &instance.id, "from running", "d", &[]).unwrap();
        assert_eq!(image.state, ImageState::Pending);
        let from_pending = LaunchRequest {
            image_id: image.id.clone(),
            instance_type: "t3.nano".into(),
            min_count: 1,
            max_count: 1,
            ..Default::default()
        };
        assert!(matches!(b.run_instances("acct", "vpc-1", from_pending), Err(Error::ImageUnavailable(_))));
        b.converge(&key).unwrap();
        let image = b.image("acct", &image.id).unwrap();
        assert_eq!(image.state, ImageState::Available, "{:?}", image.state_reason);
        assert!(qemu_io(Path::new(&image.disk), "read -P 0x5a 1M 64k"), "the copy holds what the guest wrote");
        let info = Command::new("qemu-img").args(["info", "--output=json", "-U", &image.disk]).output().unwrap();
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert!(info.get("backing-filename").is_none(), "the image stands alone: {info}");
        assert_eq!(std::fs::read(image.kernel.as_ref().unwrap()).unwrap(), b"kernel bytes");
        assert_eq!(image.cmdline.as_deref(), Some("console=ttyS0 quiet"));
        let host = b.hosts().iter().next().unwrap().clone();
        assert_eq!(host.driver.state(&instance.id).unwrap(), Some(PowerState::Running), "resumed after the copy");

        // Stopped; a name is unique per account; a terminated instance has nothing to copy.
        b.stop_instances("acct", std::slice::from_ref(&instance.id), true).unwrap();
        b.converge(&key).unwrap();
        assert!(matches!(
            b.create_image("acct", &instance.id, "from running", "", &[]),
            Err(Error::ImageNameDuplicate(_))
        ));
        let stopped = b.create_image("acct", &instance.id, "from stopped", "", &[]).unwrap();
        b.converge(&key).unwrap();
        assert_eq!(b.image("acct", &stopped.id).unwrap().state, ImageState::Available);
        b.terminate_instances("acct", std::slice::from_ref(&instance.id)).unwrap();
        assert!(matches!(
            b.create_image("acct", &instance.id, "from terminated", "", &[]),
            Err(Error::InvalidParameter { name: "InstanceId", .. })
        ));
        b.converge(&key).unwrap();
        assert_eq!(b.instance("acct", &instance.id).unwrap().state, InstanceState::Terminated);

        // Deregistering removes the copied files.
        b.deregister_image("acct", &image.id).unwrap();
        assert!(!Path::new(&image.disk).exists() && !b.image_dir(&image.id).exists());
    }

    #[test]
    fn bad_files_and_names_are_refused() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let not_a_disk = dir.path().join("notes.txt");
        std::fs::write(&not_a_disk, b"").unwrap();
        let cases = [
            NewImage { name: "ok name".into(), disk: "relative.qcow2".into(), ..Default::default() },
            NewImage { name: "ok name".into(), disk: "/nonexistent/disk.qcow2".into(), ..Default::default() },
            NewImage { name: "x".into(), disk: test_disk(dir.path()), ..Default::default() },
            NewImage { name: "bad\u{0}name".into(), disk: test_disk(dir.path()), ..Default::default() },
            NewImage {
                name: "ramdisk only".into(),
                disk: test_disk(dir.path()),
                initrd: Some(not_a_disk.to_string_lossy().into()),
                ..Default::default()
            },
        ];
        for new in cases {
            assert!(matches!(b.register_image("a", new.clone()), Err(Error::InvalidParameter { .. })), "{new:?}");
        }
        assert!(b.images("a").unwrap().is_empty());
    }
}
