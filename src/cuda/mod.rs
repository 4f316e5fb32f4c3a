//! CUDA device handling: the primary context of each device (shared with ONNX Runtime's CUDA execution
//! provider, which always works in it), our NVRTC kernels compiled once per context, and streams.
//!
//! Everything is loaded at run time (cudarc's dynamic loading): a machine without the NVIDIA driver or NVRTC gets
//! an [`Error::Unavailable`], never a link failure or a panic.

pub mod copy;
pub mod launch;

use std::sync::{Arc, Mutex, Weak};

use cudarc::driver::sys as cu;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::error::{Error, Result};

mod sources {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

pub(crate) fn driver_error(call: &'static str, e: DriverError) -> Error {
    let reason = format!("{e:?}");
    if reason.contains("OUT_OF_MEMORY") {
        Error::OutOfMemory(format!("{call}: {reason}"))
    } else {
        Error::Cuda { call, reason }
    }
}

/// Checks that a CUDA driver with at least one device is present, without panicking where there is none.
pub fn driver_status() -> Result<i32> {
    // SAFETY: only tries to dlopen the driver library; no CUDA call is made.
    if !unsafe { cu::is_culib_present() } {
        return Err(Error::unavailable("CUDA", "the NVIDIA driver library (libcuda.so.1) was not found"));
    }
    cudarc::driver::result::init().map_err(|e| driver_error("cuInit", e))?;
    let count = cudarc::driver::result::device::get_count().map_err(|e| driver_error("cuDeviceGetCount", e))?;
    if count < 1 {
        return Err(Error::unavailable("CUDA", "the driver reports no CUDA device"));
    }
    Ok(count)
}

/// Version of the CUDA driver API as `(major, minor)`.
pub fn driver_version() -> Result<(i32, i32)> {
    driver_status()?;
    let mut v = 0;
    // SAFETY: the driver library is loaded (checked above) and `v` is a valid out-pointer.
    let r = unsafe { cu::cuDriverGetVersion(&mut v) };
    r.result().map_err(|e| driver_error("cuDriverGetVersion", e))?;
    Ok((v / 1000, (v % 1000) / 10))
}

/// Our kernels, compiled for one context.
pub struct Kernels {
    _module: Arc<CudaModule>,
    pub nv12_to_planar_f32: CudaFunction,
    pub nv12_to_planar_f16: CudaFunction,
    pub planar_to_nv12_f32: CudaFunction,
    pub planar_to_nv12_f16: CudaFunction,
    pub blend_tile_f32: CudaFunction,
    pub blend_tile_f16: CudaFunction,
}

/// One CUDA device: its retained primary context and our kernels loaded into it.
pub struct GpuDevice {
    ctx: Arc<CudaContext>,
    pub kernels: Kernels,
    ordinal: u32,
    name: String,
    compute_capability: (i32, i32),
    /// Further kernel modules, compiled on first use (once per context), by source name.
    modules: Mutex<std::collections::HashMap<&'static str, Arc<CudaModule>>>,
}

/// Devices in use in this process; kernels are compiled and loaded once per (primary) context.
static DEVICES: Mutex<Vec<(u32, Weak<GpuDevice>)>> = Mutex::new(Vec::new());

/// Virtual architectures NVRTC 13 knows, oldest first.
const VIRTUAL_ARCHS: &[(i32, &str)] = &[
    (75, "compute_75"),
    (80, "compute_80"),
    (86, "compute_86"),
    (87, "compute_87"),
    (89, "compute_89"),
    (90, "compute_90"),
    (100, "compute_100"),
    (120, "compute_120"),
];

/// A virtual architecture for a device of `(major, minor)`: the driver finalises the PTX for the exact chip, so the
/// newest one not above the device's capability is right (NVRTC 13 accepts compute_75 and newer).
fn virtual_arch((major, minor): (i32, i32)) -> &'static str {
    let cc = major * 10 + minor;
    VIRTUAL_ARCHS.iter().rev().find(|(v, _)| *v <= cc).map_or(VIRTUAL_ARCHS[0].1, |(_, a)| *a)
}

fn nvrtc_present() -> Result<()> {
    // SAFETY: only tries to dlopen NVRTC; no NVRTC call is made.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::unavailable(
            "NVRTC",
            "libnvrtc.so (CUDA 13 runtime compiler) was not found: install the CUDA toolkit's runtime libraries \
             or the nvidia-cuda-nvrtc Python wheel and add its lib directory to LD_LIBRARY_PATH",
        ));
    }
    Ok(())
}

fn compile(ctx: &Arc<CudaContext>, compute_capability: (i32, i32)) -> Result<Kernels> {
    nvrtc_present()?;
    let arch = virtual_arch(compute_capability);
    let mut functions = std::collections::HashMap::new();
    let mut modules = Vec::new();
    for (name, source) in sources::SOURCES {
        let ptx = compile_ptx_with_opts(
            source,
            CompileOptions {
                arch: Some(arch),
                // no contraction: the kernels then compute exactly what the CPU path computes
                fmad: Some(false),
                name: Some(name.to_string()),
                ..Default::default()
            },
        )
        .map_err(|e| Error::Nvrtc { source_name: name, arch: arch.to_string(), log: format!("{e:?}") })?;
        let module = ctx.load_module(ptx).map_err(|e| driver_error("cuModuleLoadData", e))?;
        for f in [
            "nv12_to_planar_f32",
            "nv12_to_planar_f16",
            "planar_to_nv12_f32",
            "planar_to_nv12_f16",
            "blend_tile_f32",
            "blend_tile_f16",
        ] {
            if let Ok(func) = module.load_function(f) {
                functions.insert(f, func);
            }
        }
        modules.push(module);
    }
    let mut take = |f: &'static str| {
        functions.remove(f).ok_or_else(|| Error::Cuda { call: "cuModuleGetFunction", reason: format!("{f} missing") })
    };
    Ok(Kernels {
        nv12_to_planar_f32: take("nv12_to_planar_f32")?,
        nv12_to_planar_f16: take("nv12_to_planar_f16")?,
        planar_to_nv12_f32: take("planar_to_nv12_f32")?,
        planar_to_nv12_f16: take("planar_to_nv12_f16")?,
        blend_tile_f32: take("blend_tile_f32")?,
        blend_tile_f16: take("blend_tile_f16")?,
        _module: modules.pop().expect("at least one kernel source"),
    })
}

impl GpuDevice {
    /// The device `ordinal`, with its primary context retained and our kernels loaded (once per process).
    pub fn get(ordinal: u32) -> Result<Arc<GpuDevice>> {
        let mut devices = DEVICES.lock().unwrap_or_else(|p| p.into_inner());
        devices.retain(|(_, d)| d.strong_count() > 0);
        if let Some(d) = devices.iter().find(|(o, _)| *o == ordinal).and_then(|(_, d)| d.upgrade()) {
            return Ok(d);
        }
        let count = driver_status()?;
        if ordinal as i32 >= count {
            return Err(Error::unavailable(
                format!("CUDA device {ordinal}"),
                format!("the driver reports {count} device(s)"),
            ));
        }
        let ctx = CudaContext::new(ordinal as usize).map_err(|e| driver_error("cuDevicePrimaryCtxRetain", e))?;
        // We order work ourselves (one stream per element, raw device pointers): cudarc's per-allocation event
        // tracking would only add synchronisation.
        // SAFETY: no CudaSlice of this context is shared between streams by this crate.
        unsafe { ctx.disable_event_tracking() };
        let compute_capability = ctx.compute_capability().map_err(|e| driver_error("cuDeviceGetAttribute", e))?;
        let name = ctx.name().map_err(|e| driver_error("cuDeviceGetName", e))?;
        let kernels = compile(&ctx, compute_capability)?;
        let device = Arc::new(GpuDevice { ctx, kernels, ordinal, name, compute_capability, modules: Mutex::default() });
        devices.push((ordinal, Arc::downgrade(&device)));
        Ok(device)
    }

    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The primary context's `CUcontext`, for wrapping by other libraries (GStreamer). Valid while `self` lives.
    pub fn cu_context(&self) -> cu::CUcontext {
        self.ctx.cu_ctx()
    }

    pub fn cu_device(&self) -> cu::CUdevice {
        self.ctx.cu_device()
    }

    /// Makes the primary context current on the calling thread.
    pub fn bind_to_thread(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| driver_error("cuCtxSetCurrent", e))
    }

    /// A new non-blocking stream in the primary context.
    pub fn new_stream(&self) -> Result<Arc<CudaStream>> {
        self.ctx.new_stream().map_err(|e| driver_error("cuStreamCreate", e))
    }

    /// A device attribute (`cuDeviceGetAttribute`).
    pub fn attribute(&self, attribute: cu::CUdevice_attribute) -> Result<i32> {
        self.ctx.attribute(attribute).map_err(|e| driver_error("cuDeviceGetAttribute", e))
    }

    /// The module compiled from `source` (named `name`), compiled with NVRTC and loaded into this context on first
    /// use. Unlike the conversion kernels these may contract multiplies and adds (FMA): they need not match the
    /// CPU path bit for bit.
    pub fn module(&self, name: &'static str, source: &str) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(name) {
            return Ok(m.clone());
        }
        nvrtc_present()?;
        let arch = virtual_arch(self.compute_capability);
        let options = CompileOptions { arch: Some(arch), name: Some(name.to_string()), ..Default::default() };
        let ptx = compile_ptx_with_opts(source, options).map_err(|e| Error::Nvrtc {
            source_name: name,
            arch: arch.to_string(),
            log: format!("{e:?}"),
        })?;
        let module = self.ctx.load_module(ptx).map_err(|e| driver_error("cuModuleLoadData", e))?;
        modules.insert(name, module.clone());
        Ok(module)
    }

    /// `(free, total)` device memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(|e| driver_error("cuMemGetInfo", e))
    }
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("compute_capability", &self.compute_capability)
            .finish()
    }
}
