//! The systems under comparison, each a child process on a loopback port: Stratus (the release
//! binary, on libvirt test-driver hosts), moto_server, and the bare hyper server (this binary).
//! Each is killed when its handle drops, so a failed run leaves nothing behind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Process {
    pub addr: SocketAddr,
    child: Child,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far (all its threads, user and system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // The command name may hold spaces; the fields after it are plain numbers.
        let fields: Vec<&str> = stat.rsplit_once(')').context("odd /proc stat")?.1.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11)
            .zip(fields.get(12))
            .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
            .context("no CPU times")?;
        // SAFETY-free: sysconf(_SC_CLK_TCK) is 100 on Linux for every architecture we run on.
        Ok(ticks / 100.0)
    }

    /// Resident memory now, from /proc, in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")?;
        Ok(kib / 1024.0)
    }

    fn spawn(name: &'static str, mut command: Command, addr: SocketAddr, log: &Path) -> Result<Self> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        let mut process = Self { addr, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = process.child.try_wait()? {
                bail!("{name} exited before listening ({status}); see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("{name} did not listen on {addr} within 60 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(process)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM first: Stratus shuts down cleanly and releases its database.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// `stratus serve` on a fresh data dir; answers the process and the admin's keys.
pub fn stratus(bin: &Path, config: &Path, data_dir: &Path, log: &Path) -> Result<(Process, (String, String))> {
    let addr = free_addr()?;
    let mut command = Command::new(bin);
    command
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", std::env::var("STRATUS_BENCH_LOG").unwrap_or_else(|_| "info".into()));
    let process = Process::spawn("stratus", command, addr, log)?;
    // Stratus listens before it writes the admin keys (a start that cannot listen leaves none):
    // a busy machine can show the port open first.
    let field = |credentials: &str, name: &str| {
        credentials
            .lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_owned()))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let credentials = std::fs::read_to_string(data_dir.join("admin-credentials")).unwrap_or_default();
        if let (Some(key), Some(secret)) =
            (field(&credentials, "aws_access_key_id"), field(&credentials, "aws_secret_access_key"))
        {
            return Ok((process, (key, secret)));
        }
        if Instant::now() > deadline {
            bail!("no admin keys in {} 30 s after Stratus listened", data_dir.join("admin-credentials").display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Another account on a running Stratus, with keys of our choosing.
pub fn stratus_account(bin: &Path, data_dir: &Path, name: &str, key: &str, secret: &str) -> Result<()> {
    let output = Command::new(bin)
        .args(["account", "create", name, "--access-key-id", key, "--secret-access-key", secret, "--data-dir"])
        .arg(data_dir)
        .output()?;
    if !output.status.success() {
        bail!("stratus account create {name}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

pub fn moto(log: &Path) -> Result<Process> {
    let addr = free_addr()?;
    let mut command = Command::new("moto_server");
    command.args(["-H", "127.0.0.1", "-p", &addr.port().to_string()]);
    Process::spawn("moto_server", command, addr, log)
}

pub fn bare(log: &Path) -> Result<Process> {
    let addr = free_addr()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["bare-server", "--listen", &addr.to_string()]);
    Process::spawn("bare-hyper", command, addr, log)
}

/// The repository root (this crate lives in `<root>/bench`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}
