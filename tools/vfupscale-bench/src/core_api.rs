// SPDX-License-Identifier: MPL-2.0
//! The bench's only door into the vfupscale core: the vocabulary (precisions, backends, stats field names), model
//! resolution, the device, and the engines of (a), chosen by [`vfupscale::select_engine`] as the element chooses
//! its own, then run alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vfupscale::cuda::GpuDevice;
use vfupscale::tiling::TilePlan;
use vfupscale::{Engine, EngineRequest, Model, RunPlan, TensorLocation, select_engine};

pub use vfupscale::frame::Size;
pub use vfupscale::stats::field;
pub use vfupscale::{Backend, BackendChoice, Precision};

use crate::measure::{Measure, time_runs};

/// Profiled runs of the native engine whose per-kernel times are averaged.
const PROFILE_RUNS: u32 = 10;

/// The model the element uses by default (the soak's model).
pub const DEFAULT_MODEL: &str = vfupscale::models::DEFAULT_MODEL;

/// The file of a model given as a path or as an installed model's name.
pub fn resolve_model(given: &str) -> Result<PathBuf> {
    vfupscale::models::resolve(Some(Path::new(given))).map_err(|e| match e.is_missing_resource() {
        true => anyhow::anyhow!("{e} (vfupscale-model fetch NAME installs a model by name)"),
        false => e.into(),
    })
}

/// The peer's input (`check_image` of tools/peer/onnx_graph.py), planar RGB in 0..1: ripples, a checkerboard and
/// Gaussian noise of σ 0.03 (the same formula; the noise from another generator), so that ours and torch.compile
/// are timed on the same kind of picture: a noisy one, harder on the power budget than the clip's.
pub fn test_frame(size: Size) -> Vec<f32> {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        // xorshift64*, 24 bits in (0, 1]
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 + 1.0) / (1u64 << 24) as f32
    };
    (0..3 * w * h)
        .map(|i| {
            let (c, y, x) = (i / (w * h), (i / w) % h, i % w);
            let (xf, yf) = (x as f32, y as f32);
            let checker = if (x / 7 + y / 5) % 2 == 1 { 0.5 } else { -0.5 };
            let v = 0.5 + 0.3 * (xf * 0.35 + c as f32).sin() * (yf * 0.25).cos() + 0.15 * checker;
            // Box–Muller
            let noise = (-2.0 * uniform().ln()).sqrt() * (std::f32::consts::TAU * uniform()).cos();
            (v + 0.03 * noise).clamp(0.0, 1.0)
        })
        .collect()
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

/// How the native kernels' output agreed with ONNX Runtime's on the probe image that admitted them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NativeAgreement {
    pub psnr_db: f64,
    pub max_difference: f32,
}

/// One kernel's mean time in a profiled run of the native engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub ms: f64,
}

/// A model on one engine, bound for device-memory input and output of one frame size.
pub struct ModelRun {
    engine: Engine,
    pub native_agreement: Option<NativeAgreement>,
}

impl ModelRun {
    /// Chooses the engine for `model` as the element does for `backend` (the same [`select_engine`], device and
    /// agreement check; its warnings printed) and gets it ready for frames of `size` as the element's upscaler
    /// does for a whole frame.
    pub fn open(gpu: &Gpu, model: &Path, precision: Precision, backend: BackendChoice, size: Size) -> Result<Self> {
        let model = Arc::new(Model::load(model)?);
        let request = EngineRequest { backend, precision, device_id: gpu.ordinal(), engine_cache_dir: None };
        let selected = select_engine(model.clone(), &request)?;
        for warning in &selected.warnings {
            eprintln!("  engine selection ({backend}): {warning}");
        }
        let mut engine = selected.engine;
        if engine.stream().is_none() {
            bail!("the engine chosen runs on the {}: the benchmark measures GPU engines", engine.backend().title());
        }
        model.info().check_input_size(size)?;
        let plan = RunPlan { tiles: Arc::new(TilePlan::whole(size, engine.scale())), batch: 1, memory_limit: None };
        engine.reconfigure(&plan)?;
        engine.bind(1, size, TensorLocation::Device)?;
        let native_agreement =
            selected.native_agreement.map(|a| NativeAgreement { psnr_db: a.psnr_db, max_difference: a.max_difference });
        Ok(Self { engine, native_agreement })
    }

    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// Makes `image` (planar RGB in 0..1 of the bound size) the input of the following runs. The time depends on
    /// it: on the H200 the kernels run at the 700 W power limit, and the tensor cores draw less on smooth or
    /// constant operands (docs/PERFORMANCE.md, attempt 15).
    pub fn set_input(&mut self, image: &[f32]) -> Result<()> {
        let stream = self.engine.stream().cloned().context("a GPU engine without a stream")?;
        self.engine.input_tensor(0)?.upload_rgb(&stream, image)?;
        Ok(())
    }

    /// (a): `runs` runs timed after `warmup`, each waited for (one stream synchronisation per run, as in the
    /// element).
    pub fn time(&mut self, warmup: u64, runs: u64) -> Result<Measure> {
        let stream = self.engine.stream().cloned().context("a GPU engine without a stream")?;
        let engine = &mut self.engine;
        time_runs(warmup, runs, || {
            engine.run()?;
            stream.synchronize().context("cuStreamSynchronize")
        })
    }

    /// Each kernel's mean time over [`PROFILE_RUNS`] profiled runs, in launch order, named as the engine names them;
    /// `None` for engines that do not profile their kernels (ONNX Runtime).
    pub fn kernel_profile(&mut self) -> Result<Option<Vec<KernelTime>>> {
        let mut totals: Vec<KernelTime> = Vec::new();
        for run in 0..PROFILE_RUNS {
            let Some(times) = self.engine.profile()? else { return Ok(None) };
            if run == 0 {
                totals = times.iter().map(|(kernel, _)| KernelTime { kernel: kernel.clone(), ms: 0.0 }).collect();
            }
            if times.len() != totals.len() || times.iter().zip(&totals).any(|((k, _), t)| *k != t.kernel) {
                bail!("the {} engine's profile changed between runs", self.engine.backend());
            }
            for (total, (_, ms)) in totals.iter_mut().zip(&times) {
                total.ms += ms / f64::from(PROFILE_RUNS);
            }
        }
        Ok(Some(totals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_frame_is_a_varied_image_in_range() {
        let size = Size::new(64, 48);
        let frame = test_frame(size);
        assert_eq!(frame.len(), 3 * size.pixels());
        assert!(frame.iter().all(|v| (0.0..=1.0).contains(v)));
        let mean = frame.iter().sum::<f32>() / frame.len() as f32;
        let var = frame.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / frame.len() as f32;
        assert!(var > 0.01, "variance {var}");
        // neighbours differ (noise), not only at the probe image's edges
        let differing = frame.windows(2).filter(|p| (p[0] - p[1]).abs() > 1e-3).count();
        assert!(differing > frame.len() * 9 / 10, "{differing} of {}", frame.len());
        assert_eq!(frame, test_frame(size), "deterministic");
    }

    #[test]
    fn models_resolve_as_paths_or_names_and_missing_ones_say_how_to_install() {
        let e = resolve_model("no-such-model-for-the-bench").unwrap_err().to_string();
        assert!(e.starts_with("model no-such-model-for-the-bench: no such file"), "{e}");
        assert!(e.ends_with("(vfupscale-model fetch NAME installs a model by name)"), "{e}");
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert_eq!(resolve_model(here).unwrap(), Path::new(here));
    }
}
