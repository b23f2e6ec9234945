//! The peer's media: a `CallMedia` per call, fed by the signaling client's
//! notices, with synthetic or real devices, and a sink that reads the
//! burned-in stamps of what it decodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use beckon_client::{Client, ClientEvent};
use beckon_media::MediaError;
use beckon_media::call::{CallMedia, PeerStats};
use beckon_media::devices;
use beckon_media::frame::{VideoFrame, now_us};
use beckon_media::pipeline::VideoSink;
use beckon_media::source::VideoSource;
use beckon_media::source::synthetic::read_stamp;
use beckon_protocol::{CallId, CallKind, UserId};
use beckon_session::{CallSession, Followed, SessionEvent, SessionOptions, Sources};
use serde_json::{Value, json};

/// The oldest a decoded frame's stamp can plausibly be.
const MAX_AGE_US: u64 = 60_000_000;

/// Where the peer's media comes from and goes to.
#[derive(Debug, Clone)]
pub(crate) struct MediaOptions {
    /// `synthetic` (test pattern), `none`, or a camera id.
    pub(crate) camera: String,
    /// `tone` (a sine whose pitch names this user), or a microphone id
    /// (`default` for the system's).
    pub(crate) mic: String,
    /// `null` (nothing plays; levels are still measured), or a speaker id
    /// (`default` for the system's).
    pub(crate) speaker: String,
    /// Video size.
    pub(crate) width: u32,
    /// Video size.
    pub(crate) height: u32,
    /// Frames per second.
    pub(crate) fps: u32,
    /// Local addresses for ICE (`0.0.0.0:0`: every interface).
    pub(crate) udp_addrs: Vec<String>,
    /// Stop sending video this long after the call's media started.
    pub(crate) stall_video_after: Option<std::time::Duration>,
}

/// A camera that stops delivering at `at` (then a frame every 3 s).
struct Stalling {
    inner: Box<dyn VideoSource>,
    at: Instant,
}

impl VideoSource for Stalling {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        if Instant::now() >= self.at {
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
        self.inner.next_frame()
    }

    fn info(&self) -> beckon_media::source::SourceInfo {
        self.inner.info()
    }
}

/// What the peer saw of one member's camera.
#[derive(Debug, Clone, Default)]
struct Seen {
    frames: u64,
    last_frame: Option<u32>,
    width: u32,
    height: u32,
    /// Capture-to-decode times of the frames since the last report, µs.
    latencies: Vec<u64>,
    /// The same, for the whole call.
    all_latencies: Vec<u64>,
    first_at: Option<Instant>,
    /// The same moment on the wall clock (µs since the Unix epoch), to
    /// compare with the other end's offer time.
    first_at_us: Option<u64>,
    /// Every decoded frame: when it came out of the decoder (ms after the
    /// first), its number and its glass-to-glass time (ms), for freezes and
    /// recovery times. Bounded (an hour at 30 fps).
    timeline: Vec<(u32, u32, f32)>,
}

/// Frames kept in a timeline.
const MAX_TIMELINE: usize = 30 * 3600;

/// A gap between decoded frames longer than this is a freeze.
pub(crate) const FREEZE_MS: u32 = 200;

/// Freezes in a timeline of decode times (ms): their total and the longest.
fn freezes(at_ms: impl Iterator<Item = u32>) -> (u32, u32) {
    let mut prev: Option<u32> = None;
    let (mut total, mut longest) = (0, 0);
    for t in at_ms {
        if let Some(p) = prev {
            let gap = t.saturating_sub(p);
            if gap > FREEZE_MS {
                total += gap;
                longest = longest.max(gap);
            }
        }
        prev = Some(t);
    }
    (total, longest)
}

/// Reads the stamp of every decoded frame.
#[derive(Debug, Default)]
pub(crate) struct StampSink {
    seen: Mutex<HashMap<UserId, Seen>>,
}

impl VideoSink for StampSink {
    fn frame(&self, from: &UserId, frame: VideoFrame) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(from.clone()).or_default();
        s.frames += 1;
        s.first_at.get_or_insert_with(Instant::now);
        let now = now_us();
        let first = *s.first_at_us.get_or_insert(now);
        (s.width, s.height) = (frame.width, frame.height);
        // A stamp older than a minute is a misread (its 8-bit check passes
        // one time in 256), not a frame that took that long.
        if let Some(stamp) = read_stamp(&frame).filter(|s| s.age_us(now) < MAX_AGE_US) {
            s.last_frame = Some(stamp.frame);
            let age = stamp.age_us(now);
            s.latencies.push(age);
            s.all_latencies.push(age);
            if s.timeline.len() < MAX_TIMELINE {
                s.timeline.push((
                    ((now - first) / 1000) as u32,
                    stamp.frame,
                    (age as f64 / 1000.0) as f32,
                ));
            }
        }
    }
}

/// The media of the call in progress: the shared call session, and what
/// the peer measures of it.
pub(crate) struct MediaSession {
    session: CallSession,
    sink: Arc<StampSink>,
    started: Instant,
    /// When our own accept (or the first answer to our invite) happened.
    since_accept: Instant,
    /// When we asked for an offer to each member we offered to, wall clock
    /// (µs since the Unix epoch): the start of "offer to first frame".
    offered_at_us: Mutex<HashMap<UserId, u64>>,
    /// The candidate pair each member's link last reported: a summary taken
    /// while a link is being replaced, or just after it closed, has none.
    last_path: Mutex<HashMap<UserId, String>>,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("call_id", self.session.call_id())
            .finish()
    }
}

impl MediaSession {
    /// Opens devices, starts the call's media and connects to everyone in
    /// it (offering when we came in last). A device that cannot be opened
    /// costs its own media only: the call goes on, receiving, and the
    /// failure is returned with the session.
    pub(crate) async fn start(
        options: &MediaOptions,
        client: &Client,
        call_id: CallId,
        we_offer: bool,
        accepted_at: Instant,
    ) -> Result<(Self, Vec<MediaError>), MediaError> {
        let me = client
            .me()
            .ok_or_else(|| MediaError::Signaling("not signed in".into()))?;
        let video_call = client
            .current_call()
            .is_some_and(|c| c.info.kind == CallKind::Video);
        let mut failures = Vec::new();
        let size = (options.width, options.height, options.fps);
        let camera = if video_call {
            devices::open_camera(&options.camera, size).unwrap_or_else(|e| {
                failures.push(e);
                None
            })
        } else {
            None
        };
        let camera = match (camera, options.stall_video_after) {
            (Some(inner), Some(after)) => Some(Box::new(Stalling {
                inner,
                at: Instant::now() + after,
            }) as Box<dyn VideoSource>),
            (camera, _) => camera,
        };
        let (mic, problem) = devices::microphone_or_silence(&options.mic, me.as_str());
        failures.extend(problem);
        let (speaker, problem) = devices::speaker_or_null(&options.speaker);
        failures.extend(problem);
        let sink = Arc::new(StampSink::default());
        let sources = Sources {
            camera,
            mic,
            speaker,
            sink: sink.clone(),
            self_view: None,
        };
        let session_options = SessionOptions {
            we_offer,
            udp_addrs: options.udp_addrs.clone(),
            ..SessionOptions::default()
        };
        let session = CallSession::start(client, call_id, sources, session_options).await?;
        let offered_at_us = if we_offer {
            // The offers are created right after the links, on their tasks.
            let now = now_us();
            session
                .media()
                .members()
                .into_iter()
                .map(|u| (u, now))
                .collect()
        } else {
            HashMap::new()
        };
        let session = Self {
            session,
            sink,
            started: Instant::now(),
            since_accept: accepted_at,
            offered_at_us: Mutex::new(offered_at_us),
            last_path: Mutex::default(),
        };
        Ok((session, failures))
    }

    /// The call.
    pub(crate) fn call_id(&self) -> &CallId {
        self.session.call_id()
    }

    pub(crate) fn media(&self) -> Arc<CallMedia> {
        self.session.media().clone()
    }

    /// Follows the call from a client event (members coming and going,
    /// their signals); a member who left is dropped from the counts too.
    pub(crate) async fn follow(&self, event: &ClientEvent) -> Result<Followed, MediaError> {
        let followed = self.session.follow(event).await?;
        if let Followed::Removed(user) = &followed {
            self.sink
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(user);
        }
        Ok(followed)
    }

    /// The next thing the media reports (signals are sent on the way).
    pub(crate) async fn next_event(&mut self) -> Option<SessionEvent> {
        self.session.next_event().await
    }

    fn remember_paths(&self, peers: &[PeerStats]) {
        let mut last = self.last_path.lock().unwrap_or_else(|p| p.into_inner());
        for p in peers {
            if let Some(path) = &p.path {
                last.insert(p.user.clone(), path.clone());
            }
        }
    }

    /// One line of media statistics.
    pub(crate) async fn stats(&self) -> Value {
        let peers = self.session.media().stats().await;
        self.remember_paths(&peers);
        let mut seen = self
            .sink
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for s in self
            .sink
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            s.latencies.clear();
        }
        let members: Vec<Value> = peers
            .iter()
            .map(|p| {
                let s = seen.remove(&p.user).unwrap_or_default();
                let lat = Latencies::of(&s.latencies);
                json!({
                    "who": p.user,
                    "state": format!("{:?}", p.state).to_lowercase(),
                    "frames": s.frames,
                    "last_frame": s.last_frame,
                    "size": format!("{}x{}", s.width, s.height),
                    "latency_ms_p50": lat.p50,
                    "latency_ms_p95": lat.p95,
                    "first_frame_ms": s.first_at.map(|t| t.saturating_duration_since(self.since_accept).as_millis() as u64),
                    "decode_ms": round2(p.decode_ms),
                    "audio_level": p.audio.as_ref().map(|a| round2(f64::from(a.level))),
                    "tone_hz": p.audio.as_ref().and_then(|a| a.tone_hz),
                    "audio_late": p.audio.as_ref().map(|a| a.late),
                    "audio_underruns": p.audio.as_ref().map(|a| a.underruns),
                    "audio_concealed": p.audio.as_ref().map(|a| a.concealed),
                    "audio_skipped": p.audio.as_ref().map(|a| a.skipped),
                    "audio_shortened": p.audio.as_ref().map(|a| a.shortened),
                    "audio_lengthened": p.audio.as_ref().map(|a| a.lengthened),
                    "audio_repaired": p.audio.as_ref().map(|a| a.repaired),
                    "audio_buffer_ms": p.audio.as_ref().map(|a| a.buffer_ms),
                    "rtt_ms": p.rtt_ms.map(round2),
                    "loss_pct": round2(f64::from(p.loss_pct)),
                    "packets_lost": p.packets_lost,
                    "jitter_ms": round2(p.jitter_ms),
                    "send_kbps": p.send_kbps.round(),
                    "recv_kbps": p.recv_kbps.round(),
                    "target_kbps": p.target_kbps.round(),
                    "path": p.path,
                    "audio_loss_pct": round2(f64::from(p.audio_loss_pct)),
                    "audio_copies": p.audio_copies,
                    "video_skipped": p.frames_skipped,
                    "video_repaired": p.frames_repaired,
                    "video_given_up": p.frames_given_up,
                    "plis_sent": p.plis_sent,
                    "plis_received": p.plis_received,
                })
            })
            .collect();
        let send = self.session.media().send_stats();
        let (mic, camera) = self.session.media().local_state();
        json!({
            "call_id": self.session.call_id(),
            "secs": self.started.elapsed().as_secs(),
            "mic": mic,
            "camera": camera,
            "sent_frames": send.frames_sent,
            "encode_ms": round2(send.encode_ms),
            "video_kbps": send.video_kbps,
            "video_sent": send.video_step.map_or("off".to_owned(), |s| s.to_string()),
            "members": members,
        })
    }

    /// Whole-call figures: per member, every frame's latency; ours, the
    /// encoder's cost.
    pub(crate) async fn summary(&self) -> Value {
        let peers = self.session.media().stats().await;
        self.remember_paths(&peers);
        let paths = self
            .last_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let seen = self
            .sink
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let offered = self
            .offered_at_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let tones = self.session.media().tone_logs();
        let members: Vec<Value> = seen
            .iter()
            .map(|(who, s)| {
                let lat = Latencies::of(&s.all_latencies);
                let p = peers.iter().find(|p| &p.user == who);
                let (freeze_total_ms, freeze_max_ms) = freezes(s.timeline.iter().map(|f| f.0));
                let tone = tones.get(who);
                let heard = tone.map_or(0, |t| t.blocks.iter().filter(|&&h| h).count());
                json!({
                    "freeze_total_ms": freeze_total_ms,
                    "freeze_max_ms": freeze_max_ms,
                    "tone_share": tone.map(|t| round2(heard as f64 / t.blocks.len().max(1) as f64)),
                    "tone_start_us": tone.map(|t| t.start_us),
                    "tone_blocks": tone.map(|t| t.blocks.iter().map(|&h| if h { '1' } else { '0' }).collect::<String>()),
                    "timeline": s.timeline.iter().map(|&(at, n, lat)| json!([at, n, (f64::from(lat) * 10.0).round() / 10.0])).collect::<Vec<_>>(),
                    "path": paths.get(who),
                    "bytes_sent": p.map(|p| p.bytes_sent),
                    "who": who,
                    "frames": s.frames,
                    "latency_ms_p50": lat.p50,
                    "latency_ms_p95": lat.p95,
                    "latency_ms_mean": lat.mean,
                    "first_frame_ms": s.first_at.map(|t| t.saturating_duration_since(self.since_accept).as_millis() as u64),
                    "size": format!("{}x{}", s.width, s.height),
                    "first_frame_at_us": s.first_at_us,
                    "offered_at_us": offered.get(who),
                    "decode_ms": p.map(|p| round2(p.decode_ms)),
                    "connect_ms": p.and_then(|p| p.connect_ms),
                })
            })
            .collect();
        let send = self.session.media().send_stats();
        json!({
            "call_id": self.session.call_id(),
            "secs": self.started.elapsed().as_secs_f64(),
            "sent_frames": send.frames_sent,
            "encode_ms": round2(send.encode_ms),
            "video_sent": send.video_step.map_or("off".to_owned(), |s| s.to_string()),
            "members": members,
        })
    }

    /// Ends the media.
    pub(crate) async fn close(&self) {
        self.session.close().await;
    }
}

/// Percentiles of microsecond samples, in milliseconds.
struct Latencies {
    p50: Option<f64>,
    p95: Option<f64>,
    mean: Option<f64>,
}

impl Latencies {
    fn of(samples: &[u64]) -> Self {
        let mut v = samples.to_vec();
        v.sort_unstable();
        let pct = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .map(|us| round2(*us as f64 / 1000.0))
        };
        let mean =
            (!v.is_empty()).then(|| round2(v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0));
        Self {
            p50: pct(0.5),
            p95: pct(0.95),
            mean,
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::freezes;

    #[test]
    fn gaps_over_200_ms_are_freezes() {
        let at = [0, 33, 66, 400, 433, 466, 1000, 1033];
        assert_eq!(freezes(at.into_iter()), (334 + 534, 534));
        assert_eq!(freezes([0, 200, 400].into_iter()), (0, 0), "200 ms is not");
    }
}
