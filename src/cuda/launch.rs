//! One typed function per kernel; launch geometry lives here and nowhere else.

use cudarc::driver::{CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};

use super::{GpuDevice, driver_error};
use crate::color::Affine3x4;
use crate::error::{Error, Result};
use crate::frame::{DeviceNv12, ElementType, Rect, Size};
use crate::tiling::{AxisRamp, Tile};

// SAFETY: `Affine3x4` is `#[repr(C)]` plain floats, laid out as `struct Affine3x4 { float m[3][4]; }` in the kernels.
unsafe impl DeviceRepr for Affine3x4 {}
// SAFETY: `AxisRamp` is `#[repr(C)]` plain floats, laid out as `struct AxisRamp { float rise[2]; float fall[2]; }`.
unsafe impl DeviceRepr for AxisRamp {}

/// Threads per block: 32 wide for coalesced rows, 8 rows.
const BLOCK: (u32, u32) = (32, 8);

fn grid(width: u32, height: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (width.div_ceil(BLOCK.0), height.div_ceil(BLOCK.1), 1),
        block_dim: (BLOCK.0, BLOCK.1, 1),
        shared_mem_bytes: 0,
    }
}

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidConfig(format!("{what} {v} exceeds the kernels' 32-bit indexing")))
}

/// A planar RGB tensor `[3, height, width]` in device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePlanar {
    pub ptr: u64,
    pub size: Size,
    pub element: ElementType,
}

/// Converts `region` of `src` into the planar tensor `dst` (whose size is the region's size), on `stream`.
///
/// # Safety
/// `src` must describe valid NV12 planes of the device's context, `dst.ptr` must point to at least
/// `3 × dst.size.pixels()` elements of `dst.element` in that context, and both must stay valid until the work
/// queued on `stream` has completed.
pub unsafe fn nv12_to_planar(
    device: &GpuDevice,
    stream: &CudaStream,
    src: &DeviceNv12,
    yuv_to_rgb: &Affine3x4,
    region: Rect,
    dst: DevicePlanar,
) -> Result<()> {
    if region.size() != dst.size {
        return Err(Error::InvalidConfig(format!("region {:?} does not match tensor size {}", region, dst.size)));
    }
    let f: &CudaFunction = match dst.element {
        ElementType::F32 => &device.kernels.nv12_to_planar_f32,
        ElementType::F16 => &device.kernels.nv12_to_planar_f16,
    };
    let (y_pitch, uv_pitch) = (int(src.y_pitch, "luma pitch")?, int(src.uv_pitch, "chroma pitch")?);
    let (w, h) = (src.size.width as i32, src.size.height as i32);
    let (ow, oh) = (dst.size.width as i32, dst.size.height as i32);
    let mut args = stream.launch_builder(f);
    args.arg(&src.y).arg(&y_pitch).arg(&src.uv).arg(&uv_pitch).arg(&w).arg(&h);
    args.arg(&region.x).arg(&region.y).arg(&dst.ptr).arg(&ow).arg(&oh).arg(yuv_to_rgb);
    // SAFETY: argument types and order match the kernel signature; the pointers' validity is the caller's contract.
    unsafe { args.launch(grid(dst.size.width, dst.size.height)) }.map_err(|e| driver_error("cuLaunchKernel", e))?;
    Ok(())
}

/// Converts the planar tensor `src` into the NV12 frame `dst` of the same size, on `stream`.
///
/// # Safety
/// As for [`nv12_to_planar`], with `src` read and `dst` written.
pub unsafe fn planar_to_nv12(
    device: &GpuDevice,
    stream: &CudaStream,
    src: DevicePlanar,
    rgb_to_yuv: &Affine3x4,
    dst: &DeviceNv12,
) -> Result<()> {
    if src.size != dst.size {
        return Err(Error::InvalidConfig(format!("tensor {} does not match frame {}", src.size, dst.size)));
    }
    let f: &CudaFunction = match src.element {
        ElementType::F32 => &device.kernels.planar_to_nv12_f32,
        ElementType::F16 => &device.kernels.planar_to_nv12_f16,
    };
    let (y_pitch, uv_pitch) = (int(dst.y_pitch, "luma pitch")?, int(dst.uv_pitch, "chroma pitch")?);
    let (w, h) = (dst.size.width as i32, dst.size.height as i32);
    let chroma = dst.size.chroma();
    let mut args = stream.launch_builder(f);
    args.arg(&src.ptr).arg(&w).arg(&h).arg(&dst.y).arg(&y_pitch).arg(&dst.uv).arg(&uv_pitch).arg(rgb_to_yuv);
    // SAFETY: as above.
    unsafe { args.launch(grid(chroma.width, chroma.height)) }.map_err(|e| driver_error("cuLaunchKernel", e))?;
    Ok(())
}

/// Adds the tile output `src` (planar, the tile's output size), weighted by the tile's ramps, into the planar
/// float32 accumulation frame `acc` of `acc_size`, on `stream`.
///
/// # Safety
/// `src` must hold `3 × tile.output` elements and `acc` `3 × acc_size` floats of this device's context, valid until
/// the work completes; the tile's output rectangle must lie inside `acc_size`.
pub unsafe fn blend_tile(
    device: &GpuDevice,
    stream: &CudaStream,
    src: DevicePlanar,
    tile: &Tile,
    acc: u64,
    acc_size: Size,
) -> Result<()> {
    if src.size != tile.output.size()
        || tile.output.x < 0
        || tile.output.y < 0
        || tile.output.x as u32 + tile.output.width > acc_size.width
        || tile.output.y as u32 + tile.output.height > acc_size.height
    {
        return Err(Error::InvalidConfig(format!("tile {:?} does not fit the {acc_size} frame", tile.output)));
    }
    let f: &CudaFunction = match src.element {
        ElementType::F32 => &device.kernels.blend_tile_f32,
        ElementType::F16 => &device.kernels.blend_tile_f16,
    };
    let (tw, th) = (src.size.width as i32, src.size.height as i32);
    let (aw, ah) = (acc_size.width as i32, acc_size.height as i32);
    let mut args = stream.launch_builder(f);
    args.arg(&src.ptr).arg(&tw).arg(&th).arg(&acc).arg(&aw).arg(&ah);
    args.arg(&tile.output.x).arg(&tile.output.y).arg(&tile.ramps[0]).arg(&tile.ramps[1]);
    // SAFETY: argument types and order match the kernel signature; pointer validity is the caller's contract.
    unsafe { args.launch(grid(src.size.width, src.size.height)) }.map_err(|e| driver_error("cuLaunchKernel", e))?;
    Ok(())
}
