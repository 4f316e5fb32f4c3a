//! The core's error type. The plugin maps it once: `start`/`set_caps` failures become element errors with the
//! message below, streaming failures become `FlowError::Error` plus an element error naming the frame.

use std::path::PathBuf;

/// Everything that can go wrong in the core, each variant naming the thing and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CUDA driver call failed.
    #[error("CUDA: {call} failed: {reason}")]
    Cuda { call: &'static str, reason: String },
    /// NVRTC could not compile one of our kernels (the log is NVRTC's).
    #[error("NVRTC: compiling {source_name} for {arch} failed: {log}")]
    Nvrtc { source_name: &'static str, arch: String, log: String },
    /// The device ran out of memory.
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// The model file is missing, unreadable, not ONNX, or breaks the model contract.
    #[error("model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// An ncnn model could not be converted.
    #[error("ncnn import: {0}")]
    Import(String),
    /// A requested component (GPU, library, execution provider) is not usable here.
    #[error("{what} is not available: {reason}")]
    Unavailable { what: String, reason: String },
    /// Settings or inputs that cannot work together.
    #[error("{0}")]
    InvalidConfig(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
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

    /// True when the error means the device had no memory left, so a smaller working set may succeed.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            Error::OutOfMemory(_) => true,
            Error::Cuda { reason, .. } => reason.contains("OUT_OF_MEMORY"),
            Error::Ort(msg) => {
                let m = msg.to_ascii_lowercase();
                // CUDA's own message, ONNX Runtime's allocators, and its arena when its memory limit is reached
                m.contains("out of memory")
                    || m.contains("failed to allocate memory")
                    || (m.contains("available memory of") && m.contains("smaller than requested bytes"))
            }
            _ => false,
        }
    }
}

impl<R> From<ort::Error<R>> for Error {
    fn from(e: ort::Error<R>) -> Self {
        Error::Ort(e.to_string())
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
        assert!(Error::Ort(arena.into()).is_out_of_memory());
        assert!(Error::Ort("CUDA failure 2: out of memory ; GPU=0".into()).is_out_of_memory());
        assert!(Error::Ort("Failed to allocate memory for requested buffer of size 8".into()).is_out_of_memory());
        assert!(!Error::Ort("Non-zero status code returned while running Reshape node".into()).is_out_of_memory());
        assert!(!Error::InvalidConfig("out of memory".into()).is_out_of_memory());
    }
}
