//! Latency summaries, error tallies and the offered-rate schedule.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

/// Latencies and failures of one window.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Tally {
    pub(crate) fn fail(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `{p50_ms, p99_ms, max_ms}` of the latencies (null when none).
    pub(crate) fn summary(&mut self) -> Value {
        percentiles(&mut self.latencies)
    }
}

pub(crate) fn percentiles(v: &mut [Duration]) -> Value {
    if v.is_empty() {
        return json!({"p50_ms": null, "p99_ms": null, "max_ms": null});
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        ms(v[i])
    };
    json!({"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": ms(v[v.len() - 1])})
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Pair `i` of `pairs` shares an offered `rate` (per second, over all
/// pairs): its slots are `period` apart, the first offset so that the
/// pairs interleave evenly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) first: Instant,
    pub(crate) period: Duration,
    pub(crate) end: Instant,
}

impl Schedule {
    pub(crate) fn new(start: Instant, i: usize, pairs: usize, rate: f64, secs: f64) -> Self {
        Self {
            first: start + Duration::from_secs_f64(i as f64 / rate),
            period: Duration::from_secs_f64(pairs as f64 / rate),
            end: start + Duration::from_secs_f64(secs),
        }
    }

    /// Slots this pair is offered in the window.
    pub(crate) fn offered(&self) -> u64 {
        if self.first >= self.end {
            return 0;
        }
        let span = self.end - self.first;
        (span.as_secs_f64() / self.period.as_secs_f64()).ceil() as u64
    }
}

/// How a client error is counted.
pub(crate) fn kind(e: &beckon_client::ClientError) -> String {
    use beckon_client::ClientError as E;
    match e {
        E::Server(b) | E::SignIn(b) => b.code.as_str().to_string(),
        E::Connect(_) => "connect".into(),
        E::Disconnected => "disconnected".into(),
        E::Timeout => "timeout".into(),
        E::Closed => "closed".into(),
        _ => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let mut v: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        let s = percentiles(&mut v);
        assert_eq!(s["p50_ms"], 50.0);
        assert_eq!(s["p99_ms"], 99.0);
        assert_eq!(s["max_ms"], 100.0);
    }

    #[test]
    fn a_schedule_offers_its_share_of_the_rate() {
        let start = Instant::now();
        let total: u64 = (0..50)
            .map(|i| Schedule::new(start, i, 50, 100.0, 10.0).offered())
            .sum();
        assert_eq!(total, 1000);
    }
}
