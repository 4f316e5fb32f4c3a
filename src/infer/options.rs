// SPDX-License-Identifier: MPL-2.0
//! How ONNX Runtime sessions are opened: one [`SessionOptions`] constructor, then the few things that vary
//! (compute stream, TensorRT profile, memory limit), and the execution providers they turn into.

use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::CudaStream;
use ort::ep;

use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};
use crate::frame::Size;

/// How to open a session. Made by [`SessionOptions::new`]; everything else has a default.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    precision: Precision,
    device_id: u32,
    engine_cache_dir: PathBuf,
    compute_stream: Option<Arc<CudaStream>>,
    profile: Option<(u32, Size)>,
    memory_limit: Option<usize>,
}

impl SessionOptions {
    /// Sessions on CUDA device `device_id` (GPU providers) in `precision`, TensorRT caching its engines in the
    /// user's cache directory, on ONNX Runtime's own stream, without a memory limit.
    pub fn new(device_id: u32, precision: Precision) -> Self {
        Self {
            precision,
            device_id,
            engine_cache_dir: crate::paths::tensorrt_cache_dir(),
            compute_stream: None,
            profile: None,
            memory_limit: None,
        }
    }

    /// TensorRT engine and timing caches in `dir` instead of the user's cache directory.
    pub fn with_engine_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.engine_cache_dir = dir.into();
        self
    }

    /// GPU providers run on `stream` (shared with our kernels, so no synchronisation is needed between them); the
    /// session keeps it alive.
    pub fn with_compute_stream(mut self, stream: &Arc<CudaStream>) -> Self {
        self.compute_stream = Some(stream.clone());
        self
    }

    /// TensorRT builds its engine for input `[batch, 3, size]`.
    pub fn with_profile(mut self, batch: u32, size: Size) -> Self {
        self.profile = Some((batch, size));
        self
    }

    /// GPU providers' arena (tensors, activations, workspaces) may take at most `bytes` of device memory.
    pub fn with_memory_limit(mut self, bytes: Option<usize>) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The same options in another precision.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    pub fn memory_limit(&self) -> Option<usize> {
        self.memory_limit
    }

    /// The same options without a compute stream (for sessions that ended up on the CPU: the GPU is released).
    pub(crate) fn without_compute_stream(mut self) -> Self {
        self.compute_stream = None;
        self
    }

    pub(crate) fn compute_stream(&self) -> Option<&Arc<CudaStream>> {
        self.compute_stream.as_ref()
    }

    /// The execution providers for `backend`, in order (none for the CPU); `input_name` is the model's input, for
    /// TensorRT's shape profile.
    pub(crate) fn providers(&self, backend: Backend, input_name: &str) -> Result<Vec<ep::ExecutionProviderDispatch>> {
        let id = self.device_id as i32;
        let mut cuda = ep::CUDA::default()
            .with_device_id(id)
            .with_prefer_nhwc(true)
            .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Exhaustive);
        if let Some(stream) = &self.compute_stream {
            // SAFETY: the stream belongs to the device's primary context (the one the CUDA provider works in), and
            // every session opened with these options holds a reference to it, dropped after the session.
            cuda = unsafe { cuda.with_compute_stream(stream.cu_stream().cast()) };
        }
        if let Some(limit) = self.memory_limit {
            // grow the arena by what is asked, not by powers of two, so the limit is what can really be used
            cuda = cuda.with_memory_limit(limit).with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested);
        }
        Ok(match backend {
            Backend::Native | Backend::Classic => {
                return Err(Error::Usage(format!("the {} backend is not an ONNX Runtime execution provider", backend)));
            }
            Backend::Cpu => Vec::new(),
            Backend::Cuda => vec![cuda.build().error_on_failure()],
            Backend::TensorRt => {
                let fp16 = self.precision != Precision::Fp32;
                let dir = &self.engine_cache_dir;
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                let dir = dir.display().to_string();
                let mut trt = ep::TensorRT::default()
                    .with_device_id(id)
                    .with_fp16(fp16)
                    .with_engine_cache(true)
                    .with_engine_cache_path(&dir)
                    .with_timing_cache(true)
                    .with_timing_cache_path(&dir);
                if let Some((batch, size)) = self.profile {
                    let shape = format!("{input_name}:{batch}x3x{}x{}", size.height, size.width);
                    trt = trt
                        .with_profile_min_shapes(&shape)
                        .with_profile_opt_shapes(&shape)
                        .with_profile_max_shapes(&shape);
                }
                if let Some(stream) = &self.compute_stream {
                    use ep::ArbitrarilyConfigurableExecutionProvider as _;
                    trt = trt
                        .with_arbitrary_config("has_user_compute_stream", "1")
                        .with_arbitrary_config("user_compute_stream", stream.cu_stream() as usize);
                }
                // TensorRT hands the nodes it cannot build to the CUDA provider
                vec![trt.build().error_on_failure(), cuda.build().error_on_failure()]
            }
        })
    }
}
