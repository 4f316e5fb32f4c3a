//! vfupscale core: GPU video super-resolution without host copies.
//!
//! This crate knows CUDA, ONNX Runtime and pixels, not GStreamer: it converts NV12 frames to planar RGB tensors
//! (NVRTC-compiled kernels on the GPU, the same math in Rust on the CPU), runs an ONNX super-resolution model
//! through ONNX Runtime with IO bound to device memory, and converts the result back. The GStreamer element in
//! `plugins/vfupscale` adapts it.

pub mod color;
pub mod cpu;
pub mod cuda;
pub mod engine;
pub mod error;
pub mod frame;
pub mod infer;
pub mod model;
pub mod models;
pub mod native;
pub mod stats;
pub mod tiling;
pub mod upscaler;

// The model code lives in `vfupscale-onnx`; these private imports keep `crate::onnx`/`crate::ncnn` paths working.
use vfupscale_onnx::{ncnn, onnx};

pub use error::{Error, Result};
pub use infer::{Backend, BackendChoice, Precision};
pub use upscaler::{Upscaler, UpscalerConfig};
/// The decoded ONNX model that [`model::ModelInfo::from_proto`] and [`infer::load_model`] work on.
pub use vfupscale_onnx::onnx::ModelProto;
