//! The UI's TypeScript types, generated from [`crate::view`] with ts-rs.
//! `ui/src/lib/bindings.ts` is committed; the test below fails when it no
//! longer matches the Rust types (`cargo xtask bindings` rewrites it).

use ts_rs::{Config, TS};

use crate::view::{
    Call, CallOutcome, Command, Connection, Device, Devices, HistoryItem, Kind, Member,
    MemberStatus, Person, Phase, Quality, Reply, ServerView, Snapshot, UiError, UiErrorCode,
    UiEvent,
};

/// Where the generated file lives, from the repository root.
pub const PATH: &str = "ui/src/lib/bindings.ts";

/// The whole generated file.
pub fn typescript() -> String {
    let cfg = Config::new();
    let decls = [
        Command::decl(&cfg),
        Reply::decl(&cfg),
        UiError::decl(&cfg),
        UiErrorCode::decl(&cfg),
        Person::decl(&cfg),
        Connection::decl(&cfg),
        ServerView::decl(&cfg),
        Kind::decl(&cfg),
        Phase::decl(&cfg),
        MemberStatus::decl(&cfg),
        Quality::decl(&cfg),
        Member::decl(&cfg),
        Call::decl(&cfg),
        CallOutcome::decl(&cfg),
        HistoryItem::decl(&cfg),
        Device::decl(&cfg),
        Devices::decl(&cfg),
        Snapshot::decl(&cfg),
        UiEvent::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/view.rs by ts-rs. Do not edit: run `cargo xtask bindings`.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(decl.trim());
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "/** Name of the event that carries `UiEvent`s. */\nexport const EVENT = {:?};\n\n/** Bytes before the I420 planes of a video frame. */\nexport const FRAME_HEADER = {};\n",
        crate::view::EVENT,
        crate::view::FRAME_HEADER
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(PATH);
        let fresh = typescript();
        if std::env::var_os("BECKON_UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).expect("bindings written");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{PATH} does not match src-tauri/src/view.rs: run `cargo xtask bindings` and commit it"
        );
    }
}
