// SPDX-License-Identifier: MPL-2.0
//! Copies of frames into device memory of our context, for inputs that cannot be read in place: frames in another
//! CUDA context (peer copy, device to device) and frames in host memory (upload). Each such copy is counted by the
//! caller; the zero-copy path uses none of this.

use cudarc::driver::CudaStream;

use super::memory::{DeviceFrame, DeviceFrameMut};
use super::raw::{self, Plane};
use crate::error::{Error, Result};
use crate::frame::HostFrame;

/// Queues a copy of `src` (in any context of the device) into `dst` (of the same format and size) on `stream`.
///
/// # Safety
/// Both frames' memory must stay valid (and `src` unchanged) until the copy has completed on `stream`.
pub unsafe fn copy_between_contexts(
    stream: &CudaStream,
    src: &DeviceFrame<'_>,
    dst: &mut DeviceFrameMut<'_>,
) -> Result<()> {
    if (src.format(), src.size()) != (dst.format(), dst.size()) {
        return Err(Error::Usage(format!(
            "copying a {} {} frame into a {} {} frame",
            src.size(),
            src.format(),
            dst.size(),
            dst.format()
        )));
    }
    let (s, d) = (src.planes(), dst.planes());
    for (i, (spitch, row_bytes, rows)) in s.rows().into_iter().enumerate() {
        let from = Plane::Device { ptr: s.ptr[i], pitch: spitch, context: src.context() };
        // SAFETY: the views hold these rows (checked when they were made); validity until completion is this
        // function's contract.
        unsafe { raw::copy_plane(stream, from, (d.ptr[i], d.pitch[i], dst.context()), row_bytes, rows) }
            .map_err(Error::cuda("cuMemcpy3DPeerAsync"))?;
    }
    Ok(())
}

/// Queues an upload of the host frame `src` into `dst` (of the same format and size) on `stream`.
///
/// # Safety
/// `dst`'s memory must stay valid, and the host planes alive and unchanged, until the copy has completed.
pub unsafe fn upload(stream: &CudaStream, src: &HostFrame<'_>, dst: &mut DeviceFrameMut<'_>) -> Result<()> {
    if (src.format, src.size) != (dst.format(), dst.size()) {
        return Err(Error::Usage(format!(
            "uploading a {} {} frame into a {} {} frame",
            src.size,
            src.format,
            dst.size(),
            dst.format()
        )));
    }
    let d = dst.planes();
    for (i, (dpitch, row_bytes, rows)) in d.rows().into_iter().enumerate() {
        let from = Plane::Host { ptr: src.planes[i].as_ptr(), pitch: src.strides[i] };
        // SAFETY: `HostFrame` checked that its planes hold these rows, the view that it holds them; validity until
        // completion is this function's contract.
        unsafe { raw::copy_plane(stream, from, (d.ptr[i], dpitch, dst.context()), row_bytes, rows) }
            .map_err(Error::cuda("cuMemcpy2DAsync"))?;
    }
    Ok(())
}
