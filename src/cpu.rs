// SPDX-License-Identifier: MPL-2.0
//! Frames ⇄ planar RGB on host memory: the no-GPU path and the reference the CUDA kernels are checked against.
//!
//! One routine per direction serves every [`PixelFormat`] through its [`FormatLayout`]. The arithmetic mirrors
//! `cuda/kernels/*.cu` operation for operation (same coefficients, same order), and the kernels are compiled
//! without contraction, so the two paths agree bit for bit.
//!
//! Chroma siting is centred (MPEG-1/JPEG style) in both directions: upsampling is bilinear with weights 3/4 and
//! 1/4, downsampling averages each 2×2 block. Alpha does not go through the model: [`fill_extra`] upscales it
//! bilinearly.

use crate::color::{Affine3x4, quantise};
use crate::format::FormatLayout;
use crate::frame::{HostFrame, HostFrameMut, Rect, Size, TensorElement};
use crate::tiling::Tile;

/// Clamps to 0..=1, NaN to 0 (as `fminf(fmaxf(v, 0), 1)` does in the kernels).
#[inline]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; the kernels (and this) map it to 0
fn clamp01(v: f32) -> f32 {
    v.max(0.0).min(1.0)
}

/// Index of the nearer and the farther chroma sample for luma coordinate `x` under centred siting.
#[inline]
fn chroma_taps(x: usize, chroma_len: usize) -> (usize, usize) {
    let near = (x >> 1).min(chroma_len - 1);
    let far = if x & 1 == 1 { (near + 1).min(chroma_len - 1) } else { near.saturating_sub(1) };
    (near, far)
}

/// The code value of sample `i` of a row.
#[inline]
fn load(row: &[u8], i: usize, l: &FormatLayout) -> f32 {
    if l.sample_bytes == 1 {
        f32::from(row[i])
    } else {
        f32::from(u16::from_le_bytes([row[2 * i], row[2 * i + 1]]) >> l.shift)
    }
}

/// Writes code value `v` (in range) into sample `i` of a row.
#[inline]
fn store(row: &mut [u8], i: usize, v: u16, l: &FormatLayout) {
    if l.sample_bytes == 1 {
        row[i] = v as u8;
    } else {
        row[2 * i..2 * i + 2].copy_from_slice(&(v << l.shift).to_le_bytes());
    }
}

/// Converts `region` of a frame into a planar RGB tensor `[3, region.height, region.width]` in 0..=1, with
/// `to_rgb` mapping the frame's code values (see [`crate::color::code_to_rgb`]).
///
/// Pixels of the region outside the frame take the value of the nearest edge pixel.
pub fn frame_to_planar<T: TensorElement>(src: &HostFrame, to_rgb: &Affine3x4, region: Rect, dst: &mut [T]) {
    let (w, h) = (region.width as usize, region.height as usize);
    assert!(dst.len() >= 3 * w * h, "destination tensor too small");
    let l = src.format.layout();
    let c = src.size.chroma();
    let plane = w * h;
    for ty in 0..h {
        let y = (region.y + ty as i32).clamp(0, src.size.height as i32 - 1) as usize;
        let (cy_near, cy_far) = chroma_taps(y, c.height as usize);
        let row = &src.planes[0][y * src.strides[0]..];
        let (near_row, far_row) = match src.format.planes() {
            2 => (&src.planes[1][cy_near * src.strides[1]..], &src.planes[1][cy_far * src.strides[1]..]),
            _ => (row, row),
        };
        for tx in 0..w {
            let x = (region.x + tx as i32).clamp(0, src.size.width as i32 - 1) as usize;
            let (cx_near, cx_far) = chroma_taps(x, c.width as usize);
            let component = |k: usize| {
                let off = l.offset[k] as usize;
                if l.plane[k] == 0 {
                    return load(row, x * l.step[0] as usize + off, &l);
                }
                let step = l.step[1] as usize;
                let (n, f) = (cx_near * step + off, cx_far * step + off);
                let near = 0.75 * load(near_row, n, &l) + 0.25 * load(near_row, f, &l);
                let far = 0.75 * load(far_row, n, &l) + 0.25 * load(far_row, f, &l);
                0.75 * near + 0.25 * far
            };
            let rgb = to_rgb.apply(component(0), component(1), component(2));
            let i = ty * w + tx;
            for (k, value) in rgb.into_iter().enumerate() {
                dst[k * plane + i] = T::from_f32(clamp01(value));
            }
        }
    }
}

/// Converts a planar RGB tensor `[3, size.height, size.width]` (any range; clamped to 0..=1) into the three
/// components of a frame of the same size, with `from_rgb` giving its code values (see
/// [`crate::color::rgb_to_code`]). Subsampled chroma is the code of the 2×2 block's average. A fourth sample per
/// pixel (alpha, padding) is left alone: [`fill_extra`] writes it.
pub fn planar_to_frame<T: TensorElement>(src: &[T], from_rgb: &Affine3x4, dst: &mut HostFrameMut) {
    let size: Size = dst.size;
    let (w, h) = (size.width as usize, size.height as usize);
    let plane = w * h;
    assert!(src.len() >= 3 * plane, "source tensor too small");
    let l = dst.format.layout();
    let max = l.max_code as u16;
    // a block is what one chroma position covers: 2×2 pixels with a subsampled plane, else one pixel
    let block = if dst.format.planes() == 2 { 2 } else { 1 };
    for by in 0..h.div_ceil(block) {
        for bx in 0..w.div_ceil(block) {
            let mut sum = [0f32; 3];
            let mut n = 0u32;
            for y in block * by..(block * by + block).min(h) {
                for x in block * bx..(block * bx + block).min(w) {
                    let i = y * w + x;
                    let rgb = [0, 1, 2].map(|k| clamp01(src[k * plane + i].to_f32()));
                    let code = from_rgb.apply(rgb[0], rgb[1], rgb[2]);
                    let row = &mut dst.planes[0][y * dst.strides[0]..];
                    for k in (0..3).filter(|&k| l.plane[k] == 0) {
                        store(row, x * l.step[0] as usize + l.offset[k] as usize, quantise(code[k], max), &l);
                    }
                    for k in 0..3 {
                        sum[k] += rgb[k];
                    }
                    n += 1;
                }
            }
            if block == 2 {
                let inv = 1.0 / n as f32;
                let code = from_rgb.apply(sum[0] * inv, sum[1] * inv, sum[2] * inv);
                let row = &mut dst.planes[1][by * dst.strides[1]..];
                for k in (0..3).filter(|&k| l.plane[k] == 1) {
                    store(row, bx * l.step[1] as usize + l.offset[k] as usize, quantise(code[k], max), &l);
                }
            }
        }
    }
}

/// Source coordinate and weight of output coordinate `o` under bilinear upscaling by `scale` with centred
/// sampling: `(i0, i1, t)`, the value being `(1 - t)·v[i0] + t·v[i1]`.
#[inline]
fn bilinear_taps(o: usize, scale: u32, len: usize) -> (usize, usize, f32) {
    let s = ((o as f32 + 0.5) / scale as f32 - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(len - 1);
    (i0, (i0 + 1).min(len - 1), s - s.floor())
}

/// Writes the fourth sample of each pixel of `dst` where its format has one: the alpha of `src` (whose size times
/// `scale` is `dst`'s) upscaled bilinearly with centred sampling when both formats carry alpha, opaque otherwise.
pub fn fill_extra(src: &HostFrame, dst: &mut HostFrameMut) {
    let (sl, dl) = (src.format.layout(), dst.format.layout());
    if dl.extra < 0 {
        return;
    }
    let (step, extra) = (dl.step[0] as usize, dl.extra as usize);
    let (w, h) = (dst.size.width as usize, dst.size.height as usize);
    if !(src.format.has_alpha() && dst.format.has_alpha()) {
        for y in 0..h {
            let row = &mut dst.planes[0][y * dst.strides[0]..];
            (0..w).for_each(|x| store(row, x * step + extra, dl.max_code as u16, &dl));
        }
        return;
    }
    let scale = dst.size.width / src.size.width.max(1);
    let (sw, sh) = (src.size.width as usize, src.size.height as usize);
    let (sstep, sextra) = (sl.step[0] as usize, sl.extra as usize);
    let alpha = |x: usize, y: usize| load(&src.planes[0][y * src.strides[0]..], x * sstep + sextra, &sl);
    for y in 0..h {
        let (y0, y1, ty) = bilinear_taps(y, scale, sh);
        let row = &mut dst.planes[0][y * dst.strides[0]..];
        for x in 0..w {
            let (x0, x1, tx) = bilinear_taps(x, scale, sw);
            let top = (1.0 - tx) * alpha(x0, y0) + tx * alpha(x1, y0);
            let bottom = (1.0 - tx) * alpha(x0, y1) + tx * alpha(x1, y1);
            let a = (1.0 - ty) * top + ty * bottom;
            store(row, x * step + extra, quantise(a, dl.max_code as u16), &dl);
        }
    }
}

/// Adds one tile's output, weighted by its blend ramps, into a planar float32 accumulation frame
/// `[3, acc_size.height, acc_size.width]` (the tile's output rectangle lies inside it).
pub fn blend_tile<T: TensorElement>(tile: &[T], t: &Tile, acc: &mut [f32], acc_size: Size) {
    let (tw, th) = (t.output.width as usize, t.output.height as usize);
    let (aw, plane) = (acc_size.width as usize, acc_size.pixels());
    for y in 0..th {
        let oy = t.output.y as u32 + y as u32;
        let wy = t.ramps[1].weight(oy);
        for x in 0..tw {
            let ox = t.output.x as u32 + x as u32;
            let w = t.ramps[0].weight(ox) * wy;
            if w == 0.0 {
                continue;
            }
            let a = oy as usize * aw + ox as usize;
            for k in 0..3 {
                acc[k * plane + a] += w * tile[k * tw * th + y * tw + x].to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
    use crate::frame::{Image, PixelFormat};

    #[test]
    fn chroma_taps_follow_centred_siting() {
        assert_eq!(chroma_taps(0, 4), (0, 0));
        assert_eq!(chroma_taps(1, 4), (0, 1));
        assert_eq!(chroma_taps(2, 4), (1, 0));
        assert_eq!(chroma_taps(7, 4), (3, 3));
        // odd luma width: the last column has its own chroma sample
        assert_eq!(chroma_taps(6, 4), (3, 2));
    }

    #[test]
    fn region_outside_frame_replicates_edges() {
        let mut img = Image::new(PixelFormat::Nv12, Size::new(4, 2));
        img.planes[0].copy_from_slice(&[16, 50, 100, 235, 16, 50, 100, 235]);
        let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
        let mut t = vec![0f32; 3 * 6];
        frame_to_planar(&img.view(), &code_to_rgb(c, 8), Rect::new(-1, -1, 6, 1), &mut t);
        // grey chroma: R = G = B = (Y - 16) / 219
        let expect = |y: f32| (y - 16.0) / 219.0;
        let r = &t[..6];
        assert!((r[0] - expect(16.0)).abs() < 1e-6);
        assert!((r[1] - expect(16.0)).abs() < 1e-6);
        assert!((r[4] - expect(235.0)).abs() < 1e-6);
        assert!((r[5] - expect(235.0)).abs() < 1e-6);
    }

    #[test]
    fn flat_colour_round_trips_exactly_in_every_format() {
        let size = Size::new(5, 3);
        for format in PixelFormat::ALL {
            let c = match format.planes() {
                2 => Colorimetry::new(Matrix::Bt601, Range::Full),
                _ => Colorimetry::new(Matrix::Rgb, Range::Full),
            };
            let l = format.layout();
            let mut img = Image::new(format, size);
            let mut out = Image::new(format, size);
            let codes = [90u16, 100, 150].map(|v| v << (format.depth() - 8));
            for y in 0..3 {
                for x in 0..5 {
                    for (k, &code) in codes.iter().enumerate() {
                        let p = l.plane[k] as usize;
                        let (xx, yy) = if p == 1 { (x / 2, y / 2) } else { (x, y) };
                        let stride = img.strides()[p];
                        let i = xx * l.step[p] as usize + l.offset[k] as usize;
                        store(&mut img.planes[p][yy * stride..], i, code, &l);
                    }
                }
            }
            let depth = format.depth();
            let mut t = vec![0f32; 3 * size.pixels()];
            frame_to_planar(&img.view(), &code_to_rgb(c, depth), Rect::of_size(size), &mut t);
            planar_to_frame(&t, &rgb_to_code(c, depth), &mut out.view_mut());
            assert_eq!(out, img, "{format}");
        }
    }

    #[test]
    fn p010_values_live_in_the_high_bits() {
        let mut img = Image::new(PixelFormat::P010, Size::new(2, 2));
        assert_eq!(&img.planes[1][..2], &[0x00, 0x80], "neutral chroma is 512 << 6");
        let c = Colorimetry::new(Matrix::Bt2020, Range::Limited);
        planar_to_frame(&[1.0f32; 12], &rgb_to_code(c, 10), &mut img.view_mut());
        // white: Y 940 << 6 = 0xEB00
        assert_eq!(&img.planes[0][..2], &[0x00, 0xEB]);
    }

    #[test]
    fn alpha_is_upscaled_bilinearly_and_padding_made_opaque() {
        let mut src = Image::new(PixelFormat::Bgra, Size::new(2, 1));
        src.planes[0][3] = 0;
        src.planes[0][7] = 200;
        let mut dst = Image::new(PixelFormat::Rgba, Size::new(4, 2));
        fill_extra(&src.view(), &mut dst.view_mut());
        // output centres fall at source -0.25 (clamped to 0), 0.25, 0.75 and 1.25 (past the last sample)
        let alpha: Vec<u8> = dst.planes[0].chunks(4).map(|p| p[3]).take(4).collect();
        assert_eq!(alpha, [0, 50, 150, 200]);
        let mut padded = Image::new(PixelFormat::Rgbx, Size::new(4, 2));
        fill_extra(&src.view(), &mut padded.view_mut());
        assert!(padded.planes[0].chunks(4).all(|p| p[3] == 255));
    }
}
