//! `beckon-peer`: a headless Beckon user. It signs in, calls or answers on
//! cue, stays in a call for a while, and prints every event as one JSON line,
//! so tests, benchmarks and demos can drive and watch real clients.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use beckon_peer::{Options, run};
//! use clap::Parser;
//! let options = Options::parse_from([
//!     "beckon-peer", "--server", "ws://127.0.0.1:7600/ws", "--user", "bob",
//!     "--password", "correct horse", "--register", "--on-incoming", "accept",
//!     "--exit-after-call",
//! ]);
//! run(options, std::io::stdout()).await?;
//! # Ok(()) }
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use beckon_client::Notice;
use beckon_client::{Client, ClientConfig, ClientEvent, Credentials, StopReason};
use beckon_protocol::{CallId, CallKind, DeviceId, Password, RejectReason, UserId};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use beckon_media::call::MediaEvent;
use beckon_session::SessionEvent;

pub mod echo;
mod media;

/// What the peer does when someone rings it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnIncoming {
    /// Answer (after `--answer-after-ms`).
    Accept,
    /// Decline.
    Reject,
    /// Decline as busy.
    Busy,
    /// Let it ring.
    Ignore,
}

/// What the peer does once its call is connected and `--hold-secs` passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hangup {
    /// Leave the call; it goes on for the others.
    Quit,
    /// End the call for everyone.
    End,
    /// Stay until someone else ends it.
    Stay,
}

/// A headless Beckon user: signs in, calls or answers on cue, and prints each
/// event as a JSON line on stdout.
#[derive(Debug, Clone, Parser)]
#[command(name = "beckon-peer", version)]
pub struct Options {
    /// Server WebSocket URL.
    #[arg(long, env = "BECKON_SERVER", default_value = "ws://127.0.0.1:7600/ws")]
    pub server: String,
    /// User id to sign in as.
    #[arg(long)]
    pub user: UserId,
    /// Password.
    #[arg(long, env = "BECKON_PASSWORD", hide_env_values = true)]
    pub password: Password,
    /// Create the account first (its display name is `--name`, or the id).
    #[arg(long)]
    pub register: bool,
    /// Display name for `--register`.
    #[arg(long)]
    pub name: Option<String>,
    /// Device id of this peer.
    #[arg(long, default_value = "peer")]
    pub device: DeviceId,
    /// Users to call once signed in (comma-separated; several make a group
    /// call).
    #[arg(long, value_delimiter = ',')]
    pub call: Vec<UserId>,
    /// Wait this long after signing in before calling (lets callees sign in).
    #[arg(long, default_value_t = 0)]
    pub call_after_ms: u64,
    /// Video or voice.
    #[arg(long, value_enum, default_value_t = Kind::Video)]
    pub kind: Kind,
    /// Ring timeout of our invitations, in seconds.
    #[arg(long)]
    pub timeout_secs: Option<u32>,
    /// Take our invitation back this long after placing it, unless answered.
    #[arg(long)]
    pub cancel_after_ms: Option<u64>,
    /// What to do when rung.
    #[arg(long, value_enum, default_value_t = OnIncoming::Accept)]
    pub on_incoming: OnIncoming,
    /// Delay before answering, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub answer_after_ms: u64,
    /// Seconds to stay in a connected call before `--hangup`.
    #[arg(long, default_value_t = 2.0)]
    pub hold_secs: f64,
    /// How to leave a connected call after `--hold-secs`.
    #[arg(long, value_enum, default_value_t = Hangup::End)]
    pub hangup: Hangup,
    /// Users to add as contacts once signed in (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub contacts: Vec<UserId>,
    /// Exit once the first call is over.
    #[arg(long)]
    pub exit_after_call: bool,
    /// Exit after this many seconds in any case.
    #[arg(long)]
    pub exit_after_secs: Option<f64>,
    /// Camera: `synthetic` (a test pattern with frame numbers burned in),
    /// `none`, `default`, or a camera id.
    #[arg(long, default_value = "synthetic")]
    pub camera: String,
    /// Microphone: `tone` (a sine whose pitch names this user), `default`,
    /// or a microphone id.
    #[arg(long, default_value = "tone")]
    pub mic: String,
    /// Speaker: `null` (play nothing, still measure), `default`, or an id.
    #[arg(long, default_value = "null")]
    pub speaker: String,
    /// Video size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    pub video_size: (u32, u32),
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Local address for media (repeatable); `0.0.0.0:0` is every interface.
    #[arg(long = "udp-addr", default_value = "0.0.0.0:0")]
    pub udp_addrs: Vec<String>,
    /// Signaling only: join calls without any media.
    #[arg(long)]
    pub no_media: bool,
    /// Join calls with the microphone off.
    #[arg(long)]
    pub mic_off: bool,
    /// Join calls with the camera off.
    #[arg(long)]
    pub camera_off: bool,
    /// Stop sending video this long into a call, with the camera still on
    /// (a frame every 3 s after): what a receiver sees of a path that stalls.
    #[arg(long)]
    pub stall_video_after_ms: Option<u64>,
    /// Print media statistics every this many seconds in a call (0: never).
    #[arg(long, default_value_t = 1.0)]
    pub stats_every_secs: f64,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or("use WIDTHxHEIGHT, e.g. 640x480")?;
    let (w, h): (u32, u32) = (
        w.parse().map_err(|_| "bad width")?,
        h.parse().map_err(|_| "bad height")?,
    );
    if w < 16 || h < 16 || w % 2 == 1 || h % 2 == 1 || w > 3840 || h > 2160 {
        return Err(format!(
            "{w}x{h}: use even sizes between 16x16 and 3840x2160"
        ));
    }
    Ok((w, h))
}

/// Call kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Camera and microphone.
    Video,
    /// Microphone only.
    Voice,
}

impl From<Kind> for CallKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Video => CallKind::Video,
            Kind::Voice => CallKind::Voice,
        }
    }
}

/// Writes events as JSON lines.
struct Log<W: Write> {
    out: W,
    start: Instant,
    user: UserId,
}

impl<W: Write> Log<W> {
    fn line(&mut self, event: &str, mut fields: Value) {
        let obj = fields.as_object_mut().expect("fields are an object");
        obj.insert(
            "at_ms".into(),
            json!(self.start.elapsed().as_millis() as u64),
        );
        obj.insert("user".into(), json!(self.user));
        obj.insert("event".into(), json!(event));
        // Stdout going away is no reason to stop a call half-way.
        let _ = writeln!(self.out, "{fields}");
        let _ = self.out.flush();
    }
}

/// Runs the peer until it is told to exit (or its session ends), writing
/// one JSON line per event to `out`.
pub async fn run<W: Write + Send>(options: Options, out: W) -> anyhow::Result<()> {
    let mut log = Log {
        out,
        start: Instant::now(),
        user: options.user.clone(),
    };
    let credentials = if options.register {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| options.user.to_string());
        Credentials::Register {
            user: options.user.clone(),
            password: options.password.clone(),
            display_name: name.parse().context("--name")?,
        }
    } else {
        Credentials::login(options.user.clone(), options.password.clone())
    };
    let config = ClientConfig::new(&options.server, options.device.clone(), credentials);
    let (client, mut events) = match Client::connect(config).await {
        Ok(pair) => pair,
        Err(e) => {
            log.line(
                "error",
                json!({ "stage": "sign_in", "message": e.to_string(), "code": e.code() }),
            );
            return Err(e).context("signing in");
        }
    };
    let mut peer = Peer {
        client,
        options,
        answered: None,
        hangup_at: None,
        call_at: None,
        cancel_at: None,
        done: false,
        media: None,
        we_joined_last: false,
        accepted_at: std::time::Instant::now(),
        stats_at: None,
    };
    let deadline = peer
        .options
        .exit_after_secs
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    while !peer.done {
        let wake = [
            peer.hangup_at,
            peer.call_at,
            peer.cancel_at,
            peer.answered.as_ref().map(|(_, at)| *at),
            peer.stats_at,
            deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => peer.on_event(event, &mut log).await,
                None => break,
            },
            Some(event) = next_media_event(&mut peer.media) => peer.on_media(event, &mut log).await,
            () = sleep_until(wake) => peer.on_timer(&mut log, deadline).await,
        }
    }
    Ok(())
}

struct Peer {
    client: Client,
    options: Options,
    /// An invitation we will answer at the instant given.
    answered: Option<(CallId, tokio::time::Instant)>,
    hangup_at: Option<tokio::time::Instant>,
    call_at: Option<tokio::time::Instant>,
    cancel_at: Option<tokio::time::Instant>,
    done: bool,
    media: Option<media::MediaSession>,
    /// We answered (or joined) after the others were in: we offer to them.
    we_joined_last: bool,
    /// When we answered, or placed our call.
    accepted_at: std::time::Instant,
    stats_at: Option<tokio::time::Instant>,
}

async fn next_media_event(media: &mut Option<media::MediaSession>) -> Option<SessionEvent> {
    match media {
        Some(m) => m.next_event().await,
        None => std::future::pending().await,
    }
}

impl Peer {
    async fn on_event<W: Write>(&mut self, event: ClientEvent, log: &mut Log<W>) {
        // The call's media follows members coming and going, and their
        // signals.
        if let Some(m) = &self.media
            && let Err(e) = m.follow(&event).await
        {
            let who = match &event {
                ClientEvent::Signal { from, .. } => {
                    json!({ "from": from, "message": e.to_string() })
                }
                ClientEvent::Notice(Notice::MemberChanged { change }) => {
                    json!({ "who": change.user, "message": e.to_string() })
                }
                _ => json!({ "message": e.to_string() }),
            };
            log.line("media_error", who);
        }
        match event {
            ClientEvent::Connected { session } => {
                log.line(
                    "signed_in",
                    json!({ "device": session.device, "resumed": session.resumed }),
                );
                if session.resumed {
                    // Whatever broke signaling may have broken the media
                    // paths too, and an ICE restart offered meanwhile may
                    // have been lost.
                    if let Some(m) = &self.media {
                        m.media().reconnect_all();
                    }
                    return;
                }
                for contact in self.options.contacts.clone() {
                    if let Err(e) = self.client.add_contact(contact.clone()).await {
                        log.line("error", json!({ "stage": "add_contact", "user": contact, "message": e.to_string() }));
                    }
                }
                if !self.options.call.is_empty() {
                    self.call_at = Some(
                        tokio::time::Instant::now()
                            + Duration::from_millis(self.options.call_after_ms),
                    );
                }
            }
            ClientEvent::Disconnected { reason, retry_in } => {
                log.line(
                    "disconnected",
                    json!({ "reason": reason, "retry_in_ms": retry_in.as_millis() as u64 }),
                );
            }
            ClientEvent::Presence { user, online } => {
                log.line("presence", json!({ "who": user, "online": online }))
            }
            // Ours went to the call's media above; others are only logged.
            ClientEvent::Signal { call_id, from, .. }
                if self.media.as_ref().is_none_or(|m| m.call_id() != &call_id) =>
            {
                log.line(
                    "signal",
                    json!({ "call_id": call_id, "from": from, "ignored": true }),
                );
            }
            ClientEvent::Stopped { reason } => {
                let reason = match reason {
                    StopReason::Closed(r) => json!(r),
                    StopReason::Refused(m) => json!(m),
                    _ => json!("dropped"),
                };
                log.line("stopped", json!({ "reason": reason }));
                self.done = true;
            }
            ClientEvent::Notice(notice) => self.on_notice(notice, log).await,
            _ => {}
        }
    }

    async fn on_notice<W: Write>(&mut self, notice: Notice, log: &mut Log<W>) {
        match notice {
            Notice::IncomingReceived { call, by } => {
                log.line("incoming", json!({ "call_id": call.call_id, "by": by, "kind": call.kind, "members": call.members.len() }));
                match self.options.on_incoming {
                    OnIncoming::Accept => {
                        let at = tokio::time::Instant::now()
                            + Duration::from_millis(self.options.answer_after_ms);
                        self.answered = Some((call.call_id, at));
                    }
                    OnIncoming::Reject | OnIncoming::Busy => {
                        let reason = if self.options.on_incoming == OnIncoming::Busy {
                            RejectReason::Busy
                        } else {
                            RejectReason::Declined
                        };
                        let r = self.client.reject(call.call_id.clone(), reason).await;
                        log.line(
                            "rejected",
                            json!({ "call_id": call.call_id, "reason": reason, "ok": r.is_ok() }),
                        );
                    }
                    OnIncoming::Ignore => {}
                }
            }
            Notice::IncomingCancelled { call_id, by } => {
                self.answered = None;
                log.line("cancelled", json!({ "call_id": call_id, "by": by }));
                self.finish_call();
            }
            Notice::IncomingTimeout { call_id } => {
                self.answered = None;
                log.line("ring_timeout", json!({ "call_id": call_id }));
                self.finish_call();
            }
            Notice::AnsweredElsewhere { call_id, accepted } => {
                self.answered = None;
                log.line(
                    "answered_elsewhere",
                    json!({ "call_id": call_id, "accepted": accepted }),
                );
                self.stop_media(log).await;
            }
            Notice::MemberChanged { change } => {
                log.line(
                    "member",
                    json!({ "call_id": change.call_id, "who": change.user, "state": change.state, "reason": change.reason }),
                );
            }
            Notice::CallStarted { call_id } => {
                self.cancel_at = None;
                let members: Vec<_> = self
                    .client
                    .current_call()
                    .map(|c| {
                        c.info
                            .members
                            .iter()
                            .filter(|m| m.state == beckon_protocol::MemberState::Accepted)
                            .map(|m| m.user.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                log.line(
                    "call_started",
                    json!({ "call_id": call_id, "in_call": members }),
                );
                self.start_media(call_id, log).await;
                if self.options.hangup != Hangup::Stay {
                    self.hangup_at = Some(
                        tokio::time::Instant::now()
                            + Duration::from_secs_f64(self.options.hold_secs),
                    );
                }
            }
            Notice::CallEnded {
                call_id,
                reason,
                by,
                ..
            } => {
                log.line(
                    "call_ended",
                    json!({ "call_id": call_id, "reason": reason, "by": by }),
                );
                self.stop_media(log).await;
                self.hangup_at = None;
                self.finish_call();
            }
            Notice::EndedWhileOffline { call_id } => {
                log.line("call_lost", json!({ "call_id": call_id }));
                self.stop_media(log).await;
                self.finish_call();
            }
            Notice::MissedWhileBusy { call, by } => {
                log.line(
                    "missed_while_busy",
                    json!({ "call_id": call.call_id, "by": by }),
                );
            }
            Notice::BusyChanged { busy } => log.line("busy", json!({ "busy": busy })),
            _ => {}
        }
    }

    async fn on_timer<W: Write>(
        &mut self,
        log: &mut Log<W>,
        deadline: Option<tokio::time::Instant>,
    ) {
        let now = tokio::time::Instant::now();
        if self.stats_at.is_some_and(|at| at <= now) {
            self.stats_at = Some(now + Duration::from_secs_f64(self.options.stats_every_secs));
            if let Some(m) = &self.media {
                log.line("stats", m.stats().await);
            }
        }
        if deadline.is_some_and(|d| d <= now) {
            log.line("exit", json!({ "reason": "exit_after_secs" }));
            self.done = true;
            return;
        }
        if self.call_at.is_some_and(|at| at <= now) {
            self.call_at = None;
            let users = self.options.call.clone();
            match self
                .client
                .invite(
                    users.clone(),
                    self.options.kind.into(),
                    self.options.timeout_secs,
                )
                .await
            {
                Ok(inv) => {
                    self.cancel_at = self
                        .options
                        .cancel_after_ms
                        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
                    self.we_joined_last = inv.merged;
                    self.accepted_at = std::time::Instant::now();
                    let results: Vec<_> = inv
                        .results
                        .iter()
                        .map(|r| json!({ "who": r.user, "error": r.error }))
                        .collect();
                    log.line("invited", json!({ "call_id": inv.call.call_id, "results": results, "merged": inv.merged }));
                }
                Err(e) => {
                    log.line(
                        "error",
                        json!({ "stage": "invite", "code": e.code(), "message": e.to_string() }),
                    );
                    self.finish_call();
                }
            }
        }
        if let Some((call_id, _)) = self.answered.take_if(|(_, at)| *at <= now) {
            match self.client.accept(call_id.clone()).await {
                Ok(_) => {
                    self.we_joined_last = true;
                    self.accepted_at = std::time::Instant::now();
                    log.line("accepted", json!({ "call_id": call_id }));
                }
                Err(e) => log.line(
                    "error",
                    json!({ "stage": "accept", "code": e.code(), "message": e.to_string() }),
                ),
            }
        }
        if self.cancel_at.is_some_and(|at| at <= now) {
            self.cancel_at = None;
            let pending = self
                .client
                .current_call()
                .filter(|c| c.phase == beckon_client::Phase::Outgoing);
            if let Some(call) = pending {
                let r = self.client.cancel(call.info.call_id.clone(), None).await;
                log.line(
                    "cancelled_ours",
                    json!({ "call_id": call.info.call_id, "ok": r.is_ok() }),
                );
            }
        }
        if self.hangup_at.is_some_and(|at| at <= now) {
            self.hangup_at = None;
            let Some(call_id) = self.client.current_call().map(|c| c.info.call_id) else {
                return;
            };
            let result = match self.options.hangup {
                Hangup::End => self.client.end(call_id.clone()).await,
                Hangup::Quit => self.client.quit(call_id.clone()).await,
                Hangup::Stay => Ok(()),
            };
            if let Err(e) = result {
                log.line(
                    "error",
                    json!({ "stage": "hangup", "code": e.code(), "message": e.to_string() }),
                );
            }
        }
    }

    /// Starts the call's media and connects to everyone in it. We offer
    /// when we joined after them.
    async fn start_media<W: Write>(&mut self, call_id: CallId, log: &mut Log<W>) {
        if self.options.no_media || self.media.is_some() {
            return;
        }
        let kind = self
            .client
            .current_call()
            .map_or(CallKind::Video, |c| c.info.kind);
        if !self.we_joined_last {
            // We were waiting: the call starts now, with their answer.
            self.accepted_at = std::time::Instant::now();
        }
        let options = media::MediaOptions {
            camera: self.options.camera.clone(),
            mic: self.options.mic.clone(),
            speaker: self.options.speaker.clone(),
            width: self.options.video_size.0,
            height: self.options.video_size.1,
            fps: self.options.fps,
            udp_addrs: self.options.udp_addrs.clone(),
            stall_video_after: self.options.stall_video_after_ms.map(Duration::from_millis),
        };
        let started = media::MediaSession::start(
            &options,
            &self.client,
            call_id,
            self.we_joined_last,
            self.accepted_at,
        )
        .await;
        let (session, failures) = match started {
            Ok(started) => started,
            Err(e) => {
                log.line(
                    "media_error",
                    json!({ "stage": "start", "message": e.to_string() }),
                );
                return;
            }
        };
        for e in failures {
            log.line("device_failed", json!({ "message": e.to_string() }));
        }
        if self.options.mic_off {
            session.media().set_mic(false);
        }
        if self.options.camera_off {
            session.media().set_camera(false);
        }
        log.line(
            "media_started",
            json!({ "kind": kind, "offering": self.we_joined_last }),
        );
        self.media = Some(session);
        if self.options.stats_every_secs > 0.0 {
            self.stats_at = Some(
                tokio::time::Instant::now()
                    + Duration::from_secs_f64(self.options.stats_every_secs),
            );
        }
    }

    async fn stop_media<W: Write>(&mut self, log: &mut Log<W>) {
        if let Some(m) = self.media.take() {
            let summary = m.summary().await;
            m.close().await;
            log.line("media_summary", summary);
        }
        self.stats_at = None;
        self.we_joined_last = false;
    }

    /// What the call's media reports.
    async fn on_media<W: Write>(&mut self, event: SessionEvent, log: &mut Log<W>) {
        let event = match event {
            SessionEvent::Media(event) => event,
            SessionEvent::SignalNotSent { to, error } => {
                log.line(
                    "media_error",
                    json!({ "stage": "signal", "to": to, "message": error.to_string() }),
                );
                return;
            }
        };
        match event {
            MediaEvent::PeerState { user, state } => {
                log.line(
                    "peer_state",
                    json!({ "who": user, "state": format!("{state:?}").to_lowercase() }),
                );
            }
            MediaEvent::RemoteMediaState { user, mic, camera } => {
                log.line(
                    "media_state",
                    json!({ "who": user, "mic": mic, "camera": camera }),
                );
            }
            MediaEvent::DeviceFailed(e) => {
                log.line("device_failed", json!({ "message": e.to_string() }))
            }
            MediaEvent::Rejected { from, error } => {
                log.line(
                    "media_error",
                    json!({ "from": from, "message": error.to_string() }),
                );
            }
            _ => {}
        }
    }

    fn finish_call(&mut self) {
        if self.options.exit_after_call {
            self.done = true;
        }
    }
}

/// Sleeps until `at`, or forever without one (a `select!` arm that never fires).
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
