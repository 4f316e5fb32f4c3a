//! Hand-written FFI to `libgstcuda-1.0` (GStreamer 1.22 `gst/cuda/*.h`), resolved at run time.
//!
//! No crate binds this library, and linking it would make the plugin unloadable where gst-plugins-bad's CUDA
//! library (and the GL libraries it links) is absent; the system-memory path must work there. So the few
//! functions we need are looked up with `dlopen`/`dlsym` once, on first use.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use gst::glib::ffi::{GType, gboolean, gpointer};

/// `GST_MAP_CUDA` (`GST_MAP_FLAG_LAST << 1`): map the device memory instead of a host copy.
pub const GST_MAP_CUDA: u32 = gst::ffi::GST_MAP_FLAG_LAST << 1;

/// Caps feature of CUDA memory.
pub const CAPS_FEATURE_MEMORY_CUDA_MEMORY: &str = "memory:CUDAMemory";

/// `GST_CUDA_CONTEXT_TYPE`.
pub const CUDA_CONTEXT_TYPE: &str = "gst.cuda.context";

/// Opaque `GstCudaContext` (a `GstObject`).
#[repr(C)]
pub struct GstCudaContext {
    _private: [u8; 0],
}

/// The public head of `GstCudaMemory`: `{ GstMemory mem; GstCudaContext *context; GstVideoInfo info; … }`.
#[repr(C)]
pub struct GstCudaMemory {
    pub mem: gst::ffi::GstMemory,
    pub context: *mut GstCudaContext,
    pub info: gst_video::ffi::GstVideoInfo,
}

/// Function table of the symbols we use.
pub struct GstCuda {
    _lib: libloading::Library,
    pub load_library: unsafe extern "C" fn() -> gboolean,
    pub memory_init_once: unsafe extern "C" fn(),
    pub is_cuda_memory: unsafe extern "C" fn(*mut gst::ffi::GstMemory) -> gboolean,
    pub context_get_type: unsafe extern "C" fn() -> GType,
    pub context_new_wrapped: unsafe extern "C" fn(*mut c_void, c_int) -> *mut GstCudaContext,
    pub context_get_handle: unsafe extern "C" fn(*mut GstCudaContext) -> gpointer,
    pub handle_set_context: unsafe extern "C" fn(
        *mut gst::ffi::GstElement,
        *mut gst::ffi::GstContext,
        c_int,
        *mut *mut GstCudaContext,
    ) -> gboolean,
    pub handle_context_query:
        unsafe extern "C" fn(*mut gst::ffi::GstElement, *mut gst::ffi::GstQuery, *mut GstCudaContext) -> gboolean,
    pub context_new_cuda_context: unsafe extern "C" fn(*mut GstCudaContext) -> *mut gst::ffi::GstContext,
    pub buffer_pool_new: unsafe extern "C" fn(*mut GstCudaContext) -> *mut gst::ffi::GstBufferPool,
}

// SAFETY: a table of plain function pointers into a library that stays loaded with it; GStreamer's CUDA library
// is thread-safe for these calls.
unsafe impl Send for GstCuda {}
// SAFETY: as above: shared references only call those thread-safe functions.
unsafe impl Sync for GstCuda {}

fn open() -> Result<GstCuda, String> {
    // SAFETY: loading GStreamer's CUDA helper library runs only its (GObject type) initialisers.
    let lib = unsafe { libloading::Library::new("libgstcuda-1.0.so.0") }
        .map_err(|e| format!("libgstcuda-1.0.so.0 (gst-plugins-bad's CUDA library) cannot be loaded: {e}"))?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the field's type is the C prototype from GStreamer 1.22's headers for this symbol.
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("libgstcuda-1.0: {e}"))?
        };
    }
    let table = GstCuda {
        load_library: sym!("gst_cuda_load_library"),
        memory_init_once: sym!("gst_cuda_memory_init_once"),
        is_cuda_memory: sym!("gst_is_cuda_memory"),
        context_get_type: sym!("gst_cuda_context_get_type"),
        context_new_wrapped: sym!("gst_cuda_context_new_wrapped"),
        context_get_handle: sym!("gst_cuda_context_get_handle"),
        handle_set_context: sym!("gst_cuda_handle_set_context"),
        handle_context_query: sym!("gst_cuda_handle_context_query"),
        context_new_cuda_context: sym!("gst_context_new_cuda_context"),
        buffer_pool_new: sym!("gst_cuda_buffer_pool_new"),
        _lib: lib,
    };
    // GStreamer requires these two before any other gst_cuda_* call.
    // SAFETY: both take no arguments and are idempotent.
    if unsafe { (table.load_library)() } == 0 {
        return Err("gst_cuda_load_library failed: GStreamer could not load the CUDA driver library".into());
    }
    // SAFETY: as above.
    unsafe { (table.memory_init_once)() };
    Ok(table)
}

static TABLE: OnceLock<Result<GstCuda, String>> = OnceLock::new();

/// The loaded table, or why it could not be loaded (remembered for the process).
pub fn get() -> Result<&'static GstCuda, String> {
    TABLE.get_or_init(open).as_ref().map_err(Clone::clone)
}
