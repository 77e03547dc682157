//! The libvirt calls the `virt` crate does not wrap (domain lifecycle events, aborting a
//! job, switching a migration to post-copy) or wraps unsoundly (job statistics: `virt` 0.5
//! builds a `Vec` from the null pointer libvirt returns when no job runs, and frees libvirt's
//! memory with Rust's allocator; every domain's state in one call: `virt` 0.5 leaks the
//! records and gives no way to read them).
//!
//! libvirt delivers events from an event loop that the client process runs:
//! [`start_event_loop`] registers libvirt's default loop once per process, before any
//! connection opens (remote connections only watch their socket when a loop exists), and
//! runs it on a thread of its own. [`Subscription::new`] registers a lifecycle callback on one
//! connection; the callback hands the domain's name to the sink. Dropping the subscription
//! deregisters it, and libvirt then frees the boxed sink through [`free_sink`].
//!
//! This is the only module that calls libvirt's C API directly (`scripts/test` checks it).
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::time::Duration;

use virt::connect::Connect;
use virt::domain::{Domain, JobStats};
use virt::sys;

use crate::hypervisor::{DriverError, EventSink, SerialConsole};

/// Starts libvirt's default event loop on a background thread, once per process.
pub fn start_event_loop() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(error) = virt::event::event_register_default_impl() {
            tracing::warn!(%error, "libvirt event loop unavailable; domain changes are polled");
            return;
        }
        let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(|| loop {
            if let Err(error) = virt::event::event_run_default_impl() {
                tracing::warn!(%error, "libvirt event loop iteration failed");
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the libvirt event thread; domain changes are polled");
        }
    });
}

/// A lifecycle callback registered on one connection.
pub struct Subscription {
    conn: Connect,
    id: c_int,
}

/// The lifecycle callback's real signature; libvirt registers every event kind through the
/// generic one and casts back, as C's `VIR_DOMAIN_EVENT_CALLBACK` does.
type LifecycleFn = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, c_int, c_int, *mut c_void) -> c_int;
type GenericFn = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);

impl Subscription {
    /// Registers `sink` for lifecycle events of every domain on `conn`; `None` when the
    /// connection refuses (then the sweep's polling is all there is).
    pub fn new(conn: &Connect, sink: EventSink) -> Option<Self> {
        let opaque = Box::into_raw(Box::new(sink)).cast::<c_void>();
        // SAFETY: both are `extern "C"` function pointers of the same ABI; libvirt calls a
        // lifecycle callback with exactly `LifecycleFn`'s arguments whatever type it was
        // registered under.
        let callback = unsafe { std::mem::transmute::<LifecycleFn, GenericFn>(lifecycle) };
        // SAFETY: `conn` is an open connection for the whole call; a null domain means every
        // domain; libvirt owns `opaque` from here on and releases it with `free_sink`.
        let id = unsafe {
            sys::virConnectDomainEventRegisterAny(
                conn.as_ptr(),
                std::ptr::null_mut(),
                sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
                Some(callback),
                opaque,
                Some(free_sink),
            )
        };
        if id < 0 {
            // libvirt does not call the free callback of a registration it refused.
            // SAFETY: `opaque` came from `Box::into_raw` above and nothing else holds it.
            drop(unsafe { Box::from_raw(opaque.cast::<EventSink>()) });
            return None;
        }
        Some(Self { conn: conn.clone(), id })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // SAFETY: `self.conn` holds a reference to the connection, so it is still valid; `id`
        // is the registration made on it in `new`, deregistered only here.
        unsafe {
            sys::virConnectDomainEventDeregisterAny(self.conn.as_ptr(), self.id);
        }
    }
}

unsafe extern "C" fn lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: `opaque` is the boxed sink registered in `Subscription::new`, which libvirt keeps
    // alive until it calls `free_sink`; `dom` is valid for the duration of the callback, and
    // the name it returns is a NUL-terminated string owned by it.
    let (sink, name) = unsafe {
        let name = sys::virDomainGetName(dom);
        if name.is_null() {
            return 0;
        }
        (&*opaque.cast::<EventSink>(), CStr::from_ptr(name).to_string_lossy().into_owned())
    };
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| sink(&name)));
    0
}

/// The domain's job statistics (`flags`: 0 for the running job, or
/// `VIR_DOMAIN_JOB_STATS_COMPLETED`); `None` when there is no such job.
pub fn job_stats(domain: &Domain, flags: u32) -> Result<Option<JobStats>, virt::error::Error> {
    let mut kind: c_int = 0;
    let mut params: sys::virTypedParameterPtr = std::ptr::null_mut();
    let mut count: c_int = 0;
    // SAFETY: `domain` is a live handle; the out-pointers point at locals; libvirt allocates
    // `params` (or leaves it null) and we free it below with libvirt's own function.
    let rc = unsafe { sys::virDomainGetJobStats(domain.as_ptr(), &mut kind, &mut params, &mut count, flags) };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    let copied: Vec<sys::virTypedParameter> = if params.is_null() || count <= 0 {
        Vec::new()
    } else {
        // SAFETY: libvirt returned `count` initialised parameters at `params`; the copies are
        // plain values (string ones point into libvirt's memory, which `JobStats::from` copies
        // before it is freed).
        unsafe { std::slice::from_raw_parts(params, count as usize) }.to_vec()
    };
    // `virt` panics on a parameter of an unexpected type; the job exists, its figures are lost.
    let stats = (kind != sys::VIR_DOMAIN_JOB_NONE as c_int).then(|| {
        std::panic::catch_unwind(move || JobStats::from((kind, copied)))
            .unwrap_or(JobStats { r#type: kind, ..Default::default() })
    });
    if !params.is_null() {
        // SAFETY: `params` and `count` are what libvirt returned, freed exactly once.
        unsafe { sys::virTypedParamsFree(params, count) };
    }
    Ok(stats)
}

/// One domain as [`all_domain_stats`] reports it.
pub struct DomainState {
    pub name: String,
    /// libvirt's `virDomainState`.
    pub state: c_int,
    pub counters: crate::hypervisor::DomainCounters,
}

/// Every domain's name, state and CPU time, and with `full` its balloon, vCPU, NIC and disk
/// counters too, in one round trip (`virConnectGetAllDomainStats`).
pub fn all_domain_stats(conn: &Connect, full: bool) -> Result<Vec<DomainState>, virt::error::Error> {
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    let mut stats = sys::VIR_DOMAIN_STATS_STATE | sys::VIR_DOMAIN_STATS_CPU_TOTAL;
    if full {
        stats |= sys::VIR_DOMAIN_STATS_BALLOON
            | sys::VIR_DOMAIN_STATS_VCPU
            | sys::VIR_DOMAIN_STATS_INTERFACE
            | sys::VIR_DOMAIN_STATS_BLOCK;
    }
    // SAFETY: `conn` is an open connection for the whole call; libvirt allocates the
    // null-terminated record list (or fails and leaves it null); it is freed below.
    let count = unsafe { sys::virConnectGetAllDomainStats(conn.as_ptr(), stats, &mut records, 0) };
    if count < 0 {
        return Err(virt::error::Error::last_error());
    }
    let mut domains = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        // SAFETY: libvirt returned `count` valid record pointers at `records`.
        let record = unsafe { &**records.add(index) };
        // SAFETY: the record holds a reference to its domain until the list is freed; the
        // name is libvirt's, valid as long as the domain, and copied here.
        let name = unsafe { CStr::from_ptr(sys::virDomainGetName(record.dom)) }.to_string_lossy().into_owned();
        let params: &[sys::virTypedParameter] = if record.params.is_null() || record.nparams <= 0 {
            &[]
        } else {
            // SAFETY: the record owns `nparams` initialised parameters at `params`.
            unsafe { std::slice::from_raw_parts(record.params, record.nparams as usize) }
        };
        let mut domain = DomainState { name, state: 0, counters: Default::default() };
        for_each_number(params, |field, value| {
            if field == b"state.state" {
                domain.state = value as c_int;
            } else {
                add_counter(&mut domain.counters, field, value);
            }
        });
        domains.push(domain);
    }
    if !records.is_null() {
        // SAFETY: the list libvirt returned, freed exactly once, with libvirt's own function.
        unsafe { sys::virDomainStatsRecordListFree(records) };
    }
    Ok(domains)
}

/// Hands `f` each numeric statistic of a record, by name (others are skipped).
fn for_each_number(params: &[sys::virTypedParameter], mut f: impl FnMut(&[u8], u64)) {
    for param in params {
        // SAFETY: `field` is a NUL-terminated string within its fixed-size array.
        let field = unsafe { CStr::from_ptr(param.field.as_ptr()) }.to_bytes();
        // SAFETY: each union member is read only when `type_` says it is the one set.
        let value = match param.type_ as u32 {
            sys::VIR_TYPED_PARAM_INT => (unsafe { param.value.i }) as i64 as u64,
            sys::VIR_TYPED_PARAM_UINT => u64::from(unsafe { param.value.ui }),
            sys::VIR_TYPED_PARAM_LLONG => (unsafe { param.value.l }) as u64,
            sys::VIR_TYPED_PARAM_ULLONG => unsafe { param.value.ul },
            _ => continue,
        };
        f(field, value);
    }
}

/// How fast the guest dirties memory, in bytes a second: libvirt's dirty-rate calculation
/// (QEMU samples pages and compares their hashes over `period`, whole seconds, at least one),
/// started and then read back from the domain's statistics once measured; `None` when no
/// figure came within a few seconds of the period.
pub fn dirty_rate(domain: &Domain, period: Duration) -> Result<Option<u64>, virt::error::Error> {
    let seconds = period.as_secs().clamp(1, 60);
    // SAFETY: `domain` is a live handle for the call.
    let rc = unsafe {
        sys::virDomainStartDirtyRateCalc(
            domain.as_ptr(),
            seconds as c_int,
            sys::VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING,
        )
    };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    std::thread::sleep(Duration::from_secs(seconds));
    // QEMU publishes the figure a moment after the period.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, megabytes) = dirty_rate_stats(domain)?;
        if status == Some(sys::VIR_DOMAIN_DIRTYRATE_MEASURED as u64) {
            if let Some(megabytes) = megabytes {
                return Ok(Some(megabytes.saturating_mul(1 << 20)));
            }
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the domain's state says its post-copy migration failed (libvirt 8.5 on: paused on
/// the source, running on the target, each with a post-copy-failed reason).
pub fn post_copy_failed(domain: &Domain) -> Result<bool, virt::error::Error> {
    let (mut state, mut reason): (c_int, c_int) = (0, 0);
    // SAFETY: `domain` is a live handle; the out-pointers point at locals.
    if unsafe { sys::virDomainGetState(domain.as_ptr(), &mut state, &mut reason, 0) } < 0 {
        return Err(virt::error::Error::last_error());
    }
    let (state, reason) = (state as u32, reason as u32);
    Ok((state == sys::VIR_DOMAIN_RUNNING && reason == sys::VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)
        || (state == sys::VIR_DOMAIN_PAUSED && reason == sys::VIR_DOMAIN_PAUSED_POSTCOPY_FAILED))
}

/// The domain's `dirtyrate.calc_status` and `dirtyrate.megabytes_per_second`.
fn dirty_rate_stats(domain: &Domain) -> Result<(Option<u64>, Option<u64>), virt::error::Error> {
    // SAFETY: the handle stays owned by `domain`, alive for the call.
    let mut domains = [unsafe { domain.as_ptr() }, std::ptr::null_mut()];
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    // SAFETY: `domains` is a null-terminated list of one live handle; libvirt allocates the
    // record list (or fails and leaves it null); it is freed below.
    let count =
        unsafe { sys::virDomainListGetStats(domains.as_mut_ptr(), sys::VIR_DOMAIN_STATS_DIRTYRATE, &mut records, 0) };
    if count < 0 {
        return Err(virt::error::Error::last_error());
    }
    let (mut status, mut megabytes) = (None, None);
    if count > 0 && !records.is_null() {
        // SAFETY: libvirt returned `count` (here one) valid record pointers at `records`.
        let record = unsafe { &**records };
        if !record.params.is_null() && record.nparams > 0 {
            // SAFETY: the record owns `nparams` initialised parameters at `params`.
            let params = unsafe { std::slice::from_raw_parts(record.params, record.nparams as usize) };
            for_each_number(params, |field, value| match field {
                b"dirtyrate.calc_status" => status = Some(value),
                b"dirtyrate.megabytes_per_second" => megabytes = Some(value),
                _ => {}
            });
        }
    }
    if !records.is_null() {
        // SAFETY: the list libvirt returned, freed exactly once, with libvirt's own function.
        unsafe { sys::virDomainStatsRecordListFree(records) };
    }
    Ok((status, megabytes))
}

/// Folds one statistic (`net.0.rx.bytes`, `block.1.wr.reqs`…) into the domain's counters:
/// NICs and disks are summed.
fn add_counter(counters: &mut crate::hypervisor::DomainCounters, field: &[u8], value: u64) {
    let c = counters;
    match field {
        b"cpu.time" => c.cpu_time_ns = value,
        b"vcpu.current" => c.vcpus = value as u32,
        b"balloon.current" => c.memory_kib = value,
        b"balloon.rss" => c.rss_kib = value,
        _ => {
            let Ok(field) = std::str::from_utf8(field) else { return };
            let mut parts = field.splitn(3, '.');
            let (Some(group), Some(index), Some(stat)) = (parts.next(), parts.next(), parts.next()) else { return };
            if index.parse::<u32>().is_err() {
                return;
            }
            let slot = match (group, stat) {
                ("net", "rx.bytes") => &mut c.net_rx_bytes,
                ("net", "rx.pkts") => &mut c.net_rx_packets,
                ("net", "tx.bytes") => &mut c.net_tx_bytes,
                ("net", "tx.pkts") => &mut c.net_tx_packets,
                ("block", "rd.bytes") => &mut c.disk_read_bytes,
                ("block", "rd.reqs") => &mut c.disk_read_ops,
                ("block", "wr.bytes") => &mut c.disk_write_bytes,
                ("block", "wr.reqs") => &mut c.disk_write_ops,
                _ => return,
            };
            *slot = slot.saturating_add(value);
        }
    }
}

/// The host's busy and total CPU time over all its CPUs, in nanoseconds since it booted
/// (`virNodeGetCPUStats`); `None` when the driver cannot tell (the test driver).
pub fn node_cpu_ns(conn: &Connect) -> Option<(u64, u64)> {
    let mut count: c_int = 0;
    // SAFETY: a first call with no buffer asks how many parameters there are.
    let rc = unsafe {
        sys::virNodeGetCPUStats(conn.as_ptr(), sys::VIR_NODE_CPU_STATS_ALL_CPUS, std::ptr::null_mut(), &mut count, 0)
    };
    if rc < 0 || count <= 0 || count > 64 {
        return None;
    }
    let mut params: Vec<sys::virNodeCPUStats> = Vec::with_capacity(count as usize);
    // SAFETY: `params` has room for `count` entries, which libvirt fills and reports back in
    // `count` (never more than it was given).
    let rc = unsafe {
        let rc = sys::virNodeGetCPUStats(
            conn.as_ptr(),
            sys::VIR_NODE_CPU_STATS_ALL_CPUS,
            params.as_mut_ptr(),
            &mut count,
            0,
        );
        if rc == 0 {
            params.set_len((count.max(0) as usize).min(params.capacity()));
        }
        rc
    };
    if rc < 0 {
        return None;
    }
    let (mut busy, mut total) = (0u64, 0u64);
    for param in &params {
        // SAFETY: `field` is a NUL-terminated string within its fixed-size array.
        let field = unsafe { CStr::from_ptr(param.field.as_ptr()) }.to_bytes();
        match field {
            b"kernel" | b"user" => {
                busy += param.value;
                total += param.value;
            }
            b"idle" | b"iowait" => total += param.value,
            _ => {}
        }
    }
    (total > 0).then_some((busy, total))
}

/// Aborts the domain's current job (a migration: the guest stays where it was).
pub fn abort_job(domain: &Domain) -> Result<(), virt::error::Error> {
    // SAFETY: `domain` is a live domain handle for the whole call.
    let rc = unsafe { sys::virDomainAbortJob(domain.as_ptr()) };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(())
}

/// Switches a migration started with `VIR_MIGRATE_POSTCOPY` from pre-copy to post-copy.
pub fn start_post_copy(domain: &Domain) -> Result<(), virt::error::Error> {
    // SAFETY: `domain` is a live domain handle for the whole call; no flags are defined.
    let rc = unsafe { sys::virDomainMigrateStartPostCopy(domain.as_ptr(), 0) };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(())
}

/// A serial console session: a non-blocking libvirt stream. `virt` 0.5 reads libvirt's -2
/// ("nothing yet") as an error, and frees the stream without ending it.
pub struct ConsoleStream {
    stream: Option<virt::stream::Stream>,
}

impl ConsoleStream {
    pub fn new(stream: virt::stream::Stream) -> Self {
        Self { stream: Some(stream) }
    }

    fn ptr(&self) -> Result<sys::virStreamPtr, DriverError> {
        // SAFETY: the pointer is used only while `self.stream` holds its reference.
        self.stream.as_ref().map(|s| unsafe { s.as_ptr() }).ok_or_else(|| DriverError::Failed("console closed".into()))
    }
}

impl SerialConsole for ConsoleStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DriverError> {
        let ptr = self.ptr()?;
        // SAFETY: `buf` is valid for `buf.len()` bytes for the whole call.
        let rc = unsafe { sys::virStreamRecv(ptr, buf.as_mut_ptr().cast(), buf.len()) };
        match rc {
            -2 => Ok(None),
            n if n < 0 => Err(DriverError::Failed(virt::error::Error::last_error().message().to_owned())),
            n => Ok(Some(n as usize)),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<usize, DriverError> {
        let ptr = self.ptr()?;
        // SAFETY: `data` is valid for `data.len()` bytes; libvirt only reads it.
        let rc = unsafe { sys::virStreamSend(ptr, data.as_ptr().cast_mut().cast(), data.len()) };
        match rc {
            -2 => Ok(0),
            n if n < 0 => Err(DriverError::Failed(virt::error::Error::last_error().message().to_owned())),
            n => Ok(n as usize),
        }
    }
}

impl Drop for ConsoleStream {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            // Ends the session on the host; the stream's reference goes with it.
            let _ = stream.abort();
        }
    }
}

unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    // SAFETY: called once by libvirt with the pointer made by `Box::into_raw` in `new`.
    drop(unsafe { Box::from_raw(opaque.cast::<EventSink>()) });
}
