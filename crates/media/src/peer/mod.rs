//! WebRTC peer connections (webrtc-rs 0.21): one per remote member.

pub(crate) mod governor;
pub(crate) mod handshake_copies;
pub(crate) mod link;
pub(crate) mod nack;
pub(crate) mod setup;
pub(crate) mod tap;
pub(crate) mod turn_tcp;

pub use link::LinkState;
