//! RTP payload handling that sits between webrtc-rs and the codecs.

pub mod vp8;
