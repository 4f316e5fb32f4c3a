// SPDX-License-Identifier: MPL-2.0
//! The conversion and blend kernels, one typed function per kernel taking device-memory views; launch geometry
//! lives here and nowhere else.

use cudarc::driver::{CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};

use super::memory::{DeviceNv12, DeviceNv12Mut, PlanarTensor, PlanarTensorMut};
use super::module::LoadedModule;
use crate::color::Affine3x4;
use crate::error::{Error, Result};
use crate::frame::{ElementType, Rect};
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

/// A pair of kernels, one per tensor element type.
#[derive(Debug)]
struct PerElement {
    f32: CudaFunction,
    f16: CudaFunction,
}

impl PerElement {
    fn new(module: &LoadedModule, stem: &str) -> Result<Self> {
        Ok(Self {
            f32: module.function(&format!("{stem}_f32"))?.clone(),
            f16: module.function(&format!("{stem}_f16"))?.clone(),
        })
    }

    fn of(&self, element: ElementType) -> &CudaFunction {
        match element {
            ElementType::F32 => &self.f32,
            ElementType::F16 => &self.f16,
        }
    }
}

/// The conversion kernels (`kernels/nv12_to_planar.cu`, `planar_to_nv12.cu`) and the blend kernel (`blend.cu`),
/// loaded into one context.
#[derive(Debug)]
pub struct ConversionKernels {
    nv12_to_planar: PerElement,
    planar_to_nv12: PerElement,
    blend_tile: PerElement,
}

fn int(v: u32) -> i32 {
    // sizes were checked against the kernels' 32-bit indexing when the views were made
    v as i32
}

impl ConversionKernels {
    pub(crate) fn new(to_planar: &LoadedModule, to_nv12: &LoadedModule, blend: &LoadedModule) -> Result<Self> {
        Ok(Self {
            nv12_to_planar: PerElement::new(to_planar, "nv12_to_planar")?,
            planar_to_nv12: PerElement::new(to_nv12, "planar_to_nv12")?,
            blend_tile: PerElement::new(blend, "blend_tile")?,
        })
    }

    /// Converts `region` of `src` into the planar tensor `dst` (whose size is the region's size), on `stream`.
    ///
    /// # Safety
    /// Both views' memory must stay valid until the work queued on `stream` has completed, and be memory of the
    /// stream's context.
    pub unsafe fn nv12_to_planar(
        &self,
        stream: &CudaStream,
        src: &DeviceNv12<'_>,
        yuv_to_rgb: &Affine3x4,
        region: Rect,
        dst: &mut PlanarTensorMut<'_>,
    ) -> Result<()> {
        if region.size() != dst.size() {
            return Err(Error::Usage(format!("region {region:?} does not match tensor size {}", dst.size())));
        }
        let p = src.planes();
        let (y_pitch, uv_pitch) = (p.y_pitch as i32, p.uv_pitch as i32);
        let (w, h) = (int(p.size.width), int(p.size.height));
        let (ow, oh) = (int(dst.size().width), int(dst.size().height));
        let out = dst.ptr();
        let mut args = stream.launch_builder(self.nv12_to_planar.of(dst.element()));
        args.arg(&p.y).arg(&y_pitch).arg(&p.uv).arg(&uv_pitch).arg(&w).arg(&h);
        args.arg(&region.x).arg(&region.y).arg(&out).arg(&ow).arg(&oh).arg(yuv_to_rgb);
        // SAFETY: argument types and order match the kernel signature; the views hold the memory the kernel touches
        // (checked when they were made), valid until the work completes per this function's contract.
        unsafe { args.launch(grid(dst.size().width, dst.size().height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Converts the planar tensor `src` into the NV12 frame `dst` of the same size, on `stream`.
    ///
    /// # Safety
    /// As for [`ConversionKernels::nv12_to_planar`].
    pub unsafe fn planar_to_nv12(
        &self,
        stream: &CudaStream,
        src: &PlanarTensor<'_>,
        rgb_to_yuv: &Affine3x4,
        dst: &mut DeviceNv12Mut<'_>,
    ) -> Result<()> {
        if src.size() != dst.size() {
            return Err(Error::Usage(format!("tensor {} does not match frame {}", src.size(), dst.size())));
        }
        let p = dst.planes();
        let (y_pitch, uv_pitch) = (p.y_pitch as i32, p.uv_pitch as i32);
        let (w, h) = (int(p.size.width), int(p.size.height));
        let chroma = p.size.chroma();
        let input = src.ptr();
        // 16-byte loads of the tensor's rows and 8-byte stores of the planes' where the layout allows (the kernel
        // converts 4 chroma samples per thread and falls back to single samples elsewhere: the bytes are the same)
        let vector = p.size.width.is_multiple_of(8)
            && input.is_multiple_of(16)
            && [p.y, p.uv, p.y_pitch as u64, p.uv_pitch as u64].iter().all(|v| v.is_multiple_of(8));
        let vector = vector as i32;
        let mut args = stream.launch_builder(self.planar_to_nv12.of(src.element()));
        args.arg(&input).arg(&w).arg(&h).arg(&p.y).arg(&y_pitch).arg(&p.uv).arg(&uv_pitch).arg(rgb_to_yuv).arg(&vector);
        // SAFETY: as above.
        unsafe { args.launch(grid(chroma.width.div_ceil(4), chroma.height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Adds the tile output `src` (planar, the tile's output size), weighted by the tile's ramps, into the planar
    /// float32 accumulation frame `acc`, on `stream`.
    ///
    /// # Safety
    /// As for [`ConversionKernels::nv12_to_planar`].
    pub unsafe fn blend_tile(
        &self,
        stream: &CudaStream,
        src: &PlanarTensor<'_>,
        tile: &Tile,
        acc: &mut PlanarTensorMut<'_>,
    ) -> Result<()> {
        let acc_size = acc.size();
        if src.size() != tile.output.size()
            || acc.element() != ElementType::F32
            || tile.output.x < 0
            || tile.output.y < 0
            || tile.output.x as u32 + tile.output.width > acc_size.width
            || tile.output.y as u32 + tile.output.height > acc_size.height
        {
            return Err(Error::Usage(format!(
                "tile {:?} does not fit the {acc_size} {} accumulation frame",
                tile.output,
                acc.element()
            )));
        }
        let (tw, th) = (int(src.size().width), int(src.size().height));
        let (aw, ah) = (int(acc_size.width), int(acc_size.height));
        let (input, frame) = (src.ptr(), acc.ptr());
        let mut args = stream.launch_builder(self.blend_tile.of(src.element()));
        args.arg(&input).arg(&tw).arg(&th).arg(&frame).arg(&aw).arg(&ah);
        args.arg(&tile.output.x).arg(&tile.output.y).arg(&tile.ramps[0]).arg(&tile.ramps[1]);
        // SAFETY: as above.
        unsafe { args.launch(grid(src.size().width, src.size().height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}
