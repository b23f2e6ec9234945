//! Hosts in a real world of namespaces: what reaches whom, and what the
//! links do to it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use beckon_netsim::link::Direction;
use beckon_netsim::model::{Impairment, Loss};
use beckon_netsim::world::{CORE_ADDR, World, available, spawn_in};

/// Builds a world, or says why this machine cannot (only allowed outside
/// `cargo xtask test`, which sets BECKON_NETSIM_REQUIRED).
fn world() -> Option<World> {
    if let Err(e) = available() {
        assert!(
            std::env::var_os("BECKON_NETSIM_REQUIRED").is_none(),
            "the network tests must run here: {e}"
        );
        eprintln!("skipped: {e}");
        return None;
    }
    Some(World::new(7).expect("a world"))
}

/// A UDP echo on the core, for `secs`.
fn echo(world: &World, port: u16, secs: u64) {
    let socket = spawn_in(world.core(), move || {
        UdpSocket::bind(SocketAddr::from((CORE_ADDR, port))).unwrap()
    })
    .join()
    .unwrap()
    .unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 2000];
        while Instant::now() < end {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
}

/// Sends `n` numbered datagrams from `ns` to `to`, 1 ms apart, and
/// returns how many came back within a second after the last.
fn ping(ns: &str, to: SocketAddr, n: u32) -> u32 {
    spawn_in(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut back = 0;
        let mut buf = [0u8; 64];
        for i in 0..n {
            let _ = s.send_to(&i.to_le_bytes(), to);
            std::thread::sleep(Duration::from_millis(1));
            while s.recv(&mut buf).is_ok() {
                back += 1;
            }
        }
        let end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end {
            if s.recv(&mut buf).is_ok() {
                back += 1;
            }
        }
        back
    })
    .join()
    .unwrap()
    .unwrap()
}

#[test]
fn hosts_reach_the_core_but_not_each_other() {
    let Some(mut world) = world() else { return };
    world.add_host("a").unwrap();
    world.add_host("b").unwrap();
    echo(&world, 9000, 10);
    let core = SocketAddr::from((CORE_ADDR, 9000));
    let (a, b) = (world.host("a").unwrap(), world.host("b").unwrap());
    assert_eq!(ping(a.namespace(), core, 100), 100, "a reaches the core");
    assert_eq!(ping(b.namespace(), core, 100), 100, "b reaches the core");
    // An echo on a; b sends to it: the core does not forward.
    let on_a = spawn_in(a.namespace(), || UdpSocket::bind("0.0.0.0:9001").unwrap())
        .join()
        .unwrap()
        .unwrap();
    on_a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let a_addr = SocketAddr::from((a.address(), 9001));
    ping(b.namespace(), a_addr, 20);
    assert!(on_a.recv(&mut [0u8; 64]).is_err(), "b never reaches a");
    let (up, down) = a.link().stats();
    assert!(
        up.delivered >= 100 && down.delivered >= 100,
        "{up:?} {down:?}"
    );
}

#[test]
fn a_lossy_link_loses_its_share_and_an_outage_everything() {
    let Some(mut world) = world() else { return };
    world.add_host("a").unwrap();
    echo(&world, 9000, 20);
    let core = SocketAddr::from((CORE_ADDR, 9000));
    let a = world.host("a").unwrap();
    a.link().set(
        Direction::Up,
        Impairment {
            loss: Loss::Random(0.2),
            ..Impairment::clean()
        },
    );
    let back = ping(a.namespace(), core, 1000);
    assert!((740..=860).contains(&back), "{back} of 1000 with 20 % loss");
    a.link().set_down(true);
    assert_eq!(ping(a.namespace(), core, 50), 0, "nothing during an outage");
    a.link().set(Direction::Both, Impairment::clean());
    assert_eq!(ping(a.namespace(), core, 50), 50, "all back after it");
}

#[test]
fn a_host_that_moves_is_reached_at_its_new_address() {
    let Some(mut world) = world() else { return };
    world.add_host("a").unwrap();
    echo(&world, 9000, 10);
    let core = SocketAddr::from((CORE_ADDR, 9000));
    let a = world.host("a").unwrap();
    let old = a.address();
    // A socket bound to the old address loses its path.
    let bound = spawn_in(a.namespace(), move || {
        UdpSocket::bind(SocketAddr::from((old, 0))).unwrap()
    })
    .join()
    .unwrap()
    .unwrap();
    let new = a.change_address().unwrap();
    assert_ne!(old, new);
    assert!(
        bound.send_to(b"x", core).is_err() || {
            bound
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            bound.recv(&mut [0u8; 8]).is_err()
        }
    );
    assert_eq!(ping(a.namespace(), core, 50), 50, "new sockets get through");
}
