// SPDX-License-Identifier: MPL-2.0
//! Recognising an SRVGGNetCompact graph in an ONNX model and taking its weights out.
//!
//! The network (Real-ESRGAN's `SRVGGNetCompact`): a 3×3 convolution from RGB to F features and an activation,
//! N × [3×3 convolution F → F, activation], a 3×3 convolution F → 3·r², a pixel shuffle by r, plus the input
//! upsampled by r with nearest neighbour; optionally a final cubic resize (the x2 and x3 realesr-animevideov3 files
//! are the x4 network followed by a bicubic downscale). The matcher accepts exactly that graph, node for node, with
//! F = 64, PReLU / LeakyRelu / Relu activations, DepthToSpace in CRD or DCR order, and says why anything else is not
//! it.

use std::collections::HashMap;

use crate::onnx::{AttributeProto, ModelProto, NodeProto, TensorProto, data_type, tensor_f16, tensor_f32};

/// Feature channels the native kernels are built for.
pub const FEATURES: usize = 64;

/// A 3×3 convolution with its activation as a per-channel slope for negative values (1.0: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv3x3 {
    pub out_channels: usize,
    pub in_channels: usize,
    /// ONNX layout `[out][in][3][3]`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub slope: Vec<f32>,
    /// Zero padding on each side: 1 ("same") or 0 ("valid").
    pub padding: usize,
}

/// The final resize of the x2/x3 variants: ONNX Resize, mode cubic, half_pixel, edge samples repeated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CubicResize {
    /// Output size over input size (the same on both axes).
    pub factor: f32,
    /// `cubic_coeff_a`.
    pub a: f32,
}

/// An SRVGGNetCompact network, weights included.
#[derive(Debug, Clone, PartialEq)]
pub struct SrvggGraph {
    pub first: Conv3x3,
    pub hidden: Vec<Conv3x3>,
    /// The last convolution, output channels reordered to CRD (`c·r² + dy·r + dx`).
    pub last: Conv3x3,
    /// Pixel shuffle block size.
    pub shuffle: u32,
    pub resize: Option<CubicResize>,
}

impl SrvggGraph {
    /// The upscale factor of the whole graph.
    pub fn scale(&self) -> f32 {
        self.shuffle as f32 * self.resize.map_or(1.0, |r| r.factor)
    }
}

struct Graph<'m> {
    producers: HashMap<&'m str, &'m NodeProto>,
    consumers: HashMap<&'m str, usize>,
    inits: HashMap<&'m str, &'m TensorProto>,
    input: &'m str,
    used: usize,
}

pub(super) type Match<T> = Result<T, String>;

pub(super) fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_str(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

pub(super) fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

pub(super) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn floats(t: &TensorProto) -> Match<Vec<f32>> {
    match t.data_type {
        data_type::FLOAT => tensor_f32(t),
        data_type::FLOAT16 => tensor_f16(t),
        _ => None,
    }
    .ok_or_else(|| format!("initializer {} is not an inline float tensor", t.name))
}

impl<'m> Graph<'m> {
    fn new(model: &'m ModelProto, input: &'m str) -> Match<Self> {
        let graph = model.graph.as_ref().ok_or("no graph")?;
        let mut producers = HashMap::new();
        let mut consumers: HashMap<&str, usize> = HashMap::new();
        for node in &graph.node {
            for o in &node.output {
                producers.insert(o.as_str(), node);
            }
            for i in &node.input {
                *consumers.entry(i.as_str()).or_default() += 1;
            }
        }
        let inits = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        Ok(Self { producers, consumers, inits, input, used: 0 })
    }

    /// The node producing `value`, which must be `op` (in the default domain) and feed only one node.
    fn node(&mut self, value: &str, op: &str) -> Match<&'m NodeProto> {
        let node = *self.producers.get(value).ok_or_else(|| format!("{value} is not computed by a node"))?;
        if node.op_type != op || !is_default_domain(node) {
            return Err(format!("expected {op} producing {value}, found {}", node.op_type));
        }
        if node.output.len() != 1 {
            return Err(format!("{op} {} has {} outputs", node.name, node.output.len()));
        }
        self.used += 1;
        Ok(node)
    }

    fn producer_is(&self, value: &str, op: &str) -> bool {
        self.producers.get(value).is_some_and(|n| n.op_type == op)
    }

    fn single_use(&self, value: &str) -> Match<()> {
        match self.consumers.get(value).copied().unwrap_or(0) {
            1 => Ok(()),
            n => Err(format!("{value} is used by {n} nodes")),
        }
    }

    fn init(&self, name: &str) -> Match<&'m TensorProto> {
        self.inits.get(name).copied().ok_or_else(|| format!("{name} is not a constant"))
    }

    /// A 3×3, stride 1, padding 1 convolution with bias, reading `input`.
    fn conv(&mut self, value: &str) -> Match<(Conv3x3, &'m str)> {
        let node = self.node(value, "Conv")?;
        let conv = conv3x3(node, |name| self.init(name))?;
        if conv.padding != 1 {
            return Err(format!("Conv {} is not padded by 1", node.name));
        }
        self.single_use(value)?;
        Ok((conv, &node.input[0]))
    }

    /// An activation (PReLU, LeakyRelu, Relu) of a convolution; returns the convolution with its slopes.
    fn activated_conv(&mut self, value: &str) -> Match<(Conv3x3, &'m str)> {
        let Some(op) = ["PRelu", "LeakyRelu", "Relu"].into_iter().find(|op| self.producer_is(value, op)) else {
            return Err(format!("{value} is not computed by PRelu, LeakyRelu or Relu"));
        };
        let node = self.node(value, op)?;
        let conv_out = node.input.first().ok_or_else(|| format!("{op} {} has no input", node.name))?;
        let (mut conv, input) = self.conv(conv_out)?;
        let c = conv.out_channels;
        let slopes = negative_slopes(node, |name| self.init(name))?;
        conv.slope = match slopes.len() {
            1 => vec![slopes[0]; c],
            n if n == c => slopes,
            n => return Err(format!("PRelu {} has {n} slopes for {c} channels", node.name)),
        };
        self.single_use(value)?;
        Ok((conv, input))
    }
}

/// Whether `node` is an operator of the default ONNX domain.
pub(super) fn is_default_domain(node: &NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

/// The negative slopes of activation `node`, its constants found by `init`: PRelu's slope constant (one value or one
/// per channel), LeakyRelu's `alpha` (ONNX's default 0.01), Relu's 0.
pub(super) fn negative_slopes<'m>(node: &NodeProto, init: impl Fn(&str) -> Match<&'m TensorProto>) -> Match<Vec<f32>> {
    match node.op_type.as_str() {
        "PRelu" => floats(init(node.input.get(1).ok_or("PRelu without slope")?)?),
        "LeakyRelu" => Ok(vec![attr(node, "alpha").map_or(0.01, |a| a.f)]),
        "Relu" => Ok(vec![0.0]),
        op => Err(format!("{op} {} is not PRelu, LeakyRelu or Relu", node.name)),
    }
}

/// The 3×3, stride 1, padding 0 or 1 convolution with bias of `node` (a Conv), its constants found by `init`.
pub(super) fn conv3x3<'m>(node: &NodeProto, init: impl Fn(&str) -> Match<&'m TensorProto>) -> Match<Conv3x3> {
    let [_, w, b] = &node.input[..] else {
        return Err(format!("Conv {} has no bias", node.name));
    };
    let wt = init(w)?;
    // channel counts of 1 to 4096: anything else is not a network these kernels (or this check's arithmetic) take
    let dims: Vec<usize> =
        wt.dims.iter().map(|&d| usize::try_from(d).ok().filter(|&d| (1..=4096).contains(&d)).unwrap_or(0)).collect();
    let [out_channels @ 1..=4096, in_channels @ 1..=4096, 3, 3] = dims[..] else {
        return Err(format!("Conv {} weights {:?} are not 3x3 with 1 to 4096 channels", node.name, wt.dims));
    };
    if attr_int(node, "group", 1) != 1
        || attr_ints(node, "strides").unwrap_or(vec![1, 1]) != vec![1, 1]
        || attr_ints(node, "dilations").unwrap_or(vec![1, 1]) != vec![1, 1]
        || attr(node, "kernel_shape").is_some_and(|_| attr_ints(node, "kernel_shape") != Some(vec![3, 3]))
        || attr_str(node, "auto_pad", "NOTSET") != "NOTSET"
    {
        return Err(format!("Conv {} is not a 3x3 convolution with stride 1 and padding 0 or 1", node.name));
    }
    // ONNX's pads default to 0: a Conv without them is unpadded
    let padding = match attr_ints(node, "pads").as_deref() {
        None | Some([0, 0, 0, 0]) => 0,
        Some([1, 1, 1, 1]) => 1,
        Some(p) => return Err(format!("Conv {} pads {p:?}, not 0 or 1 on every side", node.name)),
    };
    let weights = floats(wt)?;
    if weights.len() != out_channels * in_channels * 9 {
        return Err(format!("Conv {} weights hold {} values for dimensions {:?}", node.name, weights.len(), wt.dims));
    }
    let bias = floats(init(b)?)?;
    if bias.len() != out_channels {
        return Err(format!("Conv {} bias has {} values for {out_channels} channels", node.name, bias.len()));
    }
    Ok(Conv3x3 { out_channels, in_channels, weights, bias, slope: vec![1.0; out_channels], padding })
}

/// Whether Resize `node` is a nearest-neighbour resize that, for an integer factor r, takes source pixel
/// `floor(x / r)`.
pub(super) fn is_floor_nearest(node: &NodeProto) -> bool {
    let coordinates = attr_str(node, "coordinate_transformation_mode", "half_pixel");
    let rounding = attr_str(node, "nearest_mode", "round_prefer_floor");
    attr_str(node, "mode", "nearest") == "nearest"
        && ((coordinates == "asymmetric" && rounding == "floor")
            || (coordinates == "half_pixel" && rounding.starts_with("round_prefer")))
}

/// The factor `s` of Resize `node`'s scales `[1, 1, s, s]`, its constants found by `init`.
pub(super) fn resize_factor<'m>(node: &NodeProto, init: impl Fn(&str) -> Match<&'m TensorProto>) -> Match<f32> {
    if node.input.len() > 3 && !node.input[3].is_empty() {
        return Err(format!("Resize {} is given output sizes, not scales", node.name));
    }
    let scales = node.input.get(2).ok_or_else(|| format!("Resize {} has no scales", node.name))?;
    let s = floats(init(scales)?)?;
    match s[..] {
        [1.0, 1.0, y, x] if y == x && y > 0.0 => Ok(y),
        _ => Err(format!("Resize {} scales {s:?} are not [1, 1, s, s]", node.name)),
    }
}

/// Matches `model` (whose image input is `input` and output `output`) against SRVGGNetCompact.
pub fn match_srvgg(model: &ModelProto, input: &str, output: &str) -> Match<SrvggGraph> {
    let mut g = Graph::new(model, input)?;
    let mut value: &str = output;
    if g.producer_is(value, "Identity") {
        value = &g.node(value, "Identity")?.input[0];
    }
    let mut resize = None;
    if g.producer_is(value, "Resize") {
        let node = g.node(value, "Resize")?;
        if attr_str(node, "mode", "nearest") != "cubic"
            || attr_str(node, "coordinate_transformation_mode", "half_pixel") != "half_pixel"
            || attr_int(node, "exclude_outside", 0) != 0
            || attr_int(node, "antialias", 0) != 0
        {
            return Err(format!("final Resize {} is not cubic, half_pixel, without antialiasing", node.name));
        }
        let factor = resize_factor(node, |n| g.init(n))?;
        if !(0.5..=1.0).contains(&factor) {
            return Err(format!("final Resize {} scales by {factor}; the kernels take 0.5 to 1", node.name));
        }
        resize = Some(CubicResize { factor, a: attr(node, "cubic_coeff_a").map_or(-0.75, |a| a.f) });
        value = &node.input[0];
        g.single_use(value)?;
    }
    let add = g.node(value, "Add")?;
    let [x, y] = &add.input[..] else { return Err("Add without two inputs".into()) };
    let (shuffled, upsampled) = if g.producer_is(x, "DepthToSpace") { (x, y) } else { (y, x) };
    g.single_use(shuffled)?;
    g.single_use(upsampled)?;

    // the residual: the input upsampled with nearest neighbour by an integer factor
    let nearest = g.node(upsampled, "Resize")?;
    let r = resize_factor(nearest, |n| g.init(n))?;
    if !is_floor_nearest(nearest) || nearest.input[0] != g.input {
        return Err(format!("Resize {} is not a nearest-neighbour upsampling of the input", nearest.name));
    }

    let shuffle = g.node(shuffled, "DepthToSpace")?;
    let block = attr_int(shuffle, "blocksize", 0);
    if block as f32 != r || !(2..=4).contains(&block) {
        return Err(format!("DepthToSpace block {block} does not match the residual's factor {r} (2 to 4 supported)"));
    }
    let dcr = match attr_str(shuffle, "mode", "DCR").as_str() {
        "CRD" => false,
        "DCR" => true,
        other => return Err(format!("DepthToSpace mode {other}")),
    };
    let (mut last, mut value) = g.conv(&shuffle.input[0])?;
    let rr = (block * block) as usize;
    if last.out_channels != 3 * rr || last.in_channels != FEATURES {
        return Err(format!(
            "last convolution is {} -> {}, expected {FEATURES} -> {}",
            last.in_channels,
            last.out_channels,
            3 * rr
        ));
    }
    if dcr {
        // DCR orders channels (dy, dx, c); the kernels write CRD (c, dy, dx)
        let per_channel = FEATURES * 9;
        let (w, b) = (last.weights.clone(), last.bias.clone());
        for c in 0..3 {
            for k in 0..rr {
                let (crd, dcr) = (c * rr + k, k * 3 + c);
                last.weights[crd * per_channel..(crd + 1) * per_channel]
                    .copy_from_slice(&w[dcr * per_channel..(dcr + 1) * per_channel]);
                last.bias[crd] = b[dcr];
            }
        }
    }

    let mut hidden = Vec::new();
    let first = loop {
        let (conv, input) = g.activated_conv(value)?;
        if input == g.input {
            break conv;
        }
        if conv.in_channels != FEATURES || conv.out_channels != FEATURES {
            return Err(format!(
                "hidden convolution is {} -> {}, expected 64 -> 64",
                conv.in_channels, conv.out_channels
            ));
        }
        hidden.push(conv);
        value = input;
    };
    hidden.reverse();
    if first.in_channels != 3 || first.out_channels != FEATURES {
        return Err(format!("first convolution is {} -> {}, expected 3 -> 64", first.in_channels, first.out_channels));
    }
    let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
    if g.used != nodes {
        return Err(format!("{} of the graph's {nodes} nodes are outside the network", nodes - g.used));
    }
    Ok(SrvggGraph { first, hidden, last, shuffle: block as u32, resize })
}
