// SPDX-License-Identifier: MPL-2.0
//! Frames whose model run fails (`fallback=classic`): which failures give classic output instead of an error, and
//! how such a frame is counted and reported.

use super::{FrameBuffers, Upscaler};
use crate::classic::Fallback;
use crate::error::{Error, ErrorKind};

impl<F: FrameBuffers> Upscaler<F> {
    /// Whether a frame that failed with `e` gives classic output instead (`fallback=classic`, a model that ran, an
    /// error of the model's run rather than of the frame or of the API).
    pub(super) fn falls_back(&self, e: &Error) -> bool {
        self.engine.is_some() && frame_falls_back(self.output.fallback, e)
    }

    /// Counts a frame that gave classic output after `e` and notes why.
    pub(super) fn record_fallback(&mut self, e: &Error) {
        self.stats.fallback_frames += 1;
        self.history_valid = false;
        self.notes.push(format!("the model failed on this frame, classic output instead: {e}"));
        self.last_fallback = Some(e.to_string());
    }
}

/// Whether a frame whose model run failed with `e` gives classic output under `fallback`: for a failure of the run
/// (out of device memory even with the smallest tiles, a failed kernel or ONNX Runtime run, something missing), not
/// for a frame that does not match the negotiation, settings that cannot work or the API used out of order.
fn frame_falls_back(fallback: Fallback, e: &Error) -> bool {
    fallback == Fallback::Classic
        && !matches!(e.kind(), ErrorKind::Negotiation | ErrorKind::Usage | ErrorKind::Settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fall_back_after_failed_runs_and_out_of_memory_only_with_the_fallback() {
        let oom = Error::Cuda {
            call: "cuMemAlloc",
            source: cudarc::driver::DriverError(cudarc::driver::sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY),
        };
        assert!(oom.is_out_of_memory());
        let launch = Error::Cuda {
            call: "cuLaunchKernel",
            source: cudarc::driver::DriverError(cudarc::driver::sys::cudaError_enum::CUDA_ERROR_LAUNCH_FAILED),
        };
        let missing = Error::unavailable("CUDA", "no driver");
        for e in [&oom, &launch, &missing] {
            assert!(frame_falls_back(Fallback::Classic, e), "{e}");
            assert!(!frame_falls_back(Fallback::None, e), "{e}");
        }
        for e in [
            Error::Negotiation("frame 64x48 is not 32x32".into()),
            Error::InvalidConfig("tile-size 1 is below 64".into()),
            Error::Usage("no frame in flight".into()),
        ] {
            assert!(!frame_falls_back(Fallback::Classic, &e), "{e}");
        }
    }
}
