// SPDX-License-Identifier: MPL-2.0
//! Test frames for the core's tests: pseudo-random frames of any format, the images in `tests/data` scaled and
//! converted, PSNR.

#![allow(dead_code)] // each test binary uses some of these

use vfupscale::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
use vfupscale::cpu;
use vfupscale::frame::{Image, PixelFormat, Rect, Size};

#[path = "ppm.rs"]
mod ppm;

pub const BT709: Colorimetry = Colorimetry::new(Matrix::Bt709, Range::Limited);

/// An NV12 frame of pseudo-random bytes.
pub fn random_frame(size: Size, seed: u64) -> Image {
    random_frame_of(PixelFormat::Nv12, size, seed)
}

/// A frame of `format` of pseudo-random bytes (16-bit samples with their unused low bits zero, as P010 has them).
pub fn random_frame_of(format: PixelFormat, size: Size, seed: u64) -> Image {
    let mut img = Image::new(format, size);
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (s >> 48) as u16
    };
    let layout = format.layout();
    for plane in img.planes.iter_mut() {
        if layout.sample_bytes == 1 {
            plane.iter_mut().for_each(|v| *v = next() as u8);
        } else {
            let mask = (layout.max_code as u16) << layout.shift;
            for pair in plane.chunks_mut(2) {
                pair.copy_from_slice(&(next() & mask).to_le_bytes());
            }
        }
    }
    img
}

/// `tests/data/<name>` scaled (bilinear) to `size` as planar RGB in 0..1.
fn scaled_rgb(name: &str, size: Size) -> Vec<f32> {
    let (w, h, rgb) = ppm::read_ppm(&ppm::test_image_path(name));
    let (ow, oh) = (size.width as usize, size.height as usize);
    let mut planar = vec![0f32; 3 * ow * oh];
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * h as f32 / oh as f32 - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * w as f32 / ow as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for k in 0..3 {
                let p = |xx: usize, yy: usize| rgb[(yy * w + xx) * 3 + k] as f32 / 255.0;
                let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
                let bottom = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
                planar[k * ow * oh + y * ow + x] = top * (1.0 - ty) + bottom * ty;
            }
        }
    }
    planar
}

/// `tests/data/<name>` scaled (bilinear) to `size` and converted to NV12 (BT.709 limited).
pub fn test_image(name: &str, size: Size) -> Image {
    test_image_as(name, size, PixelFormat::Nv12, BT709)
}

/// `tests/data/<name>` scaled (bilinear) to `size` and converted to `format` with `colour` (opaque where the
/// format has alpha).
pub fn test_image_as(name: &str, size: Size, format: PixelFormat, colour: Colorimetry) -> Image {
    let mut img = Image::new(format, size);
    cpu::planar_to_frame(&scaled_rgb(name, size), &rgb_to_code(colour, format.depth()), &mut img.view_mut());
    let opaque = Image::new(PixelFormat::Rgb, Size::new(1, 1));
    cpu::fill_extra(&opaque.view(), &mut img.view_mut());
    img
}

/// `tests/data/<name>` scaled to `size`, through NV12, as planar RGB in 0..1.
pub fn planar_image(name: &str, size: Size) -> Vec<f32> {
    let img = test_image(name, size);
    let mut planar = vec![0f32; 3 * size.pixels()];
    cpu::frame_to_planar(&img.view(), &code_to_rgb(BT709, 8), Rect::of_size(size), &mut planar);
    planar
}

/// 16-bit little-endian samples of a plane, as values of `bits` bits (the high bits of each sample).
pub fn samples16(plane: &[u8], bits: u32) -> Vec<u16> {
    plane.chunks(2).map(|p| u16::from_le_bytes([p[0], p[1]]) >> (16 - bits)).collect()
}

/// PSNR of 16-bit planes holding `bits`-bit values (in their high bits) in dB.
pub fn psnr16(a: &[u8], b: &[u8], bits: u32) -> f64 {
    let (a, b) = (samples16(a, bits), samples16(b, bits));
    let mse = a.iter().zip(&b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    let peak = ((1u32 << bits) - 1) as f64;
    10.0 * (peak * peak / mse.max(1e-12)).log10()
}

/// PSNR of 8-bit planes in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// PSNR of values in 0..1 (clamped) in dB.
pub fn psnr_unit(a: &[f32], b: &[f32]) -> f64 {
    let mse =
        a.iter().zip(b).map(|(&x, &y)| (x.clamp(0.0, 1.0) as f64 - y.clamp(0.0, 1.0) as f64).powi(2)).sum::<f64>()
            / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}
