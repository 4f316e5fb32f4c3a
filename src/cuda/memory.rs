// SPDX-License-Identifier: MPL-2.0
//! Typed views of device memory, in cudarc's style: frames (of any [`PixelFormat`]) and planar RGB tensors that
//! borrow their memory for a lifetime, with private fields, checked when they are made. They can be made from cudarc
//! memory ([`CudaSlice`] and its views, keeping cudarc's access guard alive as long as the view), from our own
//! frames ([`FrameBuffer`]), or (for memory no Rust value owns: GStreamer's CUDA buffers, ONNX Runtime's tensors) through
//! one `unsafe` constructor whose contract says what the caller guarantees. Kernel launches and copies take these
//! views, never raw addresses.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::sys::{CUcontext, CUdeviceptr};
use cudarc::driver::{
    CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr, DeviceSlice, SyncOnDrop, ValidAsZeroBits,
};

use super::raw;
use crate::error::{Error, Result};
use crate::frame::{ElementType, HostFrame, Image, PixelFormat, Size};

/// An element type of device tensors as stored: `f32`, or fp16 as its bits (`u16`).
pub trait DeviceElement: DeviceRepr + ValidAsZeroBits + Copy + Default + 'static {
    const TYPE: ElementType;
}

impl DeviceElement for f32 {
    const TYPE: ElementType = ElementType::F32;
}

impl DeviceElement for u16 {
    const TYPE: ElementType = ElementType::F16;
}

/// Where the planes of a frame lie in device memory: plain numbers, valid for nothing by themselves. Plane 1 is
/// unused (0) for one-plane formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlanes {
    pub format: PixelFormat,
    pub size: Size,
    /// Plane addresses.
    pub ptr: [CUdeviceptr; 2],
    /// Row pitches in bytes.
    pub pitch: [usize; 2],
}

impl FramePlanes {
    /// Every plane in one allocation at `base`, rows of `pitch` bytes, plane 1 after plane 0's rows.
    pub fn packed(format: PixelFormat, base: CUdeviceptr, size: Size, pitch: usize) -> Self {
        let second = if format.planes() == 2 { base + (pitch * size.height as usize) as u64 } else { 0 };
        let second_pitch = if format.planes() == 2 { pitch } else { 0 };
        Self { format, size, ptr: [base, second], pitch: [pitch, second_pitch] }
    }

    /// Bytes of a packed frame of `size` at `pitch`.
    pub fn packed_bytes(format: PixelFormat, size: Size, pitch: usize) -> usize {
        pitch * format.plane_rows(size).iter().map(|&(_, rows)| rows).sum::<usize>()
    }

    /// `(pitch, row bytes, rows)` of each plane of the format.
    pub(crate) fn rows(&self) -> Vec<(usize, usize, usize)> {
        let rows = self.format.plane_rows(self.size);
        (0..self.format.planes()).map(|i| (self.pitch[i], rows[i].0, rows[i].1)).collect()
    }

    fn check(&self) -> Result<()> {
        let (format, size) = (self.format, self.size);
        if size.width == 0 || size.height == 0 || i32::try_from(size.height).is_err() {
            return Err(Error::Usage(format!("a {format} frame of {size} is out of the kernels' range")));
        }
        let sample = format.layout().sample_bytes as u64;
        for (i, (pitch, row, _)) in self.rows().into_iter().enumerate() {
            if pitch < row || i32::try_from(pitch).is_err() {
                return Err(Error::Usage(format!(
                    "{format} plane {i} pitch {pitch} does not hold rows of {row} bytes (or exceeds the kernels' \
                     32-bit indexing)"
                )));
            }
            if !self.ptr[i].is_multiple_of(sample) || !(pitch as u64).is_multiple_of(sample) {
                return Err(Error::Usage(format!(
                    "{format} plane {i} at {:#x}, pitch {pitch}, is not aligned to its {sample}-byte samples",
                    self.ptr[i]
                )));
            }
        }
        Ok(())
    }
}

/// Where a view's planes are, and the cudarc access guard it holds (when made from cudarc memory).
#[derive(Debug)]
struct FrameMemory<'a> {
    planes: FramePlanes,
    context: CUcontext,
    _guard: Option<SyncOnDrop<'a>>,
}

impl<'a> FrameMemory<'a> {
    /// Checks the planes (and, with `len`, that an allocation of `len` bytes holds them packed).
    fn new(planes: FramePlanes, context: CUcontext, guard: Option<SyncOnDrop<'a>>, len: Option<usize>) -> Result<Self> {
        planes.check()?;
        let needed = FramePlanes::packed_bytes(planes.format, planes.size, planes.pitch[0]);
        if let Some(len) = len.filter(|&len| len < needed) {
            return Err(Error::Usage(format!(
                "{len} bytes of device memory cannot hold a {} frame of {} at pitch {} ({needed} bytes)",
                planes.format, planes.size, planes.pitch[0]
            )));
        }
        Ok(Self { planes, context, _guard: guard })
    }
}

/// A frame in device memory, read-only, borrowed for `'a`.
#[derive(Debug)]
pub struct DeviceFrame<'a> {
    memory: FrameMemory<'a>,
    _borrow: PhantomData<&'a [u8]>,
}

/// A frame in device memory, writable, borrowed exclusively for `'a`.
#[derive(Debug)]
pub struct DeviceFrameMut<'a> {
    memory: FrameMemory<'a>,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a view is an address and a borrow; the CUDA driver accepts device addresses from any thread.
unsafe impl Send for DeviceFrame<'_> {}
// SAFETY: as above; the view is never written through `&self`.
unsafe impl Sync for DeviceFrame<'_> {}
// SAFETY: as above.
unsafe impl Send for DeviceFrameMut<'_> {}

/// The accessors both frame views share.
macro_rules! frame_accessors {
    ($view:ident) => {
        impl $view<'_> {
            pub fn size(&self) -> Size {
                self.memory.planes.size
            }

            pub fn format(&self) -> PixelFormat {
                self.memory.planes.format
            }

            pub fn planes(&self) -> FramePlanes {
                self.memory.planes
            }

            /// The CUDA context the memory belongs to.
            pub fn context(&self) -> CUcontext {
                self.memory.context
            }
        }
    };
}

frame_accessors!(DeviceFrame);
frame_accessors!(DeviceFrameMut);

impl<'a> DeviceFrame<'a> {
    /// A view of frame planes no Rust value owns (a mapped GStreamer CUDA buffer).
    ///
    /// # Safety
    /// `planes` must be device memory of `context`, holding the rows of each plane of the format at their pitches,
    /// that stays allocated and unchanged for `'a` and, beyond it, until the GPU work queued with this view has
    /// completed.
    pub unsafe fn from_raw(context: CUcontext, planes: FramePlanes) -> Result<Self> {
        Ok(Self { memory: FrameMemory::new(planes, context, None, None)?, _borrow: PhantomData })
    }

    /// Every plane packed in one cudarc allocation (see [`FramePlanes::packed`]), read on `stream`.
    pub fn from_view(
        view: CudaView<'a, u8>,
        stream: &'a CudaStream,
        format: PixelFormat,
        size: Size,
        pitch: usize,
    ) -> Result<Self> {
        let (context, len) = (view.stream().context().cu_ctx(), view.len());
        let (base, guard) = view.view_ptr(stream);
        let planes = FramePlanes::packed(format, base, size, pitch);
        Ok(Self { memory: FrameMemory::new(planes, context, Some(guard), Some(len))?, _borrow: PhantomData })
    }
}

impl<'a> DeviceFrameMut<'a> {
    /// A writable view of frame planes no Rust value owns (a mapped GStreamer CUDA buffer).
    ///
    /// # Safety
    /// As for [`DeviceFrame::from_raw`], and nothing else may read or write the planes for `'a` and until the work
    /// queued with this view has completed.
    pub unsafe fn from_raw(context: CUcontext, planes: FramePlanes) -> Result<Self> {
        Ok(Self { memory: FrameMemory::new(planes, context, None, None)?, _borrow: PhantomData })
    }

    /// Every plane packed in one cudarc allocation, written on `stream`.
    pub fn from_view(
        view: CudaViewMut<'a, u8>,
        stream: &'a CudaStream,
        format: PixelFormat,
        size: Size,
        pitch: usize,
    ) -> Result<Self> {
        let (context, len) = (view.stream().context().cu_ctx(), view.len());
        let (base, guard) = view.view_ptr_mut(stream);
        let planes = FramePlanes::packed(format, base, size, pitch);
        Ok(Self { memory: FrameMemory::new(planes, context, Some(guard), Some(len))?, _borrow: PhantomData })
    }
}

/// Row pitch of our own frames: 256-byte aligned rows, as the driver's own pitched allocations use.
fn frame_pitch(format: PixelFormat, width: u32) -> usize {
    format.plane_rows(Size::new(width, 1))[0].0.next_multiple_of(256)
}

/// A frame in device memory that we own (staging frames for copies and uploads, test and benchmark frames).
pub struct FrameBuffer {
    memory: CudaSlice<u8>,
    format: PixelFormat,
    size: Size,
}

impl FrameBuffer {
    /// A zeroed frame of `format` and `size` allocated on `stream`.
    pub fn new(stream: &Arc<CudaStream>, format: PixelFormat, size: Size) -> Result<Self> {
        let bytes = FramePlanes::packed_bytes(format, size, frame_pitch(format, size.width));
        let memory = stream.alloc_zeros::<u8>(bytes).map_err(Error::cuda("cuMemAlloc"))?;
        Ok(Self { memory, format, size })
    }

    /// A frame holding `image`, uploaded on `stream` (complete when this returns).
    pub fn from_image(stream: &Arc<CudaStream>, image: &HostFrame) -> Result<Self> {
        let mut frame = Self::new(stream, image.format, image.size)?;
        {
            let mut view = frame.view_mut(stream)?;
            // SAFETY: the destination is our allocation; `image` outlives the synchronisation below.
            unsafe { super::copy::upload(stream, image, &mut view)? };
        }
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
        Ok(frame)
    }

    pub fn size(&self) -> Size {
        self.size
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Device memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.memory.len()
    }

    /// The frame, read on `stream`.
    pub fn view<'a>(&'a self, stream: &'a CudaStream) -> Result<DeviceFrame<'a>> {
        let pitch = frame_pitch(self.format, self.size.width);
        DeviceFrame::from_view(self.memory.as_view(), stream, self.format, self.size, pitch)
    }

    /// The frame, written on `stream`.
    pub fn view_mut<'a>(&'a mut self, stream: &'a CudaStream) -> Result<DeviceFrameMut<'a>> {
        let pitch = frame_pitch(self.format, self.size.width);
        DeviceFrameMut::from_view(self.memory.as_view_mut(), stream, self.format, self.size, pitch)
    }

    /// The frame copied into host memory (waits for the work queued on `stream` before it).
    pub fn download(&self, stream: &CudaStream) -> Result<Image> {
        let mut image = Image::new(self.format, self.size);
        let planes = self.view(stream)?.planes();
        let strides = image.strides();
        for (i, (pitch, row, rows)) in planes.rows().into_iter().enumerate() {
            let dst = (image.planes[i].as_mut_ptr(), strides[i]);
            // SAFETY: the source is our allocation holding these rows; `image` holds `rows` packed rows and outlives
            // the synchronisation below.
            unsafe { raw::download_plane(stream, (planes.ptr[i], pitch), dst, row, rows) }
                .map_err(Error::cuda("cuMemcpy2DAsync"))?;
        }
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
        Ok(image)
    }
}

/// Where a tensor view's elements are, and the cudarc access guard it holds (when made from cudarc memory).
#[derive(Debug)]
struct PlanarMemory<'a> {
    ptr: CUdeviceptr,
    size: Size,
    element: ElementType,
    _guard: Option<SyncOnDrop<'a>>,
}

impl<'a> PlanarMemory<'a> {
    /// Checks that `len` elements (when known) hold a tensor of `size` the kernels can index.
    fn new(
        ptr: CUdeviceptr,
        size: Size,
        element: ElementType,
        guard: Option<SyncOnDrop<'a>>,
        len: Option<usize>,
    ) -> Result<Self> {
        let needed = 3 * size.pixels();
        if size.pixels() == 0 || len.is_some_and(|len| len < needed) || i32::try_from(needed).is_err() {
            return Err(Error::Usage(format!(
                "a planar tensor of {size} needs {needed} elements (at most 2^31), the memory holds {}",
                len.map_or("an unknown number".into(), |l| l.to_string())
            )));
        }
        Ok(Self { ptr, size, element, _guard: guard })
    }
}

/// A planar RGB tensor `[3, height, width]` in device memory, read-only, borrowed for `'a`.
#[derive(Debug)]
pub struct PlanarTensor<'a> {
    memory: PlanarMemory<'a>,
    _borrow: PhantomData<&'a [u8]>,
}

/// A planar RGB tensor `[3, height, width]` in device memory, writable, borrowed exclusively for `'a`.
#[derive(Debug)]
pub struct PlanarTensorMut<'a> {
    memory: PlanarMemory<'a>,
    _borrow: PhantomData<&'a mut [u8]>,
}

/// The accessors both tensor views share.
macro_rules! tensor_accessors {
    ($view:ident) => {
        impl $view<'_> {
            pub fn size(&self) -> Size {
                self.memory.size
            }

            pub fn element(&self) -> ElementType {
                self.memory.element
            }

            pub(crate) fn ptr(&self) -> CUdeviceptr {
                self.memory.ptr
            }
        }
    };
}

tensor_accessors!(PlanarTensor);
tensor_accessors!(PlanarTensorMut);

impl<'a> PlanarTensor<'a> {
    /// A tensor of `size` at the start of `view`, read on `stream`.
    pub fn from_view<T: DeviceElement>(view: CudaView<'a, T>, stream: &'a CudaStream, size: Size) -> Result<Self> {
        let len = view.len();
        let (ptr, guard) = view.view_ptr(stream);
        Ok(Self { memory: PlanarMemory::new(ptr, size, T::TYPE, Some(guard), Some(len))?, _borrow: PhantomData })
    }

    /// A view of a tensor no Rust value owns (ONNX Runtime's bound tensors).
    ///
    /// # Safety
    /// `ptr` must hold `3 × size.pixels()` elements of `element` in the device memory of the context the view is
    /// used in, valid and unchanged for `'a` and until the work queued with the view has completed.
    pub(crate) unsafe fn from_raw(ptr: CUdeviceptr, size: Size, element: ElementType) -> Result<Self> {
        Ok(Self { memory: PlanarMemory::new(ptr, size, element, None, None)?, _borrow: PhantomData })
    }

    /// The tensor copied into host memory as `T` (which must be its element type); waits for the work queued on
    /// `stream` before it.
    pub fn download<T: DeviceElement>(&self, stream: &CudaStream) -> Result<Vec<T>> {
        if T::TYPE != self.element() {
            return Err(Error::Usage(format!("a {} tensor read as {}", self.element(), T::TYPE)));
        }
        let mut out = vec![T::default(); 3 * self.size().pixels()];
        let bytes = out.len() * size_of::<T>();
        // SAFETY: `out` is a plain array of `bytes` bytes, reinterpreted as bytes for the copy only.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), bytes) };
        // SAFETY: the view holds that many bytes (checked when it was made); `dst` outlives the synchronisation.
        unsafe { raw::download_bytes(stream, self.ptr(), dst) }.map_err(Error::cuda("cuMemcpyDtoHAsync"))?;
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
        Ok(out)
    }
}

impl<'a> PlanarTensorMut<'a> {
    /// A tensor of `size` at the start of `view`, written on `stream`.
    pub fn from_view<T: DeviceElement>(view: CudaViewMut<'a, T>, stream: &'a CudaStream, size: Size) -> Result<Self> {
        let len = view.len();
        let (ptr, guard) = view.view_ptr_mut(stream);
        Ok(Self { memory: PlanarMemory::new(ptr, size, T::TYPE, Some(guard), Some(len))?, _borrow: PhantomData })
    }

    /// A writable view of a tensor no Rust value owns (ONNX Runtime's bound tensors).
    ///
    /// # Safety
    /// As for [`PlanarTensor::from_raw`], and nothing else may read or write it meanwhile.
    pub(crate) unsafe fn from_raw(ptr: CUdeviceptr, size: Size, element: ElementType) -> Result<Self> {
        Ok(Self { memory: PlanarMemory::new(ptr, size, element, None, None)?, _borrow: PhantomData })
    }

    /// The same memory, read-only, for as long as this view is borrowed.
    pub fn as_tensor(&self) -> PlanarTensor<'_> {
        let memory = PlanarMemory { ptr: self.ptr(), size: self.size(), element: self.element(), _guard: None };
        PlanarTensor { memory, _borrow: PhantomData }
    }

    /// Copies `values` (of the tensor's element type, `3 × size` of them) into the tensor; complete when this
    /// returns (waits for the work queued on `stream` before it).
    pub fn upload<T: DeviceElement>(&mut self, stream: &CudaStream, values: &[T]) -> Result<()> {
        if T::TYPE != self.element() || values.len() != 3 * self.size().pixels() {
            return Err(Error::Usage(format!(
                "{} values of {} for a {} tensor of {}",
                values.len(),
                T::TYPE,
                self.element(),
                self.size()
            )));
        }
        // SAFETY: `values` is a plain array, reinterpreted as its bytes for the copy only.
        let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) };
        // SAFETY: the view holds that many bytes (checked when it was made); `values` outlives the synchronisation.
        unsafe { raw::upload_bytes(stream, bytes, self.ptr()) }.map_err(Error::cuda("cuMemcpyHtoDAsync"))?;
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))
    }

    /// Copies the planar RGB `image` (`3 × size` values) into the tensor, converted to its element type; complete
    /// when this returns.
    pub fn upload_rgb(&mut self, stream: &CudaStream, image: &[f32]) -> Result<()> {
        match self.element() {
            ElementType::F32 => self.upload(stream, image),
            ElementType::F16 => {
                let bits: Vec<u16> = image.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
                self.upload(stream, &bits)
            }
        }
    }
}

/// A planar tensor of `size` allocated on `stream` and zeroed.
pub fn alloc_planar<T: DeviceElement>(stream: &Arc<CudaStream>, size: Size) -> Result<CudaSlice<T>> {
    stream.alloc_zeros::<T>(3 * size.pixels()).map_err(Error::cuda("cuMemAlloc"))
}
