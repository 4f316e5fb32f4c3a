// SPDX-License-Identifier: MPL-2.0
//! Tiles with overlap and the weights that blend them back into one frame.
//!
//! All tiles of a frame have the same size (so one set of bound tensors, and batches, serve every tile) and are
//! spread evenly: along each axis `n` tiles of length `t` start at `round(i·(L−t)/(n−1))`, with `n` the smallest
//! count that makes neighbours overlap by at least the requested overlap. Where two neighbours overlap, each one's
//! weight ramps linearly across the middle of the overlap and is zero near its own edge (where the model saw an
//! artificial border); the two ramps are complementary, so the weights of all tiles sum to exactly one at every
//! output pixel and blending tiles cut from one image gives that image back.

use crate::frame::{Rect, Size};

/// Weight ramps of one tile along one axis, in output pixels: the weight rises from 0 at `rise.0` to 1 at `rise.1`
/// and falls from 1 at `fall.0` to 0 at `fall.1` (an axis without a neighbour on that side has no ramp there).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisRamp {
    pub rise: [f32; 2],
    pub fall: [f32; 2],
}

impl AxisRamp {
    const FLAT: AxisRamp = AxisRamp { rise: [f32::MIN, f32::MIN], fall: [f32::MAX, f32::MAX] };

    /// Weight at output pixel `x` (sampled at its centre). The same formula runs in the blend kernel.
    #[inline]
    pub fn weight(&self, x: u32) -> f32 {
        let c = x as f32 + 0.5;
        let up = if c >= self.rise[1] {
            1.0
        } else if c <= self.rise[0] {
            0.0
        } else {
            (c - self.rise[0]) / (self.rise[1] - self.rise[0])
        };
        let down = if c <= self.fall[0] {
            1.0
        } else if c >= self.fall[1] {
            0.0
        } else {
            (self.fall[1] - c) / (self.fall[1] - self.fall[0])
        };
        up * down
    }
}

/// One tile: the input region it reads and the weights of its output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile {
    /// Input pixels read (always inside the frame).
    pub input: Rect,
    /// Output pixels written (`input` times the scale).
    pub output: Rect,
    /// Blend ramps in absolute output coordinates: `[x, y]`.
    pub ramps: [AxisRamp; 2],
}

/// How a frame is cut.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePlan {
    pub frame: Size,
    pub scale: u32,
    /// Input size of every tile.
    pub tile: Size,
    pub tiles: Vec<Tile>,
}

/// Starts of `n` tiles of length `t` spread evenly over `len`.
fn starts(len: u32, t: u32, n: u32) -> Vec<u32> {
    if n <= 1 {
        return vec![0];
    }
    (0..n).map(|i| ((i as u64 * (len - t) as u64 + (n as u64 - 1) / 2) / (n as u64 - 1)) as u32).collect()
}

/// Tiles along one axis: `(start, ramp)` in input pixels, ramps in output pixels.
fn axis(len: u32, t: u32, overlap: u32, scale: u32) -> Vec<(u32, AxisRamp)> {
    let t = t.min(len);
    let n = if t >= len { 1 } else { (len - overlap).div_ceil(t - overlap) };
    let s = starts(len, t, n);
    let s_f = scale as f32;
    (0..s.len())
        .map(|i| {
            let mut ramp = AxisRamp::FLAT;
            // the shared stretch with a neighbour, minus a margin of a quarter of it at each end
            let blend = |lo: u32, hi: u32| {
                let margin = (hi - lo) as f32 / 4.0;
                [(lo as f32 + margin) * s_f, (hi as f32 - margin) * s_f]
            };
            if i > 0 {
                ramp.rise = blend(s[i], s[i - 1] + t);
            }
            if i + 1 < s.len() {
                ramp.fall = blend(s[i + 1], s[i] + t);
            }
            (s[i], ramp)
        })
        .collect()
}

impl TilePlan {
    /// The whole frame as one tile.
    pub fn whole(frame: Size, scale: u32) -> Self {
        Self::new(frame, scale, frame.width.max(frame.height), 0)
    }

    /// Tiles of at most `tile × tile` input pixels overlapping by at least `overlap` (clamped to half a tile, so
    /// that no pixel lies in more than two tiles along an axis).
    pub fn new(frame: Size, scale: u32, tile: u32, overlap: u32) -> Self {
        let tile = tile.max(1);
        let overlap = overlap.min(tile / 2);
        let xs = axis(frame.width, tile, overlap, scale);
        let ys = axis(frame.height, tile, overlap, scale);
        let size = Size::new(tile.min(frame.width), tile.min(frame.height));
        let mut tiles = Vec::with_capacity(xs.len() * ys.len());
        for &(y, ry) in &ys {
            for &(x, rx) in &xs {
                let input = Rect::new(x as i32, y as i32, size.width, size.height);
                let output = Rect::new((x * scale) as i32, (y * scale) as i32, size.width * scale, size.height * scale);
                tiles.push(Tile { input, output, ramps: [rx, ry] });
            }
        }
        Self { frame, scale, tile: size, tiles }
    }

    pub fn is_whole_frame(&self) -> bool {
        self.tiles.len() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight_sums(plan: &TilePlan) -> Vec<f32> {
        let out = plan.frame.scaled(plan.scale);
        let mut sum = vec![0f32; out.pixels()];
        for t in &plan.tiles {
            for y in 0..t.output.height {
                for x in 0..t.output.width {
                    let (ox, oy) = (t.output.x as u32 + x, t.output.y as u32 + y);
                    sum[(oy * out.width + ox) as usize] += t.ramps[0].weight(ox) * t.ramps[1].weight(oy);
                }
            }
        }
        sum
    }

    #[test]
    fn weights_sum_to_one_everywhere() {
        for (frame, scale, tile, overlap) in [
            (Size::new(1920, 1080), 2, 256, 32),
            (Size::new(97, 61), 3, 32, 8),
            (Size::new(64, 48), 4, 24, 12),
            (Size::new(33, 200), 2, 40, 16),
            (Size::new(100, 100), 1, 100, 16),
        ] {
            let plan = TilePlan::new(frame, scale, tile, overlap);
            for (i, s) in weight_sums(&plan).iter().enumerate() {
                assert!((s - 1.0).abs() < 1e-5, "{frame} tile {tile}: output pixel {i} has total weight {s}");
            }
        }
    }

    #[test]
    fn tiles_are_equal_sized_inside_the_frame_and_overlap_enough() {
        let frame = Size::new(1000, 700);
        let plan = TilePlan::new(frame, 2, 256, 32);
        assert!(plan.tiles.iter().all(|t| t.input.size() == Size::new(256, 256)));
        for t in &plan.tiles {
            assert!(t.input.x >= 0 && t.input.y >= 0);
            assert!(
                t.input.x as u32 + t.input.width <= frame.width && t.input.y as u32 + t.input.height <= frame.height
            );
        }
        let mut xs: Vec<i32> = plan.tiles.iter().map(|t| t.input.x).collect();
        xs.sort();
        xs.dedup();
        assert_eq!(xs.first(), Some(&0));
        assert_eq!(*xs.last().unwrap() as u32 + 256, frame.width, "the last tile ends at the frame edge");
        for w in xs.windows(2) {
            assert!(256 - (w[1] - w[0]) >= 32, "neighbours overlap by at least 32: {w:?}");
        }
    }

    #[test]
    fn small_frames_and_zero_overlap() {
        let plan = TilePlan::new(Size::new(50, 30), 2, 256, 32);
        assert!(plan.is_whole_frame());
        assert_eq!(plan.tile, Size::new(50, 30));
        let plan = TilePlan::new(Size::new(64, 64), 2, 32, 0);
        assert_eq!(plan.tiles.len(), 4);
        assert!(weight_sums(&plan).iter().all(|&s| (s - 1.0).abs() < 1e-6));
    }

    #[test]
    fn blending_tiles_of_one_image_reconstructs_it() {
        let frame = Size::new(90, 70);
        let scale = 2;
        let out = frame.scaled(scale);
        let image: Vec<f32> = (0..out.pixels()).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let plan = TilePlan::new(frame, scale, 40, 12);
        let mut acc = vec![0f32; out.pixels()];
        for t in &plan.tiles {
            for y in 0..t.output.height {
                for x in 0..t.output.width {
                    let (ox, oy) = (t.output.x as u32 + x, t.output.y as u32 + y);
                    let idx = (oy * out.width + ox) as usize;
                    acc[idx] += t.ramps[0].weight(ox) * t.ramps[1].weight(oy) * image[idx];
                }
            }
        }
        for (a, b) in acc.iter().zip(&image) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn interior_edges_get_no_weight() {
        let plan = TilePlan::new(Size::new(200, 100), 2, 64, 16);
        for t in &plan.tiles {
            let [rx, _] = t.ramps;
            if t.input.x > 0 {
                assert_eq!(rx.weight(t.output.x as u32), 0.0, "left edge of an interior tile is not used");
            }
        }
    }
}
