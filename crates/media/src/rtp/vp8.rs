//! Reassembles VP8 frames from RTP packets (RFC 7741 payload descriptors),
//! and notices loss so the receiver can ask for a key frame.

use std::collections::BTreeMap;

/// A whole compressed frame, ready for the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// The VP8 bitstream.
    pub data: Vec<u8>,
    /// The RTP timestamp (90 kHz) all its packets carried.
    pub rtp_timestamp: u32,
    /// A key frame.
    pub key: bool,
}

/// What a packet did to the assembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// Waiting for more packets.
    Pending,
    /// A frame is complete.
    Frame(AssembledFrame),
    /// Packets were lost (or garbage arrived); frames are being dropped until
    /// the next key frame. Ask the sender for one (PLI).
    NeedKeyFrame,
}

/// Parses the VP8 payload descriptor; returns (start of a partition 0,
/// header length).
fn descriptor(payload: &[u8]) -> Option<(bool, usize)> {
    let first = *payload.first()?;
    let x = first & 0x80 != 0;
    let s = first & 0x10 != 0;
    let pid = first & 0x07;
    let mut len = 1;
    if x {
        let ext = *payload.get(1)?;
        len += 1;
        if ext & 0x80 != 0 {
            // Picture id: 7 or 15 bits.
            let m = *payload.get(len)? & 0x80 != 0;
            len += if m { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            len += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            len += 1; // TID/Y/KEYIDX
        }
    }
    (payload.len() > len).then_some((s && pid == 0, len))
}

/// Collects the packets of each frame in sequence order.
#[derive(Debug, Default)]
pub struct Vp8Assembler {
    /// Unwrapped sequence number → (timestamp, marker, start, payload).
    packets: BTreeMap<u64, (u32, bool, bool, Vec<u8>)>,
    highest: Option<u64>,
    /// The sequence number the next frame must start at, once in sync.
    next: Option<u64>,
    /// Waiting for a key frame before anything can be decoded.
    need_key: bool,
    /// A complete frame was dropped while waiting for a key frame.
    dropped_for_key: bool,
    frames: u64,
    lost: u64,
}

impl Vp8Assembler {
    /// An assembler that waits for a key frame first.
    pub fn new() -> Self {
        Self {
            need_key: true,
            ..Self::default()
        }
    }

    /// Frames completed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Gaps noticed so far.
    pub fn losses(&self) -> u64 {
        self.lost
    }

    /// Adds one RTP packet's payload.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Assembled {
        let Some((start, header)) = descriptor(payload) else {
            return self.lose();
        };
        let s = crate::rtp::extend_seq(self.highest, seq);
        if self.next.is_some_and(|n| s < n) {
            return Assembled::Pending; // late duplicate of something done
        }
        self.highest = Some(self.highest.map_or(s, |h| h.max(s)));
        self.packets
            .insert(s, (timestamp, marker, start, payload[header..].to_vec()));
        // Bound memory when a frame never completes.
        while self.packets.len() > 2000 {
            self.packets.pop_first();
        }
        match self.try_complete() {
            // Frames arrive that cannot be decoded (we joined mid-stream, or
            // the key frame was lost): ask for one.
            Assembled::Pending if std::mem::take(&mut self.dropped_for_key) => {
                Assembled::NeedKeyFrame
            }
            other => other,
        }
    }

    fn lose(&mut self) -> Assembled {
        self.lost += 1;
        self.need_key = true;
        Assembled::NeedKeyFrame
    }

    /// Looks for a complete frame: a start packet, then consecutive packets
    /// of the same timestamp up to one with the marker bit. A later frame
    /// completing while an earlier one cannot means packets were lost.
    fn try_complete(&mut self) -> Assembled {
        let Some((&first, &(_, _, start, _))) = self.packets.first_key_value() else {
            return Assembled::Pending;
        };
        let in_order = self.next.is_none_or(|n| n == first);
        if in_order
            && start
            && let Some(end) = self.run_end(first)
        {
            return match self.emit(first, end) {
                // Dropped while waiting for a key frame: maybe one is next.
                Assembled::Pending => self.try_complete(),
                done => done,
            };
        }
        match self.complete_run_from_any_start() {
            Some(s) if s != first || !in_order => {
                self.packets.retain(|&k, _| k >= s);
                self.next = Some(s);
                self.lost += 1;
                self.need_key = true;
                match self.try_complete() {
                    Assembled::Frame(f) => Assembled::Frame(f),
                    _ => Assembled::NeedKeyFrame,
                }
            }
            _ => Assembled::Pending,
        }
    }

    /// The last packet of the frame starting at `first`, if all of it is here.
    fn run_end(&self, first: u64) -> Option<u64> {
        let ts = self.packets.get(&first)?.0;
        for (expect, (&k, (t, marker, _, _))) in (first..).zip(self.packets.range(first..)) {
            if k != expect || *t != ts {
                return None;
            }
            if *marker {
                return Some(k);
            }
        }
        None
    }

    fn emit(&mut self, first: u64, end: u64) -> Assembled {
        let ts = self.packets[&first].0;
        let mut data = Vec::new();
        for k in first..=end {
            let (_, _, _, p) = self.packets.remove(&k).expect("run is contiguous");
            data.extend_from_slice(&p);
        }
        self.next = Some(end + 1);
        // In a key frame the first byte's lowest bit (P) is 0.
        let key = data.first().is_some_and(|b| b & 0x01 == 0);
        if self.need_key && !key {
            self.dropped_for_key = true;
            return Assembled::Pending;
        }
        self.need_key = false;
        self.frames += 1;
        Assembled::Frame(AssembledFrame {
            data,
            rtp_timestamp: ts,
            key,
        })
    }

    /// The first complete run starting at a start packet anywhere in the
    /// buffer, if there is one.
    fn complete_run_from_any_start(&self) -> Option<u64> {
        let mut run_start: Option<(u64, u32)> = None;
        let mut expect = 0;
        for (&k, (t, marker, start, _)) in &self.packets {
            if *start {
                run_start = Some((k, *t));
                expect = k;
            }
            if let Some((s, ts)) = run_start {
                if k != expect || *t != ts {
                    run_start = None;
                    continue;
                }
                if *marker {
                    return Some(s);
                }
                expect += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a frame into RTP payloads with a minimal descriptor.
    fn packetize(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        frame
            .chunks(mtu)
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                p
            })
            .collect()
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

    fn feed(a: &mut Vp8Assembler, seq: &mut u16, ts: u32, frame: &[u8]) -> Vec<Assembled> {
        let packets = packetize(frame, 100);
        let n = packets.len();
        packets
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let r = a.push(*seq, ts, i + 1 == n, &p);
                *seq = seq.wrapping_add(1);
                r
            })
            .collect()
    }

    #[test]
    fn frames_are_put_back_together_in_order() {
        let mut a = Vp8Assembler::new();
        let mut seq = 65530;
        let key = key_frame(1, 350);
        let out = feed(&mut a, &mut seq, 1000, &key);
        assert_eq!(
            out.last(),
            Some(&Assembled::Frame(AssembledFrame {
                data: key.clone(),
                rtp_timestamp: 1000,
                key: true
            }))
        );
        let delta = delta_frame(2, 250);
        let out = feed(&mut a, &mut seq, 4000, &delta);
        assert!(matches!(out.last(), Some(Assembled::Frame(f)) if f.data == delta && !f.key));
        assert_eq!(a.frames(), 2);
    }

    #[test]
    fn reordered_packets_still_make_the_frame() {
        let mut a = Vp8Assembler::new();
        let key = key_frame(1, 300);
        let p = packetize(&key, 100);
        assert_eq!(a.push(11, 9, false, &p[1]), Assembled::Pending);
        assert_eq!(a.push(10, 9, false, &p[0]), Assembled::Pending);
        assert!(matches!(a.push(12, 9, true, &p[2]), Assembled::Frame(f) if f.data == key));
    }

    #[test]
    fn nothing_is_decoded_before_the_first_key_frame() {
        let mut a = Vp8Assembler::new();
        let mut seq = 0;
        let out = feed(&mut a, &mut seq, 1, &delta_frame(1, 50));
        assert_eq!(out, vec![Assembled::NeedKeyFrame], "and asks for one");
        let out = feed(&mut a, &mut seq, 2, &key_frame(2, 50));
        assert!(matches!(out[0], Assembled::Frame(_)));
    }

    #[test]
    fn a_lost_packet_asks_for_a_key_frame_and_drops_deltas_until_then() {
        let mut a = Vp8Assembler::new();
        let mut seq = 100;
        feed(&mut a, &mut seq, 1, &key_frame(1, 50));
        // A delta frame whose middle packet is lost.
        let p = packetize(&delta_frame(2, 250), 100);
        a.push(seq, 2, false, &p[0]);
        a.push(seq + 2, 2, true, &p[2]);
        seq += 3;
        // The next delta completes: the hole is now certain loss.
        let out = feed(&mut a, &mut seq, 3, &delta_frame(3, 50));
        assert_eq!(out, vec![Assembled::NeedKeyFrame]);
        assert_eq!(
            feed(&mut a, &mut seq, 4, &delta_frame(4, 50)),
            vec![Assembled::NeedKeyFrame]
        );
        let out = feed(&mut a, &mut seq, 5, &key_frame(5, 50));
        assert!(matches!(&out[0], Assembled::Frame(f) if f.key));
        assert_eq!(a.losses(), 1);
    }

    #[test]
    fn garbage_payloads_are_loss_not_a_crash() {
        let mut a = Vp8Assembler::new();
        assert_eq!(a.push(1, 1, true, &[]), Assembled::NeedKeyFrame);
        assert_eq!(a.push(2, 1, true, &[0x80]), Assembled::NeedKeyFrame);
        assert_eq!(a.push(3, 1, true, &[0x90, 0x80]), Assembled::NeedKeyFrame);
    }

    #[test]
    fn extended_descriptors_are_skipped() {
        let mut a = Vp8Assembler::new();
        let key = key_frame(7, 40);
        // X=1, S=1; I=1 with a 15-bit picture id, L=1, T=1.
        let mut p = vec![0x90, 0xe0, 0x80 | 0x12, 0x34, 0x05, 0x20];
        p.extend_from_slice(&key);
        assert!(matches!(a.push(1, 1, true, &p), Assembled::Frame(f) if f.data == key));
    }
}
