//! One frame's path: NV12 → planar RGB in the bound input tensor → the model → planar RGB output tensor → NV12.
//!
//! On device memory everything is queued on one CUDA stream (our kernels and ONNX Runtime) and synchronised once
//! per frame; nothing is allocated after the first frame of a given size. On host memory the conversions run in
//! Rust (`cpu.rs`) and ONNX Runtime runs on whichever provider was chosen.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaEvent, CudaStream};

use crate::color::{Colorimetry, rgb_to_yuv, yuv_to_rgb};
use crate::cpu;
use crate::cuda::copy::{StagingNv12, copy_between_contexts, upload};
use crate::cuda::launch::{DevicePlanar, nv12_to_planar, planar_to_nv12};
use crate::cuda::{GpuDevice, driver_error};
use crate::error::{Error, Result};
use crate::frame::{DeviceNv12, ElementType, HostNv12, HostNv12Mut, Rect, Size};
use crate::infer::{Backend, BackendChoice, InferenceSession, Precision, SessionOptions, TensorLocation, load_model};
use crate::model::ModelInfo;
use crate::onnx::ModelProto;
use crate::stats::{Stage, Stats};

/// What to run and where.
#[derive(Debug, Clone, Default)]
pub struct UpscalerConfig {
    pub model: PathBuf,
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    pub engine_cache_dir: Option<PathBuf>,
}

/// The CUDA side of an upscaler: the device (primary context, kernels) and our stream.
struct Gpu {
    device: Arc<GpuDevice>,
    stream: Arc<CudaStream>,
    /// Stage boundaries, recorded on the stream for timing without extra synchronisation.
    events: [CudaEvent; 4],
}

/// A loaded model on a chosen backend, ready to upscale frames of one size at a time.
pub struct Upscaler {
    // Field order is drop order: the session (which holds ONNX Runtime's reference to our stream) goes first.
    session: InferenceSession,
    gpu: Option<Gpu>,
    model: ModelInfo,
    proto: ModelProto,
    config: UpscalerConfig,
    scale: u32,
    warnings: Vec<String>,
    prepared: Option<(Size, TensorLocation)>,
    /// Device frame in our context for inputs that cannot be read in place (allocated on first need).
    staging: Option<StagingNv12>,
    stats: Stats,
}

impl Upscaler {
    /// Loads and checks the model, opens a session on the first backend that works and learns the scale.
    ///
    /// Backends skipped on the way are listed in [`Upscaler::warnings`].
    pub fn new(config: UpscalerConfig) -> Result<Self> {
        let (model, proto) = load_model(&config.model)?;
        let mut warnings = Vec::new();
        let gpu = if config.backend == BackendChoice::Cpu {
            None
        } else {
            match Self::open_gpu(config.device_id) {
                Ok(gpu) => Some(gpu),
                Err(e) if config.backend == BackendChoice::Auto => {
                    warnings.push(format!("GPU backends unavailable, falling back to cpu: {e}"));
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let options = SessionOptions {
            backend: if gpu.is_none() && config.backend == BackendChoice::Auto {
                BackendChoice::Cpu
            } else {
                config.backend
            },
            precision: config.precision,
            device_id: config.device_id,
            engine_cache_dir: config.engine_cache_dir.clone(),
            compute_stream: gpu.as_ref().map(|g| g.stream.cu_stream() as usize),
            profile_size: None,
        };
        let (mut session, skipped) = InferenceSession::open(&model, &proto, &options)?;
        warnings.extend(skipped);
        if session.backend() == Backend::Cpu && config.precision == Precision::Fp16 {
            warnings
                .push("precision fp16 on the cpu backend: ONNX Runtime computes it in fp32, expect no speed-up".into());
        }
        let scale = match model.scale {
            Some(s) => s,
            None => session.probe_scale()?,
        };
        // a GPU that ended up unused (CPU fallback) is released
        let gpu = if session.backend().is_gpu() { gpu } else { None };
        Ok(Self {
            session,
            gpu,
            model,
            proto,
            config,
            scale,
            warnings,
            prepared: None,
            staging: None,
            stats: Stats::default(),
        })
    }

    fn open_gpu(device_id: u32) -> Result<Gpu> {
        let device = GpuDevice::get(device_id)?;
        let stream = device.new_stream()?;
        let event = || {
            device.bind_to_thread()?;
            // timing enabled (cudarc's default disables it): the stage durations in `stats` come from these
            let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
            stream.context().new_event(Some(flags)).map_err(|e| driver_error("cuEventCreate", e))
        };
        let events = [event()?, event()?, event()?, event()?];
        Ok(Gpu { device, stream, events })
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn backend(&self) -> Backend {
        self.session.backend()
    }

    /// The model as loaded from disk.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Element type of the tensors the model runs with (after any precision conversion).
    pub fn running_types(&self) -> (ElementType, ElementType) {
        let m = self.session.model();
        (m.input_type, m.output_type)
    }

    /// Backends that were skipped, with the reason, in order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The GPU this upscaler runs on, if any.
    pub fn gpu_device(&self) -> Option<&Arc<GpuDevice>> {
        self.gpu.as_ref().map(|g| &g.device)
    }

    /// True when frames in device memory can be processed (a GPU backend with our kernels).
    pub fn supports_device_memory(&self) -> bool {
        self.gpu.is_some() && self.session.backend().is_gpu()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Prepares for frames of `size` in host or device memory: checks the model accepts the size and allocates
    /// and binds the tensors (only when size or location change).
    pub fn prepare(&mut self, size: Size, location: TensorLocation) -> Result<()> {
        if self.prepared == Some((size, location)) {
            return Ok(());
        }
        self.model.check_input_size(size)?;
        if location == TensorLocation::Device && !self.supports_device_memory() {
            return Err(Error::InvalidConfig(format!(
                "frames in CUDA memory need a GPU backend, but the model runs on {}",
                self.backend()
            )));
        }
        if self.backend() == Backend::TensorRt {
            // TensorRT builds its engine for an optimisation profile: one per negotiated size
            let options = SessionOptions {
                backend: BackendChoice::TensorRt,
                precision: self.config.precision,
                device_id: self.config.device_id,
                engine_cache_dir: self.config.engine_cache_dir.clone(),
                compute_stream: self.gpu.as_ref().map(|g| g.stream.cu_stream() as usize),
                profile_size: Some((1, size)),
            };
            self.session = InferenceSession::open_with(&self.model, &self.proto, &options, Backend::TensorRt)?;
        }
        self.session.bind(1, size, self.scale, location)?;
        self.prepared = Some((size, location));
        let bytes = 3 * size.pixels() as u64 * (1 + (self.scale * self.scale) as u64);
        self.stats.tensor_bytes = bytes * self.running_types().0.size() as u64;
        Ok(())
    }

    fn check_sizes(&self, src: Size, dst: Size, location: TensorLocation) -> Result<()> {
        match self.prepared {
            Some((size, loc)) if size == src && loc == location && dst == src.scaled(self.scale) => Ok(()),
            _ => Err(Error::InvalidConfig(format!(
                "frame {src} → {dst} does not match the prepared size {:?} at scale {}",
                self.prepared, self.scale
            ))),
        }
    }

    /// Upscales an NV12 frame in host memory.
    pub fn upscale_host(
        &mut self,
        src: &HostNv12,
        src_colour: Colorimetry,
        dst: &mut HostNv12Mut,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        self.check_sizes(src.size, dst.size, TensorLocation::Host)?;
        let (in_t, out_t) = self.running_types();
        let t0 = Instant::now();
        let m = yuv_to_rgb(src_colour);
        let region = Rect::of_size(src.size);
        match in_t {
            ElementType::F32 => cpu::nv12_to_planar(src, &m, region, self.session.input_host::<f32>()?),
            ElementType::F16 => cpu::nv12_to_planar(src, &m, region, self.session.input_host::<half::f16>()?),
        }
        let t1 = Instant::now();
        self.session.run()?;
        if let Some(gpu) = &self.gpu {
            // the provider copies the output to host memory on our stream
            gpu.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))?;
        }
        let t2 = Instant::now();
        let m = rgb_to_yuv(dst_colour);
        match out_t {
            ElementType::F32 => cpu::planar_to_nv12(self.session.output_host::<f32>()?, &m, dst),
            ElementType::F16 => cpu::planar_to_nv12(self.session.output_host::<half::f16>()?, &m, dst),
        }
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        self.stats.record(Stage::ConvertIn, ms(t0, t1));
        self.stats.record(Stage::Inference, ms(t1, t2));
        self.stats.record(Stage::ConvertOut, ms(t2, Instant::now()));
        self.stats.frames += 1;
        Ok(())
    }

    /// Upscales an NV12 frame in device memory of this upscaler's context: all work is queued on one stream,
    /// which is synchronised once before returning, so `dst` is complete when this returns.
    ///
    /// # Safety
    /// `src` and `dst` must be valid NV12 planes in the primary context of this upscaler's device for the whole
    /// call, `dst` writable and not aliasing `src`.
    pub unsafe fn upscale_device(
        &mut self,
        src: &DeviceNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        self.check_sizes(src.size, dst.size, TensorLocation::Device)?;
        let (in_t, out_t) = self.running_types();
        let input = DevicePlanar { ptr: self.session.input_ptr()?, size: src.size, element: in_t };
        let output = DevicePlanar { ptr: self.session.output_ptr()?, size: dst.size, element: out_t };
        let gpu = self.gpu.as_ref().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
        gpu.device.bind_to_thread()?;
        let record = |i: usize| gpu.events[i].record(&gpu.stream).map_err(|e| driver_error("cuEventRecord", e));
        record(0)?;
        // SAFETY: `src` is valid per this function's contract; `input` is the session's bound device tensor of
        // exactly `3 × src.size` elements of `in_t`, alive as long as the binding.
        unsafe {
            nv12_to_planar(&gpu.device, &gpu.stream, src, &yuv_to_rgb(src_colour), Rect::of_size(src.size), input)?
        };
        record(1)?;
        self.session.run()?;
        let gpu = self.gpu.as_ref().expect("checked above");
        let record = |i: usize| gpu.events[i].record(&gpu.stream).map_err(|e| driver_error("cuEventRecord", e));
        record(2)?;
        // SAFETY: `output` is the bound output tensor (`3 × dst.size` elements), `dst` valid per the contract.
        unsafe { planar_to_nv12(&gpu.device, &gpu.stream, output, &rgb_to_yuv(dst_colour), dst)? };
        record(3)?;
        gpu.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))?;
        let elapsed = |a: usize, b: usize| {
            gpu.events[a].elapsed_ms(&gpu.events[b]).map(f64::from).map_err(|e| driver_error("cuEventElapsedTime", e))
        };
        let (t_in, t_run, t_out) = (elapsed(0, 1)?, elapsed(1, 2)?, elapsed(2, 3)?);
        self.stats.record(Stage::ConvertIn, t_in);
        self.stats.record(Stage::Inference, t_run);
        self.stats.record(Stage::ConvertOut, t_out);
        self.stats.frames += 1;
        Ok(())
    }
}

impl Upscaler {
    /// A staging frame of `size` in our context.
    fn staging(&mut self, size: Size) -> Result<DeviceNv12> {
        let gpu = self.gpu.as_ref().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
        if self.staging.as_ref().is_none_or(|s| s.size() != size) {
            self.staging = None;
            self.staging = Some(StagingNv12::new(&gpu.stream, size)?);
        }
        Ok(self.staging.as_ref().expect("just set").frame(&gpu.stream))
    }

    /// Upscales a frame that lives in another CUDA context (of the same device): it is copied device-to-device
    /// into our context first, and counted in [`Stats::foreign_context_copies`].
    ///
    /// # Safety
    /// `src` must be valid device memory of `src_context` and `dst` as for [`Upscaler::upscale_device`].
    pub unsafe fn upscale_device_from_context(
        &mut self,
        src: &DeviceNv12,
        src_context: cudarc::driver::sys::CUcontext,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        let staging = self.staging(src.size)?;
        let gpu = self.gpu.as_ref().expect("staging needs the GPU");
        gpu.device.bind_to_thread()?;
        // SAFETY: `src` per the contract; `staging` is our frame of the same size.
        unsafe { copy_between_contexts(&gpu.stream, src, src_context, &staging, gpu.device.cu_context())? };
        self.stats.foreign_context_copies += 1;
        // SAFETY: `staging` is valid memory of our context; `dst` per the contract.
        unsafe { self.upscale_device(&staging, src_colour, dst, dst_colour) }
    }

    /// Upscales a host-memory frame into a device-memory frame: the input is uploaded first, counted in
    /// [`Stats::host_uploads`].
    ///
    /// # Safety
    /// `dst` as for [`Upscaler::upscale_device`].
    pub unsafe fn upscale_host_to_device(
        &mut self,
        src: &HostNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        let staging = self.staging(src.size)?;
        let gpu = self.gpu.as_ref().expect("staging needs the GPU");
        gpu.device.bind_to_thread()?;
        // SAFETY: `src` outlives this call, and `upscale_device` synchronises the stream before returning.
        unsafe { upload(&gpu.stream, src, &staging)? };
        self.stats.host_uploads += 1;
        // SAFETY: as above.
        unsafe { self.upscale_device(&staging, src_colour, dst, dst_colour) }
    }
}
