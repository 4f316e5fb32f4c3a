// SPDX-License-Identifier: MPL-2.0
//! Classic resampling: Lanczos-3 and bicubic as separable filters over planar RGB, for the `classic` backend, the
//! classic half of the AI strength blend, the fallback when a model cannot run, and the final downscale to an output
//! size below the model's.
//!
//! Each axis gets a table ([`AxisFilter`]): for every output sample the first input sample it reads and one weight
//! per tap. The tables are computed here once per size, in `f64`, normalised and stored as `f32`; the CPU path
//! below and the CUDA kernels (`cuda/kernels/resample.cuh`) read the same tables and sum in the same order (each
//! row horizontally, then the row sums vertically), so the two paths agree bit for bit. Samples beyond the edges
//! are clamped to the edge. When downscaling, the filter's support is widened by the ratio (an antialiasing
//! low-pass), as Pillow and swscale do.

use crate::frame::{Size, TensorElement};

/// Which classic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClassicMethod {
    /// Keys' cubic convolution with a = −0.5 (Catmull-Rom), 4 taps when upscaling.
    Bicubic,
    /// Lanczos with 3 lobes, 6 taps when upscaling.
    #[default]
    Lanczos,
}

crate::backend::named_values!(ClassicMethod, "classic method", [
    Bicubic => "bicubic",
    Lanczos => "lanczos",
]);

/// What happens when the model cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fallback {
    /// Errors, as without a fallback.
    #[default]
    None,
    /// Classic output instead: for the whole stream when the model or backend cannot be used, for one frame when
    /// its inference fails; each reported (warnings, counters).
    Classic,
}

crate::backend::named_values!(Fallback, "fallback", [
    None => "none",
    Classic => "classic",
]);

impl ClassicMethod {
    /// Half-width of the kernel in input samples (at a ratio of 1).
    pub fn support(self) -> f64 {
        match self {
            ClassicMethod::Bicubic => 2.0,
            ClassicMethod::Lanczos => 3.0,
        }
    }

    /// The kernel at distance `x` (in input samples at a ratio of 1). Exactly 0 at nonzero integers for Lanczos
    /// (so that same-size resampling is an exact copy) and beyond the support.
    pub fn kernel(self, x: f64) -> f64 {
        let a = x.abs();
        match self {
            ClassicMethod::Lanczos => {
                if a == 0.0 {
                    1.0
                } else if a >= 3.0 || a.fract() == 0.0 {
                    0.0
                } else {
                    let p = std::f64::consts::PI * a;
                    3.0 * p.sin() * (p / 3.0).sin() / (p * p)
                }
            }
            ClassicMethod::Bicubic => {
                const A: f64 = -0.5;
                if a < 1.0 {
                    ((A + 2.0) * a - (A + 3.0)) * a * a + 1.0
                } else if a < 2.0 {
                    ((A * a - 5.0 * A) * a + 8.0 * A) * a - 4.0 * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The filter along one axis from `input` samples to `output` samples: output sample `i` is
/// `Σ_k weights[i·taps + k] · in[clamp(start[i] + k, 0, input − 1)]`, summed for `k` from 0 up.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisFilter {
    pub input: u32,
    pub output: u32,
    pub taps: u32,
    /// First input sample of each output sample (may lie before 0 or past the end: clamped when read).
    pub start: Vec<i32>,
    /// `output × taps` weights, each output sample's summing to 1 (up to `f32` rounding).
    pub weights: Vec<f32>,
}

impl AxisFilter {
    /// The `method` filter from `input` to `output` samples (both at least 1). Sample centres are at `i + 0.5`;
    /// output sample `i` sits at `(i + 0.5) · input / output` in input coordinates.
    pub fn new(method: ClassicMethod, input: u32, output: u32) -> Self {
        let (input, output) = (input.max(1), output.max(1));
        let ratio = input as f64 / output as f64;
        let stretch = ratio.max(1.0);
        let support = method.support() * stretch;
        let taps = ((2.0 * support).ceil() as u32).max(1);
        let mut start = Vec::with_capacity(output as usize);
        let mut weights = Vec::with_capacity((output * taps) as usize);
        let mut row = vec![0f64; taps as usize];
        for i in 0..output {
            let centre = (i as f64 + 0.5) * ratio;
            // the first sample whose centre lies within the support
            let first = (centre - support + 0.5).floor() as i64;
            for (k, w) in row.iter_mut().enumerate() {
                *w = method.kernel((first as f64 + k as f64 + 0.5 - centre) / stretch);
            }
            let sum: f64 = row.iter().sum();
            start.push(first as i32);
            weights.extend(row.iter().map(|w| (w / sum) as f32));
        }
        Self { input, output, taps, start, weights }
    }

    /// True when the filter copies its input (same length, one weight of 1 per output sample).
    pub fn is_identity(&self) -> bool {
        self.input == self.output
            && (0..self.output as usize).all(|i| {
                let w = &self.weights[i * self.taps as usize..(i + 1) * self.taps as usize];
                w.iter().enumerate().all(|(k, &v)| {
                    let at = self.start[i] as i64 + k as i64;
                    if at == i as i64 { v == 1.0 } else { v == 0.0 }
                })
            })
    }

    /// The input index tap `k` of output sample `i` reads (clamped to the edges).
    #[inline]
    pub fn index(&self, i: usize, k: usize) -> usize {
        (self.start[i] as i64 + k as i64).clamp(0, self.input as i64 - 1) as usize
    }

    #[inline]
    fn weight(&self, i: usize, k: usize) -> f32 {
        self.weights[i * self.taps as usize + k]
    }
}

/// The filters of both axes for resampling planes of `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampler {
    pub x: AxisFilter,
    pub y: AxisFilter,
}

impl Resampler {
    pub fn new(method: ClassicMethod, from: Size, to: Size) -> Self {
        Self { x: AxisFilter::new(method, from.width, to.width), y: AxisFilter::new(method, from.height, to.height) }
    }

    pub fn input(&self) -> Size {
        Size::new(self.x.input, self.y.input)
    }

    pub fn output(&self) -> Size {
        Size::new(self.x.output, self.y.output)
    }

    /// Resamples the planar RGB tensor `src` (`[3, input]`) into `dst` (`[3, output]`, `f32`, unclamped): each
    /// input row filtered horizontally, then the row sums vertically, in the kernels' order.
    pub fn resample<T: TensorElement>(&self, src: &[T], dst: &mut [f32]) {
        let (iw, ih) = (self.x.input as usize, self.y.input as usize);
        let (ow, oh) = (self.x.output as usize, self.y.output as usize);
        assert!(src.len() >= 3 * iw * ih && dst.len() >= 3 * ow * oh, "tensors too small for the resampler");
        let mut rows = vec![0f32; ih * ow];
        for k in 0..3 {
            let plane = &src[k * iw * ih..(k + 1) * iw * ih];
            for (y, out_row) in rows.chunks_exact_mut(ow).enumerate() {
                let in_row = &plane[y * iw..(y + 1) * iw];
                for (ox, out) in out_row.iter_mut().enumerate() {
                    *out = self.horizontal(in_row, ox);
                }
            }
            let out = &mut dst[k * ow * oh..(k + 1) * ow * oh];
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0f32;
                    for j in 0..self.y.taps as usize {
                        sum += self.y.weight(oy, j) * rows[self.y.index(oy, j) * ow + ox];
                    }
                    out[oy * ow + ox] = sum;
                }
            }
        }
    }

    /// Output sample `ox` of one input row.
    #[inline]
    fn horizontal<T: TensorElement>(&self, row: &[T], ox: usize) -> f32 {
        let mut sum = 0f32;
        for k in 0..self.x.taps as usize {
            sum += self.x.weight(ox, k) * row[self.x.index(ox, k)].to_f32();
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_an_exact_copy_for_both_methods() {
        for method in ClassicMethod::ALL {
            let f = AxisFilter::new(*method, 17, 17);
            assert!(f.is_identity(), "{method}: {f:?}");
            let r = Resampler::new(*method, Size::new(5, 3), Size::new(5, 3));
            let src: Vec<f32> = (0..45).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut dst = vec![0f32; 45];
            r.resample(&src, &mut dst);
            assert_eq!(src, dst, "{method}");
        }
    }

    #[test]
    fn taps_grow_when_downscaling_and_weights_sum_to_one() {
        assert_eq!(AxisFilter::new(ClassicMethod::Lanczos, 100, 400).taps, 6);
        assert_eq!(AxisFilter::new(ClassicMethod::Bicubic, 100, 400).taps, 4);
        assert_eq!(AxisFilter::new(ClassicMethod::Lanczos, 400, 100).taps, 24);
        assert_eq!(AxisFilter::new(ClassicMethod::Lanczos, 300, 200).taps, 9);
        for (i, o) in [(100, 400), (400, 100), (300, 200), (7, 3), (1, 9), (9, 1)] {
            let f = AxisFilter::new(ClassicMethod::Lanczos, i, o);
            for w in f.weights.chunks(f.taps as usize) {
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{i}->{o}: {s}");
            }
        }
    }

    #[test]
    fn a_flat_plane_stays_flat() {
        let r = Resampler::new(ClassicMethod::Lanczos, Size::new(9, 5), Size::new(31, 2));
        let src = vec![0.25f32; 3 * 45];
        let mut dst = vec![0f32; 3 * 62];
        r.resample(&src, &mut dst);
        assert!(dst.iter().all(|v| (v - 0.25).abs() < 1e-6), "{dst:?}");
    }

    #[test]
    fn kernels_have_their_textbook_values() {
        let l = ClassicMethod::Lanczos;
        assert_eq!((l.kernel(0.0), l.kernel(1.0), l.kernel(-2.0), l.kernel(3.5)), (1.0, 0.0, 0.0, 0.0));
        // sinc(0.5)·sinc(1/6) = (2/π)·(6/π)·sin(π/6)
        let expected = (2.0 / std::f64::consts::PI) * (6.0 / std::f64::consts::PI) * 0.5;
        assert!((l.kernel(0.5) - expected).abs() < 1e-12);
        let b = ClassicMethod::Bicubic;
        assert_eq!((b.kernel(0.0), b.kernel(1.0), b.kernel(2.0)), (1.0, 0.0, 0.0));
        assert!((b.kernel(0.5) - 0.5625).abs() < 1e-12 && (b.kernel(1.5) + 0.0625).abs() < 1e-12);
    }
}
