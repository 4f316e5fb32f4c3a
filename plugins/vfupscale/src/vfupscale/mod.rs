//! `vfupscale`: upscales NV12 video with an ONNX super-resolution model.
//!
//! On NVIDIA GPUs it takes `video/x-raw(memory:CUDAMemory), format=NV12` (from `nvh264dec`/`nvh265dec`), converts
//! each frame to planar RGB with its own CUDA kernels, runs the model with input and output in device memory,
//! converts back and outputs CUDA memory (for `nvh265enc`, `cudadownload`, …): frames never cross host memory.
//! SRVGGNetCompact models (realesr-animevideov3, realesr-general-x4v3) run on vfupscale's own tensor-core kernels
//! (about twice as fast; checked against ONNX Runtime when the element starts), all others on ONNX Runtime
//! (TensorRT, CUDA or CPU execution provider). Without a usable GPU it takes `video/x-raw, format=NV12` in system memory and runs
//! the model on the CPU: slower, same output.
//!
//! The output size is the input size times the model's scale; framerate, pixel-aspect-ratio, colorimetry and
//! interlace-mode are carried over (interlaced frames are upscaled as whole frames: deinterlace first for the
//! best result). Timestamps, flags and metas without size-dependent data are copied; every input buffer gives
//! exactly one output buffer.
//!
//! The element shares one CUDA context per device with the rest of the pipeline: it offers a `GstCudaContext`
//! wrapping the device's primary context (the one ONNX Runtime's CUDA provider uses), so that an upstream
//! decoder decodes straight into memory the model can read. Buffers from any other CUDA context are copied
//! device-to-device, and the copies are counted in the `stats` property.
//!
//! CUDA frames are queued on one stream and kept in flight: with `async-depth=1` (the default) a frame's output is
//! pushed once the next frame's work is queued, so the GPU goes straight from one frame to the next instead of
//! waiting while the buffer is handed on. This adds one frame of latency, reported in latency queries; frames in
//! flight are pushed before EOS, caps, segments and drain queries, and dropped on flushes. `async-depth=0` finishes
//! every frame before taking the next.
//!
//! ## Tiles and memory
//! By default each frame runs through the model whole. `tile-size` splits it into tiles of that many input
//! pixels per side which overlap by `tile-overlap` pixels; each tile's output is weighted by ramps across the
//! overlap and the weighted sum is normalised, so seams vanish (with the default overlap of 32 the result is within
//! 50 dB PSNR of whole-frame output). `batch-size` runs several tiles per inference when the model has a dynamic
//! batch axis; the output is identical to one tile at a time. `max-memory` caps ONNX Runtime's device arena plus
//! the element's own frames: the element picks the largest tile that fits its estimate, and if a run still fails
//! for lack of memory it halves the tile and retries the frame, logging a warning and counting `oom-retries`.
//! The `stats` property reports the tiling and the device memory held.
//!
//! ## Example pipelines
//! ```text
//! # NVIDIA GPU: decode, upscale x2 with the default model, encode, all in device memory
//! gst-launch-1.0 filesrc location=in.mp4 ! qtdemux ! h264parse ! nvh264dec ! vfupscale ! nvh265enc ! h265parse ! matroskamux ! filesink location=out.mkv
//!
//! # any model, chosen backend and precision
//! gst-launch-1.0 filesrc location=in.mp4 ! qtdemux ! h264parse ! nvh264dec ! vfupscale model=realesr-animevideov3-x4.onnx backend=cuda precision=fp16 ! cudadownload ! fakesink
//!
//! # 4K input with a heavy x4 model on a shared GPU: tiles chosen to stay within 4 GiB
//! gst-launch-1.0 filesrc location=in-4k.mp4 ! qtdemux ! h265parse ! nvh265dec ! vfupscale model=realesrgan-x4plus.onnx max-memory=4096 ! cudadownload ! fakesink
//!
//! # no GPU: software decode and encode, system memory, CPU inference
//! gst-launch-1.0 videotestsrc num-buffers=10 ! video/x-raw,format=NV12,width=160,height=90 ! vfupscale backend=cpu ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
//! ```
//!
//! When `model` is not set the element uses `realesr-animevideov3-x2` from the models directory
//! (`$VFUPSCALE_MODEL_DIR`, default `~/.local/share/vfupscale/models`), installed by `vfupscale-model fetch`.

use gst::glib;
use gst::prelude::*;

mod buffer_frame;
mod imp;

glib::wrapper! {
    pub struct VfUpscale(ObjectSubclass<imp::VfUpscale>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Value of the `backend` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVfUpscaleBackend")]
pub enum BackendProperty {
    #[default]
    #[enum_value(
        name = "Auto: the native kernels for SRVGGNetCompact models, else TensorRT, then CUDA, then CPU (each \
                fallback logged as a warning)",
        nick = "auto"
    )]
    Auto,
    #[enum_value(
        name = "vfupscale's own CUDA kernels (SRVGGNetCompact models such as realesr-animevideov3; fp16; compute \
                capability 8.0 or newer)",
        nick = "native"
    )]
    Native,
    #[enum_value(name = "TensorRT execution provider (needs libnvinfer 10)", nick = "tensorrt")]
    TensorRt,
    #[enum_value(name = "CUDA execution provider", nick = "cuda")]
    Cuda,
    #[enum_value(name = "CPU execution provider (system memory only)", nick = "cpu")]
    Cpu,
}

impl From<BackendProperty> for vfupscale::BackendChoice {
    fn from(b: BackendProperty) -> Self {
        match b {
            BackendProperty::Auto => vfupscale::BackendChoice::Auto,
            BackendProperty::Native => vfupscale::BackendChoice::Native,
            BackendProperty::TensorRt => vfupscale::BackendChoice::TensorRt,
            BackendProperty::Cuda => vfupscale::BackendChoice::Cuda,
            BackendProperty::Cpu => vfupscale::BackendChoice::Cpu,
        }
    }
}

/// Value of the `precision` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVfUpscalePrecision")]
pub enum PrecisionProperty {
    #[default]
    #[enum_value(name = "Auto: fp16 on the GPU, fp32 on the CPU", nick = "auto")]
    Auto,
    #[enum_value(name = "Half precision (GPU backends)", nick = "fp16")]
    Fp16,
    #[enum_value(name = "Single precision", nick = "fp32")]
    Fp32,
}

impl From<PrecisionProperty> for vfupscale::Precision {
    fn from(p: PrecisionProperty) -> Self {
        match p {
            PrecisionProperty::Auto => vfupscale::Precision::Auto,
            PrecisionProperty::Fp16 => vfupscale::Precision::Fp16,
            PrecisionProperty::Fp32 => vfupscale::Precision::Fp32,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "vfupscale", gst::Rank::NONE, VfUpscale::static_type())
}
