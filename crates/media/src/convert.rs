//! Pixel conversions into packed I420 (BT.601, limited range — what cameras
//! deliver and what VP8 expects), and an I420 scaler that keeps the aspect
//! ratio by cropping the middle.
//!
//! Every conversion writes into a caller-provided `Vec` (cleared and resized,
//! so its allocation is reused frame after frame) and returns the size it
//! wrote. I420 needs even sizes: an odd width or height loses its last column
//! or row. Integer math only; nothing is allocated per pixel.

use std::fmt;

/// What went wrong converting a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// Fewer bytes than the size and layout need.
    #[error("{format}: {got} bytes, {need} needed for {width}x{height}")]
    TooShort {
        /// What was being read.
        format: PixelFormat,
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A picture smaller than 2×2 (nothing is left once cropped to even).
    #[error("{width}x{height} is too small for I420")]
    TooSmall {
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
    },
    /// A row stride shorter than a row.
    #[error("stride {stride} is shorter than a row of {row} bytes")]
    BadStride {
        /// Bytes from one row to the next, as given.
        stride: usize,
        /// Bytes in one row.
        row: usize,
    },
    /// A JPEG that could not be decoded.
    #[error("mjpeg: {0}")]
    Jpeg(String),
}

/// Pixel layouts cameras deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// YUYV (YUY2): packed 4:2:2, `Y0 U Y1 V` for each pair of pixels.
    Yuyv,
    /// NV12: a Y plane, then one plane of interleaved `U V` at half size.
    Nv12,
    /// Planar 4:2:0, Y then U then V (the output format).
    I420,
    /// 8-bit grey (full range).
    Gray,
    /// `R G B`, 8 bits each (full range).
    Rgb24,
    /// `B G R`, 8 bits each (full range).
    Bgr24,
    /// `R G B A`, 8 bits each; alpha is ignored.
    Rgba,
    /// `B G R A`, 8 bits each; alpha is ignored.
    Bgra,
    /// Motion JPEG: each frame a JPEG.
    Mjpeg,
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::I420 => "I420",
            PixelFormat::Gray => "GRAY",
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::Bgr24 => "BGR24",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Mjpeg => "MJPEG",
        })
    }
}

/// One picture as a camera delivered it, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RawImage<'a> {
    /// Its layout.
    pub format: PixelFormat,
    /// Pixels across (ignored for MJPEG, which carries its own size).
    pub width: u32,
    /// Pixels down (ignored for MJPEG).
    pub height: u32,
    /// Bytes from one row to the next in the first (or only) plane; 0 for
    /// tightly packed rows. Ignored for MJPEG and I420.
    pub stride: usize,
    /// The bytes.
    pub data: &'a [u8],
}

/// Bytes of packed I420 at `width`×`height` (both even).
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

/// The even size a `width`×`height` picture is cropped to.
fn even_size(width: u32, height: u32) -> Result<(usize, usize), ConvertError> {
    let (w, h) = ((width & !1) as usize, (height & !1) as usize);
    if w == 0 || h == 0 {
        return Err(ConvertError::TooSmall { width, height });
    }
    Ok((w, h))
}

/// Checks a packed layout with `bpp` bytes per pixel; returns the stride.
fn check_packed(
    format: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    row_bytes: usize,
) -> Result<usize, ConvertError> {
    let stride = if stride == 0 { row_bytes } else { stride };
    if stride < row_bytes {
        return Err(ConvertError::BadStride {
            stride,
            row: row_bytes,
        });
    }
    let need = stride * (height as usize - 1) + row_bytes;
    if data.len() < need {
        return Err(ConvertError::TooShort {
            format,
            width,
            height,
            got: data.len(),
            need,
        });
    }
    Ok(stride)
}

/// Clears `dst` and sizes it for an I420 picture; returns the three planes.
fn planes(dst: &mut Vec<u8>, w: usize, h: usize) -> (&mut [u8], &mut [u8], &mut [u8]) {
    dst.clear();
    dst.resize(w * h + 2 * (w / 2) * (h / 2), 0);
    let (y, uv) = dst.split_at_mut(w * h);
    let (u, v) = uv.split_at_mut((w / 2) * (h / 2));
    (y, u, v)
}

// BT.601 limited range, 8-bit fixed point (the coefficients libyuv uses).
#[inline(always)]
fn rgb_to_y(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

#[inline(always)]
fn rgb_to_u(r: i32, g: i32, b: i32) -> u8 {
    (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8
}

#[inline(always)]
fn rgb_to_v(r: i32, g: i32, b: i32) -> u8 {
    (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8
}

#[inline(always)]
fn avg2(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + 1) >> 1) as u8
}

/// YUYV (YUY2) 4:2:2 → I420. Chroma of each pair of rows is averaged.
/// `stride` 0 means rows of `2 * width` bytes.
pub fn yuyv_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = even_size(width, height)?;
    let stride = check_packed(
        PixelFormat::Yuyv,
        src,
        width,
        height,
        stride,
        (width as usize).next_multiple_of(2) * 2,
    )?;
    let (yp, up, vp) = planes(dst, w, h);
    let cw = w / 2;
    for row in 0..h / 2 {
        let a = &src[2 * row * stride..][..w * 2];
        let b = &src[(2 * row + 1) * stride..][..w * 2];
        let (y0, y1) = yp[2 * row * w..][..2 * w].split_at_mut(w);
        for (d, s) in y0.chunks_exact_mut(2).zip(a.chunks_exact(4)) {
            d[0] = s[0];
            d[1] = s[2];
        }
        for (d, s) in y1.chunks_exact_mut(2).zip(b.chunks_exact(4)) {
            d[0] = s[0];
            d[1] = s[2];
        }
        let u = &mut up[row * cw..][..cw];
        let v = &mut vp[row * cw..][..cw];
        for (((u, v), sa), sb) in u
            .iter_mut()
            .zip(v.iter_mut())
            .zip(a.chunks_exact(4))
            .zip(b.chunks_exact(4))
        {
            *u = avg2(sa[1], sb[1]);
            *v = avg2(sa[3], sb[3]);
        }
    }
    Ok((w as u32, h as u32))
}

/// NV12 → I420. `stride` (0: `width`) is the row stride of both planes; the
/// UV plane starts right after `height` rows of Y.
pub fn nv12_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = even_size(width, height)?;
    let stride = if stride == 0 { width as usize } else { stride };
    if stride < width as usize {
        return Err(ConvertError::BadStride {
            stride,
            row: width as usize,
        });
    }
    let uv_rows = (height as usize).div_ceil(2);
    let need = stride * height as usize + stride * (uv_rows - 1) + w;
    if src.len() < need {
        return Err(ConvertError::TooShort {
            format: PixelFormat::Nv12,
            width,
            height,
            got: src.len(),
            need,
        });
    }
    let (yp, up, vp) = planes(dst, w, h);
    for (row, d) in yp.chunks_exact_mut(w).enumerate() {
        d.copy_from_slice(&src[row * stride..][..w]);
    }
    let uv = &src[stride * height as usize..];
    let cw = w / 2;
    for row in 0..h / 2 {
        let s = &uv[row * stride..][..w];
        let u = &mut up[row * cw..][..cw];
        let v = &mut vp[row * cw..][..cw];
        for ((u, v), s) in u.iter_mut().zip(v.iter_mut()).zip(s.chunks_exact(2)) {
            *u = s[0];
            *v = s[1];
        }
    }
    Ok((w as u32, h as u32))
}

/// Packed I420 at any size (odd sizes round their chroma up, as libyuv
/// does) → packed I420 at the even size, dropping the last column/row.
pub fn i420_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = even_size(width, height)?;
    let (sw, sh) = (width as usize, height as usize);
    let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
    let need = sw * sh + 2 * scw * sch;
    if src.len() < need {
        return Err(ConvertError::TooShort {
            format: PixelFormat::I420,
            width,
            height,
            got: src.len(),
            need,
        });
    }
    let (yp, up, vp) = planes(dst, w, h);
    let cw = w / 2;
    for (row, d) in yp.chunks_exact_mut(w).enumerate() {
        d.copy_from_slice(&src[row * sw..][..w]);
    }
    let su = &src[sw * sh..];
    let sv = &su[scw * sch..];
    for row in 0..h / 2 {
        up[row * cw..][..cw].copy_from_slice(&su[row * scw..][..cw]);
        vp[row * cw..][..cw].copy_from_slice(&sv[row * scw..][..cw]);
    }
    Ok((w as u32, h as u32))
}

/// Full-range grey → I420 (luma squeezed into 16–235, chroma neutral).
/// `stride` 0 means rows of `width` bytes.
pub fn gray_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = even_size(width, height)?;
    let stride = check_packed(
        PixelFormat::Gray,
        src,
        width,
        height,
        stride,
        width as usize,
    )?;
    let mut lut = [0u8; 256];
    for (g, l) in lut.iter_mut().enumerate() {
        *l = ((g as u32 * 219 + 127) / 255 + 16) as u8;
    }
    let (yp, up, vp) = planes(dst, w, h);
    for (row, d) in yp.chunks_exact_mut(w).enumerate() {
        for (d, s) in d.iter_mut().zip(&src[row * stride..][..w]) {
            *d = lut[usize::from(*s)];
        }
    }
    up.fill(128);
    vp.fill(128);
    Ok((w as u32, h as u32))
}

/// Packed 8-bit RGB-family layouts → I420. `BPP` bytes per pixel, with red,
/// green and blue at offsets `R`, `G`, `B`. Chroma comes from the average of
/// each 2×2 block.
fn packed_rgb_to_i420<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    format: PixelFormat,
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = even_size(width, height)?;
    let stride = check_packed(format, src, width, height, stride, width as usize * BPP)?;
    let (yp, up, vp) = planes(dst, w, h);
    let cw = w / 2;
    for row in 0..h / 2 {
        let a = &src[2 * row * stride..][..w * BPP];
        let b = &src[(2 * row + 1) * stride..][..w * BPP];
        let (y0, y1) = yp[2 * row * w..][..2 * w].split_at_mut(w);
        let u = &mut up[row * cw..][..cw];
        let v = &mut vp[row * cw..][..cw];
        for (((((y0, y1), u), v), pa), pb) in y0
            .chunks_exact_mut(2)
            .zip(y1.chunks_exact_mut(2))
            .zip(u.iter_mut())
            .zip(v.iter_mut())
            .zip(a.chunks_exact(2 * BPP))
            .zip(b.chunks_exact(2 * BPP))
        {
            let px = |p: &[u8], i: usize| {
                (
                    i32::from(p[i * BPP + R]),
                    i32::from(p[i * BPP + G]),
                    i32::from(p[i * BPP + B]),
                )
            };
            let (r0, g0, b0) = px(pa, 0);
            let (r1, g1, b1) = px(pa, 1);
            let (r2, g2, b2) = px(pb, 0);
            let (r3, g3, b3) = px(pb, 1);
            y0[0] = rgb_to_y(r0, g0, b0);
            y0[1] = rgb_to_y(r1, g1, b1);
            y1[0] = rgb_to_y(r2, g2, b2);
            y1[1] = rgb_to_y(r3, g3, b3);
            let r = (r0 + r1 + r2 + r3 + 2) >> 2;
            let g = (g0 + g1 + g2 + g3 + 2) >> 2;
            let b = (b0 + b1 + b2 + b3 + 2) >> 2;
            *u = rgb_to_u(r, g, b);
            *v = rgb_to_v(r, g, b);
        }
    }
    Ok((w as u32, h as u32))
}

/// `R G B` → I420. `stride` 0 means rows of `3 * width` bytes.
pub fn rgb24_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    packed_rgb_to_i420::<3, 0, 1, 2>(PixelFormat::Rgb24, src, width, height, stride, dst)
}

/// `B G R` → I420. `stride` 0 means rows of `3 * width` bytes.
pub fn bgr24_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    packed_rgb_to_i420::<3, 2, 1, 0>(PixelFormat::Bgr24, src, width, height, stride, dst)
}

/// `R G B A` → I420 (alpha ignored). `stride` 0 means rows of `4 * width`.
pub fn rgba_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    packed_rgb_to_i420::<4, 0, 1, 2>(PixelFormat::Rgba, src, width, height, stride, dst)
}

/// `B G R A` → I420 (alpha ignored). `stride` 0 means rows of `4 * width`.
pub fn bgra_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    packed_rgb_to_i420::<4, 2, 1, 0>(PixelFormat::Bgra, src, width, height, stride, dst)
}

/// Width and height from a JPEG's frame header (SOFn), without decoding.
pub fn jpeg_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 4 || data[0] != 0xff || data[1] != 0xd8 {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xff {
            return None;
        }
        let marker = data[i + 1];
        match marker {
            // Fill byte.
            0xff => {
                i += 1;
                continue;
            }
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => {
                i += 2;
                continue;
            }
            // Start of scan or end of image before any frame header.
            0xd9 | 0xda => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        if len < 2 {
            return None;
        }
        let is_sof = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if is_sof {
            let seg = data.get(i + 4..i + 2 + len)?;
            if seg.len() < 5 {
                return None;
            }
            let h = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
            let w = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
            return (w > 0 && h > 0).then_some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// MJPEG (one JPEG) → I420, through RGB with nokhwa's decoder (mozjpeg).
/// `rgb` is scratch space for the decoded picture, reused between calls.
pub fn mjpeg_to_i420(
    src: &[u8],
    rgb: &mut Vec<u8>,
    dst: &mut Vec<u8>,
) -> Result<(u32, u32), ConvertError> {
    let (w, h) = jpeg_dimensions(src)
        .ok_or_else(|| ConvertError::Jpeg("no JPEG frame header".to_string()))?;
    rgb.clear();
    rgb.resize(w as usize * h as usize * 3, 0);
    // The decoder reports libjpeg errors by unwinding; a broken frame from a
    // camera must never take the capture thread down with it.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        nokhwa::utils::buf_mjpeg_to_rgb(src, rgb, false)
    }));
    match decoded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ConvertError::Jpeg(e.to_string())),
        Err(_) => return Err(ConvertError::Jpeg("decoder panicked".to_string())),
    }
    rgb24_to_i420(rgb, w, h, 0, dst)
}

/// Scratch space for converting camera pictures, kept between frames so
/// steady-state capture allocates nothing but the frames it hands out.
#[derive(Debug, Default)]
pub struct Converter {
    /// Decoded RGB (MJPEG).
    rgb: Vec<u8>,
    /// I420 at the camera's size, before scaling.
    native: Vec<u8>,
}

impl Converter {
    /// An empty converter.
    pub fn new() -> Self {
        Self::default()
    }

    /// `src` → I420 at its own (even) size, into `dst`.
    pub fn to_i420(
        &mut self,
        src: &RawImage<'_>,
        dst: &mut Vec<u8>,
    ) -> Result<(u32, u32), ConvertError> {
        let RawImage {
            format,
            width,
            height,
            stride,
            data,
        } = *src;
        match format {
            PixelFormat::Yuyv => yuyv_to_i420(data, width, height, stride, dst),
            PixelFormat::Nv12 => nv12_to_i420(data, width, height, stride, dst),
            PixelFormat::I420 => i420_to_i420(data, width, height, dst),
            PixelFormat::Gray => gray_to_i420(data, width, height, stride, dst),
            PixelFormat::Rgb24 => rgb24_to_i420(data, width, height, stride, dst),
            PixelFormat::Bgr24 => bgr24_to_i420(data, width, height, stride, dst),
            PixelFormat::Rgba => rgba_to_i420(data, width, height, stride, dst),
            PixelFormat::Bgra => bgra_to_i420(data, width, height, stride, dst),
            PixelFormat::Mjpeg => mjpeg_to_i420(data, &mut self.rgb, dst),
        }
    }

    /// `src` → I420 at `out_width`×`out_height` (rounded down to even),
    /// center-cropped to that aspect ratio and scaled with `filter`.
    pub fn to_i420_scaled(
        &mut self,
        src: &RawImage<'_>,
        out_width: u32,
        out_height: u32,
        filter: Filter,
        dst: &mut Vec<u8>,
    ) -> Result<(u32, u32), ConvertError> {
        let mut native = std::mem::take(&mut self.native);
        let result = self.to_i420(src, &mut native).and_then(|(w, h)| {
            if (w, h) == (out_width & !1, out_height & !1) {
                // Same size: hand over the buffer instead of copying it.
                std::mem::swap(&mut native, dst);
                Ok((w, h))
            } else {
                scale_i420(&native, w, h, dst, out_width, out_height, filter)
            }
        });
        self.native = native;
        result
    }
}

/// How the scaler samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// The nearest source pixel: fastest, blocky.
    Nearest,
    /// Weighted from the four nearest: smooth; a 2:1 reduction averages each
    /// 2×2 block.
    #[default]
    Bilinear,
}

/// The middle part of a `sw`×`sh` picture with the aspect ratio of
/// `dw`×`dh`: `(x, y, width, height)`, all even.
pub fn center_crop(sw: u32, sh: u32, dw: u32, dh: u32) -> (u32, u32, u32, u32) {
    let (sw64, sh64, dw64, dh64) = (
        u64::from(sw),
        u64::from(sh),
        u64::from(dw.max(1)),
        u64::from(dh.max(1)),
    );
    let (cw, ch) = if sw64 * dh64 > dw64 * sh64 {
        // Source wider: cut the sides.
        (((sh64 * dw64 / dh64) as u32).max(2) & !1, sh)
    } else {
        // Source taller: cut top and bottom.
        (sw, ((sw64 * dh64 / dw64) as u32).max(2) & !1)
    };
    let (cw, ch) = (cw.min(sw), ch.min(sh));
    (((sw - cw) / 2) & !1, ((sh - ch) / 2) & !1, cw, ch)
}

/// Scales an I420 picture (packed, `sw`×`sh`, even) to `dw`×`dh` (rounded
/// down to even) into `dst`, keeping the aspect ratio by cropping the
/// middle of the source to the target's shape first.
pub fn scale_i420(
    src: &[u8],
    sw: u32,
    sh: u32,
    dst: &mut Vec<u8>,
    dw: u32,
    dh: u32,
    filter: Filter,
) -> Result<(u32, u32), ConvertError> {
    let (sw_e, sh_e) = even_size(sw, sh)?;
    if sw_e != sw as usize || sh_e != sh as usize {
        return Err(ConvertError::TooSmall {
            width: sw,
            height: sh,
        });
    }
    let (w, h) = even_size(dw, dh)?;
    let need = i420_len(sw, sh);
    if src.len() < need {
        return Err(ConvertError::TooShort {
            format: PixelFormat::I420,
            width: sw,
            height: sh,
            got: src.len(),
            need,
        });
    }
    let (cx, cy, cw, ch) = center_crop(sw, sh, w as u32, h as u32);
    let (sw, sh) = (sw as usize, sh as usize);
    let (cx, cy, cw, ch) = (cx as usize, cy as usize, cw as usize, ch as usize);
    let (sy, suv) = src[..need].split_at(sw * sh);
    let (su, sv) = suv.split_at((sw / 2) * (sh / 2));
    let (yp, up, vp) = planes(dst, w, h);
    let scale = match filter {
        Filter::Nearest => scale_plane_nearest,
        Filter::Bilinear => scale_plane_bilinear,
    };
    scale(
        &Plane {
            data: sy,
            stride: sw,
            x: cx,
            y: cy,
            w: cw,
            h: ch,
        },
        yp,
        w,
        h,
    );
    for (s, d) in [(su, up), (sv, vp)] {
        scale(
            &Plane {
                data: s,
                stride: sw / 2,
                x: cx / 2,
                y: cy / 2,
                w: cw / 2,
                h: ch / 2,
            },
            d,
            w / 2,
            h / 2,
        );
    }
    Ok((w as u32, h as u32))
}

/// A rectangle of one plane.
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
}

impl Plane<'_> {
    fn row(&self, r: usize) -> &[u8] {
        &self.data[(self.y + r) * self.stride + self.x..][..self.w]
    }
}

fn scale_plane_nearest(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    if src.w == dw && src.h == dh {
        for (r, d) in dst.chunks_exact_mut(dw).enumerate() {
            d.copy_from_slice(src.row(r));
        }
        return;
    }
    // 16.16 fixed point, sampling at pixel centres.
    let step_x = ((src.w as u64) << 16) / dw as u64;
    let step_y = ((src.h as u64) << 16) / dh as u64;
    for (r, d) in dst.chunks_exact_mut(dw).enumerate() {
        let sy = ((r as u64 * step_y + step_y / 2) >> 16).min(src.h as u64 - 1) as usize;
        let s = src.row(sy);
        let mut fx = step_x / 2;
        for d in d.iter_mut() {
            *d = s[((fx >> 16) as usize).min(src.w - 1)];
            fx += step_x;
        }
    }
}

fn scale_plane_bilinear(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    if src.w == dw && src.h == dh {
        scale_plane_nearest(src, dst, dw, dh);
        return;
    }
    let step_x = ((src.w as i64) << 16) / dw as i64;
    let step_y = ((src.h as i64) << 16) / dh as i64;
    let max_x = src.w as i64 - 1;
    let max_y = src.h as i64 - 1;
    // Centre-aligned: destination pixel centre mapped into the source, minus
    // half a source pixel.
    let start_x = step_x / 2 - (1 << 15);
    let start_y = step_y / 2 - (1 << 15);
    for (r, d) in dst.chunks_exact_mut(dw).enumerate() {
        let fy = (start_y + r as i64 * step_y).clamp(0, max_y << 16);
        let y0 = (fy >> 16) as usize;
        let y1 = (y0 + 1).min(max_y as usize);
        let wy = ((fy >> 8) & 0xff) as u32;
        let (a, b) = (src.row(y0), src.row(y1));
        let mut fx = start_x;
        for d in d.iter_mut() {
            let x = fx.clamp(0, max_x << 16);
            let x0 = (x >> 16) as usize;
            let x1 = (x0 + 1).min(max_x as usize);
            let wx = ((x >> 8) & 0xff) as u32;
            let top = u32::from(a[x0]) * (256 - wx) + u32::from(a[x1]) * wx;
            let bottom = u32::from(b[x0]) * (256 - wx) + u32::from(b[x1]) * wx;
            *d = ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
            fx += step_x;
        }
    }
}

/// I420 (packed, even size) → `R G B A` (alpha 255), for display and tests.
pub fn i420_to_rgba(src: &[u8], width: u32, height: u32, dst: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let cw = w / 2;
    let (y, uv) = src.split_at(w * h);
    let (u, v) = uv.split_at(cw * (h / 2));
    dst.clear();
    dst.resize(w * h * 4, 0);
    for (row, d) in dst.chunks_exact_mut(w * 4).enumerate() {
        let yr = &y[row * w..][..w];
        let ur = &u[(row / 2) * cw..][..cw];
        let vr = &v[(row / 2) * cw..][..cw];
        for (i, (d, &yy)) in d.chunks_exact_mut(4).zip(yr).enumerate() {
            let c = 298 * (i32::from(yy) - 16);
            let du = i32::from(ur[i / 2]) - 128;
            let dv = i32::from(vr[i / 2]) - 128;
            d[0] = ((c + 409 * dv + 128) >> 8).clamp(0, 255) as u8;
            d[1] = ((c - 100 * du - 208 * dv + 128) >> 8).clamp(0, 255) as u8;
            d[2] = ((c + 516 * du + 128) >> 8).clamp(0, 255) as u8;
            d[3] = 255;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` RGB picture of one colour.
    fn solid_rgb(w: usize, h: usize, rgb: [u8; 3]) -> Vec<u8> {
        rgb.iter().copied().cycle().take(w * h * 3).collect()
    }

    fn close(got: u8, want: u8, what: &str) {
        assert!(
            (i32::from(got) - i32::from(want)).abs() <= 2,
            "{what}: got {got}, want {want}"
        );
    }

    /// Expected BT.601 limited-range values for the primaries.
    const COLOURS: [([u8; 3], [u8; 3]); 7] = [
        ([0, 0, 0], [16, 128, 128]),
        ([255, 255, 255], [235, 128, 128]),
        ([255, 0, 0], [81, 90, 240]),
        ([0, 255, 0], [145, 54, 34]),
        ([0, 0, 255], [41, 240, 110]),
        ([128, 128, 128], [126, 128, 128]),
        ([255, 255, 0], [210, 16, 146]),
    ];

    #[test]
    fn rgb_primaries_give_bt601_limited_range() {
        let mut out = Vec::new();
        for (rgb, [y, u, v]) in COLOURS {
            let src = solid_rgb(4, 4, rgb);
            assert_eq!(rgb24_to_i420(&src, 4, 4, 0, &mut out), Ok((4, 4)));
            assert_eq!(out.len(), i420_len(4, 4));
            for &p in &out[..16] {
                close(p, y, &format!("Y of {rgb:?}"));
            }
            for &p in &out[16..20] {
                close(p, u, &format!("U of {rgb:?}"));
            }
            for &p in &out[20..24] {
                close(p, v, &format!("V of {rgb:?}"));
            }
        }
    }

    #[test]
    fn bgr_rgba_bgra_match_rgb() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        // A picture with different values everywhere.
        let (w, h) = (6usize, 4usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        rgb24_to_i420(&rgb, w as u32, h as u32, 0, &mut a).unwrap();

        let bgr: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        bgr24_to_i420(&bgr, w as u32, h as u32, 0, &mut b).unwrap();
        assert_eq!(a, b);

        let rgba: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 7])
            .collect();
        rgba_to_i420(&rgba, w as u32, h as u32, 0, &mut b).unwrap();
        assert_eq!(a, b);

        let bgra: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0], 0])
            .collect();
        bgra_to_i420(&bgra, w as u32, h as u32, 0, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rgb_chroma_is_the_average_of_each_block() {
        // Left column red, right column blue, in a 2×2 block: Y per pixel,
        // chroma from the mean colour (127.5, 0, 127.5).
        let src = [255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 255];
        let mut out = Vec::new();
        rgb24_to_i420(&src, 2, 2, 0, &mut out).unwrap();
        assert_eq!(out.len(), 6);
        close(out[0], 81, "Y red");
        close(out[1], 41, "Y blue");
        close(out[2], 81, "Y red");
        close(out[3], 41, "Y blue");
        let (r, g, b) = (128, 0, 128);
        close(out[4], rgb_to_u(r, g, b), "U");
        close(out[5], rgb_to_v(r, g, b), "V");
    }

    #[test]
    fn yuv_to_rgb_round_trip() {
        let mut yuv = Vec::new();
        let mut back = Vec::new();
        for (rgb, _) in COLOURS {
            rgb24_to_i420(&solid_rgb(4, 2, rgb), 4, 2, 0, &mut yuv).unwrap();
            i420_to_rgba(&yuv, 4, 2, &mut back);
            assert_eq!(back.len(), 4 * 2 * 4);
            for px in back.chunks_exact(4) {
                for c in 0..3 {
                    close(px[c], rgb[c], &format!("channel {c} of {rgb:?}"));
                }
                assert_eq!(px[3], 255);
            }
        }
    }

    /// I420 → YUYV (each chroma row used for both of its luma rows).
    fn i420_to_yuyv(src: &[u8], w: usize, h: usize) -> Vec<u8> {
        let (y, uv) = src.split_at(w * h);
        let (u, v) = uv.split_at((w / 2) * (h / 2));
        let mut out = Vec::with_capacity(w * h * 2);
        for row in 0..h {
            for pair in 0..w / 2 {
                let c = (row / 2) * (w / 2) + pair;
                out.extend_from_slice(&[
                    y[row * w + 2 * pair],
                    u[c],
                    y[row * w + 2 * pair + 1],
                    v[c],
                ]);
            }
        }
        out
    }

    fn pattern_i420(w: usize, h: usize) -> Vec<u8> {
        (0..i420_len(w as u32, h as u32))
            .map(|i| (16 + (i * 7919) % 220) as u8)
            .collect()
    }

    #[test]
    fn yuyv_round_trip_is_exact() {
        let (w, h) = (10, 6);
        let orig = pattern_i420(w, h);
        let yuyv = i420_to_yuyv(&orig, w, h);
        assert_eq!(yuyv.len(), w * h * 2);
        let mut out = Vec::new();
        assert_eq!(
            yuyv_to_i420(&yuyv, w as u32, h as u32, 0, &mut out),
            Ok((10, 6))
        );
        assert_eq!(out, orig);
    }

    #[test]
    fn yuyv_known_values_and_chroma_average() {
        // 2×2: row 0 Y=10,20 U=100 V=200; row 1 Y=30,40 U=110 V=211.
        let src = [10, 100, 20, 200, 30, 110, 40, 211];
        let mut out = Vec::new();
        yuyv_to_i420(&src, 2, 2, 0, &mut out).unwrap();
        assert_eq!(out, [10, 20, 30, 40, 105, 206]);
    }

    #[test]
    fn yuyv_with_padded_stride() {
        let (w, h) = (4, 2);
        let orig = pattern_i420(w, h);
        let yuyv = i420_to_yuyv(&orig, w, h);
        // Rows of 8 bytes padded to 12.
        let mut padded = Vec::new();
        for row in yuyv.chunks_exact(w * 2) {
            padded.extend_from_slice(row);
            padded.extend_from_slice(&[0xee; 4]);
        }
        let mut out = Vec::new();
        yuyv_to_i420(&padded, 4, 2, 12, &mut out).unwrap();
        assert_eq!(out, orig);
        // The last row's padding may be missing.
        padded.truncate(padded.len() - 4);
        yuyv_to_i420(&padded, 4, 2, 12, &mut out).unwrap();
        assert_eq!(out, orig);
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        let (w, h) = (6usize, 4usize);
        let orig = pattern_i420(w, h);
        let (y, uv) = orig.split_at(w * h);
        let (u, v) = uv.split_at(uv.len() / 2);
        let mut nv12 = y.to_vec();
        for (u, v) in u.iter().zip(v) {
            nv12.extend_from_slice(&[*u, *v]);
        }
        let mut out = Vec::new();
        assert_eq!(nv12_to_i420(&nv12, 6, 4, 0, &mut out), Ok((6, 4)));
        assert_eq!(out, orig);
    }

    #[test]
    fn odd_sizes_are_cropped_to_even() {
        let mut out = Vec::new();
        let src = solid_rgb(5, 3, [255, 255, 255]);
        assert_eq!(rgb24_to_i420(&src, 5, 3, 0, &mut out), Ok((4, 2)));
        assert_eq!(out.len(), i420_len(4, 2));
        assert!(out[..8].iter().all(|&y| y == 235));

        let grey = vec![0u8; 7 * 5];
        assert_eq!(gray_to_i420(&grey, 7, 5, 0, &mut out), Ok((6, 4)));
        assert_eq!(out.len(), i420_len(6, 4));
        assert!(out[..24].iter().all(|&y| y == 16));
        assert!(out[24..].iter().all(|&c| c == 128));

        // Odd-size I420 (chroma rounded up) keeps the even part.
        let (w, h) = (5usize, 3usize);
        let mut odd: Vec<u8> = (0..w * h).map(|i| i as u8).collect();
        odd.extend(std::iter::repeat_n(100u8, 3 * 2));
        odd.extend(std::iter::repeat_n(200u8, 3 * 2));
        assert_eq!(i420_to_i420(&odd, 5, 3, &mut out), Ok((4, 2)));
        assert_eq!(out, [0, 1, 2, 3, 5, 6, 7, 8, 100, 100, 200, 200]);

        // NV12 with an odd width: stride is the width, chroma rounds up.
        let mut nv12 = vec![50u8; 5 * 2];
        nv12.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(nv12_to_i420(&nv12, 5, 2, 0, &mut out), Ok((4, 2)));
        assert_eq!(out, [50, 50, 50, 50, 50, 50, 50, 50, 1, 3, 2, 4]);

        assert_eq!(
            rgb24_to_i420(&[0; 3], 1, 1, 0, &mut out),
            Err(ConvertError::TooSmall {
                width: 1,
                height: 1
            })
        );
    }

    #[test]
    fn grey_levels_map_to_limited_range() {
        let src = [0u8, 255, 128, 64];
        let mut out = Vec::new();
        gray_to_i420(&src, 2, 2, 0, &mut out).unwrap();
        assert_eq!(&out[..4], &[16, 235, 126, 71]);
    }

    #[test]
    fn short_input_and_bad_stride_are_errors() {
        let mut out = Vec::new();
        assert!(matches!(
            yuyv_to_i420(&[0; 15], 4, 2, 0, &mut out),
            Err(ConvertError::TooShort { need: 16, .. })
        ));
        assert!(matches!(
            rgb24_to_i420(&[0; 100], 4, 2, 5, &mut out),
            Err(ConvertError::BadStride { stride: 5, row: 12 })
        ));
        assert!(matches!(
            nv12_to_i420(&[0; 11], 4, 2, 0, &mut out),
            Err(ConvertError::TooShort { need: 12, .. })
        ));
        assert!(matches!(
            scale_i420(&[0; 10], 4, 2, &mut out, 2, 2, Filter::Bilinear),
            Err(ConvertError::TooShort { need: 12, .. })
        ));
    }

    #[test]
    fn center_crop_keeps_the_middle() {
        // 16:9 into 4:3: cut the sides.
        assert_eq!(center_crop(1280, 720, 640, 480), (160, 0, 960, 720));
        // 4:3 into 16:9: cut top and bottom.
        assert_eq!(center_crop(640, 480, 640, 360), (0, 60, 640, 360));
        // Same shape: everything.
        assert_eq!(center_crop(1280, 720, 640, 360), (0, 0, 1280, 720));
        assert_eq!(center_crop(1920, 1080, 1280, 720), (0, 0, 1920, 1080));
    }

    #[test]
    fn scaling_gives_the_right_sizes_and_keeps_flat_colours() {
        for filter in [Filter::Nearest, Filter::Bilinear] {
            let mut src = Vec::new();
            rgb24_to_i420(&solid_rgb(1280, 720, [255, 0, 0]), 1280, 720, 0, &mut src).unwrap();
            let mut out = Vec::new();
            for (w, h) in [(640, 480), (640, 360), (320, 240), (1920, 1080), (642, 362)] {
                assert_eq!(
                    scale_i420(&src, 1280, 720, &mut out, w, h, filter),
                    Ok((w, h))
                );
                assert_eq!(out.len(), i420_len(w, h));
                let y = (w * h) as usize;
                assert!(out[..y].iter().all(|&p| p == src[0]), "{filter:?} {w}x{h}");
                assert!(out[y..y + y / 4].iter().all(|&p| p == src[1280 * 720]));
            }
            // Odd target sizes round down to even.
            assert_eq!(
                scale_i420(&src, 1280, 720, &mut out, 641, 361, filter),
                Ok((640, 360))
            );
            assert_eq!(out.len(), i420_len(640, 360));
        }
    }

    #[test]
    fn scaling_crops_the_middle() {
        // 8×4 source: columns 0-1 and 6-7 are black, the middle white. Into
        // 4×4 (square): the sides go, only white is left.
        let (w, h) = (8usize, 4usize);
        let mut src = vec![0u8; i420_len(8, 4)];
        for row in 0..h {
            for col in 0..w {
                src[row * w + col] = if (2..6).contains(&col) { 235 } else { 16 };
            }
        }
        src[w * h..].fill(128);
        let mut out = Vec::new();
        for filter in [Filter::Nearest, Filter::Bilinear] {
            assert_eq!(scale_i420(&src, 8, 4, &mut out, 4, 4, filter), Ok((4, 4)));
            assert!(out[..16].iter().all(|&p| p == 235), "{filter:?}: {out:?}");
        }
    }

    #[test]
    fn halving_averages_blocks() {
        let mut src = vec![0, 100, 200, 50, 100, 0, 50, 100];
        src.extend_from_slice(&[128, 128, 128, 128]);
        let mut out = Vec::new();
        assert_eq!(
            scale_i420(&src, 4, 2, &mut out, 2, 2, Filter::Bilinear),
            Ok((2, 2))
        );
        // 4×2 → 2×2 crops to 2×2 first (square); the offset stays even so
        // chroma lines up: columns 0-1 are kept, as they are.
        assert_eq!(&out[..4], &[0, 100, 100, 0]);

        let mut src = vec![0u8; i420_len(4, 4)];
        src[..16].copy_from_slice(&[
            0, 100, 200, 50, //
            100, 0, 50, 100, //
            10, 10, 0, 0, //
            30, 30, 40, 40,
        ]);
        assert_eq!(
            scale_i420(&src, 4, 4, &mut out, 2, 2, Filter::Bilinear),
            Ok((2, 2))
        );
        assert_eq!(&out[..4], &[50, 100, 20, 20]);
    }

    #[test]
    fn jpeg_header_is_read_without_decoding() {
        assert_eq!(jpeg_dimensions(RED_BLUE_JPEG), Some((32, 16)));
        assert_eq!(jpeg_dimensions(b"not a jpeg"), None);
        assert_eq!(jpeg_dimensions(&[0xff, 0xd8, 0xff]), None);
        assert_eq!(jpeg_dimensions(&RED_BLUE_JPEG[..20]), None);
    }

    #[test]
    fn mjpeg_decodes_to_expected_colours() {
        let (mut rgb, mut out) = (Vec::new(), Vec::new());
        assert_eq!(
            mjpeg_to_i420(RED_BLUE_JPEG, &mut rgb, &mut out),
            Ok((32, 16))
        );
        assert_eq!(out.len(), i420_len(32, 16));
        // Away from the edge between the halves: left red, right blue.
        let (y, uv) = out.split_at(32 * 16);
        let (u, v) = uv.split_at(16 * 8);
        for (x, [ey, eu, ev]) in [(3usize, [81, 90, 240]), (28, [41, 240, 110])] {
            for row in [2usize, 8, 13] {
                close(y[row * 32 + x], ey, &format!("Y at {x},{row}"));
                close(u[(row / 2) * 16 + x / 2], eu, &format!("U at {x},{row}"));
                close(v[(row / 2) * 16 + x / 2], ev, &format!("V at {x},{row}"));
            }
        }
    }

    #[test]
    fn broken_mjpeg_is_an_error_not_a_panic() {
        let (mut rgb, mut out) = (Vec::new(), Vec::new());
        assert!(mjpeg_to_i420(b"garbage", &mut rgb, &mut out).is_err());
        // A valid header followed by nonsense.
        let mut broken = RED_BLUE_JPEG[..RED_BLUE_JPEG.len() / 2].to_vec();
        broken.extend_from_slice(&[0x12; 64]);
        let _ = mjpeg_to_i420(&broken, &mut rgb, &mut out);
    }

    #[test]
    fn converter_scales_and_reuses_buffers() {
        let mut conv = Converter::new();
        let mut out = Vec::new();
        let rgb = solid_rgb(1280, 720, [0, 0, 255]);
        let raw = RawImage {
            format: PixelFormat::Rgb24,
            width: 1280,
            height: 720,
            stride: 0,
            data: &rgb,
        };
        assert_eq!(
            conv.to_i420_scaled(&raw, 640, 480, Filter::Bilinear, &mut out),
            Ok((640, 480))
        );
        assert_eq!(out.len(), i420_len(640, 480));
        close(out[0], 41, "Y blue");
        // Same size: no scaling.
        assert_eq!(
            conv.to_i420_scaled(&raw, 1280, 720, Filter::Bilinear, &mut out),
            Ok((1280, 720))
        );
        assert_eq!(out.len(), i420_len(1280, 720));
        let raw = RawImage {
            format: PixelFormat::Mjpeg,
            width: 0,
            height: 0,
            stride: 0,
            data: RED_BLUE_JPEG,
        };
        assert_eq!(
            conv.to_i420_scaled(&raw, 16, 16, Filter::Bilinear, &mut out),
            Ok((16, 16))
        );
    }

    /// 32×16 JPEG (quality 100, 4:2:0): left half pure red, right half pure
    /// blue. Made with ImageMagick:
    /// `convert -size 16x16 xc:red xc:blue +append -quality 100
    /// -sampling-factor 2x2 red_blue.jpg`.
    const RED_BLUE_JPEG: &[u8] = &[
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff,
        0xdb, 0x00, 0x43, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x10,
        0x00, 0x20, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x00,
        0x15, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xc4, 0x00, 0x14, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc4, 0x00,
        0x16, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x0b, 0x09, 0x0a, 0xff, 0xc4, 0x00, 0x14, 0x11, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xda,
        0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0x8b, 0xe0, 0x25,
        0x3b, 0x7f, 0x09, 0x0e, 0x01, 0x54, 0x06, 0xbe, 0xff, 0xd9,
    ];
}
