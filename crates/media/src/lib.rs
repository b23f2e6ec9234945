//! Beckon's media engine: local capture (camera, microphone, or synthetic
//! stand-ins), VP8 and Opus, WebRTC peer connections in a mesh, and the
//! receive path (depacketize, decode, hand frames to sinks, mix and play
//! audio).

pub mod call;
pub mod codec;
pub mod convert;
pub mod devices;
pub mod frame;
pub mod ladder;
pub mod peer;
pub mod pipeline;
pub mod rtp;
pub mod sink;
pub mod source;
pub mod voice;

/// What can go wrong in the media engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// No such device (unplugged, or none on this machine).
    #[error("{kind} not found: {detail}")]
    DeviceNotFound {
        /// `camera`, `microphone` or `speaker`.
        kind: &'static str,
        /// What was asked for.
        detail: String,
    },
    /// The device exists but cannot be opened (in use by another app, or no
    /// permission).
    #[error("{kind} is busy or not allowed: {detail}")]
    DeviceBusy {
        /// `camera`, `microphone` or `speaker`.
        kind: &'static str,
        /// What the system said.
        detail: String,
    },
    /// A device stopped delivering.
    #[error("{kind} stopped: {detail}")]
    DeviceLost {
        /// `camera`, `microphone` or `speaker`.
        kind: &'static str,
        /// What happened.
        detail: String,
    },
    /// An encoder or decoder refused its input.
    #[error("codec: {0}")]
    Codec(String),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    Rtc(String),
    /// A peer sent something that cannot be used (bad SDP, unknown peer).
    #[error("invalid signaling: {0}")]
    Signaling(String),
}
