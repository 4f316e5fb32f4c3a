// SPDX-License-Identifier: MPL-2.0
//! The lowering of UNets (Real-CUGAN, waifu2x CUNet): 2×2 stride-2 convolutions (a space
//! to depth from the tensor's parity, then a 1×1 convolution), 2×2 stride-2 transposed convolutions (a 1×1
//! convolution of the four phases, then a depth to space into the layout of the skip connection added to it),
//! squeeze-and-excitation blocks, and the final crop of a network whose output buffer is larger than the output.
//! Each keeps the invariant of [`Value`]: the tensor is its buffer less `inset` pixels on each side.

use std::collections::HashSet;

use super::{Chain, Excite, FusedConv, Lowering, Op, Value, scaled};
use crate::native::graph::{Match, attr, attr_int, attr_ints, attr_str, floats, is_default_domain};
use crate::onnx::NodeProto;

/// The weights of a 2×2 kernel as a 3×3 one's centre tap, `[out][in][3][3]`, input channel `(dy · 2 + dx) · cin + c`
/// (a convolution, `transposed` false: `[cout][cin][2][2]`) or output channel `(dy · 2 + dx) · cout + c` (a transposed
/// one: `[cin][cout][2][2]`).
fn centre_taps(w: &[f32], cin: usize, cout: usize, transposed: bool) -> Vec<f32> {
    let (rows, cols) = if transposed { (4 * cout, cin) } else { (cout, 4 * cin) };
    let mut out = vec![0.0f32; rows * cols * 9];
    for d in 0..4 {
        for ci in 0..cin {
            for co in 0..cout {
                let (row, col, v) = if transposed {
                    (d * cout + co, ci, w[(ci * cout + co) * 4 + d])
                } else {
                    (co, d * cin + ci, w[(co * cin + ci) * 4 + d])
                };
                out[(row * cols + col) * 9 + 4] = v;
            }
        }
    }
    out
}

/// `(cin, cout, weights, bias)` of a 2×2 kernel as [`centre_taps`] lays it out.
type TwoByTwo = (usize, usize, Vec<f32>, Vec<f32>);

/// A 2×2 stride-2 (transposed) convolution's weights as `(cin, cout, weights, bias)`, or why it is not one.
fn two_by_two<'m>(l: &Lowering<'m>, node: &NodeProto, transposed: bool) -> Match<Option<TwoByTwo>> {
    let name = &node.name;
    let op = &node.op_type;
    let Some(w) = node.input.get(1) else { return Ok(None) };
    let wt = l.init(w)?;
    if wt.dims.len() != 4 || wt.dims[2..] != [2, 2] {
        return Ok(None);
    }
    let [a, b] = [wt.dims[0], wt.dims[1]].map(|d| usize::try_from(d).ok().filter(|d| (1..=1024).contains(d)));
    let (Some(a), Some(b)) = (a, b) else {
        return Err(format!("{op} {name} weights {:?} are not 1 to 1024 channels", wt.dims));
    };
    let (cin, cout) = if transposed { (a, b) } else { (b, a) };
    if attr_int(node, "group", 1) != 1
        || attr_ints(node, "strides") != Some(vec![2, 2])
        || attr_ints(node, "pads").is_some_and(|p| p != [0, 0, 0, 0])
        || attr_ints(node, "dilations").unwrap_or(vec![1, 1]) != vec![1, 1]
        || attr_ints(node, "kernel_shape").is_some_and(|k| k != [2, 2])
        || attr_str(node, "auto_pad", "NOTSET") != "NOTSET"
        || attr(node, "output_padding").is_some_and(|_| attr_ints(node, "output_padding") != Some(vec![0, 0]))
        || attr(node, "output_shape").is_some()
    {
        return Err(format!("{op} {name} is 2x2 but not stride 2 without padding"));
    }
    let weights = floats(wt)?;
    let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => floats(l.init(b)?)?,
        None => vec![0.0; cout],
    };
    if weights.len() != cin * cout * 4 || bias.len() != cout {
        return Err(format!("{op} {name}: weights or bias do not match {:?}", wt.dims));
    }
    Ok(Some((cin, cout, centre_taps(&weights, cin, cout, transposed), bias)))
}

/// Conv `start`, if it is 2×2 with stride 2: a space to depth pairing the tensor's pixels from its parity, then the
/// 1×1 convolution with its chain (no residuals). `Ok(false)`: not such a convolution.
pub(super) fn lower_strided<'m>(l: &mut Lowering<'m>, start: usize, chain: &Chain<'m>) -> Match<bool> {
    let node: &'m NodeProto = &l.nodes[start];
    let name: &'m str = &node.name;
    let Some((cin, cout, weights, bias)) = two_by_two(l, node, false)? else { return Ok(false) };
    if !chain.residuals.is_empty() {
        return Err(format!("Conv {name} is stride 2 with a residual added to it"));
    }
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    if v.channels != cin {
        return Err(format!("Conv {name} takes {cin} channels, its input has {}", v.channels));
    }
    // pixel pairs (2j, 2j + 1) of the tensor start at buffer pixel `inset`: from its parity in the buffer
    let off = v.inset % 2;
    let scale = scaled(v.scale, 1, 2).ok_or_else(|| format!("Conv {name} halves an image past the scales taken"))?;
    let halved = Value { channels: 4 * cin, scale, extra: (v.extra - off) / 2, inset: (v.inset - off) / 2 };
    let pairs = l.define_hidden(name, halved);
    l.ops.push(Op::SpaceToDepth { input, output: pairs, offset: off });
    let out_name: &'m str = chain.absorbed.last().map_or(&node.output[0], |&n| &l.nodes[n].output[0]);
    let output = l.define(out_name, Value { channels: cout, ..halved });
    l.ops.push(Op::Conv { input: pairs, output, conv: FusedConv::chained(weights, bias, chain) });
    Ok(true)
}

/// ConvTranspose `start`, if it is 2×2 with stride 2: the 1×1 convolution of its four phases with the chain's
/// activation and scale, then the depth to space; with the chain's residual (a skip connection of the same size)
/// it writes into the residual's layout and adds it there. `Ok(false)`: not such a transposed convolution.
pub(super) fn lower_transposed<'m>(l: &mut Lowering<'m>, start: usize, chain: &Chain<'m>) -> Match<bool> {
    let node: &'m NodeProto = &l.nodes[start];
    let name: &'m str = &node.name;
    let Some((cin, cout, weights, bias)) = two_by_two(l, node, true)? else { return Ok(false) };
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    if v.channels != cin {
        return Err(format!("ConvTranspose {name} takes {cin} channels, its input has {}", v.channels));
    }
    let scale = scaled(v.scale, 2, 1).ok_or_else(|| format!("ConvTranspose {name} takes the image past the scales"))?;
    let phases = l.define_hidden(name, Value { channels: 4 * cout, ..v });
    l.ops.push(Op::Conv { input, output: phases, conv: FusedConv::chained(weights, bias.repeat(4), chain) });
    let doubled = Value { channels: cout, scale, extra: 2 * v.extra, inset: 2 * v.inset };
    let (geometry, shift, residual) = match chain.residuals[..] {
        [] => (doubled, 0, None),
        [(skip, beta)] => {
            let r = l.id(skip, node)?;
            let w = l.values[r];
            let shift = i64::from(w.inset) - i64::from(doubled.inset);
            if w.channels != cout
                || !w.same_size(&doubled)
                || shift < 0
                || shift + i64::from(doubled.extra) > i64::from(w.extra)
            {
                return Err(format!("{skip} is added to ConvTranspose {name} but has another shape"));
            }
            (Value { channels: cout, ..w }, shift as u32, Some((r, beta, 0)))
        }
        _ => return Err(format!("ConvTranspose {name} has more than one value added to it")),
    };
    let out_name: &'m str = chain.absorbed.last().map_or(&node.output[0], |&n| &l.nodes[n].output[0]);
    let output = l.define(out_name, geometry);
    l.ops.push(Op::Shuffle { input: phases, output, factor: 2, offset: 0, shift, residual });
    Ok(true)
}

/// Finds the squeeze-and-excitation blocks, `GlobalAveragePool(x) → Conv 1×1 → Relu → Conv 1×1 → Sigmoid → Mul(x,
/// ·)`, each node read only by the next: `(pool node, the other nodes)`.
pub(super) fn excite_blocks(l: &Lowering<'_>) -> Vec<(usize, Vec<usize>)> {
    let mut blocks = Vec::new();
    for (i, node) in l.nodes.iter().enumerate() {
        if node.op_type != "GlobalAveragePool" || !is_default_domain(node) {
            continue;
        }
        let mut members = Vec::new();
        let mut value: &str = &node.output[0];
        for op in ["Conv", "Relu", "Conv", "Sigmoid", "Mul"] {
            let Some(next) = l.only_reader(value).filter(|&n| l.nodes[n].op_type == op) else { break };
            members.push(next);
            value = &l.nodes[next].output[0];
        }
        let x = &node.input[0];
        if members.len() == 5 && l.nodes[members[4]].input.iter().any(|i| i == x) {
            blocks.push((i, members));
        }
    }
    blocks
}

/// A 1×1 convolution's weights `[out][in]` and bias of a squeeze-and-excitation block, with `cin` inputs.
fn pointwise<'m>(l: &Lowering<'m>, node: &NodeProto, cin: usize) -> Match<(Vec<f32>, Vec<f32>)> {
    let name = &node.name;
    let [_, w, b] = &node.input[..] else { return Err(format!("Conv {name} has no bias")) };
    let wt = l.init(w)?;
    let cout = usize::try_from(*wt.dims.first().unwrap_or(&0)).unwrap_or(0);
    if wt.dims[..] != [cout as i64, cin as i64, 1, 1]
        || cout == 0
        || cout > 1024
        || attr_int(node, "group", 1) != 1
        || attr_ints(node, "strides").unwrap_or(vec![1, 1]) != vec![1, 1]
    {
        return Err(format!("Conv {name} of the excitation is not 1x1 over {cin} channels"));
    }
    let (weights, bias) = (floats(wt)?, floats(l.init(b)?)?);
    if weights.len() != cout * cin || bias.len() != cout {
        return Err(format!("Conv {name}: weights or bias do not match {:?}", wt.dims));
    }
    Ok((weights, bias))
}

/// The block found by [`excite_blocks`] at pool node `pool`: one step writing the scaled input.
pub(super) fn lower_excite<'m>(l: &mut Lowering<'m>, pool: usize, members: &[usize]) -> Match<()> {
    let node: &'m NodeProto = &l.nodes[pool];
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    let (reduce, reduce_bias) = pointwise(l, &l.nodes[members[0]], v.channels)?;
    let hidden = reduce_bias.len();
    let (expand, expand_bias) = pointwise(l, &l.nodes[members[2]], hidden)?;
    if expand_bias.len() != v.channels {
        return Err(format!("Conv {} does not give back {} channels", l.nodes[members[2]].name, v.channels));
    }
    let out: &'m str = &l.nodes[members[4]].output[0];
    let output = l.define(out, v);
    let excite = Box::new(Excite { inset: v.inset, reduce, reduce_bias, expand, expand_bias });
    l.ops.push(Op::SqueezeExcite { input, output, excite });
    Ok(())
}

/// The nodes of every block, for pass 1 to leave alone.
pub(super) fn excite_members(blocks: &[(usize, Vec<usize>)]) -> HashSet<usize> {
    blocks.iter().flat_map(|(_, m)| m.iter().copied()).collect()
}

/// When the output value is a crop of a larger buffer: a depth to space by 1 (a crop) from its inset into a value
/// of the output's size, taking over the one residual of the convolution that wrote it (the kernels add residuals
/// to wide convolutions only; the sum is the same). Returns the output's value.
pub(super) fn crop_output(l: &mut Lowering<'_>, out: usize) -> usize {
    let v = l.values[out];
    if v.extra == 0 {
        return out;
    }
    let mut residual = None;
    let written = l.written_value(out);
    if let Some(Op::Conv { conv, .. }) = l.ops.iter_mut().rev().find(|op| op.writes() == written)
        && let [(r, beta)] = conv.residuals[..]
        && conv.bias.len() <= 8
    {
        conv.residuals.clear();
        residual = Some((r, beta, l.values[r].inset));
    }
    let name = l.names[out];
    let cropped = l.define_hidden(name, Value { channels: v.channels, scale: v.scale, extra: 0, inset: 0 });
    l.ops.push(Op::Shuffle { input: out, output: cropped, factor: 1, offset: v.inset, shift: 0, residual });
    cropped
}

/// `DepthToSpace` (Real-CUGAN up4x's pixel shuffle after its last convolution) of a convolution's output, or of a
/// crop of it: a depth to space from the tensor's inset. The program's order of phases is DCR's; for CRD the
/// convolution, which nothing else reads, writes its outputs in that order.
pub(super) fn lower_depth_to_space<'m>(l: &mut Lowering<'m>, node: &'m NodeProto) -> Match<()> {
    let name = &node.name;
    let f = attr_int(node, "blocksize", 0);
    if !(2..=4).contains(&f) {
        return Err(format!("DepthToSpace {name} has block size {f} (2 to 4 are taken)"));
    }
    let f = f as u32;
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    let phases = (f * f) as usize;
    if !v.channels.is_multiple_of(phases) {
        return Err(format!("DepthToSpace {name} of {} channels by {f}", v.channels));
    }
    let c = v.channels / phases;
    let scale = scaled(v.scale, f, 1).ok_or_else(|| format!("DepthToSpace {name} takes the image past the scales"))?;
    if attr_str(node, "mode", "DCR") == "CRD" {
        // the convolution writing the value the input is (a crop aliases it), read by this node alone
        let written = l.written_value(input);
        let unread = !l.ops.iter().any(|op| op.reads().contains(&written));
        let sole = unread && l.read_once(&node.input[0]) && l.read_once(l.names[written]);
        let conv = l.ops.iter_mut().rev().find(|op| op.writes() == written);
        let Some(Op::Conv { conv, .. }) = conv.filter(|_| sole) else {
            return Err(format!("DepthToSpace {name} in CRD order of a value that is not one convolution's alone"));
        };
        if !conv.residuals.is_empty() || conv.bias.len() != v.channels {
            return Err(format!("DepthToSpace {name} in CRD order of a convolution with residuals"));
        }
        // DCR channel q · C + k is CRD channel k · f² + q
        let per_out = conv.weights.len() / v.channels;
        let crd = |j: usize| (j % c) * phases + j / c;
        conv.weights = (0..v.channels).flat_map(|j| conv.weights[crd(j) * per_out..][..per_out].to_vec()).collect();
        conv.bias = (0..v.channels).map(|j| conv.bias[crd(j)]).collect();
    }
    let output = l.define(&node.output[0], Value { channels: c, scale, extra: f * v.room() as u32, inset: 0 });
    l.ops.push(Op::Shuffle { input, output, factor: f, offset: v.inset, shift: 0, residual: None });
    Ok(())
}

/// `Add` of two images outside any convolution's chain (Real-CUGAN up4x's output: its pixel shuffle, cropped, plus
/// the input upsampled): when one is what a depth to space wrote, from its buffer's first pixel and read by this node
/// alone, the depth to space adds the other as its residual.
pub(super) fn add_into_shuffle<'m>(l: &mut Lowering<'m>, node: &'m NodeProto) -> Match<()> {
    let name = &node.name;
    let refused = || format!("{} {name} adds two images that no step writes added", node.op_type);
    for (a, b) in [(0, 1), (1, 0)] {
        let (an, bn) = (node.input[a].as_str(), node.input[b].as_str());
        let (ai, bi) = (l.id(an, node)?, l.id(bn, node)?);
        let (av, bv) = (l.values[ai], l.values[bi]);
        let written = l.written_value(ai);
        let wv = l.values[written];
        // the tensor is the whole buffer the depth to space writes, the other image of its size and channels
        let fits = av.inset == 0
            && wv.same_geometry(&av)
            && av.channels == bv.channels
            && av.same_size(&bv)
            && l.read_once(an)
            && l.read_once(l.names[written])
            && !l.ops.iter().any(|op| op.reads().contains(&written));
        if !fits {
            continue;
        }
        let Some(at) = l.ops.iter().rposition(|op| op.writes() == written) else { continue };
        if let Op::Shuffle { residual: residual @ None, .. } = &mut l.ops[at] {
            *residual = Some((bi, 1.0, bv.inset));
            // moved after the step that wrote the residual (nothing read its output yet)
            let shuffle = l.ops.remove(at);
            l.ops.push(shuffle);
            l.ids.insert(&node.output[0], ai);
            return Ok(());
        }
    }
    Err(refused())
}
