// SPDX-License-Identifier: MPL-2.0

//! What can go wrong in the `libgstcuda-1.0` layer.

use vfupscale::frame::Size;

/// An error of the GStreamer CUDA layer, naming the call or the buffer and the reason.
///
/// `Clone` because the outcome of loading the library is kept for the whole process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `libgstcuda-1.0.so.0` could not be opened.
    #[error("libgstcuda-1.0.so.0 (gst-plugins-bad's CUDA library) cannot be loaded: {0}")]
    Library(String),
    /// The library lacks a function we call.
    #[error("libgstcuda-1.0: symbol {symbol}: {reason}")]
    Symbol { symbol: &'static str, reason: String },
    /// `gst_cuda_load_library` failed.
    #[error("gst_cuda_load_library failed: GStreamer could not load the CUDA driver library")]
    DriverLibrary,
    /// `gst_cuda_context_new_wrapped` returned nothing.
    #[error("gst_cuda_context_new_wrapped failed for CUDA device {0}")]
    WrapContext(u32),
    /// A buffer mapped as CUDA memory holds more or fewer than one memory.
    #[error("expected one CUDA memory in the buffer, found {0} memories")]
    MemoryCount(u32),
    /// A buffer mapped as CUDA memory holds another kind of memory.
    #[error("the buffer's memory is not CUDA memory")]
    NotCudaMemory,
    /// `gst_buffer_map(GST_MAP_CUDA)` failed.
    #[error("gst_buffer_map(GST_MAP_CUDA) failed")]
    Map,
    /// The memory's own video info disagrees with the negotiated caps.
    #[error("CUDA memory holds {held}, caps say {caps}")]
    FrameSize { held: Size, caps: Size },
    /// The caps' format is not one the upscaler reads or writes.
    #[error("CUDA memory of format {0} cannot be upscaled")]
    Format(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
