// SPDX-License-Identifier: MPL-2.0
//! `vfupscale segments plan | run | merge`: a segmented run step by step, for drivers that spread the segments over
//! machines (python/vfupscale_ray). The plan prints the work folder and which segments are done; `run` is the
//! worker (`worker`); `merge` joins the finished segments like the local run's final mux.

use std::collections::HashSet;
use std::process::ExitCode;

use crate::cli::{RunArgs, SegmentsCommand, WorkArgs};
use crate::job::VideoOutput;
use crate::manifest::{self, Manifest, WorkLock};
use crate::merge::{self, Merge};
use crate::segments::{Prepared, prepare, unusable, why_not_segmented};
use crate::timeline::Unusable;
use crate::{output, report, signals};

/// `vfupscale segments …`.
pub fn command(command: &SegmentsCommand) -> ExitCode {
    let result = match command {
        SegmentsCommand::Plan(args) => plan_command(args),
        SegmentsCommand::Run(args) => return crate::worker::run(args),
        SegmentsCommand::Merge(args) => merge_command(args),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vfupscale: error: {e}");
            signals::received().map_or(ExitCode::FAILURE, |s| ExitCode::from(signals::exit_status(s)))
        }
    }
}

/// Plans (or finds) the run of one video into a file; the plan as JSON.
fn plan_command(args: &RunArgs) -> Result<serde_json::Value, String> {
    report::set_quiet(true);
    let jobs = crate::plan::plan(args)?;
    let [crate::job::Job::Video(job)] = jobs.as_slice() else {
        return Err("segments plan takes one video and one output file".into());
    };
    if let Some(reason) = why_not_segmented(job, args) {
        return Err(reason);
    }
    // before the work folder exists, so a refusal leaves nothing behind
    merge::check_copies(
        &job.input,
        match &job.output {
            VideoOutput::File { muxer, .. } => muxer,
            _ => unreachable!("checked above"),
        },
        &job.output_path(),
    )?;
    let work = manifest::work_dir(&job.output_path());
    let ready = match prepare(job, args, &work) {
        Ok(r) => r,
        Err(Prepared::Direct) => return Err(format!("{}: {}", job.input.display(), unusable(Unusable::NoTimestamps))),
        Err(Prepared::Failed(e)) => return Err(e),
        Err(Prepared::Interrupted(signal)) => return Err(unusable(Unusable::Interrupted(signal))),
    };
    let done: HashSet<usize> = ready.kept.iter().map(|r| r.index).collect();
    let segments: Vec<serde_json::Value> = ready
        .manifest
        .segments
        .iter()
        .map(|s| serde_json::json!({"index": s.index, "start": s.start, "end": s.end, "done": done.contains(&s.index)}))
        .collect();
    Ok(serde_json::json!({
        "work_dir": work.to_string_lossy(),
        "output": job.output_path().to_string_lossy(),
        "frames": ready.manifest.end - ready.manifest.start,
        "segments": segments,
    }))
}

/// Joins a planned run's finished segments.
fn merge_command(args: &WorkArgs) -> Result<serde_json::Value, String> {
    let work = &args.work;
    let _lock = WorkLock::take(work)?;
    let manifest = Manifest::load(work)?;
    let timeline = manifest.timeline(work)?;
    let mut segments = Vec::new();
    for plan in &manifest.segments {
        let record = manifest
            .verified_segment(work, plan.index)
            .map_err(|e| format!("segment {} (frames {}:{}) is not finished: {e}", plan.index, plan.start, plan.end))?;
        segments.push((manifest::segment_paths(work, plan.index, false).0, record));
    }
    let source = manifest.request.input.path();
    let out = manifest.request.output.path();
    let muxer =
        output::muxer_for(&out).ok_or_else(|| format!("{}: not a container vfupscale writes", out.display()))?;
    let frames = segments.iter().map(|(_, r)| r.frames).sum::<u64>();
    let merged = Merge {
        source: &source,
        output: &out,
        muxer,
        timeline: &timeline,
        segments,
        to_the_end: manifest.end == timeline.frames(),
        abort_at_signal: 1,
    }
    .run()?;
    std::fs::remove_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(serde_json::json!({
        "output": out.to_string_lossy(),
        "frames": merged.frames,
        "planned_frames": frames,
        "audio_seconds": merged.audio_seconds,
        "copied": merged.copied,
    }))
}
