// SPDX-License-Identifier: MPL-2.0

//! The streaming thread's objects: the upscaler (which holds the frames in flight), the negotiated formats, and
//! everything that touches the per-frame queue: mapping buffers, queueing frames on the GPU, finishing them.
//!
//! Only the streaming thread (and start/stop, when it is not running) uses a [`Streaming`]. Everything other threads
//! need from it is copied into the snapshot after each frame.

use std::ffi::c_void;

use gst_video::VideoInfo;
use gst_video::prelude::*;
use vfupscale::color::Colorimetry;
use vfupscale::cuda::{CudaStream, DeviceFrame, DeviceFrameMut, FramePlanes};
use vfupscale::frame::{HostFrame, HostFrameMut, PixelFormat, Size};
use vfupscale::{FrameBuffers, InputFrame, TensorLocation, Upscaler};

use super::caps::{self, Memory};
use super::colorimetry::{colorimetry, pixel_format};
use super::error::FrameError;
use crate::gstcuda::{CudaFrame, is_cuda_buffer};

/// What `set_caps` decided.
#[derive(Debug, Clone)]
struct Negotiated {
    in_info: VideoInfo,
    out_info: VideoInfo,
    memory: Memory,
    in_colour: Colorimetry,
    out_colour: Colorimetry,
}

/// The upscaler, from start to stop, with the buffers of the frames queued on the GPU and not yet finished.
pub type FrameUpscaler = Upscaler<BufferFrame>;

/// The upscaler and the negotiated formats, from start to stop.
pub struct Streaming {
    upscaler: FrameUpscaler,
    /// CUDA frames to keep in flight (`async-depth`).
    async_depth: usize,
    negotiated: Option<Negotiated>,
}

impl Streaming {
    pub fn new(upscaler: FrameUpscaler, async_depth: usize) -> Self {
        Self { upscaler, async_depth, negotiated: None }
    }

    pub fn upscaler(&self) -> &FrameUpscaler {
        &self.upscaler
    }

    /// What happened while running frames since the last call (smaller tiles after running out of memory …).
    pub fn take_notes(&mut self) -> Vec<String> {
        self.upscaler.take_notes()
    }

    /// Takes new caps: checks them against the model and prepares the upscaler for their frame size. On failure
    /// nothing stays negotiated.
    pub fn negotiate(&mut self, in_info: &VideoInfo, out_info: &VideoInfo, memory: Memory) -> vfupscale::Result<()> {
        self.negotiated = None;
        caps::check_scaled(in_info, out_info, self.upscaler.scale()).map_err(vfupscale::Error::Negotiation)?;
        let negotiated = Negotiated {
            in_colour: colorimetry(in_info).map_err(vfupscale::Error::Negotiation)?,
            out_colour: colorimetry(out_info).map_err(vfupscale::Error::Negotiation)?,
            in_info: in_info.clone(),
            out_info: out_info.clone(),
            memory,
        };
        let location = if memory == Memory::Cuda { TensorLocation::Device } else { TensorLocation::Host };
        let size = Size::new(in_info.width(), in_info.height());
        self.upscaler.prepare(size, location)?;
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
        self.upscaler.frames_in_flight() > 0
    }

    /// Upscales `inbuf` into `outbuf` and waits for it (system memory, or CUDA memory with `async-depth` 0).
    pub fn upscale(&mut self, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<(), FrameError> {
        let neg = self.negotiated.as_ref().ok_or(FrameError::NotNegotiated)?;
        let up = &mut self.upscaler;
        match neg.memory {
            Memory::System => {
                let input = map_host(inbuf.clone(), &neg.in_info)?;
                let src = host_planes(&input)?;
                let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &neg.out_info)
                    .map_err(|_| FrameError::Map("output"))?;
                let mut dst = host_planes_mut(&mut out_frame)?;
                up.upscale_host(&src, neg.in_colour, &mut dst, neg.out_colour)?;
            }
            Memory::Cuda => {
                let input = Input::map(inbuf.clone(), &neg.in_info)?;
                let mut out_frame = CudaFrame::writable(outbuf, &neg.out_info)?;
                up.upscale_device(input.frame()?, out_frame.view_mut()?, neg.in_colour, neg.out_colour)?;
            }
        }
        Ok(())
    }

    /// Queues the upscaling of `inbuf` into `outbuf` on the GPU; the upscaler keeps both until it is finished.
    /// Returns whether more frames than the depth are in flight, so that the oldest should be finished now.
    pub fn queue(&mut self, inbuf: gst::Buffer, outbuf: gst::Buffer) -> Result<bool, FrameError> {
        let neg = self.negotiated.as_ref().ok_or(FrameError::NotNegotiated)?;
        let frame = BufferFrame::new(inbuf, &neg.in_info, outbuf, &neg.out_info)?;
        self.upscaler.queue(frame, neg.in_colour, neg.out_colour)?;
        Ok(self.upscaler.frames_in_flight() > self.depth())
    }

    /// Waits for the oldest frame in flight: its timestamp, and its output buffer if it was upscaled. `None` when no
    /// frame is in flight.
    pub fn finish_oldest(&mut self) -> Option<(Option<gst::ClockTime>, Result<gst::Buffer, FrameError>)> {
        let pts = self.upscaler.oldest_in_flight()?.output.pts();
        let result = self.upscaler.finish_frame().map(BufferFrame::into_output).map_err(FrameError::from);
        Some((pts, result))
    }

    /// Drops the frames in flight (after a flush, or on stop) once the GPU is done with them.
    pub fn discard(&mut self) -> Result<(), vfupscale::Error> {
        self.upscaler.discard_frames_in_flight()
    }
}

/// An input buffer, held and mapped: CUDA memory (any context) by its device addresses, system memory mapped for
/// reading.
enum Input {
    Cuda { _buffer: gst::Buffer, context: *mut c_void, planes: FramePlanes },
    Host(Box<MappedFrame>),
}

impl Input {
    /// Takes `buffer`, a frame of `info` in CUDA memory (read in place or copied by the upscaler) or in system
    /// memory (uploaded).
    fn map(buffer: gst::Buffer, info: &VideoInfo) -> Result<Self, FrameError> {
        if !is_cuda_buffer(buffer.as_ref()) {
            return Ok(Input::Host(Box::new(map_host(buffer, info)?)));
        }
        let (context, planes) = CudaFrame::readable(buffer.as_ref(), info)?.raw_planes();
        Ok(Input::Cuda { _buffer: buffer, context, planes })
    }

    /// The frame, for the upscaler to read while `self` lives.
    fn frame(&self) -> vfupscale::Result<InputFrame<'_>> {
        Ok(match self {
            Input::Cuda { context, planes, .. } => {
                // SAFETY: the planes of the CUDA memory of the buffer `self` holds, in the context they name: device
                // addresses of CUDA memory stay valid while the buffer lives, mapped or not, and upstream does not
                // reuse a buffer we hold.
                let view = unsafe { DeviceFrame::from_raw(context.cast(), *planes) }?;
                InputFrame::Device(view)
            }
            Input::Host(frame) => InputFrame::Host(host_planes(frame)?),
        })
    }
}

/// An input buffer and the output buffer our kernels write, queued on the GPU: the upscaler keeps them (and so their
/// memory) alive until the GPU is done, then hands them back for the output to be pushed.
pub struct BufferFrame {
    input: Input,
    output: gst::Buffer,
    output_context: *mut c_void,
    output_planes: FramePlanes,
}

// SAFETY: the raw pointers are CUcontext handles (identifiers the driver accepts from any thread) and nothing is
// reached through them from Rust; the buffers and the mapped frame are Send.
unsafe impl Send for BufferFrame {}

impl BufferFrame {
    /// Takes `input` (a frame of `in_info` in CUDA or system memory) and `output` (a CUDA buffer of our pool for a
    /// frame of `out_info`), maps them and records where their planes lie.
    pub fn new(
        input: gst::Buffer,
        in_info: &VideoInfo,
        mut output: gst::Buffer,
        out_info: &VideoInfo,
    ) -> Result<Self, FrameError> {
        let (output_context, output_planes) = CudaFrame::writable(output.make_mut(), out_info)?.raw_planes();
        let input = Input::map(input, in_info)?;
        Ok(Self { input, output, output_context, output_planes })
    }

    /// The output buffer, complete once the upscaler handed the frame back.
    pub fn into_output(self) -> gst::Buffer {
        self.output
    }
}

// SAFETY: the input buffer (with its CUDA memory, or its system memory mapped in `Input::Host`) and the output buffer
// are owned by the value; device addresses of CUDA memory stay valid while the buffer lives, mapped or not. The
// output buffer was made writable when taken (we hold its only reference) and comes from our pool, so it aliases no
// input; nothing upstream reuses the input while we hold it. The views name the memory's own CUDA context, and are
// the same on every call.
unsafe impl FrameBuffers for BufferFrame {
    fn planes<'a>(&'a mut self, _stream: &'a CudaStream) -> vfupscale::Result<(InputFrame<'a>, DeviceFrameMut<'a>)> {
        let input = self.input.frame()?;
        // SAFETY: as above, for the output buffer, which nothing else touches while we hold it.
        let output = unsafe { DeviceFrameMut::from_raw(self.output_context.cast(), self.output_planes) }?;
        Ok((input, output))
    }
}

/// A system-memory input frame, mapped for reading.
type MappedFrame = gst_video::VideoFrame<gst_video::video_frame::Readable>;

/// Maps `buffer` for reading in system memory, after checking that it holds one frame of `info`: of exactly the
/// frame's size, or laid out by a video meta of the frame's dimensions.
fn map_host(buffer: gst::Buffer, info: &VideoInfo) -> Result<MappedFrame, FrameError> {
    let frame = Size::new(info.width(), info.height());
    match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => {
            let meta = Size::new(meta.width(), meta.height());
            if meta != frame {
                return Err(FrameError::MetaSize { meta, caps: frame });
            }
        }
        None if buffer.size() != info.size() => {
            return Err(FrameError::InputSize { got: buffer.size(), frame, expected: info.size() });
        }
        None => {}
    }
    gst_video::VideoFrame::from_buffer_readable(buffer, info).map_err(|_| FrameError::Map("input"))
}

/// The format of frames of `info`, as the upscaler names it.
fn format_of(info: &VideoInfo) -> vfupscale::Result<PixelFormat> {
    pixel_format(info.format()).map_err(vfupscale::Error::Negotiation)
}

/// The planes of a mapped system-memory frame.
fn host_planes(frame: &MappedFrame) -> vfupscale::Result<HostFrame<'_>> {
    let format = format_of(frame.info())?;
    let stride = frame.plane_stride();
    let plane = |i: usize| match i < format.planes() {
        true => {
            frame.plane_data(i as u32).map_err(|e| vfupscale::Error::Usage(format!("input {format} plane {i}: {e}")))
        }
        false => Ok(&[][..]),
    };
    let strides = [0, 1].map(|i| if i < format.planes() { stride[i] as usize } else { 0 });
    HostFrame::new(format, Size::new(frame.width(), frame.height()), [plane(0)?, plane(1)?], strides)
}

/// The planes of a mapped, writable system-memory frame.
fn host_planes_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> vfupscale::Result<HostFrameMut<'a>> {
    let format = format_of(frame.info())?;
    let size = Size::new(frame.width(), frame.height());
    let stride = frame.plane_stride();
    let strides = [0, 1].map(|i| if i < format.planes() { stride[i] as usize } else { 0 });
    let mut planes = frame.planes_data_mut().into_iter();
    let first =
        planes.next().ok_or_else(|| vfupscale::Error::Usage(format!("output {format} frame without planes")))?;
    let second = if format.planes() == 2 { planes.next() } else { None };
    HostFrameMut::new(format, size, [first, second.unwrap_or(&mut [])], strides)
}
