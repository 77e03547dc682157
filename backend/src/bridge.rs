//! Every call to a host goes through that host's bridge, so that one host that hangs cannot
//! hold the work of the others.
//!
//! 1. A call first takes one of the host's `max_calls` places. When all are taken for longer
//!    than [`QUEUE_WAIT`], the caller gets [`DriverError::Unreachable`] ("busy") at once and
//!    the work is retried later (the conductor's sweep kicks it again), instead of waiting.
//! 2. The call runs on a thread of its own; the caller waits at most `call_timeout` (a
//!    migration, which takes as long as it takes, has its own policy and no bridge timeout).
//!    On a timeout the caller gets `Unreachable` and moves on; the call keeps its place until
//!    it returns, so a hung host ties up at most `max_calls` threads.
//!
//! The bridge is a [`Hypervisor`] itself: the domain sees no difference.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::hypervisor::{
    AttachedDisk, DiskKey, DomainSpec, DomainStatus, DriverError, EventSink, HostInfo, HostSample, Hypervisor,
    JobProgress, MigrationOptions, Nic, PowerState, SerialConsole, StorageCopy,
};

/// How long a call waits for a place when the host is at its limit.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Places in flight on one host.
struct Places {
    taken: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// One taken place; dropping it frees it (when the call returns, however late).
struct Place(Arc<Places>);

impl Drop for Place {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

impl Places {
    fn take(self: &Arc<Self>, wait: Duration) -> Option<Place> {
        let deadline = Instant::now() + wait;
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        while *taken >= self.max {
            let left = deadline.checked_duration_since(Instant::now())?;
            taken = self.freed.wait_timeout(taken, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *taken += 1;
        Some(Place(Arc::clone(self)))
    }
}

/// A host's driver behind a concurrency limit and a timeout.
pub struct HostBridge {
    uri: String,
    driver: Arc<dyn Hypervisor>,
    places: Arc<Places>,
    call_timeout: Duration,
    /// The host's id, as the telemetry labels its calls.
    host_id: String,
}

impl HostBridge {
    pub fn new(uri: &str, driver: Arc<dyn Hypervisor>, max_calls: usize, call_timeout: Duration) -> Self {
        let places = Arc::new(Places { taken: Mutex::new(0), freed: Condvar::new(), max: max_calls.max(1) });
        let host_id = crate::hosts::HostConfig::new(uri).host_id();
        Self { uri: uri.to_owned(), host_id, driver, places, call_timeout }
    }

    /// Runs `call` on its own thread and waits for it at most `timeout` (`None`: as long as it takes).
    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        timeout: Option<Duration>,
        call: impl FnOnce(&dyn Hypervisor) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let place = self.places.take(QUEUE_WAIT).ok_or_else(|| {
            DriverError::Unreachable(format!("{}: busy ({} calls in flight)", self.uri, self.places.max))
        })?;
        let driver = Arc::clone(&self.driver);
        let (answer, answered) = mpsc::sync_channel(1);
        let started = std::time::Instant::now();
        let spawned = std::thread::Builder::new().name("host-call".into()).spawn(move || {
            let _place = place;
            // The caller may have given up; then nobody reads this.
            let _ = answer.send(call(driver.as_ref()));
        });
        if let Err(error) = spawned {
            return Err(DriverError::Failed(format!("cannot start a thread for {what}: {error}")));
        }
        let received = match timeout {
            Some(limit) => answered.recv_timeout(limit).map_err(|e| matches!(e, mpsc::RecvTimeoutError::Timeout)),
            None => answered.recv().map_err(|_| false),
        };
        crate::telemetry::global()
            .host_call_seconds
            .get_or_create(&crate::telemetry::CallLabels { host_id: self.host_id.clone(), call: what.to_owned() })
            .observe(started.elapsed().as_secs_f64());
        received.unwrap_or_else(|timed_out| {
            Err(DriverError::Unreachable(if timed_out {
                format!("{}: {what} did not answer within {:?}", self.uri, timeout.unwrap_or_default())
            } else {
                format!("{}: {what} ended without an answer", self.uri)
            }))
        })
    }

    fn timed<T: Send + 'static>(
        &self,
        what: &'static str,
        call: impl FnOnce(&dyn Hypervisor) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, DriverError> {
        self.call(what, Some(self.call_timeout), call)
    }
}

impl Hypervisor for HostBridge {
    fn host_info(&self) -> Result<HostInfo, DriverError> {
        self.timed("host_info", |d| d.host_info())
    }
    fn domains(&self) -> Result<Vec<DomainStatus>, DriverError> {
        self.timed("domains", |d| d.domains())
    }
    fn sample(&self) -> Result<HostSample, DriverError> {
        self.timed("sample", |d| d.sample())
    }
    fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        let name = name.to_owned();
        self.timed("state", move |d| d.state(&name))
    }
    fn define(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        let spec = spec.clone();
        self.timed("define", move |d| d.define(&spec))
    }
    fn start(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("start", move |d| d.start(&name))
    }
    fn shutdown(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("shutdown", move |d| d.shutdown(&name))
    }
    fn destroy(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("destroy", move |d| d.destroy(&name))
    }
    fn reboot(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("reboot", move |d| d.reboot(&name))
    }
    fn undefine(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("undefine", move |d| d.undefine(&name))
    }
    fn suspend(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("suspend", move |d| d.suspend(&name))
    }
    fn resume(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("resume", move |d| d.resume(&name))
    }
    fn watch(&self, sink: EventSink) {
        // Registration only: the driver reports from its own event thread.
        self.driver.watch(sink);
    }
    fn migrate(
        &self,
        name: &str,
        target_uri: &str,
        options: &MigrationOptions,
        storage: Option<&StorageCopy>,
    ) -> Result<(), DriverError> {
        let (name, target_uri, options, storage) =
            (name.to_owned(), target_uri.to_owned(), options.clone(), storage.cloned());
        self.call("migrate", None, move |d| d.migrate(&name, &target_uri, &options, storage.as_ref()))
    }
    fn job_progress(&self, name: &str) -> Result<Option<JobProgress>, DriverError> {
        let name = name.to_owned();
        self.timed("job_progress", move |d| d.job_progress(&name))
    }
    fn completed_job(&self, name: &str) -> Result<Option<JobProgress>, DriverError> {
        let name = name.to_owned();
        self.timed("completed_job", move |d| d.completed_job(&name))
    }
    fn abort_job(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("abort_job", move |d| d.abort_job(&name))
    }
    fn start_post_copy(&self, name: &str) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("start_post_copy", move |d| d.start_post_copy(&name))
    }
    fn post_copy_failed(&self, name: &str) -> Result<bool, DriverError> {
        let name = name.to_owned();
        self.timed("post_copy_failed", move |d| d.post_copy_failed(&name))
    }
    fn set_migration_downtime(&self, name: &str, ms: u64) -> Result<(), DriverError> {
        let name = name.to_owned();
        self.timed("set_migration_downtime", move |d| d.set_migration_downtime(&name, ms))
    }
    fn dirty_rate(&self, name: &str, period: Duration) -> Result<u64, DriverError> {
        let name = name.to_owned();
        self.call("dirty_rate", Some(self.call_timeout + period), move |d| d.dirty_rate(&name, period))
    }
    fn attach_disk(&self, name: &str, disk: &AttachedDisk) -> Result<(), DriverError> {
        let (name, disk) = (name.to_owned(), disk.clone());
        self.timed("attach_disk", move |d| d.attach_disk(&name, &disk))
    }
    fn detach_disk(&self, name: &str, target: &str, wait: Duration) -> Result<(), DriverError> {
        let (name, target) = (name.to_owned(), target.to_owned());
        self.call("detach_disk", Some(self.call_timeout + wait), move |d| d.detach_disk(&name, &target, wait))
    }
    fn attach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        let (name, nic) = (name.to_owned(), nic.clone());
        self.timed("attach_interface", move |d| d.attach_interface(&name, &nic))
    }
    fn detach_interface(&self, name: &str, nic: &Nic) -> Result<(), DriverError> {
        let (name, nic) = (name.to_owned(), nic.clone());
        self.timed("detach_interface", move |d| d.detach_interface(&name, &nic))
    }
    fn resize_disk(&self, name: &str, target: &str, bytes: u64) -> Result<(), DriverError> {
        let (name, target) = (name.to_owned(), target.to_owned());
        self.timed("resize_disk", move |d| d.resize_disk(&name, &target, bytes))
    }
    fn definition(&self, name: &str) -> Result<Option<String>, DriverError> {
        let name = name.to_owned();
        self.timed("definition", move |d| d.definition(&name))
    }
    fn add_secrets(&self, keys: &[DiskKey]) -> Result<(), DriverError> {
        let keys = keys.to_vec();
        self.timed("add_secrets", move |d| d.add_secrets(&keys))
    }
    fn remove_secrets(&self, secret_uuids: &[String]) -> Result<(), DriverError> {
        let uuids = secret_uuids.to_vec();
        self.timed("remove_secrets", move |d| d.remove_secrets(&uuids))
    }
    /// Only the opening is bounded: the session's reads and writes never block.
    fn open_console(&self, name: &str) -> Result<Box<dyn SerialConsole>, DriverError> {
        let name = name.to_owned();
        self.timed("open_console", move |d| d.open_console(&name))
    }
}
