// SPDX-License-Identifier: MPL-2.0
//! `vfupscale segments run --work DIR --index K`: one segment of a planned run, in a process of its own (the local
//! run starts one per job; Ray runs one per task). The job is rebuilt from the manifest's request, its frames are
//! known from the timeline, and the segment is written as `seg-K.mkv` (video only: the final mux copies the other
//! streams once), read back, hashed, and recorded in `seg-K.json`. After a signal the frames done are kept as
//! `seg-K.partial.mkv` (with its record), for the interrupted run's output.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Chroma, EncodeArgs, EncoderChoice, ModelArgs, SegmentRunArgs, SizeArgs};
use crate::job::{Job, VideoJob, VideoOutput};
use crate::manifest::{self, Manifest, Request, SegmentRecord};
use crate::pipeline::{self, Display, Failure};
use crate::plan::{Common, encoder_for, video_job};
use crate::range::{Range, Span};
use crate::{media, merge, signals};

/// The segment files' container: it holds every codec the encoders make.
pub const SEGMENT_MUXER: &str = "matroskamux";

pub fn run(args: &SegmentRunArgs) -> ExitCode {
    crate::report::set_quiet(args.quiet);
    crate::progress::set_json_every(Duration::from_millis(args.progress_ms));
    match segment(args) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(signal)) => ExitCode::from(signals::exit_status(signal)),
        Err(Failure::Interrupted { signal, .. }) => ExitCode::from(signals::exit_status(signal)),
        Err(Failure::Error(e)) => {
            eprintln!("vfupscale: error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::SeekLandedLate) => ExitCode::FAILURE,
    }
}

impl Request {
    pub fn model_args(&self, device: u32) -> Result<ModelArgs, String> {
        Ok(ModelArgs {
            model: self.model.as_ref().map(|m| m.path()),
            precision: self.precision.parse().map_err(|e| format!("{e}"))?,
            device,
            backend: self.backend.parse().map_err(|e| format!("{e}"))?,
            classic_method: self.classic_method.parse().map_err(|e| format!("{e}"))?,
            strength: self.strength,
            fallback: self.fallback.parse().map_err(|e| format!("{e}"))?,
            // segmented runs refuse temporal stabilisation: its history would restart at every segment
            temporal_stability: 0.0,
        })
    }

    pub fn size_args(&self) -> SizeArgs {
        SizeArgs { scale: self.scale, width: self.width, height: self.height, size: self.size }
    }

    pub fn encode_args(&self) -> Result<EncodeArgs, String> {
        use clap::ValueEnum;
        Ok(EncodeArgs {
            encoder: EncoderChoice::from_str(&self.encoder, true)
                .map_err(|_| format!("the plan's encoder {} is not one vfupscale knows", self.encoder))?,
            crf: self.crf,
            bitrate: self.bitrate,
            preset: self.preset.clone(),
            encoder_options: self.encoder_options.clone(),
            chroma: Chroma::from_str(&self.chroma, true).map_err(|_| format!("chroma {}?", self.chroma))?,
            bit_depth: self.bit_depth,
        })
    }
}

/// The job of segment `index`, written to `file`.
pub fn segment_job(m: &Manifest, work: &Path, index: usize, device: u32, file: &Path) -> Result<VideoJob, String> {
    let plan = m.segments.get(index).ok_or_else(|| format!("the plan has no segment {index}"))?;
    let timeline = m.timeline(work)?;
    let request = &m.request;
    let input = request.input.path();
    if manifest::SourceId::of(&input)? != m.source {
        return Err(format!("{}: changed since the run was planned", input.display()));
    }
    let common = Common::new(&request.model_args(device)?, &request.size_args())?;
    let (sha, _) = manifest::sha256_file(&common.model.path)?;
    if sha != m.model_sha256 {
        return Err(format!(
            "model {} here is not the file the run was planned with (SHA-256 {sha}, planned {})",
            common.model.path.display(),
            m.model_sha256
        ));
    }
    let media = media::probe(&input)?;
    let encoder = encoder_for(&request.encode_args()?, common.gpu, media.video.bit_depth, SEGMENT_MUXER)?;
    let output = VideoOutput::File { path: file.to_path_buf(), muxer: SEGMENT_MUXER, encoder };
    let Job::Video(mut job) = video_job(&input, media, &common, output)? else {
        unreachable!("a video job");
    };
    job.range = Range::Span(Arc::new(Span {
        first: plan.start,
        pts: timeline.pts[plan.start as usize..plan.end as usize].to_vec(),
        seek: plan.seek,
    }));
    job.copy_streams = false;
    Ok(*job)
}

/// Runs the segment; `Some(signal)` when a signal cut it short (what was done is the partial segment).
fn segment(args: &SegmentRunArgs) -> Result<Option<i32>, Failure> {
    let started = Instant::now();
    let work = &args.work.work;
    let m = Manifest::load(work)?;
    let index = args.index;
    let fresh = work.join(format!("seg-{index:05}.new.mkv"));
    let job = segment_job(&m, work, index, args.device.unwrap_or(0), &fresh)?;
    let report = pipeline::run(&job, Display { mode: args.progress, quiet: args.quiet })?;
    let plan = &m.segments[index];
    let outcome = &report.outcome;
    let partial = report.stopped_by.is_some();
    let mut skipped = outcome.skipped.clone();
    let reached = if partial {
        outcome.reached
    } else {
        // the source ended before the segment did: the frames it announced but did not give are left out
        skipped.extend(outcome.reached..plan.end);
        plan.end
    };
    let record = finish(&fresh, &m, index, reached, skipped, &report, started)?;
    let (file, record_path) = manifest::segment_paths(work, index, partial);
    std::fs::rename(&fresh, &file).map_err(|e| format!("{}: {e}", file.display()))?;
    manifest::sync_dir(work)?;
    manifest::write_atomic(&record_path, &manifest::to_json(&record))?;
    Ok(report.stopped_by)
}

/// Reads the written segment back (one packet per frame), flushes and hashes it: its record.
#[allow(clippy::too_many_arguments)]
fn finish(
    file: &Path,
    m: &Manifest,
    index: usize,
    reached: u64,
    skipped: Vec<u64>,
    report: &pipeline::Report,
    started: Instant,
) -> Result<SegmentRecord, String> {
    let mut pts = Vec::new();
    merge::for_each_packet(file, |b| {
        pts.push(b.pts().map(|t| t.nseconds()).ok_or("a segment packet without a timestamp")?);
        Ok(())
    })?;
    if pts.len() as u64 != report.frames {
        return Err(format!("{}: {} packets for {} upscaled frames", file.display(), pts.len(), report.frames));
    }
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != pts.len() {
        return Err(format!("{}: two frames less than 1 ms apart cannot be told apart", file.display()));
    }
    let order = pts.iter().map(|t| sorted.binary_search(t).expect("from the same list") as u64).collect();
    manifest::sync_file(file)?;
    let (sha256, bytes) = manifest::sha256_file(file)?;
    let plan = &m.segments[index];
    let caps = report.video_caps.as_ref().ok_or("the encoded video's caps are not known")?.to_string();
    Ok(SegmentRecord {
        index,
        start: plan.start,
        end: plan.end,
        reached,
        frames: report.frames,
        skipped,
        order,
        caps,
        bytes,
        sha256,
        request_sha256: m.request_sha256(),
        facts: report.facts.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
