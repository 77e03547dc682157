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

use crate::hypervisor::EventSink;

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

/// One domain as [`all_domain_states`] reports it.
pub struct DomainState {
    pub name: String,
    /// libvirt's `virDomainState`.
    pub state: c_int,
    pub cpu_time_ns: u64,
}

/// Every domain's name, state and CPU time, in one round trip (`virConnectGetAllDomainStats`).
pub fn all_domain_states(conn: &Connect) -> Result<Vec<DomainState>, virt::error::Error> {
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    let stats = sys::VIR_DOMAIN_STATS_STATE | sys::VIR_DOMAIN_STATS_CPU_TOTAL;
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
        let mut domain = DomainState { name, state: 0, cpu_time_ns: 0 };
        for param in params {
            // SAFETY: `field` is a NUL-terminated string within its fixed-size array.
            let field = unsafe { CStr::from_ptr(param.field.as_ptr()) };
            // SAFETY: each union member is read only when `type_` says it is the one set.
            match (field.to_bytes(), param.type_ as u32) {
                (b"state.state", sys::VIR_TYPED_PARAM_INT) => domain.state = unsafe { param.value.i },
                (b"cpu.time", sys::VIR_TYPED_PARAM_ULLONG) => domain.cpu_time_ns = unsafe { param.value.ul },
                _ => {}
            }
        }
        domains.push(domain);
    }
    if !records.is_null() {
        // SAFETY: the list libvirt returned, freed exactly once, with libvirt's own function.
        unsafe { sys::virDomainStatsRecordListFree(records) };
    }
    Ok(domains)
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

unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    // SAFETY: called once by libvirt with the pointer made by `Box::into_raw` in `new`.
    drop(unsafe { Box::from_raw(opaque.cast::<EventSink>()) });
}
