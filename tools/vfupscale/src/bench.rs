// SPDX-License-Identifier: MPL-2.0
//! `vfupscale bench -i FILE [--frames N]`: the user's own file through the job's pipeline three times, ending
//! after decoding, after upscaling, and after encoding and muxing (written nowhere), each for the first N frames;
//! the throughput of each after its first frame (model loading and encoder start excluded), and which stage bounds
//! the whole run. Runs wherever the command runs (CPU or GPU).

use std::process::ExitCode;

use crate::cli::BenchArgs;
use crate::job::{Job, Stage, VideoOutput};
use crate::pipeline::{self, Display, Failure};
use crate::plan::{Common, encoder_for, video_job};
use crate::range::Range;
use crate::summary::dims;
use crate::{media, report, signals};

/// A stage is said to bound the run when adding it lowers the throughput by more than this fraction.
const SLOWER: f64 = 0.10;

struct Timing {
    frames: u64,
    fps: f64,
}

pub fn run(args: &BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale: error: {e}");
            signals::received().map_or(ExitCode::FAILURE, |s| ExitCode::from(signals::exit_status(s)))
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    // the table says what ran; no start lines
    report::set_quiet(true);
    std::fs::metadata(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let media = media::probe(&args.input)?;
    let common = Common::new(&args.model, &args.size)?;
    let muxer = "matroskamux";
    let encoder = encoder_for(&args.encode, common.gpu, media.video.bit_depth, muxer)?;
    let mut timings = Vec::new();
    for stage in [Stage::Decode, Stage::Upscale, Stage::Encode] {
        let output = VideoOutput::Discard { stage, encoder: encoder.clone(), muxer };
        let Job::Video(mut job) = video_job(&args.input, media.clone(), &common, output)? else {
            unreachable!("a video job");
        };
        job.range = Range::First(args.frames);
        let r = match pipeline::run(&job, Display { mode: crate::cli::ProgressMode::None, quiet: true }) {
            Ok(r) => r,
            Err(Failure::Error(e)) => return Err(e),
            Err(Failure::SeekLandedLate) => return Err("the seek landed after the range's start".into()),
            Err(Failure::Interrupted { signal, .. }) => {
                return Err(format!("interrupted by {}", signals::name(signal)));
            }
        };
        let first = r.first_frame.unwrap_or(r.started);
        let steady = (r.ended - first).as_secs_f64();
        // frames after the first, over the time after it
        let fps = if r.frames > 1 && steady > 0.0 { (r.frames - 1) as f64 / steady } else { 0.0 };
        let (name, detail) = match stage {
            Stage::Decode => ("decode", r.facts.decoder.clone()),
            Stage::Upscale => (
                "decode + upscale",
                format!(
                    "backend {}, {} → {}, model {}",
                    report::describe_backend(&r.facts),
                    dims(r.facts.input),
                    dims(r.facts.output),
                    job.upscale.model.name
                ),
            ),
            Stage::Encode => ("decode + upscale + encode", r.facts.encoder.clone()),
        };
        println!(
            "{name:<26} {:>6} frames {fps:>9.2} fps {:>9.2} ms/frame  wall {:>6.2} s  {detail}",
            r.frames,
            if fps > 0.0 { 1000.0 / fps } else { 0.0 },
            (r.ended - r.started).as_secs_f64()
        );
        timings.push(Timing { frames: r.frames, fps });
    }
    println!("{}", verdict(&timings));
    Ok(())
}

fn verdict(t: &[Timing]) -> String {
    let [decode, upscale, encode] = t else {
        return String::new();
    };
    if decode.frames < 2 || upscale.fps == 0.0 {
        return "too few frames to tell which stage bounds the run (use a longer file or more --frames)".into();
    }
    let bound = if encode.fps < upscale.fps * (1.0 - SLOWER) {
        "encoding"
    } else if upscale.fps < decode.fps * (1.0 - SLOWER) {
        "upscaling"
    } else {
        "decoding"
    };
    format!("bounded by {bound}: the whole run goes at {:.2} fps", encode.fps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(fps: f64) -> Timing {
        Timing { frames: 100, fps }
    }

    #[test]
    fn the_slowest_stage_added_bounds_the_run() {
        let v = |d, u, e| verdict(&[t(d), t(u), t(e)]);
        assert!(v(400.0, 8.0, 7.9).starts_with("bounded by upscaling"));
        assert!(v(400.0, 100.0, 20.0).starts_with("bounded by encoding"));
        assert!(v(50.0, 49.0, 48.0).starts_with("bounded by decoding"));
    }
}
