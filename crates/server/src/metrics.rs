//! Counters for Prometheus' text format, kept in atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use beckon_protocol::{ErrorCode, Outcome};

/// Every metric the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: AtomicI64,
    /// Signed-in connections.
    pub sessions: AtomicI64,
    /// Live calls.
    pub live_calls: AtomicI64,
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
    /// Calls that ended.
    pub calls_finished: AtomicU64,
    invites: [AtomicU64; 6],
    errors: [AtomicU64; 14],
}

const OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::Answered, "answered"),
    (Outcome::Missed, "missed"),
    (Outcome::Declined, "declined"),
    (Outcome::Cancelled, "cancelled"),
    (Outcome::Busy, "busy"),
    (Outcome::NoAnswer, "no_answer"),
];

const ERRORS: [ErrorCode; 14] = [
    ErrorCode::Unauthorized,
    ErrorCode::Busy,
    ErrorCode::NotFound,
    ErrorCode::Invalid,
    ErrorCode::RateLimited,
    ErrorCode::TooLarge,
    ErrorCode::NotAMember,
    ErrorCode::CallEnded,
    ErrorCode::AlreadyAnswered,
    ErrorCode::NotAllowed,
    ErrorCode::LimitExceeded,
    ErrorCode::UserExists,
    ErrorCode::VersionMismatch,
    ErrorCode::Internal,
];

impl Metrics {
    /// Counts how one invitation ended.
    pub fn invite_outcome(&self, outcome: Outcome) {
        if let Some(i) = OUTCOMES.iter().position(|(o, _)| *o == outcome) {
            self.invites[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an error reply.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ERRORS.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let gauge = |s: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(
            &mut s,
            "beckon_connections",
            "Open WebSocket connections.",
            self.connections.load(Ordering::Relaxed),
        );
        gauge(
            &mut s,
            "beckon_sessions",
            "Signed-in connections.",
            self.sessions.load(Ordering::Relaxed),
        );
        gauge(
            &mut s,
            "beckon_live_calls",
            "Calls in progress or ringing.",
            self.live_calls.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "beckon_messages_in_total",
            "Messages received.",
            self.messages_in.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "beckon_messages_out_total",
            "Messages sent.",
            self.messages_out.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "beckon_calls_finished_total",
            "Calls that ended.",
            self.calls_finished.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP beckon_invites_total Invitations by how they ended for the invitee."
        );
        let _ = writeln!(s, "# TYPE beckon_invites_total counter");
        for (i, (_, name)) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                s,
                "beckon_invites_total{{outcome=\"{name}\"}} {}",
                self.invites[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP beckon_errors_total Error replies by code.");
        let _ = writeln!(s, "# TYPE beckon_errors_total counter");
        for (i, code) in ERRORS.iter().enumerate() {
            let _ = writeln!(
                s,
                "beckon_errors_total{{code=\"{code}\"}} {}",
                self.errors[i].load(Ordering::Relaxed)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.invite_outcome(Outcome::Busy);
        m.invite_outcome(Outcome::Busy);
        m.error(ErrorCode::NotAMember);
        m.connections.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("beckon_invites_total{outcome=\"busy\"} 2"));
        assert!(text.contains("beckon_errors_total{code=\"not_a_member\"} 1"));
        assert!(text.contains("beckon_connections 3"));
    }
}
