// SPDX-License-Identifier: MPL-2.0
//! Which kernel of `conv_sm90.cu` runs a convolution, what shared memory it takes, and its weights packed as the
//! kernel copies them: the shared-memory images of its A (or, for [`ConvKernel::Narrow8`], B) operands, chunk after
//! chunk of 32 input channels.

use super::CHUNK;
use crate::native::program::ConvStep;

/// A kernel of `conv_sm90.cu`, by what it computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::native) enum ConvKernel {
    /// `conv32_sm90`: up to 32 outputs, two output rows per MMA, into a slice.
    Pairs32,
    /// `conv64_sm90`: 33–64 outputs, with up to two residuals.
    Rows64,
    /// `conv64up2_sm90`: 33–64 outputs of the input upsampled by 2 (nearest), no residuals.
    Rows64Up2,
    /// `conv64pw_sm90`: 33–64 outputs of a 1×1 convolution (only the centre tap), with up to two residuals.
    Rows64Pointwise,
    /// `conv8_sm90`: up to 8 outputs into planes (the model output), pixels as M.
    Narrow8,
}

impl ConvKernel {
    /// The kernel for `cout` outputs with `residuals` residuals of an input upsampled by `upsample`, `planar` into
    /// planes, `pointwise` for a 1×1 convolution (one of another width runs as a 3×3 one with zero outer taps), or
    /// why none takes it.
    pub(in crate::native) fn choose(
        cout: usize,
        residuals: usize,
        (upsample, pointwise): (u32, bool),
        planar: bool,
    ) -> Result<Self, String> {
        let kernel = match (upsample, cout, planar) {
            (1, 33..=64, false) if pointwise => Self::Rows64Pointwise,
            (2, 33..=64, false) => Self::Rows64Up2,
            (2, ..) => {
                return Err("an input read upsampled by 2 takes the 33-64-output kernel, into a buffer".into());
            }
            (1, 1..=8, true) => Self::Narrow8,
            (1, 1..=32, false) => Self::Pairs32,
            (1, 33..=64, false) => Self::Rows64,
            (1, 9.., true) => return Err("planar outputs (the model output) take at most 8 channels".into()),
            (1, ..) => return Err(format!("{cout} outputs (1 to 64 are taken)")),
            _ => return Err(format!("an input upsampled by {upsample} (1 or 2 are taken)")),
        };
        let taken = if matches!(kernel, Self::Rows64 | Self::Rows64Pointwise) { 2 } else { 0 };
        if residuals > taken {
            return Err(match kernel {
                Self::Rows64 | Self::Rows64Pointwise => format!("{residuals} residuals (up to two are added)"),
                Self::Rows64Up2 => "an input read upsampled by 2 takes no residuals".into(),
                _ => "residuals are added by the 33-64-output kernel only".into(),
            });
        }
        Ok(kernel)
    }

    /// The kernel for program step `c` (`planar`: into the model output's planes), or why none takes it.
    pub(in crate::native) fn for_step(c: &ConvStep, planar: bool) -> Result<Self, String> {
        Self::choose(c.output.channels, c.residuals.len(), (c.upsample, c.is_pointwise()), planar)
    }

    /// Output channels it computes (the bias is padded to these).
    pub(in crate::native) const fn rows(self) -> usize {
        match self {
            Self::Pairs32 => 32,
            Self::Rows64 | Self::Rows64Up2 | Self::Rows64Pointwise => 64,
            Self::Narrow8 => 8,
        }
    }

    /// Tiles per input tile: one per phase with the input upsampled.
    pub(super) const fn phases(self) -> usize {
        if matches!(self, Self::Rows64Up2) { 4 } else { 1 }
    }

    /// `Layout<COUT, UP>::SMEM` of the kernel: three halo slots of 50176 bytes, weight slots rounded to 1 KiB
    /// (Rows64 four of one k-step's A, Rows64Up2 eight of them with 2 × 2 taps, Rows64Pointwise sixteen with one tap,
    /// Pairs32 three of a chunk's, Narrow8 three of a chunk's B), two mbarriers per slot and 1 KiB of alignment room;
    /// the epilogue is staged in a halo slot.
    pub(super) const fn smem_bytes(self) -> usize {
        let (part, weights): (usize, usize) = match self {
            Self::Rows64 => (18432, 4),
            Self::Rows64Up2 => (8192, 8),
            Self::Rows64Pointwise => (2048, 16),
            Self::Pairs32 => (25088, 3),
            Self::Narrow8 => (4608, 3),
        };
        let halos = 3;
        halos * 50176 + weights * part.div_ceil(1024) * 1024 + 2 * (halos + weights) * 8 + 1024
    }

    /// Halves of packed weights per 32-channel chunk (and phase):
    /// - Rows64: `[k-step][tap][K-half][8 row groups][8][8]` (the kernel copies one k-step at a time);
    /// - Rows64Up2: the same with the four 2 × 2 taps of one phase;
    /// - Rows64Pointwise: the same with the centre tap only;
    /// - Pairs32: the weight slices only, `[kx][k-step][K-half][3 ky][4 row groups][8][8]` (the zero groups live in
    ///   shared memory);
    /// - Narrow8: B, `[tap][k-step][K-half][8 outputs][8]`.
    pub(super) const fn chunk_halves(self) -> usize {
        match self {
            Self::Rows64 => 18432,
            Self::Rows64Up2 => 8192,
            Self::Rows64Pointwise => 2048,
            Self::Pairs32 => 9216,
            Self::Narrow8 => 2304,
        }
    }

    /// The kernel's function in conv_sm90.cu.
    pub(super) const fn function(self) -> &'static str {
        match self {
            Self::Pairs32 => "conv32_sm90",
            Self::Rows64 => "conv64_sm90",
            Self::Rows64Up2 => "conv64up2_sm90",
            Self::Rows64Pointwise => "conv64pw_sm90",
            Self::Narrow8 => "conv8_sm90",
        }
    }

    pub(super) const ALL: [Self; 5] =
        [Self::Pairs32, Self::Rows64, Self::Rows64Up2, Self::Narrow8, Self::Rows64Pointwise];

    /// A 3×3 convolution's weights (`[out][in][3][3]`, `cin` input channels, `cout` outputs that this kernel takes)
    /// as it copies them; input channels beyond `cin` up to the next chunk are zero.
    pub(in crate::native) fn pack(self, weights: &[f32], cin: usize, cout: usize) -> Vec<u16> {
        assert!(cout <= self.rows(), "{cout} outputs for {self:?}");
        let per_chunk = self.chunk_halves();
        let mut a = vec![0u16; self.phases() * cin.div_ceil(CHUNK) * per_chunk];
        let tap = |co: usize, ci: usize, ky: usize, kx: usize| weights[((co * cin + ci) * 3 + ky) * 3 + kx];
        let put = |a: &mut [u16], c: usize, at: usize, w: f32| a[c * per_chunk + at] = half::f16::from_f32(w).to_bits();
        match self {
            Self::Rows64 => each_weight(cin, cout, 3, |co, ci, (c, ks, kh, e), ty, tx| {
                put(&mut a, c, a64(3, co, (ks, kh, e), ty, tx), tap(co, ci, ty, tx))
            }),
            // the centre tap (the caller's outer taps are zero: ConvStep::is_pointwise)
            Self::Rows64Pointwise => each_weight(cin, cout, 1, |co, ci, (c, ks, kh, e), _, _| {
                put(&mut a, c, a64(1, co, (ks, kh, e), 0, 0), tap(co, ci, 1, 1))
            }),
            Self::Rows64Up2 => {
                let per_phase = a.len() / 4;
                for (phase, a) in a.chunks_mut(per_phase).enumerate() {
                    let (py, px) = (phase / 2, phase % 2);
                    // each 2x2 tap sums the 3x3 taps that read the same input pixel
                    let summed = |co, ci, ty, tx| {
                        let cols = phase_taps(px, tx);
                        phase_taps(py, ty)
                            .flat_map(|ky| cols.clone().map(move |kx| (ky, kx)))
                            .map(|(ky, kx)| tap(co, ci, ky, kx))
                            .sum::<f32>()
                    };
                    each_weight(cin, cout, 2, |co, ci, (c, ks, kh, e), ty, tx| {
                        put(a, c, a64(2, co, (ks, kh, e), ty, tx), summed(co, ci, ty, tx))
                    });
                }
            }
            // 12 row groups per K-half slice: W(ky 2) at groups 0-3, W(ky 1) 4-7, W(ky 0) 8-11
            Self::Pairs32 => each_weight(cin, cout, 3, |co, ci, (c, ks, kh, e), ky, kx| {
                let group = (2 - ky) * 4 + co / 8;
                let at = ((((kx * 2 + ks) * 2 + kh) * 12 + group) * 8 + co % 8) * 8 + e;
                put(&mut a, c, at, tap(co, ci, ky, kx))
            }),
            Self::Narrow8 => each_weight(cin, cout, 3, |co, ci, (c, ks, kh, e), ky, kx| {
                let at = ((((ky * 3 + kx) * 2 + ks) * 2 + kh) * 8 + co) * 8 + e;
                put(&mut a, c, at, tap(co, ci, ky, kx))
            }),
        }
        a
    }
}

/// Input channel `ci` as chunk, k-step (16 channels), K-half (8) and element.
pub(super) const fn split(ci: usize) -> (usize, usize, usize, usize) {
    (ci / 32, (ci % 32) / 16, (ci % 16) / 8, ci % 8)
}

/// Calls `f(co, ci, split(ci), ty, tx)` for every weight of `taps × taps` taps.
fn each_weight(
    cin: usize,
    cout: usize,
    taps: usize,
    mut f: impl FnMut(usize, usize, (usize, usize, usize, usize), usize, usize),
) {
    for co in 0..cout {
        for ci in 0..cin {
            for ty in 0..taps {
                for tx in 0..taps {
                    f(co, ci, split(ci), ty, tx);
                }
            }
        }
    }
}

/// Where the Cout-64 A image of a chunk holds output `co`, input (k-step, K-half, element), tap `ty, tx` of
/// `taps × taps`.
const fn a64(taps: usize, co: usize, (ks, kh, e): (usize, usize, usize), ty: usize, tx: usize) -> usize {
    ((((ks * taps * taps + ty * taps + tx) * 2 + kh) * 8 + co / 8) * 8 + co % 8) * 8 + e
}

/// The 3×3 taps (per dimension) that phase `p` of an input upsampled by 2 sums into its 2×2 tap `t`: output pixel
/// `2x + p` reads upsampled pixels `2x + p - 1 ..= 2x + p + 1`, which are input pixels `x - 1 + p + t`.
const fn phase_taps(p: usize, t: usize) -> std::ops::Range<usize> {
    match (p, t) {
        (0, 0) => 0..1,
        (0, _) => 1..3,
        (_, 0) => 0..2,
        _ => 2..3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_matches_the_kernels_layout() {
        // conv_sm90.cu's Layout<COUT, UP>::SMEM (the opt-in limit of sm_90 is 232448)
        let bytes = ConvKernel::ALL.map(ConvKernel::smem_bytes);
        assert_eq!(bytes, [228448, 225392, 217264, 167008, 184624]);
    }

    #[test]
    fn each_convolution_gets_the_kernel_that_takes_it() {
        use ConvKernel::*;
        assert_eq!(ConvKernel::choose(32, 0, (1, false), false), Ok(Pairs32));
        assert_eq!(ConvKernel::choose(3, 0, (1, false), true), Ok(Narrow8));
        assert_eq!(ConvKernel::choose(64, 2, (1, false), false), Ok(Rows64));
        assert_eq!(ConvKernel::choose(64, 0, (2, false), false), Ok(Rows64Up2));
        // 1x1 convolutions of 33-64 outputs take the one-tap kernel, others a 3x3 one with zero outer taps
        assert_eq!(ConvKernel::choose(64, 1, (1, true), false), Ok(Rows64Pointwise));
        assert_eq!(ConvKernel::choose(16, 0, (1, true), false), Ok(Pairs32));
        assert_eq!(ConvKernel::choose(3, 0, (1, true), true), Ok(Narrow8));
        for refused in [(64, 1, 2, false), (32, 0, 2, false), (12, 0, 1, true), (80, 0, 1, false), (32, 1, 1, false)] {
            let (cout, residuals, up, planar) = refused;
            assert!(ConvKernel::choose(cout, residuals, (up, false), planar).is_err(), "{refused:?}");
        }
        assert!(ConvKernel::choose(64, 3, (1, false), false).unwrap_err().contains("3 residuals"));
        assert!(ConvKernel::choose(64, 3, (1, true), false).unwrap_err().contains("3 residuals"));
        assert!(
            ConvKernel::choose(64, 1, (2, false), false).unwrap_err().contains("upsampled by 2 takes no residuals")
        );
        assert!(ConvKernel::choose(64, 0, (3, false), false).unwrap_err().contains("upsampled by 3"));
    }

    #[test]
    fn packed_weights_put_every_tap_once_and_pad_with_zeros() {
        use ConvKernel::*;
        for (cin, cout, kernel) in [
            (64, 32, Pairs32),
            (192, 64, Rows64),
            (3, 64, Rows64),
            (64, 3, Pairs32),
            (96, 48, Rows64),
            (64, 3, Narrow8),
            (40, 8, Narrow8),
        ] {
            let weights: Vec<f32> = (0..cout * cin * 9).map(|i| 1.0 + (i % 1000) as f32 / 1000.0).collect();
            let a = kernel.pack(&weights, cin, cout);
            assert_eq!(a.len(), cin.div_ceil(32) * kernel.chunk_halves());
            let nonzero = a.iter().filter(|&&v| v != 0).count();
            assert_eq!(nonzero, cout * cin * 9, "{cin} -> {cout} ({kernel:?})");
            let sum: f64 = a.iter().map(|&v| half::f16::from_bits(v).to_f64()).sum();
            let expected: f64 = weights.iter().map(|&w| half::f16::from_f32(w).to_f64()).sum();
            assert!((sum - expected).abs() < 1e-6 * expected, "{cin} -> {cout}");
        }
    }

    /// Where `kernel` packs the one non-zero weight (output `co`, input `ci`, tap `ky`, `kx`) of a `cin` → `cout`
    /// convolution.
    fn packed_position(
        kernel: ConvKernel,
        cin: usize,
        cout: usize,
        (co, ci, ky, kx): (usize, usize, usize, usize),
    ) -> Option<usize> {
        let mut weights = vec![0.0f32; cout * cin * 9];
        weights[((co * cin + ci) * 3 + ky) * 3 + kx] = 1.0;
        kernel.pack(&weights, cin, cout).iter().position(|&v| v != 0)
    }

    #[test]
    fn cout64_weights_are_one_k_step_after_the_other() {
        // Cout 64: chunk ci / 32, then k-step, tap, K-half, output channel (the kernel copies one k-step per part)
        let (co, ci, ky, kx) = (45, 83, 2, 1);
        let (c, ks, kh, e) = split(ci);
        let at = c * 18432 + ks * 9216 + (((ky * 3 + kx) * 2 + kh) * 64 + co) * 8 + e;
        assert_eq!(packed_position(ConvKernel::Rows64, 96, 64, (co, ci, ky, kx)), Some(at));
    }

    #[test]
    fn pointwise_weights_are_the_centre_taps_one_k_step_after_the_other() {
        // chunk ci / 32, then k-step, K-half, output channel: Rows64's layout with one tap
        let (co, ci) = (45, 83);
        let (c, ks, kh, e) = split(ci);
        let at = c * 2048 + ks * 1024 + (kh * 64 + co) * 8 + e;
        assert_eq!(packed_position(ConvKernel::Rows64Pointwise, 96, 64, (co, ci, 1, 1)), Some(at));
        let weights: Vec<f32> = (0..64 * 96 * 9).map(|i| if i % 9 == 4 { 1.0 } else { 0.0 }).collect();
        let a = ConvKernel::Rows64Pointwise.pack(&weights, 96, 64);
        assert_eq!(a.len(), 3 * 2048);
        assert!(a.iter().all(|&v| v == half::f16::from_f32(1.0).to_bits()), "every centre tap, no padding");
    }

    #[test]
    fn phase_weights_compute_the_convolution_of_the_upsampled_input() {
        // a 5 x 4 input of 40 channels (two chunks, the second partial) upsampled by 2, then a 3x3 convolution with
        // zero padding to 64 outputs, directly; against the four 2x2 phase convolutions over the input, with the
        // weights read back from the packed images ([phase][chunk][k-step][tap][K-half][co][8])
        let (cin, cout, w, h) = (40usize, 64usize, 5i64, 4i64);
        let value = |i: usize, salt: usize| (((i * 7919 + salt * 104729) % 2003) as f32 / 2003.0 - 0.5) * 0.25;
        let weights: Vec<f32> = (0..cout * cin * 9).map(|i| value(i, 1)).collect();
        let input: Vec<f32> = (0..(w * h) as usize * cin).map(|i| value(i, 2)).collect();
        let at = |x: i64, y: i64, ci: usize| {
            if (0..w).contains(&x) && (0..h).contains(&y) { input[(y * w + x) as usize * cin + ci] } else { 0.0 }
        };
        let a = ConvKernel::Rows64Up2.pack(&weights, cin, cout);
        let per_phase = 2 * ConvKernel::Rows64Up2.chunk_halves();
        assert_eq!(a.len(), 4 * per_phase);
        let packed = |phase: usize, co: usize, ci: usize, tap: usize| {
            let (c, ks, kh, e) = split(ci);
            let i = phase * per_phase + c * 8192 + (((ks * 4 + tap) * 2 + kh) * 64 + co) * 8 + e;
            half::f16::from_bits(a[i]).to_f32()
        };
        let mut worst = 0.0f32;
        for co in [0, 9, 37, 63] {
            for (y2, x2) in (0..2 * h).flat_map(|y| (0..2 * w).map(move |x| (y, x))) {
                let mut direct = 0.0;
                for (ky, kx, ci) in (0..3).flat_map(|ky| (0..3).flat_map(move |kx| (0..cin).map(move |c| (ky, kx, c))))
                {
                    let (uy, ux) = (y2 + ky as i64 - 1, x2 + kx as i64 - 1);
                    let inside = (0..2 * h).contains(&uy) && (0..2 * w).contains(&ux);
                    let v = if inside { at(ux / 2, uy / 2, ci) } else { 0.0 };
                    direct += weights[((co * cin + ci) * 3 + ky) * 3 + kx] * v;
                }
                let (py, px) = ((y2 % 2) as usize, (x2 % 2) as usize);
                let mut phased = 0.0;
                for (ty, tx, ci) in (0..2).flat_map(|ty| (0..2).flat_map(move |tx| (0..cin).map(move |c| (ty, tx, c))))
                {
                    let (sy, sx) = (y2 / 2 - 1 + (py + ty) as i64, x2 / 2 - 1 + (px + tx) as i64);
                    phased += packed(py * 2 + px, co, ci, ty * 2 + tx) * at(sx, sy, ci);
                }
                worst = worst.max((direct - phased).abs());
            }
        }
        // the phase weights are sums of up to four weights, rounded to fp16 once
        assert!(worst < 2e-3, "largest difference {worst}");
        // input channels past cin are zero in every phase
        assert!((cin..64).all(|ci| (0..4).all(|ph| (0..4).all(|t| packed(ph, 5, ci, t) == 0.0))));
    }

    #[test]
    fn row_pair_weights_sit_where_the_kernel_reads_them() {
        // Cout 32: output channel co, input ci, ky, kx in chunk ci / 32, slice (kx, ks, kh), group (2 - ky) * 4 + co / 8
        let (co, ci, ky, kx) = (13, 41, 0, 2);
        let (c, ks, kh, e) = split(ci);
        let at = c * 9216 + ((((kx * 2 + ks) * 2 + kh) * 12 + (2 - ky) * 4 + co / 8) * 8 + co % 8) * 8 + e;
        assert_eq!(packed_position(ConvKernel::Pairs32, 64, 32, (co, ci, ky, kx)), Some(at));
    }

    #[test]
    fn narrow_weights_are_b_per_tap_and_k_step() {
        // Narrow8: chunk ci / 32, then tap, k-step, K-half, output channel, element
        let (co, ci, ky, kx) = (2, 45, 1, 2);
        let (c, ks, kh, e) = split(ci);
        let at = c * 2304 + ((((ky * 3 + kx) * 2 + ks) * 2 + kh) * 8 + co) * 8 + e;
        assert_eq!(packed_position(ConvKernel::Narrow8, 64, 3, (co, ci, ky, kx)), Some(at));
    }
}
