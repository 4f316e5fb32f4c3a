// SPDX-License-Identifier: MPL-2.0
//! A video into a container, as segments: the source's frames are read once (`timeline`), cut into segments
//! (`--segment-frames`, or about two minutes each), each upscaled by a worker process of its own (`worker`: `--jobs`
//! at a time, spread over `--devices`) into the work folder (`manifest`), then joined by one final mux (`merge`).
//! The steps one by one (`vfupscale segments …`, for Ray) are in `steps`; the worker processes in `workers`.
//! A plain run is the same with one job, so a run stopped any way (Ctrl+C, a crash, `kill -9`, a power cut) and
//! started again with the same command keeps every segment that verifies and does only the rest.
//!
//! Workers run in their own process group (signals reach them through this process only, once each) and die with
//! this process (`PR_SET_PDEATHSIG`). A first signal lets them finish the frames in flight; the output then holds
//! every frame done from the first on, and the finished segments stay for the next run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::RunArgs;
use crate::job::{VideoJob, VideoOutput};
use crate::manifest::{self, Manifest, PathText, Request, SegmentPlan, SegmentRecord, SourceId, WorkLock};
use crate::merge::{self, Merge};
use crate::pipeline::{self, Display, Failure, Report};
use crate::progress::Progress;
use crate::range::{FrameRange, Range, Span};
use crate::timeline::{self, Timeline, Unusable};
use crate::workers::{Relay, Worker, spawn};
use crate::{output, report, signals};

/// A segment covers about this much of the video by default.
const AUTO_SEGMENT_SECONDS: f64 = 120.0;

/// Runs a video job: segmented into a container; an image sequence (or a source without timestamps) by one
/// pipeline, as a whole or for `--frames`.
pub fn run_video(job: &VideoJob, args: &RunArgs, display: Display) -> Result<Report, Failure> {
    let seg = &args.segments;
    if let Some(reason) = why_not_segmented(job, args) {
        if seg.jobs.is_some_and(|j| j > 1) || !seg.devices.is_empty() {
            return Err(Failure::Error(reason));
        }
        let mut job = job.clone();
        if let Some(frames) = seg.frames {
            job.range = span_of(&job.input, frames)?;
        }
        return pipeline::run(&job, display);
    }
    let out = job.output_path();
    if let VideoOutput::File { muxer, .. } = &job.output {
        // before the work folder exists, so a refusal leaves nothing behind
        merge::check_copies(&job.input, muxer, &out)?;
    }
    let work = manifest::work_dir(&out);
    match prepare(job, args, &work) {
        Ok(prepared) => execute(job, args, display, &work, prepared),
        Err(Prepared::Direct) => {
            if seg.frames.is_some() || seg.jobs.is_some_and(|j| j > 1) || !seg.devices.is_empty() {
                return Err(Failure::Error(format!(
                    "{}: its video frames carry no timestamps (a raw stream?): --frames, --jobs and --devices need \
                     a container such as .mkv or .mp4",
                    job.input.display()
                )));
            }
            pipeline::run(job, display)
        }
        Err(Prepared::Failed(e)) => Err(Failure::Error(e)),
        Err(Prepared::Interrupted(signal)) => Err(Failure::Interrupted { signal, aborted: false }),
    }
}

/// Why a container outside the checked ones is not segmented.
const NOT_JOINED: &str = "segmented runs (--jobs, --devices, resume) are checked for .mkv, .webm, .mp4 \
                          and .mov outputs only: write one of those, or run without --jobs/--devices";

/// Why temporal stabilisation runs as one pipeline (no segments, so no resume either).
const NOT_WITH_TEMPORAL: &str = "--temporal-stability carries each frame's history into the next, which \
                          segments would restart: it runs as one pipeline, without --jobs/--devices";

/// Whether the final mux can join segments into this container (checked: Matroska, WebM, MP4 and QuickTime).
fn joins_segments(muxer: &str) -> bool {
    matches!(muxer, "matroskamux" | "webmmux" | "mp4mux" | "qtmux")
}

/// Why `job` is not run as segments (None: it is), for every way of running them: the command's own runs and the
/// `segments` steps a distributed driver takes.
pub(crate) fn why_not_segmented(job: &VideoJob, args: &RunArgs) -> Option<String> {
    match &job.output {
        VideoOutput::File { .. } if args.model.temporal_stability > 0.0 => Some(NOT_WITH_TEMPORAL.into()),
        VideoOutput::File { muxer, .. } if joins_segments(muxer) => None,
        VideoOutput::File { .. } => Some(format!("{}: {NOT_JOINED}", job.output_path().display())),
        _ => Some("segmented runs (--jobs, --devices, segments plan) need a video file as output".into()),
    }
}

/// Frames `range` of `input`, for one pipeline.
fn span_of(input: &Path, range: FrameRange) -> Result<Range, Failure> {
    let timeline = timeline::read(input)?;
    let (start, end) = range.within(timeline.frames())?;
    let seek = timeline.seek_for(start, timeline.first_decode_from()[start as usize]);
    let pts = timeline.pts[start as usize..end as usize].to_vec();
    Ok(Range::Span(Arc::new(Span { first: start, pts, seek })))
}

pub(crate) fn unusable(e: Unusable) -> String {
    match e {
        Unusable::NoTimestamps => "the video's frames carry no timestamps (a raw stream?)".into(),
        Unusable::Failed(e) => e,
        Unusable::Interrupted(signal) => format!("interrupted by {}", signals::name(signal)),
    }
}

impl From<Unusable> for Failure {
    fn from(e: Unusable) -> Self {
        match e {
            Unusable::Interrupted(signal) => Failure::Interrupted { signal, aborted: false },
            e => Failure::Error(unusable(e)),
        }
    }
}

/// A work folder ready to run: its manifest, the timeline, and the segments already finished.
pub(crate) struct Ready {
    pub manifest: Manifest,
    pub timeline: Timeline,
    pub kept: Vec<SegmentRecord>,
    pub _lock: Option<WorkLock>,
}

pub(crate) enum Prepared {
    /// No timeline: one pipeline from start to end.
    Direct,
    Failed(String),
    /// A signal arrived before the first frame.
    Interrupted(i32),
}

impl From<String> for Prepared {
    fn from(e: String) -> Self {
        Prepared::Failed(e)
    }
}

impl From<Unusable> for Prepared {
    fn from(e: Unusable) -> Self {
        match e {
            Unusable::NoTimestamps => Prepared::Direct,
            Unusable::Failed(e) => Prepared::Failed(e),
            Unusable::Interrupted(signal) => Prepared::Interrupted(signal),
        }
    }
}

/// What the command line asks of this job, as recorded.
fn request(job: &VideoJob, args: &RunArgs) -> Request {
    let VideoOutput::File { encoder, .. } = &job.output else {
        unreachable!("segments are made for video files");
    };
    let (m, s, e) = (&args.model, &args.size, &args.encode);
    Request {
        input: PathText::from(std::path::absolute(&job.input).unwrap_or(job.input.clone()).as_path()),
        output: PathText::from(std::path::absolute(job.output_path()).unwrap_or(job.output_path()).as_path()),
        // the model the job resolved (chosen by size when -m is not given), so every worker loads that one
        model: Some(PathText::from(job.upscale.model.path.as_path())),
        precision: m.precision.to_string(),
        backend: m.backend.to_string(),
        classic_method: m.classic_method.to_string(),
        strength: m.strength,
        fallback: m.fallback.to_string(),
        scale: s.scale,
        width: s.width,
        height: s.height,
        size: s.size,
        encoder: encoder.encoder.factory().to_string(),
        crf: e.crf,
        bitrate: e.bitrate,
        preset: e.preset.clone(),
        encoder_options: e.encoder_options.clone(),
        chroma: if e.chroma == crate::cli::Chroma::Yuv444 { "444" } else { "420" }.into(),
        bit_depth: e.bit_depth,
        frames: args.segments.frames.map(|f| f.to_string()),
        segment_frames: args.segments.segment_frames,
    }
}

/// Makes or resumes the work folder of `job`; one this call made is removed again if it fails.
pub(crate) fn prepare(job: &VideoJob, args: &RunArgs, work: &Path) -> Result<Ready, Prepared> {
    let existed = work.exists();
    let result = prepare_in(job, args, work);
    if let Err(Prepared::Failed(_) | Prepared::Interrupted(_)) = &result
        && !existed
    {
        let _ = std::fs::remove_dir_all(work);
    }
    result
}

fn prepare_in(job: &VideoJob, args: &RunArgs, work: &Path) -> Result<Ready, Prepared> {
    let seg = &args.segments;
    let fresh = request(job, args);
    let existed = manifest::manifest_path(work).exists();
    std::fs::create_dir_all(work).map_err(|e| format!("cannot write in {}: {e}", work.display()))?;
    let lock = WorkLock::take(work)?;
    output::clean_stale(work);
    if existed && !seg.no_resume {
        match resume(job, work, &fresh) {
            Ok(Some((manifest, timeline, kept))) => {
                return Ok(Ready { manifest, timeline, kept, _lock: Some(lock) });
            }
            Ok(None) => {}
            Err(e) => return Err(Prepared::Failed(e)),
        }
    }
    clear(work)?;
    let timeline = match timeline::read(&job.input) {
        Ok(t) => t,
        Err(e) => {
            drop(lock);
            let _ = std::fs::remove_dir_all(work);
            return Err(e.into());
        }
    };
    let (start, end) = seg.frames.unwrap_or_default().within(timeline.frames())?;
    let jobs = jobs(args);
    let size = seg.segment_frames.unwrap_or_else(|| auto_segment_frames(&timeline, start, end, jobs));
    let timeline_json = manifest::to_json(&timeline);
    manifest::write_atomic(&manifest::timeline_path(work), &timeline_json)?;
    let model = crate::models::Model::resolve(args.model.model.as_deref())?;
    let model_path = if job.upscale.model.path.exists() { &job.upscale.model.path } else { &model.path };
    let manifest = Manifest {
        version: manifest::VERSION,
        request: fresh,
        source: SourceId::of(&job.input)?,
        model_sha256: manifest::sha256_file(model_path)?.0,
        timeline_sha256: manifest::sha256_bytes(&timeline_json),
        start,
        end,
        segments: plan_segments(&timeline, start, end, size),
        partial: None,
    };
    manifest.save(work)?;
    Ok(Ready { manifest, timeline, kept: Vec::new(), _lock: Some(lock) })
}

/// The interrupted run's work folder, if it was for this command: its manifest, timeline and verified segments.
#[allow(clippy::type_complexity)]
fn resume(
    job: &VideoJob,
    work: &Path,
    fresh: &Request,
) -> Result<Option<(Manifest, Timeline, Vec<SegmentRecord>)>, String> {
    let manifest = match Manifest::load(work) {
        Ok(m) => m,
        Err(e) => {
            report::note(&format!("cannot resume ({e}): starting over"));
            return Ok(None);
        }
    };
    let out = job.output_path();
    let mut old = manifest.request.clone();
    if fresh.segment_frames.is_none() {
        old.segment_frames = None; // the plan made then stands
    }
    let diff = manifest::differences(&old, fresh);
    if !diff.is_empty() {
        return Err(format!(
            "{}: an interrupted run with other settings left {} ({}): run it with its settings to resume, or add \
             --no-resume to start over",
            out.display(),
            work.display(),
            diff.join(", ")
        ));
    }
    if SourceId::of(&job.input)? != manifest.source {
        return Err(format!(
            "{}: changed since the interrupted run that left {}: add --no-resume to start over",
            job.input.display(),
            work.display()
        ));
    }
    let (model_sha, _) = manifest::sha256_file(&job.upscale.model.path)?;
    if model_sha != manifest.model_sha256 {
        return Err(format!(
            "model {}: changed since the interrupted run that left {}: add --no-resume to start over",
            job.upscale.model.path.display(),
            work.display()
        ));
    }
    let timeline = match manifest.timeline(work) {
        Ok(t) => t,
        Err(e) => {
            report::note(&format!("cannot resume ({e}): starting over"));
            return Ok(None);
        }
    };
    let mut kept = Vec::new();
    for plan in &manifest.segments {
        let (file, record) = manifest::segment_paths(work, plan.index, false);
        if !record.exists() {
            continue;
        }
        match manifest.verified_segment(work, plan.index) {
            Ok(r) => kept.push(r),
            Err(e) => {
                report::warn(&format!(
                    "segment {} (frames {}:{}) is done again: {e}",
                    plan.index, plan.start, plan.end
                ));
                let _ = std::fs::remove_file(&file);
                let _ = std::fs::remove_file(&record);
            }
        }
    }
    Ok(Some((manifest, timeline, kept)))
}

/// Empties a work folder (its lock stays).
fn clear(work: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(work).map_err(|e| format!("{}: {e}", work.display()))?.flatten() {
        if entry.file_name() != "lock" {
            std::fs::remove_file(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn jobs(args: &RunArgs) -> u32 {
    let seg = &args.segments;
    seg.jobs.unwrap_or(seg.devices.len().max(1) as u32)
}

/// About two minutes of video per segment; with several jobs, at least two segments per job.
fn auto_segment_frames(t: &Timeline, start: u64, end: u64, jobs: u32) -> u64 {
    let frames = end - start;
    let last = (end - 1) as usize;
    let seconds = (t.pts[last] + t.duration[last]).saturating_sub(t.pts[start as usize]) as f64 / 1e9;
    let by_time = if seconds > 0.0 { (frames as f64 * AUTO_SEGMENT_SECONDS / seconds).ceil() as u64 } else { frames };
    let by_jobs = if jobs > 1 { frames.div_ceil(2 * jobs as u64) } else { frames };
    by_time.min(by_jobs).max(1)
}

/// Segments of `size` frames over `start..end`, each with the seek that decodes it exactly.
pub fn plan_segments(t: &Timeline, start: u64, end: u64, size: u64) -> Vec<SegmentPlan> {
    let first_decode = t.first_decode_from();
    (start..end)
        .step_by(size as usize)
        .enumerate()
        .map(|(index, s)| SegmentPlan {
            index,
            start: s,
            end: (s + size).min(end),
            seek: t.seek_for(s, first_decode[s as usize]),
        })
        .collect()
}

/// How the workers ended.
#[derive(Default)]
struct Ended {
    error: Option<String>,
    signal: Option<i32>,
}

fn execute(job: &VideoJob, args: &RunArgs, display: Display, work: &Path, ready: Ready) -> Result<Report, Failure> {
    let started = Instant::now();
    let Ready { mut manifest, timeline, kept, _lock } = ready;
    let out = job.output_path();
    let total = manifest.end - manifest.start;
    let kept_frames: u64 = kept.iter().map(|r| r.frames).sum();
    let kept_indices: HashSet<usize> = kept.iter().map(|r| r.index).collect();
    if !kept.is_empty() {
        report::note(&format!(
            "resuming: {} of {} segments are done and verified ({} of {total} frames); upscaling the rest",
            kept.len(),
            manifest.segments.len(),
            kept_frames
        ));
    }
    let mut pending: std::collections::VecDeque<usize> =
        manifest.segments.iter().map(|s| s.index).filter(|i| !kept_indices.contains(i)).collect();
    let mut progress = Progress::new(display.mode, display.quiet, out.display().to_string());
    progress.set_kept(kept_frames);
    let progress = Arc::new(Mutex::new(progress));
    let relay = Arc::new(Relay { progress: progress.clone(), seen: Mutex::default() });
    let devices: Vec<u32> =
        if args.segments.devices.is_empty() { vec![args.model.device] } else { args.segments.devices.clone() };
    let slots = jobs(args) as usize;
    let running: Arc<Mutex<Vec<Worker>>> = Arc::default();
    let _signals = {
        let running = running.clone();
        signals::on_signal(move |_| {
            let signal = signals::received().unwrap_or(libc::SIGINT);
            for w in running.lock().unwrap().iter() {
                // SAFETY: kill sends a signal to a child this process started and has not reaped yet.
                unsafe { libc::kill(w.child.id() as i32, signal) };
            }
        })
    };
    let mut done_frames = kept_frames;
    let mut finished: Vec<SegmentRecord> = kept;
    let mut ended = Ended::default();
    let mut next_slot = 0usize;
    loop {
        if signals::count() == 0 && ended.error.is_none() {
            while running.lock().unwrap().len() < slots
                && let Some(index) = pending.pop_front()
            {
                let device = devices[next_slot % devices.len()];
                next_slot += 1;
                match spawn(work, index, device, display.quiet, &relay) {
                    Ok(w) => running.lock().unwrap().push(w),
                    Err(e) => ended.error = Some(e),
                }
            }
        }
        let mut exited = Vec::new();
        {
            let mut r = running.lock().unwrap();
            let mut i = 0;
            while i < r.len() {
                match r[i].child.try_wait() {
                    Ok(Some(status)) => exited.push((r.remove(i), status)),
                    _ => i += 1,
                }
            }
        }
        for (worker, status) in exited {
            // the reader threads have the last lines once the pipes close
            std::thread::sleep(Duration::from_millis(20));
            match status.code() {
                Some(0) => match manifest.verified_segment(work, worker.index) {
                    Ok(record) => {
                        done_frames += record.frames;
                        finished.push(record);
                    }
                    Err(e) => ended.error = ended.error.or(Some(e)),
                },
                Some(code) if code > 128 && signals::count() > 0 => ended.signal = signals::received(),
                _ => {
                    let plan = &manifest.segments[worker.index];
                    let why = worker.error.lock().unwrap().take().unwrap_or_else(|| match status.code() {
                        Some(c) => {
                            format!("the worker for frames {}:{} failed (exit status {c})", plan.start, plan.end)
                        }
                        None => {
                            use std::os::unix::process::ExitStatusExt;
                            let sig = status.signal().unwrap_or(0);
                            format!("the worker for frames {}:{} crashed (signal {sig})", plan.start, plan.end)
                        }
                    });
                    if ended.error.is_none() {
                        ended.error = Some(why);
                        // the others finish their frames in flight; their segments are not needed now
                        for w in running.lock().unwrap().iter() {
                            // SAFETY: as above, a child of this process.
                            unsafe { libc::kill(w.child.id() as i32, libc::SIGTERM) };
                        }
                    }
                }
            }
        }
        let live: u64 = running.lock().unwrap().iter().map(|w| w.frames.load(Ordering::Relaxed)).sum();
        progress.lock().unwrap().update(done_frames + live, Some(total));
        let idle = running.lock().unwrap().is_empty();
        if idle && (pending.is_empty() || signals::count() > 0 || ended.error.is_some()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if ended.signal.is_none() {
        ended.signal = signals::received();
    }
    finished.sort_by_key(|r| r.index);
    let result = conclude(job, work, &mut manifest, &timeline, &finished, &ended, &progress, started);
    let error = match &result {
        Ok(_) => None,
        Err(Failure::Error(e)) => Some(e.clone()),
        Err(_) => Some("interrupted".into()),
    };
    progress.lock().unwrap().finish(error.as_deref());
    result
}

/// After the workers: the output (whole, or what was done before a signal), or the error; the work folder removed
/// once the output is complete, kept while it holds finished segments.
#[allow(clippy::too_many_arguments)]
fn conclude(
    job: &VideoJob,
    work: &Path,
    manifest: &mut Manifest,
    timeline: &Timeline,
    finished: &[SegmentRecord],
    ended: &Ended,
    progress: &Arc<Mutex<Progress>>,
    started: Instant,
) -> Result<Report, Failure> {
    let out = job.output_path();
    let VideoOutput::File { muxer, .. } = &job.output else {
        unreachable!("checked by run_video");
    };
    let partials = |keep: bool| {
        for plan in &manifest.segments {
            let (file, record) = manifest::segment_paths(work, plan.index, true);
            if !keep {
                let _ = std::fs::remove_file(file);
                let _ = std::fs::remove_file(record);
            }
        }
    };
    let keep_or_remove = |what: &str| {
        if finished.is_empty() {
            let _ = std::fs::remove_dir_all(work);
        } else {
            report::note(&format!(
                "{what}; {} finished segments are kept in {}: the same command goes on from there (--no-resume \
                 starts over)",
                finished.len(),
                work.display()
            ));
        }
    };
    if let Some(e) = &ended.error {
        partials(false);
        keep_or_remove("stopped");
        return Err(Failure::Error(e.clone()));
    }
    let complete = finished.len() == manifest.segments.len();
    let mut segments: Vec<(PathBuf, SegmentRecord)> = Vec::new();
    for plan in &manifest.segments {
        match finished.iter().find(|r| r.index == plan.index) {
            Some(r) => segments.push((manifest::segment_paths(work, plan.index, false).0, r.clone())),
            None => {
                let (file, record) = manifest::segment_paths(work, plan.index, true);
                if let Ok(r) = manifest::load_record(&record)
                    && r.frames > 0
                {
                    segments.push((file, r));
                }
                break;
            }
        }
    }
    let signal = ended.signal.filter(|_| !complete);
    if let Some(signal) = signal {
        let aborted = signals::count() >= 2;
        if aborted || segments.is_empty() {
            partials(false);
            keep_or_remove(if aborted { "aborted" } else { "interrupted" });
            return Err(Failure::Interrupted { signal, aborted });
        }
    }
    let to_the_end = complete && manifest.end == timeline.frames();
    // what the summary says of the run: from a segment that ran (a partial one where a signal came before any
    // segment finished)
    let mut facts = finished.first().or(segments.first().map(|(_, r)| r)).map(|r| r.facts.clone()).unwrap_or_default();
    let merged = Merge {
        source: &job.input,
        output: &out,
        muxer,
        timeline,
        segments,
        to_the_end,
        abort_at_signal: signals::count() + 1,
    }
    .run();
    partials(false);
    let merged = match merged {
        Ok(m) => m,
        Err(e) => {
            keep_or_remove("the final mux failed");
            return Err(Failure::Error(e));
        }
    };
    if complete {
        let _ = std::fs::remove_dir_all(work);
    } else {
        let meta = std::fs::metadata(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        manifest.partial = Some(manifest::PartialOutput {
            bytes: meta.len(),
            modified_ns: SourceId::of(&out)?.modified_ns,
            frames: merged.frames,
        });
        manifest.save(work)?;
        keep_or_remove("interrupted");
    }
    let skipped: Vec<u64> = finished.iter().flat_map(|r| r.skipped.iter().copied()).collect();
    if let (Some(first), Some(last)) = (skipped.first(), skipped.last()) {
        report::warn(&format!(
            "{}: {} of the frames it lists could not be decoded and are left out (frames {first} to {last})",
            job.input.display(),
            skipped.len()
        ));
    }
    if complete && manifest.start == 0 && to_the_end {
        report::check_complete(job, merged.frames, 0, &progress.lock().unwrap());
    }
    facts.copied = merged.copied.clone();
    Ok(Report {
        frames: merged.frames,
        started,
        first_frame: None,
        ended: Instant::now(),
        stopped_by: signal,
        files: vec![out],
        facts,
        outcome: Default::default(),
        video_caps: None,
    })
}

/// Whether `path` is the output an interrupted run of this project wrote (it may be replaced without `-y`).
pub fn is_partial_output(path: &Path) -> bool {
    let Ok(m) = Manifest::load(&manifest::work_dir(path)) else {
        return false;
    };
    let Some(partial) = m.partial else {
        return false;
    };
    SourceId::of(path).is_ok_and(|s| s.bytes == partial.bytes && s.modified_ns == partial.modified_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(frames: u64, gop: u64) -> Timeline {
        let packets: Vec<timeline::Packet> = (0..frames)
            .map(|i| timeline::Packet { pts: Some(i * 40_000_000), duration: None, keyframe: i % gop == 0 })
            .collect();
        Timeline::from_packets(&packets, 0, 0).unwrap()
    }

    #[test]
    fn segments_cover_the_range_and_seek_to_their_keyframes() {
        let t = timeline(100, 10);
        let plan = plan_segments(&t, 5, 100, 30);
        let bounds: Vec<(u64, u64)> = plan.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(bounds, [(5, 35), (35, 65), (65, 95), (95, 100)]);
        assert_eq!(plan[0].seek, None, "the first keyframe is the start of the file");
        assert_eq!(plan[1].seek, Some(30 * 40_000_000));
        assert_eq!(plan[3].seek, Some(90 * 40_000_000));
    }

    #[test]
    fn automatic_segments_last_about_two_minutes_and_feed_every_job() {
        let t = timeline(10_000, 25); // 400 s at 25 fps
        assert_eq!(auto_segment_frames(&t, 0, 10_000, 1), 3_000);
        assert_eq!(auto_segment_frames(&t, 0, 10_000, 4), 1_250);
        assert_eq!(auto_segment_frames(&t, 0, 600, 1), 600);
        assert_eq!(auto_segment_frames(&t, 0, 3, 4), 1);
    }
}
