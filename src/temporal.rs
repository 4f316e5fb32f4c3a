// SPDX-License-Identifier: MPL-2.0
//! Temporal stabilisation of frame-wise model output, which flickers in static regions (GAN models hallucinate
//! slightly different detail from one frame to the next), and the flicker metric that measures it.
//!
//! Each output pixel is blended with the previous *output* where the *input* did not change:
//! `out = v + α·m·(history − v)`, with `v` the frame's own (model, blended or classic) value, `α` the
//! `temporal-stability` setting and `m` a per-pixel mask from the input frame difference: the largest
//! [`pixel_difference`] to the previous input (luma for Y'CbCr, the largest of R, G, B otherwise, in 8-bit code
//! values) over a (2·[`MASK_RADIUS`]+1)² neighbourhood (so that the model's receptive
//! field around a moving edge counts as moving), mapped to 1 at or below [`TemporalSettings::static_below`] code
//! values, 0 at or above [`TemporalSettings::moving_above`] and linearly in between. In static regions this is an
//! exponential moving average (the flicker falls by about `√((1−α)/(1+α))`); moving ones are untouched.
//!
//! The history is reset (the mask is all zero for one frame) on the first frame, on discontinuities, flushes, caps
//! changes, frames that fell back to classic output, and scene cuts: a mean pixel difference above
//! [`TemporalSettings::scene_cut`] code values, decided on the device from an integer sum, so nothing waits for the
//! GPU. The mask is computed at input resolution and read at the input pixel nearest each output pixel
//! ([`input_index`]); the kernels (`cuda/kernels/temporal.cu`) compute the same numbers.

use crate::cpu::load;
use crate::frame::{HostFrame, Image, Size};

/// Neighbourhood radius, in input pixels, over which the input difference is maximised.
pub const MASK_RADIUS: u32 = 2;

/// The stabiliser's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemporalSettings {
    /// How much of the history a static pixel keeps (0: off, up to 1).
    pub strength: f32,
    /// Input differences (luma code values) at or below this count as static.
    pub static_below: u8,
    /// Input differences at or above this count as moving.
    pub moving_above: u8,
    /// Mean absolute luma difference (code values) above which a frame is a scene cut.
    pub scene_cut: u32,
}

impl Default for TemporalSettings {
    fn default() -> Self {
        Self { strength: 0.0, static_below: 3, moving_above: 12, scene_cut: 24 }
    }
}

impl TemporalSettings {
    pub fn with_strength(strength: f32) -> Self {
        Self { strength, ..Self::default() }
    }

    pub fn enabled(&self) -> bool {
        self.strength > 0.0
    }

    /// The sum of absolute luma differences over a frame of `size` above which it is a scene cut.
    pub fn cut_limit(&self, size: Size) -> u64 {
        self.scene_cut as u64 * size.pixels() as u64
    }

    /// The mask value for a neighbourhood difference of `d` code values (the kernels' formula).
    #[inline]
    pub fn mask_value(&self, d: u32) -> f32 {
        let (lo, hi) = (self.static_below as u32, self.moving_above as u32);
        if d <= lo {
            1.0
        } else if d >= hi {
            0.0
        } else {
            (hi - d) as f32 / (hi - lo) as f32
        }
    }
}

/// The input pixel (index into a plane of `input`) whose mask value an output pixel `(x, y)` of `output` reads:
/// the one under its centre, in integer arithmetic.
#[inline]
pub fn input_index(x: usize, y: usize, input: Size, output: Size) -> usize {
    let map = |o: usize, i: u32, n: u32| ((2 * o as u64 + 1) * i as u64 / (2 * n as u64)) as usize;
    map(y, input.height, output.height) * input.width as usize + map(x, input.width, output.width)
}

/// How much pixel `x` of two rows (plane 0 of frames of one format) differs, in 8-bit code values: its luma for
/// Y'CbCr formats, the largest of its R, G, B differences otherwise (the kernels' formula).
#[inline]
pub fn pixel_difference(a: &[u8], b: &[u8], x: usize, format: crate::format::PixelFormat) -> u32 {
    let l = format.layout();
    let mut d = 0u32;
    for k in (0..3).filter(|&k| l.plane[k] == 0) {
        let i = x * l.step[0] as usize + l.offset[k] as usize;
        d = d.max((load(a, i, &l) as i32 - load(b, i, &l) as i32).unsigned_abs());
    }
    d * 255 / l.max_code as u32
}

/// Sum of the pixel differences between two frames of one size and format.
pub fn difference_sum(current: &HostFrame, previous: &HostFrame) -> u64 {
    let (w, h) = (current.size.width as usize, current.size.height as usize);
    let mut sum = 0u64;
    for y in 0..h {
        let (a, b) = (&current.planes[0][y * current.strides[0]..], &previous.planes[0][y * previous.strides[0]..]);
        sum += (0..w).map(|x| pixel_difference(a, b, x, current.format) as u64).sum::<u64>();
    }
    sum
}

/// Writes the stabilisation mask of `current` against `previous` (same size and format) into `mask` (one value per
/// input pixel); all zero when `history_valid` is false or the frame is a scene cut. Returns whether it was a cut.
pub fn compute_mask(
    settings: &TemporalSettings,
    current: &HostFrame,
    previous: &HostFrame,
    history_valid: bool,
    mask: &mut [f32],
) -> bool {
    let size = current.size;
    let (w, h) = (size.width as i64, size.height as i64);
    assert!(
        mask.len() >= size.pixels() && previous.size == size && previous.format == current.format,
        "mask or previous frame of the wrong size or format"
    );
    let cut = difference_sum(current, previous) > settings.cut_limit(size);
    let r = MASK_RADIUS as i64;
    for y in 0..h {
        for x in 0..w {
            let mut d = 0u32;
            for dy in -r..=r {
                let yy = (y + dy).clamp(0, h - 1) as usize;
                let a = &current.planes[0][yy * current.strides[0]..];
                let b = &previous.planes[0][yy * previous.strides[0]..];
                for dx in -r..=r {
                    let xx = (x + dx).clamp(0, w - 1) as usize;
                    d = d.max(pixel_difference(a, b, xx, current.format));
                }
            }
            let m = if history_valid && !cut { settings.mask_value(d) } else { 0.0 };
            mask[(y * w + x) as usize] = m;
        }
    }
    cut
}

/// Blends one output pixel's value with its history (both clamped to 0..=1) by `weight` (α × mask) and returns the
/// result, which becomes the history: `v + weight·(history − v)`, clamped (the kernels' formula).
#[inline]
pub fn stabilise(v: f32, history: f32, weight: f32) -> f32 {
    crate::cpu::clamp01(v + weight * (history - v))
}

/// The flicker of a sequence of output frames: the mean frame-to-frame [`pixel_difference`] of the output (luma
/// for Y'CbCr) over the pixels whose input (at the nearest input pixel) did not change by more than one code value,
/// with the input's own over the same pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flicker {
    /// Mean absolute output luma difference in static regions (code values).
    pub output: f64,
    /// The same of the input at those pixels (code values; 0 for an exactly static input).
    pub input: f64,
    /// Share of the output pixels counted (static input).
    pub static_share: f64,
}

impl Flicker {
    /// The output's flicker relative to the input's (`output / input`), where the input moved at all.
    pub fn relative(&self) -> Option<f64> {
        (self.input > 0.0).then(|| self.output / self.input)
    }
}

impl std::fmt::Display for Flicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} code values in static regions ({:.1} % of the frame)",
            self.output,
            100.0 * self.static_share
        )?;
        match self.relative() {
            Some(r) => write!(f, ", {r:.2}× the input's {:.3}", self.input),
            None => write!(f, ", input exactly static"),
        }
    }
}

/// Measures the flicker of `outputs` (one per input, all of one size) against `inputs` (all of one size).
pub fn flicker(inputs: &[Image], outputs: &[Image]) -> Flicker {
    assert_eq!(inputs.len(), outputs.len(), "one output per input");
    let (mut out_sum, mut in_sum, mut counted, mut total) = (0u64, 0u64, 0u64, 0u64);
    for t in 1..inputs.len() {
        let (i0, i1, o0, o1) = (&inputs[t - 1], &inputs[t], &outputs[t - 1], &outputs[t]);
        let (isize, osize) = (i1.size, o1.size);
        let (iw, ow) = (isize.width as usize, osize.width as usize);
        let (is, os) = (i1.strides()[0], o1.strides()[0]);
        for y in 0..osize.height as usize {
            for x in 0..ow {
                total += 1;
                let ii = input_index(x, y, isize, osize);
                let (iy, ix) = (ii / iw, ii % iw);
                let input_change = pixel_difference(&i1.planes[0][iy * is..], &i0.planes[0][iy * is..], ix, i1.format);
                if input_change <= 1 {
                    out_sum += pixel_difference(&o1.planes[0][y * os..], &o0.planes[0][y * os..], x, o1.format) as u64;
                    in_sum += input_change as u64;
                    counted += 1;
                }
            }
        }
    }
    let n = counted.max(1) as f64;
    Flicker { output: out_sum as f64 / n, input: in_sum as f64 / n, static_share: counted as f64 / total.max(1) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PixelFormat;

    #[test]
    fn the_mask_ramps_between_the_thresholds() {
        let s = TemporalSettings::with_strength(0.8);
        assert_eq!((s.mask_value(0), s.mask_value(3), s.mask_value(12), s.mask_value(40)), (1.0, 1.0, 0.0, 0.0));
        assert!((s.mask_value(7) - 5.0 / 9.0).abs() < 1e-7);
    }

    #[test]
    fn output_pixels_read_the_input_pixel_under_their_centre() {
        let (i, o) = (Size::new(4, 2), Size::new(8, 4));
        assert_eq!([0, 1, 2, 7].map(|x| input_index(x, 0, i, o)), [0, 0, 1, 3]);
        assert_eq!(input_index(0, 3, i, o), 4);
        // downscaled outputs too
        assert_eq!(input_index(1, 0, Size::new(9, 1), Size::new(3, 1)), 4);
    }

    #[test]
    fn a_moving_patch_is_masked_out_with_its_neighbourhood_and_cuts_reset() {
        let size = Size::new(16, 8);
        let mut a = Image::new(PixelFormat::Nv12, size);
        a.planes[0].fill(100);
        let mut b = a.clone();
        b.planes[0][3 * 16 + 8] = 200;
        let s = TemporalSettings::with_strength(0.5);
        let mut mask = vec![0f32; size.pixels()];
        assert!(!compute_mask(&s, &b.view(), &a.view(), true, &mut mask));
        for y in 0..8 {
            for x in 0..16 {
                let near = (x as i32 - 8).abs() <= 2 && (y as i32 - 3).abs() <= 2;
                assert_eq!(mask[y * 16 + x], if near { 0.0 } else { 1.0 }, "({x},{y})");
            }
        }
        compute_mask(&s, &b.view(), &a.view(), false, &mut mask);
        assert!(mask.iter().all(|&m| m == 0.0), "no history: nothing is blended");
        let mut cut = a.clone();
        cut.planes[0].fill(160);
        assert!(compute_mask(&s, &cut.view(), &a.view(), true, &mut mask));
        assert!(mask.iter().all(|&m| m == 0.0), "a scene cut resets");
    }

    #[test]
    fn pixel_differences_are_luma_or_the_largest_rgb_one_in_8_bit_codes() {
        assert_eq!(pixel_difference(&[10, 0], &[30, 0], 0, PixelFormat::Nv12), 20);
        // P010: 10-bit codes 400 and 480 (shifted up by 6) differ by 80, i.e. 19 at 8 bits
        let p = |v: u16| (v << 6).to_le_bytes();
        assert_eq!(pixel_difference(&p(400), &p(480), 0, PixelFormat::P010), 19);
        assert_eq!(pixel_difference(&[10, 50, 90, 0], &[12, 40, 91, 255], 0, PixelFormat::Rgba), 10);
    }

    #[test]
    fn flicker_counts_static_input_pixels_only() {
        let size = Size::new(4, 4);
        let frame = |v: u8| {
            let mut f = Image::new(PixelFormat::Nv12, size);
            f.planes[0].fill(v);
            f
        };
        let inputs = [frame(10), frame(10), frame(50)];
        let outputs = [frame(20), frame(24), frame(90)];
        let f = flicker(&inputs, &outputs);
        // only the first step is static: 4 code values over all 16 pixels, half of all pixel pairs counted
        assert_eq!((f.output, f.input, f.static_share), (4.0, 0.0, 0.5));
        assert_eq!(f.relative(), None);
    }
}
