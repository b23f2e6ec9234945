//! A check on the bandwidth estimate from what the path actually did.
//!
//! webrtc-rs's GCC reacts late to a queue building up at a bottleneck (a
//! capped uplink with a quarter second of buffer filled before it backed
//! off, and the call froze for seconds), and its estimate climbs far above
//! what is being sent when the encoder sends less than it may. From the
//! same transport-wide feedback GCC reads, this keeps two figures: how
//! much of what was sent arrived (the delivered rate) and how much longer
//! even the fastest of the last 200 ms' packets took than the fastest of
//! the last seconds (the queue; jitter delays some packets, a queue all). The
//! estimate used is GCC's, but never more than the path showed it carries:
//!
//! - while the queue is longer than [`QUEUE_LIMIT`], the limit drops to 85 %
//!   of the delivered rate (every 150 ms while it lasts), and does not climb
//!   for a moment after;
//! - otherwise it climbs by [`CLIMB_PER_SEC`] a second (four times that in
//!   the first seconds of a call), and never beyond half again what was
//!   delivered (no more than that is known to fit).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A queue this much longer than the path's fastest trip means the
/// bottleneck is full.
pub(crate) const QUEUE_LIMIT: Duration = Duration::from_millis(50);
/// After backing off, no climbing for this long.
const HOLD: Duration = Duration::from_millis(600);
/// Cuts at most this often, so each is measured before the next.
const DECREASE_EVERY: Duration = Duration::from_millis(150);
/// Relative climb per second when nothing is queuing, and in the first
/// seconds of a call (finding the path's rate fast, as a browser probes).
pub(crate) const CLIMB_PER_SEC: f64 = 0.15;
const START_CLIMB_PER_SEC: f64 = 0.6;
const START_UP: Duration = Duration::from_secs(6);
/// The delivered rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_millis(600);
/// How recent the packets are whose fastest trip shows the queue.
const RECENT: Duration = Duration::from_millis(200);
/// The fastest trip is the shortest of this window.
const BASE_WINDOW: Duration = Duration::from_secs(8);
/// Never below this: audio and a trickle of video always fit.
const FLOOR_BPS: f64 = 100_000.0;

/// The delivered rate and the queue, from per-packet feedback.
#[derive(Debug)]
pub(crate) struct Governor {
    /// Arrived packets: when they left, their size.
    delivered: VecDeque<(Instant, usize)>,
    /// One-way delays (µs, the receiver's clock less ours): when they
    /// left, how long they took. Only relative values matter.
    delays: VecDeque<(Instant, i64)>,
    limit: f64,
    held_until: Option<Instant>,
    decreased_at: Option<Instant>,
    last: Option<Instant>,
    /// The queue of the latest feedback.
    queue: Duration,
    epoch: Instant,
}

impl Governor {
    /// Starting from `start_bps`, with `now` as the zero of its clock.
    pub(crate) fn new(start_bps: f64, now: Instant) -> Self {
        Self {
            delivered: VecDeque::new(),
            delays: VecDeque::new(),
            limit: start_bps,
            held_until: None,
            decreased_at: None,
            last: None,
            queue: Duration::ZERO,
            epoch: now,
        }
    }

    /// Whether the path is congested now: a queue shows, or it showed a
    /// moment ago.
    pub(crate) fn congested(&self, now: Instant) -> bool {
        self.queue > QUEUE_LIMIT || self.held_until.is_some_and(|t| now < t)
    }

    /// One packet's fate: when it left, whether and when (on the
    /// receiver's clock) it arrived, its size.
    pub(crate) fn on_packet(&mut self, departure: Instant, arrival: Option<Duration>, size: usize) {
        let Some(arrival) = arrival else { return };
        self.delivered.push_back((departure, size));
        let sent = departure.saturating_duration_since(self.epoch).as_micros() as i64;
        self.delays
            .push_back((departure, arrival.as_micros() as i64 - sent));
    }

    /// After a round of feedback at `now`: the limit on the estimate.
    pub(crate) fn update(&mut self, now: Instant) -> f64 {
        while self
            .delivered
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.delivered.pop_front();
        }
        while self
            .delays
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > BASE_WINDOW)
        {
            self.delays.pop_front();
        }
        let dt = self
            .last
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last = Some(now);
        let Some(&(newest, _)) = self.delays.back() else {
            return self.limit;
        };
        // A queue shows as every recent packet being slow, where jitter
        // makes only some slow: compare the fastest of the last 200 ms with
        // the fastest of the last seconds.
        let recent = self
            .delays
            .iter()
            .filter(|(t, _)| newest.saturating_duration_since(*t) <= RECENT)
            .map(|d| d.1)
            .min()
            .unwrap_or(0);
        let base = self.delays.iter().map(|d| d.1).min().unwrap_or(recent);
        self.queue = Duration::from_micros((recent - base).max(0) as u64);
        let span = self
            .delivered
            .front()
            .zip(self.delivered.back())
            .map_or(0.0, |(a, b)| {
                b.0.saturating_duration_since(a.0).as_secs_f64()
            });
        let bytes: usize = self.delivered.iter().map(|d| d.1).sum();
        let delivered_bps = if span > 0.1 {
            bytes as f64 * 8.0 / span
        } else {
            0.0
        };
        if self.queue > QUEUE_LIMIT && delivered_bps > 0.0 {
            // Down to what got through, again each time the last cut has had
            // time to show (a feedback round or two).
            if self
                .decreased_at
                .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_EVERY)
            {
                self.limit = self.limit.min(delivered_bps * 0.85).max(FLOOR_BPS);
                self.decreased_at = Some(now);
            }
            self.held_until = Some(now + HOLD);
        } else if self.held_until.is_none_or(|t| now >= t) {
            let climb = if now.saturating_duration_since(self.epoch) < START_UP {
                START_CLIMB_PER_SEC
            } else {
                CLIMB_PER_SEC
            };
            self.limit *= 1.0 + climb * dt;
            if delivered_bps > 0.0 {
                self.limit = self.limit.min(delivered_bps * 1.5 + 50_000.0);
            }
            self.limit = self.limit.max(FLOOR_BPS);
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of `size` bytes every `gap` into a link of `rate_bps` with a
    /// queue, for `secs`; the limit after each 100 ms of feedback.
    fn through_a_bottleneck(send_bps: impl Fn(f64) -> f64, rate_bps: f64, secs: f64) -> Vec<f64> {
        let t0 = Instant::now();
        let mut g = Governor::new(700_000.0, t0);
        let mut busy_until = 0.0f64;
        let mut limits = Vec::new();
        let mut t = 0.0;
        let mut next_feedback = 0.1;
        while t < secs {
            let size = 1000usize;
            let rate = send_bps(t);
            // The bottleneck: a packet waits for the ones before it.
            let start = busy_until.max(t);
            let done = start + size as f64 * 8.0 / rate_bps;
            let arrived = (done - t) < 0.25; // a quarter second of queue
            if arrived {
                busy_until = done;
            }
            let departure = t0 + Duration::from_secs_f64(t);
            g.on_packet(
                departure,
                arrived.then(|| Duration::from_secs_f64(done + 0.02)),
                size,
            );
            t += size as f64 * 8.0 / rate;
            if t >= next_feedback {
                limits.push(g.update(t0 + Duration::from_secs_f64(t)));
                next_feedback += 0.1;
            }
        }
        limits
    }

    #[test]
    fn sending_past_a_cap_brings_the_limit_under_it_quickly() {
        let limits = through_a_bottleneck(|_| 700_000.0, 250_000.0, 3.0);
        // (and it knows the path is congested: see `congested`)
        // Feedback comes every 100 ms: under the cap within 0.8 s, and
        // staying there.
        assert!(limits[7..].iter().all(|&l| l < 250_000.0), "{limits:?}");
    }

    #[test]
    fn a_clear_path_lets_the_limit_climb_with_what_is_sent() {
        // Sending 400k into a 10 Mbit/s path: the limit stays a margin
        // above what is sent, climbing.
        let limits = through_a_bottleneck(|_| 400_000.0, 10_000_000.0, 3.0);
        let last = *limits.last().unwrap();
        assert!(last > 550_000.0 && last <= 700_000.0, "{last}");
    }

    #[test]
    fn jitter_is_not_a_queue() {
        let t0 = Instant::now();
        let mut g = Governor::new(700_000.0, t0);
        let mut limit = 0.0;
        for i in 0..3000u64 {
            // 1000 bytes every 10 ms (800 kbit/s), each 150 ± 40 ms late.
            let sent = Duration::from_millis(i * 10);
            let spread = Duration::from_millis((i * 37 + i * i * 11) % 80);
            let arrival = sent + Duration::from_millis(110) + spread;
            g.on_packet(t0 + sent, Some(arrival), 1000);
            if i % 10 == 9 {
                limit = g.update(t0 + sent);
            }
        }
        assert!(limit > 1_000_000.0, "{limit}");
    }

    #[test]
    fn after_backing_off_it_climbs_again_when_the_queue_drains() {
        // Over the cap for a second, then under it.
        let limits = through_a_bottleneck(
            |t| if t < 1.0 { 900_000.0 } else { 300_000.0 },
            500_000.0,
            6.0,
        );
        let low = limits[8..15].iter().copied().fold(f64::MAX, f64::min);
        assert!(low < 500_000.0, "{limits:?}");
        assert!(*limits.last().unwrap() > 400_000.0, "{limits:?}");
    }
}
