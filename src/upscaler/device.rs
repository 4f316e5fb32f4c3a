// SPDX-License-Identifier: MPL-2.0
//! The device path: one frame's work queued on our stream (input read in place, or copied/uploaded into a
//! staging frame first; conversion into the engine's input tensor; the model; blending of tiles; the output's
//! composition, or classic output alone), the frames in flight with their keep-alive values, and waiting for them.

use std::collections::VecDeque;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::Upscaler;
use super::frames::{FrameBuffers, InputFrame};
use super::output::{DeviceOutput, OutputSettings};
use super::timing::{FrameEvents, FrameTimer};
use crate::color::{Affine3x4, Colorimetry, code_to_rgb, rgb_to_code};
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
    /// Tables, the input's RGB and the temporal history for composing outputs of the prepared size.
    output: Option<DeviceOutput>,
    /// Whether the latest frame queued had its output written by the model's last layer.
    output_fused: bool,
    timer: FrameTimer,
    pub stream: Arc<CudaStream>,
    pub device: Arc<GpuDevice>,
}

impl<F> DevicePath<F> {
    pub fn new(device: Arc<GpuDevice>, stream: Arc<CudaStream>, frames_in_flight: usize) -> Result<Self> {
        let timer = FrameTimer::new(stream.clone(), frames_in_flight)?;
        Ok(Self {
            in_flight: VecDeque::new(),
            staging: None,
            accumulator: None,
            output: None,
            output_fused: false,
            timer,
            stream,
            device,
        })
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
        let output = self.output.as_ref().map_or(0, DeviceOutput::bytes);
        (acc + self.staging.as_ref().map_or(0, FrameBuffer::bytes)) as u64 + output
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

    /// The output state for frames of the prepared size (replaced after the frames in flight are finished).
    pub fn set_output(&mut self, output: Option<DeviceOutput>) {
        self.output = output;
    }

    /// Queues one frame: reads `input` (copying or uploading it into our context first when needed), runs the
    /// plan's chunks of tiles through the engine (none: classic output) and writes `output`. Returns the frame's
    /// events, how its input was read and whether the temporal history was updated; nothing is waited for, unless
    /// it fails: then the work it queued is waited for, so that buffers can be replaced (a retry with smaller
    /// tiles, classic output instead) or the frames released.
    ///
    /// # Safety
    /// The memory of `input` and `output` must stay valid (the input unchanged, the output touched by nothing
    /// else) until the frame's work has completed on the stream.
    pub unsafe fn queue(
        &mut self,
        model: Option<(&mut Engine, &RunPlan)>,
        settings: &OutputSettings,
        input: &InputFrame<'_>,
        output: &mut DeviceFrameMut<'_>,
        (colours, history_valid): ((Colorimetry, Colorimetry), bool),
    ) -> Result<(FrameEvents, InputRoute, bool)> {
        let plan = &self.output.as_ref().ok_or_else(|| Error::Usage("no output prepared".into()))?.plan;
        if input.size() != plan.input || output.size() != plan.output {
            return Err(Error::Negotiation(format!(
                "frame {} → {} does not match the prepared {} → {}",
                input.size(),
                output.size(),
                plan.input,
                plan.output
            )));
        }
        if output.context() != self.device.cu_context() {
            return Err(Error::Usage("the output frame must be memory of the upscaler's CUDA context".into()));
        }
        self.device.bind_to_thread()?;
        let stream = self.stream.clone();
        let queue_once = || -> Result<(FrameEvents, InputRoute, bool)> {
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
            let finish = self.output.as_mut().ok_or_else(|| Error::Usage("no output prepared".into()))?;
            let frame = FrameWork {
                source,
                accumulator: self.accumulator.as_mut(),
                finish,
                settings,
                output,
                colours,
                history_valid,
            };
            let (events, stabilised, fused) = match model {
                Some((engine, plan)) => queue_tiles(&self.device, &stream, &mut self.timer, slot, engine, plan, frame)?,
                None => queue_classic(&self.device, &stream, &mut self.timer, slot, frame)?,
            };
            self.output_fused = fused;
            self.timer.advance();
            Ok((events, route, stabilised))
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
    source: &'f DeviceFrame<'s>,
    accumulator: Option<&'f mut CudaSlice<f32>>,
    finish: &'f mut DeviceOutput,
    settings: &'f OutputSettings,
    output: &'f mut DeviceFrameMut<'o>,
    colours: (Colorimetry, Colorimetry),
    history_valid: bool,
}

impl FrameWork<'_, '_, '_> {
    /// The output frame's RGB → code value map.
    fn to_code(&self) -> Affine3x4 {
        rgb_to_code(self.colours.1, self.output.format().depth())
    }

    /// Queues the output composition from `model` (`None`: classic output). Says whether the history was updated.
    fn finish(
        &mut self,
        device: &GpuDevice,
        stream: &Arc<CudaStream>,
        model: Option<&PlanarTensor<'_>>,
    ) -> Result<bool> {
        let to_rgb = code_to_rgb(self.colours.0, self.source.format().depth());
        let to_code = self.to_code();
        // SAFETY: `source` and `output` are valid until the frame completes (the caller's contract), the model's
        // tensor is the engine's (kept until the next bind, which waits for the frames in flight) or ours.
        unsafe {
            self.finish.queue(
                device,
                stream,
                self.settings,
                model,
                self.source,
                (&to_rgb, &to_code),
                self.history_valid,
                self.output,
            )
        }
    }
}

/// Queues the classic output of one frame (no model runs). Says whether the history was updated, and that the output
/// was not written by a model.
fn queue_classic(
    device: &GpuDevice,
    stream: &Arc<CudaStream>,
    timer: &mut FrameTimer,
    slot: usize,
    mut frame: FrameWork<'_, '_, '_>,
) -> Result<(FrameEvents, bool, bool)> {
    timer.record(slot, 0)?;
    let stabilised = frame.finish(device, stream, None)?;
    timer.record(slot, 1)?;
    Ok((FrameEvents { slot, chunks: 0, blended: true }, stabilised, false))
}

/// Queues the conversion, inference and output of every chunk of tiles of one frame. Says whether the history was
/// updated and whether the model's last layer wrote the output frame itself (the plain conversion fused into it,
/// where the engine can and `OutputSettings::model_may_write_frame` allows: the convert-out stage is then empty).
fn queue_tiles(
    device: &GpuDevice,
    stream: &Arc<CudaStream>,
    timer: &mut FrameTimer,
    slot: usize,
    engine: &mut Engine,
    plan: &RunPlan,
    mut frame: FrameWork<'_, '_, '_>,
) -> Result<(FrameEvents, bool, bool)> {
    let kernels = device.kernels();
    let to_rgb = code_to_rgb(frame.colours.0, frame.source.format().depth());
    let model_size = frame.finish.plan.model_output;
    let plain = frame.settings.plain(&frame.finish.plan);
    let fused = frame.settings.model_may_write_frame(&frame.finish.plan, plan)
        && engine.writes_frame(frame.output.format(), frame.output.size());
    let mut accumulator = match frame.accumulator.take() {
        Some(acc) => {
            // stream order: the previous frame's final conversion has read it by then
            stream.memset_zeros(acc).map_err(Error::cuda("cuMemsetD8Async"))?;
            Some(PlanarTensorMut::from_view(acc.as_view_mut(), stream, model_size)?)
        }
        None if plan.is_whole_frame() => None,
        None => return Err(Error::Usage("a tiled plan without an accumulation frame".into())),
    };
    timer.record(slot, 0)?;
    let mut chunks = 0;
    let mut stabilised = false;
    for chunk in plan.tiles.tiles.chunks(plan.batch as usize) {
        for (j, tile) in chunk.iter().enumerate() {
            let region = if plan.is_whole_frame() { Rect::of_size(frame.source.size()) } else { tile.input };
            let mut tensor = engine.input_tensor(j as u32)?;
            // SAFETY: `source` is valid until the frame completes (the caller's contract); the tensor is the
            // engine's, kept until the next bind, which waits for the frames in flight.
            unsafe { kernels.frame_to_planar(stream, frame.source, &to_rgb, region, &mut tensor)? };
        }
        timer.record(slot, 3 * chunks + 1)?;
        if fused {
            let to_code = frame.to_code();
            // SAFETY: the output frame is valid and touched by nothing else until the frame completes (the caller's
            // contract), and memory of our context (checked by `queue`), on which the engine runs.
            unsafe { engine.run_into_frame(frame.output, &to_code)? };
        } else {
            engine.run()?;
        }
        timer.record(slot, 3 * chunks + 2)?;
        // fused: the last layer wrote the frame
        for (j, tile) in chunk.iter().enumerate().filter(|_| !fused) {
            let tensor = engine.output_tensor(j as u32)?;
            match accumulator.as_mut() {
                // SAFETY: the tensor as above; the accumulation frame is ours, freed only after the frames in flight.
                Some(acc) => unsafe { kernels.blend_tile(stream, &tensor, tile, acc)? },
                // whole frame: the output tensor is the frame
                None if plain => stabilised = frame.finish(device, stream, Some(&tensor))?,
                None => {}
            }
        }
        timer.record(slot, 3 * chunks + 3)?;
        chunks += 1;
    }
    let blended = accumulator.is_some() || !plain;
    if let Some(acc) = &accumulator {
        stabilised = frame.finish(device, stream, Some(&acc.as_tensor()))?;
    } else if !plain {
        let tensor = engine.output_tensor(0)?;
        stabilised = frame.finish(device, stream, Some(&tensor))?;
    }
    if blended {
        timer.record(slot, 3 * chunks + 1)?;
    }
    Ok((FrameEvents { slot, chunks, blended }, stabilised, fused))
}

impl<F: FrameBuffers> Upscaler<F> {
    /// Whether the latest frame queued on the device had its output written by the model's last layer itself (the
    /// output conversion fused into it: the native Hopper kernels, NV12 or P010 output of the model's size, the
    /// plain conversion of whole frames; `VFUPSCALE_NO_FUSED_OUTPUT=1` turns it off).
    pub fn output_fused(&self) -> bool {
        self.device.as_ref().is_some_and(|d| d.output_fused)
    }
}
