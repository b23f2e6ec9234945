// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    software_rendering_without_compositing();
    beckon_app::run();
}

/// WebKitGTK composites the page with OpenGL. Without a GPU that is Mesa's
/// software rasteriser, and every video frame then costs a full-window GL
/// composite: measured here, 1 remote tile at 18 fps for 154 % CPU and 20 %
/// CPU at idle, against 29 fps for 55 % and under 1 % at idle without
/// compositing (`cargo xtask bench app`). So where no GPU render node
/// exists, compositing is turned off, unless the user set it themselves.
fn software_rendering_without_compositing() {
    #[cfg(target_os = "linux")]
    {
        const VAR: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
        let has_gpu = std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        });
        let forced_software = std::env::var_os("LIBGL_ALWAYS_SOFTWARE").is_some();
        if std::env::var_os(VAR).is_none() && (!has_gpu || forced_software) {
            // SAFETY: the first thing main does, before any thread exists,
            // so nothing can read the environment at the same time.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(VAR, "1");
            }
        }
    }
}
