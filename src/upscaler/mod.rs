// SPDX-License-Identifier: MPL-2.0
//! The per-frame coordinator: a frame (NV12, P010, packed RGB(A)) → planar RGB in the engine's input tensor → the
//! model → planar RGB output → a frame of the output format, on device memory (queued on one CUDA stream and synchronised once per frame; nothing allocated after the
//! first frame of a size) or on host memory.
//!
//! The parts are elsewhere: choosing the engine ([`crate::engine::select_engine`]), cutting frames into tiles under
//! a memory budget ([`crate::planning`]), the device path with its frames in flight (`device.rs`), the host path
//! (`host.rs`), the output's composition (classic image, strength blend, smaller output sizes, temporal
//! stabilisation: `output.rs`), frame timing events (`timing.rs`), making an upscaler with or without a model
//! (`setup.rs`), which failed frames give classic output (`fallback.rs`). Here: preparing for a frame size, retrying
//! with smaller tiles after running out of device memory, classic output for frames whose inference fails (with
//! `fallback=classic`), and the statistics.

mod device;
mod fallback;
mod frames;
mod host;
mod output;
mod setup;
mod timing;

use std::path::PathBuf;
use std::sync::Arc;

pub use frames::{DeviceFrames, FrameBuffers, InputFrame};
pub use output::OutputSettings;

use self::device::{DevicePath, InFlight};
use self::output::{DeviceOutput, HostOutput};
use crate::backend::{Backend, BackendChoice, Precision};
use crate::classic::{ClassicMethod, Fallback};
use crate::color::Colorimetry;
use crate::compose::ComposePlan;
use crate::cuda::{DeviceFrameMut, GpuDevice};
use crate::engine::{Agreement, Engine, EngineMemory, EngineRequest};
use crate::error::{Error, Result};
use crate::frame::{ElementType, HostFrame, HostFrameMut, PixelFormat, Size};
use crate::infer::TensorLocation;
use crate::model::{Model, ModelInfo};
use crate::planning::{Planner, RunPlan, Tiling};
use crate::stats::Stats;
use crate::temporal::TemporalSettings;

/// Frames that can be queued on the GPU before the oldest is finished (see [`Upscaler::queue`]).
pub const MAX_FRAMES_IN_FLIGHT: usize = 3;

/// What to run and where.
#[derive(Debug, Clone)]
pub struct UpscalerConfig {
    /// A model file or the name of an installed model ([`crate::models::resolve`]); `None`: the default model.
    pub model: Option<PathBuf>,
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    /// TensorRT engine and timing caches (default: `<cache dir>/tensorrt`).
    pub engine_cache_dir: Option<PathBuf>,
    pub tiling: Tiling,
    /// The filter of the classic image and of outputs smaller than the model's.
    pub classic: ClassicMethod,
    /// AI strength, 0..=1: the output is `strength × model + (1 − strength) × classic`.
    pub strength: f32,
    /// What happens when the model cannot run.
    pub fallback: Fallback,
    /// Temporal stabilisation of the model's output (`strength` 0: off).
    pub temporal: TemporalSettings,
    /// The scale factor when no model runs (the classic backend, or a stream that fell back); `None`: the model's
    /// declared scale where it can be read, else [`DEFAULT_CLASSIC_SCALE`]. With a model it must be the
    /// model's.
    pub scale: Option<u32>,
}

impl Default for UpscalerConfig {
    fn default() -> Self {
        Self {
            model: None,
            backend: BackendChoice::default(),
            precision: Precision::default(),
            device_id: 0,
            engine_cache_dir: None,
            tiling: Tiling::default(),
            classic: ClassicMethod::default(),
            strength: 1.0,
            fallback: Fallback::default(),
            temporal: TemporalSettings::default(),
            scale: None,
        }
    }
}

impl UpscalerConfig {
    /// What [`select_engine`] is asked for.
    pub fn engine_request(&self) -> EngineRequest {
        EngineRequest {
            backend: self.backend,
            precision: self.precision,
            device_id: self.device_id,
            engine_cache_dir: self.engine_cache_dir.clone(),
        }
    }
}

/// Device memory an upscaler holds, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// The inference engine's: ONNX Runtime's arena, or the native kernels' tensors and weights.
    pub engine: EngineMemory,
    /// Our own buffers: the frame tiles are blended into, the staging frame for copies and uploads.
    pub own: u64,
}

impl DeviceMemory {
    /// Everything held now.
    pub fn held(&self) -> u64 {
        self.engine.held + self.own
    }
}

/// The plan for the current frame size.
#[derive(Debug, Clone)]
struct Prepared {
    size: Size,
    output: Size,
    location: TensorLocation,
    /// How the model runs (`None` without a model).
    plan: Option<RunPlan>,
}

/// A loaded model on a chosen engine, upscaling frames of one size at a time. `F` is what keeps the memory of a
/// frame queued on the GPU alive (see [`FrameBuffers`]).
pub struct Upscaler<F: FrameBuffers = DeviceFrames> {
    // Field order is drop order, after `Drop` waited for the GPU: frames in flight and our buffers, then the engine.
    device: Option<DevicePath<F>>,
    /// `None`: classic output only (the classic backend, or a stream that fell back).
    engine: Option<Engine>,
    /// The float32 frame host-memory tiles are blended into.
    host_accumulator: Vec<f32>,
    /// The host path's output state for the prepared size.
    host_output: Option<HostOutput>,
    model: Option<Arc<Model>>,
    scale: u32,
    tiling: Tiling,
    output: OutputSettings,
    prepared: Option<Prepared>,
    /// Whether the temporal history holds the previous frame's output (false after a reset or a new size).
    history_valid: bool,
    /// Why the stream gives classic output although a model was asked for.
    fallback_cause: Option<String>,
    /// Why the latest frame that fell back to classic output did.
    last_fallback: Option<String>,
    /// Tile side forced by out-of-memory retries.
    tile_override: Option<u32>,
    warnings: Vec<String>,
    native_agreement: Option<Agreement>,
    /// Things that happened while running (smaller tiles after running out of memory), for the caller's log.
    notes: Vec<String>,
    stats: Stats,
}

impl<F: FrameBuffers> Upscaler<F> {
    /// Resolves, loads and checks the model (once), checks the settings, chooses the engine and measures the scale
    /// (see `setup.rs`); with `backend=classic` no model is loaded, and with `fallback=classic` a model or backend
    /// that cannot be used gives a classic upscaler (the cause in [`Upscaler::fallback_cause`] and the warnings).
    /// Backends skipped on the way and settings that could not be honoured are listed in [`Upscaler::warnings`].
    pub fn new(config: UpscalerConfig) -> Result<Self> {
        setup::new(config)
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn backend(&self) -> Backend {
        self.engine.as_ref().map_or(Backend::Classic, Engine::backend)
    }

    /// The model as loaded from disk (`None` without a model).
    pub fn model(&self) -> Option<&ModelInfo> {
        self.model.as_ref().map(|m| m.info())
    }

    /// How output frames are made.
    pub fn output_settings(&self) -> &OutputSettings {
        &self.output
    }

    /// Why the stream gives classic output although a model was asked for (`fallback=classic`).
    pub fn fallback_cause(&self) -> Option<&str> {
        self.fallback_cause.as_deref()
    }

    /// Why the latest frame that gave classic output after its model failed did (see [`Stats::fallback_frames`]).
    pub fn last_fallback_cause(&self) -> Option<&str> {
        self.last_fallback.as_deref()
    }

    /// Starts the temporal history afresh with the next frame queued (a discontinuity, a flush, a seek).
    pub fn reset_history(&mut self) {
        self.history_valid = false;
    }

    /// Element types of the tensors the model runs with (after any precision conversion); `f32` without a model.
    pub fn running_types(&self) -> (ElementType, ElementType) {
        match &self.engine {
            Some(e) => (e.model().input_type, e.model().output_type),
            None => (ElementType::F32, ElementType::F32),
        }
    }

    /// How the native kernels agreed with ONNX Runtime on the probe image, when they run the model.
    pub fn native_agreement(&self) -> Option<Agreement> {
        self.native_agreement
    }

    /// Backends that were skipped, with the reason, in order; settings that could not be honoured.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Things that happened since the last call (for the caller to log).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The GPU this upscaler runs on, if any.
    pub fn gpu_device(&self) -> Option<&Arc<GpuDevice>> {
        self.device.as_ref().map(|d| &d.device)
    }

    /// True when frames in device memory can be processed (a GPU backend with our kernels).
    pub fn supports_device_memory(&self) -> bool {
        self.device.is_some()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Device memory held for inference: the engine's and our own frames. `None` off the GPU.
    pub fn device_memory(&self) -> Option<DeviceMemory> {
        let own = self.device.as_ref()?.own_bytes();
        let engine = match &self.engine {
            Some(e) => e.memory()?,
            None => EngineMemory::default(),
        };
        Some(DeviceMemory { engine, own })
    }

    /// Prepares for frames of `size` in host or device memory, upscaled by the scale: see
    /// [`Upscaler::prepare_output`].
    pub fn prepare(&mut self, size: Size, location: TensorLocation) -> Result<()> {
        self.prepare_output(size, size.scaled(self.scale), location)
    }

    /// Prepares for frames of `size` in host or device memory with outputs of `output` (at most `size` times the
    /// scale; smaller ones are resampled from the model's output): checks the model accepts the size, plans tiles,
    /// allocates and binds the tensors and the output's buffers (only when something changed; the temporal
    /// history starts afresh).
    pub fn prepare_output(&mut self, size: Size, output: Size, location: TensorLocation) -> Result<()> {
        if self.prepared.as_ref().is_some_and(|p| p.size == size && p.output == output && p.location == location) {
            return Ok(());
        }
        if location == TensorLocation::Device && !self.supports_device_memory() {
            return Err(Error::Negotiation(format!(
                "frames in CUDA memory need a GPU backend, but the model runs on {}",
                self.backend()
            )));
        }
        if location == TensorLocation::Host && self.engine.as_ref().is_some_and(|e| !e.supports_host_tensors()) {
            return Err(Error::Negotiation(format!(
                "frames in system memory need an ONNX Runtime backend, but the model runs on {}",
                self.backend()
            )));
        }
        let compose = ComposePlan::new(self.output.method, size, self.scale, output)?;
        let plan = match (&self.engine, &self.model) {
            (Some(engine), Some(model)) => {
                let planner = Planner {
                    tiling: &self.tiling,
                    model: model.info(),
                    scale: self.scale,
                    capped: self.backend().is_gpu(),
                    output_bytes: output::buffer_bytes(&self.output, &compose, true),
                };
                let plan = planner.plan(size, self.tile_override, |tile, batch| engine.estimate(tile, batch))?;
                model.info().check_input_size(if plan.is_whole_frame() { size } else { plan.tiles.tile })?;
                Some(plan)
            }
            _ => None,
        };
        // free what depends on the old size before allocating for the new one, once frames in flight are done
        if let Some(device) = &mut self.device {
            device.wait_for_frames_in_flight()?;
            device.set_accumulator(None)?;
            device.set_output(None);
        }
        self.prepared = None;
        self.host_accumulator = Vec::new();
        self.host_output = None;
        self.history_valid = false;
        let model_output = size.scaled(self.scale);
        if let (Some(engine), Some(plan)) = (&mut self.engine, &plan) {
            engine.reconfigure(plan)?;
            engine.bind(plan.batch, plan.tiles.tile, location)?;
            if !plan.is_whole_frame() {
                match (location, &mut self.device) {
                    (TensorLocation::Host, _) => self.host_accumulator = vec![0.0; 3 * model_output.pixels()],
                    (TensorLocation::Device, Some(device)) => device.set_accumulator(Some(model_output))?,
                    (TensorLocation::Device, None) => return Err(Error::Usage("no GPU for device frames".into())),
                }
            }
            let (in_t, out_t) = self.running_types();
            let px = plan.tiles.tile.pixels() as u64 * plan.batch as u64;
            let s2 = (self.scale * self.scale) as u64;
            self.stats.tensor_bytes = px * 3 * (in_t.size() as u64 + s2 * out_t.size() as u64);
            self.stats.tiles_per_frame = plan.tiles.tiles.len() as u64;
            self.stats.tile_size = plan.tile_side();
        }
        let has_model = self.engine.is_some();
        match (location, &mut self.device) {
            (TensorLocation::Host, _) => self.host_output = Some(HostOutput::new(&self.output, compose)),
            (TensorLocation::Device, Some(device)) => {
                let output = DeviceOutput::new(&device.stream, &self.output, compose, has_model)?;
                device.set_output(Some(output));
            }
            (TensorLocation::Device, None) => return Err(Error::Usage("no GPU for device frames".into())),
        }
        self.prepared = Some(Prepared { size, output, location, plan });
        Ok(())
    }

    /// The model's plan for frames `src` → `dst` at `location`, checked against what was prepared (`None` without a
    /// model).
    fn prepared(&self, src: Size, dst: Size, location: TensorLocation) -> Result<Option<RunPlan>> {
        match &self.prepared {
            Some(p) if p.size == src && p.location == location && dst == p.output => Ok(p.plan.clone()),
            _ => Err(Error::Negotiation(format!(
                "frame {src} → {dst} in {location:?} memory does not match the prepared {}",
                self.prepared
                    .as_ref()
                    .map_or("(none)".into(), |p| format!("{} → {} ({:?})", p.size, p.output, p.location)),
            ))),
        }
    }

    /// Runs `attempt` and, when it fails for lack of device memory, shrinks the tiles and tries again, down to the
    /// smallest tile.
    fn with_memory_retry<T>(
        &mut self,
        (size, output): (Size, Size),
        location: TensorLocation,
        mut attempt: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T> {
        loop {
            match attempt(self) {
                Err(e) if e.is_out_of_memory() && self.backend().is_gpu() => {
                    let current = self
                        .prepared
                        .as_ref()
                        .and_then(|p| p.plan.as_ref())
                        .map_or(size.width.max(size.height), RunPlan::tile_side);
                    let Some(smaller) = self.tiling.smaller_after_oom(current) else { return Err(e) };
                    self.notes.push(format!(
                        "out of device memory with {current}px tiles, retrying with {smaller}px tiles: {e}"
                    ));
                    self.stats.oom_retries += 1;
                    self.tile_override = Some(smaller);
                    self.prepared = None;
                    self.prepare_output(size, output, location)?;
                }
                other => return other,
            }
        }
    }

    /// The model's plan, which must be there.
    fn model_plan(&self, src: Size, dst: Size, location: TensorLocation) -> Result<RunPlan> {
        self.prepared(src, dst, location)?.ok_or_else(|| Error::Usage("no model to run".into()))
    }

    /// Upscales a frame in host memory (prepared with [`TensorLocation::Host`]) into a frame of any format of the
    /// same family (Y'CbCr or R'G'B').
    pub fn upscale_host(
        &mut self,
        src: &HostFrame,
        src_colour: Colorimetry,
        dst: &mut HostFrameMut,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        check_formats((src.format, src_colour), (dst.format, dst_colour))?;
        let (sizes, colours) = ((src.size, dst.size), (src_colour, dst_colour));
        let with_model = self.prepared(src.size, dst.size, TensorLocation::Host)?.is_some();
        let classic = |up: &mut Self, dst: &mut HostFrameMut| {
            let out = up.host_output.as_mut().ok_or_else(|| Error::Usage("no output prepared".into()))?;
            host::classic(out, &up.output, src, dst, colours)
        };
        let result = match with_model {
            true => self.with_memory_retry(sizes, TensorLocation::Host, |up| {
                let plan = up.model_plan(src.size, dst.size, TensorLocation::Host)?;
                let valid = up.history_valid;
                let engine = up.engine.as_mut().ok_or_else(|| Error::Usage("no model to run".into()))?;
                let out = up.host_output.as_mut().ok_or_else(|| Error::Usage("no output prepared".into()))?;
                host::upscale(engine, &plan, &mut up.host_accumulator, out, &up.output, src, dst, (colours, valid))
            }),
            false => classic(self, dst).map(|times| (times, false)),
        };
        let (times, stabilised) = match result {
            Err(e) if self.falls_back(&e) => {
                self.record_fallback(&e);
                (classic(self, dst)?, false)
            }
            other => other?,
        };
        self.history_valid = stabilised;
        self.stats.record_frame(times);
        Ok(())
    }

    /// Queues one device frame on our stream: through the model (with smaller tiles after running out of memory),
    /// or classic output without a model or, with `fallback=classic`, after the model failed on it.
    ///
    /// # Safety
    /// The memory of `input` and `output` must stay valid (the input unchanged, the output touched by nothing
    /// else) until the frame's work has completed on the stream.
    unsafe fn queue_on_device(
        &mut self,
        input: &InputFrame<'_>,
        output: &mut DeviceFrameMut<'_>,
        colours: (Colorimetry, Colorimetry),
    ) -> Result<(timing::FrameEvents, device::InputRoute)> {
        check_formats((input.format(), colours.0), (output.format(), colours.1))?;
        let (size, out_size) = (input.size(), output.size());
        let with_model = self.prepared(size, out_size, TensorLocation::Device)?.is_some();
        let classic = |up: &mut Self, output: &mut DeviceFrameMut<'_>| {
            let device = up.device.as_mut().ok_or_else(|| Error::Usage("no GPU".into()))?;
            // SAFETY: this function's contract.
            unsafe { device.queue(None, &up.output, input, output, (colours, false)) }
        };
        let result = match with_model {
            true => self.with_memory_retry((size, out_size), TensorLocation::Device, |up| {
                let plan = up.model_plan(size, out_size, TensorLocation::Device)?;
                let valid = up.history_valid;
                let device = up.device.as_mut().ok_or_else(|| Error::Usage("no GPU".into()))?;
                let engine = up.engine.as_mut().ok_or_else(|| Error::Usage("no model to run".into()))?;
                // SAFETY: this function's contract.
                unsafe { device.queue(Some((engine, &plan)), &up.output, input, output, (colours, valid)) }
            }),
            false => classic(self, output),
        };
        let (events, route, stabilised) = match result {
            Err(e) if self.falls_back(&e) => {
                self.record_fallback(&e);
                classic(self, output)?
            }
            other => other?,
        };
        self.history_valid = stabilised;
        Ok((events, route))
    }

    /// Upscales a frame into device memory of this upscaler's context and waits for it: `output` is complete when
    /// this returns. No frame may be in flight.
    pub fn upscale_device(
        &mut self,
        input: InputFrame<'_>,
        mut output: DeviceFrameMut<'_>,
        src_colour: Colorimetry,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        if self.frames_in_flight() > 0 {
            return Err(Error::Usage("frames are in flight: finish them before upscaling one synchronously".into()));
        }
        // SAFETY: `input` and `output` are borrowed for this whole call, which waits for the frame below.
        let (events, route) = unsafe { self.queue_on_device(&input, &mut output, (src_colour, dst_colour))? };
        let device = self.device.as_ref().ok_or_else(|| Error::Usage("no GPU".into()))?;
        let times = device.finish_events(events);
        if times.is_err() {
            let _ = device.synchronize();
        }
        route.count(&mut self.stats);
        self.stats.record_frame(times?);
        Ok(())
    }

    /// Queues the upscaling of `frame` on our stream and returns without waiting: [`Upscaler::finish_frame`] waits
    /// for the oldest queued frame and hands its value back. Frames are finished in the order they were queued; up
    /// to [`MAX_FRAMES_IN_FLIGHT`] can be queued. Inputs in our CUDA context are read in place, inputs of another
    /// context copied into ours, host-memory inputs uploaded (counted in the statistics). On an error the frame is
    /// dropped once the GPU is done with it.
    pub fn queue(&mut self, mut frame: F, src_colour: Colorimetry, dst_colour: Colorimetry) -> Result<()> {
        let device = self.device.as_ref().ok_or_else(|| Error::Usage("no GPU for device frames".into()))?;
        if device.in_flight.len() >= MAX_FRAMES_IN_FLIGHT {
            return Err(Error::Usage(format!("{MAX_FRAMES_IN_FLIGHT} frames are already in flight: finish one first")));
        }
        let stream = device.stream.clone();
        let result = (|| {
            let (input, mut output) = frame.planes(&stream)?;
            // SAFETY: the frame's memory is kept alive and untouched by `frame` (FrameBuffers' contract), which the
            // caller keeps in the frames in flight until the GPU is done with it.
            unsafe { self.queue_on_device(&input, &mut output, (src_colour, dst_colour)) }
        })();
        let device = self.device.as_mut().ok_or_else(|| Error::Usage("no GPU".into()))?;
        match result {
            Ok((events, route)) => {
                route.count(&mut self.stats);
                device.in_flight.push_back(InFlight { events, frame });
                Ok(())
            }
            Err(e) => {
                device.release(frame);
                Err(e)
            }
        }
    }

    /// Frames queued by [`Upscaler::queue`] and not yet finished.
    pub fn frames_in_flight(&self) -> usize {
        self.device.as_ref().map_or(0, |d| d.in_flight.len())
    }

    /// The oldest frame in flight: the one [`Upscaler::finish_frame`] finishes next.
    pub fn oldest_in_flight(&self) -> Option<&F> {
        self.device.as_ref()?.in_flight.front().map(|f| &f.frame)
    }

    /// Waits for the oldest frame in flight to be complete in its output, records its statistics and hands its
    /// value back. An error here (the device failed while running it) concerns that frame, which is dropped once
    /// the GPU is done with it.
    pub fn finish_frame(&mut self) -> Result<F> {
        let device = self.device.as_mut().ok_or_else(|| Error::Usage("no frame in flight to finish".into()))?;
        let (frame, times) = device.finish_oldest()?;
        self.stats.record_frame(times);
        Ok(frame)
    }

    /// Drops every frame in flight once the GPU is done with them (after a flush). Their statistics are not
    /// recorded.
    pub fn discard_frames_in_flight(&mut self) -> Result<()> {
        let Some(device) = &mut self.device else { return Ok(()) };
        let waited = device.synchronize();
        let frames = std::mem::take(&mut device.in_flight);
        match waited {
            Ok(()) => drop(frames),
            // the GPU may still use them
            Err(_) => std::mem::forget(frames),
        }
        waited
    }
}

/// Checks that each side's colorimetry suits its format, and that both formats are of one family: Y'CbCr to
/// Y'CbCr (NV12 and P010 either way), R'G'B' to R'G'B'.
fn check_formats(input: (PixelFormat, Colorimetry), output: (PixelFormat, Colorimetry)) -> Result<()> {
    input.1.check(input.0)?;
    output.1.check(output.0)?;
    if input.0.family() != output.0.family() {
        return Err(Error::Negotiation(format!("{} frames cannot be upscaled into {} frames", input.0, output.0)));
    }
    Ok(())
}

impl<F: FrameBuffers> Drop for Upscaler<F> {
    fn drop(&mut self) {
        // frames in flight still read and write buffers freed below
        let _ = self.discard_frames_in_flight();
    }
}
