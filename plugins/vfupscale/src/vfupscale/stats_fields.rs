// SPDX-License-Identifier: MPL-2.0

//! Field names of the `stats` structure, the one table the element uses (`snapshot.rs` imports it as `field`).
//!
//! The core is getting the same table as `vfupscale::stats::field`; once it has, `snapshot.rs` imports that
//! instead and this file goes.

/// Name of the structure (also of the element messages posted every `stats-interval` frames).
pub const STRUCTURE: &str = "vfupscale-stats";
pub const FRAMES: &str = "frames";
pub const BACKEND: &str = "backend";
pub const DEVICE: &str = "device";
pub const CONVERT_IN_MEAN_MS: &str = "convert-in-mean-ms";
pub const CONVERT_IN_MAX_MS: &str = "convert-in-max-ms";
pub const INFERENCE_MEAN_MS: &str = "inference-mean-ms";
pub const INFERENCE_MAX_MS: &str = "inference-max-ms";
pub const CONVERT_OUT_MEAN_MS: &str = "convert-out-mean-ms";
pub const CONVERT_OUT_MAX_MS: &str = "convert-out-max-ms";
pub const ZERO_COPY_INPUTS: &str = "zero-copy-inputs";
pub const FOREIGN_CONTEXT_COPIES: &str = "foreign-context-copies";
pub const HOST_UPLOADS: &str = "host-uploads";
pub const TENSOR_BYTES: &str = "tensor-bytes";
pub const TILES_PER_FRAME: &str = "tiles-per-frame";
pub const TILE_SIZE: &str = "tile-size";
pub const OOM_RETRIES: &str = "oom-retries";
pub const DEVICE_MEMORY_BYTES: &str = "device-memory-bytes";
pub const INFERENCE_ARENA_BYTES: &str = "inference-arena-bytes";
pub const INFERENCE_ARENA_PEAK_BYTES: &str = "inference-arena-peak-bytes";
