//! Disk files, through `qemu-img`: the one place that runs it.
//!
//! Every file that is made (an overlay, a flattened copy, a new volume) is written under a
//! `.partial` name and renamed into place when whole, so a crash never leaves a half-made
//! disk where a finished one is expected; the next attempt starts over. Failures carry
//! qemu-img's words for the log; they never reach a client ([`crate::Error::Io`]).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::{invalid, Error, Result};

/// What `qemu-img info` says of a disk.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskInfo {
    pub format: String,
    pub virtual_size_bytes: u64,
}

/// Asks `qemu-img` what a disk is; only qcow2 and raw are accepted. `-U`: a running guest's
/// lock does not stop a read of its metadata.
pub fn inspect(path: &Path) -> Result<DiskInfo> {
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

/// Runs `qemu-img verb args…`.
fn run(verb: &str, args: &[&OsStr]) -> Result<()> {
    let output = Command::new("qemu-img")
        .arg(verb)
        .args(args)
        .output()
        .map_err(|e| Error::Io(format!("running qemu-img: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Io(format!("qemu-img {verb} failed: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}

/// Makes `target` by `make(partial)`, renaming it into place once whole.
fn made_whole(target: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let partial = target.with_extension("partial");
    if let Err(error) = make(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, target).map_err(|e| Error::Io(format!("renaming {}: {e}", partial.display())))
}

/// A copy-on-write qcow2 over `base`; `size_bytes` grows it past the base's size.
pub fn create_overlay(base: &Path, base_format: &str, target: &Path, size_bytes: Option<u64>) -> Result<()> {
    made_whole(target, |partial| {
        let size = size_bytes.map(|s| s.to_string());
        let mut args: Vec<&OsStr> =
            vec!["-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), "-F".as_ref(), base_format.as_ref(), "-b".as_ref()];
        args.extend([base.as_os_str(), partial.as_os_str()]);
        args.extend(size.as_deref().map(OsStr::new));
        run("create", &args)
    })
}

/// An empty qcow2 of `bytes`.
pub fn create_blank(target: &Path, bytes: u64) -> Result<()> {
    let size = bytes.to_string();
    made_whole(target, |partial| {
        run("create", &["-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), partial.as_ref(), size.as_ref()])
    })
}

/// A standalone qcow2 of `from` and its backing chain. `-U` reads past a running QEMU's lock:
/// callers pause the guest (QEMU flushes on pause) or have it off, so nothing changes beneath.
pub fn flatten(from: &Path, to: &Path) -> Result<()> {
    made_whole(to, |partial| {
        run(
            "convert",
            &["-U".as_ref(), "-q".as_ref(), "-O".as_ref(), "qcow2".as_ref(), from.as_ref(), partial.as_ref()],
        )
    })
}

/// A standalone copy of `from`, grown to `bytes`.
pub fn copy_grown(from: &Path, to: &Path, bytes: u64) -> Result<()> {
    made_whole(to, |partial| {
        run("convert", &["-q".as_ref(), "-O".as_ref(), "qcow2".as_ref(), from.as_ref(), partial.as_ref()])?;
        grow(partial, bytes)
    })
}

/// Grows a qcow2 that no guest has open to `bytes`, in place.
pub fn grow(path: &Path, bytes: u64) -> Result<()> {
    let size = bytes.to_string();
    run("resize", &["-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), path.as_ref(), size.as_ref()])
}

/// A hard link where the filesystem allows (for files that never change: kernels, snapshots),
/// else a copy under a temporary name, renamed so that a crash leaves no half file.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).map_err(|e| Error::Io(format!("copying {}: {e}", from.display())))?;
    std::fs::rename(&partial, to).map_err(|e| Error::Io(format!("renaming {}: {e}", partial.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_made_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        create_blank(&base, 64 << 20).unwrap();
        assert_eq!(inspect(&base).unwrap(), DiskInfo { format: "qcow2".into(), virtual_size_bytes: 64 << 20 });
        let overlay = dir.path().join("root.qcow2");
        create_overlay(&base, "qcow2", &overlay, Some(128 << 20)).unwrap();
        assert_eq!(inspect(&overlay).unwrap().virtual_size_bytes, 128 << 20);
        let flat = dir.path().join("flat.qcow2");
        flatten(&overlay, &flat).unwrap();
        grow(&flat, 256 << 20).unwrap();
        assert_eq!(inspect(&flat).unwrap().virtual_size_bytes, 256 << 20);
        let copy = dir.path().join("copy.qcow2");
        copy_grown(&base, &copy, 96 << 20).unwrap();
        assert_eq!(inspect(&copy).unwrap().virtual_size_bytes, 96 << 20);

        let failed = dir.path().join("failed.qcow2");
        let error = flatten(&dir.path().join("missing.qcow2"), &failed).unwrap_err();
        assert!(matches!(error, Error::Io(ref text) if text.contains("qemu-img convert failed")), "{error:?}");
        assert!(!failed.exists() && !failed.with_extension("partial").exists(), "nothing half made is left");
        assert!(inspect(&dir.path().join("missing.qcow2")).is_err());
    }
}
