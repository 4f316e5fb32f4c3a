// SPDX-License-Identifier: MPL-2.0
//! The inference engine behind an upscaler: an ONNX Runtime session, or our native kernels for the models they
//! cover. Callers ask the engine (its memory estimate, how to reconfigure for a plan, its tensors), never which
//! one it is; [`select_engine`] chooses it.

mod select;

use std::sync::Arc;

use cudarc::driver::CudaStream;

pub use select::{
    Agreement, EngineRequest, NATIVE_AGREEMENT_DB, SelectedEngine, compare_engines, probe_image, select_engine,
};

use crate::backend::Backend;
use crate::color::Affine3x4;
use crate::cuda::{DeviceFrameMut, PlanarTensor, PlanarTensorMut};
use crate::error::{Error, Result};
use crate::frame::{HostTensor, HostTensorMut, PixelFormat, Size};
use crate::infer::{InferenceSession, SessionOptions, TensorLocation};
use crate::model::{Model, ModelInfo};
use crate::native::{NativeEngine, ProgramEngine};
use crate::planning::RunPlan;

/// Room kept for cuDNN workspaces and ONNX Runtime's own buffers inside a memory budget.
const WORKSPACE_RESERVE: usize = 96 << 20;
/// Widest activations the memory estimate assumes alive at once (see [`Engine::estimate`]).
const ACTIVATIONS_AT_PEAK: f64 = 4.0;

/// Device memory an engine holds, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineMemory {
    /// Held now (ONNX Runtime: its arena's reservation; native: tensors and weights).
    pub held: u64,
    /// The most the engine had in use at once, where it keeps that figure (ONNX Runtime's arena).
    pub peak: Option<u64>,
    /// The ceiling it was given, if any.
    pub limit: Option<u64>,
}

/// An ONNX Runtime session with what it takes to open it again for another plan.
struct OrtEngine {
    session: InferenceSession,
    model: Arc<Model>,
    options: SessionOptions,
    /// Values per input pixel at the model's widest layer (memory estimates).
    peak_activation: f64,
}

enum Inner {
    Ort(Box<OrtEngine>),
    Native(Box<NativeEngine>),
    /// A lowered network (RRDBNet, waifu2x UpConv7 and CUNet, Real-CUGAN) on the native Hopper kernels.
    Program(Box<ProgramEngine>),
}

/// A model ready to run on one backend, at a known scale.
pub struct Engine {
    inner: Inner,
    scale: u32,
    /// The stream the engine runs on (GPU backends).
    stream: Option<Arc<CudaStream>>,
}

impl Engine {
    pub(crate) fn onnx_runtime(
        session: InferenceSession,
        model: Arc<Model>,
        options: SessionOptions,
        scale: u32,
    ) -> Self {
        let peak_activation = crate::onnx::stats::model_stats(model.proto()).peak_activation_per_pixel.max(3.0);
        let stream = options.compute_stream().filter(|_| session.backend().is_gpu()).cloned();
        let inner = Inner::Ort(Box::new(OrtEngine { session, model, options, peak_activation }));
        Self { inner, scale, stream }
    }

    pub(crate) fn native(engine: NativeEngine, stream: Arc<CudaStream>) -> Self {
        Self { scale: engine.scale(), inner: Inner::Native(Box::new(engine)), stream: Some(stream) }
    }

    pub(crate) fn program(engine: ProgramEngine, stream: Arc<CudaStream>) -> Self {
        Self { scale: engine.scale(), inner: Inner::Program(Box::new(engine)), stream: Some(stream) }
    }

    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Ort(o) => o.session.backend(),
            Inner::Native(_) | Inner::Program(_) => Backend::Native,
        }
    }

    /// The model's upscale factor.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The model's contract as it runs (element types after precision conversion).
    pub fn model(&self) -> &ModelInfo {
        match &self.inner {
            Inner::Ort(o) => o.session.model(),
            Inner::Native(n) => n.model(),
            Inner::Program(p) => p.model(),
        }
    }

    /// The CUDA stream the engine's work is queued on (GPU backends).
    pub fn stream(&self) -> Option<&Arc<CudaStream>> {
        self.stream.as_ref()
    }

    /// Whether the engine can bind tensors in host memory (ONNX Runtime can; the native kernels cannot).
    pub fn supports_host_tensors(&self) -> bool {
        matches!(self.inner, Inner::Ort(_))
    }

    /// Estimated device bytes one run of `batch` tiles of `tile` needs. Native: exact. ONNX Runtime: the bound
    /// tensors, room for four of the widest activation (on the H100 a layer's input, its output, and the layout
    /// transposes the CUDA provider adds around resizes were measured alive at once: up to 3.5 of them for
    /// realesrgan-x4plus), plus workspace room. [`crate::planning::TOO_LARGE`] when the engine cannot take such a
    /// tile at all (the native program kernels' 32-bit indices).
    pub fn estimate(&self, tile: Size, batch: u32) -> usize {
        match &self.inner {
            Inner::Native(n) => n.estimate(tile, batch),
            Inner::Program(p) => p.estimate(tile, batch),
            Inner::Ort(o) => {
                let m = o.session.model();
                let (in_bytes, out_bytes) = (m.input_type.size() as f64, m.output_type.size() as f64);
                let px = tile.pixels() as f64 * batch as f64;
                let s2 = (self.scale * self.scale) as f64;
                let tensors = px * 3.0 * (in_bytes + s2 * out_bytes);
                let activations = ACTIVATIONS_AT_PEAK * o.peak_activation * px * in_bytes;
                (tensors + activations) as usize + WORKSPACE_RESERVE
            }
        }
    }

    /// Gets ready for `plan`: ONNX Runtime opens its session again when the plan's memory limit differs from the
    /// one it runs under, or (TensorRT) to build its engine for the plan's tile shape; the native kernels need
    /// nothing.
    pub fn reconfigure(&mut self, plan: &RunPlan) -> Result<()> {
        let Inner::Ort(o) = &mut self.inner else { return Ok(()) };
        let backend = o.session.backend();
        if backend != Backend::TensorRt && plan.memory_limit == o.options.memory_limit() {
            return Ok(());
        }
        let options = o.options.clone().with_profile(plan.batch, plan.tiles.tile).with_memory_limit(plan.memory_limit);
        o.session = InferenceSession::open_with(&o.model, &options, backend)?;
        o.options = options;
        Ok(())
    }

    /// Allocates (or keeps) input `[batch, 3, size]` and output `[batch, 3, scale·size]` tensors at `location`.
    pub fn bind(&mut self, batch: u32, size: Size, location: TensorLocation) -> Result<()> {
        let scale = self.scale;
        match &mut self.inner {
            Inner::Ort(o) => o.session.bind(batch, size, scale, location),
            Inner::Native(_) | Inner::Program(_) if location == TensorLocation::Host => {
                Err(Error::Usage("the native kernels take device-memory tensors only".into()))
            }
            Inner::Native(n) => n.bind(batch, size),
            Inner::Program(p) => p.bind(batch, size),
        }
    }

    /// Image `slot` of the bound device input tensor.
    pub fn input_tensor(&mut self, slot: u32) -> Result<PlanarTensorMut<'_>> {
        match &mut self.inner {
            Inner::Ort(o) => o.session.input_tensor(slot),
            Inner::Native(n) => n.input_tensor(slot),
            Inner::Program(p) => p.input_tensor(slot),
        }
    }

    /// Image `slot` of the bound device output tensor.
    pub fn output_tensor(&mut self, slot: u32) -> Result<PlanarTensor<'_>> {
        match &mut self.inner {
            Inner::Ort(o) => o.session.output_tensor(slot),
            Inner::Native(n) => n.output_tensor(slot),
            Inner::Program(p) => p.output_tensor(slot),
        }
    }

    /// The bound host input tensor (all images of the batch).
    pub fn input_host(&mut self) -> Result<HostTensorMut<'_>> {
        match &mut self.inner {
            Inner::Ort(o) => o.session.input_host(),
            Inner::Native(_) | Inner::Program(_) => Err(Error::Usage("the native kernels have no host tensors".into())),
        }
    }

    /// The bound host output tensor (all images of the batch).
    pub fn output_host(&mut self) -> Result<HostTensor<'_>> {
        match &mut self.inner {
            Inner::Ort(o) => o.session.output_host(),
            Inner::Native(_) | Inner::Program(_) => Err(Error::Usage("the native kernels have no host tensors".into())),
        }
    }

    /// Runs on the bound tensors; on the GPU the work is only queued on the engine's stream.
    pub fn run(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Ort(o) => o.session.run(),
            Inner::Native(n) => n.run(),
            Inner::Program(p) => p.run(),
        }
    }

    /// Whether [`Engine::run_into_frame`] can write `format` frames of `size` with the bound tensors (the native
    /// Hopper kernels for NV12 and P010, see [`NativeEngine::writes_frame`]; never ONNX Runtime).
    pub fn writes_frame(&self, format: PixelFormat, size: Size) -> bool {
        match &self.inner {
            Inner::Ort(_) | Inner::Program(_) => false,
            Inner::Native(n) => n.writes_frame(format, size),
        }
    }

    /// Runs on the bound input tensor with the model's last layer writing `frame` (code values by `from_rgb`)
    /// instead of the output tensor; only queued. Only for frames [`Engine::writes_frame`] accepts.
    ///
    /// # Safety
    /// The frame's memory must stay valid, touched by nothing else, until the work queued on the engine's stream
    /// has completed, and be memory of that stream's context.
    pub unsafe fn run_into_frame(&mut self, frame: &mut DeviceFrameMut<'_>, from_rgb: &Affine3x4) -> Result<()> {
        match &mut self.inner {
            Inner::Ort(_) => Err(Error::Usage("ONNX Runtime writes its output tensor, not frames".into())),
            Inner::Program(_) => {
                Err(Error::Usage("the dense native kernels write their output tensor, not frames".into()))
            }
            // SAFETY: this function's contract.
            Inner::Native(n) => unsafe { n.run_into_frame(frame, from_rgb) },
        }
    }

    /// Device memory the engine holds for inference; `None` off the GPU or where ONNX Runtime keeps no statistics.
    pub fn memory(&self) -> Option<EngineMemory> {
        match &self.inner {
            Inner::Ort(o) => o.session.device_arena().map(|a| EngineMemory {
                held: a.reserved,
                peak: Some(a.peak_in_use),
                limit: (a.limit > 0).then_some(a.limit),
            }),
            Inner::Native(n) => Some(n.memory()),
            Inner::Program(p) => Some(p.memory()),
        }
    }

    /// One run with each kernel timed (CUDA events), in launch order: the native kernels only (`None` on ONNX
    /// Runtime, whose kernels are its own).
    pub fn profile(&mut self) -> Result<Option<Vec<(String, f64)>>> {
        match &mut self.inner {
            Inner::Ort(_) => Ok(None),
            Inner::Native(n) => n.profile().map(Some),
            Inner::Program(p) => p.profile().map(Some),
        }
    }

    /// [`Engine::profile`] of [`Engine::run_into_frame`] (the native kernels' last layer named `last-wgmma-nv12` or
    /// `last-wgmma-p010`); `None` on ONNX Runtime. Waits for the run.
    ///
    /// # Safety
    /// As for [`Engine::run_into_frame`].
    pub unsafe fn profile_into_frame(
        &mut self,
        frame: &mut DeviceFrameMut<'_>,
        from_rgb: &Affine3x4,
    ) -> Result<Option<Vec<(String, f64)>>> {
        match &mut self.inner {
            Inner::Ort(_) | Inner::Program(_) => Ok(None),
            // SAFETY: this function's contract.
            Inner::Native(n) => unsafe { n.profile_into_frame(frame, from_rgb) }.map(Some),
        }
    }
}
