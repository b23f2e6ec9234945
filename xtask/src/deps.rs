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

/// A Debian/Ubuntu package, why we need it, and for which tasks.
struct Package {
    name: &'static str,
    why: &'static str,
    needed_for: &'static [Purpose],
}

const BOTH: &[Purpose] = &[Purpose::Test, Purpose::Run];
const TEST: &[Purpose] = &[Purpose::Test];

const PACKAGES: &[Package] = &[
    Package {
        name: "build-essential",
        why: "a C compiler for ring, SQLite and libopus",
        needed_for: BOTH,
    },
    Package {
        name: "pkg-config",
        why: "to find the system libraries below",
        needed_for: BOTH,
    },
    Package {
        name: "cmake",
        why: "the opus crate builds libopus with it",
        needed_for: BOTH,
    },
    Package {
        name: "libvpx-dev",
        why: "the VP8 video codec",
        needed_for: BOTH,
    },
    Package {
        name: "libasound2-dev",
        why: "microphone and speaker access (cpal/ALSA)",
        needed_for: BOTH,
    },
    Package {
        name: "libclang-dev",
        why: "camera bindings are generated with bindgen",
        needed_for: BOTH,
    },
    Package {
        name: "clang",
        why: "bindgen for the camera bindings",
        needed_for: BOTH,
    },
    Package {
        name: "libv4l-dev",
        why: "cameras on Linux (Video4Linux)",
        needed_for: BOTH,
    },
    Package {
        name: "libwebkit2gtk-4.1-dev",
        why: "the app's web view (WebKitGTK)",
        needed_for: BOTH,
    },
    Package {
        name: "libgtk-3-dev",
        why: "the app's window (GTK)",
        needed_for: BOTH,
    },
    Package {
        name: "libsoup-3.0-dev",
        why: "WebKitGTK's networking",
        needed_for: BOTH,
    },
    Package {
        name: "libjavascriptcoregtk-4.1-dev",
        why: "WebKitGTK's JavaScript engine",
        needed_for: BOTH,
    },
    Package {
        name: "librsvg2-dev",
        why: "icons in GTK",
        needed_for: BOTH,
    },
    Package {
        name: "libayatana-appindicator3-dev",
        why: "the tray on Linux desktops",
        needed_for: BOTH,
    },
    Package {
        name: "libssl-dev",
        why: "TLS for the app's web view stack",
        needed_for: BOTH,
    },
    Package {
        name: "xvfb",
        why: "a virtual display for the app when there is none, and for the real-window tests",
        needed_for: BOTH,
    },
    Package {
        name: "xauth",
        why: "X authority for Xvfb",
        needed_for: BOTH,
    },
    Package {
        name: "imagemagick",
        why: "screenshots of the app under Xvfb",
        needed_for: BOTH,
    },
    Package {
        name: "webkit2gtk-driver",
        why: "WebKitWebDriver, which tauri-driver drives in the real-window tests",
        needed_for: TEST,
    },
    Package {
        name: "pulseaudio",
        why: "a userspace sound server the audio tests play into",
        needed_for: TEST,
    },
    Package {
        name: "pulseaudio-utils",
        why: "pacat/parec/pactl for the audio tests",
        needed_for: TEST,
    },
    Package {
        name: "libasound2-plugins",
        why: "routes ALSA to PulseAudio in the audio tests",
        needed_for: TEST,
    },
    Package {
        name: "coturn",
        why: "the TURN relay the network tests call through",
        needed_for: TEST,
    },
    Package {
        name: "iproute2",
        why: "network namespaces for the network tests (ip netns)",
        needed_for: TEST,
    },
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs what `purpose` needs and is missing (Debian/Ubuntu), or lists
/// what to install elsewhere.
pub(crate) fn ensure(purpose: Purpose) -> anyhow::Result<()> {
    let wanted: Vec<&Package> = PACKAGES
        .iter()
        .filter(|p| p.needed_for.contains(&purpose))
        .collect();
    if !(on_path("apt-get") && on_path("dpkg-query")) {
        println!(
            "xtask: not a Debian/Ubuntu system; make sure the equivalents of these are installed:"
        );
        for p in &wanted {
            println!("  {:<20} {}", p.name, p.why);
        }
        return Ok(());
    }
    let missing: Vec<&Package> = wanted.into_iter().filter(|p| !installed(p.name)).collect();
    if missing.is_empty() {
        println!("xtask: system packages: all present");
        return Ok(());
    }
    for p in &missing {
        println!("xtask: missing {} ({})", p.name, p.why);
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let sudo = if is_root() { vec![] } else { vec!["sudo"] };
    println!("xtask: installing with apt-get: {}", names.join(" "));
    run(&sudo, &["apt-get", "update"])?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend(&names);
    run(&sudo, &install)
}

/// Installs `names` with apt-get (Debian/Ubuntu only).
pub(crate) fn install(names: &[&str]) -> anyhow::Result<()> {
    anyhow::ensure!(
        on_path("apt-get"),
        "install {} and run again",
        names.join(" ")
    );
    let sudo = if is_root() { vec![] } else { vec!["sudo"] };
    println!("xtask: installing with apt-get: {}", names.join(" "));
    run(&sudo, &["apt-get", "update"])?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend(names);
    run(&sudo, &install)
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
