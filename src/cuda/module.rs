// SPDX-License-Identifier: MPL-2.0
//! Kernel modules: the CUDA sources build.rs embeds (one [`KernelModule`] per `.cu` file, with the kernels it
//! defines and the NVRTC options it asks for), compiled by NVRTC for the device (or read from the [`PtxCache`]) and
//! loaded into a context, their kernels looked up by name.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, compile_ptx_with_opts};

use super::ptx_cache::{CacheKey, PtxCache, PtxOrigin};
use super::raw;
use crate::error::{Error, Result};

/// A CUDA source embedded by build.rs.
#[derive(Debug)]
pub struct KernelModule {
    /// The file's stem (`frame_to_planar`, `srvgg`, …).
    pub name: &'static str,
    /// The source with its local includes inlined.
    pub source: &'static str,
    /// The `extern "C" __global__` kernels it defines.
    pub functions: &'static [&'static str],
    /// The virtual architecture the source asks for (`// nvrtc: arch=compute_90a`); `None`: the device's own.
    pub arch: Option<&'static str>,
    /// Whether NVRTC may contract multiplies and adds (`// nvrtc: fmad=false` keeps results bit-identical with
    /// the CPU path).
    pub fmad: bool,
}

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

/// The virtual architecture to compile `module` for on a device of `(major, minor)`. Without a request, the newest
/// one not above the device's capability (the driver finalises the PTX for the exact chip). A requested
/// architecture must run on the device: `compute_NN` needs capability NN or newer, the arch-specific `compute_NNa`
/// (Hopper's wgmma, setmaxnreg) exactly NN.
pub fn target_arch(module: &KernelModule, (major, minor): (i32, i32)) -> Result<&'static str> {
    let cc = major * 10 + minor;
    let Some(arch) = module.arch else {
        return Ok(VIRTUAL_ARCHS.iter().rev().find(|(v, _)| *v <= cc).map_or(VIRTUAL_ARCHS[0].1, |(_, a)| *a));
    };
    let digits = arch.trim_start_matches("compute_");
    let (number, specific) = match digits.strip_suffix(['a', 'f']) {
        Some(n) => (n, true),
        None => (digits, false),
    };
    let wanted: i32 = number
        .parse()
        .map_err(|_| Error::Usage(format!("kernel module {}: cannot read architecture {arch}", module.name)))?;
    let fits = if specific { cc == wanted } else { cc >= wanted };
    if !fits {
        let need = if specific {
            format!("compute capability {}.{} exactly", wanted / 10, wanted % 10)
        } else {
            format!("compute capability {}.{} or newer", wanted / 10, wanted % 10)
        };
        return Err(Error::unavailable(
            format!("kernel module {}", module.name),
            format!("it is built for {arch} ({need}); this GPU has {major}.{minor}"),
        ));
    }
    Ok(arch)
}

/// A module loaded into a context, with its kernels.
#[derive(Debug)]
pub struct LoadedModule {
    name: &'static str,
    functions: HashMap<&'static str, CudaFunction>,
}

impl LoadedModule {
    /// The kernel `name`, which the module's source defines.
    pub fn function(&self, name: &str) -> Result<&CudaFunction> {
        self.functions
            .get(name)
            .ok_or_else(|| Error::Usage(format!("kernel module {} defines no kernel {name}", self.name)))
    }
}

fn nvrtc_log(e: &CompileError) -> String {
    match e {
        CompileError::CompileError { log, .. } => log.to_string_lossy().trim().to_string(),
        other => format!("{other:?}"),
    }
}

fn load_ptx(ctx: &Arc<CudaContext>, module: &KernelModule, ptx: &str) -> Result<LoadedModule> {
    let loaded: Arc<CudaModule> = ctx.load_module(Ptx::from_src(ptx)).map_err(Error::cuda("cuModuleLoadData"))?;
    let mut functions = HashMap::new();
    for &name in module.functions {
        functions.insert(name, loaded.load_function(name).map_err(Error::cuda("cuModuleGetFunction"))?);
    }
    Ok(LoadedModule { name: module.name, functions })
}

/// Compiles `module` for a device of `compute_capability` (or takes it from `cache`) and loads it into `ctx` with
/// all its kernels. Says where the PTX came from.
pub fn load_module(
    ctx: &Arc<CudaContext>,
    module: &KernelModule,
    compute_capability: (i32, i32),
    cache: &PtxCache,
) -> Result<(LoadedModule, PtxOrigin)> {
    if !raw::nvrtc_library_present() {
        return Err(Error::unavailable(
            "NVRTC",
            "libnvrtc.so (CUDA 13 runtime compiler) was not found: install the CUDA toolkit's runtime libraries \
             or the nvidia-cuda-nvrtc Python wheel and add its lib directory to LD_LIBRARY_PATH",
        ));
    }
    let arch = target_arch(module, compute_capability)?;
    let options = CompileOptions {
        arch: Some(arch),
        fmad: Some(module.fmad),
        name: Some(format!("{}.cu", module.name)),
        ..Default::default()
    };
    let option_text = vec![format!("--fmad={}", module.fmad)];
    let key = CacheKey {
        module: module.name,
        source: module.source,
        arch,
        options: &option_text,
        compute_capability,
        driver_version: raw::driver_version().map_err(Error::cuda("cuDriverGetVersion"))?,
        nvrtc_version: raw::nvrtc_version().unwrap_or((0, 0)),
    };
    let compile = || {
        compile_ptx_with_opts(module.source, options).map(|ptx| ptx.to_src()).map_err(|source| Error::Nvrtc {
            module: module.name,
            arch: arch.to_string(),
            log: nvrtc_log(&source),
            source,
        })
    };
    cache.load_or_compile(&key, compile, |ptx| load_ptx(ctx, module, ptx))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn module(arch: Option<&'static str>) -> KernelModule {
        KernelModule { name: "m", source: "", functions: &[], arch, fmad: true }
    }

    #[test]
    fn modules_compile_for_the_device_or_for_what_they_ask() {
        assert_eq!(target_arch(&module(None), (9, 0)).unwrap(), "compute_90");
        assert_eq!(target_arch(&module(None), (8, 9)).unwrap(), "compute_89");
        assert_eq!(target_arch(&module(None), (10, 3)).unwrap(), "compute_100");
        assert_eq!(target_arch(&module(None), (7, 0)).unwrap(), "compute_75");
        assert_eq!(target_arch(&module(Some("compute_90a")), (9, 0)).unwrap(), "compute_90a");
        let e = target_arch(&module(Some("compute_90a")), (10, 0)).unwrap_err().to_string();
        assert!(e.contains("compute_90a") && e.contains("9.0 exactly") && e.contains("10.0"), "{e}");
        assert!(target_arch(&module(Some("compute_80")), (9, 0)).is_ok());
        let e = target_arch(&module(Some("compute_80")), (7, 5)).unwrap_err();
        assert!(e.is_missing_resource(), "{e}");
    }

    #[test]
    fn build_rs_lists_each_modules_kernels() {
        let names: Vec<&str> = super::super::conversion::ALL.iter().map(|m| m.name).collect();
        assert_eq!(names, ["blend", "fill_extra", "frame_to_planar", "planar_to_frame"]);
        for m in super::super::conversion::ALL {
            assert!(!m.fmad, "{}: the conversion kernels are compiled without contraction", m.name);
            assert!(!m.source.contains("#include"), "{}: includes are inlined", m.name);
            for f in m.functions {
                assert!(m.source.contains(f), "{}: {f}", m.name);
            }
        }
        assert_eq!(super::super::conversion::BLEND.functions, ["blend_tile_f32", "blend_tile_f16"]);
        let srvgg = &crate::native::kernels::SRVGG;
        assert!(srvgg.fmad);
        for f in ["srvgg_conv_hidden", "srvgg_conv_last_16", "srvgg_conv_last_32", "srvgg_conv_last_48"] {
            assert!(srvgg.functions.contains(&f), "{f} (macro-generated ones included): {:?}", srvgg.functions);
        }
    }
}
