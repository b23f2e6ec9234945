//! The desktop app's tasks: building the UI, running the app, the
//! real-window tests, the TypeScript bindings and the `.deb`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::procs::Killed;
use crate::{cargo, deps, root, step};

/// The oldest Node.js the UI's tools (Vite, Vitest) run on.
const NODE_MAJOR: u32 = 20;

/// Checks Node.js and npm, installing Debian's when they are missing.
pub(crate) fn ensure_node() -> anyhow::Result<()> {
    if major_node_version().is_none() {
        deps::install(&["nodejs", "npm"])?;
    }
    match major_node_version() {
        Some(v) if v >= NODE_MAJOR => Ok(()),
        Some(v) => anyhow::bail!(
            "Node.js {v} is too old for the UI's build tools; install Node.js {NODE_MAJOR} or newer \
             (e.g. from https://nodejs.org or NodeSource) and run again"
        ),
        None => anyhow::bail!("Node.js is needed to build the UI; install Node.js {NODE_MAJOR}+"),
    }
}

fn major_node_version() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn npm(dir: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("npm");
    cmd.args(args).current_dir(root().join(dir));
    cmd
}

/// Installs the UI's packages (exactly as locked) when they changed.
fn npm_ci(dir: &str) -> anyhow::Result<()> {
    let base = root().join(dir);
    let stamp = base.join("node_modules/.package-lock.json");
    let fresh = modified(&stamp).is_some_and(|installed| {
        modified(&base.join("package-lock.json")).is_some_and(|lock| lock <= installed)
    });
    if fresh {
        return Ok(());
    }
    step(
        &format!("{dir}: npm ci"),
        npm(dir, &["ci", "--no-audit", "--no-fund"]),
    )
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// Builds the UI into `ui/dist` (the app embeds it when compiled).
pub(crate) fn build_ui() -> anyhow::Result<()> {
    ensure_node()?;
    npm_ci("ui")?;
    step("ui: build", npm("ui", &["run", "build"]))
}

/// Type-checks and unit-tests the UI, then builds it.
pub(crate) fn test_ui() -> anyhow::Result<()> {
    ensure_node()?;
    npm_ci("ui")?;
    step("ui: type check", npm("ui", &["run", "check"]))?;
    step("ui: unit tests", npm("ui", &["test"]))?;
    step("ui: build", npm("ui", &["run", "build"]))
}

/// Rewrites `ui/src/lib/bindings.ts` from the Rust types.
pub(crate) fn bindings() -> anyhow::Result<()> {
    let mut cmd = cargo(&["test", "-p", "beckon", "--lib", "bindings_are_current"]);
    cmd.env("BECKON_UPDATE_BINDINGS", "1");
    step("bindings", cmd)
}

/// An X server of our own when there is no display.
pub(crate) struct Xvfb {
    child: Option<Child>,
    pub(crate) display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display number.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let n = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .context("no free X display number")?;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb (apt-get install xvfb)")?;
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        wait_until(Duration::from_secs(10), || socket.exists()).context("Xvfb did not start")?;
        Ok(Self {
            child: Some(child),
            display,
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            crate::procs::kill(c);
        }
    }
}

fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("timed out")
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    home.join("bin").join(name)
}

/// `tauri-driver`, installed with cargo when missing.
fn tauri_driver() -> anyhow::Result<PathBuf> {
    let path = cargo_bin("tauri-driver");
    if !path.exists() {
        step(
            "install tauri-driver",
            cargo(&["install", "tauri-driver", "--version", "^2", "--locked"]),
        )?;
    }
    Ok(path)
}

/// The real app in a real window (Xvfb), driven through tauri-driver and
/// WebKitWebDriver against a real server and beckon-peers.
pub(crate) fn e2e() -> anyhow::Result<()> {
    let started = Instant::now();
    build_ui()?;
    build_app_bins(false)?;
    npm_ci("e2e")?;
    let driver = Driver::start()?;
    let out = crate::procs::bin_dir("e2e");
    let _ = std::fs::remove_dir_all(&out);
    let mut run = npm("e2e", &["test"]);
    driver.setup(&mut run, "debug");
    run.env("BECKON_E2E_OUT", &out);
    step("e2e: real-window scenarios", run)?;
    println!(
        "xtask: e2e passed in {:.0} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// tauri-driver on a display of its own, the app it starts filming the
/// test pattern and playing a tone.
struct Driver {
    _driver: Killed,
    /// tauri-driver's process group: it and the WebKitWebDriver it starts
    /// (which outlived a killed tauri-driver).
    group: u32,
    x: Xvfb,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        Self::sweep();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.group)])
            .stderr(Stdio::null())
            .status();
    }
}

impl Driver {
    fn start() -> anyhow::Result<Self> {
        let driver = tauri_driver()?;
        let x = Xvfb::start()?;
        let port = free_port()?;
        let child = Command::new(driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &free_port()?.to_string(),
            ])
            .env("DISPLAY", &x.display)
            .env("BECKON_CAMERA", "synthetic")
            .env("BECKON_MIC", "tone")
            .env("BECKON_SPEAKER", "null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting tauri-driver")?;
        let group = child.id();
        let guard = Killed(child);
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .context("tauri-driver did not start")?;
        Ok(Self {
            _driver: guard,
            group,
            x,
            port,
        })
    }

    /// Ends app instances a failed scenario left behind (their profiles are
    /// all named beckon-e2e-app-…), with their web processes.
    fn sweep() {
        let _ = Command::new("pkill")
            .args(["-f", "beckon-e2e-app-"])
            .status();
    }

    /// Points a node script at this driver and the `profile`'s binaries.
    fn setup(&self, cmd: &mut Command, profile: &str) {
        cmd.env("DISPLAY", &self.x.display)
            .env("TAURI_DRIVER_PORT", self.port.to_string())
            .env("BECKON_BIN_DIR", crate::procs::bin_dir(profile));
    }
}

/// `cargo xtask bench app [--secs N]`: the app's footprint and video path
/// in a real window (release build), into `docs/benchmarks.md`.
pub(crate) fn bench_app(args: &[String]) -> anyhow::Result<()> {
    let hold = crate::bench::secs_arg(args, 10.0)?;
    deps::ensure(deps::Purpose::Test)?;
    build_ui()?;
    build_app_bins(true)?;
    npm_ci("e2e")?;
    let driver = Driver::start()?;
    let mut cmd = Command::new("node");
    cmd.arg("bench-app.mjs")
        .current_dir(root().join("e2e"))
        .env("BECKON_BENCH_HOLD_MS", ((hold * 1000.0) as u64).to_string())
        .stderr(Stdio::inherit());
    driver.setup(&mut cmd, "release");
    println!("\n== app benchmark ({hold} s per measurement)");
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "the app benchmark failed ({})",
        out.status
    );
    let text = String::from_utf8(out.stdout)?;
    let last = text
        .lines()
        .last()
        .context("the benchmark printed nothing")?;
    let r: serde_json::Value = serde_json::from_str(last).context("the benchmark's result")?;
    let deb = crate::procs::bin_dir("release").join("bundle");
    let report = crate::bench::app_report(&r, hold, &deb);
    println!("\n{report}");
    crate::bench::write_section("app", &report)
}

/// Builds the app, the server and the headless peer.
fn build_app_bins(release: bool) -> anyhow::Result<()> {
    let mut args = vec![
        "build",
        "-p",
        "beckon",
        "-p",
        "beckon-server",
        "-p",
        "beckon-peer",
    ];
    if release {
        args.push("--release");
    }
    step("build the app, server and peer", cargo(&args))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Builds the UI and the app, and opens it (on its embedded server once
/// "Host on this computer" is chosen). Without a display it runs under
/// Xvfb and saves a screenshot.
pub(crate) fn run_app(args: &[String]) -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Run)?;
    build_ui()?;
    step("build the app", cargo(&["build", "-p", "beckon"]))?;
    let bin = crate::procs::bin_dir("debug").join("beckon");
    let headless = std::env::var("DISPLAY").map_or(true, |d| d.is_empty())
        && std::env::var("WAYLAND_DISPLAY").map_or(true, |d| d.is_empty());
    if !headless {
        let status = Command::new(&bin).args(args).status()?;
        anyhow::ensure!(status.success(), "beckon exited with {status}");
        return Ok(());
    }
    let x = Xvfb::start()?;
    println!(
        "xtask: no display here; running Beckon under Xvfb on {} (screenshots every 10 s in {}); Ctrl-C stops it",
        x.display,
        crate::procs::bin_dir("run-screens").display()
    );
    let mut app = Killed(
        Command::new(&bin)
            .args(args)
            .env("DISPLAY", &x.display)
            .spawn()?,
    );
    let screens = crate::procs::bin_dir("run-screens");
    std::fs::create_dir_all(&screens)?;
    loop {
        std::thread::sleep(Duration::from_secs(10));
        if let Some(status) = app.0.try_wait()? {
            anyhow::ensure!(status.success(), "beckon exited with {status}");
            return Ok(());
        }
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(screens.join("latest.png"))
            .env("DISPLAY", &x.display)
            .status();
    }
}

/// A `.deb` of the release build (Linux), built with `dpkg-deb` from the
/// root `tauri.conf.json`'s name, version and icons.
pub(crate) fn bundle() -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Run)?;
    build_ui()?;
    step(
        "release build",
        cargo(&["build", "--release", "--locked", "-p", "beckon"]),
    )?;
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tauri.conf.json"))?)?;
    let version = conf["version"].as_str().unwrap_or("0.1.0");
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()?
            .stdout,
    )?
    .trim()
    .to_owned();
    let out = crate::procs::bin_dir("release").join("bundle");
    let pkg = out.join("beckon");
    let _ = std::fs::remove_dir_all(&pkg);
    let put = |rel: &str, from: &Path| -> anyhow::Result<()> {
        let to = pkg.join(rel);
        std::fs::create_dir_all(to.parent().expect("has a parent"))?;
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    };
    put(
        "usr/bin/beckon",
        &crate::procs::bin_dir("release").join("beckon"),
    )?;
    // Debug symbols stay in target/; the package ships a stripped binary.
    let strip = Command::new("strip")
        .arg("--strip-unneeded")
        .arg(pkg.join("usr/bin/beckon"))
        .status();
    if !strip.is_ok_and(|s| s.success()) {
        println!("xtask: strip failed; the package keeps the symbols");
    }
    for (size, file) in [
        ("32x32", "32x32.png"),
        ("128x128", "128x128.png"),
        ("256x256", "128x128@2x.png"),
        ("512x512", "icon.png"),
    ] {
        put(
            &format!("usr/share/icons/hicolor/{size}/apps/beckon.png"),
            &root().join("icons").join(file),
        )?;
    }
    let desktop = pkg.join("usr/share/applications/beckon.desktop");
    std::fs::create_dir_all(desktop.parent().expect("has a parent"))?;
    std::fs::write(
        &desktop,
        "[Desktop Entry]\nType=Application\nName=Beckon\nComment=Video calls, peer to peer\n\
         Exec=beckon\nIcon=beckon\nTerminal=false\nCategories=Network;InstantMessaging;VideoConference;\n\
         StartupWMClass=beckon\n",
    )?;
    let installed_kb = dir_size(&pkg)? / 1024;
    let depends = conf["bundle"]["linux"]["deb"]["depends"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    std::fs::create_dir_all(pkg.join("DEBIAN"))?;
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: beckon\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Beckon developers\n\
             Installed-Size: {installed_kb}\nDepends: {depends}\nSection: net\nPriority: optional\n\
             Description: {}\n {}\n",
            conf["bundle"]["shortDescription"]
                .as_str()
                .unwrap_or("Video calls"),
            conf["bundle"]["longDescription"].as_str().unwrap_or(""),
        ),
    )?;
    let deb = out.join(format!("beckon_{version}_{arch}.deb"));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--build", "--root-owner-group"])
        .arg(&pkg)
        .arg(&deb);
    step("dpkg-deb", cmd)?;
    println!(
        "xtask: {} ({:.1} MB; the binary {:.1} MB)",
        deb.display(),
        std::fs::metadata(&deb)?.len() as f64 / 1e6,
        std::fs::metadata(pkg.join("usr/bin/beckon"))?.len() as f64 / 1e6
    );
    Ok(())
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
