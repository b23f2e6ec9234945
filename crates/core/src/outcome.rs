//! How a call went for each member: the one rule behind the call history the
//! server keeps and the sentence the app shows when a call ends.

use beckon_protocol::{MemberState, Outcome, Reason};

/// What is known of one member when a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberEnd {
    /// The member started the call.
    pub inviter: bool,
    /// The member accepted at some point (they may have left since).
    pub took_part: bool,
    /// The member's last state.
    pub state: MemberState,
    /// Why the member is in that state, when known.
    pub reason: Option<Reason>,
}

/// How the call went for one member. `connected` says whether a second
/// member ever accepted; `end` is why the call ended.
pub fn outcome(member: MemberEnd, connected: bool, end: Reason) -> Outcome {
    if member.inviter {
        return if connected {
            Outcome::Answered
        } else if matches!(end, Reason::Cancelled | Reason::Disconnected) {
            Outcome::Cancelled
        } else {
            Outcome::NoAnswer
        };
    }
    if member.took_part {
        return Outcome::Answered;
    }
    match (member.state, member.reason.unwrap_or(end)) {
        (MemberState::Rejected, Reason::Busy) => Outcome::Busy,
        (MemberState::Rejected, _) => Outcome::Declined,
        (MemberState::Timeout, _) => Outcome::Missed,
        // Still ringing when the ring timed out for everyone.
        (state, Reason::Timeout) if state.is_pending() || state == MemberState::Ended => {
            Outcome::Missed
        }
        _ => Outcome::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitee(state: MemberState, reason: Option<Reason>) -> MemberEnd {
        MemberEnd {
            inviter: false,
            took_part: false,
            state,
            reason,
        }
    }

    #[test]
    fn the_inviter_answered_cancelled_or_got_no_answer() {
        let inviter = MemberEnd {
            inviter: true,
            took_part: true,
            state: MemberState::Ended,
            reason: None,
        };
        assert_eq!(outcome(inviter, true, Reason::Ended), Outcome::Answered);
        assert_eq!(
            outcome(inviter, false, Reason::Cancelled),
            Outcome::Cancelled
        );
        assert_eq!(
            outcome(inviter, false, Reason::Disconnected),
            Outcome::Cancelled
        );
        assert_eq!(outcome(inviter, false, Reason::Timeout), Outcome::NoAnswer);
        assert_eq!(outcome(inviter, false, Reason::Declined), Outcome::NoAnswer);
    }

    #[test]
    fn an_invitee_answered_declined_was_busy_missed_or_was_cancelled() {
        let left = MemberEnd {
            took_part: true,
            ..invitee(MemberState::Quit, Some(Reason::Quit))
        };
        assert_eq!(outcome(left, true, Reason::Ended), Outcome::Answered);
        let cases = [
            (MemberState::Rejected, Some(Reason::Busy), Outcome::Busy),
            (
                MemberState::Rejected,
                Some(Reason::Declined),
                Outcome::Declined,
            ),
            (MemberState::Rejected, None, Outcome::Declined),
            (MemberState::Timeout, Some(Reason::Offline), Outcome::Missed),
            (
                MemberState::Cancelled,
                Some(Reason::Cancelled),
                Outcome::Cancelled,
            ),
            (MemberState::Ended, None, Outcome::Cancelled),
        ];
        for (state, reason, want) in cases {
            assert_eq!(
                outcome(invitee(state, reason), false, Reason::Cancelled),
                want,
                "{state:?} {reason:?}"
            );
        }
        // A ring that timed out for everyone, before the member's own change.
        assert_eq!(
            outcome(invitee(MemberState::Received, None), false, Reason::Timeout),
            Outcome::Missed
        );
    }
}
