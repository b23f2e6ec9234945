//! An adaptive jitter buffer for one remote member's Opus packets: it
//! reorders, holds a cushion sized from how the packets actually arrive,
//! and says when a packet is missing so the decoder can use FEC or conceal
//! it.
//!
//! The cushion follows the network: every packet's arrival is compared with
//! when it would have come on a steady path (its sequence number × 20 ms
//! after the earliest), and the cushion covers the last two
//! seconds' delays but the latest 3 %. Playout follows the cushion by
//! time-stretching ([`crate::sink::stretch`]): a pitch period longer while
//! the cushion is short, a period shorter while more is held than it needs,
//! so the delay stays as short as the path allows without a gap in the
//! voice. A packet that is late with the cushion short is waited for with
//! a concealed frame; only far more than needed (a burst) is skipped.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::MediaError;
use crate::codec::opus::OpusDecoder;
use crate::frame::FRAME_SAMPLES;
use crate::sink::stretch;

/// Cushion bounds, in 20 ms packets.
const MIN_TARGET: usize = 1;
const MIN_TARGET_WITH_COPIES: usize = 3;
const MAX_TARGET: usize = 15;
/// Packets held at most; beyond that the oldest go (the sender outran us).
const MAX_HELD: usize = 50;
/// Consecutive empty ticks after which the stream counts as stopped (a
/// muted sender): concealment stops and buffering starts over.
const STOPPED_TICKS: u32 = 10;
/// Arrivals the delay estimate looks back on: two seconds.
const HISTORY: usize = 100;
/// A packet's length in time.
const FRAME: Duration = Duration::from_millis(20);
/// How many ticks a missing packet is waited for when the cushion is short.
const MAX_HOLD: u32 = 2;
/// Packets held beyond the cushion at which playout speeds up (shortens).
const FASTER_AT: usize = 2;
/// Packets beyond the cushion at which they are skipped outright: more
/// than stretching would bring down soon.
const SKIP_AT: usize = 7;
/// Pulls over which a short cushion must persist before playout slows
/// down (a single late newest packet is not a short cushion).
const SLOWER_AFTER: usize = 8;

/// How playout should move to follow the cushion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// About what the cushion needs is held.
    Steady,
    /// More is held than needed: play a little faster.
    Faster,
    /// Less than needed, for a while: play a little slower.
    Slower,
}

/// What one tick of playout gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The next packet, in order.
    Packet(Vec<u8>),
    /// The next packet is missing; the one after it, if it is here, may
    /// carry FEC for it.
    Lost {
        /// The packet after the missing one.
        next: Option<Vec<u8>>,
    },
    /// Nothing arrived in time for this tick: conceal, and play the next
    /// packet a tick later (the cushion grows).
    Wait,
    /// Nothing to play (not started, or the sender paused).
    Idle,
}

/// Packets of one stream, ordered by RTP sequence number.
#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Vec<u8>>,
    /// Unwrapped sequence number of the next packet to play, once playing.
    next: Option<u64>,
    /// The highest unwrapped sequence number seen.
    highest: Option<u64>,
    /// Each recent packet's arrival, less its place in the stream: how
    /// late it came compared with the others (µs, from an arbitrary zero).
    delays: VecDeque<i64>,
    /// The first arrival: the zero of `delays`.
    epoch: Option<(Instant, u64)>,
    target: usize,
    /// The sender adds copies of earlier packets (RED).
    copies: bool,
    empty: u32,
    held: u32,
    /// The cushion after each recent pull, in packets (newest last).
    recent_ahead: VecDeque<usize>,
    underruns: u64,
    late: u64,
    skipped: u64,
    concealed: u64,
    repaired: u64,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self {
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            delays: VecDeque::new(),
            epoch: None,
            target: 2,
            copies: false,
            empty: 0,
            held: 0,
            recent_ahead: VecDeque::new(),
            underruns: 0,
            late: 0,
            skipped: 0,
            concealed: 0,
            repaired: 0,
        }
    }
}

impl JitterBuffer {
    /// An empty buffer with a 40 ms cushion.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cushion it aims for, in packets.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Whether playout should speed up or slow down to follow the cushion.
    pub fn pace(&self) -> Pace {
        let Some(&now) = self.recent_ahead.back() else {
            return Pace::Steady;
        };
        // After a pull the next packet is still to come, so a cushion of
        // `target` shows as `target - 1` ahead.
        if now >= self.target + FASTER_AT - 1 {
            return Pace::Faster;
        }
        let most = self.recent_ahead.iter().copied().max().unwrap_or(0);
        if self.recent_ahead.len() >= SLOWER_AFTER && most + 2 <= self.target {
            return Pace::Slower;
        }
        Pace::Steady
    }

    /// How far the newest packet is ahead of playout, in packets.
    fn ahead(&self) -> usize {
        match (self.next, self.highest) {
            (Some(n), Some(h)) if h >= n => (h - n + 1) as usize,
            _ => 0,
        }
    }

    fn note_ahead(&mut self) {
        let ahead = self.ahead();
        self.recent_ahead.push_back(ahead);
        if self.recent_ahead.len() > SLOWER_AFTER {
            self.recent_ahead.pop_front();
        }
    }

    /// Times playout found nothing where a packet was due.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Packets that came after their turn and were dropped.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Packets skipped to bring the delay back down.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Ticks that had no packet to play (lost, or waited for).
    pub fn concealed(&self) -> u64 {
        self.concealed
    }

    /// Missing packets filled in from a copy in a later one.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Adds a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, seq: u16, payload: Vec<u8>) {
        let s = crate::rtp::extend_seq(self.highest, seq);
        self.record_arrival(now, s);
        if self.next.is_some_and(|n| s < n) {
            self.late += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(s, |h| h.max(s)));
        self.packets.insert(s, payload);
        while self.packets.len() > MAX_HELD {
            self.packets.pop_first();
            if let (Some(n), Some((&first, _))) = (self.next, self.packets.first_key_value()) {
                self.next = Some(n.max(first));
            }
        }
    }

    /// Adds a copy of packet `seq` that came inside a later one: it fills a
    /// gap if the packet itself is missing and not yet due, and says
    /// nothing of the path's timing.
    pub fn push_copy(&mut self, seq: u16, payload: Vec<u8>) {
        // Copies of the packet before last come 40 ms after it: hold that
        // much, so that they are in time.
        if !self.copies {
            self.copies = true;
            self.target = self.target.max(MIN_TARGET_WITH_COPIES);
        }
        let Some(highest) = self.highest else { return };
        let s = crate::rtp::extend_seq(Some(highest), seq);
        if self.next.is_some_and(|n| s < n) || s > highest {
            return;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = self.packets.entry(s) {
            e.insert(payload);
            self.repaired += 1;
        }
    }

    /// Notes how late `s` came, and sizes the cushion to cover nearly all
    /// of the recent packets.
    fn record_arrival(&mut self, now: Instant, s: u64) {
        let (t0, s0) = *self.epoch.get_or_insert((now, s));
        let arrived = now.duration_since(t0).as_micros() as i64;
        let due = (s as i64 - s0 as i64) * FRAME.as_micros() as i64;
        self.delays.push_back(arrived - due);
        if self.delays.len() > HISTORY {
            self.delays.pop_front();
        }
        if self.delays.len() < 10 {
            return;
        }
        let mut sorted: Vec<i64> = self.delays.iter().copied().collect();
        sorted.sort_unstable();
        let earliest = sorted[0];
        let high = sorted[(sorted.len() - 1) * 97 / 100];
        let spread = Duration::from_micros((high - earliest).max(0) as u64);
        // The spread to cover, plus one packet for the tick's own phase.
        let floor = if self.copies {
            MIN_TARGET_WITH_COPIES
        } else {
            MIN_TARGET
        };
        let wanted =
            (spread.as_micros().div_ceil(FRAME.as_micros()) as usize + 1).clamp(floor, MAX_TARGET);
        // Up at once, down gently (one packet per arrival at most).
        if wanted > self.target {
            self.target = wanted;
        } else if wanted < self.target && self.target > floor {
            self.target -= 1;
        }
    }

    /// One 20 ms tick of playout.
    pub fn pull(&mut self) -> Pulled {
        let pulled = self.pull_one();
        match pulled {
            Pulled::Idle => self.recent_ahead.clear(),
            _ => self.note_ahead(),
        }
        pulled
    }

    fn pull_one(&mut self) -> Pulled {
        let Some(next) = self.next else {
            // Start once the cushion is there.
            if self.packets.len() >= self.target {
                let (&first, _) = self.packets.first_key_value().expect("not empty");
                self.next = Some(first);
                self.empty = 0;
                self.held = 0;
                return self.pull_one();
            }
            return Pulled::Idle;
        };
        // How far the newest packet is ahead of playout, in packets: the
        // cushion in time. (Counting the packets held instead would take a
        // lossy path for a short cushion: playout held back for packets
        // that were lost, then skipped real ones to catch up.)
        let ahead = self.ahead();
        // Far more held than the cushion needs (a burst came): skip one to
        // bring the delay down; a little more is left to stretching.
        if ahead > self.target + SKIP_AT && self.packets.contains_key(&(next + 1)) {
            self.packets.remove(&next);
            self.next = Some(next + 1);
            self.skipped += 1;
            return self.pull_one();
        }
        if let Some(p) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.empty = 0;
            self.held = 0;
            return Pulled::Packet(p);
        }
        self.empty += 1;
        if self.packets.is_empty() {
            self.underruns += 1;
            if self.empty >= STOPPED_TICKS {
                // The sender went quiet: wait for a fresh cushion.
                self.next = None;
                return Pulled::Idle;
            }
        }
        // The next packet is not here. With less than the cushion behind
        // it, it may just be late: hold playout back a tick (concealing)
        // rather than give it up; otherwise it is lost.
        self.concealed += 1;
        if ahead < self.target && self.held < MAX_HOLD {
            self.held += 1;
            return Pulled::Wait;
        }
        self.held = 0;
        self.next = Some(next + 1);
        Pulled::Lost {
            next: self.packets.get(&(next + 1)).cloned(),
        }
    }
}

/// A jitter buffer and an Opus decoder: 20 ms of a member's voice per tick,
/// time-stretched to follow the buffer's cushion.
#[derive(Debug)]
pub struct AudioReceiver {
    buffer: JitterBuffer,
    decoder: OpusDecoder,
    /// Decoded and not played yet: what a stretch left over (under a
    /// frame before a tick, under two after a decode).
    pending: Vec<f32>,
    shortened: u64,
    lengthened: u64,
}

impl AudioReceiver {
    /// An idle receiver.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Self {
            buffer: JitterBuffer::new(),
            decoder: OpusDecoder::new()?,
            pending: Vec::new(),
            shortened: 0,
            lengthened: 0,
        })
    }

    /// Adds an RTP payload that arrived at `now`, with the copies of
    /// earlier packets it carried (sequence number, payload; see
    /// [`JitterBuffer::push_copy`]). The packet goes in first: a copy of
    /// the packet just before it is newer than anything held until then.
    pub fn push(&mut self, now: Instant, seq: u16, payload: Vec<u8>, copies: Vec<(u16, Vec<u8>)>) {
        self.buffer.push(now, seq, payload);
        for (seq, copy) in copies {
            self.buffer.push_copy(seq, copy);
        }
    }

    /// The buffer's counters.
    pub fn buffer(&self) -> &JitterBuffer {
        &self.buffer
    }

    /// Times playout was sped up by a pitch period to bring the delay down.
    pub fn shortened(&self) -> u64 {
        self.shortened
    }

    /// Times playout was slowed down by a pitch period to let the cushion
    /// grow.
    pub fn lengthened(&self) -> u64 {
        self.lengthened
    }

    /// The next 20 ms: decoded, recovered from FEC, concealed, stretched,
    /// or `None` when the member is silent.
    pub fn tick(&mut self) -> Option<Vec<f32>> {
        let mut stretched = false;
        while self.pending.len() < FRAME_SAMPLES {
            let pulled = self.buffer.pull();
            // Only decoded voice is stretched: concealment already is a
            // guess, drawn out from what came before.
            let decoded = matches!(pulled, Pulled::Packet(_) | Pulled::Lost { next: Some(_) });
            let Some(samples) = self.decode(pulled) else {
                if self.pending.is_empty() {
                    return None;
                }
                // The member went quiet mid-stretch: play out the rest.
                self.pending.resize(FRAME_SAMPLES, 0.0);
                break;
            };
            self.pending.extend(samples);
            if stretched || !decoded {
                continue;
            }
            let changed = match self.buffer.pace() {
                Pace::Steady => None,
                Pace::Faster => stretch::shorten(&self.pending).inspect(|_| self.shortened += 1),
                Pace::Slower => stretch::lengthen(&self.pending).inspect(|_| self.lengthened += 1),
            };
            if let Some(changed) = changed {
                self.pending = changed;
                stretched = true;
            }
        }
        let rest = self.pending.split_off(FRAME_SAMPLES);
        Some(std::mem::replace(&mut self.pending, rest))
    }

    /// What one pull of the buffer plays, or `None` for silence.
    fn decode(&mut self, pulled: Pulled) -> Option<Vec<f32>> {
        let out = match pulled {
            Pulled::Packet(p) => self.decoder.decode(&p),
            Pulled::Lost { next: Some(n) } => self.decoder.decode_fec(&n),
            Pulled::Lost { next: None } | Pulled::Wait => self.decoder.conceal(),
            Pulled::Idle => return None,
        };
        match out {
            Ok(samples) => Some(samples),
            Err(e) => {
                tracing::debug!(error = %e, "undecodable audio packet");
                self.decoder.conceal().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Vec<u8> {
        vec![n]
    }

    /// Pushes packets `seqs` arriving at `t0` + `at` ms each.
    fn arrive(jb: &mut JitterBuffer, t0: Instant, packets: &[(u16, u64)]) {
        for &(s, at) in packets {
            jb.push(t0 + Duration::from_millis(at), s, p(s as u8));
        }
    }

    #[test]
    fn waits_for_a_cushion_then_plays_in_order() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(11, 20)]);
        assert_eq!(jb.pull(), Pulled::Idle);
        arrive(&mut jb, t0, &[(10, 21)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(10)));
        assert_eq!(jb.pull(), Pulled::Packet(p(11)));
    }

    #[test]
    fn a_gap_is_reported_with_the_packet_after_it_for_fec() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(1, 0), (2, 20)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(1)));
        arrive(&mut jb, t0, &[(4, 60), (5, 80)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(2)));
        assert_eq!(jb.pull(), Pulled::Lost { next: Some(p(4)) });
        arrive(&mut jb, t0, &[(6, 100)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(4)));
        // A packet that arrives after its turn is dropped.
        arrive(&mut jb, t0, &[(3, 120)]);
        assert_eq!(jb.late(), 1);
        assert_eq!(jb.pull(), Pulled::Packet(p(5)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(65534, 0), (65535, 20), (0, 40), (1, 60)]);
        let got: Vec<Pulled> = (0..4).map(|_| jb.pull()).collect();
        assert_eq!(
            got,
            [65534u16, 65535, 0, 1].map(|s| Pulled::Packet(p(s as u8)))
        );
    }

    /// A stream of `n` packets sent every 20 ms, each delayed by `delay(i)`
    /// ms, played by ticks every 20 ms: what each tick got.
    fn run(
        n: u16,
        delay: impl Fn(u16) -> u64,
        lost: impl Fn(u16) -> bool,
    ) -> (JitterBuffer, Vec<Pulled>) {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let mut arrivals: Vec<(u64, u16)> = (0..n)
            .filter(|&i| !lost(i))
            .map(|i| (u64::from(i) * 20 + delay(i), i))
            .collect();
        arrivals.sort_unstable();
        let mut out = Vec::new();
        let mut a = 0;
        for tick in 0..(u64::from(n) + 30) {
            let now = tick * 20 + 5;
            while a < arrivals.len() && arrivals[a].0 <= now {
                let (at, s) = arrivals[a];
                jb.push(t0 + Duration::from_millis(at), s, p(s as u8));
                a += 1;
            }
            out.push(jb.pull());
        }
        (jb, out)
    }

    /// A repeatable spread of delays in [0, 80) ms.
    fn spread(i: u16) -> u64 {
        (u64::from(i) * 37 + u64::from(i) * u64::from(i) * 11) % 80
    }

    #[test]
    fn jitter_that_reorders_packets_costs_nothing_once_the_cushion_grew() {
        let (jb, out) = run(500, spread, |_| false);
        let played = out
            .iter()
            .filter(|o| matches!(o, Pulled::Packet(_)))
            .count();
        let lost_late = out[100..]
            .iter()
            .filter(|o| matches!(o, Pulled::Lost { .. }))
            .count();
        assert!(played >= 490, "{played} of 500 played");
        assert!(
            lost_late <= 4,
            "after the first two seconds, {lost_late} given up"
        );
        assert!(
            (4..=6).contains(&jb.target()),
            "{} packets of cushion",
            jb.target()
        );
    }

    #[test]
    fn a_steady_path_keeps_the_delay_short() {
        let (jb, out) = run(500, |_| 30, |_| false);
        assert!(jb.target() <= 2, "{}", jb.target());
        assert_eq!(
            out.iter()
                .filter(|o| matches!(o, Pulled::Packet(_)))
                .count(),
            500
        );
    }

    #[test]
    fn the_cushion_shrinks_again_when_the_jitter_goes() {
        let (jb, _) = run(800, |i| if i < 300 { spread(i) } else { 0 }, |_| false);
        assert!(jb.target() <= 2, "{}", jb.target());
        // What was held for the jitter is left to play out faster; it is
        // not skipped.
        assert_eq!(jb.skipped(), 0);
    }

    #[test]
    fn playout_is_told_to_speed_up_when_more_is_held_than_needed() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(0, 0), (1, 20)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(0)));
        assert_eq!(jb.pace(), Pace::Steady);
        arrive(&mut jb, t0, &[(2, 40), (3, 40), (4, 40), (5, 40)]);
        assert_eq!(jb.pull(), Pulled::Packet(p(1)));
        assert_eq!(jb.pace(), Pace::Faster, "target {}", jb.target());
    }

    #[test]
    fn playout_is_told_to_slow_down_when_the_cushion_stays_short() {
        // Every packet 60 ms late but one early: the cushion must cover
        // 60 ms, and playout started on the early one with less.
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(0, 0), (1, 20)]);
        let mut paces = Vec::new();
        for s in 2..40u16 {
            let at = u64::from(s) * 20 + if s % 12 == 0 { 0 } else { 60 };
            arrive(&mut jb, t0, &[(s, at)]);
            jb.pull();
            paces.push(jb.pace());
        }
        assert!(jb.target() >= 4, "{}", jb.target());
        assert!(paces.contains(&Pace::Slower), "{paces:?}");
    }

    #[test]
    fn lost_packets_are_reported_with_their_successor_for_fec() {
        let (_, out) = run(500, |_| 10, |i| i % 3 == 1);
        let lost = out
            .iter()
            .filter(|o| matches!(o, Pulled::Lost { next: Some(_) }))
            .count();
        assert!(lost >= 150, "{lost}");
    }

    #[test]
    fn a_silent_sender_stops_concealment_and_restarts_cleanly() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        arrive(&mut jb, t0, &[(0, 0), (1, 20)]);
        jb.pull();
        jb.pull();
        let concealed = (0..20)
            .filter(|_| matches!(jb.pull(), Pulled::Lost { .. } | Pulled::Wait))
            .count();
        assert_eq!(concealed as u32, STOPPED_TICKS - 1);
        assert_eq!(jb.pull(), Pulled::Idle);
        arrive(&mut jb, t0, &[(500, 1000), (501, 1020), (502, 1040)]);
        assert_eq!(jb.pull(), Pulled::Packet(p((500u16 % 256) as u8)));
    }

    #[test]
    fn loss_is_not_taken_for_a_short_cushion() {
        // 30 % loss and up to 30 ms of jitter: every packet that arrives is
        // played; the cushion is not held back for lost ones and then
        // trimmed by skipping real ones.
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut in_flight: Vec<(u64, u16)> = Vec::new();
        let (mut arrived, mut played) = (0, 0);
        for tick in 0..3000u64 {
            if rnd() % 100 >= 30 {
                in_flight.push((tick * 20_000 + 5_000 + rnd() % 30_000, tick as u16));
                arrived += 1;
            }
            in_flight.sort_unstable();
            let due = in_flight.partition_point(|&(at, _)| at < (tick + 1) * 20_000);
            for (at, s) in in_flight.drain(..due) {
                jb.push(t0 + Duration::from_micros(at), s, p(s as u8));
            }
            if matches!(jb.pull(), Pulled::Packet(_)) {
                played += 1;
            }
        }
        assert!(played * 100 >= arrived * 97, "{played} of {arrived} played");
        assert!(jb.skipped() < 100, "{} skipped", jb.skipped());
    }

    #[test]
    fn repairs_and_concealment_are_counted() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let mut played = Vec::new();
        for tick in 0..8u64 {
            match tick {
                1 | 4 => {}
                2 => {
                    arrive(&mut jb, t0, &[(2, 40)]);
                    // Packet 2 carried copies of 1 and of 0, which came.
                    jb.push_copy(1, p(1));
                    jb.push_copy(0, p(9));
                }
                t => arrive(&mut jb, t0, &[(t as u16, t * 20)]),
            }
            played.push(jb.pull());
        }
        assert!(played.contains(&Pulled::Packet(p(1))), "{played:?}");
        assert!(!played.contains(&Pulled::Packet(p(9))), "{played:?}");
        assert_eq!(jb.repaired(), 1);
        assert!(jb.concealed() >= 1, "packet 4 never came: {played:?}");
    }

    #[test]
    fn a_burst_is_trimmed_to_keep_delay_low() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        for s in 0..30u16 {
            jb.push(t0 + Duration::from_millis(u64::from(s) * 20), s, p(s as u8));
        }
        jb.pull();
        assert!(jb.len() <= jb.target() + SKIP_AT, "{} held", jb.len());
        assert_eq!(jb.pace(), Pace::Faster);
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;
    use crate::codec::opus::OpusEncoder;
    use crate::frame::FRAME_SAMPLES;
    use crate::source::synthetic::{ToneMicrophone, detect_tone};

    /// A tone sent through Opus (FEC sized for `expected` % loss) and a
    /// path that loses each packet with `loss`, played by the receiver:
    /// the share of 100 ms blocks in which the tone stands out.
    fn heard(f: f32, loss: f64, expected: i32) -> f64 {
        heard_with_copies(f, loss, expected, 0)
    }

    /// [`heard`], each packet also carrying `copies` earlier frames (RED).
    fn heard_with_copies(f: f32, loss: f64, expected: i32, copies: usize) -> f64 {
        let mut mic = ToneMicrophone::new(f, 0.3);
        let mut enc = OpusEncoder::new(32_000, expected).unwrap();
        let mut rx = AudioReceiver::new().unwrap();
        let t0 = Instant::now();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::new();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for i in 0..1500u16 {
            let packet = enc.encode(&mic.generate()).unwrap();
            sent.push(packet.clone());
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (state % 10_000) as f64 >= loss * 10_000.0 {
                let older = (1..=copies.min(usize::from(i)))
                    .map(|back| {
                        let j = usize::from(i) - back;
                        (j as u16, sent[j].clone())
                    })
                    .collect();
                rx.push(
                    t0 + Duration::from_millis(u64::from(i) * 20 + 5),
                    i,
                    packet,
                    older,
                );
            }
            if let Some(samples) = rx.tick() {
                out.extend(samples);
            }
        }
        let blocks: Vec<&[f32]> = out[48_000..].chunks(FRAME_SAMPLES * 5).collect();
        let tonal = blocks
            .iter()
            .filter(|b| {
                detect_tone(b, &crate::sink::mixer::tone_candidates())
                    .is_some_and(|(g, share)| g == f && share > 0.6)
            })
            .count();
        tonal as f64 / blocks.len() as f64
    }

    /// A 630 Hz tone (not a whole number of periods in 20 ms, so a frame
    /// skipped or repeated clicks) sent every 20 ms, packet `i` arriving at
    /// `arrives(i)` ms (`None`: lost), played by a tick every 20 ms for
    /// `n` ticks: the receiver and everything it played.
    fn played(n: u16, arrives: impl Fn(u16) -> Option<u64>) -> (AudioReceiver, Vec<f32>) {
        let mut mic = ToneMicrophone::new(630.0, 0.3);
        let mut enc = OpusEncoder::new(32_000, 5).unwrap();
        let mut rx = AudioReceiver::new().unwrap();
        let t0 = Instant::now();
        let mut in_flight: Vec<(u64, u16, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        for i in 0..n {
            let packet = enc.encode(&mic.generate()).unwrap();
            if let Some(at) = arrives(i) {
                in_flight.push((at, i, packet));
            }
            in_flight.sort_by_key(|f| f.0);
            let now = u64::from(i) * 20 + 10;
            let due = in_flight.partition_point(|f| f.0 <= now);
            for (at, s, packet) in in_flight.drain(..due) {
                rx.push(t0 + Duration::from_millis(at), s, packet, Vec::new());
            }
            out.extend(rx.tick().unwrap_or_else(|| vec![0.0; FRAME_SAMPLES]));
        }
        (rx, out)
    }

    /// The largest step between neighbouring samples of `x`.
    fn largest_step(x: &[f32]) -> f32 {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    /// The share of 100 ms blocks of `x` in which the 630 Hz tone stands out.
    fn tonal(x: &[f32]) -> f64 {
        let blocks: Vec<&[f32]> = x.chunks(FRAME_SAMPLES * 5).collect();
        let heard = blocks
            .iter()
            .filter(|b| {
                detect_tone(b, &[530.0, 630.0, 730.0]).is_some_and(|(g, s)| g == 630.0 && s > 0.6)
            })
            .count();
        heard as f64 / blocks.len() as f64
    }

    #[test]
    fn a_stall_s_delay_is_played_out_faster_without_a_gap_or_a_click() {
        // A clean 20 ms path, except that the packets sent between 2.0 and
        // 2.3 s are held and arrive together at 2.3 s (a Wi-Fi stall).
        let (rx, out) = played(500, |i| {
            let sent = u64::from(i) * 20;
            Some(if (100..115).contains(&i) {
                2300
            } else {
                sent + 20
            })
        });
        let frame = |t_ms: usize| t_ms / 20 * FRAME_SAMPLES;
        let clean = &out[frame(400)..frame(2000)];
        // The cushion grew to cover the stall; two seconds later the path
        // has been steady long enough to need none, and what was held
        // plays out a pitch period faster at a time: nothing is skipped.
        assert_eq!(rx.buffer().skipped(), 0);
        assert!(rx.shortened() >= 10, "{} shortened", rx.shortened());
        assert!(rx.buffer().len() <= 3, "{} still held", rx.buffer().len());
        let after = &out[frame(4400)..];
        assert!(
            largest_step(after) < largest_step(clean) * 1.5,
            "a click: step {} against {}",
            largest_step(after),
            largest_step(clean)
        );
        assert!(
            tonal(after) >= 0.98,
            "tone in {:.2} of blocks",
            tonal(after)
        );
    }

    #[test]
    fn a_cushion_that_must_grow_grows_by_slowing_down() {
        // Steady for 2 s, then every packet but one in six comes 60 ms
        // late: the cushion has to grow by three packets.
        let (rx, out) = played(400, |i| {
            let sent = u64::from(i) * 20;
            Some(sent + if i >= 100 && i % 6 != 0 { 70 } else { 10 })
        });
        assert!(rx.buffer().target() >= 4, "{}", rx.buffer().target());
        assert!(rx.lengthened() >= 1, "never slowed down");
        assert_eq!(rx.buffer().skipped(), 0);
        let after = &out[150 * FRAME_SAMPLES..];
        assert!(
            tonal(after) >= 0.98,
            "tone in {:.2} of blocks",
            tonal(after)
        );
    }

    #[test]
    fn two_copies_keep_a_tone_at_30_percent_loss() {
        for f in [400.0, 1000.0, 1900.0] {
            let red = heard_with_copies(f, 0.30, 40, 2);
            assert!(red > 0.9, "{f} Hz: {red}");
        }
    }

    #[test]
    fn a_copy_of_the_packet_just_before_repairs_it() {
        let mut enc = OpusEncoder::new(32_000, 10).unwrap();
        let mut mic = ToneMicrophone::new(600.0, 0.3);
        let frames: Vec<Vec<u8>> = (0..5)
            .map(|_| enc.encode(&mic.generate()).unwrap())
            .collect();
        let mut rx = AudioReceiver::new().unwrap();
        let t0 = Instant::now();
        // Packet 2 is lost; only 3 carries a copy of it.
        for (i, copies) in [(0u16, vec![]), (1, vec![0]), (3, vec![2]), (4, vec![3])] {
            let older = copies
                .into_iter()
                .map(|j: u16| (j, frames[usize::from(j)].clone()))
                .collect();
            let at = t0 + Duration::from_millis(u64::from(i) * 20);
            rx.push(at, i, frames[usize::from(i)].clone(), older);
        }
        assert_eq!(rx.buffer().repaired(), 1);
        for _ in 0..5 {
            assert!(rx.tick().is_some());
        }
        assert_eq!(rx.buffer().concealed(), 0);
    }

    #[test]
    fn fec_and_concealment_keep_most_of_a_tone_at_30_percent_loss() {
        let clean = heard(600.0, 0.0, 5);
        let lossy = heard(600.0, 0.30, 40);
        assert!(clean > 0.98, "{clean}");
        assert!(lossy > 0.7, "{lossy}");
    }
}
