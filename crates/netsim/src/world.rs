//! A small internet in network namespaces: a core where the servers live
//! (at [`CORE_ADDR`]) and hosts that reach it only through their own
//! emulated access link. The core does not forward, so hosts cannot reach
//! each other: whatever they exchange goes through a server in the core
//! (coturn, for media).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use crate::NetError;
use crate::link::Link;
use crate::sys;

/// Where the core's servers listen, as every host sees it.
pub const CORE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

const PREFIX: &str = "beckon-";

static WORLDS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip` with these arguments; its complaint becomes the error.
pub(crate) fn ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::Setup(format!("running ip: {e} (is iproute2 installed?)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Kills every process in a namespace and removes it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes namespaces that worlds of processes no longer running left
/// behind (a test killed half-way).
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(namespace = name, "removing a namespace left behind");
            remove_namespace(name);
        }
    }
}

/// Whether this process may build worlds (root, with `ip` and TUN).
pub fn available() -> Result<(), NetError> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Err(NetError::Setup(
            "network namespaces and TUN devices need root".into(),
        ));
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err(NetError::Setup("/dev/net/tun is missing".into()));
    }
    Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| NetError::Setup(format!("ip (iproute2) is missing: {e}")))?;
    Ok(())
}

/// One host: a namespace behind an emulated access link.
#[derive(Debug)]
pub struct Host {
    name: String,
    namespace: String,
    index: u8,
    device: String,
    address: Mutex<Ipv4Addr>,
    moves: Mutex<u8>,
    link: Link,
}

impl Host {
    /// Its name in the world ("a", "b", …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace its programs run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its address now.
    pub fn address(&self) -> Ipv4Addr {
        *self.address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its access link, to impair.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Moves the host to a new address (a laptop going from Wi-Fi to
    /// Ethernet): the old one is gone at once, with every socket's path
    /// that used it.
    pub fn change_address(&self) -> Result<Ipv4Addr, NetError> {
        let mut moves = self.moves.lock().unwrap_or_else(|p| p.into_inner());
        *moves = moves.wrapping_add(1);
        let new = Ipv4Addr::new(10, 77, self.index, 2 + *moves % 200);
        let old = self.address();
        let (new_s, old_s) = (format!("{new}/24"), format!("{old}/24"));
        let ns = self.namespace.as_str();
        // Old first: a new address in the same subnet would be a secondary
        // one, which the kernel deletes with the primary.
        ip(&["-n", ns, "addr", "del", &old_s, "dev", &self.device])?;
        ip(&["-n", ns, "addr", "add", &new_s, "dev", &self.device])?;
        ip(&["-n", ns, "route", "replace", "default", "dev", &self.device])?;
        *self.address.lock().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(new)
    }

    /// A command that runs `program` on this host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_namespace(&self.namespace, program)
    }
}

/// `ip netns exec <namespace> <program>`: the program runs in the namespace
/// (and is the child itself, so killing the child kills it).
pub fn in_namespace(namespace: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", namespace]).arg(program);
    c
}

/// Runs `f` on a new thread inside `namespace`; sockets it opens, and
/// threads (and runtimes) it starts, live there.
pub fn spawn_in<T: Send + 'static>(
    namespace: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T, NetError>> {
    let ns = namespace.to_owned();
    std::thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            sys::enter_namespace(&ns)
                .map_err(|e| NetError::Setup(format!("entering {ns}: {e}")))?;
            Ok(f())
        })
        .expect("spawning a thread")
}

/// The namespaces and links of one run; all of it goes when dropped.
#[derive(Debug)]
pub struct World {
    id: String,
    tag: String,
    core: String,
    seed: u64,
    hosts: Vec<Host>,
}

impl World {
    /// An empty world: the core namespace, with [`CORE_ADDR`] on it.
    /// `seed` makes every link's randomness repeatable.
    pub fn new(seed: u64) -> Result<Self, NetError> {
        available()?;
        sweep_stale();
        let n = WORLDS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = format!("{PREFIX}{pid}-{n}");
        let world = Self {
            core: format!("{id}-core"),
            tag: format!("bk{:x}", (pid << 8) | (n & 0xff)),
            id,
            seed,
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &world.core])?;
        world.quiet(&world.core)?;
        let core_addr = format!("{CORE_ADDR}/32");
        ip(&["-n", &world.core, "addr", "add", &core_addr, "dev", "lo"])?;
        Ok(world)
    }

    /// Loopback up, IPv6 off (candidates stay IPv4 and few).
    fn quiet(&self, ns: &str) -> Result<(), NetError> {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        let _ = in_namespace(ns, "sysctl")
            .args(["-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(())
    }

    /// The core's namespace, where servers run.
    pub fn core(&self) -> &str {
        &self.core
    }

    /// Adds a host behind a clean link of its own; it reaches the core at
    /// [`CORE_ADDR`], and nothing else.
    pub fn add_host(&mut self, name: &str) -> Result<&Host, NetError> {
        let index = u8::try_from(self.hosts.len() + 1)
            .ok()
            .filter(|&i| i < 250)
            .ok_or_else(|| NetError::Setup("too many hosts".into()))?;
        let ns = format!("{}-{name}", self.id);
        let (host_dev, core_dev) = (
            format!("{}h{index}", self.tag),
            format!("{}c{index}", self.tag),
        );
        ip(&["netns", "add", &ns])?;
        self.quiet(&ns)?;
        // Both ends are made here and moved: the files stay attached.
        let host_file = sys::open_tun(&host_dev)
            .map_err(|e| NetError::Setup(format!("TUN {host_dev}: {e}")))?;
        let core_file = sys::open_tun(&core_dev)
            .map_err(|e| NetError::Setup(format!("TUN {core_dev}: {e}")))?;
        ip(&["link", "set", &host_dev, "netns", &ns])?;
        ip(&["link", "set", &core_dev, "netns", &self.core])?;
        let addr = Ipv4Addr::new(10, 77, index, 2);
        let (addr_s, core_s) = (format!("{addr}/24"), format!("10.77.{index}.1/24"));
        ip(&["-n", &ns, "addr", "add", &addr_s, "dev", &host_dev])?;
        ip(&["-n", &ns, "link", "set", &host_dev, "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "dev", &host_dev])?;
        ip(&["-n", &self.core, "addr", "add", &core_s, "dev", &core_dev])?;
        ip(&["-n", &self.core, "link", "set", &core_dev, "up"])?;
        let seed = self.seed ^ (u64::from(index) << 32);
        let link = Link::start(host_file, core_file, seed)?;
        self.hosts.push(Host {
            name: name.to_owned(),
            namespace: ns,
            index,
            device: host_dev,
            address: Mutex::new(addr),
            moves: Mutex::new(0),
            link,
        });
        Ok(self.hosts.last().expect("just added"))
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let namespaces: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.namespace.clone())
            .chain([self.core.clone()])
            .collect();
        // Links first: their devices go with their files.
        self.hosts.clear();
        for ns in namespaces {
            remove_namespace(&ns);
        }
    }
}
