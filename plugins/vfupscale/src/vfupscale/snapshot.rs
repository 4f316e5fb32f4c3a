// SPDX-License-Identifier: MPL-2.0

//! What threads other than the streaming thread read: the `stats` and `scale` properties, latency and context
//! queries, caps negotiation. A small copy of the streaming state, updated by the streaming thread after each frame,
//! so that none of them waits for a frame on the GPU.

use gst::prelude::*;
use vfupscale::stats::{Stats, field};
use vfupscale::{DeviceMemory, FrameBuffers, Upscaler};

use super::caps::Memory;
use crate::gstcuda::CudaContext;

/// Name of the `stats` structure (and of the element messages posted every `stats-interval` frames).
pub const STATS_STRUCTURE: &str = "vfupscale-stats";

/// What the element shows and answers without touching the streaming state.
#[derive(Debug)]
pub struct Snapshot {
    /// Our `GstCudaContext` (the device's primary context), from NULL→READY to READY→NULL.
    pub cuda: Option<CudaContext>,
    /// The model's scale, from the first start on.
    pub scale: Option<u32>,
    /// Counters of the current run, kept after stop.
    pub stats: Stats,
    /// Backend and device of the current (or last) run.
    pub backend: &'static str,
    pub device: String,
    /// From start to stop.
    pub running: Option<Running>,
}

/// The part of the snapshot that exists from start to stop.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// Whether the upscaler takes frames in CUDA memory (a GPU backend).
    pub cuda_frames: bool,
    /// CUDA frames kept in flight (`async-depth` at start).
    pub async_depth: u32,
    /// Negotiated memory and frame duration, once caps are set.
    pub memory: Option<Memory>,
    pub frame_duration: Option<gst::ClockTime>,
    /// Device memory the upscaler holds.
    pub device_memory: DeviceMemory,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self { cuda: None, scale: None, stats: Stats::default(), backend: "none", device: "none".into(), running: None }
    }
}

/// What the model runs on, for `stats` and logs: the GPU's name or "cpu".
pub fn device_name<F: FrameBuffers>(upscaler: &Upscaler<F>) -> String {
    upscaler.gpu_device().map_or_else(|| "cpu".into(), |d| format!("{} (device {})", d.name(), d.ordinal()))
}

impl Snapshot {
    /// A new run of `upscaler` keeping `async_depth` CUDA frames in flight.
    pub fn start<F: FrameBuffers>(&mut self, upscaler: &Upscaler<F>, async_depth: u32) {
        self.scale = Some(upscaler.scale());
        self.backend = upscaler.backend().name();
        self.device = device_name(upscaler);
        self.running =
            Some(Running { cuda_frames: upscaler.supports_device_memory(), async_depth, ..Default::default() });
        self.update(upscaler);
    }

    /// Copies the upscaler's counters and memory (after a frame, or after preparing for a new size).
    pub fn update<F: FrameBuffers>(&mut self, upscaler: &Upscaler<F>) {
        self.stats = upscaler.stats().clone();
        if let Some(running) = &mut self.running {
            running.device_memory = upscaler.device_memory().unwrap_or_default();
        }
    }

    /// Caps were set: `memory` at `fps` (`None`: negotiation failed).
    pub fn negotiated(&mut self, negotiated: Option<(Memory, gst::Fraction)>) {
        if let Some(running) = &mut self.running {
            running.memory = negotiated.map(|(m, _)| m);
            running.frame_duration = negotiated.and_then(|(_, fps)| {
                let (n, d) = (fps.numer(), fps.denom());
                (n > 0 && d > 0).then(|| gst::ClockTime::SECOND.mul_div_floor(d as u64, n as u64)).flatten()
            });
        }
    }

    /// The run ended: its counters stay, the memory it held is released.
    pub fn stop(&mut self) {
        self.running = None;
    }

    /// Frames kept in flight with the negotiated memory: system-memory frames are finished at once.
    pub fn frames_in_flight(&self) -> u32 {
        match &self.running {
            Some(r) if r.memory == Some(Memory::Cuda) => r.async_depth,
            _ => 0,
        }
    }

    /// Latency the frames in flight add: each is pushed when the next one arrives.
    pub fn latency(&self) -> gst::ClockTime {
        let frame = self.running.as_ref().and_then(|r| r.frame_duration).unwrap_or(gst::ClockTime::ZERO);
        frame * self.frames_in_flight() as u64
    }

    /// The `stats` structure. `inference-arena-peak-bytes` is there only when the engine keeps that figure (ONNX
    /// Runtime's arena on the GPU): none is made up for the native kernels, the CPU or a stopped element.
    pub fn structure(&self) -> gst::Structure {
        let s = &self.stats;
        let memory = self.running.as_ref().map(|r| r.device_memory).unwrap_or_default();
        let mut builder = gst::Structure::builder(STATS_STRUCTURE)
            .field(field::FRAMES, s.frames)
            .field(field::BACKEND, self.backend)
            .field(field::DEVICE, &self.device)
            .field(field::CONVERT_IN_MEAN_MS, s.convert_in.mean_ms())
            .field(field::CONVERT_IN_MAX_MS, s.convert_in.max_ms)
            .field(field::INFERENCE_MEAN_MS, s.inference.mean_ms())
            .field(field::INFERENCE_MAX_MS, s.inference.max_ms)
            .field(field::CONVERT_OUT_MEAN_MS, s.convert_out.mean_ms())
            .field(field::CONVERT_OUT_MAX_MS, s.convert_out.max_ms)
            .field(field::ZERO_COPY_INPUTS, s.zero_copy_inputs)
            .field(field::FOREIGN_CONTEXT_COPIES, s.foreign_context_copies)
            .field(field::HOST_UPLOADS, s.host_uploads)
            .field(field::TENSOR_BYTES, s.tensor_bytes)
            .field(field::TILES_PER_FRAME, s.tiles_per_frame)
            .field(field::TILE_SIZE, s.tile_size)
            .field(field::OOM_RETRIES, s.oom_retries)
            .field(field::DEVICE_MEMORY_BYTES, memory.held())
            .field(field::INFERENCE_ARENA_BYTES, memory.engine.held);
        if let Some(peak) = memory.engine.peak {
            builder = builder.field(field::INFERENCE_ARENA_PEAK_BYTES, peak);
        }
        builder
            .field(field::FALLBACK_FRAMES, s.fallback_frames)
            .field(field::FALLBACK_STREAMS, s.fallback_streams)
            .field(field::CLASSIC_METHOD, s.classic_method)
            .field(field::STRENGTH, s.strength)
            .field(field::TEMPORAL_STABILITY, s.temporal_stability)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use vfupscale::EngineMemory;

    use super::*;

    #[test]
    fn frames_in_flight_add_latency_only_on_cuda_memory() {
        let mut s = Snapshot::default();
        assert_eq!(s.latency(), gst::ClockTime::ZERO, "not started");
        s.running = Some(Running { async_depth: 2, ..Default::default() });
        s.negotiated(Some((Memory::Cuda, gst::Fraction::new(30, 1))));
        assert_eq!(s.frames_in_flight(), 2);
        assert_eq!(s.latency(), gst::ClockTime::SECOND.mul_div_floor(2, 30).unwrap());
        s.negotiated(Some((Memory::System, gst::Fraction::new(30, 1))));
        assert_eq!((s.frames_in_flight(), s.latency()), (0, gst::ClockTime::ZERO), "system memory: finished at once");
        // variable framerate: frames in flight, but no duration to add
        s.negotiated(Some((Memory::Cuda, gst::Fraction::new(0, 1))));
        assert_eq!((s.frames_in_flight(), s.latency()), (2, gst::ClockTime::ZERO));
        s.negotiated(None);
        assert_eq!(s.frames_in_flight(), 0);
    }

    #[test]
    fn the_structure_keeps_the_last_runs_counters_and_drops_its_memory() {
        gst::init().unwrap();
        let mut s = Snapshot { backend: "cpu", device: "cpu".into(), ..Default::default() };
        s.stats.frames = 7;
        s.stats.inference.record(4.0);
        s.running =
            Some(Running { device_memory: DeviceMemory { own: 1000, ..Default::default() }, ..Default::default() });
        let running = s.structure();
        assert_eq!(running.name(), "vfupscale-stats");
        assert_eq!(running.get::<u64>("frames").unwrap(), 7);
        assert_eq!(running.get::<f64>("inference-mean-ms").unwrap(), 4.0);
        assert_eq!(running.get::<&str>("backend").unwrap(), "cpu");
        assert_eq!(running.get::<u64>("device-memory-bytes").unwrap(), 1000);
        s.stop();
        let stopped = s.structure();
        assert_eq!(stopped.get::<u64>("frames").unwrap(), 7);
        assert_eq!(stopped.get::<u64>("device-memory-bytes").unwrap(), 0);
        assert_eq!(stopped.n_fields(), running.n_fields());
    }

    #[test]
    fn the_arena_peak_is_reported_only_where_the_engine_keeps_it() {
        gst::init().unwrap();
        let mut s = Snapshot::default();
        let native = EngineMemory { held: 5000, peak: None, limit: None };
        s.running = Some(Running { device_memory: DeviceMemory { engine: native, own: 1000 }, ..Default::default() });
        let without = s.structure();
        assert_eq!(without.get::<u64>(field::INFERENCE_ARENA_BYTES).unwrap(), 5000);
        assert_eq!(without.get::<u64>(field::DEVICE_MEMORY_BYTES).unwrap(), 6000);
        assert!(!without.has_field(field::INFERENCE_ARENA_PEAK_BYTES), "no peak is made up: {without}");
        let fields: Vec<&str> = without.fields().map(|f| f.as_str()).collect();
        let expected: Vec<&str> =
            field::ALL.iter().copied().filter(|&f| f != field::INFERENCE_ARENA_PEAK_BYTES).collect();
        assert_eq!(fields, expected, "every other field, in the core's order");

        let arena = EngineMemory { held: 5000, peak: Some(4096), limit: Some(8192) };
        s.running = Some(Running { device_memory: DeviceMemory { engine: arena, own: 0 }, ..Default::default() });
        let with = s.structure();
        assert_eq!(with.get::<u64>(field::INFERENCE_ARENA_PEAK_BYTES).unwrap(), 4096);
        assert_eq!(with.fields().map(|f| f.as_str()).collect::<Vec<_>>(), field::ALL);
    }
}
