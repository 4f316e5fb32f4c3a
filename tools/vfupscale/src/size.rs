// SPDX-License-Identifier: MPL-2.0
//! The output size asked for with `-s`, `-W`, `-H` or `--size`, from the input size: the aspect ratio is kept
//! unless both sides are given; the model must cover the larger of the two ratios, and the element is asked for the
//! exact size by a caps filter after it.

use crate::cli::SizeArgs;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeRequest {
    /// The input times the model's scale.
    Model,
    Factor(f64),
    Width(u32),
    Height(u32),
    Exact(u32, u32),
}

impl SizeRequest {
    pub fn from_args(args: &SizeArgs) -> Result<SizeRequest, String> {
        Ok(match (args.scale, args.width, args.height, args.size) {
            (Some(f), ..) if !(f.is_finite() && (1.0..=16.0).contains(&f)) => {
                return Err(format!("--scale {f}: takes a factor from 1 to 16"));
            }
            (Some(f), ..) => SizeRequest::Factor(f),
            (_, _, _, Some((w, h))) | (_, Some(w), Some(h), _) => SizeRequest::Exact(w, h),
            (_, Some(w), None, _) => SizeRequest::Width(w),
            (_, None, Some(h), _) => SizeRequest::Height(h),
            _ => SizeRequest::Model,
        })
    }

    /// The output size for an input of `input` pixels, or None when it is the model's (input × scale).
    /// `even` rounds to even sides (4:2:0 video needs them).
    pub fn target(self, input: (u32, u32), even: bool) -> Result<Option<(u32, u32)>, String> {
        let (w, h) = (input.0 as f64, input.1 as f64);
        let round = |v: f64| -> u32 {
            let v = if even { (v / 2.0).round() * 2.0 } else { v.round() };
            v.max(if even { 2.0 } else { 1.0 }) as u32
        };
        let size = match self {
            SizeRequest::Model => return Ok(None),
            SizeRequest::Factor(f) => (round(w * f), round(h * f)),
            SizeRequest::Width(tw) => (tw, round(h * tw as f64 / w)),
            SizeRequest::Height(th) => (round(w * th as f64 / h), th),
            SizeRequest::Exact(tw, th) => (tw, th),
        };
        if size.0 < input.0 || size.1 < input.1 {
            return Err(format!(
                "{}x{} is smaller than the input ({}x{}): vfupscale only enlarges",
                size.0, size.1, input.0, input.1
            ));
        }
        if even && (size.0 % 2 == 1 || size.1 % 2 == 1) {
            return Err(format!("{}x{}: 4:2:0 video needs even sides", size.0, size.1));
        }
        Ok(Some(size))
    }

    /// The model scale needed for `target` from `input`: the larger of the two ratios.
    pub fn needed_scale(input: (u32, u32), target: (u32, u32)) -> f64 {
        (target.0 as f64 / input.0 as f64).max(target.1 as f64 / input.1 as f64)
    }
}

/// How a frame is enlarged: the model's scale, and the final size when it differs from input × scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizePlan {
    pub input: (u32, u32),
    pub scale: u32,
    pub output: (u32, u32),
}

impl SizePlan {
    pub fn new(input: (u32, u32), scale: u32, target: Option<(u32, u32)>) -> SizePlan {
        SizePlan { input, scale, output: target.unwrap_or((input.0 * scale, input.1 * scale)) }
    }

    /// True when the element must scale its output to another size than input × scale.
    pub fn resizes(&self) -> bool {
        self.output != (self.input.0 * self.scale, self.input.1 * self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(scale: Option<f64>, width: Option<u32>, height: Option<u32>, size: Option<(u32, u32)>) -> SizeArgs {
        SizeArgs { scale, width, height, size }
    }

    #[test]
    fn requests_from_options() {
        assert_eq!(SizeRequest::from_args(&args(None, None, None, None)), Ok(SizeRequest::Model));
        assert_eq!(SizeRequest::from_args(&args(Some(1.5), None, None, None)), Ok(SizeRequest::Factor(1.5)));
        assert_eq!(SizeRequest::from_args(&args(None, Some(100), Some(50), None)), Ok(SizeRequest::Exact(100, 50)));
        assert_eq!(SizeRequest::from_args(&args(None, None, None, Some((8, 6)))), Ok(SizeRequest::Exact(8, 6)));
        assert_eq!(SizeRequest::from_args(&args(None, Some(100), None, None)), Ok(SizeRequest::Width(100)));
        assert_eq!(SizeRequest::from_args(&args(None, None, Some(70), None)), Ok(SizeRequest::Height(70)));
        assert!(SizeRequest::from_args(&args(Some(0.5), None, None, None)).unwrap_err().contains("from 1 to 16"));
        assert!(SizeRequest::from_args(&args(Some(f64::NAN), None, None, None)).is_err());
    }

    #[test]
    fn four_k_from_1080p_and_720p() {
        let req = SizeRequest::Exact(3840, 2160);
        let from_1080 = req.target((1920, 1080), true).unwrap().unwrap();
        assert_eq!(SizeRequest::needed_scale((1920, 1080), from_1080), 2.0);
        let from_720 = req.target((1280, 720), true).unwrap().unwrap();
        assert_eq!(SizeRequest::needed_scale((1280, 720), from_720), 3.0);
        assert!(!SizePlan::new((1920, 1080), 2, Some(from_1080)).resizes());
        assert!(SizePlan::new((1280, 720), 4, Some(from_720)).resizes());
    }

    #[test]
    fn one_side_keeps_the_aspect_ratio() {
        assert_eq!(SizeRequest::Width(3840).target((1920, 1080), true), Ok(Some((3840, 2160))));
        assert_eq!(SizeRequest::Height(2160).target((1440, 1080), true), Ok(Some((2880, 2160))));
        // 1000 * 333 / 500 = 666
        assert_eq!(SizeRequest::Width(1000).target((500, 333), true), Ok(Some((1000, 666))));
        assert_eq!(SizeRequest::Width(1000).target((500, 333), false), Ok(Some((1000, 666))));
        assert_eq!(SizeRequest::Width(1001).target((1000, 333), false), Ok(Some((1001, 333))));
        // a mismatched pair changes the aspect ratio on purpose
        assert_eq!(SizeRequest::Exact(400, 100).target((100, 100), true), Ok(Some((400, 100))));
        assert_eq!(SizeRequest::needed_scale((100, 100), (400, 100)), 4.0);
    }

    #[test]
    fn factors_round_to_even_for_video() {
        assert_eq!(SizeRequest::Factor(1.5).target((96, 64), true), Ok(Some((144, 96))));
        assert_eq!(SizeRequest::Factor(1.5).target((95, 63), true), Ok(Some((142, 94))));
        assert_eq!(SizeRequest::Factor(1.5).target((95, 63), false), Ok(Some((143, 95))));
        assert_eq!(SizeRequest::Model.target((95, 63), true), Ok(None));
    }

    #[test]
    fn smaller_than_the_input_or_odd_is_refused() {
        assert!(SizeRequest::Width(50).target((96, 64), true).unwrap_err().contains("smaller than the input"));
        assert!(SizeRequest::Exact(200, 101).target((96, 64), true).unwrap_err().contains("even sides"));
        assert_eq!(SizeRequest::Exact(200, 101).target((96, 64), false), Ok(Some((200, 101))));
    }

    #[test]
    fn plans() {
        let p = SizePlan::new((96, 64), 2, None);
        assert_eq!(p.output, (192, 128));
        assert!(!p.resizes());
        assert_eq!(SizePlan::new((96, 64), 2, Some((144, 96))).output, (144, 96));
    }
}
