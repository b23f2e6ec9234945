//! Where remote media goes: decoded video to per-member sinks, audio
//! through a jitter buffer and mixer to a speaker (or a sink tests read).

pub mod jitter;
pub mod mixer;
pub mod speaker;
pub mod stretch;
