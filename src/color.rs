// SPDX-License-Identifier: MPL-2.0
//! Colour conversion between 8-bit NV12 code values and normalised RGB.
//!
//! One affine matrix per direction is derived here, in `f64`, from the standard luma coefficients and
//! quantisation ranges; the CUDA kernels and the CPU path both receive the same `f32` coefficients, so the two
//! paths compute the same function. Transfer functions are left alone: models are trained on gamma-encoded
//! (R'G'B') images, which is what the matrices produce.

/// YCbCr matrix (the luma coefficients `Kr`, `Kb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (SD video).
    Bt601,
    /// ITU-R BT.709 (HD video).
    #[default]
    Bt709,
    /// ITU-R BT.2020 non-constant luminance (UHD video).
    Bt2020,
}

impl Matrix {
    /// `(Kr, Kb)` of the matrix.
    pub fn luma_coefficients(self) -> (f64, f64) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// Quantisation range of the 8-bit code values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Range {
    /// Y in 16..=235, Cb/Cr in 16..=240 ("TV", "limited", "studio").
    #[default]
    Limited,
    /// Y, Cb, Cr in 0..=255 ("PC", "full", "JPEG"); chroma zero is code 128.
    Full,
}

impl Range {
    /// `(offset, scale)` of luma and chroma in code values, as GStreamer defines them.
    fn luma_chroma_quantisation(self) -> ((f64, f64), (f64, f64)) {
        match self {
            Range::Limited => ((16.0, 219.0), (128.0, 224.0)),
            Range::Full => ((0.0, 255.0), (128.0, 255.0)),
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
    pub const fn new(matrix: Matrix, range: Range) -> Self {
        Self { matrix, range }
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

/// `[Y, Cb, Cr]` in code values (0..=255 scale) → `[R', G', B']` in 0..=1, unclamped.
pub fn yuv_to_rgb(c: Colorimetry) -> Affine3x4 {
    let (kr, kb) = c.matrix.luma_coefficients();
    let kg = 1.0 - kr - kb;
    let ((y_off, y_scale), (c_off, c_scale)) = c.range.luma_chroma_quantisation();
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

/// `[R', G', B']` in 0..=1 → `[Y, Cb, Cr]` in code values (0..=255 scale), unrounded and unclamped.
pub fn rgb_to_yuv(c: Colorimetry) -> Affine3x4 {
    let (kr, kb) = c.matrix.luma_coefficients();
    let kg = 1.0 - kr - kb;
    let ((y_off, y_scale), (c_off, c_scale)) = c.range.luma_chroma_quantisation();
    let y = [kr, kg, kb];
    let pb = [-kr / (2.0 * (1.0 - kb)), -kg / (2.0 * (1.0 - kb)), 0.5];
    let pr = [0.5, -kg / (2.0 * (1.0 - kr)), -kb / (2.0 * (1.0 - kr))];
    let row = |k: [f64; 3], scale: f64, off: f64| {
        [(k[0] * scale) as f32, (k[1] * scale) as f32, (k[2] * scale) as f32, off as f32]
    };
    Affine3x4 { m: [row(y, y_scale, y_off), row(pb, c_scale, c_off), row(pr, c_scale, c_off)] }
}

/// Rounds and clamps a code value to 8 bits (round half away from zero, as `roundf` does in the kernels).
#[inline]
pub fn quantise(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Colorimetry; 6] = [
        Colorimetry::new(Matrix::Bt601, Range::Limited),
        Colorimetry::new(Matrix::Bt601, Range::Full),
        Colorimetry::new(Matrix::Bt709, Range::Limited),
        Colorimetry::new(Matrix::Bt709, Range::Full),
        Colorimetry::new(Matrix::Bt2020, Range::Limited),
        Colorimetry::new(Matrix::Bt2020, Range::Full),
    ];

    #[test]
    fn black_white_and_grey_map_to_neutral_chroma() {
        for c in ALL {
            let fwd = rgb_to_yuv(c);
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
            let (fwd, inv) = (rgb_to_yuv(c), yuv_to_rgb(c));
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
        let yuv = rgb_to_yuv(Colorimetry::new(Matrix::Bt709, Range::Limited)).apply(1.0, 0.0, 0.0);
        assert_eq!(yuv.map(quantise), [63, 102, 240]);
    }

    #[test]
    fn bt601_full_red_matches_jfif() {
        // JFIF (BT.601 full range): Y = 0.299 * 255, Cb = 128 - 0.168736 * 255, Cr = 128 + 0.5 * 255 (clamped).
        let yuv = rgb_to_yuv(Colorimetry::new(Matrix::Bt601, Range::Full)).apply(1.0, 0.0, 0.0);
        assert_eq!(yuv.map(quantise), [76, 85, 255]);
    }
}
