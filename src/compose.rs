// SPDX-License-Identifier: MPL-2.0
//! The output frame, made in one pass over the output: the model's output (resampled when the output is smaller
//! than the model's, [`ComposePlan::shrink`]), blended with the classic image of the input by the AI strength,
//! stabilised over time ([`crate::temporal`]), clamped and converted to NV12. The CPU path is here; the CUDA
//! kernel (`cuda/kernels/compose.cu`) computes the same numbers in the same order, bit for bit.
//!
//! Per output pixel and channel, with `a` the model's value and `c` the classic one, both clamped to 0..=1 (the
//! outputs each would give alone): `v = a` at strength 1, `v = c` at strength 0 (so strength 0 equals the classic
//! backend byte for byte, and strength 1 today's output), else `v = s·a + (1−s)·c`; then with temporal
//! stabilisation `v = clamp(v + α·m·(h − v))`, which becomes the history `h`.

use crate::classic::{ClassicMethod, Resampler};
use crate::color::Affine3x4;
use crate::cpu::{clamp01, write_frame};
use crate::error::{Error, Result};
use crate::frame::{HostFrameMut, Size, TensorElement};
use crate::temporal::{input_index, stabilise};

/// How an output frame of one size is made.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposePlan {
    pub input: Size,
    /// The model's output: the input times the scale.
    pub model_output: Size,
    pub output: Size,
    /// Input → output: the classic image.
    pub classic: Resampler,
    /// Model output → output, when the output is smaller.
    pub shrink: Option<Resampler>,
}

impl ComposePlan {
    /// The plan for `input` upscaled by `scale` to `output`, which may be smaller than the model's output (down to
    /// one pixel) but not larger.
    pub fn new(method: ClassicMethod, input: Size, scale: u32, output: Size) -> Result<Self> {
        let model_output = input.scaled(scale);
        if output.width > model_output.width || output.height > model_output.height {
            return Err(Error::Negotiation(format!(
                "output {output} is larger than {scale} × input {input} ({model_output}): vfupscale does not \
                 upscale past the model's factor"
            )));
        }
        if output.width == 0 || output.height == 0 {
            return Err(Error::Negotiation(format!("output {output} has no pixels")));
        }
        let shrink = (output != model_output).then(|| Resampler::new(method, model_output, output));
        Ok(Self { input, model_output, output, classic: Resampler::new(method, input, output), shrink })
    }
}

/// The AI strength as both paths use it: the weights of the model's output and of the classic image, the latter
/// computed once, on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strength {
    pub model: f32,
    pub classic: f32,
}

impl Strength {
    /// `strength` (clamped to 0..=1) of the model, the rest classic.
    pub fn new(strength: f32) -> Self {
        let model = if strength.is_nan() { 1.0 } else { strength.clamp(0.0, 1.0) };
        Self { model, classic: 1.0 - model }
    }

    /// All classic (no model output to blend).
    pub const CLASSIC: Strength = Strength { model: 0.0, classic: 1.0 };

    /// Whether the classic image is needed.
    pub fn uses_classic(&self) -> bool {
        self.model != 1.0
    }

    /// Whether the model's output is needed.
    pub fn uses_model(&self) -> bool {
        self.model != 0.0
    }

    /// The blend of one value (the kernels' formula).
    #[inline]
    pub fn blend(&self, model: f32, classic: f32) -> f32 {
        if self.model == 1.0 {
            model
        } else if self.model == 0.0 {
            classic
        } else {
            self.model * model + self.classic * classic
        }
    }
}

/// One frame's temporal stabilisation on the host: `α`, the mask (one value per input pixel) and the history
/// (planar RGB of the output size), updated in place.
#[derive(Debug)]
pub struct HostTemporal<'a> {
    pub alpha: f32,
    pub mask: &'a [f32],
    pub history: &'a mut [f32],
}

/// Scratch planes of the host path, kept between frames.
#[derive(Debug, Default)]
pub struct HostScratch {
    classic: Vec<f32>,
    shrunk: Vec<f32>,
}

/// Writes the output frame `dst` (of `plan.output`) from the model's output `model` (planar, `plan.model_output`;
/// `None`: classic only) and the input's RGB `input_rgb` (planar `f32`, `plan.input`; read only when the classic
/// image is used).
#[allow(clippy::too_many_arguments)]
pub fn compose_host<T: TensorElement>(
    plan: &ComposePlan,
    model: Option<&[T]>,
    input_rgb: &[f32],
    strength: Strength,
    temporal: Option<HostTemporal<'_>>,
    rgb_to_code: &Affine3x4,
    scratch: &mut HostScratch,
    dst: &mut HostFrameMut,
) -> Result<()> {
    let out = plan.output;
    if dst.size != out {
        return Err(Error::Usage(format!("output frame {} for a plan of {out}", dst.size)));
    }
    let strength = if model.is_some() { strength } else { Strength::CLASSIC };
    let plane = out.pixels();
    let classic: &[f32] = if strength.uses_classic() {
        scratch.classic.resize(3 * plane, 0.0);
        plan.classic.resample(input_rgb, &mut scratch.classic);
        &scratch.classic
    } else {
        &[]
    };
    let model = match (model, &plan.shrink) {
        (Some(m), _) if m.len() < 3 * plan.model_output.pixels() => {
            return Err(Error::Usage(format!("a model output of {} values for {}", m.len(), plan.model_output)));
        }
        (Some(m), Some(shrink)) if strength.uses_model() => {
            scratch.shrunk.resize(3 * plane, 0.0);
            shrink.resample(m, &mut scratch.shrunk);
            Model::Shrunk(&scratch.shrunk)
        }
        (Some(m), None) if strength.uses_model() => Model::Direct(m),
        _ => Model::Unused,
    };
    let w = out.width as usize;
    let mut temporal = temporal;
    if let Some(t) = &temporal
        && (t.mask.len() < plan.input.pixels() || t.history.len() < 3 * plane)
    {
        return Err(Error::Usage("temporal mask or history of the wrong size".into()));
    }
    write_frame(rgb_to_code, dst, |x, y| {
        let i = y * w + x;
        let mut rgb = [0f32; 3];
        for (k, v) in rgb.iter_mut().enumerate() {
            let a = model.at(k * plane + i);
            let c = if strength.uses_classic() { classic[k * plane + i] } else { 0.0 };
            *v = clamp01(strength.blend(clamp01(a), clamp01(c)));
        }
        if let Some(t) = temporal.as_mut() {
            let weight = t.alpha * t.mask[input_index(x, y, plan.input, out)];
            for (k, v) in rgb.iter_mut().enumerate() {
                *v = stabilise(*v, t.history[k * plane + i], weight);
                t.history[k * plane + i] = *v;
            }
        }
        rgb
    });
    Ok(())
}

/// Where the model's value of an output pixel comes from.
enum Model<'a, T> {
    Direct(&'a [T]),
    Shrunk(&'a [f32]),
    Unused,
}

impl<T: TensorElement> Model<'_, T> {
    #[inline]
    fn at(&self, i: usize) -> f32 {
        match self {
            Model::Direct(m) => m[i].to_f32(),
            Model::Shrunk(m) => m[i],
            Model::Unused => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_above_the_models_size_are_refused() {
        let (m, i) = (ClassicMethod::Lanczos, Size::new(64, 48));
        assert!(ComposePlan::new(m, i, 2, Size::new(128, 96)).unwrap().shrink.is_none());
        assert!(ComposePlan::new(m, i, 2, Size::new(100, 75)).unwrap().shrink.is_some());
        let e = ComposePlan::new(m, i, 2, Size::new(130, 96)).unwrap_err();
        assert!(e.is_negotiation(), "{e}");
        assert_eq!(
            e.to_string(),
            "output 130x96 is larger than 2 × input 64x48 (128x96): vfupscale does not upscale past the model's factor"
        );
    }

    #[test]
    fn strength_ends_take_one_side_exactly() {
        let (a, c) = (0.3f32, 0.7f32);
        assert_eq!(Strength::new(1.0).blend(a, c), a);
        assert_eq!(Strength::new(0.0).blend(a, c), c);
        assert_eq!(Strength::new(0.5).blend(a, c), 0.5 * a + 0.5 * c);
        assert_eq!(Strength::new(2.0), Strength::new(1.0));
        assert!(!Strength::new(1.0).uses_classic() && !Strength::CLASSIC.uses_model());
    }
}
