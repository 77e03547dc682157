//! The guest's view of a live migration: a ping every [`INTERVAL`] while it runs.
//!
//! libvirt reports the downtime it measured (the guest's pause at switch-over); what the
//! network sees can be longer (the target's port must take over, ARP caches must learn). So
//! while a migration runs, Stratus pings the guest's private address from the VPC's end on this
//! machine (the metadata port's namespace, [`crate::vpc_network::metadata_namespace`], which
//! every guest of the VPC lets ICMP echo in from) and keeps each probe's send time and answer.
//!
//! 1. [`Pinger::start`] opens a raw ICMP socket from a thread that entered the namespace (a
//!    socket keeps the namespace it was made in) and sends an echo request every interval,
//!    matching answers by identifier and sequence number.
//! 2. [`Pinger::stop`] ends it and answers the probes, at most [`MAX_PROBES`] (the latest are
//!    kept: the switch-over is at the end).
//! 3. [`summarize`] (pure) gives what the migration reports: probes sent and answered, and the
//!    largest gap between two answers, the network's measure of the pause.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use storage::PingSummary;

/// How often the guest is pinged.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// The most probes a trace keeps (about 5 minutes at [`INTERVAL`]).
pub const MAX_PROBES: usize = 30_000;

/// One probe: when it was sent (µs from the trace's start) and how long its answer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub sent_us: u64,
    pub rtt_us: Option<u32>,
}

/// The figures of a trace: an answer arrives at `sent + rtt`; the largest gap is measured
/// between arrivals, since a probe lost in the pause is answered by none.
pub fn summarize(probes: &[Probe]) -> PingSummary {
    let mut arrivals: Vec<u64> = probes.iter().filter_map(|p| p.rtt_us.map(|rtt| p.sent_us + u64::from(rtt))).collect();
    arrivals.sort_unstable();
    let gap = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    PingSummary {
        sent: u32::try_from(probes.len()).unwrap_or(u32::MAX),
        answered: u32::try_from(arrivals.len()).unwrap_or(u32::MAX),
        largest_gap_ms: u32::try_from(gap.div_ceil(1000)).unwrap_or(u32::MAX),
    }
}

/// An ICMP echo request: identifier, sequence number, and eight bytes of payload.
pub fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = 8; // echo request, code 0
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..16].copy_from_slice(b"stratus!");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The sequence number of an echo reply to `id` from `from`, read from a raw socket's datagram
/// (IPv4 header first); `None` for anything else.
pub fn echo_reply(datagram: &[u8], id: u16, from: Ipv4Addr) -> Option<u16> {
    let header = usize::from(*datagram.first()? & 0x0f) * 4;
    let source = Ipv4Addr::new(*datagram.get(12)?, *datagram.get(13)?, *datagram.get(14)?, *datagram.get(15)?);
    let icmp = datagram.get(header..)?;
    if source != from || icmp.len() < 8 || icmp[0] != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// A ping trace under way.
pub struct Pinger {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Probe>>,
    /// When the first probe went out: probes' times count from here.
    pub started: Instant,
}

impl Pinger {
    /// Starts pinging `target` from network namespace `namespace` (a name under /run/netns).
    pub fn start(namespace: &str, target: Ipv4Addr, interval: Duration) -> std::io::Result<Self> {
        let path = std::path::Path::new("/run/netns").join(namespace);
        let (ready, opened) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("ping-trace".into()).spawn(move || {
            let socket = (|| {
                use std::os::fd::AsFd;
                let file = std::fs::File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::ICMPV4))
            })();
            match socket {
                Ok(socket) => {
                    let start = Instant::now();
                    let _ = ready.send(Ok(start));
                    run(&socket, target, interval, start, &stopping)
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    Vec::new()
                }
            }
        })?;
        match opened.recv() {
            Ok(Ok(started)) => Ok(Self { stop, thread, started }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(std::io::Error::other("the ping thread ended before it opened its socket")),
        }
    }

    /// Ends the trace: its probes, oldest first.
    pub fn stop(self) -> Vec<Probe> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

fn run(
    socket: &socket2::Socket,
    target: Ipv4Addr,
    interval: Duration,
    start: Instant,
    stop: &AtomicBool,
) -> Vec<Probe> {
    use std::io::Read;
    let id = rand::random::<u16>();
    let address = socket2::SockAddr::from(SocketAddrV4::new(target, 0));
    let mut next = start;
    // Probes by sequence number (which wraps at 65,536: older ones are answered or lost).
    let mut probes: Vec<Probe> = Vec::new();
    let mut first = 0usize; // the index of the oldest kept probe
    let mut buffer = [0u8; 1500];
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= next {
            let seq = probes.len() as u16;
            let sent_us = now.duration_since(start).as_micros() as u64;
            if socket.send_to(&echo_request(id, seq), &address).is_ok() {
                probes.push(Probe { sent_us, rtt_us: None });
            }
            next += interval;
            if next < now {
                next = now + interval; // a stall (a busy machine) is not caught up in a burst
            }
            if probes.len() - first > MAX_PROBES {
                first = probes.len() - MAX_PROBES;
            }
        }
        let wait = next.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let _ = socket.set_read_timeout(Some(wait));
        let Ok(read) = (&mut &*socket).read(&mut buffer) else { continue };
        let arrived = start.elapsed().as_micros() as u64;
        let Some(seq) = echo_reply(&buffer[..read], id, target) else { continue };
        // The latest probe with that sequence number (sequence numbers wrap).
        let latest = probes.len().saturating_sub(1);
        let wrap = (latest as u16).wrapping_sub(seq) as usize;
        if let Some(probe) = latest.checked_sub(wrap).and_then(|i| probes.get_mut(i)) {
            if probe.rtt_us.is_none() {
                probe.rtt_us = Some(u32::try_from(arrived.saturating_sub(probe.sent_us)).unwrap_or(u32::MAX));
            }
        }
    }
    probes.split_off(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(sent_ms: u64, rtt_ms: Option<u64>) -> Probe {
        Probe { sent_us: sent_ms * 1000, rtt_us: rtt_ms.map(|r| (r * 1000) as u32) }
    }

    #[test]
    fn the_largest_gap_is_between_arrivals() {
        // Answers every 10 ms, then a pause: probes at 30..=60 are lost, 70 is answered late.
        let mut probes: Vec<Probe> = (0..=2).map(|i| probe(i * 10, Some(1))).collect();
        probes.extend((3..=6).map(|i| probe(i * 10, None)));
        probes.push(probe(70, Some(5)));
        probes.push(probe(80, Some(1)));
        let s = summarize(&probes);
        assert_eq!((s.sent, s.answered), (9, 5));
        assert_eq!(s.largest_gap_ms, 75 - 21);
        assert_eq!(summarize(&[]), PingSummary::default());
        assert_eq!(summarize(&[probe(0, Some(1))]).largest_gap_ms, 0, "one answer has no gap");
    }

    #[test]
    fn an_echo_request_is_well_formed_and_its_reply_is_recognised() {
        let request = echo_request(0x1234, 7);
        assert_eq!(checksum(&request), 0, "a packet with its checksum sums to zero");
        // The reply as a raw socket reads it: an IPv4 header, then ICMP type 0 with our id.
        let mut reply = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 1, 11, 10, 0, 1, 3];
        let mut icmp = request.to_vec();
        icmp[0] = 0;
        reply.extend(icmp);
        let from = Ipv4Addr::new(10, 0, 1, 11);
        assert_eq!(echo_reply(&reply, 0x1234, from), Some(7));
        assert_eq!(echo_reply(&reply, 0x4321, from), None, "another pinger's");
        assert_eq!(echo_reply(&reply, 0x1234, Ipv4Addr::new(10, 0, 1, 12)), None, "another host's");
        assert_eq!(echo_reply(&reply[..22], 0x1234, from), None, "truncated");
        assert_eq!(echo_reply(&[], 0x1234, from), None);
    }
}
