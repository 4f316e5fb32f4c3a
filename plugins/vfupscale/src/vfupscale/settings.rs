// SPDX-License-Identifier: MPL-2.0

//! The element's properties: their specs (short blurbs; the long story is in `mod.rs`), their values, and the
//! upscaler configuration made of them when the element starts (the core checks it).

use std::path::PathBuf;
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use vfupscale::{DEFAULT_TILE_OVERLAP, MAX_FRAMES_IN_FLIGHT, TemporalSettings, Tiling, UpscalerConfig};

use super::{BackendProperty, ClassicMethodProperty, FallbackProperty, PrecisionProperty};

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
/// Largest scale factor of classic output (without a model).
const MAX_SCALE: u32 = 16;

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
    pub classic_method: ClassicMethodProperty,
    /// AI strength: the weight of the model's output against the classic image.
    pub strength: f64,
    pub fallback: FallbackProperty,
    pub temporal_stability: f64,
    /// Scale factor without a model (0: the model's).
    pub scale: u32,
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
            classic_method: ClassicMethodProperty::Lanczos,
            strength: 1.0,
            fallback: FallbackProperty::None,
            temporal_stability: 0.0,
            scale: 0,
        }
    }
}

/// The property specs.
pub fn properties() -> &'static [glib::ParamSpec] {
    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb("ONNX model file or installed model name (unset: realesr-animevideov3-x2)")
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
                .blurb("TensorRT engine and timing caches (unset: ~/.cache/vfupscale/tensorrt)")
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
            glib::ParamSpecEnum::builder_with_default("classic-method", ClassicMethodProperty::Lanczos)
                .nick("Classic method")
                .blurb("Filter of classic output, of the strength blend and of outputs smaller than the model's")
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("strength")
                .nick("AI strength")
                .blurb("Weight of the model's output against classic scaling (0: classic only, 1: model only)")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(1.0)
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("fallback", FallbackProperty::None)
                .nick("Fallback")
                .blurb("What to output when the model cannot run")
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("temporal-stability")
                .nick("Temporal stability")
                .blurb("How much static regions keep of the previous output, against flicker (0: off)")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(0.0)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("scale")
                .nick("Scale")
                .blurb("Upscale factor: the model's once started; set it for classic output without a model (0: the model's)")
                .maximum(MAX_SCALE)
                .default_value(0)
                .mutable_ready()
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
            "classic-method" => self.classic_method = v.get().expect("type checked upstream"),
            "strength" => self.strength = v.get().expect("type checked upstream"),
            "fallback" => self.fallback = v.get().expect("type checked upstream"),
            "temporal-stability" => self.temporal_stability = v.get().expect("type checked upstream"),
            "scale" => self.scale = v.get().expect("type checked upstream"),
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
            "classic-method" => self.classic_method.to_value(),
            "strength" => self.strength.to_value(),
            "fallback" => self.fallback.to_value(),
            "temporal-stability" => self.temporal_stability.to_value(),
            "scale" => self.scale.to_value(),
            _ => return None,
        })
    }

    /// What to build the upscaler from. The model is a path or an installed model's name (`None`: the default
    /// model), the engine cache directory `None` for the core's default; the core checks the tiling and resolves
    /// the model.
    pub fn upscaler_config(&self) -> UpscalerConfig {
        UpscalerConfig {
            model: self.model.as_ref().map(PathBuf::from),
            backend: self.backend.into(),
            precision: self.precision.into(),
            device_id: self.device_id,
            engine_cache_dir: self.engine_cache_dir.as_ref().map(PathBuf::from),
            tiling: self.tiling,
            classic: self.classic_method.into(),
            strength: self.strength as f32,
            fallback: self.fallback.into(),
            temporal: TemporalSettings::with_strength(self.temporal_stability as f32),
            scale: (self.scale != 0).then_some(self.scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
