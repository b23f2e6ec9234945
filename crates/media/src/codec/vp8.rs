//! VP8 through libvpx: a small safe wrapper over `env-libvpx-sys`, tuned for
//! real-time calls (no look-ahead, error resilience, CPU budget per frame,
//! key frames on demand, bitrate changes on the fly).

// The only module with FFI. Every unsafe block calls libvpx with pointers
// to memory this module owns for the duration of the call.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint};
use std::ptr;

use vpx_sys as vpx;

use crate::MediaError;
use crate::frame::VideoFrame;
use crate::rtp::vp8::Layer;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vp8Config {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Frames per second the source delivers.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// libvpx `cpu-used` (-16..16): higher is faster and worse. 8 or more
    /// keeps a 2-core laptop comfortable at 720p.
    pub cpu_used: i32,
    /// Encoder threads.
    pub threads: u32,
}

impl Vp8Config {
    /// Sensible real-time settings for a size.
    pub fn realtime(width: u32, height: u32, fps: u32) -> Self {
        let pixels = width * height;
        let bitrate_kbps = if pixels >= 1280 * 720 {
            1500
        } else if pixels >= 640 * 480 {
            800
        } else {
            400
        };
        Self {
            width,
            height,
            fps,
            bitrate_kbps,
            cpu_used: fastest_on_small_machines(),
            threads: 1,
        }
    }
}

/// libvpx's fastest setting halves the encoder's CPU (0.9 against 1.7 ms
/// a 640×480 frame on this project's 2-core machines) for a little
/// sharpness; on small machines the CPU matters more. With cores to spare,
/// spend some on quality.
fn fastest_on_small_machines() -> i32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if cores <= 4 { 16 } else { 12 }
}

/// One compressed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 bitstream of the frame.
    pub data: Vec<u8>,
    /// A key frame (decodable on its own).
    pub key: bool,
    /// Its temporal layer: every other frame is in the upper layer and
    /// updates no reference, so a receiver that loses it loses nothing else.
    pub layer: Layer,
}

fn check(err: vpx::vpx_codec_err_t, what: &str) -> Result<(), MediaError> {
    if err == vpx::vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(MediaError::Codec(format!("{what}: libvpx error {err:?}")))
    }
}

/// A VP8 encoder.
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    config: Vp8Config,
    pts: i64,
    force_key: bool,
    /// Frames since the last key frame, for the layer pattern.
    since_key: u64,
}

// The context is only touched through `&mut self`.
unsafe impl Send for Vp8Encoder {}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Vp8Encoder {
    /// An encoder for frames of `config`'s size.
    pub fn new(config: Vp8Config) -> Result<Self, MediaError> {
        if config.width == 0
            || config.height == 0
            || config.width % 2 == 1
            || config.height % 2 == 1
        {
            return Err(MediaError::Codec(format!(
                "bad size {}x{}",
                config.width, config.height
            )));
        }
        let mut cfg =
            Box::new(unsafe { MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::zeroed().assume_init() });
        check(
            unsafe { vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), &mut *cfg, 0) },
            "default encoder config",
        )?;
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_timebase = vpx::vpx_rational {
            num: 1,
            den: config.fps.max(1) as c_int,
        };
        cfg.g_threads = config.threads;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = config.bitrate_kbps;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 63;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.rc_dropframe_thresh = 0;
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
        // Receivers ask for key frames when they need one (PLI) and lost
        // packets are retransmitted: no periodic ones (each is several
        // frames' worth at once, which on a capped link overflows its queue).
        // One every ten minutes bounds the damage if even requests get lost.
        cfg.kf_max_dist = config.fps * 600;
        let mut ctx =
            Box::new(unsafe { MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed().assume_init() });
        check(
            unsafe {
                vpx::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    vpx::vpx_codec_vp8_cx(),
                    &*cfg,
                    0,
                    vpx::VPX_ENCODER_ABI_VERSION as c_int,
                )
            },
            "encoder init",
        )?;
        let mut enc = Self {
            ctx,
            cfg,
            config,
            pts: 0,
            force_key: false,
            since_key: 0,
        };
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
            config.cpu_used,
        )?;
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
            0,
        )?;
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
            1,
        )?;
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS as c_int,
            0,
        )?;
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
            300,
        )?;
        Ok(enc)
    }

    fn control(&mut self, id: c_int, value: c_int) -> Result<(), MediaError> {
        check(
            unsafe { vpx::vpx_codec_control_(&mut *self.ctx, id, value) },
            "encoder control",
        )
    }

    /// The settings in use.
    pub fn config(&self) -> Vp8Config {
        self.config
    }

    /// Makes the next frame a key frame (a receiver lost its picture: PLI/FIR).
    pub fn request_key_frame(&mut self) {
        self.force_key = true;
    }

    /// Changes the target bitrate (from the congestion controller's
    /// estimate). Takes effect from the next frame.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), MediaError> {
        let kbps = kbps.clamp(50, 8000);
        if kbps == self.cfg.rc_target_bitrate {
            return Ok(());
        }
        self.cfg.rc_target_bitrate = kbps;
        self.config.bitrate_kbps = kbps;
        check(
            unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) },
            "bitrate change",
        )
    }

    /// Compresses one frame. Returns nothing when the encoder chose to drop
    /// it (rate control), else the frame.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, MediaError> {
        if frame.width != self.config.width || frame.height != self.config.height {
            return Err(MediaError::Codec(format!(
                "frame is {}x{}, the encoder {}x{}",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        let mut img = unsafe { MaybeUninit::<vpx::vpx_image_t>::zeroed().assume_init() };
        // libvpx only reads the planes; the frame outlives the call.
        let wrapped = unsafe {
            vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width as c_uint,
                frame.height as c_uint,
                1,
                frame.data.as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(MediaError::Codec("cannot wrap the frame".into()));
        }
        let force = std::mem::take(&mut self.force_key);
        // Two temporal layers: base frames (even) update the reference
        // buffers, upper ones (odd) only read them.
        let upper = !force && self.since_key % 2 == 1;
        let flags = if force {
            vpx::VPX_EFLAG_FORCE_KF as i64
        } else if upper {
            (vpx::VP8_EFLAG_NO_UPD_LAST
                | vpx::VP8_EFLAG_NO_UPD_GF
                | vpx::VP8_EFLAG_NO_UPD_ARF
                | vpx::VP8_EFLAG_NO_UPD_ENTROPY) as i64
        } else {
            0
        };
        check(
            unsafe {
                vpx::vpx_codec_encode(
                    &mut *self.ctx,
                    &img,
                    self.pts,
                    1,
                    flags,
                    vpx::VPX_DL_REALTIME as _,
                )
            },
            "encode",
        )?;
        self.pts += 1;
        let mut out: Option<EncodedFrame> = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            let pkt = unsafe { &*pkt };
            if pkt.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            let f = unsafe { pkt.data.frame };
            let bytes = unsafe { std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize) };
            let key = f.flags & vpx::VPX_FRAME_IS_KEY != 0;
            match &mut out {
                Some(o) => {
                    o.data.extend_from_slice(bytes);
                    o.key |= key;
                }
                None => {
                    out = Some(EncodedFrame {
                        data: bytes.to_vec(),
                        key,
                        layer: if upper && !key {
                            Layer::UPPER
                        } else {
                            Layer::BASE
                        },
                    })
                }
            }
        }
        match &out {
            Some(f) if f.key => self.since_key = 1,
            Some(_) => self.since_key += 1,
            // A dropped frame keeps the pattern where it was.
            None => {}
        }
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// The context is only touched through `&mut self`.
unsafe impl Send for Vp8Decoder {}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vp8Decoder")
    }
}

impl Vp8Decoder {
    /// A decoder.
    pub fn new() -> Result<Self, MediaError> {
        let mut ctx =
            Box::new(unsafe { MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed().assume_init() });
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        check(
            unsafe {
                vpx::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    vpx::vpx_codec_vp8_dx(),
                    &cfg,
                    0,
                    vpx::VPX_DECODER_ABI_VERSION as c_int,
                )
            },
            "decoder init",
        )?;
        Ok(Self { ctx })
    }

    /// Decodes one frame's bitstream into an I420 picture stamped
    /// `timestamp_us`. A corrupt frame is an error; the decoder stays usable
    /// (ask the sender for a key frame).
    pub fn decode(
        &mut self,
        data: &[u8],
        timestamp_us: u64,
    ) -> Result<Option<VideoFrame>, MediaError> {
        if data.is_empty() {
            return Err(MediaError::Codec("empty VP8 frame".into()));
        }
        check(
            unsafe {
                vpx::vpx_codec_decode(
                    &mut *self.ctx,
                    data.as_ptr(),
                    data.len() as c_uint,
                    ptr::null_mut(),
                    0,
                )
            },
            "decode",
        )?;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        let mut last = None;
        loop {
            let img = unsafe { vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            last = Some(copy_i420(unsafe { &*img }, timestamp_us));
        }
        Ok(last)
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Copies a decoded image (with its strides) into a packed I420 frame.
fn copy_i420(img: &vpx::vpx_image_t, timestamp_us: u64) -> VideoFrame {
    let (w, h) = (img.d_w as usize & !1, img.d_h as usize & !1);
    let mut data = Vec::with_capacity(VideoFrame::i420_len(w as u32, h as u32));
    for (plane, pw, ph) in [(0, w, h), (1, w / 2, h / 2), (2, w / 2, h / 2)] {
        let stride = img.stride[plane] as usize;
        for row in 0..ph {
            // The decoder keeps the image alive until the next decode call.
            let line =
                unsafe { std::slice::from_raw_parts(img.planes[plane].add(row * stride), pw) };
            data.extend_from_slice(line);
        }
    }
    VideoFrame {
        width: w as u32,
        height: h as u32,
        data: data.into(),
        timestamp_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::{TestPattern, read_stamp};

    #[test]
    fn a_pattern_survives_encode_and_decode_with_its_stamp() {
        let mut pattern = TestPattern::new(640, 480);
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(640, 480, 30)).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut decoded = 0;
        for n in 0..30u32 {
            let frame = pattern.frame(n, 1_000_000 + u64::from(n) * 33_333);
            let Some(packet) = enc.encode(&frame).unwrap() else {
                continue;
            };
            if n == 0 {
                assert!(packet.key, "the first frame is a key frame");
            }
            let out = dec
                .decode(&packet.data, 0)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!((out.width, out.height), (640, 480));
            let stamp = read_stamp(&out).expect("the stamp survives VP8");
            assert_eq!(stamp.frame, n);
            assert_eq!(stamp.capture_us, 1_000_000 + u64::from(n) * 33_333);
            decoded += 1;
        }
        assert!(decoded >= 28, "{decoded}");
    }

    #[test]
    fn every_other_frame_is_upper_layer_and_dropping_them_costs_nothing() {
        let mut pattern = TestPattern::new(320, 240);
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30)).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut layers = Vec::new();
        for n in 0..40u32 {
            let frame = pattern.frame(n, u64::from(n) * 33_333);
            let Some(packet) = enc.encode(&frame).unwrap() else {
                continue;
            };
            layers.push(packet.layer.tid);
            if packet.layer.tid > 0 {
                continue; // lost on the way
            }
            let out = dec.decode(&packet.data, 0).unwrap().expect("decodes");
            assert_eq!(read_stamp(&out).map(|s| s.frame), Some(n), "intact");
        }
        assert_eq!(&layers[..6], &[0, 1, 0, 1, 0, 1]);
        assert_eq!(layers.iter().filter(|&&t| t == 1).count(), 20);
    }

    #[test]
    fn a_requested_key_frame_comes_next() {
        let mut pattern = TestPattern::new(320, 240);
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30)).unwrap();
        for n in 0..5 {
            enc.encode(&pattern.frame(n, 0)).unwrap();
        }
        let p = enc.encode(&pattern.frame(5, 0)).unwrap().unwrap();
        assert!(!p.key);
        enc.request_key_frame();
        assert!(enc.encode(&pattern.frame(6, 0)).unwrap().unwrap().key);
    }

    #[test]
    fn a_lower_bitrate_gives_smaller_frames() {
        let mut pattern = TestPattern::new(640, 480);
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(640, 480, 30)).unwrap();
        let size = |enc: &mut Vp8Encoder, pattern: &mut TestPattern, from: u32| -> usize {
            (from..from + 30)
                .filter_map(|n| enc.encode(&pattern.frame(n, 0)).unwrap())
                .map(|p| p.data.len())
                .sum()
        };
        // Past the first key frame, at 2 Mbit/s then at 150 kbit/s.
        enc.set_bitrate(2000).unwrap();
        let _ = size(&mut enc, &mut pattern, 0);
        let high = size(&mut enc, &mut pattern, 30);
        enc.set_bitrate(150).unwrap();
        let _ = size(&mut enc, &mut pattern, 60);
        let low = size(&mut enc, &mut pattern, 90);
        eprintln!("30 frames: {high} bytes at 2 Mbit/s, {low} at 150 kbit/s");
        assert!(low * 2 < high, "low {low} high {high}");
        // Even at the low rate, the stamps still read back.
        let mut dec = Vp8Decoder::new().unwrap();
        enc.request_key_frame();
        let readable = (120..150)
            .filter_map(|n| enc.encode(&pattern.frame(n, 7)).unwrap())
            .filter_map(|p| dec.decode(&p.data, 0).unwrap())
            .filter(|f| read_stamp(f).is_some())
            .count();
        assert!(
            readable >= 28,
            "{readable} of 30 stamps readable at 150 kbit/s"
        );
    }

    #[test]
    fn garbage_is_an_error_and_the_decoder_recovers_on_a_key_frame() {
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(dec.decode(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3], 0).is_err());
        assert!(dec.decode(&[], 0).is_err());
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30)).unwrap();
        let key = enc
            .encode(&TestPattern::new(320, 240).frame(0, 0))
            .unwrap()
            .unwrap();
        assert!(dec.decode(&key.data, 0).unwrap().is_some());
    }

    #[test]
    fn frames_of_the_wrong_size_are_refused() {
        let mut enc = Vp8Encoder::new(Vp8Config::realtime(320, 240, 30)).unwrap();
        assert!(enc.encode(&TestPattern::new(640, 480).frame(0, 0)).is_err());
        assert!(Vp8Encoder::new(Vp8Config::realtime(321, 240, 30)).is_err());
    }
}
