// SPDX-License-Identifier: MPL-2.0

//! The element's properties: their specs (short blurbs; the long story is in `mod.rs`), values and the checks made
//! when the element starts.

use std::path::PathBuf;
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use vfupscale::UpscalerConfig;
use vfupscale::upscaler::{DEFAULT_TILE_OVERLAP, MAX_FRAMES_IN_FLIGHT, MIN_TILE, Tiling};

use super::{BackendProperty, PrecisionProperty};

pub const DEFAULT_DEVICE_ID: u32 = 0;
/// Highest CUDA device ordinal accepted (far more GPUs than any one host has).
const MAX_DEVICE_ID: u32 = 63;
/// Largest tile side: beyond the largest frames the NVIDIA decoders produce (8192), a tile is the whole frame.
const MAX_TILE_SIZE: u32 = 16384;
/// Largest tile overlap: far beyond the receptive field of any model we run.
const MAX_TILE_OVERLAP: u32 = 1024;
const MAX_BATCH_SIZE: u32 = 64;
/// Largest device memory budget in MiB (1 TiB).
const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Largest statistics interval in frames (over nine hours at 30 fps).
const MAX_STATS_INTERVAL: u64 = 1_000_000;
/// Frames kept in flight on the GPU by default: one hides the gap between frames (handing one on, taking the next)
/// in which the GPU would otherwise wait for the CPU.
const DEFAULT_ASYNC_DEPTH: u32 = 1;
/// Most frames in flight the `async-depth` property allows: the upscaler queues one more than that.
const MAX_ASYNC_DEPTH: u32 = MAX_FRAMES_IN_FLIGHT as u32 - 1;

/// Property values.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: Option<String>,
    pub backend: BackendProperty,
    pub precision: PrecisionProperty,
    pub device_id: u32,
    pub engine_cache_dir: Option<String>,
    pub tiling: Tiling,
    /// Frames between `vfupscale-stats` element messages (0: none).
    pub stats_interval: u64,
    /// Frames kept in flight on the GPU before the oldest is pushed.
    pub async_depth: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            backend: BackendProperty::Auto,
            precision: PrecisionProperty::Auto,
            device_id: DEFAULT_DEVICE_ID,
            engine_cache_dir: None,
            tiling: Tiling::default(),
            stats_interval: 0,
            async_depth: DEFAULT_ASYNC_DEPTH,
        }
    }
}

/// The property specs.
pub fn properties() -> &'static [glib::ParamSpec] {
    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb("ONNX super-resolution model file (unset: realesr-animevideov3-x2 from the models directory)")
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("backend", BackendProperty::Auto)
                .nick("Backend")
                .blurb("What runs the model")
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("precision", PrecisionProperty::Auto)
                .nick("Precision")
                .blurb("Float precision the model runs in")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("device-id")
                .nick("Device ID")
                .blurb("CUDA device")
                .maximum(MAX_DEVICE_ID)
                .default_value(DEFAULT_DEVICE_ID)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("engine-cache-dir")
                .nick("Engine cache directory")
                .blurb("TensorRT engine and timing caches (unset: $XDG_CACHE_HOME/vfupscale/tensorrt)")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("tile-size")
                .nick("Tile size")
                .blurb("Tile side in input pixels, at least 64 (0: whole frames unless max-memory needs tiles)")
                .maximum(MAX_TILE_SIZE)
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("tile-overlap")
                .nick("Tile overlap")
                .blurb("Input pixels by which neighbouring tiles overlap (at most half a tile)")
                .maximum(MAX_TILE_OVERLAP)
                .default_value(DEFAULT_TILE_OVERLAP)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("batch-size")
                .nick("Batch size")
                .blurb("Tiles per inference run, for models with a dynamic batch axis")
                .minimum(1)
                .maximum(MAX_BATCH_SIZE)
                .default_value(1)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("max-memory")
                .nick("Maximum device memory")
                .blurb("Device memory budget in MiB, met by tiling (0: unlimited)")
                .maximum(MAX_MEMORY_MIB)
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("stats-interval")
                .nick("Statistics interval")
                .blurb("Post the stats as an element message every this many frames (0: never)")
                .maximum(MAX_STATS_INTERVAL)
                .default_value(0)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("async-depth")
                .nick("Asynchronous depth")
                .blurb("CUDA frames kept in flight on the GPU, each adding a frame of latency (0: none)")
                .maximum(MAX_ASYNC_DEPTH)
                .default_value(DEFAULT_ASYNC_DEPTH)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("scale")
                .nick("Scale")
                .blurb("Upscale factor of the model (0 until it is loaded)")
                .read_only()
                .build(),
            glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                .nick("Statistics")
                .blurb("Frames, stage timings, input paths, tiling and device memory (fields: see the docs)")
                .read_only()
                .build(),
        ]
    });
    PROPERTIES.as_ref()
}

/// Whether a property may change while the element runs (PAUSED or PLAYING).
pub fn mutable_while_running(pspec: &glib::ParamSpec) -> bool {
    pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING)
}

impl Settings {
    /// Sets the writable property `name` (GObject has checked the value's type and range).
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        let v = value;
        match name {
            "model" => self.model = v.get().expect("type checked upstream"),
            "backend" => self.backend = v.get().expect("type checked upstream"),
            "precision" => self.precision = v.get().expect("type checked upstream"),
            "device-id" => self.device_id = v.get().expect("type checked upstream"),
            "engine-cache-dir" => self.engine_cache_dir = v.get().expect("type checked upstream"),
            "tile-size" => self.tiling.tile_size = v.get().expect("type checked upstream"),
            "tile-overlap" => self.tiling.overlap = v.get().expect("type checked upstream"),
            "batch-size" => self.tiling.batch = v.get().expect("type checked upstream"),
            "max-memory" => self.tiling.max_memory_mib = v.get().expect("type checked upstream"),
            "stats-interval" => self.stats_interval = v.get().expect("type checked upstream"),
            "async-depth" => self.async_depth = v.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
    }

    /// The value of the settable property `name`; `None` for the read-only ones, which the element answers.
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "model" => self.model.to_value(),
            "backend" => self.backend.to_value(),
            "precision" => self.precision.to_value(),
            "device-id" => self.device_id.to_value(),
            "engine-cache-dir" => self.engine_cache_dir.to_value(),
            "tile-size" => self.tiling.tile_size.to_value(),
            "tile-overlap" => self.tiling.overlap.to_value(),
            "batch-size" => self.tiling.batch.to_value(),
            "max-memory" => self.tiling.max_memory_mib.to_value(),
            "stats-interval" => self.stats_interval.to_value(),
            "async-depth" => self.async_depth.to_value(),
            _ => return None,
        })
    }

    /// Combinations of values that cannot work, found when the element starts.
    pub fn check(&self) -> Result<(), gst::ErrorMessage> {
        let Tiling { tile_size, overlap, .. } = self.tiling;
        if tile_size != 0 && tile_size < MIN_TILE {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("tile-size {tile_size} is below the smallest tile of {MIN_TILE} pixels (0: whole frames)")
            ));
        }
        if tile_size != 0 && overlap > tile_size / 2 {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("tile-overlap {overlap} is more than half of tile-size {tile_size}: at most {} fits", tile_size / 2)
            ));
        }
        Ok(())
    }

    /// When the tiles `max-memory` chose (`tile` input pixels per side) are too small for the overlap, what the
    /// tiles overlap by instead.
    pub fn overlap_note(&self, tile: u32, tiles_per_frame: u64) -> Option<String> {
        let overlap = self.tiling.overlap;
        (tiles_per_frame > 1 && overlap > tile / 2).then(|| {
            format!(
                "tile-overlap {overlap} is more than half of the {tile}px tiles in use: they overlap by {}",
                tile / 2
            )
        })
    }

    /// What to build the upscaler from: the model (the default one when unset) and the engine cache directory.
    pub fn upscaler_config(&self) -> Result<UpscalerConfig, gst::ErrorMessage> {
        let model = match &self.model {
            Some(m) => PathBuf::from(m),
            None => {
                let p = vfupscale::models::default_model_path();
                if !p.exists() {
                    return Err(gst::error_msg!(
                        gst::ResourceError::NotFound,
                        (
                            "No model set, and the default model {} is not installed at {}: run `vfupscale-model \
                             fetch` or set the model property",
                            vfupscale::models::DEFAULT_MODEL,
                            p.display()
                        )
                    ));
                }
                p
            }
        };
        let engine_cache_dir = self.engine_cache_dir.as_ref().map(PathBuf::from).or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("vfupscale/tensorrt"))
        });
        Ok(UpscalerConfig {
            model,
            backend: self.backend.into(),
            precision: self.precision.into(),
            device_id: self.device_id,
            engine_cache_dir,
            tiling: self.tiling,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfupscale::error::posted;

    fn tiled(tile_size: u32, overlap: u32) -> Settings {
        Settings { tiling: Tiling { tile_size, overlap, ..Tiling::default() }, ..Settings::default() }
    }

    #[test]
    fn tiles_below_the_minimum_and_overlaps_above_half_a_tile_are_refused() {
        gst::init().unwrap();
        assert!(tiled(0, DEFAULT_TILE_OVERLAP).check().is_ok());
        assert!(tiled(MIN_TILE, MIN_TILE / 2).check().is_ok());
        let e = posted(tiled(1, 0).check().unwrap_err());
        assert!(e.matches(gst::LibraryError::Settings));
        assert!(e.message().contains("tile-size 1 is below the smallest tile of 64"), "{e}");
        let e = posted(tiled(MIN_TILE - 1, 0).check().unwrap_err());
        assert!(e.message().contains("tile-size 63"), "{e}");
        let e = posted(tiled(100, 51).check().unwrap_err());
        assert!(e.message().contains("tile-overlap 51 is more than half of tile-size 100: at most 50"), "{e}");
    }

    #[test]
    fn an_overlap_too_large_for_the_chosen_tiles_is_reported() {
        let s = tiled(0, 48);
        assert_eq!(s.overlap_note(192, 1), None, "one tile: no overlap at all");
        assert_eq!(s.overlap_note(96, 4), None);
        assert_eq!(
            s.overlap_note(64, 12).as_deref(),
            Some("tile-overlap 48 is more than half of the 64px tiles in use: they overlap by 32")
        );
    }

    #[test]
    fn only_stats_interval_may_change_while_running() {
        gst::init().unwrap();
        let running: Vec<&str> = properties()
            .iter()
            .filter(|p| p.flags().contains(glib::ParamFlags::WRITABLE))
            .filter(|p| mutable_while_running(p))
            .map(|p| p.name())
            .collect();
        assert_eq!(running, ["stats-interval"]);
    }

    #[test]
    fn every_writable_property_reads_back() {
        gst::init().unwrap();
        let s = Settings::default();
        for p in properties() {
            let readable = s.get(p.name());
            assert_eq!(readable.is_some(), p.flags().contains(glib::ParamFlags::WRITABLE), "{}", p.name());
        }
    }
}
