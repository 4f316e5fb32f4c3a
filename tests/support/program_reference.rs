// SPDX-License-Identifier: MPL-2.0
//! A plain CPU interpreter of native [`Program`]s, written from the step definitions in `vfupscale::native::program`
//! (not from the kernels): the reference both the lowering (against ONNX Runtime, tests/native_program.rs) and the
//! GPU kernels (tests/gpu/dense_steps.rs) are checked against.

#![allow(dead_code)] // each test binary uses some of this

use vfupscale::frame::Size;
use vfupscale::native::program::{Activation, ConvStep, Program, Step};

/// The program's convolutions, in order.
pub fn convs(p: &Program) -> impl Iterator<Item = &ConvStep> {
    p.steps.iter().filter_map(|s| if let Step::Conv(c) = s { Some(c) } else { None })
}

/// The largest absolute difference of two equally long outputs.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `p` on the CPU for an input of any size, as an engine runs it: the next multiple of the program's `align` with the
/// last rows and columns repeated ([`grown_to_class`]), the output cropped to `scale ×` the input. Planar
/// `[batch][3][h][w]` in and out; also the buffers as [`run_program`] gives them at the grown size.
pub fn run_program_any_size(
    p: &Program,
    input: &[f32],
    size: Size,
    batch: usize,
    store: fn(f32) -> f32,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let (grown, run) = grown_to_class(p, input, size, batch);
    let (w, h, rw, rh) = (size.width as usize, size.height as usize, run.width as usize, run.height as usize);
    let (buffers, out) = run_program(p, &grown, run, batch, store);
    let s = p.scale as usize;
    let mut cropped = vec![0.0f32; batch * 3 * s * w * s * h];
    for plane in 0..batch * 3 {
        for y in 0..s * h {
            for x in 0..s * w {
                cropped[(plane * s * h + y) * s * w + x] = out[(plane * s * rh + y) * s * rw + x];
            }
        }
    }
    (buffers, cropped)
}

/// Planar `input` of `size` grown to the next multiple of the program's `align` with the last rows and columns
/// repeated, and that size.
fn grown_to_class(p: &Program, input: &[f32], size: Size, batch: usize) -> (Vec<f32>, Size) {
    let a = p.align;
    let run = Size::new(size.width.next_multiple_of(a), size.height.next_multiple_of(a));
    let (w, h, rw, rh) = (size.width as usize, size.height as usize, run.width as usize, run.height as usize);
    let mut grown = vec![0.0f32; batch * 3 * rw * rh];
    for plane in 0..batch * 3 {
        for y in 0..rh {
            for x in 0..rw {
                grown[(plane * rh + y) * rw + x] = input[(plane * h + y.min(h - 1)) * w + x.min(w - 1)];
            }
        }
    }
    (grown, run)
}

/// `p` on the CPU, accumulating in f64, with every stored value passed through `store` (fp16 rounding to compare with
/// the GPU, the identity to compare with an fp32 reference): each buffer as NHWC of its channels (the input as its 3),
/// and the output planar `[batch][3][h][w]`.
pub fn run_program(
    p: &Program,
    input: &[f32],
    size: Size,
    batch: usize,
    store: fn(f32) -> f32,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let px = |b: usize| p.buffers[b].size(size).pixels() * batch;
    let mut buffers: Vec<Vec<f32>> = (0..p.buffers.len()).map(|b| vec![0.0; px(b) * p.buffers[b].channels]).collect();
    // the input, planar [batch][3][h][w] -> NHWC
    let plane = size.pixels();
    for n in 0..batch {
        for c in 0..3 {
            for i in 0..plane {
                buffers[0][(n * plane + i) * 3 + c] = input[(n * 3 + c) * plane + i];
            }
        }
    }
    let mut output = vec![0.0f32; 3 * px(p.output.buffer)];
    for step in &p.steps {
        match step {
            Step::Conv(c) => {
                let at = p.buffers[c.output.buffer].size(size);
                let (w, h) = (at.width as usize, at.height as usize);
                let (sin, sout) = (p.buffers[c.input.buffer].channels, p.buffers[c.output.buffer].channels);
                let (cin, cout) = (c.input.channels, c.output.channels);
                // the input is read upsampled by f: pixel (x, y) of the upsampled image is (x / f, y / f)
                let f = c.upsample as usize;
                let (iw, ih) = (w / f, h / f);
                assert_eq!(p.buffers[c.input.buffer].size(size), Size::new(iw as u32, ih as u32), "upsampled input");
                let mut out = vec![0.0f32; batch * w * h * cout];
                for n in 0..batch {
                    for y in 0..h {
                        for x in 0..w {
                            for co in 0..cout {
                                let mut acc = c.bias[co] as f64;
                                for ky in 0..3 {
                                    for kx in 0..3 {
                                        let (sy, sx) = (y as i64 + ky as i64 - 1, x as i64 + kx as i64 - 1);
                                        if sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                                            continue;
                                        }
                                        let (sy, sx) = (sy as usize / f, sx as usize / f);
                                        let at = ((n * ih + sy) * iw + sx) * sin + c.input.offset;
                                        for ci in 0..cin {
                                            let wt = c.weights[((co * cin + ci) * 3 + ky) * 3 + kx] as f64;
                                            acc += wt * buffers[c.input.buffer][at + ci] as f64;
                                        }
                                    }
                                }
                                let mut v = acc as f32;
                                if let Activation::Leaky(s) = c.activation {
                                    v = if v >= 0.0 { v } else { s * v };
                                }
                                v *= c.alpha;
                                if !c.residuals.is_empty() {
                                    // the kernel rounds the scaled convolution to fp16, then adds in fp32
                                    v = store(v);
                                    for (r, f) in &c.residuals {
                                        let rs = p.buffers[r.buffer].channels;
                                        v += f * buffers[r.buffer][((n * h + y) * w + x) * rs + r.offset + co];
                                    }
                                }
                                out[((n * h + y) * w + x) * cout + co] = store(v);
                            }
                        }
                    }
                }
                for i in 0..batch * w * h {
                    for co in 0..cout {
                        let v = out[i * cout + co];
                        if c.output.buffer == p.output.buffer {
                            let (n, at) = (i / (w * h), i % (w * h));
                            output[(n * cout + co) * w * h + at] = v;
                        } else {
                            buffers[c.output.buffer][i * sout + c.output.offset + co] = v;
                        }
                    }
                }
            }
            Step::Nearest { input, output: to, factor } => {
                let at = p.buffers[input.buffer].size(size);
                let (w, h, f) = (at.width as usize, at.height as usize, *factor as usize);
                let (sin, sout) = (p.buffers[input.buffer].channels, p.buffers[to.buffer].channels);
                for n in 0..batch {
                    for y in 0..h * f {
                        for x in 0..w * f {
                            for ch in 0..input.channels {
                                let v = buffers[input.buffer][((n * h + y / f) * w + x / f) * sin + input.offset + ch];
                                buffers[to.buffer][((n * h * f + y) * w * f + x) * sout + to.offset + ch] = v;
                            }
                        }
                    }
                }
            }
            Step::EdgePad { input, output: to, pad } => {
                let at = p.buffers[input.buffer].size(size);
                let (w, h, pad) = (at.width as i64, at.height as i64, *pad as i64);
                let (ow, oh) = (w + 2 * pad, h + 2 * pad);
                let (sin, sout) = (p.buffers[input.buffer].channels, p.buffers[to.buffer].channels);
                for n in 0..batch as i64 {
                    for y in 0..oh {
                        for x in 0..ow {
                            let (sy, sx) = ((y - pad).clamp(0, h - 1), (x - pad).clamp(0, w - 1));
                            for ch in 0..input.channels {
                                let v =
                                    buffers[input.buffer][(((n * h + sy) * w + sx) as usize) * sin + input.offset + ch];
                                buffers[to.buffer][(((n * oh + y) * ow + x) as usize) * sout + to.offset + ch] = v;
                            }
                        }
                    }
                }
            }
            Step::Shuffle { input, output: to, factor, offset, shift, residual } => {
                let at = p.buffers[input.buffer].size(size);
                let (w, h, f, o, sh) =
                    (at.width as usize, at.height as usize, *factor as usize, *offset as usize, *shift as usize);
                let sin = p.buffers[input.buffer].channels;
                let into_output = to.buffer == p.output.buffer;
                let out_size = if into_output { size.scaled(p.scale) } else { p.buffers[to.buffer].size(size) };
                let (ow, oh) = (out_size.width as usize, out_size.height as usize);
                let c = to.channels;
                for n in 0..batch {
                    for y in 0..f * (h - 2 * o) {
                        for x in 0..f * (w - 2 * o) {
                            let (tx, ty) = (sh + x, sh + y);
                            if tx >= ow || ty >= oh {
                                continue;
                            }
                            for ch in 0..c {
                                let src = ((n * h + o + y / f) * w + o + x / f) * sin + input.offset;
                                let mut v = buffers[input.buffer][src + ((y % f) * f + x % f) * c + ch];
                                if let Some(r) = residual {
                                    let rs = p.buffers[r.slice.buffer].size(size);
                                    let (rw, rh) = (rs.width as usize, rs.height as usize);
                                    let (rx, ry) = (tx + r.offset as usize, ty + r.offset as usize);
                                    assert!(rx < rw && ry < rh, "a residual pixel outside its buffer");
                                    let stride = p.buffers[r.slice.buffer].channels;
                                    let at = ((n * rh + ry) * rw + rx) * stride + r.slice.offset + ch;
                                    v = store(v + r.beta * buffers[r.slice.buffer][at]);
                                }
                                if into_output {
                                    output[((n * c + ch) * oh + ty) * ow + tx] = v;
                                } else {
                                    let sout = p.buffers[to.buffer].channels;
                                    buffers[to.buffer][((n * oh + ty) * ow + tx) * sout + to.offset + ch] = v;
                                }
                            }
                        }
                    }
                }
            }
            Step::SpaceToDepth { input, output: to, offset } => {
                let (at, out) = (p.buffers[input.buffer].size(size), p.buffers[to.buffer].size(size));
                let (w, h, o) = (at.width as usize, at.height as usize, *offset as usize);
                let (ow, oh) = (out.width as usize, out.height as usize);
                assert!(o + 2 * ow <= w && o + 2 * oh <= h, "space to depth past its input");
                let (sin, sout, c) = (p.buffers[input.buffer].channels, p.buffers[to.buffer].channels, input.channels);
                for n in 0..batch {
                    for y in 0..oh {
                        for x in 0..ow {
                            for d in 0..4 {
                                let (sx, sy) = (o + 2 * x + d % 2, o + 2 * y + d / 2);
                                for ch in 0..c {
                                    let v = buffers[input.buffer][((n * h + sy) * w + sx) * sin + input.offset + ch];
                                    buffers[to.buffer][((n * oh + y) * ow + x) * sout + to.offset + d * c + ch] = v;
                                }
                            }
                        }
                    }
                }
            }
            Step::SqueezeExcite { input, output: to, inset, reduce, reduce_bias, expand, expand_bias } => {
                let at = p.buffers[input.buffer].size(size);
                let (w, h, i) = (at.width as usize, at.height as usize, *inset as usize);
                let (sin, sout, c) = (p.buffers[input.buffer].channels, p.buffers[to.buffer].channels, input.channels);
                let m = reduce_bias.len();
                let pixel = |n: usize, y: usize, x: usize| ((n * h + y) * w + x) * sin + input.offset;
                for n in 0..batch {
                    let mut mean = vec![0.0f64; c];
                    for y in i..h - i {
                        for x in i..w - i {
                            for (ch, acc) in mean.iter_mut().enumerate() {
                                *acc += buffers[input.buffer][pixel(n, y, x) + ch] as f64;
                            }
                        }
                    }
                    let count = ((h - 2 * i) * (w - 2 * i)) as f64;
                    let hidden: Vec<f64> = (0..m)
                        .map(|k| {
                            let v = reduce_bias[k] as f64
                                + (0..c).map(|ch| reduce[k * c + ch] as f64 * mean[ch] / count).sum::<f64>();
                            v.max(0.0)
                        })
                        .collect();
                    let gate: Vec<f32> = (0..c)
                        .map(|ch| {
                            let v = expand_bias[ch] as f64
                                + (0..m).map(|k| expand[ch * m + k] as f64 * hidden[k]).sum::<f64>();
                            (1.0 / (1.0 + (-v).exp())) as f32
                        })
                        .collect();
                    for y in 0..h {
                        for x in 0..w {
                            for ch in 0..c {
                                let v = buffers[input.buffer][pixel(n, y, x) + ch] * gate[ch];
                                buffers[to.buffer][((n * h + y) * w + x) * sout + to.offset + ch] = store(v);
                            }
                        }
                    }
                }
            }
        }
    }
    (buffers, output)
}
