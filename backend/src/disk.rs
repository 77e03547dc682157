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

/// What `qemu-img info` reports of a disk, as JSON; the error is qemu-img's words. `-U`: a
/// running guest's lock does not stop a read of its metadata.
fn qemu_img_info(path: &Path) -> std::result::Result<serde_json::Value, String> {
    let output = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run qemu-img: {e}"))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("qemu-img info {}: {}", path.display(), why.trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("qemu-img answered oddly: {e}"))
}

/// Asks `qemu-img` what a disk is; only qcow2 and raw are accepted.
pub fn inspect(path: &Path) -> Result<DiskInfo> {
    // A client's file: qemu-img's words (host paths) stay in the log.
    let info = qemu_img_info(path).map_err(|why| {
        tracing::debug!(%why, "not a readable disk image");
        invalid("ImageLocation", format!("'{}' is not a readable disk image", path.display()))
    })?;
    let format = info["format"].as_str().unwrap_or_default().to_owned();
    if format != "qcow2" && format != "raw" {
        return Err(invalid("ImageLocation", format!("disk format '{format}' is not supported (qcow2, raw)")));
    }
    let virtual_size_bytes = info["virtual-size"].as_u64().unwrap_or_default();
    Ok(DiskInfo { format, virtual_size_bytes })
}

/// A disk file as qemu-img opens it: qcow2 or raw, plain or encrypted (LUKS inside) with its
/// passphrase.
#[derive(Debug, Clone, Copy)]
pub struct Disk<'a> {
    pub path: &'a Path,
    pub passphrase: Option<&'a str>,
    /// Raw (a Multi-Attach volume's file). A raw file is always opened as raw, never probed:
    /// its first bytes are the guest's, which could pose as a qcow2 header naming any file of
    /// the host as its backing file.
    pub raw: bool,
}

impl<'a> Disk<'a> {
    pub fn plain(path: &'a Path) -> Self {
        Self { path, passphrase: None, raw: false }
    }

    /// A qcow2 at `path`, encrypted when `encryption` says so.
    pub fn of(path: &'a Path, encryption: Option<&'a storage::Encryption>) -> Self {
        Self { path, passphrase: encryption.map(|e| e.passphrase.as_str()), raw: false }
    }

    /// The same, raw when `raw`.
    pub fn raw(self, raw: bool) -> Self {
        Self { raw, ..self }
    }

    /// The same disk at another path (the `.partial` being made).
    fn at(self, path: &'a Path) -> Self {
        Self { path, ..self }
    }
}

/// A new random passphrase for an encrypted disk: 32 bytes from the OS, base64 (LUKS takes
/// the passphrase as text).
pub fn new_passphrase() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One qemu-img command line under construction. Passphrases go to qemu-img as secret objects
/// read from files of mode 0600 beside the disk (never on the command line, which every local
/// user can read in /proc); the files are removed when the command is dropped.
struct QemuImg {
    verb: &'static str,
    args: Vec<std::ffi::OsString>,
    secrets: Vec<tempfile::NamedTempFile>,
}

/// qemu-img's `--image-opts` and `-o` take comma-separated options: a comma in a value is
/// doubled.
fn opt_value(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// LUKS's key stretching protects weak passphrases; Stratus's are 256 random bits, so the
/// stretching only costs time (two seconds of CPU by default) at every open of the disk.
const LUKS_ITER_MS: u32 = 10;

impl QemuImg {
    fn new(verb: &'static str) -> Self {
        Self { verb, args: Vec::new(), secrets: Vec::new() }
    }

    fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Declares a secret object holding `passphrase`; returns its id.
    fn secret(&mut self, near: &Path, passphrase: &str) -> Result<String> {
        use std::io::Write;
        let dir = near.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut file = tempfile::Builder::new()
            .prefix(KEY_FILE_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| Error::Io(format!("writing a key file in {}: {e}", dir.display())))?;
        file.write_all(passphrase.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| Error::Io(format!("writing a key file in {}: {e}", dir.display())))?;
        let id = format!("key{}", self.secrets.len());
        self.arg("--object").arg(format!("secret,id={id},file={}", opt_value(file.path())));
        self.secrets.push(file);
        Ok(id)
    }

    /// An input disk: a qcow2 path (probed: a qcow2 header is Stratus's own), a raw one
    /// (never probed), or an encrypted one opened with its secret.
    fn input(&mut self, disk: Disk<'_>) -> Result<&mut Self> {
        let file = opt_value(disk.path);
        match (disk.passphrase, disk.raw) {
            (None, false) => Ok(self.arg(disk.path)),
            (None, true) => Ok(self.arg("-f").arg("raw").arg(disk.path)),
            (Some(passphrase), raw) => {
                let id = self.secret(disk.path, passphrase)?;
                let opts = if raw {
                    format!("driver=luks,file.filename={file},key-secret={id}")
                } else {
                    format!("driver=qcow2,file.filename={file},encrypt.key-secret={id}")
                };
                Ok(self.arg("--image-opts").arg(opts))
            }
        }
    }

    /// An output disk after `flag` (`-f` to create, `-O` to convert): its format, its
    /// encryption options, its path.
    fn output(&mut self, flag: &str, disk: Disk<'_>) -> Result<&mut Self> {
        match (disk.passphrase, disk.raw) {
            (None, raw) => {
                self.arg(flag).arg(if raw { "raw" } else { "qcow2" });
            }
            (Some(passphrase), raw) => {
                let id = self.secret(disk.path, passphrase)?;
                let (format, opts) = if raw {
                    ("luks", format!("key-secret={id},iter-time={LUKS_ITER_MS}"))
                } else {
                    ("qcow2", format!("encrypt.format=luks,encrypt.key-secret={id},encrypt.iter-time={LUKS_ITER_MS}"))
                };
                self.arg(flag).arg(format).arg("-o").arg(opts);
            }
        }
        Ok(self.arg(disk.path))
    }

    /// Runs the command. Making a LUKS header, QEMU times its key stretching by the thread's
    /// CPU time, which the kernel counts in ticks: a fast round can read as 0 ms, and QEMU
    /// gives up ("Unable to get accurate CPU usage") — half the time on a loaded machine
    /// (measured: 14 of 30 creations beside three busy loops on two cores). Each failure costs
    /// milliseconds, so that one is tried again, many times.
    fn run(&self) -> Result<()> {
        const TRIES: usize = 40;
        for attempt in 1.. {
            let output = Command::new("qemu-img")
                .arg(self.verb)
                .args(&self.args)
                .output()
                .map_err(|e| Error::Io(format!("running qemu-img: {e}")))?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if attempt < TRIES && stderr.contains("Unable to get accurate CPU usage") {
                std::thread::sleep(std::time::Duration::from_millis(5 * attempt as u64));
                continue;
            }
            return Err(Error::Io(format!("qemu-img {} failed: {}", self.verb, stderr.trim())));
        }
        unreachable!("the loop returns")
    }
}

/// Removes the key files ([`QemuImg`]) a qemu-img killed mid-way left under `data_dir` (in
/// its folders and theirs: volumes, snapshots, instances' root disks). Run before any disk
/// work starts, so that none is in use.
pub fn remove_stray_key_files(data_dir: &Path) {
    fn walk(dir: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && depth > 0 {
                walk(&path, depth - 1);
            } else if !is_dir && entry.file_name().to_string_lossy().starts_with(KEY_FILE_PREFIX) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), "removed a key file left by an interrupted qemu-img")
                    }
                    Err(error) => tracing::warn!(file = %path.display(), %error, "cannot remove a stray key file"),
                }
            }
        }
    }
    walk(data_dir, 3);
}

/// What key files are called; [`remove_stray_key_files`] knows them by it.
const KEY_FILE_PREFIX: &str = ".stratus-key";

/// Makes `target` by `make(partial)`, renaming it into place once whole.
fn made_whole(target: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let partial = target.with_extension("partial");
    if let Err(error) = make(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, target).map_err(|e| Error::Io(format!("renaming {}: {e}", partial.display())))
}

/// A copy-on-write qcow2 over `base`; `size_bytes` grows it past the base's size. With a
/// passphrase, what the guest writes is encrypted (the base stays as it is, and is read as it
/// is).
pub fn create_overlay(
    base: &Path,
    base_format: &str,
    target: &Path,
    passphrase: Option<&str>,
    size_bytes: Option<u64>,
) -> Result<()> {
    made_whole(target, |partial| {
        let mut cmd = QemuImg::new("create");
        cmd.arg("-q").arg("-F").arg(base_format).arg("-b").arg(base);
        cmd.output("-f", Disk { path: partial, passphrase, raw: false })?;
        if let Some(size) = size_bytes {
            cmd.arg(size.to_string());
        }
        cmd.run()
    })
}

/// Where a storage-copying migration puts `source`'s copy: an empty qcow2 at `target` of the
/// same size over the same backing file (an instance's root disk is an overlay of its image,
/// which every host reads; only what the overlay holds is copied), encrypted with `target`'s
/// passphrase when it has one. Made anew each time: a copy half made by an earlier attempt
/// could hold clusters the source no longer has, which the copy would not overwrite.
pub fn create_copy_target(source: &Path, target: Disk<'_>) -> Result<()> {
    let info = qemu_img_info(source).map_err(Error::Io)?;
    let size = info["virtual-size"]
        .as_u64()
        .ok_or_else(|| Error::Io(format!("qemu-img info {}: no virtual size", source.display())))?;
    let _ = std::fs::remove_file(target.path);
    match info["full-backing-filename"].as_str() {
        Some(base) => {
            let format = match info["backing-filename-format"].as_str() {
                Some(format) => format.to_owned(),
                None => inspect(Path::new(base))?.format,
            };
            create_overlay(Path::new(base), &format, target.path, target.passphrase, Some(size))
        }
        None => create_blank(target.path, target.passphrase, size),
    }
}

/// An empty qcow2 of `bytes`, encrypted with `passphrase` when given.
pub fn create_blank(target: &Path, passphrase: Option<&str>, bytes: u64) -> Result<()> {
    create(Disk { path: target, passphrase, raw: false }, bytes)
}

/// An empty disk of `bytes` (a raw one is sparse).
pub fn create(disk: Disk<'_>, bytes: u64) -> Result<()> {
    made_whole(disk.path, |partial| {
        let mut cmd = QemuImg::new("create");
        cmd.arg("-q").output("-f", disk.at(partial))?.arg(bytes.to_string());
        cmd.run()
    })
}

/// A standalone qcow2 of `from` and its backing chain, encrypted with `to`'s passphrase if it
/// has one. `-U` reads past a running QEMU's lock: callers pause the guest (QEMU flushes on
/// pause) or have it off, so nothing changes beneath.
pub fn flatten(from: Disk<'_>, to: Disk<'_>) -> Result<()> {
    made_whole(to.path, |partial| {
        let mut cmd = QemuImg::new("convert");
        cmd.arg("-U").arg("-q");
        cmd.input(from)?.output("-O", to.at(partial))?;
        cmd.run()
    })
}

/// A standalone copy of `from`, grown to `bytes`.
pub fn copy_grown(from: Disk<'_>, to: Disk<'_>, bytes: u64) -> Result<()> {
    made_whole(to.path, |partial| {
        let mut cmd = QemuImg::new("convert");
        cmd.arg("-q");
        cmd.input(from)?.output("-O", to.at(partial))?;
        cmd.run()?;
        grow(to.at(partial), bytes)
    })
}

/// Grows a disk that no guest has open to `bytes`, in place.
pub fn grow(disk: Disk<'_>, bytes: u64) -> Result<()> {
    let mut cmd = QemuImg::new("resize");
    cmd.arg("-q");
    if disk.passphrase.is_none() && !disk.raw {
        cmd.arg("-f").arg("qcow2");
    }
    cmd.input(disk)?.arg(bytes.to_string());
    cmd.run()
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
        create_blank(&base, None, 64 << 20).unwrap();
        assert_eq!(inspect(&base).unwrap(), DiskInfo { format: "qcow2".into(), virtual_size_bytes: 64 << 20 });
        let overlay = dir.path().join("root.qcow2");
        create_overlay(&base, "qcow2", &overlay, None, Some(128 << 20)).unwrap();
        assert_eq!(inspect(&overlay).unwrap().virtual_size_bytes, 128 << 20);
        let flat = dir.path().join("flat.qcow2");
        flatten(Disk::plain(&overlay), Disk::plain(&flat)).unwrap();
        grow(Disk::plain(&flat), 256 << 20).unwrap();
        assert_eq!(inspect(&flat).unwrap().virtual_size_bytes, 256 << 20);
        let copy = dir.path().join("copy.qcow2");
        copy_grown(Disk::plain(&base), Disk::plain(&copy), 96 << 20).unwrap();
        assert_eq!(inspect(&copy).unwrap().virtual_size_bytes, 96 << 20);

        let failed = dir.path().join("failed.qcow2");
        let error = flatten(Disk::plain(&dir.path().join("missing.qcow2")), Disk::plain(&failed)).unwrap_err();
        assert!(matches!(error, Error::Io(ref text) if text.contains("qemu-img convert failed")), "{error:?}");
        assert!(!failed.exists() && !failed.with_extension("partial").exists(), "nothing half made is left");
        assert!(inspect(&dir.path().join("missing.qcow2")).is_err());
    }

    /// Writes `text` at the start of an encrypted disk, as a guest would.
    fn write_inside(disk: Disk<'_>, text: &str) {
        let key = disk.path.with_extension("testkey");
        std::fs::write(&key, disk.passphrase.unwrap()).unwrap();
        let status = Command::new("qemu-io")
            .arg("--object")
            .arg(format!("secret,id=k,file={}", opt_value(&key)))
            .arg("--image-opts")
            .arg(format!("driver=qcow2,file.filename={},encrypt.key-secret=k", opt_value(disk.path)))
            .args(["-c", &format!("write -P 0x{:x} 0 64k", text.as_bytes()[0])])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        std::fs::remove_file(key).unwrap();
    }

    fn holds(path: &Path, byte: u8) -> bool {
        std::fs::read(path).unwrap().windows(4096).any(|w| w.iter().all(|b| *b == byte))
    }

    #[test]
    fn encrypted_disks_hold_no_plaintext_and_survive_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (new_passphrase(), new_passphrase());
        assert_ne!(one, two);
        assert_eq!(one.len(), 44, "32 bytes in base64");
        let volume = dir.path().join("vol,1.qcow2");
        create_blank(&volume, Some(&one), 64 << 20).unwrap();
        let sealed = Disk { path: &volume, passphrase: Some(&one), raw: false };
        write_inside(sealed, "Z");
        assert!(!holds(&volume, b'Z'), "the file holds what the guest wrote in the clear");

        // A snapshot under a key of its own, a volume from it under a third, grown.
        let snapshot = dir.path().join("snap.qcow2");
        flatten(sealed, Disk { path: &snapshot, passphrase: Some(&two), raw: false }).unwrap();
        assert!(!holds(&snapshot, b'Z'));
        let three = new_passphrase();
        let copy = dir.path().join("copy.qcow2");
        copy_grown(
            Disk { path: &snapshot, passphrase: Some(&two), raw: false },
            Disk { path: &copy, passphrase: Some(&three), raw: false },
            128 << 20,
        )
        .unwrap();
        assert_eq!(inspect(&copy).unwrap().virtual_size_bytes, 128 << 20);
        assert!(!holds(&copy, b'Z'));
        // The wrong key opens nothing.
        let error =
            flatten(Disk { path: &copy, passphrase: Some(&one), raw: false }, Disk::plain(&dir.path().join("x.qcow2")))
                .unwrap_err();
        assert!(matches!(error, Error::Io(_)), "{error:?}");
        // Decrypted with the right one, the data is all there.
        let clear = dir.path().join("clear.qcow2");
        flatten(Disk { path: &copy, passphrase: Some(&three), raw: false }, Disk::plain(&clear)).unwrap();
        assert!(holds(&clear, b'Z'), "the data went through every copy");

        // An encrypted overlay over a plain base: the guest's writes are sealed.
        let base = dir.path().join("base.qcow2");
        create_blank(&base, None, 64 << 20).unwrap();
        let root = dir.path().join("root.qcow2");
        create_overlay(&base, "qcow2", &root, Some(&one), Some(96 << 20)).unwrap();
        write_inside(Disk { path: &root, passphrase: Some(&one), raw: false }, "Y");
        assert!(!holds(&root, b'Y'));
        grow(Disk { path: &root, passphrase: Some(&one), raw: false }, 128 << 20).unwrap();
        assert_eq!(inspect(&root).unwrap().virtual_size_bytes, 128 << 20);

        // Raw, as Multi-Attach volumes are: plain and sealed, from the encrypted snapshot.
        let shared = dir.path().join("shared.raw");
        copy_grown(
            Disk { path: &snapshot, passphrase: Some(&two), raw: false },
            Disk::plain(&shared).raw(true),
            96 << 20,
        )
        .unwrap();
        assert_eq!(inspect(&shared).unwrap(), DiskInfo { format: "raw".into(), virtual_size_bytes: 96 << 20 });
        assert!(holds(&shared, b'Z'), "a plain raw copy holds the data as it is");
        let sealed_raw = dir.path().join("sealed.raw");
        let four = new_passphrase();
        let sealed_shared = Disk { path: &sealed_raw, passphrase: Some(&four), raw: true };
        create(sealed_shared, 64 << 20).unwrap();
        grow(sealed_shared, 128 << 20).unwrap();
        flatten(Disk::plain(&shared).raw(true), Disk { path: &sealed_raw, passphrase: Some(&four), raw: true })
            .unwrap();
        assert!(!holds(&sealed_raw, b'Z'));
        let back = dir.path().join("back.qcow2");
        flatten(sealed_shared, Disk::plain(&back)).unwrap();
        assert!(holds(&back, b'Z'), "decrypted from raw LUKS");

        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".stratus-key"))
            .collect();
        assert!(left.is_empty(), "key files are removed after use: {left:?}");

        // One a killed qemu-img left, two folders down, goes at the next start.
        let nested = dir.path().join("instances").join("i-1");
        std::fs::create_dir_all(&nested).unwrap();
        let stray = nested.join(format!("{KEY_FILE_PREFIX}abc"));
        std::fs::write(&stray, "secret").unwrap();
        remove_stray_key_files(dir.path());
        assert!(!stray.exists() && volume.exists(), "only key files go");
    }
}
