// SPDX-License-Identifier: MPL-2.0
//! Runs a video job: `filesrc ! parsebin`, the video branch (`branch`) and copied streams (`streams`) into the
//! muxer, written under a temporary name and renamed when complete.
//!
//! Stopping (Ctrl+C, SIGTERM, SIGHUP, or the end of a range): a probe where decoded frames enter the upscaler drops
//! every later frame, and EOS is sent into each branch's first element, so the demuxer is no longer read, frames
//! already decoded but not yet upscaled are discarded, and only the frames in flight are finished before the muxer
//! closes the file. A stop before the first frame reached the upscaler writes nothing.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::branch::{self, Branch};
use crate::job::{Stage, VideoJob, VideoOutput};
use crate::output::Part;
use crate::progress::Progress;
use crate::range::{self, Admit, Gate, Range};
use crate::streams::{self, Window};
use crate::{report, signals};

/// What a finished run reports.
pub struct Report {
    /// Frames upscaled (in the output).
    pub frames: u64,
    pub started: Instant,
    /// When the first frame left the upscaler (benchmarks time from here).
    pub first_frame: Option<Instant>,
    pub ended: Instant,
    /// The signal that ended the run early; the file holds what was done.
    pub stopped_by: Option<i32>,
    pub files: Vec<PathBuf>,
    pub facts: report::Facts,
    /// Which frames of the range were upscaled.
    pub outcome: range::Outcome,
    /// Caps of the encoded video as the muxer took them (what a later mux of this file needs).
    pub video_caps: Option<gst::Caps>,
}

/// Why a run wrote nothing.
pub enum Failure {
    Error(String),
    /// A seek before a range landed after its first frame (the container's index is not exact): read the range from
    /// the beginning instead.
    SeekLandedLate,
    /// A signal before the first frame, or a second one.
    Interrupted {
        signal: i32,
        aborted: bool,
    },
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

/// Counters and flags shared with the streaming threads.
struct Shared {
    job: VideoJob,
    pipeline: glib::WeakRef<gst::Pipeline>,
    muxer: Option<gst::Element>,
    frames_dir: PathBuf,
    branch: Mutex<Option<Branch>>,
    /// Where EOS goes to stop: the sink pads of every branch's first element.
    entries: Mutex<Vec<gst::Pad>>,
    copied: Mutex<Vec<String>>,
    window: Arc<Window>,
    gate: Gate,
    stopping: AtomicBool,
    /// End time of the last frame that passed the gate.
    video_end: AtomicU64,
    decoded: AtomicU64,
    upscaled: AtomicU64,
    first_frame: Mutex<Option<Instant>>,
    /// The upscaler's output caps, taken with its first frame.
    output_caps: Mutex<Option<gst::Caps>>,
}

fn post_error(pipeline: &gst::Pipeline, text: String) {
    let _ = pipeline.post_message(gst::message::Error::builder(gst::CoreError::Failed, &text).src(pipeline).build());
}

impl Shared {
    /// Stops reading: later frames are dropped at the gate, copied streams end where the last frame that passed
    /// it ends, and EOS goes into every branch, each from a thread of its own: sending waits for the branch's
    /// streaming thread, which may be blocked until the muxer, itself waiting for EOS on another branch, takes data.
    fn stop(self: &Arc<Self>) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.window.cut.store(self.video_end.load(Ordering::SeqCst), Ordering::SeqCst);
        for pad in self.entries.lock().unwrap().clone() {
            std::thread::spawn(move || pad.send_event(gst::event::Eos::new()));
        }
    }

    fn on_pad(self: &Arc<Self>, pad: &gst::Pad) {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        let result = if name.starts_with("video/") || name.starts_with("image/") {
            if self.branch.lock().unwrap().is_some() {
                report::warn(&format!("only the first video stream is upscaled; another one ({name}) is left out"));
                Ok(())
            } else {
                self.link_video(&pipeline, pad, &caps)
            }
        } else if !self.job.copy_streams {
            Ok(()) // a segment: the final mux copies these once
        } else if let Some(kind) = streams::copied_kind(&name) {
            self.link_copy(&pipeline, pad, &caps, kind)
        } else {
            report::warn(&format!("stream {name} is left out"));
            Ok(())
        };
        if let Err(e) = result {
            post_error(&pipeline, e);
        }
    }

    fn link_video(self: &Arc<Self>, pipeline: &gst::Pipeline, pad: &gst::Pad, caps: &gst::Caps) -> Result<(), String> {
        let branch = branch::build(pipeline, &self.job, caps, &self.frames_dir)?;
        if let Some(muxer) = &self.muxer {
            let mux_pad =
                muxer.request_pad_simple("video_%u").ok_or_else(|| format!("{} has no video input", muxer.name()))?;
            let src = branch.exit.static_pad("src").ok_or("the video branch has no output")?;
            src.link(&mux_pad).map_err(|e| format!("cannot link video to the muxer: {e:?}"))?;
        }
        let counts_done = branch.gate == branch.done;
        let shared = self.clone();
        branch.gate.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let pts = buffer.pts().map(|t| t.nseconds());
            if shared.stopping.load(Ordering::SeqCst) {
                return streams::DISCARD;
            }
            let last = match shared.gate.admit(pts) {
                Admit::Drop => return streams::DISCARD,
                Admit::Stop => {
                    shared.stop();
                    return streams::DISCARD;
                }
                Admit::Fail(e) => {
                    if let Some(p) = shared.pipeline.upgrade() {
                        post_error(&p, format!("{}: {e}", shared.job.input.display()));
                    }
                    return streams::DISCARD;
                }
                Admit::Pass => false,
                Admit::PassLast => true,
            };
            let end = pts.zip(buffer.duration()).map_or(u64::MAX, |(t, d)| t + d.nseconds());
            shared.video_end.store(end, Ordering::SeqCst);
            shared.decoded.fetch_add(1, Ordering::SeqCst);
            if counts_done {
                shared.frame_done();
            }
            if last {
                shared.stop();
            }
            gst::PadProbeReturn::Ok
        });
        if let Range::Span(span) = &self.job.range
            && let Some(position) = span.seek
        {
            self.seek_before_reading(pad, position);
        }
        if !counts_done {
            let shared = self.clone();
            branch.done.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
                let mut caps = shared.output_caps.lock().unwrap();
                if caps.is_none() {
                    // the upscaler's output as negotiated (gone once the pipeline stops): for the summary
                    *caps = pad.current_caps();
                }
                drop(caps);
                shared.frame_done();
                gst::PadProbeReturn::Ok
            });
        }
        self.entries.lock().unwrap().push(branch.entry.clone());
        pad.link(&branch.entry).map_err(|e| format!("cannot link the video stream: {e:?}"))?;
        *self.branch.lock().unwrap() = Some(branch);
        Ok(())
    }

    /// Decoding starts at `position` (stream time of a keyframe): what the demuxer gives before the seek is done is
    /// dropped before the decoder, and the seek is sent upstream when the first buffer arrives (then the branch has
    /// its caps: a flush while the decoder is being chosen would lose them), from another thread (a flushing seek
    /// waits for the streaming thread). The muxer does not pass seeks on, so it is sent from the stream's pad.
    fn seek_before_reading(self: &Arc<Self>, pad: &gst::Pad, position: u64) {
        let seek = gst::event::Seek::new(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            gst::ClockTime::from_nseconds(position),
            gst::SeekType::None,
            gst::ClockTime::NONE,
        );
        let seqnum = seek.seqnum();
        let pending = Mutex::new(Some(seek));
        let seeked = AtomicBool::new(false);
        let shared = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(_)) if !seeked.load(Ordering::SeqCst) => {
                    if let Some(seek) = pending.lock().unwrap().take() {
                        let (pad, shared) = (pad.clone(), shared.clone());
                        std::thread::spawn(move || {
                            if !pad.send_event(seek)
                                && let Some(p) = shared.pipeline.upgrade()
                            {
                                let at = position as f64 / 1e9;
                                let input = shared.job.input.display();
                                post_error(&p, format!("{input}: cannot seek to {at:.3} s in this file"));
                            }
                        });
                    }
                    streams::DISCARD
                }
                Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Segment && e.seqnum() == seqnum => {
                    seeked.store(true, Ordering::SeqCst);
                    gst::PadProbeReturn::Ok
                }
                // a short file may end before the seek is handled: that end is not the range's
                Some(gst::PadProbeData::Event(e))
                    if e.type_() == gst::EventType::Eos && !seeked.load(Ordering::SeqCst) =>
                {
                    streams::DISCARD
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }

    fn frame_done(&self) {
        if self.upscaled.fetch_add(1, Ordering::SeqCst) == 0 {
            *self.first_frame.lock().unwrap() = Some(Instant::now());
            if let Some(p) = self.pipeline.upgrade() {
                let s = gst::Structure::new_empty("vfupscale-first-frame");
                let _ = p.post_message(gst::message::Application::builder(s).src(&p).build());
            }
        }
    }

    fn link_copy(&self, pipeline: &gst::Pipeline, pad: &gst::Pad, caps: &gst::Caps, kind: &str) -> Result<(), String> {
        let Some(muxer) = &self.muxer else {
            return Ok(()); // nothing to copy into (image sequence, benchmark stage)
        };
        let out = self.job.output_path();
        let copy = streams::copy(pipeline, muxer, pad, caps, kind, &out, self.window.clone(), false)?;
        if let Some((entry, what)) = copy {
            self.entries.lock().unwrap().push(entry);
            self.copied.lock().unwrap().push(what);
        }
        Ok(())
    }
}

enum Outcome {
    Done,
    Failed(String),
    /// NVDEC could not decode the stream (a profile, chroma format or bit depth its caps do not rule out), before
    /// any frame: the job runs again with software decoding.
    NvdecFailed(String),
    Interrupted {
        signal: i32,
        aborted: bool,
    },
}

impl Shared {
    /// Whether `e`, posted before the first decoded frame, is NVDEC refusing the stream: an error of the NVDEC
    /// decoder itself, or a negotiation failure while it runs.
    fn is_nvdec_failure(&self, e: &gst::message::Error) -> bool {
        if self.decoded.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let Some(name) = self.branch.lock().unwrap().as_ref().and_then(|b| match &b.decoder {
            branch::Decoder::Nvdec(name) => Some(*name),
            branch::Decoder::Software(..) => None,
        }) else {
            return false;
        };
        let from_decoder = e
            .src()
            .and_then(|s| s.downcast_ref::<gst::Element>())
            .and_then(|el| el.factory())
            .is_some_and(|f| f.name() == name);
        from_decoder || e.debug().is_some_and(|d| d.contains("not-negotiated"))
    }
}

/// Runs `job`, showing progress as `display` says; the display is finished (cleared, or its last JSON object
/// written) when this returns.
pub fn run(job: &VideoJob, display: Display) -> Result<Report, Failure> {
    let progress =
        Rc::new(RefCell::new(Progress::new(display.mode, display.quiet, job.output_path().display().to_string())));
    let run_once = |job: &VideoJob| match run_with(job, &progress) {
        Err(Stopped::Nvdec(reason)) => {
            report::note(&format!(
                "note: NVDEC cannot decode {} ({reason}); decoding in software",
                job.input.display()
            ));
            let software = VideoJob { gpu: false, ..job.clone() };
            run_with(&software, &progress).map_err(Stopped::into_failure)
        }
        other => other.map_err(Stopped::into_failure),
    };
    let mut result = run_once(job);
    if let (Err(Failure::SeekLandedLate), Range::Span(span)) = (&result, &job.range) {
        progress.borrow().println(&format!(
            "vfupscale: note: {}: seeking landed after frame {} (the container's index is not exact): reading from \
             the beginning",
            job.input.display(),
            span.first
        ));
        let mut from_start = job.clone();
        from_start.range = Range::Span(Arc::new(range::Span { seek: None, ..(**span).clone() }));
        result = run_once(&from_start);
    }
    let error = match &result {
        Ok(_) => None,
        Err(Failure::Error(e)) => Some(e.clone()),
        Err(Failure::Interrupted { signal, .. }) => Some(format!("interrupted by {}", signals::name(*signal))),
        Err(Failure::SeekLandedLate) => Some("the seek landed after the range's start".into()),
    };
    progress.borrow_mut().finish(error.as_deref());
    result
}

/// How progress is shown.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    pub mode: crate::cli::ProgressMode,
    pub quiet: bool,
}

/// How a run ended without a report: a failure, or NVDEC refusing the stream before the first frame (the job is
/// then run again with software decoding).
enum Stopped {
    Failure(Failure),
    Nvdec(String),
}

impl Stopped {
    fn into_failure(self) -> Failure {
        match self {
            Stopped::Failure(f) => f,
            Stopped::Nvdec(reason) => Failure::Error(reason),
        }
    }
}

impl<T: Into<Failure>> From<T> for Stopped {
    fn from(e: T) -> Self {
        Stopped::Failure(e.into())
    }
}

fn run_with(job: &VideoJob, progress: &Rc<RefCell<Progress>>) -> Result<Report, Stopped> {
    let started = Instant::now();
    let part = match &job.output {
        VideoOutput::File { path, .. } => Some(Part::file(path)?),
        VideoOutput::Sequence { dir, .. } => Some(Part::dir(dir)?),
        VideoOutput::Discard { .. } => None,
    };
    let pipeline = gst::Pipeline::new();
    let src = gst::Element::make_from_uri(gst::URIType::Src, &crate::media::file_uri(&job.input)?, None)
        .map_err(|e| format!("{}: {e}", job.input.display()))?;
    let parse = branch::make("parsebin")?;
    pipeline.add_many([&src, &parse]).map_err(|e| e.to_string())?;
    src.link(&parse).map_err(|e| e.to_string())?;
    let muxer = match (&job.output, job.stage()) {
        (VideoOutput::File { muxer, .. }, _) | (VideoOutput::Discard { muxer, .. }, Stage::Encode) => {
            let muxer = branch::make(muxer)?;
            let sink = match &part {
                Some(part) => {
                    gst::Element::make_from_uri(gst::URIType::Sink, &crate::media::file_uri(part.path())?, None)
                        .map_err(|e| e.to_string())?
                }
                None => {
                    gst::ElementFactory::make("fakesink").property("sync", false).build().map_err(|e| e.to_string())?
                }
            };
            pipeline.add_many([&muxer, &sink]).map_err(|e| e.to_string())?;
            muxer.link(&sink).map_err(|e| e.to_string())?;
            Some(muxer)
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        job: job.clone(),
        pipeline: pipeline.downgrade(),
        muxer,
        frames_dir: part.as_ref().map_or_else(PathBuf::new, |p| p.path().to_path_buf()),
        branch: Mutex::new(None),
        entries: Mutex::new(Vec::new()),
        copied: Mutex::new(Vec::new()),
        window: Window::new(Gate::new(job.range.clone()).start().map(gst::ClockTime::from_nseconds)),
        gate: Gate::new(job.range.clone()),
        stopping: AtomicBool::new(false),
        video_end: AtomicU64::new(u64::MAX),
        decoded: AtomicU64::new(0),
        upscaled: AtomicU64::new(0),
        first_frame: Mutex::new(None),
        output_caps: Mutex::new(None),
    });
    let s = shared.clone();
    parse.connect_pad_added(move |_, pad| s.on_pad(pad));
    let s = shared.clone();
    parse.connect_no_more_pads(move |_| {
        if s.branch.lock().unwrap().is_none()
            && let Some(p) = s.pipeline.upgrade()
        {
            post_error(&p, format!("{}: no video stream", s.job.input.display()));
        }
    });

    let main_loop = glib::MainLoop::new(None, false);
    let outcome: Arc<Mutex<Option<Outcome>>> = Arc::new(Mutex::new(None));
    let finish = {
        let (main_loop, outcome) = (main_loop.clone(), outcome.clone());
        move |o: Outcome| {
            let mut slot = outcome.lock().unwrap();
            if slot.is_none() {
                *slot = Some(o);
            }
            main_loop.quit();
        }
    };
    let warnings = Arc::new(AtomicU64::new(0));
    let bus = pipeline.bus().ok_or_else(|| "the pipeline has no bus".to_string())?;
    let watch = {
        let (finish, shared, warnings, progress) = (finish.clone(), shared.clone(), warnings.clone(), progress.clone());
        bus.add_watch_local(move |_, msg| {
            match msg.view() {
                gst::MessageView::Eos(..) => finish(Outcome::Done),
                gst::MessageView::Error(e) if shared.is_nvdec_failure(e) => {
                    finish(Outcome::NvdecFailed(report::pipeline_error(&shared.job, e)))
                }
                gst::MessageView::Error(e) => finish(Outcome::Failed(report::pipeline_error(&shared.job, e))),
                gst::MessageView::Warning(w) => {
                    warnings.fetch_add(1, Ordering::Relaxed);
                    let src = w.src().map(|s| s.name().to_string()).unwrap_or_default();
                    progress.borrow().println(&format!("vfupscale: warning: {src}: {}", w.error()));
                }
                gst::MessageView::Application(a)
                    if a.structure().is_some_and(|s| s.name() == "vfupscale-first-frame") =>
                {
                    if let Some(branch) = shared.branch.lock().unwrap().as_ref() {
                        // read while decodebin still holds its decoder (kept for the summary)
                        let _ = branch.decoder.name();
                        report::start_line(&shared.job, branch, &progress.borrow());
                    }
                }
                _ => {}
            }
            glib::ControlFlow::Continue
        })
        .map_err(|e| e.to_string())?
    };

    // Signals arrive on their own thread; what they do runs on the main loop (queued if it has not started yet).
    let _signals = {
        let (finish, shared) = (finish.clone(), shared.clone());
        let context = glib::MainContext::default();
        signals::on_signal(move |count| {
            let (finish, shared) = (finish.clone(), shared.clone());
            let signal = signals::received().unwrap_or(libc::SIGINT);
            context.invoke(move || {
                if count >= 2 {
                    finish(Outcome::Interrupted { signal, aborted: true });
                } else if shared.decoded.load(Ordering::SeqCst) == 0 {
                    finish(Outcome::Interrupted { signal, aborted: false });
                } else {
                    report::warn(&format!("{}: finishing the file (again to abort)", signals::name(signal)));
                    shared.stop();
                }
            });
        })
    };
    if signals::count() > 0 {
        finish(Outcome::Interrupted { signal: signals::received().unwrap_or(libc::SIGINT), aborted: false });
    }

    let total = total_frames(job);
    let ticker = {
        let (shared, progress) = (shared.clone(), progress.clone());
        glib::timeout_add_local(Duration::from_millis(250), move || {
            progress.borrow_mut().update(shared.upscaled.load(Ordering::Relaxed), total);
            glib::ControlFlow::Continue
        })
    };
    // the real reason of a failure is on the bus
    let _ = pipeline.set_state(gst::State::Playing);
    if outcome.lock().unwrap().is_none() {
        main_loop.run();
    }
    ticker.remove();
    drop(watch);
    // read before the pads are deactivated
    let video_caps = shared.branch.lock().unwrap().as_ref().and_then(|b| b.exit.static_pad("src")?.current_caps());
    let _ = pipeline.set_state(gst::State::Null);
    let ended = Instant::now();
    progress.borrow_mut().update(shared.upscaled.load(Ordering::Relaxed), total);

    let outcome = outcome.lock().unwrap().take().unwrap_or(Outcome::Failed("the pipeline stopped".into()));
    match outcome {
        Outcome::Done => {}
        Outcome::Failed(e) => return Err(Failure::Error(e).into()),
        Outcome::NvdecFailed(e) => return Err(Stopped::Nvdec(e)),
        Outcome::Interrupted { signal, aborted } => return Err(Failure::Interrupted { signal, aborted }.into()),
    }
    let frames = shared.upscaled.load(Ordering::SeqCst);
    let decoded = shared.decoded.load(Ordering::SeqCst);
    let range = shared.gate.outcome();
    if range.landed_late {
        return Err(Failure::SeekLandedLate.into());
    }
    if frames == 0 {
        return Err(Failure::Error(match &job.range {
            Range::Span(span) => {
                format!("{}: none of frames {}:{} could be decoded", job.input.display(), span.first, span.end())
            }
            _ => "no frame was upscaled".into(),
        })
        .into());
    }
    let stopped_early = shared.stopping.load(Ordering::SeqCst);
    let ended_range = match &job.range {
        Range::All => false,
        Range::First(n) => decoded >= *n,
        Range::Span(span) => range.reached >= span.end(),
    };
    let stopped_by = signals::received().filter(|_| stopped_early && !ended_range);
    if !stopped_early && matches!(job.range, Range::All) {
        report::check_complete(job, decoded, warnings.load(Ordering::Relaxed), &progress.borrow());
    }
    let files = match (part, &job.output) {
        (Some(part), VideoOutput::File { path, .. }) => part.commit(path)?,
        (Some(part), VideoOutput::Sequence { dir, .. }) => part.commit(dir)?,
        _ => Vec::new(),
    };
    let output_caps = shared.output_caps.lock().unwrap().clone();
    let facts = report::Facts::gather(
        &shared.branch.lock().unwrap(),
        &shared.copied.lock().unwrap(),
        job,
        output_caps.as_ref(),
    );
    let first_frame = *shared.first_frame.lock().unwrap();
    Ok(Report { frames, started, first_frame, ended, stopped_by, files, facts, outcome: range, video_caps })
}

/// Frames the run will produce, when the container says (for progress).
fn total_frames(job: &VideoJob) -> Option<u64> {
    let all = job.media.expected_frames();
    match &job.range {
        Range::All => all,
        Range::First(n) => Some(all.map_or(*n, |a| a.min(*n))),
        Range::Span(span) => Some(span.pts.len() as u64),
    }
}
