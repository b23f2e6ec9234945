//! Sans-IO state machines for Beckon's call invitations.
//!
//! - [`registry`]: the server's view of every call (DESIGN §2), driven by
//!   the server with real sockets and timers.
//! - [`manager`]: one client's view: its current call, busy state, and the
//!   events a UI needs.
//!
//! Nothing here reads a clock or touches a socket: time comes in as
//! `Instant`s, work goes out as values to poll.

pub mod manager;
pub mod registry;
