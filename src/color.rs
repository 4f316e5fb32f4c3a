// SPDX-License-Identifier: MPL-2.0
//! Colour conversion between code values (8 or 10 bits; Y'CbCr or R'G'B') and normalised R'G'B'.
//!
//! One affine matrix per direction is derived here, in `f64`, from the standard luma coefficients and GStreamer's
//! quantisation ranges at the frame's bit depth; the CUDA kernels and the CPU path both receive the same `f32`
//! coefficients, so the two paths compute the same function. Transfer functions and primaries are left alone: models
//! are trained on gamma-encoded (R'G'B') images and run on the signal as encoded (PQ or HLG included), which is what
//! the matrices produce.

use crate::error::{Error, Result};
use crate::format::{Family, PixelFormat};

/// YCbCr matrix (the luma coefficients `Kr`, `Kb`), or none for R'G'B' frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (SD video).
    Bt601,
    /// ITU-R BT.709 (HD video).
    #[default]
    Bt709,
    /// ITU-R BT.2020 non-constant luminance (UHD and HDR video).
    Bt2020,
    /// No matrix: the samples are R'G'B' (packed RGB frames).
    Rgb,
}

impl Matrix {
    /// `(Kr, Kb)` of a YCbCr matrix; `None` for [`Matrix::Rgb`].
    pub fn luma_coefficients(self) -> Option<(f64, f64)> {
        match self {
            Matrix::Bt601 => Some((0.299, 0.114)),
            Matrix::Bt709 => Some((0.2126, 0.0722)),
            Matrix::Bt2020 => Some((0.2627, 0.0593)),
            Matrix::Rgb => None,
        }
    }
}

/// Quantisation range of the code values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Range {
    /// At 8 bits Y in 16..=235, Cb/Cr in 16..=240; at 10 bits 64..=940 and 64..=960 ("TV", "limited", "studio").
    #[default]
    Limited,
    /// Every code value (0..=255, 0..=1023); chroma zero is half way, 128 or 512 ("PC", "full", "JPEG").
    Full,
}

impl Range {
    /// `(offset, scale)` of luma and chroma in code values at `depth` bits, as GStreamer defines them
    /// (`gst_video_color_range_offsets`).
    fn luma_chroma_quantisation(self, depth: u32) -> ((f64, f64), (f64, f64)) {
        let up = f64::from(1u32 << (depth - 8));
        let half = f64::from(1u32 << (depth - 1));
        match self {
            Range::Limited => ((16.0 * up, 219.0 * up), (half, 224.0 * up)),
            Range::Full => {
                let max = f64::from((1u32 << depth) - 1);
                ((0.0, max), (half, max))
            }
        }
    }
}

/// Matrix and range of one side of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Colorimetry {
    pub matrix: Matrix,
    pub range: Range,
}

impl Colorimetry {
    /// Every YCbCr matrix in both ranges.
    pub const YCBCR: [Colorimetry; 6] = [
        Colorimetry::new(Matrix::Bt601, Range::Limited),
        Colorimetry::new(Matrix::Bt601, Range::Full),
        Colorimetry::new(Matrix::Bt709, Range::Limited),
        Colorimetry::new(Matrix::Bt709, Range::Full),
        Colorimetry::new(Matrix::Bt2020, Range::Limited),
        Colorimetry::new(Matrix::Bt2020, Range::Full),
    ];

    pub const fn new(matrix: Matrix, range: Range) -> Self {
        Self { matrix, range }
    }

    /// Checks that the matrix suits `format`: a YCbCr matrix for Y'CbCr frames, none for R'G'B' frames.
    pub fn check(self, format: PixelFormat) -> Result<()> {
        match (format.family(), self.matrix) {
            (Family::Yuv, Matrix::Rgb) => {
                Err(Error::Negotiation(format!("{format} frames need a YCbCr matrix, not {:?}", self.matrix)))
            }
            (Family::Rgb, m) if m != Matrix::Rgb => {
                Err(Error::Negotiation(format!("{format} frames take no YCbCr matrix, but {m:?} was given")))
            }
            _ => Ok(()),
        }
    }
}

/// A 3×4 affine map, row-major: `out[i] = m[i][0]*a + m[i][1]*b + m[i][2]*c + m[i][3]`.
///
/// `#[repr(C)]` so that it can be passed by value as a kernel argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine3x4 {
    pub m: [[f32; 4]; 3],
}

impl Affine3x4 {
    /// Applies the map to one triple.
    #[inline]
    pub fn apply(&self, a: f32, b: f32, c: f32) -> [f32; 3] {
        let m = &self.m;
        [
            m[0][0] * a + m[0][1] * b + m[0][2] * c + m[0][3],
            m[1][0] * a + m[1][1] * b + m[1][2] * c + m[1][3],
            m[2][0] * a + m[2][1] * b + m[2][2] * c + m[2][3],
        ]
    }
}

/// `[Y, Cb, Cr]` (or `[R, G, B]` with [`Matrix::Rgb`]) in code values of `depth` bits → `[R', G', B']` in 0..=1,
/// unclamped.
pub fn code_to_rgb(c: Colorimetry, depth: u32) -> Affine3x4 {
    let ((y_off, y_scale), (c_off, c_scale)) = c.range.luma_chroma_quantisation(depth);
    let Some((kr, kb)) = c.matrix.luma_coefficients() else {
        let k = 1.0 / y_scale;
        let row = |i: usize| {
            let mut r = [0f32; 4];
            r[i] = k as f32;
            r[3] = (-(k * y_off)) as f32;
            r
        };
        return Affine3x4 { m: [row(0), row(1), row(2)] };
    };
    let kg = 1.0 - kr - kb;
    // E'y = (Y - y_off) / y_scale, E'pb = (Cb - c_off) / c_scale, E'pr = (Cr - c_off) / c_scale.
    let r_pr = 2.0 * (1.0 - kr);
    let b_pb = 2.0 * (1.0 - kb);
    let g_pb = -2.0 * kb * (1.0 - kb) / kg;
    let g_pr = -2.0 * kr * (1.0 - kr) / kg;
    let rows = [[1.0, 0.0, r_pr], [1.0, g_pb, g_pr], [1.0, b_pb, 0.0]];
    let mut m = [[0f32; 4]; 3];
    for (out, [fy, fpb, fpr]) in m.iter_mut().zip(rows) {
        let (ky, kpb, kpr) = (fy / y_scale, fpb / c_scale, fpr / c_scale);
        *out = [ky as f32, kpb as f32, kpr as f32, (-(ky * y_off) - kpb * c_off - kpr * c_off) as f32];
    }
    Affine3x4 { m }
}

/// `[R', G', B']` in 0..=1 → `[Y, Cb, Cr]` (or `[R, G, B]` with [`Matrix::Rgb`]) in code values of `depth` bits,
/// unrounded and unclamped.
pub fn rgb_to_code(c: Colorimetry, depth: u32) -> Affine3x4 {
    let ((y_off, y_scale), (c_off, c_scale)) = c.range.luma_chroma_quantisation(depth);
    let row = |k: [f64; 3], scale: f64, off: f64| {
        [(k[0] * scale) as f32, (k[1] * scale) as f32, (k[2] * scale) as f32, off as f32]
    };
    let Some((kr, kb)) = c.matrix.luma_coefficients() else {
        let unit = |i: usize| {
            let mut k = [0.0; 3];
            k[i] = 1.0;
            row(k, y_scale, y_off)
        };
        return Affine3x4 { m: [unit(0), unit(1), unit(2)] };
    };
    let kg = 1.0 - kr - kb;
    let y = [kr, kg, kb];
    let pb = [-kr / (2.0 * (1.0 - kb)), -kg / (2.0 * (1.0 - kb)), 0.5];
    let pr = [0.5, -kg / (2.0 * (1.0 - kr)), -kb / (2.0 * (1.0 - kr))];
    Affine3x4 { m: [row(y, y_scale, y_off), row(pb, c_scale, c_off), row(pr, c_scale, c_off)] }
}

/// Rounds and clamps a code value to `0..=max_code` (round half away from zero, as `roundf` does in the kernels).
#[inline]
pub fn quantise(v: f32, max_code: u16) -> u16 {
    v.round().clamp(0.0, f32::from(max_code)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Colorimetry; 6] = Colorimetry::YCBCR;

    #[test]
    fn black_white_and_grey_map_to_neutral_chroma() {
        for c in ALL {
            let fwd = rgb_to_code(c, 8);
            let (y0, y1) = match c.range {
                Range::Limited => (16.0, 235.0),
                Range::Full => (0.0, 255.0),
            };
            let black = fwd.apply(0.0, 0.0, 0.0);
            let white = fwd.apply(1.0, 1.0, 1.0);
            assert!((black[0] - y0).abs() < 1e-4 && (white[0] - y1).abs() < 1e-4, "{c:?}");
            for v in [black[1], black[2], white[1], white[2]] {
                assert!((v - 128.0).abs() < 1e-4, "{c:?}: chroma {v}");
            }
        }
    }

    #[test]
    fn forward_and_inverse_compose_to_identity() {
        for c in ALL {
            let (fwd, inv) = (rgb_to_code(c, 8), code_to_rgb(c, 8));
            for rgb in [[0.1f32, 0.5, 0.9], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
                let yuv = fwd.apply(rgb[0], rgb[1], rgb[2]);
                let back = inv.apply(yuv[0], yuv[1], yuv[2]);
                for k in 0..3 {
                    assert!((back[k] - rgb[k]).abs() < 1e-5, "{c:?} {rgb:?} -> {back:?}");
                }
            }
        }
    }

    #[test]
    fn bt709_limited_red_matches_published_code_values() {
        // BT.709 limited-range 100 % red is (63, 102, 240) in 8-bit code values (ITU-R BT.709-6, table 4).
        let yuv = rgb_to_code(Colorimetry::new(Matrix::Bt709, Range::Limited), 8).apply(1.0, 0.0, 0.0);
        assert_eq!(yuv.map(|v| quantise(v, 255)), [63, 102, 240]);
    }

    #[test]
    fn bt601_full_red_matches_jfif() {
        // JFIF (BT.601 full range): Y = 0.299 * 255, Cb = 128 - 0.168736 * 255, Cr = 128 + 0.5 * 255 (clamped).
        let yuv = rgb_to_code(Colorimetry::new(Matrix::Bt601, Range::Full), 8).apply(1.0, 0.0, 0.0);
        assert_eq!(yuv.map(|v| quantise(v, 255)), [76, 85, 255]);
    }

    #[test]
    fn ten_bit_ranges_follow_gstreamer() {
        // limited: Y 64..=940, chroma zero 512; full: 0..=1023
        let lim = rgb_to_code(Colorimetry::new(Matrix::Bt2020, Range::Limited), 10);
        assert_eq!(lim.apply(0.0, 0.0, 0.0).map(|v| quantise(v, 1023)), [64, 512, 512]);
        assert_eq!(lim.apply(1.0, 1.0, 1.0).map(|v| quantise(v, 1023)), [940, 512, 512]);
        let full = rgb_to_code(Colorimetry::new(Matrix::Bt2020, Range::Full), 10);
        assert_eq!(full.apply(1.0, 1.0, 1.0).map(|v| quantise(v, 1023)), [1023, 512, 512]);
        // BT.2020 limited 10-bit 100 % blue: Cb at its top, 960 (ITU-R BT.2020-2 table 5)
        assert_eq!(quantise(lim.apply(0.0, 0.0, 1.0)[1], 1023), 960);
    }

    #[test]
    fn rgb_frames_scale_each_component_alone() {
        let c = Colorimetry::new(Matrix::Rgb, Range::Full);
        assert_eq!(rgb_to_code(c, 8).apply(1.0, 0.5, 0.0).map(|v| quantise(v, 255)), [255, 128, 0]);
        let back = code_to_rgb(c, 8).apply(255.0, 51.0, 0.0);
        assert!((back[0] - 1.0).abs() < 1e-6 && (back[1] - 0.2).abs() < 1e-6 && back[2] == 0.0, "{back:?}");
        assert!(c.check(PixelFormat::Rgba).is_ok() && c.check(PixelFormat::Nv12).is_err());
        assert!(Colorimetry::default().check(PixelFormat::Bgrx).is_err());
    }
}
