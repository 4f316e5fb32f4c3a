//! The `vfupscale` element: properties, CUDA context sharing, caps, allocation and the per-buffer transform.
//! The work itself is `vfupscale::Upscaler`'s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::{GenerateOutputSuccess, InputBuffer, PrepareOutputBufferSuccess};
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoInfo};
use vfupscale::color::{Colorimetry, Matrix, Range};
use vfupscale::cuda::GpuDevice;
use vfupscale::frame::{HostNv12, HostNv12Mut, Size};
use vfupscale::stats::{Stats, field};
use vfupscale::{
    BackendChoice, DEFAULT_TILE_OVERLAP, DeviceMemory, Error, ErrorKind, InputFrame, TensorLocation, Tiling, Upscaler,
    UpscalerConfig,
};

use super::buffer_frame::BufferFrame;
use super::{BackendProperty, PrecisionProperty};
use crate::gstcuda::ffi::{CAPS_FEATURE_MEMORY_CUDA_MEMORY, CUDA_CONTEXT_TYPE};
use crate::gstcuda::{CudaContext, CudaFrame, context_handle_of, cuda_memory_context};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("vfupscale", gst::DebugColorFlags::empty(), Some("Video super-resolution"))
});

const DEFAULT_DEVICE_ID: u32 = 0;
/// Frames our CUDA pools allocate when they start, beyond what downstream asks to keep and the frames kept in flight
/// (`async-depth`): one being written, one waiting to enter a full downstream queue, one in it, one being consumed.
/// Allocating them up front keeps device memory flat over a long run (the pool still grows, once, where a pipeline
/// keeps more frames in flight).
const PREALLOCATED_FRAMES: u32 = 4;
/// Frames the pool we offer upstream (cudaupload, converters) allocates when it starts, besides the inputs of frames
/// in flight: what a default queue in front of us holds of 1080p NV12 (10 MB: four), one being written upstream,
/// one we read. The pool is not bounded
/// (a bounded pool can deadlock tee-and-mux pipelines); it grows, once, only where more frames are in flight.
const UPSTREAM_POOL_FRAMES: u32 = 6;
/// Frames between statistics lines in the debug log (category vfupscale, level INFO).
const STATS_LOG_INTERVAL: u64 = 300;
/// Frames kept in flight on the GPU by default: one hides the gap between frames (handing one on, taking the next)
/// in which the GPU would otherwise wait for the CPU.
const DEFAULT_ASYNC_DEPTH: u32 = 1;
/// Most frames in flight the `async-depth` property allows: the upscaler queues one more than that.
const MAX_ASYNC_DEPTH: u32 = vfupscale::MAX_FRAMES_IN_FLIGHT as u32 - 1;

/// Properties, copied out under the lock.
#[derive(Debug, Clone)]
struct Settings {
    model: Option<String>,
    backend: BackendProperty,
    precision: PrecisionProperty,
    device_id: u32,
    engine_cache_dir: Option<String>,
    tiling: Tiling,
    /// Frames between `vfupscale-stats` element messages (0: none).
    stats_interval: u64,
    /// Frames kept in flight on the GPU before the oldest is pushed.
    async_depth: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            backend: BackendProperty::Auto,
            precision: PrecisionProperty::Auto,
            device_id: DEFAULT_DEVICE_ID,
            engine_cache_dir: None,
            tiling: Tiling::default(),
            stats_interval: 0,
            async_depth: DEFAULT_ASYNC_DEPTH,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memory {
    System,
    Cuda,
}

/// What `set_caps` decided.
#[derive(Debug, Clone)]
struct Negotiated {
    in_info: VideoInfo,
    out_info: VideoInfo,
    memory: Memory,
    in_colour: Colorimetry,
    out_colour: Colorimetry,
}

/// Runtime objects, from `start` to `stop`.
struct State {
    /// The upscaler, with the buffers of the frames queued on the GPU and not yet pushed, oldest first.
    upscaler: Upscaler<BufferFrame>,
    negotiated: Option<Negotiated>,
    /// Frames to keep in flight on the CUDA path (`async-depth`).
    async_depth: usize,
}

impl State {
    /// Frames to keep in flight with the negotiated memory: system-memory frames are finished when converted.
    fn depth(&self) -> usize {
        match &self.negotiated {
            Some(n) if n.memory == Memory::Cuda => self.async_depth,
            _ => 0,
        }
    }
}

#[derive(Default)]
pub struct VfUpscale {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Our `GstCudaContext` (the device's primary context), from NULL→READY to READY→NULL.
    cuda: Mutex<Option<CudaContext>>,
    /// The model's scale once known (0 before).
    scale: AtomicU32,
    /// Statistics, backend and device of the last run, kept after `stop`.
    last_stats: Mutex<Option<(Stats, &'static str, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// CUDA driver with a device present (checked once per process).
fn cuda_driver_present() -> bool {
    static PRESENT: LazyLock<bool> = LazyLock::new(|| vfupscale::cuda::driver_status().is_ok());
    *PRESENT
}

fn colorimetry(info: &VideoInfo) -> Result<Colorimetry, String> {
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        VideoColorMatrix::Bt601 | VideoColorMatrix::Fcc => Matrix::Bt601,
        VideoColorMatrix::Bt709 | VideoColorMatrix::Smpte240m => Matrix::Bt709,
        VideoColorMatrix::Bt2020 => Matrix::Bt2020,
        // GStreamer's default for YUV of this size
        VideoColorMatrix::Unknown => {
            if info.height() > 576 {
                Matrix::Bt709
            } else {
                Matrix::Bt601
            }
        }
        other => return Err(format!("colour matrix {other:?} is not supported for NV12")),
    };
    let range = match c.range() {
        VideoColorRange::Range0_255 => Range::Full,
        _ => Range::Limited,
    };
    Ok(Colorimetry::new(matrix, range))
}

/// What the model runs on, for `stats` and logs: the GPU's name or "cpu".
fn device_name(upscaler: &Upscaler<BufferFrame>) -> String {
    upscaler.gpu_device().map_or_else(|| "cpu".into(), |d| format!("{} (device {})", d.name(), d.ordinal()))
}

/// GStreamer error domain and code for a core error at start.
/// Maps a system-memory input buffer for reading.
fn map_readable<'a>(
    buffer: &'a gst::Buffer,
    info: &VideoInfo,
) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, String> {
    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
        .map_err(|_| "cannot map the input buffer".to_string())
}

/// The NV12 planes of a mapped system-memory frame of `size`.
fn host_nv12<'a>(frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>, size: Size) -> Result<HostNv12<'a>, String> {
    let stride = frame.plane_stride();
    let plane = |i: u32| frame.plane_data(i).map_err(|e| e.to_string());
    HostNv12::new(size, plane(0)?, stride[0] as usize, plane(1)?, stride[1] as usize).map_err(|e| e.to_string())
}

fn start_error(e: &Error) -> gst::ErrorMessage {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::MissingResource => gst::error_msg!(gst::ResourceError::NotFound, ("{}", msg)),
        ErrorKind::Model => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", msg)),
        ErrorKind::OutOfMemory => gst::error_msg!(gst::ResourceError::NoSpaceLeft, ("{}", msg)),
        ErrorKind::Settings => gst::error_msg!(gst::LibraryError::Settings, ("{}", msg)),
        ErrorKind::Negotiation => gst::error_msg!(gst::CoreError::Negotiation, ("{}", msg)),
        ErrorKind::Failed | ErrorKind::Usage => gst::error_msg!(gst::LibraryError::Init, ("{}", msg)),
    }
}

/// Maps a width or height between the pads: `value × scale` towards the source pad, `value ÷ scale` (exact
/// multiples only) towards the sink pad. `None` when no value can map.
fn map_dimension(value: &glib::SendValue, scale: i32, to_src: bool) -> Option<glib::SendValue> {
    let up = |v: i32| v.checked_mul(scale);
    let down = |v: i32| (v % scale == 0).then_some(v / scale);
    if let Ok(v) = value.get::<i32>() {
        return if to_src { up(v) } else { down(v) }.filter(|&v| v > 0).map(|v| v.to_send_value());
    }
    if let Ok(r) = value.get::<gst::IntRange<i32>>() {
        let (min, max) = (r.min(), r.max());
        return if to_src {
            let max = max.saturating_mul(scale);
            let min = up(min)?;
            Some(gst::IntRange::with_step(min, max - max % scale, scale).to_send_value())
        } else {
            let min = ((min + scale - 1) / scale).max(1);
            let max = max / scale;
            (min <= max)
                .then(|| if min == max { min.to_send_value() } else { gst::IntRange::new(min, max).to_send_value() })
        };
    }
    if let Ok(list) = value.get::<gst::List>() {
        let mapped: Vec<glib::SendValue> = list.iter().filter_map(|v| map_dimension(v, scale, to_src)).collect();
        return (!mapped.is_empty()).then(|| gst::List::new(mapped).to_send_value());
    }
    None
}

impl VfUpscale {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn scale(&self) -> Option<u32> {
        Some(self.scale.load(Ordering::Acquire)).filter(|&s| s > 0)
    }

    /// Whether CUDA-memory caps can be offered now.
    fn cuda_allowed(&self) -> bool {
        if self.settings().backend == BackendProperty::Cpu {
            return false;
        }
        if let Some(state) = lock(&self.state).as_ref() {
            return state.upscaler.supports_device_memory();
        }
        lock(&self.cuda).is_some() || cuda_driver_present()
    }

    /// Creates (or reuses) the `GstCudaContext` wrapping the primary context of our device and announces it, so
    /// that upstream decoders, which reach READY after us, decode into it.
    fn ensure_cuda_context(&self) {
        let settings = self.settings();
        if settings.backend == BackendProperty::Cpu || !cuda_driver_present() || lock(&self.cuda).is_some() {
            return;
        }
        let wrapped = GpuDevice::get(settings.device_id)
            .map_err(|e| e.to_string())
            .and_then(|device| CudaContext::wrap_primary(&device));
        match wrapped {
            Ok(context) => {
                gst::info!(CAT, imp = self, "sharing the primary context of CUDA device {}", settings.device_id);
                let gst_context = context.to_gst_context();
                *lock(&self.cuda) = Some(context);
                if let Some(c) = gst_context {
                    let obj = self.obj();
                    obj.set_context(&c);
                    let _ = obj.post_message(gst::message::HaveContext::builder(c).src(&*obj).build());
                }
            }
            // start() reports the error if a GPU backend was required; with auto the CPU path remains
            Err(e) => gst::warning!(CAT, imp = self, "CUDA device {} not usable: {e}", settings.device_id),
        }
    }

    /// A CUDA buffer pool of `ctx` for frames of `caps`, configured (not yet active).
    fn cuda_pool(
        &self,
        ctx: &CudaContext,
        caps: &gst::Caps,
        info: &VideoInfo,
        min: u32,
        max: u32,
    ) -> Result<gst::BufferPool, gst::LoggableError> {
        let pool =
            ctx.new_buffer_pool().ok_or_else(|| gst::loggable_error!(CAT, "cannot create a CUDA buffer pool"))?;
        let mut config = pool.config();
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META.as_ref());
        config.set_params(Some(caps), info.size() as u32, min, max);
        pool.set_config(config).map_err(|_| gst::loggable_error!(CAT, "the CUDA buffer pool rejected its config"))?;
        Ok(pool)
    }

    fn stats_structure(&self) -> gst::Structure {
        let (stats, backend, device, memory) = match lock(&self.state).as_ref() {
            Some(s) => (
                s.upscaler.stats().clone(),
                s.upscaler.backend().name(),
                device_name(&s.upscaler),
                s.upscaler.device_memory().unwrap_or_default(),
            ),
            None => {
                // stopped: the counters of the last run remain, the memory was released
                let (stats, backend, device) =
                    lock(&self.last_stats).clone().unwrap_or((Stats::default(), "none", "none".into()));
                (stats, backend, device, DeviceMemory::default())
            }
        };
        let mut s = gst::Structure::builder("vfupscale-stats")
            .field(field::FRAMES, stats.frames)
            .field(field::BACKEND, backend)
            .field(field::DEVICE, device)
            .field(field::CONVERT_IN_MEAN_MS, stats.convert_in.mean_ms())
            .field(field::CONVERT_IN_MAX_MS, stats.convert_in.max_ms)
            .field(field::INFERENCE_MEAN_MS, stats.inference.mean_ms())
            .field(field::INFERENCE_MAX_MS, stats.inference.max_ms)
            .field(field::CONVERT_OUT_MEAN_MS, stats.convert_out.mean_ms())
            .field(field::CONVERT_OUT_MAX_MS, stats.convert_out.max_ms)
            .field(field::ZERO_COPY_INPUTS, stats.zero_copy_inputs)
            .field(field::FOREIGN_CONTEXT_COPIES, stats.foreign_context_copies)
            .field(field::HOST_UPLOADS, stats.host_uploads)
            .field(field::TENSOR_BYTES, stats.tensor_bytes)
            .field(field::TILES_PER_FRAME, stats.tiles_per_frame)
            .field(field::TILE_SIZE, stats.tile_size)
            .field(field::OOM_RETRIES, stats.oom_retries)
            .field(field::DEVICE_MEMORY_BYTES, memory.held())
            .field(field::INFERENCE_ARENA_BYTES, memory.engine.held);
        // only an engine with an arena keeps a peak (ONNX Runtime); none is made up for the others
        if let Some(peak) = memory.engine.peak {
            s = s.field(field::INFERENCE_ARENA_PEAK_BYTES, peak);
        }
        s.build()
    }

    /// Upscales one buffer completely (system memory, or CUDA memory with `async-depth` 0). Errors are returned as
    /// text for the caller to post after releasing the lock.
    fn upscale_now(&self, state: &mut State, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<(), String> {
        let neg = state.negotiated.clone().ok_or("not negotiated")?;
        let up = &mut state.upscaler;
        let in_size = Size::new(neg.in_info.width(), neg.in_info.height());
        let out_size = Size::new(neg.out_info.width(), neg.out_info.height());
        match neg.memory {
            Memory::System => {
                let in_frame = map_readable(inbuf, &neg.in_info)?;
                let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &neg.out_info)
                    .map_err(|_| "cannot map the output buffer")?;
                let os = [out_frame.plane_stride()[0] as usize, out_frame.plane_stride()[1] as usize];
                let src = host_nv12(&in_frame, in_size)?;
                let [y, uv, ..] = out_frame.planes_data_mut();
                let mut dst = HostNv12Mut::new(out_size, y, os[0], uv, os[1]).map_err(|e| e.to_string())?;
                up.upscale_host(&src, neg.in_colour, &mut dst, neg.out_colour).map_err(|e| e.to_string())
            }
            Memory::Cuda => {
                let mut out_frame = CudaFrame::writable(outbuf, &neg.out_info)?;
                let dst = out_frame.view_mut()?;
                let is_cuda = inbuf.n_memory() == 1 && cuda_memory_context(inbuf.peek_memory(0)).is_some();
                // inputs of our context are read in place, of another context copied, in system memory uploaded
                if is_cuda {
                    let in_frame = CudaFrame::readable(inbuf.as_ref(), &neg.in_info)?;
                    let src = InputFrame::Device(in_frame.view()?);
                    up.upscale_device(src, dst, neg.in_colour, neg.out_colour)
                } else {
                    let in_frame = map_readable(inbuf, &neg.in_info)?;
                    let src = InputFrame::Host(host_nv12(&in_frame, in_size)?);
                    up.upscale_device(src, dst, neg.in_colour, neg.out_colour)
                }
                .map_err(|e| e.to_string())
            }
        }
    }

    /// Queues a CUDA frame on the GPU, to be finished with [`Upscaler::finish_frame`], which hands the buffers back.
    fn queue_frame(&self, state: &mut State, inbuf: gst::Buffer, outbuf: gst::Buffer) -> Result<(), String> {
        let neg = state.negotiated.as_ref().ok_or("not negotiated")?;
        let frame = BufferFrame::new(inbuf, &neg.in_info, outbuf, &neg.out_info)?;
        state.upscaler.queue(frame, neg.in_colour, neg.out_colour).map_err(|e| e.to_string())
    }

    /// Logs what happened while running a frame, the periodic statistics, and turns an error into an element error
    /// naming the frame.
    fn after_frame(&self, pts: Option<gst::ClockTime>, result: Result<(), String>) -> Result<(), gst::FlowError> {
        let (notes, frames) = match lock(&self.state).as_mut() {
            Some(state) => (state.upscaler.take_notes(), state.upscaler.stats().frames),
            None => (Vec::new(), 0),
        };
        for note in notes {
            gst::warning!(CAT, imp = self, "frame at {}: {note}", pts.display());
        }
        if frames > 0 && frames % STATS_LOG_INTERVAL == 0 {
            gst::info!(CAT, imp = self, "{}", self.stats_structure());
        }
        let interval = lock(&self.settings).stats_interval;
        if interval > 0 && frames > 0 && frames % interval == 0 {
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(self.stats_structure()).src(&*self.obj()).build());
        }
        result.map_err(|e| self.frame_error(pts, &e))
    }

    /// Posts the element error for a frame that could not be upscaled.
    fn frame_error(&self, pts: Option<gst::ClockTime>, error: &str) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Upscaling the frame at {} failed: {}", pts.display(), error)
        );
        gst::FlowError::Error
    }

    /// Waits for the oldest frame in flight and returns its output buffer.
    fn finish_oldest(&self) -> Result<gst::Buffer, gst::FlowError> {
        let (pts, result) = {
            let mut state = lock(&self.state);
            let state = state.as_mut().ok_or(gst::FlowError::Flushing)?;
            let pts = state.upscaler.oldest_in_flight().ok_or(gst::FlowError::Error)?.output().pts();
            (pts, state.upscaler.finish_frame().map_err(|e| e.to_string()))
        };
        match result {
            Ok(frame) => {
                self.after_frame(pts, Ok(()))?;
                Ok(frame.into_output())
            }
            Err(e) => Err(self.after_frame(pts, Err(e)).err().unwrap_or(gst::FlowError::Error)),
        }
    }

    /// Finishes and pushes every frame in flight, oldest first (before EOS, new caps or a segment, or when
    /// upstream asks for its buffers back).
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        while lock(&self.state).as_ref().is_some_and(|s| s.upscaler.frames_in_flight() > 0) {
            let output = self.finish_oldest()?;
            self.obj().src_pad().push(output)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Drops the frames in flight after a flush (or on stop), once the GPU is done with them.
    fn discard_in_flight(&self) {
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else { return };
        if let Err(e) = state.upscaler.discard_frames_in_flight() {
            gst::debug!(CAT, imp = self, "discarding the frames in flight: {e}");
        }
    }

    /// Frames kept in flight on the CUDA path.
    fn async_depth(&self) -> u32 {
        lock(&self.state).as_ref().map_or(lock(&self.settings).async_depth, |s| s.async_depth as u32)
    }

    /// Latency the frames in flight add: each is pushed when the next one arrives.
    fn in_flight_latency(&self) -> gst::ClockTime {
        let state = lock(&self.state);
        let Some(state) = state.as_ref() else { return gst::ClockTime::ZERO };
        let Some(fps) = state.negotiated.as_ref().map(|n| n.in_info.fps()) else { return gst::ClockTime::ZERO };
        if fps.numer() <= 0 || fps.denom() <= 0 {
            return gst::ClockTime::ZERO;
        }
        let frame = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64).unwrap_or_default();
        frame * state.depth() as u64
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VfUpscale {
    const NAME: &'static str = "GstVfUpscale";
    type Type = super::VfUpscale;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for VfUpscale {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Path of the ONNX super-resolution model (NCHW RGB in 0..1, float32 or float16). Unset: \
                         realesr-animevideov3-x2 from $VFUPSCALE_MODEL_DIR or ~/.local/share/vfupscale/models",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", BackendProperty::Auto)
                    .nick("Backend")
                    .blurb("ONNX Runtime execution provider")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", PrecisionProperty::Auto)
                    .nick("Precision")
                    .blurb("Float precision the model runs in (converted on load when it differs from the file's)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("CUDA device to run on")
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("engine-cache-dir")
                    .nick("Engine cache directory")
                    .blurb(
                        "Where the TensorRT backend keeps engines and timing caches (unset: \
                         $XDG_CACHE_HOME/vfupscale/tensorrt)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb(
                        "Process frames in tiles of this many input pixels per side, blended where they overlap \
                         (0: whole frames, unless max-memory needs tiles)",
                    )
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Input pixels by which neighbouring tiles overlap (at most half a tile)")
                    .default_value(DEFAULT_TILE_OVERLAP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Tiles per inference run, for models with a dynamic batch axis (results equal batch 1)")
                    .minimum(1)
                    .maximum(64)
                    .default_value(1)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-memory")
                    .nick("Maximum device memory")
                    .blurb(
                        "Device memory budget in MiB (0: unlimited) for ONNX Runtime's arena (tensors, activations, \
                         workspaces) and the element's own frames, not the output buffer pool or the CUDA libraries: \
                         the largest tile that fits is chosen, and frames that still run out of memory are retried \
                         with smaller tiles. On the CPU it only chooses the tile size",
                    )
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("stats-interval")
                    .nick("Statistics interval")
                    .blurb("Post the stats structure as an element message every this many frames (0: never)")
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("async-depth")
                    .nick("Asynchronous depth")
                    .blurb(
                        "CUDA frames kept in flight on the GPU: each is pushed once the next one is queued, so the \
                         GPU does not wait for the CPU between frames, at the cost of this many frames of latency \
                         (0: each frame is finished before the next is taken)",
                    )
                    .maximum(MAX_ASYNC_DEPTH)
                    .default_value(DEFAULT_ASYNC_DEPTH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("scale")
                    .nick("Scale")
                    .blurb("Upscale factor of the model (0 until the model is loaded)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Frames processed, mean and maximum milliseconds of each stage (convert-in, inference, \
                         convert-out), how inputs were read (zero-copy-inputs, foreign-context-copies, \
                         host-uploads), bytes of the bound tensors, the tiling (tiles-per-frame, tile-size, \
                         oom-retries) and the device memory held (device-memory-bytes: ONNX Runtime's arena, \
                         inference-arena-bytes, plus our own frames; inference-arena-peak-bytes)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "model" => settings.model = value.get().expect("type checked upstream"),
            "backend" => settings.backend = value.get().expect("type checked upstream"),
            "precision" => settings.precision = value.get().expect("type checked upstream"),
            "device-id" => settings.device_id = value.get().expect("type checked upstream"),
            "engine-cache-dir" => settings.engine_cache_dir = value.get().expect("type checked upstream"),
            "tile-size" => settings.tiling.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => settings.tiling.overlap = value.get().expect("type checked upstream"),
            "batch-size" => settings.tiling.batch = value.get().expect("type checked upstream"),
            "max-memory" => settings.tiling.max_memory_mib = value.get().expect("type checked upstream"),
            "stats-interval" => settings.stats_interval = value.get().expect("type checked upstream"),
            "async-depth" => settings.async_depth = value.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "model" => lock(&self.settings).model.to_value(),
            "backend" => lock(&self.settings).backend.to_value(),
            "precision" => lock(&self.settings).precision.to_value(),
            "device-id" => lock(&self.settings).device_id.to_value(),
            "engine-cache-dir" => lock(&self.settings).engine_cache_dir.to_value(),
            "tile-size" => lock(&self.settings).tiling.tile_size.to_value(),
            "tile-overlap" => lock(&self.settings).tiling.overlap.to_value(),
            "batch-size" => lock(&self.settings).tiling.batch.to_value(),
            "max-memory" => lock(&self.settings).tiling.max_memory_mib.to_value(),
            "stats-interval" => lock(&self.settings).stats_interval.to_value(),
            "async-depth" => lock(&self.settings).async_depth.to_value(),
            "scale" => self.scale.load(Ordering::Acquire).to_value(),
            "stats" => self.stats_structure().to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for VfUpscale {}

impl ElementImpl for VfUpscale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Video super-resolution",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales NV12 video with an ONNX super-resolution model: on NVIDIA GPUs in CUDA memory without \
                 host copies (ONNX Runtime TensorRT/CUDA), elsewhere in system memory on the CPU",
                "vfupscale developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let raw = gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::Nv12).build();
            let cuda = gst_video::VideoCapsBuilder::new()
                .features([CAPS_FEATURE_MEMORY_CUDA_MEMORY])
                .format(gst_video::VideoFormat::Nv12)
                .build();
            let mut caps = cuda;
            caps.merge(raw);
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn set_context(&self, context: &gst::Context) {
        if context.context_type() == CUDA_CONTEXT_TYPE {
            let device_id = self.settings().device_id;
            let ours = lock(&self.cuda).as_ref().map(CudaContext::handle);
            match context_handle_of(self.obj().upcast_ref(), context, device_id) {
                Some(handle) if Some(handle) == ours => {}
                Some(_) => gst::info!(
                    CAT,
                    imp = self,
                    "a CUDA context other than device {device_id}'s primary context was offered; we keep ours and copy \
                     buffers that arrive in it"
                ),
                None => {}
            }
        }
        self.parent_set_context(context)
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            self.ensure_cuda_context();
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            *lock(&self.cuda) = None;
        }
        Ok(result)
    }
}

impl BaseTransformImpl for VfUpscale {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings();
        // a path or an installed model's name; unset: the default model
        let model = settings.model.as_ref().map(PathBuf::from);
        if model.is_none() {
            gst::info!(CAT, imp = self, "model not set: using the default model {}", vfupscale::models::DEFAULT_MODEL);
        }
        // unset: the core's default, <cache dir>/tensorrt
        let engine_cache_dir = settings.engine_cache_dir.map(PathBuf::from);
        let backend: BackendChoice = settings.backend.into();
        let upscaler = Upscaler::new(UpscalerConfig {
            model,
            backend,
            precision: settings.precision.into(),
            device_id: settings.device_id,
            engine_cache_dir,
            tiling: settings.tiling,
        })
        .map_err(|e| start_error(&e))?;
        for w in upscaler.warnings() {
            gst::warning!(CAT, imp = self, "{w}");
        }
        let (in_t, _) = upscaler.running_types();
        gst::info!(
            CAT,
            imp = self,
            "model {} (x{}) runs on the {} backend in {}{}",
            upscaler.model().path.display(),
            upscaler.scale(),
            upscaler.backend(),
            in_t,
            upscaler.gpu_device().map_or(String::new(), |d| format!(" on {} (device {})", d.name(), d.ordinal()))
        );
        if let Some(a) = upscaler.native_agreement() {
            gst::info!(
                CAT,
                imp = self,
                "native kernels agree with ONNX Runtime to {:.1} dB PSNR on the probe image",
                a.psnr_db
            );
        }
        self.scale.store(upscaler.scale(), Ordering::Release);
        *lock(&self.state) = Some(State { upscaler, negotiated: None, async_depth: settings.async_depth as usize });
        self.obj().notify("scale");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.discard_in_flight();
        if let Some(state) = lock(&self.state).take() {
            let (stats, backend) = (state.upscaler.stats().clone(), state.upscaler.backend().name());
            *lock(&self.last_stats) = Some((stats, backend, device_name(&state.upscaler)));
        }
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let scale = self.scale().map(|s| s as i32);
        let cuda_allowed = self.cuda_allowed();
        let to_src = direction == gst::PadDirection::Sink;
        let mut out = gst::Caps::new_empty();
        {
            let out = out.get_mut().expect("new caps are writable");
            for (s, features) in caps.iter_with_features() {
                if features.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY) && !cuda_allowed {
                    continue;
                }
                let mut s = s.to_owned();
                let mut ok = true;
                for field in ["width", "height"] {
                    let mapped = match (scale, s.value(field)) {
                        (Some(scale), Ok(v)) => map_dimension(v, scale, to_src),
                        _ => Some(gst::IntRange::new(1, i32::MAX).to_send_value()),
                    };
                    match mapped {
                        Some(v) => s.set_value(field, v),
                        None => ok = false,
                    }
                }
                if ok {
                    out.append_structure_full(s, Some(features.to_owned()));
                }
            }
        }
        gst::debug!(CAT, imp = self, "transformed {caps} ({direction:?}) into {out}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn fixate_caps(&self, direction: gst::PadDirection, caps: &gst::Caps, othercaps: gst::Caps) -> gst::Caps {
        let Some(scale) = self.scale() else {
            return self.parent_fixate_caps(direction, caps, othercaps);
        };
        let Some(s_in) = caps.structure(0) else {
            return othercaps;
        };
        let (Ok(w), Ok(h)) = (s_in.get::<i32>("width"), s_in.get::<i32>("height")) else {
            return self.parent_fixate_caps(direction, caps, othercaps);
        };
        let scale = scale as i32;
        let (tw, th) =
            if direction == gst::PadDirection::Sink { (w * scale, h * scale) } else { (w / scale, h / scale) };
        let mut othercaps = othercaps;
        othercaps.truncate();
        if let Some(s) = othercaps.make_mut().structure_mut(0) {
            s.fixate_field_nearest_int("width", tw);
            s.fixate_field_nearest_int("height", th);
            for field in ["framerate", "pixel-aspect-ratio"] {
                if let Ok(f) = s_in.get::<gst::Fraction>(field) {
                    s.fixate_field_nearest_fraction(field, f);
                }
            }
            for field in ["colorimetry", "chroma-site", "interlace-mode"] {
                if let Ok(v) = s_in.get::<&str>(field) {
                    s.fixate_field_str(field, v);
                }
            }
        }
        othercaps.fixate();
        othercaps
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info =
            VideoInfo::from_caps(incaps).map_err(|_| gst::loggable_error!(CAT, "invalid input caps {incaps}"))?;
        let out_info =
            VideoInfo::from_caps(outcaps).map_err(|_| gst::loggable_error!(CAT, "invalid output caps {outcaps}"))?;
        let is_cuda = |c: &gst::Caps| c.features(0).is_some_and(|f| f.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY));
        if is_cuda(incaps) != is_cuda(outcaps) {
            return Err(gst::loggable_error!(CAT, "input and output must use the same memory type"));
        }
        let memory = if is_cuda(incaps) { Memory::Cuda } else { Memory::System };
        let in_size = Size::new(in_info.width(), in_info.height());
        let result = (|| -> Result<Negotiated, String> {
            let scale = self.scale().ok_or("the model is not loaded")?;
            if (out_info.width(), out_info.height()) != (in_info.width() * scale, in_info.height() * scale) {
                return Err(format!(
                    "output {}x{} is not {scale} × input {}x{}",
                    out_info.width(),
                    out_info.height(),
                    in_info.width(),
                    in_info.height()
                ));
            }
            let negotiated = Negotiated {
                in_colour: colorimetry(&in_info)?,
                out_colour: colorimetry(&out_info)?,
                in_info: in_info.clone(),
                out_info: out_info.clone(),
                memory,
            };
            let mut state = lock(&self.state);
            let state = state.as_mut().ok_or("not started")?;
            let location = if memory == Memory::Cuda { TensorLocation::Device } else { TensorLocation::Host };
            state.upscaler.prepare(in_size, location).map_err(|e| e.to_string())?;
            state.negotiated = Some(negotiated.clone());
            Ok(negotiated)
        })();
        match result {
            Ok(n) => {
                gst::info!(CAT, imp = self, "negotiated {:?} memory, {} → {}", n.memory, incaps, outcaps);
                Ok(())
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Cannot upscale {}: {}", incaps, e));
                Err(gst::loggable_error!(CAT, "cannot upscale {incaps}: {e}"))
            }
        }
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        VideoInfo::from_caps(caps).ok().map(|info| info.size())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Context(q) = query.view_mut()
            && q.context_type() == CUDA_CONTEXT_TYPE
            && let Some(ctx) = lock(&self.cuda).clone()
            && ctx.answer_query(self.obj().upcast_ref(), query)
        {
            gst::debug!(CAT, imp = self, "answered a CUDA context query ({direction:?})");
            return true;
        }
        match query.view_mut() {
            // upstream wants its buffers back (before reconfiguring its pool): we hold those of the frames in flight
            gst::QueryViewMut::Drain(_) if direction == gst::PadDirection::Sink => {
                if let Err(e) = self.drain() {
                    gst::debug!(CAT, imp = self, "draining for a drain query: {e:?}");
                }
            }
            gst::QueryViewMut::Latency(_) if direction == gst::PadDirection::Src => {
                if !BaseTransformImplExt::parent_query(self, direction, query) {
                    return false;
                }
                let extra = self.in_flight_latency();
                if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                    let (live, min, max) = q.result();
                    q.set(live, min + extra, max.map(|m| m + extra));
                    gst::debug!(CAT, imp = self, "latency: {min} + {extra} for the frames in flight");
                }
                return true;
            }
            _ => {}
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        let (Some(caps), true) = query.get_owned() else { return Ok(()) };
        if query.allocation_pools().len() > 0
            || !caps.features(0).is_some_and(|f| f.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY))
        {
            return Ok(());
        }
        // upstream elements that allocate (cudaupload, converters) then write straight into our context
        let Some(ctx) = lock(&self.cuda).clone() else { return Ok(()) };
        let info = VideoInfo::from_caps(&caps).map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        let frames = UPSTREAM_POOL_FRAMES + self.async_depth();
        let pool = self.cuda_pool(&ctx, &caps, &info, frames, 0)?;
        let size = pool.config().params().map_or(info.size() as u32, |(_, size, _, _)| size);
        query.add_allocation_pool(Some(&pool), size, frames, 0);
        Ok(())
    }

    fn decide_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        let (caps, _) = query.get_owned();
        let caps = caps.ok_or_else(|| gst::loggable_error!(CAT, "allocation query without caps"))?;
        if !caps.features(0).is_some_and(|f| f.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY)) {
            return self.parent_decide_allocation(query);
        }
        let info = VideoInfo::from_caps(&caps).map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        let ctx = lock(&self.cuda).clone().ok_or_else(|| gst::loggable_error!(CAT, "no CUDA context"))?;
        let (min, max) = query.allocation_pools().next().map_or((0, 0), |(_, _, min, max)| (min, max));
        // what downstream keeps plus what is in flight here, allocated up front: device memory is fixed from the start
        let min = min + PREALLOCATED_FRAMES + self.async_depth();
        let max = if max == 0 { 0 } else { max.max(min) };
        // Always our own pool: output buffers must live in the context our kernels write in.
        let pool = self.cuda_pool(&ctx, &caps, &info, min, max)?;
        // the pool pads rows to the device pitch: read the real buffer size back
        let size = pool.config().params().map_or(info.size() as u32, |(_, size, _, _)| size);
        if query.allocation_pools().len() > 0 {
            query.set_nth_allocation_pool(0, Some(&pool), size, min, max);
        } else {
            query.add_allocation_pool(Some(&pool), size, min, max);
        }
        Ok(())
    }

    fn transform(&self, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // synchronous: system memory, or async-depth 0 (generate_output keeps CUDA frames in flight otherwise)
        let result = {
            let mut state = lock(&self.state);
            let state = state.as_mut().ok_or(gst::FlowError::Flushing)?;
            self.upscale_now(state, inbuf, outbuf)
        };
        self.after_frame(inbuf.pts(), result)?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let depth = lock(&self.state).as_ref().ok_or(gst::FlowError::Flushing)?.depth();
        if depth == 0 {
            return self.parent_generate_output();
        }
        let Some(inbuf) = self.take_queued_buffer() else { return Ok(GenerateOutputSuccess::NoOutput) };
        // the base class's allocation: a buffer of our pool with the input's timestamps, flags and metas
        let outbuf = match self.parent_prepare_output_buffer(InputBuffer::Readable(&inbuf))? {
            PrepareOutputBufferSuccess::Buffer(outbuf) => outbuf,
            PrepareOutputBufferSuccess::InputBuffer => {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("No output buffer for the frame"));
                return Err(gst::FlowError::Error);
            }
        };
        let pts = inbuf.pts();
        let too_many = {
            let mut state = lock(&self.state);
            let state = state.as_mut().ok_or(gst::FlowError::Flushing)?;
            self.queue_frame(state, inbuf, outbuf).map(|()| state.upscaler.frames_in_flight() > depth)
        };
        match too_many.map_err(|e| self.frame_error(pts, &e))? {
            true => self.finish_oldest().map(GenerateOutputSuccess::Buffer),
            false => Ok(GenerateOutputSuccess::NoOutput),
        }
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => self.discard_in_flight(),
            // frames in flight come before any serialized event (EOS, caps, segment, gap …) downstream
            _ if event.is_serialized() => {
                if let Err(e) = self.drain() {
                    gst::debug!(CAT, imp = self, "draining before {:?}: {e:?}", event.type_());
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }
}
