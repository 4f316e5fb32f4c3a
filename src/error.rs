// SPDX-License-Identifier: MPL-2.0
//! The core's error type. Each variant names the thing and the reason; errors from the CUDA driver, NVRTC and ONNX
//! Runtime are kept as their [`source`](std::error::Error::source). Callers decide what to do by
//! [`Error::kind`] (the element maps it to a GStreamer error domain and flow return), never by the message.

use std::path::PathBuf;

use cudarc::driver::DriverError;
use cudarc::driver::sys::cudaError_enum;

use crate::backend::Backend;

/// What kind of problem an [`Error`] is, for callers that react to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The stream cannot be processed as negotiated: a frame size the model refuses, frames that do not match the
    /// prepared size (caps negotiation problems).
    Negotiation,
    /// Settings that cannot work, alone or together (tile sizes, memory budgets, precision for a backend).
    Settings,
    /// Something needed is not there: a model file, a library, a GPU, an execution provider.
    MissingResource,
    /// A model file that is unreadable, corrupt or breaks the model contract.
    Model,
    /// The device ran out of memory (a smaller working set may succeed).
    OutOfMemory,
    /// The GPU, NVRTC or ONNX Runtime failed while working, or a file could not be written.
    Failed,
    /// The API was used out of order (no frame in flight, a frame in another CUDA context as output).
    Usage,
}

/// Everything that can go wrong in the core, each variant naming the thing and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CUDA driver call failed.
    #[error("CUDA: {call} failed: {}", describe_driver_error(source))]
    Cuda {
        call: &'static str,
        #[source]
        source: DriverError,
    },
    /// NVRTC could not compile one of our kernel modules (the log is NVRTC's).
    #[error("NVRTC: compiling {module} for {arch} failed: {log}")]
    Nvrtc {
        module: &'static str,
        arch: String,
        log: String,
        #[source]
        source: cudarc::nvrtc::CompileError,
    },
    /// ONNX Runtime reported an error while loading or running a model.
    #[error("ONNX Runtime: {source}")]
    OnnxRuntime {
        #[source]
        source: ort::Error,
    },
    /// An ONNX Runtime execution provider cannot be used here.
    #[error("{} execution provider is not available: {source}", backend.title())]
    ProviderUnavailable {
        backend: Backend,
        #[source]
        source: ort::Error,
    },
    /// The model file is unreadable, not ONNX, or breaks the model contract.
    #[error("model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// No model file of that path, and no installed model of that name.
    #[error("model {model}: {reason}")]
    ModelNotFound { model: String, reason: String },
    /// An ncnn model could not be converted.
    #[error("ncnn import: {0}")]
    Import(String),
    /// A requested component (GPU, library, device) is not usable here.
    #[error("{what} is not available: {reason}")]
    Unavailable { what: String, reason: String },
    /// Settings or inputs that cannot work together.
    #[error("{0}")]
    InvalidConfig(String),
    /// Frames the model or the prepared plan cannot take.
    #[error("{0}")]
    Negotiation(String),
    /// The API used out of order.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `CUDA_ERROR_NAME (description)` for a driver error.
fn describe_driver_error(e: &DriverError) -> String {
    // the description comes from the driver library, which a machine without a GPU does not have
    match crate::cuda::driver_library_present().then(|| e.error_string()) {
        Some(Ok(text)) => format!("{:?} ({})", e.0, text.to_string_lossy()),
        _ => format!("{:?}", e.0),
    }
}

impl Error {
    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Model { path: path.into(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn unavailable(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable { what: what.into(), reason: reason.into() }
    }

    pub(crate) fn cuda(call: &'static str) -> impl Fn(DriverError) -> Error + Copy {
        move |source| Error::Cuda { call, source }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Cuda { source, .. } if source.0 == cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                ErrorKind::OutOfMemory
            }
            Error::OnnxRuntime { source } if is_onnx_runtime_out_of_memory(source.message()) => ErrorKind::OutOfMemory,
            Error::Cuda { .. } | Error::Nvrtc { .. } | Error::OnnxRuntime { .. } => ErrorKind::Failed,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::MissingResource,
            Error::Io { .. } => ErrorKind::Failed,
            Error::ProviderUnavailable { .. } | Error::ModelNotFound { .. } | Error::Unavailable { .. } => {
                ErrorKind::MissingResource
            }
            Error::Model { .. } | Error::Import(_) => ErrorKind::Model,
            Error::InvalidConfig(_) => ErrorKind::Settings,
            Error::Negotiation(_) => ErrorKind::Negotiation,
            Error::Usage(_) => ErrorKind::Usage,
        }
    }

    /// True when the device had no memory left, so a smaller working set may succeed.
    pub fn is_out_of_memory(&self) -> bool {
        self.kind() == ErrorKind::OutOfMemory
    }

    /// True for frames the model or the negotiated plan cannot take (a caps problem).
    pub fn is_negotiation(&self) -> bool {
        self.kind() == ErrorKind::Negotiation
    }

    /// True for settings that cannot work.
    pub fn is_settings(&self) -> bool {
        self.kind() == ErrorKind::Settings
    }

    /// True when a model file, library, GPU or execution provider is missing.
    pub fn is_missing_resource(&self) -> bool {
        self.kind() == ErrorKind::MissingResource
    }
}

/// Whether an ONNX Runtime message reports a failed allocation. ONNX Runtime has no error code for it (its
/// allocators and its arena return `ORT_FAIL` / `ORT_RUNTIME_EXCEPTION` with a message), so this is the one place
/// that reads the text: CUDA's own "out of memory", the allocators' "Failed to allocate memory", and the arena's
/// "Available memory of N is smaller than requested bytes of M" when its memory limit is reached.
fn is_onnx_runtime_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("failed to allocate memory")
        || (m.contains("available memory of") && m.contains("smaller than requested bytes"))
}

impl From<ort::Error> for Error {
    fn from(source: ort::Error) -> Self {
        Error::OnnxRuntime { source }
    }
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for Error {
    fn from(source: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        Error::OnnxRuntime { source: source.into() }
    }
}

/// The model code's errors keep their variant (so a missing model stays [`Error::Model`]) and their message.
impl From<vfupscale_onnx::Error> for Error {
    fn from(e: vfupscale_onnx::Error) -> Self {
        match e {
            vfupscale_onnx::Error::Model { path, reason } => Error::Model { path, reason },
            vfupscale_onnx::Error::Import(reason) => Error::Import(reason),
            vfupscale_onnx::Error::Unsupported(reason) => Error::InvalidConfig(reason),
            vfupscale_onnx::Error::Io { path, source } => Error::Io { path, source },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors cross threads (the element posts them, applications wrap them in `anyhow`).
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Error>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_recognised_in_onnx_runtime_messages() {
        // as ONNX Runtime 1.31 words them (the arena's from a run on the H100 with a memory limit)
        let arena = "Non-zero status code returned while running PRelu node. Name:'PRelu_1' Status Message: \
                     /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* \
                     onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Available memory \
                     of 70182656 is smaller than requested bytes of 83566592";
        assert!(is_onnx_runtime_out_of_memory(arena));
        assert!(is_onnx_runtime_out_of_memory("CUDA failure 2: out of memory ; GPU=0"));
        assert!(is_onnx_runtime_out_of_memory("Failed to allocate memory for requested buffer of size 8"));
        assert!(!is_onnx_runtime_out_of_memory("Non-zero status code returned while running Reshape node"));
        assert!(!Error::InvalidConfig("out of memory".into()).is_out_of_memory());
    }

    #[test]
    fn driver_errors_are_classified_by_their_code() {
        let oom = Error::Cuda { call: "cuMemAlloc", source: DriverError(cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY) };
        assert!(oom.is_out_of_memory());
        assert!(oom.to_string().starts_with("CUDA: cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY"), "{oom}");
        assert!(std::error::Error::source(&oom).is_some(), "the driver error is kept as the source");
        let invalid =
            Error::Cuda { call: "cuLaunchKernel", source: DriverError(cudaError_enum::CUDA_ERROR_INVALID_VALUE) };
        assert_eq!(invalid.kind(), ErrorKind::Failed);
    }

    #[test]
    fn kinds_answer_what_the_element_asks() {
        assert!(Error::Negotiation("frame 64x48 is not 32x32".into()).is_negotiation());
        assert!(Error::InvalidConfig("tile-size 1 is below 64".into()).is_settings());
        assert!(Error::ModelNotFound { model: "x".into(), reason: "no such file".into() }.is_missing_resource());
        assert!(Error::unavailable("CUDA", "no driver").is_missing_resource());
        let missing = Error::io("/nonexistent", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(missing.is_missing_resource());
        assert_eq!(Error::model("m.onnx", "has 2 inputs").kind(), ErrorKind::Model);
        assert_eq!(Error::Usage("no frame in flight".into()).kind(), ErrorKind::Usage);
    }
}
