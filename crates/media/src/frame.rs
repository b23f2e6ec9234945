//! Raw media as it moves between capture, codecs and sinks.

use std::sync::Arc;

/// One picture in I420 (planar YUV 4:2:0): a full-size Y plane, then U and V
/// at half width and height. Width and height are even.
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Y, then U, then V, without padding. Shared, so passing a frame to
    /// several sinks copies nothing.
    pub data: Arc<[u8]>,
    /// When the picture was taken (or decoded), microseconds since the Unix
    /// epoch.
    pub timestamp_us: u64,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VideoFrame({}x{} @ {}us)",
            self.width, self.height, self.timestamp_us
        )
    }
}

impl VideoFrame {
    /// Bytes an I420 frame of this size takes.
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }

    /// A frame from I420 bytes; `None` when the size does not match.
    pub fn new(width: u32, height: u32, data: Vec<u8>, timestamp_us: u64) -> Option<Self> {
        (width.is_multiple_of(2)
            && height.is_multiple_of(2)
            && data.len() == Self::i420_len(width, height))
        .then(|| Self {
            width,
            height,
            data: data.into(),
            timestamp_us,
        })
    }

    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..(self.width * self.height) as usize]
    }

    /// The U plane.
    pub fn u(&self) -> &[u8] {
        let y = (self.width * self.height) as usize;
        &self.data[y..y + y / 4]
    }

    /// The V plane.
    pub fn v(&self) -> &[u8] {
        let y = (self.width * self.height) as usize;
        &self.data[y + y / 4..]
    }
}

/// 20 ms of mono audio at 48 kHz: 960 samples in [-1, 1].
#[derive(Clone, PartialEq)]
pub struct AudioFrame {
    /// The samples.
    pub samples: Arc<[f32]>,
    /// When the first sample was captured, microseconds since the Unix epoch.
    pub timestamp_us: u64,
}

impl std::fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AudioFrame({} samples @ {}us)",
            self.samples.len(),
            self.timestamp_us
        )
    }
}

/// Samples per second everywhere inside Beckon.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;

impl AudioFrame {
    /// Root-mean-square level of the frame (0 silence, ~0.35 a full sine at 0.5).
    pub fn rms(&self) -> f32 {
        rms(&self.samples)
    }
}

/// Root-mean-square level of `samples`.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
