//! Real cameras through nokhwa (V4L2 on Linux, Media Foundation on Windows,
//! AVFoundation on macOS).
//!
//! nokhwa's camera is not `Send`, so each [`Camera`] owns a capture thread
//! that opens the device, pulls frames (nokhwa blocks until the next one),
//! converts them to I420 at the size the call wants and hands them over
//! through a queue of two where the newest frame wins. Dropping the
//! [`Camera`] stops the thread, which releases the device.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::MediaError;
use crate::convert::{Converter, Filter, PixelFormat, RawImage};
use crate::frame::{VideoFrame, now_us};
use crate::source::{SourceInfo, VideoSource};

const KIND: &str = "camera";

/// Frames waiting for the consumer; older ones are dropped beyond this.
const QUEUE: usize = 2;

/// How long `next_frame` waits before calling a silent camera lost.
const STALL: Duration = Duration::from_secs(5);

/// How long opening may take (macOS may be asking the user for permission).
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long dropping a [`Camera`] waits for its thread to release the device.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Undecodable frames in a row before the camera counts as lost.
const MAX_BAD_FRAMES: u32 = 30;

/// A camera the system knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// What [`Camera::open`] takes: the system's index for it (`"0"` for
    /// `/dev/video0` on Linux).
    pub id: String,
    /// Shown to the user.
    pub name: String,
    /// What the system says about it (driver, device path).
    pub description: String,
}

/// One way a camera can deliver pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraMode {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Pixel layout.
    pub format: PixelFormat,
}

/// The cameras on this machine: `Ok(empty)` when there are none. The modes
/// each camera offers are known only once it is open ([`Camera::modes`]):
/// asking for them means opening every device, which can disturb a camera
/// another application is using.
pub fn list_cameras() -> Result<Vec<CameraInfo>, MediaError> {
    let queried = std::panic::catch_unwind(|| nokhwa::query(ApiBackend::Auto));
    let found = match queried {
        Ok(Ok(found)) => found,
        // No camera backend for this platform: no cameras.
        Ok(Err(
            nokhwa::NokhwaError::UnsupportedOperationError(_)
            | nokhwa::NokhwaError::NotImplementedError(_),
        )) => {
            tracing::debug!("no camera backend on this platform");
            return Ok(Vec::new());
        }
        Ok(Err(e)) => {
            return Err(MediaError::DeviceBusy {
                kind: KIND,
                detail: format!("cannot list cameras: {e}"),
            });
        }
        Err(_) => {
            return Err(MediaError::DeviceBusy {
                kind: KIND,
                detail: "the camera backend failed while listing cameras".to_string(),
            });
        }
    };
    let cameras: Vec<(CameraInfo, Option<u32>)> = found
        .iter()
        .map(|c| {
            let info = CameraInfo {
                id: c.index().as_string(),
                name: c.human_name(),
                description: c.description().to_string(),
            };
            let node = c.index().as_index().ok().and_then(v4l2_node_index);
            (info, node)
        })
        .collect();
    Ok(drop_secondary_nodes(cameras))
}

/// On Linux a UVC camera shows up as two device nodes with the same name:
/// the picture (the device's node 0) and metadata (node 1), which cannot be
/// opened as a camera. sysfs tells which is which.
fn v4l2_node_index(index: u32) -> Option<u32> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/video4linux/video{index}/index"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Drops the entries that are a device's secondary node (`node` > 0) while a
/// node 0 of the same name is listed.
fn drop_secondary_nodes(cameras: Vec<(CameraInfo, Option<u32>)>) -> Vec<CameraInfo> {
    let primary = |name: &str| {
        cameras
            .iter()
            .any(|(c, node)| c.name == name && *node == Some(0))
    };
    cameras
        .iter()
        .filter(|(c, node)| matches!(node, None | Some(0)) || !primary(&c.name))
        .map(|(c, _)| c.clone())
        .collect()
}

/// Picks the camera `id` names: its id, `/dev/video<id>`, or its name.
/// `None` takes the first.
fn resolve<'a>(id: Option<&str>, cameras: &'a [CameraInfo]) -> Result<&'a CameraInfo, MediaError> {
    let Some(id) = id else {
        return cameras.first().ok_or_else(|| MediaError::DeviceNotFound {
            kind: KIND,
            detail: "no camera on this machine".to_string(),
        });
    };
    let id = id.trim();
    let as_path = id.strip_prefix("/dev/video").unwrap_or(id);
    cameras
        .iter()
        .find(|c| c.id == id || c.id == as_path)
        .or_else(|| cameras.iter().find(|c| c.name == id))
        .ok_or_else(|| MediaError::DeviceNotFound {
            kind: KIND,
            detail: if cameras.is_empty() {
                format!("no camera {id:?}: there is no camera on this machine")
            } else {
                let known: Vec<String> = cameras
                    .iter()
                    .map(|c| format!("{} ({})", c.id, c.name))
                    .collect();
                format!("no camera {id:?}; cameras here: {}", known.join(", "))
            },
        })
}

fn pixel_format(f: FrameFormat) -> PixelFormat {
    match f {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb24,
        FrameFormat::RAWBGR => PixelFormat::Bgr24,
    }
}

fn frame_format(f: PixelFormat) -> Option<FrameFormat> {
    Some(match f {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb24 => FrameFormat::RAWRGB,
        PixelFormat::Bgr24 => FrameFormat::RAWBGR,
        PixelFormat::I420 | PixelFormat::Rgba | PixelFormat::Bgra => return None,
    })
}

fn camera_mode(f: &CameraFormat) -> CameraMode {
    CameraMode {
        width: f.width(),
        height: f.height(),
        fps: f.frame_rate(),
        format: pixel_format(f.format()),
    }
}

/// Cheaper layouts first: raw YUV needs no decoding, MJPEG is what most
/// webcams use for large sizes at full rate, grey has no colour.
fn format_rank(f: PixelFormat) -> u32 {
    match f {
        PixelFormat::Nv12 | PixelFormat::I420 => 0,
        PixelFormat::Yuyv => 1,
        PixelFormat::Mjpeg => 2,
        PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Rgba | PixelFormat::Bgra => 3,
        PixelFormat::Gray => 4,
    }
}

/// The mode to ask for, for a `width`×`height` picture at `fps`: first
/// enough frames (at least ¾ of `fps`, else the fastest), then a picture at
/// least as large as wanted but no larger than needed (else the largest),
/// then the same shape (less cropping), then the cheaper layout, then the
/// rate nearest `fps`.
pub fn choose_mode(modes: &[CameraMode], width: u32, height: u32, fps: u32) -> Option<CameraMode> {
    let (w, h, fps) = (u64::from(width), u64::from(height), u64::from(fps));
    modes.iter().copied().min_by_key(|m| {
        let (mw, mh, mfps) = (u64::from(m.width), u64::from(m.height), u64::from(m.fps));
        let slow = mfps * 4 < fps * 3;
        // Among slow modes, faster is better.
        let slowness = if slow { u64::MAX - mfps } else { 0 };
        let covers = mw >= w && mh >= h;
        // Covering: the smallest area; not covering: the largest area.
        let size = if covers {
            mw * mh
        } else {
            u64::MAX - (mw.min(w) * mh.min(h))
        };
        // How far the shapes differ (cross-multiplied, so no division).
        let shape = (mw * h).abs_diff(w * mh) * 1000 / (w * mh).max(1);
        (
            slowness,
            !covers,
            size,
            shape,
            format_rank(m.format),
            mfps.abs_diff(fps),
        )
    })
}

/// Opening failed: a device that is not there, or one that would not open.
fn open_error(e: &nokhwa::NokhwaError, id: &str) -> MediaError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let gone = [
        "no such file",
        "no such device",
        "os error 2)",
        "os error 19)",
    ]
    .iter()
    .any(|s| lower.contains(s));
    if gone {
        MediaError::DeviceNotFound {
            kind: KIND,
            detail: format!("camera {id}: {text}"),
        }
    } else {
        MediaError::DeviceBusy {
            kind: KIND,
            detail: format!("camera {id}: {text}"),
        }
    }
}

/// A camera delivering I420 at the size it was opened for.
#[derive(Debug)]
pub struct Camera {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    info: SourceInfo,
    id: String,
    mode: CameraMode,
    modes: Vec<CameraMode>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<VideoFrame>,
    /// The capture thread hit an error it cannot go on from.
    error: Option<MediaError>,
    /// The consumer is gone: stop capturing.
    stop: bool,
    /// The capture thread has ended and released the device.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    fn push(&self, frame: VideoFrame) {
        let mut state = self.lock();
        while state.frames.len() >= QUEUE {
            state.frames.pop_front();
        }
        state.frames.push_back(frame);
        drop(state);
        self.changed.notify_all();
    }

    fn fail(&self, error: MediaError) {
        self.lock().error = Some(error);
        self.changed.notify_all();
    }
}

/// Marks the capture thread finished however it ends (even by panicking),
/// after the nokhwa camera it owned is dropped.
struct Finished(Arc<Shared>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.lock().finished = true;
        self.0.changed.notify_all();
    }
}

/// What the capture thread tells `open` once the device is streaming.
struct Opened {
    name: String,
    mode: CameraMode,
    modes: Vec<CameraMode>,
}

impl Camera {
    /// Opens camera `id` (an id from [`list_cameras`], `/dev/videoN`, or a
    /// name; `None`: the first camera) for `width`×`height` pictures at
    /// `fps`. The camera mode closest to that is chosen; frames of another
    /// size are center-cropped to the shape and scaled.
    ///
    /// Errors: no such camera → [`MediaError::DeviceNotFound`]; it would
    /// not open (in use, not allowed) → [`MediaError::DeviceBusy`].
    pub fn open(id: Option<&str>, width: u32, height: u32, fps: u32) -> Result<Self, MediaError> {
        let (width, height) = (width & !1, height & !1);
        if width == 0 || height == 0 || fps == 0 {
            return Err(MediaError::DeviceBusy {
                kind: KIND,
                detail: format!("cannot capture {width}x{height} at {fps} fps"),
            });
        }
        let cameras = list_cameras()?;
        let chosen = resolve(id, &cameras)?.clone();
        ensure_permission()?;

        let index = match chosen.id.parse::<u32>() {
            Ok(i) => CameraIndex::Index(i),
            Err(_) => CameraIndex::String(chosen.id.clone()),
        };
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let want = (width, height, fps);
        let id_text = chosen.id.clone();
        let thread = std::thread::Builder::new()
            .name(format!("camera-{}", chosen.id))
            .spawn(move || capture(index, id_text, want, thread_shared, ready_tx))
            .map_err(|e| MediaError::DeviceBusy {
                kind: KIND,
                detail: format!("cannot start the capture thread: {e}"),
            })?;

        let opened = match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Let it end on its own once the device answers.
                shared.lock().stop = true;
                return Err(MediaError::DeviceBusy {
                    kind: KIND,
                    detail: format!(
                        "camera {} did not open within {} s",
                        chosen.id,
                        OPEN_TIMEOUT.as_secs()
                    ),
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                return Err(MediaError::DeviceBusy {
                    kind: KIND,
                    detail: format!("the camera backend failed while opening {}", chosen.id),
                });
            }
        };
        let name = if opened.name.is_empty() {
            chosen.name.clone()
        } else {
            opened.name
        };
        tracing::info!(
            camera = %name,
            mode = ?opened.mode,
            out = %format!("{width}x{height}@{fps}"),
            "camera open"
        );
        Ok(Self {
            info: SourceInfo {
                name,
                width,
                height,
                fps: opened.mode.fps.min(fps),
                synthetic: false,
            },
            shared,
            thread: Some(thread),
            id: chosen.id,
            mode: opened.mode,
            modes: opened.modes,
        })
    }

    /// The id it was opened with (as in [`CameraInfo::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the device itself delivers (before conversion and scaling).
    pub fn device_mode(&self) -> CameraMode {
        self.mode
    }

    /// Every mode the device offers (may be empty when it cannot say).
    pub fn modes(&self) -> &[CameraMode] {
        &self.modes
    }
}

impl VideoSource for Camera {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let deadline = Instant::now() + STALL;
        let mut state = self.shared.lock();
        loop {
            if let Some(frame) = state.frames.pop_front() {
                return Ok(frame);
            }
            if let Some(e) = &state.error {
                return Err(e.clone());
            }
            if state.finished {
                return Err(MediaError::DeviceLost {
                    kind: KIND,
                    detail: format!("{}: capture ended", self.info.name),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MediaError::DeviceLost {
                    kind: KIND,
                    detail: format!("{}: no picture for {} s", self.info.name, STALL.as_secs()),
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut state = self.shared.lock();
        state.stop = true;
        state.frames.clear();
        while !state.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let finished = state.finished;
        drop(state);
        if let Some(thread) = self.thread.take() {
            if finished {
                let _ = thread.join();
            } else {
                // Stuck in the driver; it ends by itself after its next frame.
                tracing::warn!(camera = %self.info.name, "camera thread still busy; detaching it");
            }
        }
    }
}

/// macOS asks the user before the first use; elsewhere this is a no-op.
fn ensure_permission() -> Result<(), MediaError> {
    if nokhwa::nokhwa_check() {
        return Ok(());
    }
    let (tx, rx) = mpsc::sync_channel(1);
    nokhwa::nokhwa_initialize(move |granted| {
        let _ = tx.try_send(granted);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(MediaError::DeviceBusy {
            kind: KIND,
            detail: "camera access was not allowed".to_string(),
        }),
        Err(_) => Err(MediaError::DeviceBusy {
            kind: KIND,
            detail: "no answer to the camera permission request".to_string(),
        }),
    }
}

/// Every layout the converter reads, so any mode the camera has will do.
const ACCEPTED: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
    FrameFormat::GRAY,
];

/// Opens the device (on the capture thread: nokhwa's camera stays here).
fn open_device(
    index: &CameraIndex,
    id: &str,
    (width, height, fps): (u32, u32, u32),
) -> Result<(nokhwa::Camera, Opened), MediaError> {
    let request = RequestedFormat::with_formats(RequestedFormatType::None, &ACCEPTED);
    let mut camera = nokhwa::Camera::new(index.clone(), request).map_err(|e| open_error(&e, id))?;
    let modes: Vec<CameraMode> = match camera.compatible_camera_formats() {
        Ok(formats) => formats.iter().map(camera_mode).collect(),
        Err(e) => {
            tracing::debug!(camera = id, "cannot list camera modes: {e}");
            Vec::new()
        }
    };
    let current = camera_mode(&camera.camera_format());
    if let Some(best) = choose_mode(&modes, width, height, fps)
        && best != current
        && let Some(format) = frame_format(best.format)
    {
        let wanted = CameraFormat::new(Resolution::new(best.width, best.height), format, best.fps);
        let formats = [format];
        let request = RequestedFormat::with_formats(RequestedFormatType::Exact(wanted), &formats);
        if let Err(e) = camera.set_camera_requset(request) {
            // The mode it has will do: everything gets scaled.
            tracing::warn!(camera = id, mode = ?best, "camera refused mode: {e}");
        }
    }
    camera.open_stream().map_err(|e| open_error(&e, id))?;
    let mode = camera_mode(&camera.camera_format());
    let name = camera.info().human_name();
    Ok((camera, Opened { name, mode, modes }))
}

/// Bytes from one row to the next, when a frame is larger than tightly
/// packed rows (drivers pad rows); 0 (packed) otherwise.
fn stride_of(len: usize, rows: usize, row_bytes: usize) -> usize {
    if rows > 0 && len.is_multiple_of(rows) && len / rows > row_bytes {
        len / rows
    } else {
        0
    }
}

/// Describes one frame as the camera delivered it.
fn raw_image(mode: CameraMode, data: &[u8]) -> RawImage<'_> {
    let (w, h) = (mode.width as usize, mode.height as usize);
    let mut format = mode.format;
    // Some backends label NV12 as YUYV; the length tells them apart.
    if format == PixelFormat::Yuyv && data.len() == w * h * 3 / 2 && data.len() < w * h * 2 {
        format = PixelFormat::Nv12;
    }
    let stride = match format {
        PixelFormat::Yuyv => stride_of(data.len(), h, w * 2),
        PixelFormat::Nv12 => stride_of(data.len(), h + h.div_ceil(2), w),
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => stride_of(data.len(), h, w * 3),
        PixelFormat::Rgba | PixelFormat::Bgra => stride_of(data.len(), h, w * 4),
        PixelFormat::Gray => stride_of(data.len(), h, w),
        PixelFormat::Mjpeg | PixelFormat::I420 => 0,
    };
    RawImage {
        format,
        width: mode.width,
        height: mode.height,
        stride,
        data,
    }
}

/// The capture thread: opens the device, then converts frames until the
/// [`Camera`] is dropped or the device fails.
fn capture(
    index: CameraIndex,
    id: String,
    want: (u32, u32, u32),
    shared: Arc<Shared>,
    ready: mpsc::SyncSender<Result<Opened, MediaError>>,
) {
    let _finished = Finished(Arc::clone(&shared));
    let (mut camera, opened) = match open_device(&index, &id, want) {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let name = opened.name.clone();
    if ready.send(Ok(opened)).is_err() {
        return;
    }
    let (width, height, fps) = want;
    // A camera clearly faster than the call has frames skipped, to the
    // wanted rate on average; a quarter interval of slack absorbs jitter.
    let interval_us = 1_000_000 / u64::from(fps);
    let mut next_due_us = 0u64;
    let mut converter = Converter::new();
    let mut out = Vec::new();
    let mut bad = 0u32;
    while !shared.stopping() {
        let mode = camera_mode(&camera.camera_format());
        let raw = match camera.frame_raw() {
            Ok(raw) => raw,
            Err(e) => {
                shared.fail(MediaError::DeviceLost {
                    kind: KIND,
                    detail: format!("{name}: {e}"),
                });
                break;
            }
        };
        let at = now_us();
        let faster = u64::from(mode.fps) * 5 > u64::from(fps) * 6;
        if faster && at + interval_us / 4 < next_due_us {
            continue;
        }
        next_due_us = if at > next_due_us + interval_us {
            at + interval_us
        } else {
            next_due_us + interval_us
        };
        let image = raw_image(mode, &raw);
        match converter.to_i420_scaled(&image, width, height, Filter::Bilinear, &mut out) {
            Ok((w, h)) => {
                bad = 0;
                shared.push(VideoFrame {
                    width: w,
                    height: h,
                    data: Arc::from(&out[..]),
                    timestamp_us: at,
                });
            }
            Err(e) => {
                bad += 1;
                tracing::debug!(camera = %name, "bad frame: {e}");
                if bad >= MAX_BAD_FRAMES {
                    shared.fail(MediaError::DeviceLost {
                        kind: KIND,
                        detail: format!("{name}: {bad} unreadable frames in a row ({e})"),
                    });
                    break;
                }
            }
        }
    }
    // `camera` drops here: the stream stops and the device is released,
    // then `_finished` tells the `Camera` so.
    drop(camera);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, name: &str) -> CameraInfo {
        CameraInfo {
            id: id.to_string(),
            name: name.to_string(),
            description: String::new(),
        }
    }

    fn mode(width: u32, height: u32, fps: u32, format: PixelFormat) -> CameraMode {
        CameraMode {
            width,
            height,
            fps,
            format,
        }
    }

    #[test]
    fn camera_is_send() {
        fn send<T: Send>() {}
        send::<Camera>();
    }

    #[test]
    fn no_cameras_here_lists_empty() {
        // The machines this runs on have no camera.
        assert_eq!(list_cameras(), Ok(Vec::new()));
    }

    #[test]
    fn opening_without_a_camera_is_not_found() {
        let err = Camera::open(None, 640, 480, 30).unwrap_err();
        match &err {
            MediaError::DeviceNotFound { kind, detail } => {
                assert_eq!(*kind, "camera");
                assert!(detail.contains("no camera"), "{detail}");
            }
            other => panic!("want DeviceNotFound, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "camera not found: no camera on this machine"
        );
    }

    #[test]
    fn opening_a_missing_device_is_not_found() {
        let err = Camera::open(Some("/dev/video9"), 640, 480, 30).unwrap_err();
        match err {
            MediaError::DeviceNotFound { kind, detail } => {
                assert_eq!(kind, "camera");
                assert!(detail.contains("/dev/video9"), "{detail}");
            }
            other => panic!("want DeviceNotFound, got {other:?}"),
        }
        assert!(matches!(
            Camera::open(Some("Front Camera"), 1280, 720, 30),
            Err(MediaError::DeviceNotFound { .. })
        ));
    }

    #[test]
    fn ids_resolve_by_index_path_or_name() {
        let cams = [info("0", "Integrated Camera"), info("2", "USB Camera")];
        assert_eq!(resolve(None, &cams).unwrap().id, "0");
        assert_eq!(resolve(Some("2"), &cams).unwrap().id, "2");
        assert_eq!(resolve(Some("/dev/video2"), &cams).unwrap().id, "2");
        assert_eq!(resolve(Some("USB Camera"), &cams).unwrap().id, "2");
        let err = resolve(Some("/dev/video9"), &cams).unwrap_err();
        let MediaError::DeviceNotFound { detail, .. } = err else {
            panic!("want DeviceNotFound, got {err:?}");
        };
        assert!(detail.contains("0 (Integrated Camera)"), "{detail}");
        assert!(matches!(
            resolve(None, &[]),
            Err(MediaError::DeviceNotFound { .. })
        ));
    }

    #[test]
    fn metadata_nodes_are_dropped() {
        let listed = vec![
            (info("0", "Integrated Camera"), Some(0)),
            (info("1", "Integrated Camera"), Some(1)),
            (info("2", "Capture Card"), Some(1)),
            (info("3", "Elsewhere"), None),
        ];
        let ids: Vec<String> = drop_secondary_nodes(listed)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["0", "2", "3"]);
    }

    #[test]
    fn mode_choice() {
        use PixelFormat::{Mjpeg, Nv12, Yuyv};
        let webcam = [
            mode(640, 480, 30, Yuyv),
            mode(1280, 720, 10, Yuyv),
            mode(1920, 1080, 5, Yuyv),
            mode(640, 480, 30, Mjpeg),
            mode(1280, 720, 30, Mjpeg),
            mode(1920, 1080, 30, Mjpeg),
            mode(320, 240, 30, Yuyv),
        ];
        // Exact size at full rate: raw YUYV over MJPEG.
        assert_eq!(
            choose_mode(&webcam, 640, 480, 30),
            Some(mode(640, 480, 30, Yuyv))
        );
        // 720p: YUYV is too slow there, MJPEG is not.
        assert_eq!(
            choose_mode(&webcam, 1280, 720, 30),
            Some(mode(1280, 720, 30, Mjpeg))
        );
        // 640×360: the smallest picture that covers it.
        assert_eq!(
            choose_mode(&webcam, 640, 360, 30),
            Some(mode(640, 480, 30, Yuyv))
        );
        // Larger than anything: the largest at full rate.
        assert_eq!(
            choose_mode(&webcam, 3840, 2160, 30),
            Some(mode(1920, 1080, 30, Mjpeg))
        );
        // Same size in two shapes: the matching shape.
        let shapes = [mode(960, 720, 30, Nv12), mode(1280, 720, 30, Nv12)];
        assert_eq!(
            choose_mode(&shapes, 640, 360, 30),
            Some(mode(960, 720, 30, Nv12))
        );
        let shapes = [mode(1280, 960, 30, Nv12), mode(1280, 720, 30, Nv12)];
        assert_eq!(
            choose_mode(&shapes, 640, 360, 30),
            Some(mode(1280, 720, 30, Nv12))
        );
        // Nothing fast enough: the fastest.
        let slow = [mode(640, 480, 10, Yuyv), mode(640, 480, 15, Yuyv)];
        assert_eq!(
            choose_mode(&slow, 640, 480, 30),
            Some(mode(640, 480, 15, Yuyv))
        );
        // 25 fps is close enough to 30 to keep the size.
        let pal = [mode(1280, 720, 25, Mjpeg), mode(640, 480, 30, Mjpeg)];
        assert_eq!(
            choose_mode(&pal, 1280, 720, 30),
            Some(mode(1280, 720, 25, Mjpeg))
        );
        // The rate nearest the wanted one.
        let rates = [mode(640, 480, 60, Yuyv), mode(640, 480, 30, Yuyv)];
        assert_eq!(
            choose_mode(&rates, 640, 480, 30),
            Some(mode(640, 480, 30, Yuyv))
        );
        assert_eq!(choose_mode(&[], 640, 480, 30), None);
    }

    #[test]
    fn open_errors_are_classified() {
        let missing = nokhwa::NokhwaError::OpenDeviceError(
            "9".to_string(),
            "V4L2 Error: No such file or directory (os error 2)".to_string(),
        );
        assert!(matches!(
            open_error(&missing, "9"),
            MediaError::DeviceNotFound { kind: "camera", .. }
        ));
        let busy = nokhwa::NokhwaError::OpenStreamError(
            "Device or resource busy (os error 16)".to_string(),
        );
        let err = open_error(&busy, "0");
        assert!(matches!(err, MediaError::DeviceBusy { kind: "camera", .. }));
        assert!(err.to_string().contains("busy (os error 16)"), "{err}");
        let denied = nokhwa::NokhwaError::OpenDeviceError(
            "0".to_string(),
            "V4L2 Error: Permission denied (os error 13)".to_string(),
        );
        assert!(matches!(
            open_error(&denied, "0"),
            MediaError::DeviceBusy { .. }
        ));
    }

    #[test]
    fn raw_frames_get_their_stride_and_layout() {
        let yuyv = mode(4, 2, 30, PixelFormat::Yuyv);
        let packed = vec![0u8; 16];
        let image = raw_image(yuyv, &packed);
        assert_eq!((image.format, image.stride), (PixelFormat::Yuyv, 0));
        let padded = vec![0u8; 24];
        assert_eq!(raw_image(yuyv, &padded).stride, 12);
        // Labelled YUYV, sized like NV12.
        let nv12 = vec![0u8; 12];
        assert_eq!(raw_image(yuyv, &nv12).format, PixelFormat::Nv12);
        let nv12_mode = mode(4, 2, 30, PixelFormat::Nv12);
        assert_eq!(raw_image(nv12_mode, &[0u8; 18]).stride, 6);
        assert_eq!(raw_image(nv12_mode, &nv12).stride, 0);
    }

    #[test]
    fn queue_keeps_the_newest_two() {
        let shared = Shared::default();
        for t in 0..5 {
            shared.push(VideoFrame::new(2, 2, vec![0; 6], t).unwrap());
        }
        let stamps: Vec<u64> = shared
            .lock()
            .frames
            .iter()
            .map(|f| f.timestamp_us)
            .collect();
        assert_eq!(stamps, [3, 4]);
    }

    #[test]
    fn frames_flow_and_end_through_the_queue() {
        // The consumer side of a camera, fed by hand instead of a device.
        let shared = Arc::new(Shared::default());
        let feeder = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let _finished = Finished(Arc::clone(&feeder));
            let mut t = 0;
            while !feeder.stopping() {
                feeder.push(VideoFrame::new(2, 2, vec![0; 6], t).unwrap());
                t += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut camera = Camera {
            shared,
            thread: Some(thread),
            info: SourceInfo {
                name: "fake".to_string(),
                width: 2,
                height: 2,
                fps: 30,
                synthetic: false,
            },
            id: "0".to_string(),
            mode: mode(2, 2, 30, PixelFormat::I420),
            modes: Vec::new(),
        };
        let a = camera.next_frame().unwrap();
        let b = camera.next_frame().unwrap();
        assert!(b.timestamp_us > a.timestamp_us);
        let shared = Arc::clone(&camera.shared);
        drop(camera);
        assert!(shared.lock().finished, "dropping stops the thread");

        // A device failure reaches the consumer as DeviceLost.
        let shared = Arc::new(Shared::default());
        shared.fail(MediaError::DeviceLost {
            kind: KIND,
            detail: "unplugged".to_string(),
        });
        // Its thread has already ended.
        drop(Finished(Arc::clone(&shared)));
        let mut camera = Camera {
            shared,
            thread: None,
            info: SourceInfo {
                name: "fake".to_string(),
                width: 2,
                height: 2,
                fps: 30,
                synthetic: false,
            },
            id: "0".to_string(),
            mode: mode(2, 2, 30, PixelFormat::I420),
            modes: Vec::new(),
        };
        assert!(matches!(
            camera.next_frame(),
            Err(MediaError::DeviceLost { .. })
        ));
    }
}
