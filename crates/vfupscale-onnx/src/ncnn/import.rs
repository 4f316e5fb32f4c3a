// SPDX-License-Identifier: MPL-2.0
//! ncnn → ONNX conversion.
//!
//! The ONNX model has one input `input` (`[batch, 3, height, width]`, RGB in 0..=1) and one output `output`
//! (`[batch, 3, scale·height, scale·width]`), dynamic batch and spatial axes, opset [`crate::onnx::OPSET`]. Padding and
//! cropping that the ncnn front ends do around the network become part of the graph (see [`super::Geometry`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::geometry::{Geometry, analyse};
use super::layers::{Activation, BinaryOp, ConvParams, Crop, EltwiseOp, InterpMode, Op};
use super::{Layer, Param, WeightReader};
use crate::error::{Error, Result};
use crate::onnx::precision::{FloatPrecision, convert};
use crate::onnx::{
    Dim, GraphBuilder, META_SCALE, ModelProto, attr_float, attr_int, attr_ints, attr_string, data_type, tensor_info,
};

/// Metadata keys written besides [`META_SCALE`].
pub const META_SOURCE: &str = "vfupscale.source";
pub const META_MIN_SIZE: &str = "vfupscale.min_size";
/// How the network is wrapped: `pad=P alignment=M residue=R crop_offset=C add_input=nearest|none` (see
/// [`Geometry`]): the input is edge-padded by P (plus up to M-1 bottom/right so that the padded size is R mod M),
/// the output cropped from C to scale × the input, and the nearest-upscaled input added when asked.
pub const META_GEOMETRY: &str = "vfupscale.geometry";
/// Revision of the importer's output format; models converted by an older revision are converted again.
pub const META_FORMAT: &str = "vfupscale.format";
pub const FORMAT_REVISION: &str = "3";

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Store weights and IO as float16.
    pub fp16: bool,
    /// Add the nearest-neighbour upscaled input to the network output. Some ncnn files hold only the residual
    /// branch and leave this to their front end (Real-CUGAN up4x: `x += interpolate(input, 4, "nearest")`).
    pub add_input: bool,
}

/// Reads and converts a `.param`/`.bin` pair.
pub fn import_files(param: &Path, bin: &Path, options: &ImportOptions) -> Result<ModelProto> {
    let text = std::fs::read_to_string(param).map_err(|e| Error::io(param, e))?;
    let weights = std::fs::read(bin).map_err(|e| Error::io(bin, e))?;
    let name = param.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    import(&text, &weights, &param.display().to_string(), &bin.display().to_string(), &name, options)
}

/// Converts ncnn text and weights (`*_origin` name them in errors) into an ONNX model named `name`.
pub fn import(
    param_text: &str,
    weights: &[u8],
    param_origin: &str,
    bin_origin: &str,
    name: &str,
    options: &ImportOptions,
) -> Result<ModelProto> {
    let param = Param::parse(param_text, param_origin)?;
    let geometry = analyse(&param)?;
    let mut e = Emitter { g: GraphBuilder::new(), values: HashMap::new(), channels: HashMap::new() };
    e.g.reserve("input")?;
    e.g.reserve("output")?;
    e.g.inputs.push(tensor_info(
        "input",
        data_type::FLOAT,
        &[Dim::Param("batch".into()), Dim::Fixed(3), Dim::Param("height".into()), Dim::Param("width".into())],
    ));
    let (network_input, input_hw) = e.pad_input(&geometry);

    let mut reader = WeightReader::new(weights, bin_origin);
    let mut consumed = HashSet::new();
    let mut inputs_seen = 0;
    for layer in &param.layers {
        let op = Op::parse(layer)?;
        for b in &layer.inputs {
            if !e.values.contains_key(b) {
                return Err(layer.error(format!("input blob {b} is not produced by any earlier layer")));
            }
            consumed.insert(b.as_str());
        }
        if op == Op::Input {
            inputs_seen += 1;
            if inputs_seen > 1 {
                return Err(layer.error("a second Input layer: only single-input models are supported"));
            }
            e.bind(layer, network_input.clone(), Some(3));
            continue;
        }
        e.layer(layer, &op, &mut reader)?;
    }
    reader.finish()?;

    let mut finals: Vec<&str> = param
        .layers
        .iter()
        .flat_map(|l| l.outputs.iter())
        .filter(|b| !consumed.contains(b.as_str()))
        .map(|b| b.as_str())
        .collect();
    finals.dedup_by_key(|b| e.values[*b].clone());
    let [last] = finals[..] else {
        return Err(Error::Import(format!("{param_origin}: expected one output blob, found {finals:?}")));
    };
    match e.channels.get(last) {
        Some(Some(3)) => {}
        other => {
            return Err(Error::Import(format!(
                "{param_origin}: output blob {last} has {} channels, not 3 (RGB)",
                other.and_then(|c| *c).map_or("an unknown number of".into(), |c| c.to_string())
            )));
        }
    }
    let net_out = e.values[last].clone();
    e.crop_output(&geometry, &net_out, &input_hw, options.add_input);
    e.g.outputs.push(tensor_info(
        "output",
        data_type::FLOAT,
        &[Dim::Param("batch".into()), Dim::Fixed(3), Dim::Param("out_height".into()), Dim::Param("out_width".into())],
    ));
    let mut model = e.g.into_model(
        name,
        &[
            (META_SCALE, geometry.scale.to_string()),
            (META_MIN_SIZE, geometry.min_size.to_string()),
            (META_FORMAT, FORMAT_REVISION.to_string()),
            (
                META_GEOMETRY,
                format!(
                    "pad={} alignment={} residue={} crop_offset={} add_input={}",
                    geometry.pad,
                    geometry.alignment,
                    geometry.residue,
                    geometry.crop_offset,
                    if options.add_input { "nearest" } else { "none" }
                ),
            ),
            (
                META_SOURCE,
                format!(
                    "ncnn {}",
                    Path::new(param_origin)
                        .file_name()
                        .map_or(param_origin.into(), |f| f.to_string_lossy().into_owned())
                ),
            ),
        ],
    );
    if options.fp16 {
        convert(&mut model, FloatPrecision::F16)?;
    }
    Ok(model)
}

struct Emitter {
    g: GraphBuilder,
    /// ncnn blob → ONNX value.
    values: HashMap<String, String>,
    /// ncnn blob → channel count, where known.
    channels: HashMap<String, Option<usize>>,
}

impl Emitter {
    fn bind(&mut self, layer: &Layer, value: String, channels: Option<usize>) {
        for o in &layer.outputs {
            self.values.insert(o.clone(), value.clone());
            self.channels.insert(o.clone(), channels);
        }
    }

    fn input(&self, layer: &Layer, i: usize) -> String {
        self.values[&layer.inputs[i]].clone()
    }

    fn input_channels(&self, layer: &Layer, i: usize) -> Option<usize> {
        self.channels.get(&layer.inputs[i]).copied().flatten()
    }

    /// Replicates borders and aligns the input as the geometry requires; returns the network input and the
    /// `[H, W]` of the original input (when it was needed).
    fn pad_input(&mut self, geo: &Geometry) -> (String, Option<String>) {
        if geo.is_identity() {
            return ("input".into(), None);
        }
        let g = &mut self.g;
        let shape = g.op("Shape", "input_shape", &["input"], vec![]);
        let (two, four) = (g.i64_init("two", &[1], &[2]), g.i64_init("four", &[1], &[4]));
        let hw = g.op("Slice", "input_hw", &[&shape, &two, &four], vec![]);
        let (p, m, r) = (geo.pad as i64, geo.alignment as i64, geo.residue as i64);
        let twice_pad = g.i64_init("twice_pad", &[2], &[2 * p, 2 * p]);
        let base = g.op("Add", "padded_hw", &[&hw, &twice_pad], vec![]);
        let residue = g.i64_init("residue", &[2], &[r, r]);
        let alignment = g.i64_init("alignment", &[2], &[m, m]);
        let short = g.op("Sub", "alignment_short", &[&residue, &base], vec![]);
        // ONNX integer Mod takes the divisor's sign (fmod = 0): the extra is in 0..alignment
        let extra = g.op("Mod", "alignment_extra", &[&short, &alignment], vec![]);
        let pad2 = g.i64_init("pad", &[2], &[p, p]);
        let end = g.op("Add", "pad_end", &[&extra, &pad2], vec![]);
        let begin = g.i64_init("pad_begin", &[4], &[0, 0, p, p]);
        let zeros = g.i64_init("pad_nc_end", &[2], &[0, 0]);
        let pads = g.op("Concat", "pads", &[&begin, &zeros, &end], vec![attr_int("axis", 0)]);
        let padded = g.op("Pad", "padded_input", &["input", &pads], vec![attr_string("mode", "edge")]);
        (padded, Some(hw))
    }

    /// Writes the network output, cropped to `scale ×` the original input when the geometry needs it, plus the
    /// nearest-upscaled input when `add_input` is set.
    fn crop_output(&mut self, geo: &Geometry, net_out: &str, input_hw: &Option<String>, add_input: bool) {
        let g = &mut self.g;
        let residual = add_input.then(|| {
            let f = geo.scale as f32;
            let scales = g.f32_init("input_upscale", &[4], &[1.0, 1.0, f, f]);
            let attrs = vec![
                attr_string("mode", "nearest"),
                attr_string("coordinate_transformation_mode", "asymmetric"),
                attr_string("nearest_mode", "floor"),
            ];
            g.op("Resize", "input_nearest", &["input", "", &scales], attrs)
        });
        let cropped_name = if residual.is_some() { g.unique("network_output") } else { "output".to_string() };
        let Some(hw) = input_hw else {
            g.op_into("Identity", &[net_out], &cropped_name, vec![]);
            if let Some(r) = residual {
                g.op_into("Add", &[&cropped_name, &r], "output", vec![]);
            }
            return;
        };
        let s = geo.scale as i64;
        let scale = g.i64_init("scale", &[2], &[s, s]);
        let out_hw = g.op("Mul", "output_hw", &[hw, &scale], vec![]);
        let off = geo.crop_offset as i64;
        let starts = g.i64_init("crop_starts", &[2], &[off, off]);
        let ends = g.op("Add", "crop_ends", &[&out_hw, &starts], vec![]);
        let axes = g.i64_init("crop_axes", &[2], &[2, 3]);
        g.op_into("Slice", &[net_out, &starts, &ends, &axes], &cropped_name, vec![]);
        if let Some(r) = residual {
            g.op_into("Add", &[&cropped_name, &r], "output", vec![]);
        }
    }

    fn activation(&mut self, x: String, act: &Activation, hint: &str) -> String {
        let g = &mut self.g;
        match act {
            Activation::None => x,
            Activation::Relu => g.op("Relu", hint, &[&x], vec![]),
            Activation::LeakyRelu(a) => g.op("LeakyRelu", hint, &[&x], vec![attr_float("alpha", *a)]),
            Activation::Clip(lo, hi) => {
                let lo = g.f32_init("clip_min", &[], &[*lo]);
                let hi = g.f32_init("clip_max", &[], &[*hi]);
                g.op("Clip", hint, &[&x, &lo, &hi], vec![])
            }
            Activation::Sigmoid => g.op("Sigmoid", hint, &[&x], vec![]),
            Activation::Mish => {
                let sp = g.op("Softplus", hint, &[&x], vec![]);
                let t = g.op("Tanh", hint, &[&sp], vec![]);
                g.op("Mul", hint, &[&x, &t], vec![])
            }
            Activation::HardSwish(alpha, beta) => {
                let hs = g.op("HardSigmoid", hint, &[&x], vec![attr_float("alpha", *alpha), attr_float("beta", *beta)]);
                g.op("Mul", hint, &[&x, &hs], vec![])
            }
        }
    }

    fn conv_attrs(p: &ConvParams, deconv: bool) -> Vec<crate::onnx::AttributeProto> {
        let mut attrs = vec![
            attr_ints("kernel_shape", &p.kernel.map(|v| v as i64)),
            attr_ints("strides", &p.stride.map(|v| v as i64)),
            attr_ints("dilations", &p.dilation.map(|v| v as i64)),
            attr_ints("pads", &p.pads.map(|v| v as i64)),
            attr_int("group", p.group as i64),
        ];
        if deconv && p.output_pad != [0, 0] {
            attrs.push(attr_ints("output_padding", &p.output_pad.map(|v| v as i64)));
        }
        attrs
    }

    fn check_channels(layer: &Layer, expected: usize, found: Option<usize>) -> Result<()> {
        match found {
            Some(c) if c != expected => Err(layer.error(format!(
                "weights imply {expected} input channels but the input blob has {c} (inconsistent shapes)"
            ))),
            _ => Ok(()),
        }
    }

    fn layer(&mut self, layer: &Layer, op: &Op, r: &mut WeightReader) -> Result<()> {
        let hint = layer.name.as_str();
        let x = layer.inputs.first().map(|_| self.input(layer, 0)).unwrap_or_default();
        let c_in = layer.inputs.first().and_then(|_| self.input_channels(layer, 0));
        let (value, channels) = match op {
            Op::Input => unreachable!("handled by the caller"),
            Op::Alias => (x, c_in),
            Op::Conv(p) => {
                let (o, i) = (p.num_output, p.num_input());
                Self::check_channels(layer, i, c_in)?;
                let w = r.tagged(layer, "weight", p.weight_size)?;
                let dims = [o as i64, (i / p.group) as i64, p.kernel[0] as i64, p.kernel[1] as i64];
                let w = self.g.f32_init(&format!("{hint}_weight"), &dims, &w);
                let mut inputs = vec![x, w];
                if p.bias {
                    let b = r.raw(layer, "bias", o)?;
                    inputs.push(self.g.f32_init(&format!("{hint}_bias"), &[o as i64], &b));
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let y = self.g.op("Conv", hint, &refs, Self::conv_attrs(p, false));
                (self.activation(y, &p.activation, hint), Some(o))
            }
            Op::Deconv(p) => {
                let (o, i, grp) = (p.num_output, p.num_input(), p.group);
                Self::check_channels(layer, i, c_in)?;
                let w = r.tagged(layer, "weight", p.weight_size)?;
                // ncnn stores [group][out/group][in/group][kh][kw]; ONNX wants [in][out/group][kh][kw]
                let (og, ig, k) = (o / grp, i / grp, p.kernel[0] * p.kernel[1]);
                let mut t = vec![0f32; w.len()];
                for gi in 0..grp {
                    for oo in 0..og {
                        for ii in 0..ig {
                            let src = ((gi * og + oo) * ig + ii) * k;
                            let dst = ((gi * ig + ii) * og + oo) * k;
                            t[dst..dst + k].copy_from_slice(&w[src..src + k]);
                        }
                    }
                }
                let dims = [i as i64, og as i64, p.kernel[0] as i64, p.kernel[1] as i64];
                let w = self.g.f32_init(&format!("{hint}_weight"), &dims, &t);
                let mut inputs = vec![x, w];
                if p.bias {
                    let b = r.raw(layer, "bias", o)?;
                    inputs.push(self.g.f32_init(&format!("{hint}_bias"), &[o as i64], &b));
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let y = self.g.op("ConvTranspose", hint, &refs, Self::conv_attrs(p, true));
                (self.activation(y, &p.activation, hint), Some(o))
            }
            Op::InnerProduct { num_output, bias, weight_size, activation } => {
                let i = weight_size / num_output;
                Self::check_channels(layer, i, c_in)?;
                // on a globally pooled [N, C, 1, 1] blob a fully connected layer is a 1x1 convolution
                let w = r.tagged(layer, "weight", *weight_size)?;
                let w = self.g.f32_init(&format!("{hint}_weight"), &[*num_output as i64, i as i64, 1, 1], &w);
                let mut inputs = vec![x, w];
                if *bias {
                    let b = r.raw(layer, "bias", *num_output)?;
                    inputs.push(self.g.f32_init(&format!("{hint}_bias"), &[*num_output as i64], &b));
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let y = self.g.op("Conv", hint, &refs, vec![attr_ints("kernel_shape", &[1, 1])]);
                (self.activation(y, activation, hint), Some(*num_output))
            }
            Op::PRelu { num_slope } => {
                if *num_slope != 1 {
                    Self::check_channels(layer, *num_slope, c_in)?;
                }
                let s = r.raw(layer, "slope", *num_slope)?;
                let dims: &[i64] = if *num_slope == 1 { &[1] } else { &[*num_slope as i64, 1, 1] };
                let s = self.g.f32_init(&format!("{hint}_slope"), dims, &s);
                (self.g.op("PRelu", hint, &[&x, &s], vec![]), c_in)
            }
            Op::Relu { slope } => {
                let act = if *slope == 0.0 { Activation::Relu } else { Activation::LeakyRelu(*slope) };
                (self.activation(x, &act, hint), c_in)
            }
            Op::Sigmoid => (self.g.op("Sigmoid", hint, &[&x], vec![]), c_in),
            Op::TanH => (self.g.op("Tanh", hint, &[&x], vec![]), c_in),
            Op::Clip { min, max } => (self.activation(x, &Activation::Clip(*min, *max), hint), c_in),
            Op::PixelShuffle { factor } => {
                let r2 = factor * factor;
                if let Some(c) = c_in
                    && c % r2 != 0
                {
                    return Err(layer.error(format!("{c} channels cannot be shuffled by a factor of {factor}")));
                }
                let attrs = vec![attr_int("blocksize", *factor as i64), attr_string("mode", "CRD")];
                (self.g.op("DepthToSpace", hint, &[&x], attrs), c_in.map(|c| c / r2))
            }
            Op::Interp { mode, scale, size, align_corners } => {
                let mut attrs = match mode {
                    InterpMode::Nearest => vec![
                        attr_string("mode", "nearest"),
                        attr_string("coordinate_transformation_mode", "asymmetric"),
                        attr_string("nearest_mode", "floor"),
                    ],
                    InterpMode::Bilinear => vec![attr_string("mode", "linear")],
                    InterpMode::Bicubic => vec![attr_string("mode", "cubic"), attr_float("cubic_coeff_a", -0.75)],
                };
                if *mode != InterpMode::Nearest {
                    let ctm = if *align_corners { "align_corners" } else { "half_pixel" };
                    attrs.push(attr_string("coordinate_transformation_mode", ctm));
                }
                let y = match size {
                    None => {
                        let s = self.g.f32_init(&format!("{hint}_scales"), &[4], &[1.0, 1.0, scale[0], scale[1]]);
                        self.g.op("Resize", hint, &[&x, "", &s], attrs)
                    }
                    Some(hw) => {
                        let shape = self.g.op("Shape", hint, &[&x], vec![]);
                        let (zero, two) = (self.g.i64_init("zero", &[1], &[0]), self.g.i64_init("two", &[1], &[2]));
                        let nc = self.g.op("Slice", hint, &[&shape, &zero, &two], vec![]);
                        let hw = self.g.i64_init(&format!("{hint}_size"), &[2], hw);
                        let sizes = self.g.op("Concat", hint, &[&nc, &hw], vec![attr_int("axis", 0)]);
                        self.g.op("Resize", hint, &[&x, "", "", &sizes], attrs)
                    }
                };
                (y, c_in)
            }
            Op::Binary { op, scalar } => {
                let b = match scalar {
                    Some(v) => self.g.f32_init(&format!("{hint}_b"), &[1], &[*v]),
                    None => self.input(layer, 1),
                };
                let (first, second) = match op {
                    BinaryOp::RSub | BinaryOp::RDiv => (b, x),
                    _ => (x, b),
                };
                let onnx_op = match op {
                    BinaryOp::Add => "Add",
                    BinaryOp::Sub | BinaryOp::RSub => "Sub",
                    BinaryOp::Mul => "Mul",
                    BinaryOp::Div | BinaryOp::RDiv => "Div",
                    BinaryOp::Max => "Max",
                    BinaryOp::Min => "Min",
                    BinaryOp::Pow => "Pow",
                };
                let c = (0..layer.inputs.len()).filter_map(|i| self.input_channels(layer, i)).max();
                (self.g.op(onnx_op, hint, &[&first, &second], vec![]), c)
            }
            Op::Eltwise { op, coeffs } => {
                let mut terms = Vec::new();
                for i in 0..layer.inputs.len() {
                    let v = self.input(layer, i);
                    terms.push(match coeffs.get(i) {
                        Some(&c) if c != 1.0 => {
                            let k = self.g.f32_init(&format!("{hint}_coeff"), &[1], &[c]);
                            self.g.op("Mul", hint, &[&v, &k], vec![])
                        }
                        _ => v,
                    });
                }
                let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
                let y = match op {
                    EltwiseOp::Sum => self.g.op("Sum", hint, &refs, vec![]),
                    EltwiseOp::Max => self.g.op("Max", hint, &refs, vec![]),
                    EltwiseOp::Prod => {
                        let mut acc = terms[0].clone();
                        for t in &terms[1..] {
                            acc = self.g.op("Mul", hint, &[&acc, t], vec![]);
                        }
                        acc
                    }
                };
                (y, c_in)
            }
            Op::Concat { axis } => {
                let onnx_axis = if *axis >= 0 { *axis as i64 + 1 } else { *axis as i64 };
                let vals: Vec<String> = (0..layer.inputs.len()).map(|i| self.input(layer, i)).collect();
                let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
                let c = if onnx_axis == 1 || onnx_axis == -3 {
                    (0..layer.inputs.len()).map(|i| self.input_channels(layer, i)).sum::<Option<usize>>()
                } else {
                    c_in
                };
                (self.g.op("Concat", hint, &refs, vec![attr_int("axis", onnx_axis)]), c)
            }
            Op::Crop(crop) => {
                let y = match crop {
                    Crop::ToReference { offset } => {
                        let reference = self.input(layer, 1);
                        let shape = self.g.op("Shape", hint, &[&reference], vec![]);
                        let (two, four) = (self.g.i64_init("two", &[1], &[2]), self.g.i64_init("four", &[1], &[4]));
                        let hw = self.g.op("Slice", hint, &[&shape, &two, &four], vec![]);
                        let starts = self.g.i64_init(&format!("{hint}_starts"), &[2], offset);
                        let ends = self.g.op("Add", hint, &[&hw, &starts], vec![]);
                        let axes = self.g.i64_init("hw_axes", &[2], &[2, 3]);
                        self.g.op("Slice", hint, &[&x, &starts, &ends, &axes], vec![])
                    }
                    Crop::Offsets { offset, size, end_offset } => {
                        let ends: Vec<i64> = (0..2)
                            .map(|a| match (size[a], end_offset[a]) {
                                (Some(s), _) => offset[a] + s,
                                (None, e) if e > 0 => -e,
                                _ => i64::MAX,
                            })
                            .collect();
                        let starts = self.g.i64_init(&format!("{hint}_starts"), &[2], offset);
                        let ends = self.g.i64_init(&format!("{hint}_ends"), &[2], &ends);
                        let axes = self.g.i64_init("hw_axes", &[2], &[2, 3]);
                        self.g.op("Slice", hint, &[&x, &starts, &ends, &axes], vec![])
                    }
                    Crop::Slices { ranges } => {
                        let mut s = Vec::new();
                        let mut e = Vec::new();
                        let mut a = Vec::new();
                        for (axis, range) in ranges.iter().enumerate() {
                            if let Some((start, end)) = range {
                                s.push(*start);
                                e.push(if *end >= i32::MAX as i64 { i64::MAX } else { *end });
                                a.push(axis as i64 + 2);
                            }
                        }
                        let n = s.len() as i64;
                        let starts = self.g.i64_init(&format!("{hint}_starts"), &[n], &s);
                        let ends = self.g.i64_init(&format!("{hint}_ends"), &[n], &e);
                        let axes = self.g.i64_init(&format!("{hint}_axes"), &[n], &a);
                        self.g.op("Slice", hint, &[&x, &starts, &ends, &axes], vec![])
                    }
                };
                (y, c_in)
            }
            Op::GlobalPool { max } => {
                let onnx_op = if *max { "GlobalMaxPool" } else { "GlobalAveragePool" };
                (self.g.op(onnx_op, hint, &[&x], vec![]), c_in)
            }
            Op::Scale { size, bias } => match size {
                None => {
                    let s = self.input(layer, 1);
                    (self.g.op("Mul", hint, &[&x, &s], vec![]), c_in)
                }
                Some(n) => {
                    Self::check_channels(layer, *n, c_in)?;
                    let s = r.raw(layer, "scale", *n)?;
                    let s = self.g.f32_init(&format!("{hint}_scale"), &[*n as i64, 1, 1], &s);
                    let mut y = self.g.op("Mul", hint, &[&x, &s], vec![]);
                    if *bias {
                        let b = r.raw(layer, "bias", *n)?;
                        let b = self.g.f32_init(&format!("{hint}_bias"), &[*n as i64, 1, 1], &b);
                        y = self.g.op("Add", hint, &[&y, &b], vec![]);
                    }
                    (y, c_in)
                }
            },
        };
        self.bind(layer, value, channels);
        Ok(())
    }
}
