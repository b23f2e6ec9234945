// Generated from src-tauri/src/view.rs by ts-rs. Do not edit: run `cargo xtask bindings`.

export type Command = { "type": "host", 
/**
 * Port to listen on; a free one when taken or absent.
 */
port: number | null, } | { "type": "useServer", 
/**
 * `ws://host:port/ws` or `wss://…` (a bare `host:port` works too).
 */
url: string, } | { "type": "signIn", 
/**
 * Login name.
 */
user: string, 
/**
 * Password.
 */
password: string, } | { "type": "register", 
/**
 * Login name.
 */
user: string, 
/**
 * Shown name.
 */
name: string, 
/**
 * Password.
 */
password: string, } | { "type": "signOut" } | { "type": "search", 
/**
 * Part of a login or shown name.
 */
query: string, } | { "type": "addContact", 
/**
 * Who.
 */
user: string, } | { "type": "removeContact", 
/**
 * Who.
 */
user: string, } | { "type": "call", 
/**
 * Who (several: a group call).
 */
users: Array<string>, 
/**
 * With video, or voice only.
 */
video: boolean, } | { "type": "addMembers", 
/**
 * Who.
 */
users: Array<string>, } | { "type": "accept" } | { "type": "decline" } | { "type": "cancel" } | { "type": "hangup" } | { "type": "endForAll" } | { "type": "setMic", 
/**
 * On.
 */
on: boolean, } | { "type": "setCamera", 
/**
 * On.
 */
on: boolean, } | { "type": "setSpeaker", 
/**
 * On.
 */
on: boolean, } | { "type": "switchCamera" } | { "type": "chooseDevices", 
/**
 * Camera id, `synthetic` or `none`.
 */
camera: string | null, 
/**
 * Microphone id or `tone`.
 */
microphone: string | null, 
/**
 * Speaker id.
 */
speaker: string | null, } | { "type": "preview", 
/**
 * On.
 */
on: boolean, } | { "type": "markHistorySeen" };

export type Reply = { "type": "done" } | { "type": "users", 
/**
 * Who matched.
 */
users: Array<Person>, };

export type UiError = { 
/**
 * What went wrong, for the UI to branch on.
 */
code: UiErrorCode, 
/**
 * One sentence for people.
 */
message: string, };

export type UiErrorCode = "unauthorized" | "busy" | "not_found" | "invalid" | "rate_limited" | "too_large" | "not_a_member" | "call_ended" | "already_answered" | "not_allowed" | "limit_exceeded" | "user_exists" | "version_mismatch" | "internal" | "unreachable" | "disconnected" | "timeout" | "signed_out" | "unexpected" | "shutting_down" | "no_other_camera" | "no_call" | "no_server" | "host_failed" | "camera_failed" | "microphone_failed" | "speaker_failed" | "no_one" | "in_call" | "bad_url" | "invalid_input";

export type Person = { 
/**
 * Login name.
 */
id: string, 
/**
 * Shown name.
 */
name: string, 
/**
 * Picture, if any.
 */
avatarUrl: string | null, 
/**
 * Signed in somewhere now.
 */
online: boolean, 
/**
 * The built-in echo test.
 */
echo: boolean, };

export type Connection = { "state": "noServer" } | { "state": "signedOut", 
/**
 * Why the last session ended, if it did not end by signing out.
 */
reason: string | null, } | { "state": "connecting" } | { "state": "online" } | { "state": "reconnecting", 
/**
 * What happened.
 */
reason: string, 
/**
 * When the next attempt starts.
 */
retryInMs: number, };

export type ServerView = { 
/**
 * WebSocket URL the app uses.
 */
url: string, 
/**
 * Runs inside this app.
 */
hosted: boolean, 
/**
 * Addresses others on the network can use to reach a hosted server.
 */
lanUrls: Array<string>, };

export type Kind = "video" | "voice";

export type Phase = "incoming" | "outgoing" | "connected";

export type MemberStatus = "ringing" | "joined" | "gone";

export type Quality = "connecting" | "good" | "fair" | "poor" | "reconnecting";

export type Member = { 
/**
 * Who.
 */
person: Person, 
/**
 * Ringing, joined or gone.
 */
status: MemberStatus, 
/**
 * Their microphone is on.
 */
mic: boolean, 
/**
 * Their camera is on.
 */
camera: boolean, 
/**
 * The media path.
 */
quality: Quality, 
/**
 * Loudest recently (the active speaker).
 */
speaking: boolean, 
/**
 * Video frames decoded from them so far.
 */
frames: number, 
/**
 * Their camera is on but no picture came for a while: the tile shows
 * the last one and says the connection is poor.
 */
videoStalled: boolean, };

export type Call = { 
/**
 * Server's id of the call.
 */
id: string, 
/**
 * Video or voice.
 */
kind: Kind, 
/**
 * Dialog, waiting page or calling page.
 */
phase: Phase, 
/**
 * Who started it (for the incoming dialog and the waiting page).
 */
inviter: Person, 
/**
 * Everyone else, in the order they were invited.
 */
members: Array<Member>, 
/**
 * When it connected (Unix ms), for the duration shown.
 */
connectedAtMs: number | null, 
/**
 * Our microphone.
 */
mic: boolean, 
/**
 * Our camera.
 */
camera: boolean, 
/**
 * Our speaker.
 */
speaker: boolean, 
/**
 * Our camera is on, but the connection has no room for video beside
 * the audio: the others see our picture again when it has.
 */
videoPaused: boolean, 
/**
 * We may end it for all (we are in it; see
 * `MemberState::may_end_for_all`).
 */
canEndForAll: boolean, };

export type CallOutcome = { 
/**
 * The call.
 */
id: string, 
/**
 * `declined`, `busy`, `no_answer`, `offline`, `cancelled`, `missed`, `ended`,
 * `answered_elsewhere`, `failed`.
 */
reason: string, 
/**
 * One sentence for people, e.g. "Bob declined."
 */
message: string, };

export type HistoryItem = { 
/**
 * The call.
 */
id: string, 
/**
 * Video or voice.
 */
kind: Kind, 
/**
 * We started it.
 */
outgoing: boolean, 
/**
 * The others.
 */
with: Array<Person>, 
/**
 * When it started (Unix ms).
 */
startedAtMs: number, 
/**
 * Connected time.
 */
durationSecs: number, 
/**
 * `answered`, `missed`, `declined`, `cancelled`, `busy`, `failed`.
 */
outcome: string, 
/**
 * An incoming call we did not take.
 */
missed: boolean, };

export type Device = { 
/**
 * What to send back in `chooseDevices`.
 */
id: string, 
/**
 * Shown.
 */
name: string, };

export type Devices = { 
/**
 * Cameras (always with the test pattern and "none").
 */
cameras: Array<Device>, 
/**
 * Microphones (always with the test tone).
 */
microphones: Array<Device>, 
/**
 * Speakers.
 */
speakers: Array<Device>, 
/**
 * Chosen camera id.
 */
camera: string, 
/**
 * Chosen microphone id.
 */
microphone: string, 
/**
 * Chosen speaker id.
 */
speaker: string, 
/**
 * Problems to show, e.g. "No camera found."
 */
problems: Array<string>, };

export type Snapshot = { 
/**
 * The server connection.
 */
connection: Connection, 
/**
 * The server in use, once chosen.
 */
server: ServerView | null, 
/**
 * Signed-in user.
 */
me: Person | null, 
/**
 * Contacts with presence.
 */
contacts: Array<Person>, 
/**
 * Past calls, newest first.
 */
history: Array<HistoryItem>, 
/**
 * Missed calls not yet seen.
 */
missed: number, 
/**
 * The current call.
 */
call: Call | null, 
/**
 * Devices.
 */
devices: Devices, 
/**
 * The last user id signed in with (to prefill the form).
 */
lastUser: string | null, };

export type UiEvent = { "type": "connection", 
/**
 * How it stands.
 */
connection: Connection, 
/**
 * The server.
 */
server: ServerView | null, 
/**
 * Signed-in user.
 */
me: Person | null, } | { "type": "contacts", 
/**
 * All of them.
 */
contacts: Array<Person>, } | { "type": "history", 
/**
 * Newest first.
 */
history: Array<HistoryItem>, 
/**
 * Missed calls not yet seen.
 */
missed: number, } | { "type": "call", 
/**
 * The call.
 */
call: Call | null, } | { "type": "callEnded", 
/**
 * Why.
 */
outcome: CallOutcome, } | { "type": "devices", 
/**
 * Devices.
 */
devices: Devices, } | { "type": "micLevel", 
/**
 * RMS of the last 100 ms, 0–1.
 */
level: number, } | { "type": "problem", 
/**
 * What.
 */
message: string, };

/** Name of the event that carries `UiEvent`s. */
export const EVENT = "beckon://event";

/** Bytes before the I420 planes of a video frame. */
export const FRAME_HEADER = 24;
