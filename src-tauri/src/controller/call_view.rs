//! The current call as the UI shows it, and the sentence that explains how
//! a call ended. Pure: the controller keeps the state, these read it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beckon_client::{CurrentCall, MemberEnd, Phase as ManagerPhase, outcome};
use beckon_media::call::PeerStats;
use beckon_media::peer::LinkState;
use beckon_protocol::{CallInfo, MemberInfo, MemberState, Outcome, Reason, UserId};

use super::convert::kind;
use crate::view::{Call, CallOutcome, Member, MemberStatus, Person, Phase, Quality};

/// What the controller knows about the current call beyond the client's
/// copy of it (which holds every member's state and reason): our own
/// devices, and what each member's media says.
#[derive(Debug, Clone)]
pub(crate) struct CallExtras {
    /// Our microphone, camera and speaker.
    pub(crate) mic: bool,
    pub(crate) camera: bool,
    pub(crate) speaker: bool,
    /// Our camera is on but the path has no room for video.
    pub(crate) video_paused: bool,
    /// We offer media to those already in (we answered, or joined later).
    pub(crate) we_offer: bool,
    /// When it connected (Unix ms).
    pub(crate) connected_at_ms: Option<f64>,
    /// What each member's media says of them.
    pub(crate) remote: HashMap<UserId, Remote>,
}

impl Default for CallExtras {
    fn default() -> Self {
        Self {
            mic: true,
            camera: true,
            speaker: true,
            video_paused: false,
            we_offer: false,
            connected_at_ms: None,
            remote: HashMap::new(),
        }
    }
}

/// A member's media, as last reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Remote {
    pub(crate) mic: bool,
    pub(crate) camera: bool,
    pub(crate) quality: Quality,
    pub(crate) speaking: bool,
    pub(crate) frames: u32,
    /// When the count of decoded frames last grew.
    pub(crate) frames_grew_at: Option<Instant>,
    pub(crate) video_stalled: bool,
}

impl Default for Remote {
    fn default() -> Self {
        Self {
            mic: true,
            camera: true,
            quality: Quality::Connecting,
            speaking: false,
            frames: 0,
            frames_grew_at: None,
            video_stalled: false,
        }
    }
}

/// A camera that sent nothing for this long shows as stalled.
const STALLED_AFTER: Duration = Duration::from_millis(1200);

/// Loudness above which a member counts as speaking.
const SPEAKING_LEVEL: f32 = 0.02;

/// How a media path is doing, from its counters.
pub(crate) fn quality(s: &PeerStats) -> Quality {
    match s.state {
        LinkState::Connecting => Quality::Connecting,
        LinkState::Reconnecting => Quality::Reconnecting,
        LinkState::Closed => Quality::Poor,
        LinkState::Connected => {
            let rtt = s.rtt_ms.unwrap_or(0.0);
            if s.loss_pct < 2.0 && rtt < 150.0 {
                Quality::Good
            } else if s.loss_pct < 8.0 && rtt < 400.0 {
                Quality::Fair
            } else {
                Quality::Poor
            }
        }
    }
}

/// Updates quality and the active speaker (the loudest member above a
/// floor) from a round of statistics.
pub(crate) fn apply_stats(extras: &mut CallExtras, stats: &[PeerStats]) {
    let loudest = stats
        .iter()
        .filter_map(|s| s.audio.as_ref().map(|a| (&s.user, a.level)))
        .filter(|(_, level)| *level > SPEAKING_LEVEL)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(u, _)| u.clone());
    let now = Instant::now();
    for s in stats {
        let r = extras.remote.entry(s.user.clone()).or_default();
        r.quality = quality(s);
        r.speaking = loudest.as_ref() == Some(&s.user);
        let frames = u32::try_from(s.frames_decoded).unwrap_or(u32::MAX);
        if frames != r.frames || r.frames_grew_at.is_none() {
            r.frames_grew_at = Some(now);
        }
        r.frames = frames;
        r.video_stalled = stalled(r, s.state, now);
    }
}

/// Whether a member's video stopped coming although their camera is on:
/// only once it has shown a picture, and not while the link reconnects
/// (which says so itself).
fn stalled(r: &Remote, state: LinkState, now: Instant) -> bool {
    r.camera
        && r.frames > 0
        && state == LinkState::Connected
        && r.frames_grew_at
            .is_some_and(|at| now.duration_since(at) >= STALLED_AFTER)
}

/// The call as the UI shows it. Members who left are not shown.
pub(crate) fn view(
    current: &CurrentCall,
    me: &UserId,
    extras: &CallExtras,
    who: impl Fn(&UserId) -> Person,
) -> Call {
    let phase = match current.phase {
        ManagerPhase::Incoming => Phase::Incoming,
        ManagerPhase::Outgoing => Phase::Outgoing,
        ManagerPhase::Connected => Phase::Connected,
    };
    let members = current
        .info
        .members
        .iter()
        .filter(|m| &m.user != me)
        .filter_map(|m| {
            let status = if m.state.is_pending() {
                MemberStatus::Ringing
            } else if m.state == MemberState::Accepted {
                MemberStatus::Joined
            } else {
                return None;
            };
            let remote = extras.remote.get(&m.user).copied().unwrap_or_default();
            Some(Member {
                person: who(&m.user),
                status,
                mic: remote.mic,
                camera: remote.camera && current.info.kind == beckon_protocol::CallKind::Video,
                quality: remote.quality,
                speaking: remote.speaking,
                frames: remote.frames,
                video_stalled: remote.video_stalled
                    && current.info.kind == beckon_protocol::CallKind::Video,
            })
        })
        .collect();
    Call {
        id: current.info.call_id.to_string(),
        kind: kind(current.info.kind),
        phase,
        inviter: who(&current.info.inviter),
        members,
        connected_at_ms: extras.connected_at_ms,
        mic: extras.mic,
        camera: extras.camera && current.info.kind == beckon_protocol::CallKind::Video,
        speaker: extras.speaker,
        video_paused: extras.video_paused
            && extras.camera
            && current.info.kind == beckon_protocol::CallKind::Video,
        can_end_for_all: current.info.may_end_for_all(me),
    }
}

/// Why an outgoing call did not connect, or how a call ended: from the call
/// as it last stood (`last`, every member's state and reason), why it ended,
/// who ended it, and whether it connected for `me`. The words follow the
/// outcome the history records (`beckon_client::outcome`), for the one
/// invitee of a call we made that never connected, or else for us.
///
/// Nothing here depends on the phase the page last showed: a callee who is
/// busy rejects within a round trip, and the call can be over before the
/// page ever showed it ringing.
pub(crate) fn ended(
    last: &CallInfo,
    me: Option<&UserId>,
    reason: Reason,
    by: Option<&UserId>,
    connected: bool,
    who: impl Fn(&UserId) -> Person,
) -> CallOutcome {
    let sentence = |reason: &str, message: String| CallOutcome {
        id: last.call_id.to_string(),
        reason: reason.to_owned(),
        message,
    };
    let of = |m: &MemberInfo| {
        let end = MemberEnd {
            inviter: m.user == last.inviter,
            took_part: connected && Some(&m.user) == me,
            state: m.state,
            reason: m.reason,
        };
        outcome(end, connected, reason)
    };
    let inviter = who(&last.inviter).name;
    if !connected && me == Some(&last.inviter) {
        let invited: Vec<_> = last
            .members
            .iter()
            .filter(|m| Some(&m.user) != me)
            .collect();
        if let [only] = invited[..] {
            let name = who(&only.user).name;
            match of(only) {
                Outcome::Declined => return sentence("declined", format!("{name} declined.")),
                Outcome::Busy => {
                    return sentence("busy", format!("{name} is busy on another call."));
                }
                Outcome::Missed if only.reason == Some(Reason::Offline) => {
                    return sentence("offline", format!("{name} is offline."));
                }
                Outcome::Missed => return sentence("no_answer", format!("{name} did not answer.")),
                _ => {}
            }
        }
        return match (reason, invited.len()) {
            (Reason::Cancelled, _) => sentence("cancelled", "Call cancelled.".to_owned()),
            (Reason::Timeout, _) | (_, 2..) => sentence("no_answer", "Nobody answered.".to_owned()),
            _ => sentence("ended", "The call did not connect.".to_owned()),
        };
    }
    let mine = last.members.iter().find(|m| Some(&m.user) == me);
    match (mine.map(of), reason, by) {
        // We declined or left it ourselves: nothing to explain.
        (_, _, None) if reason != Reason::Disconnected && reason != Reason::Timeout => {
            sentence("ended", "Call ended.".to_owned())
        }
        (Some(Outcome::Missed), ..) => {
            sentence("missed", format!("You missed a call from {inviter}."))
        }
        (Some(Outcome::Cancelled), Reason::Cancelled, _) => {
            sentence("cancelled", format!("{inviter} cancelled the call."))
        }
        (_, Reason::Disconnected, _) => sentence(
            "failed",
            "The call ended: the connection was lost.".to_owned(),
        ),
        (_, _, Some(by)) => sentence("ended", format!("{} ended the call.", who(by).name)),
        _ => sentence("ended", "Call ended.".to_owned()),
    }
}

#[cfg(test)]
mod tests;
