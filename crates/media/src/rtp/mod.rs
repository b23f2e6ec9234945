//! RTP payload handling that sits between webrtc-rs and the codecs.

pub mod red;
pub mod vp8;

/// Extends a 16-bit RTP sequence number to 64 bits: the value nearest to
/// `highest`, the largest extended number seen so far (the first starts one
/// cycle up, so a packet just before it still fits).
pub(crate) fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    let Some(h) = highest else {
        return u64::from(seq) + (1 << 16);
    };
    let base = h & !0xffff;
    [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
        .into_iter()
        .map(|b| b + u64::from(seq))
        .min_by_key(|v| v.abs_diff(h))
        .expect("three candidates")
}
