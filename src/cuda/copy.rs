//! Copies of NV12 frames into device memory of our context, for inputs that cannot be read in place: frames in
//! another CUDA context (peer copy, device to device) and frames in host memory (upload). Each such copy is
//! counted by the caller; the zero-copy path uses none of this.

use std::ptr;

use cudarc::driver::sys as cu;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use super::driver_error;
use crate::error::Result;
use crate::frame::{DeviceNv12, HostNv12, Size};

/// Row pitch of staging frames: 256-byte aligned rows, as the driver's own pitched allocations use.
fn pitch(width: u32) -> usize {
    (width as usize).next_multiple_of(256)
}

/// An NV12 frame in device memory of our context.
pub struct StagingNv12 {
    memory: CudaSlice<u8>,
    size: Size,
}

impl StagingNv12 {
    pub fn new(stream: &std::sync::Arc<CudaStream>, size: Size) -> Result<Self> {
        let p = pitch(size.width);
        let bytes = p * (size.height as usize + size.chroma().height as usize);
        let memory = stream.alloc_zeros::<u8>(bytes).map_err(|e| driver_error("cuMemAlloc", e))?;
        Ok(Self { memory, size })
    }

    pub fn size(&self) -> Size {
        self.size
    }

    pub fn bytes(&self) -> usize {
        self.memory.len()
    }

    /// The frame's planes.
    pub fn frame(&self, stream: &CudaStream) -> DeviceNv12 {
        let (base, _sync) = self.memory.device_ptr(stream);
        let p = pitch(self.size.width);
        // SAFETY: both planes lie inside `memory` (allocated for luma rows plus chroma rows at pitch `p`), which
        // lives as long as `self`.
        unsafe { DeviceNv12::new(self.size, base, p, base + (p * self.size.height as usize) as u64, p) }
    }
}

/// Rows and row bytes of the two NV12 planes.
fn planes(size: Size) -> [(usize, usize); 2] {
    let c = size.chroma();
    [(size.width as usize, size.height as usize), (2 * c.width as usize, c.height as usize)]
}

/// Queues a copy of `src` (in context `src_ctx`) into `dst` (in context `dst_ctx`) on `stream`.
///
/// # Safety
/// Both frames must be valid device memory of their contexts and of the same size, until the copy completes.
pub unsafe fn copy_between_contexts(
    stream: &CudaStream,
    src: &DeviceNv12,
    src_ctx: cu::CUcontext,
    dst: &DeviceNv12,
    dst_ctx: cu::CUcontext,
) -> Result<()> {
    let srcs = [(src.y, src.y_pitch), (src.uv, src.uv_pitch)];
    let dsts = [(dst.y, dst.y_pitch), (dst.uv, dst.uv_pitch)];
    for (((s, sp), (d, dp)), (row_bytes, rows)) in srcs.into_iter().zip(dsts).zip(planes(src.size)) {
        let copy = cu::CUDA_MEMCPY3D_PEER {
            srcXInBytes: 0,
            srcY: 0,
            srcZ: 0,
            srcLOD: 0,
            srcMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: ptr::null(),
            srcDevice: s,
            srcArray: ptr::null_mut(),
            srcContext: src_ctx,
            srcPitch: sp,
            srcHeight: rows,
            dstXInBytes: 0,
            dstY: 0,
            dstZ: 0,
            dstLOD: 0,
            dstMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: ptr::null_mut(),
            dstDevice: d,
            dstArray: ptr::null_mut(),
            dstContext: dst_ctx,
            dstPitch: dp,
            dstHeight: rows,
            WidthInBytes: row_bytes,
            Height: rows,
            Depth: 1,
        };
        // SAFETY: the descriptor is fully initialised; pointer validity is the caller's contract.
        unsafe { cu::cuMemcpy3DPeerAsync(&copy, stream.cu_stream()) }
            .result()
            .map_err(|e| driver_error("cuMemcpy3DPeerAsync", e))?;
    }
    Ok(())
}

/// Queues an upload of host `src` into device `dst` on `stream`.
///
/// # Safety
/// `dst` must be valid device memory of the stream's context and the host planes must stay alive and unchanged
/// until the copy has completed (the caller synchronises the stream before releasing them).
pub unsafe fn upload(stream: &CudaStream, src: &HostNv12, dst: &DeviceNv12) -> Result<()> {
    let srcs = [(src.y.as_ptr(), src.y_stride), (src.uv.as_ptr(), src.uv_stride)];
    let dsts = [(dst.y, dst.y_pitch), (dst.uv, dst.uv_pitch)];
    for (((s, sp), (d, dp)), (row_bytes, rows)) in srcs.into_iter().zip(dsts).zip(planes(src.size)) {
        let copy = cu::CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_HOST,
            srcHost: s.cast(),
            srcDevice: 0,
            srcArray: ptr::null_mut(),
            srcPitch: sp,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: ptr::null_mut(),
            dstDevice: d,
            dstArray: ptr::null_mut(),
            dstPitch: dp,
            WidthInBytes: row_bytes,
            Height: rows,
        };
        // SAFETY: the descriptor is fully initialised; HostNv12 checked its planes hold these rows.
        unsafe { cu::cuMemcpy2DAsync_v2(&copy, stream.cu_stream()) }
            .result()
            .map_err(|e| driver_error("cuMemcpy2DAsync", e))?;
    }
    Ok(())
}
