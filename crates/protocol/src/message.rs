//! Every message on the wire. Client→server: [`ClientMessage`] (a request
//! with an id). Server→client: [`ServerMessage`] (a reply or error for one
//! request id, or an event).

use serde::{Deserialize, Serialize};

use crate::call::{CallInfo, CallKind, MemberChange, Reason, RejectReason};
use crate::error::{ErrorBody, ErrorCode};
use crate::ids::{
    AvatarUrl, CallId, DeviceId, DisplayName, ExtendedData, IceCandidate, Password, RequestId, Sdp,
    SearchQuery, SessionToken, UserId,
};

/// A request and the id its reply will carry.
///
/// ```json
/// {"id": 7, "type": "accept", "call_id": "9f1c2a7b3d4e5f60718293a4b5c6d7e8", "extended_data": ""}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    /// Chosen by the client, echoed in the reply.
    pub id: RequestId,
    /// What is asked.
    #[serde(flatten)]
    pub request: Request,
}

/// Everything a client can ask. `register`, `login`, `resume` and `ping`
/// work before signing in; everything else needs a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Create an account and sign in on this device.
    Register {
        /// Protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
        version: u32,
        /// The login name to claim.
        user: UserId,
        /// At least 8 bytes.
        password: Password,
        /// The name others see.
        display_name: DisplayName,
        /// This installation.
        device: DeviceId,
    },
    /// Sign in on this device.
    Login {
        /// Protocol version the client speaks.
        version: u32,
        /// Who.
        user: UserId,
        /// Their password.
        password: Password,
        /// This installation.
        device: DeviceId,
    },
    /// Continue a session after a reconnect, with the token from `session`.
    Resume {
        /// Protocol version the client speaks.
        version: u32,
        /// The token from the last `session` reply.
        token: SessionToken,
        /// Must be the device the token was issued to.
        device: DeviceId,
    },
    /// End this session; the token stops working.
    Logout,
    /// Keep-alive; answered with `pong`.
    Ping,
    /// STUN/TURN servers for media, with fresh TURN credentials.
    IceServers,
    /// Change how others see you.
    UpdateProfile {
        /// New display name, if it changes.
        #[serde(default)]
        display_name: Option<DisplayName>,
        /// New avatar, if it changes.
        #[serde(default)]
        avatar_url: Option<AvatarUrl>,
    },
    /// Find users whose id or display name contains `query`.
    SearchUsers {
        /// Case-insensitive substring.
        query: SearchQuery,
        /// At most this many (default 20, at most 100).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Profiles (and presence) of the users named.
    GetUsers {
        /// At most 32.
        users: Vec<UserId>,
    },
    /// Your contacts, with presence.
    Contacts,
    /// Add a contact; you then get their presence events.
    AddContact {
        /// Who.
        user: UserId,
    },
    /// Remove a contact.
    RemoveContact {
        /// Who.
        user: UserId,
    },
    /// Your call history, newest first, a page at a time.
    History {
        /// Continue after this cursor (the `next_before` of the previous
        /// page); the newest calls when absent.
        #[serde(default)]
        before: Option<i64>,
        /// Page size (default 20, at most 100).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Calls you missed since you last marked history as seen.
    MissedCount,
    /// Mark every call so far as seen: the missed count drops to zero.
    MarkHistorySeen,
    /// Start a call by inviting one or more users.
    Invite {
        /// Whom to ring (at most 32; the call's member cap applies).
        users: Vec<UserId>,
        /// Video or voice.
        kind: CallKind,
        /// Ring timeout in seconds, 1–600 (default 60).
        #[serde(default)]
        timeout_secs: Option<u32>,
        /// Passed to every invitee.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// Invite more users into a call you are in.
    Add {
        /// The call.
        call_id: CallId,
        /// Whom to ring.
        users: Vec<UserId>,
    },
    /// Take back invitations you sent that are not answered yet.
    Cancel {
        /// The call.
        call_id: CallId,
        /// Whom to stop ringing; all your pending invitees when absent.
        #[serde(default)]
        users: Option<Vec<UserId>>,
        /// Passed to the cancelled invitees.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// Answer yes.
    Accept {
        /// The call.
        call_id: CallId,
        /// Passed to everyone in the call.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// Answer no.
    Reject {
        /// The call.
        call_id: CallId,
        /// `declined` (default) or `busy`.
        #[serde(default)]
        reason: RejectReason,
        /// Passed to everyone in the call.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// Leave a call; it goes on for the others.
    Quit {
        /// The call.
        call_id: CallId,
        /// Passed to everyone in the call.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// End a call for every member.
    End {
        /// The call.
        call_id: CallId,
        /// Passed to everyone in the call.
        #[serde(default)]
        extended_data: ExtendedData,
    },
    /// How a call stands for you now, without changing anything: sent after
    /// a reconnect to learn whether the call you were in or rung for is still
    /// on. Answered with `call`, or `call_ended`/`not_found`/`not_a_member`.
    CallStatus {
        /// The call.
        call_id: CallId,
    },
    /// Come back to a live call after quitting, or move it to this device.
    Join {
        /// The call.
        call_id: CallId,
    },
    /// Relay media signaling to one accepted member of a call you are in.
    Signal {
        /// The call.
        call_id: CallId,
        /// The member it is for.
        to: UserId,
        /// What to relay.
        signal: Signal,
    },
}

impl Request {
    /// Whether this request may be sent before signing in.
    pub fn is_pre_auth(&self) -> bool {
        matches!(
            self,
            Self::Register { .. } | Self::Login { .. } | Self::Resume { .. } | Self::Ping
        )
    }

    /// The wire name of the request, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::Login { .. } => "login",
            Self::Resume { .. } => "resume",
            Self::Logout => "logout",
            Self::Ping => "ping",
            Self::IceServers => "ice_servers",
            Self::UpdateProfile { .. } => "update_profile",
            Self::SearchUsers { .. } => "search_users",
            Self::GetUsers { .. } => "get_users",
            Self::Contacts => "contacts",
            Self::AddContact { .. } => "add_contact",
            Self::RemoveContact { .. } => "remove_contact",
            Self::History { .. } => "history",
            Self::MissedCount => "missed_count",
            Self::MarkHistorySeen => "mark_history_seen",
            Self::Invite { .. } => "invite",
            Self::Add { .. } => "add",
            Self::Cancel { .. } => "cancel",
            Self::Accept { .. } => "accept",
            Self::Reject { .. } => "reject",
            Self::Quit { .. } => "quit",
            Self::End { .. } => "end",
            Self::CallStatus { .. } => "call_status",
            Self::Join { .. } => "join",
            Self::Signal { .. } => "signal",
        }
    }
}

/// Media signaling relayed between two accepted members of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// An SDP offer.
    Offer {
        /// The session description.
        sdp: Sdp,
    },
    /// An SDP answer.
    Answer {
        /// The session description.
        sdp: Sdp,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line.
        candidate: IceCandidate,
        /// Media stream identification tag.
        #[serde(default)]
        sdp_mid: Option<String>,
        /// Index of the media description.
        #[serde(default)]
        sdp_mline_index: Option<u16>,
    },
    /// No more candidates will follow for this negotiation.
    EndOfCandidates,
    /// The sender's media controls, so others can show them on its tile.
    MediaState {
        /// Microphone on.
        mic: bool,
        /// Camera on.
        camera: bool,
    },
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to request `id`.
    Reply {
        /// The request's id.
        id: RequestId,
        /// What it produced.
        reply: Reply,
    },
    /// Request `id` failed (or, without an id, a message that could not be
    /// read far enough to find one).
    Error {
        /// The request's id, when it could be read.
        #[serde(default)]
        id: Option<RequestId>,
        /// What went wrong.
        #[serde(flatten)]
        error: ErrorBody,
    },
    /// Something happened that the client did not ask about.
    Event {
        /// What happened.
        event: Event,
    },
}

impl ServerMessage {
    /// An error reply to request `id`.
    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            error: ErrorBody::new(code, message),
        }
    }
}

/// What a successful request produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// Signed in (register, login, resume).
    Session(Session),
    /// Answer to `ping`.
    Pong,
    /// The request was carried out; there is nothing to return.
    Done,
    /// STUN/TURN servers.
    IceServers {
        /// Pass these to the peer connection.
        servers: Vec<IceServer>,
    },
    /// Your profile after `update_profile`.
    Profile {
        /// As others now see you.
        profile: UserProfile,
    },
    /// Users found, or asked for.
    Users {
        /// Profiles with presence.
        users: Vec<UserProfile>,
        /// Asked-for ids that belong to nobody.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unknown: Vec<UserId>,
    },
    /// A page of call history.
    History {
        /// Newest first.
        entries: Vec<HistoryEntry>,
        /// Pass as `before` for the next page; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_before: Option<i64>,
    },
    /// Missed calls since history was last marked as seen.
    MissedCount {
        /// How many.
        count: u32,
    },
    /// Result of `invite`, `add` or `cancel`: the call as it now stands and
    /// one result per user named.
    Invitation {
        /// The call as it now stands.
        call: CallInfo,
        /// One entry per user named in the request.
        results: Vec<UserResult>,
        /// True when an `invite` joined an invitation already ringing the other
        /// way (both called each other at once) instead of starting a new call.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        merged: bool,
    },
    /// Result of `accept`, `join` or `call_status`: the call as it stands.
    Call {
        /// The call as it now stands.
        call: CallInfo,
    },
}

/// The per-user outcome of an `invite`, `add` or `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserResult {
    /// Who.
    pub user: UserId,
    /// Why this user was left out; absent when it worked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Who you are.
    pub profile: UserProfile,
    /// This device.
    pub device: DeviceId,
    /// Send it with `resume` after a reconnect. Secret.
    pub token: SessionToken,
    /// When the token stops working (Unix milliseconds).
    pub expires_at_ms: i64,
    /// True when this continued an earlier session (`resume`).
    #[serde(default)]
    pub resumed: bool,
    /// The server's protocol version.
    pub version: u32,
    /// STUN/TURN servers for media.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
}

/// One STUN or TURN server (the WebRTC `RTCIceServer` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// e.g. `stun:stun.example.org:3478`, `turn:turn.example.org?transport=udp`.
    pub urls: Vec<String>,
    /// TURN user name (time-limited, coturn REST scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password for `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// How a user appears to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Login name.
    pub id: UserId,
    /// Shown name.
    pub display_name: DisplayName,
    /// Picture, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<AvatarUrl>,
    /// Signed in on at least one device right now.
    pub online: bool,
}

/// How one member's part in a past call ended, from the history's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Took part (for the inviter: somebody answered).
    Answered,
    /// Did not answer before the ring timeout.
    Missed,
    /// Declined.
    Declined,
    /// The invitation was taken back (or the call ended) before an answer.
    Cancelled,
    /// Was busy with another call.
    Busy,
    /// The inviter's outcome when nobody answered.
    NoAnswer,
}

/// One member of a past call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMember {
    /// Who.
    pub user: UserId,
    /// How it went for them.
    pub outcome: Outcome,
}

/// One past call, as one user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The call.
    pub call_id: CallId,
    /// Video or voice.
    pub kind: CallKind,
    /// Who started it.
    pub inviter: UserId,
    /// When the invitation went out (Unix ms).
    pub started_at_ms: i64,
    /// How long it was connected (0 when it never was).
    pub duration_ms: i64,
    /// Everyone who was part of it.
    pub members: Vec<HistoryMember>,
    /// How it went for you.
    pub outcome: Outcome,
    /// An incoming call you did not take (missed, cancelled or busy).
    pub missed: bool,
}

/// Something that happened without the client asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Someone is ringing you. Answer with `accept` or `reject`.
    CallInvited {
        /// The call, with every member so far.
        call: CallInfo,
        /// Who rang you (the inviter, or the member who added you).
        by: UserId,
        /// Milliseconds left before the ring times out.
        remaining_ms: u64,
    },
    /// A member's state changed. Sent to everyone still involved and to the
    /// member itself.
    MemberState(MemberChange),
    /// The whole call as it stands: sent to a device that signs in again
    /// (resumes) while it is in a call. (`join` and `accept` get the call in
    /// their reply instead.)
    CallState {
        /// The call.
        call: CallInfo,
    },
    /// The call is over for everyone.
    CallEnded {
        /// The call.
        call_id: CallId,
        /// Why: `ended` when a member ended it, otherwise the change that
        /// left it without two parties (`declined`, `timeout`, `quit`, …).
        reason: Reason,
        /// Who caused it, when someone did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<UserId>,
        /// What the member who ended the call attached to `end`.
        #[serde(default, skip_serializing_if = "ExtendedData::is_empty")]
        extended_data: ExtendedData,
    },
    /// Media signaling from another member.
    Signal {
        /// The call.
        call_id: CallId,
        /// The member who sent it.
        from: UserId,
        /// What they sent.
        signal: Signal,
    },
    /// A contact came online or went offline.
    Presence {
        /// Who.
        user: UserId,
        /// Signed in on at least one device.
        online: bool,
    },
    /// This connection was replaced by a newer sign-in of the same device, or
    /// the session ended; the server closes it next.
    SessionClosed {
        /// Why.
        reason: SessionCloseReason,
    },
}

/// Why the server closes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionCloseReason {
    /// The same device signed in on another connection.
    Replaced,
    /// The session token expired.
    Expired,
    /// The user signed out.
    LoggedOut,
    /// The server is shutting down; reconnect later.
    ServerShutdown,
    /// Too many bad or excess messages.
    Abuse,
}
