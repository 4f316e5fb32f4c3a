// SPDX-License-Identifier: MPL-2.0
//! A network as a short program of fused steps over NHWC buffers, lowered from an ONNX graph: the native engine's
//! form for the dense model families (RRDBNet: realesrgan-x4plus, realesrgan-x4plus-anime), where matching one
//! fixed graph node for node (as [`super::graph`] does for SRVGGNetCompact) would not carry over.
//!
//! Each step is one kernel launch. A 3×3 convolution reads a channel slice of one buffer and writes a channel slice
//! of another, applying in its epilogue `alpha · act(conv + bias) + Σ beta_i · residual_i` — the activation, the
//! constant scales and the residual adds that follow it in the graph. A `Concat` costs nothing: its inputs are
//! written into channel slices of the one buffer that holds the concatenation, so a dense block's growing input is
//! never copied. Buffers are assigned by liveness, so the program says exactly how much device memory it needs.
//!
//! Graphs that pad their input and then shrink it with unpadded ("valid") convolutions (waifu2x UpConv7) keep one
//! buffer size throughout: a buffer may be `margin` pixels larger than `scale ×` the input on each side, every
//! convolution runs as a padded one over the whole buffer, and the pixels it gets wrong near the edges (one more ring
//! per convolution) are the ones a valid convolution would not have computed, which no later step reads.

mod geometry;
mod lower;

use crate::frame::Size;

pub use lower::lower;

/// Where a value lives: channels `offset .. offset + channels` of every pixel of buffer `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slice {
    pub buffer: usize,
    pub offset: usize,
    pub channels: usize,
}

/// A size ratio `num / den` of the model input's (½ for a UNet's lower half, 3/2 for Real-CUGAN up3x's), in lowest
/// terms. The program's sizes are multiples of [`Program::align`], which every `den` divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scale {
    pub num: u32,
    pub den: u32,
}

impl Scale {
    /// `n` times the input.
    pub const fn int(n: u32) -> Self {
        Scale { num: n, den: 1 }
    }

    /// `num / den` in lowest terms (`den > 0`).
    pub fn new(num: u32, den: u32) -> Self {
        let g = gcd(num.into(), den.into()).max(1) as u32;
        Scale { num: num / g, den: den / g }
    }

    /// This scale times `num / den`.
    pub fn times(self, num: u32, den: u32) -> Self {
        Scale::new(self.num * num, self.den * den)
    }

    /// `side · num / den`, exact when `den` divides `side`.
    pub fn of(self, side: u32) -> u32 {
        (side as u64 * self.num as u64 / self.den as u64) as u32
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

/// The greatest common divisor (of the scales here, of the size classes in the lowering's shape arithmetic).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// An NHWC fp16 buffer of `channels` channels per pixel, `scale · side + extra` pixels along each side for an input
/// of that side (`extra` may be odd: a UNet's stride-2 convolution pairs pixels from the tensor's parity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSpec {
    pub channels: usize,
    pub scale: Scale,
    pub extra: u32,
}

impl BufferSpec {
    /// `channels` at `scale` times the input plus `margin` pixels on each side.
    pub const fn new(channels: usize, scale: u32, margin: u32) -> Self {
        BufferSpec { channels, scale: Scale::int(scale), extra: 2 * margin }
    }

    /// Its width and height for an input of `size` (a multiple of the program's `align`).
    pub fn size(&self, size: Size) -> Size {
        Size::new(self.scale.of(size.width) + self.extra, self.scale.of(size.height) + self.extra)
    }
}

/// The activation a convolution's epilogue applies to `conv + bias`, before the scales and residuals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    None,
    /// `max(v, 0) + slope · min(v, 0)` (LeakyRelu; Relu is slope 0).
    Leaky(f32),
}

/// A 3×3, stride 1, padding 1 convolution with its fused epilogue. A 1×1 convolution (Real-CUGAN's stride-2 and
/// transposed 2×2 convolutions, lowered to space-to-depth and depth-to-space around one) is one whose outer taps are
/// all zero ([`ConvStep::is_pointwise`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvStep {
    /// Reads `input.channels` channels (the convolution's input channels).
    pub input: Slice,
    /// Writes `output.channels` channels (its output channels); never a buffer the step reads.
    pub output: Slice,
    /// ONNX layout `[out][in][3][3]`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub activation: Activation,
    /// Scale of the activated convolution.
    pub alpha: f32,
    /// Values added after the scale, each times its factor; slices of `output.channels` channels at the output's
    /// size, in buffers the step does not write. At most [`MAX_RESIDUALS`].
    pub residuals: Vec<(Slice, f32)>,
    /// The input as the convolution reads it is upsampled by this factor (nearest neighbour: pixel `(x, y)` of the
    /// upsampled input is pixel `(x / f, y / f)` of the input), so the output is `upsample` times the input's size;
    /// 1: read as it is. The lowering folds a ×2 upsampling that only one convolution reads into it: on the GPU
    /// that is four 2×2 convolutions over the small image, 4/9 of the work, and no upsampled buffer.
    pub upsample: u32,
}

impl ConvStep {
    /// Whether only the centre tap has weights (a 1×1 convolution).
    pub fn is_pointwise(&self) -> bool {
        self.weights.chunks(9).all(|taps| taps.iter().enumerate().all(|(k, &w)| k == 4 || w == 0.0))
    }
}

/// Residual inputs one convolution's epilogue takes.
pub const MAX_RESIDUALS: usize = 2;

/// One kernel launch.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Conv(ConvStep),
    /// Nearest-neighbour upsampling by an integer `factor` (pixel `(x, y)` of the output is `(x / f, y / f)` of the
    /// input), `input.channels == output.channels`.
    Nearest {
        input: Slice,
        output: Slice,
        factor: u32,
    },
    /// The input with its edge pixels repeated `pad` times on each side (the output buffer is `2 · pad` pixels
    /// larger along each side).
    EdgePad {
        input: Slice,
        output: Slice,
        pad: u32,
    },
    /// Depth to space: output pixel `(shift + f · x + rx, shift + f · y + ry)`, channel `c` is input pixel
    /// `(offset + x, offset + y)`, channel `(ry · f + rx) · C + c` (`C = output.channels`, `input.channels == f² · C`;
    /// `f = 1` is a crop). The output buffer is `f` times the input less `offset` pixels on each side, plus `shift`
    /// on each side that it leaves as they are (so a UNet's upsampled value lands in its skip connection's layout).
    /// With a residual, its pixel `(x + r.offset, y + r.offset)` times `r.beta` is added to output pixel `(x, y)`.
    Shuffle {
        input: Slice,
        output: Slice,
        factor: u32,
        offset: u32,
        shift: u32,
        residual: Option<ShiftedResidual>,
    },
    /// Space to depth by 2 from `offset` pixels in (a 2×2 stride-2 convolution's input, pairing pixels from the
    /// tensor's parity): output pixel `(x, y)`, channel `(dy · 2 + dx) · C + c` is input pixel `(offset + 2x + dx,
    /// offset + 2y + dy)`, channel `c` (`C = input.channels`, `output.channels == 4 · C`); the output is
    /// `floor((size − offset) / 2)` pixels along each side.
    SpaceToDepth {
        input: Slice,
        output: Slice,
        offset: u32,
    },
    /// Squeeze and excitation (Real-CUGAN): `output = input · sigmoid(expand · relu(reduce · mean + reduce_bias) +
    /// expand_bias)` per image and channel, `mean` the input's per-channel mean over its buffer less `inset` pixels on
    /// each side (the tensor); the output at the input's size.
    SqueezeExcite {
        input: Slice,
        output: Slice,
        inset: u32,
        /// `[hidden][channels]` and `[hidden]`.
        reduce: Vec<f32>,
        reduce_bias: Vec<f32>,
        /// `[channels][hidden]` and `[channels]`.
        expand: Vec<f32>,
        expand_bias: Vec<f32>,
    },
}

/// A residual read `offset` pixels further into its buffer along both axes than the pixel it is added to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftedResidual {
    pub slice: Slice,
    pub beta: f32,
    pub offset: u32,
}

/// A lowered network. Buffer [`Program::INPUT`] holds the model input (3 channels, scale 1, written before the
/// first step); `output` is the model output (3 channels at scale `scale`, no extra pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub buffers: Vec<BufferSpec>,
    pub steps: Vec<Step>,
    pub output: Slice,
    /// Output size over input size.
    pub scale: u32,
    /// The input sizes the program runs are multiples of this (the importer's size class: its padding to a
    /// multiple of 2 or 4 is then a constant, and every buffer a whole number of pixels). An engine runs other sizes
    /// as the next multiple with the last row and column repeated and crops the output: the importer's padding of
    /// the smaller size is the same tensor.
    pub align: u32,
}

impl Program {
    /// The buffer of the model input.
    pub const INPUT: usize = 0;

    /// Floating-point operations per input pixel (two per multiply-add), the convolutions only (over the buffers'
    /// margins too, which their share of a large frame makes small): the network's, so a convolution of an
    /// upsampled input counts its 3×3 taps at the output's size (the GPU's phase convolutions do 4/9 of that).
    pub fn flops_per_pixel(&self) -> f64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Conv(c) => {
                    let scale = self.buffers[c.output.buffer].scale;
                    let area = (scale.num as f64 / scale.den as f64).powi(2);
                    2.0 * 9.0 * (c.input.channels * c.output.channels) as f64 * area
                }
                Step::SqueezeExcite { .. }
                | Step::Nearest { .. }
                | Step::EdgePad { .. }
                | Step::Shuffle { .. }
                | Step::SpaceToDepth { .. } => 0.0,
            })
            .sum()
    }

    /// How many convolutions the program runs.
    pub fn convolutions(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Conv(_))).count()
    }
}
