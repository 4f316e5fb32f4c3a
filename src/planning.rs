// SPDX-License-Identifier: MPL-2.0
//! Tile and memory planning: how frames of one size are cut ([`Tiling`], checked when an upscaler is made), which
//! tile fits a memory budget by the engine's own estimate, how much of the budget ONNX Runtime's arena may take,
//! and the smaller tile to retry with after running out of memory.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::frame::Size;
use crate::model::ModelInfo;
use crate::tiling::TilePlan;

/// Default overlap of neighbouring tiles, in input pixels: enough for the receptive field of the shipped models
/// to settle (tiled output within 67–75 dB PSNR of whole-frame output for realesr-animevideov3).
pub const DEFAULT_TILE_OVERLAP: u32 = 32;
/// The smallest tile side, in input pixels: below it the models' receptive field sees mostly borders (at
/// `tile-size=1`, 6,912 tiles per 96×72 frame gave 27 dB) and per-tile overhead dominates. Tiles chosen to fit a
/// memory budget or after running out of memory never get smaller either.
pub const MIN_TILE: u32 = 64;

/// How frames are cut into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Input pixels per tile side; 0: whole frames (unless `max_memory_mib` forces tiles). Otherwise at least
    /// [`MIN_TILE`] and twice the overlap.
    pub tile_size: u32,
    /// Overlap of neighbouring tiles in input pixels: at most half a tile.
    pub overlap: u32,
    /// Tiles per inference run (for models with a dynamic batch axis).
    pub batch: u32,
    /// Memory budget in MiB for tensors, activations and buffers (device memory on GPU backends, where ONNX
    /// Runtime's arena is capped to it; host memory on the CPU, where it only chooses the tiles); 0: unlimited.
    pub max_memory_mib: u64,
}

impl Default for Tiling {
    fn default() -> Self {
        Self { tile_size: 0, overlap: DEFAULT_TILE_OVERLAP, batch: 1, max_memory_mib: 0 }
    }
}

impl Tiling {
    /// The smallest tile these settings allow: [`MIN_TILE`], or twice the overlap when that is more.
    pub fn min_tile(&self) -> u32 {
        MIN_TILE.max(self.overlap.saturating_mul(2))
    }

    /// Refuses settings that cannot give a good picture: a tile size below [`MIN_TILE`], an overlap above half the
    /// tile, a batch of 0.
    pub fn check(&self) -> Result<()> {
        if self.tile_size != 0 && self.tile_size < MIN_TILE {
            return Err(Error::InvalidConfig(format!(
                "tile-size {} is below the smallest tile of {MIN_TILE} pixels (0 processes whole frames)",
                self.tile_size
            )));
        }
        if self.tile_size != 0 && self.overlap > self.tile_size / 2 {
            return Err(Error::InvalidConfig(format!(
                "tile-overlap {} is more than half of tile-size {}: neighbouring tiles may overlap by at most {}",
                self.overlap,
                self.tile_size,
                self.tile_size / 2
            )));
        }
        if self.batch == 0 {
            return Err(Error::InvalidConfig("batch-size 0: at least one tile per run".into()));
        }
        Ok(())
    }

    /// The tile side to retry with after running out of memory with tiles of `current`: half of it, not below
    /// [`Tiling::min_tile`]; `None` when `current` is already the smallest.
    pub fn smaller_after_oom(&self, current: u32) -> Option<u32> {
        (current > self.min_tile()).then(|| (current / 2).max(self.min_tile()))
    }
}

/// How frames of one size run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub tiles: Arc<TilePlan>,
    /// Tiles per inference run.
    pub batch: u32,
    /// Bytes ONNX Runtime's arena may take (GPU backends under a budget).
    pub memory_limit: Option<usize>,
}

impl RunPlan {
    pub fn is_whole_frame(&self) -> bool {
        self.tiles.is_whole_frame()
    }

    /// Tiles per frame and the tile side, for statistics.
    pub fn tile_side(&self) -> u32 {
        self.tiles.tile.width.max(self.tiles.tile.height)
    }
}

/// Bytes of the upscaler's own device buffers for frames of `size`: a staging frame for copies and uploads, and the
/// float32 accumulation frame when tiled.
pub fn own_buffer_bytes(size: Size, scale: u32, tiled: bool) -> usize {
    let staging = size.pixels() * 3 / 2;
    let acc = if tiled { 3 * size.scaled(scale).pixels() * 4 } else { 0 };
    staging + acc
}

/// An estimate saying the engine cannot take a tile that large at all, whatever memory there is.
pub const TOO_LARGE: usize = usize::MAX;

/// Plans frames for one model on one engine.
#[derive(Debug, Clone, Copy)]
pub struct Planner<'a> {
    pub tiling: &'a Tiling,
    pub model: &'a ModelInfo,
    pub scale: u32,
    /// Whether the engine's memory can be capped (GPU backends); on the CPU the budget only chooses the tile.
    pub capped: bool,
    /// Bytes of the output composition's own buffers (the input's RGB, the temporal history) for frames of the size.
    pub output_bytes: usize,
}

impl Planner<'_> {
    /// The plan for frames of `size`: the configured tile (or the whole frame; `forced` after out-of-memory
    /// retries), shrunk until `estimate(tile, batch)` plus our own buffers fits the memory budget. An estimate of
    /// [`TOO_LARGE`] says the engine cannot take the tile at all (past its kernels' indexing): it is shrunk with or
    /// without a budget.
    pub fn plan(&self, size: Size, forced: Option<u32>, estimate: impl Fn(Size, u32) -> usize) -> Result<RunPlan> {
        let t = self.tiling;
        let whole = size.width.max(size.height);
        if self.model.fixed_size.is_some() {
            return Ok(RunPlan { tiles: Arc::new(TilePlan::whole(size, self.scale)), batch: 1, memory_limit: None });
        }
        let mut tile = forced.unwrap_or(if t.tile_size == 0 { whole } else { t.tile_size.min(whole) });
        let plan_for = |tile: u32| {
            let plan = TilePlan::new(size, self.scale, tile, t.overlap);
            let batch = if self.model.fixed_batch.is_some() { 1 } else { t.batch.clamp(1, plan.tiles.len() as u32) };
            (plan, batch)
        };
        let floor = t.min_tile();
        let shrunk = |tile: u32| ((tile * 3 / 4).max(floor) / 8 * 8).max(floor);
        if t.max_memory_mib == 0 {
            loop {
                let (plan, batch) = plan_for(tile);
                if estimate(plan.tile, batch) != TOO_LARGE || tile <= floor {
                    return Ok(RunPlan { tiles: Arc::new(plan), batch, memory_limit: None });
                }
                tile = shrunk(tile);
            }
        }
        let budget = (t.max_memory_mib as usize) << 20;
        loop {
            let (plan, batch) = plan_for(tile);
            let own = own_buffer_bytes(size, self.scale, !plan.is_whole_frame()) + self.output_bytes;
            let need = estimate(plan.tile, batch).saturating_add(own);
            if need <= budget {
                let memory_limit = self.capped.then_some(budget - own);
                return Ok(RunPlan { tiles: Arc::new(plan), batch, memory_limit });
            }
            if tile <= floor {
                return Err(Error::InvalidConfig(format!(
                    "max-memory {} MiB is too small for {size} frames: {floor}x{floor} tiles need about {} MiB",
                    t.max_memory_mib,
                    need.div_ceil(1 << 20)
                )));
            }
            tile = shrunk(tile);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::onnx::{Dim, GraphBuilder, data_type};

    fn model() -> ModelInfo {
        let dims = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
        let mut g = GraphBuilder::with_io(data_type::FLOAT, &dims, &dims);
        g.op_into("Identity", &["input"], "output", vec![]);
        ModelInfo::from_proto(&g.into_model("m", &[]), Path::new("m.onnx")).unwrap()
    }

    #[test]
    fn tile_sizes_below_the_floor_and_overlaps_above_half_a_tile_are_refused() {
        let e = Tiling { tile_size: 1, ..Tiling::default() }.check().unwrap_err();
        assert!(e.is_settings() && e.to_string().contains("tile-size 1 is below the smallest tile of 64"), "{e}");
        let e = Tiling { tile_size: 64, overlap: 33, ..Tiling::default() }.check().unwrap_err().to_string();
        assert!(e.contains("tile-overlap 33 is more than half of tile-size 64"), "{e}");
        assert!(Tiling { tile_size: 64, overlap: 32, ..Tiling::default() }.check().is_ok());
        assert!(Tiling { tile_size: 0, overlap: 100, ..Tiling::default() }.check().is_ok());
        assert!(Tiling { batch: 0, ..Tiling::default() }.check().is_err());
    }

    #[test]
    fn out_of_memory_retries_halve_down_to_the_floor() {
        let t = Tiling::default();
        assert_eq!(t.smaller_after_oom(1920), Some(960));
        assert_eq!(t.smaller_after_oom(100), Some(64));
        assert_eq!(t.smaller_after_oom(64), None);
        // a large overlap raises the floor
        let t = Tiling { overlap: 48, ..Tiling::default() };
        assert_eq!(t.smaller_after_oom(120), Some(96));
        assert_eq!(t.smaller_after_oom(96), None);
    }

    #[test]
    fn a_budget_chooses_the_largest_tile_that_fits_and_caps_the_arena_with_the_rest() {
        let (model, tiling) = (model(), Tiling { max_memory_mib: 256, ..Tiling::default() });
        let planner = Planner { tiling: &tiling, model: &model, scale: 2, capped: true, output_bytes: 0 };
        let size = Size::new(1920, 1080);
        // 200 bytes per input pixel of a run: a whole 1080p frame needs 415 MB
        let estimate = |tile: Size, batch: u32| tile.pixels() * batch as usize * 200;
        let plan = planner.plan(size, None, estimate).unwrap();
        let own = own_buffer_bytes(size, 2, !plan.is_whole_frame());
        assert!(!plan.is_whole_frame());
        assert!(estimate(plan.tiles.tile, 1) + own <= 256 << 20);
        // the candidate before it (tiles shrink by a quarter at a time) did not fit
        let previous = TilePlan::new(size, 2, plan.tile_side() * 4 / 3 + 8, 32).tile;
        assert!(estimate(previous, 1) + own > 256 << 20, "{previous} tiles would have fitted");
        assert_eq!(plan.memory_limit, Some((256 << 20) - own));
        let e = Planner { tiling: &Tiling { max_memory_mib: 1, ..tiling }, ..planner }
            .plan(size, None, estimate)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-memory 1 MiB is too small for 1920x1080 frames: 64x64 tiles need about"), "{e}");
        // unlimited: whole frames, no arena limit; on the CPU a budget does not cap anything
        let plan = Planner { tiling: &Tiling::default(), ..planner }.plan(size, None, estimate).unwrap();
        assert!(plan.is_whole_frame() && plan.memory_limit.is_none());
        let plan = Planner { capped: false, ..planner }.plan(size, None, estimate).unwrap();
        assert_eq!(plan.memory_limit, None);
        // forced by a retry
        let plan = Planner { tiling: &Tiling::default(), ..planner }.plan(size, Some(480), estimate).unwrap();
        assert_eq!(plan.tile_side(), 480);
        // an engine that cannot take tiles past 1000 pixels a side: shrunk without a budget too, and with one
        let bounded =
            |tile: Size, batch: u32| if tile.width.max(tile.height) > 1000 { TOO_LARGE } else { estimate(tile, batch) };
        let plan = Planner { tiling: &Tiling::default(), ..planner }.plan(size, None, bounded).unwrap();
        assert!(
            !plan.is_whole_frame() && plan.tiles.tile.width.max(plan.tiles.tile.height) <= 1000,
            "{:?}",
            plan.tiles.tile
        );
        let roomy = Tiling { max_memory_mib: 1 << 20, ..Tiling::default() };
        let plan = Planner { tiling: &roomy, ..planner }.plan(size, None, bounded).unwrap();
        assert!(plan.tiles.tile.width.max(plan.tiles.tile.height) <= 1000, "{:?}", plan.tiles.tile);
    }
}
