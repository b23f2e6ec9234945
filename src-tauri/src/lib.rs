//! Beckon's desktop app. Commands are a few lines that forward to the one
//! [`controller::CallController`]; it owns the signaling client, the call
//! manager (inside the client) and the media engine, and tells the UI what
//! changed as [`view::UiEvent`]s. Video reaches the UI through
//! [`tiles::Tiles`], one channel per tile.
//!
//! Everything but this file and `app.rs` runs without a window, so it is
//! tested without one.

mod app;
pub mod bindings;
pub mod controller;
pub mod devices;
pub mod host;
pub mod settings;
pub mod tiles;
pub mod view;

pub use app::run;
