// SPDX-License-Identifier: MPL-2.0
//! Making an upscaler: the settings checked, then the model loaded and its engine chosen, or (the classic backend,
//! or `fallback=classic` when the model or its backend cannot be used) a classic upscaler without a model, on the
//! GPU where there is one.

use std::sync::Arc;

use super::device::DevicePath;
use super::frames::FrameBuffers;
use super::output::OutputSettings;
use super::{MAX_FRAMES_IN_FLIGHT, Upscaler, UpscalerConfig};
use crate::backend::BackendChoice;
use crate::classic::Fallback;
use crate::compose::Strength;
use crate::cuda::GpuDevice;
use crate::engine::select_engine;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::stats::Stats;

/// The scale of classic output when neither the `scale` setting nor a readable model gives one: the default
/// model's.
pub const DEFAULT_CLASSIC_SCALE: u32 = 2;
/// The largest scale factor of classic output.
pub const MAX_SCALE: u32 = 16;

/// The output settings of `config`, checked.
fn output_settings(config: &UpscalerConfig) -> Result<OutputSettings> {
    let unit = |what: &str, v: f32| {
        if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(Error::InvalidConfig(format!("{what} {v} is outside 0..1"))) }
    };
    unit("strength", config.strength)?;
    unit("temporal-stability", config.temporal.strength)?;
    if let Some(s) = config.scale.filter(|s| !(1..=MAX_SCALE).contains(s)) {
        return Err(Error::InvalidConfig(format!("scale {s} is outside 1..{MAX_SCALE}")));
    }
    Ok(OutputSettings {
        method: config.classic,
        strength: Strength::new(config.strength),
        temporal: config.temporal,
        fallback: config.fallback,
    })
}

/// See [`Upscaler::new`].
pub fn new<F: FrameBuffers>(config: UpscalerConfig) -> Result<Upscaler<F>> {
    config.tiling.check()?;
    let output = output_settings(&config)?;
    if config.backend == BackendChoice::Classic {
        return classic(&config, output, None);
    }
    match with_model(&config, output) {
        Err(e) if config.fallback == Fallback::Classic && !e.is_settings() => classic(&config, output, Some(e)),
        other => other,
    }
}

/// The statistics of a new run: the output settings in effect.
fn stats(output: &OutputSettings) -> Stats {
    Stats {
        classic_method: output.method.name(),
        strength: output.strength.model as f64,
        temporal_stability: output.temporal.strength as f64,
        ..Stats::default()
    }
}

fn with_model<F: FrameBuffers>(config: &UpscalerConfig, output: OutputSettings) -> Result<Upscaler<F>> {
    let path = crate::models::resolve(config.model.as_deref())?;
    let model = Arc::new(Model::load(&path)?);
    let selected = select_engine(model.clone(), &config.engine_request())?;
    let mut warnings = selected.warnings;
    let fixed_batch = model.info().fixed_batch;
    if config.tiling.batch > 1 && fixed_batch.is_some_and(|b| b != config.tiling.batch) {
        warnings.push(format!(
            "batch-size {} ignored: the model's batch axis is fixed at {}",
            config.tiling.batch,
            fixed_batch.unwrap_or(1)
        ));
    }
    let engine = selected.engine;
    let scale = engine.scale();
    if let Some(s) = config.scale.filter(|&s| s != scale) {
        return Err(Error::InvalidConfig(format!(
            "scale {s} is set, but model {} scales by {scale}: the scale is the model's (set it only without a model)",
            path.display()
        )));
    }
    let device = match (selected.device, engine.stream()) {
        (Some(device), Some(stream)) => Some(DevicePath::new(device, stream.clone(), MAX_FRAMES_IN_FLIGHT)?),
        _ => None,
    };
    Ok(Upscaler {
        device,
        engine: Some(engine),
        host_accumulator: Vec::new(),
        host_output: None,
        model: Some(model),
        scale,
        tiling: config.tiling,
        output,
        prepared: None,
        history_valid: false,
        fallback_cause: None,
        last_fallback: None,
        tile_override: None,
        warnings,
        native_agreement: selected.native_agreement,
        notes: Vec::new(),
        stats: stats(&output),
    })
}

/// A classic upscaler (no model): after `cause` when a model was asked for and cannot be used.
fn classic<F: FrameBuffers>(
    config: &UpscalerConfig,
    output: OutputSettings,
    cause: Option<Error>,
) -> Result<Upscaler<F>> {
    let mut warnings = Vec::new();
    // the model's declared scale, where the file can be read
    let declared = || {
        let path = crate::models::resolve(config.model.as_deref()).ok()?;
        Model::load(&path).ok()?.info().scale
    };
    let scale = config.scale.or_else(|| cause.as_ref().and_then(|_| declared())).unwrap_or(DEFAULT_CLASSIC_SCALE);
    let mut device = None;
    if config.backend != BackendChoice::Cpu && crate::cuda::driver_library_present() {
        match GpuDevice::get(config.device_id).and_then(|d| Ok((d.new_stream()?, d))) {
            Ok((stream, gpu)) => device = Some(DevicePath::new(gpu, stream, MAX_FRAMES_IN_FLIGHT)?),
            Err(e) => warnings.push(format!("classic scaling runs on the CPU only (system memory): {e}")),
        }
    }
    let fallback_cause = cause.map(|e| {
        let cause = e.to_string();
        warnings.push(format!("the model cannot be used, falling back to classic {} x{scale}: {cause}", output.method));
        cause
    });
    let mut stats = stats(&output);
    stats.fallback_streams = u64::from(fallback_cause.is_some());
    if output.temporal.enabled() {
        warnings.push("temporal-stability has no effect on classic output (nothing flickers)".into());
    }
    Ok(Upscaler {
        device,
        engine: None,
        host_accumulator: Vec::new(),
        host_output: None,
        model: None,
        scale,
        tiling: config.tiling,
        output,
        prepared: None,
        history_valid: false,
        fallback_cause,
        last_fallback: None,
        tile_override: None,
        warnings,
        native_agreement: None,
        notes: Vec::new(),
        stats,
    })
}
