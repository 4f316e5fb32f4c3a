// SPDX-License-Identifier: MPL-2.0

//! Safe wrappers over `libgstcuda-1.0`: the `GstCudaContext` wrapping our device's primary context, context
//! sharing (`GstContext`, context queries), CUDA buffer pools and CUDA-mapped video frames.

mod error;
pub mod ffi;

pub use error::{Error, Result};

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::glib::translate::FromGlibPtrFull;
use gst::prelude::*;
use vfupscale::cuda::GpuDevice;
use vfupscale::cuda::{DeviceFrameMut, FramePlanes};
use vfupscale::frame::{PixelFormat, Size};

/// A `GstCudaContext` that wraps the primary context of one of our [`GpuDevice`]s.
#[derive(Debug, Clone)]
pub struct CudaContext {
    object: gst::Object,
    device_id: u32,
}

/// One wrapped context per device and process, so that every element we create shares the same object.
static WRAPPED: Mutex<Vec<(u32, glib::WeakRef<gst::Object>)>> = Mutex::new(Vec::new());

/// Key under which the wrapped context keeps the device (and so the primary context) alive.
const DEVICE_KEY: &str = "vfupscale-gpu-device";

impl CudaContext {
    /// The `GstCudaContext` wrapping `device`'s primary context. `gst_cuda_context_new_wrapped` does not own the
    /// `CUcontext`, so the wrapper holds a reference to the device for as long as GStreamer holds the wrapper.
    pub fn wrap_primary(device: &Arc<GpuDevice>) -> Result<Self> {
        let table = ffi::get()?;
        let device_id = device.ordinal();
        let mut wrapped = WRAPPED.lock().unwrap_or_else(|p| p.into_inner());
        wrapped.retain(|(_, w)| w.upgrade().is_some());
        if let Some(object) = wrapped.iter().find(|(o, _)| *o == device_id).and_then(|(_, w)| w.upgrade()) {
            return Ok(Self { object, device_id });
        }
        // SAFETY: the handle and device come from a retained primary context; the returned reference is full.
        let raw = unsafe { (table.context_new_wrapped)(device.cu_context().cast(), device.cu_device()) };
        if raw.is_null() {
            return Err(Error::WrapContext(device_id));
        }
        // SAFETY: `raw` is a non-null, full reference to a GstCudaContext, which is a GstObject.
        let object: gst::Object = unsafe { gst::Object::from_glib_full(raw.cast::<gst::ffi::GstObject>()) };
        // SAFETY: the key is only ever used with this type; the data is dropped with the object.
        unsafe { object.set_data(DEVICE_KEY, device.clone()) };
        wrapped.push((device_id, object.downgrade()));
        Ok(Self { object, device_id })
    }

    /// The CUDA device whose primary context this wraps.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    fn as_ptr(&self) -> *mut ffi::GstCudaContext {
        self.object.as_ptr().cast()
    }

    /// The wrapped `CUcontext`.
    pub fn handle(&self) -> *mut std::ffi::c_void {
        match ffi::get() {
            // SAFETY: `self` is a live GstCudaContext.
            Ok(t) => unsafe { (t.context_get_handle)(self.as_ptr()) },
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// A `GstContext` carrying this context, to post or to set on other elements.
    pub fn to_gst_context(&self) -> Option<gst::Context> {
        let t = ffi::get().ok()?;
        // SAFETY: returns a full reference to a new GstContext.
        let raw = unsafe { (t.context_new_cuda_context)(self.as_ptr()) };
        // SAFETY: `raw` is a non-null full reference, handed over to the wrapper.
        (!raw.is_null()).then(|| unsafe { gst::Context::from_glib_full(raw) })
    }

    /// Answers a `gst.cuda.context` context query with this context.
    pub fn answer_query(&self, element: &gst::Element, query: &mut gst::QueryRef) -> bool {
        match ffi::get() {
            // SAFETY: element and query are live; the function only reads them and sets the query's context.
            Ok(t) => unsafe { (t.handle_context_query)(element.as_ptr(), query.as_mut_ptr(), self.as_ptr()) != 0 },
            Err(_) => false,
        }
    }

    /// A new `GstCudaBufferPool` allocating in this context.
    pub fn new_buffer_pool(&self) -> Option<gst::BufferPool> {
        let t = ffi::get().ok()?;
        // SAFETY: returns a full reference to a new pool holding its own reference to the context.
        let raw = unsafe { (t.buffer_pool_new)(self.as_ptr()) };
        // SAFETY: `raw` is a non-null full reference, handed over to the wrapper.
        (!raw.is_null()).then(|| unsafe { gst::BufferPool::from_glib_full(raw) })
    }
}

/// The `CUcontext` wrapped by the `GstCudaContext` in a `gst.cuda.context` `GstContext`, if it holds one for
/// `device_id`.
pub fn context_handle_of(
    element: &gst::Element,
    context: &gst::Context,
    device_id: u32,
) -> Option<*mut std::ffi::c_void> {
    let t = ffi::get().ok()?;
    let mut found: *mut ffi::GstCudaContext = std::ptr::null_mut();
    // SAFETY: reads the context; on success `found` holds a full reference that we release below.
    let ok =
        unsafe { (t.handle_set_context)(element.as_ptr(), context.as_ptr() as *mut _, device_id as i32, &mut found) };
    if ok == 0 || found.is_null() {
        return None;
    }
    // SAFETY: `found` is a full reference to a live GstCudaContext.
    let handle = unsafe { (t.context_get_handle)(found) };
    // SAFETY: releases the reference taken above.
    unsafe { gst::ffi::gst_object_unref(found.cast()) };
    Some(handle)
}

/// Whether `buffer` is one `GstCudaMemory` (of any context), which [`CudaFrame`] maps.
pub fn is_cuda_buffer(buffer: &gst::BufferRef) -> bool {
    let Ok(t) = ffi::get() else { return false };
    if buffer.n_memory() != 1 {
        return false;
    }
    let raw = buffer.peek_memory(0).as_ptr() as *mut gst::ffi::GstMemory;
    // SAFETY: `raw` is a live GstMemory of the borrowed buffer; gst_is_cuda_memory only inspects its allocator.
    unsafe { (t.is_cuda_memory)(raw) != 0 }
}

/// A buffer holding one `GstCudaMemory`, mapped with `GST_MAP_CUDA`: the frame's planes as device pointers. The
/// plane layout comes from the memory's own `GstVideoInfo` (its real, pitched layout), so buffers without a
/// `GstVideoMeta` are read correctly too. Unmapped on drop; borrows the buffer while mapped.
pub struct CudaFrame<'a> {
    buffer: *mut gst::ffi::GstBuffer,
    map: gst::ffi::GstMapInfo,
    planes: FramePlanes,
    /// The `CUcontext` the memory belongs to.
    context: *mut std::ffi::c_void,
    _buffer: PhantomData<&'a gst::BufferRef>,
}

impl<'a> CudaFrame<'a> {
    /// # Safety
    /// `buffer` must stay alive and, for a write map, writable for `'a`.
    unsafe fn map(buffer: *mut gst::ffi::GstBuffer, info: &gst_video::VideoInfo, flags: u32) -> Result<Self> {
        let t = ffi::get()?;
        let name = info.format_info().name();
        let format = PixelFormat::from_name(name).ok_or_else(|| Error::Format(name.to_string()))?;
        // SAFETY: `buffer` is live (caller's contract); peeking does not take a reference.
        let (n, mem) = unsafe { (gst::ffi::gst_buffer_n_memory(buffer), gst::ffi::gst_buffer_peek_memory(buffer, 0)) };
        if n != 1 {
            return Err(Error::MemoryCount(n));
        }
        // SAFETY: `mem` is the buffer's only memory, alive with the buffer.
        if unsafe { (t.is_cuda_memory)(mem) } == 0 {
            return Err(Error::NotCudaMemory);
        }
        // SAFETY: it is a GstCudaMemory, whose public head includes its video info.
        let layout = unsafe { &(*(mem as *const ffi::GstCudaMemory)).info };
        let mut map = MaybeUninit::<gst::ffi::GstMapInfo>::zeroed();
        // SAFETY: with GST_MAP_CUDA the returned data is the memory's CUdeviceptr, never dereferenced on the host.
        if unsafe { gst::ffi::gst_buffer_map(buffer, map.as_mut_ptr(), flags | ffi::GST_MAP_CUDA) } == 0 {
            return Err(Error::Map);
        }
        // SAFETY: initialised by the successful map.
        let map = unsafe { map.assume_init() };
        let base = map.data as u64;
        let size = Size::new(info.width(), info.height());
        let held = Size::new(layout.width as u32, layout.height as u32);
        if held != size {
            let mut map = map;
            // SAFETY: mapped just above.
            unsafe { gst::ffi::gst_buffer_unmap(buffer, &mut map) };
            return Err(Error::FrameSize { held, caps: size });
        }
        // the memory's info describes the planes inside this allocation
        let mut planes = FramePlanes { format, size, ptr: [0; 2], pitch: [0; 2] };
        for i in 0..format.planes() {
            planes.ptr[i] = base + layout.offset[i] as u64;
            planes.pitch[i] = layout.stride[i] as usize;
        }
        // SAFETY: it is a GstCudaMemory, whose context lives at least as long as the memory.
        let context = unsafe { (t.context_get_handle)((*(mem as *const ffi::GstCudaMemory)).context) };
        Ok(Self { buffer, map, planes, context, _buffer: PhantomData })
    }

    /// Maps `buffer` for reading on the device.
    pub fn readable(buffer: &'a gst::BufferRef, info: &gst_video::VideoInfo) -> Result<Self> {
        // SAFETY: a read map does not need a writable buffer; the borrow keeps it alive.
        unsafe { Self::map(buffer.as_ptr() as *mut _, info, gst::ffi::GST_MAP_READ) }
    }

    /// Maps `buffer` for writing on the device.
    pub fn writable(buffer: &'a mut gst::BufferRef, info: &gst_video::VideoInfo) -> Result<Self> {
        // SAFETY: `&mut BufferRef` means we hold the only reference, so the buffer is writable.
        unsafe { Self::map(buffer.as_mut_ptr(), info, gst::ffi::GST_MAP_WRITE) }
    }

    /// Where the planes lie and the `CUcontext` they belong to: valid while the buffer is alive (device addresses of
    /// CUDA memory stay valid after unmapping).
    pub fn raw_planes(&self) -> (*mut std::ffi::c_void, FramePlanes) {
        (self.context, self.planes)
    }

    /// The planes, written on the device while this (write) map lives.
    pub fn view_mut(&mut self) -> vfupscale::Result<DeviceFrameMut<'_>> {
        // SAFETY: the planes are the mapped memory's, in its context, alive and mapped for as long as `self`, a write
        // map of a buffer we hold exclusively (see `writable`); the caller keeps the buffer until the GPU work that
        // writes them has completed.
        unsafe { DeviceFrameMut::from_raw(self.context.cast(), self.planes) }
    }
}

impl Drop for CudaFrame<'_> {
    fn drop(&mut self) {
        // SAFETY: mapped in `map`, unmapped exactly once here, while the borrowed buffer is alive.
        unsafe { gst::ffi::gst_buffer_unmap(self.buffer, &mut self.map) };
    }
}
