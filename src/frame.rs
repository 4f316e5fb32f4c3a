// SPDX-License-Identifier: MPL-2.0
//! Frame and tensor descriptions shared by the CUDA and CPU paths: sizes, rectangles, element types, frames of any
//! [`PixelFormat`] and planar tensors in host memory. Device memory has its own typed views in
//! [`crate::cuda::memory`].

use crate::error::{Error, Result};
pub use crate::format::PixelFormat;

/// Element type of a model's input and output tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    F32,
    F16,
}

impl ElementType {
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "float32",
            ElementType::F16 => "float16",
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust scalar that can live in a planar RGB tensor.
pub trait TensorElement: Copy + Send + Sync + 'static {
    const TYPE: ElementType;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl TensorElement for f32 {
    const TYPE: ElementType = ElementType::F32;
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl TensorElement for half::f16 {
    const TYPE: ElementType = ElementType::F16;
    #[inline]
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Width and height of a frame or tensor plane, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn pixels(self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Size of a 4:2:0 chroma plane in chroma positions (odd sizes round up).
    pub fn chroma(self) -> Size {
        Size::new(self.width.div_ceil(2), self.height.div_ceil(2))
    }

    pub fn scaled(self, scale: u32) -> Size {
        Size::new(self.width * scale, self.height * scale)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A rectangle of a frame, in pixels; the origin may lie outside the frame (edges are replicated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: i32, y: i32, width: u32, height: u32) -> Self {
        Self { x, y, width, height }
    }

    pub fn of_size(size: Size) -> Self {
        Self::new(0, 0, size.width, size.height)
    }

    pub fn size(self) -> Size {
        Size::new(self.width, self.height)
    }
}

/// A frame in host memory: its format, size, and one or two planes (as the format has), each with its stride in
/// bytes. Samples of 16-bit formats are little-endian, read and written bytewise (no alignment needed).
#[derive(Debug, Clone, Copy)]
pub struct HostFrame<'a> {
    pub format: PixelFormat,
    pub size: Size,
    /// Plane 1 is empty for one-plane formats.
    pub planes: [&'a [u8]; 2],
    pub strides: [usize; 2],
}

/// A writable frame in host memory.
#[derive(Debug)]
pub struct HostFrameMut<'a> {
    pub format: PixelFormat,
    pub size: Size,
    pub planes: [&'a mut [u8]; 2],
    pub strides: [usize; 2],
}

/// Checks that planes of `len` bytes at `strides` hold a frame of `format` and `size`.
fn check_planes(format: PixelFormat, size: Size, len: [usize; 2], strides: [usize; 2]) -> Result<()> {
    let rows = format.plane_rows(size);
    for (i, ((row_bytes, rows), (len, stride))) in rows.into_iter().zip(len.into_iter().zip(strides)).enumerate() {
        if i >= format.planes() {
            break;
        }
        let needed = if rows == 0 { 0 } else { stride * (rows - 1) + row_bytes };
        if stride < row_bytes || len < needed {
            return Err(Error::InvalidConfig(format!(
                "{format} plane {i} too small for {size}: {len} bytes with stride {stride} for {rows} rows of \
                 {row_bytes} bytes"
            )));
        }
    }
    Ok(())
}

impl<'a> HostFrame<'a> {
    /// Checks that the planes hold a frame of `format` and `size` at the given strides.
    pub fn new(format: PixelFormat, size: Size, planes: [&'a [u8]; 2], strides: [usize; 2]) -> Result<Self> {
        check_planes(format, size, planes.map(<[u8]>::len), strides)?;
        Ok(Self { format, size, planes, strides })
    }
}

impl<'a> HostFrameMut<'a> {
    /// Checks that the planes hold a frame of `format` and `size` at the given strides.
    pub fn new(format: PixelFormat, size: Size, planes: [&'a mut [u8]; 2], strides: [usize; 2]) -> Result<Self> {
        check_planes(format, size, [planes[0].len(), planes[1].len()], strides)?;
        Ok(Self { format, size, planes, strides })
    }

    pub fn as_ref(&self) -> HostFrame<'_> {
        HostFrame {
            format: self.format,
            size: self.size,
            planes: [self.planes[0], self.planes[1]],
            strides: self.strides,
        }
    }
}

/// A frame owned in host memory, its planes tightly packed (tests, tools, the CPU reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub format: PixelFormat,
    pub size: Size,
    /// Plane 1 is empty for one-plane formats.
    pub planes: [Vec<u8>; 2],
}

impl Image {
    /// A black frame (neutral chroma; alpha and padding zero).
    pub fn new(format: PixelFormat, size: Size) -> Self {
        let [(row0, rows0), (row1, rows1)] = format.plane_rows(size);
        let l = format.layout();
        // the chroma zero code, shifted into its sample, little-endian
        let mid = (l.max_code as u32).div_ceil(2) << l.shift;
        let chroma = match l.sample_bytes {
            1 => vec![mid as u8; row1 * rows1],
            _ => (0..row1 * rows1).map(|i| (mid >> (8 * (i % 2))) as u8).collect(),
        };
        Self { format, size, planes: [vec![0; row0 * rows0], chroma] }
    }

    /// Row bytes (the stride) of each plane.
    pub fn strides(&self) -> [usize; 2] {
        self.format.plane_rows(self.size).map(|(row, _)| row)
    }

    pub fn view(&self) -> HostFrame<'_> {
        HostFrame {
            format: self.format,
            size: self.size,
            planes: [&self.planes[0], &self.planes[1]],
            strides: self.strides(),
        }
    }

    pub fn view_mut(&mut self) -> HostFrameMut<'_> {
        let strides = self.strides();
        let [p0, p1] = &mut self.planes;
        HostFrameMut { format: self.format, size: self.size, planes: [p0, p1], strides }
    }
}

/// A planar RGB tensor in host memory, of either element type.
#[derive(Debug)]
pub enum HostTensor<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

/// A writable planar RGB tensor in host memory, of either element type.
#[derive(Debug)]
pub enum HostTensorMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [half::f16]),
}
