//! What the UI sees and says: commands in, replies and events out. The
//! TypeScript in `ui/src/lib/bindings.ts` is generated from these types
//! (`bindings::tests::bindings_are_current` fails when it drifts).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Something the UI asks the app to do.
#[derive(Debug, Clone, PartialEq, Deserialize, TS)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Command {
    /// Run the server inside the app (LAN-reachable) and use it.
    Host {
        /// Port to listen on; a free one when taken or absent.
        port: Option<u16>,
    },
    /// Use a server somewhere else.
    UseServer {
        /// `ws://host:port/ws` or `wss://…` (a bare `host:port` works too).
        url: String,
    },
    /// Sign in with an existing account.
    SignIn {
        /// Login name.
        user: String,
        /// Password.
        password: String,
    },
    /// Create an account and sign in.
    Register {
        /// Login name.
        user: String,
        /// Shown name.
        name: String,
        /// Password.
        password: String,
    },
    /// Sign out of this device and forget the session.
    SignOut,
    /// Find people on the server.
    Search {
        /// Part of a login or shown name.
        query: String,
    },
    /// Add someone to the contact list.
    AddContact {
        /// Who.
        user: String,
    },
    /// Take someone off the contact list.
    RemoveContact {
        /// Who.
        user: String,
    },
    /// Ring one or several people.
    Call {
        /// Who (several: a group call).
        users: Vec<String>,
        /// With video, or voice only.
        video: bool,
    },
    /// Ring more people into the current call.
    AddMembers {
        /// Who.
        users: Vec<String>,
    },
    /// Take the incoming call.
    Accept,
    /// Decline the incoming call.
    Decline,
    /// Take back our invitation (the waiting page's cancel).
    Cancel,
    /// Leave the call; it goes on for the others.
    Hangup,
    /// End the call for everyone.
    EndForAll,
    /// Microphone on or off.
    SetMic {
        /// On.
        on: bool,
    },
    /// Camera on or off.
    SetCamera {
        /// On.
        on: bool,
    },
    /// Speaker on or off.
    SetSpeaker {
        /// On.
        on: bool,
    },
    /// Use the next camera in the list.
    SwitchCamera,
    /// Pick devices (each `None` leaves that one as it is).
    ChooseDevices {
        /// Camera id, `synthetic` or `none`.
        camera: Option<String>,
        /// Microphone id or `tone`.
        microphone: Option<String>,
        /// Speaker id.
        speaker: Option<String>,
    },
    /// Show the camera outside a call (settings, waiting page) or stop it.
    Preview {
        /// On.
        on: bool,
    },
    /// Mark the history as seen (clears the missed-calls badge).
    MarkHistorySeen,
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Reply {
    /// Done; what changed arrives as events.
    Done,
    /// Search results.
    Users {
        /// Who matched.
        users: Vec<Person>,
    },
}

/// Why a command failed: a code to branch on and a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct UiError {
    /// What went wrong, for the UI to branch on.
    pub code: UiErrorCode,
    /// One sentence for people.
    pub message: String,
}

impl UiError {
    /// An error with `code` and `message`.
    pub fn new(code: UiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Every code a command can fail with: the server's (`ErrorCode`) and the
/// app's own. The UI gets them as a closed set, so it cannot test for one
/// that is never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum UiErrorCode {
    /// Wrong user name or password, or the session expired.
    Unauthorized,
    /// We are already calling, being called, or in a call.
    Busy,
    /// No such user or call.
    NotFound,
    /// The server found a request malformed.
    Invalid,
    /// Too many requests; wait a moment.
    RateLimited,
    /// A request too large for the protocol.
    TooLarge,
    /// Not a member of that call in a way that allows this.
    NotAMember,
    /// The call is over.
    CallEnded,
    /// The invitation was answered already (maybe on another device).
    AlreadyAnswered,
    /// Our role in the call does not allow this.
    NotAllowed,
    /// The call is full.
    LimitExceeded,
    /// That user name is taken.
    UserExists,
    /// The server speaks another protocol version.
    VersionMismatch,
    /// The server failed.
    Internal,
    /// The server cannot be reached.
    Unreachable,
    /// The connection dropped while waiting for an answer.
    Disconnected,
    /// The server did not answer in time.
    Timeout,
    /// Not signed in.
    SignedOut,
    /// Something the app did not expect.
    Unexpected,
    /// The app is closing.
    ShuttingDown,
    /// No other camera to switch to.
    NoOtherCamera,
    /// No call to act on.
    NoCall,
    /// No server chosen yet.
    NoServer,
    /// The server on this computer could not start.
    HostFailed,
    /// A device could not be opened.
    CameraFailed,
    /// A device could not be opened.
    MicrophoneFailed,
    /// A device could not be opened.
    SpeakerFailed,
    /// Nobody picked to call.
    NoOne,
    /// Already in a call.
    InCall,
    /// Not a server address.
    BadUrl,
    /// A value typed in is not valid.
    InvalidInput,
}

impl From<beckon_protocol::ErrorCode> for UiErrorCode {
    fn from(code: beckon_protocol::ErrorCode) -> Self {
        use beckon_protocol::ErrorCode as E;
        match code {
            E::Unauthorized => Self::Unauthorized,
            E::Busy => Self::Busy,
            E::NotFound => Self::NotFound,
            E::Invalid => Self::Invalid,
            E::RateLimited => Self::RateLimited,
            E::TooLarge => Self::TooLarge,
            E::NotAMember => Self::NotAMember,
            E::CallEnded => Self::CallEnded,
            E::AlreadyAnswered => Self::AlreadyAnswered,
            E::NotAllowed => Self::NotAllowed,
            E::LimitExceeded => Self::LimitExceeded,
            E::UserExists => Self::UserExists,
            E::VersionMismatch => Self::VersionMismatch,
            E::Internal => Self::Internal,
            _ => Self::Unexpected,
        }
    }
}

/// Someone, as a list or a tile shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Login name.
    pub id: String,
    /// Shown name.
    pub name: String,
    /// Picture, if any.
    pub avatar_url: Option<String>,
    /// Signed in somewhere now.
    pub online: bool,
    /// The built-in echo test.
    pub echo: bool,
}

/// Where the connection to the server stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Connection {
    /// No server chosen yet (first run).
    NoServer,
    /// A server is chosen; nobody is signed in.
    SignedOut {
        /// Why the last session ended, if it did not end by signing out.
        reason: Option<String>,
    },
    /// Signing in.
    Connecting,
    /// Signed in.
    Online,
    /// Lost; trying again.
    Reconnecting {
        /// What happened.
        reason: String,
        /// When the next attempt starts.
        retry_in_ms: u32,
    },
}

/// The server in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    /// WebSocket URL the app uses.
    pub url: String,
    /// Runs inside this app.
    pub hosted: bool,
    /// Addresses others on the network can use to reach a hosted server.
    pub lan_urls: Vec<String>,
}

/// Video or voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Camera and microphone.
    Video,
    /// Microphone only.
    Voice,
}

/// Where the current call stands for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Ringing here: the incoming dialog.
    Incoming,
    /// We rang; nobody answered yet: the waiting page.
    Outgoing,
    /// In the call: the calling page.
    Connected,
}

/// A member's part in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum MemberStatus {
    /// Being rung.
    Ringing,
    /// In the call.
    Joined,
    /// Left, declined, timed out or was taken back.
    Gone,
}

/// How the media path to a member is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Quality {
    /// Not connected yet.
    Connecting,
    /// Little loss, short round trip.
    Good,
    /// Some loss or delay.
    Fair,
    /// Heavy loss, long delay, or lost.
    Poor,
    /// The path broke; looking for a new one.
    Reconnecting,
}

/// One member of the current call.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Who.
    pub person: Person,
    /// Ringing, joined or gone.
    pub status: MemberStatus,
    /// Their microphone is on.
    pub mic: bool,
    /// Their camera is on.
    pub camera: bool,
    /// The media path.
    pub quality: Quality,
    /// Loudest recently (the active speaker).
    pub speaking: bool,
    /// Video frames decoded from them so far.
    pub frames: u32,
    /// Their camera is on but no picture came for a while: the tile shows
    /// the last one and says the connection is poor.
    pub video_stalled: bool,
}

/// The call this device is part of.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Server's id of the call.
    pub id: String,
    /// Video or voice.
    pub kind: Kind,
    /// Dialog, waiting page or calling page.
    pub phase: Phase,
    /// Who started it (for the incoming dialog and the waiting page).
    pub inviter: Person,
    /// Everyone else, in the order they were invited.
    pub members: Vec<Member>,
    /// When it connected (Unix ms), for the duration shown.
    pub connected_at_ms: Option<f64>,
    /// Our microphone.
    pub mic: bool,
    /// Our camera.
    pub camera: bool,
    /// Our speaker.
    pub speaker: bool,
    /// Our camera is on, but the connection has no room for video beside
    /// the audio: the others see our picture again when it has.
    pub video_paused: bool,
    /// We may end it for all (we are in it; see
    /// `MemberState::may_end_for_all`).
    pub can_end_for_all: bool,
}

/// How a call ended, for the waiting page and a short notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CallOutcome {
    /// The call.
    pub id: String,
    /// `declined`, `busy`, `no_answer`, `offline`, `cancelled`, `missed`, `ended`,
    /// `answered_elsewhere`, `failed`.
    pub reason: String,
    /// One sentence for people, e.g. "Bob declined."
    pub message: String,
}

/// One past call.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    /// The call.
    pub id: String,
    /// Video or voice.
    pub kind: Kind,
    /// We started it.
    pub outgoing: bool,
    /// The others.
    pub with: Vec<Person>,
    /// When it started (Unix ms).
    pub started_at_ms: f64,
    /// Connected time.
    pub duration_secs: u32,
    /// `answered`, `missed`, `declined`, `cancelled`, `busy`, `failed`.
    pub outcome: String,
    /// An incoming call we did not take.
    pub missed: bool,
}

/// A device to choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// What to send back in `chooseDevices`.
    pub id: String,
    /// Shown.
    pub name: String,
}

/// Devices, and which ones are chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Devices {
    /// Cameras (always with the test pattern and "none").
    pub cameras: Vec<Device>,
    /// Microphones (always with the test tone).
    pub microphones: Vec<Device>,
    /// Speakers.
    pub speakers: Vec<Device>,
    /// Chosen camera id.
    pub camera: String,
    /// Chosen microphone id.
    pub microphone: String,
    /// Chosen speaker id.
    pub speaker: String,
    /// Problems to show, e.g. "No camera found."
    pub problems: Vec<String>,
}

/// Everything the UI shows, at once (sent on start and on request).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The server connection.
    pub connection: Connection,
    /// The server in use, once chosen.
    pub server: Option<ServerView>,
    /// Signed-in user.
    pub me: Option<Person>,
    /// Contacts with presence.
    pub contacts: Vec<Person>,
    /// Past calls, newest first.
    pub history: Vec<HistoryItem>,
    /// Missed calls not yet seen.
    pub missed: u32,
    /// The current call.
    pub call: Option<Call>,
    /// Devices.
    pub devices: Devices,
    /// The last user id signed in with (to prefill the form).
    pub last_user: Option<String>,
}

/// A change the UI should show. Each carries the whole of its part.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum UiEvent {
    /// The server connection changed.
    Connection {
        /// How it stands.
        connection: Connection,
        /// The server.
        server: Option<ServerView>,
        /// Signed-in user.
        me: Option<Person>,
    },
    /// Contacts or their presence changed.
    Contacts {
        /// All of them.
        contacts: Vec<Person>,
    },
    /// The history changed.
    History {
        /// Newest first.
        history: Vec<HistoryItem>,
        /// Missed calls not yet seen.
        missed: u32,
    },
    /// The current call changed (or ended: `null`).
    Call {
        /// The call.
        call: Option<Call>,
    },
    /// A call ended, or did not connect; why.
    CallEnded {
        /// Why.
        outcome: CallOutcome,
    },
    /// Device lists or choices changed.
    Devices {
        /// Devices.
        devices: Devices,
    },
    /// The microphone's level (0–1), about ten times a second while the
    /// settings page or a call is open.
    MicLevel {
        /// RMS of the last 100 ms, 0–1.
        level: f32,
    },
    /// Something went wrong that no command is waiting for.
    Problem {
        /// What.
        message: String,
    },
}

/// Name of the Tauri event that carries [`UiEvent`]s.
pub const EVENT: &str = "beckon://event";

/// A tile's frame (`next_frame`) starts with this header (little endian):
/// width u32, height u32, capture time µs u64, frame number u64; then the
/// I420 planes.
pub const FRAME_HEADER: usize = 24;
