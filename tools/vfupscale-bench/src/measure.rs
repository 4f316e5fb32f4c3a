// SPDX-License-Identifier: MPL-2.0
//! A measurement: frames timed after a warm-up, as ms per frame and frames per second. A measurement of no frames
//! cannot be made, so no run prints one.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measure {
    /// Frames (or model runs) inside the timed window, warm-up excluded.
    pub frames: u64,
    pub ms_per_frame: f64,
    pub fps: f64,
}

impl Measure {
    /// `frames` frames in `elapsed`; refused when nothing (or no time) was measured.
    pub fn new(frames: u64, elapsed: Duration) -> Result<Self> {
        if frames == 0 {
            bail!("no frames were measured");
        }
        if elapsed.is_zero() {
            bail!("{frames} frames took no measurable time");
        }
        let ms_per_frame = elapsed.as_secs_f64() * 1e3 / frames as f64;
        Ok(Self { frames, ms_per_frame, fps: 1e3 / ms_per_frame })
    }

    /// Throughput of `self` relative to `base` (1.0: the same frame rate; above 1: `self` is faster).
    pub fn throughput_over(&self, base: &Measure) -> f64 {
        self.fps / base.fps
    }
}

/// Calls `step` (one run, finished before it returns) `warmup` times, then times `runs` calls.
pub fn time_runs(warmup: u64, runs: u64, mut step: impl FnMut() -> Result<()>) -> Result<Measure> {
    for _ in 0..warmup {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..runs {
        step()?;
    }
    Measure::new(runs, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_without_frames_is_refused() {
        let e = Measure::new(0, Duration::from_millis(5)).unwrap_err();
        assert_eq!(e.to_string(), "no frames were measured");
        assert!(Measure::new(3, Duration::ZERO).is_err());
    }

    #[test]
    fn ms_fps_and_ratios() {
        let m = Measure::new(4, Duration::from_millis(10)).unwrap();
        assert_eq!((m.frames, m.ms_per_frame, m.fps), (4, 2.5, 400.0));
        let slower = Measure::new(1, Duration::from_millis(5)).unwrap();
        assert_eq!(slower.throughput_over(&m), 0.5);
    }

    #[test]
    fn warm_up_runs_are_not_timed() {
        let mut calls = 0;
        let m = time_runs(3, 5, || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, m.frames), (8, 5));
        assert!(m.ms_per_frame >= 1.0, "{m:?}");
        assert!(time_runs(2, 0, || Ok(())).is_err(), "no timed runs");
    }
}
