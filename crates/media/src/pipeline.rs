//! The threads that move media: capture → encode → send for the local
//! camera and microphone, and assemble → decode → sink for each remote
//! camera. Each runs on its own OS thread (capture blocks, codecs burn CPU)
//! and is steered through shared atomics.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use beckon_protocol::UserId;

use crate::MediaError;
use crate::codec::opus::OpusEncoder;
use crate::codec::vp8::{EncodedFrame, Vp8Config, Vp8Decoder, Vp8Encoder};
use crate::frame::{VideoFrame, now_us};
use crate::ladder::{FrameGate, Ladder, Step};
use crate::source::{AudioSource, VideoSource};

/// Receives decoded (or local preview) pictures. Called on a media thread;
/// must not block. A sink that cannot keep up should keep only the latest.
pub trait VideoSink: Send + Sync {
    /// A new picture from `from` (our own id for the local preview).
    fn frame(&self, from: &UserId, frame: VideoFrame);
}

/// Receives encoded media to send (the peer connections).
pub trait EncodedSink: Send + Sync {
    /// A compressed video frame covering `duration`.
    fn video(&self, frame: &EncodedFrame, duration: Duration);
    /// A compressed 20 ms audio packet.
    fn audio(&self, packet: &[u8]);
}

/// Something a media thread wants the call to know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PipelineEvent {
    /// A device failed; media of that kind stopped.
    DeviceFailed(MediaError),
    /// A remote picture could not be decoded; ask `from` for a key frame.
    NeedKeyFrame {
        /// Whose stream.
        from: UserId,
    },
}

/// The loss the audio FEC is sized for before any receiver reported.
const INITIAL_AUDIO_LOSS_PCT: u32 = 10;

/// Shared knobs and counters of the send side.
#[derive(Debug)]
pub struct SendControls {
    /// Send camera pictures.
    pub camera_on: AtomicBool,
    /// Send microphone audio.
    pub mic_on: AtomicBool,
    /// Make the next video frame a key frame.
    pub key_frame: AtomicBool,
    /// Target video bitrate (kbit/s); 0 leaves the encoder's default.
    pub bitrate_kbps: AtomicU32,
    /// What the slowest path leaves for video (kbit/s), which picks the
    /// picture size and frame rate (see [`crate::ladder`]); 0 while unknown.
    pub video_room_kbps: AtomicU32,
    /// What the camera thread sends now: width << 32 | height << 16 | fps,
    /// 1 while video is paused for want of bandwidth, 0 while the camera
    /// is off or not started.
    pub video_step: AtomicU64,
    /// Video frames encoded and sent.
    pub frames_sent: AtomicU64,
    /// Total encode time, microseconds.
    pub encode_us: AtomicU64,
    /// Audio packets sent.
    pub audio_sent: AtomicU64,
    /// Packet loss the audio encoder's FEC is sized for, percent.
    pub audio_loss_pct: AtomicU32,
    stop: AtomicBool,
}

impl SendControls {
    /// Everything on, nothing sent yet.
    pub fn new(camera_on: bool, mic_on: bool) -> Arc<Self> {
        Arc::new(Self {
            camera_on: AtomicBool::new(camera_on),
            mic_on: AtomicBool::new(mic_on),
            key_frame: AtomicBool::new(false),
            bitrate_kbps: AtomicU32::new(0),
            video_room_kbps: AtomicU32::new(0),
            video_step: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            encode_us: AtomicU64::new(0),
            audio_sent: AtomicU64::new(0),
            audio_loss_pct: AtomicU32::new(INITIAL_AUDIO_LOSS_PCT),
            stop: AtomicBool::new(false),
        })
    }

    /// What the camera thread sends now (see [`Self::video_step`]); `None`
    /// while the camera is off or not started.
    pub fn step(&self) -> Option<Step> {
        match self.video_step.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Step::Paused),
            v => Some(Step::Send {
                width: (v >> 32) as u32,
                height: (v >> 16 & 0xffff) as u32,
                fps: (v & 0xffff) as u32,
            }),
        }
    }

    fn set_step(&self, step: Option<Step>) {
        let v = match step {
            Some(Step::Send { width, height, fps }) => {
                u64::from(width) << 32 | u64::from(height & 0xffff) << 16 | u64::from(fps & 0xffff)
            }
            Some(Step::Paused) => 1,
            None => 0,
        };
        self.video_step.store(v, Ordering::Relaxed);
    }
}

/// The camera thread: capture, preview, encode once, send to every peer.
#[derive(Debug)]
pub struct VideoSender {
    source: Arc<Mutex<Box<dyn VideoSource>>>,
    controls: Arc<SendControls>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for dyn VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VideoSource({})", self.info().name)
    }
}

impl VideoSender {
    /// Starts capturing from `source`.
    pub fn start(
        me: UserId,
        source: Box<dyn VideoSource>,
        controls: Arc<SendControls>,
        sink: Arc<dyn EncodedSink>,
        preview: Option<Arc<dyn VideoSink>>,
        events: SyncSender<PipelineEvent>,
    ) -> Self {
        let source = Arc::new(Mutex::new(source));
        let (src, ctl) = (source.clone(), controls.clone());
        let thread = std::thread::Builder::new()
            .name("beckon-camera".into())
            .spawn(move || video_loop(&me, &src, &ctl, &*sink, preview.as_deref(), &events))
            .expect("spawning a thread");
        Self {
            source,
            controls,
            thread: Some(thread),
        }
    }

    /// Switches to another camera while the call runs; frames continue from
    /// the new one (the encoder follows a change of size).
    pub fn switch(&self, source: Box<dyn VideoSource>) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = source;
        self.controls.key_frame.store(true, Ordering::Relaxed);
    }

    /// What the current source is.
    pub fn source_info(&self) -> crate::source::SourceInfo {
        self.source.lock().unwrap_or_else(|p| p.into_inner()).info()
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.controls.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn video_loop(
    me: &UserId,
    source: &Mutex<Box<dyn VideoSource>>,
    controls: &SendControls,
    sink: &dyn EncodedSink,
    preview: Option<&dyn VideoSink>,
    events: &SyncSender<PipelineEvent>,
) {
    let mut encoder: Option<Vp8Encoder> = None;
    let mut ladder: Option<Ladder> = None;
    let mut gate = FrameGate::default();
    let mut last = Instant::now();
    while !controls.stop.load(Ordering::Relaxed) {
        let frame = source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_frame();
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let _ = events.try_send(PipelineEvent::DeviceFailed(e));
                // A failed camera is not retried in a tight loop; a switch
                // to another source brings video back.
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if let Some(p) = preview {
            p.frame(me, frame.clone());
        }
        if !controls.camera_on.load(Ordering::Relaxed) {
            encoder = None;
            controls.set_step(None);
            continue;
        }
        let source_fps = source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .info()
            .fps
            .max(1);
        let ladder = match &mut ladder {
            Some(l) if l.source() == (frame.width, frame.height, source_fps) => l,
            slot => slot.insert(Ladder::new(frame.width, frame.height, source_fps)),
        };
        let now = Instant::now();
        let step = match controls.video_room_kbps.load(Ordering::Relaxed) {
            0 => ladder.step(),
            room => ladder.update(now, room),
        };
        controls.set_step(Some(step));
        let Step::Send { width, height, fps } = step else {
            // No room for video: the call goes on as voice, and resumes
            // with a key frame.
            encoder = None;
            continue;
        };
        if !gate.admit(now, fps, source_fps) {
            continue;
        }
        let frame = if (width, height) == (frame.width, frame.height) {
            frame
        } else {
            match scaled(&frame, width, height) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "scaling failed; frame dropped");
                    continue;
                }
            }
        };
        let needs_new = encoder.as_ref().is_none_or(|e| {
            let c = e.config();
            (c.width, c.height, c.fps) != (frame.width, frame.height, fps)
        });
        if needs_new {
            match Vp8Encoder::new(Vp8Config::realtime(frame.width, frame.height, fps)) {
                Ok(e) => encoder = Some(e),
                Err(e) => {
                    let _ = events.try_send(PipelineEvent::DeviceFailed(e));
                    continue;
                }
            }
        }
        let enc = encoder.as_mut().expect("just made");
        if controls.key_frame.swap(false, Ordering::Relaxed) {
            enc.request_key_frame();
        }
        let kbps = controls.bitrate_kbps.load(Ordering::Relaxed);
        if kbps > 0 {
            let _ = enc.set_bitrate(kbps);
        }
        let started = Instant::now();
        let encoded = enc.encode(&frame);
        controls
            .encode_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match encoded {
            Ok(Some(packet)) => {
                let now = Instant::now();
                sink.video(
                    &packet,
                    now.duration_since(last).min(Duration::from_millis(200)),
                );
                last = now;
                controls.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "encoding failed; frame dropped"),
        }
    }
}

/// `frame` at the ladder's size.
fn scaled(frame: &VideoFrame, width: u32, height: u32) -> Result<VideoFrame, MediaError> {
    let mut data = Vec::new();
    let (w, h) = crate::convert::scale_i420(
        &frame.data,
        frame.width,
        frame.height,
        &mut data,
        width,
        height,
        crate::convert::Filter::Bilinear,
    )
    .map_err(|e| MediaError::Codec(format!("scaling: {e}")))?;
    Ok(VideoFrame {
        width: w,
        height: h,
        data: data.into(),
        timestamp_us: frame.timestamp_us,
    })
}

/// The microphone thread: capture, encode, send.
#[derive(Debug)]
pub struct AudioSender {
    source: Arc<Mutex<Box<dyn AudioSource>>>,
    controls: Arc<SendControls>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for dyn AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioSource({})", self.name())
    }
}

impl AudioSender {
    /// Starts capturing from `source`.
    pub fn start(
        source: Box<dyn AudioSource>,
        controls: Arc<SendControls>,
        sink: Arc<dyn EncodedSink>,
        events: SyncSender<PipelineEvent>,
    ) -> Result<Self, MediaError> {
        let mut encoder = OpusEncoder::new(32_000, INITIAL_AUDIO_LOSS_PCT as i32)?;
        let mut loss_pct = INITIAL_AUDIO_LOSS_PCT;
        let source = Arc::new(Mutex::new(source));
        let (src, ctl) = (source.clone(), controls.clone());
        let thread = std::thread::Builder::new()
            .name("beckon-mic".into())
            .spawn(move || {
                while !ctl.stop.load(Ordering::Relaxed) {
                    let frame = src.lock().unwrap_or_else(|p| p.into_inner()).next_frame();
                    let frame = match frame {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = events.try_send(PipelineEvent::DeviceFailed(e));
                            std::thread::sleep(Duration::from_millis(500));
                            continue;
                        }
                    };
                    if !ctl.mic_on.load(Ordering::Relaxed) {
                        continue;
                    }
                    let wanted = ctl.audio_loss_pct.load(Ordering::Relaxed);
                    if wanted != loss_pct && encoder.set_expected_loss(wanted as i32).is_ok() {
                        loss_pct = wanted;
                    }
                    match encoder.encode(&frame) {
                        Ok(packet) => {
                            sink.audio(&packet);
                            ctl.audio_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "audio encoding failed"),
                    }
                }
            })
            .expect("spawning a thread");
        Ok(Self {
            source,
            controls,
            thread: Some(thread),
        })
    }

    /// Switches to another microphone while the call runs.
    pub fn switch(&self, source: Box<dyn AudioSource>) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = source;
    }

    /// The current microphone's name.
    pub fn source_name(&self) -> String {
        self.source.lock().unwrap_or_else(|p| p.into_inner()).name()
    }
}

impl Drop for AudioSender {
    fn drop(&mut self) {
        self.controls.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counters of one remote camera.
#[derive(Debug, Default)]
pub struct ReceiveCounters {
    /// Pictures decoded.
    pub decoded: AtomicU64,
    /// Total decode time, microseconds.
    pub decode_us: AtomicU64,
    /// Frames that failed to decode.
    pub errors: AtomicU64,
    /// When the last picture was decoded (µs since the epoch).
    pub last_decoded_us: AtomicU64,
}

/// One remote camera's decode thread. Compressed frames queue briefly; a
/// decoder that falls behind skips to the next key frame request rather
/// than building delay.
#[derive(Debug)]
pub struct VideoReceiver {
    tx: Option<SyncSender<(Vec<u8>, bool)>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<ReceiveCounters>,
    /// A frame was dropped: until a key frame, the ones after it refer to
    /// a picture the decoder never got.
    broken: AtomicBool,
}

/// Compressed frames queued for the decoder at most: a second of video.
/// The frame buffer releases frames in bursts (all that waited behind a
/// retransmission, up to two round trips' worth); dropping one of them
/// would cost a key frame.
const DECODE_QUEUE: usize = 30;

impl VideoReceiver {
    /// Starts decoding `from`'s frames into `sink`.
    pub fn start(
        from: UserId,
        sink: Arc<dyn VideoSink>,
        events: SyncSender<PipelineEvent>,
    ) -> Result<Self, MediaError> {
        let (tx, rx) = sync_channel::<(Vec<u8>, bool)>(DECODE_QUEUE);
        let mut decoder = Vp8Decoder::new()?;
        let counters = Arc::new(ReceiveCounters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("beckon-decode".into())
            .spawn(move || {
                while let Ok((data, _key)) = rx.recv() {
                    let started = Instant::now();
                    match decoder.decode(&data, now_us()) {
                        Ok(Some(frame)) => {
                            c.decode_us
                                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                            c.decoded.fetch_add(1, Ordering::Relaxed);
                            c.last_decoded_us
                                .store(frame.timestamp_us, Ordering::Relaxed);
                            sink.frame(&from, frame);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            c.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, %from, "undecodable video frame");
                            let _ =
                                events.try_send(PipelineEvent::NeedKeyFrame { from: from.clone() });
                        }
                    }
                }
            })
            .expect("spawning a thread");
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            broken: AtomicBool::new(false),
        })
    }

    /// Queues a frame for decoding. False when it was not taken, and a key
    /// frame is needed: the queue was full (the decoder fell behind), or a
    /// frame was dropped before and this one is not a key frame.
    pub fn push(&self, data: Vec<u8>, key: bool) -> bool {
        if !key && self.broken.load(Ordering::Relaxed) {
            return false;
        }
        let taken = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send((data, key)).is_ok());
        self.broken.store(!taken, Ordering::Relaxed);
        taken
    }

    /// Its counters.
    pub fn counters(&self) -> &Arc<ReceiveCounters> {
        &self.counters
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::{SyntheticCamera, ToneMicrophone, read_stamp};

    #[derive(Default)]
    struct Collect {
        video: Mutex<Vec<EncodedFrame>>,
        audio: Mutex<Vec<Vec<u8>>>,
    }

    impl EncodedSink for Collect {
        fn video(&self, frame: &EncodedFrame, _: Duration) {
            self.video.lock().unwrap().push(frame.clone());
        }
        fn audio(&self, packet: &[u8]) {
            self.audio.lock().unwrap().push(packet.to_vec());
        }
    }

    #[derive(Default)]
    struct Frames(Mutex<Vec<(UserId, VideoFrame)>>);

    impl VideoSink for Frames {
        fn frame(&self, from: &UserId, frame: VideoFrame) {
            self.0.lock().unwrap().push((from.clone(), frame));
        }
    }

    fn me() -> UserId {
        UserId::try_from("alice").unwrap()
    }

    #[test]
    fn camera_frames_are_encoded_sent_and_decoded_with_their_stamps() {
        let sink = Arc::new(Collect::default());
        let preview = Arc::new(Frames::default());
        let controls = SendControls::new(true, true);
        let (etx, _erx) = sync_channel(10);
        let sender = VideoSender::start(
            me(),
            Box::new(SyntheticCamera::new(320, 240, 60)),
            controls.clone(),
            sink.clone(),
            Some(preview.clone()),
            etx.clone(),
        );
        std::thread::sleep(Duration::from_millis(400));
        controls.camera_on.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        let sent = sink.video.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            sink.video.lock().unwrap().len(),
            sent,
            "camera off sends nothing"
        );
        assert!(
            preview.0.lock().unwrap().len() > sent,
            "the preview keeps running"
        );
        drop(sender);
        assert!(sent >= 10, "{sent}");
        assert_eq!(controls.frames_sent.load(Ordering::Relaxed), sent as u64);
        let decoded = Arc::new(Frames::default());
        let rx = VideoReceiver::start(me(), decoded.clone(), etx).unwrap();
        for (i, f) in sink.video.lock().unwrap().iter().enumerate() {
            // Faster than real time: keep the decoder's queue from filling.
            while i - rx.counters().decoded.load(Ordering::Relaxed) as usize >= DECODE_QUEUE {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(rx.push(f.data.clone(), f.key));
        }
        drop(rx);
        let frames = decoded.0.lock().unwrap();
        assert_eq!(frames.len(), sent);
        let stamps: Vec<u32> = frames
            .iter()
            .map(|(_, f)| read_stamp(f).unwrap().frame)
            .collect();
        assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
    }

    #[test]
    fn switching_camera_changes_size_and_forces_a_key_frame() {
        let sink = Arc::new(Collect::default());
        let controls = SendControls::new(true, true);
        let (etx, _erx) = sync_channel(10);
        let sender = VideoSender::start(
            me(),
            Box::new(SyntheticCamera::new(320, 240, 60)),
            controls,
            sink.clone(),
            None,
            etx,
        );
        std::thread::sleep(Duration::from_millis(200));
        sender.switch(Box::new(SyntheticCamera::new(640, 480, 60)));
        let before = sink.video.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(sender.source_info().width, 640);
        drop(sender);
        let frames = sink.video.lock().unwrap();
        assert!(
            frames[before..].iter().take(3).any(|f| f.key),
            "a key frame after the switch"
        );
        let mut dec = Vp8Decoder::new().unwrap();
        let sizes: Vec<u32> = frames
            .iter()
            .filter_map(|f| dec.decode(&f.data, 0).ok().flatten())
            .map(|f| f.width)
            .collect();
        assert_eq!(sizes.first(), Some(&320));
        assert_eq!(sizes.last(), Some(&640));
    }

    #[test]
    fn a_narrow_path_gets_a_smaller_picture_and_then_none() {
        let sink = Arc::new(Collect::default());
        let controls = SendControls::new(true, true);
        let (etx, _erx) = sync_channel(10);
        controls.video_room_kbps.store(100, Ordering::Relaxed);
        let sender = VideoSender::start(
            me(),
            Box::new(SyntheticCamera::new(640, 480, 30)),
            controls.clone(),
            sink.clone(),
            None,
            etx,
        );
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let until = Instant::now() + Duration::from_secs(15);
            while !done() {
                assert!(Instant::now() < until, "{what}: {:?}", controls.step());
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for("a quarter of the pixels", &|| {
            controls.step()
                == Some(Step::Send {
                    width: 320,
                    height: 240,
                    fps: 30,
                })
        });
        let smaller = sink.video.lock().unwrap().len();
        // No room left beside the audio: the camera pauses.
        controls.video_room_kbps.store(5, Ordering::Relaxed);
        wait_for("paused", &|| controls.step() == Some(Step::Paused));
        std::thread::sleep(Duration::from_millis(100));
        let paused = sink.video.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            sink.video.lock().unwrap().len(),
            paused,
            "nothing while paused"
        );
        drop(sender);
        let frames = sink.video.lock().unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let sizes: Vec<(u32, Option<u32>)> = frames
            .iter()
            .map(|f| {
                let pic = dec.decode(&f.data, 0).ok().flatten();
                (
                    pic.as_ref().map_or(0, |p| p.width),
                    pic.as_ref().and_then(read_stamp).map(|s| s.frame),
                )
            })
            .collect();
        assert_eq!(sizes.first().map(|s| s.0), Some(640), "full size first");
        let first_small = sizes
            .iter()
            .position(|s| s.0 == 320)
            .expect("smaller pictures");
        assert!(first_small <= smaller, "{sizes:?}");
        // Then the bottom rung (a thumbnail) before the pause.
        let widths: Vec<u32> = sizes[first_small..paused].iter().map(|s| s.0).collect();
        assert!(widths.windows(2).all(|w| w[1] <= w[0]), "{widths:?}");
        assert_eq!(widths.last(), Some(&160), "{widths:?}");
        assert!(
            frames[first_small].key,
            "the smaller picture starts with a key frame"
        );
        assert!(
            sizes.iter().all(|s| s.1.is_some()),
            "every picture keeps its stamp"
        );
    }

    #[test]
    fn a_muted_microphone_sends_nothing() {
        let sink = Arc::new(Collect::default());
        let controls = SendControls::new(true, true);
        let (etx, _erx) = sync_channel(10);
        let sender = AudioSender::start(
            Box::new(ToneMicrophone::new(500.0, 0.5)),
            controls.clone(),
            sink.clone(),
            etx,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        controls.mic_on.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        let n = sink.audio.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(200));
        drop(sender);
        assert!(n >= 8, "{n}");
        assert!(sink.audio.lock().unwrap().len() <= n + 1);
    }

    /// A sink that holds the decoder thread until let go.
    #[derive(Default)]
    struct Held {
        gate: Mutex<()>,
        frames: AtomicU64,
    }

    impl VideoSink for Held {
        fn frame(&self, _: &UserId, _: VideoFrame) {
            drop(self.gate.lock().unwrap());
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn after_a_dropped_frame_only_a_key_frame_is_taken() {
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(160, 120, 30)).unwrap();
        let mut pattern = crate::source::synthetic::TestPattern::new(160, 120);
        let mut n = 0;
        let mut frame = |key: bool| {
            if key {
                enc.request_key_frame();
            }
            n += 1;
            let f = enc.encode(&pattern.frame(n, 0)).unwrap().unwrap();
            assert_eq!(f.key, key);
            f.data
        };
        let sink = Arc::new(Held::default());
        let (etx, _erx) = sync_channel(10);
        let rx = VideoReceiver::start(me(), sink.clone(), etx).unwrap();
        let held = sink.gate.lock().unwrap();
        assert!(rx.push(frame(true), true));
        // The decoder is stuck on the first frame; the queue fills.
        for _ in 0..DECODE_QUEUE {
            assert!(rx.push(frame(false), false));
        }
        assert!(!rx.push(frame(false), false), "the queue is full");
        drop(held);
        while sink.frames.load(Ordering::Relaxed) < 1 + DECODE_QUEUE as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Room again, but the dropped frame is missing from what follows.
        assert!(!rx.push(frame(false), false), "a delta after the drop");
        assert!(rx.push(frame(true), true), "a key frame starts over");
        assert!(rx.push(frame(false), false));
    }

    #[test]
    fn garbage_video_asks_for_a_key_frame() {
        let (etx, erx) = sync_channel(10);
        let rx = VideoReceiver::start(me(), Arc::new(Frames::default()), etx).unwrap();
        rx.push(vec![1, 2, 3, 4, 5], false);
        drop(rx);
        assert_eq!(
            erx.try_recv(),
            Ok(PipelineEvent::NeedKeyFrame { from: me() })
        );
    }
}
