// SPDX-License-Identifier: MPL-2.0
//! An ONNX Runtime session on one execution provider, with input and output bound to preallocated tensors in host
//! or device memory so that a run copies nothing.

use std::sync::Arc;

use cudarc::driver::CudaStream;
use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{DynTensor, TensorElementType};

use super::arena::{ArenaStats, arena_stats};
use super::options::SessionOptions;
use super::{TensorLocation, runtime, target_precision};
use crate::backend::{Backend, BackendChoice};
use crate::cuda::{PlanarTensor, PlanarTensorMut};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{ElementType, HostTensor, HostTensorMut, Size};
use crate::model::{Model, ModelInfo, PROBE_SIZE};

/// A session, its provider, and the IO binding for the current shape.
pub struct InferenceSession {
    // Field order is drop order: the session goes before the stream it may run on.
    session: Session,
    binding: Option<Binding>,
    backend: Backend,
    /// The contract of the model as it runs (after any precision conversion).
    model: ModelInfo,
    device_id: u32,
    run_options: RunOptions,
    _stream: Option<Arc<CudaStream>>,
}

struct Binding {
    io: IoBinding,
    input: DynTensor,
    output: DynTensor,
    batch: u32,
    size: Size,
    scale: u32,
    location: TensorLocation,
}

fn tensor_type(e: ElementType) -> TensorElementType {
    match e {
        ElementType::F32 => TensorElementType::Float32,
        ElementType::F16 => TensorElementType::Float16,
    }
}

fn cuda_memory(device_id: u32) -> Result<MemoryInfo<'static>> {
    Ok(MemoryInfo::new(AllocationDevice::CUDA, device_id as i32, AllocatorType::Device, MemoryType::Default)?)
}

impl InferenceSession {
    /// Opens `model` with the first provider that works among those `choice` allows (TensorRT, CUDA, CPU for
    /// `auto`). Returns the session and one message per provider that was skipped, for the caller to log.
    pub fn open(model: &Model, options: &SessionOptions, choice: BackendChoice) -> Result<(Self, Vec<String>)> {
        let chain: &[Backend] = match choice {
            BackendChoice::Native | BackendChoice::Classic => {
                return Err(Error::Usage(format!("the {choice} backend is not an ONNX Runtime backend")));
            }
            BackendChoice::Auto => &[Backend::TensorRt, Backend::Cuda, Backend::Cpu],
            BackendChoice::TensorRt => &[Backend::TensorRt],
            BackendChoice::Cuda => &[Backend::Cuda],
            BackendChoice::Cpu => &[Backend::Cpu],
        };
        let mut skipped = Vec::new();
        for (i, &backend) in chain.iter().enumerate() {
            match Self::open_with(model, options, backend) {
                Ok(session) => return Ok((session, skipped)),
                Err(e) if i + 1 < chain.len() && e.kind() != ErrorKind::Model => {
                    skipped.push(format!("{backend} backend unavailable, falling back to {}: {e}", chain[i + 1]));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Usage("no backend to open".into()))
    }

    /// Opens `model` on exactly `backend`.
    pub fn open_with(model: &Model, options: &SessionOptions, backend: Backend) -> Result<Self> {
        let rt = runtime::runtime()?;
        if backend.is_gpu() {
            crate::cuda::driver_status()?;
            let wanted = if backend == Backend::TensorRt { ep::TensorRT::NAME } else { ep::CUDA::NAME };
            if !ep::CUDA::is_available().unwrap_or(false) {
                return Err(Error::unavailable(
                    format!("{backend} execution provider"),
                    format!(
                        "the loaded ONNX Runtime ({}) is a CPU-only build; {wanted} needs onnxruntime-gpu",
                        rt.library.display()
                    ),
                ));
            }
        }
        let info = model.info();
        let (running, bytes) = model.encoded_as(target_precision(backend, options.precision(), info))?;
        let providers = options.providers(backend, &info.input_name)?;
        let mut builder = Session::builder(&rt.environment)?.with_optimization_level(GraphOptimizationLevel::All)?;
        if !providers.is_empty() {
            builder = builder
                .with_execution_providers(providers)
                .map_err(|e| Error::ProviderUnavailable { backend, source: e.into() })?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            Error::model(&info.path, format!("ONNX Runtime cannot load it on the {backend} backend: {e}"))
        })?;
        let mut run_options = RunOptions::new()?;
        let stream = options.compute_stream().filter(|_| backend.is_gpu()).cloned();
        if stream.is_some() {
            // our stream is synchronised once per frame, after our own output kernel
            run_options.set("disable_synchronize_execution_providers", "1")?;
        }
        Ok(Self {
            session,
            binding: None,
            backend,
            model: running,
            device_id: options.device_id(),
            run_options,
            _stream: stream,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The model as it runs (types after precision conversion).
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Allocates (or keeps) input `[batch, 3, size]` and output `[batch, 3, scale·size]` tensors at `location` and
    /// binds them. Allocation happens only when the shape or location changes.
    pub fn bind(&mut self, batch: u32, size: Size, scale: u32, location: TensorLocation) -> Result<()> {
        if let Some(b) = &self.binding
            && (b.batch, b.size, b.scale, b.location) == (batch, size, scale, location)
        {
            return Ok(());
        }
        self.binding = None; // free the old tensors before allocating new ones
        let info = match location {
            TensorLocation::Host => {
                MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)?
            }
            TensorLocation::Device if !self.backend.is_gpu() => {
                return Err(Error::Usage("device-memory tensors need a GPU backend".into()));
            }
            TensorLocation::Device => cuda_memory(self.device_id)?,
        };
        let allocator = Allocator::new(&self.session, info)?;
        let (b, h, w) = (batch as usize, size.height as usize, size.width as usize);
        let s = scale as usize;
        let input = DynTensor::new(&allocator, tensor_type(self.model.input_type), [b, 3, h, w])?;
        let mut output = DynTensor::new(&allocator, tensor_type(self.model.output_type), [b, 3, h * s, w * s])?;
        let mut io = self.session.create_binding()?;
        io.bind_input(&self.model.input_name, &input)?;
        io.bind_output(&self.model.output_name, &mut output)?;
        self.binding = Some(Binding { io, input, output, batch, size, scale, location });
        Ok(())
    }

    fn binding(&mut self, location: TensorLocation) -> Result<&mut Binding> {
        match self.binding.as_mut() {
            Some(b) if b.location == location => Ok(b),
            Some(b) => Err(Error::Usage(format!("the bound tensors are in {:?} memory", b.location))),
            None => Err(Error::Usage("no tensors bound".into())),
        }
    }

    /// Image `slot` of the bound device input tensor.
    pub fn input_tensor(&mut self, slot: u32) -> Result<PlanarTensorMut<'_>> {
        let element = self.model.input_type;
        let b = self.binding(TensorLocation::Device)?;
        let (size, batch) = (b.size, b.batch);
        if slot >= batch {
            return Err(Error::Usage(format!("input slot {slot} of a batch of {batch}")));
        }
        let base = b.input.data_ptr_mut() as u64;
        let offset = (slot as usize * 3 * size.pixels() * element.size()) as u64;
        // SAFETY: ONNX Runtime allocated `[batch, 3, size]` of `element` on the device for this binding; the slot
        // lies inside it, and the view borrows `self` mutably, so the binding cannot be replaced while it lives.
        unsafe { PlanarTensorMut::from_raw(base + offset, size, element) }
    }

    /// Image `slot` of the bound device output tensor.
    pub fn output_tensor(&mut self, slot: u32) -> Result<PlanarTensor<'_>> {
        let element = self.model.output_type;
        let b = self.binding(TensorLocation::Device)?;
        let (size, batch) = (b.size.scaled(b.scale), b.batch);
        if slot >= batch {
            return Err(Error::Usage(format!("output slot {slot} of a batch of {batch}")));
        }
        let base = b.output.data_ptr_mut() as u64;
        let offset = (slot as usize * 3 * size.pixels() * element.size()) as u64;
        // SAFETY: as for `input_tensor`, with the output tensor `[batch, 3, scale·size]`.
        unsafe { PlanarTensor::from_raw(base + offset, size, element) }
    }

    /// The bound host input tensor (all images of the batch).
    pub fn input_host(&mut self) -> Result<HostTensorMut<'_>> {
        let element = self.model.input_type;
        let b = self.binding(TensorLocation::Host)?;
        Ok(match element {
            ElementType::F32 => HostTensorMut::F32(b.input.try_extract_tensor_mut::<f32>()?.1),
            ElementType::F16 => HostTensorMut::F16(b.input.try_extract_tensor_mut::<half::f16>()?.1),
        })
    }

    /// The bound host output tensor (all images of the batch).
    pub fn output_host(&mut self) -> Result<HostTensor<'_>> {
        let element = self.model.output_type;
        let b = self.binding(TensorLocation::Host)?;
        Ok(match element {
            ElementType::F32 => HostTensor::F32(b.output.try_extract_tensor::<f32>()?.1),
            ElementType::F16 => HostTensor::F16(b.output.try_extract_tensor::<half::f16>()?.1),
        })
    }

    /// Runs the model on the bound tensors. On GPU providers with a shared stream the work is only queued.
    pub fn run(&mut self) -> Result<()> {
        let b = self.binding.as_ref().ok_or_else(|| Error::Usage("no tensors bound".into()))?;
        self.session.run_binding_with_options(&b.io, &self.run_options)?;
        Ok(())
    }

    /// What ONNX Runtime's device arena holds; `None` on the CPU backend or when the runtime keeps no statistics.
    pub fn device_arena(&self) -> Option<ArenaStats> {
        if !self.backend.is_gpu() {
            return None;
        }
        let allocator = Allocator::new(&self.session, cuda_memory(self.device_id).ok()?).ok()?;
        arena_stats(&allocator)
    }

    /// Measures the model's scale with one run on a `PROBE_SIZE` (or the model's fixed size) pseudo-random input,
    /// with tensors of ONNX Runtime's own.
    pub fn probe_scale(&mut self) -> Result<u32> {
        let side = PROBE_SIZE.max(self.model.min_size);
        let size = self.model.fixed_size.unwrap_or(Size::new(side, side));
        let n = 3 * size.pixels();
        // a deterministic pseudo-random image: models behave on it as on real content, unlike zeros
        let values: Vec<f32> =
            (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0).collect();
        let shape = [1usize, 3, size.height as usize, size.width as usize];
        let input = match self.model.input_type {
            ElementType::F32 => ort::value::Tensor::from_array((shape, values))?.into_dyn(),
            ElementType::F16 => {
                let v: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                ort::value::Tensor::from_array((shape, v))?.into_dyn()
            }
        };
        let name = self.model.input_name.clone();
        let outputs = self.session.run(ort::inputs![name => input])?;
        let dims = outputs[0].shape();
        if dims.len() != 4 {
            return Err(Error::model(&self.model.path, format!("probe run produced a tensor of rank {}", dims.len())));
        }
        let out_size = Size::new(dims[3] as u32, dims[2] as u32);
        self.model.scale_from_probe(size, out_size)
    }
}
