// SPDX-License-Identifier: MPL-2.0
//! Per-kernel timing of the native engine: one run with a CUDA event recorded after each launch.

use cudarc::driver::CudaStream;
use cudarc::driver::sys::CUevent_flags;

use super::NativeEngine;
use crate::color::Affine3x4;
use crate::cuda::DeviceFrameMut;
use crate::error::{Error, Result};

impl NativeEngine {
    /// Runs the network once and returns each kernel's time in milliseconds (CUDA events), in order: the first
    /// layer, each hidden layer, the last layer and the final resize if any.
    pub fn profile(&mut self) -> Result<Vec<(String, f64)>> {
        self.profile_with(None)
    }

    /// [`NativeEngine::profile`] of [`NativeEngine::run_into_frame`]: the last layer is named `last-wgmma-nv12` or
    /// `last-wgmma-p010`.
    ///
    /// # Safety
    /// As for [`NativeEngine::run_into_frame`].
    pub unsafe fn profile_into_frame(
        &mut self,
        frame: &mut DeviceFrameMut<'_>,
        from_rgb: &Affine3x4,
    ) -> Result<Vec<(String, f64)>> {
        self.profile_with(Some((frame, from_rgb)))
    }

    /// The profile of a run into the output tensor or (`frame`) into a frame; waits for the run.
    fn profile_with(&mut self, frame: Option<(&mut DeviceFrameMut<'_>, &Affine3x4)>) -> Result<Vec<(String, f64)>> {
        let stream = self.stream.clone();
        time_launches(&stream, |after| self.launch_all(frame, after))
    }
}

/// Times the launches `launch` queues on `stream` (it calls the given callback with each launch's name right after
/// it): a CUDA event before the first and after each, then one wait; each launch's milliseconds, in order.
pub(in crate::native) fn time_launches(
    stream: &CudaStream,
    launch: impl FnOnce(&mut dyn FnMut(&'static str) -> Result<()>) -> Result<()>,
) -> Result<Vec<(String, f64)>> {
    let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let event = || stream.context().new_event(flags).map_err(Error::cuda("cuEventCreate"));
    let start = event()?;
    start.record(stream).map_err(Error::cuda("cuEventRecord"))?;
    let mut marks = Vec::new();
    launch(&mut |name| {
        let e = event()?;
        e.record(stream).map_err(Error::cuda("cuEventRecord"))?;
        marks.push((name, e));
        Ok(())
    })?;
    stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
    let mut previous = &start;
    let mut times = Vec::new();
    for (name, e) in &marks {
        times.push((name.to_string(), previous.elapsed_ms(e).map_err(Error::cuda("cuEventElapsedTime"))? as f64));
        previous = e;
    }
    Ok(times)
}
