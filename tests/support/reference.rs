// SPDX-License-Identifier: MPL-2.0
//! An independent float64 reference of the colour conversions, written from the standards' formulas: ITU-R
//! BT.601/709/2020 luma coefficients; limited and full quantisation at 8 bits (16–235/16–240 around 128; 0–255) and
//! 10 bits (64–940/64–960 around 512; 0–1023), as ITU-R BT.2100 and GStreamer give them; centred chroma siting.
//! Nothing here calls `vfupscale::color`.

#![allow(dead_code)] // each test binary uses some of these

use vfupscale::color::{Colorimetry, Matrix, Range};
use vfupscale::frame::Size;

/// Every YCbCr matrix in both ranges.
pub const YUV_COLOURS: [Colorimetry; 6] = Colorimetry::YCBCR;

fn kr_kb(m: Matrix) -> (f64, f64) {
    match m {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
        Matrix::Bt2020 => (0.2627, 0.0593),
        Matrix::Rgb => unreachable!("Y'CbCr frames have a YCbCr matrix"),
    }
}

/// `(Y offset, Y scale, chroma offset, chroma scale)` of code values of `depth` bits.
fn quantisation(range: Range, depth: u32) -> (f64, f64, f64, f64) {
    match (range, depth) {
        (Range::Limited, 8) => (16.0, 219.0, 128.0, 224.0),
        (Range::Full, 8) => (0.0, 255.0, 128.0, 255.0),
        (Range::Limited, 10) => (64.0, 876.0, 512.0, 896.0),
        (Range::Full, 10) => (0.0, 1023.0, 512.0, 1023.0),
        _ => unreachable!("{depth}-bit code values"),
    }
}

/// Y'CbCr code values of `depth` bits → R'G'B' in 0..1 (not clamped).
pub fn to_rgb(c: Colorimetry, depth: u32, y: f64, cb: f64, cr: f64) -> [f64; 3] {
    let (kr, kb) = kr_kb(c.matrix);
    let (yo, ys, co, cs) = quantisation(c.range, depth);
    let (ey, pb, pr) = ((y - yo) / ys, (cb - co) / cs, (cr - co) / cs);
    // invert E'Y = Kr R + Kg G + Kb B, Pb = (B - Y)/(2(1-Kb)), Pr = (R - Y)/(2(1-Kr))
    let r = ey + 2.0 * (1.0 - kr) * pr;
    let b = ey + 2.0 * (1.0 - kb) * pb;
    let g = (ey - kr * r - kb * b) / (1.0 - kr - kb);
    [r, g, b]
}

/// R'G'B' in 0..1 → Y'CbCr code values of `depth` bits (not rounded).
pub fn to_yuv(c: Colorimetry, depth: u32, rgb: [f64; 3]) -> [f64; 3] {
    let (kr, kb) = kr_kb(c.matrix);
    let (yo, ys, co, cs) = quantisation(c.range, depth);
    let ey = kr * rgb[0] + (1.0 - kr - kb) * rgb[1] + kb * rgb[2];
    let pb = (rgb[2] - ey) / (2.0 * (1.0 - kb));
    let pr = (rgb[0] - ey) / (2.0 * (1.0 - kr));
    [yo + ys * ey, co + cs * pb, co + cs * pr]
}

/// Chroma at luma position (x, y) of a 4:2:0 frame of `size`: bilinear between the four nearest chroma samples,
/// whose centres sit at (2i + 0.5, 2j + 0.5) in luma coordinates, clamped at the edges; `at(i, j)` reads sample
/// (i, j) of the chroma plane.
pub fn chroma(size: Size, x: usize, y: usize, at: impl Fn(usize, usize) -> f64) -> f64 {
    let c = size.chroma();
    let (cw, ch) = (c.width as i64, c.height as i64);
    let (fx, fy) = ((x as f64 + 0.5) / 2.0 - 0.5, (y as f64 + 0.5) / 2.0 - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (ax, ay) = (fx - x0, fy - y0);
    let at = |i: i64, j: i64| at(i.clamp(0, cw - 1) as usize, j.clamp(0, ch - 1) as usize);
    let (x0, y0) = (x0 as i64, y0 as i64);
    (1.0 - ay) * ((1.0 - ax) * at(x0, y0) + ax * at(x0 + 1, y0))
        + ay * ((1.0 - ax) * at(x0, y0 + 1) + ax * at(x0 + 1, y0 + 1))
}

/// Block averages of 4:2:0 chroma: the mean R'G'B' of the pixels chroma position (cx, cy) covers in a `w`×`h`
/// frame, `rgb_at(x, y)` giving each pixel's.
pub fn block_mean(w: usize, h: usize, cx: usize, cy: usize, rgb_at: impl Fn(usize, usize) -> [f64; 3]) -> [f64; 3] {
    let pixels: Vec<[f64; 3]> = (2 * cy..(2 * cy + 2).min(h))
        .flat_map(|y| (2 * cx..(2 * cx + 2).min(w)).map(move |x| (x, y)))
        .map(|(x, y)| rgb_at(x, y))
        .collect();
    [0, 1, 2].map(|k| pixels.iter().map(|p| p[k]).sum::<f64>() / pixels.len() as f64)
}
