//! EC2's serial console: a running instance's first serial port, live, for its owner.
//!
//! 1. An account turns access on or off for all its instances (Enable/DisableSerialConsole
//!    Access, GetSerialConsoleAccessStatus); it starts off, as on EC2.
//! 2. [`Backend::open_serial_console`] checks the instance is the caller's and running, then
//!    opens the console through the host's bridge (bounded like any call). Opening ends the
//!    session opened before (one at a time per instance, as on EC2).
//! 3. The session runs on a thread of its own ([`pump`]): it polls the host's stream (which
//!    never blocks), hands the guest's bytes to the caller and the caller's keys to the guest.
//!    It ends when either side goes: the caller drops its ends, or the guest stops, moves
//!    (a live migration ends the session at the switch-over) or another session takes over.
//! 4. At most [`MAX_SESSIONS`] run at once in the process, so that sessions cannot use up
//!    threads.
//!
//! The guest's serial output is also logged to its console file, as before: GetConsoleOutput
//! reads the log whether or not a session is open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use storage::tables::ACCOUNTS;
use storage::InstanceState;
use tokio::sync::mpsc;

use crate::hypervisor::SerialConsole;
use crate::{Backend, Error, Result};

/// Sessions open at once in the whole process.
pub const MAX_SESSIONS: usize = 64;

/// The longest pause between two polls of an idle console; busy ones are polled sooner.
const IDLE_POLL: Duration = Duration::from_millis(40);
const BUSY_POLL: Duration = Duration::from_millis(2);

/// What the guest writes arrives in chunks of at most this many bytes.
const CHUNK: usize = 16 * 1024;

/// An open session: bytes from the guest, and the way to send it keys. Dropping either end
/// ends the session.
pub struct SerialSession {
    pub from_guest: mpsc::Receiver<Vec<u8>>,
    pub to_guest: mpsc::Sender<Vec<u8>>,
}

/// Sessions running now; each [`Seat`] holds one place.
#[derive(Default, Clone)]
pub(crate) struct Seats(Arc<AtomicUsize>);

struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Seats {
    fn take(&self) -> Option<Seat> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_SESSIONS).then_some(n + 1))
            .ok()
            .map(|_| Seat(Arc::clone(&self.0)))
    }

    fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Backend {
    /// How many serial console sessions run now.
    pub fn serial_sessions_open(&self) -> usize {
        self.serial_seats.open()
    }

    /// Whether the account may open its instances' serial consoles.
    pub fn serial_console_access(&self, account: &str) -> Result<bool> {
        let record = self.store().read(|tx| tx.get(&ACCOUNTS, account))?;
        Ok(record.is_some_and(|a| a.serial_console_access))
    }

    /// Enable/DisableSerialConsoleAccess; answers the setting now.
    pub fn set_serial_console_access(&self, account: &str, on: bool) -> Result<bool> {
        self.change_account(account, |a| a.serial_console_access = on)?;
        Ok(on)
    }

    /// Opens the serial console of the caller's running instance `id`.
    pub fn open_serial_console(&self, account: &str, id: &str) -> Result<SerialSession> {
        if !self.serial_console_access(account)? {
            return Err(Error::SerialConsoleAccessDisabled);
        }
        let record = self.instance(account, id)?;
        if record.state != InstanceState::Running {
            return Err(Error::IncorrectInstanceState {
                id: id.to_owned(),
                state: record.state.name(),
                verb: "connected to",
            });
        }
        let seat = self.serial_seats.take().ok_or(Error::SerialConsoleSessionLimit)?;
        let host = self.hosts().get(&record.host_id).ok_or_else(|| Error::HostGone(record.host_id.clone()))?;
        let console = host.driver.open_console(&record.id)?;
        let (guest_tx, from_guest) = mpsc::channel(64);
        let (to_guest, keys_rx) = mpsc::channel(64);
        let name = format!("serial-{id}");
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let _seat = seat;
                pump(console, &guest_tx, keys_rx);
            })
            .map_err(|e| Error::Io(format!("starting the console session: {e}")))?;
        Ok(SerialSession { from_guest, to_guest })
    }
}

/// Moves bytes both ways until either side ends.
fn pump(mut console: Box<dyn SerialConsole>, guest_tx: &mpsc::Sender<Vec<u8>>, mut keys: mpsc::Receiver<Vec<u8>>) {
    let mut buf = vec![0u8; CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    let mut idle = BUSY_POLL;
    loop {
        let mut busy = false;
        match console.read(&mut buf) {
            Ok(Some(0)) => return,
            Ok(Some(n)) => {
                busy = true;
                // Waits while the caller is slow to take them: the host buffers meanwhile.
                if guest_tx.blocking_send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "serial console ended");
                return;
            }
        }
        // Keys the guest has not taken yet stay in the channel (which then holds the sender
        // back): what waits here is bounded.
        while pending.len() < CHUNK {
            match keys.try_recv() {
                Ok(more) => pending.extend_from_slice(&more),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        if !pending.is_empty() {
            match console.write(&pending) {
                Ok(n) => {
                    busy |= n > 0;
                    pending.drain(..n);
                }
                Err(error) => {
                    tracing::debug!(%error, "serial console ended");
                    return;
                }
            }
        }
        if guest_tx.is_closed() {
            return;
        }
        idle = if busy { BUSY_POLL } else { (idle * 2).min(IDLE_POLL) };
        std::thread::sleep(idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_bounded() {
        let seats = Seats::default();
        let held: Vec<Seat> = (0..MAX_SESSIONS).map(|_| seats.take().unwrap()).collect();
        assert!(seats.take().is_none());
        drop(held);
        assert_eq!(seats.open(), 0);
        assert!(seats.take().is_some());
    }
}
