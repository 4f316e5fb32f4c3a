//! The upscaling job: a GStreamer pipeline built around the `vfupscale` element.
//!
//! `filesrc ! parsebin` splits the input into parsed streams. The first video stream is decoded (NVDEC into CUDA
//! memory when the GPU path is usable, a software decoder otherwise), upscaled, encoded and muxed; audio and
//! subtitle streams go to the muxer as they are. The file is written under a temporary name and renamed when the
//! muxer has finished it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use vfupscale::stats::field;

/// Video encoder choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoder {
    #[default]
    Auto,
    NvH265,
    NvH264,
    X265,
    X264,
}

impl Encoder {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Encoder::Auto,
            "nvh265enc" => Encoder::NvH265,
            "nvh264enc" => Encoder::NvH264,
            "x265enc" => Encoder::X265,
            "x264enc" => Encoder::X264,
            other => {
                return Err(format!("--encoder takes auto, nvh265enc, nvh264enc, x265enc or x264enc, not {other:?}"));
            }
        })
    }

    fn factory(self) -> &'static str {
        match self {
            Encoder::NvH265 => "nvh265enc",
            Encoder::NvH264 => "nvh264enc",
            Encoder::X265 => "x265enc",
            Encoder::X264 | Encoder::Auto => "x264enc",
        }
    }

    fn is_nvenc(self) -> bool {
        matches!(self, Encoder::NvH265 | Encoder::NvH264)
    }

    fn parser(self) -> &'static str {
        match self {
            Encoder::NvH265 | Encoder::X265 => "h265parse",
            _ => "h264parse",
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
    pub model: Option<String>,
    pub precision: String,
    pub device: u32,
    pub backend: String,
    /// Scale factor without a model (`--backend classic`).
    pub scale: Option<u32>,
    pub classic_method: String,
    pub strength: f64,
    pub fallback: String,
    pub temporal_stability: f64,
    pub encoder: Encoder,
    pub quality: Option<u32>,
    pub bitrate: Option<u32>,
    pub overwrite: bool,
    pub quiet: bool,
}

impl Default for Job {
    fn default() -> Self {
        Self {
            input: PathBuf::new(),
            output: PathBuf::new(),
            model: None,
            precision: "auto".into(),
            device: 0,
            backend: "auto".into(),
            scale: None,
            classic_method: "lanczos".into(),
            strength: 1.0,
            fallback: "none".into(),
            temporal_stability: 0.0,
            encoder: Encoder::Auto,
            quality: None,
            bitrate: None,
            overwrite: false,
            quiet: false,
        }
    }
}

fn muxer_for(output: &Path) -> Result<&'static str, String> {
    let ext = output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => Ok("mp4mux"),
        "mkv" => Ok("matroskamux"),
        "mov" => Ok("qtmux"),
        "" => {
            Err(format!("{}: no file extension to choose a container from (use .mp4, .mkv or .mov)", output.display()))
        }
        other => Err(format!("{}: unsupported container .{other} (use .mp4, .mkv or .mov)", output.display())),
    }
}

fn factory_exists(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory} is not available (missing plugin)"))
}

/// NVDEC decoder for a parsed video stream, if GStreamer has one here that takes this stream (profile, chroma
/// format, bit depth), with the parser that puts the stream in the form the decoder wants.
fn nvdec_for(caps: &gst::Caps) -> Option<(&'static str, Option<&'static str>)> {
    let caps_name = caps.structure(0)?.name().as_str();
    let (decoder, parser) = match caps_name {
        "video/x-h264" => ("nvh264dec", Some("h264parse")),
        "video/x-h265" => ("nvh265dec", Some("h265parse")),
        "video/x-vp9" => ("nvvp9dec", Some("vp9parse")),
        "video/x-vp8" => ("nvvp8dec", None),
        "video/x-av1" => ("nvav1dec", Some("av1parse")),
        "video/mpeg" => ("nvmpeg2videodec", Some("mpegvideoparse")),
        _ => return None,
    };
    let factory = gst::ElementFactory::find(decoder)?;
    // compare without the stream-format/alignment the parser can convert
    let mut generic = caps.copy();
    if let Some(s) = generic.make_mut().structure_mut(0) {
        s.remove_fields(["stream-format", "alignment", "codec_data"]);
    }
    if !factory.can_sink_any_caps(&generic) {
        eprintln!("vfupscale: note: {decoder} cannot decode this stream ({generic}); decoding in software");
        return None;
    }
    Some((decoder, parser.filter(|p| factory_exists(p))))
}

/// State shared with the streaming threads that link pads.
struct Shared {
    pipeline: glib::WeakRef<gst::Pipeline>,
    muxer: gst::Element,
    gpu: bool,
    job: Job,
    model: Option<PathBuf>,
    video: Mutex<Option<VideoChain>>,
    /// Streams copied to the output, for the summary.
    copied: Mutex<Vec<String>>,
}

/// The elements of the video branch that the summary and the progress display read.
#[derive(Clone)]
struct VideoChain {
    decoder: String,
    encoder: String,
    upscaler: gst::Element,
}

fn post_error(pipeline: &gst::Pipeline, text: String) {
    let _ = pipeline.post_message(gst::message::Error::builder(gst::CoreError::Failed, &text).src(pipeline).build());
}

impl Shared {
    fn encoder_choice(&self) -> Encoder {
        match self.job.encoder {
            Encoder::Auto if self.gpu && factory_exists("nvh265enc") => Encoder::NvH265,
            Encoder::Auto if self.gpu && factory_exists("nvh264enc") => Encoder::NvH264,
            Encoder::Auto => Encoder::X264,
            chosen => chosen,
        }
    }

    fn configure_encoder(&self, encoder: &gst::Element, choice: Encoder) {
        let quality = self.job.quality.unwrap_or(20);
        match (choice, self.job.bitrate) {
            (Encoder::X264, Some(kbps)) | (Encoder::X265, Some(kbps)) => encoder.set_property("bitrate", kbps),
            (Encoder::X264, None) => {
                encoder.set_property_from_str("pass", "quant");
                encoder.set_property("quantizer", quality.min(50));
            }
            (Encoder::X265, None) => encoder.set_property("option-string", format!("qp={}", quality.min(51))),
            (_, Some(kbps)) => {
                encoder.set_property_from_str("rc-mode", "vbr");
                encoder.set_property("bitrate", kbps);
            }
            (_, None) => {
                encoder.set_property_from_str("rc-mode", "constqp");
                encoder.set_property("qp-const", quality.min(51) as i32);
            }
        }
    }

    /// Builds `decoder ! … ! vfupscale ! … ! encoder ! parser` for `pad` and links it to the muxer.
    fn link_video(&self, pipeline: &gst::Pipeline, pad: &gst::Pad, caps: &gst::Caps) -> Result<(), String> {
        let nvdec = if self.gpu { nvdec_for(caps) } else { None };
        let mut upscaler = gst::ElementFactory::make("vfupscale")
            .property_from_str("backend", &self.job.backend)
            .property_from_str("precision", &self.job.precision)
            .property("device-id", self.job.device)
            .property_from_str("classic-method", &self.job.classic_method)
            .property("strength", self.job.strength)
            .property_from_str("fallback", &self.job.fallback)
            .property("temporal-stability", self.job.temporal_stability)
            .property("scale", self.job.scale.unwrap_or(0));
        if let Some(model) = &self.model {
            upscaler = upscaler.property("model", model.to_str().ok_or("model path is not UTF-8")?);
        }
        let upscaler = upscaler.build().map_err(|_| "the vfupscale element is not available")?;
        let choice = self.encoder_choice();
        let encoder = make(choice.factory())?;
        self.configure_encoder(&encoder, choice);
        let parser = make(choice.parser())?;
        let mut chain: Vec<gst::Element> = Vec::new();
        let decoder_name = match nvdec {
            Some((dec, parser)) => {
                // decoded frames stay in CUDA memory up to the encoder (or cudadownload)
                if let Some(parser) = parser {
                    chain.push(make(parser)?);
                }
                chain.push(make(dec)?);
                chain.push(make("queue")?);
                chain.push(upscaler.clone());
                chain.push(make("queue")?);
                if !choice.is_nvenc() {
                    chain.push(make("cudadownload")?);
                    chain.push(make("videoconvert")?);
                }
                dec.to_string()
            }
            None => {
                let dec = make("decodebin")?;
                chain.push(dec);
                chain.push(make("videoconvert")?);
                let nv12 = gst::ElementFactory::make("capsfilter")
                    .property("caps", gst::Caps::builder("video/x-raw").field("format", "NV12").build())
                    .build()
                    .map_err(|e| e.to_string())?;
                chain.push(nv12);
                chain.push(make("queue")?);
                chain.push(upscaler.clone());
                chain.push(make("queue")?);
                if choice.is_nvenc() {
                    chain.push(make("cudaupload")?);
                } else {
                    chain.push(make("videoconvert")?);
                }
                "software (decodebin)".to_string()
            }
        };
        chain.push(encoder);
        chain.push(parser.clone());
        pipeline.add_many(&chain).map_err(|e| e.to_string())?;
        // decodebin's source pad appears once it knows the stream: link it then
        if nvdec.is_none() {
            let next = chain[1].clone();
            chain[0].connect_pad_added(move |_, src| {
                if let Some(sink) = next.static_pad("sink")
                    && !sink.is_linked()
                {
                    let _ = src.link(&sink);
                }
            });
            gst::Element::link_many(&chain[1..]).map_err(|e| format!("cannot link the video branch: {e}"))?;
        } else {
            gst::Element::link_many(&chain).map_err(|e| format!("cannot link the video branch: {e}"))?;
        }
        let mux_pad = self
            .muxer
            .request_pad_simple("video_%u")
            .ok_or_else(|| format!("{} has no video input", self.muxer.name()))?;
        parser
            .static_pad("src")
            .unwrap()
            .link(&mux_pad)
            .map_err(|e| format!("cannot link video to the muxer: {e:?}"))?;
        for e in chain.iter().rev() {
            e.sync_state_with_parent().map_err(|e| e.to_string())?;
        }
        pad.link(&chain[0].static_pad("sink").unwrap()).map_err(|e| format!("cannot link the video stream: {e:?}"))?;
        *self.video.lock().unwrap() =
            Some(VideoChain { decoder: decoder_name, encoder: choice.factory().into(), upscaler });
        Ok(())
    }

    /// Links an audio or subtitle stream straight to the muxer.
    fn link_copy(
        &self,
        pipeline: &gst::Pipeline,
        pad: &gst::Pad,
        caps: &gst::Caps,
        kind: &str,
    ) -> Result<bool, String> {
        let Some(mux_pad) = self.muxer.compatible_pad(pad, Some(caps)) else {
            return Ok(false);
        };
        // Unbounded: the muxer interleaves, so copied streams run ahead of the (slow) upscaled video by the video
        // branch's latency, encoder lookahead included; a bounded queue here would block the demuxer and deadlock.
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .build()
            .map_err(|e| e.to_string())?;
        pipeline.add(&queue).map_err(|e| e.to_string())?;
        queue.static_pad("src").unwrap().link(&mux_pad).map_err(|e| format!("{e:?}"))?;
        queue.sync_state_with_parent().map_err(|e| e.to_string())?;
        pad.link(&queue.static_pad("sink").unwrap()).map_err(|e| format!("{e:?}"))?;
        self.copied
            .lock()
            .unwrap()
            .push(format!("{kind} ({})", caps.structure(0).map_or("?".into(), |s| s.name().to_string())));
        Ok(true)
    }

    fn on_pad(&self, pad: &gst::Pad) {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        let result = if name.starts_with("video/") || name.starts_with("image/") {
            if self.video.lock().unwrap().is_some() {
                eprintln!(
                    "vfupscale: warning: only the first video stream is upscaled; another one ({name}) is left out"
                );
                Ok(())
            } else {
                self.link_video(&pipeline, pad, &caps)
            }
        } else if name.starts_with("audio/") {
            match self.link_copy(&pipeline, pad, &caps, "audio") {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!(
                    "the audio stream ({name}) cannot be copied into {} without re-encoding; use .mkv",
                    self.job.output.display()
                )),
                Err(e) => Err(e),
            }
        } else if name.starts_with("text/") || name.starts_with("subpicture/") || name.starts_with("application/x-sub")
        {
            match self.link_copy(&pipeline, pad, &caps, "subtitles") {
                Ok(true) => Ok(()),
                Ok(false) => {
                    eprintln!(
                        "vfupscale: warning: subtitles ({name}) cannot be stored in this container and are left out"
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            eprintln!("vfupscale: warning: stream {name} is left out");
            Ok(())
        };
        if let Err(e) = result {
            post_error(&pipeline, e);
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

fn format_time(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Progress display: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    fn update(&mut self, frames: u64, total: Option<u64>) {
        if self.quiet {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let fps = if elapsed > 0.0 { frames as f64 / elapsed } else { 0.0 };
        let (pct, eta) = match total {
            Some(t) if t > 0 => {
                let left = t.saturating_sub(frames) as f64;
                (
                    (frames as f64 / t as f64 * 100.0).min(100.0),
                    if fps > 0.0 { format_time(left / fps) } else { "?".into() },
                )
            }
            _ => (0.0, "?".into()),
        };
        let of_total = total.map_or(String::new(), |t| format!("/{t}"));
        if self.tty {
            let width = 30;
            let filled = ((pct / 100.0) * width as f64) as usize;
            eprint!(
                "\r[{}{}] {pct:5.1}%  {frames}{of_total} frames  {fps:.2} fps  ETA {eta}   ",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            eprintln!("progress: {frames}{of_total} frames ({pct:.0}%), {fps:.2} fps, ETA {eta}");
        }
    }

    fn finish_line(&self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}

/// Runs the job; returns the exit code (0 done, 130 finished early after Ctrl+C) or an error for a one-line report.
pub fn run(job: Job) -> Result<ExitCode, String> {
    let input_meta = std::fs::metadata(&job.input).map_err(|e| format!("{}: {e}", job.input.display()))?;
    if !input_meta.is_file() {
        return Err(format!("{}: not a file", job.input.display()));
    }
    std::fs::File::open(&job.input).map_err(|e| format!("{}: {e}", job.input.display()))?;
    let muxer_factory = muxer_for(&job.output)?;
    if same_file(&job.input, &job.output) {
        return Err(format!("{}: the output would overwrite the input", job.output.display()));
    }
    if job.output.exists() && !job.overwrite {
        return Err(format!("{} exists (use -y to replace it)", job.output.display()));
    }
    // no model for classic scaling; with --fallback classic a model that cannot be read is the element's to report
    let classic = job.backend == "classic";
    if let Some(s) = job.scale.filter(|&s| !(1..=16).contains(&s) || !classic) {
        return Err(format!("--scale {s}: only with --backend classic, from 1 to 16"));
    }
    let model = match (classic, crate::resolve_model(job.model.as_deref())) {
        (true, _) => None,
        (false, Ok(model)) => Some(model),
        (false, Err(_)) if job.fallback == "classic" => job.model.as_ref().map(PathBuf::from),
        (false, Err(e)) => return Err(e),
    };
    let model_name = match &model {
        None => format!("classic {}", job.classic_method),
        Some(m) => vfupscale::model::ModelInfo::load(m).map(|i| i.name).unwrap_or_else(|_| m.display().to_string()),
    };

    let dir = job.output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = job.output.file_name().ok_or("the output has no file name")?.to_string_lossy().into_owned();
    let temp = dir.join(format!(".{name}.vfupscale-{}.part", std::process::id()));
    std::fs::File::create(&temp).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let cleanup = |temp: &Path| {
        let _ = std::fs::remove_file(temp);
    };

    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    // the element ships in this binary; an installed copy of the plugin would do as well
    let _ = gstvfupscale::plugin_register_static();

    let gpu = job.backend != "cpu" && vfupscale::cuda::driver_status().is_ok();
    let pipeline = gst::Pipeline::new();
    let build = || -> Result<Arc<Shared>, String> {
        let src = gst::ElementFactory::make("filesrc")
            .property("location", job.input.to_str().ok_or("input path is not UTF-8")?)
            .build()
            .map_err(|e| e.to_string())?;
        let demux = make("parsebin")?;
        let muxer = make(muxer_factory)?;
        let sink = gst::ElementFactory::make("filesink")
            .property("location", temp.to_str().ok_or("output path is not UTF-8")?)
            .build()
            .map_err(|e| e.to_string())?;
        pipeline.add_many([&src, &demux, &muxer, &sink]).map_err(|e| e.to_string())?;
        src.link(&demux).map_err(|e| e.to_string())?;
        muxer.link(&sink).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            pipeline: pipeline.downgrade(),
            muxer,
            gpu,
            job: job.clone(),
            model: model.clone(),
            video: Mutex::new(None),
            copied: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        demux.connect_pad_added(move |_, pad| s.on_pad(pad));
        let s = shared.clone();
        demux.connect_no_more_pads(move |_| {
            if s.video.lock().unwrap().is_none()
                && let Some(p) = s.pipeline.upgrade()
            {
                post_error(&p, format!("{}: no video stream", s.job.input.display()));
            }
        });
        Ok(shared)
    };
    let shared = match build() {
        Ok(s) => s,
        Err(e) => {
            cleanup(&temp);
            return Err(e);
        }
    };

    let main_loop = glib::MainLoop::new(None, false);
    let outcome: Arc<Mutex<Option<Result<(), String>>>> = Arc::new(Mutex::new(None));
    let interrupted = Arc::new(AtomicBool::new(false));

    let bus = pipeline.bus().unwrap();
    let watch = {
        let (main_loop, outcome) = (main_loop.clone(), outcome.clone());
        let input = job.input.display().to_string();
        bus.add_watch(move |_, msg| {
            match msg.view() {
                gst::MessageView::Eos(..) => {
                    *outcome.lock().unwrap() = Some(Ok(()));
                    main_loop.quit();
                }
                gst::MessageView::Error(e) => {
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
                        text = format!("{input}: not a video file GStreamer can read ({text})");
                    }
                    *outcome.lock().unwrap() =
                        Some(Err(if about_input || src.is_empty() || src.starts_with("pipeline") {
                            text
                        } else {
                            format!("{src}: {text}")
                        }));
                    main_loop.quit();
                }
                // the upscaler's fallbacks to classic output: never silent
                gst::MessageView::Warning(w) if w.src().is_some_and(|s| s.type_().name() == "GstVfUpscale") => {
                    let cause = w.debug().map(|d| format!(": {d}")).unwrap_or_default();
                    eprintln!("vfupscale: warning: {}{cause}", w.error());
                }
                _ => {}
            }
            glib::ControlFlow::Continue
        })
        .map_err(|e| e.to_string())?
    };
    // Ctrl+C: the handler only counts; the main loop acts on the count.
    SIGINTS.store(0, Ordering::SeqCst);
    // SAFETY: installs an async-signal-safe handler (one atomic increment).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let sigint = {
        let (pipeline, main_loop, interrupted, outcome) =
            (pipeline.clone(), main_loop.clone(), interrupted.clone(), outcome.clone());
        let mut handled = 0;
        glib::timeout_add(Duration::from_millis(100), move || {
            let count = SIGINTS.load(Ordering::SeqCst);
            if count > handled {
                handled = count;
                if !interrupted.swap(true, Ordering::SeqCst) {
                    eprintln!("\nvfupscale: finishing the file (press Ctrl+C again to abort)");
                    pipeline.send_event(gst::event::Eos::new());
                }
                if count >= 2 {
                    *outcome.lock().unwrap() = Some(Err("aborted".into()));
                    main_loop.quit();
                }
            }
            glib::ControlFlow::Continue
        })
    };

    let progress = Arc::new(Mutex::new(Progress {
        tty: std::io::stderr().is_terminal(),
        quiet: job.quiet,
        start: Instant::now(),
        last_line: Instant::now(),
    }));
    let ticker = {
        let (pipeline, shared, p) = (pipeline.clone(), shared.clone(), progress.clone());
        glib::timeout_add(Duration::from_millis(500), move || {
            if let Some(v) = shared.video.lock().unwrap().clone() {
                let stats: gst::Structure = v.upscaler.property("stats");
                let frames = stats.get::<u64>("frames").unwrap_or(0);
                let total = pipeline.query_duration::<gst::ClockTime>().and_then(|d| {
                    let caps = v.upscaler.static_pad("sink")?.current_caps()?;
                    let fr = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
                    (fr.numer() > 0).then(|| d.nseconds() * fr.numer() as u64 / fr.denom() as u64 / 1_000_000_000)
                });
                p.lock().unwrap().update(frames, total);
            }
            glib::ControlFlow::Continue
        })
    };

    let started = Instant::now();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // the real reason is on the bus
        let _ = e;
    }
    main_loop.run();
    ticker.remove();
    sigint.remove();
    drop(watch);
    let _ = pipeline.set_state(gst::State::Null);
    progress.lock().unwrap().finish_line();

    let result = outcome.lock().unwrap().take().unwrap_or_else(|| Err("the pipeline stopped without a reason".into()));
    if let Err(e) = result {
        cleanup(&temp);
        return Err(e);
    }
    let Some(video) = shared.video.lock().unwrap().clone() else {
        cleanup(&temp);
        return Err(format!("{}: no video stream", job.input.display()));
    };
    let stats: gst::Structure = video.upscaler.property("stats");
    let frames = stats.get::<u64>("frames").unwrap_or(0);
    if frames == 0 {
        cleanup(&temp);
        return Err("no frame was upscaled".into());
    }
    std::fs::rename(&temp, &job.output).map_err(|e| {
        cleanup(&temp);
        format!("{}: {e}", job.output.display())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&job.output).map(|m| m.len()).unwrap_or(0);
    if !job.quiet {
        let count = |f: &str| stats.get::<u64>(f).unwrap_or(0);
        let fallbacks = match (count(field::FALLBACK_STREAMS), count(field::FALLBACK_FRAMES)) {
            (0, 0) => String::new(),
            (0, n) => format!("; {n} frames fell back to classic"),
            _ => "; the model could not run: classic output".into(),
        };
        eprintln!(
            "{}: {frames} frames in {} ({:.2} fps); model {} x{}; backend {} on {}; strength {}, temporal-stability \
             {}{fallbacks}; decoder {}, encoder {}{}; {:.1} MB",
            job.output.display(),
            format_time(secs),
            frames as f64 / secs.max(1e-9),
            model_name,
            video.upscaler.property::<u32>("scale"),
            stats.get::<&str>("backend").unwrap_or("?"),
            stats.get::<&str>("device").unwrap_or("?"),
            job.strength,
            job.temporal_stability,
            video.decoder,
            video.encoder,
            {
                let copied = shared.copied.lock().unwrap();
                if copied.is_empty() { String::new() } else { format!("; copied {}", copied.join(", ")) }
            },
            size as f64 / 1e6
        );
    }
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("vfupscale: interrupted: {} holds the first {frames} frames", job.output.display());
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl+C presses since the job started.
static SIGINTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINTS.fetch_add(1, Ordering::SeqCst);
}
