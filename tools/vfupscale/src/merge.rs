// SPDX-License-Identifier: MPL-2.0
//! The final mux of a segmented run: the segments' encoded frames, in order, through an `appsrc` into the output's
//! muxer with the source's own timestamps (from the timeline, so a variable frame rate stays exact), and the audio,
//! subtitles and chapters copied once from the source:
//!
//! ```text
//! seg-00000.mkv, seg-00001.mkv, … (matroskademux ! appsink, one after the other) → appsrc ! muxer ! filesink (part)
//! source: filesrc ! parsebin ─ audio, subtitles ─ queue ─┘        (video: fakesink, its chapters to the muxer)
//! ```
//! Each packet gets the PTS of the source frame it encodes (its segment's record says which, in decode order), and
//! a DTS that trails the PTS by the stream's largest reordering. The result is read back and checked (frame count,
//! every timestamp, audio duration) before it is renamed into place.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use crate::manifest::SegmentRecord;
use crate::output::Part;
use crate::streams::{self, Window};
use crate::timeline::Timeline;
use crate::{branch, media, signals};

/// Added to every timestamp pushed (as x264enc does), so DTS before the first frame stay positive; the segment
/// starts as much later, so running times are the source's.
const OFFSET: u64 = 1000 * 3600 * 1_000_000_000;
/// Timestamps read back may differ from the source's by the container's rounding (Matroska: 1 ms).
const TOLERANCE_NS: u64 = 2_000_000;
/// The audio read back may be shorter or longer than what was given by this much (the last packet's rounding).
const AUDIO_TOLERANCE_NS: u64 = 100_000_000;

/// What to mux.
pub struct Merge<'a> {
    pub source: &'a Path,
    pub output: &'a Path,
    pub muxer: &'a str,
    pub timeline: &'a Timeline,
    /// Segment files with their records, in order (each starts where the previous one reached).
    pub segments: Vec<(PathBuf, SegmentRecord)>,
    /// The copied streams go on after the last frame (the whole video was asked for and done); else they end with
    /// the last frame.
    pub to_the_end: bool,
    /// A signal that brings the count of signals to this aborts the mux.
    pub abort_at_signal: u32,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub frames: u64,
    pub copied: Vec<String>,
    /// Seconds of audio in the output, when there is audio.
    pub audio_seconds: Option<f64>,
}

/// One packet to push: where it is and what it becomes.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    pts: u64,
    /// Before the first frame's PTS for the first packets of a stream with reordering (negative when that PTS is
    /// 0): MP4 stores it, and first packets clamped to one DTS would lose a frame.
    dts: i64,
    duration: u64,
}

impl Merge<'_> {
    /// Timeline indices of the output's frames, in presentation order.
    fn frames(&self) -> Vec<u64> {
        self.segments.iter().flat_map(|(_, r)| r.present()).collect()
    }

    /// Running time of the output's first frame in the source: subtracted from everything (a range starts at 0,
    /// the whole video keeps the source's own running times).
    fn base(&self) -> u64 {
        let first = self.segments.first().map_or(0, |(_, r)| r.start);
        if first == 0 { 0 } else { self.timeline.running_time(first) }
    }

    /// Timestamps of every packet, segment by segment in decode order.
    fn stamps(&self) -> Result<Vec<Vec<Stamp>>, String> {
        let t = self.timeline;
        let frames = self.frames();
        // Matroska stores each frame's PTS (and duration as given); MP4 stores DTS deltas as durations
        let mp4 = !matches!(self.muxer, "matroskamux" | "webmmux");
        let mut reorder = 0u64;
        for (path, r) in &self.segments {
            let present = r.present();
            if present.len() as u64 != r.frames || r.order.len() as u64 != r.frames {
                return Err(format!("{}: its record does not add up (frames, skipped, order)", path.display()));
            }
            for (k, &rank) in r.order.iter().enumerate() {
                reorder = reorder.max((k as u64).saturating_sub(rank));
            }
        }
        // DTS before the first frame step back by its gap to the next one (durations may be unknown: a variable
        // frame rate), so MP4's sample durations (DTS deltas) stay apart
        let first_step = match frames[..] {
            [a, b, ..] => t.pts[b as usize].saturating_sub(t.pts[a as usize]),
            [a] => t.duration[a as usize],
            [] => 0,
        }
        .max(1);
        let mut global = 0u64;
        let mut out = Vec::with_capacity(self.segments.len());
        for (_, r) in &self.segments {
            let present = r.present();
            let first_rank = global as usize;
            let mut stamps = Vec::with_capacity(present.len());
            for &rank in &r.order {
                let frame = present[rank as usize] as usize;
                let dts = if global >= reorder {
                    t.pts[frames[(global - reorder) as usize] as usize] as i64
                } else {
                    t.pts[frames[0] as usize] as i64 - ((reorder - global) * first_step) as i64
                };
                let duration =
                    if mp4 { known_duration(t, &frames, first_rank + rank as usize) } else { t.duration[frame] };
                stamps.push(Stamp { pts: t.pts[frame], dts, duration });
                global += 1;
            }
            out.push(stamps);
        }
        // mp4mux's edit list spans the media, from the first DTS to the last sample's DTS plus its duration: the
        // last packet's duration makes that the frames' presentation span (the first PTS to the end of the last frame
        // presented), so that no frame presented after the last DTS is hidden and no reordering delay is added at
        // the end (where the span is already covered, as with a first frame gap longer than the last ones, it stays)
        if mp4
            && let (Some(&first), Some(&last)) = (frames.first(), frames.last())
            && let Some(first_dts) = out.first().and_then(|s| s.first()).map(|s| s.dts)
            && let Some(stamp) = out.last_mut().and_then(|s| s.last_mut())
        {
            let end = t.pts[last as usize] as i64 + known_duration(t, &frames, frames.len() - 1) as i64;
            let span = end - t.pts[first as usize] as i64;
            let fitted = span - (stamp.dts - first_dts);
            if fitted > 0 {
                stamp.duration = fitted as u64;
            }
        }
        Ok(out)
    }

    /// Muxes, checks and renames into place.
    pub fn run(&self) -> Result<Merged, String> {
        let stamps = self.stamps()?;
        let caps_text = &self.segments.first().ok_or("no segment to mux")?.1.caps;
        if let Some((path, _)) = self.segments.iter().find(|(_, r)| &r.caps != caps_text) {
            return Err(format!(
                "{}: encoded with other stream parameters than the first segment, so they cannot be joined",
                path.display()
            ));
        }
        let caps =
            gst::Caps::from_str(caps_text).map_err(|_| format!("unreadable caps in a segment record: {caps_text}"))?;
        let part = Part::file(self.output)?;
        let muxed = self.mux(&caps, &stamps, part.path())?;
        let expected: Vec<u64> = self.frames().iter().map(|&f| self.timeline.running_time(f) - self.base()).collect();
        let audio = verify(part.path(), &expected, muxed.audio_span)?;
        part.commit(self.output)?;
        crate::manifest::sync_dir(crate::output::parent(self.output))?;
        Ok(Merged { frames: expected.len() as u64, copied: muxed.copied, audio_seconds: audio })
    }

    fn mux(&self, caps: &gst::Caps, stamps: &[Vec<Stamp>], file: &Path) -> Result<Muxed, String> {
        let pipeline = gst::Pipeline::new();
        let appsrc =
            gst_app::AppSrc::builder().caps(caps).format(gst::Format::Time).block(true).max_bytes(64 << 20).build();
        appsrc.set_property("handle-segment-change", true);
        let muxer = branch::make(self.muxer)?;
        let sink = gst::Element::make_from_uri(gst::URIType::Sink, &media::file_uri(file)?, None)
            .map_err(|e| e.to_string())?;
        pipeline.add_many([appsrc.upcast_ref(), &muxer, &sink]).map_err(|e| e.to_string())?;
        muxer.link(&sink).map_err(|e| e.to_string())?;
        let video_pad =
            muxer.request_pad_simple("video_%u").ok_or_else(|| format!("{} has no video input", self.muxer))?;
        appsrc.static_pad("src").ok_or("appsrc without src pad")?.link(&video_pad).map_err(|e| format!("{e:?}"))?;

        let copies = Arc::new(Copies::default());
        let src = gst::Element::make_from_uri(gst::URIType::Src, &media::file_uri(self.source)?, None)
            .map_err(|e| format!("{}: {e}", self.source.display()))?;
        let parse = branch::make("parsebin")?;
        pipeline.add_many([&src, &parse]).map_err(|e| e.to_string())?;
        src.link(&parse).map_err(|e| e.to_string())?;
        let frames = self.frames();
        let base = self.base();
        let cut = match (self.to_the_end, frames.last()) {
            (false, Some(&last)) => self.timeline.running_time(last) + self.timeline.duration[last as usize] - base,
            _ => u64::MAX,
        };
        let window = Window::running(0, cut);
        {
            let (weak, muxer, copies, out) =
                (pipeline.downgrade(), muxer.clone(), copies.clone(), self.output.to_path_buf());
            let chapters = base == 0;
            parse.connect_pad_added(move |_, pad| {
                let Some(pipeline) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = copies.on_pad(&pipeline, &muxer, pad, &out, window.clone(), base, chapters) {
                    let _ = pipeline
                        .post_message(gst::message::Error::builder(gst::CoreError::Failed, &e).src(&pipeline).build());
                }
            });
        }

        let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
        pipeline.set_state(gst::State::Playing).map_err(|_| "the final mux cannot start".to_string())?;
        // the muxer takes streams added before its first data only: the copies are linked first
        if let Err(e) = wait_for_streams(&bus, &copies.pads) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(e);
        }
        let feeder = {
            let (appsrc, segments, stamps, weak, caps) =
                (appsrc.clone(), self.segments.clone(), stamps.to_vec(), pipeline.downgrade(), caps.clone());
            let start = OFFSET + self.timeline.segment_start + base;
            std::thread::spawn(move || {
                if let Err(e) = feed(&appsrc, &caps, &segments, &stamps, start)
                    && let Some(p) = weak.upgrade()
                {
                    let _ = p.post_message(gst::message::Error::builder(gst::CoreError::Failed, &e).src(&p).build());
                }
                let _ = appsrc.end_of_stream();
            })
        };
        let result = loop {
            if signals::count() >= self.abort_at_signal {
                let signal = signals::received().unwrap_or(libc::SIGINT);
                break Err(format!("interrupted by {} during the final mux", signals::name(signal)));
            }
            let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    break Err(format!("final mux: {src}: {}", e.error()));
                }
                _ => break Ok(()),
            }
        };
        let _ = pipeline.set_state(gst::State::Null);
        let _ = feeder.join();
        result?;
        let copied = copies.copied.lock().unwrap().clone();
        let audio_span = *copies.audio_span.lock().unwrap();
        Ok(Muxed { copied, audio_span })
    }
}

struct Muxed {
    copied: Vec<String>,
    /// Running times of the audio given to the muxer: first start, last end.
    audio_span: Option<(u64, u64)>,
}

/// The source's streams in the final mux.
#[derive(Default)]
struct Copies {
    /// Pads the source's parsebin has added.
    pads: std::sync::atomic::AtomicUsize,
    video_seen: std::sync::atomic::AtomicBool,
    audio_seen: std::sync::atomic::AtomicBool,
    copied: Mutex<Vec<String>>,
    audio_span: Mutex<Option<(u64, u64)>>,
}

impl Copies {
    #[allow(clippy::too_many_arguments)]
    fn on_pad(
        self: &Arc<Self>,
        pipeline: &gst::Pipeline,
        muxer: &gst::Element,
        pad: &gst::Pad,
        out: &Path,
        window: Arc<Window>,
        base: u64,
        chapters: bool,
    ) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        // counted once this returns, linked or not: the feeding starts when every stream is counted, and the muxer
        // must have all its pads by then
        let _counted = Counted(&self.pads);
        // a range that starts later starts at 0
        pad.set_offset(-(base as i64));
        if name.starts_with("video/") || name.starts_with("image/") {
            if self.video_seen.swap(true, Ordering::SeqCst) {
                return Ok(());
            }
            // the video comes from the segments; the source's carries the chapters
            if chapters && let Some(setter) = muxer.dynamic_cast_ref::<gst::TocSetter>() {
                let setter = setter.clone();
                pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                    if let Some(gst::PadProbeData::Event(e)) = &info.data
                        && let gst::EventView::Toc(toc) = e.view()
                        && setter.toc().is_none()
                    {
                        setter.set_toc(Some(&toc.toc_owned().0));
                    }
                    gst::PadProbeReturn::Ok
                });
            }
            drop_buffers(pad);
            return Ok(());
        }
        let Some(kind) = streams::copied_kind(&name) else {
            return Ok(());
        };
        // the first audio stream is the one whose length is checked
        if kind == "audio" && !self.audio_seen.swap(true, Ordering::SeqCst) {
            let (copies, cut) = (self.clone(), window.cut.load(Ordering::Relaxed));
            // the probe sees the buffers before the pad's offset: their running times in the output are `base` less
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let Some(b) = info.buffer()
                    && let Some(rt) = running_time(pad, b.pts())
                    && rt >= base
                    && rt - base < cut
                {
                    let rt = rt - base;
                    let end = rt + b.duration().map_or(0, |d| d.nseconds());
                    let mut s = copies.audio_span.lock().unwrap();
                    *s = Some(s.map_or((rt, end), |(a, z)| (a.min(rt), z.max(end))));
                }
                gst::PadProbeReturn::Ok
            });
        }
        if let Some((_, what)) = streams::copy(pipeline, muxer, pad, &caps, kind, out, window, true)? {
            self.copied.lock().unwrap().push(what);
        }
        Ok(())
    }
}

/// Adds one to its count when dropped.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Duration of the output's frame `rank` (presentation order): the source's, or where that is unknown (a source
/// without durations, read as 1 ns) the gap to the next frame (the previous gap for the last). MP4 ends its edit
/// list at the last sample's DTS plus this duration, so an unknown one hides the frames presented after it.
fn known_duration(t: &Timeline, frames: &[u64], rank: usize) -> u64 {
    let recorded = t.duration[frames[rank] as usize];
    if recorded > 1 {
        return recorded;
    }
    let gap = |a: usize, b: usize| t.pts[frames[b] as usize].saturating_sub(t.pts[frames[a] as usize]);
    let filled = if rank + 1 < frames.len() {
        gap(rank, rank + 1)
    } else if rank > 0 {
        gap(rank - 1, rank)
    } else {
        recorded
    };
    filled.max(recorded)
}

/// Running time (ns) of a buffer at `pts` on `pad`.
fn running_time(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> Option<u64> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let time = segment.segment().downcast_ref::<gst::ClockTime>()?.to_running_time(pts?)?;
    Some(time.nseconds())
}

/// Pushes every segment's packets with their new timestamps.
fn feed(
    appsrc: &gst_app::AppSrc,
    caps: &gst::Caps,
    segments: &[(PathBuf, SegmentRecord)],
    stamps: &[Vec<Stamp>],
    start: u64,
) -> Result<(), String> {
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(gst::ClockTime::from_nseconds(start));
    segment.set_time(gst::ClockTime::ZERO);
    for ((path, _), stamps) in segments.iter().zip(stamps) {
        let mut next = stamps.iter();
        for_each_packet(path, |buffer| {
            let stamp = next.next().ok_or_else(|| format!("{}: more packets than its record says", path.display()))?;
            let mut buffer = buffer.copy();
            {
                let b = buffer.get_mut().expect("a fresh copy");
                b.set_pts(gst::ClockTime::from_nseconds(OFFSET + stamp.pts));
                b.set_dts(gst::ClockTime::from_nseconds(OFFSET.saturating_add_signed(stamp.dts)));
                b.set_duration(gst::ClockTime::from_nseconds(stamp.duration));
                b.unset_flags(gst::BufferFlags::DISCONT);
            }
            let sample = gst::Sample::builder().buffer(&buffer).caps(caps).segment(&segment).build();
            appsrc.push_sample(&sample).map(|_| ()).map_err(|e| format!("final mux: {e:?}"))
        })?;
        if next.next().is_some() {
            return Err(format!("{}: fewer packets than its record says", path.display()));
        }
    }
    Ok(())
}

/// Calls `f` with every packet of a Matroska file, in file (decode) order; returns the stream's caps.
pub fn for_each_packet(path: &Path, mut f: impl FnMut(gst::Buffer) -> Result<(), String>) -> Result<gst::Caps, String> {
    let pipeline = gst::Pipeline::new();
    let src =
        gst::Element::make_from_uri(gst::URIType::Src, &media::file_uri(path)?, None).map_err(|e| e.to_string())?;
    let demux = branch::make("matroskademux")?;
    let sink = gst_app::AppSink::builder().sync(false).max_buffers(64).build();
    pipeline.add_many([&src, &demux, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    src.link(&demux).map_err(|e| e.to_string())?;
    let sink_pad = sink.static_pad("sink").ok_or("appsink without pad")?;
    demux.connect_pad_added(move |_, pad| {
        if !sink_pad.is_linked() {
            let _ = pad.link(&sink_pad);
        }
    });
    let read = |e: String| format!("{}: {e}", path.display());
    pipeline.set_state(gst::State::Playing).map_err(|_| read("cannot be read".into()))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut caps = None;
    let result = loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            break Err(read(e.error().to_string()));
        }
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                if caps.is_none() {
                    caps = sample.caps_owned();
                }
                let Some(buffer) = sample.buffer_owned() else {
                    continue;
                };
                if let Err(e) = f(buffer) {
                    break Err(e);
                }
            }
            None if sink.is_eos() => break Ok(()),
            None => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    caps.ok_or_else(|| read("no video packet".into()))
}

/// Reads `file` back: its video frames must be `expected` (running times, ns), its audio as long as what the muxer
/// was given. Returns the audio's length in seconds.
fn verify(file: &Path, expected: &[u64], audio_given: Option<(u64, u64)>) -> Result<Option<f64>, String> {
    let pipeline = gst::Pipeline::new();
    let src =
        gst::Element::make_from_uri(gst::URIType::Src, &media::file_uri(file)?, None).map_err(|e| e.to_string())?;
    let parse = branch::make("parsebin")?;
    pipeline.add_many([&src, &parse]).map_err(|e| e.to_string())?;
    src.link(&parse).map_err(|e| e.to_string())?;
    let video: Arc<Mutex<Vec<u64>>> = Arc::default();
    let audio: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    let weak = pipeline.downgrade();
    let (v, a) = (video.clone(), audio.clone());
    parse.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        let is_video = name.starts_with("video/");
        if !is_video && !name.starts_with("audio/") {
            return;
        }
        let (v, a) = (v.clone(), a.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(b) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if let Some(rt) = running_time(pad, b.pts()) {
                if is_video {
                    v.lock().unwrap().push(rt);
                } else {
                    let end = rt + b.duration().map_or(0, |d| d.nseconds());
                    let mut s = a.lock().unwrap();
                    *s = Some(s.map_or((rt, end), |(x, z)| (x.min(rt), z.max(end))));
                }
            }
            gst::PadProbeReturn::Ok
        });
        if let Some(p) = weak.upgrade() {
            let _ = discard(&p, pad);
        }
    });
    let bus = pipeline.bus().ok_or("no bus")?;
    let _ = pipeline.set_state(gst::State::Playing);
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let _ = pipeline.set_state(gst::State::Null);
    let unreadable = |why: String| format!("the final mux wrote a file that does not read back ({why})");
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(unreadable(e.error().to_string())),
        _ => return Err(unreadable("timed out".into())),
    }
    let mut got = std::mem::take(&mut *video.lock().unwrap());
    got.sort_unstable();
    if got.len() != expected.len() {
        return Err(format!("the final mux holds {} frames instead of {}", got.len(), expected.len()));
    }
    if let Some((i, (g, e))) = got.iter().zip(expected).enumerate().find(|(_, (g, e))| g.abs_diff(**e) > TOLERANCE_NS) {
        return Err(format!(
            "frame {i} of the final mux is at {:.6} s instead of {:.6} s",
            *g as f64 / 1e9,
            *e as f64 / 1e9
        ));
    }
    let audio = *audio.lock().unwrap();
    match (audio_given, audio) {
        (None, _) => Ok(None),
        (Some(_), None) => Err("the final mux lost the audio".into()),
        (Some((a, z)), Some((x, y))) => {
            let (given, written) = (z - a, y - x);
            if given.abs_diff(written) > AUDIO_TOLERANCE_NS {
                return Err(format!(
                    "the final mux holds {:.3} s of audio instead of {:.3} s",
                    written as f64 / 1e9,
                    given as f64 / 1e9
                ));
            }
            Ok(Some(written as f64 / 1e9))
        }
    }
}

/// Buffers leaving `pad` (linked nowhere) are dropped, so the demuxer goes on: no sink that would wait for the
/// pipeline to preroll.
fn drop_buffers(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |_, _| streams::DISCARD);
}

/// Waits until parsebin has added a pad for every stream of its collection (it says how many on the bus).
fn wait_for_streams(bus: &gst::Bus, added: &std::sync::atomic::AtomicUsize) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut streams = None;
    while std::time::Instant::now() < deadline {
        if streams.is_none()
            && let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(20),
                &[gst::MessageType::StreamCollection, gst::MessageType::Error],
            )
        {
            match msg.view() {
                gst::MessageView::StreamCollection(c) => streams = Some(c.stream_collection().len()),
                gst::MessageView::Error(e) => return Err(format!("reading the source: {}", e.error())),
                _ => {}
            }
        }
        if streams.is_some_and(|n| added.load(std::sync::atomic::Ordering::SeqCst) >= n) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err("reading the source: its streams did not all appear within 30 s".into())
}

/// Links `pad` to a new fakesink, one that does not preroll: one demuxer thread feeds every sink, and a prerolled
/// sink would block it before the others have their first buffer.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    pad.link(&sink.static_pad("sink").ok_or("fakesink without pad")?).map(|_| ()).map_err(|e| format!("{e:?}"))
}

/// Whether every audio and subtitle stream of `source` can be copied into `muxer` (asked before anything runs, so
/// an impossible copy is not found after hours of upscaling).
pub fn check_copies(source: &Path, muxer: &str, out: &Path) -> Result<(), String> {
    let pipeline = gst::Pipeline::new();
    let src =
        gst::Element::make_from_uri(gst::URIType::Src, &media::file_uri(source)?, None).map_err(|e| e.to_string())?;
    let parse = branch::make("parsebin")?;
    let mux = branch::make(muxer)?;
    pipeline.add_many([&src, &parse, &mux]).map_err(|e| e.to_string())?;
    src.link(&parse).map_err(|e| e.to_string())?;
    // only the caps are read here, on the streaming thread; the muxer is asked on this one once the pipeline has
    // stopped (requesting its pads while parsebin's threads and a state change run races inside the muxer)
    let found: Arc<Mutex<Vec<gst::Caps>>> = Arc::default();
    let pads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (f, added) = (found.clone(), pads.clone());
    parse.connect_pad_added(move |_, pad| {
        // every stream is consumed, so the demuxer goes on until all are found
        drop_buffers(pad);
        f.lock().unwrap().push(pad.current_caps().unwrap_or_else(|| pad.query_caps(None)));
        added.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let bus = pipeline.bus().ok_or("no bus")?;
    let _ = pipeline.set_state(gst::State::Paused);
    let streams_found = wait_for_streams(&bus, &pads);
    let _ = pipeline.set_state(gst::State::Null);
    streams_found?;
    for caps in found.lock().unwrap().iter() {
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        if streams::copied_kind(&name) == Some("audio") && !streams::muxer_takes(&mux, caps) {
            return Err(format!(
                "the audio stream ({name}) cannot be copied into {} without re-encoding; use .mkv",
                out.display()
            ));
        }
    }
    Ok(())
}
