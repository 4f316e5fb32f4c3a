// SPDX-License-Identifier: MPL-2.0
//! The buffers of a CUDA frame queued on the GPU: the upscaler keeps them (and so their memory) alive until the GPU
//! is done, then hands them back for the output to be pushed.

use std::ffi::c_void;

use gst_video::VideoInfo;
use gst_video::prelude::*;
use vfupscale::cuda::{CudaStream, DeviceNv12, DeviceNv12Mut, Nv12Planes};
use vfupscale::frame::{HostNv12, Size};
use vfupscale::{FrameBuffers, InputFrame};

use crate::gstcuda::{CudaFrame, cuda_memory_context};

/// The input of a queued frame: CUDA memory (any context) or system memory, mapped for as long as it is held.
enum Input {
    Cuda { _buffer: gst::Buffer, context: *mut c_void, planes: Nv12Planes },
    Host(Box<gst_video::VideoFrame<gst_video::video_frame::Readable>>),
}

/// An input buffer and the output buffer our kernels write, queued on the GPU.
pub struct BufferFrame {
    input: Input,
    output: gst::Buffer,
    output_context: *mut c_void,
    output_planes: Nv12Planes,
}

// SAFETY: the raw pointers are a CUcontext handle (an identifier the driver accepts from any thread) and nothing is
// reached through them from Rust; the buffers and the mapped frame are Send.
unsafe impl Send for BufferFrame {}

impl BufferFrame {
    /// Takes `input` (CUDA or system memory) and `output` (a writable CUDA buffer of our pool), maps them and
    /// records where their planes lie.
    pub fn new(
        input: gst::Buffer,
        in_info: &VideoInfo,
        mut output: gst::Buffer,
        out_info: &VideoInfo,
    ) -> Result<Self, String> {
        let (output_context, output_planes) = CudaFrame::writable(output.make_mut(), out_info)?.raw_planes();
        let is_cuda = input.n_memory() == 1 && cuda_memory_context(input.peek_memory(0)).is_some();
        let input = if is_cuda {
            let (context, planes) = CudaFrame::readable(input.as_ref(), in_info)?.raw_planes();
            Input::Cuda { _buffer: input, context, planes }
        } else {
            let frame = gst_video::VideoFrame::from_buffer_readable(input, in_info)
                .map_err(|_| "cannot map the input buffer".to_string())?;
            Input::Host(Box::new(frame))
        };
        Ok(Self { input, output, output_context, output_planes })
    }

    /// The output buffer, complete once the upscaler handed the frame back.
    pub fn into_output(self) -> gst::Buffer {
        self.output
    }

    pub fn output(&self) -> &gst::Buffer {
        &self.output
    }
}

/// The NV12 planes of a mapped system-memory frame.
pub fn host_nv12<'a, T>(frame: &'a gst_video::VideoFrame<T>) -> vfupscale::Result<HostNv12<'a>> {
    let size = Size::new(frame.width(), frame.height());
    let stride = frame.plane_stride();
    let plane = |i: u32| frame.plane_data(i).map_err(|e| vfupscale::Error::Usage(format!("NV12 plane {i}: {e}")));
    HostNv12::new(size, plane(0)?, stride[0] as usize, plane(1)?, stride[1] as usize)
}

// SAFETY: the input buffer (with its CUDA memory, or its system memory mapped in `Input::Host`) and the output buffer
// are owned by the value; device addresses of CUDA memory stay valid while the buffer lives, mapped or not. The
// output buffer was writable when taken (we hold its only reference), and nothing upstream reuses the input while we
// hold it. The views name the memory's own CUDA context.
unsafe impl FrameBuffers for BufferFrame {
    fn planes<'a>(&'a mut self, _stream: &'a CudaStream) -> vfupscale::Result<(InputFrame<'a>, DeviceNv12Mut<'a>)> {
        let input = match &self.input {
            Input::Cuda { context, planes, .. } => {
                // SAFETY: the planes of the held buffer's CUDA memory (see the impl's comment).
                InputFrame::Device(unsafe { DeviceNv12::from_raw(context.cast(), *planes) }?)
            }
            Input::Host(frame) => InputFrame::Host(host_nv12(frame)?),
        };
        // SAFETY: as above, for the output buffer, which nothing else touches while we hold it.
        let output = unsafe { DeviceNv12Mut::from_raw(self.output_context.cast(), self.output_planes) }?;
        Ok((input, output))
    }
}
