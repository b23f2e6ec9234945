//! The configuration lives at the repository root (DESIGN §1); the app's own
//! commands are listed so capabilities can grant them one by one.

fn main() {
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(&[
            "send",
            "snapshot",
            "next_frame",
        ]));
    if let Err(e) = tauri_build::try_build(attributes) {
        eprintln!("tauri-build: {e:#}");
        std::process::exit(1);
    }
}
