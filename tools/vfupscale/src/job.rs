// SPDX-License-Identifier: MPL-2.0
//! A job: one input to one output, fully decided and checked (model, sizes, encoder, container) before anything
//! runs. The pipeline that runs it (`pipeline`, `images`) only reads it, so a job can be described, split into
//! ranges or handed to another process without knowing GStreamer.

use std::path::PathBuf;

use crate::encoder::EncoderSettings;
use crate::media::MediaInfo;
use crate::models::Model;
use crate::output::ImageFormat;
use crate::range::Range;
use crate::size::SizePlan;

/// How frames are upscaled: the element's settings and the output size.
#[derive(Debug, Clone)]
pub struct Upscale {
    pub model: Model,
    pub backend: &'static str,
    pub precision: &'static str,
    pub device: u32,
    pub classic_method: &'static str,
    pub strength: f64,
    pub fallback: &'static str,
    pub temporal_stability: f64,
    pub size: SizePlan,
    /// The GPU path is usable (frames can be handed over in CUDA memory).
    pub gpu: bool,
}

impl Upscale {
    /// The configured `vfupscale` element.
    pub fn element(&self) -> Result<gst::Element, String> {
        let model = self
            .model
            .path
            .to_str()
            .ok_or_else(|| format!("model {}: the element takes UTF-8 paths only", self.model.path.display()))?;
        // classic scaling runs no model: it scales by the model's factor (the one the size was planned with)
        let scale = if self.backend == "classic" { self.model.scale } else { 0 };
        gst::ElementFactory::make("vfupscale")
            .property("model", model)
            .property_from_str("backend", self.backend)
            .property_from_str("precision", self.precision)
            .property("device-id", self.device)
            .property_from_str("classic-method", self.classic_method)
            .property("strength", self.strength)
            .property_from_str("fallback", self.fallback)
            .property("temporal-stability", self.temporal_stability)
            .property("scale", scale)
            .build()
            .map_err(|_| "the vfupscale element is not available".to_string())
    }

    /// The caps filter after the element that asks for the final size (any memory), when one was requested.
    pub fn size_filter(&self) -> Result<gst::Element, String> {
        let (w, h) = self.size.output;
        let caps =
            gst::Caps::builder("video/x-raw").any_features().field("width", w as i32).field("height", h as i32).build();
        gst::ElementFactory::make("capsfilter")
            .name("output-size")
            .property("caps", caps)
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Where a video pipeline ends.
#[derive(Debug, Clone)]
pub enum VideoOutput {
    /// Encoded and muxed into a file.
    File { path: PathBuf, muxer: &'static str, encoder: EncoderSettings },
    /// Numbered images in `dir`.
    Sequence { dir: PathBuf, pattern: String, format: ImageFormat },
    /// Nothing written (benchmarks): the branch ends after `stage`.
    Discard { stage: Stage, encoder: EncoderSettings, muxer: &'static str },
}

/// How far the video branch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Upscale,
    Encode,
}

#[derive(Debug, Clone)]
pub struct VideoJob {
    pub input: PathBuf,
    pub media: MediaInfo,
    pub upscale: Upscale,
    pub output: VideoOutput,
    /// Which decoded frames are upscaled.
    pub range: Range,
    /// Audio and subtitles go into the output (not into segments: the final mux copies them once).
    pub copy_streams: bool,
    /// The GPU path (NVDEC, CUDA memory) is used where the stream allows it.
    pub gpu: bool,
}

impl VideoJob {
    /// The output as the summary names it.
    pub fn output_path(&self) -> PathBuf {
        match &self.output {
            VideoOutput::File { path, .. } => path.clone(),
            VideoOutput::Sequence { dir, pattern, .. } => dir.join(pattern),
            VideoOutput::Discard { .. } => PathBuf::from("(benchmark)"),
        }
    }

    pub fn stage(&self) -> Stage {
        match &self.output {
            VideoOutput::Discard { stage, .. } => *stage,
            _ => Stage::Encode,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImageJob {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: ImageFormat,
    pub upscale: Upscale,
}

#[derive(Debug, Clone)]
pub enum Job {
    Video(Box<VideoJob>),
    Image(Box<ImageJob>),
}

impl Job {
    pub fn input(&self) -> &std::path::Path {
        match self {
            Job::Video(v) => &v.input,
            Job::Image(i) => &i.input,
        }
    }
}
