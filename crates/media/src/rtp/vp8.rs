//! VP8 over RTP (RFC 7741): the payload descriptor, a packetizer that
//! marks temporal layers, and the receive side's frame buffer.
//!
//! The frame buffer puts frames back together and hands them to the decoder
//! in order. When a packet is missing it waits a little (a retransmission
//! asked for by NACK takes about a round trip; it waits two, in case the
//! first retransmission was lost too), but not for a frame nothing
//! later depends on: frames of the upper temporal layer update no
//! reference, so a lost one is skipped at once. Only when a base-layer
//! frame is given up does it ask for a key frame.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beckon_media::rtp::vp8::{FrameBuffer, Layer, Output, Vp8Packetizer};
//! let mut tx = Vp8Packetizer::new();
//! let mut rx = FrameBuffer::new();
//! let now = Instant::now();
//! let key = [0x10, 1, 2, 3]; // a key frame's first byte has P = 0
//! for (i, p) in tx.packetize(&key, Layer::BASE, 1200).into_iter().enumerate() {
//!     rx.push(now, i as u16, 3000, true, &p);
//! }
//! assert!(matches!(rx.poll(now), Some(Output::Frame(f)) if f.key));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The temporal layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// 0 for frames others refer to; 1 for frames nothing refers to.
    pub tid: u8,
    /// Refers only to base-layer frames (RFC 7741's Y bit).
    pub sync: bool,
}

impl Layer {
    /// The base layer.
    pub const BASE: Layer = Layer { tid: 0, sync: true };
    /// The upper layer: frames that update no reference.
    pub const UPPER: Layer = Layer { tid: 1, sync: true };
}

/// A VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// The first packet of a partition (S).
    pub start: bool,
    /// Partition index (PID).
    pub partition: u8,
    /// Not used as a reference (N).
    pub non_reference: bool,
    /// Picture id, 7 or 15 bits.
    pub picture_id: Option<u16>,
    /// Running index of base-layer frames.
    pub tl0_pic_idx: Option<u8>,
    /// Temporal layer and whether it is a sync frame.
    pub layer: Option<Layer>,
}

impl Descriptor {
    /// Parses the descriptor at the start of `payload`; returns it with its
    /// length, or `None` when the payload is too short or has nothing after
    /// the descriptor.
    pub fn parse(payload: &[u8]) -> Option<(Self, usize)> {
        let first = *payload.first()?;
        let mut d = Descriptor {
            start: first & 0x10 != 0,
            partition: first & 0x07,
            non_reference: first & 0x20 != 0,
            ..Self::default()
        };
        let mut len = 1;
        if first & 0x80 != 0 {
            let ext = *payload.get(1)?;
            len += 1;
            if ext & 0x80 != 0 {
                let b = *payload.get(len)?;
                if b & 0x80 != 0 {
                    let lo = *payload.get(len + 1)?;
                    d.picture_id = Some(u16::from(b & 0x7f) << 8 | u16::from(lo));
                    len += 2;
                } else {
                    d.picture_id = Some(u16::from(b));
                    len += 1;
                }
            }
            if ext & 0x40 != 0 {
                d.tl0_pic_idx = Some(*payload.get(len)?);
                len += 1;
            }
            if ext & 0x30 != 0 {
                let b = *payload.get(len)?;
                if ext & 0x20 != 0 {
                    d.layer = Some(Layer {
                        tid: b >> 6,
                        sync: b & 0x20 != 0,
                    });
                }
                len += 1;
            }
        }
        (payload.len() > len).then_some((d, len))
    }

    /// Writes the descriptor (15-bit picture ids).
    pub fn write(&self, out: &mut Vec<u8>) {
        let x = self.picture_id.is_some() || self.tl0_pic_idx.is_some() || self.layer.is_some();
        out.push(
            u8::from(x) << 7
                | u8::from(self.non_reference) << 5
                | u8::from(self.start) << 4
                | (self.partition & 0x07),
        );
        if !x {
            return;
        }
        out.push(
            u8::from(self.picture_id.is_some()) << 7
                | u8::from(self.tl0_pic_idx.is_some()) << 6
                | u8::from(self.layer.is_some()) << 5,
        );
        if let Some(id) = self.picture_id {
            out.push(0x80 | ((id >> 8) as u8 & 0x7f));
            out.push(id as u8);
        }
        if let Some(idx) = self.tl0_pic_idx {
            out.push(idx);
        }
        if let Some(l) = self.layer {
            out.push(l.tid << 6 | u8::from(l.sync) << 5);
        }
    }
}

/// Splits frames into RTP payloads with a full descriptor: a 15-bit
/// picture id, the base layer's running index and the temporal layer.
#[derive(Debug, Clone)]
pub struct Vp8Packetizer {
    picture_id: u16,
    tl0_pic_idx: u8,
}

impl Default for Vp8Packetizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Vp8Packetizer {
    /// Starts at a random picture id, as RFC 7741 asks.
    pub fn new() -> Self {
        Self {
            picture_id: rand::random::<u16>() & 0x7fff,
            tl0_pic_idx: rand::random(),
        }
    }

    /// The payloads of one frame, each at most `max_payload` bytes, sizes
    /// balanced (no small last packet).
    pub fn packetize(&mut self, frame: &[u8], layer: Layer, max_payload: usize) -> Vec<Vec<u8>> {
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        if layer.tid == 0 {
            self.tl0_pic_idx = self.tl0_pic_idx.wrapping_add(1);
        }
        let mut desc = Descriptor {
            start: true,
            partition: 0,
            non_reference: layer.tid > 0,
            picture_id: Some(self.picture_id),
            tl0_pic_idx: Some(self.tl0_pic_idx),
            layer: Some(layer),
        };
        let header = {
            let mut h = Vec::new();
            desc.write(&mut h);
            h.len()
        };
        let room = max_payload.saturating_sub(header).max(1);
        let count = frame.len().div_ceil(room).max(1);
        // The first `extra` packets carry one byte more than the rest.
        let (base, extra) = (frame.len() / count, frame.len() % count);
        let mut out = Vec::with_capacity(count);
        let mut at = 0;
        for i in 0..count {
            let len = base + usize::from(i < extra);
            let mut p = Vec::with_capacity(header + len);
            desc.write(&mut p);
            p.extend_from_slice(&frame[at..at + len]);
            at += len;
            out.push(p);
            desc.start = false;
        }
        out
    }
}

/// A whole compressed frame, ready for the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// The VP8 bitstream.
    pub data: Vec<u8>,
    /// The RTP timestamp (90 kHz) all its packets carried.
    pub rtp_timestamp: u32,
    /// A key frame.
    pub key: bool,
    /// Its temporal layer, when the sender said.
    pub layer: Option<Layer>,
}

/// What the frame buffer has for the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The next frame to decode.
    Frame(AssembledFrame),
    /// Frames are lost for good and nothing decodes until a key frame: ask
    /// the sender for one (PLI).
    NeedKeyFrame,
}

/// Counters of a frame buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Frames handed to the decoder.
    pub frames: u64,
    /// Upper-layer frames skipped (lost, and nothing needed them).
    pub skipped: u64,
    /// Base-layer frames given up on (a key frame was asked for).
    pub given_up: u64,
    /// Frames that completed only after a wait (a retransmission came).
    pub repaired: u64,
    /// Packets that came after their frame was done with.
    pub late: u64,
}

#[derive(Debug)]
struct Packet {
    timestamp: u32,
    marker: bool,
    desc: Descriptor,
    payload: Vec<u8>,
    /// The first byte of the VP8 header says key frame (P = 0), on a start.
    key: bool,
}

/// How long to wait at least and at most for a missing packet.
const MIN_WAIT: Duration = Duration::from_millis(80);
const MAX_WAIT: Duration = Duration::from_millis(650);
/// A missing packet is waited for two round trips, so that a lost
/// retransmission can be asked for again, and this: a first request waits
/// up to 40 ms on a path that reorders (`peer/nack.rs`), the sender answers
/// a packet once every half round trip, and a relayed packet waits for the next pass
/// of webrtc-rs's loop. Waiting longer buys nothing: a key frame asked for
/// then comes about as soon as a third round would.
const NACK_SLACK: Duration = Duration::from_millis(120);
/// A lost upper-layer frame is waited for a round trip and this, when that
/// comes to at most [`MAX_UPPER_WAIT`]; otherwise it is skipped at once.
const UPPER_SLACK: Duration = Duration::from_millis(60);
const MAX_UPPER_WAIT: Duration = Duration::from_millis(100);
/// How soon a key frame is asked for again while none comes: twice the
/// round trip and this, and not sooner than the minimum.
const REASK_SLACK: Duration = Duration::from_millis(150);
const REASK_MIN: Duration = Duration::from_millis(300);
/// Silence after which arriving packets count as a stream resuming.
const RESUMED_AFTER: Duration = Duration::from_millis(300);
/// Packets held at most (beyond, the oldest go).
const MAX_PACKETS: usize = 2000;

/// Frames of one VP8 stream, put back together and released in order.
#[derive(Debug)]
pub struct FrameBuffer {
    packets: BTreeMap<u64, Packet>,
    highest: Option<u64>,
    /// Where the next frame to release starts, once in sync.
    next: Option<u64>,
    /// Nothing decodes until a key frame (at the start, or after giving up).
    broken: bool,
    /// Base-layer index of the last base-layer frame released.
    last_tl0: Option<u8>,
    /// Since when the frame at `next` has been known to miss packets.
    stalled_since: Option<Instant>,
    /// When a key frame was last asked for while broken.
    asked_at: Option<Instant>,
    /// When the last packet came.
    last_arrival: Option<Instant>,
    rtt: Duration,
    out: VecDeque<Output>,
    stats: BufferStats,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    /// A buffer waiting for its first key frame.
    pub fn new() -> Self {
        Self {
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            broken: true,
            last_tl0: None,
            stalled_since: None,
            asked_at: None,
            last_arrival: None,
            rtt: Duration::from_millis(50),
            out: VecDeque::new(),
            stats: BufferStats::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> BufferStats {
        self.stats
    }

    /// The round trip to the sender, which sets how long a missing packet
    /// is waited for.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// How long a frame nothing needs is waited for: a round trip and
    /// a NACK interval, when that is short; else not at all.
    fn upper_patience(&self) -> Option<Duration> {
        let wait = self.rtt + UPPER_SLACK;
        (wait <= MAX_UPPER_WAIT).then_some(wait)
    }

    fn patience(&self) -> Duration {
        (self.rtt * 2 + NACK_SLACK).clamp(MIN_WAIT, MAX_WAIT)
    }

    /// Adds a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) {
        let Some((desc, header)) = Descriptor::parse(payload) else {
            // Garbage: as if it were lost.
            return;
        };
        // Packets again after a silence (an outage): a key frame asked for
        // meanwhile was probably lost with everything else; ask at once.
        if self
            .last_arrival
            .is_some_and(|at| now.duration_since(at) >= RESUMED_AFTER)
        {
            self.asked_at = None;
        }
        self.last_arrival = Some(now);
        let s = crate::rtp::extend_seq(self.highest, seq);
        if self.next.is_some_and(|n| s < n) {
            self.stats.late += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(s, |h| h.max(s)));
        let body = &payload[header..];
        let key = desc.start && desc.partition == 0 && body.first().is_some_and(|b| b & 1 == 0);
        self.packets.insert(
            s,
            Packet {
                timestamp,
                marker,
                desc,
                payload: body.to_vec(),
                key,
            },
        );
        while self.packets.len() > MAX_PACKETS {
            self.packets.pop_first();
            if let (Some(n), Some((&first, _))) = (self.next, self.packets.first_key_value()) {
                self.next = Some(n.max(first));
            }
        }
        self.release(now);
    }

    /// What is ready for the decoder at `now` (call it after every push and
    /// every few milliseconds: a wait can run out without a packet).
    pub fn poll(&mut self, now: Instant) -> Option<Output> {
        if self.out.is_empty() {
            self.release(now);
        }
        self.out.pop_front()
    }

    /// The first packet of the frame starting at or after `from` (a start
    /// of partition 0).
    fn next_start(&self, from: u64) -> Option<u64> {
        self.packets
            .range(from..)
            .find(|(_, p)| p.desc.start && p.desc.partition == 0)
            .map(|(&k, _)| k)
    }

    /// The last packet of the frame starting at `first`, if all of it is here.
    fn frame_end(&self, first: u64) -> Option<u64> {
        let head = self.packets.get(&first)?;
        if !(head.desc.start && head.desc.partition == 0) {
            return None;
        }
        for (expect, (&k, p)) in (first..).zip(self.packets.range(first..)) {
            if k != expect || p.timestamp != head.timestamp {
                return None;
            }
            if p.marker {
                return Some(k);
            }
        }
        None
    }

    /// Whether the frame starting at `start` decodes without what comes
    /// between the last released frame and it: a key frame, or (when the
    /// sender marks layers) a frame that needs only base-layer frames
    /// already released.
    fn independent(&self, start: u64) -> bool {
        let p = &self.packets[&start];
        if p.key {
            return true;
        }
        match (p.desc.tl0_pic_idx, p.desc.layer, self.last_tl0) {
            (Some(idx), Some(layer), Some(last)) if !self.broken => {
                if layer.tid == 0 {
                    idx == last.wrapping_add(1)
                } else {
                    idx == last && layer.sync
                }
            }
            _ => false,
        }
    }

    /// The latest start of a frame in the buffer.
    fn latest_start(&self) -> Option<u64> {
        self.packets
            .iter()
            .rev()
            .find(|(_, p)| p.desc.start && p.desc.partition == 0)
            .map(|(&k, _)| k)
    }

    /// Whether the packets from `first` on are all here so far (the frame
    /// may still be arriving), as opposed to some being missing.
    fn arriving(&self, first: u64) -> bool {
        self.packets.contains_key(&first)
            && (first..)
                .zip(self.packets.range(first..))
                .all(|(expect, (&k, _))| k == expect)
    }

    fn ask_for_key_frame(&mut self, now: Instant) {
        // Again if nothing came after about a round trip and a half: the
        // request, or the key frame, was probably lost.
        let again = (self.rtt * 2 + REASK_SLACK).max(REASK_MIN);
        let due = self
            .asked_at
            .is_none_or(|at| now.duration_since(at) >= again);
        if due {
            self.asked_at = Some(now);
            self.out.push_back(Output::NeedKeyFrame);
        }
    }

    fn release(&mut self, now: Instant) {
        loop {
            if self.broken {
                // Only a key frame helps: go to the latest one there is,
                // dropping everything before it.
                let key = self
                    .packets
                    .iter()
                    .rev()
                    .find(|(_, p)| p.key)
                    .map(|(&k, _)| k);
                let Some(k) = key else {
                    // A delta frame begins: what we have cannot decode.
                    let delta = self
                        .packets
                        .values()
                        .any(|p| p.desc.start && p.desc.partition == 0);
                    if delta {
                        self.ask_for_key_frame(now);
                    }
                    // Keep only the frame being received now.
                    if let Some(last) = self.latest_start() {
                        self.packets.retain(|&s, _| s >= last);
                    }
                    return;
                };
                if self.next != Some(k) {
                    self.packets.retain(|&s, _| s >= k);
                    self.next = Some(k);
                    self.stalled_since = None;
                }
            }
            let Some(first) = self.next.or_else(|| self.next_start(0)) else {
                return;
            };
            if let Some(end) = self.frame_end(first) {
                self.emit(first, end);
                continue;
            }
            // Nothing at or after `first` yet (the next frame has not
            // started coming), or what is there has no gap so far: nothing
            // is missing.
            if self.highest.is_none_or(|h| h < first) || self.arriving(first) {
                return;
            }
            // Packets of the frame at `first` are missing. A later frame
            // that does not need it: go on from there.
            let later = self
                .packets
                .range(first + 1..)
                .filter(|(_, p)| p.desc.start && p.desc.partition == 0)
                .map(|(&k, _)| k)
                .find(|&k| self.independent(k));
            if let Some(k) = later {
                let key = self.packets[&k].key;
                // On a short round trip the retransmission of an upper-layer
                // frame is worth a moment's wait (the frame is shown, not
                // dropped); on a long one it would hold up the frames after
                // it longer than a skipped frame shows.
                let since = *self.stalled_since.get_or_insert(now);
                if !key
                    && self
                        .upper_patience()
                        .is_some_and(|wait| now.duration_since(since) < wait)
                {
                    return;
                }
                self.packets.retain(|&s, _| s >= k);
                self.next = Some(k);
                self.stalled_since = None;
                if !key {
                    self.stats.skipped += 1;
                }
                continue;
            }
            let since = *self.stalled_since.get_or_insert(now);
            if now.duration_since(since) < self.patience() {
                return;
            }
            // Given up: the frames that follow cannot decode.
            self.stats.given_up += 1;
            self.stalled_since = None;
            self.broken = true;
            self.next = None;
            self.asked_at = None;
            self.ask_for_key_frame(now);
            return;
        }
    }

    fn emit(&mut self, first: u64, end: u64) {
        let head = &self.packets[&first];
        let (timestamp, key, layer, tl0) = (
            head.timestamp,
            head.key,
            head.desc.layer,
            head.desc.tl0_pic_idx,
        );
        let mut data = Vec::new();
        for s in first..=end {
            let p = self.packets.remove(&s).expect("the frame is contiguous");
            data.extend_from_slice(&p.payload);
        }
        self.next = Some(end + 1);
        if self.stalled_since.take().is_some() {
            self.stats.repaired += 1;
        }
        if self.broken && !key {
            // Undecodable (the key frame was jumped to; this cannot be).
            return;
        }
        self.broken = false;
        self.asked_at = None;
        if key || layer.is_none_or(|l| l.tid == 0) {
            self.last_tl0 = tl0;
        }
        self.stats.frames += 1;
        self.out.push_back(Output::Frame(AssembledFrame {
            data,
            rtp_timestamp: timestamp,
            key,
            layer,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn key_frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = vec![n; len];
        f[0] = 0x10; // P bit 0: key
        f
    }

    fn delta_frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = vec![n; len];
        f[0] = 0x11; // P bit 1: inter
        f
    }

    /// A sender: frames into packets with sequence numbers and timestamps.
    struct Sender {
        pack: Vp8Packetizer,
        seq: u16,
        ts: u32,
    }

    impl Sender {
        fn new() -> Self {
            Self {
                pack: Vp8Packetizer::new(),
                seq: 65_500,
                ts: 1000,
            }
        }

        /// (seq, timestamp, marker, payload) of each packet of one frame.
        fn frame(&mut self, data: &[u8], layer: Layer) -> Vec<(u16, u32, bool, Vec<u8>)> {
            self.ts = self.ts.wrapping_add(3000);
            let packets = self.pack.packetize(data, layer, 100);
            let n = packets.len();
            packets
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let s = self.seq;
                    self.seq = self.seq.wrapping_add(1);
                    (s, self.ts, i + 1 == n, p)
                })
                .collect()
        }
    }

    fn push_all(b: &mut FrameBuffer, now: Instant, packets: &[(u16, u32, bool, Vec<u8>)]) {
        for (s, t, m, p) in packets {
            b.push(now, *s, *t, *m, p);
        }
    }

    fn drain(b: &mut FrameBuffer, now: Instant) -> Vec<Output> {
        std::iter::from_fn(|| b.poll(now)).collect()
    }

    fn frames(out: &[Output]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Output::Frame(f) => Some(f.data[1]),
                Output::NeedKeyFrame => None,
            })
            .collect()
    }

    #[test]
    fn descriptors_round_trip() {
        for d in [
            Descriptor {
                start: true,
                ..Descriptor::default()
            },
            Descriptor {
                start: false,
                partition: 3,
                non_reference: true,
                picture_id: Some(0x1234),
                tl0_pic_idx: Some(200),
                layer: Some(Layer { tid: 1, sync: true }),
            },
        ] {
            let mut p = Vec::new();
            d.write(&mut p);
            let header = p.len();
            p.push(0xaa);
            assert_eq!(Descriptor::parse(&p), Some((d, header)));
        }
        // A 7-bit picture id and no layer, as other senders write it.
        let (d, len) = Descriptor::parse(&[0x90, 0x80, 0x12, 0xaa]).unwrap();
        assert_eq!((d.picture_id, d.layer, len), (Some(0x12), None, 3));
        assert_eq!(Descriptor::parse(&[]), None);
        assert_eq!(Descriptor::parse(&[0x90]), None, "nothing after it");
        assert_eq!(Descriptor::parse(&[0x90, 0x80]), None, "cut short");
    }

    #[test]
    fn packets_are_balanced_and_frames_come_back_in_order() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let now = Instant::now();
        let key = tx.frame(&key_frame(1, 350), Layer::BASE);
        let sizes: Vec<usize> = key.iter().map(|p| p.3.len()).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        assert!(sizes.iter().all(|&s| s <= 100));
        // Reordered within the frame.
        let mut shuffled = key.clone();
        shuffled.swap(0, 2);
        push_all(&mut rx, now, &shuffled);
        push_all(&mut rx, now, &tx.frame(&delta_frame(2, 250), Layer::UPPER));
        push_all(&mut rx, now, &tx.frame(&delta_frame(3, 250), Layer::BASE));
        let out = drain(&mut rx, now);
        assert_eq!(frames(&out), vec![1, 2, 3]);
        match &out[0] {
            Output::Frame(f) => assert!(f.key && f.data == key_frame(1, 350)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_is_released_before_the_first_key_frame() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let now = Instant::now();
        push_all(&mut rx, now, &tx.frame(&delta_frame(1, 50), Layer::BASE));
        assert_eq!(drain(&mut rx, now), vec![Output::NeedKeyFrame]);
        push_all(&mut rx, now, &tx.frame(&delta_frame(2, 50), Layer::BASE));
        push_all(&mut rx, now, &tx.frame(&key_frame(3, 50), Layer::BASE));
        push_all(&mut rx, now, &tx.frame(&delta_frame(4, 50), Layer::BASE));
        assert_eq!(frames(&drain(&mut rx, now)), vec![3, 4]);
    }

    #[test]
    fn a_retransmission_within_the_wait_repairs_the_frame() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let lossy = tx.frame(&delta_frame(2, 250), Layer::BASE);
        let after = tx.frame(&delta_frame(3, 250), Layer::BASE);
        push_all(&mut rx, t0, &[lossy[0].clone(), lossy[2].clone()]);
        push_all(&mut rx, t0 + ms(33), &after);
        assert_eq!(frames(&drain(&mut rx, t0 + ms(60))), vec![1], "waiting");
        // The NACKed packet comes back a round trip later.
        push_all(&mut rx, t0 + ms(120), &[lossy[1].clone()]);
        assert_eq!(frames(&drain(&mut rx, t0 + ms(120))), vec![2, 3]);
        assert_eq!(rx.stats().repaired, 1);
        // A copy of it, later still, changes nothing.
        push_all(&mut rx, t0 + ms(200), &[lossy[1].clone()]);
        assert_eq!(drain(&mut rx, t0 + ms(200)), vec![]);
        assert_eq!(rx.stats().late, 1);
    }

    #[test]
    fn the_wait_starts_when_a_packet_is_missed_not_when_the_frame_before_ended() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        rx.set_rtt(ms(40));
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        assert_eq!(frames(&drain(&mut rx, t0)), vec![1]);
        // The sender pauses a second (nothing is missing meanwhile), then
        // the next frame's first packet is lost.
        for t in (0..1000).step_by(10) {
            assert_eq!(drain(&mut rx, t0 + ms(t)), vec![]);
        }
        let next = tx.frame(&delta_frame(2, 250), Layer::BASE);
        push_all(&mut rx, t0 + ms(1000), &next[1..]);
        assert_eq!(drain(&mut rx, t0 + ms(1000)), vec![], "waits for it");
        push_all(&mut rx, t0 + ms(1090), &next[..1]);
        assert_eq!(frames(&drain(&mut rx, t0 + ms(1090))), vec![2]);
        assert_eq!(rx.stats().repaired, 1);
        assert_eq!(rx.stats().given_up, 0);
    }

    #[test]
    fn frames_that_come_whole_were_not_repaired() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let t0 = Instant::now();
        for n in 0..30u8 {
            let at = t0 + ms(u64::from(n) * 33);
            let layer = if n % 2 == 1 {
                Layer::UPPER
            } else {
                Layer::BASE
            };
            let data = if n == 0 {
                key_frame(n, 50)
            } else {
                delta_frame(n, 250)
            };
            // Polled between frames too, as the receive loop does.
            drain(&mut rx, at);
            push_all(&mut rx, at, &tx.frame(&data, layer));
            assert_eq!(frames(&drain(&mut rx, at)), vec![n]);
        }
        assert_eq!(rx.stats().repaired, 0);
    }

    #[test]
    fn a_lost_upper_layer_frame_is_waited_for_briefly_on_a_short_round_trip() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        rx.set_rtt(ms(10));
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let upper = tx.frame(&delta_frame(2, 250), Layer::UPPER);
        push_all(&mut rx, t0, &upper[..1]);
        push_all(&mut rx, t0, &tx.frame(&delta_frame(3, 250), Layer::BASE));
        assert_eq!(frames(&drain(&mut rx, t0 + ms(40))), vec![1], "waiting");
        // The retransmission comes: the frame is shown.
        push_all(&mut rx, t0 + ms(50), &upper[1..]);
        assert_eq!(frames(&drain(&mut rx, t0 + ms(50))), vec![2, 3]);
        // Lost again, and not retransmitted: skipped after the short wait.
        let lost = tx.frame(&delta_frame(4, 250), Layer::UPPER);
        push_all(&mut rx, t0 + ms(66), &lost[..1]);
        push_all(
            &mut rx,
            t0 + ms(99),
            &tx.frame(&delta_frame(5, 50), Layer::BASE),
        );
        assert_eq!(frames(&drain(&mut rx, t0 + ms(150))), Vec::<u8>::new());
        let out = drain(&mut rx, t0 + ms(170));
        assert_eq!(frames(&out), vec![5]);
        assert!(!out.contains(&Output::NeedKeyFrame));
        assert_eq!(rx.stats().skipped, 1);
    }

    #[test]
    fn a_lost_upper_layer_frame_is_skipped_without_waiting_on_a_long_round_trip() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        rx.set_rtt(ms(200));
        let now = Instant::now();
        push_all(&mut rx, now, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let upper = tx.frame(&delta_frame(2, 250), Layer::UPPER);
        push_all(&mut rx, now, &upper[..1]);
        push_all(&mut rx, now, &tx.frame(&delta_frame(3, 250), Layer::BASE));
        push_all(&mut rx, now, &tx.frame(&delta_frame(4, 50), Layer::UPPER));
        let out = drain(&mut rx, now);
        assert_eq!(frames(&out), vec![1, 3, 4], "no wait, no key frame");
        assert!(!out.contains(&Output::NeedKeyFrame));
        assert_eq!(rx.stats().skipped, 1);
    }

    #[test]
    fn a_base_frame_lost_for_good_asks_for_a_key_frame_once_the_wait_is_over() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        rx.set_rtt(ms(40));
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let base = tx.frame(&delta_frame(2, 250), Layer::BASE);
        push_all(&mut rx, t0, &base[1..]);
        push_all(&mut rx, t0, &tx.frame(&delta_frame(3, 50), Layer::UPPER));
        push_all(&mut rx, t0, &tx.frame(&delta_frame(4, 50), Layer::BASE));
        assert_eq!(frames(&drain(&mut rx, t0)), vec![1]);
        // A first retransmission would have come by now; a second one,
        // asked for when the first did not come, may still.
        assert_eq!(drain(&mut rx, t0 + ms(150)), vec![], "still waiting");
        assert_eq!(drain(&mut rx, t0 + ms(210)), vec![Output::NeedKeyFrame]);
        // Deltas until then are dropped; the key frame starts over.
        push_all(
            &mut rx,
            t0 + ms(220),
            &tx.frame(&delta_frame(5, 50), Layer::UPPER),
        );
        assert_eq!(frames(&drain(&mut rx, t0 + ms(220))), Vec::<u8>::new());
        push_all(
            &mut rx,
            t0 + ms(250),
            &tx.frame(&key_frame(6, 50), Layer::BASE),
        );
        push_all(
            &mut rx,
            t0 + ms(283),
            &tx.frame(&delta_frame(7, 50), Layer::UPPER),
        );
        assert_eq!(frames(&drain(&mut rx, t0 + ms(283))), vec![6, 7]);
        assert_eq!(rx.stats().given_up, 1);
    }

    #[test]
    fn packets_resuming_after_an_outage_ask_for_a_key_frame_at_once() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let lost = tx.frame(&delta_frame(2, 250), Layer::BASE);
        push_all(&mut rx, t0, &lost[1..]);
        assert_eq!(frames(&drain(&mut rx, t0)), vec![1]);
        assert_eq!(drain(&mut rx, t0 + MAX_WAIT), vec![Output::NeedKeyFrame]);
        // The request went out into the outage. Half a second later, packets:
        push_all(
            &mut rx,
            t0 + ms(800),
            &tx.frame(&delta_frame(3, 50), Layer::BASE),
        );
        assert_eq!(
            drain(&mut rx, t0 + ms(800)),
            vec![Output::NeedKeyFrame],
            "asked again without waiting out the second"
        );
        push_all(
            &mut rx,
            t0 + ms(820),
            &tx.frame(&delta_frame(4, 50), Layer::UPPER),
        );
        assert_eq!(
            drain(&mut rx, t0 + ms(820)),
            vec![],
            "but not for every packet"
        );
    }

    #[test]
    fn a_later_key_frame_ends_the_wait_at_once() {
        let mut tx = Sender::new();
        let mut rx = FrameBuffer::new();
        let t0 = Instant::now();
        push_all(&mut rx, t0, &tx.frame(&key_frame(1, 50), Layer::BASE));
        let base = tx.frame(&delta_frame(2, 250), Layer::BASE);
        push_all(&mut rx, t0, &base[1..]);
        push_all(&mut rx, t0, &tx.frame(&key_frame(3, 50), Layer::BASE));
        assert_eq!(frames(&drain(&mut rx, t0)), vec![1, 3]);
    }

    #[test]
    fn streams_without_layers_wait_then_give_up() {
        // Another sender's descriptor: a start bit and nothing else.
        let mut rx = FrameBuffer::new();
        let t0 = Instant::now();
        let plain = |first: bool, data: &[u8]| {
            let mut p = vec![if first { 0x10 } else { 0x00 }];
            p.extend_from_slice(data);
            p
        };
        rx.push(t0, 1, 10, true, &plain(true, &key_frame(1, 20)));
        rx.push(t0, 2, 20, false, &plain(true, &delta_frame(2, 20)));
        rx.push(t0, 4, 30, true, &plain(true, &delta_frame(3, 20)));
        assert_eq!(frames(&drain(&mut rx, t0)), vec![1]);
        let out = drain(&mut rx, t0 + MAX_WAIT);
        assert_eq!(out, vec![Output::NeedKeyFrame]);
    }

    #[test]
    fn garbage_and_floods_do_not_grow_it() {
        let mut rx = FrameBuffer::new();
        let now = Instant::now();
        rx.push(now, 1, 1, true, &[]);
        rx.push(now, 2, 1, true, &[0x80]);
        for s in 0..5000u32 {
            rx.push(now, s as u16, s, false, &[0x00, 1, 2]);
        }
        assert!(rx.packets.len() <= MAX_PACKETS);
        let _ = drain(&mut rx, now + Duration::from_secs(1));
    }
}
