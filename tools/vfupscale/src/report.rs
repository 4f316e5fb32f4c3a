// SPDX-License-Identifier: MPL-2.0
//! What the user reads: the start line (backend, sizes, model, encoder, read from the element once it runs),
//! warnings for options that have no effect and for inputs that end early, errors in one line, the summary.

use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;
use vfupscale::stats::field;

use crate::branch::Branch;
use crate::job::{Upscale, VideoJob, VideoOutput};
use crate::progress::Progress;
use crate::summary::{count, dims};

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Always shown (on stderr).
pub fn warn(message: &str) {
    eprintln!("vfupscale: warning: {message}");
}

/// Shown unless --quiet.
pub fn note(message: &str) {
    if !quiet() {
        eprintln!("vfupscale: {message}");
    }
}

/// The element's backend and device, once it has started.
pub fn backend_of(upscaler: &gst::Element) -> (String, String) {
    let stats: gst::Structure = upscaler.property("stats");
    let get = |k: &str| stats.get::<String>(k).unwrap_or_else(|_| "?".into());
    (get(field::BACKEND), get(field::DEVICE))
}

fn negotiated_size(pad: Option<gst::Pad>) -> Option<(u32, u32)> {
    let caps = pad?.current_caps()?;
    let s = caps.structure(0)?;
    Some((s.get::<i32>("width").ok()? as u32, s.get::<i32>("height").ok()? as u32))
}

/// "backend cpu on cpu, 96×64 → 192×128, model realesr-animevideov3-x2 (x2)", and warnings for settings the
/// chosen backend ignores.
pub fn upscaler_line(upscale: &Upscale, upscaler: &gst::Element, print: &dyn Fn(&str)) -> String {
    let (backend, device) = backend_of(upscaler);
    if backend == "cpu" {
        if upscale.precision == "fp16" {
            print("vfupscale: warning: -p fp16 gains nothing on the CPU backend (fp16 is emulated there)");
        }
        if upscale.device != 0 {
            print(&format!(
                "vfupscale: warning: -d {} has no effect: the CPU backend runs (no CUDA device is used)",
                upscale.device
            ));
        }
    }
    let input = negotiated_size(upscaler.static_pad("sink")).unwrap_or(upscale.size.input);
    let output = negotiated_size(upscaler.static_pad("src")).unwrap_or(upscale.size.output);
    let on = if device == "cpu" { String::new() } else { format!(" on {device}") };
    format!(
        "backend {backend}{on}, {} → {}, model {} (x{})",
        dims(input),
        dims(output),
        model_label(upscale),
        upscaler.property::<u32>("scale")
    )
}

/// The model's name, or the classic filter when no model runs.
fn model_label(upscale: &Upscale) -> String {
    match upscale.backend {
        "classic" => format!("classic {}", upscale.classic_method),
        _ => upscale.model.name.clone(),
    }
}

/// ", strength S, temporal-stability T" where they are not the defaults.
fn hybrid_settings(upscale: &Upscale) -> String {
    let mut text = String::new();
    if upscale.strength != 1.0 && upscale.backend != "classic" {
        text.push_str(&format!(", strength {}", upscale.strength));
    }
    if upscale.temporal_stability > 0.0 {
        text.push_str(&format!(", temporal-stability {}", upscale.temporal_stability));
    }
    text
}

/// Printed when the first frame has been upscaled.
pub fn start_line(job: &VideoJob, branch: &Branch, progress: &Progress) {
    let Some(upscaler) = &branch.upscaler else {
        return;
    };
    let line = upscaler_line(&job.upscale, upscaler, &|m| progress.println(m));
    if quiet() {
        return;
    }
    let encoder = branch.encoder.as_ref().map_or(String::new(), |(_, d)| format!(", encoder {d}"));
    progress.println(&format!("vfupscale: {line}, decoder {}{encoder}", branch.decoder.name()));
}

/// Warns when the input ended before the frames its container announces.
pub fn check_complete(job: &VideoJob, decoded: u64, warnings: u64, progress: &Progress) {
    let Some(expected) = job.media.expected_frames() else {
        return;
    };
    let tolerance = job.media.frames_short_tolerated(expected);
    if decoded + tolerance < expected {
        let duration = job.media.duration.map_or(String::new(), |d| format!(" ({:.1} s)", d.seconds_f64()));
        let damaged =
            if warnings > 0 { format!("; {} while reading", count(warnings, "warning")) } else { String::new() };
        progress.println(&format!(
            "vfupscale: warning: {}: the video ended after {decoded} of the {expected} frames its container \
             announces{duration}{damaged}: the file may be truncated or damaged",
            job.input.display()
        ));
    }
}

/// One line for a pipeline error.
pub fn pipeline_error(job: &VideoJob, e: &gst::message::Error) -> String {
    let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    let mut text = e.error().to_string();
    if e.error().matches(gst::CoreError::MissingPlugin) || text.contains("Missing") {
        text = format!("{text} (unsupported codec or container?)");
    }
    if e.debug().is_some_and(|d| d.contains("not-negotiated")) {
        text = format!("{text} (formats could not be negotiated: an element cannot take this stream)");
    }
    // failures while reading and demuxing are about the input file, not an element
    let about_input = e.error().matches(gst::StreamError::TypeNotFound)
        || e.error().matches(gst::StreamError::WrongType)
        || e.error().matches(gst::StreamError::Demux);
    if about_input {
        return format!("{}: not a video file GStreamer can read ({text})", job.input.display());
    }
    if src.is_empty() || src.starts_with("pipeline") { text } else { format!("{src}: {text}") }
}

/// "cpu", "native on NVIDIA H200 (device 0)".
pub fn describe_backend(facts: &Facts) -> String {
    if facts.device == "cpu" || facts.device.is_empty() {
        facts.backend.clone()
    } else {
        format!("{} on {}", facts.backend, facts.device)
    }
}

/// "10-bit, bt2100-pq, HDR metadata kept", "8-bit from a 10-bit source (--bit-depth 8), bt2020": what happened to
/// the bit depth and which colour description and HDR metadata went from the element's output caps into the stream;
/// `None` for 8-bit video from an 8-bit source without HDR metadata.
fn colour_note(job: &VideoJob, upscaled: Option<&gst::Caps>) -> Option<String> {
    let s = upscaled.and_then(|c| c.structure(0));
    let hdr = s.is_some_and(|s| s.has_field("mastering-display-info") || s.has_field("content-light-level"));
    let (VideoOutput::File { encoder, .. } | VideoOutput::Discard { encoder, .. }) = &job.output else {
        return None;
    };
    if encoder.depth == 8 && encoder.source_depth <= 8 && !hdr {
        return None;
    }
    let mut parts = vec![encoder.depth_note()];
    parts.extend(s.and_then(|s| s.get::<String>("colorimetry").ok()));
    if hdr {
        parts.push("HDR metadata kept".into());
    }
    Some(parts.join(", "))
}

/// What the summary says about a finished run (recorded with each segment).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Facts {
    pub backend: String,
    pub device: String,
    pub decoder: String,
    pub encoder: String,
    pub copied: Vec<String>,
    pub input: (u32, u32),
    pub output: (u32, u32),
    pub scale: u32,
    pub rotation: Option<String>,
    /// Frames that gave classic output after the model failed on them, and whether the whole stream did.
    pub fallback_frames: u64,
    pub fallback_stream: bool,
    /// Bit depth and colour description written, when there is more to say than "8-bit SDR".
    pub colour: Option<String>,
}

impl Facts {
    /// What the summary says; `output_caps` are the upscaler's, taken while it ran.
    pub fn gather(
        branch: &Option<Branch>,
        copied: &[String],
        job: &VideoJob,
        output_caps: Option<&gst::Caps>,
    ) -> Facts {
        let mut facts = Facts {
            copied: copied.to_vec(),
            input: job.upscale.size.input,
            output: job.upscale.size.output,
            scale: job.upscale.model.scale,
            rotation: job.media.video.orientation.clone(),
            colour: colour_note(job, output_caps),
            ..Facts::default()
        };
        if let Some(b) = branch {
            facts.decoder = b.decoder.name();
            facts.encoder = b.encoder.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
            if let Some(u) = &b.upscaler {
                (facts.backend, facts.device) = backend_of(u);
                facts.scale = u.property::<u32>("scale");
                let stats = u.property::<gst::Structure>("stats");
                let count = |f: &str| stats.get::<u64>(f).unwrap_or(0);
                facts.fallback_frames = count(vfupscale::stats::field::FALLBACK_FRAMES);
                facts.fallback_stream = count(vfupscale::stats::field::FALLBACK_STREAMS) > 0;
                facts.output = negotiated_size(u.static_pad("src")).unwrap_or(facts.output);
            }
        }
        facts
    }

    /// The part of the summary after the frame count and time.
    pub fn describe(&self, job: &VideoJob) -> String {
        let mut text = format!(
            "{} → {}; model {} (x{}), backend {}{}; decoder {}, encoder {}",
            dims(self.input),
            dims(self.output),
            model_label(&job.upscale),
            self.scale,
            describe_backend(self),
            hybrid_settings(&job.upscale),
            self.decoder,
            self.encoder
        );
        match (self.fallback_stream, self.fallback_frames) {
            (true, _) => text.push_str("; the model could not be used: classic output"),
            (false, 0) => {}
            (false, n) => text.push_str(&format!("; {n} frames fell back to classic output")),
        }
        if let Some(c) = &self.colour {
            text.push_str(&format!("; {c}"));
        }
        if let Some(r) = &self.rotation {
            let place = match &job.output {
                VideoOutput::Sequence { .. } => "the images",
                _ => "the frames (this GStreamer's muxers cannot store an orientation)",
            };
            text.push_str(&format!("; rotation {r} applied to {place}"));
        }
        if !self.copied.is_empty() {
            text.push_str(&format!("; copied {}", self.copied.join(", ")));
        }
        text
    }
}
