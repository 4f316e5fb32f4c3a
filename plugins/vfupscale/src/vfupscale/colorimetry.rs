// SPDX-License-Identifier: MPL-2.0

//! GStreamer formats and colorimetry to the core's: the frame format, and the matrix and range the conversion kernels
//! use. Transfer function and primaries are not the conversion's concern: they pass from the input caps to the
//! output caps unchanged (the model runs on the signal as encoded).

use gst_video::{VideoColorMatrix, VideoColorRange, VideoFormat, VideoInfo};
use vfupscale::color::{Colorimetry, Matrix, Range};
use vfupscale::format::{Family, PixelFormat};

/// The formats the element takes and gives, in the order the pad templates list them.
pub const FORMATS: [PixelFormat; 7] = PixelFormat::ALL;

/// GStreamer's video format of `format`.
pub fn video_format(format: PixelFormat) -> VideoFormat {
    VideoFormat::from_string(format.name())
}

/// The core's format of GStreamer's `format`.
pub fn pixel_format(format: VideoFormat) -> Result<PixelFormat, String> {
    PixelFormat::from_name(format.to_str()).ok_or_else(|| format!("format {} is not supported", format.to_str()))
}

/// Height above which GStreamer assumes BT.709 for YUV without a colour matrix (below: BT.601).
const SD_MAX_HEIGHT: u32 = 576;

/// The matrix and range of the frames `info` describes.
pub fn colorimetry(info: &VideoInfo) -> Result<Colorimetry, String> {
    let c = info.colorimetry();
    let format = pixel_format(info.format())?;
    if format.family() == Family::Rgb {
        // GStreamer's RGB is full range unless the caps say otherwise
        let range = if c.range() == VideoColorRange::Range16_235 { Range::Limited } else { Range::Full };
        return Ok(Colorimetry::new(Matrix::Rgb, range));
    }
    let matrix = match c.matrix() {
        VideoColorMatrix::Bt601 | VideoColorMatrix::Fcc => Matrix::Bt601,
        VideoColorMatrix::Bt709 | VideoColorMatrix::Smpte240m => Matrix::Bt709,
        VideoColorMatrix::Bt2020 => Matrix::Bt2020,
        VideoColorMatrix::Unknown if info.height() > SD_MAX_HEIGHT => Matrix::Bt709,
        VideoColorMatrix::Unknown => Matrix::Bt601,
        other => return Err(format!("colour matrix {other:?} is not supported for {format}")),
    };
    let range = match c.range() {
        VideoColorRange::Range0_255 => Range::Full,
        _ => Range::Limited,
    };
    Ok(Colorimetry::new(matrix, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(height: u32, colorimetry: Option<&str>) -> VideoInfo {
        info_of(VideoFormat::Nv12, height, colorimetry)
    }

    fn info_of(format: VideoFormat, height: u32, colorimetry: Option<&str>) -> VideoInfo {
        let mut b = VideoInfo::builder(format, 64, height);
        let c;
        if let Some(s) = colorimetry {
            c = s.parse::<gst_video::VideoColorimetry>().unwrap();
            b = b.colorimetry(&c);
        }
        b.build().unwrap()
    }

    #[test]
    fn named_colorimetries_map_to_their_matrix_and_range() {
        gst::init().unwrap();
        for (name, matrix, range) in [
            ("bt601", Matrix::Bt601, Range::Limited),
            ("bt709", Matrix::Bt709, Range::Limited),
            ("bt2020", Matrix::Bt2020, Range::Limited),
            ("smpte240m", Matrix::Bt709, Range::Limited),
            ("1:4:0:0", Matrix::Bt601, Range::Full),
        ] {
            assert_eq!(colorimetry(&info(480, Some(name))).unwrap(), Colorimetry::new(matrix, range), "{name}");
        }
    }

    #[test]
    fn an_unknown_matrix_follows_gstreamers_default_for_the_height() {
        gst::init().unwrap();
        assert_eq!(colorimetry(&info(576, Some("2:0:0:0"))).unwrap().matrix, Matrix::Bt601);
        assert_eq!(colorimetry(&info(720, Some("2:0:0:0"))).unwrap().matrix, Matrix::Bt709);
    }

    #[test]
    fn an_rgb_matrix_is_refused_with_its_name() {
        gst::init().unwrap();
        let e = colorimetry(&info(480, Some("1:1:0:0"))).unwrap_err();
        assert!(e.contains("Rgb") && e.contains("not supported"), "{e}");
    }

    #[test]
    fn formats_map_both_ways_and_others_are_named() {
        gst::init().unwrap();
        for f in FORMATS {
            assert_eq!(pixel_format(video_format(f)).unwrap(), f);
        }
        assert_eq!(video_format(PixelFormat::P010), VideoFormat::P01010le);
        let e = pixel_format(VideoFormat::I420).unwrap_err();
        assert_eq!(e, "format I420 is not supported");
    }

    #[test]
    fn ten_bit_hdr_and_rgb_colorimetry() {
        gst::init().unwrap();
        let hdr = colorimetry(&info_of(VideoFormat::P01010le, 1080, Some("bt2100-pq"))).unwrap();
        assert_eq!(hdr, Colorimetry::new(Matrix::Bt2020, Range::Limited));
        let hlg = colorimetry(&info_of(VideoFormat::P01010le, 1080, Some("bt2100-hlg"))).unwrap();
        assert_eq!(hlg, Colorimetry::new(Matrix::Bt2020, Range::Limited));
        let srgb = colorimetry(&info_of(VideoFormat::Rgba, 64, Some("sRGB"))).unwrap();
        assert_eq!(srgb, Colorimetry::new(Matrix::Rgb, Range::Full));
        let plain = colorimetry(&info_of(VideoFormat::Bgrx, 64, None)).unwrap();
        assert_eq!(plain, Colorimetry::new(Matrix::Rgb, Range::Full));
    }
}
