//! The echo test contact: a user that answers every call by itself and
//! sends each caller's own video and audio back, so one person alone can
//! check their camera, microphone and speakers.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let echo = beckon_peer::echo::Echo::start(
//!     "ws://127.0.0.1:7600/ws".into(),
//!     "echo".parse()?,
//!     "a long random password".parse()?,
//! ).await?;
//! // … later
//! echo.stop().await;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use beckon_client::Notice;
use beckon_client::{Client, ClientConfig, ClientError, ClientEvent, Credentials};
use beckon_media::MediaError;
use beckon_media::frame::{AudioFrame, FRAME_SAMPLES, VideoFrame, now_us};
use beckon_media::pipeline::VideoSink;
use beckon_media::sink::mixer::AudioOutput;
use beckon_media::source::synthetic::{FrameClock, audio_clock};
use beckon_media::source::{AudioSource, SourceInfo, VideoSource};
use beckon_protocol::{CallId, DeviceId, ErrorCode, MemberState, Password, RejectReason, UserId};
use beckon_session::{CallSession, SessionEvent, SessionOptions, Sources};
use tokio::task::JoinHandle;

/// Shown name of the echo contact.
pub const DISPLAY_NAME: &str = "Echo test";

/// How long the echo waits before saying back what it heard: long enough to
/// hear yourself as a separate voice (as classic echo tests do) rather than
/// as a confusing, possibly howling, side-tone. Video comes back at once, as
/// a mirror.
const AUDIO_DELAY_US: u64 = 1_000_000;

/// 20 ms frames the audio loop holds: the delay and a second of slack.
const AUDIO_LOOP_FRAMES: usize = 100;

/// The longest an echo call lasts; nobody needs to talk to themselves longer.
const MAX_CALL: Duration = Duration::from_secs(10 * 60);

/// A running echo contact.
#[derive(Debug)]
pub struct Echo {
    task: JoinHandle<()>,
    client: Client,
}

impl Echo {
    /// Signs in as `user` on `server` (creating the account the first time)
    /// and starts answering calls.
    pub async fn start(server: String, user: UserId, password: Password) -> anyhow::Result<Self> {
        let device: DeviceId = "echo".parse().context("device id")?;
        let login = Credentials::login(user.clone(), password.clone());
        let (client, events) =
            match Client::connect(ClientConfig::new(&server, device.clone(), login)).await {
                Ok(pair) => pair,
                Err(ClientError::SignIn(e)) if e.code == ErrorCode::Unauthorized => {
                    let register = Credentials::Register {
                        user,
                        password,
                        display_name: DISPLAY_NAME.parse().context("display name")?,
                    };
                    Client::connect(ClientConfig::new(&server, device, register))
                        .await
                        .context("creating the echo account")?
                }
                Err(e) => return Err(e).context("signing the echo contact in"),
            };
        let task = tokio::spawn(run(client.clone(), events));
        Ok(Self { task, client })
    }

    /// Hangs up and signs out.
    pub async fn stop(self) {
        if let Some(call) = self.client.current_call() {
            let _ = self.client.end(call.info.call_id).await;
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One echo call's media.
struct EchoCall {
    session: CallSession,
    ends_at: tokio::time::Instant,
}

async fn run(client: Client, mut events: tokio::sync::mpsc::Receiver<ClientEvent>) {
    let mut call: Option<EchoCall> = None;
    loop {
        let ends_at = call.as_ref().map(|c| c.ends_at);
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                on_event(&client, &mut call, event).await;
            }
            Some(event) = next_session_event(&mut call) => {
                if let SessionEvent::SignalNotSent { error, .. } = event {
                    tracing::debug!(%error, "echo: a signal was not sent");
                }
            }
            () = crate::sleep_until(ends_at) => {
                if let Some(c) = &call {
                    let _ = client.end(c.session.call_id().clone()).await;
                }
            }
        }
    }
    if let Some(c) = call.take() {
        c.session.close().await;
    }
}

async fn on_event(client: &Client, call: &mut Option<EchoCall>, event: ClientEvent) {
    match event {
        ClientEvent::Notice(Notice::IncomingReceived { call: info, .. }) => {
            let result = if call.is_some() {
                client.reject(info.call_id, RejectReason::Busy).await
            } else {
                client.accept(info.call_id).await.map(drop)
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "echo: could not answer");
            }
        }
        ClientEvent::Notice(Notice::CallStarted { call_id }) if call.is_none() => {
            match start_media(client, call_id.clone()).await {
                Ok(c) => *call = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "echo: media failed to start");
                    let _ = client.end(call_id).await;
                }
            }
        }
        ClientEvent::Notice(Notice::MemberChanged { change }) => {
            let ours = call
                .as_ref()
                .is_some_and(|c| c.session.call_id() == &change.call_id);
            if ours && change.state != MemberState::Accepted && !change.state.is_pending() {
                // The caller left: an echo alone has nothing to do.
                let _ = client.end(change.call_id).await;
            }
        }
        ClientEvent::Notice(Notice::CallEnded { call_id, .. })
        | ClientEvent::Notice(Notice::EndedWhileOffline { call_id }) => {
            if let Some(c) = call.take_if(|c| c.session.call_id() == &call_id) {
                c.session.close().await;
            }
        }
        event @ ClientEvent::Signal { .. } => {
            if let Some(c) = call
                && let Err(e) = c.session.follow(&event).await
            {
                tracing::debug!(error = %e, "echo: signal refused");
            }
        }
        _ => {}
    }
}

async fn start_media(client: &Client, call_id: CallId) -> Result<EchoCall, MediaError> {
    let video = Arc::new(Loop::<VideoFrame>::new(1));
    let audio = Arc::new(Loop::<AudioFrame>::new(AUDIO_LOOP_FRAMES));
    let sources = Sources {
        camera: Some(Box::new(EchoCamera {
            frames: video.clone(),
            last: None,
        })),
        mic: Box::new(EchoMicrophone {
            frames: audio.clone(),
            clock: audio_clock(),
        }),
        speaker: Box::new(EchoSpeaker(audio)),
        sink: Arc::new(EchoSink(video)),
        self_view: None,
    };
    // We answered last: we offer.
    let options = SessionOptions {
        we_offer: true,
        ..SessionOptions::default()
    };
    let session = CallSession::start(client, call_id, sources, options).await?;
    Ok(EchoCall {
        session,
        ends_at: tokio::time::Instant::now() + MAX_CALL,
    })
}

async fn next_session_event(call: &mut Option<EchoCall>) -> Option<SessionEvent> {
    match call {
        Some(c) => c.session.next_event().await,
        None => std::future::pending().await,
    }
}

/// A short queue from what the echo receives to what it sends; the oldest
/// goes when it is full, so a stall never builds up delay.
struct Loop<T> {
    items: Mutex<VecDeque<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> Loop<T> {
    fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn push(&self, item: T) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(item);
        self.ready.notify_one();
    }

    fn pop(&self, wait: Duration) -> Option<T> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let (mut items, _) = self
            .ready
            .wait_timeout_while(items, wait, |i| i.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        items.pop_front()
    }

    /// The oldest item, when `ready` says it may go.
    fn pop_if(&self, ready: impl FnOnce(&T) -> bool) -> Option<T> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.front().is_some_and(ready) {
            items.pop_front()
        } else {
            None
        }
    }
}

/// Decoded pictures from the caller go into the loop.
struct EchoSink(Arc<Loop<VideoFrame>>);

impl VideoSink for EchoSink {
    fn frame(&self, _from: &UserId, frame: VideoFrame) {
        self.0.push(frame);
    }
}

/// The echo's "camera": the caller's own pictures. When they stop coming
/// (camera off), the last one is repeated five times a second so the
/// stream stays alive; before the first, a black picture.
struct EchoCamera {
    frames: Arc<Loop<VideoFrame>>,
    last: Option<VideoFrame>,
}

impl VideoSource for EchoCamera {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        if let Some(frame) = self.frames.pop(Duration::from_millis(200)) {
            self.last = Some(frame.clone());
            return Ok(frame);
        }
        let mut frame = self.last.clone().unwrap_or_else(black_frame);
        frame.timestamp_us = now_us();
        Ok(frame)
    }

    fn info(&self) -> SourceInfo {
        let (width, height) = self
            .last
            .as_ref()
            .map_or((320, 240), |f| (f.width, f.height));
        SourceInfo {
            name: DISPLAY_NAME.into(),
            width,
            height,
            fps: 30,
            synthetic: true,
        }
    }
}

fn black_frame() -> VideoFrame {
    let (w, h) = (320usize, 240usize);
    let mut data = vec![16u8; w * h];
    data.resize(VideoFrame::i420_len(w as u32, h as u32), 128);
    VideoFrame::new(w as u32, h as u32, data, now_us()).expect("size matches")
}

/// What the echo "hears" (the caller's mixed audio) goes into the loop,
/// stamped with when it was heard.
struct EchoSpeaker(Arc<Loop<AudioFrame>>);

impl AudioOutput for EchoSpeaker {
    fn play(&mut self, samples: &[f32]) {
        self.0.push(AudioFrame {
            samples: samples.into(),
            timestamp_us: now_us(),
        });
    }
}

/// The echo's "microphone": what it heard a second ago, paced at 20 ms;
/// silence when nothing is due.
struct EchoMicrophone {
    frames: Arc<Loop<AudioFrame>>,
    clock: FrameClock,
}

impl AudioSource for EchoMicrophone {
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        self.clock.wait();
        let due = now_us().saturating_sub(AUDIO_DELAY_US);
        let heard = self.frames.pop_if(|f| f.timestamp_us <= due);
        Ok(heard.unwrap_or_else(|| AudioFrame {
            samples: vec![0.0; FRAME_SAMPLES].into(),
            timestamp_us: now_us(),
        }))
    }

    fn name(&self) -> String {
        DISPLAY_NAME.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_loop_drops_the_oldest_item() {
        let l = Loop::new(2);
        l.push(1);
        l.push(2);
        l.push(3);
        assert_eq!(l.pop_if(|_| true), Some(2));
        assert_eq!(l.pop_if(|_| true), Some(3));
        assert_eq!(l.pop(Duration::from_millis(1)), None);
    }

    #[test]
    fn the_echo_says_back_what_it_heard_a_second_later() {
        let frames = Arc::new(Loop::new(AUDIO_LOOP_FRAMES));
        let mut mic = EchoMicrophone {
            frames: frames.clone(),
            clock: audio_clock(),
        };
        let heard = |at: u64, v: f32| AudioFrame {
            samples: vec![v; FRAME_SAMPLES].into(),
            timestamp_us: at,
        };
        frames.push(heard(now_us() - AUDIO_DELAY_US - 1_000, 0.5));
        frames.push(heard(now_us(), 0.25));
        assert_eq!(mic.next_frame().expect("frame").samples[0], 0.5);
        // The newer one is not due yet: silence meanwhile.
        assert_eq!(mic.next_frame().expect("frame").samples[0], 0.0);
    }

    #[test]
    fn the_echo_camera_repeats_the_last_picture_when_none_comes() {
        let frames = Arc::new(Loop::new(1));
        let mut camera = EchoCamera {
            frames: frames.clone(),
            last: None,
        };
        let first = camera.next_frame().expect("a frame");
        assert_eq!((first.width, first.height), (320, 240));
        let mut pic = vec![200u8; 64 * 48];
        pic.resize(VideoFrame::i420_len(64, 48), 128);
        frames.push(VideoFrame::new(64, 48, pic, 7).expect("size"));
        assert_eq!(camera.next_frame().expect("a frame").timestamp_us, 7);
        let again = camera.next_frame().expect("a frame");
        assert_eq!((again.width, again.y()[0]), (64, 200));
        assert_eq!(camera.info().width, 64);
    }
}
