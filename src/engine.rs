//! The inference engine behind an upscaler: an ONNX Runtime session, or our native kernels for the models they
//! cover. Both take a bound input tensor and fill a bound output tensor.

use crate::error::{Error, Result};
use crate::frame::Size;
use crate::infer::{ArenaStats, Backend, InferenceSession, TensorLocation};
use crate::model::ModelInfo;
use crate::native::NativeEngine;

pub enum Engine {
    Ort(Box<InferenceSession>),
    Native(Box<NativeEngine>),
}

impl Engine {
    pub fn backend(&self) -> Backend {
        match self {
            Engine::Ort(s) => s.backend(),
            Engine::Native(_) => Backend::Native,
        }
    }

    /// The model's contract as it runs (element types after precision conversion).
    pub fn model(&self) -> &ModelInfo {
        match self {
            Engine::Ort(s) => s.model(),
            Engine::Native(n) => n.model(),
        }
    }

    /// Allocates (or keeps) input `[batch, 3, size]` and output `[batch, 3, scale·size]` tensors at `location`.
    pub fn bind(&mut self, batch: u32, size: Size, scale: u32, location: TensorLocation) -> Result<()> {
        match self {
            Engine::Ort(s) => s.bind(batch, size, scale, location),
            Engine::Native(_) if location == TensorLocation::Host => {
                Err(Error::InvalidConfig("the native kernels take device-memory tensors only".into()))
            }
            Engine::Native(n) => n.bind(batch, size),
        }
    }

    /// Device address of the bound input tensor.
    pub fn input_ptr(&mut self) -> Result<u64> {
        match self {
            Engine::Ort(s) => s.input_ptr(),
            Engine::Native(n) => n.input_ptr(),
        }
    }

    /// Device address of the bound output tensor.
    pub fn output_ptr(&mut self) -> Result<u64> {
        match self {
            Engine::Ort(s) => s.output_ptr(),
            Engine::Native(n) => n.output_ptr(),
        }
    }

    /// The bound host input tensor (ONNX Runtime sessions with host tensors only).
    pub fn input_host<T: ort::value::PrimitiveTensorElementType + 'static>(&mut self) -> Result<&mut [T]> {
        match self {
            Engine::Ort(s) => s.input_host(),
            Engine::Native(_) => Err(Error::InvalidConfig("the native kernels have no host tensors".into())),
        }
    }

    /// The bound host output tensor (ONNX Runtime sessions with host tensors only).
    pub fn output_host<T: ort::value::PrimitiveTensorElementType + 'static>(&mut self) -> Result<&[T]> {
        match self {
            Engine::Ort(s) => s.output_host(),
            Engine::Native(_) => Err(Error::InvalidConfig("the native kernels have no host tensors".into())),
        }
    }

    /// Runs on the bound tensors; on the GPU the work is only queued on the compute stream.
    pub fn run(&mut self) -> Result<()> {
        match self {
            Engine::Ort(s) => s.run(),
            Engine::Native(n) => n.run(),
        }
    }

    /// Device memory the engine holds for inference (for ONNX Runtime its arena); `None` off the GPU.
    pub fn device_memory(&self) -> Option<ArenaStats> {
        match self {
            Engine::Ort(s) => s.device_arena(),
            Engine::Native(n) => {
                let bytes = n.memory_bytes() as u64;
                Some(ArenaStats { reserved: bytes, in_use: bytes, peak_in_use: bytes, limit: 0 })
            }
        }
    }
}
