//! One frame's path: NV12 → planar RGB in the bound input tensor → the model → planar RGB output tensor → NV12.
//!
//! On device memory everything is queued on one CUDA stream (our kernels and ONNX Runtime) and synchronised once
//! per frame; nothing is allocated after the first frame of a given size. On host memory the conversions run in
//! Rust (`cpu.rs`) and ONNX Runtime runs on whichever provider was chosen.
//!
//! Large frames, heavy models and memory limits are handled by tiling (`tiling.rs`): tiles of one size, several
//! per run when `batch` allows, blended with feathered weights into a float32 accumulation frame that is converted
//! to NV12 once. With a memory limit, the largest tile whose estimated footprint fits is chosen, ONNX Runtime's
//! arena is capped to the rest of the budget, and a frame that still runs out of memory is retried with smaller
//! tiles.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DevicePtrMut};

use crate::color::{Colorimetry, rgb_to_yuv, yuv_to_rgb};
use crate::cpu;
use crate::cuda::copy::{StagingNv12, copy_between_contexts, upload};
use crate::cuda::launch::{DevicePlanar, blend_tile, nv12_to_planar, planar_to_nv12};
use crate::cuda::{GpuDevice, driver_error};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::{DeviceNv12, ElementType, HostNv12, HostNv12Mut, Rect, Size};
use crate::infer::{
    ArenaStats, Backend, BackendChoice, InferenceSession, Precision, SessionOptions, TensorLocation, load_model,
};
use crate::model::ModelInfo;
use crate::native::{NativeEngine, match_srvgg};
use crate::onnx::ModelProto;
use crate::stats::{Stage, Stats};
use crate::tiling::TilePlan;

/// Default overlap of neighbouring tiles, in input pixels: enough for the receptive field of the shipped models
/// to settle (tiled output within 50 dB of whole-frame output for realesr-animevideov3).
pub const DEFAULT_TILE_OVERLAP: u32 = 32;
/// Tiles never get smaller than this when shrinking to fit memory.
pub const MIN_TILE: u32 = 64;
/// Room kept for cuDNN workspaces and ONNX Runtime's own buffers inside a memory budget.
const WORKSPACE_RESERVE: usize = 96 << 20;
/// Widest activations the memory estimate assumes alive at once (see `estimate_run`).
const ACTIVATIONS_AT_PEAK: f64 = 4.0;

/// How frames are cut into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Input pixels per tile side; 0: whole frames (unless `max_memory_mib` forces tiles).
    pub tile_size: u32,
    /// Overlap of neighbouring tiles in input pixels.
    pub overlap: u32,
    /// Tiles per inference run (for models with a dynamic batch axis).
    pub batch: u32,
    /// Memory budget in MiB for tensors, activations and buffers (device memory on GPU backends, where ONNX
    /// Runtime's arena is capped to it; host memory on the CPU, where it only chooses the tiles); 0: unlimited.
    pub max_memory_mib: u64,
}

impl Default for Tiling {
    fn default() -> Self {
        Self { tile_size: 0, overlap: DEFAULT_TILE_OVERLAP, batch: 1, max_memory_mib: 0 }
    }
}

/// What to run and where.
#[derive(Debug, Clone, Default)]
pub struct UpscalerConfig {
    pub model: PathBuf,
    pub backend: BackendChoice,
    pub precision: Precision,
    pub device_id: u32,
    pub engine_cache_dir: Option<PathBuf>,
    pub tiling: Tiling,
}

/// Frames that can be queued on the GPU before the oldest is finished (see [`Upscaler::queue_device`]).
pub const MAX_FRAMES_IN_FLIGHT: usize = 3;

/// The CUDA side of an upscaler: the device (primary context, kernels), our stream, timing events.
struct Gpu {
    device: Arc<GpuDevice>,
    stream: Arc<CudaStream>,
    /// Stage boundaries, recorded on the stream for timing without extra synchronisation: one set per frame that
    /// can be in flight (grown as needed).
    events: [Vec<CudaEvent>; MAX_FRAMES_IN_FLIGHT],
}

impl Gpu {
    /// Creates the events of `slot` up to index `i`.
    fn create_events(&mut self, slot: usize, i: usize) -> Result<()> {
        let events = &mut self.events[slot];
        while events.len() <= i {
            self.device.bind_to_thread()?;
            // timing enabled (cudarc's default disables it): the stage durations in `stats` come from these
            let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
            events.push(self.stream.context().new_event(Some(flags)).map_err(|e| driver_error("cuEventCreate", e))?);
        }
        Ok(())
    }

    fn record(&mut self, slot: usize, i: usize) -> Result<()> {
        self.create_events(slot, i)?;
        self.events[slot][i].record(&self.stream).map_err(|e| driver_error("cuEventRecord", e))
    }

    fn elapsed(&self, slot: usize, a: usize, b: usize) -> Result<f64> {
        let events = &self.events[slot];
        events[a].elapsed_ms(&events[b]).map(f64::from).map_err(|e| driver_error("cuEventElapsedTime", e))
    }

    /// Waits until the work recorded before event `i` of `slot` is done.
    fn wait(&self, slot: usize, i: usize) -> Result<()> {
        self.events[slot][i].synchronize().map_err(|e| driver_error("cuEventSynchronize", e))
    }
}

/// A frame whose work is queued on the stream and not yet finished.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Its set of timing events.
    slot: usize,
    /// Inference runs (chunks of tiles) it took.
    chunks: usize,
    /// Whether its tiles were blended into the accumulation frame (one more conversion at the end).
    blended: bool,
}

/// Least PSNR (dB) of the native kernels' output against ONNX Runtime's (both fp16) for them to be used: fp16
/// rounding differences stay far above it (measured on the H100: see README), a wrong result falls far below.
const NATIVE_AGREEMENT_DB: f64 = 40.0;

/// Whether our native kernels run a model.
enum Native {
    /// Ready, with the PSNR of their output against ONNX Runtime's on the probe image.
    Ready(Box<NativeEngine>, f64),
    NotApplicable(String),
}

/// Device memory an upscaler holds, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// ONNX Runtime's arena: bound tensors, activations, workspaces.
    pub arena: ArenaStats,
    /// Our own buffers: the frame tiles are blended into, the staging frame for copies and uploads.
    pub own: u64,
}

impl DeviceMemory {
    /// Everything held now.
    pub fn held(&self) -> u64 {
        self.arena.reserved + self.own
    }
}

/// The float32 frame tiles are blended into.
enum Accumulator {
    None,
    Host(Vec<f32>),
    Device(CudaSlice<f32>),
}

/// The plan for the current frame size.
#[derive(Debug, Clone)]
struct Prepared {
    size: Size,
    location: TensorLocation,
    plan: Arc<TilePlan>,
    batch: u32,
}

/// A loaded model on a chosen backend, ready to upscale frames of one size at a time.
pub struct Upscaler {
    // Field order is drop order: the session (which holds ONNX Runtime's reference to our stream) goes first.
    engine: Engine,
    acc: Accumulator,
    staging: Option<StagingNv12>,
    gpu: Option<Gpu>,
    model: ModelInfo,
    proto: ModelProto,
    config: UpscalerConfig,
    scale: u32,
    /// Values per input pixel at the model's widest layer (memory estimates).
    peak_activation: f64,
    warnings: Vec<String>,
    /// Things that happened while running (smaller tiles after running out of memory), for the caller's log.
    notes: Vec<String>,
    prepared: Option<Prepared>,
    /// Tile side forced by out-of-memory retries.
    tile_override: Option<u32>,
    /// Memory limit the ONNX Runtime session was opened with.
    session_limit: Option<usize>,
    /// PSNR of the native kernels' output against ONNX Runtime's on the probe image, when they were chosen.
    native_agreement: Option<f64>,
    /// Frames queued on the GPU and not yet finished, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Event set of the next queued frame.
    next_slot: usize,
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
            memory_limit: None,
        };
        let mut native_agreement = None;
        let native = match &gpu {
            Some(gpu) if matches!(config.backend, BackendChoice::Auto | BackendChoice::Native) => {
                match Self::open_native(gpu, &model, &proto, &config) {
                    Ok(Native::Ready(engine, db)) => {
                        native_agreement = Some(db);
                        Some(engine)
                    }
                    Ok(Native::NotApplicable(why)) if config.backend == BackendChoice::Native => {
                        return Err(Error::model(&model.path, format!("the native kernels cannot run it: {why}")));
                    }
                    Ok(Native::NotApplicable(_)) => None,
                    Err(e) if config.backend == BackendChoice::Native => return Err(e),
                    Err(e) => {
                        warnings.push(format!("native kernels unavailable, falling back to ONNX Runtime: {e}"));
                        None
                    }
                }
            }
            _ => None,
        };
        let (engine, scale) = match native {
            Some(engine) => {
                let scale = engine.scale();
                (Engine::Native(engine), scale)
            }
            None => {
                let options = SessionOptions {
                    backend: if options.backend == BackendChoice::Native {
                        BackendChoice::Cuda
                    } else {
                        options.backend
                    },
                    ..options
                };
                let (mut session, skipped) = InferenceSession::open(&model, &proto, &options)?;
                warnings.extend(skipped);
                if session.backend() == Backend::Cpu && config.precision == Precision::Fp16 {
                    warnings.push(
                        "precision fp16 on the cpu backend: ONNX Runtime computes it in fp32, expect no speed-up"
                            .into(),
                    );
                }
                let scale = match model.scale {
                    Some(s) => s,
                    None => session.probe_scale()?,
                };
                (Engine::Ort(Box::new(session)), scale)
            }
        };
        if config.tiling.batch > 1 && model.fixed_batch.is_some_and(|b| b != config.tiling.batch) {
            warnings.push(format!(
                "batch-size {} ignored: the model's batch axis is fixed at {}",
                config.tiling.batch,
                model.fixed_batch.unwrap_or(1)
            ));
        }
        let peak_activation = crate::onnx::stats::model_stats(&proto).peak_activation_per_pixel.max(3.0);
        // a GPU that ended up unused (CPU fallback) is released
        let gpu = if engine.backend().is_gpu() { gpu } else { None };
        Ok(Self {
            engine,
            native_agreement,
            acc: Accumulator::None,
            staging: None,
            gpu,
            model,
            proto,
            config,
            scale,
            peak_activation,
            warnings,
            notes: Vec::new(),
            prepared: None,
            tile_override: None,
            session_limit: None,
            in_flight: VecDeque::new(),
            next_slot: 0,
            stats: Stats::default(),
        })
    }

    /// Our native kernels for `model`, if its graph is one they run and their output agrees with ONNX Runtime's
    /// CUDA provider on a probe image.
    fn open_native(gpu: &Gpu, model: &ModelInfo, proto: &ModelProto, config: &UpscalerConfig) -> Result<Native> {
        let graph = match match_srvgg(proto, &model.input_name, &model.output_name) {
            Ok(graph) => graph,
            Err(why) => return Ok(Native::NotApplicable(format!("not an SRVGGNetCompact graph: {why}"))),
        };
        if config.precision == Precision::Fp32 {
            return Ok(Native::NotApplicable("they compute in fp16; precision fp32 runs on ONNX Runtime".into()));
        }
        if model.scale.is_some_and(|s| s as f32 != graph.scale()) {
            return Ok(Native::NotApplicable(format!(
                "the graph scales by {}, the model declares {}",
                graph.scale(),
                model.scale.unwrap_or(0)
            )));
        }
        let mut engine = NativeEngine::new(gpu.device.clone(), gpu.stream.clone(), &graph, model)?;
        let db = Self::agreement_with_onnx_runtime(&mut engine, gpu, model, proto, config)?;
        if db < NATIVE_AGREEMENT_DB {
            return Err(Error::model(
                &model.path,
                format!(
                    "the native kernels' output differs from ONNX Runtime's ({db:.1} dB PSNR, {NATIVE_AGREEMENT_DB} \
                     needed)"
                ),
            ));
        }
        Ok(Native::Ready(Box::new(engine), db))
    }

    /// PSNR (dB, values clamped to 0..1) between `native` and ONNX Runtime's CUDA provider in fp16 on one probe
    /// image: smooth gradients, a ripple and hard edges, sized to leave partial tiles.
    fn agreement_with_onnx_runtime(
        native: &mut NativeEngine,
        gpu: &Gpu,
        model: &ModelInfo,
        proto: &ModelProto,
        config: &UpscalerConfig,
    ) -> Result<f64> {
        let size = Size::new(72, 40);
        let options = SessionOptions {
            backend: BackendChoice::Cuda,
            precision: Precision::Fp16,
            device_id: config.device_id,
            compute_stream: Some(gpu.stream.cu_stream() as usize),
            ..Default::default()
        };
        let mut session = InferenceSession::open_with(model, proto, &options, Backend::Cuda)?;
        let scale = native.scale();
        session.bind(1, size, scale, TensorLocation::Device)?;
        native.bind(1, size)?;
        let (w, h) = (size.width as usize, size.height as usize);
        let probe: Vec<u16> = (0..3 * w * h)
            .map(|i| {
                let (c, y, x) = (i / (w * h), (i / w) % h, i % w);
                let ripple = 0.25 * ((x as f32 * 0.45 + c as f32).sin() * (y as f32 * 0.3).cos());
                let edge = if (x / 9 + y / 7) % 2 == 0 { 0.2 } else { -0.2 };
                let v = 0.5 + ripple + edge + 0.1 * (x as f32 / w as f32 - y as f32 / h as f32);
                half::f16::from_f32(v.clamp(0.0, 1.0)).to_bits()
            })
            .collect();
        let copy_error = |e| driver_error("cuMemcpy", e);
        let stream = gpu.stream.cu_stream();
        let out_len = 3 * w * h * (scale * scale) as usize;
        let (mut ours, mut theirs) = (vec![0u16; out_len], vec![0u16; out_len]);
        // SAFETY: both input tensors hold 3 × size fp16 values and both outputs `out_len`; the host buffers outlive
        // the stream synchronisation below.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(native.input_ptr()?, &probe, stream).map_err(copy_error)?;
            cudarc::driver::result::memcpy_htod_async(session.input_ptr()?, &probe, stream).map_err(copy_error)?;
            native.run()?;
            session.run()?;
            cudarc::driver::result::memcpy_dtoh_async(&mut ours, native.output_ptr()?, stream).map_err(copy_error)?;
            cudarc::driver::result::memcpy_dtoh_async(&mut theirs, session.output_ptr()?, stream)
                .map_err(copy_error)?;
        }
        gpu.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))?;
        let value = |b: u16| half::f16::from_bits(b).to_f32().clamp(0.0, 1.0) as f64;
        let mse = ours.iter().zip(&theirs).map(|(&a, &b)| (value(a) - value(b)).powi(2)).sum::<f64>() / out_len as f64;
        Ok(10.0 * (1.0 / mse.max(1e-20)).log10())
    }

    /// PSNR of the native kernels against ONNX Runtime on the probe image, when they run this model.
    pub fn native_agreement_db(&self) -> Option<f64> {
        self.native_agreement
    }

    fn open_gpu(device_id: u32) -> Result<Gpu> {
        let device = GpuDevice::get(device_id)?;
        let stream = device.new_stream()?;
        let mut gpu = Gpu { device, stream, events: Default::default() };
        for slot in 0..MAX_FRAMES_IN_FLIGHT {
            // a whole-frame run needs four
            gpu.create_events(slot, 3)?;
        }
        Ok(gpu)
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// The model as loaded from disk.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Element type of the tensors the model runs with (after any precision conversion).
    pub fn running_types(&self) -> (ElementType, ElementType) {
        let m = self.engine.model();
        (m.input_type, m.output_type)
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
        self.gpu.as_ref().map(|g| &g.device)
    }

    /// True when frames in device memory can be processed (a GPU backend with our kernels).
    pub fn supports_device_memory(&self) -> bool {
        self.gpu.is_some() && self.engine.backend().is_gpu()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// The tile plan for the prepared size.
    pub fn plan(&self) -> Option<&TilePlan> {
        self.prepared.as_ref().map(|p| p.plan.as_ref())
    }

    /// Device memory held for inference: ONNX Runtime's arena and our own frames. `None` off the GPU.
    pub fn device_memory(&self) -> Option<DeviceMemory> {
        let arena = self.engine.device_memory()?;
        let acc = match &self.acc {
            Accumulator::Device(acc) => acc.len() * size_of::<f32>(),
            _ => 0,
        };
        let staging = self.staging.as_ref().map_or(0, StagingNv12::bytes);
        Some(DeviceMemory { arena, own: (acc + staging) as u64 })
    }

    /// Estimated bytes ONNX Runtime needs for one run of `batch` tiles of `tile`: bound tensors, room for four of the
    /// widest activation (on the H100 a layer's input, its output, and the layout transposes the CUDA provider adds
    /// around resizes were measured alive at once: up to 3.5 of them for realesrgan-x4plus), plus workspace room.
    fn estimate_run(&self, tile: Size, batch: u32) -> usize {
        if let Engine::Native(native) = &self.engine {
            // exact: the native kernels allocate nothing beyond their tensors and weights
            return tile.pixels() * batch as usize * native.bytes_per_pixel() + native.weight_bytes();
        }
        let (in_t, out_t) = self.running_types();
        let px = tile.pixels() as f64 * batch as f64;
        let s2 = (self.scale * self.scale) as f64;
        let tensors = px * 3.0 * (in_t.size() as f64 + s2 * out_t.size() as f64);
        let activations = ACTIVATIONS_AT_PEAK * self.peak_activation * px * in_t.size() as f64;
        (tensors + activations) as usize + WORKSPACE_RESERVE
    }

    /// Bytes of our own buffers for frames of `size`: the accumulation frame when tiled, a staging frame.
    fn own_buffers(&self, size: Size, tiled: bool) -> usize {
        let staging = size.pixels() * 3 / 2;
        let acc = if tiled { 3 * size.scaled(self.scale).pixels() * 4 } else { 0 };
        staging + acc
    }

    /// Chooses the tile size for frames of `size`: the configured one (or the whole frame), shrunk until the
    /// estimate fits the memory budget. Returns the plan and the limit for ONNX Runtime's arena.
    fn plan_for(&self, size: Size) -> Result<(TilePlan, u32, Option<usize>)> {
        let t = &self.config.tiling;
        let whole = size.width.max(size.height);
        if self.model.fixed_size.is_some() {
            return Ok((TilePlan::whole(size, self.scale), 1, None));
        }
        let mut tile = self.tile_override.unwrap_or(if t.tile_size == 0 { whole } else { t.tile_size.min(whole) });
        let batch_for = |tile: u32| {
            let plan = TilePlan::new(size, self.scale, tile, t.overlap);
            let fixed = self.model.fixed_batch;
            let batch = if fixed.is_some() { 1 } else { t.batch.clamp(1, plan.tiles.len() as u32) };
            (plan, batch)
        };
        if t.max_memory_mib == 0 {
            let (plan, batch) = batch_for(tile);
            return Ok((plan, batch, None));
        }
        let budget = (t.max_memory_mib as usize) << 20;
        loop {
            let (plan, batch) = batch_for(tile);
            let own = self.own_buffers(size, !plan.is_whole_frame());
            let need = self.estimate_run(plan.tile, batch) + own;
            if need <= budget {
                // ONNX Runtime's arena is capped on GPU providers; on the CPU the budget only steers the tiles
                let limit = self.backend().is_gpu().then_some(budget - own);
                return Ok((plan, batch, limit));
            }
            if tile <= MIN_TILE {
                return Err(Error::InvalidConfig(format!(
                    "max-memory {} MiB is too small for {size} frames: {MIN_TILE}x{MIN_TILE} tiles need about {} MiB",
                    t.max_memory_mib,
                    need.div_ceil(1 << 20)
                )));
            }
            tile = (tile * 3 / 4).max(MIN_TILE) / 8 * 8;
        }
    }

    /// Prepares for frames of `size` in host or device memory: checks the model accepts the size, plans tiles,
    /// allocates and binds the tensors (only when something changed).
    pub fn prepare(&mut self, size: Size, location: TensorLocation) -> Result<()> {
        if self.prepared.as_ref().is_some_and(|p| p.size == size && p.location == location) {
            return Ok(());
        }
        if location == TensorLocation::Device && !self.supports_device_memory() {
            return Err(Error::InvalidConfig(format!(
                "frames in CUDA memory need a GPU backend, but the model runs on {}",
                self.backend()
            )));
        }
        let (plan, batch, limit) = self.plan_for(size)?;
        self.model.check_input_size(if plan.is_whole_frame() { size } else { plan.tile })?;
        // free what depends on the old size before allocating for the new one, once frames in flight are done
        self.wait_for_frames_in_flight()?;
        self.prepared = None;
        self.acc = Accumulator::None;
        if matches!(self.engine, Engine::Ort(_)) && (self.backend() == Backend::TensorRt || limit != self.session_limit)
        {
            // TensorRT builds its engine for an optimisation profile; a memory limit is a session option
            let options = SessionOptions {
                backend: if self.backend() == Backend::TensorRt {
                    BackendChoice::TensorRt
                } else {
                    BackendChoice::Cuda
                },
                precision: self.config.precision,
                device_id: self.config.device_id,
                engine_cache_dir: self.config.engine_cache_dir.clone(),
                compute_stream: self.gpu.as_ref().map(|g| g.stream.cu_stream() as usize),
                profile_size: Some((batch, plan.tile)),
                memory_limit: limit,
            };
            let backend = self.backend();
            self.engine =
                Engine::Ort(Box::new(InferenceSession::open_with(&self.model, &self.proto, &options, backend)?));
            self.session_limit = limit;
        }
        self.engine.bind(batch, plan.tile, self.scale, location)?;
        let out = size.scaled(self.scale);
        if !plan.is_whole_frame() {
            self.acc = match location {
                TensorLocation::Host => Accumulator::Host(vec![0.0; 3 * out.pixels()]),
                TensorLocation::Device => {
                    let gpu = self.gpu.as_ref().expect("device location needs the GPU");
                    Accumulator::Device(
                        gpu.stream.alloc_zeros::<f32>(3 * out.pixels()).map_err(|e| driver_error("cuMemAlloc", e))?,
                    )
                }
            };
        }
        let (in_t, out_t) = self.running_types();
        let px = plan.tile.pixels() as u64 * batch as u64;
        self.stats.tensor_bytes =
            px * 3 * (in_t.size() as u64 + (self.scale * self.scale) as u64 * out_t.size() as u64);
        self.stats.tiles_per_frame = plan.tiles.len() as u64;
        self.stats.tile_size = plan.tile.width.max(plan.tile.height);
        self.prepared = Some(Prepared { size, location, plan: Arc::new(plan), batch });
        Ok(())
    }

    fn check_sizes(&self, src: Size, dst: Size, location: TensorLocation) -> Result<Prepared> {
        match &self.prepared {
            Some(p) if p.size == src && p.location == location && dst == src.scaled(self.scale) => Ok(p.clone()),
            _ => Err(Error::InvalidConfig(format!(
                "frame {src} → {dst} does not match the prepared size {:?} at scale {}",
                self.prepared.as_ref().map(|p| p.size),
                self.scale
            ))),
        }
    }

    /// Runs `attempt` and, when it fails for lack of device memory, shrinks the tiles and tries again.
    fn with_memory_retry(
        &mut self,
        size: Size,
        location: TensorLocation,
        mut attempt: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        loop {
            match attempt(self) {
                Err(e) if e.is_out_of_memory() && self.backend().is_gpu() => {
                    let current = self
                        .prepared
                        .as_ref()
                        .map_or(size.width.max(size.height), |p| p.plan.tile.width.max(p.plan.tile.height));
                    if current <= MIN_TILE {
                        return Err(e);
                    }
                    let smaller = (current / 2).max(MIN_TILE);
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

    /// Upscales an NV12 frame in host memory.
    pub fn upscale_host(
        &mut self,
        src: &HostNv12,
        src_colour: Colorimetry,
        dst: &mut HostNv12Mut,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        self.check_sizes(src.size, dst.size, TensorLocation::Host)?;
        self.with_memory_retry(src.size, TensorLocation::Host, |up| {
            up.upscale_host_once(src, src_colour, dst, dst_colour)
        })
    }

    fn upscale_host_once(
        &mut self,
        src: &HostNv12,
        src_colour: Colorimetry,
        dst: &mut HostNv12Mut,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        let prep = self.check_sizes(src.size, dst.size, TensorLocation::Host)?;
        let (in_t, out_t) = self.running_types();
        let to_rgb = yuv_to_rgb(src_colour);
        let to_yuv = rgb_to_yuv(dst_colour);
        let tile_in = 3 * prep.plan.tile.pixels();
        let tile_out = 3 * prep.plan.tile.scaled(self.scale).pixels();
        let out_size = dst.size;
        let (mut t_in, mut t_run, mut t_out) = (0.0, 0.0, 0.0);
        let ms = |a: Instant| a.elapsed().as_secs_f64() * 1e3;
        if let Accumulator::Host(acc) = &mut self.acc {
            acc.fill(0.0);
        }
        for chunk in prep.plan.tiles.chunks(prep.batch as usize) {
            let t0 = Instant::now();
            for (j, tile) in chunk.iter().enumerate() {
                let region = if prep.plan.is_whole_frame() { Rect::of_size(src.size) } else { tile.input };
                match in_t {
                    ElementType::F32 => {
                        cpu::nv12_to_planar(src, &to_rgb, region, &mut self.engine.input_host::<f32>()?[j * tile_in..])
                    }
                    ElementType::F16 => cpu::nv12_to_planar(
                        src,
                        &to_rgb,
                        region,
                        &mut self.engine.input_host::<half::f16>()?[j * tile_in..],
                    ),
                }
            }
            t_in += ms(t0);
            let t1 = Instant::now();
            self.engine.run()?;
            if let Some(gpu) = &self.gpu {
                // the provider copies the output to host memory on our stream
                gpu.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))?;
            }
            t_run += ms(t1);
            let t2 = Instant::now();
            if let Accumulator::Host(acc) = &mut self.acc {
                for (j, tile) in chunk.iter().enumerate() {
                    match out_t {
                        ElementType::F32 => {
                            cpu::blend_tile(&self.engine.output_host::<f32>()?[j * tile_out..], tile, acc, out_size)
                        }
                        ElementType::F16 => cpu::blend_tile(
                            &self.engine.output_host::<half::f16>()?[j * tile_out..],
                            tile,
                            acc,
                            out_size,
                        ),
                    }
                }
            } else {
                match out_t {
                    ElementType::F32 => cpu::planar_to_nv12(self.engine.output_host::<f32>()?, &to_yuv, dst),
                    ElementType::F16 => cpu::planar_to_nv12(self.engine.output_host::<half::f16>()?, &to_yuv, dst),
                }
            }
            t_out += ms(t2);
        }
        if let Accumulator::Host(acc) = &self.acc {
            let t3 = Instant::now();
            cpu::planar_to_nv12(acc.as_slice(), &to_yuv, dst);
            t_out += ms(t3);
        }
        self.stats.record(Stage::ConvertIn, t_in);
        self.stats.record(Stage::Inference, t_run);
        self.stats.record(Stage::ConvertOut, t_out);
        self.stats.frames += 1;
        Ok(())
    }

    /// Upscales an NV12 frame in device memory of this upscaler's context: [`Upscaler::queue_device`] then
    /// [`Upscaler::finish_frame`], so `dst` is complete when this returns.
    ///
    /// # Safety
    /// As for [`Upscaler::queue_device`]; no other frame may be in flight.
    pub unsafe fn upscale_device(
        &mut self,
        src: &DeviceNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        // SAFETY: forwarded contract; the frame is finished before returning.
        unsafe { self.queue_device(src, src_colour, dst, dst_colour)? };
        self.finish_frame()
    }

    /// Queues the upscaling of an NV12 frame in device memory of this upscaler's context on our stream and returns
    /// without waiting: [`Upscaler::finish_frame`] waits for the oldest queued frame. Frames are finished in the
    /// order they were queued; up to [`MAX_FRAMES_IN_FLIGHT`] can be queued. Queuing the next frame before
    /// finishing this one keeps the GPU busy while the caller hands frames on.
    ///
    /// # Safety
    /// `src` and `dst` must be valid NV12 planes in the primary context of this upscaler's device until the frame
    /// is finished, `dst` writable and not aliasing `src` or any other frame in flight.
    pub unsafe fn queue_device(
        &mut self,
        src: &DeviceNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        if self.in_flight.len() >= MAX_FRAMES_IN_FLIGHT {
            return Err(Error::InvalidConfig(format!(
                "{MAX_FRAMES_IN_FLIGHT} frames are already in flight: finish one first"
            )));
        }
        self.check_sizes(src.size, dst.size, TensorLocation::Device)?;
        // SAFETY: forwarded contract.
        self.with_memory_retry(src.size, TensorLocation::Device, |up| unsafe {
            up.queue_device_once(src, src_colour, dst, dst_colour)
        })
    }

    /// Frames queued by [`Upscaler::queue_device`] and not yet finished.
    pub fn frames_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits for the oldest frame in flight to be complete in its output and records its statistics. An error
    /// here (the device failed while running it) concerns that frame.
    pub fn finish_frame(&mut self) -> Result<()> {
        let frame =
            self.in_flight.pop_front().ok_or_else(|| Error::InvalidConfig("no frame in flight to finish".into()))?;
        let gpu = self.gpu.as_ref().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
        // events: 0 start; per chunk k: 3k+1 inputs converted, 3k+2 model run, 3k+3 outputs blended/converted;
        // then, when blended, one more after the conversion of the accumulation frame
        let e = 3 * frame.chunks;
        let last = e + usize::from(frame.blended);
        gpu.wait(frame.slot, last)?;
        let (mut t_in, mut t_run, mut t_out) = (0.0, 0.0, 0.0);
        for k in (0..e).step_by(3) {
            t_in += gpu.elapsed(frame.slot, k, k + 1)?;
            t_run += gpu.elapsed(frame.slot, k + 1, k + 2)?;
            t_out += gpu.elapsed(frame.slot, k + 2, k + 3)?;
        }
        if frame.blended {
            t_out += gpu.elapsed(frame.slot, e, e + 1)?;
        }
        self.stats.record(Stage::ConvertIn, t_in);
        self.stats.record(Stage::Inference, t_run);
        self.stats.record(Stage::ConvertOut, t_out);
        self.stats.frames += 1;
        Ok(())
    }

    /// Waits for everything queued on our stream, before buffers frames in flight use are freed or rebound.
    fn wait_for_frames_in_flight(&self) -> Result<()> {
        match &self.gpu {
            Some(gpu) if !self.in_flight.is_empty() => {
                gpu.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))
            }
            _ => Ok(()),
        }
    }

    /// # Safety
    /// As for [`Upscaler::queue_device`].
    unsafe fn queue_device_once(
        &mut self,
        src: &DeviceNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        let prep = self.check_sizes(src.size, dst.size, TensorLocation::Device)?;
        let (in_t, out_t) = self.running_types();
        let (in_ptr, out_ptr) = (self.engine.input_ptr()?, self.engine.output_ptr()?);
        let tile_in = prep.plan.tile;
        let tile_out = tile_in.scaled(self.scale);
        let in_bytes = (3 * tile_in.pixels() * in_t.size()) as u64;
        let out_bytes = (3 * tile_out.pixels() * out_t.size()) as u64;
        let to_rgb = yuv_to_rgb(src_colour);
        let to_yuv = rgb_to_yuv(dst_colour);
        let slot = self.next_slot;
        let gpu = self.gpu.as_mut().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
        gpu.device.bind_to_thread()?;
        let acc = match &mut self.acc {
            Accumulator::Device(acc) => {
                // stream order: the previous frame's final conversion has read it by then
                gpu.stream.memset_zeros(acc).map_err(|e| driver_error("cuMemsetD8Async", e))?;
                let (ptr, _) = acc.device_ptr_mut(&gpu.stream);
                Some(ptr)
            }
            _ => None,
        };
        // the event layout is described in `finish_frame`
        gpu.record(slot, 0)?;
        let mut e = 0;
        for chunk in prep.plan.tiles.chunks(prep.batch as usize) {
            for (j, tile) in chunk.iter().enumerate() {
                let region = if prep.plan.is_whole_frame() { Rect::of_size(src.size) } else { tile.input };
                let dst_t = DevicePlanar { ptr: in_ptr + j as u64 * in_bytes, size: region.size(), element: in_t };
                // SAFETY: `src` is valid per this function's contract; the slot is inside the bound input tensor.
                unsafe { nv12_to_planar(&gpu.device, &gpu.stream, src, &to_rgb, region, dst_t)? };
            }
            gpu.record(slot, e + 1)?;
            self.engine.run()?;
            gpu.record(slot, e + 2)?;
            for (j, tile) in chunk.iter().enumerate() {
                let out_t_ptr = DevicePlanar { ptr: out_ptr + j as u64 * out_bytes, size: tile_out, element: out_t };
                match acc {
                    // SAFETY: the slot is inside the bound output tensor; `acc` holds the whole output frame.
                    Some(acc) => unsafe { blend_tile(&gpu.device, &gpu.stream, out_t_ptr, tile, acc, dst.size)? },
                    // SAFETY: whole frame: the output tensor is the frame; `dst` per the contract.
                    None => unsafe { planar_to_nv12(&gpu.device, &gpu.stream, out_t_ptr, &to_yuv, dst)? },
                }
            }
            gpu.record(slot, e + 3)?;
            e += 3;
        }
        if let Some(acc) = acc {
            let whole = DevicePlanar { ptr: acc, size: dst.size, element: ElementType::F32 };
            // SAFETY: `acc` holds `3 × dst.size` floats; `dst` per the contract.
            unsafe { planar_to_nv12(&gpu.device, &gpu.stream, whole, &to_yuv, dst)? };
            gpu.record(slot, e + 1)?;
        }
        self.in_flight.push_back(InFlight { slot, chunks: e / 3, blended: acc.is_some() });
        self.next_slot = (slot + 1) % MAX_FRAMES_IN_FLIGHT;
        Ok(())
    }

    /// A staging frame of `size` in our context. Frames in flight that read the old one are waited for before it is
    /// replaced; the next frame's copy into it is ordered after their reads on the stream.
    fn staging(&mut self, size: Size) -> Result<DeviceNv12> {
        if self.staging.as_ref().is_none_or(|s| s.size() != size) {
            self.wait_for_frames_in_flight()?;
            self.staging = None;
            let gpu = self.gpu.as_ref().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
            self.staging = Some(StagingNv12::new(&gpu.stream, size)?);
        }
        let gpu = self.gpu.as_ref().ok_or_else(|| Error::InvalidConfig("no GPU".into()))?;
        Ok(self.staging.as_ref().expect("just set").frame(&gpu.stream))
    }

    /// Queues a frame that lives in another CUDA context (of the same device): it is copied device-to-device into
    /// our context first, and counted in [`Stats::foreign_context_copies`]. Finished by
    /// [`Upscaler::finish_frame`].
    ///
    /// # Safety
    /// `src` must be valid device memory of `src_context`, and `dst` as for [`Upscaler::queue_device`], until the
    /// frame is finished.
    pub unsafe fn queue_device_from_context(
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
        unsafe { self.queue_device(&staging, src_colour, dst, dst_colour) }
    }

    /// Queues a host-memory frame to be upscaled into a device-memory frame: the input is uploaded first, counted
    /// in [`Stats::host_uploads`]. Finished by [`Upscaler::finish_frame`].
    ///
    /// # Safety
    /// `src`'s memory must stay valid, and `dst` as for [`Upscaler::queue_device`], until the frame is finished.
    pub unsafe fn queue_host_to_device(
        &mut self,
        src: &HostNv12,
        src_colour: Colorimetry,
        dst: &DeviceNv12,
        dst_colour: Colorimetry,
    ) -> Result<()> {
        let staging = self.staging(src.size)?;
        let gpu = self.gpu.as_ref().expect("staging needs the GPU");
        gpu.device.bind_to_thread()?;
        // SAFETY: `src` stays valid until the frame is finished, which waits for this copy.
        unsafe { upload(&gpu.stream, src, &staging)? };
        self.stats.host_uploads += 1;
        // SAFETY: as above.
        unsafe { self.queue_device(&staging, src_colour, dst, dst_colour) }
    }
}

impl Drop for Upscaler {
    fn drop(&mut self) {
        // frames in flight still read and write buffers freed below
        let _ = self.wait_for_frames_in_flight();
    }
}
