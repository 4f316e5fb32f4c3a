//! Inference through ONNX Runtime: choosing the execution provider (TensorRT → CUDA → CPU, each fallback
//! reported), matching the model's float precision to it, and binding input and output to preallocated tensors
//! in host or device memory so that a run copies nothing.

pub mod runtime;

use std::ffi::CStr;
use std::path::PathBuf;

use ort::AsPointer;
use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{DynTensor, TensorElementType};

use crate::error::{Error, Result};
use crate::frame::{ElementType, Size};
use crate::model::{ModelInfo, PROBE_SIZE};
use crate::onnx::precision::{FloatPrecision, convert};
use crate::onnx::{self, ModelProto};

/// The engine a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The fastest one that works: our native kernels when the model is one they run, then ONNX Runtime's
    /// TensorRT, CUDA and CPU providers.
    #[default]
    Auto,
    /// Our CUDA kernels (SRVGGNetCompact models only).
    Native,
    TensorRt,
    Cuda,
    Cpu,
}

/// The engine a model runs on: ONNX Runtime with an execution provider, or our native kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    TensorRt,
    Cuda,
    Cpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::TensorRt => "tensorrt",
            Backend::Cuda => "cuda",
            Backend::Cpu => "cpu",
        }
    }

    /// True for providers that run on the GPU (and can read device-memory tensors).
    pub fn is_gpu(self) -> bool {
        !matches!(self, Backend::Cpu)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Float precision the user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// fp16 on GPU providers, fp32 on the CPU.
    #[default]
    Auto,
    Fp16,
    Fp32,
}

/// Where a session's bound input and output tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorLocation {
    Host,
    Device,
}

/// How to open a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    /// TensorRT engine and timing caches.
    pub engine_cache_dir: Option<PathBuf>,
    /// `CUstream` that the GPU providers must run on (shared with our kernels), as an integer.
    pub compute_stream: Option<usize>,
    /// Input size to build TensorRT's optimisation profile for.
    pub profile_size: Option<(u32, Size)>,
    /// Bytes of device memory the GPU providers may allocate (their arena: tensors, activations, workspaces).
    pub memory_limit: Option<usize>,
}

/// A session, its provider, and the IO binding for the current shape.
pub struct InferenceSession {
    session: Session,
    backend: Backend,
    /// The contract of the model as it runs (after any precision conversion).
    model: ModelInfo,
    device_id: u32,
    precision: FloatPrecision,
    binding: Option<Binding>,
    run_options: RunOptions,
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

fn provider_list(backend: Backend, options: &SessionOptions, fp16: bool) -> Result<Vec<ep::ExecutionProviderDispatch>> {
    let id = options.device_id as i32;
    let mut cuda = ep::CUDA::default()
        .with_device_id(id)
        .with_prefer_nhwc(true)
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Exhaustive);
    if let Some(stream) = options.compute_stream {
        // SAFETY: the stream belongs to the same (primary) context and the caller keeps it alive longer than the
        // session (the Upscaler drops the session before its stream).
        cuda = unsafe { cuda.with_compute_stream(stream as *mut ()) };
    }
    if let Some(limit) = options.memory_limit {
        // grow the arena by what is asked, not by powers of two, so the limit is what can really be used
        cuda = cuda.with_memory_limit(limit).with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested);
    }
    Ok(match backend {
        Backend::Native => {
            return Err(Error::InvalidConfig("the native kernels are not an ONNX Runtime execution provider".into()));
        }
        Backend::Cpu => Vec::new(),
        Backend::Cuda => vec![cuda.build().error_on_failure()],
        Backend::TensorRt => {
            let mut trt = ep::TensorRT::default().with_device_id(id).with_fp16(fp16);
            if let Some(dir) = &options.engine_cache_dir {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                let dir = dir.display().to_string();
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(&dir)
                    .with_timing_cache(true)
                    .with_timing_cache_path(&dir);
            }
            if let Some((batch, size)) = options.profile_size {
                let shape = format!("input:{batch}x3x{}x{}", size.height, size.width);
                trt =
                    trt.with_profile_min_shapes(&shape).with_profile_opt_shapes(&shape).with_profile_max_shapes(&shape);
            }
            if let Some(stream) = options.compute_stream {
                use ep::ArbitrarilyConfigurableExecutionProvider as _;
                trt = trt
                    .with_arbitrary_config("has_user_compute_stream", "1")
                    .with_arbitrary_config("user_compute_stream", stream);
            }
            // TensorRT hands the nodes it cannot build to the CUDA provider
            vec![trt.build().error_on_failure(), cuda.build().error_on_failure()]
        }
    })
}

impl InferenceSession {
    /// Opens `model` (already checked and decoded) with the first provider of the chain that works.
    ///
    /// Returns the session and one message per provider that was skipped, for the caller to log as warnings.
    pub fn open(info: &ModelInfo, model: &ModelProto, options: &SessionOptions) -> Result<(Self, Vec<String>)> {
        let chain: &[Backend] = match options.backend {
            BackendChoice::Native => {
                return Err(Error::InvalidConfig("the native kernels are not an ONNX Runtime backend".into()));
            }
            BackendChoice::Auto => &[Backend::TensorRt, Backend::Cuda, Backend::Cpu],
            BackendChoice::TensorRt => &[Backend::TensorRt],
            BackendChoice::Cuda => &[Backend::Cuda],
            BackendChoice::Cpu => &[Backend::Cpu],
        };
        let mut skipped = Vec::new();
        for (i, &backend) in chain.iter().enumerate() {
            match Self::open_with(info, model, options, backend) {
                Ok(session) => return Ok((session, skipped)),
                Err(e) if i + 1 < chain.len() && !matches!(e, Error::Model { .. }) => {
                    skipped.push(format!("{backend} backend unavailable, falling back to {}: {e}", chain[i + 1]));
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the chain ends with an error or a session")
    }

    /// Opens `model` on exactly `backend`.
    pub fn open_with(info: &ModelInfo, model: &ModelProto, options: &SessionOptions, backend: Backend) -> Result<Self> {
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
        let precision = target_precision(backend, options.precision, info);
        let mut model = model.clone();
        let current = match info.input_type {
            ElementType::F32 => FloatPrecision::F32,
            ElementType::F16 => FloatPrecision::F16,
        };
        if current != precision || info.output_type != info.input_type {
            convert(&mut model, precision)
                .map_err(|e| Error::model(&info.path, format!("converting to {}: {e}", precision.name())))?;
        }
        let running = ModelInfo::from_proto(&model, &info.path)?;
        let bytes = prost::Message::encode_to_vec(&model);

        let fp16 = options.precision != Precision::Fp32;
        let providers = provider_list(backend, options, fp16)?;
        let mut builder = Session::builder(&rt.environment)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(Error::from)?;
        if !providers.is_empty() {
            builder = builder
                .with_execution_providers(providers)
                .map_err(|e| Error::unavailable(format!("{backend} execution provider"), e.to_string()))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            Error::model(&info.path, format!("ONNX Runtime cannot load it on the {backend} backend: {e}"))
        })?;
        let mut run_options = RunOptions::new()?;
        if backend.is_gpu() && options.compute_stream.is_some() {
            // we synchronise our stream once per frame after our own output kernel
            run_options.set("disable_synchronize_execution_providers", "1")?;
        }
        Ok(Self {
            session,
            backend,
            model: running,
            device_id: options.device_id,
            precision,
            binding: None,
            run_options,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The model as it runs (types after precision conversion).
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    pub fn precision(&self) -> FloatPrecision {
        self.precision
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
            TensorLocation::Device => {
                if !self.backend.is_gpu() {
                    return Err(Error::InvalidConfig("device-memory tensors need a GPU backend".into()));
                }
                MemoryInfo::new(
                    AllocationDevice::CUDA,
                    self.device_id as i32,
                    AllocatorType::Device,
                    MemoryType::Default,
                )?
            }
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

    fn binding(&mut self) -> Result<&mut Binding> {
        self.binding.as_mut().ok_or_else(|| Error::InvalidConfig("no tensors bound".into()))
    }

    /// Device address of the bound input tensor.
    pub fn input_ptr(&mut self) -> Result<u64> {
        Ok(self.binding()?.input.data_ptr_mut() as u64)
    }

    /// Device address of the bound output tensor.
    pub fn output_ptr(&mut self) -> Result<u64> {
        Ok(self.binding()?.output.data_ptr_mut() as u64)
    }

    /// The bound host input tensor as a slice of `T`.
    pub fn input_host<T: ort::value::PrimitiveTensorElementType + 'static>(&mut self) -> Result<&mut [T]> {
        let b = self.binding()?;
        if b.location != TensorLocation::Host {
            return Err(Error::InvalidConfig("input tensor is in device memory".into()));
        }
        Ok(b.input.try_extract_tensor_mut::<T>()?.1)
    }

    /// The bound host output tensor as a slice of `T`.
    pub fn output_host<T: ort::value::PrimitiveTensorElementType + 'static>(&mut self) -> Result<&[T]> {
        let b = self.binding()?;
        if b.location != TensorLocation::Host {
            return Err(Error::InvalidConfig("output tensor is in device memory".into()));
        }
        Ok(b.output.try_extract_tensor::<T>()?.1)
    }

    /// Runs the model on the bound tensors. On GPU providers with a shared stream the work is only queued.
    pub fn run(&mut self) -> Result<()> {
        let b = self.binding.as_ref().ok_or_else(|| Error::InvalidConfig("no tensors bound".into()))?;
        self.session.run_binding_with_options(&b.io, &self.run_options)?;
        Ok(())
    }

    /// What ONNX Runtime's device arena holds (bound tensors, activations, workspaces); `None` on the CPU backend
    /// or when the runtime keeps no statistics.
    pub fn device_arena(&self) -> Option<ArenaStats> {
        if !self.backend.is_gpu() {
            return None;
        }
        let info =
            MemoryInfo::new(AllocationDevice::CUDA, self.device_id as i32, AllocatorType::Device, MemoryType::Default)
                .ok()?;
        // the session's allocator for that device: its arena, whose statistics we read
        let allocator = Allocator::new(&self.session, info).ok()?;
        let api = ort::api();
        let mut pairs = std::ptr::null_mut();
        // SAFETY: `allocator` is a live session allocator; on success `pairs` is ours and released below.
        let status = unsafe { (api.AllocatorGetStats)(allocator.ptr(), &mut pairs) };
        if !status.0.is_null() {
            // SAFETY: a non-null status is ours to release.
            unsafe { (api.ReleaseStatus)(status.0) };
            return None;
        }
        let value = |key: &CStr| -> u64 {
            // SAFETY: `pairs` is live until released below; the returned string is owned by it.
            let v = unsafe { (api.GetKeyValue)(pairs, key.as_ptr()) };
            if v.is_null() {
                return 0;
            }
            // SAFETY: non-null values are NUL-terminated strings inside `pairs`.
            unsafe { CStr::from_ptr(v) }.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0)
        };
        let stats = ArenaStats {
            reserved: value(c"TotalAllocated"),
            in_use: value(c"InUse"),
            peak_in_use: value(c"MaxInUse"),
            limit: value(c"Limit"),
        };
        // SAFETY: `pairs` came from AllocatorGetStats and is released once.
        unsafe { (api.ReleaseKeyValuePairs)(pairs) };
        Some(stats)
    }

    /// Measures the model's scale with one run on a `PROBE_SIZE` (or the model's fixed size) random input.
    pub fn probe_scale(&mut self) -> Result<u32> {
        let size = self
            .model
            .fixed_size
            .unwrap_or(Size::new(PROBE_SIZE.max(self.model.min_size), PROBE_SIZE.max(self.model.min_size)));
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
        let out = &outputs[0];
        let dims = out.shape();
        if dims.len() != 4 {
            return Err(Error::model(&self.model.path, format!("probe run produced a tensor of rank {}", dims.len())));
        }
        let out_size = Size::new(dims[3] as u32, dims[2] as u32);
        self.model.scale_from_probe(size, out_size)
    }
}

/// Statistics of ONNX Runtime's device memory arena, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Device memory the arena took from the driver (what it holds, used or not).
    pub reserved: u64,
    pub in_use: u64,
    /// The most it had in use at once.
    pub peak_in_use: u64,
    /// Its configured ceiling (0: none known).
    pub limit: u64,
}

/// Reads a model and checks its contract.
pub fn load_model(path: &std::path::Path) -> Result<(ModelInfo, ModelProto)> {
    let model = onnx::read_model(path)?;
    let info = ModelInfo::from_proto(&model, path)?;
    Ok((info, model))
}

/// Whether each execution provider actually registers here (libraries present and loadable), with the reason
/// when it does not. Loads ONNX Runtime if needed; touches no model.
pub fn probe_providers(device_id: u32) -> Vec<(Backend, std::result::Result<(), String>)> {
    let rt = match runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            return [Backend::TensorRt, Backend::Cuda, Backend::Cpu].map(|b| (b, Err(e.to_string()))).to_vec();
        }
    };
    let options = SessionOptions { device_id, ..Default::default() };
    [Backend::TensorRt, Backend::Cuda, Backend::Cpu]
        .into_iter()
        .map(|backend| {
            let result = (|| -> Result<()> {
                if backend.is_gpu() {
                    crate::cuda::driver_status()?;
                }
                let providers = provider_list(backend, &options, true)?;
                let builder = Session::builder(&rt.environment)?;
                if !providers.is_empty() {
                    builder.with_execution_providers(providers).map_err(|e| Error::Ort(e.to_string()))?;
                }
                Ok(())
            })();
            (backend, result.map_err(|e| e.to_string()))
        })
        .collect()
}
