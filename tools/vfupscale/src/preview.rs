// SPDX-License-Identifier: MPL-2.0
//! `vfupscale preview`: one frame, the source scaled classically (Catmull-Rom bicubic) on the left and the model's
//! output on the right, at the output size; with `--crop` only that region of both, enlarged (nearest neighbour)
//! so its pixels can be told apart.

use std::process::ExitCode;
use std::time::Duration;

use image::{Rgba, RgbaImage, imageops};

use crate::cli::{Crop, PreviewArgs};
use crate::frames::FrameUpscaler;
use crate::output::{ImageFormat, Part};
use crate::plan::Common;
use crate::summary::dims;
use crate::{imageio, media, report};

/// Gap between the two panels.
const GAP: u32 = 8;
/// A cropped panel is enlarged to at least this width.
const ZOOM_WIDTH: u32 = 480;

pub fn run(args: &PreviewArgs) -> ExitCode {
    match preview(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn preview(args: &PreviewArgs) -> Result<(), String> {
    let format = ImageFormat::from_path(&args.output)
        .ok_or_else(|| format!("{}: a preview is an image ({})", args.output.display(), crate::output::IMAGES))?;
    if args.output.exists() && !args.overwrite {
        return Err(format!("{} exists (use -y to replace it)", args.output.display()));
    }
    std::fs::metadata(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let (frame, at) = match ImageFormat::from_path(&args.input) {
        Some(f) => (imageio::read(&args.input, f)?, None),
        None => {
            let info = media::probe(&args.input)?;
            let at = match (args.at, info.duration) {
                (Some(at), Some(d)) if at.as_nanos() as u64 >= d.nseconds() => {
                    return Err(format!("--at {:.3} s: the video lasts {:.3} s", at.as_secs_f64(), d.seconds_f64()));
                }
                (Some(at), _) => at,
                (None, Some(d)) => Duration::from_nanos(d.nseconds() / 2),
                (None, None) => Duration::ZERO,
            };
            let frame = imageio::grab(&args.input, Some(at)).map_err(|e| format!("{}: {e}", args.input.display()))?;
            (frame, Some(at))
        }
    };
    let common = Common::new(&args.model, &args.size)?;
    let source = frame.image.dimensions();
    let upscale = common.upscale(source, false)?;
    let mut upscaler = FrameUpscaler::new(&upscale)?;
    let ai = upscaler.upscale(&frame, &upscale)?;
    let line = report::upscaler_line(&upscale, upscaler.upscaler(), &|m| eprintln!("{m}"));
    drop(upscaler);
    let (w, h) = ai.dimensions();
    let classic = imageops::resize(&frame.image, w, h, imageops::FilterType::CatmullRom);
    let (left, right) = match args.crop {
        None => (classic, ai),
        Some(crop) => {
            let (x, y, cw, ch) = crop_region(crop, source, (w, h))?;
            let zoom = ZOOM_WIDTH.div_ceil(cw).clamp(1, 8);
            let cut = |img: &RgbaImage| {
                let part = imageops::crop_imm(img, x, y, cw, ch).to_image();
                imageops::resize(&part, cw * zoom, ch * zoom, imageops::FilterType::Nearest)
            };
            (cut(&classic), cut(&ai))
        }
    };
    let (pw, ph) = left.dimensions();
    let mut canvas = RgbaImage::from_pixel(pw * 2 + GAP, ph, Rgba([255, 255, 255, 255]));
    imageops::overlay(&mut canvas, &left, 0, 0);
    imageops::overlay(&mut canvas, &right, (pw + GAP) as i64, 0);
    let part = Part::file(&args.output)?;
    imageio::write(&canvas, frame.has_alpha, format, part.path())?;
    part.commit(&args.output)?;
    let when = at.map_or(String::new(), |a| format!(" at {:.3} s", a.as_secs_f64()));
    eprintln!(
        "{}: frame{when}, {} → {}: left bicubic, right {}; {line}",
        args.output.display(),
        dims(source),
        dims((w, h)),
        upscale.model.name,
    );
    Ok(())
}

/// The crop (source pixels) in output pixels, checked against the source.
fn crop_region(crop: Crop, source: (u32, u32), output: (u32, u32)) -> Result<(u32, u32, u32, u32), String> {
    if crop.x + crop.width > source.0 || crop.y + crop.height > source.1 {
        return Err(format!(
            "--crop {}x{}+{}+{}: outside the {} frame",
            crop.width,
            crop.height,
            crop.x,
            crop.y,
            dims(source)
        ));
    }
    let sx = output.0 as f64 / source.0 as f64;
    let sy = output.1 as f64 / source.1 as f64;
    let x = (crop.x as f64 * sx).round() as u32;
    let y = (crop.y as f64 * sy).round() as u32;
    let w = ((crop.width as f64 * sx).round() as u32).clamp(1, output.0 - x);
    let h = ((crop.height as f64 * sy).round() as u32).clamp(1, output.1 - y);
    Ok((x, y, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_map_to_output_pixels() {
        let c = Crop { width: 10, height: 5, x: 2, y: 3 };
        assert_eq!(crop_region(c, (96, 64), (192, 128)), Ok((4, 6, 20, 10)));
        let out = Crop { width: 10, height: 5, x: 90, y: 3 };
        assert!(crop_region(out, (96, 64), (192, 128)).unwrap_err().contains("outside the 96×64 frame"));
    }
}
