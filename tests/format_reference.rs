// SPDX-License-Identifier: MPL-2.0
//! The P010 and packed RGB(A) conversions of the CPU path (which the CUDA kernels mirror operation for operation)
//! against an independent float64 reference written here from the definitions: P010 holds 10-bit values in the
//! high bits of 16-bit little-endian words (GStreamer's `P010_10LE`); 10-bit limited range is Y 64–940 and Cb/Cr
//! 64–960 around 512, full range 0–1023 (ITU-R BT.2100 and GStreamer's `gst_video_color_range_offsets`); packed RGB
//! formats hold one byte per component in the order their name gives; alpha is upscaled bilinearly with centred
//! sampling and is never seen by the model. The Y'CbCr formulas are `support/reference.rs`'s.

use vfupscale::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
use vfupscale::cpu::{fill_extra, frame_to_planar, planar_to_frame};
use vfupscale::frame::{Image, PixelFormat, Rect, Size};

#[path = "support/images.rs"]
mod images;
use images::random_frame_of;
#[path = "support/reference.rs"]
mod reference;
use reference::YUV_COLOURS as YUV;

const SIZES: [Size; 3] = [Size::new(16, 8), Size::new(17, 9), Size::new(5, 3)];

/// The 10-bit value of sample `i` of a P010 plane; its low 6 bits must be zero.
fn p010(plane: &[u8], i: usize) -> f64 {
    let word = u16::from_le_bytes([plane[2 * i], plane[2 * i + 1]]);
    assert_eq!(word & 0x3f, 0, "sample {i}: the low 6 bits of a P010 word are zero");
    (word >> 6) as f64
}

/// Planar RGB with values beyond 0..1 too (the conversions clamp).
fn random_tensor(size: Size, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..3 * size.pixels())
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 16_777_216.0 * 1.2 - 0.1
        })
        .collect()
}

/// Counts values off by one against the rounded reference (never more than one) and returns how many.
fn compare_codes(got: impl Iterator<Item = (f64, f64, String)>, max: f64) -> usize {
    let mut off = 0;
    for (got, want, what) in got {
        let want = want.round().clamp(0.0, max);
        let d = (got - want).abs();
        assert!(d <= 1.0, "{what}: {got} vs {want}");
        off += (d > 0.0) as usize;
    }
    off
}

#[test]
fn p010_to_planar_matches_reference() {
    for (n, c) in YUV.into_iter().enumerate() {
        for size in SIZES {
            let img = random_frame_of(PixelFormat::P010, size, n as u64 + 3);
            let mut t = vec![0f32; 3 * size.pixels()];
            frame_to_planar(&img.view(), &code_to_rgb(c, 10), Rect::of_size(size), &mut t);
            let (w, plane) = (size.width as usize, size.pixels());
            for y in 0..size.height as usize {
                for x in 0..w {
                    let luma = p010(&img.planes[0][y * 2 * w..], x);
                    let cw = size.chroma().width as usize;
                    let chroma =
                        |k| reference::chroma(size, x, y, |i, j| p010(&img.planes[1][j * 4 * cw..], 2 * i + k));
                    let rgb = reference::to_rgb(c, 10, luma, chroma(0), chroma(1));
                    for k in 0..3 {
                        let (got, want) = (t[k * plane + y * w + x] as f64, rgb[k].clamp(0.0, 1.0));
                        assert!((got - want).abs() < 2e-6, "{c:?} {size} ({x},{y}) channel {k}: {got} vs {want}");
                    }
                }
            }
        }
    }
}

#[test]
fn planar_to_p010_matches_reference() {
    for (n, c) in YUV.into_iter().enumerate() {
        for size in SIZES {
            let t = random_tensor(size, n as u32 * 17 + 5);
            let mut out = Image::new(PixelFormat::P010, size);
            planar_to_frame(&t, &rgb_to_code(c, 10), &mut out.view_mut());
            let (w, h, plane) = (size.width as usize, size.height as usize, size.pixels());
            let rgb_at = |x: usize, y: usize| [0, 1, 2].map(|k| (t[k * plane + y * w + x] as f64).clamp(0.0, 1.0));
            let luma = (0..h * w).map(|i| {
                let (x, y) = (i % w, i / w);
                (
                    p010(&out.planes[0][y * 2 * w..], x),
                    reference::to_yuv(c, 10, rgb_at(x, y))[0],
                    format!("{c:?} Y({x},{y})"),
                )
            });
            let mut off = compare_codes(luma, 1023.0);
            let cs = size.chroma();
            let cw = cs.width as usize;
            let chroma = (0..cs.pixels()).flat_map(|i| {
                let (cx, cy) = (i % cw, i / cw);
                let yuv = reference::to_yuv(c, 10, reference::block_mean(w, h, cx, cy, rgb_at));
                let row = &out.planes[1][cy * 4 * cw..];
                [1, 2].map(|k| (p010(row, 2 * cx + k - 1), yuv[k], format!("{c:?} C{k}({cx},{cy})")))
            });
            off += compare_codes(chroma, 1023.0);
            // f32 vs f64 may round a value sitting on .5 differently, never more than rarely
            assert!(off * 100 <= 3 * size.pixels(), "{c:?} {size}: {off} values off by one");
        }
    }
}

#[test]
fn ten_bit_output_of_an_eight_bit_frame_keeps_its_values_four_times_over() {
    // the model's output is float: an NV12 source written as P010 is the same signal at four times the codes
    let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
    let size = Size::new(8, 4);
    let mut nv12 = Image::new(PixelFormat::Nv12, size);
    nv12.planes[0].iter_mut().enumerate().for_each(|(i, v)| *v = 16 + (i as u8 * 7) % 219);
    let mut t = vec![0f32; 3 * size.pixels()];
    frame_to_planar(&nv12.view(), &code_to_rgb(c, 8), Rect::of_size(size), &mut t);
    let mut out = Image::new(PixelFormat::P010, size);
    planar_to_frame(&t, &rgb_to_code(c, 10), &mut out.view_mut());
    for (i, &y8) in nv12.planes[0].iter().enumerate() {
        assert_eq!(p010(&out.planes[0], i), 4.0 * y8 as f64, "luma {i}");
    }
}

/// The byte of each of R, G, B in a pixel of a packed format, and its bytes per pixel, as the names say.
fn packed_order(format: PixelFormat) -> ([usize; 3], usize) {
    match format {
        PixelFormat::Rgba | PixelFormat::Rgbx => ([0, 1, 2], 4),
        PixelFormat::Bgra | PixelFormat::Bgrx => ([2, 1, 0], 4),
        PixelFormat::Rgb => ([0, 1, 2], 3),
        PixelFormat::Nv12 | PixelFormat::P010 => unreachable!(),
    }
}

const PACKED: [PixelFormat; 5] =
    [PixelFormat::Rgba, PixelFormat::Bgra, PixelFormat::Rgbx, PixelFormat::Bgrx, PixelFormat::Rgb];

#[test]
fn packed_rgb_to_planar_and_back_match_reference() {
    for (n, format) in PACKED.into_iter().enumerate() {
        for (range, (off, scale)) in [(Range::Full, (0.0, 255.0)), (Range::Limited, (16.0, 219.0))] {
            let c = Colorimetry::new(Matrix::Rgb, range);
            for size in SIZES {
                let (order, bpp) = packed_order(format);
                let img = random_frame_of(format, size, n as u64 + 11);
                let mut t = vec![0f32; 3 * size.pixels()];
                frame_to_planar(&img.view(), &code_to_rgb(c, 8), Rect::of_size(size), &mut t);
                let w = size.width as usize;
                for i in 0..size.pixels() {
                    let (x, y) = (i % w, i / w);
                    for k in 0..3 {
                        let code = img.planes[0][y * bpp * w + bpp * x + order[k]] as f64;
                        let (got, want) = (t[k * size.pixels() + i] as f64, ((code - off) / scale).clamp(0.0, 1.0));
                        assert!((got - want).abs() < 2e-6, "{format} {range:?} ({x},{y}) {k}: {got} vs {want}");
                    }
                }
                // back: each component quantised alone; the fourth byte is not touched
                let t = random_tensor(size, n as u32 + 100);
                let mut out = Image::new(format, size);
                out.planes[0].iter_mut().for_each(|v| *v = 77);
                planar_to_frame(&t, &rgb_to_code(c, 8), &mut out.view_mut());
                let t = &t;
                let codes = (0..size.pixels()).flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    let px = &out.planes[0][y * bpp * w + bpp * x..];
                    if bpp == 4 {
                        assert_eq!(px[3], 77, "{format}: the fourth byte is fill_extra's");
                    }
                    let v = move |k: usize| (t[k * size.pixels() + i] as f64).clamp(0.0, 1.0);
                    (0..3).map(move |k| (px[order[k]] as f64, off + scale * v(k), format!("{format} ({x},{y}) {k}")))
                });
                let off_by_one = compare_codes(codes, 255.0);
                assert!(off_by_one * 100 <= 3 * size.pixels(), "{format} {size}: {off_by_one} values off by one");
            }
        }
    }
}

/// Bilinear upscaling with centred sampling, in float64: the sample of output (x, y) sits at ((x + 0.5) / s - 0.5,
/// (y + 0.5) / s - 0.5) in the source, clamped to its edges.
fn ref_alpha(src: &Image, scale: usize, x: usize, y: usize) -> f64 {
    let (w, h) = (src.size.width as usize, src.size.height as usize);
    let pos = |o: usize, len: usize| ((o as f64 + 0.5) / scale as f64 - 0.5).clamp(0.0, (len - 1) as f64);
    let (fx, fy) = (pos(x, w), pos(y, h));
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (ax, ay) = (fx - x0 as f64, fy - y0 as f64);
    let a = |x: usize, y: usize| src.planes[0][(y * w + x) * 4 + 3] as f64;
    (1.0 - ay) * ((1.0 - ax) * a(x0, y0) + ax * a(x1, y0)) + ay * ((1.0 - ax) * a(x0, y1) + ax * a(x1, y1))
}

#[test]
fn alpha_is_upscaled_bilinearly_and_other_fourth_bytes_are_opaque() {
    for scale in [2u32, 3, 4] {
        for size in [Size::new(7, 5), Size::new(1, 1), Size::new(16, 3)] {
            for (src_format, dst_format) in
                [(PixelFormat::Rgba, PixelFormat::Bgra), (PixelFormat::Bgra, PixelFormat::Rgba)]
            {
                let src = random_frame_of(src_format, size, scale as u64);
                let out_size = size.scaled(scale);
                let mut out = Image::new(dst_format, out_size);
                fill_extra(&src.view(), &mut out.view_mut());
                let ow = out_size.width as usize;
                let alpha = (0..out_size.pixels()).map(|i| {
                    let (x, y) = (i % ow, i / ow);
                    let want = ref_alpha(&src, scale as usize, x, y);
                    (out.planes[0][4 * i + 3] as f64, want, format!("x{scale} {size} alpha ({x},{y})"))
                });
                let off = compare_codes(alpha, 255.0);
                assert!(off * 100 <= 3 * out_size.pixels(), "x{scale} {size}: {off} values off by one");
                assert!(out.planes[0].chunks(4).all(|p| p[..3] == [0, 0, 0]), "only the alpha bytes are written");
            }
            // padding, or alpha from a frame without any: opaque
            for (src_format, dst_format) in [
                (PixelFormat::Rgba, PixelFormat::Rgbx),
                (PixelFormat::Rgb, PixelFormat::Rgba),
                (PixelFormat::Bgrx, PixelFormat::Bgra),
            ] {
                let src = random_frame_of(src_format, size, 9);
                let mut out = Image::new(dst_format, size.scaled(scale));
                fill_extra(&src.view(), &mut out.view_mut());
                assert!(out.planes[0].chunks(4).all(|p| p == [0, 0, 0, 255]), "{src_format} → {dst_format}");
            }
        }
    }
}
