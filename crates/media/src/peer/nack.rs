//! Asks for lost video packets as soon as they are missed, and again once a
//! round trip, in the manner of libwebrtc's NACK module.
//!
//! webrtc-rs's generator asks on a fixed timer: every missing packet waited
//! for the next tick (up to 50 ms) before it was asked for at all, and a
//! lost request or retransmission for another. On a path with a short
//! round trip that wait was most of what a repair cost: with 5 % loss in
//! bursts of four and a 3 ms round trip, frames waited 60 to 250 ms.
//!
//! Here a gap is asked for when the packet after it comes, unless packets
//! have lately come out of order: then the request waits as long as they
//! were late (at most [`MAX_REORDER_WAIT`]), so that a reordering path does
//! not ask for packets that are merely late. A packet is asked for again
//! once a round trip while it is missing, for [`MAX_AGE`] at most: later
//! than that the frame buffer has given it up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;

/// A jump of more than this many packets is an outage, not a loss: what
/// was sent meanwhile is too old to wait for (the frame buffer asks for a
/// key frame instead).
const MAX_GAP: u64 = 64;
/// Packets missing at once, at most, per stream (the oldest go first).
const MAX_MISSING: usize = 128;
/// How long a missing packet is asked for.
const MAX_AGE: Duration = Duration::from_millis(600);
/// How many times, at most.
const MAX_ASKS: u8 = 10;
/// The longest a first request waits for a packet that may only be late.
const MAX_REORDER_WAIT: Duration = Duration::from_millis(40);
/// How fast the memory of late packets fades (half each second).
const REORDER_HALF_LIFE_SECS: f64 = 1.0;
/// A wait shorter than this is no wait.
const FORGOTTEN: Duration = Duration::from_millis(1);
/// Between two requests for one packet: the round trip and this, within
/// the bounds; and what is assumed before a report measured the round trip.
const REASK_SLACK: Duration = Duration::from_millis(5);
const MIN_REASK: Duration = Duration::from_millis(20);
const MAX_REASK: Duration = Duration::from_millis(500);
const UNMEASURED_REASK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Missing {
    since: Instant,
    /// When it is first asked for (later than `since` on a reordering path).
    first: Instant,
    asked: Option<Instant>,
    asks: u8,
}

#[derive(Debug, Default)]
struct Stream {
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
    /// How late packets that came out of order were, decaying from when it
    /// was last raised.
    late: Duration,
    late_at: Option<Instant>,
}

impl Stream {
    fn reorder_wait(&self, now: Instant) -> Duration {
        let Some(at) = self.late_at else {
            return Duration::ZERO;
        };
        let age = now.saturating_duration_since(at).as_secs_f64();
        let wait = self
            .late
            .mul_f64(0.5f64.powf(age / REORDER_HALF_LIFE_SECS))
            .min(MAX_REORDER_WAIT);
        if wait < FORGOTTEN {
            Duration::ZERO
        } else {
            wait
        }
    }

    fn note_late(&mut self, now: Instant, by: Duration) {
        let current = self.reorder_wait(now);
        if by >= current {
            self.late = by;
            self.late_at = Some(now);
        }
    }

    /// Notes packet `seq` arriving at `now`; `rtt` is the round trip as
    /// measured (zero before it is).
    fn arrived(&mut self, now: Instant, seq: u16, rtt: Duration) {
        let s = crate::rtp::extend_seq(self.highest, seq);
        let Some(highest) = self.highest else {
            self.highest = Some(s);
            return;
        };
        if s <= highest {
            if let Some(m) = self.missing.remove(&s) {
                tracing::trace!(
                    seq,
                    after_us = now.saturating_duration_since(m.since).as_micros() as u64,
                    asks = m.asks,
                    "missing packet came"
                );
                // Before it was asked for, or sooner after than an answer
                // can come: the packet itself, late. (A retransmission
                // comes on the same stream, with the same number.)
                let original = m
                    .asked
                    .is_none_or(|at| now.saturating_duration_since(at) < rtt / 2);
                if original {
                    self.note_late(now, now.saturating_duration_since(m.since));
                }
            }
            return;
        }
        self.highest = Some(s);
        if s - highest > MAX_GAP {
            self.missing.clear();
            return;
        }
        let first = now + self.reorder_wait(now);
        for lost in highest + 1..s {
            self.missing.insert(
                lost,
                Missing {
                    since: now,
                    first,
                    asked: None,
                    asks: 0,
                },
            );
        }
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
        }
    }

    fn due(m: &Missing, reask: Duration) -> Instant {
        m.asked.map_or(m.first, |at| at + reask)
    }

    /// The packets to ask for at `now`, marked as asked; forgets those
    /// asked for long enough.
    fn take_due(&mut self, now: Instant, reask: Duration) -> Vec<u16> {
        self.missing
            .retain(|_, m| m.asks < MAX_ASKS && now.saturating_duration_since(m.since) < MAX_AGE);
        let mut due = Vec::new();
        for (&s, m) in &mut self.missing {
            if Self::due(m, reask) <= now {
                m.asked = Some(now);
                m.asks += 1;
                due.push(s as u16);
            }
        }
        due
    }

    fn next_due(&self, reask: Duration) -> Option<Instant> {
        self.missing
            .values()
            .map(|m| Self::due(m, reask).min(m.since + MAX_AGE))
            .min()
    }
}

/// Takes the NACK generator's place in the interceptor chain.
pub(crate) struct NackRequester {
    /// The round trip, microseconds (0 until a report measured it).
    rtt_us: Arc<AtomicU64>,
    sender_ssrc: u32,
    streams: HashMap<u32, Stream>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
    /// Requests sent, and packets asked for in them.
    nacks: u64,
    asked: u64,
}

impl NackRequester {
    pub(crate) fn new(rtt_us: Arc<AtomicU64>) -> Self {
        Self {
            rtt_us,
            sender_ssrc: rand::random(),
            streams: HashMap::new(),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            nacks: 0,
            asked: 0,
        }
    }

    fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::Relaxed))
    }

    fn reask(&self) -> Duration {
        match self.rtt() {
            Duration::ZERO => UNMEASURED_REASK,
            rtt => (rtt + REASK_SLACK).clamp(MIN_REASK, MAX_REASK),
        }
    }

    fn ask(&mut self, now: Instant) {
        let reask = self.reask();
        for (&ssrc, stream) in &mut self.streams {
            let due = stream.take_due(now, reask);
            if due.is_empty() {
                continue;
            }
            tracing::trace!(ssrc, seqs = ?due, "asking");
            self.nacks += 1;
            self.asked += due.len() as u64;
            let nack = TransportLayerNack {
                sender_ssrc: self.sender_ssrc,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(&due),
            };
            self.writes.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
            });
        }
    }
}

impl std::fmt::Debug for NackRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NackRequester")
            .field("nacks", &self.nacks)
            .field("asked", &self.asked)
            .finish()
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackRequester {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let rtt = self.rtt();
        let now = msg.now;
        let tracked = if let Packet::Rtp(rtp) = &msg.message.packet
            && let Some(stream) = self.streams.get_mut(&rtp.header.ssrc)
        {
            stream.arrived(now, rtp.header.sequence_number, rtt);
            true
        } else {
            false
        };
        self.reads.push_back(msg);
        if tracked {
            self.ask(now);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.ask(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let reask = self.reask();
        self.streams
            .values()
            .filter_map(|s| s.next_due(reask))
            .min()
    }
}

impl Interceptor for NackRequester {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if nack {
            self.streams.insert(info.ssrc, Stream::default());
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }

    fn bind_local_stream(&mut self, _: &StreamInfo) {}

    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(30);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stream(t0: Instant, seqs: impl IntoIterator<Item = u16>) -> Stream {
        let mut s = Stream::default();
        for seq in seqs {
            s.arrived(t0, seq, RTT);
        }
        s
    }

    #[test]
    fn a_gap_is_asked_for_when_the_next_packet_comes() {
        let t0 = Instant::now();
        let mut s = stream(t0, [10, 11, 14]);
        assert_eq!(s.take_due(t0, RTT), vec![12, 13]);
        // Not again within a round trip; again after it.
        assert!(s.take_due(t0 + ms(10), RTT).is_empty());
        assert_eq!(s.next_due(RTT), Some(t0 + RTT));
        assert_eq!(s.take_due(t0 + RTT, RTT), vec![12, 13]);
        // One came back: only the other is asked for.
        s.arrived(t0 + ms(40), 12, RTT);
        assert_eq!(s.take_due(t0 + ms(60), RTT), vec![13]);
    }

    #[test]
    fn a_packet_is_given_up_after_its_age_or_its_asks() {
        let t0 = Instant::now();
        let mut s = stream(t0, [1, 3]);
        let mut asks = 0;
        let mut t = t0;
        while t < t0 + ms(1000) {
            asks += s.take_due(t, RTT).len();
            t += ms(5);
        }
        assert_eq!(asks, usize::from(MAX_ASKS));
        assert!(s.missing.is_empty());
        assert_eq!(s.next_due(RTT), None);

        let slow = ms(200);
        let mut s = stream(t0, [1, 3]);
        let mut asks = 0;
        let mut t = t0;
        while t < t0 + ms(1000) {
            asks += s.take_due(t, slow).len();
            t += ms(5);
        }
        // 0, 200, 400 ms; at 600 ms it is too old.
        assert_eq!(asks, 3);
    }

    #[test]
    fn an_outage_is_not_asked_for() {
        let t0 = Instant::now();
        let mut s = stream(t0, [100, 102]);
        s.arrived(t0, 102 + MAX_GAP as u16 + 1, RTT);
        assert!(s.take_due(t0, RTT).is_empty());
        // Losses after it are asked for again.
        s.arrived(t0, 102 + MAX_GAP as u16 + 3, RTT);
        assert_eq!(s.take_due(t0, RTT), vec![102 + MAX_GAP as u16 + 2]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut s = stream(t0, [65534, 1]);
        assert_eq!(s.take_due(t0, RTT), vec![65535, 0]);
    }

    #[test]
    fn packets_that_came_late_make_requests_wait_for_as_long() {
        let t0 = Instant::now();
        let mut s = stream(t0, [1, 3]);
        // 2 comes 15 ms late, before it was asked for.
        s.arrived(t0 + ms(15), 2, RTT);
        assert!(s.missing.is_empty());
        // The next gap waits about 15 ms before it is asked for.
        s.arrived(t0 + ms(20), 5, RTT);
        assert!(s.take_due(t0 + ms(20), RTT).is_empty());
        let due = s.next_due(RTT).unwrap();
        assert!(due > t0 + ms(33) && due <= t0 + ms(35), "{:?}", due - t0);
        assert_eq!(s.take_due(due, RTT), vec![4]);
        // The memory fades: seconds later a gap is asked for at once.
        let later = t0 + ms(10_000);
        s.arrived(later, 6, RTT);
        s.arrived(later, 8, RTT);
        assert_eq!(s.take_due(later, RTT), vec![7]);
        // Very late packets wait at most so long.
        s.note_late(later, ms(500));
        assert_eq!(s.reorder_wait(later), MAX_REORDER_WAIT);
    }

    #[test]
    fn a_retransmission_is_not_taken_for_a_late_packet() {
        let t0 = Instant::now();
        let mut s = stream(t0, [1, 3]);
        assert_eq!(s.take_due(t0, RTT), vec![2]);
        s.arrived(t0 + RTT, 2, RTT);
        s.arrived(t0 + RTT, 5, RTT);
        assert_eq!(s.take_due(t0 + RTT, RTT), vec![4]);
    }
}
