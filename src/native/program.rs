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

/// An NHWC fp16 buffer of `channels` channels per pixel at `scale` times the input's width and height, plus
/// `margin` pixels on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSpec {
    pub channels: usize,
    pub scale: u32,
    pub margin: u32,
}

impl BufferSpec {
    /// Its width and height for an input of `size`.
    pub fn size(&self, size: Size) -> Size {
        let scaled = size.scaled(self.scale);
        Size::new(scaled.width + 2 * self.margin, scaled.height + 2 * self.margin)
    }
}

/// The activation a convolution's epilogue applies to `conv + bias`, before the scales and residuals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    None,
    /// `max(v, 0) + slope · min(v, 0)` (LeakyRelu; Relu is slope 0).
    Leaky(f32),
}

/// A 3×3, stride 1, padding 1 convolution with its fused epilogue.
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
    /// The input with its edge pixels repeated `pad` times on each side (the output buffer's margin is `pad` more).
    EdgePad {
        input: Slice,
        output: Slice,
        pad: u32,
    },
    /// Depth to space from `offset` pixels in: output pixel `(x, y)`, channel `c` is input pixel
    /// `(offset + x / f, offset + y / f)`, channel `((y % f) · f + x % f) · C + c` (`C = output.channels`,
    /// `input.channels == f² · C`); the output is `f` times the input buffer less `offset` on each side.
    Shuffle {
        input: Slice,
        output: Slice,
        factor: u32,
        offset: u32,
    },
}

/// A lowered network. Buffer [`Program::INPUT`] holds the model input (3 channels, scale 1, written before the
/// first step); `output` is the model output (3 channels at scale `scale`).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub buffers: Vec<BufferSpec>,
    pub steps: Vec<Step>,
    pub output: Slice,
    /// Output size over input size.
    pub scale: u32,
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
                    let scale = self.buffers[c.output.buffer].scale as f64;
                    2.0 * 9.0 * (c.input.channels * c.output.channels) as f64 * scale * scale
                }
                Step::Nearest { .. } | Step::EdgePad { .. } | Step::Shuffle { .. } => 0.0,
            })
            .sum()
    }

    /// How many convolutions the program runs.
    pub fn convolutions(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Conv(_))).count()
    }
}
