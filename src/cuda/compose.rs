// SPDX-License-Identifier: MPL-2.0
//! The classic, composition and temporal kernels (`kernels/resample.cu`, `compose.cu`, `temporal.cu`): resampler
//! weight tables in device memory, and one typed launch per kernel taking device-memory views.

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::memory::{DeviceFrame, DeviceFrameMut, PlanarTensor};
use super::module::LoadedModule;
use crate::classic::{AxisFilter, Resampler};
use crate::color::Affine3x4;
use crate::compose::{ComposePlan, Strength};
use crate::error::{Error, Result};
use crate::format::FormatLayout;
use crate::frame::{ElementType, Size};
use crate::temporal::{MASK_RADIUS, TemporalSettings};

/// Threads per block: 32 wide for coalesced rows, 8 rows.
const BLOCK: (u32, u32) = (32, 8);

fn grid(size: Size) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (size.width.div_ceil(BLOCK.0), size.height.div_ceil(BLOCK.1), 1),
        block_dim: (BLOCK.0, BLOCK.1, 1),
        shared_mem_bytes: 0,
    }
}

/// One axis of a resampler as the kernels take it (`struct Axis` in `resample.cuh`): device addresses of the
/// tables, taps, input length. All zero: no resampling.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct AxisArgs {
    start: u64,
    weights: u64,
    taps: i32,
    input: i32,
}

// SAFETY: `AxisArgs` is `#[repr(C)]` plain integers, laid out as `struct Axis` in resample.cuh.
unsafe impl DeviceRepr for AxisArgs {}

/// An axis filter's tables in device memory.
struct DeviceAxis {
    start: CudaSlice<i32>,
    weights: CudaSlice<f32>,
    taps: u32,
    input: u32,
}

impl DeviceAxis {
    fn new(stream: &std::sync::Arc<CudaStream>, f: &AxisFilter) -> Result<Self> {
        let start = stream.clone_htod(&f.start).map_err(Error::cuda("cuMemcpyHtoDAsync"))?;
        let weights = stream.clone_htod(&f.weights).map_err(Error::cuda("cuMemcpyHtoDAsync"))?;
        Ok(Self { start, weights, taps: f.taps, input: f.input })
    }

    fn args(&self, stream: &CudaStream) -> AxisArgs {
        // the tables are only read by kernels, on the stream they were uploaded on; no guard is kept (event
        // tracking is off in our contexts), the value lives as long as the device resampler
        let (start, _) = self.start.device_ptr(stream);
        let (weights, _) = self.weights.device_ptr(stream);
        AxisArgs { start, weights, taps: self.taps as i32, input: self.input as i32 }
    }

    fn bytes(&self) -> usize {
        self.start.len() * 4 + self.weights.len() * 4
    }
}

/// A resampler's weight tables in device memory (made once per frame size).
pub struct DeviceResampler {
    x: DeviceAxis,
    y: DeviceAxis,
    output: Size,
}

impl DeviceResampler {
    /// Uploads `r`'s tables on `stream` (complete when this returns).
    pub fn new(stream: &std::sync::Arc<CudaStream>, r: &Resampler) -> Result<Self> {
        let made = Self { x: DeviceAxis::new(stream, &r.x)?, y: DeviceAxis::new(stream, &r.y)?, output: r.output() };
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
        Ok(made)
    }

    pub fn input(&self) -> Size {
        Size::new(self.x.input, self.y.input)
    }

    pub fn output(&self) -> Size {
        self.output
    }

    /// Device memory of the tables.
    pub fn bytes(&self) -> usize {
        self.x.bytes() + self.y.bytes()
    }
}

/// One frame's composition on the device: the views it reads and writes, with the plan's tables.
pub struct ComposeFrame<'a> {
    /// The model's output of the plan's `model_output` size (`None`: classic only).
    pub model: Option<&'a PlanarTensor<'a>>,
    /// The input's RGB (`f32`, the plan's input size); needed when the strength uses the classic image.
    pub input_rgb: Option<&'a PlanarTensor<'a>>,
    pub strength: Strength,
    /// `α`, the mask (input size, one `f32` per pixel) and the history (`f32` planar, output size).
    pub temporal: Option<(f32, &'a CudaSlice<f32>, &'a mut CudaSlice<f32>)>,
    /// RGB to the output's code values ([`crate::color::rgb_to_code`]).
    pub from_rgb: &'a Affine3x4,
}

/// The kernels' `struct ComposeArgs` (compose.cu), field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ComposeArgs {
    model: u64,
    input_rgb: u64,
    mask: u64,
    history: u64,
    plane0: u64,
    plane1: u64,
    shrink_x: AxisArgs,
    shrink_y: AxisArgs,
    classic_x: AxisArgs,
    classic_y: AxisArgs,
    from_rgb: Affine3x4,
    fmt: FormatLayout,
    strength_model: f32,
    strength_classic: f32,
    alpha: f32,
    model_w: i32,
    model_h: i32,
    in_w: i32,
    in_h: i32,
    out_w: i32,
    out_h: i32,
    pitch0: i32,
    pitch1: i32,
}

// SAFETY: `ComposeArgs` is `#[repr(C)]` plain integers and floats, laid out as `struct ComposeArgs` in compose.cu
// (the same fields in the same order; the size is checked below).
unsafe impl DeviceRepr for ComposeArgs {}
// the offsets of `struct ComposeArgs` as a C++ compiler lays it out (checked with offsetof)
const _: () = assert!(
    size_of::<ComposeArgs>() == 288
        && size_of::<AxisArgs>() == 24
        && std::mem::offset_of!(ComposeArgs, fmt) == 192
        && std::mem::offset_of!(ComposeArgs, strength_model) == 240
        && std::mem::offset_of!(ComposeArgs, pitch1) == 280
);

/// The kernels of `resample.cu`, `compose.cu` and `temporal.cu`, loaded into one context.
#[derive(Debug)]
pub struct ComposeKernels {
    resample: [CudaFunction; 2],
    compose: [CudaFunction; 2],
    difference: CudaFunction,
    mask: CudaFunction,
}

fn of(pair: &[CudaFunction; 2], element: ElementType) -> &CudaFunction {
    match element {
        ElementType::F32 => &pair[0],
        ElementType::F16 => &pair[1],
    }
}

impl ComposeKernels {
    pub(crate) fn new(resample: &LoadedModule, compose: &LoadedModule, temporal: &LoadedModule) -> Result<Self> {
        let pair = |m: &LoadedModule, stem: &str| -> Result<[CudaFunction; 2]> {
            Ok([m.function(&format!("{stem}_f32"))?.clone(), m.function(&format!("{stem}_f16"))?.clone()])
        };
        Ok(Self {
            resample: pair(resample, "resample_planar")?,
            compose: pair(compose, "compose_frame")?,
            difference: temporal.function("frame_difference")?.clone(),
            mask: temporal.function("temporal_mask")?.clone(),
        })
    }

    /// Resamples the planar tensor `src` into the planar `f32` tensor `dst` with `r`'s tables.
    ///
    /// # Safety
    /// Both views' memory must stay valid until the work queued on `stream` has completed, and be memory of the
    /// stream's context.
    pub unsafe fn resample(
        &self,
        stream: &CudaStream,
        r: &DeviceResampler,
        src: &PlanarTensor<'_>,
        dst: &mut super::PlanarTensorMut<'_>,
    ) -> Result<()> {
        if src.size() != r.input() || dst.size() != r.output() || dst.element() != ElementType::F32 {
            return Err(Error::Usage(format!(
                "resampling a {} tensor into a {} {} one with a {} → {} resampler",
                src.size(),
                dst.size(),
                dst.element(),
                r.input(),
                r.output()
            )));
        }
        let (input, output) = (src.ptr(), dst.ptr());
        let (fx, fy) = (r.x.args(stream), r.y.args(stream));
        let (w, h) = (r.output.width as i32, r.output.height as i32);
        let mut args = stream.launch_builder(of(&self.resample, src.element()));
        args.arg(&input).arg(&output).arg(&w).arg(&h).arg(&fx).arg(&fy);
        // SAFETY: argument types and order match the kernel; the views hold what the kernel touches (checked when
        // they were made and above), valid until the work completes per this function's contract.
        unsafe { args.launch(grid(r.output)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the temporal mask of `current` against `previous` (both of `mask`'s size) into `mask`, with the
    /// frame's difference summed into `sum` (zeroed here first) for the scene-cut decision.
    ///
    /// # Safety
    /// As for [`ComposeKernels::resample`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn temporal_mask(
        &self,
        stream: &std::sync::Arc<CudaStream>,
        settings: &TemporalSettings,
        current: &DeviceFrame<'_>,
        previous: &DeviceFrame<'_>,
        history_valid: bool,
        sum: &mut CudaSlice<u64>,
        mask: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let size = current.size();
        if previous.size() != size || mask.len() < size.pixels() || sum.is_empty() {
            return Err(Error::Usage(format!("a temporal mask of {size} with a {} previous frame", previous.size())));
        }
        stream.memset_zeros(sum).map_err(Error::cuda("cuMemsetD8Async"))?;
        let (c, p) = (current.planes(), previous.planes());
        if current.format() != previous.format() {
            return Err(Error::Usage(format!("a temporal mask of {} against {}", current.format(), previous.format())));
        }
        let (cp, pp, layout) = (c.pitch[0] as i32, p.pitch[0] as i32, current.format().layout());
        let (w, h) = (size.width as i32, size.height as i32);
        let (sum_ptr, _) = sum.device_ptr_mut(stream);
        let mut args = stream.launch_builder(&self.difference);
        args.arg(&c.ptr[0]).arg(&cp).arg(&p.ptr[0]).arg(&pp).arg(&w).arg(&h).arg(&layout).arg(&sum_ptr);
        // SAFETY: as above; `sum` is our one-element allocation.
        unsafe { args.launch(grid(size)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        let (radius, lo, hi) = (MASK_RADIUS as i32, settings.static_below as u32, settings.moving_above as u32);
        let (limit, valid) = (settings.cut_limit(size), history_valid as i32);
        let (mask_ptr, _) = mask.device_ptr_mut(stream);
        let mut args = stream.launch_builder(&self.mask);
        args.arg(&c.ptr[0]).arg(&cp).arg(&p.ptr[0]).arg(&pp).arg(&w).arg(&h).arg(&layout);
        args.arg(&radius).arg(&lo).arg(&hi);
        args.arg(&sum_ptr).arg(&limit).arg(&valid).arg(&mask_ptr);
        // SAFETY: as above; the mask holds a value per pixel (checked).
        unsafe { args.launch(grid(size)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the composition of one output frame `dst` by `plan` (see [`crate::compose`]), with the plan's tables
    /// uploaded as `classic` and `shrink`.
    ///
    /// # Safety
    /// As for [`ComposeKernels::resample`].
    pub unsafe fn compose(
        &self,
        stream: &CudaStream,
        plan: &ComposePlan,
        (classic, shrink): (&DeviceResampler, Option<&DeviceResampler>),
        frame: ComposeFrame<'_>,
        dst: &mut DeviceFrameMut<'_>,
    ) -> Result<()> {
        let strength = if frame.model.is_some() { frame.strength } else { Strength::CLASSIC };
        let bad = |what: &str| Err(Error::Usage(format!("composing a {} frame: {what}", plan.output)));
        if dst.size() != plan.output || classic.output() != plan.output || classic.input() != plan.input {
            return bad("the output or the classic tables do not match the plan");
        }
        if plan.shrink.is_some() != shrink.is_some() || shrink.is_some_and(|s| s.output() != plan.output) {
            return bad("the shrink tables do not match the plan");
        }
        let model = match frame.model {
            Some(m) if m.size() != plan.model_output => return bad("the model output is of another size"),
            Some(m) => (m.ptr(), m.element()),
            None => (0, ElementType::F32),
        };
        let input_rgb = match frame.input_rgb {
            Some(t) if t.size() != plan.input || t.element() != ElementType::F32 => return bad("input RGB"),
            Some(t) => t.ptr(),
            None if strength.uses_classic() => return bad("the classic image needs the input's RGB"),
            None => 0,
        };
        let (alpha, mask, history) = match frame.temporal {
            Some((_, mask, history))
                if mask.len() < plan.input.pixels() || history.len() < 3 * plan.output.pixels() =>
            {
                return bad("temporal mask or history of the wrong size");
            }
            Some((alpha, mask, history)) => (alpha, mask.device_ptr(stream).0, history.device_ptr_mut(stream).0),
            None => (0.0, 0, 0),
        };
        let p = dst.planes();
        let args = ComposeArgs {
            model: model.0,
            input_rgb,
            mask,
            history,
            plane0: p.ptr[0],
            plane1: p.ptr[1],
            shrink_x: shrink.map_or_else(AxisArgs::default, |s| s.x.args(stream)),
            shrink_y: shrink.map_or_else(AxisArgs::default, |s| s.y.args(stream)),
            classic_x: classic.x.args(stream),
            classic_y: classic.y.args(stream),
            from_rgb: *frame.from_rgb,
            fmt: p.format.layout(),
            strength_model: strength.model,
            strength_classic: strength.classic,
            alpha,
            model_w: plan.model_output.width as i32,
            model_h: plan.model_output.height as i32,
            in_w: plan.input.width as i32,
            in_h: plan.input.height as i32,
            out_w: plan.output.width as i32,
            out_h: plan.output.height as i32,
            pitch0: p.pitch[0] as i32,
            pitch1: p.pitch[1] as i32,
        };
        let mut launch = stream.launch_builder(of(&self.compose, model.1));
        launch.arg(&args);
        // one thread per block: a chroma position (2×2 pixels) with a subsampled plane, else a pixel
        let blocks = if p.format.planes() == 2 { plan.output.chroma() } else { plan.output };
        // SAFETY: the argument struct matches the kernel's; every address in it is of a view or table checked above
        // to hold what the kernel touches, valid until the work completes per this function's contract.
        unsafe { launch.launch(grid(blocks)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}
