// SPDX-License-Identifier: MPL-2.0
//! Frame and tensor descriptions shared by the CUDA and CPU paths: sizes, rectangles, element types, NV12 frames
//! and planar tensors in host memory. Device memory has its own typed views in [`crate::cuda::memory`].

use crate::error::{Error, Result};

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

    /// Size of the NV12 chroma plane in chroma samples (odd sizes round up).
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

/// NV12 in host memory: a luma plane and an interleaved CbCr plane, each with its own stride in bytes.
#[derive(Debug, Clone, Copy)]
pub struct HostNv12<'a> {
    pub size: Size,
    pub y: &'a [u8],
    pub y_stride: usize,
    pub uv: &'a [u8],
    pub uv_stride: usize,
}

/// Writable NV12 in host memory.
#[derive(Debug)]
pub struct HostNv12Mut<'a> {
    pub size: Size,
    pub y: &'a mut [u8],
    pub y_stride: usize,
    pub uv: &'a mut [u8],
    pub uv_stride: usize,
}

fn check_plane(what: &str, len: usize, stride: usize, row_bytes: usize, rows: u32) -> Result<()> {
    let needed = if rows == 0 { 0 } else { stride * (rows as usize - 1) + row_bytes };
    if stride < row_bytes || len < needed {
        return Err(Error::InvalidConfig(format!(
            "NV12 {what} plane too small: {len} bytes with stride {stride} for {rows} rows of {row_bytes} bytes"
        )));
    }
    Ok(())
}

impl<'a> HostNv12<'a> {
    /// Checks that the planes hold `size` with the given strides.
    pub fn new(size: Size, y: &'a [u8], y_stride: usize, uv: &'a [u8], uv_stride: usize) -> Result<Self> {
        let c = size.chroma();
        check_plane("luma", y.len(), y_stride, size.width as usize, size.height)?;
        check_plane("chroma", uv.len(), uv_stride, 2 * c.width as usize, c.height)?;
        Ok(Self { size, y, y_stride, uv, uv_stride })
    }
}

impl<'a> HostNv12Mut<'a> {
    /// Checks that the planes hold `size` with the given strides.
    pub fn new(size: Size, y: &'a mut [u8], y_stride: usize, uv: &'a mut [u8], uv_stride: usize) -> Result<Self> {
        let c = size.chroma();
        check_plane("luma", y.len(), y_stride, size.width as usize, size.height)?;
        check_plane("chroma", uv.len(), uv_stride, 2 * c.width as usize, c.height)?;
        Ok(Self { size, y, y_stride, uv, uv_stride })
    }

    pub fn as_ref(&self) -> HostNv12<'_> {
        HostNv12 { size: self.size, y: self.y, y_stride: self.y_stride, uv: self.uv, uv_stride: self.uv_stride }
    }
}

/// A tightly packed NV12 image owned in host memory (tests, tools, the CPU reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nv12Image {
    pub size: Size,
    pub y: Vec<u8>,
    pub uv: Vec<u8>,
}

impl Nv12Image {
    pub fn new(size: Size) -> Self {
        let c = size.chroma();
        Self { size, y: vec![0; size.pixels()], uv: vec![128; 2 * c.pixels()] }
    }

    pub fn view(&self) -> HostNv12<'_> {
        HostNv12 {
            size: self.size,
            y: &self.y,
            y_stride: self.size.width as usize,
            uv: &self.uv,
            uv_stride: 2 * self.size.chroma().width as usize,
        }
    }

    pub fn view_mut(&mut self) -> HostNv12Mut<'_> {
        let uv_stride = 2 * self.size.chroma().width as usize;
        HostNv12Mut { size: self.size, y: &mut self.y, y_stride: self.size.width as usize, uv: &mut self.uv, uv_stride }
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
