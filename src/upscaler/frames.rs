// SPDX-License-Identifier: MPL-2.0
//! Frames handed to the upscaler to be queued on the GPU: a value that owns (keeps alive) an input and an output
//! frame, held by the upscaler while the GPU works on them and handed back by `finish_frame`, so that queueing is
//! a safe call.

use cudarc::driver::CudaStream;

use crate::cuda::{DeviceFrame, DeviceFrameMut, FrameBuffer};
use crate::error::Result;
use crate::frame::{HostFrame, PixelFormat, Size};

/// An input frame: device memory (of our CUDA context, read in place, or of another one, copied into ours first),
/// or host memory (uploaded first).
#[derive(Debug)]
pub enum InputFrame<'a> {
    Device(DeviceFrame<'a>),
    Host(HostFrame<'a>),
}

impl InputFrame<'_> {
    pub fn size(&self) -> Size {
        match self {
            InputFrame::Device(d) => d.size(),
            InputFrame::Host(h) => h.size,
        }
    }

    pub fn format(&self) -> PixelFormat {
        match self {
            InputFrame::Device(d) => d.format(),
            InputFrame::Host(h) => h.format,
        }
    }
}

/// A value that keeps an input and an output frame alive: the plugin's pair of GStreamer buffers, or our own
/// [`DeviceFrames`].
///
/// # Safety
/// Implementors guarantee, for every value, that the memory behind the views [`FrameBuffers::planes`] returns:
/// - stays allocated, at the same addresses, for as long as the value is alive (it may be moved), and the input
///   stays unchanged meanwhile: the upscaler keeps the value until the GPU is done with the frame;
/// - is not read or written by anything else while the upscaler holds the value, and the output aliases neither
///   the input nor any other value's frames;
/// - is device memory of the CUDA contexts the views name, on the upscaler's device (host memory for
///   [`InputFrame::Host`]);
/// - is the same on every call.
pub unsafe trait FrameBuffers: Send {
    /// The input and output frames, for work queued on `stream`.
    fn planes<'a>(&'a mut self, stream: &'a CudaStream) -> Result<(InputFrame<'a>, DeviceFrameMut<'a>)>;
}

/// An input and an output frame in device memory of our own (applications without GStreamer, tests, benchmarks).
pub struct DeviceFrames {
    pub input: FrameBuffer,
    pub output: FrameBuffer,
}

// SAFETY: both frames are allocations owned by the value (freed only when it is dropped), distinct, and of the
// context they were allocated in; the views borrow them for as long as the value is borrowed.
unsafe impl FrameBuffers for DeviceFrames {
    fn planes<'a>(&'a mut self, stream: &'a CudaStream) -> Result<(InputFrame<'a>, DeviceFrameMut<'a>)> {
        Ok((InputFrame::Device(self.input.view(stream)?), self.output.view_mut(stream)?))
    }
}
