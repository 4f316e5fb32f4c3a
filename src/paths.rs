// SPDX-License-Identifier: MPL-2.0
//! Where vfupscale keeps its files: one lookup of the XDG data and cache directories for the whole project (the
//! models, the ONNX Runtime copy, compiled kernels, TensorRT engines, downloads).

use std::path::PathBuf;

/// The first non-empty value of the environment variable `name`.
fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|d| !d.is_empty()).map(PathBuf::from)
}

/// vfupscale's data directory: `$VFUPSCALE_DATA_DIR`, else `$XDG_DATA_HOME/vfupscale`, else
/// `~/.local/share/vfupscale` (the current directory's `vfupscale` when there is no home directory either).
pub fn data_dir() -> PathBuf {
    env_dir("VFUPSCALE_DATA_DIR")
        .unwrap_or_else(|| dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("vfupscale"))
}

/// vfupscale's cache directory: `$XDG_CACHE_HOME/vfupscale`, else `~/.cache/vfupscale` (the system's temporary
/// directory when there is no home directory). Everything in it can be deleted at any time.
pub fn cache_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("vfupscale")
}

/// Compiled CUDA kernels (PTX), keyed by device, driver, NVRTC and source: `<cache dir>/kernels`.
pub fn kernel_cache_dir() -> PathBuf {
    cache_dir().join("kernels")
}

/// TensorRT engines and timing caches when no directory is configured: `<cache dir>/tensorrt`.
pub fn tensorrt_cache_dir() -> PathBuf {
    cache_dir().join("tensorrt")
}
