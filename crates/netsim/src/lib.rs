//! A network to break, for Beckon's tests and benchmarks.
//!
//! Hosts live in Linux network namespaces. Each reaches the core (where
//! beckon-server and coturn run, at [`world::CORE_ADDR`]) through its own
//! access link, a pair of TUN devices with a userspace [`model::Path`] per
//! direction between them: loss (random or bursty), delay and jitter,
//! a rate cap with a bounded queue, outages, UDP blocking. The core does not
//! forward, so hosts only meet through its servers. The kernel's netem is
//! not needed; everything is seeded and repeatable.
//!
//! ```no_run
//! use beckon_netsim::{world::World, turn::Turn, model::{Impairment, Loss}, link::Direction};
//! # fn main() -> Result<(), beckon_netsim::NetError> {
//! let mut world = World::new(42)?;
//! let turn = Turn::start(&world, "shared secret")?;
//! world.add_host("a")?;
//! world.add_host("b")?;
//! let a = world.host("a").unwrap();
//! a.link().set(Direction::Both, Impairment { loss: Loss::Random(0.1), ..Impairment::clean() });
//! let peer = a.command("beckon-peer").arg("--help").status();
//! # drop(turn); Ok(()) }
//! ```
//!
//! Needs root (namespaces, TUN), `ip` (iproute2) and, for the relay,
//! `turnserver` (coturn).

pub mod link;
pub mod model;
mod sys;
pub mod turn;
pub mod world;

/// What can go wrong building or running a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The machine cannot host it (not root, no TUN, no `ip`, no coturn),
    /// or a step of building it failed. Final: retrying will not help.
    #[error("network set-up: {0}")]
    Setup(String),
    /// A system call failed while it ran.
    #[error("network I/O: {0}")]
    Io(String),
}
