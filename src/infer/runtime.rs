// SPDX-License-Identifier: MPL-2.0
//! Loading ONNX Runtime at run time and the one process-wide environment.
//!
//! The library is looked for in this order: `ORT_DYLIB_PATH` (if set, nothing else is tried), the copy that
//! `scripts/setup-onnxruntime.sh` installs under the data directory, then the system's `libonnxruntime.so.1`.
//! A failure is remembered, so every element in the process reports the same clear reason instead of panicking
//! inside `ort`.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{Error, Result};
use crate::paths::data_dir;

/// Candidate library paths, most specific first.
pub fn library_candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    vec![
        data_dir().join("onnxruntime/libonnxruntime.so"),
        PathBuf::from("libonnxruntime.so.1"),
        PathBuf::from("libonnxruntime.so"),
    ]
}

/// The loaded runtime.
pub struct Runtime {
    pub environment: Environment,
    pub library: PathBuf,
}

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

fn load() -> std::result::Result<Runtime, String> {
    let mut tried = Vec::new();
    for path in library_candidates() {
        match ort::init_from(&path) {
            Ok(builder) => {
                let environment = builder.with_name("vfupscale").build().map_err(|e| e.to_string())?;
                return Ok(Runtime { environment, library: path });
            }
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(format!(
        "cannot load the ONNX Runtime library ({}); run scripts/setup-onnxruntime.sh or set ORT_DYLIB_PATH to \
         libonnxruntime.so (version 1.31 or newer)",
        tried.join("; ")
    ))
}

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_init(load).as_ref().map_err(|reason| Error::unavailable("ONNX Runtime", reason.clone()))
}

/// Version of the loaded library (`OrtGetApiBase()->GetVersionString()`), e.g. "1.31.1".
pub fn version() -> Result<String> {
    let rt = runtime()?;
    // SAFETY: `ort` has loaded this library already, so dlopen returns the same handle and runs no initialisers;
    // OrtGetApiBase is the library's documented entry point and GetVersionString returns a static C string.
    unsafe {
        let lib = libloading::Library::new(&rt.library)
            .map_err(|e| Error::unavailable("ONNX Runtime", format!("{}: {e}", rt.library.display())))?;
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib
            .get(b"OrtGetApiBase")
            .map_err(|e| Error::unavailable("ONNX Runtime", format!("{}: {e}", rt.library.display())))?;
        let base = base();
        if base.is_null() {
            return Err(Error::unavailable("ONNX Runtime", "OrtGetApiBase returned nothing"));
        }
        let version = ((*base).GetVersionString)();
        Ok(std::ffi::CStr::from_ptr(version).to_string_lossy().into_owned())
    }
}
