//! Cost of the camera-format conversions and the scaler at 1280×720:
//! `cargo run --release -p beckon-media --example convert_speed [frame.jpg]`
//! (a JPEG file times MJPEG decoding too).

use std::time::Instant;

use beckon_media::convert::{
    Filter, jpeg_dimensions, mjpeg_to_i420, nv12_to_i420, rgb24_to_i420, scale_i420, yuyv_to_i420,
};

const FRAMES: u32 = 20;

fn time(name: &str, f: &mut dyn FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..FRAMES {
        f();
    }
    println!(
        "{name}: {:.2} ms/frame",
        t.elapsed().as_secs_f64() * 1000.0 / f64::from(FRAMES)
    );
}

fn main() {
    let (w, h) = (1280u32, 720u32);
    let pixels = (w * h) as usize;
    let rgb: Vec<u8> = (0..pixels * 3).map(|i| (i * 31 % 256) as u8).collect();
    let mut i420 = Vec::new();
    let mut out = Vec::new();
    time("rgb24->i420 1280x720", &mut || {
        rgb24_to_i420(&rgb, w, h, 0, &mut i420).expect("rgb24");
    });
    let yuyv: Vec<u8> = (0..pixels * 2).map(|i| (i * 7 % 256) as u8).collect();
    time("yuyv->i420 1280x720", &mut || {
        yuyv_to_i420(&yuyv, w, h, 0, &mut out).expect("yuyv");
    });
    let mut nv12 = i420[..pixels].to_vec();
    nv12.extend(std::iter::repeat_n(128u8, pixels / 2));
    time("nv12->i420 1280x720", &mut || {
        nv12_to_i420(&nv12, w, h, 0, &mut out).expect("nv12");
    });
    for (dw, dh) in [(640, 480), (640, 360), (320, 240)] {
        for (filter, name) in [(Filter::Bilinear, "bilinear"), (Filter::Nearest, "nearest")] {
            time(&format!("scale {name} 1280x720->{dw}x{dh}"), &mut || {
                scale_i420(&i420, w, h, &mut out, dw, dh, filter).expect("scale");
            });
        }
    }
    if let Some(jpeg) = std::env::args().nth(1).and_then(|p| std::fs::read(p).ok()) {
        let mut scratch = Vec::new();
        let size = jpeg_dimensions(&jpeg);
        time(&format!("mjpeg->i420 {size:?}"), &mut || {
            mjpeg_to_i420(&jpeg, &mut scratch, &mut out).expect("mjpeg");
        });
    }
}
