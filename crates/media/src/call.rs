//! The media of one call: our camera and microphone, encoded once and sent
//! to every member over its own peer connection (a mesh), and every
//! member's camera and voice coming back.
//!
//! ```no_run
//! # async fn run() -> Result<(), beckon_media::MediaError> {
//! use std::sync::Arc;
//! use beckon_media::call::{CallConfig, CallMedia, MediaEvent};
//! use beckon_media::sink::mixer::RecordingOutput;
//! use beckon_media::source::synthetic::{SyntheticCamera, ToneMicrophone};
//! # struct Screen;
//! # impl beckon_media::pipeline::VideoSink for Screen {
//! #     fn frame(&self, _: &beckon_protocol::UserId, _: beckon_media::frame::VideoFrame) {}
//! # }
//! let config = CallConfig::new("alice".parse().unwrap(), beckon_protocol::CallKind::Video);
//! let (call, mut events) = CallMedia::start(
//!     config,
//!     Some(Box::new(SyntheticCamera::new(640, 480, 30))),
//!     Box::new(ToneMicrophone::new(440.0, 0.3)),
//!     Arc::new(Screen),
//!     Box::new(RecordingOutput::default()),
//!     None,
//! )?;
//! call.add_member("bob".parse().unwrap(), true).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         MediaEvent::Signal { to, signal } => { /* send through signaling */ }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use beckon_protocol::{CallKind, IceServer, Signal, UserId};
use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::MediaError;
use crate::codec::vp8::EncodedFrame;
use crate::peer::LinkState;
use crate::peer::link::{LinkContext, LinkEvent, PeerLink};
use crate::pipeline::{
    AudioSender, EncodedSink, PipelineEvent, SendControls, VideoSender, VideoSink,
};
use crate::sink::mixer::{AudioOutput, MemberAudioStats, Mixer, ToneLog};
use crate::source::{AudioSource, VideoSource};

/// How to set up a call's media.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Who we are (decides who yields when both sides offer at once).
    pub me: UserId,
    /// Voice calls send no video.
    pub kind: CallKind,
    /// STUN/TURN from the signaling server.
    pub ice_servers: Vec<IceServer>,
    /// Local addresses to gather candidates on; `0.0.0.0:0` is every
    /// interface, `127.0.0.1:0` loopback only.
    pub udp_addrs: Vec<String>,
    /// Start with the camera on.
    pub camera_on: bool,
    /// Start with the microphone on.
    pub mic_on: bool,
}

impl CallConfig {
    /// Camera and microphone on, no ICE servers, every interface.
    pub fn new(me: UserId, kind: CallKind) -> Self {
        Self {
            me,
            kind,
            ice_servers: Vec::new(),
            udp_addrs: vec!["0.0.0.0:0".into()],
            camera_on: kind == CallKind::Video,
            mic_on: true,
        }
    }
}

/// What the call tells its owner.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Relay this to `to` through the signaling server.
    Signal {
        /// The member it is for.
        to: UserId,
        /// What to send.
        signal: Signal,
    },
    /// The connection to a member changed.
    PeerState {
        /// Who.
        user: UserId,
        /// How it stands.
        state: LinkState,
    },
    /// A member turned their microphone or camera on or off.
    RemoteMediaState {
        /// Who.
        user: UserId,
        /// Their microphone is on.
        mic: bool,
        /// Their camera is on.
        camera: bool,
    },
    /// A local device failed; that media stopped until it is replaced.
    DeviceFailed(MediaError),
    /// A member sent signaling we could not use; the call goes on.
    Rejected {
        /// Who sent it.
        from: UserId,
        /// What was wrong.
        error: MediaError,
    },
}

/// Media counters of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    /// Who.
    pub user: UserId,
    /// The connection.
    pub state: LinkState,
    /// Round-trip time, ms.
    pub rtt_ms: Option<f64>,
    /// Share of our packets they lost, percent.
    pub loss_pct: f32,
    /// Their packets that never reached us.
    pub packets_lost: u64,
    /// Interarrival jitter of their streams, ms.
    pub jitter_ms: f64,
    /// What we send them, kbit/s.
    pub send_kbps: f64,
    /// What they send us, kbit/s.
    pub recv_kbps: f64,
    /// The congestion controller's estimate for the path to them, kbit/s.
    pub target_kbps: f64,
    /// Their video frames assembled.
    pub frames_received: u64,
    /// Their video frames decoded.
    pub frames_decoded: u64,
    /// Mean decode time, ms.
    pub decode_ms: f64,
    /// Their upper-layer video frames lost and skipped at no cost.
    pub frames_skipped: u64,
    /// Their video frames that completed after a wait for a retransmission.
    pub frames_repaired: u64,
    /// Their base-layer video frames given up on (each asks for a key frame).
    pub frames_given_up: u64,
    /// Key frames we asked of them.
    pub plis_sent: u64,
    /// Key frames they asked of us.
    pub plis_received: u64,
    /// Their voice.
    pub audio: Option<MemberAudioStats>,
    /// When their media started flowing, after the link was made.
    pub connect_ms: Option<u64>,
    /// The network path in use: the kinds of its two ends, ours first
    /// (`host`, `srflx`, `prflx` or `relay`, the last through a TURN
    /// server), e.g. `host/relay`.
    pub path: Option<String>,
    /// Bytes sent to them so far.
    pub bytes_sent: u64,
    /// Share of our audio packets they lost, percent.
    pub audio_loss_pct: f32,
    /// Earlier audio frames each of our packets to them carries (RED).
    pub audio_copies: usize,
}

/// Counters of what we send.
#[derive(Debug, Clone, PartialEq)]
pub struct SendStats {
    /// Video frames encoded and sent.
    pub frames_sent: u64,
    /// Mean encode time, ms.
    pub encode_ms: f64,
    /// Audio packets sent.
    pub audio_packets: u64,
    /// The video bitrate the encoder aims at, kbit/s.
    pub video_kbps: u32,
    /// The size and frame rate the camera is sent at, or paused (no room
    /// for video beside the audio); `None` while the camera is off.
    pub video_step: Option<crate::ladder::Step>,
}

struct Inner {
    config: CallConfig,
    links: RwLock<HashMap<UserId, Arc<PeerLink>>>,
    ctx: LinkContext,
    controls: Arc<SendControls>,
    mixer: Arc<Mutex<Mixer>>,
    events: UnboundedSender<MediaEvent>,
    handle: tokio::runtime::Handle,
    /// Bytes sent/received and when, per member, for rates.
    last_bytes: Mutex<HashMap<UserId, (u64, u64, Instant)>>,
    created: Instant,
    stop: AtomicBool,
    /// TURN over TCP, for as long as the call lasts.
    _bridges: Vec<crate::peer::turn_tcp::TcpTurnBridge>,
    /// Held while a link is opened or replaced.
    opening: tokio::sync::Mutex<()>,
    /// Connections replaced because they never came up, per member.
    replaced: Mutex<HashMap<UserId, u32>>,
}

/// A member's connection is replaced this many times at most.
const MAX_REPLACEMENTS: u32 = 3;

impl Inner {
    fn links(&self) -> Vec<Arc<PeerLink>> {
        self.links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn media_state(&self) -> Signal {
        Signal::MediaState {
            mic: self.controls.mic_on.load(Ordering::Relaxed),
            camera: self.controls.camera_on.load(Ordering::Relaxed)
                && self.config.kind == CallKind::Video,
        }
    }

    fn tell_everyone(&self, signal: Signal) {
        for link in self.links() {
            let _ = self.events.send(MediaEvent::Signal {
                to: link.user.clone(),
                signal: signal.clone(),
            });
        }
    }
}

impl EncodedSink for Inner {
    fn video(&self, frame: &EncodedFrame, duration: Duration) {
        let links = self.links();
        if links.is_empty() {
            return;
        }
        let _ = duration;
        // Called on the camera thread, never on a runtime thread.
        self.handle.block_on(async {
            for link in &links {
                link.write_video(frame).await;
            }
        });
    }

    fn audio(&self, packet: &[u8]) {
        let links = self.links();
        if links.is_empty() {
            return;
        }
        let data = Bytes::copy_from_slice(packet);
        self.handle.block_on(async {
            for link in &links {
                link.write_audio(data.clone()).await;
            }
        });
    }
}

/// The media side of one call. Dropping it without `close` leaks its peer
/// connections until the runtime stops: always `close`.
pub struct CallMedia {
    inner: Arc<Inner>,
    video: Mutex<Option<VideoSender>>,
    audio: Mutex<Option<AudioSender>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia")
            .field("me", &self.inner.config.me)
            .finish()
    }
}

impl CallMedia {
    /// Starts capture (camera only for video calls) and playout. Members are
    /// added as they join. Must run inside a tokio runtime.
    pub fn start(
        config: CallConfig,
        camera: Option<Box<dyn VideoSource>>,
        microphone: Box<dyn AudioSource>,
        video_sink: Arc<dyn VideoSink>,
        audio_out: Box<dyn AudioOutput>,
        preview: Option<Arc<dyn VideoSink>>,
    ) -> Result<(Self, UnboundedReceiver<MediaEvent>), MediaError> {
        let (events, event_rx) = unbounded_channel();
        let (link_tx, link_rx) = unbounded_channel();
        let (pipe_tx, pipe_rx) = sync_channel(64);
        let controls = SendControls::new(
            config.camera_on && config.kind == CallKind::Video,
            config.mic_on,
        );
        let mixer = Arc::new(Mutex::new(Mixer::new(audio_out)));
        let key_frame = Arc::new(AtomicBool::new(false));
        let mut bridges = Vec::new();
        let ice_servers = crate::peer::turn_tcp::bridged(&config.ice_servers, &mut bridges);
        let ctx = LinkContext {
            me: config.me.clone(),
            ice_servers,
            udp_addrs: config.udp_addrs.clone(),
            events: link_tx,
            mixer: mixer.clone(),
            video_sink,
            key_frame: key_frame.clone(),
            pipeline_events: pipe_tx.clone(),
        };
        let inner = Arc::new(Inner {
            config: config.clone(),
            links: RwLock::new(HashMap::new()),
            ctx,
            controls: controls.clone(),
            mixer: mixer.clone(),
            events: events.clone(),
            handle: tokio::runtime::Handle::current(),
            last_bytes: Mutex::new(HashMap::new()),
            created: Instant::now(),
            stop: AtomicBool::new(false),
            _bridges: bridges,
            opening: tokio::sync::Mutex::new(()),
            replaced: Mutex::new(HashMap::new()),
        });
        let audio =
            AudioSender::start(microphone, controls.clone(), inner.clone(), pipe_tx.clone())?;
        let video = match (config.kind, camera) {
            (CallKind::Video, Some(camera)) => Some(VideoSender::start(
                config.me.clone(),
                camera,
                controls.clone(),
                inner.clone(),
                preview,
                pipe_tx,
            )),
            _ => None,
        };
        let threads = vec![
            spawn_mixer(inner.clone()),
            spawn_pipeline_pump(inner.clone(), pipe_rx, key_frame),
        ];
        tokio::spawn(link_pump(Arc::downgrade(&inner), link_rx));
        tokio::spawn(bitrate_loop(Arc::downgrade(&inner)));
        tokio::spawn(network_watch(Arc::downgrade(&inner)));
        let call = Self {
            inner,
            video: Mutex::new(video),
            audio: Mutex::new(Some(audio)),
            threads: Mutex::new(threads),
        };
        Ok((call, event_rx))
    }

    /// A member is in the call: connect to them. `we_offer` when we are the
    /// one who joined later.
    pub async fn add_member(&self, user: UserId, we_offer: bool) -> Result<(), MediaError> {
        if user == self.inner.config.me {
            return Err(MediaError::Signaling("cannot connect to ourselves".into()));
        }
        // A member's offer can race our own add_member for them: one of the
        // two opens the connection, the other finds it.
        let _opening = self.inner.opening.lock().await;
        let link = match self.link(&user) {
            Some(link) => link,
            None => {
                let link = PeerLink::open(
                    self.inner.ctx.clone(),
                    user.clone(),
                    crate::peer::link::stuck_after(0),
                )
                .await?;
                self.inner
                    .links
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(user, link.clone());
                link
            }
        };
        if we_offer {
            link.offer();
        }
        Ok(())
    }

    /// Looks for a new network path to `user` (ICE restart), e.g. after
    /// this machine changed networks.
    pub fn restart_ice(&self, user: &UserId) -> Result<(), MediaError> {
        let link = self
            .link(user)
            .ok_or_else(|| MediaError::Signaling(format!("no connection to {user}")))?;
        link.restart_ice();
        Ok(())
    }

    /// Looks for new network paths to everyone (ICE restarts): the network
    /// changed under us, or signaling came back after a drop. The call does
    /// this by itself when this computer's address changes.
    pub fn reconnect_all(&self) {
        for link in self.inner.links() {
            link.restart_ice();
        }
    }

    /// A member left: drop their connection, their tile and their voice.
    pub async fn remove_member(&self, user: &UserId) {
        let link = self
            .inner
            .links
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
        if let Some(link) = link {
            link.close().await;
        }
        self.inner
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
        self.inner
            .last_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }

    /// The members we have a connection to.
    pub fn members(&self) -> Vec<UserId> {
        self.inner
            .links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn link(&self, user: &UserId) -> Option<Arc<PeerLink>> {
        self.inner
            .links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }

    /// Signaling from `from`. An offer from a member we have no connection
    /// to yet opens one (they joined and offered first); anything else for
    /// an unknown member is an error, and the call goes on.
    pub async fn on_signal(&self, from: &UserId, signal: Signal) -> Result<(), MediaError> {
        if let Signal::MediaState { mic, camera } = signal {
            let _ = self.inner.events.send(MediaEvent::RemoteMediaState {
                user: from.clone(),
                mic,
                camera,
            });
            return Ok(());
        }
        // An offer with another DTLS certificate: they started a new
        // connection (theirs never got through); start ours anew too.
        if let (Some(link), Signal::Offer { sdp }) = (self.link(from), &signal)
            && let Some(theirs) = crate::peer::link::fingerprint(sdp.as_str())
            && link
                .remote_fingerprint()
                .is_some_and(|known| known != theirs)
        {
            tracing::info!(user = %from, "a new connection offered; replacing ours");
            replace_link(&self.inner, from.clone(), false).await?;
        }
        let link = match (self.link(from), &signal) {
            (Some(link), _) => link,
            (None, Signal::Offer { .. }) => {
                self.add_member(from.clone(), false).await?;
                self.link(from).expect("just added")
            }
            (None, _) => return Err(MediaError::Signaling(format!("no connection to {from}"))),
        };
        link.signal(signal);
        Ok(())
    }

    /// Turns the microphone on or off; members are told.
    pub fn set_mic(&self, on: bool) {
        self.inner.controls.mic_on.store(on, Ordering::Relaxed);
        self.inner.tell_everyone(self.inner.media_state());
    }

    /// Turns the camera on or off; members are told.
    pub fn set_camera(&self, on: bool) {
        if on {
            self.inner.controls.key_frame.store(true, Ordering::Relaxed);
        }
        self.inner.controls.camera_on.store(on, Ordering::Relaxed);
        self.inner.tell_everyone(self.inner.media_state());
    }

    /// Plays remote voices, or not (levels are still measured).
    pub fn set_speaker(&self, on: bool) {
        self.inner
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_speaker(on);
    }

    /// Continues the call's video from another camera.
    pub fn switch_camera(&self, camera: Box<dyn VideoSource>) -> Result<(), MediaError> {
        match self
            .video
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(sender) => {
                sender.switch(camera);
                Ok(())
            }
            None => Err(MediaError::DeviceNotFound {
                kind: "camera",
                detail: "this call has no video".into(),
            }),
        }
    }

    /// Continues the call's audio from another microphone.
    pub fn switch_microphone(&self, microphone: Box<dyn AudioSource>) {
        if let Some(sender) = self
            .audio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            sender.switch(microphone);
        }
    }

    /// Plays the call through another speaker.
    pub fn switch_speaker(&self, output: Box<dyn AudioOutput>) {
        self.inner
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_output(output);
    }

    /// Our microphone and camera, as members see them.
    pub fn local_state(&self) -> (bool, bool) {
        match self.inner.media_state() {
            Signal::MediaState { mic, camera } => (mic, camera),
            _ => unreachable!(),
        }
    }

    /// Each member's tone, 100 ms at a time (see [`ToneLog`]).
    pub fn tone_logs(&self) -> HashMap<UserId, ToneLog> {
        self.inner
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tone_logs()
    }

    /// Counters of what we send.
    pub fn send_stats(&self) -> SendStats {
        let c = &self.inner.controls;
        let frames = c.frames_sent.load(Ordering::Relaxed);
        SendStats {
            frames_sent: frames,
            encode_ms: c.encode_us.load(Ordering::Relaxed) as f64 / 1000.0 / frames.max(1) as f64,
            audio_packets: c.audio_sent.load(Ordering::Relaxed),
            video_kbps: c.bitrate_kbps.load(Ordering::Relaxed),
            video_step: c.step(),
        }
    }

    /// Counters per member (rates since the previous call).
    pub async fn stats(&self) -> Vec<PeerStats> {
        let audio = self
            .inner
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats();
        let mut out = Vec::new();
        for link in self.inner.links() {
            let t = link.transport_stats().await;
            let (sent, received, pair_rtt) = (t.bytes_sent, t.bytes_received, t.rtt_s);
            let now = Instant::now();
            let (send_kbps, recv_kbps) = {
                let mut last = self
                    .inner
                    .last_bytes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let prev = last.insert(link.user.clone(), (sent, received, now));
                match prev {
                    Some((s, r, t)) if now > t => {
                        let secs = now.duration_since(t).as_secs_f64();
                        (
                            sent.saturating_sub(s) as f64 * 8.0 / 1000.0 / secs,
                            received.saturating_sub(r) as f64 * 8.0 / 1000.0 / secs,
                        )
                    }
                    _ => (0.0, 0.0),
                }
            };
            let c = &link.counters;
            let rr_rtt = c.rtt_us.load(Ordering::Relaxed);
            let receiver = link
                .receiver
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|r| r.counters().clone());
            let decoded = receiver
                .as_ref()
                .map_or(0, |r| r.decoded.load(Ordering::Relaxed));
            let decode_us = receiver
                .as_ref()
                .map_or(0, |r| r.decode_us.load(Ordering::Relaxed));
            let connected = *link.connected_at.lock().unwrap_or_else(|p| p.into_inner());
            out.push(PeerStats {
                user: link.user.clone(),
                state: *link.state.lock().unwrap_or_else(|p| p.into_inner()),
                rtt_ms: if rr_rtt > 0 {
                    Some(rr_rtt as f64 / 1000.0)
                } else {
                    pair_rtt.map(|s| s * 1000.0)
                },
                loss_pct: c.fraction_lost.load(Ordering::Relaxed) as f32 * 100.0 / 256.0,
                packets_lost: t.packets_lost_in,
                jitter_ms: t.jitter_ms,
                send_kbps,
                recv_kbps,
                target_kbps: f64::from_bits(link.target_bps.load(Ordering::Relaxed)) / 1000.0,
                frames_received: c.frames_received.load(Ordering::Relaxed),
                frames_decoded: decoded,
                decode_ms: decode_us as f64 / 1000.0 / decoded.max(1) as f64,
                frames_skipped: c.frames_skipped.load(Ordering::Relaxed),
                frames_repaired: c.frames_repaired.load(Ordering::Relaxed),
                frames_given_up: c.frames_given_up.load(Ordering::Relaxed),
                plis_sent: c.plis_sent.load(Ordering::Relaxed),
                plis_received: c.plis_received.load(Ordering::Relaxed),
                audio: audio.get(&link.user).cloned(),
                connect_ms: connected
                    .map(|t| t.duration_since(self.inner.created).as_millis() as u64),
                path: t.path.clone(),
                bytes_sent: sent,
                audio_loss_pct: c.audio_fraction_lost.load(Ordering::Relaxed) as f32 * 100.0
                    / 256.0,
                audio_copies: link.audio_copies(),
            });
        }
        out
    }

    /// Stops capture and playout and closes every connection.
    pub async fn close(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let (video, audio) = (
            self.video.lock().unwrap_or_else(|p| p.into_inner()).take(),
            self.audio.lock().unwrap_or_else(|p| p.into_inner()).take(),
        );
        // The senders join their threads, which may be blocked in
        // `block_on` writing to a link: drop them off the runtime.
        let _ = tokio::task::spawn_blocking(move || {
            drop(video);
            drop(audio);
        })
        .await;
        let links: Vec<Arc<PeerLink>> = self
            .inner
            .links
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        for link in links {
            link.close().await;
        }
        let threads: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Plays 20 ms of mixed remote audio every 20 ms.
fn spawn_mixer(inner: Arc<Inner>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("beckon-mixer".into())
        .spawn(move || {
            let start = Instant::now();
            let mut n: u32 = 0;
            while !inner.stop.load(Ordering::Relaxed) {
                inner.mixer.lock().unwrap_or_else(|p| p.into_inner()).tick();
                n += 1;
                let due = start + Duration::from_millis(20) * n;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                } else if now - due > Duration::from_millis(200) {
                    // Far behind (suspended?): skip ahead rather than burst.
                    n = (now.duration_since(start).as_millis() / 20) as u32;
                }
            }
        })
        .expect("spawning a thread")
}

/// Routes what the media threads report.
fn spawn_pipeline_pump(
    inner: Arc<Inner>,
    rx: std::sync::mpsc::Receiver<PipelineEvent>,
    key_frame: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("beckon-media-events".into())
        .spawn(move || {
            while !inner.stop.load(Ordering::Relaxed) {
                // Key-frame requests from any member's link reach the shared
                // encoder through this flag.
                if key_frame.swap(false, Ordering::Relaxed) {
                    inner.controls.key_frame.store(true, Ordering::Relaxed);
                }
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(PipelineEvent::NeedKeyFrame { from }) => {
                        if let Some(link) = inner
                            .links
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&from)
                        {
                            link.pli_wanted.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(PipelineEvent::DeviceFailed(e)) => {
                        let _ = inner.events.send(MediaEvent::DeviceFailed(e));
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })
        .expect("spawning a thread")
}

/// Turns link events into call events; tells a newly connected member our
/// microphone and camera state. Holds the call weakly: the call holds a
/// sender of `rx`, so a strong hold would keep both alive for good.
async fn link_pump(inner: std::sync::Weak<Inner>, mut rx: UnboundedReceiver<LinkEvent>) {
    while let Some(event) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        let out = match event {
            LinkEvent::Signal { to, signal } => MediaEvent::Signal { to, signal },
            LinkEvent::State { user, state } => {
                if state == LinkState::Connected {
                    let _ = inner.events.send(MediaEvent::Signal {
                        to: user.clone(),
                        signal: inner.media_state(),
                    });
                    inner.controls.key_frame.store(true, Ordering::Relaxed);
                }
                MediaEvent::PeerState { user, state }
            }
            LinkEvent::Rejected { from, error } => MediaEvent::Rejected { from, error },
            LinkEvent::Stuck { user } => {
                let tries = {
                    let mut r = inner.replaced.lock().unwrap_or_else(|p| p.into_inner());
                    let n = r.entry(user.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                if tries <= MAX_REPLACEMENTS {
                    tracing::info!(%user, tries, "the connection never came up; starting a new one");
                    let (inner, who) = (inner.clone(), user.clone());
                    tokio::spawn(async move {
                        if let Err(e) = replace_link(&inner, who.clone(), true).await {
                            tracing::warn!(user = %who, error = %e, "no new connection");
                        }
                    });
                } else {
                    tracing::warn!(%user, "the connection never came up; giving up on new ones");
                }
                MediaEvent::PeerState {
                    user,
                    state: LinkState::Reconnecting,
                }
            }
        };
        if inner.events.send(out).is_err() {
            break;
        }
        if inner.stop.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// Closes the connection to `user` and opens a new one (offering when
/// `we_offer`): the last resort when one never came up (its DTLS handshake
/// failed), or when they started anew.
async fn replace_link(inner: &Arc<Inner>, user: UserId, we_offer: bool) -> Result<(), MediaError> {
    let _opening = inner.opening.lock().await;
    let old = inner
        .links
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&user);
    if let Some(old) = old {
        old.close().await;
    }
    if inner.stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    let replaced = inner
        .replaced
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&user)
        .copied()
        .unwrap_or(0);
    let link = PeerLink::open(
        inner.ctx.clone(),
        user.clone(),
        crate::peer::link::stuck_after(replaced),
    )
    .await?;
    inner
        .links
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(user, link.clone());
    if we_offer {
        link.offer();
    }
    Ok(())
}

/// Follows the congestion controllers and the receivers' reports: one
/// encoder feeds every member, so it aims at the slowest path, and the
/// audio FEC at the lossiest.
async fn bitrate_loop(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        let links = inner.links();
        // Per member: what is left for video of its path's estimate, once
        // the audio to it (with its copies) is paid for.
        let slowest = links
            .iter()
            .map(|l| {
                let estimate = f64::from_bits(l.target_bps.load(Ordering::Relaxed));
                let audio = crate::peer::link::audio_bps(l.audio_copies());
                (estimate, audio, l.congested())
            })
            .filter(|(b, _, _)| *b > 0.0)
            .map(|(estimate, audio, congested)| {
                let room = video_room_kbps(estimate, audio);
                if congested {
                    room
                } else {
                    room.max(UNQUEUED_ROOM_KBPS)
                }
            })
            .min();
        if let Some(room) = slowest {
            let c = &inner.controls;
            c.video_room_kbps.store(room, Ordering::Relaxed);
            c.bitrate_kbps
                .store(room.max(MIN_VIDEO_KBPS), Ordering::Relaxed);
        }
        let loss = links
            .iter()
            .map(|l| l.counters.audio_fraction_lost.load(Ordering::Relaxed) * 100 / 256)
            .max()
            .unwrap_or(0);
        inner
            .controls
            .audio_loss_pct
            .store(audio_fec_pct(loss), Ordering::Relaxed);
    }
}

/// Where this computer's traffic leaves from: the address the system
/// would send from towards `probe` (no packet is sent).
fn route_source(probe: std::net::SocketAddr) -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(probe).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// Towards where the route is looked up: the first ICE server given as an
/// address, else a documentation address (the default route).
fn probe_address(servers: &[IceServer]) -> std::net::SocketAddr {
    servers
        .iter()
        .flat_map(|s| &s.urls)
        .filter_map(|u| {
            let rest = u.split_once(':')?.1;
            let host_port = rest.split('?').next()?;
            host_port.parse::<std::net::SocketAddr>().ok().or_else(|| {
                host_port
                    .parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| (ip, 3478).into())
            })
        })
        .next()
        .unwrap_or_else(|| ([192, 0, 2, 1], 9).into())
}

/// Restarts ICE on every link when the address we send from changes (a
/// laptop moving from Wi-Fi to Ethernet): the old paths are dead, and
/// nothing else says so for seconds.
async fn network_watch(inner: std::sync::Weak<Inner>) {
    let probe = match inner.upgrade() {
        Some(i) => probe_address(&i.config.ice_servers),
        None => return,
    };
    let mut source = route_source(probe);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = route_source(probe);
        if now != source && now.is_some() {
            tracing::info!(from = ?source, to = ?now, "the network changed; restarting ICE");
            for link in inner.links() {
                link.restart_ice();
            }
        }
        source = now;
    }
}

/// What video may use of a path estimated at `estimate_bps` that carries
/// `audio_bps` of audio: a margin below the estimate (an encoder
/// overshoots, and nothing paces it), less the audio.
fn video_room_kbps(estimate_bps: f64, audio_bps: f64) -> u32 {
    ((estimate_bps * 0.85 - audio_bps) / 1000.0).clamp(1.0, 2500.0) as u32
}

/// A path without a queue is not short of bandwidth (a low estimate there
/// comes from random loss): video keeps at least the smallest picture at
/// its full frame rate rather than pausing.
const UNQUEUED_ROOM_KBPS: u32 = 40;

/// The encoder aims at no less than this (a paused camera sends nothing).
const MIN_VIDEO_KBPS: u32 = 50;

/// The loss the Opus FEC is sized for, from the loss a receiver reported
/// (percent): a little even on a clean path, and somewhat more than seen.
fn audio_fec_pct(reported: u32) -> u32 {
    (reported + reported / 4).clamp(5, 50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_leaves_room_below_the_estimate_and_for_audio() {
        assert_eq!(video_room_kbps(1_500_000.0, 56_000.0), 1219);
        assert_eq!(video_room_kbps(300_000.0, 56_000.0), 199);
        assert_eq!(
            video_room_kbps(600_000.0, 120_000.0),
            390,
            "audio with copies"
        );
        assert_eq!(
            video_room_kbps(50_000.0, 56_000.0),
            1,
            "no room: the camera pauses"
        );
        assert_eq!(video_room_kbps(1e9, 56_000.0), 2500);
    }

    #[test]
    fn the_route_is_probed_towards_the_first_ice_server() {
        let turn = IceServer {
            urls: vec!["turn:10.77.0.1:3478?transport=udp".into()],
            username: None,
            credential: None,
        };
        assert_eq!(
            probe_address(&[turn]),
            std::net::SocketAddr::from(([10, 77, 0, 1], 3478))
        );
        let named = IceServer {
            urls: vec!["stun:stun.example.org".into()],
            username: None,
            credential: None,
        };
        assert_eq!(
            probe_address(&[named]),
            std::net::SocketAddr::from(([192, 0, 2, 1], 9))
        );
        assert!(route_source(std::net::SocketAddr::from(([127, 0, 0, 1], 9))).is_some());
    }

    #[test]
    fn fec_follows_reported_loss() {
        assert_eq!(audio_fec_pct(0), 5);
        assert_eq!(audio_fec_pct(20), 25);
        assert_eq!(audio_fec_pct(90), 50);
    }
}
