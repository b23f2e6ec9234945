//! Opus at 48 kHz mono, 20 ms frames, with in-band FEC: what WebRTC
//! calls want.

use crate::MediaError;
use crate::frame::{AudioFrame, FRAME_SAMPLES, SAMPLE_RATE};

fn err(what: &str, e: opus::Error) -> MediaError {
    MediaError::Codec(format!("opus {what}: {e}"))
}

/// An Opus encoder for speech.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: opus::Encoder,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// A VoIP encoder at `bitrate_bps` (e.g. 32 000), expecting `loss_pct`
    /// packet loss (FEC is sized for it).
    pub fn new(bitrate_bps: i32, loss_pct: i32) -> Result<Self, MediaError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| err("encoder", e))?;
        inner
            .set_bitrate(opus::Bitrate::Bits(bitrate_bps))
            .map_err(|e| err("bitrate", e))?;
        inner.set_inband_fec(true).map_err(|e| err("fec", e))?;
        inner
            .set_packet_loss_perc(loss_pct)
            .map_err(|e| err("loss", e))?;
        // No DTX: it takes steady sounds (a held note, music, a test tone)
        // for silence and sends comfort noise instead; a browser does not
        // use it by default either. Silence still costs only ~20 bytes.
        inner.set_dtx(false).map_err(|e| err("dtx", e))?;
        // Complexity 5 of 10 costs half the CPU of the default, for speech
        // that is hard to tell apart.
        inner.set_complexity(5).map_err(|e| err("complexity", e))?;
        Ok(Self {
            inner,
            buf: vec![0; 1500],
        })
    }

    /// Sizes the in-band FEC for this much packet loss (percent): the
    /// encoder spends more of its bits on a low-rate copy of each frame in
    /// the next packet as loss grows.
    pub fn set_expected_loss(&mut self, loss_pct: i32) -> Result<(), MediaError> {
        self.inner
            .set_packet_loss_perc(loss_pct.clamp(0, 100))
            .map_err(|e| err("loss", e))
    }

    /// Compresses 20 ms.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Vec<u8>, MediaError> {
        if frame.samples.len() != FRAME_SAMPLES {
            return Err(MediaError::Codec(format!(
                "opus wants {FRAME_SAMPLES} samples, got {}",
                frame.samples.len()
            )));
        }
        let n = self
            .inner
            .encode_float(&frame.samples, &mut self.buf)
            .map_err(|e| err("encode", e))?;
        Ok(self.buf[..n].to_vec())
    }
}

/// An Opus decoder.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl OpusDecoder {
    /// A mono 48 kHz decoder.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)
                .map_err(|e| err("decoder", e))?,
        })
    }

    /// Decodes one packet into 20 ms of samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>, MediaError> {
        let mut out = vec![0f32; FRAME_SAMPLES * 6];
        let n = self
            .inner
            .decode_float(packet, &mut out, false)
            .map_err(|e| err("decode", e))?;
        out.truncate(n);
        Ok(out)
    }

    /// Recovers a lost packet from the FEC in the one after it (`next`).
    pub fn decode_fec(&mut self, next: &[u8]) -> Result<Vec<f32>, MediaError> {
        let mut out = vec![0f32; FRAME_SAMPLES];
        let n = self
            .inner
            .decode_float(next, &mut out, true)
            .map_err(|e| err("fec", e))?;
        out.truncate(n);
        Ok(out)
    }

    /// 20 ms of concealment when a packet is lost without FEC.
    pub fn conceal(&mut self) -> Result<Vec<f32>, MediaError> {
        let mut out = vec![0f32; FRAME_SAMPLES];
        let n = self
            .inner
            .decode_float(&[], &mut out, false)
            .map_err(|e| err("plc", e))?;
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::{ToneMicrophone, detect_tone};

    #[test]
    fn a_tone_survives_opus() {
        let mut mic = ToneMicrophone::new(700.0, 0.5);
        let mut enc = OpusEncoder::new(32_000, 10).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        for _ in 0..50 {
            let packet = enc.encode(&mic.generate()).unwrap();
            assert!(packet.len() < 200);
            out.extend(dec.decode(&packet).unwrap());
        }
        assert_eq!(out.len(), 50 * FRAME_SAMPLES);
        let tail = &out[out.len() / 2..];
        let (f, share) = detect_tone(tail, &[500.0, 600.0, 700.0, 800.0]).unwrap();
        assert_eq!(f, 700.0);
        assert!(share > 0.8, "{share}");
        assert!((crate::frame::rms(tail) - 0.35).abs() < 0.05);
    }

    #[test]
    fn every_synthetic_tone_survives_opus_at_its_level() {
        for f in crate::sink::mixer::tone_candidates() {
            let mut mic = ToneMicrophone::new(f, 0.3);
            let mut enc = OpusEncoder::new(32_000, 10).unwrap();
            let mut dec = OpusDecoder::new().unwrap();
            let mut out = Vec::new();
            for i in 0..100 {
                if i == 10 {
                    // As the call's loop does once receivers report.
                    enc.set_expected_loss(5).unwrap();
                }
                out.extend(dec.decode(&enc.encode(&mic.generate()).unwrap()).unwrap());
            }
            let tail = &out[out.len() / 2..];
            let level = crate::frame::rms(tail);
            assert!((level - 0.21).abs() < 0.04, "{f} Hz at {level}");
        }
    }

    #[test]
    fn silence_is_cheap_and_loss_is_concealed() {
        let mut enc = OpusEncoder::new(32_000, 10).unwrap();
        let silence = AudioFrame {
            samples: vec![0.0; FRAME_SAMPLES].into(),
            timestamp_us: 0,
        };
        let sizes: Vec<usize> = (0..30)
            .map(|_| enc.encode(&silence).unwrap().len())
            .collect();
        assert!(sizes[20..].iter().all(|&s| s <= 32), "{sizes:?}");
        let mut dec = OpusDecoder::new().unwrap();
        assert_eq!(dec.conceal().unwrap().len(), FRAME_SAMPLES);
        assert!(
            dec.decode(&[0xff; 3]).is_err() || dec.decode(&[0xff; 3]).is_ok(),
            "garbage never panics"
        );
        assert!(
            enc.encode(&AudioFrame {
                samples: vec![0.0; 10].into(),
                timestamp_us: 0
            })
            .is_err()
        );
    }
}
