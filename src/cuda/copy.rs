// SPDX-License-Identifier: MPL-2.0
//! Copies of NV12 frames into device memory of our context, for inputs that cannot be read in place: frames in
//! another CUDA context (peer copy, device to device) and frames in host memory (upload). Each such copy is
//! counted by the caller; the zero-copy path uses none of this.

use cudarc::driver::CudaStream;

use super::memory::{DeviceNv12, DeviceNv12Mut};
use super::raw::{self, Plane};
use crate::error::{Error, Result};
use crate::frame::HostNv12;

/// Queues a copy of `src` (in any context of the device) into `dst` (of the same size) on `stream`.
///
/// # Safety
/// Both frames' memory must stay valid (and `src` unchanged) until the copy has completed on `stream`.
pub unsafe fn copy_between_contexts(
    stream: &CudaStream,
    src: &DeviceNv12<'_>,
    dst: &mut DeviceNv12Mut<'_>,
) -> Result<()> {
    if src.size() != dst.size() {
        return Err(Error::Usage(format!("copying a {} frame into a {} frame", src.size(), dst.size())));
    }
    let (s, d) = (src.planes(), dst.planes());
    let planes = [(s.y, s.y_pitch, d.y, d.y_pitch), (s.uv, s.uv_pitch, d.uv, d.uv_pitch)];
    for ((sp, spitch, dp, dpitch), (_, row_bytes, rows)) in planes.into_iter().zip(s.rows()) {
        let from = Plane::Device { ptr: sp, pitch: spitch, context: src.context() };
        // SAFETY: the views hold these rows (checked when they were made); validity until completion is this
        // function's contract.
        unsafe { raw::copy_plane(stream, from, (dp, dpitch, dst.context()), row_bytes, rows) }
            .map_err(Error::cuda("cuMemcpy3DPeerAsync"))?;
    }
    Ok(())
}

/// Queues an upload of the host frame `src` into `dst` (of the same size) on `stream`.
///
/// # Safety
/// `dst`'s memory must stay valid, and the host planes alive and unchanged, until the copy has completed.
pub unsafe fn upload(stream: &CudaStream, src: &HostNv12<'_>, dst: &mut DeviceNv12Mut<'_>) -> Result<()> {
    if src.size != dst.size() {
        return Err(Error::Usage(format!("uploading a {} frame into a {} frame", src.size, dst.size())));
    }
    let d = dst.planes();
    let planes = [(src.y.as_ptr(), src.y_stride, d.y, d.y_pitch), (src.uv.as_ptr(), src.uv_stride, d.uv, d.uv_pitch)];
    for ((sp, spitch, dp, dpitch), (_, row_bytes, rows)) in planes.into_iter().zip(d.rows()) {
        let from = Plane::Host { ptr: sp, pitch: spitch };
        // SAFETY: `HostNv12` checked that its planes hold these rows, the view that it holds them; validity until
        // completion is this function's contract.
        unsafe { raw::copy_plane(stream, from, (dp, dpitch, dst.context()), row_bytes, rows) }
            .map_err(Error::cuda("cuMemcpy2DAsync"))?;
    }
    Ok(())
}
