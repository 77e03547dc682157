//! What a live migration will cost, before it starts: a model of QEMU's pre-copy, pure, from
//! figures the caller measures (the guest's memory and dirty rate on the source, the path's
//! bandwidth, the fixed costs seen in earlier migrations).
//!
//! 1. The first pass sends the memory the guest has touched (QEMU skips pages never written:
//!    an idle guest sends its resident set, not its size).
//! 2. Each later pass sends what the guest dirtied during the one before, at most the memory
//!    it keeps rewriting (its working set: a page written twice in a pass is sent once, so a
//!    pass longer than the measured second leaves no more than that second did). At the end of each
//!    pass QEMU looks at what is left: if it can be sent within the allowed downtime at the
//!    rate it measured over its last 100 ms, it pauses the guest, sends it with the devices'
//!    state, and the target takes over (the downtime is that send plus a fixed part: device
//!    state, the target starting the vCPUs). A first pass that ends reading pages never
//!    written measures a low rate (a zero page is 9 bytes on the wire), so a dirtying guest
//!    with much untouched memory takes a second pass where a small one does not.
//! 3. With a dirty rate below the bandwidth each pass is shorter by their ratio, and pre-copy
//!    converges; at or above it, it never does. Then the migration escalates as
//!    [`crate::escalation`] says, the same policy the migration's monitor applies: the allowed
//!    downtime rises to the budget, auto-converge throttles the vCPUs (QEMU starts at 20% once
//!    a pass dirtied more than half of what it sent, and adds 10% per such pass, up to 99%),
//!    post-copy switches the guest to the target with the rest following on demand.
//! 4. With no rung left, or past the timeout, the migration is expected to be aborted with the
//!    guest still on the source.
//!
//! The model ignores what cannot be known in advance (compression of zero pages beyond the
//! resident set, a dirty rate that changes): the benchmark reports how far it is off.

use crate::escalation::{Abort, Budget, Ladder, Sample, Step};

/// Passes the model follows at most (a guest that never converges and has no way out would
/// otherwise loop until its timeout).
const MAX_PASSES: u32 = 10_000;

/// What the estimate is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The guest's memory.
    pub memory_bytes: u64,
    /// What the first pass sends: the memory the guest has touched (its QEMU's resident set,
    /// at most `memory_bytes`); 0 when unknown, taken as all of it.
    pub resident_bytes: u64,
    /// How fast the guest dirties memory (libvirt's dirty-rate calculation).
    pub dirty_rate_bytes_per_sec: u64,
    /// The most the guest dirties between two passes, however long the pass: the memory it
    /// keeps rewriting (what it dirtied over the measured period); 0 when unknown, taken as
    /// all it touched.
    pub working_set_bytes: u64,
    /// How fast the path moves memory (a limit the migration sets, else what earlier
    /// migrations from the same host reached).
    pub bandwidth_bytes_per_sec: u64,
    /// What a migration between hosts that do not share the instance's disk copies before
    /// memory moves (the root disk's own data: its top file's allocation); 0 on shared
    /// storage.
    pub disk_bytes: u64,
    /// What the first pass spends reading the memory it does not send (pages found zero: under
    /// TCG about as long as sending what an idle guest has written); 0 when unknown, the
    /// bandwidth then an average that includes it.
    pub scan_ms: u64,
    /// How fast the disk copy goes (an NBD stream, not QEMU's migration stream); 0: the
    /// bandwidth.
    pub disk_bandwidth_bytes_per_sec: u64,
    /// Time before the first byte moves (the target's preparation).
    pub setup_ms: u64,
    /// The downtime's fixed part (devices' state, the target taking over).
    pub switch_ms: u64,
    /// The longest pause allowed; [`crate::escalation::DEFAULT_MAX_DOWNTIME_MS`] when none.
    pub max_downtime_ms: Option<u64>,
    pub auto_converge: bool,
    pub allow_post_copy: bool,
    pub timeout_ms: Option<u64>,
}

/// How the migration is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Pre-copy converges by itself.
    PreCopy,
    /// Pre-copy converges once auto-converge throttled the guest.
    AutoConverge,
    /// The guest switches to the target in post-copy and its memory follows.
    PostCopy,
    /// It does not end within its budget (the timeout, or the escalation runs out of rungs):
    /// aborted, the guest stays on the source.
    Abort,
}

impl Ending {
    /// As answers and records name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PreCopy => "pre-copy",
            Self::AutoConverge => "auto-converge",
            Self::PostCopy => "post-copy",
            Self::Abort => "abort",
        }
    }
}

/// The prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub ending: Ending,
    /// From the start to the guest running on the target (to the abort, for [`Ending::Abort`];
    /// `None` when nothing would stop a migration that never ends).
    pub total_ms: Option<u64>,
    /// The guest's pause at the switch-over (0 when it does not switch).
    pub downtime_ms: u64,
    /// Passes over memory before the switch-over (or the abort).
    pub passes: u32,
    /// The throttle auto-converge reached.
    pub throttle_percent: u8,
    /// Whether pre-copy alone (no throttle, no post-copy) is expected to converge.
    pub precopy_converges: bool,
}

impl Estimate {
    /// The iterations as QEMU and libvirt count them (their dirty-memory syncs, what
    /// DescribeInstanceMigrations shows): one as memory starts to move, one as each pass ends,
    /// and one more at the switch-over, to pre-copy's last send or to post-copy. An idle guest
    /// moved in one pass counts 3.
    pub fn iterations(&self) -> u32 {
        match self.ending {
            Ending::Abort => self.passes + 1,
            _ => self.passes + 2,
        }
    }
}

/// QEMU measures its bandwidth over windows of this long (its `BUFFER_DELAY`): the bytes it
/// put on the wire over the window's time. Times the allowed downtime, that is what it lets a
/// switch-over leave (its `threshold_size`).
const WINDOW_MS: f64 = 100.0;
/// What QEMU writes for a page it finds zero: the page's header and the one byte it is filled
/// with, not the page.
const ZERO_PAGE_WIRE_BYTES: f64 = 9.0;
/// The page size QEMU's zero-page count is in (x86's).
pub(crate) const PAGE_BYTES: u64 = 4096;

/// The rate QEMU measures over the last window of the first pass, which sets whether what
/// the guest dirtied meanwhile may go in the switch-over. The pages never written are read
/// last (here: a guest's written memory sits low, its untouched memory above it), and a zero
/// page puts 9 bytes on the wire: a window spent reading them measures a rate a few hundred
/// times below the path's, so a guest that dirtied more than that rate allows goes round
/// another pass (2 GiB guests in the lab: QEMU's figure read 33 MiB/s as pass 2 began, after
/// first passes that ended with 150 ms of reading). Without the reading's cost, the path's.
fn first_window_rate(inputs: &Inputs, first_pass: f64, bandwidth: f64) -> f64 {
    let zero_pages = (inputs.memory_bytes as f64 - first_pass).max(0.0) / PAGE_BYTES as f64;
    let scan_ms = inputs.scan_ms as f64;
    if scan_ms <= 0.0 || zero_pages < 1.0 {
        return bandwidth;
    }
    let zero_ms = scan_ms.min(WINDOW_MS);
    let zero_bytes = zero_pages * zero_ms / scan_ms * ZERO_PAGE_WIRE_BYTES;
    let sent_bytes = bandwidth * (WINDOW_MS - zero_ms) / 1000.0;
    (zero_bytes + sent_bytes) * 1000.0 / WINDOW_MS
}

/// Milliseconds to send `bytes` at `rate` bytes a second (a rate of 0 never sends).
fn send_ms(bytes: f64, rate: f64) -> f64 {
    if bytes <= 0.0 {
        0.0
    } else if rate <= 0.0 {
        f64::INFINITY
    } else {
        bytes / rate * 1000.0
    }
}

/// Follows pre-copy pass by pass under `inputs`, with the escalations it allows.
pub fn estimate(inputs: &Inputs) -> Estimate {
    let plain = Inputs { auto_converge: false, allow_post_copy: false, timeout_ms: None, ..inputs.clone() };
    let precopy_converges = simulate(&plain).ending == Ending::PreCopy;
    Estimate { precopy_converges, ..simulate(inputs) }
}

fn simulate(inputs: &Inputs) -> Estimate {
    let resident = match (inputs.resident_bytes, inputs.memory_bytes) {
        (0, memory) => memory,
        (resident, 0) => resident,
        (resident, memory) => resident.min(memory),
    } as f64;
    let bandwidth = inputs.bandwidth_bytes_per_sec as f64;
    let dirty_rate = inputs.dirty_rate_bytes_per_sec as f64;
    let budget = Budget {
        max_downtime_ms: inputs.max_downtime_ms.unwrap_or(crate::escalation::DEFAULT_MAX_DOWNTIME_MS),
        downtime_given: inputs.max_downtime_ms.is_some(),
        auto_converge: inputs.auto_converge,
        allow_post_copy: inputs.allow_post_copy,
        timeout_ms: inputs.timeout_ms,
    };
    let mut ladder = Ladder::new(budget);
    let timeout = inputs.timeout_ms.map(|t| t as f64);
    // A disk copy goes first, over the same path (the guest's writes meanwhile are mirrored
    // as they happen, not counted).
    let mut elapsed = inputs.setup_ms as f64;
    if inputs.disk_bytes > 0 {
        let disk_bandwidth = match inputs.disk_bandwidth_bytes_per_sec {
            0 => bandwidth,
            bps => bps as f64,
        };
        elapsed += send_ms(inputs.disk_bytes as f64, disk_bandwidth);
    }
    let mut throttle = 0u8;
    let mut to_send = resident;
    let first_window = first_window_rate(inputs, resident, bandwidth);
    let ending = |ending, total_ms, downtime_ms, passes, throttle_percent| Estimate {
        ending,
        total_ms,
        downtime_ms,
        passes,
        throttle_percent,
        precopy_converges: false,
    };
    let working_set = match inputs.working_set_bytes {
        0 => resident,
        bytes => (bytes as f64).min(resident),
    };
    // What the monitor reads as pass `iteration` begins, `left` to send, the pass before
    // having dirtied memory at `rate` (QEMU's figure: what it dirtied over how long it took).
    let sample = |elapsed: f64, iteration: u32, left: f64, rate: f64, throttle: u8| Sample {
        elapsed_ms: elapsed as u64,
        iteration: u64::from(iteration),
        memory_total_bytes: resident as u64,
        remaining_bytes: left as u64,
        dirty_rate_bytes_per_sec: rate as u64,
        bandwidth_bytes_per_sec: inputs.bandwidth_bytes_per_sec,
        // The path's rate is what a pass sends here: no average to weigh against it.
        transferred_bytes: 0,
        throttle_percent: u64::from(throttle),
        expected_downtime_ms: 0,
        post_copy_asked: false,
    };
    ladder.step(&sample(elapsed, 1, to_send, dirty_rate, 0));
    for pass in 1..=MAX_PASSES {
        // Only the first pass reads all of memory; later ones read the pages marked dirty.
        let scan = if pass == 1 { inputs.scan_ms as f64 } else { 0.0 };
        let took = send_ms(to_send, bandwidth) + scan;
        if timeout.is_some_and(|t| elapsed + took > t) || !took.is_finite() {
            return ending(Ending::Abort, inputs.timeout_ms, 0, pass - 1, throttle);
        }
        elapsed += took;
        // What the guest dirtied meanwhile, never more than it keeps rewriting.
        let rate = dirty_rate * f64::from(100 - throttle) / 100.0;
        let left = (rate * took / 1000.0).min(working_set);
        let seen_rate = if took > 0.0 { left * 1000.0 / took } else { rate };
        let last = send_ms(left, bandwidth);
        // QEMU switches over when what is left fits the allowed downtime at the rate it
        // measured last (the pause itself then sends at the path's).
        let measured = if pass == 1 { first_window } else { bandwidth };
        if send_ms(left, measured) <= ladder.downtime_ms as f64 {
            let downtime = last + inputs.switch_ms as f64;
            let how = if throttle > 0 { Ending::AutoConverge } else { Ending::PreCopy };
            return ending(how, Some((elapsed + downtime) as u64), downtime as u64, pass, throttle);
        }
        // QEMU's trigger: a pass (after the first) that dirtied over half of what it sent.
        if inputs.auto_converge && pass >= 2 && left > to_send / 2.0 {
            throttle = if throttle == 0 { 20 } else { (throttle + 10).min(99) };
        }
        match ladder.step(&sample(elapsed, pass + 1, left, seen_rate, throttle)) {
            Step::Wait | Step::RaiseDowntime(_) => {}
            // The guest moves now and runs on the target from the switch, which is where the
            // total ends, as libvirt's does (the lab's post-copy totals end at the switch,
            // within 10 ms of the monitor's record of it, while the rest of memory follows):
            // the rest's send counted too over-predicted them by 13-55 %.
            Step::PostCopy => {
                let total = elapsed + inputs.switch_ms as f64;
                return ending(Ending::PostCopy, Some(total as u64), inputs.switch_ms, pass, throttle);
            }
            Step::Abort(Abort::TimedOut) => return ending(Ending::Abort, inputs.timeout_ms, 0, pass, throttle),
            Step::Abort(Abort::OverBudget(_)) => return ending(Ending::Abort, Some(elapsed as u64), 0, pass, throttle),
        }
        to_send = left;
    }
    ending(Ending::Abort, None, 0, MAX_PASSES, throttle)
}

/// What an earlier migration shows of its passes: QEMU's counts of the pages it found zero
/// (read, not sent) and of the bytes it sent in full, and how long its passes took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassFigures {
    pub zero_pages: u64,
    pub normal_bytes: u64,
    pub passes_ms: u64,
}

/// The path as two rates: what reading a page that turns out zero costs, and how fast the
/// rest is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathFit {
    pub ns_per_zero_page: f64,
    pub bytes_per_sec: f64,
}

/// Two pass figures this close in their mix of zero pages and sent bytes say nothing apart
/// (their system is ill-conditioned): below this share, the pair is left out.
const DISTINCT_MIX: f64 = 0.2;

/// Fits `passes_ms = zero_pages × c + normal_bytes / w` to earlier migrations: each pair of
/// migrations with different mixes (an idle and a dirtying guest, two memory sizes) solves
/// for `c` and `w` exactly, and the fit is the median over the pairs (one migration slowed
/// by something else moves few pairs and not the median). `None` while no pair tells, or when
/// the pairs that do give no positive rates.
///
/// Why two rates: QEMU's first pass reads every page and sends the written ones, so an idle
/// guest's bytes-over-time average folds in the reading of all it did not send. Priced at
/// that average, a dirtying guest's extra pages looked about twice as dear as they were
/// (its pre-copy was predicted up to 38% long).
pub fn fit_path(figures: &[PassFigures]) -> Option<PathFit> {
    let mut costs = Vec::new();
    let mut rates = Vec::new();
    for (i, a) in figures.iter().enumerate() {
        for b in &figures[i + 1..] {
            let (za, na, ta) = (a.zero_pages as f64, a.normal_bytes as f64, a.passes_ms as f64);
            let (zb, nb, tb) = (b.zero_pages as f64, b.normal_bytes as f64, b.passes_ms as f64);
            let det = za * nb - zb * na;
            let scale = za * nb + zb * na;
            if scale <= 0.0 || det.abs() < DISTINCT_MIX * scale {
                continue;
            }
            // Cramer's rule: c in ms a page, u in ms a byte.
            let c = (ta * nb - tb * na) / det;
            let u = (za * tb - zb * ta) / det;
            if c >= 0.0 && u > 0.0 {
                costs.push(c);
                rates.push(u);
            }
        }
    }
    let middle = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len().checked_sub(1)? / 2).copied()
    };
    let c = middle(costs)?;
    let u = middle(rates)?;
    Some(PathFit { ns_per_zero_page: c * 1e6, bytes_per_sec: 1000.0 / u })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn inputs(memory_mib: u64, dirty_mibps: u64, bandwidth_mibps: u64) -> Inputs {
        Inputs {
            memory_bytes: memory_mib * MIB,
            resident_bytes: 0,
            dirty_rate_bytes_per_sec: dirty_mibps * MIB,
            working_set_bytes: 0,
            bandwidth_bytes_per_sec: bandwidth_mibps * MIB,
            disk_bytes: 0,
            scan_ms: 0,
            disk_bandwidth_bytes_per_sec: 0,
            setup_ms: 100,
            switch_ms: 40,
            max_downtime_ms: None,
            auto_converge: false,
            allow_post_copy: false,
            timeout_ms: None,
        }
    }

    #[test]
    fn an_idle_guest_sends_what_it_touched_once() {
        let idle = Inputs { resident_bytes: 64 * MIB, ..inputs(1024, 0, 128) };
        let e = estimate(&idle);
        // 64 MiB at 128 MiB/s: 500 ms, after 100 ms of setup, then the 40 ms switch.
        assert_eq!((e.ending, e.passes, e.downtime_ms, e.total_ms), (Ending::PreCopy, 1, 40, Some(640)));
        assert!(e.precopy_converges);
        // Unknown resident set: all of memory.
        assert_eq!(estimate(&inputs(256, 0, 128)).total_ms, Some(100 + 2000 + 40));
    }

    #[test]
    fn a_dirtying_guest_takes_geometric_passes() {
        // Half the bandwidth dirtied: passes of 2 s, 1 s, 0.5 s... each halving what is left,
        // so nothing escalates: the migration keeps its starting allowance (a quarter of the
        // 300 ms it asked for, 75 ms), which what is left after the fifth pass (8 MiB, 62.5 ms
        // to send) fits.
        let asked = Inputs { max_downtime_ms: Some(300), ..inputs(256, 64, 128) };
        let e = estimate(&asked);
        assert_eq!((e.ending, e.passes), (Ending::PreCopy, 5));
        assert_eq!(e.downtime_ms, 62 + 40);
        assert_eq!(e.total_ms, Some(100 + 2000 + 1000 + 500 + 250 + 125 + 62 + 40));
        // A tighter budget costs passes, never more downtime than it allows: 12 ms allowed
        // to start with, met after the eighth (1 MiB, 7.8 ms).
        let tight = estimate(&Inputs { max_downtime_ms: Some(50), ..inputs(256, 64, 128) });
        assert_eq!(tight.passes, 8);
        assert!(tight.downtime_ms <= 50 + 40, "{tight:?}");
        // Given no budget, QEMU's 300 ms from the start: the 32 MiB the third pass leaves
        // (250 ms to send) fits it, two passes sooner, for a longer pause.
        let default = estimate(&inputs(256, 64, 128));
        assert_eq!((default.ending, default.passes, default.downtime_ms), (Ending::PreCopy, 3, 250 + 40));
        assert_eq!(default.total_ms, Some(100 + 2000 + 1000 + 500 + 250 + 40));
        // Dirtying 60%: each pass is stalled (more than half is left), so the allowance
        // doubles (75, 150, 300) until what is left fits it.
        let stalled = estimate(&Inputs { max_downtime_ms: Some(300), ..inputs(256, 77, 128) });
        assert_eq!((stalled.ending, stalled.passes), (Ending::PreCopy, 4), "{stalled:?}");
        assert!(stalled.downtime_ms > 75 + 40 && stalled.downtime_ms <= 300 + 40, "{stalled:?}");
    }

    #[test]
    fn more_downtime_allowed_never_takes_more_passes_or_time() {
        for dirty in [0, 16, 64, 100, 120] {
            let mut before: Option<Estimate> = None;
            for allowed in [10, 50, 100, 300, 1000, 5000] {
                let e = estimate(&Inputs { max_downtime_ms: Some(allowed), ..inputs(512, dirty, 128) });
                assert!(e.downtime_ms <= allowed + 40, "{dirty} {allowed}: {e:?}");
                // A larger allowance never turns a converging migration into an abort, nor
                // makes one that converges take longer.
                if let Some(b) = before.as_ref().filter(|b| b.ending != Ending::Abort) {
                    assert_ne!(e.ending, Ending::Abort, "{dirty} {allowed}: {e:?} {b:?}");
                    assert!(e.passes <= b.passes && e.total_ms <= b.total_ms, "{dirty} {allowed}: {e:?} {b:?}");
                }
                before = Some(e);
            }
        }
    }

    #[test]
    fn a_guest_dirtying_faster_than_the_path_needs_a_way_out() {
        let fast = Inputs { max_downtime_ms: Some(300), ..inputs(256, 200, 128) };
        // Each pass leaves all of it: the allowance rises to the budget over two passes, and
        // the third, stalled at the budget with no other rung, is the last (escalation).
        let stuck = estimate(&Inputs { timeout_ms: Some(30_000), ..fast.clone() });
        assert_eq!((stuck.ending, stuck.total_ms, stuck.precopy_converges), (Ending::Abort, Some(6_100), false));
        // A timeout that comes first ends it there.
        let short = estimate(&Inputs { timeout_ms: Some(5_000), ..fast.clone() });
        assert_eq!((short.ending, short.total_ms), (Ending::Abort, Some(5_000)));
        // Post-copy: three passes (the first 2 s, then the whole 256 MiB resident each), then
        // the switch; what is left follows while the guest runs on the target.
        let post = estimate(&Inputs { allow_post_copy: true, ..fast.clone() });
        assert_eq!((post.ending, post.passes, post.downtime_ms), (Ending::PostCopy, 3, 40));
        assert_eq!(post.total_ms, Some(100 + 3 * 2000 + 40), "to the switch, where the guest runs on the target");
        // Auto-converge: the throttle rises until the guest dirties slowly enough.
        let throttled = estimate(&Inputs { auto_converge: true, ..fast });
        assert_eq!(throttled.ending, Ending::AutoConverge);
        assert!(throttled.throttle_percent >= 50, "{throttled:?}");
        assert!(!throttled.precopy_converges);
    }

    #[test]
    fn a_pass_leaves_no_more_than_the_guest_keeps_rewriting() {
        // The test image's dirtier: 40 MiB rewritten over and over (measured at 40 MiB/s over a
        // second), a first pass of 80 MiB, held to 32 MiB/s. Without the working set each pass
        // would leave all 80 MiB it touched (2.5 s passes); with it each leaves the 40 MiB it
        // rewrites. The first pass, 2.5 s for 40 MiB dirtied, is seen at 16 MiB/s against 32
        // (converging); the next ones, 1.25 s each, at the bandwidth: stuck, aborted once the
        // allowance reached the budget (75, 150, 300 ms over two stalled passes, the third the
        // last).
        let dirtier = Inputs {
            resident_bytes: 80 * MIB,
            working_set_bytes: 40 * MIB,
            timeout_ms: Some(60_000),
            max_downtime_ms: Some(300),
            ..inputs(512, 40, 32)
        };
        let e = estimate(&dirtier);
        assert_eq!((e.ending, e.passes), (Ending::Abort, 4), "{e:?}");
        assert_eq!(e.total_ms, Some(100 + 2_500 + 3 * 1_250));
        let unbounded = estimate(&Inputs { working_set_bytes: 0, ..dirtier.clone() });
        assert_eq!(unbounded.total_ms, Some(100 + 3 * 2_500), "{unbounded:?}");
        // A pass shorter than the measured second leaves what the rate says: unchanged.
        let fast = Inputs { bandwidth_bytes_per_sec: 400 * MIB, ..dirtier.clone() };
        assert_eq!(estimate(&fast), estimate(&Inputs { working_set_bytes: 0, ..fast.clone() }));
    }

    #[test]
    fn a_disk_copy_goes_first_and_counts_against_the_timeout() {
        let idle = Inputs { resident_bytes: 64 * MIB, ..inputs(1024, 0, 128) };
        let shared = estimate(&idle);
        let copied = estimate(&Inputs { disk_bytes: 256 * MIB, ..idle.clone() });
        assert_eq!(copied.total_ms, shared.total_ms.map(|t| t + 2_000), "256 MiB at 128 MiB/s first");
        assert_eq!((copied.ending, copied.passes, copied.downtime_ms), (shared.ending, 1, shared.downtime_ms));
        let short = estimate(&Inputs { disk_bytes: 256 * MIB, timeout_ms: Some(1_500), ..idle });
        assert_eq!((short.ending, short.total_ms), (Ending::Abort, Some(1_500)), "the copy alone outlasts it");
    }

    #[test]
    fn a_migration_that_cannot_send_is_aborted_not_predicted_forever() {
        let nothing = estimate(&Inputs { timeout_ms: Some(5_000), ..inputs(256, 0, 0) });
        assert_eq!((nothing.ending, nothing.total_ms), (Ending::Abort, Some(5_000)));
    }

    #[test]
    fn the_first_pass_also_reads_what_it_does_not_send() {
        let idle = Inputs { resident_bytes: 64 * MIB, ..inputs(1024, 0, 128) };
        let scanned = estimate(&Inputs { scan_ms: 250, ..idle.clone() });
        assert_eq!(scanned.total_ms, estimate(&idle).total_ms.map(|t| t + 250));
        // A dirtying guest dirties during the reading too, and only the first pass reads it
        // all: 64 MiB/s over a 500 + 500 ms first pass leaves 64 MiB (500 ms), then 32, 16,
        // then 8 (62.5 ms), which the starting allowance of 75 ms takes.
        let dirty =
            Inputs { resident_bytes: 64 * MIB, scan_ms: 500, max_downtime_ms: Some(300), ..inputs(1024, 64, 128) };
        let e = estimate(&dirty);
        assert_eq!((e.passes, e.total_ms), (4, Some(100 + 1_000 + 500 + 250 + 125 + 62 + 40)), "{e:?}");
        // A disk copy at its own rate.
        let copied =
            estimate(&Inputs { disk_bytes: 256 * MIB, disk_bandwidth_bytes_per_sec: 64 * MIB, ..idle.clone() });
        assert_eq!(copied.total_ms, estimate(&idle).total_ms.map(|t| t + 4_000));
    }

    #[test]
    fn a_first_pass_that_ends_reading_zero_pages_leaves_the_dirtied_memory_for_another() {
        // The lab's 2 GiB dirtier: 160 MiB sent at 530 MiB/s after reading the 1,888 MiB never
        // written in 160 ms (333 ns a page), dirtying 64 MiB/s. Its last 100 ms read zero
        // pages alone: 300,000 of them, 2.7 MB on the wire, so QEMU's threshold is 8 MB at
        // 300 ms, and the 30 MiB dirtied in the first pass go round a second pass, which
        // leaves 4 MiB for the pause.
        let big =
            Inputs { resident_bytes: 160 * MIB, scan_ms: 160, working_set_bytes: 64 * MIB, ..inputs(2048, 64, 530) };
        let e = estimate(&big);
        assert_eq!((e.ending, e.passes, e.iterations()), (Ending::PreCopy, 2, 4), "{e:?}");
        let first = 160.0 / 530.0 * 1000.0 + 160.0;
        let second = 64.0 * first / 1000.0 / 530.0 * 1000.0;
        let pause = 64.0 * second / 1000.0 / 530.0 * 1000.0;
        assert_eq!(e.downtime_ms, (pause + 40.0) as u64, "{e:?}");
        assert_eq!(e.total_ms, Some((100.0 + first + second + pause + 40.0) as u64), "{e:?}");
        // A 1 GiB one: 80 ms of reading, its last window sending for 20 ms too, so the
        // threshold (about 37 MiB) takes the 24 MiB it dirtied: one pass.
        let small = Inputs { scan_ms: 80, ..inputs(1024, 64, 530) };
        let small = Inputs { resident_bytes: 160 * MIB, working_set_bytes: 64 * MIB, ..small };
        let e = estimate(&small);
        assert_eq!((e.ending, e.passes, e.iterations()), (Ending::PreCopy, 1, 3), "{e:?}");
        // Idle, the big one dirties too little to matter; without the reading's cost known
        // the path's rate is taken, as before.
        assert_eq!(estimate(&Inputs { dirty_rate_bytes_per_sec: MIB, ..big.clone() }).passes, 1);
        assert_eq!(estimate(&Inputs { scan_ms: 0, ..big }).passes, 1);
        // QEMU's count of an abort is the pass it was in.
        let aborted = estimate(&Inputs { timeout_ms: Some(500), ..inputs(256, 0, 128) });
        assert_eq!((aborted.ending, aborted.passes, aborted.iterations()), (Ending::Abort, 0, 1));
    }

    fn figures(zero_pages: u64, normal_mib: u64, ns_per_page: f64, mib_per_sec: f64) -> PassFigures {
        let ms = zero_pages as f64 * ns_per_page / 1e6 + normal_mib as f64 / mib_per_sec * 1000.0;
        PassFigures { zero_pages, normal_bytes: normal_mib * MIB, passes_ms: ms.round() as u64 }
    }

    #[test]
    fn the_path_fit_separates_reading_from_sending() {
        // The lab's shape: idle and dirtying guests of three sizes, 500 ns a zero page read,
        // 600 MiB/s sent.
        let lab: Vec<PassFigures> =
            [(113_000, 70), (90_000, 162), (242_000, 80), (214_000, 192), (499_000, 99), (468_000, 220)]
                .into_iter()
                .map(|(z, n)| figures(z, n, 500.0, 600.0))
                .collect();
        let fit = fit_path(&lab).expect("pairs that tell");
        assert!((fit.ns_per_zero_page - 500.0).abs() < 10.0, "{fit:?}");
        assert!((fit.bytes_per_sec / MIB as f64 - 600.0).abs() < 10.0, "{fit:?}");
        // One migration slowed threefold (a guest busy receiving) moves the median little.
        let mut slowed = lab.clone();
        slowed.push(PassFigures { passes_ms: lab[2].passes_ms * 3, ..lab[2] });
        let fit = fit_path(&slowed).expect("pairs that tell");
        assert!(
            (fit.ns_per_zero_page - 500.0).abs() < 100.0 && (fit.bytes_per_sec / MIB as f64 - 600.0).abs() < 120.0,
            "{fit:?}"
        );
    }

    #[test]
    fn the_path_fit_needs_migrations_that_differ() {
        assert_eq!(fit_path(&[]), None);
        let one = figures(113_000, 70, 500.0, 600.0);
        assert_eq!(fit_path(&[one]), None);
        // The same guest twice, or guests in the same proportions: nothing to tell apart.
        assert_eq!(fit_path(&[one, one]), None);
        assert_eq!(fit_path(&[one, figures(226_000, 140, 500.0, 600.0)]), None);
        // Pairs that only solve with a negative rate say nothing either.
        let odd = PassFigures { zero_pages: 400_000, normal_bytes: 70 * MIB, passes_ms: 10 };
        assert_eq!(fit_path(&[one, odd]), None);
    }
}
