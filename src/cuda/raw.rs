// SPDX-License-Identifier: MPL-2.0
//! The raw CUDA driver and NVRTC calls cudarc has no safe API for, in one place: library presence, versions,
//! pitched and peer copies. Everything else goes through cudarc's safe wrappers; the safe wrappers of these are
//! beside this file (`copy.rs`, `memory.rs`, `mod.rs`).

use std::ptr;
use std::sync::OnceLock;

use cudarc::driver::sys as cu;
use cudarc::driver::{CudaStream, DriverError};

/// Whether `libcuda.so.1` can be loaded (checked once per process).
pub fn driver_library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen the driver library; no CUDA call is made.
    *PRESENT.get_or_init(|| unsafe { cu::is_culib_present() })
}

/// Whether NVRTC can be loaded (checked once per process).
pub fn nvrtc_library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen NVRTC; no NVRTC call is made.
    *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

/// `cuDriverGetVersion`: the CUDA version the driver supports, e.g. 13000. The driver must be initialised.
pub fn driver_version() -> Result<i32, DriverError> {
    let mut version = 0;
    // SAFETY: the caller initialised the driver (cuInit); `version` is a valid out-pointer.
    unsafe { cu::cuDriverGetVersion(&mut version) }.result()?;
    Ok(version)
}

/// `nvrtcVersion` as `(major, minor)`, or `None` when NVRTC is absent or fails.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_library_present() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is present (checked above); both out-pointers are valid.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// One plane of a pitched 2D copy: its address, pitch and (for device memory) context.
#[derive(Debug, Clone, Copy)]
pub enum Plane {
    Host { ptr: *const u8, pitch: usize },
    Device { ptr: cu::CUdeviceptr, pitch: usize, context: cu::CUcontext },
}

/// Queues a copy of `rows` rows of `row_bytes` from `src` to the device plane `dst` on `stream`
/// (`cuMemcpy3DPeerAsync` between device planes, which may be in different contexts of one device;
/// `cuMemcpy2DAsync` from host memory).
///
/// # Safety
/// Both planes must hold `rows` rows of `row_bytes` at their pitch, device planes in their contexts, and stay valid
/// (the host plane unchanged) until the copy has completed on `stream`.
pub unsafe fn copy_plane(
    stream: &CudaStream,
    src: Plane,
    dst: (cu::CUdeviceptr, usize, cu::CUcontext),
    row_bytes: usize,
    rows: usize,
) -> Result<(), DriverError> {
    let (dst_ptr, dst_pitch, dst_context) = dst;
    match src {
        Plane::Device { ptr: src_ptr, pitch: src_pitch, context: src_context } => {
            let copy = cu::CUDA_MEMCPY3D_PEER {
                srcXInBytes: 0,
                srcY: 0,
                srcZ: 0,
                srcLOD: 0,
                srcMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
                srcHost: ptr::null(),
                srcDevice: src_ptr,
                srcArray: ptr::null_mut(),
                srcContext: src_context,
                srcPitch: src_pitch,
                srcHeight: rows,
                dstXInBytes: 0,
                dstY: 0,
                dstZ: 0,
                dstLOD: 0,
                dstMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
                dstHost: ptr::null_mut(),
                dstDevice: dst_ptr,
                dstArray: ptr::null_mut(),
                dstContext: dst_context,
                dstPitch: dst_pitch,
                dstHeight: rows,
                WidthInBytes: row_bytes,
                Height: rows,
                Depth: 1,
            };
            // SAFETY: the descriptor is fully initialised; the planes' validity is the caller's contract.
            unsafe { cu::cuMemcpy3DPeerAsync(&copy, stream.cu_stream()) }.result()
        }
        Plane::Host { ptr: src_ptr, pitch: src_pitch } => {
            let copy = cu::CUDA_MEMCPY2D {
                srcXInBytes: 0,
                srcY: 0,
                srcMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_HOST,
                srcHost: src_ptr.cast(),
                srcDevice: 0,
                srcArray: ptr::null_mut(),
                srcPitch: src_pitch,
                dstXInBytes: 0,
                dstY: 0,
                dstMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
                dstHost: ptr::null_mut(),
                dstDevice: dst_ptr,
                dstArray: ptr::null_mut(),
                dstPitch: dst_pitch,
                WidthInBytes: row_bytes,
                Height: rows,
            };
            // SAFETY: the descriptor is fully initialised; the planes' validity is the caller's contract.
            unsafe { cu::cuMemcpy2DAsync_v2(&copy, stream.cu_stream()) }.result()
        }
    }
}

/// Queues a copy of `rows` rows of `row_bytes` from the device plane `src` into host memory on `stream`.
///
/// # Safety
/// `src` must hold the rows at its pitch in the stream's context, `dst` at least `rows × dst_pitch` bytes (the last
/// row `row_bytes`), both valid until the copy has completed.
pub unsafe fn download_plane(
    stream: &CudaStream,
    src: (cu::CUdeviceptr, usize),
    dst: (*mut u8, usize),
    row_bytes: usize,
    rows: usize,
) -> Result<(), DriverError> {
    let copy = cu::CUDA_MEMCPY2D {
        srcXInBytes: 0,
        srcY: 0,
        srcMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_DEVICE,
        srcHost: ptr::null(),
        srcDevice: src.0,
        srcArray: ptr::null_mut(),
        srcPitch: src.1,
        dstXInBytes: 0,
        dstY: 0,
        dstMemoryType: cu::CUmemorytype::CU_MEMORYTYPE_HOST,
        dstHost: dst.0.cast(),
        dstDevice: 0,
        dstArray: ptr::null_mut(),
        dstPitch: dst.1,
        WidthInBytes: row_bytes,
        Height: rows,
    };
    // SAFETY: the descriptor is fully initialised; the planes' validity is the caller's contract.
    unsafe { cu::cuMemcpy2DAsync_v2(&copy, stream.cu_stream()) }.result()
}

/// Queues a copy of host `src` to the device address `dst`.
///
/// # Safety
/// `dst` must hold `src.len()` bytes of the stream's context; `src` must stay valid until the copy has completed.
pub unsafe fn upload_bytes(stream: &CudaStream, src: &[u8], dst: cu::CUdeviceptr) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { cu::cuMemcpyHtoDAsync_v2(dst, src.as_ptr().cast(), src.len(), stream.cu_stream()) }.result()
}

/// Queues a copy of `dst.len()` bytes from the device address `src` to host memory.
///
/// # Safety
/// `src` must hold `dst.len()` bytes of the stream's context; `dst` must stay valid until the copy has completed.
pub unsafe fn download_bytes(stream: &CudaStream, src: cu::CUdeviceptr, dst: &mut [u8]) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { cu::cuMemcpyDtoHAsync_v2(dst.as_mut_ptr().cast(), src, dst.len(), stream.cu_stream()) }.result()
}
