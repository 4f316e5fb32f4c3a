// SPDX-License-Identifier: MPL-2.0
//! The vocabulary of engines and precisions, shared by the element's properties, the command line and the
//! benchmark: one name per value (`auto native tensorrt cuda cpu classic`, `auto fp16 fp32`), parsed with
//! [`FromStr`](std::str::FromStr),
//! printed with [`Display`](std::fmt::Display), and every value listed in `ALL`.

/// A name that is not one of a type's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: Vec<&'static str>,
}

/// `name()`, `Display` and `FromStr` over a fixed list of values.
macro_rules! named_values {
    ($type:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $type {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$type] = &[$($type::$variant),+];

            /// The value's name, as the element, the command line and the statistics spell it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($type::$variant => $name),+
                }
            }

            /// Every value's name, in the order of [`Self::ALL`].
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.name()).collect()
            }
        }

        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $type {
            type Err = $crate::UnknownName;

            /// Parses a name (ASCII case-insensitive).
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::UnknownName> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
                    $crate::UnknownName { what: $what, value: s.to_string(), expected: Self::names() }
                })
            }
        }
    };
}

pub(crate) use named_values;

/// The engine a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// The fastest one that works: our native kernels when the model is one they run, then ONNX Runtime's
    /// TensorRT, CUDA and CPU providers (each fallback reported as a warning).
    #[default]
    Auto,
    /// Our CUDA kernels (fp16): SRVGGNetCompact models on compute capability 8.0 or newer; RRDBNet (realesrgan-x4plus,
    /// -anime) and waifu2x UpConv7 on Hopper (9.0).
    Native,
    /// ONNX Runtime's TensorRT execution provider (libnvinfer 10).
    TensorRt,
    /// ONNX Runtime's CUDA execution provider.
    Cuda,
    /// ONNX Runtime's CPU execution provider (system memory only).
    Cpu,
    /// No model: classic resampling (Lanczos or bicubic), on the GPU for CUDA memory, on the CPU otherwise.
    Classic,
}

named_values!(BackendChoice, "backend", [
    Auto => "auto",
    Native => "native",
    TensorRt => "tensorrt",
    Cuda => "cuda",
    Cpu => "cpu",
    Classic => "classic",
]);

impl BackendChoice {
    /// The one backend this choice insists on (`None` for `auto`).
    pub fn required(self) -> Option<Backend> {
        match self {
            BackendChoice::Auto => None,
            BackendChoice::Native => Some(Backend::Native),
            BackendChoice::TensorRt => Some(Backend::TensorRt),
            BackendChoice::Cuda => Some(Backend::Cuda),
            BackendChoice::Cpu => Some(Backend::Cpu),
            BackendChoice::Classic => Some(Backend::Classic),
        }
    }
}

/// The engine a model runs on: ONNX Runtime with an execution provider, or our native kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Native,
    TensorRt,
    Cuda,
    Cpu,
    /// No model runs: classic resampling only.
    Classic,
}

named_values!(Backend, "backend", [
    Native => "native",
    TensorRt => "tensorrt",
    Cuda => "cuda",
    Cpu => "cpu",
    Classic => "classic",
]);

impl Backend {
    /// True for engines that run a model on the GPU (and can read device-memory tensors).
    pub fn is_gpu(self) -> bool {
        !matches!(self, Backend::Cpu | Backend::Classic)
    }

    /// True for ONNX Runtime's execution providers.
    pub fn is_onnx_runtime(self) -> bool {
        !matches!(self, Backend::Native | Backend::Classic)
    }

    /// How the backend is called in prose ("TensorRT", "CUDA", …).
    pub fn title(self) -> &'static str {
        match self {
            Backend::Native => "native kernels",
            Backend::TensorRt => "TensorRT",
            Backend::Cuda => "CUDA",
            Backend::Cpu => "CPU",
            Backend::Classic => "classic resampling",
        }
    }
}

impl From<Backend> for BackendChoice {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Native => BackendChoice::Native,
            Backend::TensorRt => BackendChoice::TensorRt,
            Backend::Cuda => BackendChoice::Cuda,
            Backend::Cpu => BackendChoice::Cpu,
            Backend::Classic => BackendChoice::Classic,
        }
    }
}

/// Float precision the user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// fp16 on GPU backends, fp32 on the CPU.
    #[default]
    Auto,
    Fp16,
    Fp32,
}

named_values!(Precision, "precision", [
    Auto => "auto",
    Fp16 => "fp16",
    Fp32 => "fp32",
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for &b in BackendChoice::ALL {
            assert_eq!(b.to_string().parse::<BackendChoice>(), Ok(b));
        }
        for &b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(BackendChoice::from(b).required(), Some(b));
        }
        for &p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert_eq!(BackendChoice::names(), ["auto", "native", "tensorrt", "cuda", "cpu", "classic"]);
        assert_eq!(Precision::names(), ["auto", "fp16", "fp32"]);
        assert_eq!("TensorRT".parse::<BackendChoice>(), Ok(BackendChoice::TensorRt));
        let e = "gpu".parse::<BackendChoice>().unwrap_err().to_string();
        assert_eq!(e, "unknown backend \"gpu\": expected one of auto, native, tensorrt, cuda, cpu, classic");
        let e = "fp8".parse::<Precision>().unwrap_err().to_string();
        assert_eq!(e, "unknown precision \"fp8\": expected one of auto, fp16, fp32");
        assert!("auto".parse::<Backend>().is_err(), "auto is a choice, not a backend");
    }
}
