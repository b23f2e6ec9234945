//! Two small pieces webrtc-rs 0.21 leaves to the application: an
//! interceptor that hands inbound RTCP feedback (PLI, FIR, receiver
//! reports) to the sending track, and a wrapper around the GCC bandwidth
//! estimator that publishes its target.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, BandwidthEstimator, EstimatorStats, Gcc, Interceptor, Packet as IPacket,
    PacketReport, StreamInfo, TaggedPacket,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::sansio::Protocol;

use crate::peer::governor::Governor;

/// Marks key-frame requests and receiver reports for delivery to the
/// application; without it they stop inside the interceptor chain.
#[derive(Default)]
pub(crate) struct FeedbackTap {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl std::fmt::Debug for FeedbackTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedbackTap")
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let IPacket::Rtcp(packets) = &msg.message.packet {
            let wanted = packets.iter().any(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>()
                    || any.is::<FullIntraRequest>()
                    || any.is::<ReceiverReport>()
            });
            if wanted {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.reads.push_back(msg);
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
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Takes the pacer's place: it lets everything through at once, but keeps
/// retransmissions within a share of the estimated path rate. A NACK answered
/// without limit turns congestion into more congestion: under a cap, the
/// packets the queue dropped came back as retransmissions on top of the new
/// ones, and the call sent three times what the link carried.
///
/// A packet is also sent again at most once every half round trip. The
/// receiver asks again about once a round trip while a packet is missing (`peer/nack.rs`);
/// requests that come much sooner after a retransmission were sent before
/// it could arrive, and answering them spent the budget on copies of
/// one packet while the next lost one went unanswered.
pub(crate) struct RetransmitBudget {
    target_bps: Arc<AtomicU64>,
    /// The round trip, microseconds (0 until a report measured it).
    rtt_us: Arc<AtomicU64>,
    /// When each packet (SSRC, sequence number) was last sent again.
    resent: HashMap<(u32, u16), Instant>,
    /// Requests for a packet already on its way again.
    repeats: u64,
    /// Bits of retransmission allowed now.
    tokens: f64,
    last: Option<Instant>,
    /// First transmissions of the last second: when, how many bytes.
    sent: VecDeque<(Instant, usize)>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
    dropped: u64,
}

/// The share of the estimate retransmissions may take, and at least this
/// much (a lossy path at a low rate still needs its repairs).
const RTX_SHARE: f64 = 0.35;
const RTX_FLOOR_BPS: f64 = 50_000.0;
/// Where GCC's own estimate starts (see [`ReportingGcc::new`]).
const GCC_START_BPS: f64 = 2_500_000.0;
/// Loss up to this share, without a queue, does not lower the estimate.
const RANDOM_LOSS_TOLERATED: f64 = 0.25;
/// How much of it may be spent at once: this long's worth. A burst of
/// four or five lost packets is asked for in one request, and at 0.2 s
/// (three packets at 400 kbit/s) the rest waited 60 to 120 ms for tokens.
const RTX_BURST_SECS: f64 = 0.4;
/// The least and most time between two retransmissions of one packet (half
/// the round trip, within these), and what is assumed before a report
/// measured the round trip. Half, not all of it: the receiver asks again a
/// round trip after it asked, and on a path with jitter its requests come
/// closer together than that about half the time; a gap of a whole round
/// trip then ignored the second request, and the frame was given up.
const MIN_RESEND_GAP: Duration = Duration::from_millis(10);
const MAX_RESEND_GAP: Duration = Duration::from_millis(250);
const UNMEASURED_RESEND_GAP: Duration = Duration::from_millis(50);
/// Retransmissions remembered at most before old ones are forgotten.
const RESENT_KEPT: usize = 512;

impl RetransmitBudget {
    pub(crate) fn new(target_bps: Arc<AtomicU64>, rtt_us: Arc<AtomicU64>) -> Self {
        Self {
            target_bps,
            rtt_us,
            resent: HashMap::new(),
            repeats: 0,
            tokens: 0.0,
            last: None,
            sent: VecDeque::new(),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Notes a first transmission of `bytes` at `now`.
    fn sent(&mut self, now: Instant, bytes: usize) {
        self.sent.push_back((now, bytes));
        while self
            .sent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(1))
        {
            self.sent.pop_front();
        }
    }

    /// Whether packet `seq` of `ssrc` was sent again less than half a round
    /// trip before `now`; if not, notes that it is being sent again now.
    fn repeat(&mut self, now: Instant, ssrc: u32, seq: u16) -> bool {
        let rtt = self.rtt_us.load(Ordering::Relaxed);
        let gap = if rtt == 0 {
            UNMEASURED_RESEND_GAP
        } else {
            (Duration::from_micros(rtt) / 2).clamp(MIN_RESEND_GAP, MAX_RESEND_GAP)
        };
        if self
            .resent
            .get(&(ssrc, seq))
            .is_some_and(|&at| now.saturating_duration_since(at) < gap)
        {
            self.repeats += 1;
            return true;
        }
        if self.resent.len() >= RESENT_KEPT {
            self.resent
                .retain(|_, at| now.saturating_duration_since(*at) < MAX_RESEND_GAP);
        }
        self.resent.insert((ssrc, seq), now);
        false
    }

    /// Whether a retransmission of `bytes` fits the budget at `now`: a
    /// share of what is sent (or of the estimate, if that is less).
    fn allow(&mut self, now: Instant, bytes: usize) -> bool {
        let sending = self.sent.iter().map(|s| s.1).sum::<usize>() as f64 * 8.0;
        let estimate = f64::from_bits(self.target_bps.load(Ordering::Relaxed));
        let rate = (estimate.min(sending) * RTX_SHARE).max(RTX_FLOOR_BPS);
        let elapsed = self
            .last
            .map_or(RTX_BURST_SECS, |t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * rate).min(rate * RTX_BURST_SECS);
        let bits = bytes as f64 * 8.0;
        if self.tokens >= bits {
            self.tokens -= bits;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

impl std::fmt::Debug for RetransmitBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetransmitBudget")
            .field("dropped", &self.dropped)
            .field("repeats", &self.repeats)
            .finish()
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RetransmitBudget {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let IPacket::Rtp(rtp) = &msg.message.packet {
            let bytes = rtp.payload.len() + 12;
            if !msg.message.has(&Attribute::Retransmission) {
                self.sent(msg.now, bytes);
            } else if self.repeat(msg.now, rtp.header.ssrc, rtp.header.sequence_number)
                || !self.allow(msg.now, bytes)
            {
                tracing::trace!(seq = rtp.header.sequence_number, "retransmission held back");
                return Ok(());
            } else {
                tracing::trace!(seq = rtp.header.sequence_number, "retransmitting");
            }
        }
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for RetransmitBudget {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// GCC, held to what the path showed it carries (see [`Governor`]),
/// publishing its target bitrate (bit/s, as f64 bits) after each update.
pub(crate) struct ReportingGcc {
    inner: Gcc,
    governor: Governor,
    limit: f64,
    target_bps: Arc<AtomicU64>,
    congested: Arc<AtomicBool>,
}

impl std::fmt::Debug for ReportingGcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingGcc")
            .field("gcc_bps", &self.inner.target_bitrate())
            .field("limit_bps", &self.limit)
            .finish()
    }
}

impl ReportingGcc {
    /// Starting at `start_bps` within [`min_bps`, `max_bps`]. GCC itself
    /// starts at the top, so that the governor, climbing fast while no
    /// queue shows, finds a fast path's rate in seconds (GCC alone climbs
    /// 8 % a second).
    pub(crate) fn new(
        start_bps: f64,
        min_bps: f64,
        max_bps: f64,
        target_bps: Arc<AtomicU64>,
        congested: Arc<AtomicBool>,
    ) -> Self {
        target_bps.store(start_bps.to_bits(), Ordering::Relaxed);
        Self {
            inner: Gcc::new(GCC_START_BPS.min(max_bps), min_bps, max_bps),
            governor: Governor::new(start_bps, Instant::now()),
            limit: start_bps,
            target_bps,
            congested,
        }
    }

    fn publish(&self) {
        self.target_bps
            .store(self.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl BandwidthEstimator for ReportingGcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        for r in reports {
            let arrival = if r.arrived { r.arrival } else { None };
            self.governor.on_packet(r.departure, arrival, r.size);
        }
        self.limit = self.governor.update(now);
        self.congested
            .store(self.governor.congested(now), Ordering::Relaxed);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        // GCC cuts the rate above 10 % loss, as if every loss were
        // congestion. Loss that comes without a queue is the path's own
        // (radio, a bad cable), and sending less does not cure it; the
        // governor still cuts when a queue shows. Only heavy loss is taken
        // as a sign of congestion on its own.
        let s = self.inner.stats();
        let gcc = match (s.packet_loss, s.delay_based_bitrate) {
            (Some(loss), Some(delay_based)) if loss < RANDOM_LOSS_TOLERATED => delay_based,
            _ => self.inner.target_bitrate(),
        };
        gcc.min(self.limit)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_stay_within_a_share_of_the_estimate() {
        let target = Arc::new(AtomicU64::new(400_000f64.to_bits()));
        let mut b = RetransmitBudget::new(target, Arc::default());
        let t0 = Instant::now();
        // Sending 800 kbit/s of media (1000 bytes every 10 ms), and asked
        // for 1200-byte retransmissions as fast as 1 ms apart, for 2 s.
        let mut sent = 0;
        for i in 0..2000u64 {
            let now = t0 + Duration::from_millis(i);
            if i % 10 == 0 {
                b.sent(now, 1000);
            }
            sent += usize::from(b.allow(now, 1200));
        }
        let bits = sent as f64 * 1200.0 * 8.0;
        // 35 % of the 400 kbit/s estimate (less than what is sent): 140
        // kbit/s for 2 s, plus the first burst.
        assert!(bits <= 140_000.0 * 2.0 + 28_000.0 + 9600.0, "{bits}");
        assert!(bits >= 140_000.0 * 1.7, "{bits}");
    }

    fn rtp(seq: u16, now: Instant, again: bool) -> TaggedPacket {
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                ssrc: 7,
                sequence_number: seq,
                ..Default::default()
            },
            payload: vec![0u8; 1000].into(),
        };
        let mut message = rtc::interceptor::AttributedPacket::new(IPacket::Rtp(packet));
        if again {
            message.add(Attribute::Retransmission);
        }
        TaggedPacket {
            now,
            transport: Default::default(),
            message,
        }
    }

    #[test]
    fn a_packet_is_sent_again_once_a_round_trip() {
        let target = Arc::new(AtomicU64::new(2_000_000f64.to_bits()));
        let rtt = Arc::new(AtomicU64::new(200_000));
        let mut b = RetransmitBudget::new(target, rtt);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // 400 kbit/s of media: plenty of budget.
        for i in 0..100u16 {
            b.handle_write(rtp(i, ms(u64::from(i) * 20), false))
                .unwrap();
        }
        while b.poll_write().is_some() {}
        // Packets 50 and 51 are asked for every 50 ms for 600 ms.
        let mut resent = Vec::new();
        for k in 0..12u64 {
            let now = ms(2000 + k * 50);
            for seq in [50, 51] {
                b.handle_write(rtp(seq, now, true)).unwrap();
            }
            while let Some(p) = b.poll_write() {
                if let IPacket::Rtp(r) = p.message.packet {
                    resent.push((k * 50, r.header.sequence_number));
                }
            }
        }
        // Once every half round trip (100 ms) each, not twelve times.
        let at = |seq| -> Vec<u64> { resent.iter().filter(|r| r.1 == seq).map(|r| r.0).collect() };
        assert_eq!(at(50), [0, 100, 200, 300, 400, 500]);
        assert_eq!(at(51), [0, 100, 200, 300, 400, 500]);
    }

    #[test]
    fn retransmissions_follow_what_is_sent_when_that_is_less_than_the_estimate() {
        let target = Arc::new(AtomicU64::new(2_000_000f64.to_bits()));
        let mut b = RetransmitBudget::new(target, Arc::default());
        let t0 = Instant::now();
        let mut sent = 0;
        // 300 kbit/s of media against a 2 Mbit/s estimate.
        for i in 0..3000u64 {
            let now = t0 + Duration::from_millis(i);
            if i % 20 == 0 {
                b.sent(now, 750);
            }
            sent += usize::from(b.allow(now, 1200));
        }
        let bps = sent as f64 * 1200.0 * 8.0 / 3.0;
        assert!(bps < 300_000.0 * 0.35 * 1.15, "{bps}");
    }
}
