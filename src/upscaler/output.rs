// SPDX-License-Identifier: MPL-2.0
//! The output side of a frame: the composition settings (classic method, AI strength, temporal stabilisation,
//! fallback), and what each path keeps for frames of one size to compose their output (`compose.rs` and its
//! kernel): the classic and shrink tables, the input's RGB, the temporal history with the previous input and the
//! mask. The history lives with the upscaler's own buffers, ordered with the frames in flight by the stream.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::classic::{ClassicMethod, Fallback};
use crate::color::Affine3x4;
use crate::compose::{ComposePlan, HostScratch, HostTemporal, Strength, compose_host};
use crate::cpu;
use crate::cuda::{
    ComposeFrame, DeviceFrame, DeviceFrameMut, DeviceResampler, FrameBuffer, GpuDevice, PlanarTensor, PlanarTensorMut,
    copy_between_contexts,
};
use crate::error::{Error, Result};
use crate::frame::{HostFrame, HostFrameMut, Image, PixelFormat, Rect, TensorElement};
use crate::planning::RunPlan;
use crate::temporal::{TemporalSettings, compute_mask};

/// How output frames are made, for the whole run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputSettings {
    pub method: ClassicMethod,
    pub strength: Strength,
    pub temporal: TemporalSettings,
    pub fallback: Fallback,
}

/// What a frame's output is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The model's output (blended with the classic image by the strength).
    Model,
    /// The classic image alone: the classic backend, a stream that fell back, or a frame whose inference failed.
    Classic,
}

impl OutputSettings {
    /// Whether a model frame's output is today's plain conversion (no blend, no resampling, no history).
    pub(super) fn plain(&self, plan: &ComposePlan) -> bool {
        !self.strength.uses_classic() && plan.shrink.is_none() && !self.temporal.enabled()
    }

    /// Whether a model frame's output may be written by the model's last layer itself (the plain conversion fused
    /// into it, where the engine can: [`crate::engine::Engine::writes_frame`]): the plain conversion of a whole
    /// frame in one run of one image.
    pub(super) fn model_may_write_frame(&self, plan: &ComposePlan, run: &RunPlan) -> bool {
        self.plain(plan) && run.is_whole_frame() && run.batch == 1
    }

    /// Whether frames from `source` need the input's RGB (for the classic image).
    fn needs_input_rgb(&self, source: Source) -> bool {
        source == Source::Classic || self.strength.uses_classic()
    }

    /// Whether frames from `source` are stabilised (classic output is a function of the input: nothing flickers).
    fn stabilises(&self, source: Source) -> bool {
        source == Source::Model && self.temporal.enabled()
    }

    /// Whether the input's RGB may ever be needed (so it is allocated up front).
    fn may_need_input_rgb(&self, has_model: bool) -> bool {
        !has_model || self.strength.uses_classic() || self.fallback == Fallback::Classic
    }
}

/// Bytes of the buffers made for frames of `plan` (the input's RGB, the temporal history with the previous input
/// at up to 4 bytes per pixel), for memory budgets.
pub(super) fn buffer_bytes(settings: &OutputSettings, plan: &ComposePlan, has_model: bool) -> usize {
    let (input, output) = (plan.input.pixels(), plan.output.pixels());
    let rgb = if settings.may_need_input_rgb(has_model) { 12 * input } else { 0 };
    let history = if settings.temporal.enabled() && has_model { 4 * input + 4 * input + 12 * output } else { 0 };
    rgb + history
}

/// The temporal state of the host path.
struct HostHistory {
    previous: Image,
    mask: Vec<f32>,
    history: Vec<f32>,
}

/// The host path's output state for frames of one size.
pub(super) struct HostOutput {
    pub plan: ComposePlan,
    input_rgb: Vec<f32>,
    scratch: HostScratch,
    history: Option<HostHistory>,
}

impl HostOutput {
    pub fn new(settings: &OutputSettings, plan: ComposePlan) -> Self {
        let history = settings.temporal.enabled().then(|| HostHistory {
            // the format is the first frame's (`finish` replaces it when another one comes)
            previous: Image::new(PixelFormat::Nv12, plan.input),
            mask: vec![0.0; plan.input.pixels()],
            history: vec![0.0; 3 * plan.output.pixels()],
        });
        Self { plan, input_rgb: Vec::new(), scratch: HostScratch::default(), history }
    }

    /// Writes `dst` from `model` (the model's output, `None` for classic output) and the input `src` (its alpha or
    /// padding too: [`cpu::fill_extra`]); says whether the history was updated (so it is valid for the next
    /// frame).
    #[allow(clippy::too_many_arguments)]
    pub fn finish<T: TensorElement>(
        &mut self,
        settings: &OutputSettings,
        model: Option<&[T]>,
        src: &HostFrame,
        (to_rgb, to_code): (&Affine3x4, &Affine3x4),
        history_valid: bool,
        dst: &mut HostFrameMut,
    ) -> Result<bool> {
        let source = if model.is_some() { Source::Model } else { Source::Classic };
        if settings.needs_input_rgb(source) {
            self.input_rgb.resize(3 * self.plan.input.pixels(), 0.0);
            cpu::frame_to_planar(src, to_rgb, Rect::of_size(src.size), &mut self.input_rgb);
        }
        let temporal = match (&mut self.history, settings.stabilises(source)) {
            (Some(h), true) => {
                let same_format = h.previous.format == src.format;
                if !same_format {
                    h.previous = Image::new(src.format, src.size);
                }
                let valid = history_valid && same_format;
                compute_mask(&settings.temporal, src, &h.previous.view(), valid, &mut h.mask);
                Some(HostTemporal { alpha: settings.temporal.strength, mask: &h.mask, history: &mut h.history })
            }
            _ => None,
        };
        let stabilised = temporal.is_some();
        compose_host(&self.plan, model, &self.input_rgb, settings.strength, temporal, to_code, &mut self.scratch, dst)?;
        cpu::fill_extra(src, dst);
        if stabilised && let Some(h) = &mut self.history {
            copy_host_frame(src, &mut h.previous);
        }
        Ok(stabilised)
    }
}

/// Copies a host frame into an image of its format and size.
fn copy_host_frame(src: &HostFrame, dst: &mut Image) {
    let strides = dst.strides();
    for (plane, (out, stride)) in dst.planes.iter_mut().zip(strides).enumerate().take(src.format.planes()) {
        for (y, row) in out.chunks_exact_mut(stride).enumerate() {
            row.copy_from_slice(&src.planes[plane][y * src.strides[plane]..][..stride]);
        }
    }
}

/// The temporal state of the device path.
struct DeviceHistory {
    previous: FrameBuffer,
    mask: CudaSlice<f32>,
    sum: CudaSlice<u64>,
    history: CudaSlice<f32>,
}

/// The device path's output state for frames of one size: tables, the input's RGB, the history.
pub(super) struct DeviceOutput {
    pub plan: ComposePlan,
    classic: DeviceResampler,
    shrink: Option<DeviceResampler>,
    input_rgb: Option<CudaSlice<f32>>,
    history: Option<DeviceHistory>,
}

impl DeviceOutput {
    /// Uploads the plan's tables and allocates what its frames may need (nothing is allocated per frame).
    pub fn new(
        stream: &Arc<CudaStream>,
        settings: &OutputSettings,
        plan: ComposePlan,
        has_model: bool,
    ) -> Result<Self> {
        let classic = DeviceResampler::new(stream, &plan.classic)?;
        let shrink = plan.shrink.as_ref().map(|s| DeviceResampler::new(stream, s)).transpose()?;
        let alloc = |n: usize| stream.alloc_zeros::<f32>(n).map_err(Error::cuda("cuMemAlloc"));
        let input_rgb = settings.may_need_input_rgb(has_model).then(|| alloc(3 * plan.input.pixels())).transpose()?;
        let history = match settings.temporal.enabled() && has_model {
            true => Some(DeviceHistory {
                // the format is the first frame's (`queue` replaces it when another one comes)
                previous: FrameBuffer::new(stream, PixelFormat::Nv12, plan.input)?,
                mask: alloc(plan.input.pixels())?,
                sum: stream.alloc_zeros::<u64>(1).map_err(Error::cuda("cuMemAlloc"))?,
                history: alloc(3 * plan.output.pixels())?,
            }),
            false => None,
        };
        Ok(Self { plan, classic, shrink, input_rgb, history })
    }

    /// Device memory held, in bytes.
    pub fn bytes(&self) -> u64 {
        let f32s = |s: &Option<CudaSlice<f32>>| s.as_ref().map_or(0, |s| s.len() * 4);
        let tables = self.classic.bytes() + self.shrink.as_ref().map_or(0, DeviceResampler::bytes);
        let history = self.history.as_ref().map_or(0, |h| h.previous.bytes() + 4 * (h.mask.len() + h.history.len()));
        (tables + f32s(&self.input_rgb) + history) as u64
    }

    /// Queues the output of one frame: `model` (the model's output, `None` for classic output) and the input
    /// `src` into `dst`. Says whether the history was updated.
    ///
    /// # Safety
    /// The views' memory must stay valid (the inputs unchanged, `dst` touched by nothing else) until the work
    /// queued on `stream` has completed.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn queue(
        &mut self,
        device: &GpuDevice,
        stream: &Arc<CudaStream>,
        settings: &OutputSettings,
        model: Option<&PlanarTensor<'_>>,
        src: &DeviceFrame<'_>,
        (to_rgb, to_code): (&Affine3x4, &Affine3x4),
        history_valid: bool,
        dst: &mut DeviceFrameMut<'_>,
    ) -> Result<bool> {
        let source = if model.is_some() { Source::Model } else { Source::Classic };
        // alpha or padding: samples nothing else writes
        // SAFETY: this function's contract.
        unsafe { device.kernels().fill_extra(stream, src, dst)? };
        if let (Some(model), true) = (model, settings.plain(&self.plan)) {
            // SAFETY: this function's contract.
            unsafe { device.kernels().planar_to_frame(stream, model, to_code, dst)? };
            return Ok(false);
        }
        let kernels = device.compose_kernels();
        let input_rgb = match (&mut self.input_rgb, settings.needs_input_rgb(source)) {
            (Some(rgb), true) => {
                {
                    let mut tensor = PlanarTensorMut::from_view(rgb.as_view_mut(), stream, self.plan.input)?;
                    let whole = Rect::of_size(src.size());
                    // SAFETY: `src` per this function's contract; the tensor is ours, read by this frame's
                    // composition next on the stream.
                    unsafe { device.kernels().frame_to_planar(stream, src, to_rgb, whole, &mut tensor)? };
                }
                Some(PlanarTensor::from_view(rgb.as_view(), stream, self.plan.input)?)
            }
            (None, true) => return Err(Error::Usage("classic output without the input's RGB".into())),
            _ => None,
        };
        let stabilise = settings.stabilises(source) && self.history.is_some();
        let mut history_valid = history_valid;
        if let (Some(h), true) = (&mut self.history, stabilise) {
            if h.previous.format() != src.format() {
                // another input format at the same size (rare): the frames in flight may still read the old one
                stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
                h.previous = FrameBuffer::new(stream, src.format(), src.size())?;
                history_valid = false;
            }
            let previous = h.previous.view(stream)?;
            // SAFETY: `src` per this function's contract; the previous frame, the sum and the mask are ours.
            unsafe {
                kernels.temporal_mask(
                    stream,
                    &settings.temporal,
                    src,
                    &previous,
                    history_valid,
                    &mut h.sum,
                    &mut h.mask,
                )?
            };
        }
        let temporal = match (&mut self.history, stabilise) {
            (Some(h), true) => Some((settings.temporal.strength, &h.mask, &mut h.history)),
            _ => None,
        };
        let frame = ComposeFrame {
            model,
            input_rgb: input_rgb.as_ref(),
            strength: settings.strength,
            temporal,
            from_rgb: to_code,
        };
        // SAFETY: this function's contract; the tables, the input's RGB and the history are ours, freed only after
        // the frames in flight.
        unsafe { kernels.compose(stream, &self.plan, (&self.classic, self.shrink.as_ref()), frame, dst)? };
        if let (Some(h), true) = (&mut self.history, stabilise) {
            let mut previous = h.previous.view_mut(stream)?;
            // SAFETY: `src` per this function's contract; the previous frame is ours, read only by later frames'
            // masks, after this copy on the stream.
            unsafe { copy_between_contexts(stream, src, &mut previous)? };
        }
        Ok(stabilise)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::Size;
    use crate::tiling::TilePlan;

    #[test]
    fn only_the_plain_conversion_of_one_whole_frame_run_may_be_written_by_the_model() {
        let input = Size::new(1920, 1080);
        let settings = OutputSettings {
            method: ClassicMethod::default(),
            strength: Strength::new(1.0),
            temporal: TemporalSettings::default(),
            fallback: Fallback::default(),
        };
        let plan = |output| ComposePlan::new(ClassicMethod::default(), input, 4, output).unwrap();
        let full = plan(input.scaled(4));
        let run = |tiles: TilePlan, batch| RunPlan { tiles: Arc::new(tiles), batch, memory_limit: None };
        let whole = run(TilePlan::whole(input, 4), 1);
        assert!(!settings.temporal.enabled(), "the premise: no temporal stabilisation by default");
        assert!(settings.model_may_write_frame(&full, &whole));
        // a strength blend, a smaller output, the temporal history: composed by their own kernel
        let blended = OutputSettings { strength: Strength::new(0.5), ..settings };
        assert!(!blended.model_may_write_frame(&full, &whole));
        assert!(!settings.model_may_write_frame(&plan(Size::new(3840, 2160)), &whole));
        let temporal = TemporalSettings { strength: 0.5, ..TemporalSettings::default() };
        assert!(!OutputSettings { temporal, ..settings }.model_may_write_frame(&full, &whole));
        // tiles, or a batch of images per run
        let tiled = run(TilePlan::new(input, 4, 512, 16), 1);
        assert!(!tiled.is_whole_frame(), "the premise: 512-pixel tiles cut a 1080p frame");
        assert!(!settings.model_may_write_frame(&full, &tiled));
        assert!(!settings.model_may_write_frame(&full, &run(TilePlan::whole(input, 4), 2)));
    }
}
