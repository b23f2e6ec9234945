//! `cargo xtask <task>`: Beckon's project tasks.
//!
//! - `setup`: installs the system packages the build and tests need
//!   (Debian/Ubuntu via apt; elsewhere it says what to install).
//! - `run`: builds the UI and the app and opens it.
//! - `demo`: a server and two headless users placing a call.
//! - `test`: everything CI checks: formatting, lints, the UI's checks and
//!   tests, every Rust test, and the real-window tests.
//! - `e2e`: the real-window tests alone.
//! - `bundle`: a `.deb` of the release build.
//! - `bindings`: regenerates the UI's TypeScript types from the Rust ones.
//! - `bench [media|signaling|app]`: measures calls against headless Chromium,
//!   the signaling server under load and the app's footprint, and rewrites
//!   `docs/benchmarks.md`.

mod app;
mod bench;
mod chromium;
mod deps;
mod graph;
mod network;
mod procs;
mod run;
mod signaling_bench;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  setup   install the system packages Beckon needs (apt on Debian/Ubuntu)
  run       build the UI and the app, and open it
  demo      start a server and two headless users who call each other
  test      formatting, lints, UI checks and tests, every test, the real-window tests
  e2e       the real-window tests alone (Xvfb, tauri-driver, beckon-peers)
  network   the network tests alone (calls through coturn across an impaired link)
  bundle    a .deb of the release build (target/release/bundle)
  bindings  regenerate ui/src/lib/bindings.ts from src-tauri/src/view.rs
  graph     check the crate graph against DESIGN §1 (part of test)
  bench     every benchmark below, then rewrite docs/benchmarks.md (under 30 min)
  bench     media|signaling|app [--secs N]: one of them (media against headless
            Chromium, the signaling server under load, the desktop app's footprint)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => deps::ensure(deps::Purpose::Test),
        Some("run") => app::run_app(&args[1..]),
        Some("demo") => run::run(),
        Some("test") => test(),
        Some("e2e") => deps::ensure(deps::Purpose::Test).and_then(|()| app::e2e()),
        Some("network") => deps::ensure(deps::Purpose::Test).and_then(|()| network::test()),
        Some("bundle") => app::bundle(),
        Some("bindings") => app::bindings(),
        Some("graph") => graph::check(),
        Some("bench") if args.len() == 1 => bench_all(),
        Some("bench") => bench::bench(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown task {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask bench`: every benchmark in turn (each rewrites its section of
/// `docs/benchmarks.md`), then the summary at the top: the machine, and how
/// long each part took.
fn bench_all() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // The app section reports the `.deb`'s size: build it first.
    app::bundle()?;
    let mut took = vec![("bundle", started.elapsed())];
    for part in ["media", "signaling", "app"] {
        let t = std::time::Instant::now();
        bench::bench(&[part.to_owned()])?;
        took.push((part, t.elapsed()));
    }
    let total = started.elapsed();
    let mut s = format!(
        "## How these figures were made\n\n\
         `cargo xtask bench` regenerates this whole page (the parts below also run alone: \
         `cargo xtask bench media|signaling|app`). Last full run: {}, on {}; it took \
         {:.1} min:\n\n| part | command | took |\n|---|---|---|\n",
        bench::now_utc(),
        bench::machine(),
        total.as_secs_f64() / 60.0
    );
    for (part, d) in &took {
        let cmd = if *part == "bundle" {
            "cargo xtask bundle".to_owned()
        } else {
            format!("cargo xtask bench {part}")
        };
        s.push_str(&format!(
            "| {part} | `{cmd}` | {:.1} min |\n",
            d.as_secs_f64() / 60.0
        ));
    }
    bench::write_section("summary", &s)?;
    println!(
        "\n{}",
        std::fs::read_to_string(root().join("docs/benchmarks.md"))?
    );
    println!(
        "xtask: every benchmark ran in {:.1} min",
        total.as_secs_f64() / 60.0
    );
    Ok(())
}

fn test() -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Test)?;
    step("formatting", cargo(&["fmt", "--all", "--", "--check"]))?;
    graph::check()?;
    // The app embeds the built UI, so it comes before the Rust build.
    app::test_ui()?;
    step(
        "lints",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step("tests", cargo(&["test", "--workspace", "--locked"]))?;
    network::test()?;
    app::e2e()?;
    println!("\nxtask: formatting, lints, every test and the real-window tests passed");
    Ok(())
}

fn step(name: &str, mut cmd: Command) -> anyhow::Result<()> {
    println!("\n== {name}: {}", describe(&cmd));
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{name} failed ({status})");
    Ok(())
}

pub(crate) fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root());
    cmd
}

pub(crate) fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}
