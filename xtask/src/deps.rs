//! System packages: which ones each task needs, and installing them.

use std::process::Command;

/// What the packages are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Building and testing everything.
    Test,
    /// Building and running the demo.
    Run,
}

/// A Debian/Ubuntu package, why we need it, for which tasks, and a
/// command whose presence shows it is installed.
struct Package {
    name: &'static str,
    why: &'static str,
    needed_for: &'static [Purpose],
    probe: Probe,
}

enum Probe {
    /// A program on PATH.
    Program(&'static str),
    /// A library pkg-config knows.
    PkgConfig(&'static str),
}

const BOTH: &[Purpose] = &[Purpose::Test, Purpose::Run];

const PACKAGES: &[Package] = &[
    Package {
        name: "build-essential",
        why: "a C compiler for ring (TLS), the bundled SQLite and libopus",
        needed_for: BOTH,
        probe: Probe::Program("cc"),
    },
    Package {
        name: "pkg-config",
        why: "to find libvpx",
        needed_for: BOTH,
        probe: Probe::Program("pkg-config"),
    },
    Package {
        name: "cmake",
        why: "the opus crate builds libopus with it",
        needed_for: BOTH,
        probe: Probe::Program("cmake"),
    },
    Package {
        name: "libvpx-dev",
        why: "the VP8 video codec",
        needed_for: BOTH,
        probe: Probe::PkgConfig("vpx"),
    },
];

fn present(probe: &Probe) -> bool {
    match probe {
        Probe::PkgConfig(lib) => Command::new("pkg-config")
            .args(["--exists", lib])
            .status()
            .is_ok_and(|s| s.success()),
        Probe::Program(p) => Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success()),
    }
}

/// Installs what `purpose` needs and is missing, or explains what to
/// install where apt is not available.
pub(crate) fn ensure(purpose: Purpose) -> anyhow::Result<()> {
    let missing: Vec<&Package> = PACKAGES
        .iter()
        .filter(|pkg| pkg.needed_for.contains(&purpose) && !present(&pkg.probe))
        .collect();
    if missing.is_empty() {
        println!("xtask: system packages: all present");
        return Ok(());
    }
    for pkg in &missing {
        println!("xtask: missing {} ({})", pkg.name, pkg.why);
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    if !present(&Probe::Program("apt-get")) {
        anyhow::bail!(
            "install these with your system's package manager, then run again: {}",
            names.join(" ")
        );
    }
    let sudo = if is_root() { vec![] } else { vec!["sudo"] };
    println!("xtask: installing with apt-get: {}", names.join(" "));
    run(&sudo, &["apt-get", "update"])?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend(&names);
    run(&sudo, &install)?;
    Ok(())
}

fn run(prefix: &[&str], args: &[&str]) -> anyhow::Result<()> {
    let all: Vec<&str> = prefix.iter().chain(args).copied().collect();
    let status = Command::new(all[0])
        .args(&all[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    anyhow::ensure!(status.success(), "{} failed ({status})", all.join(" "));
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
