// SPDX-License-Identifier: MPL-2.0

//! The element's errors: core errors at start as `gst::ErrorMessage`s, and what can go wrong with one frame.

use gst::prelude::*;
use vfupscale::frame::Size;
use vfupscale::{Error, ErrorKind};

use crate::gstcuda;

/// A core error at start (READY→PAUSED) or when caps are set, as an element error, its text after `context` if
/// given: the GStreamer domain and code say what kind of problem it is (missing model, GPU or library; unreadable or
/// unusable model; bad settings; no memory; caps), by the error's kind, never by its text.
pub fn core_error(e: &Error, context: Option<&str>) -> gst::ErrorMessage {
    let msg = match context {
        Some(context) => format!("{context}: {e}"),
        None => e.to_string(),
    };
    match e.kind() {
        ErrorKind::MissingResource => gst::error_msg!(gst::ResourceError::NotFound, ("{}", msg)),
        ErrorKind::Model => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", msg)),
        ErrorKind::OutOfMemory => gst::error_msg!(gst::ResourceError::NoSpaceLeft, ("{}", msg)),
        ErrorKind::Settings => gst::error_msg!(gst::LibraryError::Settings, ("{}", msg)),
        ErrorKind::Negotiation => gst::error_msg!(gst::CoreError::Negotiation, ("{}", msg)),
        ErrorKind::Failed | ErrorKind::Usage => gst::error_msg!(gst::LibraryError::Init, ("{}", msg)),
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
    /// True when the frame does not fit what was negotiated: no caps, or a frame the prepared upscaler cannot take.
    fn is_negotiation(&self) -> bool {
        match self {
            FrameError::NotNegotiated => true,
            FrameError::Upscale(e) => e.is_negotiation(),
            _ => false,
        }
    }

    /// The flow return of the vfunc that met the error.
    pub fn flow(&self) -> gst::FlowError {
        if self.is_negotiation() { gst::FlowError::NotNegotiated } else { gst::FlowError::Error }
    }

    /// The element error naming the frame at `pts`.
    pub fn message(&self, pts: Option<gst::ClockTime>) -> gst::ErrorMessage {
        let pts = pts.display();
        match self {
            _ if self.is_negotiation() => {
                gst::error_msg!(gst::CoreError::Negotiation, ("Upscaling the frame at {} failed: {}", pts, self))
            }
            FrameError::InputSize { .. } | FrameError::MetaSize { .. } => {
                gst::error_msg!(gst::StreamError::Format, ("Upscaling the frame at {} failed: {}", pts, self))
            }
            FrameError::Upscale(e) if e.is_out_of_memory() => {
                gst::error_msg!(gst::ResourceError::NoSpaceLeft, ("Upscaling the frame at {} failed: {}", pts, self))
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
    fn core_errors_have_the_domain_of_their_kind() {
        let missing = Error::ModelNotFound { model: "no-such-model".into(), reason: "no such file".into() };
        let missing = posted(core_error(&missing, None));
        assert!(missing.matches(gst::ResourceError::NotFound), "{missing:?}");
        assert_eq!(missing.message(), "model no-such-model: no such file");
        let here = std::env::current_exe().unwrap();
        let corrupt = posted(core_error(&Error::model(&here, "not an ONNX model"), None));
        assert!(corrupt.matches(gst::ResourceError::OpenRead), "{corrupt:?}");
        assert!(corrupt.message().contains("not an ONNX model"));
        let gpu = posted(core_error(&Error::unavailable("CUDA", "no driver"), None));
        assert!(gpu.matches(gst::ResourceError::NotFound), "a missing GPU is a missing resource: {gpu:?}");
        assert_eq!(gpu.message(), "CUDA is not available: no driver");
        assert!(posted(core_error(&Error::InvalidConfig("x".into()), None)).matches(gst::LibraryError::Settings));
        assert!(posted(core_error(&Error::Usage("x".into()), None)).matches(gst::LibraryError::Init));
        let caps = posted(core_error(&Error::Negotiation("only 16x8".into()), Some("Cannot upscale video/x-raw")));
        assert!(caps.matches(gst::CoreError::Negotiation));
        assert_eq!(caps.message(), "Cannot upscale video/x-raw: only 16x8");
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
        // the core's negotiation errors (a frame the prepared upscaler cannot take) are not negotiated too
        let unprepared = FrameError::from(Error::Negotiation("frame 64x48 does not match the prepared size".into()));
        assert_eq!(unprepared.flow(), gst::FlowError::NotNegotiated);
        assert!(posted(unprepared.message(None)).matches(gst::CoreError::Negotiation));
        let failed = FrameError::from(Error::Usage("no GPU".into()));
        assert_eq!(failed.flow(), gst::FlowError::Error);
        assert!(posted(failed.message(None)).matches(gst::StreamError::Failed));
    }
}
