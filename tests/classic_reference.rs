// SPDX-License-Identifier: MPL-2.0
//! The classic resampler (CPU path, which the CUDA kernels mirror operation for operation) against an independent
//! float64 reference written here from the textbook definitions: Lanczos-3 `sinc(x)·sinc(x/3)` and Keys' cubic
//! convolution (a = −0.5), sample centres at `i + 0.5`, the kernel stretched by the ratio when downscaling, edge
//! samples repeated, weights normalised. Nothing here calls `vfupscale::classic` but the function under test.

use vfupscale::classic::{ClassicMethod, Resampler};
use vfupscale::frame::Size;

fn sinc(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) }
}

fn kernel(method: ClassicMethod, x: f64) -> f64 {
    let a = x.abs();
    match method {
        ClassicMethod::Lanczos if a < 3.0 => sinc(x) * sinc(x / 3.0),
        ClassicMethod::Bicubic if a <= 1.0 => 1.5 * a.powi(3) - 2.5 * a * a + 1.0,
        ClassicMethod::Bicubic if a < 2.0 => -0.5 * a.powi(3) + 2.5 * a * a - 4.0 * a + 2.0,
        _ => 0.0,
    }
}

/// Weights of every input sample (by index, edges repeated) for output sample `o` of `n_out` from `n_in`.
fn axis_weights(method: ClassicMethod, n_in: usize, n_out: usize, o: usize) -> Vec<(usize, f64)> {
    let ratio = n_in as f64 / n_out as f64;
    let stretch = ratio.max(1.0);
    let centre = (o as f64 + 0.5) * ratio;
    let reach = (3.0 * stretch).ceil() as i64 + 2;
    let mut w = Vec::new();
    for i in (centre as i64 - reach)..=(centre as i64 + reach) {
        let v = kernel(method, (i as f64 + 0.5 - centre) / stretch);
        if v != 0.0 {
            w.push((i.clamp(0, n_in as i64 - 1) as usize, v));
        }
    }
    let sum: f64 = w.iter().map(|(_, v)| v).sum();
    w.into_iter().map(|(i, v)| (i, v / sum)).collect()
}

fn reference(method: ClassicMethod, src: &[f32], from: Size, to: Size) -> Vec<f64> {
    let (iw, ih) = (from.width as usize, from.height as usize);
    let (ow, oh) = (to.width as usize, to.height as usize);
    let mut out = vec![0f64; 3 * ow * oh];
    for k in 0..3 {
        for oy in 0..oh {
            let wy = axis_weights(method, ih, oh, oy);
            for ox in 0..ow {
                let wx = axis_weights(method, iw, ow, ox);
                let mut sum = 0.0;
                for &(y, a) in &wy {
                    for &(x, b) in &wx {
                        sum += a * b * src[k * iw * ih + y * iw + x] as f64;
                    }
                }
                out[k * ow * oh + oy * ow + ox] = sum;
            }
        }
    }
    out
}

/// A test image with edges, gradients and noise in 0..1.
fn image(size: Size, seed: u32) -> Vec<f32> {
    let mut s = seed;
    let (w, h) = (size.width as usize, size.height as usize);
    (0..3 * w * h)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let (x, y) = (i % w, (i / w) % h);
            let edge = if (x / 3 + y / 2) % 2 == 0 { 0.8 } else { 0.2 };
            0.5 * edge + 0.3 * (x as f32 / w as f32) + 0.2 * ((s >> 8) as f32 / 16_777_216.0)
        })
        .collect()
}

#[test]
fn classic_resampling_matches_a_float64_reference() {
    let cases = [
        (Size::new(20, 12), Size::new(40, 24)),
        (Size::new(13, 7), Size::new(39, 21)),
        (Size::new(16, 9), Size::new(64, 36)),
        (Size::new(40, 24), Size::new(20, 12)),
        (Size::new(30, 21), Size::new(20, 14)),
        (Size::new(17, 11), Size::new(29, 5)),
        (Size::new(5, 3), Size::new(1, 1)),
        (Size::new(1, 1), Size::new(4, 3)),
    ];
    for method in [ClassicMethod::Lanczos, ClassicMethod::Bicubic] {
        for (n, (from, to)) in cases.into_iter().enumerate() {
            let src = image(from, n as u32 + 3);
            let mut got = vec![0f32; 3 * to.pixels()];
            Resampler::new(method, from, to).resample(&src, &mut got);
            let want = reference(method, &src, from, to);
            let worst = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
            assert!(worst < 2e-6, "{method} {from} -> {to}: largest difference {worst:e}");
        }
    }
}

#[test]
fn lanczos_upscaling_reproduces_a_band_limited_signal() {
    // a slow sinusoid is reproduced by Lanczos-3 to a few parts in a thousand away from the edges
    let (from, to) = (Size::new(48, 4), Size::new(192, 16));
    let f = |x: f64| 0.5 + 0.4 * (2.0 * std::f64::consts::PI * x / 24.0).sin();
    let mut src = vec![0f32; 3 * from.pixels()];
    for (i, v) in src.iter_mut().enumerate() {
        *v = f((i % 48) as f64 + 0.5) as f32;
    }
    let mut out = vec![0f32; 3 * to.pixels()];
    Resampler::new(ClassicMethod::Lanczos, from, to).resample(&src, &mut out);
    for (ox, &v) in out.iter().enumerate().take(168).skip(24) {
        let x = (ox as f64 + 0.5) / 4.0;
        assert!((v as f64 - f(x)).abs() < 5e-3, "x {x}: {v} vs {}", f(x));
    }
}
