// SPDX-License-Identifier: MPL-2.0

//! The streaming thread's objects: the upscaler, the negotiated formats and the frames in flight, and everything
//! that touches the per-frame queue (mapping buffers, queueing frames on the GPU, finishing them).
//!
//! Only the streaming thread (and start/stop, when it is not running) uses a [`Streaming`]. Everything other threads
//! need from it is copied into the snapshot after each frame.

use std::collections::VecDeque;

use gst_video::VideoInfo;
use gst_video::prelude::*;
use vfupscale::Upscaler;
use vfupscale::color::Colorimetry;
use vfupscale::frame::{HostNv12, HostNv12Mut, Size};
use vfupscale::infer::TensorLocation;

use super::caps::{self, Memory};
use super::colorimetry::colorimetry;
use super::error::FrameError;
use crate::gstcuda::{CudaContext, CudaFrame, cuda_memory_context};

/// What `set_caps` decided.
#[derive(Debug, Clone)]
struct Negotiated {
    in_info: VideoInfo,
    out_info: VideoInfo,
    memory: Memory,
    in_colour: Colorimetry,
    out_colour: Colorimetry,
}

impl Negotiated {
    fn in_size(&self) -> Size {
        Size::new(self.in_info.width(), self.in_info.height())
    }

    fn out_size(&self) -> Size {
        Size::new(self.out_info.width(), self.out_info.height())
    }
}

/// An output buffer whose frame is queued on the GPU, with the input it reads.
struct FrameInFlight {
    output: gst::Buffer,
    /// Held so that upstream does not reuse the frame before our kernels have read it.
    _input: gst::Buffer,
}

/// The upscaler and its frames, from start to stop.
pub struct Streaming {
    upscaler: Upscaler,
    /// Our `GstCudaContext` as of start: CUDA inputs of this context are read in place.
    cuda: Option<CudaContext>,
    /// CUDA frames to keep in flight (`async-depth`).
    async_depth: usize,
    negotiated: Option<Negotiated>,
    /// Output buffers queued on the GPU and not yet finished, oldest first.
    in_flight: VecDeque<FrameInFlight>,
}

impl Streaming {
    pub fn new(upscaler: Upscaler, cuda: Option<CudaContext>, async_depth: usize) -> Self {
        Self { upscaler, cuda, async_depth, negotiated: None, in_flight: VecDeque::new() }
    }

    pub fn upscaler(&self) -> &Upscaler {
        &self.upscaler
    }

    /// What happened while running frames since the last call (smaller tiles after running out of memory …).
    pub fn take_notes(&mut self) -> Vec<String> {
        self.upscaler.take_notes()
    }

    /// Takes new caps: checks them against the model and prepares the upscaler for their frame size. On failure
    /// nothing stays negotiated.
    pub fn negotiate(&mut self, in_info: &VideoInfo, out_info: &VideoInfo, memory: Memory) -> Result<(), String> {
        self.negotiated = None;
        caps::check_scaled(in_info, out_info, self.upscaler.scale())?;
        let negotiated = Negotiated {
            in_colour: colorimetry(in_info)?,
            out_colour: colorimetry(out_info)?,
            in_info: in_info.clone(),
            out_info: out_info.clone(),
            memory,
        };
        let location = if memory == Memory::Cuda { TensorLocation::Device } else { TensorLocation::Host };
        self.upscaler.prepare(negotiated.in_size(), location).map_err(|e| e.to_string())?;
        self.negotiated = Some(negotiated);
        Ok(())
    }

    /// Frames kept in flight with the negotiated memory: system-memory frames are finished when converted.
    pub fn depth(&self) -> usize {
        match &self.negotiated {
            Some(n) if n.memory == Memory::Cuda => self.async_depth,
            _ => 0,
        }
    }

    pub fn has_frames_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Upscales `inbuf` into `outbuf` completely.
    pub fn upscale(&mut self, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<(), FrameError> {
        self.queue_frame(inbuf, outbuf)?;
        if self.upscaler.frames_in_flight() > 0 {
            self.upscaler.finish_frame()?;
        }
        Ok(())
    }

    /// Queues the upscaling of `inbuf` into `outbuf` on the GPU and keeps both until it is finished. Returns
    /// whether more frames than the depth are in flight, so that the oldest should be finished now.
    pub fn queue(&mut self, inbuf: gst::Buffer, mut outbuf: gst::Buffer) -> Result<bool, FrameError> {
        self.queue_frame(&inbuf, outbuf.make_mut())?;
        self.in_flight.push_back(FrameInFlight { output: outbuf, _input: inbuf });
        Ok(self.in_flight.len() > self.depth())
    }

    /// Waits for the oldest frame in flight: its output buffer, and whether it was upscaled. `None` when no frame is
    /// in flight.
    pub fn finish_oldest(&mut self) -> Option<(gst::Buffer, Result<(), FrameError>)> {
        let frame = self.in_flight.pop_front()?;
        let result = self.upscaler.finish_frame().map_err(FrameError::from);
        Some((frame.output, result))
    }

    /// Drops the frames in flight (after a flush, or on stop) once the GPU is done with them; returns the errors
    /// the GPU reported for them.
    pub fn discard(&mut self) -> Vec<vfupscale::Error> {
        let mut errors = Vec::new();
        while self.in_flight.pop_front().is_some() {
            if let Err(e) = self.upscaler.finish_frame() {
                errors.push(e);
            }
        }
        errors
    }

    /// Upscales one buffer: system-memory frames completely, CUDA frames by queuing the work on the GPU, to be
    /// finished with `Upscaler::finish_frame` while `inbuf` and `outbuf` are kept.
    fn queue_frame(&mut self, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<(), FrameError> {
        let neg = self.negotiated.as_ref().ok_or(FrameError::NotNegotiated)?;
        let up = &mut self.upscaler;
        match neg.memory {
            Memory::System => {
                let in_frame = map_host_input(inbuf, neg)?;
                let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &neg.out_info)
                    .map_err(|_| FrameError::Map("output"))?;
                let os = [out_frame.plane_stride()[0] as usize, out_frame.plane_stride()[1] as usize];
                let src = host_nv12(&in_frame, neg.in_size())?;
                let [y, uv, ..] = out_frame.planes_data_mut();
                let mut dst = HostNv12Mut::new(neg.out_size(), y, os[0], uv, os[1])?;
                up.upscale_host(&src, neg.in_colour, &mut dst, neg.out_colour)?;
            }
            Memory::Cuda => {
                let ours = self.cuda.as_ref().ok_or(FrameError::NoCudaContext)?;
                let out_frame = CudaFrame::writable(outbuf, &neg.out_info)?;
                let dst = out_frame.nv12();
                let input_context =
                    (inbuf.n_memory() == 1).then(|| cuda_memory_context(inbuf.peek_memory(0))).flatten();
                match input_context {
                    Some(ctx) if ours.is_same(&ctx) => {
                        let in_frame = CudaFrame::readable(inbuf.as_ref(), &neg.in_info)?;
                        up.stats_mut().zero_copy_inputs += 1;
                        // SAFETY: both frames are memory of our (primary) context, kept alive by the caller until the
                        // frame is finished (device pointers of CUDA memory stay valid after unmapping).
                        unsafe { up.queue_device(&in_frame.nv12(), neg.in_colour, &dst, neg.out_colour) }?
                    }
                    Some(ctx) => {
                        let handle = ctx.handle();
                        let in_frame = CudaFrame::readable(inbuf.as_ref(), &neg.in_info)?;
                        // SAFETY: the input is memory of its own context `handle`, the output of ours; both kept
                        // alive by the caller until the frame is finished.
                        unsafe {
                            up.queue_device_from_context(
                                &in_frame.nv12(),
                                handle.cast(),
                                neg.in_colour,
                                &dst,
                                neg.out_colour,
                            )
                        }?
                    }
                    None => {
                        let in_frame = map_host_input(inbuf, neg)?;
                        let src = host_nv12(&in_frame, neg.in_size())?;
                        // SAFETY: the output is memory of our context; the input buffer's memory and the output are
                        // kept alive by the caller until the frame is finished.
                        unsafe { up.queue_host_to_device(&src, neg.in_colour, &dst, neg.out_colour) }?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Maps a system-memory input buffer for reading, after checking that it holds one frame of the caps: of exactly
/// the frame's size, or laid out by a video meta of the frame's dimensions.
fn map_host_input<'a>(
    buffer: &'a gst::Buffer,
    neg: &Negotiated,
) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, FrameError> {
    let frame = neg.in_size();
    match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => {
            let meta = Size::new(meta.width(), meta.height());
            if meta != frame {
                return Err(FrameError::MetaSize { meta, caps: frame });
            }
        }
        None if buffer.size() != neg.in_info.size() => {
            return Err(FrameError::InputSize { got: buffer.size(), frame, expected: neg.in_info.size() });
        }
        None => {}
    }
    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &neg.in_info)
        .map_err(|_| FrameError::Map("input"))
}

/// The NV12 planes of a mapped system-memory frame of `size`.
fn host_nv12<'a>(frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>, size: Size) -> Result<HostNv12<'a>, FrameError> {
    let stride = frame.plane_stride();
    let plane = |i: u32| frame.plane_data(i).map_err(|_| FrameError::Map("input"));
    Ok(HostNv12::new(size, plane(0)?, stride[0] as usize, plane(1)?, stride[1] as usize)?)
}
