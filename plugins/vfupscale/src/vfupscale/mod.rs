// SPDX-License-Identifier: MPL-2.0

//! # vfupscale
//!
//! Upscales video with an ONNX super-resolution model: 8-bit NV12, 10-bit P010_10LE (HDR included) and packed 8-bit
//! RGB with or without alpha (RGBA, BGRA, RGBx, BGRx, RGB: still images).
//!
//! On NVIDIA GPUs it takes `video/x-raw(memory:CUDAMemory)` (from `nvh264dec`/`nvh265dec`: NV12, or P010_10LE for
//! Main 10), converts each frame to planar RGB with its own CUDA kernels, runs the model with input and output in
//! device memory, converts back and outputs CUDA memory (for `nvh265enc`, `cudadownload`, …): frames never cross
//! host memory. SRVGGNetCompact models (realesr-animevideov3, realesr-general-x4v3) run on vfupscale's own
//! tensor-core kernels, and on Hopper GPUs realesrgan-x4plus, realesrgan-x4plus-anime and waifu2x UpConv7 too (two
//! to four times as fast; checked against ONNX Runtime when the element starts), all others on ONNX Runtime
//! (TensorRT, CUDA or CPU execution provider). Without a usable GPU it takes `video/x-raw` in system
//! memory and runs the model on the CPU: slower, same output.
//!
//! The output format is negotiated independently of the input's, within its family: NV12 and P010_10LE either way
//! (an 8-bit source may be written at 10 bits when downstream asks: the model's output is float, so there is less
//! banding), the packed RGB formats among themselves; by default the input's. The colour matrix and range of each side
//! (BT.601, BT.709, BT.2020 non-constant luminance; limited or full) are used for the conversions; transfer function
//! (PQ, HLG, BT.709/sRGB), primaries and HDR static metadata (`mastering-display-info`, `content-light-level`) are
//! carried from the input caps to the output caps unchanged, and the model runs on the signal as encoded. Alpha
//! does not go through the model: it is upscaled bilinearly.
//!
//! The output size is the input size times the model's scale, or any smaller size downstream asks for (down to one
//! pixel; where downstream fixes one side the other keeps the input's aspect): the model's output is then resampled
//! to it (Lanczos-3) in the pass that converts it back; a size above the model's is refused when the caps are set,
//! naming it. Framerate, pixel-aspect-ratio, chroma-site and interlace-mode are carried over (interlaced frames are upscaled as whole frames: deinterlace first for the
//! best result). Timestamps, flags and metas without size-dependent data are copied; every input buffer gives
//! exactly one output buffer. An input buffer must hold one frame of the negotiated caps (exactly its size, or
//! described by a video meta of its dimensions); any other is an error.
//!
//! The element shares one CUDA context per device with the rest of the pipeline: it offers a `GstCudaContext`
//! wrapping the device's primary context (the one ONNX Runtime's CUDA provider uses), so that an upstream
//! decoder decodes straight into memory the model can read. Buffers from any other CUDA context are copied
//! device-to-device, and the copies are counted in the `stats` property.
//!
//! ## Example pipelines
//! ```text
//! # runs anywhere (no GPU needed): ten test frames upscaled on the CPU into an MP4 file
//! gst-launch-1.0 videotestsrc num-buffers=10 ! video/x-raw,format=NV12,width=160,height=90 ! vfupscale backend=cpu ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
//!
//! # NVIDIA GPU: decode, upscale x2 with the default model, encode, all in device memory
//! gst-launch-1.0 filesrc location=in.mp4 ! qtdemux ! h264parse ! nvh264dec ! vfupscale ! nvh265enc ! h265parse ! matroskamux ! filesink location=out.mkv
//!
//! # runs anywhere: a 10-bit HDR10 test clip, kept at 10 bits with its colour description and HDR metadata
//! gst-launch-1.0 videotestsrc num-buffers=10 ! "video/x-raw,format=P010_10LE,width=160,height=90,colorimetry=bt2100-pq" ! vfupscale backend=cpu ! videoconvert ! "video/x-raw,format=I420_10LE" ! x265enc ! h265parse ! matroskamux ! filesink location=out-hdr.mkv
//!
//! # a still image with its alpha channel
//! gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! video/x-raw,format=RGBA ! vfupscale backend=cpu ! pngenc ! filesink location=big.png
//!
//! # runs anywhere: classic Lanczos-3 scaling x2, no model (a real-time preview path on the GPU)
//! gst-launch-1.0 videotestsrc num-buffers=10 ! video/x-raw,format=NV12,width=160,height=90 ! vfupscale backend=classic scale=2 ! fakesink
//!
//! # runs anywhere: 80 % model, 20 % classic, steadied where the picture stands still, to 1.5x instead of 2x
//! gst-launch-1.0 videotestsrc num-buffers=10 ! video/x-raw,format=NV12,width=160,height=90 ! vfupscale backend=cpu strength=0.8 temporal-stability=0.8 ! video/x-raw,width=240,height=135 ! fakesink
//!
//! # any model, chosen backend and precision
//! gst-launch-1.0 filesrc location=in.mp4 ! qtdemux ! h264parse ! nvh264dec ! vfupscale model=realesr-animevideov3-x4.onnx backend=cuda precision=fp16 ! cudadownload ! fakesink
//!
//! # 4K input with a heavy x4 model on a shared GPU: tiles chosen to stay within 4 GiB
//! gst-launch-1.0 filesrc location=in-4k.mp4 ! qtdemux ! h265parse ! nvh265dec ! vfupscale model=realesrgan-x4plus.onnx max-memory=4096 ! cudadownload ! fakesink
//! ```
//!
//! ## Properties
//! All properties but `stats-interval` are read when the element starts (READY→PAUSED); changing one later is
//! refused with a warning naming it, and the value stays as it was.
//!
//! - `model`: an ONNX model file, or the name of an installed model (`realesr-animevideov3-x4`: `NAME.onnx` in the
//!   models directory, `$VFUPSCALE_MODEL_DIR`, default `~/.local/share/vfupscale/models`, where `vfupscale-model
//!   fetch` installs them); a path that exists is taken as a path. One input and one output, NCHW with 3 channels
//!   (RGB in 0..1), float32 or float16, an integer scale. Unset: the installed `realesr-animevideov3-x2`.
//! - `backend`: `auto` runs the models above on the native kernels and everything else on ONNX Runtime,
//!   trying TensorRT, then CUDA, then the CPU, logging a warning for each one it skips and why; `native`,
//!   `tensorrt`, `cuda` and `cpu` insist on one; `classic` runs no model: Lanczos-3 or bicubic scaling by `scale`
//!   (GPU for CUDA memory, CPU otherwise).
//! - `classic-method`: `lanczos` (Lanczos-3) or `bicubic`: the filter of classic output, of the strength blend and of
//!   outputs smaller than the model's; the GPU and the CPU compute it bit for bit alike.
//! - `strength`: AI strength, 0–1: output = strength × model + (1 − strength) × classic, blended in the output
//!   conversion; 0 equals `backend=classic`, 1 the model alone.
//! - `fallback`: `classic` gives classic output where the model cannot run: for the stream (a model or backend that
//!   cannot be used: a warning at start) or for a frame (its inference failed: a warning per distinct cause), counted
//!   in `stats`; `none` (the default) keeps those errors.
//! - `temporal-stability`: 0–1: each output pixel keeps this much of the previous output where the input did not
//!   change (a per-pixel mask from the input frame difference, a 5×5 neighbourhood, thresholds), against the
//!   flicker of frame-wise GAN output; the history starts afresh on discontinuities, flushes, caps changes, frames
//!   that fell back and scene cuts. 0 (the default) is off.
//! - `precision`: `auto` is fp16 on GPU backends and fp32 on the CPU. A model whose file has the other precision is
//!   converted when it is loaded.
//! - `device-id`: the CUDA device.
//! - `engine-cache-dir`: where the TensorRT backend keeps engines and timing caches (unset:
//!   `$XDG_CACHE_HOME/vfupscale/tensorrt`, default `~/.cache/vfupscale/tensorrt`).
//! - `tile-size`, `tile-overlap`, `batch-size`, `max-memory`: by default each frame runs through the model whole.
//!   `tile-size` (0, or at least 64) splits it into tiles of that many input pixels per side which overlap by
//!   `tile-overlap` pixels (at most half a tile: more is refused at start); each tile's output is weighted by ramps across the overlap and the
//!   weighted sum is normalised, so seams vanish (with the default overlap of 32 the result is within 50 dB PSNR of
//!   whole-frame output). `batch-size` runs several tiles per inference when the model has a dynamic batch axis; the
//!   output is identical to one tile at a time. `max-memory` caps ONNX Runtime's device arena (tensors,
//!   activations, workspaces) plus the element's own frames, not the output buffer pool or the CUDA libraries: the
//!   element picks the largest tile that fits its estimate (never below 64 or twice the overlap), and if a run still fails for lack of memory it halves
//!   the tile and retries the frame, logging a warning and counting `oom-retries`. On the CPU it only chooses the
//!   tile size.
//! - `async-depth`: CUDA frames are queued on one stream and kept in flight: with `async-depth=1` (the default) a
//!   frame's output is pushed once the next frame's work is queued, so the GPU goes straight from one frame to the
//!   next instead of waiting while the buffer is handed on. Each frame in flight adds a frame of latency, reported
//!   in latency queries; frames in flight are pushed before EOS, caps, segments and drain queries, and dropped on
//!   flushes. `0` finishes every frame before taking the next. System-memory frames are always finished at once.
//! - `stats-interval`: post the `stats` structure as an element message every this many frames (changeable while
//!   playing).
//! - `scale`: the model's upscale factor once started (0 before); set it (1–16) for classic output without a model
//!   (`backend=classic`, or a stream that fell back); with a model any other value is refused at start.
//! - `stats` (read-only): a `vfupscale-stats` structure: `frames`, `backend`, `device`; mean and maximum
//!   milliseconds of each stage (`convert-in-*`, `inference-*`, `convert-out-*`); how inputs were read
//!   (`zero-copy-inputs`, `foreign-context-copies`, `host-uploads`); bytes of the bound tensors (`tensor-bytes`);
//!   the tiling (`tiles-per-frame`, `tile-size`, `oom-retries`); the device memory held now
//!   (`device-memory-bytes`: the engine's, `inference-arena-bytes` (ONNX Runtime's arena, or the native kernels'
//!   tensors and weights), plus the element's own frames); `inference-arena-peak-bytes`, the most ONNX Runtime's
//!   arena had in use, only where it runs on the GPU (absent for the native kernels, the CPU and a stopped element);
//!   `fallback-frames`, `fallback-streams`; the settings in effect (`classic-method`, `strength`,
//!   `temporal-stability`). Reading it never waits for a frame on the GPU.

use gst::glib;
use gst::prelude::*;
use vfupscale::{BackendChoice, ClassicMethod, Fallback, Precision};

mod caps;
mod colorimetry;
mod error;
mod frames;
mod imp;
mod settings;
mod snapshot;

glib::wrapper! {
    pub struct VfUpscale(ObjectSubclass<imp::VfUpscale>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Value of the `backend` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVfUpscaleBackend")]
pub enum BackendProperty {
    #[default]
    #[enum_value(name = "Auto: native kernels, else TensorRT, CUDA, CPU", nick = "auto")]
    Auto,
    #[enum_value(
        name = "vfupscale's own CUDA kernels (SRVGGNetCompact; on Hopper RRDBNet, waifu2x, Real-CUGAN)",
        nick = "native"
    )]
    Native,
    #[enum_value(name = "ONNX Runtime TensorRT execution provider", nick = "tensorrt")]
    TensorRt,
    #[enum_value(name = "ONNX Runtime CUDA execution provider", nick = "cuda")]
    Cuda,
    #[enum_value(name = "ONNX Runtime CPU execution provider (system memory only)", nick = "cpu")]
    Cpu,
    #[enum_value(name = "No model: classic Lanczos or bicubic scaling (GPU or CPU)", nick = "classic")]
    Classic,
}

impl From<BackendProperty> for BackendChoice {
    fn from(b: BackendProperty) -> Self {
        match b {
            BackendProperty::Auto => BackendChoice::Auto,
            BackendProperty::Native => BackendChoice::Native,
            BackendProperty::TensorRt => BackendChoice::TensorRt,
            BackendProperty::Cuda => BackendChoice::Cuda,
            BackendProperty::Cpu => BackendChoice::Cpu,
            BackendProperty::Classic => BackendChoice::Classic,
        }
    }
}

/// Value of the `classic-method` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVfUpscaleClassicMethod")]
pub enum ClassicMethodProperty {
    #[enum_value(name = "Bicubic (Catmull-Rom)", nick = "bicubic")]
    Bicubic,
    #[default]
    #[enum_value(name = "Lanczos-3", nick = "lanczos")]
    Lanczos,
}

impl From<ClassicMethodProperty> for ClassicMethod {
    fn from(m: ClassicMethodProperty) -> Self {
        match m {
            ClassicMethodProperty::Bicubic => ClassicMethod::Bicubic,
            ClassicMethodProperty::Lanczos => ClassicMethod::Lanczos,
        }
    }
}

/// Value of the `fallback` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVfUpscaleFallback")]
pub enum FallbackProperty {
    #[default]
    #[enum_value(name = "None: a model that cannot run is an error", nick = "none")]
    None,
    #[enum_value(name = "Classic output (with a warning) when the model cannot run", nick = "classic")]
    Classic,
}

impl From<FallbackProperty> for Fallback {
    fn from(f: FallbackProperty) -> Self {
        match f {
            FallbackProperty::None => Fallback::None,
            FallbackProperty::Classic => Fallback::Classic,
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

impl From<PrecisionProperty> for Precision {
    fn from(p: PrecisionProperty) -> Self {
        match p {
            PrecisionProperty::Auto => Precision::Auto,
            PrecisionProperty::Fp16 => Precision::Fp16,
            PrecisionProperty::Fp32 => Precision::Fp32,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    BackendProperty::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    PrecisionProperty::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ClassicMethodProperty::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    FallbackProperty::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(Some(plugin), "vfupscale", gst::Rank::NONE, VfUpscale::static_type())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nicks of a property enum, in the order of its values.
    fn nicks<E: StaticType>() -> Vec<String> {
        let class = glib::EnumClass::with_type(E::static_type()).expect("an enum type");
        class.values().iter().map(|v| v.nick().to_string()).collect()
    }

    /// Every value of a property enum, in the order of its values.
    fn values<E: StaticType + for<'a> glib::value::FromValue<'a>>() -> Vec<E> {
        let class = glib::EnumClass::with_type(E::static_type()).expect("an enum type");
        class.values().iter().map(|v| v.to_value(&class).get::<E>().expect("a value of the enum")).collect()
    }

    #[test]
    fn property_enums_are_the_cores_vocabulary() {
        gst::init().unwrap();
        // each nick is the core's name of the value the property maps to, and every core value is offered
        let backends: Vec<BackendChoice> = values::<BackendProperty>().into_iter().map(BackendChoice::from).collect();
        assert_eq!(backends, BackendChoice::ALL);
        assert_eq!(nicks::<BackendProperty>(), BackendChoice::names());
        let precisions: Vec<Precision> = values::<PrecisionProperty>().into_iter().map(Precision::from).collect();
        assert_eq!(precisions, Precision::ALL);
        assert_eq!(nicks::<PrecisionProperty>(), Precision::names());
        let methods: Vec<ClassicMethod> =
            values::<ClassicMethodProperty>().into_iter().map(ClassicMethod::from).collect();
        assert_eq!(methods, ClassicMethod::ALL);
        assert_eq!(nicks::<ClassicMethodProperty>(), ClassicMethod::names());
        let fallbacks: Vec<Fallback> = values::<FallbackProperty>().into_iter().map(Fallback::from).collect();
        assert_eq!(fallbacks, Fallback::ALL);
        assert_eq!(nicks::<FallbackProperty>(), Fallback::names());
    }
}
