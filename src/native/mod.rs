//! Our own execution path for SRVGGNetCompact models (realesr-animevideov3 x2/x3/x4, realesr-general-x4v3): the
//! whole network as a handful of CUDA kernels, chosen instead of ONNX Runtime when a model's graph matches and
//! its output agrees with ONNX Runtime's (see `Upscaler`).
//!
//! Why: ONNX Runtime's CUDA provider runs each 3×3 convolution through cuDNN and then bias-free PReLU as separate
//! passes over the activations, and adds layout transposes; here every layer is one tensor-core implicit GEMM whose
//! epilogue applies bias and activation (the last one also the pixel shuffle and the residual), so activations
//! make one round trip through memory per layer.

mod engine;
pub mod graph;

pub use engine::{NativeEngine, device_support};
pub use graph::{SrvggGraph, match_srvgg};
