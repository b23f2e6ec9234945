//! What one direction of an access link does to the packets crossing it,
//! without I/O or clocks: packets go in with the time they arrived and come
//! out when they are due, or never.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beckon_netsim::model::{Impairment, Loss, Path};
//! let mut path = Path::new(Impairment { loss: Loss::Random(0.05), delay: Duration::from_millis(40), ..Impairment::clean() }, 7);
//! let now = Instant::now();
//! path.push(now, vec![0x45; 100]);
//! assert!(path.poll(now).is_none(), "not before its delay");
//! # let _ = path.poll(now + Duration::from_millis(40));
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How packets get lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// None lost.
    None,
    /// Each packet lost with this probability, independently.
    Random(f64),
    /// Gilbert-Elliott: a good and a bad state, moved between after every
    /// packet; each state loses packets with its own probability. Losses
    /// come in bursts of about `1 / leave_bad` packets.
    Bursty {
        /// Chance of going from good to bad after a packet.
        enter_bad: f64,
        /// Chance of going from bad back to good after a packet.
        leave_bad: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl Loss {
    /// The share of packets lost in the long run.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::Bursty {
                enter_bad,
                leave_bad,
                loss_good,
                loss_bad,
            } => {
                let bad = enter_bad / (enter_bad + leave_bad);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// What one direction of a link does.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Packets lost on the way.
    pub loss: Loss,
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Each packet's delay varies uniformly by up to this much either way.
    pub jitter: Duration,
    /// With jitter, a packet may overtake an earlier one (as on a real
    /// path with several routes); without, it waits for it.
    pub reorder: bool,
    /// The link's rate, bit/s; `None`: as fast as packets come.
    pub rate_bps: Option<u64>,
    /// The bottleneck's queue: a packet that would wait longer than this
    /// behind the others is dropped (tail drop).
    pub queue: Duration,
    /// Nothing gets through (an outage); packets in flight are lost too.
    pub down: bool,
    /// UDP is dropped, TCP and the rest pass (a network that blocks UDP).
    pub block_udp: bool,
}

impl Impairment {
    /// A link that does nothing to packets.
    pub fn clean() -> Self {
        Self {
            loss: Loss::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: true,
            rate_bps: None,
            queue: Duration::from_millis(200),
            down: false,
            block_udp: false,
        }
    }
}

impl Default for Impairment {
    fn default() -> Self {
        Self::clean()
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Packets offered to the link.
    pub offered: u64,
    /// Packets handed on.
    pub delivered: u64,
    /// Bytes handed on.
    pub delivered_bytes: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped because the bottleneck's queue was full.
    pub queue_drops: u64,
    /// Dropped during an outage (arriving, or in flight when it began).
    pub outage_drops: u64,
    /// Dropped as blocked traffic (UDP on a UDP-blocking link).
    pub blocked: u64,
}

impl PathStats {
    /// What happened since `earlier` was read.
    pub fn minus(&self, earlier: &PathStats) -> PathStats {
        PathStats {
            offered: self.offered - earlier.offered,
            delivered: self.delivered - earlier.delivered,
            delivered_bytes: self.delivered_bytes - earlier.delivered_bytes,
            lost: self.lost - earlier.lost,
            queue_drops: self.queue_drops - earlier.queue_drops,
            outage_drops: self.outage_drops - earlier.outage_drops,
            blocked: self.blocked - earlier.blocked,
        }
    }
}

impl std::fmt::Display for PathStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets offered, {} delivered, {} lost, {} dropped by the queue, {} in outages, {} blocked",
            self.offered,
            self.delivered,
            self.lost,
            self.queue_drops,
            self.outage_drops,
            self.blocked
        )
    }
}

/// A small seeded generator (SplitMix64): the same seed gives the same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// One direction of a link: loss, then the bottleneck's queue, then delay.
#[derive(Debug)]
pub struct Path {
    profile: Impairment,
    rng: Rng,
    /// The Gilbert-Elliott state.
    bad: bool,
    /// When the bottleneck will have sent everything queued so far.
    busy_until: Option<Instant>,
    /// The latest delivery time given so far (for in-order links).
    last_due: Option<Instant>,
    in_flight: BinaryHeap<Reverse<(Instant, u64, Packet)>>,
    order: u64,
    stats: PathStats,
}

/// A packet in flight (ordered by nothing but its place in the heap key).
#[derive(Debug, PartialEq, Eq)]
struct Packet(Vec<u8>);

impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Packet {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Whether an IP packet carries UDP.
pub fn is_udp(packet: &[u8]) -> bool {
    match packet.first().map(|b| b >> 4) {
        Some(4) => packet.get(9) == Some(&17),
        Some(6) => packet.get(6) == Some(&17),
        _ => false,
    }
}

impl Path {
    /// A direction doing `profile`, its randomness from `seed`.
    pub fn new(profile: Impairment, seed: u64) -> Self {
        Self {
            profile,
            rng: Rng::new(seed),
            bad: false,
            busy_until: None,
            last_due: None,
            in_flight: BinaryHeap::new(),
            order: 0,
            stats: PathStats::default(),
        }
    }

    /// What it does now.
    pub fn profile(&self) -> &Impairment {
        &self.profile
    }

    /// Does something else from now on. Going down loses what is in flight.
    pub fn set_profile(&mut self, profile: Impairment) {
        if profile.down && !self.profile.down {
            self.stats.outage_drops += self.in_flight.len() as u64;
            self.in_flight.clear();
            self.busy_until = None;
        }
        self.profile = profile;
    }

    /// Its counters.
    pub fn stats(&self) -> PathStats {
        self.stats
    }

    fn lost(&mut self) -> bool {
        match self.profile.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.chance(p),
            Loss::Bursty {
                enter_bad,
                leave_bad,
                loss_good,
                loss_bad,
            } => {
                let lost = self.rng.chance(if self.bad { loss_bad } else { loss_good });
                let flip = if self.bad { leave_bad } else { enter_bad };
                if self.rng.chance(flip) {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }

    /// A packet arrives at the link at `now`.
    pub fn push(&mut self, now: Instant, packet: Vec<u8>) {
        self.stats.offered += 1;
        let p = &self.profile;
        if p.down {
            self.stats.outage_drops += 1;
            return;
        }
        if p.block_udp && is_udp(&packet) {
            self.stats.blocked += 1;
            return;
        }
        if self.lost() {
            self.stats.lost += 1;
            return;
        }
        let p = &self.profile;
        let sent = match p.rate_bps {
            Some(rate) if rate > 0 => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                if start.duration_since(now) > p.queue {
                    self.stats.queue_drops += 1;
                    return;
                }
                let done =
                    start + Duration::from_nanos(packet.len() as u64 * 8 * 1_000_000_000 / rate);
                self.busy_until = Some(done);
                done
            }
            _ => now,
        };
        let jitter = p.jitter.as_secs_f64();
        let spread = (self.rng.next_f64() * 2.0 - 1.0) * jitter;
        let delay = Duration::from_secs_f64((p.delay.as_secs_f64() + spread).max(0.0));
        let mut due = sent + delay;
        if !p.reorder
            && let Some(last) = self.last_due
        {
            due = due.max(last);
        }
        self.last_due = Some(self.last_due.map_or(due, |l| l.max(due)));
        self.order += 1;
        self.in_flight
            .push(Reverse((due, self.order, Packet(packet))));
    }

    /// When the next packet is due, if any is in flight.
    pub fn next_due(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The next packet due by `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse((_, _, Packet(p))) = self.in_flight.pop()?;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += p.len() as u64;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(20)];
        p[0] = 0x45;
        p[9] = 17;
        p
    }

    fn tcp(len: usize) -> Vec<u8> {
        let mut p = udp(len);
        p[9] = 6;
        p
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `n` packets 1 ms apart and drains everything: the delivered
    /// packets' first bytes (their index) and delivery times.
    fn run(path: &mut Path, n: usize) -> Vec<(usize, Duration)> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + ms(i as u64);
            let mut p = udp(100);
            p[20..28].copy_from_slice(&(i as u64).to_le_bytes());
            path.push(now, p);
            while let Some(p) = path.poll(now) {
                out.push((p, now));
            }
        }
        while let Some(due) = path.next_due() {
            let p = path.poll(due).unwrap();
            out.push((p, due));
        }
        out.into_iter()
            .map(|(p, at)| {
                let i = u64::from_le_bytes(p[20..28].try_into().unwrap()) as usize;
                (i, at - t0)
            })
            .collect()
    }

    #[test]
    fn random_loss_drops_its_share() {
        let mut path = Path::new(
            Impairment {
                loss: Loss::Random(0.1),
                ..Impairment::clean()
            },
            1,
        );
        let got = run(&mut path, 50_000).len();
        let lost = 1.0 - got as f64 / 50_000.0;
        assert!((lost - 0.1).abs() < 0.01, "{lost}");
        assert_eq!(path.stats().lost as usize, 50_000 - got);
    }

    #[test]
    fn the_same_seed_loses_the_same_packets() {
        let profile = Impairment {
            loss: Loss::Random(0.3),
            ..Impairment::clean()
        };
        let a: Vec<usize> = run(&mut Path::new(profile.clone(), 42), 2000)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let b: Vec<usize> = run(&mut Path::new(profile.clone(), 42), 2000)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let c: Vec<usize> = run(&mut Path::new(profile, 43), 2000)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bursty_loss_comes_in_runs() {
        let loss = Loss::Bursty {
            enter_bad: 0.02,
            leave_bad: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        let mut path = Path::new(
            Impairment {
                loss,
                ..Impairment::clean()
            },
            9,
        );
        let n = 100_000;
        let got: Vec<usize> = run(&mut path, n).into_iter().map(|(i, _)| i).collect();
        let lost = 1.0 - got.len() as f64 / n as f64;
        assert!(
            (lost - loss.mean()).abs() < 0.01,
            "{lost} vs {}",
            loss.mean()
        );
        // Runs of consecutive losses: about 1 / leave_bad = 4 long.
        let gaps: Vec<usize> = got
            .windows(2)
            .map(|w| w[1] - w[0] - 1)
            .filter(|&g| g > 0)
            .collect();
        let mean_run = gaps.iter().sum::<usize>() as f64 / gaps.len() as f64;
        assert!((mean_run - 4.0).abs() < 0.5, "{mean_run}");
        // Random loss of the same mean rarely loses 4 in a row.
        let mut random = Path::new(
            Impairment {
                loss: Loss::Random(loss.mean()),
                ..Impairment::clean()
            },
            9,
        );
        let got: Vec<usize> = run(&mut random, n).into_iter().map(|(i, _)| i).collect();
        let gaps: Vec<usize> = got
            .windows(2)
            .map(|w| w[1] - w[0] - 1)
            .filter(|&g| g > 0)
            .collect();
        assert!(gaps.iter().sum::<usize>() as f64 / (gaps.len() as f64) < 1.2);
    }

    #[test]
    fn delay_holds_every_packet_back() {
        let mut path = Path::new(
            Impairment {
                delay: ms(50),
                ..Impairment::clean()
            },
            1,
        );
        let got = run(&mut path, 10);
        assert_eq!(got.len(), 10);
        for (i, at) in got {
            assert_eq!(at, ms(i as u64 + 50));
        }
    }

    #[test]
    fn jitter_reorders_unless_told_to_keep_order() {
        let profile = Impairment {
            delay: ms(150),
            jitter: ms(40),
            ..Impairment::clean()
        };
        let got = run(&mut Path::new(profile.clone(), 5), 1000);
        assert_eq!(got.len(), 1000);
        let late = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(late > 100, "packets overtake each other: {late}");
        for (i, at) in &got {
            let d = at.as_millis() as i64 - *i as i64;
            assert!((110..=190).contains(&d), "{d}");
        }
        let ordered = run(
            &mut Path::new(
                Impairment {
                    reorder: false,
                    ..profile
                },
                5,
            ),
            1000,
        );
        assert!(ordered.windows(2).all(|w| w[1].0 > w[0].0));
    }

    #[test]
    fn a_rate_cap_spaces_packets_and_drops_beyond_its_queue() {
        // 1000-byte packets every 1 ms (8 Mbit/s) into a 1 Mbit/s link:
        // each takes 8 ms to send; the queue holds 100 ms of them.
        let mut path = Path::new(
            Impairment {
                rate_bps: Some(1_000_000),
                queue: ms(100),
                ..Impairment::clean()
            },
            1,
        );
        let t0 = Instant::now();
        for i in 0..200 {
            path.push(t0 + ms(i), udp(1000));
        }
        let mut times = Vec::new();
        while let Some(due) = path.next_due() {
            path.poll(due).unwrap();
            times.push(due - t0);
        }
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= ms(8)),
            "never faster than the rate"
        );
        let s = path.stats();
        assert_eq!(s.delivered as usize, times.len());
        assert!(s.queue_drops > 150, "{s:?}");
        // The queue bounds the delay: the last one waited at most 100 ms
        // plus its own sending time.
        assert!(*times.last().unwrap() <= ms(200 + 108), "{times:?}");
    }

    #[test]
    fn an_outage_drops_everything_including_what_is_in_flight() {
        let mut path = Path::new(
            Impairment {
                delay: ms(30),
                ..Impairment::clean()
            },
            1,
        );
        let t0 = Instant::now();
        path.push(t0, udp(100));
        path.set_profile(Impairment {
            down: true,
            ..path.profile().clone()
        });
        path.push(t0 + ms(1), udp(100));
        assert_eq!(path.poll(t0 + ms(100)), None);
        assert_eq!(path.stats().outage_drops, 2);
        path.set_profile(Impairment {
            delay: ms(30),
            ..Impairment::clean()
        });
        path.push(t0 + ms(200), udp(100));
        assert!(path.poll(t0 + ms(230)).is_some(), "back after the outage");
    }

    #[test]
    fn a_udp_block_lets_tcp_through() {
        let mut path = Path::new(
            Impairment {
                block_udp: true,
                ..Impairment::clean()
            },
            1,
        );
        let t0 = Instant::now();
        path.push(t0, udp(100));
        path.push(t0, tcp(100));
        assert_eq!(path.poll(t0).map(|p| p[9]), Some(6));
        assert_eq!(path.poll(t0), None);
        assert_eq!(path.stats().blocked, 1);
        assert!(!is_udp(&[0x60]), "a short packet is not UDP");
    }
}
