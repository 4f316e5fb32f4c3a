// SPDX-License-Identifier: MPL-2.0
//! `vfupscale -i … -o …`: plans every job, then runs them one after the other (images share one upscaling
//! pipeline), printing a summary for each. A job that fails is reported and the others go on; a signal finishes the
//! job in progress and skips the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use gst::prelude::*;
use std::time::Instant;

use crate::cli::RunArgs;
use crate::frames::FrameUpscaler;
use crate::job::{ImageJob, Job};
use crate::output::{self, Part};
use crate::pipeline::{self, Display, Failure};
use crate::progress::Progress;
use crate::summary::{count, dims, format_time, human_bytes};
use crate::{imageio, plan, report, signals};

pub fn run(args: &RunArgs) -> ExitCode {
    report::set_quiet(args.quiet);
    let jobs = match plan::plan(args) {
        Ok(jobs) => jobs,
        Err(_) if signals::received().is_some() => return interrupted(0, 0),
        Err(e) => return fail(&e),
    };
    clean_stale(jobs.iter().map(|j| match j {
        Job::Video(v) => output::parent(&v.output_path()).to_path_buf(),
        Job::Image(i) => output::parent(&i.output).to_path_buf(),
    }));
    let display = Display { mode: args.progress, quiet: args.quiet };
    let mut failed = 0;
    let mut images: Option<FrameUpscaler> = None;
    for (done, job) in jobs.iter().enumerate() {
        if signals::received().is_some() {
            return interrupted(done, jobs.len());
        }
        let result = match job {
            Job::Video(v) => match crate::segments::run_video(v, args, display) {
                Ok(r) => {
                    if !args.quiet {
                        summarize_video(v, &r);
                    }
                    if let Some(signal) = r.stopped_by {
                        let files = r.files.first().map_or(String::new(), |f| f.display().to_string());
                        let first = count(r.frames, "frame");
                        report::warn(&format!(
                            "interrupted by {}: {files} holds the first {first}",
                            signals::name(signal)
                        ));
                    }
                    Ok(())
                }
                Err(Failure::Error(e)) => Err(e),
                Err(Failure::SeekLandedLate) => Err("the seek landed after the range's start".into()),
                Err(Failure::Interrupted { signal, aborted }) => {
                    let what = if aborted { "aborted by a second" } else { "interrupted before the first frame by" };
                    eprintln!("vfupscale: {what} {}: {} not written", signals::name(signal), v.output_path().display());
                    return ExitCode::from(signals::exit_status(signal));
                }
            },
            Job::Image(i) => run_image(i, &mut images, display),
        };
        if let Err(e) = result {
            failed += 1;
            let input = job.input().display();
            if jobs.len() > 1 {
                eprintln!("vfupscale: error: {input}: {e}");
            } else {
                eprintln!("vfupscale: error: {e}");
            }
        }
    }
    drop(images);
    if let Some(signal) = signals::received() {
        return ExitCode::from(signals::exit_status(signal));
    }
    match failed {
        0 => ExitCode::SUCCESS,
        n if jobs.len() > 1 => fail(&format!("{} of {} failed", count(n, "job"), jobs.len())),
        _ => ExitCode::FAILURE,
    }
}

/// A signal before job `done` of `total` started.
fn interrupted(done: usize, total: usize) -> ExitCode {
    let signal = signals::received().unwrap_or(libc::SIGINT);
    let left = if done == 0 {
        "nothing written".to_string()
    } else {
        format!("{} not started", count((total - done) as u64, "job"))
    };
    eprintln!("vfupscale: interrupted by {}: {left}", signals::name(signal));
    ExitCode::from(signals::exit_status(signal))
}

fn fail(e: &str) -> ExitCode {
    eprintln!("vfupscale: error: {e}");
    match signals::received() {
        Some(s) => ExitCode::from(signals::exit_status(s)),
        None => ExitCode::FAILURE,
    }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn summarize_video(job: &crate::job::VideoJob, r: &pipeline::Report) {
    let secs = (r.ended - r.started).as_secs_f64();
    let bytes: u64 = r.files.iter().map(|f| file_size(f)).sum();
    let files = if r.files.len() > 1 { format!(" in {}", count(r.files.len() as u64, "file")) } else { String::new() };
    eprintln!(
        "{}: {} in {} ({:.2} fps), {}; {}{files}",
        job.output_path().display(),
        count(r.frames, "frame"),
        format_time(secs),
        r.frames as f64 / secs.max(1e-9),
        r.facts.describe(job),
        human_bytes(bytes)
    );
}

/// Upscales one image, reusing the frame pipeline of earlier images when the model and settings are the same.
fn run_image(job: &ImageJob, upscaler: &mut Option<FrameUpscaler>, display: Display) -> Result<(), String> {
    let started = Instant::now();
    let part = Part::file(&job.output)?;
    let input_format = crate::output::ImageFormat::from_path(&job.input).ok_or("not an image name")?;
    let frame = imageio::read(&job.input, input_format)?;
    if upscaler.as_ref().is_none_or(|u| !u.runs(&job.upscale)) {
        *upscaler = None;
        *upscaler = Some(FrameUpscaler::new(&job.upscale)?);
    }
    let up = upscaler.as_mut().expect("made above");
    let mut progress = Progress::new(display.mode, display.quiet, job.output.display().to_string());
    let first = up.upscaler().property::<u32>("scale") == 0;
    let result = up.upscale(&frame, &job.upscale);
    progress.update(u64::from(result.is_ok()), Some(1));
    progress.finish(result.as_ref().err().map(String::as_str));
    let image = result?;
    let line = report::upscaler_line(&job.upscale, up.upscaler(), &|m| progress.println(m));
    if first {
        report::note(&line);
    }
    imageio::write(&image, frame.has_alpha, job.format, part.path())?;
    part.commit(&job.output)?;
    if !report::quiet() {
        let alpha = match (frame.has_alpha, job.format.has_alpha()) {
            (true, true) => "; alpha scaled bicubically (the model sees RGB)",
            (true, false) => "; alpha dropped (JPEG has none)",
            _ => "",
        };
        eprintln!(
            "{}: {} → {} in {}; model {} (x{}); {}{alpha}",
            job.output.display(),
            dims(frame.image.dimensions()),
            dims(image.dimensions()),
            format_time(started.elapsed().as_secs_f64()),
            job.upscale.model.name,
            job.upscale.model.scale,
            human_bytes(file_size(&job.output))
        );
    }
    Ok(())
}

/// Removes what killed runs left in the output folders.
fn clean_stale(dirs: impl IntoIterator<Item = PathBuf>) {
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if seen.contains(&dir) {
            continue;
        }
        for removed in output::clean_stale(&dir) {
            report::note(&format!("removed {} (left by a run that was killed)", removed.display()));
        }
        seen.push(dir);
    }
}
