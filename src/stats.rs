// SPDX-License-Identifier: MPL-2.0
//! Per-frame telemetry: stage timings and the counters that show where frame data moved, and the names of the
//! fields under which the element reports them (its `stats` structure), shared by the element, the command line,
//! the benchmark and the tests.

/// Field names of the element's `stats` structure.
pub mod field {
    /// Frames upscaled (`u64`).
    pub const FRAMES: &str = "frames";
    /// The engine the model runs on: a [`Backend`](crate::Backend) name (`String`).
    pub const BACKEND: &str = "backend";
    /// The GPU ("NAME (device N)") or "cpu" (`String`).
    pub const DEVICE: &str = "device";
    /// Mean and maximum milliseconds of converting NV12 into the model's input (`f64`).
    pub const CONVERT_IN_MEAN_MS: &str = "convert-in-mean-ms";
    pub const CONVERT_IN_MAX_MS: &str = "convert-in-max-ms";
    /// Mean and maximum milliseconds of the model's runs for one frame (`f64`).
    pub const INFERENCE_MEAN_MS: &str = "inference-mean-ms";
    pub const INFERENCE_MAX_MS: &str = "inference-max-ms";
    /// Mean and maximum milliseconds of blending and converting the output back to NV12 (`f64`).
    pub const CONVERT_OUT_MEAN_MS: &str = "convert-out-mean-ms";
    pub const CONVERT_OUT_MAX_MS: &str = "convert-out-max-ms";
    /// Inputs read in place from CUDA memory of our context (`u64`).
    pub const ZERO_COPY_INPUTS: &str = "zero-copy-inputs";
    /// Inputs copied from another CUDA context (`u64`).
    pub const FOREIGN_CONTEXT_COPIES: &str = "foreign-context-copies";
    /// System-memory inputs uploaded on the CUDA path (`u64`).
    pub const HOST_UPLOADS: &str = "host-uploads";
    /// Bytes of the bound input and output tensors (`u64`).
    pub const TENSOR_BYTES: &str = "tensor-bytes";
    /// Tiles per frame, 1 for whole frames (`u64`).
    pub const TILES_PER_FRAME: &str = "tiles-per-frame";
    /// Tile side in input pixels (`u32`).
    pub const TILE_SIZE: &str = "tile-size";
    /// Frames retried with smaller tiles after running out of device memory (`u64`).
    pub const OOM_RETRIES: &str = "oom-retries";
    /// Device memory held now: the engine's plus our own frames (`u64`).
    pub const DEVICE_MEMORY_BYTES: &str = "device-memory-bytes";
    /// Device memory the inference engine holds now (ONNX Runtime's arena, or the native kernels' tensors and
    /// weights) (`u64`).
    pub const INFERENCE_ARENA_BYTES: &str = "inference-arena-bytes";
    /// The most ONNX Runtime's arena had in use at once (`u64`); absent where the engine keeps no such figure.
    pub const INFERENCE_ARENA_PEAK_BYTES: &str = "inference-arena-peak-bytes";
    /// Frames that gave classic output because the model failed on them (`u64`).
    pub const FALLBACK_FRAMES: &str = "fallback-frames";
    /// Streams that gave classic output because the model or its backend could not be used (`u64`).
    pub const FALLBACK_STREAMS: &str = "fallback-streams";
    /// The classic filter in use: `lanczos` or `bicubic` (`String`).
    pub const CLASSIC_METHOD: &str = "classic-method";
    /// The AI strength in effect (`f64`).
    pub const STRENGTH: &str = "strength";
    /// The temporal stabilisation in effect (`f64`, 0: off).
    pub const TEMPORAL_STABILITY: &str = "temporal-stability";

    /// Every field, in the order the element reports them.
    pub const ALL: &[&str] = &[
        FRAMES,
        BACKEND,
        DEVICE,
        CONVERT_IN_MEAN_MS,
        CONVERT_IN_MAX_MS,
        INFERENCE_MEAN_MS,
        INFERENCE_MAX_MS,
        CONVERT_OUT_MEAN_MS,
        CONVERT_OUT_MAX_MS,
        ZERO_COPY_INPUTS,
        FOREIGN_CONTEXT_COPIES,
        HOST_UPLOADS,
        TENSOR_BYTES,
        TILES_PER_FRAME,
        TILE_SIZE,
        OOM_RETRIES,
        DEVICE_MEMORY_BYTES,
        INFERENCE_ARENA_BYTES,
        INFERENCE_ARENA_PEAK_BYTES,
        FALLBACK_FRAMES,
        FALLBACK_STREAMS,
        CLASSIC_METHOD,
        STRENGTH,
        TEMPORAL_STABILITY,
    ];
}

/// A pipeline stage that is timed per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    ConvertIn,
    Inference,
    ConvertOut,
}

/// Count, mean and maximum of one stage's duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageStats {
    pub count: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl StageStats {
    pub fn record(&mut self, ms: f64) {
        self.count += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total_ms / self.count as f64 }
    }
}

/// One frame's stage durations in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameTimes {
    pub convert_in: f64,
    pub inference: f64,
    pub convert_out: f64,
}

/// What an upscaler did so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Frames upscaled.
    pub frames: u64,
    pub convert_in: StageStats,
    pub inference: StageStats,
    pub convert_out: StageStats,
    /// Frames read directly from CUDA memory of our context (no copy at all).
    pub zero_copy_inputs: u64,
    /// Frames that arrived in CUDA memory of another context and were copied device-to-device into ours.
    pub foreign_context_copies: u64,
    /// Frames that arrived in host memory on the CUDA path and were uploaded.
    pub host_uploads: u64,
    /// Bytes of the bound input and output tensors.
    pub tensor_bytes: u64,
    /// Tiles per frame (1: whole frames) and the tile side in input pixels.
    pub tiles_per_frame: u64,
    pub tile_size: u32,
    /// Times a frame was retried with smaller tiles after running out of device memory.
    pub oom_retries: u64,
    /// Frames that gave classic output because the model failed on them.
    pub fallback_frames: u64,
    /// 1 when the stream gives classic output because the model or its backend could not be used.
    pub fallback_streams: u64,
    /// The output settings in effect: the classic filter, the AI strength, the temporal stabilisation.
    pub classic_method: &'static str,
    pub strength: f64,
    pub temporal_stability: f64,
}

impl Stats {
    pub fn record(&mut self, stage: Stage, ms: f64) {
        match stage {
            Stage::ConvertIn => self.convert_in.record(ms),
            Stage::Inference => self.inference.record(ms),
            Stage::ConvertOut => self.convert_out.record(ms),
        }
    }

    /// Records one finished frame.
    pub fn record_frame(&mut self, times: FrameTimes) {
        self.record(Stage::ConvertIn, times.convert_in);
        self.record(Stage::Inference, times.inference);
        self.record(Stage::ConvertOut, times.convert_out);
        self.frames += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_mean_and_max() {
        let mut s = StageStats::default();
        assert_eq!(s.mean_ms(), 0.0);
        for ms in [2.0, 4.0, 9.0] {
            s.record(ms);
        }
        assert_eq!((s.count, s.mean_ms(), s.max_ms), (3, 5.0, 9.0));
    }

    #[test]
    fn field_names_are_distinct_kebab_case() {
        let mut names = field::ALL.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), field::ALL.len(), "a field name is listed twice");
        for n in field::ALL {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
        }
    }
}
