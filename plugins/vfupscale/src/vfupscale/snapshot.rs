// SPDX-License-Identifier: MPL-2.0

//! What threads other than the streaming thread read: the `stats` and `scale` properties, latency and context
//! queries, caps negotiation. A small copy of the streaming state, updated by the streaming thread after each frame,
//! so that none of them waits for a frame on the GPU.

use gst::prelude::*;
use vfupscale::Upscaler;
use vfupscale::stats::Stats;
use vfupscale::upscaler::DeviceMemory;

use super::caps::Memory;
use super::stats_fields as field;
use crate::gstcuda::CudaContext;

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
pub fn device_name(upscaler: &Upscaler) -> String {
    upscaler.gpu_device().map_or_else(|| "cpu".into(), |d| format!("{} (device {})", d.name(), d.ordinal()))
}

impl Snapshot {
    /// A new run of `upscaler` keeping `async_depth` CUDA frames in flight.
    pub fn start(&mut self, upscaler: &Upscaler, async_depth: u32) {
        self.scale = Some(upscaler.scale());
        self.backend = upscaler.backend().name();
        self.device = device_name(upscaler);
        self.running =
            Some(Running { cuda_frames: upscaler.supports_device_memory(), async_depth, ..Default::default() });
        self.update(upscaler);
    }

    /// Copies the upscaler's counters and memory (after a frame, or after preparing for a new size).
    pub fn update(&mut self, upscaler: &Upscaler) {
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

    /// The `stats` structure.
    pub fn structure(&self) -> gst::Structure {
        let s = &self.stats;
        let memory = self.running.as_ref().map(|r| r.device_memory).unwrap_or_default();
        gst::Structure::builder(field::STRUCTURE)
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
            .field(field::INFERENCE_ARENA_BYTES, memory.arena.reserved)
            .field(field::INFERENCE_ARENA_PEAK_BYTES, memory.arena.peak_in_use)
            .build()
    }
}

#[cfg(test)]
mod tests {
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
}
