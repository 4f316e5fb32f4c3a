// SPDX-License-Identifier: MPL-2.0
//! Lowering an ONNX graph into a [`Program`]: the nodes the dense families are made of (3×3 convolutions, their
//! activations, constant scales and residual adds, channel concatenations, nearest upsampling, Identity), those of
//! waifu2x UpConv7 (its importer's edge padding, unpadded convolutions, a 4×4 stride-2 transposed convolution and the
//! final crop, with the shape arithmetic that computes them: [`super::geometry`]), and a clear refusal naming the
//! node for anything else.
//!
//! Four passes:
//! 1. **Chains.** Each Conv absorbs the single-use nodes after it that its epilogue computes: one activation right
//!    after it (LeakyRelu, Relu, a scalar PRelu), `Mul` by a scalar constant (scaling what came before), `Add`/`Sum`
//!    with other values (residuals, up to [`MAX_RESIDUALS`]). The step is emitted where the chain ends, so every
//!    residual has been computed by then (ONNX nodes are in topological order). Then a ×2 nearest upsampling that
//!    one convolution alone reads is folded into that convolution ([`ConvStep::upsample`], `fuse`).
//! 2. **Concat layout.** Concatenations only place values: every input sits at a channel offset of the output. The
//!    constraints are solved with a union-find with offsets, so a dense block's prefix concatenations
//!    (`[x, x1]`, `[x, x1, x2]`, …) become slices of one buffer, and every value is written once where all its readers
//!    find it. Conflicting placements (a value at two offsets of one buffer, two values over the same channels) are
//!    refused.
//! 3. **Liveness.** A group of values lives from the first step writing into it to the last step reading or writing
//!    it (a value nothing reads may still be written late); groups of the same shape reuse a buffer once it is dead.
//!    A step's outputs are placed before its inputs are released, so a step never writes over what it reads.
//! 4. **Steps** over the buffers' slices.
use std::collections::{HashMap, HashSet};

mod fuse;
mod padded;
mod unet;

use super::geometry::{Affine, Shapes};
use super::{Activation, BufferSpec, ConvStep, MAX_RESIDUALS, Program, Scale, ShiftedResidual, Slice, Step};
use crate::native::graph::{
    Match, attr, attr_int, attr_ints, conv3x3, floats, is_default_domain, is_floor_nearest, negative_slopes,
    resize_factor,
};
use crate::onnx::{GraphProto, ModelProto, NodeProto, TensorProto};

/// A value of the graph: an NCHW tensor with `channels` channels, held in a buffer of `scale · side + extra` pixels
/// along each side; the tensor is that buffer less `inset` pixels on each side (each unpadded convolution adds one:
/// the ring it would not compute).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    channels: usize,
    scale: Scale,
    extra: u32,
    inset: u32,
}

impl Value {
    fn image(channels: usize, scale: Scale) -> Self {
        Value { channels, scale, extra: 0, inset: 0 }
    }

    fn same_geometry(&self, o: &Value) -> bool {
        (self.scale, self.extra, self.inset) == (o.scale, o.extra, o.inset)
    }

    /// The tensor's side less `scale ·` the input's: `extra - 2 · inset`.
    fn room(&self) -> i64 {
        i64::from(self.extra) - 2 * i64::from(self.inset)
    }

    /// Whether the tensor and `o`'s are the same size (whatever their buffers).
    fn same_size(&self, o: &Value) -> bool {
        (self.scale, self.room()) == (o.scale, o.room())
    }
}

/// A step over value ids, before values are placed in buffers.
enum Op {
    Conv { input: usize, output: usize, conv: Box<FusedConv> },
    Nearest { input: usize, output: usize, factor: u32 },
    EdgePad { input: usize, output: usize, pad: u32 },
    Shuffle { input: usize, output: usize, factor: u32, offset: u32, shift: u32, residual: Option<(usize, f32, u32)> },
    SpaceToDepth { input: usize, output: usize, offset: u32 },
    SqueezeExcite { input: usize, output: usize, excite: Box<Excite> },
}

/// A squeeze-and-excitation block's pooling window and weights ([`Step::SqueezeExcite`]).
struct Excite {
    inset: u32,
    reduce: Vec<f32>,
    reduce_bias: Vec<f32>,
    expand: Vec<f32>,
    expand_bias: Vec<f32>,
}

impl Op {
    /// The values the op reads.
    fn reads(&self) -> Vec<usize> {
        match self {
            Op::Conv { input, conv, .. } => std::iter::once(*input).chain(conv.residuals.iter().map(|r| r.0)).collect(),
            Op::Shuffle { input, residual, .. } => std::iter::once(*input).chain(residual.map(|r| r.0)).collect(),
            Op::Nearest { input, .. }
            | Op::EdgePad { input, .. }
            | Op::SpaceToDepth { input, .. }
            | Op::SqueezeExcite { input, .. } => vec![*input],
        }
    }

    /// The value the op writes.
    fn writes(&self) -> usize {
        match self {
            Op::Conv { output, .. }
            | Op::Nearest { output, .. }
            | Op::EdgePad { output, .. }
            | Op::Shuffle { output, .. }
            | Op::SpaceToDepth { output, .. }
            | Op::SqueezeExcite { output, .. } => *output,
        }
    }
}

/// A convolution with what its epilogue computes; residuals as value ids.
struct FusedConv {
    weights: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
    alpha: f32,
    residuals: Vec<(usize, f32)>,
    /// Its input is read upsampled by this factor ([`ConvStep::upsample`]).
    upsample: u32,
}

impl FusedConv {
    /// A convolution with its chain's activation and scale, without residuals (the callers place those).
    fn chained(weights: Vec<f32>, bias: Vec<f32>, chain: &Chain<'_>) -> Box<Self> {
        Box::new(FusedConv {
            weights,
            bias,
            activation: chain.activation,
            alpha: chain.alpha,
            residuals: Vec::new(),
            upsample: 1,
        })
    }
}

/// What pass 1 found after one Conv: the nodes its epilogue takes over and what they compute, residuals by name.
struct Chain<'m> {
    /// Node indices after the Conv; the last one's output is the chain's value.
    absorbed: Vec<usize>,
    activation: Activation,
    alpha: f32,
    residuals: Vec<(&'m str, f32)>,
}

struct Lowering<'m> {
    nodes: &'m [NodeProto],
    inits: HashMap<&'m str, &'m TensorProto>,
    /// Per value name, the nodes reading it (a graph output counts as a reader, `usize::MAX`).
    readers: HashMap<&'m str, Vec<usize>>,
    /// Value names to ids (Identity outputs share their input's id).
    ids: HashMap<&'m str, usize>,
    values: Vec<Value>,
    /// Per value id, its name (for messages).
    names: Vec<&'m str>,
    ops: Vec<Op>,
    /// `(member, concat, offset)`: value `member` sits at channel `offset` of value `concat`.
    placements: Vec<(usize, usize, usize)>,
    /// The shape arithmetic's values.
    shapes: Shapes<'m>,
}

const GRAPH_OUTPUT: usize = usize::MAX;

/// The largest output size over input size a program may reach.
const MAX_SCALE: u32 = 16;

/// `scale · num / den`, if it stays within [`MAX_SCALE`].
fn scaled(scale: Scale, num: u32, den: u32) -> Option<Scale> {
    let s = scale.times(num, den);
    (s.num <= MAX_SCALE * s.den).then_some(s)
}

impl<'m> Lowering<'m> {
    fn init(&self, name: &str) -> Match<&'m TensorProto> {
        self.inits.get(name).copied().ok_or_else(|| format!("{name} is not a constant"))
    }

    fn id(&self, name: &str, node: &NodeProto) -> Match<usize> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| format!("{} {} reads {name}, which is not an image value", node.op_type, node.name))
    }

    fn define(&mut self, name: &'m str, value: Value) -> usize {
        let id = self.define_hidden(name, value);
        self.ids.insert(name, id);
        id
    }

    /// A value no node names (a transposed convolution's phases), `name` for messages.
    fn define_hidden(&mut self, name: &'m str, value: Value) -> usize {
        self.values.push(value);
        self.names.push(name);
        self.values.len() - 1
    }

    /// The one node reading `value`, if exactly one does (and it is not the graph output).
    fn only_reader(&self, value: &str) -> Option<usize> {
        match self.readers.get(value).map(Vec::as_slice) {
            Some([r]) if *r != GRAPH_OUTPUT => Some(*r),
            _ => None,
        }
    }

    /// The value that `v` is a crop of (through any chain of crops, which alias their input at offset 0): the one
    /// a step wrote.
    fn written_value(&self, v: usize) -> usize {
        let mut written = v;
        while let Some(&(_, base, _)) = self.placements.iter().find(|&&(m, c, o)| m == written && o == 0 && c != m) {
            written = base;
        }
        written
    }

    /// Whether exactly one node (or the graph output) reads the value named `name`.
    fn read_once(&self, name: &str) -> bool {
        self.readers.get(name).is_some_and(|r| r.len() == 1)
    }

    /// The one node reading `value`'s pixels, if exactly one does and it is not the graph output: a `Shape` reads
    /// only its size, which the chain's epilogue keeps ([`Self::size_of`] follows it through the chain).
    fn only_pixel_reader(&self, value: &str) -> Option<usize> {
        let readers = self.readers.get(value)?;
        let mut pixels = readers.iter().filter(|&&r| r == GRAPH_OUTPUT || self.nodes[r].op_type != "Shape");
        match (pixels.next(), pixels.next()) {
            (Some(&r), None) if r != GRAPH_OUTPUT => Some(r),
            _ => None,
        }
    }

    /// The size of `name`'s tensor along each side, `scale · side + room`: its value's where it has one, else
    /// followed from one that has through the nodes that keep the size (activations, scales, sums) and unit-stride
    /// convolutions and transposed convolutions (waifu2x CUNet's crops take the size of a value a chain absorbed).
    fn size_of(&self, name: &str) -> Option<(Scale, i64)> {
        if let Some(&id) = self.ids.get(name) {
            let v = self.values[id];
            return Some((v.scale, v.room()));
        }
        let node = self.nodes.iter().find(|n| n.output[0] == name)?;
        match node.op_type.as_str() {
            "LeakyRelu" | "Relu" | "PRelu" | "Sigmoid" | "Mul" | "Add" | "Sum" => self.size_of(&node.input[0]),
            op @ ("Conv" | "ConvTranspose") => {
                let (scale, room) = self.size_of(&node.input[0])?;
                let ints = |a: &str, default: i64| attr_ints(node, a).unwrap_or_else(|| vec![default; 2]);
                let (k, s, d) = (attr_ints(node, "kernel_shape")?, ints("strides", 1), ints("dilations", 1));
                let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
                let square = |v: &[i64]| v.len() == 2 && v[0] == v[1];
                let pads_even = pads.len() == 4 && pads[0] == pads[1] && pads[2] == pads[3] && pads[0] == pads[2];
                if !square(&k) || !square(&s) || d != [1, 1] || !pads_even || attr_int(node, "group", 1) != 1 {
                    return None;
                }
                let (k, s, p) = (k[0], s[0], 2 * pads[0]);
                match op {
                    "Conv" if s == 1 => Some((scale, room + p - k + 1)),
                    "ConvTranspose" if attr(node, "output_padding").is_none() => {
                        let scale = scaled(scale, u32::try_from(s).ok()?, 1)?;
                        Some((scale, s * room - s + k - p))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A scalar constant input of `node` other than `value`, if that is what its other input is.
    fn scalar_operand(&self, node: &NodeProto, value: &str) -> Option<f32> {
        let [a, b] = &node.input[..] else { return None };
        let other = if a == value { b } else { a };
        let t = self.init(other).ok()?;
        match floats(t).ok()?[..] {
            [c] => Some(c),
            _ => None,
        }
    }

    /// Pass 1 for the Conv at `start`: the nodes its epilogue takes over, and what they compute.
    fn chain(&self, start: usize, taken: &HashSet<usize>) -> Chain<'m> {
        let mut c = Chain { absorbed: Vec::new(), activation: Activation::None, alpha: 1.0, residuals: Vec::new() };
        let mut value: &str = &self.nodes[start].output[0];
        while let Some(next) = self.only_pixel_reader(value).filter(|n| !taken.contains(n)) {
            let node: &'m NodeProto = &self.nodes[next];
            if !is_default_domain(node) {
                break;
            }
            // an activation only right after the convolution: the epilogue applies it before scales and sums
            let first = c.absorbed.is_empty();
            match node.op_type.as_str() {
                "LeakyRelu" | "Relu" | "PRelu" if first && node.input[0] == value => {
                    match negative_slopes(node, |n| self.init(n)).as_deref() {
                        Ok(&[slope]) => c.activation = Activation::Leaky(slope),
                        _ => break,
                    }
                }
                "Mul" => match self.scalar_operand(node, value) {
                    Some(k) => {
                        c.alpha *= k;
                        c.residuals.iter_mut().for_each(|(_, beta)| *beta *= k);
                    }
                    None => break,
                },
                "Add" | "Sum" => {
                    let others: Vec<&'m str> = node.input.iter().filter(|i| *i != value).map(String::as_str).collect();
                    if others.len() + 1 != node.input.len() || c.residuals.len() + others.len() > MAX_RESIDUALS {
                        break;
                    }
                    c.residuals.extend(others.into_iter().map(|o| (o, 1.0)));
                }
                _ => break,
            }
            c.absorbed.push(next);
            value = &node.output[0];
        }
        c
    }

    /// Emits the Conv at `start` with its chain, where the chain ends: every value it reads exists by then.
    fn conv(&mut self, start: usize, chain: Chain<'m>) -> Match<()> {
        let node: &'m NodeProto = &self.nodes[start];
        let conv = conv3x3(node, |n| self.init(n))?;
        let input = self.id(&node.input[0], node)?;
        let v = self.values[input];
        if v.channels != conv.in_channels {
            return Err(format!(
                "Conv {} takes {} channels, its input has {}",
                node.name, conv.in_channels, v.channels
            ));
        }
        // run padded over the whole buffer: exact where the graph's convolution is, as long as a padded one reads
        // the whole buffer (no ring left out) and an unpadded one leaves its ring inside the margin
        let inset = match conv.padding {
            1 if v.inset == 0 => 0,
            0 if v.room() >= 2 => v.inset + 1,
            1 => return Err(format!("Conv {} pads an image smaller than its buffer", node.name)),
            _ if v.extra == 0 => {
                return Err(format!(
                    "Conv {} is unpadded with no edge Pad before it: a program cannot shrink the image",
                    node.name
                ));
            }
            _ => return Err(format!("Conv {} shrinks the image past the padding before it", node.name)),
        };
        let out_value = Value { channels: conv.out_channels, inset, ..v };
        let mut residuals = Vec::new();
        for (name, beta) in chain.residuals {
            let id = self.id(name, node)?;
            if self.values[id].channels != conv.out_channels || !self.values[id].same_geometry(&out_value) {
                return Err(format!("{name} is added to Conv {} but has another shape", node.name));
            }
            residuals.push((id, beta));
        }
        let out_name: &'m str = chain.absorbed.last().map_or(&node.output[0], |&n| &self.nodes[n].output[0]);
        let output = self.define(out_name, out_value);
        let fused = FusedConv {
            weights: conv.weights,
            bias: conv.bias,
            activation: chain.activation,
            alpha: chain.alpha,
            residuals,
            upsample: 1,
        };
        self.ops.push(Op::Conv { input, output, conv: Box::new(fused) });
        Ok(())
    }
}

/// Lowers `model` (image input `input`, output `output`) into a [`Program`], or says why it cannot.
pub fn lower(model: &ModelProto, input: &str, output: &str) -> Result<Program, String> {
    // sizes of any class first; a Mod of the image's size by k that is a constant only for sizes in a class asks
    // for that class (the importers' padding to a multiple of 2 or 4), and the lowering runs again
    let mut align = 1;
    loop {
        match lower_in_class(model, input, output, align) {
            Err((_, wanted)) if wanted > align && wanted <= MAX_ALIGN => align = wanted,
            result => return result.map_err(|(why, _)| why),
        }
    }
}

/// The largest size class a program may have.
const MAX_ALIGN: i64 = 16;

/// [`lower`] for input sizes that are multiples of `align`; on failure, why, and the class the shape arithmetic
/// asked for.
fn lower_in_class(model: &ModelProto, input: &str, output: &str, align: i64) -> Result<Program, (String, i64)> {
    let graph = model.graph.as_ref().ok_or(("the model has no graph".to_string(), align))?;
    let nodes = &graph.node[..];
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for name in &node.input {
            readers.entry(name.as_str()).or_default().push(i);
        }
    }
    for out in &graph.output {
        readers.entry(out.name.as_str()).or_default().push(GRAPH_OUTPUT);
    }
    let mut l = Lowering {
        nodes,
        inits: graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
        readers,
        ids: HashMap::new(),
        values: Vec::new(),
        names: Vec::new(),
        ops: Vec::new(),
        placements: Vec::new(),
        shapes: Shapes::new(align),
    };
    match passes(&mut l, graph, input, output) {
        Ok(out) => place(l, out).map_err(|why| (why, align)),
        Err(why) => Err((why, l.shapes.wanted())),
    }
}

/// Passes 1 (with the folds and the final crop) over `l`: the output's value.
fn passes<'m>(l: &mut Lowering<'m>, graph: &'m GraphProto, input: &str, output: &str) -> Match<usize> {
    let nodes = l.nodes;
    // every step below reads a node's first input and its one output
    if let Some(n) = nodes.iter().find(|n| n.output.len() != 1 || n.input.is_empty()) {
        return Err(format!(
            "{} node {} has {} inputs and {} outputs (the program steps take one output of at least one input)",
            n.op_type,
            n.name,
            n.input.len(),
            n.output.len()
        ));
    }
    let input_name = graph.input.iter().find(|i| i.name == input).ok_or_else(|| format!("no graph input {input}"))?;
    l.define(&input_name.name, Value::image(3, Scale::int(1)));

    // pass 1: the chains, then the ops in node order (each conv emitted where its chain ends)
    let excites = unet::excite_blocks(l);
    let mut taken = unet::excite_members(&excites);
    let excites: HashMap<usize, Vec<usize>> = excites.into_iter().collect();
    let mut ends = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if (node.op_type == "Conv" || node.op_type == "ConvTranspose") && !taken.contains(&i) {
            let chain = l.chain(i, &taken);
            taken.extend(chain.absorbed.iter().copied());
            ends.insert(chain.absorbed.last().copied().unwrap_or(i), (i, chain));
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        if let Some((start, chain)) = ends.remove(&i) {
            if nodes[start].op_type == "ConvTranspose" {
                if !unet::lower_transposed(l, start, &chain)? {
                    padded::lower_conv_transpose(l, start, &chain)?;
                }
            } else if !unet::lower_strided(l, start, &chain)? {
                l.conv(start, chain)?;
            }
        } else if let Some(members) = excites.get(&i) {
            unet::lower_excite(l, i, members)?;
        } else if !taken.contains(&i) && node.op_type != "Conv" && node.op_type != "ConvTranspose" {
            lower_node(l, node)?;
        }
    }
    let out = *l.ids.get(output).ok_or_else(|| format!("the graph output {output} is not computed by a step"))?;
    fuse::upsampling_into_convs(&mut l.ops, &l.placements, out);
    let out = unet::crop_output(l, out);
    let align = l.shapes.align() as u32;
    if let Some(v) = l.values.iter().find(|v| !(align * v.scale.num).is_multiple_of(v.scale.den)) {
        l.shapes.want(i64::from(align * v.scale.den));
        return Err(format!(
            "an image at {} times the input's size, which the input sizes of the graph's class ({align}) do not give",
            v.scale
        ));
    }
    Ok(out)
}

/// Pass 1 for a node outside any conv chain.
fn lower_node<'m>(l: &mut Lowering<'m>, node: &'m NodeProto) -> Match<()> {
    let name = &node.name;
    if !is_default_domain(node) {
        return Err(format!("{} {name} is not a default-domain node", node.op_type));
    }
    let out: &'m str = &node.output[0];
    let inits = &l.inits;
    let init = |n: &str| inits.get(n).copied().ok_or_else(|| format!("{n} is not a constant"));
    match node.op_type.as_str() {
        "Shape" => {
            if attr(node, "start").is_some() || attr(node, "end").is_some() {
                return Err(format!("Shape {name} takes part of a shape"));
            }
            // a value a chain absorbed has no id: its size is followed from the chain's input, its channels unknown
            let channels = l.ids.get(node.input[0].as_str()).map(|&id| l.values[id].channels as i64);
            let (scale, room) = l.size_of(&node.input[0]).ok_or_else(|| {
                format!("Shape {name} reads {}, an image whose size the lowering does not follow", node.input[0])
            })?;
            if scale.den != 1 {
                return Err(format!("Shape {name} is of an image at {scale} times the input's size"));
            }
            let side = |h: i64, w: i64| Some(Affine { h, w, c: room });
            let s = i64::from(scale.num);
            let shape = vec![None, channels.map(Affine::constant), side(s, 0), side(0, s)];
            l.shapes.insert(out, shape);
        }
        // shape arithmetic: over a shape computed before (or, a Concat, constants only)
        "Slice" | "Add" | "Sub" | "Mul" | "Mod" | "Concat"
            if !l.ids.contains_key(node.input[0].as_str()) && node.input.iter().any(|i| l.shapes.contains(i))
                || (node.op_type == "Concat" && node.input.iter().all(|i| l.shapes.operand(i, &init).is_some())) =>
        {
            l.shapes.eval(node, &init)?;
        }
        "Pad" => padded::lower_pad(l, node)?,
        "Slice" => padded::lower_crop(l, node)?,
        "Identity" => {
            let id = l.id(&node.input[0], node)?;
            l.ids.insert(out, id);
        }
        "Resize" => {
            let factor = resize_factor(node, |n| l.init(n))?;
            if !is_floor_nearest(node) || factor.fract() != 0.0 || !(2.0..=8.0).contains(&factor) {
                return Err(format!("Resize {name} is not a nearest-neighbour upsampling by an integer factor"));
            }
            let input = l.id(&node.input[0], node)?;
            let v = l.values[input];
            if v.extra != 0 || v.inset != 0 {
                return Err(format!("Resize {name} upsamples a padded image"));
            }
            let factor = factor as u32;
            let scale = scaled(v.scale, factor, 1)
                .ok_or_else(|| format!("Resize {name} takes the image past {MAX_SCALE}x the input"))?;
            let output = l.define(out, Value::image(v.channels, scale));
            l.ops.push(Op::Nearest { input, output, factor });
        }
        "Concat" => {
            let axis = attr_int(node, "axis", 0);
            if axis != 1 && axis != -3 {
                return Err(format!("Concat {name} joins axis {axis}, not the channels"));
            }
            let mut offset = 0;
            let mut members = Vec::new();
            for i in &node.input {
                let id = l.id(i, node)?;
                members.push((id, offset));
                offset += l.values[id].channels;
            }
            let first = l.values[members[0].0];
            if let Some(&(m, _)) = members.iter().find(|&&(m, _)| !l.values[m].same_geometry(&first)) {
                // a tensor is scale · side + 2 (margin - inset): equal there, it is only held differently
                let o = l.values[m];
                if !o.same_size(&first) {
                    return Err(format!("Concat {name} joins images of different sizes"));
                }
                return Err(format!(
                    "Concat {name} joins images of the same size in different layouts (extra {} inset {}, and \
                     extra {} inset {}), which one buffer cannot hold",
                    first.extra, first.inset, o.extra, o.inset
                ));
            }
            let concat = l.define(out, Value { channels: offset, ..first });
            l.placements.extend(members.into_iter().map(|(m, off)| (m, concat, off)));
        }
        "DepthToSpace" => unet::lower_depth_to_space(l, node)?,
        "Add" | "Sum" if node.input.len() == 2 && node.input.iter().all(|i| l.ids.contains_key(i.as_str())) => {
            unet::add_into_shuffle(l, node)?
        }
        op => return Err(format!("{op} node {name} has no native step")),
    }
    Ok(())
}

/// Union-find over values with channel offsets: `pos(v) = pos(parent) + offset`.
struct Layout {
    parent: Vec<usize>,
    offset: Vec<i64>,
}

impl Layout {
    /// The root of `v` and `v`'s offset from it; compresses the path (iteratively: concatenations may nest as deep
    /// as the graph is long).
    fn find(&mut self, v: usize) -> (usize, i64) {
        let mut path = Vec::new();
        let mut root = v;
        while self.parent[root] != root {
            path.push(root);
            root = self.parent[root];
        }
        // from the node nearest the root outwards, each offset becomes relative to the root
        for &node in path.iter().rev() {
            let parent = self.parent[node];
            if parent != root {
                self.offset[node] += self.offset[parent];
            }
            self.parent[node] = root;
        }
        (root, if v == root { 0 } else { self.offset[v] })
    }

    /// Records `pos(member) = pos(of) + offset`; false if that contradicts what is recorded.
    fn place(&mut self, member: usize, of: usize, offset: i64) -> bool {
        let ((rm, om), (ro, oo)) = (self.find(member), self.find(of));
        if rm == ro {
            return om == oo + offset;
        }
        self.parent[rm] = ro;
        self.offset[rm] = oo + offset - om;
        true
    }
}

/// Passes 2 to 4: places the values in buffers and writes the steps.
fn place(l: Lowering, output: usize) -> Result<Program, String> {
    let n = l.values.len();
    let mut layout = Layout { parent: (0..n).collect(), offset: vec![0; n] };
    for &(member, concat, offset) in &l.placements {
        if !layout.place(member, concat, offset as i64) {
            return Err(format!("{} is concatenated at two channel offsets", l.names[member]));
        }
    }
    // groups: root -> (lowest offset, highest end), then offsets from 0
    let mut extent: HashMap<usize, (i64, i64)> = HashMap::new();
    let pos: Vec<(usize, i64)> = (0..n).map(|v| layout.find(v)).collect();
    for (v, &(root, off)) in pos.iter().enumerate() {
        let e = extent.entry(root).or_insert((i64::MAX, i64::MIN));
        *e = (e.0.min(off), e.1.max(off + l.values[v].channels as i64));
    }
    let offset = |v: usize| (pos[v].1 - extent[&pos[v].0].0) as usize;
    let group = |v: usize| pos[v].0;
    let group_channels = |g: usize| (extent[&g].1 - extent[&g].0) as usize;
    for special in [0, output] {
        if group_channels(group(special)) != l.values[special].channels {
            let which = if special == 0 { "model input" } else { "model output" };
            return Err(format!("the {which} is concatenated with other values"));
        }
    }
    if l.values[output].channels != 3 {
        return Err(format!("the output has {} channels, not 3", l.values[output].channels));
    }
    let v = l.values[output];
    if v.room() != 0 || v.scale.den != 1 {
        return Err("the output is not the input's size times an integer (a padding the graph does not crop)".into());
    }
    // values written by steps must not share channels within a group
    let written: Vec<usize> = l.ops.iter().map(Op::writes).collect();
    let mut ranges: Vec<(usize, usize, usize, usize)> =
        written.iter().map(|&v| (group(v), offset(v), offset(v) + l.values[v].channels, v)).collect();
    ranges.sort();
    if let Some(w) = ranges.windows(2).find(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2) {
        let (a, b) = (l.names[w[0].3], l.names[w[1].3]);
        return Err(format!("{a} and {b} would share channels of one concatenation"));
    }

    // liveness per group: from its first write to its last read or write (a dead value written into a group after
    // its last read still needs the group's buffer)
    let touched = |s: usize, op: &Op| -> Vec<usize> { op.reads().into_iter().chain([written[s]]).map(group).collect() };
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (s, op) in l.ops.iter().enumerate() {
        for g in touched(s, op) {
            last_use.insert(g, s);
        }
    }
    let mut buffers = vec![BufferSpec::new(3, 1, 0)];
    let mut buffer_of: HashMap<usize, usize> = HashMap::from([(group(0), Program::INPUT)]);
    let mut free: Vec<usize> = Vec::new();
    for (s, op) in l.ops.iter().enumerate() {
        let g = group(written[s]);
        if let std::collections::hash_map::Entry::Vacant(e) = buffer_of.entry(g) {
            let w = l.values[written[s]];
            let spec = BufferSpec { channels: group_channels(g), scale: w.scale, extra: w.extra };
            let reuse = (g != group(output)).then(|| free.iter().position(|&b| buffers[b] == spec)).flatten();
            let b = match reuse {
                Some(k) => free.swap_remove(k),
                None => {
                    buffers.push(spec);
                    buffers.len() - 1
                }
            };
            e.insert(b);
        }
        // released after the step that uses them last; never the input or the output
        for g in touched(s, op) {
            if last_use.get(&g) == Some(&s) && g != group(0) && g != group(output) {
                last_use.remove(&g);
                free.push(buffer_of[&g]);
            }
        }
    }
    let slice = |v: usize| Slice { buffer: buffer_of[&group(v)], offset: offset(v), channels: l.values[v].channels };
    let steps = l
        .ops
        .into_iter()
        .map(|op| match op {
            Op::Conv { input, output, conv } => Step::Conv(ConvStep {
                input: slice(input),
                output: slice(output),
                weights: conv.weights,
                bias: conv.bias,
                activation: conv.activation,
                alpha: conv.alpha,
                residuals: conv.residuals.iter().map(|&(v, beta)| (slice(v), beta)).collect(),
                upsample: conv.upsample,
            }),
            Op::Nearest { input, output, factor } => {
                Step::Nearest { input: slice(input), output: slice(output), factor }
            }
            Op::EdgePad { input, output, pad } => Step::EdgePad { input: slice(input), output: slice(output), pad },
            Op::Shuffle { input, output, factor, offset, shift, residual } => Step::Shuffle {
                input: slice(input),
                output: slice(output),
                factor,
                offset,
                shift,
                residual: residual.map(|(v, beta, offset)| ShiftedResidual { slice: slice(v), beta, offset }),
            },
            Op::SpaceToDepth { input, output, offset } => {
                Step::SpaceToDepth { input: slice(input), output: slice(output), offset }
            }
            Op::SqueezeExcite { input, output, excite } => {
                let Excite { inset, reduce, reduce_bias, expand, expand_bias } = *excite;
                Step::SqueezeExcite {
                    input: slice(input),
                    output: slice(output),
                    inset,
                    reduce,
                    reduce_bias,
                    expand,
                    expand_bias,
                }
            }
        })
        .collect();
    let scale = l.values[output].scale.num;
    Ok(Program { buffers, steps, output: slice(output), scale, align: l.shapes.align() as u32 })
}
