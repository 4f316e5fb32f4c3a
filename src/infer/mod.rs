// SPDX-License-Identifier: MPL-2.0
//! Inference through ONNX Runtime: loading the library (no panics when absent), choosing the execution provider
//! (TensorRT → CUDA → CPU, each fallback reported), matching the model's float precision to it, and binding input
//! and output to preallocated tensors in host or device memory so that a run copies nothing.

mod arena;
mod options;
pub mod runtime;
mod session;

use ort::session::Session;

pub use arena::ArenaStats;
pub use options::SessionOptions;
pub use session::InferenceSession;

use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};
use crate::frame::ElementType;
use crate::model::ModelInfo;
use crate::onnx::precision::FloatPrecision;

/// Where a session's bound input and output tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorLocation {
    Host,
    Device,
}

/// The float precision the graph is converted to for `backend`.
fn target_precision(backend: Backend, requested: Precision, model: &ModelInfo) -> FloatPrecision {
    match (backend, requested) {
        // TensorRT takes an fp32 graph and chooses fp16 kernels itself (trt_fp16_enable)
        (Backend::TensorRt, _) if model.input_type == ElementType::F32 => FloatPrecision::F32,
        (_, Precision::Fp16) => FloatPrecision::F16,
        (Backend::Cpu, Precision::Auto) | (_, Precision::Fp32) => FloatPrecision::F32,
        (_, Precision::Auto) => FloatPrecision::F16,
    }
}

/// Whether each execution provider actually registers here (libraries present and loadable), with the reason
/// when it does not. Loads ONNX Runtime if needed; touches no model.
pub fn probe_providers(device_id: u32) -> Vec<(Backend, std::result::Result<(), String>)> {
    let providers = [Backend::TensorRt, Backend::Cuda, Backend::Cpu];
    let rt = match runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => return providers.map(|b| (b, Err(e.to_string()))).to_vec(),
    };
    let options = SessionOptions::new(device_id, Precision::Fp16);
    providers
        .into_iter()
        .map(|backend| {
            // no shape profile, so no input name is needed
            let result = (|| -> Result<()> {
                if backend.is_gpu() {
                    crate::cuda::driver_status()?;
                }
                let providers = options.providers(backend, "")?;
                let builder = Session::builder(&rt.environment)?;
                if !providers.is_empty() {
                    builder
                        .with_execution_providers(providers)
                        .map_err(|e| Error::ProviderUnavailable { backend, source: e.into() })?;
                }
                Ok(())
            })();
            (backend, result.map_err(|e| e.to_string()))
        })
        .collect()
}
