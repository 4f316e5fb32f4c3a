// SPDX-License-Identifier: MPL-2.0
//! The conversion and blend kernels, one typed function per kernel taking device-memory views; launch geometry
//! lives here and nowhere else.

use cudarc::driver::{CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};

use super::memory::{DeviceFrame, DeviceFrameMut, PlanarTensor, PlanarTensorMut};
use super::module::LoadedModule;
use crate::color::Affine3x4;
use crate::error::{Error, Result};
use crate::format::FormatLayout;
use crate::frame::{ElementType, Rect};
use crate::tiling::{AxisRamp, Tile};

// SAFETY: `Affine3x4` is `#[repr(C)]` plain floats, laid out as `struct Affine3x4 { float m[3][4]; }` in the kernels.
unsafe impl DeviceRepr for Affine3x4 {}
// SAFETY: `FormatLayout` is `#[repr(C)]` plain `i32`s, laid out as `struct FormatLayout` in `kernels/common.cuh`.
unsafe impl DeviceRepr for FormatLayout {}
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

/// The conversion kernels (`kernels/frame_to_planar.cu`, `planar_to_frame.cu`, `fill_extra.cu`) and the blend
/// kernel (`blend.cu`), loaded into one context.
#[derive(Debug)]
pub struct ConversionKernels {
    frame_to_planar: PerElement,
    planar_to_frame: PerElement,
    fill_extra: CudaFunction,
    blend_tile: PerElement,
}

fn int(v: u32) -> i32 {
    // sizes were checked against the kernels' 32-bit indexing when the views were made
    v as i32
}

impl ConversionKernels {
    pub(crate) fn new(
        to_planar: &LoadedModule,
        to_frame: &LoadedModule,
        extra: &LoadedModule,
        blend: &LoadedModule,
    ) -> Result<Self> {
        Ok(Self {
            frame_to_planar: PerElement::new(to_planar, "frame_to_planar")?,
            planar_to_frame: PerElement::new(to_frame, "planar_to_frame")?,
            fill_extra: extra.function("fill_extra")?.clone(),
            blend_tile: PerElement::new(blend, "blend_tile")?,
        })
    }

    /// Converts `region` of `src` into the planar tensor `dst` (whose size is the region's size), on `stream`;
    /// `to_rgb` maps the frame's code values ([`crate::color::code_to_rgb`]).
    ///
    /// # Safety
    /// Both views' memory must stay valid until the work queued on `stream` has completed, and be memory of the
    /// stream's context.
    pub unsafe fn frame_to_planar(
        &self,
        stream: &CudaStream,
        src: &DeviceFrame<'_>,
        to_rgb: &Affine3x4,
        region: Rect,
        dst: &mut PlanarTensorMut<'_>,
    ) -> Result<()> {
        if region.size() != dst.size() {
            return Err(Error::Usage(format!("region {region:?} does not match tensor size {}", dst.size())));
        }
        let p = src.planes();
        let (pitch0, pitch1) = (p.pitch[0] as i32, p.pitch[1] as i32);
        let (w, h) = (int(p.size.width), int(p.size.height));
        let (ow, oh) = (int(dst.size().width), int(dst.size().height));
        let (out, layout) = (dst.ptr(), p.format.layout());
        let mut args = stream.launch_builder(self.frame_to_planar.of(dst.element()));
        args.arg(&p.ptr[0]).arg(&pitch0).arg(&p.ptr[1]).arg(&pitch1).arg(&w).arg(&h).arg(&layout);
        args.arg(&region.x).arg(&region.y).arg(&out).arg(&ow).arg(&oh).arg(to_rgb);
        // SAFETY: argument types and order match the kernel signature; the views hold the memory the kernel touches
        // (checked when they were made), valid until the work completes per this function's contract.
        unsafe { args.launch(grid(dst.size().width, dst.size().height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Converts the planar tensor `src` into the three components of the frame `dst` of the same size, on
    /// `stream`; `from_rgb` gives the frame's code values ([`crate::color::rgb_to_code`]). A fourth sample per pixel
    /// is left to [`ConversionKernels::fill_extra`].
    ///
    /// # Safety
    /// As for [`ConversionKernels::frame_to_planar`].
    pub unsafe fn planar_to_frame(
        &self,
        stream: &CudaStream,
        src: &PlanarTensor<'_>,
        from_rgb: &Affine3x4,
        dst: &mut DeviceFrameMut<'_>,
    ) -> Result<()> {
        if src.size() != dst.size() {
            return Err(Error::Usage(format!("tensor {} does not match frame {}", src.size(), dst.size())));
        }
        let p = dst.planes();
        let (pitch0, pitch1) = (p.pitch[0] as i32, p.pitch[1] as i32);
        let (w, h) = (int(p.size.width), int(p.size.height));
        // one thread per chroma position (a 2×2 block) with a subsampled plane, else per pixel
        let blocks = if p.format.planes() == 2 { p.size.chroma() } else { p.size };
        let (input, layout) = (src.ptr(), p.format.layout());
        let mut args = stream.launch_builder(self.planar_to_frame.of(src.element()));
        args.arg(&input).arg(&w).arg(&h).arg(&p.ptr[0]).arg(&pitch0).arg(&p.ptr[1]).arg(&pitch1);
        args.arg(&layout).arg(from_rgb);
        // SAFETY: as above.
        unsafe { args.launch(grid(blocks.width, blocks.height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Writes the fourth sample of each pixel of `dst` where its format has one (see [`crate::cpu::fill_extra`]):
    /// `src`'s alpha upscaled bilinearly when both carry alpha, opaque otherwise; nothing for other formats.
    ///
    /// # Safety
    /// As for [`ConversionKernels::frame_to_planar`].
    pub unsafe fn fill_extra(
        &self,
        stream: &CudaStream,
        src: &DeviceFrame<'_>,
        dst: &mut DeviceFrameMut<'_>,
    ) -> Result<()> {
        let (s, d) = (src.planes(), dst.planes());
        let (sl, dl) = (s.format.layout(), d.format.layout());
        if dl.extra < 0 {
            return Ok(());
        }
        let scale = d.size.width / s.size.width;
        if d.size != s.size.scaled(scale) {
            return Err(Error::Usage(format!("frame {} is not an integer multiple of {}", d.size, s.size)));
        }
        let upscale_alpha = i32::from(s.format.has_alpha() && d.format.has_alpha());
        let (spitch, dpitch) = (s.pitch[0] as i32, d.pitch[0] as i32);
        let (sw, sh, dw, dh) = (int(s.size.width), int(s.size.height), int(d.size.width), int(d.size.height));
        let scale = int(scale);
        let mut args = stream.launch_builder(&self.fill_extra);
        args.arg(&s.ptr[0]).arg(&spitch).arg(&sw).arg(&sh).arg(&sl).arg(&scale);
        args.arg(&d.ptr[0]).arg(&dpitch).arg(&dw).arg(&dh).arg(&dl).arg(&upscale_alpha);
        // SAFETY: as above.
        unsafe { args.launch(grid(d.size.width, d.size.height)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Adds the tile output `src` (planar, the tile's output size), weighted by the tile's ramps, into the planar
    /// float32 accumulation frame `acc`, on `stream`.
    ///
    /// # Safety
    /// As for [`ConversionKernels::frame_to_planar`].
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
