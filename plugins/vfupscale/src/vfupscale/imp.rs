// SPDX-License-Identifier: MPL-2.0

//! The `vfupscale` element: properties, CUDA context sharing, caps, allocation and the per-buffer transform.
//! The work itself is `vfupscale::Upscaler`'s, driven by [`Streaming`].
//!
//! Three locks, none of them held across a GPU wait by anything but the streaming thread:
//! - `props`: the property values, taken briefly;
//! - `snapshot`: what properties, queries and caps negotiation read, updated by the streaming thread after each
//!   frame (and by start/stop), taken briefly;
//! - `streaming`: the upscaler and its frames, taken only by the streaming thread and by start/stop (which run
//!   while the streaming thread does not), held while a frame runs.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::{GenerateOutputSuccess, InputBuffer, PrepareOutputBufferSuccess};
use gst_base::subclass::prelude::*;
use gst_video::VideoInfo;
use vfupscale::Upscaler;
use vfupscale::cuda::GpuDevice;

use super::BackendProperty;
use super::caps::{self, Memory};
use super::colorimetry::{FORMATS, video_format};
use super::error::{FrameError, core_error};
use super::frames::Streaming;
use super::settings::{self, Settings};
use super::snapshot::Snapshot;
use crate::gstcuda::ffi::{CAPS_FEATURE_MEMORY_CUDA_MEMORY, CUDA_CONTEXT_TYPE};
use crate::gstcuda::{CudaContext, context_handle_of};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("vfupscale", gst::DebugColorFlags::empty(), Some("Video super-resolution"))
});

/// Where the element is documented.
const DOC_URI: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/README.md#the-element");
/// Frames our CUDA pools allocate when they start, beyond what downstream asks to keep and the frames kept in flight
/// (`async-depth`): one being written, one waiting to enter a full downstream queue, one in it, one being consumed.
/// Allocating them up front keeps device memory flat over a long run (the pool still grows, once, where a pipeline
/// keeps more frames in flight).
const PREALLOCATED_FRAMES: u32 = 4;
/// Frames the pool we offer upstream (cudaupload, converters) allocates when it starts, besides the inputs of frames
/// in flight: what a default queue in front of us holds of 1080p NV12 (10 MB: four), one being written upstream,
/// one we read. The pool is not bounded (a bounded pool can deadlock tee-and-mux pipelines); it grows, once, only
/// where more frames are in flight.
const UPSTREAM_POOL_FRAMES: u32 = 6;
/// Frames between statistics lines in the debug log (category vfupscale, level INFO).
const STATS_LOG_INTERVAL: u64 = 300;

/// The property values, and whether a running upscaler was built from them (from start to stop), in which case
/// the properties that are read at start refuse changes.
#[derive(Debug, Default)]
struct Properties {
    settings: Settings,
    in_use: bool,
}

#[derive(Default)]
pub struct VfUpscale {
    props: Mutex<Properties>,
    snapshot: Mutex<Snapshot>,
    streaming: Mutex<Option<Streaming>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// CUDA driver with a device present (checked once per process).
fn cuda_driver_present() -> bool {
    static PRESENT: LazyLock<bool> = LazyLock::new(|| vfupscale::cuda::driver_status().is_ok());
    *PRESENT
}

impl VfUpscale {
    fn settings(&self) -> Settings {
        lock(&self.props).settings.clone()
    }

    /// Whether CUDA-memory caps can be offered now: after start, when the upscaler runs on the GPU; before, when
    /// the backend allows the GPU and a context or at least a driver is there.
    fn cuda_allowed(&self) -> bool {
        if lock(&self.props).settings.backend == BackendProperty::Cpu {
            return false;
        }
        let (running, have_context) = {
            let snapshot = lock(&self.snapshot);
            (snapshot.running.as_ref().map(|r| r.cuda_frames), snapshot.cuda.is_some())
        };
        running.unwrap_or_else(|| have_context || cuda_driver_present())
    }

    /// Creates (or reuses) the `GstCudaContext` wrapping the primary context of the configured device and announces
    /// it, so that upstream decoders, which reach READY after us, decode into it.
    fn ensure_cuda_context(&self, settings: &Settings) {
        if settings.backend == BackendProperty::Cpu || !cuda_driver_present() {
            return;
        }
        let device_id = settings.device_id;
        if lock(&self.snapshot).cuda.as_ref().is_some_and(|c| c.device_id() == device_id) {
            return;
        }
        let device = match GpuDevice::get(device_id) {
            Ok(device) => device,
            // start() reports the error if a GPU backend was required; with auto the CPU path remains
            Err(e) => return gst::warning!(CAT, imp = self, "CUDA device {device_id} not usable: {e}"),
        };
        let context = match CudaContext::wrap_primary(&device) {
            Ok(context) => context,
            Err(e) => return gst::warning!(CAT, imp = self, "cannot share CUDA device {device_id}'s context: {e}"),
        };
        gst::info!(CAT, imp = self, "sharing the primary context of CUDA device {device_id}");
        let gst_context = context.to_gst_context();
        lock(&self.snapshot).cuda = Some(context);
        if let Some(c) = gst_context {
            let obj = self.obj();
            obj.set_context(&c);
            let _ = obj.post_message(gst::message::HaveContext::builder(c).src(&*obj).build());
        }
    }

    fn cuda_context(&self) -> Option<CudaContext> {
        lock(&self.snapshot).cuda.clone()
    }

    /// CUDA frames kept in flight: as started, or as set.
    fn async_depth(&self) -> u32 {
        let running = lock(&self.snapshot).running.as_ref().map(|r| r.async_depth);
        running.unwrap_or_else(|| lock(&self.props).settings.async_depth)
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

    fn start_upscaler(&self, settings: &Settings) -> Result<(), gst::ErrorMessage> {
        let config = settings.upscaler_config();
        if config.model.is_none() {
            gst::info!(CAT, imp = self, "model not set: using the default model {}", vfupscale::models::DEFAULT_MODEL);
        }
        // the device may have changed in READY
        self.ensure_cuda_context(settings);
        let upscaler = Upscaler::new(config).map_err(|e| core_error(&e, None))?;
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
        if let Some(agreement) = upscaler.native_agreement() {
            gst::info!(
                CAT,
                imp = self,
                "native kernels agree with ONNX Runtime to {:.1} dB PSNR on the probe image",
                agreement.psnr_db
            );
        }
        lock(&self.snapshot).start(&upscaler, settings.async_depth);
        *lock(&self.streaming) = Some(Streaming::new(upscaler, settings.async_depth as usize));
        self.obj().notify("scale");
        Ok(())
    }

    /// After a frame was upscaled (or failed): publishes the counters, logs what happened, posts the statistics
    /// when due, and turns an error into an element error naming the frame.
    fn frame_done<T>(
        &self,
        streaming: &mut Streaming,
        pts: Option<gst::ClockTime>,
        result: Result<T, FrameError>,
    ) -> Result<T, gst::FlowError> {
        for note in streaming.take_notes() {
            gst::warning!(CAT, imp = self, "frame at {}: {note}", pts.display());
        }
        let interval = lock(&self.props).settings.stats_interval;
        let due = |every: u64, frames: u64| every > 0 && frames > 0 && frames.is_multiple_of(every);
        let (frames, structure) = {
            let mut snapshot = lock(&self.snapshot);
            snapshot.update(streaming.upscaler());
            let frames = snapshot.stats.frames;
            let wanted = due(STATS_LOG_INTERVAL, frames) || due(interval, frames);
            (frames, wanted.then(|| snapshot.structure()))
        };
        if let Some(structure) = structure {
            if due(STATS_LOG_INTERVAL, frames) {
                gst::info!(CAT, imp = self, "{structure}");
            }
            if due(interval, frames) {
                let _ = self.obj().post_message(gst::message::Element::builder(structure).src(&*self.obj()).build());
            }
        }
        result.map_err(|e| self.frame_failed(pts, &e))
    }

    /// Posts the element error for a frame that could not be upscaled.
    fn frame_failed(&self, pts: Option<gst::ClockTime>, error: &FrameError) -> gst::FlowError {
        self.post_error_message(error.message(pts));
        error.flow()
    }

    /// Waits for the oldest frame in flight and returns its output buffer.
    fn finish_oldest(&self, streaming: &mut Streaming) -> Result<gst::Buffer, gst::FlowError> {
        let (pts, result) = streaming.finish_oldest().ok_or(gst::FlowError::Error)?;
        self.frame_done(streaming, pts, result)
    }

    /// Finishes and pushes every frame in flight, oldest first (before EOS, new caps or a segment, or when
    /// upstream asks for its buffers back).
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        loop {
            let output = {
                let mut streaming = lock(&self.streaming);
                match streaming.as_mut() {
                    Some(s) if s.has_frames_in_flight() => self.finish_oldest(s)?,
                    _ => return Ok(gst::FlowSuccess::Ok),
                }
            };
            self.obj().src_pad().push(output)?;
        }
    }

    /// Drops the frames in flight after a flush, once the GPU is done with them.
    fn discard_in_flight(&self) {
        if let Some(streaming) = lock(&self.streaming).as_mut()
            && let Err(e) = streaming.discard()
        {
            gst::debug!(CAT, imp = self, "discarding the frames in flight: {e}");
        }
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
        settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut props = lock(&self.props);
        if props.in_use && !settings::mutable_while_running(pspec) {
            let kept = props.settings.get(pspec.name()).and_then(|v| v.serialize().ok());
            drop(props);
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "Property {} can only be changed in the NULL or READY state; it stays {}",
                    pspec.name(),
                    kept.as_deref().unwrap_or("as it was")
                )
            );
            return;
        }
        props.settings.set(pspec.name(), value);
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "scale" => lock(&self.snapshot).scale.unwrap_or(0).to_value(),
            "stats" => lock(&self.snapshot).structure().to_value(),
            name => lock(&self.props).settings.get(name).unwrap_or_else(|| unreachable!("no property {name}")),
        }
    }
}

impl GstObjectImpl for VfUpscale {}

impl ElementImpl for VfUpscale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::with_additional(
                "Video super-resolution",
                "Filter/Converter/Video/Scaler",
                "Upscales video (NV12, P010, packed RGB with alpha) with an ONNX super-resolution model: on NVIDIA \
                 GPUs in CUDA memory without host copies, elsewhere in system memory on the CPU",
                "vfupscale developers",
                &[(gst::ELEMENT_METADATA_DOC_URI.as_str(), DOC_URI)],
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let formats = FORMATS.map(video_format);
            let raw = gst_video::VideoCapsBuilder::new().format_list(formats).build();
            let cuda = gst_video::VideoCapsBuilder::new()
                .features([CAPS_FEATURE_MEMORY_CUDA_MEMORY])
                .format_list(formats)
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
            let device_id = lock(&self.props).settings.device_id;
            let ours = self.cuda_context().map(|c| c.handle());
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
            self.ensure_cuda_context(&self.settings());
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            lock(&self.snapshot).cuda = None;
        }
        Ok(result)
    }
}

impl BaseTransformImpl for VfUpscale {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = {
            let mut props = lock(&self.props);
            props.in_use = true;
            props.settings.clone()
        };
        let result = self.start_upscaler(&settings);
        if result.is_err() {
            lock(&self.props).in_use = false;
        }
        result
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let streaming = lock(&self.streaming).take();
        if let Some(mut streaming) = streaming {
            if let Err(e) = streaming.discard() {
                gst::debug!(CAT, imp = self, "discarding the frames in flight: {e}");
            }
            let mut snapshot = lock(&self.snapshot);
            snapshot.update(streaming.upscaler());
            snapshot.stop();
        }
        lock(&self.props).in_use = false;
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let scale = lock(&self.snapshot).scale;
        let out = caps::transform(caps, direction, scale, self.cuda_allowed());
        gst::debug!(CAT, imp = self, "transformed {caps} ({direction:?}) into {out}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn fixate_caps(&self, direction: gst::PadDirection, caps: &gst::Caps, othercaps: gst::Caps) -> gst::Caps {
        let scale = lock(&self.snapshot).scale;
        match caps::fixate(direction, caps, &othercaps, scale) {
            Some(fixed) => fixed,
            None => self.parent_fixate_caps(direction, caps, othercaps),
        }
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info =
            VideoInfo::from_caps(incaps).map_err(|_| gst::loggable_error!(CAT, "invalid input caps {incaps}"))?;
        let out_info =
            VideoInfo::from_caps(outcaps).map_err(|_| gst::loggable_error!(CAT, "invalid output caps {outcaps}"))?;
        let memory = Memory::of(incaps);
        let result = {
            let mut streaming = lock(&self.streaming);
            let streaming = streaming.as_mut().ok_or_else(|| gst::loggable_error!(CAT, "set_caps before start"))?;
            let result = if Memory::of(outcaps) != memory {
                Err(vfupscale::Error::Negotiation("input and output must use the same memory type".into()))
            } else {
                streaming.negotiate(&in_info, &out_info, memory)
            };
            let mut snapshot = lock(&self.snapshot);
            snapshot.update(streaming.upscaler());
            snapshot.negotiated(result.is_ok().then(|| (memory, in_info.fps())));
            result
        };
        match result {
            Ok(()) => {
                gst::info!(CAT, imp = self, "negotiated {memory:?} memory, {incaps} → {outcaps}");
                Ok(())
            }
            Err(e) => {
                self.post_error_message(core_error(&e, Some(&format!("Cannot upscale {incaps}"))));
                Err(gst::loggable_error!(CAT, "cannot upscale {incaps}: {e}"))
            }
        }
    }

    fn transform_size(
        &self,
        _direction: gst::PadDirection,
        _caps: &gst::Caps,
        _size: usize,
        othercaps: &gst::Caps,
    ) -> Option<usize> {
        // one frame of the other pad's (negotiated) caps, whatever this buffer holds: an input buffer that is not one
        // frame is refused when it is transformed
        VideoInfo::from_caps(othercaps).ok().map(|info| info.size())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Context(q) = query.view_mut()
            && q.context_type() == CUDA_CONTEXT_TYPE
            && let Some(ctx) = self.cuda_context()
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
                let extra = lock(&self.snapshot).latency();
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
        if query.allocation_pools().len() > 0 || Memory::of(&caps) != Memory::Cuda {
            return Ok(());
        }
        // upstream elements that allocate (cudaupload, converters) then write straight into our context
        let Some(ctx) = self.cuda_context() else { return Ok(()) };
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
        if Memory::of(&caps) != Memory::Cuda {
            return self.parent_decide_allocation(query);
        }
        let info = VideoInfo::from_caps(&caps).map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        let ctx = self.cuda_context().ok_or_else(|| gst::loggable_error!(CAT, "no CUDA context"))?;
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
        let mut streaming = lock(&self.streaming);
        let streaming = streaming.as_mut().ok_or(gst::FlowError::Flushing)?;
        let result = streaming.upscale(inbuf, outbuf);
        self.frame_done(streaming, inbuf.pts(), result)?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let depth = lock(&self.streaming).as_ref().ok_or(gst::FlowError::Flushing)?.depth();
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
        let mut streaming = lock(&self.streaming);
        let streaming = streaming.as_mut().ok_or(gst::FlowError::Flushing)?;
        match streaming.queue(inbuf, outbuf) {
            Ok(true) => self.finish_oldest(streaming).map(GenerateOutputSuccess::Buffer),
            Ok(false) => Ok(GenerateOutputSuccess::NoOutput),
            Err(e) => Err(self.frame_failed(pts, &e)),
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
