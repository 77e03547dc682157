//! Machine images: a root disk (qcow2 or raw) a host can read, optionally with a kernel,
//! initrd and command line for direct boot.
//!
//! Images come two ways: `stratus image import` copies files into the data dir and registers
//! them for the admin account, public to all; RegisterImage points at a file already on disk.
//! Either way `qemu-img info` tells the format and size before anything is stored. Accounts
//! see their own images and the public ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use storage::tables::IMAGES;
use storage::ImageRecord;

use crate::{ids, now_ms, tags, Backend, Error, ResourceKind, Result};

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

/// What `qemu-img info` says of a disk.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskInfo {
    pub format: String,
    pub virtual_size_bytes: u64,
}

fn invalid(name: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidParameter { name, message: message.into() }
}

/// Asks `qemu-img` what a disk is; only qcow2 and raw are accepted.
pub fn inspect_disk(path: &Path) -> Result<DiskInfo> {
    let output = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .map_err(|e| invalid("ImageLocation", format!("cannot run qemu-img: {e}")))?;
    if !output.status.success() {
        return Err(invalid("ImageLocation", format!("'{}' is not a readable disk image", path.display())));
    }
    let info: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| invalid("ImageLocation", format!("qemu-img answered oddly: {e}")))?;
    let format = info["format"].as_str().unwrap_or_default().to_owned();
    if format != "qcow2" && format != "raw" {
        return Err(invalid("ImageLocation", format!("disk format '{format}' is not supported (qcow2, raw)")));
    }
    let virtual_size_bytes = info["virtual-size"].as_u64().unwrap_or_default();
    Ok(DiskInfo { format, virtual_size_bytes })
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
        let disk = inspect_disk(Path::new(&new.disk))?;
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
            owned_files: new.owned_files,
            created_ms: now_ms(),
        };
        self.store().write(|tx| {
            if tx.scan(&IMAGES, &format!("{account}/"))?.iter().any(|(_, i)| i.name == record.name) {
                return Err(Error::ImageNameDuplicate(record.name.clone()));
            }
            tx.insert(&IMAGES, &format!("{account}/{}", record.id), &record)?;
            tags::put_tags(tx, account, &record.id, &new.tags)?;
            Ok(())
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

    /// Non-admin accounts may register only files under the data dir's `images/` folder
    /// (symlinks resolved), so that no one boots a host file they could not read otherwise.
    pub fn check_user_image_paths(&self, new: &NewImage) -> Result<()> {
        let root = self.data_dir().join("images");
        let root = root.canonicalize().unwrap_or(root);
        let paths =
            [("ImageLocation", Some(&new.disk)), ("KernelId", new.kernel.as_ref()), ("RamdiskId", new.initrd.as_ref())];
        for (name, path) in paths {
            let Some(path) = path else { continue };
            let inside = Path::new(path).canonicalize().is_ok_and(|p| p.starts_with(&root));
            if !inside {
                return Err(Error::Unauthorized(format!(
                    "{name} '{path}' is outside {}; only admin accounts may register other paths",
                    root.display()
                )));
            }
        }
        Ok(())
    }

    /// Images `account` may see and launch: its own and the public ones, by id.
    pub fn images(&self, account: &str) -> Result<Vec<ImageRecord>> {
        let mut images: Vec<ImageRecord> = self
            .store()
            .read(|tx| tx.scan(&IMAGES, ""))?
            .into_iter()
            .map(|(_, image)| image)
            .filter(|image| image.owner == account || image.public)
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(images)
    }

    pub fn image(&self, account: &str, id: &str) -> Result<ImageRecord> {
        self.images(account)?
            .into_iter()
            .find(|i| i.id == id)
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

    /// Where `stratus image import` puts an image's files.
    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.data_dir().join("images").join(id)
    }
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
