//! An adaptive jitter buffer for one remote member's Opus packets: it
//! reorders, holds a small cushion against network jitter, and says when a
//! packet is missing so the decoder can use FEC or conceal it.

use std::collections::BTreeMap;

use crate::MediaError;
use crate::codec::opus::OpusDecoder;

/// Cushion bounds, in 20 ms packets.
const MIN_TARGET: usize = 1;
const MAX_TARGET: usize = 10;
/// Packets held at most; beyond that the oldest go (the sender outran us).
const MAX_HELD: usize = 50;
/// Ticks without an underrun after which the cushion shrinks by one.
const CALM_TICKS: u32 = 250;
/// Consecutive empty ticks after which the stream counts as stopped (DTX
/// or a muted sender): concealment stops and buffering starts over.
const STOPPED_TICKS: u32 = 10;

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
    target: usize,
    calm: u32,
    empty: u32,
    underruns: u64,
    late: u64,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self {
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            target: 2,
            calm: 0,
            empty: 0,
            underruns: 0,
            late: 0,
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

    /// Times playout found nothing where a packet was due.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Packets that came after their turn and were dropped.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Adds an arriving packet.
    pub fn push(&mut self, seq: u16, payload: Vec<u8>) {
        let s = crate::rtp::extend_seq(self.highest, seq);
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

    /// One 20 ms tick of playout.
    pub fn pull(&mut self) -> Pulled {
        let Some(next) = self.next else {
            // Start once the cushion is there.
            if self.packets.len() >= self.target {
                let (&first, _) = self.packets.first_key_value().expect("not empty");
                self.next = Some(first);
                self.empty = 0;
                return self.pull();
            }
            return Pulled::Idle;
        };
        // Running far behind (a burst arrived): skip ahead to keep delay low.
        if self.packets.len() > self.target + 4 {
            let skip_to = *self
                .packets
                .keys()
                .nth(self.packets.len() - self.target)
                .expect("enough");
            self.packets.retain(|&k, _| k >= skip_to);
            self.next = Some(skip_to);
            return self.pull();
        }
        self.next = Some(next + 1);
        if let Some(p) = self.packets.remove(&next) {
            self.empty = 0;
            self.calm += 1;
            if self.calm >= CALM_TICKS && self.target > MIN_TARGET {
                self.target -= 1;
                self.calm = 0;
            }
            return Pulled::Packet(p);
        }
        self.empty += 1;
        self.calm = 0;
        if self.packets.is_empty() {
            self.underruns += 1;
            if self.empty >= STOPPED_TICKS {
                // The sender went quiet: wait for a fresh cushion.
                self.next = None;
                return Pulled::Idle;
            }
            if self.target < MAX_TARGET && self.empty == 1 {
                self.target += 1;
            }
        }
        Pulled::Lost {
            next: self.packets.get(&(next + 1)).cloned(),
        }
    }
}

/// A jitter buffer and an Opus decoder: 20 ms of a member's voice per tick.
#[derive(Debug)]
pub struct AudioReceiver {
    buffer: JitterBuffer,
    decoder: OpusDecoder,
}

impl AudioReceiver {
    /// An idle receiver.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Self {
            buffer: JitterBuffer::new(),
            decoder: OpusDecoder::new()?,
        })
    }

    /// Adds an arriving RTP payload.
    pub fn push(&mut self, seq: u16, payload: Vec<u8>) {
        self.buffer.push(seq, payload);
    }

    /// The buffer's counters.
    pub fn buffer(&self) -> &JitterBuffer {
        &self.buffer
    }

    /// The next 20 ms: decoded, recovered from FEC, concealed, or `None`
    /// when the member is silent.
    pub fn tick(&mut self) -> Option<Vec<f32>> {
        let out = match self.buffer.pull() {
            Pulled::Packet(p) => self.decoder.decode(&p),
            Pulled::Lost { next: Some(n) } => self.decoder.decode_fec(&n),
            Pulled::Lost { next: None } => self.decoder.conceal(),
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

    #[test]
    fn waits_for_a_cushion_then_plays_in_order() {
        let mut jb = JitterBuffer::new();
        jb.push(11, p(11));
        assert_eq!(jb.pull(), Pulled::Idle);
        jb.push(10, p(10));
        assert_eq!(jb.pull(), Pulled::Packet(p(10)));
        assert_eq!(jb.pull(), Pulled::Packet(p(11)));
    }

    #[test]
    fn a_gap_is_reported_with_the_packet_after_it_for_fec() {
        let mut jb = JitterBuffer::new();
        for s in [1, 2, 4, 5] {
            jb.push(s, p(s as u8));
        }
        assert_eq!(jb.pull(), Pulled::Packet(p(1)));
        assert_eq!(jb.pull(), Pulled::Packet(p(2)));
        assert_eq!(jb.pull(), Pulled::Lost { next: Some(p(4)) });
        assert_eq!(jb.pull(), Pulled::Packet(p(4)));
        // A packet that arrives after its turn is dropped.
        jb.push(3, p(3));
        assert_eq!(jb.late(), 1);
        assert_eq!(jb.pull(), Pulled::Packet(p(5)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::new();
        for s in [65534u16, 65535, 0, 1] {
            jb.push(s, p(s as u8));
        }
        let got: Vec<Pulled> = (0..4).map(|_| jb.pull()).collect();
        assert_eq!(
            got,
            [65534u16, 65535, 0, 1].map(|s| Pulled::Packet(p(s as u8)))
        );
    }

    #[test]
    fn underruns_grow_the_cushion_and_calm_shrinks_it() {
        let mut jb = JitterBuffer::new();
        jb.push(0, p(0));
        jb.push(1, p(1));
        assert_eq!(jb.target(), 2);
        jb.pull();
        jb.pull();
        assert!(matches!(jb.pull(), Pulled::Lost { next: None }));
        assert_eq!(jb.target(), 3);
        assert_eq!(jb.underruns(), 1);
        let mut seq = 3u16;
        for _ in 0..600 {
            jb.push(seq, p(0));
            seq = seq.wrapping_add(1);
            jb.pull();
        }
        assert!(jb.target() < 3, "{}", jb.target());
    }

    #[test]
    fn a_silent_sender_stops_concealment_and_restarts_cleanly() {
        let mut jb = JitterBuffer::new();
        jb.push(0, p(0));
        jb.push(1, p(1));
        jb.pull();
        jb.pull();
        let lost = (0..20)
            .filter(|_| matches!(jb.pull(), Pulled::Lost { .. }))
            .count();
        assert_eq!(lost as u32, STOPPED_TICKS - 1);
        assert_eq!(jb.pull(), Pulled::Idle);
        for s in 500..503 {
            jb.push(s, p(1));
        }
        assert_eq!(jb.pull(), Pulled::Packet(p(1)));
    }

    #[test]
    fn a_burst_is_trimmed_to_keep_delay_low() {
        let mut jb = JitterBuffer::new();
        for s in 0..30 {
            jb.push(s, p(s as u8));
        }
        jb.pull();
        assert!(jb.len() <= jb.target() + 1, "{} held", jb.len());
    }
}
