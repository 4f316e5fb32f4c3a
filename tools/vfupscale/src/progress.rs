// SPDX-License-Identifier: MPL-2.0
//! Progress while a job runs: an indicatif bar sized to the terminal, plain lines every few seconds when stderr is
//! not a terminal, one JSON object per second on stdout (`frames`, `total`, `fps`, `eta_s`, `done`), or nothing.
//! Messages printed while a bar is shown go through [`Progress::println`] so they do not tear it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;
use crate::summary::format_time;

pub struct Progress {
    mode: Mode,
    label: String,
    start: Instant,
    last: Instant,
    frames: u64,
    total: Option<u64>,
    /// Frames done by an earlier run (resumed): counted, but not in the speed.
    kept: u64,
}

enum Mode {
    Bar(ProgressBar),
    Plain,
    Json,
    None,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Milliseconds between JSON objects: a second for people's scripts; a segment worker reports more often to the run
/// that shows its progress.
static JSON_EVERY_MS: AtomicU64 = AtomicU64::new(1000);

pub fn set_json_every(every: Duration) {
    JSON_EVERY_MS.store(every.as_millis() as u64, Ordering::Relaxed);
}

impl Progress {
    /// `label` names the job (its output) in plain lines and JSON objects.
    pub fn new(mode: ProgressMode, quiet: bool, label: String) -> Progress {
        let mode = match mode {
            _ if quiet => Mode::None,
            ProgressMode::None => Mode::None,
            ProgressMode::Json => Mode::Json,
            ProgressMode::Plain => Mode::Plain,
            ProgressMode::Bar if !std::io::stderr().is_terminal() => Mode::Plain,
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
                // {wide_bar} takes what the terminal's width leaves, so the line never wraps
                let style = ProgressStyle::with_template("{wide_bar} {pos}/{len} frames {msg}")
                    .expect("valid template")
                    .progress_chars("█▉▊▋▌▍▎▏ ");
                bar.set_style(style);
                Mode::Bar(bar)
            }
        };
        let now = Instant::now();
        Progress { mode, label, start: now, last: now, frames: 0, total: None, kept: 0 }
    }

    /// `frames` of the job were done before this run started.
    pub fn set_kept(&mut self, frames: u64) {
        self.kept = frames;
    }

    fn fps(&self) -> f64 {
        let elapsed = self.start.elapsed().as_secs_f64();
        if elapsed > 0.0 { self.frames.saturating_sub(self.kept) as f64 / elapsed } else { 0.0 }
    }

    pub fn update(&mut self, frames: u64, total: Option<u64>) {
        self.frames = frames;
        self.total = total;
        let fps = self.fps();
        let eta = total.filter(|_| fps > 0.0).map(|t| t.saturating_sub(frames) as f64 / fps);
        match &self.mode {
            Mode::Bar(bar) => {
                match total {
                    Some(t) => bar.set_length(t.max(frames)),
                    None => bar.unset_length(),
                }
                bar.set_position(frames);
                bar.set_message(format!("{fps:.2} fps ETA {}", eta.map_or("?".into(), format_time)));
            }
            Mode::Plain if self.last.elapsed() >= PLAIN_EVERY => {
                self.last = Instant::now();
                let of_total = total.map_or(String::new(), |t| format!("/{t}"));
                let pct = total
                    .filter(|&t| t > 0)
                    .map_or(String::new(), |t| format!(" ({:.0}%)", (frames as f64 / t as f64 * 100.0).min(100.0)));
                eprintln!(
                    "progress: {frames}{of_total} frames{pct}, {fps:.2} fps, ETA {}",
                    eta.map_or("?".into(), format_time)
                );
            }
            Mode::Json if self.last.elapsed() >= Duration::from_millis(JSON_EVERY_MS.load(Ordering::Relaxed)) => {
                self.last = Instant::now();
                self.json(false, fps, eta, None);
            }
            _ => {}
        }
    }

    fn json(&self, done: bool, fps: f64, eta: Option<f64>, error: Option<&str>) {
        let mut object = serde_json::json!({
            "output": self.label,
            "frames": self.frames,
            "total": self.total,
            "fps": (fps * 100.0).round() / 100.0,
            "eta_s": eta.map(|e| e.round()),
            "done": done,
        });
        if let Some(e) = error {
            object["error"] = e.into();
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{object}");
        let _ = out.flush();
    }

    /// A message for stderr that does not tear the bar.
    pub fn println(&self, message: &str) {
        match &self.mode {
            Mode::Bar(bar) => bar.suspend(|| eprintln!("{message}")),
            _ => eprintln!("{message}"),
        }
    }

    /// Ends the display: the bar is cleared, a JSON consumer gets a last object with `done: true` (and the error, if
    /// the job failed).
    pub fn finish(&mut self, error: Option<&str>) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Json => {
                self.json(true, self.fps(), Some(0.0).filter(|_| error.is_none()), error);
            }
            _ => {}
        }
        self.mode = Mode::None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}
