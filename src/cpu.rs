// SPDX-License-Identifier: MPL-2.0
//! NV12 ⇄ planar RGB on host memory: the no-GPU path and the reference the CUDA kernels are checked against.
//!
//! The arithmetic mirrors `cuda/kernels/*.cu` operation for operation (same coefficients, same order), so the
//! two paths differ only by floating-point contraction on the GPU.
//!
//! Chroma siting is centred (MPEG-1/JPEG style) in both directions: upsampling is bilinear with weights 3/4 and
//! 1/4, downsampling averages each 2×2 block.

use crate::color::{Affine3x4, quantise};
use crate::frame::{HostNv12, HostNv12Mut, Rect, Size, TensorElement};
use crate::tiling::Tile;

/// Clamps to 0..=1, NaN to 0 (as `fminf(fmaxf(v, 0), 1)` does in the kernels).
#[inline]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; the kernels (and this) map it to 0
pub fn clamp01(v: f32) -> f32 {
    v.max(0.0).min(1.0)
}

/// Index of the nearer and the farther chroma sample for luma coordinate `x` under centred siting.
#[inline]
fn chroma_taps(x: usize, chroma_len: usize) -> (usize, usize) {
    let near = (x >> 1).min(chroma_len - 1);
    let far = if x & 1 == 1 { (near + 1).min(chroma_len - 1) } else { near.saturating_sub(1) };
    (near, far)
}

/// Converts `region` of an NV12 frame into a planar RGB tensor `[3, region.height, region.width]` in 0..=1.
///
/// Pixels of the region outside the frame take the value of the nearest edge pixel.
pub fn nv12_to_planar<T: TensorElement>(src: &HostNv12, yuv_to_rgb: &Affine3x4, region: Rect, dst: &mut [T]) {
    let (w, h) = (region.width as usize, region.height as usize);
    assert!(dst.len() >= 3 * w * h, "destination tensor too small");
    let c = src.size.chroma();
    let plane = w * h;
    for ty in 0..h {
        let y = (region.y + ty as i32).clamp(0, src.size.height as i32 - 1) as usize;
        let (cy_near, cy_far) = chroma_taps(y, c.height as usize);
        let luma_row = &src.y[y * src.y_stride..];
        let near_row = &src.uv[cy_near * src.uv_stride..];
        let far_row = &src.uv[cy_far * src.uv_stride..];
        for tx in 0..w {
            let x = (region.x + tx as i32).clamp(0, src.size.width as i32 - 1) as usize;
            let (cx_near, cx_far) = chroma_taps(x, c.width as usize);
            let sample = |row: &[u8], k: usize| 0.75 * row[2 * cx_near + k] as f32 + 0.25 * row[2 * cx_far + k] as f32;
            let u = 0.75 * sample(near_row, 0) + 0.25 * sample(far_row, 0);
            let v = 0.75 * sample(near_row, 1) + 0.25 * sample(far_row, 1);
            let rgb = yuv_to_rgb.apply(luma_row[x] as f32, u, v);
            let i = ty * w + tx;
            for (k, value) in rgb.into_iter().enumerate() {
                dst[k * plane + i] = T::from_f32(clamp01(value));
            }
        }
    }
}

/// Converts a planar RGB tensor `[3, size.height, size.width]` (any range; clamped to 0..=1) into an NV12 frame of
/// the same size.
pub fn planar_to_nv12<T: TensorElement>(src: &[T], rgb_to_yuv: &Affine3x4, dst: &mut HostNv12Mut) {
    let plane = dst.size.pixels();
    assert!(src.len() >= 3 * plane, "source tensor too small");
    let w = dst.size.width as usize;
    write_nv12(rgb_to_yuv, dst, |x, y| {
        let i = y * w + x;
        [0, 1, 2].map(|k| clamp01(src[k * plane + i].to_f32()))
    });
}

/// Writes an NV12 frame from `rgb(x, y)`, the RGB (in 0..=1) of each pixel, called once per pixel in the order the
/// kernels visit them: each 2×2 block's pixels row by row, its luma written per pixel and its chroma from the mean
/// of its pixels.
pub fn write_nv12(rgb_to_yuv: &Affine3x4, dst: &mut HostNv12Mut, mut rgb: impl FnMut(usize, usize) -> [f32; 3]) {
    let size: Size = dst.size;
    let (w, h) = (size.width as usize, size.height as usize);
    let c = size.chroma();
    for cy in 0..c.height as usize {
        for cx in 0..c.width as usize {
            let mut sum = [0f32; 3];
            let mut n = 0u32;
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let rgb = rgb(x, y);
                    dst.y[y * dst.y_stride + x] = quantise(rgb_to_yuv.apply(rgb[0], rgb[1], rgb[2])[0]);
                    for k in 0..3 {
                        sum[k] += rgb[k];
                    }
                    n += 1;
                }
            }
            let inv = 1.0 / n as f32;
            let yuv = rgb_to_yuv.apply(sum[0] * inv, sum[1] * inv, sum[2] * inv);
            let row = &mut dst.uv[cy * dst.uv_stride..];
            row[2 * cx] = quantise(yuv[1]);
            row[2 * cx + 1] = quantise(yuv[2]);
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
    use crate::color::{Colorimetry, Matrix, Range, rgb_to_yuv, yuv_to_rgb};
    use crate::frame::Nv12Image;

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
        let mut img = Nv12Image::new(Size::new(4, 2));
        img.y.copy_from_slice(&[16, 50, 100, 235, 16, 50, 100, 235]);
        let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
        let mut t = vec![0f32; 3 * 6];
        nv12_to_planar(&img.view(), &yuv_to_rgb(c), Rect::new(-1, -1, 6, 1), &mut t);
        // grey chroma: R = G = B = (Y - 16) / 219
        let expect = |y: f32| (y - 16.0) / 219.0;
        let r = &t[..6];
        assert!((r[0] - expect(16.0)).abs() < 1e-6);
        assert!((r[1] - expect(16.0)).abs() < 1e-6);
        assert!((r[4] - expect(235.0)).abs() < 1e-6);
        assert!((r[5] - expect(235.0)).abs() < 1e-6);
    }

    #[test]
    fn flat_colour_round_trips_exactly() {
        let c = Colorimetry::new(Matrix::Bt601, Range::Full);
        let mut img = Nv12Image::new(Size::new(5, 3));
        img.y.fill(90);
        for p in img.uv.chunks_mut(2) {
            p[0] = 100;
            p[1] = 150;
        }
        let mut t = vec![0f32; 3 * 15];
        nv12_to_planar(&img.view(), &yuv_to_rgb(c), Rect::of_size(img.size), &mut t);
        let mut out = Nv12Image::new(img.size);
        planar_to_nv12(&t, &rgb_to_yuv(c), &mut out.view_mut());
        assert_eq!(out, img);
    }
}
