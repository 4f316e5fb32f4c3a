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
pub mod ncnn;
pub mod onnx;
pub mod stats;
pub mod tiling;
pub mod upscaler;

pub use error::{Error, Result};
pub use infer::{Backend, BackendChoice, Precision};
pub use upscaler::{Upscaler, UpscalerConfig};
