//! How a live migration escalates when pre-copy stalls, within the budget it was given: a pure
//! policy that the migration's monitor applies to every progress reading of the source's job
//! ([`crate::migration`]) and the estimator to every pass it simulates
//! ([`crate::migration_plan`]), so that a prediction follows the same rules as the migration.
//!
//! The budget is the migration's `MaxDowntimeMillis` (QEMU's 300 ms when it sets none) and its
//! `TimeoutSeconds`; the rungs, each tried once the one before is used up:
//! 1. **Downtime.** A migration given a `MaxDowntimeMillis` starts allowing a quarter of it and
//!    doubles the allowance after each stalled pass, up to the budget: a guest that converges
//!    easily pauses for less than it was allowed. One given none allows QEMU's own 300 ms from
//!    the start, as plain `virsh migrate` does: on this project's lab (QEMU 7.2 under TCG) a
//!    quarter of it, 75 ms, left dirtying guests with corrupted memory at the switch-over
//!    (every one of seven; plain virsh at 75 ms three of four; at 300 ms four of ten either
//!    way, side by side; docs/benchmarks.md), so a tighter allowance is the operator's to ask
//!    for.
//! 2. **Auto-converge** (`AutoConverge`): QEMU slows the guest's vCPUs, from 20 % and 10 % more
//!    each time a pass dirties over half of what it sent, up to 99 %. libvirt can enable it only
//!    when the migration starts, and QEMU engages it by its own measure, so the throttle may
//!    begin before the downtime reaches the budget; the policy waits [`THROTTLE_PASSES`]
//!    stalled passes at the full budget for it to work.
//! 3. **Post-copy** (`AllowPostCopy`): the guest moves to the target and the rest of its
//!    memory follows on demand, only if what is left can be sent in the time the timeout leaves.
//! 4. **Abort**: with nothing left to try, the migration is aborted and the guest runs on at the
//!    source; the reason says what the migration would have needed.
//!
//! The timeout aborts at any rung before post-copy (after it there is no way back). The policy
//! judges each pass as it ends (at the first reading of the next one) by QEMU's own figures,
//! the rate the guest dirtied memory at against the rate memory was sent at (QEMU's last
//! 100 ms, or the pass's average when that is higher: [`Ladder`]'s `pass_average`): the next pass
//! must send what is left times their ratio, wherever in the pass the reading lands. A pass is
//! stalled when the guest dirtied more than half as fast as memory was sent (what is left does
//! not halve; QEMU's auto-converge trigger uses the same half), and stuck when more than nine
//! tenths as fast (what is left shrinks by less than a tenth): stalled passes escalate, but only
//! a stuck one aborts; a migration that still converges, slowly, at the full budget goes on
//! (its timeout bounds it). Readings without figures (libvirt's preparation, before memory
//! moves) are no passes, and a pass too short to be read between two readings is not judged.

/// QEMU's allowed downtime when a migration sets none: the budget by default.
pub const DEFAULT_MAX_DOWNTIME_MS: u64 = 300;

/// Stalled passes the policy gives auto-converge at the full downtime budget.
pub const THROTTLE_PASSES: u32 = 6;

/// QEMU's highest throttle.
pub const THROTTLE_MAX: u64 = 99;

/// What a migration may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The longest pause allowed at the switch-over.
    pub max_downtime_ms: u64,
    /// Whether the migration asked for that limit (`MaxDowntimeMillis`) rather than taking
    /// QEMU's default: only then does the allowance start below it.
    pub downtime_given: bool,
    pub auto_converge: bool,
    pub allow_post_copy: bool,
    /// From the start of the migration.
    pub timeout_ms: Option<u64>,
}

impl Budget {
    pub fn of(options: &storage::MigrationOptions) -> Self {
        Self {
            max_downtime_ms: options.max_downtime_ms.unwrap_or(DEFAULT_MAX_DOWNTIME_MS),
            downtime_given: options.max_downtime_ms.is_some(),
            auto_converge: options.auto_converge,
            allow_post_copy: options.allow_post_copy,
            timeout_ms: options.timeout_secs.map(|s| s.saturating_mul(1000)),
        }
    }

    /// The downtime a migration allows when it starts: a quarter of a budget it was given, all
    /// of QEMU's default otherwise (module doc).
    pub fn initial_downtime_ms(&self) -> u64 {
        if !self.downtime_given {
            return self.max_downtime_ms;
        }
        (self.max_downtime_ms / 4).max(1).min(self.max_downtime_ms)
    }
}

/// One reading of a running migration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Since the migration started.
    pub elapsed_ms: u64,
    /// The pass over memory under way: 1 for the first, 0 before memory moves.
    pub iteration: u64,
    /// The guest's memory; 0 until QEMU reports figures.
    pub memory_total_bytes: u64,
    pub remaining_bytes: u64,
    pub dirty_rate_bytes_per_sec: u64,
    /// QEMU's bandwidth: what it put on the wire over its last 100 ms.
    pub bandwidth_bytes_per_sec: u64,
    /// What QEMU has sent of memory so far (libvirt's `memory_processed`); 0 when unknown.
    pub transferred_bytes: u64,
    pub throttle_percent: u64,
    /// The pause QEMU expects the switch-over would take now (libvirt's downtime of a running
    /// job); 0 when it does not say.
    pub expected_downtime_ms: u64,
    /// An admin asked for post-copy now (StartInstanceMigrationPostCopy).
    pub post_copy_asked: bool,
}

/// What the monitor does after a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// Allow this much downtime from now on.
    RaiseDowntime(u64),
    PostCopy,
    Abort(Abort),
}

/// Why a migration is aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abort {
    TimedOut,
    /// Every rung was tried; the text says what the migration would have needed.
    OverBudget(String),
}

/// The policy's state between readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub budget: Budget,
    /// The downtime allowed now.
    pub downtime_ms: u64,
    /// The last pass judged.
    last_pass: u64,
    /// Stalled passes since the downtime reached the budget.
    stalled_at_budget: u32,
    post_copy: bool,
    /// The first reading of the latest pass seen: its iteration, time and bytes sent.
    pass_seen: (u64, u64, u64),
}

const MIB: f64 = (1u64 << 20) as f64;

impl Ladder {
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            downtime_ms: budget.initial_downtime_ms(),
            last_pass: 0,
            stalled_at_budget: 0,
            post_copy: false,
            pass_seen: (0, 0, 0),
        }
    }

    /// At the first reading of a pass, how fast the passes since the last one seen sent, on
    /// average (0 when that does not tell); remembers where this one began.
    ///
    /// Why not QEMU's bandwidth alone: it is what went on the wire over the last 100 ms, and a
    /// first pass that ends reading pages never written puts 9 bytes on the wire for each (the
    /// lab's 2 GiB guests read 33 MiB/s as their second pass began, against 350 MiB/s over
    /// the pass). Judged by it, a dirtying guest that converges looked stuck.
    fn pass_average(&mut self, sample: &Sample) -> u64 {
        if sample.iteration <= self.pass_seen.0 {
            return 0;
        }
        let (iteration, at_ms, sent) = self.pass_seen;
        self.pass_seen = (sample.iteration, sample.elapsed_ms, sample.transferred_bytes);
        let took_ms = sample.elapsed_ms.saturating_sub(at_ms);
        if iteration == 0 || took_ms == 0 || sample.transferred_bytes <= sent {
            return 0;
        }
        (sample.transferred_bytes - sent).saturating_mul(1000) / took_ms
    }

    /// Whether the migration switched to post-copy.
    pub fn post_copy(&self) -> bool {
        self.post_copy
    }

    /// The host confirmed the switch to post-copy that [`Step::PostCopy`] asked for: from now
    /// on nothing stops the migration. Until then the rungs below it (the timeout, a cancel)
    /// still hold, so a switch that failed can be aborted.
    pub fn switched(&mut self) {
        self.post_copy = true;
    }

    /// The step after `sample`; a reading within a pass already judged changes nothing but
    /// the timeout.
    pub fn step(&mut self, sample: &Sample) -> Step {
        // Post-copy runs to its end: there is no way back.
        if self.post_copy {
            return Step::Wait;
        }
        if self.budget.timeout_ms.is_some_and(|t| sample.elapsed_ms >= t) {
            return Step::Abort(Abort::TimedOut);
        }
        if sample.post_copy_asked && self.budget.allow_post_copy && sample.remaining_bytes > 0 {
            return Step::PostCopy;
        }
        let average = if sample.memory_total_bytes == 0 { 0 } else { self.pass_average(sample) };
        // A pass is judged once, as the next begins; none has ended before the second.
        if sample.memory_total_bytes == 0 || sample.iteration < 2 || sample.iteration <= self.last_pass {
            return Step::Wait;
        }
        self.last_pass = sample.iteration;
        let (dirty, sent) = (sample.dirty_rate_bytes_per_sec, sample.bandwidth_bytes_per_sec.max(average));
        // Nothing left (the switch-over is under way), no rate to judge by, or converging.
        if sample.remaining_bytes == 0 || sent == 0 || dirty.saturating_mul(2) <= sent {
            return Step::Wait;
        }
        if self.downtime_ms < self.budget.max_downtime_ms {
            self.downtime_ms = self.downtime_ms.saturating_mul(2).min(self.budget.max_downtime_ms);
            return Step::RaiseDowntime(self.downtime_ms);
        }
        self.stalled_at_budget += 1;
        if self.budget.auto_converge
            && self.stalled_at_budget <= THROTTLE_PASSES
            && sample.throttle_percent < THROTTLE_MAX
        {
            return Step::Wait;
        }
        let stuck = dirty.saturating_mul(10) > sent.saturating_mul(9);
        let mib = |bytes: u64| bytes as f64 / MIB;
        let send_ms = sample.remaining_bytes.saturating_mul(1000) / sent;
        if self.budget.allow_post_copy {
            match self.budget.timeout_ms.map(|t| t.saturating_sub(sample.elapsed_ms)) {
                // What is left would not arrive within the timeout: as without post-copy, a
                // migration that still converges goes on, a stuck one is aborted.
                Some(left) if send_ms > left => {
                    if !stuck {
                        return Step::Wait;
                    }
                    return Step::Abort(Abort::OverBudget(format!(
                        "post-copy would need about {send_ms} ms to send the {:.1} MiB left, but only {left} ms of \
                         TimeoutSeconds remain; allow a longer TimeoutSeconds or a higher BandwidthMiBps",
                        mib(sample.remaining_bytes)
                    )));
                }
                _ => return Step::PostCopy,
            }
        }
        if !stuck {
            return Step::Wait;
        }
        // QEMU's own expectation when it has one: what is left at a reading late in a pass
        // understates what the pass leaves.
        let pause = match sample.expected_downtime_ms {
            0 => send_ms,
            expected => expected,
        };
        let throttled = if self.budget.auto_converge {
            format!(" with the guest throttled to {} %,", sample.throttle_percent)
        } else {
            String::new()
        };
        Step::Abort(Abort::OverBudget(format!(
            "pre-copy cannot converge within MaxDowntimeMillis {} ms: after pass {}{throttled} {:.1} MiB were left, \
             dirtied at {:.1} MiB/s while {:.1} MiB/s were sent, so the switch-over would pause the guest about \
             {pause} ms; allow post-copy (AllowPostCopy), auto-converge (AutoConverge) or a larger MaxDowntimeMillis",
            self.budget.max_downtime_ms,
            sample.iteration.saturating_sub(1),
            mib(sample.remaining_bytes),
            mib(dirty),
            mib(sent),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn budget(max_downtime_ms: u64) -> Budget {
        Budget { max_downtime_ms, downtime_given: true, auto_converge: false, allow_post_copy: false, timeout_ms: None }
    }

    /// The first reading of each pass from the second on, a second apart: 48 MiB left, the
    /// guest dirtying `dirty` MiB/s against 32 MiB/s sent; answers the steps.
    fn run(ladder: &mut Ladder, dirty_mibps: &[u64], throttle: u64) -> Vec<Step> {
        dirty_mibps.iter().enumerate().map(|(i, &dirty)| ladder.step(&pass(i as u64 + 2, dirty, throttle))).collect()
    }

    fn pass(iteration: u64, dirty_mibps: u64, throttle: u64) -> Sample {
        Sample {
            elapsed_ms: 1000 * (iteration - 1),
            iteration,
            memory_total_bytes: 512 * MB,
            remaining_bytes: 48 * MB,
            dirty_rate_bytes_per_sec: dirty_mibps * MB,
            bandwidth_bytes_per_sec: 32 * MB,
            transferred_bytes: 0,
            throttle_percent: throttle,
            expected_downtime_ms: 0,
            post_copy_asked: false,
        }
    }

    #[test]
    fn a_pass_is_judged_by_what_it_sent_when_qemus_last_window_read_zero_pages() {
        // No budget of its own, nothing to escalate to: a stuck pass aborts. The first pass
        // sent 160 MiB in 460 ms (350 MiB/s); its last window read zero pages, so QEMU's
        // figure says 33 MiB/s as the second begins, with the guest dirtying 60 MiB/s.
        let mut ladder = Ladder::new(Budget::of(&storage::MigrationOptions::default()));
        let first = Sample { elapsed_ms: 1_000, transferred_bytes: MB, ..pass(1, 0, 0) };
        assert_eq!(ladder.step(&first), Step::Wait);
        let later = Sample { elapsed_ms: 1_200, transferred_bytes: 60 * MB, ..pass(1, 0, 0) };
        assert_eq!(ladder.step(&later), Step::Wait);
        let second = Sample {
            elapsed_ms: 1_460,
            transferred_bytes: 161 * MB,
            bandwidth_bytes_per_sec: 33 * MB,
            ..pass(2, 60, 0)
        };
        assert_eq!(ladder.step(&second), Step::Wait, "converging at 350 MiB/s");
        // A pass that really sent no faster than the guest dirtied is still stuck.
        let third = Sample {
            elapsed_ms: 2_460,
            transferred_bytes: 161 * MB + 33 * MB,
            bandwidth_bytes_per_sec: 33 * MB,
            ..pass(3, 60, 0)
        };
        assert!(matches!(ladder.step(&third), Step::Abort(Abort::OverBudget(_))));
        // Without the bytes sent, QEMU's figure alone, as before.
        let mut blind = Ladder::new(Budget::of(&storage::MigrationOptions::default()));
        blind.step(&pass(1, 0, 0));
        let second = Sample { bandwidth_bytes_per_sec: 33 * MB, ..pass(2, 60, 0) };
        assert!(matches!(blind.step(&second), Step::Abort(Abort::OverBudget(_))));
    }

    #[test]
    fn without_a_budget_of_its_own_the_migration_allows_qemus_default_from_the_start() {
        let options = storage::MigrationOptions::default();
        let mut ladder = Ladder::new(Budget::of(&options));
        assert_eq!(ladder.downtime_ms, DEFAULT_MAX_DOWNTIME_MS, "QEMU's 300 ms, not a quarter of it");
        // Stalled passes have nothing to raise: at the default, without auto-converge or
        // post-copy, a stuck pass aborts as at any budget.
        let steps = run(&mut ladder, &[24, 31], 0);
        assert!(matches!(steps[..], [Step::Wait, Step::Abort(Abort::OverBudget(_))]), "{steps:?}");
        // Asked for, even the same 300 ms starts at a quarter.
        let given = Budget::of(&storage::MigrationOptions { max_downtime_ms: Some(300), ..options });
        assert_eq!(Ladder::new(given).downtime_ms, 75);
    }

    #[test]
    fn a_converging_migration_keeps_its_small_allowance() {
        let mut ladder = Ladder::new(budget(300));
        assert_eq!(ladder.downtime_ms, 75, "a quarter of the budget to start with");
        // Dirtying at most half as fast as memory is sent: each pass halves what is left.
        let steps = run(&mut ladder, &[16, 10, 3, 0], 0);
        assert!(steps.iter().all(|s| *s == Step::Wait), "{steps:?}");
        assert_eq!(ladder.downtime_ms, 75);
        // More readings within a pass already judged are not passes.
        assert_eq!(ladder.step(&pass(5, 40, 0)), Step::Wait);
    }

    #[test]
    fn readings_before_memory_moves_are_not_passes() {
        let mut ladder = Ladder::new(budget(300));
        // libvirt's preparation (a job without figures), the first pass under way, a reading
        // without the guest's size or a bandwidth: nothing to judge.
        assert_eq!(ladder.step(&Sample { elapsed_ms: 500, ..Default::default() }), Step::Wait);
        assert_eq!(ladder.step(&pass(1, 40, 0)), Step::Wait);
        assert_eq!(ladder.step(&Sample { memory_total_bytes: 0, ..pass(2, 40, 0) }), Step::Wait);
        assert_eq!(ladder.step(&Sample { bandwidth_bytes_per_sec: 0, ..pass(2, 40, 0) }), Step::Wait);
        assert_eq!(ladder.downtime_ms, 75, "nothing judged");
    }

    #[test]
    fn stalls_raise_the_downtime_to_the_budget_then_abort() {
        let mut ladder = Ladder::new(budget(300));
        let steps = run(&mut ladder, &[32, 32, 31], 0);
        assert_eq!(steps[..2], [Step::RaiseDowntime(150), Step::RaiseDowntime(300)]);
        let Step::Abort(Abort::OverBudget(why)) = &steps[2] else { panic!("{steps:?}") };
        // 48 MiB at 32 MiB/s: a 1.5 s pause against 300 ms; it says what to do next.
        assert!(
            why.contains("about 1500 ms") && why.contains("MaxDowntimeMillis 300") && why.contains("AllowPostCopy"),
            "{why}"
        );
        assert_eq!(ladder.downtime_ms, 300, "never past the budget");
        // QEMU's own expectation of the pause, when it gives one, is what the reason quotes (a
        // reading late in a pass sees little left).
        let mut ladder = Ladder::new(budget(300));
        run(&mut ladder, &[32, 32], 0);
        let late = Sample { expected_downtime_ms: 2062, remaining_bytes: 2 * MB, ..pass(4, 32, 0) };
        let Step::Abort(Abort::OverBudget(why)) = ladder.step(&late) else { panic!("not aborted") };
        assert!(why.contains("about 2062 ms"), "{why}");
    }

    #[test]
    fn a_slow_migration_at_the_budget_goes_on_while_it_shrinks() {
        let mut ladder = Ladder::new(budget(300));
        // Dirtying 60-85% as fast as memory is sent: stalled, so the allowance rises, but
        // converging, so nothing aborts it.
        let steps = run(&mut ladder, &[20, 25, 27, 20, 28], 0);
        assert_eq!(steps[..2], [Step::RaiseDowntime(150), Step::RaiseDowntime(300)]);
        assert!(steps[2..].iter().all(|s| *s == Step::Wait), "{steps:?}");
        // Until a pass no longer shrinks what is left by a tenth.
        assert!(matches!(ladder.step(&pass(7, 30, 0)), Step::Abort(Abort::OverBudget(_))));
    }

    #[test]
    fn a_tiny_budget_is_never_exceeded() {
        for max in [1, 2, 7, 50, 1000] {
            let mut ladder = Ladder::new(budget(max));
            assert!(ladder.downtime_ms >= 1 && ladder.downtime_ms <= max);
            for step in run(&mut ladder, &[20; 20], 0) {
                if let Step::RaiseDowntime(ms) = step {
                    assert!(ms <= max, "{max}: {ms}");
                }
            }
            assert_eq!(ladder.downtime_ms, max);
        }
    }

    #[test]
    fn auto_converge_gets_its_passes_before_post_copy() {
        let with =
            |auto_converge, allow_post_copy| Ladder::new(Budget { auto_converge, allow_post_copy, ..budget(100) });
        // Two raises (25 → 50 → 100), then the throttle's passes, then post-copy.
        let mut ladder = with(true, true);
        let steps = run(&mut ladder, &[32; 12], 40);
        let post = steps.iter().position(|s| *s == Step::PostCopy).expect("post-copy at last");
        assert_eq!(post, 2 + THROTTLE_PASSES as usize, "{steps:?}");
        // Asked for until the host confirms it; nothing after.
        ladder.switched();
        assert!(ladder.post_copy());
        assert_eq!(ladder.step(&pass(20, 32, 40)), Step::Wait, "nothing after post-copy");
        // A throttle at QEMU's maximum has nothing more to give.
        let mut ladder = with(true, true);
        let steps = run(&mut ladder, &[32; 6], THROTTLE_MAX);
        assert_eq!(steps[2], Step::PostCopy, "{steps:?}");
        // Without auto-converge, post-copy follows the downtime at once.
        let mut ladder = with(false, true);
        assert_eq!(run(&mut ladder, &[32; 5], 0)[2], Step::PostCopy);
        // Without post-copy, the throttle's passes end in an abort that names the throttle.
        let mut ladder = with(true, false);
        let steps = run(&mut ladder, &[32; 12], 60);
        let Step::Abort(Abort::OverBudget(why)) = &steps[2 + THROTTLE_PASSES as usize] else { panic!("{steps:?}") };
        assert!(why.contains("throttled to 60 %"), "{why}");
    }

    #[test]
    fn the_timeout_bounds_every_rung_before_post_copy() {
        let mut ladder = Ladder::new(Budget { timeout_ms: Some(3500), ..budget(300) });
        let steps = run(&mut ladder, &[32, 20, 20, 20], 0);
        assert_eq!(
            steps,
            [Step::RaiseDowntime(150), Step::RaiseDowntime(300), Step::Wait, Step::Abort(Abort::TimedOut)]
        );
        // Post-copy only when what is left can be sent in the time left: 48 MiB at 32 MiB/s
        // takes 1.5 s, and 0.5 s remain; stuck, it is aborted saying so.
        let mut ladder = Ladder::new(Budget { timeout_ms: Some(3500), allow_post_copy: true, ..budget(20) });
        let steps = run(&mut ladder, &[32, 32, 32], 0);
        let Step::Abort(Abort::OverBudget(why)) = &steps[2] else { panic!("{steps:?}") };
        assert!(why.contains("about 1500 ms") && why.contains("500 ms"), "{why}");
        // Not stuck (still shrinking), it goes on instead, as it would without post-copy.
        let mut ladder = Ladder::new(Budget { timeout_ms: Some(3500), allow_post_copy: true, ..budget(20) });
        assert_eq!(run(&mut ladder, &[32, 32, 20], 0)[2], Step::Wait);
        // Once switched, nothing aborts it, not even the timeout.
        let mut ladder = Ladder::new(Budget { allow_post_copy: true, timeout_ms: Some(10_000), ..budget(20) });
        assert_eq!(run(&mut ladder, &[32; 3], 0)[2], Step::PostCopy);
        ladder.switched();
        assert_eq!(ladder.step(&Sample { elapsed_ms: 60_000, ..pass(9, 32, 0) }), Step::Wait);
    }

    #[test]
    fn an_admin_asking_for_post_copy_is_answered_at_once_when_allowed() {
        let asked = Sample { iteration: 1, remaining_bytes: 10 * MB, post_copy_asked: true, ..Default::default() };
        let mut allowed = Ladder::new(Budget { allow_post_copy: true, ..budget(300) });
        assert_eq!(allowed.step(&asked), Step::PostCopy);
        let mut refused = Ladder::new(budget(300));
        assert_eq!(refused.step(&asked), Step::Wait, "libvirt was not told at the start");
        let mut finishing = Ladder::new(Budget { allow_post_copy: true, ..budget(300) });
        assert_eq!(finishing.step(&Sample { remaining_bytes: 0, ..asked }), Step::Wait, "nothing left to move");
    }
}
