// SPDX-License-Identifier: MPL-2.0

//! GStreamer colorimetry to the core's: the matrix and range the conversion kernels use.

use gst_video::{VideoColorMatrix, VideoColorRange, VideoInfo};
use vfupscale::color::{Colorimetry, Matrix, Range};

/// Height above which GStreamer assumes BT.709 for YUV without a colour matrix (below: BT.601).
const SD_MAX_HEIGHT: u32 = 576;

/// The matrix and range of the frames `info` describes.
pub fn colorimetry(info: &VideoInfo) -> Result<Colorimetry, String> {
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        VideoColorMatrix::Bt601 | VideoColorMatrix::Fcc => Matrix::Bt601,
        VideoColorMatrix::Bt709 | VideoColorMatrix::Smpte240m => Matrix::Bt709,
        VideoColorMatrix::Bt2020 => Matrix::Bt2020,
        VideoColorMatrix::Unknown if info.height() > SD_MAX_HEIGHT => Matrix::Bt709,
        VideoColorMatrix::Unknown => Matrix::Bt601,
        other => return Err(format!("colour matrix {other:?} is not supported for NV12")),
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
        let mut b = VideoInfo::builder(gst_video::VideoFormat::Nv12, 64, height);
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
}
