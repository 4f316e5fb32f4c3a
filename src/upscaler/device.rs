// SPDX-License-Identifier: MPL-2.0
//! The device path: one frame's work queued on our stream (input read in place, or copied/uploaded into a
//! staging frame first; conversion into the engine's input tensor; the model; blending or conversion of its
//! output), the frames in flight with their keep-alive values, and waiting for them.

use std::collections::VecDeque;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::frames::InputFrame;
use super::timing::{FrameEvents, FrameTimer};
use crate::color::{Colorimetry, code_to_rgb, rgb_to_code};
use crate::cuda::{
    DeviceFrame, DeviceFrameMut, FrameBuffer, GpuDevice, PlanarTensor, PlanarTensorMut, copy_between_contexts, upload,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::{PixelFormat, Rect, Size};
use crate::planning::RunPlan;
use crate::stats::Stats;

/// How a queued frame's input was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InputRoute {
    /// In place, from memory of our context.
    ZeroCopy,
    /// Copied from another CUDA context.
    ForeignContext,
    /// Uploaded from host memory.
    HostUpload,
}

impl InputRoute {
    pub fn count(self, stats: &mut Stats) {
        match self {
            InputRoute::ZeroCopy => stats.zero_copy_inputs += 1,
            InputRoute::ForeignContext => stats.foreign_context_copies += 1,
            InputRoute::HostUpload => stats.host_uploads += 1,
        }
    }
}

/// A frame queued on the stream and not yet finished, with the value that keeps its memory alive.
pub(super) struct InFlight<F> {
    pub events: FrameEvents,
    pub frame: F,
}

/// The CUDA side of an upscaler.
pub(super) struct DevicePath<F> {
    // Field order is drop order, after `Upscaler::drop` has waited for the stream: frames, then our buffers.
    pub in_flight: VecDeque<InFlight<F>>,
    /// The frame copies and uploads go to (one: the next frame's copy is ordered after this one's reads).
    staging: Option<FrameBuffer>,
    /// The float32 frame tiles are blended into, when tiled.
    accumulator: Option<CudaSlice<f32>>,
    timer: FrameTimer,
    pub stream: Arc<CudaStream>,
    pub device: Arc<GpuDevice>,
}

impl<F> DevicePath<F> {
    pub fn new(device: Arc<GpuDevice>, stream: Arc<CudaStream>, frames_in_flight: usize) -> Result<Self> {
        let timer = FrameTimer::new(stream.clone(), frames_in_flight)?;
        Ok(Self { in_flight: VecDeque::new(), staging: None, accumulator: None, timer, stream, device })
    }

    /// Waits for everything queued on our stream.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))
    }

    /// Waits for the frames in flight, before buffers they use are freed or replaced.
    pub fn wait_for_frames_in_flight(&self) -> Result<()> {
        if self.in_flight.is_empty() { Ok(()) } else { self.synchronize() }
    }

    /// Drops `frame` once the GPU is surely done with it: after the stream has drained, or never (leaked) when the
    /// stream cannot be waited for, since its memory may still be in use.
    pub fn release(&self, frame: F) {
        if self.synchronize().is_err() {
            std::mem::forget(frame);
        }
    }

    /// Device memory of our own buffers.
    pub fn own_bytes(&self) -> u64 {
        let acc = self.accumulator.as_ref().map_or(0, |a| a.len() * size_of::<f32>());
        (acc + self.staging.as_ref().map_or(0, FrameBuffer::bytes)) as u64
    }

    /// Allocates the accumulation frame for output frames of `out` (or frees it for whole frames); the frames in
    /// flight must be finished.
    pub fn set_accumulator(&mut self, out: Option<Size>) -> Result<()> {
        self.accumulator = None;
        if let Some(out) = out {
            self.accumulator = Some(crate::cuda::memory::alloc_planar::<f32>(&self.stream, out)?);
        }
        Ok(())
    }

    /// The staging frame, of `format` and `size`. Frames in flight that read the old one are waited for before it
    /// is replaced.
    fn staging(&mut self, format: PixelFormat, size: Size) -> Result<&mut FrameBuffer> {
        if self.staging.as_ref().is_none_or(|s| (s.format(), s.size()) != (format, size)) {
            self.wait_for_frames_in_flight()?;
            self.staging = None;
            self.staging = Some(FrameBuffer::new(&self.stream, format, size)?);
        }
        self.staging.as_mut().ok_or_else(|| Error::Usage("no staging frame".into()))
    }

    /// Brings `input` into our context where it is not: copies it (another context) or uploads it (host memory)
    /// into the staging frame, queued on the stream. Says how the input is read.
    ///
    /// # Safety
    /// `input`'s memory must stay valid and unchanged until the copy has completed on the stream.
    unsafe fn stage(&mut self, input: &InputFrame<'_>) -> Result<InputRoute> {
        let stream = self.stream.clone();
        let ours = self.device.cu_context();
        match input {
            InputFrame::Device(frame) if frame.context() == ours => Ok(InputRoute::ZeroCopy),
            InputFrame::Device(frame) => {
                let mut staging = self.staging(frame.format(), frame.size())?.view_mut(&stream)?;
                // SAFETY: `frame` per this function's contract; the staging frame is ours, read only by frames queued
                // on this stream, in order.
                unsafe { copy_between_contexts(&stream, frame, &mut staging)? };
                Ok(InputRoute::ForeignContext)
            }
            InputFrame::Host(frame) => {
                let mut staging = self.staging(frame.format, frame.size)?.view_mut(&stream)?;
                // SAFETY: as above, for host memory.
                unsafe { upload(&stream, frame, &mut staging)? };
                Ok(InputRoute::HostUpload)
            }
        }
    }

    /// Queues one frame: reads `input` (copying or uploading it into our context first when needed), runs the
    /// plan's chunks of tiles through `engine` and writes `output`. Returns the frame's events and how its input
    /// was read; nothing is waited for, unless it fails: then the work it queued is waited for, so that buffers
    /// can be replaced (a retry with smaller tiles) or the frames released.
    ///
    /// # Safety
    /// The memory of `input` and `output` must stay valid (the input unchanged, the output touched by nothing
    /// else) until the frame's work has completed on the stream.
    pub unsafe fn queue(
        &mut self,
        engine: &mut Engine,
        plan: &RunPlan,
        input: &InputFrame<'_>,
        output: &mut DeviceFrameMut<'_>,
        colours: (Colorimetry, Colorimetry),
    ) -> Result<(FrameEvents, InputRoute)> {
        let size = plan.tiles.frame;
        if input.size() != size || output.size() != size.scaled(plan.tiles.scale) {
            return Err(Error::Negotiation(format!(
                "frame {} → {} does not match the prepared {size} at scale {}",
                input.size(),
                output.size(),
                plan.tiles.scale
            )));
        }
        if output.context() != self.device.cu_context() {
            return Err(Error::Usage("the output frame must be memory of the upscaler's CUDA context".into()));
        }
        self.device.bind_to_thread()?;
        let stream = self.stream.clone();
        let mut queue_once = || -> Result<(FrameEvents, InputRoute)> {
            // SAFETY: this function's contract.
            let route = unsafe { self.stage(input)? };
            let staged;
            let source: &DeviceFrame<'_> = match (input, route) {
                (InputFrame::Device(frame), InputRoute::ZeroCopy) => frame,
                _ => {
                    let staging = self.staging.as_ref().ok_or_else(|| Error::Usage("no staging frame".into()))?;
                    staged = staging.view(&stream)?;
                    &staged
                }
            };
            let slot = self.timer.next_slot();
            let accumulator = self.accumulator.as_mut();
            let frame = FrameWork { plan, source, accumulator, output, colours };
            let events = queue_tiles(&self.device, &stream, &mut self.timer, slot, engine, frame)?;
            self.timer.advance();
            Ok((events, route))
        };
        let queued = queue_once();
        if queued.is_err() {
            let _ = self.synchronize();
        }
        queued
    }

    /// Waits for the oldest frame in flight and returns it with its stage durations; on failure the frame is
    /// released (see [`DevicePath::release`]).
    pub fn finish_oldest(&mut self) -> Result<(F, crate::stats::FrameTimes)> {
        let flight = self.in_flight.pop_front().ok_or_else(|| Error::Usage("no frame in flight to finish".into()))?;
        match self.timer.finish(flight.events) {
            Ok(times) => Ok((flight.frame, times)),
            Err(e) => {
                self.release(flight.frame);
                Err(e)
            }
        }
    }

    /// Waits for a frame queued by [`DevicePath::queue`] without a keep-alive value.
    pub fn finish_events(&self, events: FrameEvents) -> Result<crate::stats::FrameTimes> {
        self.timer.finish(events)
    }
}

/// What one frame's work reads and writes.
struct FrameWork<'f, 's, 'o> {
    plan: &'f RunPlan,
    source: &'f DeviceFrame<'s>,
    accumulator: Option<&'f mut CudaSlice<f32>>,
    output: &'f mut DeviceFrameMut<'o>,
    colours: (Colorimetry, Colorimetry),
}

/// Queues the conversion, inference and output of every chunk of tiles of one frame.
fn queue_tiles(
    device: &GpuDevice,
    stream: &Arc<CudaStream>,
    timer: &mut FrameTimer,
    slot: usize,
    engine: &mut Engine,
    frame: FrameWork<'_, '_, '_>,
) -> Result<FrameEvents> {
    let FrameWork { plan, source, accumulator, output, colours: (src_colour, dst_colour) } = frame;
    let kernels = device.kernels();
    let to_rgb = code_to_rgb(src_colour, source.format().depth());
    let to_code = rgb_to_code(dst_colour, output.format().depth());
    let out_size = output.size();
    let mut accumulator = match accumulator {
        Some(acc) => {
            // stream order: the previous frame's final conversion has read it by then
            stream.memset_zeros(acc).map_err(Error::cuda("cuMemsetD8Async"))?;
            Some(PlanarTensorMut::from_view(acc.as_view_mut(), stream, out_size)?)
        }
        None if plan.is_whole_frame() => None,
        None => return Err(Error::Usage("a tiled plan without an accumulation frame".into())),
    };
    timer.record(slot, 0)?;
    // alpha or padding (timed with the input conversion): samples nothing else writes
    // SAFETY: `source` and `output` are valid until the frame completes (the caller's contract).
    unsafe { kernels.fill_extra(stream, source, output)? };
    let mut chunks = 0;
    for chunk in plan.tiles.tiles.chunks(plan.batch as usize) {
        for (j, tile) in chunk.iter().enumerate() {
            let region = if plan.is_whole_frame() { Rect::of_size(source.size()) } else { tile.input };
            let mut tensor = engine.input_tensor(j as u32)?;
            // SAFETY: `source` is valid until the frame completes (the caller's contract); the tensor is the
            // engine's, kept until the next bind, which waits for the frames in flight.
            unsafe { kernels.frame_to_planar(stream, source, &to_rgb, region, &mut tensor)? };
        }
        timer.record(slot, 3 * chunks + 1)?;
        engine.run()?;
        timer.record(slot, 3 * chunks + 2)?;
        for (j, tile) in chunk.iter().enumerate() {
            let tensor = engine.output_tensor(j as u32)?;
            match accumulator.as_mut() {
                // SAFETY: the tensor as above; the accumulation frame is ours, freed only after the frames in flight.
                Some(acc) => unsafe { kernels.blend_tile(stream, &tensor, tile, acc)? },
                // SAFETY: whole frame: the output tensor is the frame; `output` per the caller's contract.
                None => unsafe { kernels.planar_to_frame(stream, &tensor, &to_code, output)? },
            }
        }
        timer.record(slot, 3 * chunks + 3)?;
        chunks += 1;
    }
    if let Some(acc) = &accumulator {
        let whole: PlanarTensor<'_> = acc.as_tensor();
        // SAFETY: as above.
        unsafe { kernels.planar_to_frame(stream, &whole, &to_code, output)? };
        timer.record(slot, 3 * chunks + 1)?;
    }
    Ok(FrameEvents { slot, chunks, blended: accumulator.is_some() })
}
