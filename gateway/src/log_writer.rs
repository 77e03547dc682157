//! The server's log, written in batches by one thread.
//!
//! Every request logs a line. `tracing-appender`'s non-blocking writer hands each line to its
//! thread through a channel, and the channel wakes that thread for every line: under load at
//! concurrency 64 the wakeups and the thread's own switches took about a seventh of the
//! server's CPU (`perf`; 38 against 33 µs a request with the log off, `docs/benchmarks.md`).
//! Here a line is appended to a shared buffer under a short lock. The first line into an empty
//! buffer wakes the writing thread, which lets lines gather for [`BATCH`] (or until the buffer
//! passes [`Limits::high`]), takes the whole buffer and writes it in one call: at most one
//! wakeup per batch, none while the server is idle.
//!
//! Lines are never dropped: a logger finding the buffer at [`Limits::full`] waits until the
//! thread has taken it. A crash loses at most the last batch, as it would lose a channel's
//! queue; dropping the [`FlushGuard`] writes what is left and stops the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather before the thread writes them.
pub const BATCH: Duration = Duration::from_millis(20);

/// Buffer sizes that change what happens.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The thread writes at once, without waiting for the batch to end.
    pub high: usize,
    /// Loggers wait for the thread.
    pub full: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { high: 256 << 10, full: 8 << 20 }
    }
}

struct State {
    lines: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
    /// The thread waits here for lines (or for the batch to fill).
    lines_waiting: Condvar,
    /// Loggers wait here while the buffer is full.
    taken: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger that panicked mid-append left whole lines or a torn last one: still worth
        // writing, never a reason to stop logging.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The `tracing` writer: cheap to use from any thread.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer whose lines reach `out` in batches, written by a thread of its own.
pub fn batched<W: Write + Send + 'static>(out: W, limits: Limits) -> std::io::Result<(BatchedWriter, FlushGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { lines: Vec::new(), closed: false }),
        limits,
        lines_waiting: Condvar::new(),
        taken: Condvar::new(),
    });
    let for_thread = shared.clone();
    let thread =
        std::thread::Builder::new().name("log-writer".into()).spawn(move || write_batches(&for_thread, out))?;
    Ok((BatchedWriter { shared: shared.clone() }, FlushGuard { shared, thread: Some(thread) }))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            while state.lines.is_empty() && !state.closed {
                state = shared.lines_waiting.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.lines.is_empty() {
                return;
            }
            let (mut state, _) = shared
                .lines_waiting
                .wait_timeout_while(state, BATCH, |s| !s.closed && s.lines.len() < shared.limits.high)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::swap(&mut state.lines, &mut batch);
            shared.taken.notify_all();
        }
        // Nowhere to report a failing log but the log: the lines are lost, the server goes on.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's buffer is not kept for ever.
        batch.shrink_to(shared.limits.high);
    }
}

/// What `tracing`'s formatter writes one event into.
pub struct LineWriter<'a>(&'a Shared);

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = self.0;
        let mut state = shared.lock();
        while state.lines.len() >= shared.limits.full && !state.closed {
            state = shared.taken.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let was_empty = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        if was_empty || state.lines.len() >= shared.limits.high {
            shared.lines_waiting.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.shared)
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.lines_waiting.notify_one();
        self.shared.taken.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that reports each write and can be held shut.
    struct Sink {
        writes: mpsc::Sender<Vec<u8>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.writes.send(buf.to_vec()).unwrap();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sink() -> (Sink, mpsc::Receiver<Vec<u8>>, Arc<Mutex<()>>) {
        let (writes, received) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        (Sink { writes, gate: gate.clone() }, received, gate)
    }

    #[test]
    fn a_lone_line_is_written_without_more_lines_or_a_flush() {
        let (out, received, _gate) = sink();
        let (writer, _guard) = batched(out, Limits::default()).unwrap();
        writer.make_writer().write_all(b"one line\n").unwrap();
        let written = received.recv_timeout(Duration::from_secs(30)).expect("the line was never written");
        assert_eq!(written, b"one line\n");
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_each_thread_s_order() {
        let (out, received, _gate) = sink();
        let (writer, guard) = batched(out, Limits { high: 4096, full: 16 << 10 }).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        writer.make_writer().write_all(format!("thread {t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let all: Vec<u8> = received.try_iter().flatten().collect();
        let text = String::from_utf8(all).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let (t, i): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order or missing");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4]);
    }

    #[test]
    fn a_full_buffer_makes_loggers_wait_rather_than_drop_lines() {
        let (out, received, gate) = sink();
        let limits = Limits { high: 64, full: 256 };
        let (writer, guard) = batched(out, limits).unwrap();
        // The sink is shut: the thread takes a batch and blocks writing it, the buffer fills.
        let shut = gate.lock().unwrap();
        let logger = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    writer.make_writer().write_all(format!("line {i:04}\n").as_bytes()).unwrap();
                }
            })
        };
        // The logger cannot finish while the sink is shut: 2,000 bytes do not fit in 256 plus
        // the one batch the thread holds.
        let mut waited = 0;
        while !logger.is_finished() && waited < 20 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert!(!logger.is_finished(), "the logger went on past a full buffer");
        assert!(writer.shared.lock().lines.len() <= limits.full + 16);
        drop(shut);
        logger.join().unwrap();
        drop(guard);
        let all: Vec<u8> = received.try_iter().flatten().collect();
        let expected: String = (0..200).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(String::from_utf8(all).unwrap(), expected);
    }
}
