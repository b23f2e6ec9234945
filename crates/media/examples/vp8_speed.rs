//! Encode and decode cost of VP8 at a size and `cpu-used`, on the test
//! pattern: `cargo run --release -p beckon-media --example vp8_speed -- 640x480 10`.

use std::time::Instant;

use beckon_media::codec::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use beckon_media::source::synthetic::TestPattern;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (w, h) = args
        .get(1)
        .and_then(|s| s.split_once('x'))
        .map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap()))
        .unwrap_or((640, 480));
    let cpu_used: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut pattern = TestPattern::new(w, h);
    let mut enc = Vp8Encoder::new(Vp8Config {
        cpu_used,
        ..Vp8Config::realtime(w, h, 30)
    })
    .unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    let frames: Vec<_> = (0..300).map(|n| pattern.frame(n, 0)).collect();
    let t = Instant::now();
    let draw = Instant::now();
    for n in 0..300 {
        pattern.frame(n, 0);
    }
    let draw_ms = draw.elapsed().as_secs_f64() * 1000.0 / 300.0;
    let (mut enc_ms, mut dec_ms, mut bytes) = (0.0, 0.0, 0);
    for f in &frames {
        let t0 = Instant::now();
        let p = enc.encode(f).unwrap();
        enc_ms += t0.elapsed().as_secs_f64() * 1000.0;
        if let Some(p) = p {
            bytes += p.data.len();
            let t1 = Instant::now();
            dec.decode(&p.data, 0).unwrap();
            dec_ms += t1.elapsed().as_secs_f64() * 1000.0;
        }
    }
    println!(
        "{w}x{h} cpu-used {cpu_used}: draw {draw_ms:.2} ms, encode {:.2} ms, decode {:.2} ms per frame, {:.0} kbit/s ({:.1} s)",
        enc_ms / 300.0,
        dec_ms / 300.0,
        bytes as f64 * 8.0 / 10.0 / 1000.0,
        t.elapsed().as_secs_f64()
    );
}
