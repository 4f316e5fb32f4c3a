// SPDX-License-Identifier: MPL-2.0
//! The bench's only door into the vfupscale core: the vocabulary (precisions, backends, stats field names), the
//! device, which engine the element would choose, and the model-only runs of (a). The core's API is being
//! reshaped; everything the bench needs from it is here so that the switch touches this file alone.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vfupscale::cuda::GpuDevice;
use vfupscale::infer::{BackendChoice, InferenceSession, SessionOptions, TensorLocation, load_model};
use vfupscale::native::{NativeEngine, match_srvgg};

pub use vfupscale::frame::Size;
pub use vfupscale::infer::{Backend, Precision};

use crate::measure::{Measure, time_runs};

/// Names of the fields of the element's `stats` structure that the bench reads.
pub mod field {
    pub const FRAMES: &str = "frames";
    pub const BACKEND: &str = "backend";
    pub const CONVERT_IN_MEAN_MS: &str = "convert-in-mean-ms";
    pub const INFERENCE_MEAN_MS: &str = "inference-mean-ms";
    pub const CONVERT_OUT_MEAN_MS: &str = "convert-out-mean-ms";
    pub const ZERO_COPY_INPUTS: &str = "zero-copy-inputs";
    pub const DEVICE_MEMORY_BYTES: &str = "device-memory-bytes";
}

/// The model the element uses by default (the soak's model).
pub const DEFAULT_MODEL: &str = vfupscale::models::DEFAULT_MODEL;

/// Path of an installed model.
pub fn model_path(name: &str) -> PathBuf {
    vfupscale::models::model_path(name)
}

/// `fp16` or `fp32`: the precisions a benchmark can ask for (`auto` would hide which one ran).
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "fp16" => Ok(Precision::Fp16),
        "fp32" => Ok(Precision::Fp32),
        other => Err(format!("precision {other:?} is not fp16 or fp32")),
    }
}

pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Fp16 => "fp16",
        Precision::Fp32 => "fp32",
        Precision::Auto => "auto",
    }
}

/// One CUDA device (its primary context, shared with the element).
#[derive(Clone)]
pub struct Gpu {
    device: Arc<GpuDevice>,
}

impl Gpu {
    pub fn open(ordinal: u32) -> Result<Self> {
        Ok(Self { device: GpuDevice::get(ordinal)? })
    }

    pub fn ordinal(&self) -> u32 {
        self.device.ordinal()
    }

    pub fn name(&self) -> &str {
        self.device.name()
    }

    /// Device memory in use by everyone (total − free), from any thread.
    pub fn memory_in_use(&self) -> Result<usize> {
        self.device.bind_to_thread()?;
        let (free, total) = self.device.memory_info()?;
        Ok(total - free)
    }
}

/// The CUDA driver and ONNX Runtime versions, for the report's header.
pub fn versions() -> (String, String) {
    let driver = match vfupscale::cuda::driver_version() {
        Ok((major, minor)) => format!("{major}.{minor}"),
        Err(e) => format!("unknown ({e})"),
    };
    let ort = vfupscale::infer::runtime::version().unwrap_or_else(|e| format!("unknown ({e})"));
    (driver, ort)
}

/// The engine the element picks for a model and precision on `gpu` (backend `auto`), and for the native kernels
/// the PSNR of their output against ONNX Runtime's that admitted them.
pub struct EngineChoice {
    pub backend: Backend,
    pub native_agreement_db: Option<f64>,
}

/// Decides as the element does: the same selection, device check and agreement check.
pub fn choose_engine(gpu: &Gpu, model: &str, precision: Precision) -> Result<EngineChoice> {
    let config = vfupscale::UpscalerConfig {
        model: model_path(model),
        backend: BackendChoice::Auto,
        precision,
        device_id: gpu.ordinal(),
        ..Default::default()
    };
    let upscaler = vfupscale::Upscaler::new(config)?;
    for warning in upscaler.warnings() {
        eprintln!("  engine selection: {warning}");
    }
    Ok(EngineChoice { backend: upscaler.backend(), native_agreement_db: upscaler.native_agreement_db() })
}

/// One kernel's mean time in a profiled run of the native engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub ms: f64,
}

/// (a): the model alone on `backend`, input and output in device memory, one stream synchronisation per run as in
/// the element; for the native kernels also the per-kernel profile (the mean of ten profiled runs).
pub fn time_model(
    gpu: &Gpu,
    model: &str,
    precision: Precision,
    size: Size,
    backend: Backend,
    warmup: u64,
    runs: u64,
) -> Result<(Measure, Option<Vec<KernelTime>>)> {
    let path = model_path(model);
    let (info, proto) = load_model(&path)?;
    let stream = gpu.device.new_stream()?;
    let sync = || stream.synchronize().context("cuStreamSynchronize");
    match backend {
        Backend::Native => {
            let graph = match_srvgg(&proto, &info.input_name, &info.output_name)
                .map_err(|why| anyhow::anyhow!("{}: not an SRVGGNetCompact graph: {why}", path.display()))?;
            let mut engine = NativeEngine::new(gpu.device.clone(), stream.clone(), &graph, &info)?;
            engine.bind(1, size)?;
            let measure = time_runs(warmup, runs, || {
                engine.run()?;
                sync()
            })?;
            Ok((measure, Some(native_profile(&engine, 10)?)))
        }
        Backend::Cuda | Backend::TensorRt => {
            let options = SessionOptions {
                backend: if backend == Backend::Cuda { BackendChoice::Cuda } else { BackendChoice::TensorRt },
                precision,
                device_id: gpu.ordinal(),
                compute_stream: Some(stream.cu_stream() as usize),
                profile_size: Some((1, size)),
                ..Default::default()
            };
            let mut session = InferenceSession::open_with(&info, &proto, &options, backend)?;
            let scale = match info.scale {
                Some(s) => s,
                None => session.probe_scale()?,
            };
            session.bind(1, size, scale, TensorLocation::Device)?;
            let measure = time_runs(warmup, runs, || {
                session.run()?;
                sync()
            })?;
            Ok((measure, None))
        }
        Backend::Cpu => bail!("the benchmark measures GPU backends only, not {backend}"),
    }
}

/// The mean time of each kernel over `runs` profiled runs (CUDA events), in launch order.
fn native_profile(engine: &NativeEngine, runs: u32) -> Result<Vec<KernelTime>> {
    let mut totals: Vec<KernelTime> = Vec::new();
    for _ in 0..runs {
        let times = engine.profile()?;
        if totals.is_empty() {
            totals = times.iter().map(|(kernel, _)| KernelTime { kernel: kernel.clone(), ms: 0.0 }).collect();
        }
        if times.len() != totals.len() {
            bail!("the native engine's profile changed length between runs ({} vs {})", times.len(), totals.len());
        }
        for (total, (_, ms)) in totals.iter_mut().zip(&times) {
            total.ms += ms / f64::from(runs);
        }
    }
    Ok(totals)
}
