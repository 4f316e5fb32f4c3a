// SPDX-License-Identifier: MPL-2.0
//! The pixel formats frames come in, and the small description of each that the conversion routines work from
//! (the CPU path in `cpu.rs` and the kernels in `cuda/kernels/`, which receive it by value): where each component
//! lies, in how many bytes, at which bit depth, and which plane is subsampled. One routine per direction serves
//! every format through it.

use crate::frame::Size;

/// A frame format the upscaler reads and writes, named as GStreamer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit Y plane and interleaved CbCr plane, 4:2:0.
    Nv12,
    /// NV12's 10-bit variant: 16-bit little-endian samples holding the value in their high 10 bits.
    P010,
    /// Packed 8-bit R, G, B, alpha.
    Rgba,
    /// Packed 8-bit B, G, R, alpha.
    Bgra,
    /// Packed 8-bit R, G, B and a padding byte.
    Rgbx,
    /// Packed 8-bit B, G, R and a padding byte.
    Bgrx,
    /// Packed 8-bit R, G, B (3 bytes per pixel).
    Rgb,
}

/// Whether a format holds Y'CbCr (converted with a matrix) or R'G'B' samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Yuv,
    Rgb,
}

/// A format as the conversion routines see it; `#[repr(C)]`, passed by value to the kernels (`struct
/// FormatLayout` in `kernels/common.cuh`). Components 0, 1, 2 are Y, Cb, Cr or R, G, B.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatLayout {
    /// Bytes of one sample: 1, or 2 (little-endian).
    pub sample_bytes: i32,
    /// Bits the code value is shifted up within its sample (P010: 6).
    pub shift: i32,
    /// The largest code value: 255, or 1023 at 10 bits.
    pub max_code: i32,
    /// Samples from one pixel to the next in plane 0, and from one chroma position to the next in plane 1.
    pub step: [i32; 2],
    /// The plane of each component; plane 1 is subsampled 2×2 (4:2:0) with centred siting.
    pub plane: [i32; 3],
    /// The sample offset of each component within its pixel (or chroma position).
    pub offset: [i32; 3],
    /// Sample offset in plane 0 of a fourth sample per pixel (alpha or padding), or -1.
    pub extra: i32,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 7] = [
        PixelFormat::Nv12,
        PixelFormat::P010,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Rgb,
    ];

    /// GStreamer's name of the format (`GST_VIDEO_FORMAT_*`).
    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Nv12 => "NV12",
            PixelFormat::P010 => "P010_10LE",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Rgb => "RGB",
        }
    }

    /// The format GStreamer names `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub const fn family(self) -> Family {
        match self {
            PixelFormat::Nv12 | PixelFormat::P010 => Family::Yuv,
            _ => Family::Rgb,
        }
    }

    /// Bits per component.
    pub const fn depth(self) -> u32 {
        match self {
            PixelFormat::P010 => 10,
            _ => 8,
        }
    }

    /// Whether the fourth sample of a pixel is alpha (upscaled with the frame) rather than padding.
    pub const fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba | PixelFormat::Bgra)
    }

    /// Number of planes.
    pub const fn planes(self) -> usize {
        match self.family() {
            Family::Yuv => 2,
            Family::Rgb => 1,
        }
    }

    pub fn layout(self) -> FormatLayout {
        let (sample_bytes, shift, max_code) = match self {
            PixelFormat::P010 => (2, 6, 1023),
            _ => (1, 0, 255),
        };
        let packed = |step: i32, offset: [i32; 3], extra: i32| FormatLayout {
            sample_bytes,
            shift,
            max_code,
            step: [step, 0],
            plane: [0, 0, 0],
            offset,
            extra,
        };
        match self {
            PixelFormat::Nv12 | PixelFormat::P010 => FormatLayout {
                sample_bytes,
                shift,
                max_code,
                step: [1, 2],
                plane: [0, 1, 1],
                offset: [0, 0, 1],
                extra: -1,
            },
            PixelFormat::Rgba | PixelFormat::Rgbx => packed(4, [0, 1, 2], 3),
            PixelFormat::Bgra | PixelFormat::Bgrx => packed(4, [2, 1, 0], 3),
            PixelFormat::Rgb => packed(3, [0, 1, 2], -1),
        }
    }

    /// `(row bytes, rows)` of each plane of a frame of `size` (plane 1 of a one-plane format: `(0, 0)`).
    pub fn plane_rows(self, size: Size) -> [(usize, usize); 2] {
        let l = self.layout();
        let bytes = l.sample_bytes as usize;
        let luma = (size.width as usize * l.step[0] as usize * bytes, size.height as usize);
        match self.family() {
            Family::Yuv => {
                let c = size.chroma();
                [luma, (c.width as usize * l.step[1] as usize * bytes, c.height as usize)]
            }
            Family::Rgb => [luma, (0, 0)],
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_layouts_agree_with_the_formats() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_name(f.name()), Some(f));
            let l = f.layout();
            assert_eq!(l.max_code, (1 << f.depth()) - 1, "{f}");
            assert_eq!(l.extra >= 0, l.step[0] == 4, "{f}: a fourth sample exactly in 4-sample pixels");
            // every component in a distinct sample of its plane
            for a in 0..3 {
                assert!(l.offset[a] < l.step[l.plane[a] as usize], "{f}");
                for b in 0..a {
                    assert!(l.plane[a] != l.plane[b] || l.offset[a] != l.offset[b], "{f}");
                }
            }
        }
        assert_eq!(PixelFormat::from_name("I420"), None);
    }

    #[test]
    fn plane_rows_hold_odd_sizes() {
        let size = Size::new(5, 3);
        assert_eq!(PixelFormat::Nv12.plane_rows(size), [(5, 3), (6, 2)]);
        assert_eq!(PixelFormat::P010.plane_rows(size), [(10, 3), (12, 2)]);
        assert_eq!(PixelFormat::Bgrx.plane_rows(size), [(20, 3), (0, 0)]);
        assert_eq!(PixelFormat::Rgb.plane_rows(size), [(15, 3), (0, 0)]);
    }
}
