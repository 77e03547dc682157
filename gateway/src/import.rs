//! `stratus image import`: copy an image's files into the data dir, then register them.
//!
//! The copy happens in this process (with progress for large files); only the registration
//! goes through the admin path, so it works whether or not a server holds the database. A
//! failed registration removes the copied files again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::admin::{self, AdminAnswer, AdminRequest};

pub struct ImportArgs {
    pub file: PathBuf,
    pub name: String,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

/// Copies `from` to `to`, reporting progress on stderr every 5% for files over 64 MiB.
fn copy_with_progress(from: &Path, to: &Path) -> Result<()> {
    let mut source = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let total = source.metadata()?.len();
    let mut target = std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut copied, mut reported) = (0u64, 0u64);
    let loud = total > 64 << 20;
    loop {
        let n = source.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        target.write_all(&buffer[..n])?;
        copied += n as u64;
        let percent = copied * 100 / total.max(1);
        if loud && percent >= reported + 5 {
            eprintln!("{}: {percent}% ({} of {} MiB)", from.display(), copied >> 20, total >> 20);
            reported = percent;
        }
    }
    target.sync_all()?;
    Ok(())
}

pub async fn import(
    data_dir: &Path,
    storage: &crate::config::StorageSettings,
    args: ImportArgs,
    topology: backend::Topology,
) -> Result<String> {
    let redb = storage.postgres_url()?.is_none();
    if (redb && !admin::database_path(data_dir).exists()) || !data_dir.is_dir() {
        bail!(
            "{} holds no Stratus data (run `stratus serve --data-dir {}` first)",
            data_dir.display(),
            data_dir.display()
        );
    }
    let id = backend::ids::resource_id("ami");
    let dir = std::path::absolute(data_dir)?.join("images").join(&id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = async {
        let mut owned = Vec::new();
        let mut place = |source: &Path, name: &str| -> Result<String> {
            let target = dir.join(name);
            copy_with_progress(source, &target)?;
            let path = target.to_string_lossy().into_owned();
            owned.push(path.clone());
            Ok(path)
        };
        let disk_name = match args.file.extension().and_then(|e| e.to_str()) {
            Some("raw" | "img") => "disk.raw",
            _ => "disk.qcow2",
        };
        let disk = place(&args.file, disk_name)?;
        let kernel = args.kernel.as_deref().map(|k| place(k, "kernel")).transpose()?;
        let initrd = args.initrd.as_deref().map(|i| place(i, "initrd")).transpose()?;
        let request = AdminRequest::ImportImage {
            id: id.clone(),
            name: args.name,
            disk,
            kernel,
            initrd,
            cmdline: args.cmdline,
            owned_files: owned,
        };
        match admin::run(data_dir, storage, request, topology).await? {
            AdminAnswer::Image { id, .. } => Ok(id),
            AdminAnswer::Error(message) => bail!("{message}"),
            other => bail!("unexpected answer {other:?}"),
        }
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn import_copies_registers_and_cleans_up_after_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = storage::Store::open(&admin::database_path(&data)).unwrap();
        backend::Backend::new(store, Default::default()).bootstrap_admin().unwrap();
        let disk = dir.path().join("src.qcow2");
        assert!(std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&disk)
            .arg("16M")
            .status()
            .unwrap()
            .success());
        let args = |name: &str| ImportArgs {
            file: disk.clone(),
            name: name.into(),
            kernel: None,
            initrd: None,
            cmdline: None,
        };
        let id = import(&data, &Default::default(), args("imported"), Default::default()).await.unwrap();
        assert!(data.join("images").join(&id).join("disk.qcow2").exists());
        // The same name again is refused, and its copy does not linger.
        assert!(import(&data, &Default::default(), args("imported"), Default::default()).await.is_err());
        assert_eq!(std::fs::read_dir(data.join("images")).unwrap().count(), 1);
    }
}
