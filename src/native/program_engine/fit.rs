// SPDX-License-Identifier: MPL-2.0
//! Fitting a lowered [`Program`] to the widths the Hopper kernels take, as a program again, so the CPU interpreter
//! that checks the lowering against ONNX Runtime checks the fitted program too (tests/native_padded.rs):
//!
//! - every working buffer holds a whole number of 32-channel chunks (a convolution reads its input a chunk at a
//!   time): waifu2x UpConv7's 16-channel layer and its 12 phase outputs grow to 32. The channels added are never
//!   written: they keep the zeros the buffers are allocated with;
//! - a convolution reading a buffer's last channels reads the chunk they end in, the added channels through zero
//!   weights; one writing a width the kernels do not store (not a multiple of 8: the 12 phase outputs) writes the next
//!   multiple of 8, through output rows of zero weights and zero bias;
//! - a convolution of more than 64 outputs (UpConv7's 128 and 256) becomes launches of at most 64, of equal widths in
//!   multiples of 8 where it can (96 is 48 + 48, so a residual's 33-64-output kernel takes both), each writing its
//!   channels of the same buffer from the same input.

use crate::native::program::{BufferSpec, ConvStep, Program, Slice, Step};

/// Channels of one pipeline stage of the convolutions (`conv_sm90::CHUNK`).
const CHUNK: usize = 32;
/// The most outputs one convolution kernel computes.
const ROWS: usize = 64;

/// `program` as the kernels run it (idempotent: a fitted program is returned as it is).
pub fn fit_program(program: Program) -> Program {
    let Program { buffers, steps, output, scale, align } = program;
    let old = buffers.clone();
    // the model input is its own layout (repacked into one chunk); the model output is planar
    let widened = |b: usize| b != Program::INPUT && b != output.buffer;
    let buffers: Vec<BufferSpec> = buffers
        .into_iter()
        .enumerate()
        .map(
            |(b, spec)| {
                if widened(b) { BufferSpec { channels: spec.channels.next_multiple_of(CHUNK), ..spec } } else { spec }
            },
        )
        .collect();
    // a slice that ends its buffer's old channels, grown to `multiple` channels where that stays in the buffer
    let grown = |s: Slice, multiple: usize| {
        let channels = s.channels.next_multiple_of(multiple);
        let ends = s.offset + s.channels == old[s.buffer].channels;
        if widened(s.buffer) && ends && s.offset + channels <= buffers[s.buffer].channels {
            Slice { channels, ..s }
        } else {
            s
        }
    };
    let steps = steps
        .into_iter()
        .flat_map(|step| match step {
            Step::Conv(c) => fit_conv(c, grown).into_iter().map(Step::Conv).collect(),
            other => vec![other],
        })
        .collect();
    Program { buffers, steps, output, scale, align }
}

/// Convolution `c` reading the chunks its input ends in and writing whole groups of 8 outputs (grown by `grown`;
/// zero weights for what is added; not the output of one with residuals, which would have to grow alike), split into
/// launches of at most [`ROWS`] outputs.
fn fit_conv(c: ConvStep, grown: impl Fn(Slice, usize) -> Slice) -> Vec<ConvStep> {
    let (cin, cout) = (c.input.channels, c.output.channels);
    let input = grown(c.input, CHUNK);
    let output = if c.residuals.is_empty() { grown(c.output, 8) } else { c.output };
    let (wide_in, wide_out) = (input.channels, output.channels);
    let weight = |co: usize, ci: usize, k: usize| {
        if co < cout && ci < cin { c.weights[(co * cin + ci) * 9 + k] } else { 0.0 }
    };
    parts(wide_out)
        .into_iter()
        .map(|(start, rows)| {
            let weights = (start..start + rows)
                .flat_map(|co| (0..wide_in).flat_map(move |ci| (0..9).map(move |k| (co, ci, k))))
                .map(|(co, ci, k)| weight(co, ci, k))
                .collect();
            let bias = (start..start + rows).map(|co| c.bias.get(co).copied().unwrap_or(0.0)).collect();
            let part = |s: Slice| Slice { offset: s.offset + start, channels: rows, ..s };
            ConvStep {
                input,
                output: part(output),
                weights,
                bias,
                activation: c.activation,
                alpha: c.alpha,
                residuals: c.residuals.iter().map(|&(r, f)| (part(r), f)).collect(),
                upsample: c.upsample,
            }
        })
        .collect()
}

/// `outputs` as `(start, width)` launches of at most [`ROWS`]: as few as can hold them, of one width rounded up to a
/// multiple of 8, the last taking the rest.
fn parts(outputs: usize) -> Vec<(usize, usize)> {
    if outputs <= ROWS {
        return vec![(0, outputs)];
    }
    let width = outputs.div_ceil(outputs.div_ceil(ROWS)).next_multiple_of(8).min(ROWS);
    (0..outputs).step_by(width).map(|start| (start, width.min(outputs - start))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::program::Activation;

    fn conv(input: Slice, output: Slice, residuals: Vec<(Slice, f32)>) -> ConvStep {
        let (cin, cout) = (input.channels, output.channels);
        ConvStep {
            input,
            output,
            // weight (co, ci, k) = co * 1000 + ci * 10 + k + 1: each one tells where it came from
            weights: (0..cout * cin * 9)
                .map(|i| ((i / (cin * 9)) * 1000 + (i / 9 % cin) * 10 + i % 9 + 1) as f32)
                .collect(),
            bias: (0..cout).map(|co| co as f32 + 0.5).collect(),
            activation: Activation::Leaky(0.1),
            alpha: 1.0,
            residuals,
            upsample: 1,
        }
    }

    fn spec(channels: usize) -> BufferSpec {
        BufferSpec::new(channels, 1, 7)
    }

    fn slice(buffer: usize, offset: usize, channels: usize) -> Slice {
        Slice { buffer, offset, channels }
    }

    fn program(buffers: Vec<BufferSpec>, steps: Vec<Step>, output: usize) -> Program {
        Program { buffers, steps, output: slice(output, 0, 3), scale: 1, align: 1 }
    }

    fn convs(p: &Program) -> Vec<&ConvStep> {
        p.steps.iter().filter_map(|s| if let Step::Conv(c) = s { Some(c) } else { None }).collect()
    }

    #[test]
    fn narrow_buffers_grow_to_a_chunk_read_through_zero_weights_and_outputs_to_groups_of_8() {
        let p = program(
            vec![BufferSpec::new(3, 1, 0), spec(16), spec(12), spec(3)],
            vec![
                Step::Conv(conv(slice(0, 0, 3), slice(1, 0, 16), vec![])),
                Step::Conv(conv(slice(1, 0, 16), slice(2, 0, 12), vec![])),
            ],
            3,
        );
        let f = fit_program(p.clone());
        let widths: Vec<usize> = f.buffers.iter().map(|b| b.channels).collect();
        assert_eq!(widths, [3, 32, 32, 3], "the input and the output keep their layouts");
        let c = convs(&f);
        // 16 outputs are stored as they are; the reader takes the whole chunk; 12 outputs become 16
        assert_eq!((c[0].input, c[0].output), (slice(0, 0, 3), slice(1, 0, 16)));
        assert_eq!((c[1].input, c[1].output), (slice(1, 0, 32), slice(2, 0, 16)));
        let original = convs(&p);
        for (fitted, orig) in c.iter().zip(&original) {
            let (cin, wide_in) = (orig.input.channels, fitted.input.channels);
            for co in 0..fitted.output.channels {
                for ci in 0..wide_in {
                    for k in 0..9 {
                        let w = fitted.weights[(co * wide_in + ci) * 9 + k];
                        let expected = if co < orig.output.channels && ci < cin {
                            orig.weights[(co * cin + ci) * 9 + k]
                        } else {
                            0.0
                        };
                        assert_eq!(w, expected, "weight {co} {ci} {k}");
                    }
                }
                let b = if co < orig.output.channels { orig.bias[co] } else { 0.0 };
                assert_eq!(fitted.bias[co], b, "bias {co}");
            }
        }
        assert_eq!(fit_program(f.clone()), f, "fitting twice changes nothing");
    }

    #[test]
    fn wide_convolutions_split_into_64_output_launches_into_one_buffer() {
        let p = program(
            vec![BufferSpec::new(3, 1, 0), spec(128), spec(256), spec(3)],
            vec![
                Step::Conv(conv(slice(0, 0, 3), slice(1, 0, 128), vec![])),
                Step::Conv(conv(slice(1, 0, 128), slice(2, 0, 256), vec![])),
            ],
            3,
        );
        let original = convs(&p)[1].clone();
        let f = fit_program(p);
        let c = convs(&f);
        let outs: Vec<Slice> = c.iter().map(|c| c.output).collect();
        let expected = [(1, 0), (1, 64), (2, 0), (2, 64), (2, 128), (2, 192)].map(|(b, o)| slice(b, o, 64));
        assert_eq!(outs, expected);
        for (part, start) in c[2..].iter().zip([0, 64, 128, 192]) {
            assert_eq!(part.input, slice(1, 0, 128), "every part reads the whole input");
            assert_eq!(part.weights[..], original.weights[start * 128 * 9..(start + 64) * 128 * 9]);
            assert_eq!(part.bias[..], original.bias[start..start + 64]);
        }
    }

    #[test]
    fn launches_are_as_few_as_hold_the_outputs_of_equal_widths_in_groups_of_8() {
        assert_eq!(parts(12), [(0, 12)]);
        assert_eq!(parts(64), [(0, 64)]);
        assert_eq!(parts(72), [(0, 40), (40, 32)]);
        assert_eq!(parts(96), [(0, 48), (48, 48)]);
        assert_eq!(parts(136), [(0, 48), (48, 48), (96, 40)]);
        assert_eq!(parts(256), [(0, 64), (64, 64), (128, 64), (192, 64)]);
    }

    #[test]
    fn residuals_split_with_their_outputs_and_slices_of_whole_chunks_are_left_as_they_are() {
        // the dense blocks' last convolution: 64 outputs plus two residuals, nothing to change
        let dense = program(
            vec![BufferSpec::new(3, 1, 0), spec(192), spec(64), spec(3)],
            vec![Step::Conv(conv(slice(1, 0, 192), slice(2, 0, 64), vec![(slice(1, 0, 64), 0.2)]))],
            3,
        );
        assert_eq!(fit_program(dense.clone()), dense);
        // 96 outputs with a residual: two parts of 48, the residual cut alike (the residual kernel takes 33-64)
        let wide = program(
            vec![BufferSpec::new(3, 1, 0), spec(96), spec(96), spec(3)],
            vec![Step::Conv(conv(slice(1, 0, 96), slice(2, 0, 96), vec![(slice(1, 0, 96), 0.2)]))],
            3,
        );
        let f = fit_program(wide);
        let parts: Vec<(Slice, Slice)> = convs(&f).iter().map(|c| (c.output, c.residuals[0].0)).collect();
        assert_eq!(parts, [(slice(2, 0, 48), slice(1, 0, 48)), (slice(2, 48, 48), slice(1, 48, 48))]);
        // 64 channels at offset 8 of a 72-channel buffer, read and written: whole chunks already, left alone
        let offset = program(
            vec![BufferSpec::new(3, 1, 0), spec(72), spec(64), spec(3)],
            vec![
                Step::Conv(conv(slice(0, 0, 3), slice(1, 8, 64), vec![])),
                Step::Conv(conv(slice(1, 8, 64), slice(2, 0, 64), vec![])),
            ],
            3,
        );
        let f = fit_program(offset);
        let c = convs(&f);
        assert_eq!((c[0].output, c[1].input), (slice(1, 8, 64), slice(1, 8, 64)));
        // 12 outputs with a residual: not grown (the residual would have to be)
        let residual = program(
            vec![BufferSpec::new(3, 1, 0), spec(12), spec(12), spec(3)],
            vec![Step::Conv(conv(slice(1, 0, 12), slice(2, 0, 12), vec![(slice(1, 0, 12), 1.0)]))],
            3,
        );
        assert_eq!(convs(&fit_program(residual))[0].output, slice(2, 0, 12));
    }
}
