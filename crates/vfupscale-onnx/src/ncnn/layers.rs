// SPDX-License-Identifier: MPL-2.0
//! Typed parameters of the ncnn layer types the importer converts (parameter ids as in ncnn's layer sources).

use super::Layer;
use crate::error::Result;

/// Activation fused into Convolution / Deconvolution / InnerProduct (parameter 9, its arguments in 10).
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    LeakyRelu(f32),
    Clip(f32, f32),
    Sigmoid,
    Mish,
    HardSwish(f32, f32),
}

impl Activation {
    fn parse(layer: &Layer) -> Result<Self> {
        let args = layer.array(10)?;
        let arg = |i: usize, default: f32| args.get(i).copied().unwrap_or(default);
        Ok(match layer.int(9, 0)? {
            0 => Activation::None,
            1 => Activation::Relu,
            2 if arg(0, 0.0) == 0.0 => Activation::Relu,
            2 => Activation::LeakyRelu(arg(0, 0.0)),
            3 => Activation::Clip(arg(0, f32::MIN), arg(1, f32::MAX)),
            4 => Activation::Sigmoid,
            5 => Activation::Mish,
            6 => Activation::HardSwish(arg(0, 0.2), arg(1, 0.5)),
            other => {
                return Err(layer.error(format!("parameter 9 (activation_type) {other} is not supported")));
            }
        })
    }
}

/// Convolution and Deconvolution (and their depthwise variants, through `group`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    pub num_output: usize,
    /// `[height, width]` of kernel, dilation and stride.
    pub kernel: [usize; 2],
    pub dilation: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Deconvolution only: `[bottom, right]` extra output.
    pub output_pad: [usize; 2],
    pub bias: bool,
    pub weight_size: usize,
    pub group: usize,
    pub activation: Activation,
}

impl ConvParams {
    fn parse(layer: &Layer, deconv: bool, depthwise: bool) -> Result<Self> {
        let positive = |id: i32, default: i32| -> Result<usize> {
            let v = layer.int(id, default)?;
            if v <= 0 {
                return Err(layer.error(format!("parameter {id} must be positive, found {v}")));
            }
            Ok(v as usize)
        };
        let non_negative = |id: i32, default: i32| -> Result<usize> {
            let v = layer.int(id, default)?;
            if v < 0 {
                return Err(
                    layer.error(format!("parameter {id} is {v}: automatic (\"same\") padding is not supported"))
                );
            }
            Ok(v as usize)
        };
        let kw = positive(1, 0)?;
        let dw = positive(2, 1)?;
        let sw = positive(3, 1)?;
        let pad_left = non_negative(4, 0)?;
        let pad_top = non_negative(14, pad_left as i32)?;
        let out_pad_right = if deconv { non_negative(18, 0)? } else { 0 };
        if deconv && (layer.int(20, 0)? > 0 || layer.int(21, 0)? > 0) {
            return Err(layer.error("fixed output size (parameters 20/21) is not supported"));
        }
        if layer.int(8, 0)? != 0 {
            return Err(layer.error("int8 quantised weights (parameter 8) are not supported"));
        }
        let params = ConvParams {
            num_output: positive(0, 0)?,
            kernel: [positive(11, kw as i32)?, kw],
            dilation: [positive(12, dw as i32)?, dw],
            stride: [positive(13, sw as i32)?, sw],
            pads: [pad_top, pad_left, non_negative(16, pad_top as i32)?, non_negative(15, pad_left as i32)?],
            output_pad: [if deconv { non_negative(19, out_pad_right as i32)? } else { 0 }, out_pad_right],
            bias: layer.int(5, 0)? != 0,
            weight_size: positive(6, 0)?,
            group: if depthwise { positive(7, 1)? } else { 1 },
            activation: Activation::parse(layer)?,
        };
        let per_group_kernel = params.num_output * params.kernel[0] * params.kernel[1] / params.group;
        if per_group_kernel == 0
            || !params.weight_size.is_multiple_of(per_group_kernel)
            || !params.num_output.is_multiple_of(params.group)
        {
            return Err(layer.error(format!(
                "weight_data_size {} does not fit {} outputs of {}x{} kernels in {} groups",
                params.weight_size, params.num_output, params.kernel[0], params.kernel[1], params.group
            )));
        }
        Ok(params)
    }

    /// Input channels implied by the weight size.
    pub fn num_input(&self) -> usize {
        self.weight_size * self.group / (self.num_output * self.kernel[0] * self.kernel[1])
    }

    /// Output size along `axis` (0: height, 1: width) for input size `n` and whether the stride divided it exactly
    /// (ncnn floors, as ONNX does); `None` when the input is too small.
    pub fn out_size(&self, axis: usize, n: i64, deconv: bool) -> Option<(i64, bool)> {
        let extent = (self.dilation[axis] * (self.kernel[axis] - 1) + 1) as i64;
        let (pad_a, pad_b) = (self.pads[axis] as i64, self.pads[axis + 2] as i64);
        let s = self.stride[axis] as i64;
        if deconv {
            let out = (n - 1) * s + extent + self.output_pad[axis] as i64 - pad_a - pad_b;
            (n >= 1 && out >= 1).then_some((out, true))
        } else {
            let span = n + pad_a + pad_b - extent;
            (span >= 0).then_some((span / s + 1, span % s == 0))
        }
    }
}

/// Crop: by a reference blob, by offsets with fixed or trailing sizes, or by start/end/axis arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum Crop {
    /// Two inputs: crop the first at `[h, w]` offsets to the spatial size of the second.
    ToReference { offset: [i64; 2] },
    /// Offsets, and per axis either a fixed size or a count dropped at the end: `[h, w]`.
    Offsets { offset: [i64; 2], size: [Option<i64>; 2], end_offset: [i64; 2] },
    /// Python-style slices on spatial axes `[h, w]` (`None`: untouched).
    Slices { ranges: [Option<(i64, i64)>; 2] },
}

/// Resize mode of Interp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InterpMode {
    Nearest,
    Bilinear,
    Bicubic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    RSub,
    RDiv,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EltwiseOp {
    Prod,
    Sum,
    Max,
}

/// A layer with its parameters checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Input,
    /// Split, Noop, Dropout: outputs alias the input.
    Alias,
    Conv(ConvParams),
    Deconv(ConvParams),
    InnerProduct {
        num_output: usize,
        bias: bool,
        weight_size: usize,
        activation: Activation,
    },
    PRelu {
        num_slope: usize,
    },
    Relu {
        slope: f32,
    },
    Sigmoid,
    TanH,
    Clip {
        min: f32,
        max: f32,
    },
    PixelShuffle {
        factor: usize,
    },
    Interp {
        mode: InterpMode,
        scale: [f32; 2],
        size: Option<[i64; 2]>,
        align_corners: bool,
    },
    Binary {
        op: BinaryOp,
        scalar: Option<f32>,
    },
    Eltwise {
        op: EltwiseOp,
        coeffs: Vec<f32>,
    },
    Concat {
        axis: i32,
    },
    Crop(Crop),
    GlobalPool {
        max: bool,
    },
    /// Per-channel multiply by weights (`size` of them) or, with two inputs, by the second blob.
    Scale {
        size: Option<usize>,
        bias: bool,
    },
}

impl Op {
    pub fn parse(layer: &Layer) -> Result<Op> {
        let arity = |n_in: usize| -> Result<()> {
            if layer.inputs.len() != n_in || layer.outputs.len() != 1 {
                return Err(layer.error(format!(
                    "expected {n_in} input(s) and 1 output, found {} and {}",
                    layer.inputs.len(),
                    layer.outputs.len()
                )));
            }
            Ok(())
        };
        let op = match layer.kind.as_str() {
            "Input" => {
                if !layer.inputs.is_empty() || layer.outputs.len() != 1 {
                    return Err(layer.error("expected no input and 1 output"));
                }
                let c = layer.int(2, 0)?;
                if c != 0 && c != 3 {
                    return Err(layer.error(format!("declares {c} channels; only RGB (3) models are supported")));
                }
                Op::Input
            }
            "Split" | "Noop" | "Dropout" => {
                if layer.inputs.len() != 1 || layer.outputs.is_empty() {
                    return Err(layer.error("expected 1 input"));
                }
                Op::Alias
            }
            "Convolution" | "ConvolutionDepthWise" => {
                arity(1)?;
                Op::Conv(ConvParams::parse(layer, false, layer.kind == "ConvolutionDepthWise")?)
            }
            "Deconvolution" | "DeconvolutionDepthWise" => {
                arity(1)?;
                Op::Deconv(ConvParams::parse(layer, true, layer.kind == "DeconvolutionDepthWise")?)
            }
            "InnerProduct" => {
                arity(1)?;
                if layer.int(8, 0)? != 0 {
                    return Err(layer.error("int8 quantised weights (parameter 8) are not supported"));
                }
                let num_output = layer.int(0, 0)?;
                let weight_size = layer.int(2, 0)?;
                if num_output <= 0 || weight_size <= 0 || weight_size % num_output != 0 {
                    return Err(
                        layer.error(format!("weight_data_size {weight_size} does not fit {num_output} outputs"))
                    );
                }
                Op::InnerProduct {
                    num_output: num_output as usize,
                    bias: layer.int(1, 0)? != 0,
                    weight_size: weight_size as usize,
                    activation: Activation::parse(layer)?,
                }
            }
            "PReLU" => {
                arity(1)?;
                let n = layer.int(0, 0)?;
                if n <= 0 {
                    return Err(layer.error(format!("parameter 0 (num_slope) must be positive, found {n}")));
                }
                Op::PRelu { num_slope: n as usize }
            }
            "ReLU" => {
                arity(1)?;
                Op::Relu { slope: layer.float(0, 0.0)? }
            }
            "Sigmoid" => {
                arity(1)?;
                Op::Sigmoid
            }
            "TanH" => {
                arity(1)?;
                Op::TanH
            }
            "Clip" => {
                arity(1)?;
                Op::Clip { min: layer.float(0, f32::MIN)?, max: layer.float(1, f32::MAX)? }
            }
            "PixelShuffle" => {
                arity(1)?;
                let mode = layer.int(1, 0)?;
                if mode != 0 {
                    return Err(layer.error(format!("parameter 1 (mode) {mode} is not supported, only 0 (CRD)")));
                }
                let factor = layer.int(0, 1)?;
                if factor <= 0 {
                    return Err(layer.error(format!("parameter 0 (upscale_factor) must be positive, found {factor}")));
                }
                Op::PixelShuffle { factor: factor as usize }
            }
            "Interp" => {
                arity(1)?;
                let mode = match layer.int(0, 0)? {
                    1 => InterpMode::Nearest,
                    2 => InterpMode::Bilinear,
                    3 => InterpMode::Bicubic,
                    other => {
                        return Err(layer.error(format!("parameter 0 (resize_type) {other} is not supported")));
                    }
                };
                if layer.int(5, 0)? != 0 {
                    return Err(layer.error("parameter 5 (dynamic_target_size) is not supported"));
                }
                let (oh, ow) = (layer.int(3, 0)?, layer.int(4, 0)?);
                let scale = [layer.float(1, 1.0)?, layer.float(2, 1.0)?];
                if (oh <= 0 || ow <= 0) && (scale[0] <= 0.0 || scale[1] <= 0.0) {
                    return Err(layer.error(format!("needs positive scales or an output size, found {scale:?}")));
                }
                Op::Interp {
                    mode,
                    scale,
                    size: (oh > 0 && ow > 0).then_some([oh as i64, ow as i64]),
                    align_corners: layer.int(6, 0)? != 0,
                }
            }
            "BinaryOp" => {
                let scalar = layer.int(1, 0)? != 0;
                arity(if scalar { 1 } else { 2 })?;
                let op = match layer.int(0, 0)? {
                    0 => BinaryOp::Add,
                    1 => BinaryOp::Sub,
                    2 => BinaryOp::Mul,
                    3 => BinaryOp::Div,
                    4 => BinaryOp::Max,
                    5 => BinaryOp::Min,
                    6 => BinaryOp::Pow,
                    7 => BinaryOp::RSub,
                    8 => BinaryOp::RDiv,
                    other => {
                        return Err(layer.error(format!("parameter 0 (op_type) {other} is not supported")));
                    }
                };
                Op::Binary { op, scalar: if scalar { Some(layer.float(2, 0.0)?) } else { None } }
            }
            "Eltwise" => {
                if layer.inputs.len() < 2 || layer.outputs.len() != 1 {
                    return Err(layer.error("expected at least 2 inputs and 1 output"));
                }
                let op = match layer.int(0, 0)? {
                    0 => EltwiseOp::Prod,
                    1 => EltwiseOp::Sum,
                    2 => EltwiseOp::Max,
                    other => {
                        return Err(layer.error(format!("parameter 0 (op_type) {other} is not supported")));
                    }
                };
                let coeffs = layer.array(1)?;
                if !coeffs.is_empty() && (coeffs.len() != layer.inputs.len() || op != EltwiseOp::Sum) {
                    return Err(layer.error(format!(
                        "parameter 1 (coeffs) has {} values for {} inputs",
                        coeffs.len(),
                        layer.inputs.len()
                    )));
                }
                Op::Eltwise { op, coeffs }
            }
            "Concat" => {
                if layer.inputs.is_empty() || layer.outputs.len() != 1 {
                    return Err(layer.error("expected inputs and 1 output"));
                }
                Op::Concat { axis: layer.int(0, 0)? }
            }
            "Crop" => Op::Crop(parse_crop(layer)?),
            "Pooling" => {
                arity(1)?;
                if layer.int(4, 0)? == 0 {
                    return Err(layer.error("only global pooling (parameter 4 = 1) is supported"));
                }
                match layer.int(0, 0)? {
                    0 => Op::GlobalPool { max: true },
                    1 => Op::GlobalPool { max: false },
                    other => {
                        return Err(layer.error(format!("parameter 0 (pooling_type) {other} is not supported")));
                    }
                }
            }
            "Scale" => {
                let size = layer.int(0, 0)?;
                if size == -233 {
                    arity(2)?;
                    Op::Scale { size: None, bias: layer.int(1, 0)? != 0 }
                } else {
                    arity(1)?;
                    if size <= 0 {
                        return Err(
                            layer.error(format!("parameter 0 (scale_data_size) must be positive, found {size}"))
                        );
                    }
                    Op::Scale { size: Some(size as usize), bias: layer.int(1, 0)? != 0 }
                }
            }
            other => return Err(layer.error(format!("unsupported layer type {other}"))),
        };
        if let Op::Scale { size: None, bias: true } = op {
            return Err(layer.error("a bias with a blob-provided scale is not supported"));
        }
        Ok(op)
    }
}

fn parse_crop(layer: &Layer) -> Result<Crop> {
    if layer.outputs.len() != 1 || layer.inputs.is_empty() || layer.inputs.len() > 2 {
        return Err(layer.error("expected 1 or 2 inputs and 1 output"));
    }
    // channels must stay whole: no channel offsets, and an output channel count of "all" (0 or -233)
    if layer.int(2, 0)? != 0 || ![0, -233].contains(&layer.int(5, 0)?) || layer.int(8, 0)? != 0 {
        return Err(layer.error("cropping channels is not supported"));
    }
    let offset = [layer.int(1, 0)? as i64, layer.int(0, 0)? as i64];
    if layer.inputs.len() == 2 {
        return Ok(Crop::ToReference { offset });
    }
    let starts = layer.int_array(9)?;
    if !starts.is_empty() {
        let ends = layer.int_array(10)?;
        let axes = layer.int_array(11)?;
        if ends.len() != starts.len() || (!axes.is_empty() && axes.len() != starts.len()) {
            return Err(layer.error("parameters 9/10/11 (starts/ends/axes) differ in length"));
        }
        let mut ranges = [None; 2];
        for (i, (&s, &e)) in starts.iter().zip(&ends).enumerate() {
            // ncnn axes count from the channel axis of a 3-D blob: 0 = c, 1 = h, 2 = w (or -3, -2, -1)
            let axis = axes.get(i).copied().unwrap_or(i as i32);
            let spatial = match axis {
                1 | -2 => 0,
                2 | -1 => 1,
                _ => {
                    return Err(layer.error(format!("cropping axis {axis} is not supported (only h and w)")));
                }
            };
            ranges[spatial] = Some((s as i64, e as i64));
        }
        return Ok(Crop::Slices { ranges });
    }
    // outh/outw: a positive fixed size, or 0 / -233 for "what the offsets leave"
    let size = [layer.int(4, 0)?, layer.int(3, 0)?].map(|v| (v > 0).then_some(v as i64));
    let end_offset = [layer.int(7, 0)? as i64, layer.int(6, 0)? as i64];
    Ok(Crop::Offsets { offset, size, end_offset })
}

/// Resolves a Python-style slice `start..end` (negative counts from the end) on an axis of length `n`.
pub fn resolve_slice(start: i64, end: i64, n: i64) -> Option<(i64, i64)> {
    let start = if start < 0 { n + start } else { start };
    let end = if end < 0 { n + end } else { end.min(n) };
    (0 <= start && start < end && end <= n).then_some((start, end))
}
