// SPDX-License-Identifier: MPL-2.0
//! The lowering of padded graphs (waifu2x UpConv7): the importer's edge padding grows every buffer by a margin,
//! crops read further into a buffer, and a transposed convolution becomes a convolution of its phases and a depth to
//! space. Each keeps the invariant of [`Value`]: the tensor is its buffer less `inset` pixels on each side.

use super::{Chain, FusedConv, Lowering, MAX_SCALE, Op, Value, scaled};
use crate::native::graph::{Match, attr_str};
use crate::native::program::geometry::{Affine, ShapeValue, constants, phase_conv};
use crate::onnx::NodeProto;

/// A transposed convolution whose taps fit a 3×3 window ([`phase_conv`]: UpConv7's and Real-CUGAN up2x's 4×4 stride
/// 2, up3x's 5×5 stride 3): the 3×3 convolution of its phases into a value no node names, then the depth to space
/// that interleaves them. With a lead of a whole stride (4×4 stride 2) the phases are centred one pixel in from the
/// tensor's edges, which stay outside the output; with less (5×5 stride 3) they are centred on every pixel, the
/// windows at the edges read one pixel past the tensor (the buffer's margin, or zeros past the buffer), which only
/// the outputs outside the result use, and the result is the shuffled phases less `lead` pixels on each side.
pub(super) fn lower_conv_transpose<'m>(l: &mut Lowering<'m>, start: usize, chain: &Chain<'m>) -> Match<()> {
    let node: &'m NodeProto = &l.nodes[start];
    let name: &'m str = &node.name;
    let out: &'m str = chain.absorbed.last().map_or(&node.output[0], |&n| &l.nodes[n].output[0]);
    if !chain.residuals.is_empty() {
        return Err(format!("ConvTranspose {name} has a value added to it"));
    }
    let phases = phase_conv(node, |n| l.init(n))?;
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    if v.channels != phases.in_channels {
        return Err(format!(
            "ConvTranspose {name} takes {} channels, its input has {}",
            phases.in_channels, v.channels
        ));
    }
    let (f, skip, inset) = (phases.factor, phases.lead / phases.factor, phases.lead % phases.factor);
    if skip > 0 && v.extra == 0 {
        return Err(format!("ConvTranspose {name} has no edge Pad before it: its phases need a pixel of margin"));
    }
    // the output, f · room − 2 · lead pixels past f times the input's scale, is not smaller than that
    if i64::from(f) * v.room() < 2 * i64::from(phases.lead) {
        return Err(format!("ConvTranspose {name} shrinks the image past the padding before it"));
    }
    let scale = scaled(v.scale, f, 1);
    let scale = scale.ok_or_else(|| format!("ConvTranspose {name} takes the image past {MAX_SCALE}x the input"))?;
    let offset = v.inset + skip;
    let hidden = l.define_hidden(name, Value { channels: (f * f) as usize * phases.out_channels, inset: offset, ..v });
    let conv = FusedConv::chained(phases.weights, phases.bias, chain);
    l.ops.push(Op::Conv { input, output: hidden, conv });
    // the phases of the tensor's pixels less `skip` on each side, side by side from buffer pixel 0
    let extra = f * (v.extra - 2 * offset);
    let output = l.define(out, Value { channels: phases.out_channels, scale, extra, inset });
    l.ops.push(Op::Shuffle { input: hidden, output, factor: f, offset, shift: 0, residual: None });
    Ok(())
}

/// `Pad` of an image by the same number of pixels on every side, repeating its edges (the importers' padding to a
/// margin): the program's buffers grow by that margin.
pub(super) fn lower_pad<'m>(l: &mut Lowering<'m>, node: &'m NodeProto) -> Match<()> {
    let name = &node.name;
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    if attr_str(node, "mode", "constant") != "edge" || v.inset != 0 {
        return Err(format!("Pad {name} is not an edge padding of a whole image"));
    }
    // opset 18's axes say which axes the pads are for; the pads are read below as for all four in order
    if node.input.get(3).is_some_and(|a| !a.is_empty()) {
        let axes = shape_input(l, node, 3).as_deref().and_then(constants);
        // all four in order, each as from 0 or from the end
        let all =
            axes.as_deref().is_some_and(|a| a.len() == 4 && a.iter().zip(0..).all(|(&a, k)| a == k || a == k - 4));
        if !all {
            let axes = axes.map_or_else(|| "that are not constant".to_string(), |a| format!("{a:?}"));
            return Err(format!("Pad {name} pads axes {axes}, not all four in order"));
        }
    }
    let pads = shape_input(l, node, 1).as_deref().and_then(constants);
    let pad = match pads.as_deref() {
        Some([0, 0, a, b, 0, 0, c, d]) if a == b && b == c && c == d && (1..=64).contains(a) => *a as u32,
        _ => {
            return Err(format!(
                "Pad {name} does not pad height and width alike by 1 to 64 pixels (its pads: {pads:?})"
            ));
        }
    };
    let output = l.define(node.output[0].as_str(), Value { extra: v.extra + 2 * pad, ..v });
    l.ops.push(Op::EdgePad { input, output, pad });
    Ok(())
}

/// `Slice` of an image's height and width by the same number of pixels on every side (none: the final crop of
/// UpConv7): the same buffer, read further in.
pub(super) fn lower_crop<'m>(l: &mut Lowering<'m>, node: &'m NodeProto) -> Match<()> {
    let name = &node.name;
    let input = l.id(&node.input[0], node)?;
    let v = l.values[input];
    let arg = |i: usize| shape_input(l, node, i);
    let refused = || format!("Slice {name} is not a crop of the image by the same amount on every side");
    let (Some(starts), Some(ends)) = (arg(1), arg(2)) else { return Err(refused()) };
    // an optional input is left out with no name or an empty one; given, it must be known
    let given = |i: usize| node.input.get(i).is_some_and(|s| !s.is_empty());
    let axes = if given(3) { arg(3).as_deref().and_then(constants) } else { Some((0..starts.len() as i64).collect()) };
    if axes.as_deref() != Some(&[2, 3]) || starts.len() != 2 || ends.len() != 2 {
        return Err(refused());
    }
    // what is not a constant may be anything: only steps of 1 read every pixel of the crop
    if given(4) && arg(4).as_deref().and_then(constants).is_none_or(|s| s != [1, 1]) {
        return Err(format!("Slice {name}: its steps are not constant 1s (a crop reads every pixel)"));
    }
    // along each axis the tensor is scale · side + room: the start is k, the end that less k (from the end
    // when negative)
    let extent = |axis: usize| {
        let s = if v.scale.den == 1 { v.scale.num as i64 } else { 0 };
        let c = v.room();
        if axis == 0 { Affine { h: s, w: 0, c } } else { Affine { h: 0, w: s, c } }
    };
    let mut cut = None;
    for axis in 0..2 {
        let (Some(start), Some(end)) = (starts[axis], ends[axis]) else { return Err(refused()) };
        let e = extent(axis);
        let k = match (start.h, start.w) {
            (0, 0) if start.c >= 0 => start.c,
            _ => return Err(refused()),
        };
        let to_end = end.h == 0 && end.w == 0 && end.c >= i64::from(i32::MAX);
        let short = if to_end {
            0
        } else if end.h == 0 && end.w == 0 && end.c < 0 {
            -end.c
        } else if v.scale.den == 1 && (end.h, end.w) == (e.h, e.w) {
            e.c.checked_sub(end.c).ok_or_else(|| format!("Slice {name}: its end overflows a 64-bit integer"))?
        } else {
            return Err(refused());
        };
        if k != short || cut.is_some_and(|c| c != k) {
            return Err(refused());
        }
        cut = Some(k);
    }
    let k = cut.unwrap_or(0);
    if 2 * k > v.room() {
        return Err(format!("Slice {name} crops into the image's own pixels, which a program cannot"));
    }
    let alias = l.define(node.output[0].as_str(), Value { inset: v.inset + k as u32, ..v });
    l.placements.push((alias, input, 0));
    Ok(())
}

/// Input `i` of `node` as a shape value: `None` when it is left out (no name or an empty one) or not known.
fn shape_input(l: &Lowering<'_>, node: &NodeProto, i: usize) -> Option<ShapeValue> {
    node.input.get(i).filter(|s| !s.is_empty()).and_then(|s| l.shapes.operand(s, &|n| l.init(n)))
}
