//! Sans-IO state machines for Beckon's call invitations.
//!
//! - [`registry`]: the server's view of every call (DESIGN §2), driven by
//!   the server with real sockets and timers.
//! - [`manager`]: one client's view: its current call, busy state, and the
//!   events a UI needs.
//! - [`outcome`]: how a call went for each member, for the history and
//!   the app's end-of-call sentence.
//!
//! Nothing here reads a clock or touches a socket: time comes in as
//! `Instant`s, work goes out as values to poll.

pub mod manager;
pub mod outcome;
pub mod registry;
