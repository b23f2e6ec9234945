//! One call's media, driven by the signaling client: the part of a call
//! that the desktop app, `beckon-peer` and the echo contact share.
//!
//! A [`CallSession`] starts when the client's call connects. It takes the
//! ICE servers from the signed-in session, opens a link to every member
//! already in the call, and then follows the call: a member who comes in
//! later gets a link (the one who entered later makes the offer), one who
//! leaves loses theirs, signals from members go to their link and the
//! signals a link wants sent go out through the client.
//!
//! ```no_run
//! # async fn run(client: beckon_client::Client, sources: beckon_session::Sources)
//! # -> Result<(), beckon_media::MediaError> {
//! use beckon_session::{CallSession, SessionEvent, SessionOptions};
//! let call_id = client.current_call().expect("a connected call").info.call_id;
//! let mut session = CallSession::start(&client, call_id, sources, SessionOptions::default()).await?;
//! // For each client event: session.follow(&event).await;
//! while let Some(event) = session.next_event().await {
//!     match event {
//!         SessionEvent::Media(e) => { /* levels, link states, a device that failed */ }
//!         SessionEvent::SignalNotSent { to, error } => { /* the link retries */ }
//!     }
//! }
//! session.close().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use beckon_client::{Client, ClientError, ClientEvent, Notice};
use beckon_media::MediaError;
use beckon_media::call::{CallConfig, CallMedia, MediaEvent};
use beckon_media::pipeline::VideoSink;
use beckon_media::sink::mixer::AudioOutput;
use beckon_media::source::{AudioSource, VideoSource};
use beckon_protocol::{CallId, CallKind, MemberState, UserId};
use tokio::sync::mpsc::UnboundedReceiver;

/// Where a call's media comes from and goes to.
pub struct Sources {
    /// The camera (`None`: no picture; a voice call never opens one).
    pub camera: Option<Box<dyn VideoSource>>,
    /// The microphone (or silence).
    pub mic: Box<dyn AudioSource>,
    /// Where the mixed voices play.
    pub speaker: Box<dyn AudioOutput>,
    /// Where each member's decoded video goes.
    pub sink: Arc<dyn VideoSink>,
    /// Where our own picture goes, as sent (the self view), if anywhere.
    pub self_view: Option<Arc<dyn VideoSink>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("camera", &self.camera.is_some())
            .field("self_view", &self.self_view.is_some())
            .finish_non_exhaustive()
    }
}

/// How a session starts.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// We entered the call after the members already in it (we answered,
    /// joined, or called back in a glare): we make the offers to them.
    pub we_offer: bool,
    /// Start with the microphone on.
    pub mic_on: bool,
    /// Start with the camera on (video calls only).
    pub camera_on: bool,
    /// Local addresses to gather candidates on (see [`CallConfig`]).
    pub udp_addrs: Vec<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            we_offer: false,
            mic_on: true,
            camera_on: true,
            udp_addrs: vec!["0.0.0.0:0".into()],
        }
    }
}

/// What following a client event did to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// A member came into the call: a link to them is up (they offer).
    Added(UserId),
    /// A member left the call: their link is gone.
    Removed(UserId),
    /// A member's signal went to their link.
    Signalled(UserId),
    /// Nothing about this call's media.
    Nothing,
}

/// What the session reports.
#[derive(Debug)]
pub enum SessionEvent {
    /// From the media (link states, members' mic and camera, a device that
    /// stopped, signaling it could not use); signals are already sent.
    Media(MediaEvent),
    /// A signal for `to` could not be sent (the connection dropped); the
    /// link repeats what it needs once the connection is back.
    SignalNotSent {
        /// For whom.
        to: UserId,
        /// Why.
        error: ClientError,
    },
}

/// One call's media, following the client; see the crate docs.
#[derive(Debug)]
pub struct CallSession {
    client: Client,
    call_id: CallId,
    me: UserId,
    media: Arc<CallMedia>,
    events: UnboundedReceiver<MediaEvent>,
}

impl CallSession {
    /// Starts the media of `call_id`, the client's current call, and
    /// connects to every member in it. Must run inside a tokio runtime.
    pub async fn start(
        client: &Client,
        call_id: CallId,
        sources: Sources,
        options: SessionOptions,
    ) -> Result<Self, MediaError> {
        let me = client
            .me()
            .ok_or_else(|| MediaError::Signaling("not signed in".into()))?;
        let current = client
            .current_call()
            .filter(|c| c.info.call_id == call_id)
            .ok_or_else(|| MediaError::Signaling(format!("call {call_id} is not ours")))?;
        let kind = current.info.kind;
        let mut config = CallConfig::new(me.clone(), kind);
        config.ice_servers = client.session().map(|s| s.ice_servers).unwrap_or_default();
        config.udp_addrs = options.udp_addrs;
        config.mic_on = options.mic_on;
        config.camera_on = options.camera_on && kind == CallKind::Video;
        let camera = match kind {
            CallKind::Video => sources.camera,
            CallKind::Voice => None,
        };
        let (media, events) = CallMedia::start(
            config,
            camera,
            sources.mic,
            sources.sink,
            sources.speaker,
            sources.self_view,
        )?;
        let session = Self {
            client: client.clone(),
            call_id,
            me,
            media: Arc::new(media),
            events,
        };
        for user in current.others_in_call(&session.me) {
            if let Err(e) = session
                .media
                .add_member(user.clone(), options.we_offer)
                .await
            {
                // One member we cannot reach does not stop the others.
                tracing::warn!(error = %e, %user, "could not connect to a member");
            }
        }
        Ok(session)
    }

    /// The call.
    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    /// The media engine, for mute, camera, speaker and stats.
    pub fn media(&self) -> &Arc<CallMedia> {
        &self.media
    }

    /// Follows the call from one client event.
    pub async fn follow(&self, event: &ClientEvent) -> Result<Followed, MediaError> {
        match event {
            ClientEvent::Notice(Notice::MemberChanged { change })
                if change.call_id == self.call_id && change.user != self.me =>
            {
                if change.state == MemberState::Accepted {
                    // They came in after us: they offer.
                    self.media.add_member(change.user.clone(), false).await?;
                    Ok(Followed::Added(change.user.clone()))
                } else if !change.state.is_pending() {
                    self.media.remove_member(&change.user).await;
                    Ok(Followed::Removed(change.user.clone()))
                } else {
                    Ok(Followed::Nothing)
                }
            }
            ClientEvent::Signal {
                call_id,
                from,
                signal,
            } if call_id == &self.call_id => {
                self.media.on_signal(from, signal.clone()).await?;
                Ok(Followed::Signalled(from.clone()))
            }
            _ => Ok(Followed::Nothing),
        }
    }

    /// The next thing to report, sending the signals the links want sent on
    /// the way; `None` once the media has stopped.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        loop {
            match self.events.recv().await? {
                MediaEvent::Signal { to, signal } => {
                    if let Err(error) = self
                        .client
                        .signal(self.call_id.clone(), to.clone(), signal)
                        .await
                    {
                        return Some(SessionEvent::SignalNotSent { to, error });
                    }
                }
                other => return Some(SessionEvent::Media(other)),
            }
        }
    }

    /// Stops capture, playout and every link.
    pub async fn close(&self) {
        self.media.close().await;
    }
}
