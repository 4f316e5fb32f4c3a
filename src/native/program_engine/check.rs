// SPDX-License-Identifier: MPL-2.0
//! Whether the kernels run a program as [`super::fit_program`] fitted it, and if not, why.

use crate::native::conv_sm90::{self, ConvKernel, INPUT_CHANNELS};
use crate::native::program::{BufferSpec, Program, Scale, Slice, Step};
use crate::native::squeeze_excite;

/// Channels per pixel of buffer `buffer` on the GPU: the model input is repacked to one 32-channel chunk.
pub(super) fn physical_channels(program: &Program, buffer: usize) -> usize {
    if buffer == Program::INPUT { INPUT_CHANNELS } else { program.buffers[buffer].channels }
}

/// Whether an image in `to` is `factor` times one in `from`, plus `grow` pixels on each side, for every input size.
fn scaled(from: &BufferSpec, to: &BufferSpec, factor: u32, grow: u32) -> bool {
    to.scale == from.scale.times(factor, 1) && to.extra == factor * from.extra + 2 * grow
}

/// Why the kernels cannot run `program` (fitted by [`super::fit_program`]), if they cannot: channel counts and
/// offsets the kernels take (input slices of whole 32-channel chunks from a multiple of 8, outputs of up to 64
/// channels in multiples of 8, residuals with 33–64 outputs only, an upsampled input for 33–64 outputs without
/// residuals), buffer sizes that agree with each step, and the model output written once, by a convolution of at most
/// 8 channels or a depth to space, and read by no step.
pub fn check_program(program: &Program) -> std::result::Result<(), String> {
    let out = program.output;
    let spec = |s: &Slice| &program.buffers[s.buffer];
    if out.channels != 3 || out.offset != 0 || spec(&out).extra != 0 || spec(&out).scale != Scale::int(program.scale) {
        return Err(format!("the output is {} channels at offset {}, not a whole image", out.channels, out.offset));
    }
    // an input run at its size class is cropped by the step that writes the model output: a depth to space
    let crops = program.steps.iter().any(|s| matches!(s, Step::Shuffle { output, .. } if output.buffer == out.buffer));
    if program.align != 1 && !crops {
        return Err(format!(
            "it runs input sizes in multiples of {}, and its output is written by a convolution, which does not crop",
            program.align
        ));
    }
    if program.buffers.iter().any(|b| !(b.scale.num * program.align).is_multiple_of(b.scale.den)) {
        return Err(format!("a buffer is not a whole number of pixels at sizes in multiples of {}", program.align));
    }
    let stride = |s: &Slice| physical_channels(program, s.buffer);
    let aligned = |s: &Slice| s.offset.is_multiple_of(8) && stride(s) % 8 == 0 && s.offset + s.channels <= stride(s);
    // a step may write beside what it reads in one buffer (a dense block's next channels), never over it
    let overlap = |a: &Slice, b: &Slice| {
        a.buffer == b.buffer && a.offset < b.offset + b.channels && b.offset < a.offset + a.channels
    };
    let io = |step: &Step| -> (Vec<Slice>, Slice) {
        match step {
            Step::Conv(c) => (std::iter::once(c.input).chain(c.residuals.iter().map(|r| r.0)).collect(), c.output),
            Step::Shuffle { input, output, residual, .. } => {
                (std::iter::once(*input).chain(residual.map(|r| r.slice)).collect(), *output)
            }
            Step::Nearest { input, output, .. }
            | Step::EdgePad { input, output, .. }
            | Step::SpaceToDepth { input, output, .. }
            | Step::SqueezeExcite { input, output, .. } => (vec![*input], *output),
        }
    };
    let writers = |buffer: usize| program.steps.iter().filter(|s| io(s).1.buffer == buffer).count();
    // whether a kernel copying 8 channels at a time from aligned slices takes `input` into `output`: fewer
    // (UpConv7's 3, Real-CUGAN up4x's upsampled residual) only of the model input, copied with its zero channels
    // after them into a buffer nothing else writes
    let copies_by_8 = |input: &Slice, output: &Slice| {
        let copied = input.channels.next_multiple_of(8);
        let fits = |s: &Slice| aligned(s) && s.offset + copied <= stride(s);
        let whole = input.channels.is_multiple_of(8)
            || (input.buffer == Program::INPUT
                && input.offset == 0
                && output.offset == 0
                && writers(output.buffer) == 1);
        whole && fits(input) && fits(output)
    };
    if writers(out.buffer) != 1 {
        return Err(format!("{} steps write the model output", writers(out.buffer)));
    }
    for (i, step) in program.steps.iter().enumerate() {
        let (reads, writes) = io(step);
        if reads.iter().any(|r| overlap(&writes, r)) {
            return Err(format!("step {i} writes channels it reads"));
        }
        if reads.iter().any(|r| r.buffer == out.buffer) {
            return Err(format!("step {i} reads the model output"));
        }
        let into_output = writes.buffer == out.buffer;
        if into_output && writes != out {
            return Err(format!("step {i} writes {} of the model output's 3 channels", writes.channels));
        }
        match step {
            Step::Conv(c) => {
                let (cin, cout) = (c.input.channels, c.output.channels);
                if c.weights.len() != cout * cin * 9 || c.bias.len() != cout {
                    return Err(format!(
                        "convolution {i}: its weights or bias are not {cout} x {cin} x 3 x 3 and {cout}"
                    ));
                }
                if c.residuals.iter().any(|(r, _)| r.channels != cout) {
                    return Err(format!("convolution {i}: a residual is not {cout} channels"));
                }
                let from_input = c.input.buffer == Program::INPUT;
                let chunks = c.input.offset + c.input.channels.next_multiple_of(conv_sm90::CHUNK) <= stride(&c.input);
                if !aligned(&c.input) || !chunks || (!from_input && c.input.channels % conv_sm90::CHUNK != 0) {
                    return Err(format!(
                        "convolution {i} reads {} channels at offset {}",
                        c.input.channels, c.input.offset
                    ));
                }
                // the output is `upsample` times the input's size, the residuals at the output's
                if !scaled(spec(&c.input), spec(&c.output), c.upsample, 0)
                    || c.residuals.iter().any(|(r, _)| !scaled(spec(&c.output), spec(r), 1, 0))
                {
                    return Err(format!("convolution {i}: its output or residuals are not at its output's size"));
                }
                ConvKernel::for_step(c, into_output).map_err(|why| format!("convolution {i}: {why}"))?;
                if into_output {
                    continue;
                }
                if !aligned(&c.output) || c.output.channels % 8 != 0 {
                    return Err(format!(
                        "convolution {i} writes {} channels at offset {}",
                        c.output.channels, c.output.offset
                    ));
                }
                if c.residuals.iter().any(|(r, _)| !aligned(r)) {
                    return Err(format!("convolution {i} has residuals the kernels do not take"));
                }
            }
            Step::Nearest { input, output, .. } | Step::EdgePad { input, output, .. }
                if input.channels != output.channels =>
            {
                return Err(format!("step {i} copies {} channels into {}", input.channels, output.channels));
            }
            Step::Nearest { input, output, factor } => {
                if into_output || !copies_by_8(input, output) {
                    return Err(format!("upsampling {i} of {} channels is not 8-channel aligned", input.channels));
                }
                if !scaled(spec(input), spec(output), *factor, 0) {
                    return Err(format!("upsampling {i}: its output is not {factor} times its input"));
                }
            }
            Step::EdgePad { input, output, pad } => {
                if into_output || !copies_by_8(input, output) {
                    return Err(format!("edge padding {i} of {} channels is not 8-channel aligned", input.channels));
                }
                if !scaled(spec(input), spec(output), 1, *pad) {
                    return Err(format!("edge padding {i}: its output is not its input plus {pad} pixels a side"));
                }
            }
            Step::SpaceToDepth { input, output, offset } => {
                let c = input.channels;
                if into_output || !aligned(input) || !aligned(output) || c % 8 != 0 || output.channels != 4 * c {
                    return Err(format!(
                        "space to depth {i} of {c} channels into {} is not 8-channel aligned",
                        output.channels
                    ));
                }
                // floor((scale · side + extra − offset) / 2) is scale/2 · side + (extra − offset)/2 when scale · side is
                // even: at every side the program runs (a multiple of its align)
                let (from, to) = (spec(input), spec(output));
                let even = (from.scale.num * program.align).is_multiple_of(2 * from.scale.den);
                if from.extra < *offset
                    || to.scale != from.scale.times(1, 2)
                    || to.extra != (from.extra - offset) / 2
                    || !even
                {
                    return Err(format!("space to depth {i}: its output is not half its input less {offset} pixels"));
                }
            }
            Step::SqueezeExcite { input, output, reduce, reduce_bias, expand, expand_bias, inset } => {
                let (c, m) = (input.channels, reduce_bias.len());
                let weights = reduce.len() == m * c && expand.len() == c * m && expand_bias.len() == c;
                if into_output || !aligned(input) || !aligned(output) || c % 8 != 0 || output.channels != c {
                    return Err(format!("squeeze and excitation {i} of {c} channels is not 8-channel aligned"));
                }
                if c > squeeze_excite::MAX_CHANNELS || m > squeeze_excite::MAX_HIDDEN || !weights {
                    return Err(format!(
                        "squeeze and excitation {i}: {c} channels and {m} hidden units the kernels do not take"
                    ));
                }
                if spec(input) != spec(output) || spec(input).extra < 2 * inset {
                    return Err(format!("squeeze and excitation {i}: its output is not at its input's size"));
                }
            }
            Step::Shuffle { input, output, factor, offset, shift, residual } => {
                let (f, o, c) = (*factor, *offset, output.channels);
                if input.channels != (f * f) as usize * c || input.offset + input.channels > stride(input) {
                    return Err(format!("depth to space {i} reads {} channels for {c}", input.channels));
                }
                let (from, to) = (spec(input), spec(output));
                let shifted = if into_output { 0 } else { 2 * shift };
                if from.extra < 2 * o
                    || to.scale != from.scale.times(f, 1)
                    || to.extra != f * (from.extra - 2 * o) + shifted
                {
                    return Err(format!("depth to space {i}: its output is not {f} times its input less {o} pixels"));
                }
                if into_output && *shift != 0 {
                    return Err(format!("depth to space {i} writes the model output {shift} pixels in"));
                }
                // 8 channels at a time from aligned slices; fewer (3 of a phase output) with zeros after them, into a
                // buffer nothing else writes
                let vector = c % 8 == 0;
                let whole = vector || (output.offset == 0 && writers(output.buffer) == 1);
                let room = output.offset + c.next_multiple_of(8) <= stride(output);
                if !into_output && (!whole || !room || !aligned(output) || (vector && !aligned(input))) {
                    return Err(format!("depth to space {i} of {c} channels is not 8-channel aligned"));
                }
                if let Some(r) = residual {
                    let rs = spec(&r.slice);
                    // its pixels from `offset` over the output's size lie in its buffer
                    let reaches = rs.scale == to.scale && rs.extra >= to.extra + r.offset;
                    if r.slice.channels != c || (vector && !into_output && !aligned(&r.slice)) || !reaches {
                        return Err(format!(
                            "depth to space {i}: its residual is not {c} channels at the output's size"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
