// SPDX-License-Identifier: MPL-2.0
//! Typed views of device memory, in cudarc's style: NV12 frames and planar RGB tensors that borrow their memory
//! for a lifetime, with private fields, checked when they are made. They can be made from cudarc memory
//! ([`CudaSlice`] and its views, keeping cudarc's access guard alive as long as the view), from our own frames
//! ([`Nv12Buffer`]), or (for memory no Rust value owns: GStreamer's CUDA buffers, ONNX Runtime's tensors) through
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
use crate::frame::{ElementType, HostNv12, Nv12Image, Size};

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

/// Where the two planes of an NV12 frame lie in device memory: plain numbers, valid for nothing by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nv12Planes {
    pub size: Size,
    /// Luma plane address and row pitch in bytes.
    pub y: CUdeviceptr,
    pub y_pitch: usize,
    /// Interleaved CbCr plane address and row pitch in bytes.
    pub uv: CUdeviceptr,
    pub uv_pitch: usize,
}

impl Nv12Planes {
    /// Both planes in one allocation at `base`, rows of `pitch` bytes, chroma after the luma rows.
    pub fn packed(base: CUdeviceptr, size: Size, pitch: usize) -> Self {
        Self { size, y: base, y_pitch: pitch, uv: base + (pitch * size.height as usize) as u64, uv_pitch: pitch }
    }

    /// Bytes of a packed frame of `size` at `pitch`.
    pub fn packed_bytes(size: Size, pitch: usize) -> usize {
        pitch * (size.height as usize + size.chroma().height as usize)
    }

    /// `(pitch, row bytes, rows)` of the luma and the chroma plane.
    pub(crate) fn rows(&self) -> [(usize, usize, usize); 2] {
        let c = self.size.chroma();
        [
            (self.y_pitch, self.size.width as usize, self.size.height as usize),
            (self.uv_pitch, 2 * c.width as usize, c.height as usize),
        ]
    }

    fn check(&self) -> Result<()> {
        if self.size.width == 0 || self.size.height == 0 || i32::try_from(self.size.height).is_err() {
            return Err(Error::Usage(format!("an NV12 frame of {} is out of the kernels' range", self.size)));
        }
        for ((pitch, row, _), what) in self.rows().into_iter().zip(["luma", "chroma"]) {
            if pitch < row || i32::try_from(pitch).is_err() {
                return Err(Error::Usage(format!(
                    "NV12 {what} pitch {pitch} does not hold rows of {row} bytes (or exceeds the kernels' 32-bit \
                     indexing)"
                )));
            }
        }
        Ok(())
    }
}

/// Where a view's NV12 planes are, and the cudarc access guard it holds (when made from cudarc memory).
#[derive(Debug)]
struct Nv12Memory<'a> {
    planes: Nv12Planes,
    context: CUcontext,
    _guard: Option<SyncOnDrop<'a>>,
}

impl<'a> Nv12Memory<'a> {
    /// Checks the planes (and, with `len`, that an allocation of `len` bytes holds them).
    fn new(planes: Nv12Planes, context: CUcontext, guard: Option<SyncOnDrop<'a>>, len: Option<usize>) -> Result<Self> {
        planes.check()?;
        let needed = Nv12Planes::packed_bytes(planes.size, planes.y_pitch);
        if let Some(len) = len.filter(|&len| len < needed) {
            return Err(Error::Usage(format!(
                "{len} bytes of device memory cannot hold an NV12 frame of {} at pitch {} ({needed} bytes)",
                planes.size, planes.y_pitch
            )));
        }
        Ok(Self { planes, context, _guard: guard })
    }
}

/// An NV12 frame in device memory, read-only, borrowed for `'a`.
#[derive(Debug)]
pub struct DeviceNv12<'a> {
    memory: Nv12Memory<'a>,
    _borrow: PhantomData<&'a [u8]>,
}

/// An NV12 frame in device memory, writable, borrowed exclusively for `'a`.
#[derive(Debug)]
pub struct DeviceNv12Mut<'a> {
    memory: Nv12Memory<'a>,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a view is an address and a borrow; the CUDA driver accepts device addresses from any thread.
unsafe impl Send for DeviceNv12<'_> {}
// SAFETY: as above; the view is never written through `&self`.
unsafe impl Sync for DeviceNv12<'_> {}
// SAFETY: as above.
unsafe impl Send for DeviceNv12Mut<'_> {}

/// The accessors both NV12 views share.
macro_rules! nv12_accessors {
    ($view:ident) => {
        impl $view<'_> {
            pub fn size(&self) -> Size {
                self.memory.planes.size
            }

            pub fn planes(&self) -> Nv12Planes {
                self.memory.planes
            }

            /// The CUDA context the memory belongs to.
            pub fn context(&self) -> CUcontext {
                self.memory.context
            }
        }
    };
}

nv12_accessors!(DeviceNv12);
nv12_accessors!(DeviceNv12Mut);

impl<'a> DeviceNv12<'a> {
    /// A view of NV12 planes no Rust value owns (a mapped GStreamer CUDA buffer).
    ///
    /// # Safety
    /// `planes` must be device memory of `context`, holding `planes.size.height` luma rows and
    /// `planes.size.chroma().height` chroma rows at their pitches, that stays allocated and unchanged for `'a` and,
    /// beyond it, until the GPU work queued with this view has completed.
    pub unsafe fn from_raw(context: CUcontext, planes: Nv12Planes) -> Result<Self> {
        Ok(Self { memory: Nv12Memory::new(planes, context, None, None)?, _borrow: PhantomData })
    }

    /// Both planes packed in one cudarc allocation (see [`Nv12Planes::packed`]), read on `stream`.
    pub fn from_view(view: CudaView<'a, u8>, stream: &'a CudaStream, size: Size, pitch: usize) -> Result<Self> {
        let (context, len) = (view.stream().context().cu_ctx(), view.len());
        let (base, guard) = view.view_ptr(stream);
        let memory = Nv12Memory::new(Nv12Planes::packed(base, size, pitch), context, Some(guard), Some(len))?;
        Ok(Self { memory, _borrow: PhantomData })
    }
}

impl<'a> DeviceNv12Mut<'a> {
    /// A writable view of NV12 planes no Rust value owns (a mapped GStreamer CUDA buffer).
    ///
    /// # Safety
    /// As for [`DeviceNv12::from_raw`], and nothing else may read or write the planes for `'a` and until the work
    /// queued with this view has completed.
    pub unsafe fn from_raw(context: CUcontext, planes: Nv12Planes) -> Result<Self> {
        Ok(Self { memory: Nv12Memory::new(planes, context, None, None)?, _borrow: PhantomData })
    }

    /// Both planes packed in one cudarc allocation, written on `stream`.
    pub fn from_view(view: CudaViewMut<'a, u8>, stream: &'a CudaStream, size: Size, pitch: usize) -> Result<Self> {
        let (context, len) = (view.stream().context().cu_ctx(), view.len());
        let (base, guard) = view.view_ptr_mut(stream);
        let memory = Nv12Memory::new(Nv12Planes::packed(base, size, pitch), context, Some(guard), Some(len))?;
        Ok(Self { memory, _borrow: PhantomData })
    }
}

/// Row pitch of our own frames: 256-byte aligned rows, as the driver's own pitched allocations use.
fn frame_pitch(width: u32) -> usize {
    (width as usize).next_multiple_of(256)
}

/// An NV12 frame in device memory that we own (staging frames for copies and uploads, test and benchmark frames).
pub struct Nv12Buffer {
    memory: CudaSlice<u8>,
    size: Size,
}

impl Nv12Buffer {
    /// A zeroed frame of `size` allocated on `stream`.
    pub fn new(stream: &Arc<CudaStream>, size: Size) -> Result<Self> {
        let bytes = Nv12Planes::packed_bytes(size, frame_pitch(size.width));
        let memory = stream.alloc_zeros::<u8>(bytes).map_err(Error::cuda("cuMemAlloc"))?;
        Ok(Self { memory, size })
    }

    /// A frame holding `image`, uploaded on `stream` (complete when this returns).
    pub fn from_image(stream: &Arc<CudaStream>, image: &HostNv12) -> Result<Self> {
        let mut frame = Self::new(stream, image.size)?;
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

    /// Device memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.memory.len()
    }

    /// The frame, read on `stream`.
    pub fn view<'a>(&'a self, stream: &'a CudaStream) -> Result<DeviceNv12<'a>> {
        DeviceNv12::from_view(self.memory.as_view(), stream, self.size, frame_pitch(self.size.width))
    }

    /// The frame, written on `stream`.
    pub fn view_mut<'a>(&'a mut self, stream: &'a CudaStream) -> Result<DeviceNv12Mut<'a>> {
        let pitch = frame_pitch(self.size.width);
        DeviceNv12Mut::from_view(self.memory.as_view_mut(), stream, self.size, pitch)
    }

    /// The frame copied into host memory (waits for the work queued on `stream` before it).
    pub fn download(&self, stream: &CudaStream) -> Result<Nv12Image> {
        let mut image = Nv12Image::new(self.size);
        let planes = self.view(stream)?.planes();
        let c = self.size.chroma();
        let host = [(image.y.as_mut_ptr(), self.size.width as usize), (image.uv.as_mut_ptr(), 2 * c.width as usize)];
        let device = [planes.y, planes.uv];
        for ((pitch, row, rows), ((dst, dst_pitch), src)) in planes.rows().into_iter().zip(host.into_iter().zip(device))
        {
            // SAFETY: the source is our allocation holding these rows; `image` holds `rows` packed rows and outlives
            // the synchronisation below.
            unsafe { raw::download_plane(stream, (src, pitch), (dst, dst_pitch), row, rows) }
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
}

/// A planar tensor of `size` allocated on `stream` and zeroed.
pub fn alloc_planar<T: DeviceElement>(stream: &Arc<CudaStream>, size: Size) -> Result<CudaSlice<T>> {
    stream.alloc_zeros::<T>(3 * size.pixels()).map_err(Error::cuda("cuMemAlloc"))
}
