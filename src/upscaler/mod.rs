// SPDX-License-Identifier: MPL-2.0
//! The per-frame coordinator: a frame (NV12, P010, packed RGB(A)) → planar RGB in the engine's input tensor → the
//! model → planar RGB output → a frame of the output format, on device memory (queued on one CUDA stream and synchronised once per frame; nothing allocated after the
//! first frame of a size) or on host memory.
//!
//! The parts are elsewhere: choosing the engine ([`crate::engine::select_engine`]), cutting frames into tiles under
//! a memory budget ([`crate::planning`]), the device path with its frames in flight (`device.rs`), the host path
//! (`host.rs`), frame timing events (`timing.rs`). Here: preparing for a frame size, retrying with smaller tiles
//! after running out of device memory, and the statistics.

mod device;
mod frames;
mod host;
mod timing;

use std::path::PathBuf;
use std::sync::Arc;

pub use frames::{DeviceFrames, FrameBuffers, InputFrame};

use self::device::{DevicePath, InFlight};
use crate::backend::{Backend, BackendChoice, Precision};
use crate::color::Colorimetry;
use crate::cuda::{DeviceFrameMut, GpuDevice};
use crate::engine::{Agreement, Engine, EngineMemory, EngineRequest, select_engine};
use crate::error::{Error, Result};
use crate::frame::{ElementType, HostFrame, HostFrameMut, PixelFormat, Size};
use crate::infer::TensorLocation;
use crate::model::{Model, ModelInfo};
use crate::planning::{Planner, RunPlan, Tiling};
use crate::stats::Stats;

/// Frames that can be queued on the GPU before the oldest is finished (see [`Upscaler::queue`]).
pub const MAX_FRAMES_IN_FLIGHT: usize = 3;

/// What to run and where.
#[derive(Debug, Clone, Default)]
pub struct UpscalerConfig {
    /// A model file or the name of an installed model ([`crate::models::resolve`]); `None`: the default model.
    pub model: Option<PathBuf>,
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    /// TensorRT engine and timing caches (default: `<cache dir>/tensorrt`).
    pub engine_cache_dir: Option<PathBuf>,
    pub tiling: Tiling,
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
    location: TensorLocation,
    plan: RunPlan,
}

/// A loaded model on a chosen engine, upscaling frames of one size at a time. `F` is what keeps the memory of a
/// frame queued on the GPU alive (see [`FrameBuffers`]).
pub struct Upscaler<F: FrameBuffers = DeviceFrames> {
    // Field order is drop order, after `Drop` waited for the GPU: frames in flight and our buffers, then the engine.
    device: Option<DevicePath<F>>,
    engine: Engine,
    /// The float32 frame host-memory tiles are blended into.
    host_accumulator: Vec<f32>,
    model: Arc<Model>,
    tiling: Tiling,
    prepared: Option<Prepared>,
    /// Tile side forced by out-of-memory retries.
    tile_override: Option<u32>,
    warnings: Vec<String>,
    native_agreement: Option<Agreement>,
    /// Things that happened while running (smaller tiles after running out of memory), for the caller's log.
    notes: Vec<String>,
    stats: Stats,
}

impl<F: FrameBuffers> Upscaler<F> {
    /// Resolves, loads and checks the model (once), checks the tiling, chooses the engine and measures the scale.
    /// Backends skipped on the way and settings that could not be honoured are listed in [`Upscaler::warnings`].
    pub fn new(config: UpscalerConfig) -> Result<Self> {
        config.tiling.check()?;
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
        let device = match (selected.device, engine.stream()) {
            (Some(device), Some(stream)) => Some(DevicePath::new(device, stream.clone(), MAX_FRAMES_IN_FLIGHT)?),
            _ => None,
        };
        Ok(Self {
            device,
            engine,
            host_accumulator: Vec::new(),
            model,
            tiling: config.tiling,
            prepared: None,
            tile_override: None,
            warnings,
            native_agreement: selected.native_agreement,
            notes: Vec::new(),
            stats: Stats::default(),
        })
    }

    pub fn scale(&self) -> u32 {
        self.engine.scale()
    }

    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// The model as loaded from disk.
    pub fn model(&self) -> &ModelInfo {
        self.model.info()
    }

    /// Element types of the tensors the model runs with (after any precision conversion).
    pub fn running_types(&self) -> (ElementType, ElementType) {
        let m = self.engine.model();
        (m.input_type, m.output_type)
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
        Some(DeviceMemory { engine: self.engine.memory()?, own })
    }

    /// Prepares for frames of `size` in host or device memory: checks the model accepts the size, plans tiles,
    /// allocates and binds the tensors (only when something changed).
    pub fn prepare(&mut self, size: Size, location: TensorLocation) -> Result<()> {
        if self.prepared.as_ref().is_some_and(|p| p.size == size && p.location == location) {
            return Ok(());
        }
        if location == TensorLocation::Device && !self.supports_device_memory() {
            return Err(Error::Negotiation(format!(
                "frames in CUDA memory need a GPU backend, but the model runs on {}",
                self.backend()
            )));
        }
        if location == TensorLocation::Host && !self.engine.supports_host_tensors() {
            return Err(Error::Negotiation(format!(
                "frames in system memory need an ONNX Runtime backend, but the model runs on {}",
                self.backend()
            )));
        }
        let planner = Planner {
            tiling: &self.tiling,
            model: self.model.info(),
            scale: self.scale(),
            capped: self.backend().is_gpu(),
        };
        let plan = planner.plan(size, self.tile_override, |tile, batch| self.engine.estimate(tile, batch))?;
        self.model.info().check_input_size(if plan.is_whole_frame() { size } else { plan.tiles.tile })?;
        // free what depends on the old size before allocating for the new one, once frames in flight are done
        if let Some(device) = &mut self.device {
            device.wait_for_frames_in_flight()?;
            device.set_accumulator(None)?;
        }
        self.prepared = None;
        self.host_accumulator = Vec::new();
        self.engine.reconfigure(&plan)?;
        self.engine.bind(plan.batch, plan.tiles.tile, location)?;
        let out = size.scaled(self.scale());
        if !plan.is_whole_frame() {
            match (location, &mut self.device) {
                (TensorLocation::Host, _) => self.host_accumulator = vec![0.0; 3 * out.pixels()],
                (TensorLocation::Device, Some(device)) => device.set_accumulator(Some(out))?,
                (TensorLocation::Device, None) => return Err(Error::Usage("no GPU for device frames".into())),
            }
        }
        let (in_t, out_t) = self.running_types();
        let px = plan.tiles.tile.pixels() as u64 * plan.batch as u64;
        let s2 = (self.scale() * self.scale()) as u64;
        self.stats.tensor_bytes = px * 3 * (in_t.size() as u64 + s2 * out_t.size() as u64);
        self.stats.tiles_per_frame = plan.tiles.tiles.len() as u64;
        self.stats.tile_size = plan.tile_side();
        self.prepared = Some(Prepared { size, location, plan });
        Ok(())
    }

    fn prepared(&self, src: Size, dst: Size, location: TensorLocation) -> Result<RunPlan> {
        match &self.prepared {
            Some(p) if p.size == src && p.location == location && dst == src.scaled(self.scale()) => Ok(p.plan.clone()),
            _ => Err(Error::Negotiation(format!(
                "frame {src} → {dst} in {location:?} memory does not match the prepared size {} at scale {}",
                self.prepared.as_ref().map_or("(none)".into(), |p| format!("{} ({:?})", p.size, p.location)),
                self.scale()
            ))),
        }
    }

    /// Runs `attempt` and, when it fails for lack of device memory, shrinks the tiles and tries again, down to the
    /// smallest tile.
    fn with_memory_retry<T>(
        &mut self,
        size: Size,
        location: TensorLocation,
        mut attempt: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T> {
        loop {
            match attempt(self) {
                Err(e) if e.is_out_of_memory() && self.backend().is_gpu() => {
                    let current = self.prepared.as_ref().map_or(size.width.max(size.height), |p| p.plan.tile_side());
                    let Some(smaller) = self.tiling.smaller_after_oom(current) else { return Err(e) };
                    self.notes.push(format!(
                        "out of device memory with {current}px tiles, retrying with {smaller}px tiles: {e}"
                    ));
                    self.stats.oom_retries += 1;
                    self.tile_override = Some(smaller);
                    self.prepared = None;
                    self.prepare(size, location)?;
                }
                other => return other,
            }
        }
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
        self.prepared(src.size, dst.size, TensorLocation::Host)?;
        check_formats((src.format, src_colour), (dst.format, dst_colour))?;
        let times = self.with_memory_retry(src.size, TensorLocation::Host, |up| {
            let plan = up.prepared(src.size, dst.size, TensorLocation::Host)?;
            host::upscale(&mut up.engine, &plan, &mut up.host_accumulator, src, dst, (src_colour, dst_colour))
        })?;
        self.stats.record_frame(times);
        Ok(())
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
        let (size, out_size) = (input.size(), output.size());
        self.prepared(size, out_size, TensorLocation::Device)?;
        check_formats((input.format(), src_colour), (output.format(), dst_colour))?;
        let (events, route) = self.with_memory_retry(size, TensorLocation::Device, |up| {
            let plan = up.prepared(size, out_size, TensorLocation::Device)?;
            let device = up.device.as_mut().ok_or_else(|| Error::Usage("no GPU".into()))?;
            // SAFETY: `input` and `output` are borrowed for this whole call, which waits for the frame below.
            unsafe { device.queue(&mut up.engine, &plan, &input, &mut output, (src_colour, dst_colour)) }
        })?;
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
        let result = self.queue_with_retry(&mut frame, &stream, (src_colour, dst_colour));
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

    /// Queues `frame` (see [`Upscaler::queue`]), with smaller tiles after running out of memory.
    fn queue_with_retry(
        &mut self,
        frame: &mut F,
        stream: &Arc<cudarc::driver::CudaStream>,
        colours: (Colorimetry, Colorimetry),
    ) -> Result<(timing::FrameEvents, device::InputRoute)> {
        let (size, out_size) = {
            let (input, output) = frame.planes(stream)?;
            check_formats((input.format(), colours.0), (output.format(), colours.1))?;
            (input.size(), output.size())
        };
        self.prepared(size, out_size, TensorLocation::Device)?;
        self.with_memory_retry(size, TensorLocation::Device, |up| {
            let plan = up.prepared(size, out_size, TensorLocation::Device)?;
            let device = up.device.as_mut().ok_or_else(|| Error::Usage("no GPU".into()))?;
            let (input, mut output) = frame.planes(stream)?;
            // SAFETY: the frame's memory is kept alive and untouched by `frame` (FrameBuffers' contract), which the
            // caller keeps in the frames in flight until the GPU is done with it.
            unsafe { device.queue(&mut up.engine, &plan, &input, &mut output, colours) }
        })
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
