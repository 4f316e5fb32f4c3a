// SPDX-License-Identifier: MPL-2.0
//! The colour conversions (the CPU path, which the CUDA kernels mirror operation for operation) checked against
//! an independent float64 reference written from the standards' formulas (`support/reference.rs`): ITU-R
//! BT.601/709/2020 luma coefficients, 8-bit limited (16–235/16–240) and full (0–255, chroma zero at 128)
//! quantisation, centred chroma siting.

use vfupscale::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
use vfupscale::cpu::{frame_to_planar, planar_to_frame};
use vfupscale::frame::{Image, PixelFormat, Rect, Size};

#[path = "support/reference.rs"]
mod reference;
use reference::YUV_COLOURS as ALL;

/// A deterministic test frame with edges, gradients and saturated colours.
fn test_frame(size: Size, seed: u32) -> Image {
    let mut img = Image::new(PixelFormat::Nv12, size);
    let mut s = seed;
    let mut rnd = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 24) as u8
    };
    for v in img.planes.iter_mut().flatten() {
        *v = rnd();
    }
    img
}

#[test]
fn nv12_to_planar_matches_reference() {
    for (n, c) in ALL.into_iter().enumerate() {
        for size in [Size::new(16, 8), Size::new(17, 9), Size::new(5, 3)] {
            let img = test_frame(size, n as u32 + 7);
            let mut t = vec![0f32; 3 * size.pixels()];
            frame_to_planar(&img.view(), &code_to_rgb(c, 8), Rect::of_size(size), &mut t);
            let plane = size.pixels();
            for y in 0..size.height as usize {
                for x in 0..size.width as usize {
                    let yv = img.planes[0][y * size.width as usize + x] as f64;
                    let chroma = |k: usize| {
                        let cw = size.chroma().width as usize;
                        reference::chroma(size, x, y, |i, j| img.planes[1][j * 2 * cw + 2 * i + k] as f64)
                    };
                    let rgb = reference::to_rgb(c, 8, yv, chroma(0), chroma(1));
                    for k in 0..3 {
                        let want = rgb[k].clamp(0.0, 1.0);
                        let got = t[k * plane + y * size.width as usize + x] as f64;
                        assert!((got - want).abs() < 2e-6, "{c:?} {size} ({x},{y}) channel {k}: {got} vs {want}");
                    }
                }
            }
        }
    }
}

#[test]
fn planar_to_nv12_matches_reference() {
    for (n, c) in ALL.into_iter().enumerate() {
        for size in [Size::new(16, 8), Size::new(17, 9), Size::new(5, 3)] {
            // RGB beyond 0..1 too: the conversion must clamp
            let mut s = n as u32 * 31 + 1;
            let t: Vec<f32> = (0..3 * size.pixels())
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 8) as f32 / 16_777_216.0 * 1.2 - 0.1
                })
                .collect();
            let mut out = Image::new(PixelFormat::Nv12, size);
            planar_to_frame(&t, &rgb_to_code(c, 8), &mut out.view_mut());
            let (w, h, plane) = (size.width as usize, size.height as usize, size.pixels());
            let rgb_at = |x: usize, y: usize| [0, 1, 2].map(|k| (t[k * plane + y * w + x] as f64).clamp(0.0, 1.0));
            let mut off_by_one = 0;
            let mut check = |got: u8, want: f64, what: &str| {
                let want = want.round().clamp(0.0, 255.0);
                let d = (got as f64 - want).abs();
                assert!(d <= 1.0, "{c:?} {size} {what}: {got} vs {want}");
                off_by_one += (d > 0.0) as usize;
            };
            for y in 0..h {
                for x in 0..w {
                    check(out.planes[0][y * w + x], reference::to_yuv(c, 8, rgb_at(x, y))[0], &format!("Y({x},{y})"));
                }
            }
            let cs = size.chroma();
            for cy in 0..cs.height as usize {
                for cx in 0..cs.width as usize {
                    let yuv = reference::to_yuv(c, 8, reference::block_mean(w, h, cx, cy, rgb_at));
                    let i = cy * 2 * cs.width as usize + 2 * cx;
                    check(out.planes[1][i], yuv[1], &format!("Cb({cx},{cy})"));
                    check(out.planes[1][i + 1], yuv[2], &format!("Cr({cx},{cy})"));
                }
            }
            // f32 vs f64 may round a value sitting on .5 differently, never more than rarely
            assert!(off_by_one * 100 <= 3 * size.pixels(), "{c:?} {size}: {off_by_one} values off by one");
        }
    }
}

#[test]
fn fp16_tensor_matches_fp32_within_half_precision() {
    let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
    let size = Size::new(32, 16);
    let img = test_frame(size, 3);
    let mut t32 = vec![0f32; 3 * size.pixels()];
    let mut t16 = vec![half::f16::ZERO; 3 * size.pixels()];
    frame_to_planar(&img.view(), &code_to_rgb(c, 8), Rect::of_size(size), &mut t32);
    frame_to_planar(&img.view(), &code_to_rgb(c, 8), Rect::of_size(size), &mut t16);
    for (a, b) in t32.iter().zip(&t16) {
        assert!((a - b.to_f32()).abs() <= 1.0 / 2048.0, "{a} vs {b}");
    }
}
