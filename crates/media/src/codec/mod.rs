//! Codecs: VP8 for video, Opus for audio.

pub mod opus;
pub mod vp8;
