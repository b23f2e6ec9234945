//! Where local media comes from: real devices or synthetic stand-ins, behind
//! one pair of traits so every path runs on machines without devices.

pub mod camera;
pub mod microphone;
pub(crate) mod stream_thread;
pub mod synthetic;

use crate::MediaError;
use crate::frame::{AudioFrame, VideoFrame};

/// What a video source delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Shown to the user.
    pub name: String,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// A test pattern rather than a camera.
    pub synthetic: bool,
}

/// A camera, or something that stands in for one. Pull-based: the capture
/// thread calls `next_frame` in a loop; it blocks until a frame is there.
pub trait VideoSource: Send {
    /// The next picture, in I420.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError>;
    /// What it delivers.
    fn info(&self) -> SourceInfo;
}

/// A microphone, or something that stands in for one: 20 ms frames of 48 kHz
/// mono, blocking until the next one is there.
pub trait AudioSource: Send {
    /// The next 20 ms.
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError>;
    /// Shown to the user.
    fn name(&self) -> String;
}
