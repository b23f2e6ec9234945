//! `cargo xtask <task>`: Beckon's project tasks.
//!
//! - `setup`: installs the system packages the build and tests need
//!   (Debian/Ubuntu via apt; elsewhere it says what to install).
//! - `run`: the demo — a server and two headless users placing a call.
//! - `test`: everything CI checks: formatting, lints, every test.
//! - `bench media`: measures real calls and rewrites `docs/benchmarks.md`.

mod bench;
mod deps;
mod procs;
mod run;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  setup   install the system packages Beckon needs (apt on Debian/Ubuntu)
  run     start a server and two headless users who call each other
  test    check formatting and lints, then run every test
  bench   media [--secs N]: measure real calls, rewrite docs/benchmarks.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => deps::ensure(deps::Purpose::Test),
        Some("run") => run::run(),
        Some("test") => test(),
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
    println!("\nxtask: formatting, lints and every test passed");
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
