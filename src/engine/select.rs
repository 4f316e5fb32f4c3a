// SPDX-License-Identifier: MPL-2.0
//! Choosing the engine for a model: the GPU (or the CPU when `auto` finds none), our native kernels when the graph
//! is one they run and their output agrees with ONNX Runtime's, else ONNX Runtime's providers in order; the scale
//! measured by a probe run and checked against what the model declares. The element, the command line, the
//! benchmark and the GPU tests all go through [`select_engine`] and [`compare_engines`].

use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::CudaStream;

use super::Engine;
use crate::backend::{Backend, BackendChoice, Precision};
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::{ElementType, Size};
use crate::infer::{InferenceSession, SessionOptions, TensorLocation};
use crate::model::Model;
use crate::native::{NativeEngine, NativeForm, ProgramEngine, native_form};

/// Least PSNR (dB) of the native kernels' output against ONNX Runtime's (both fp16) for them to be used: fp16
/// rounding differences stay far above it (69–78 dB measured on the H100: see README), a wrong result falls far
/// below.
pub const NATIVE_AGREEMENT_DB: f64 = 40.0;

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct EngineRequest {
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    /// TensorRT engine and timing caches (default: the user's cache directory).
    pub engine_cache_dir: Option<PathBuf>,
}

/// How two engines' outputs compare on the same input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// PSNR in dB over values clamped to 0..1.
    pub psnr_db: f64,
    /// Largest absolute difference (unclamped).
    pub max_difference: f32,
}

/// The chosen engine and how it was chosen.
pub struct SelectedEngine {
    pub engine: Engine,
    /// The GPU it runs on (`None` on the CPU backend).
    pub device: Option<Arc<GpuDevice>>,
    /// Backends skipped on the way and settings that could not be honoured, in order, for the caller to log.
    pub warnings: Vec<String>,
    /// How the native kernels agreed with ONNX Runtime on the probe image, when they were chosen.
    pub native_agreement: Option<Agreement>,
}

impl std::fmt::Debug for SelectedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedEngine")
            .field("backend", &self.engine.backend())
            .field("scale", &self.engine.scale())
            .field("device", &self.device)
            .field("warnings", &self.warnings)
            .field("native_agreement", &self.native_agreement)
            .finish()
    }
}

/// A probe image in planar RGB, 0..1: smooth gradients, a ripple and hard edges.
pub fn probe_image(size: Size) -> Vec<f32> {
    let (w, h) = (size.width as usize, size.height as usize);
    (0..3 * w * h)
        .map(|i| {
            let (c, y, x) = (i / (w * h), (i / w) % h, i % w);
            let ripple = 0.25 * ((x as f32 * 0.45 + c as f32).sin() * (y as f32 * 0.3).cos());
            let edge = if (x / 9 + y / 7) % 2 == 0 { 0.2 } else { -0.2 };
            let v = 0.5 + ripple + edge + 0.1 * (x as f32 / w as f32 - y as f32 / h as f32);
            v.clamp(0.0, 1.0)
        })
        .collect()
}

/// Runs `engine` once on `image` (planar RGB of `size`, batch 1, device tensors) and returns its output as f32.
fn run_on(engine: &mut Engine, image: &[f32], size: Size) -> Result<Vec<f32>> {
    let stream = engine.stream().cloned().ok_or_else(|| Error::Usage("comparing engines needs GPU engines".into()))?;
    engine.bind(1, size, TensorLocation::Device)?;
    engine.input_tensor(0)?.upload_rgb(&stream, image)?;
    engine.run()?;
    let output = engine.output_tensor(0)?;
    Ok(match output.element() {
        ElementType::F32 => output.download::<f32>(&stream)?,
        ElementType::F16 => {
            output.download::<u16>(&stream)?.into_iter().map(|b| half::f16::from_bits(b).to_f32()).collect()
        }
    })
}

/// Runs two GPU engines of the same scale on `image` (planar RGB in 0..1 of `size`) and compares their outputs;
/// returns the comparison and both outputs (planar f32).
pub fn compare_engines(
    a: &mut Engine,
    b: &mut Engine,
    image: &[f32],
    size: Size,
) -> Result<(Agreement, Vec<f32>, Vec<f32>)> {
    if a.scale() != b.scale() || image.len() != 3 * size.pixels() {
        return Err(Error::Usage(format!(
            "comparing a x{} and a x{} engine on {} values for {size}",
            a.scale(),
            b.scale(),
            image.len()
        )));
    }
    let (ours, theirs) = (run_on(a, image, size)?, run_on(b, image, size)?);
    let mse = ours
        .iter()
        .zip(&theirs)
        .map(|(&x, &y)| (x.clamp(0.0, 1.0) as f64 - y.clamp(0.0, 1.0) as f64).powi(2))
        .sum::<f64>()
        / ours.len().max(1) as f64;
    let max_difference = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    Ok((Agreement { psnr_db: 10.0 * (1.0 / mse.max(1e-20)).log10(), max_difference }, ours, theirs))
}

/// Whether our native kernels run `model`, and if so, with how much agreement.
enum Native {
    /// Ready, with what the engine could not honour (for the caller to log).
    Ready(Engine, Agreement, Vec<String>),
    NotApplicable(String),
}

/// Our native kernels for `model`, if its graph is one they run and their output agrees with ONNX Runtime's CUDA
/// provider (fp16, on the same stream) on the probe image.
fn open_native(
    device: &GpuDevice,
    stream: &Arc<CudaStream>,
    model: &Arc<Model>,
    options: &SessionOptions,
    precision: Precision,
) -> Result<Native> {
    let info = model.info();
    let form = match native_form(model.proto(), &info.input_name, &info.output_name) {
        Ok(form) => form,
        Err(why) => return Ok(Native::NotApplicable(why)),
    };
    if precision == Precision::Fp32 {
        return Ok(Native::NotApplicable("they compute in fp16; precision fp32 runs on ONNX Runtime".into()));
    }
    let scale = match &form {
        NativeForm::Srvgg(graph) => graph.scale(),
        NativeForm::Program(program) => program.scale as f32,
    };
    if info.scale.is_some_and(|s| s as f32 != scale) {
        return Ok(Native::NotApplicable(format!(
            "the graph scales by {scale}, the model declares {}",
            info.scale.unwrap_or(0)
        )));
    }
    let (mut native, kernel_warnings) = match form {
        NativeForm::Srvgg(graph) => {
            let mut kernels = NativeEngine::new(device, stream.clone(), &graph, info)?;
            let warnings = kernels.take_warnings();
            (Engine::native(kernels, stream.clone()), warnings)
        }
        NativeForm::Program(program) => {
            if device.compute_capability() != (9, 0) {
                let (major, minor) = device.compute_capability();
                return Ok(Native::NotApplicable(format!(
                    "its dense kernels are Hopper (compute capability 9.0) code; this GPU has {major}.{minor}"
                )));
            }
            (Engine::program(ProgramEngine::new(device, stream.clone(), program, info)?, stream.clone()), Vec::new())
        }
    };
    let options = options.clone().with_precision(Precision::Fp16);
    let session = InferenceSession::open_with(model, &options, Backend::Cuda)?;
    let mut reference = Engine::onnx_runtime(session, model.clone(), options, native.scale());
    let size = Size::new(72, 40);
    let (agreement, _, _) = compare_engines(&mut native, &mut reference, &probe_image(size), size)?;
    if agreement.psnr_db < NATIVE_AGREEMENT_DB {
        return Err(Error::model(
            &info.path,
            format!(
                "the native kernels' output differs from ONNX Runtime's ({:.1} dB PSNR, {NATIVE_AGREEMENT_DB} \
                 needed)",
                agreement.psnr_db
            ),
        ));
    }
    Ok(Native::Ready(native, agreement, kernel_warnings))
}

/// The scale `session` computes (one probe run), checked against what `model` declares. A model that declares its
/// scale but cannot run the probe (one whose graph fixes an internal shape) keeps the declared one, with a warning.
fn probed_scale(session: &mut InferenceSession, model: &Model, warnings: &mut Vec<String>) -> Result<u32> {
    let probed = match (session.probe_scale(), model.info().scale) {
        (Ok(probed), _) => probed,
        (Err(e), Some(declared)) if e.kind() != crate::ErrorKind::Model => {
            warnings.push(format!("the declared scale x{declared} could not be checked by a probe run: {e}"));
            return Ok(declared);
        }
        (Err(e), _) => return Err(e),
    };
    match model.info().scale {
        Some(declared) if declared != probed => Err(Error::model(
            &model.info().path,
            format!(
                "declares scale {declared} (metadata or static shapes), but a probe run computes x{probed}: fix its \
                 vfupscale.scale metadata"
            ),
        )),
        _ => Ok(probed),
    }
}

/// Chooses and opens the engine for `model`: the GPU `request.device_id` unless the CPU is asked for (with `auto`,
/// a missing GPU falls back to the CPU with a warning); with `auto` or `native`, the native kernels when they run
/// the model and agree with ONNX Runtime; otherwise ONNX Runtime with the first provider that works. The scale is
/// measured on ONNX Runtime and must equal the model's declared one.
pub fn select_engine(model: Arc<Model>, request: &EngineRequest) -> Result<SelectedEngine> {
    let choice = request.backend;
    let mut warnings = Vec::new();
    let gpu = if choice == BackendChoice::Cpu {
        None
    } else {
        match GpuDevice::get(request.device_id).and_then(|device| Ok((device.new_stream()?, device))) {
            Ok((stream, device)) => Some((device, stream)),
            Err(e) if choice == BackendChoice::Auto => {
                warnings.push(format!("GPU backends unavailable, falling back to cpu: {e}"));
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut options = SessionOptions::new(request.device_id, request.precision);
    if let Some(dir) = &request.engine_cache_dir {
        options = options.with_engine_cache_dir(dir);
    }
    if let Some((_, stream)) = &gpu {
        options = options.with_compute_stream(stream);
    }
    if let Some((device, stream)) = &gpu
        && matches!(choice, BackendChoice::Auto | BackendChoice::Native)
    {
        match open_native(device, stream, &model, &options, request.precision) {
            Ok(Native::Ready(engine, agreement, kernel_warnings)) => {
                warnings.extend(kernel_warnings);
                return Ok(SelectedEngine {
                    engine,
                    device: Some(device.clone()),
                    warnings,
                    native_agreement: Some(agreement),
                });
            }
            Ok(Native::NotApplicable(why)) if choice == BackendChoice::Native => {
                return Err(Error::model(&model.info().path, format!("the native kernels cannot run it: {why}")));
            }
            Ok(Native::NotApplicable(_)) => {}
            Err(e) if choice == BackendChoice::Native => return Err(e),
            Err(e) => warnings.push(format!("native kernels unavailable, falling back to ONNX Runtime: {e}")),
        }
    }
    let ort_choice = if gpu.is_none() && choice == BackendChoice::Auto { BackendChoice::Cpu } else { choice };
    let (mut session, skipped) = InferenceSession::open(&model, &options, ort_choice)?;
    warnings.extend(skipped);
    if session.backend() == Backend::Cpu && request.precision == Precision::Fp16 {
        warnings.push("precision fp16 on the cpu backend: ONNX Runtime computes it in fp32, expect no speed-up".into());
    }
    let scale = probed_scale(&mut session, &model, &mut warnings)?;
    // a GPU that ended up unused (CPU fallback) is released
    let on_gpu = session.backend().is_gpu();
    let device = gpu.filter(|_| on_gpu).map(|(device, _)| device);
    let options = if on_gpu { options } else { options.without_compute_stream() };
    Ok(SelectedEngine {
        engine: Engine::onnx_runtime(session, model, options, scale),
        device,
        warnings,
        native_agreement: None,
    })
}
