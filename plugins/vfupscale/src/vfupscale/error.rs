// SPDX-License-Identifier: MPL-2.0

//! The element's errors: core errors at start as `gst::ErrorMessage`s, and what can go wrong with one frame.

use gst::prelude::*;
use vfupscale::Error;
use vfupscale::frame::Size;

use crate::gstcuda;

/// A core error at start (READY→PAUSED) as an element error: the GStreamer domain and code say what kind of
/// problem it is (missing file, unreadable or unusable model, library that cannot start, bad settings, no memory).
pub fn start_error(e: &Error) -> gst::ErrorMessage {
    let msg = e.to_string();
    match e {
        Error::Model { path, .. } if !path.exists() => gst::error_msg!(gst::ResourceError::NotFound, ("{}", msg)),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", msg))
        }
        Error::Model { .. } | Error::Io { .. } | Error::Import(_) => {
            gst::error_msg!(gst::ResourceError::OpenRead, ("{}", msg))
        }
        Error::OutOfMemory(_) => gst::error_msg!(gst::ResourceError::NoSpaceLeft, ("{}", msg)),
        Error::InvalidConfig(_) => gst::error_msg!(gst::LibraryError::Settings, ("{}", msg)),
        Error::Cuda { .. } | Error::Nvrtc { .. } | Error::Ort(_) | Error::Unavailable { .. } => {
            gst::error_msg!(gst::LibraryError::Init, ("{}", msg))
        }
    }
}

/// Why a frame could not be upscaled.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A buffer arrived before caps were set (or after they were refused).
    #[error("no caps were negotiated")]
    NotNegotiated,
    /// A system-memory buffer without a video meta whose size is not the negotiated frame's.
    #[error("the input buffer holds {got} bytes, but a {frame} NV12 frame of the negotiated caps takes {expected}")]
    InputSize { got: usize, frame: Size, expected: usize },
    /// A buffer whose video meta describes another frame than the caps.
    #[error("the input buffer's video meta describes a {meta} frame, but the caps say {caps}")]
    MetaSize { meta: Size, caps: Size },
    /// CUDA caps were negotiated, but there is no `GstCudaContext` to read and write CUDA memory in.
    #[error("no GstCudaContext of our device: CUDA memory needs gst-plugins-bad's CUDA library (libgstcuda-1.0)")]
    NoCudaContext,
    /// A system-memory buffer that cannot be mapped as a video frame.
    #[error("cannot map the {0} buffer as a video frame")]
    Map(&'static str),
    /// The GStreamer CUDA layer refused a buffer.
    #[error("{0}")]
    Cuda(#[from] gstcuda::Error),
    /// The core failed on the frame.
    #[error("{0}")]
    Upscale(#[from] Error),
}

impl FrameError {
    /// The flow return of the vfunc that met the error.
    pub fn flow(&self) -> gst::FlowError {
        match self {
            FrameError::NotNegotiated => gst::FlowError::NotNegotiated,
            _ => gst::FlowError::Error,
        }
    }

    /// The element error naming the frame at `pts`.
    pub fn message(&self, pts: Option<gst::ClockTime>) -> gst::ErrorMessage {
        let pts = pts.display();
        match self {
            FrameError::NotNegotiated => {
                gst::error_msg!(gst::CoreError::Negotiation, ("Upscaling the frame at {} failed: {}", pts, self))
            }
            FrameError::InputSize { .. } | FrameError::MetaSize { .. } => {
                gst::error_msg!(gst::StreamError::Format, ("Upscaling the frame at {} failed: {}", pts, self))
            }
            _ => gst::error_msg!(gst::StreamError::Failed, ("Upscaling the frame at {} failed: {}", pts, self)),
        }
    }
}

/// The error an element posts for `msg` (an `ErrorMessage` keeps its domain and code to itself).
#[cfg(test)]
pub fn posted(msg: gst::ErrorMessage) -> gst::glib::Error {
    gst::init().unwrap();
    let element = gst::ElementFactory::make("identity").build().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    element.post_error_message(msg);
    match bus.pop().expect("an error message").view() {
        gst::MessageView::Error(e) => e.error(),
        other => panic!("not an error: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_have_the_domain_of_their_cause() {
        let missing = posted(start_error(&Error::model("/nonexistent/m.onnx", "cannot read")));
        assert!(missing.matches(gst::ResourceError::NotFound), "{missing:?}");
        let here = std::env::current_exe().unwrap();
        let corrupt = posted(start_error(&Error::model(&here, "not an ONNX model")));
        assert!(corrupt.matches(gst::ResourceError::OpenRead), "{corrupt:?}");
        assert!(corrupt.message().contains("not an ONNX model"));
        let gpu = posted(start_error(&Error::unavailable("CUDA", "no driver")));
        assert!(gpu.matches(gst::LibraryError::Init));
        assert_eq!(gpu.message(), "CUDA is not available: no driver");
        assert!(posted(start_error(&Error::InvalidConfig("x".into()))).matches(gst::LibraryError::Settings));
        assert!(posted(start_error(&Error::OutOfMemory("x".into()))).matches(gst::ResourceError::NoSpaceLeft));
    }

    #[test]
    fn only_a_missing_negotiation_is_not_negotiated() {
        gst::init().unwrap();
        assert_eq!(FrameError::NotNegotiated.flow(), gst::FlowError::NotNegotiated);
        let size = FrameError::InputSize { got: 9216, frame: Size::new(64, 48), expected: 4608 };
        assert_eq!(size.flow(), gst::FlowError::Error);
        let m = posted(size.message(Some(gst::ClockTime::ZERO)));
        assert!(m.matches(gst::StreamError::Format));
        assert_eq!(
            m.message(),
            "Upscaling the frame at 0:00:00.000000000 failed: the input buffer holds 9216 bytes, but a 64x48 NV12 \
             frame of the negotiated caps takes 4608"
        );
        assert_eq!(FrameError::Map("output").flow(), gst::FlowError::Error);
        assert!(posted(FrameError::NotNegotiated.message(None)).matches(gst::CoreError::Negotiation));
    }
}
