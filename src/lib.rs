// SPDX-License-Identifier: MPL-2.0
//! vfupscale core: GPU video super-resolution without host copies.
//!
//! This crate knows CUDA, ONNX Runtime and pixels, not GStreamer: it converts NV12 frames to planar RGB tensors
//! (NVRTC-compiled kernels on the GPU, the same math in Rust on the CPU), runs a super-resolution model on our
//! own kernels or through ONNX Runtime with IO bound to device memory, and converts the result back. The GStreamer
//! element in `plugins/vfupscale` adapts it.
//!
//! The API, in the order a caller meets it:
//! - [`UpscalerConfig`] (model by path or installed name, [`BackendChoice`], [`Precision`], [`Tiling`]) makes an
//!   [`Upscaler`], which resolves and checks the model once, chooses the engine ([`select_engine`]) and measures
//!   the scale;
//! - [`Upscaler::prepare`] for a frame size in host or device memory ([`TensorLocation`]);
//! - host frames: [`Upscaler::upscale_host`]; device frames: [`Upscaler::upscale_device`] (waits), or
//!   [`Upscaler::queue`] a value that keeps its frames alive ([`FrameBuffers`]) and take it back from
//!   [`Upscaler::finish_frame`];
//! - [`Upscaler::stats`] ([`stats::field`] names the fields the element reports), [`Upscaler::device_memory`];
//! - errors are [`Error`]s, asked for their [`ErrorKind`].

pub mod color;
pub mod cpu;
pub mod cuda;
pub mod format;
pub mod frame;
pub mod infer;
pub mod model;
pub mod models;
pub mod native;
pub mod paths;
pub mod stats;
pub mod tiling;

mod backend;
mod engine;
mod error;
mod planning;
mod upscaler;

// The model code lives in `vfupscale-onnx`; these private imports keep `crate::onnx`/`crate::ncnn` paths working.
use vfupscale_onnx::{ncnn, onnx};

pub use backend::{Backend, BackendChoice, Precision, UnknownName};
pub use engine::{
    Agreement, Engine, EngineMemory, EngineRequest, NATIVE_AGREEMENT_DB, SelectedEngine, compare_engines, probe_image,
    select_engine,
};
pub use error::{Error, ErrorKind, Result};
pub use infer::TensorLocation;
pub use model::{Model, ModelInfo};
pub use planning::{DEFAULT_TILE_OVERLAP, MIN_TILE, RunPlan, Tiling};
pub use stats::Stats;
pub use upscaler::{
    DeviceFrames, DeviceMemory, FrameBuffers, InputFrame, MAX_FRAMES_IN_FLIGHT, Upscaler, UpscalerConfig,
};
/// The decoded ONNX model that [`Model`] and [`ModelInfo::from_proto`] work on.
pub use vfupscale_onnx::onnx::ModelProto;
