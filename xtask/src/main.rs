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
//! - `bench media`: measures real calls and rewrites `docs/benchmarks.md`.

mod app;
mod bench;
mod chromium;
mod deps;
mod procs;
mod run;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  setup   install the system packages Beckon needs (apt on Debian/Ubuntu)
  run       build the UI and the app, and open it
  demo      start a server and two headless users who call each other
  test      formatting, lints, UI checks and tests, every test, the real-window tests
  e2e       the real-window tests alone (Xvfb, tauri-driver, beckon-peers)
  bundle    a .deb of the release build (target/release/bundle)
  bindings  regenerate ui/src/lib/bindings.ts from src-tauri/src/view.rs
  bench     media [--secs N]: measure real calls, rewrite docs/benchmarks.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => deps::ensure(deps::Purpose::Test),
        Some("run") => app::run_app(&args[1..]),
        Some("demo") => run::run(),
        Some("test") => test(),
        Some("e2e") => deps::ensure(deps::Purpose::Test).and_then(|()| app::e2e()),
        Some("bundle") => app::bundle(),
        Some("bindings") => app::bindings(),
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

fn test() -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Test)?;
    step("formatting", cargo(&["fmt", "--all", "--", "--check"]))?;
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
