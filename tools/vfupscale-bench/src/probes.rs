// SPDX-License-Identifier: MPL-2.0
//! Pad probes that delimit the measured window of a pipeline run: when the frame that ends the warm-up and the last
//! frame reach the sink, and the element's `stats` as that warm-up frame leaves it, so that stage means can be taken
//! over exactly the frames that were timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gst::prelude::*;
use serde::Serialize;

use crate::core_api::field;
use crate::measure::Measure;

/// Counts buffers reaching a sink and notes when the `warmup`-th and the last arrive.
pub struct FrameClock {
    warmup: u64,
    frames: AtomicU64,
    /// (when the warm-up ended, when the last frame arrived)
    marks: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl FrameClock {
    pub fn attach(sink: &gst::Element, warmup: u64) -> Result<Arc<FrameClock>> {
        let clock = Arc::new(FrameClock { warmup, frames: AtomicU64::new(0), marks: Mutex::new((None, None)) });
        let c = clock.clone();
        let pad = sink.static_pad("sink").context("the sink has no sink pad")?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let now = Instant::now();
            let n = c.frames.fetch_add(1, Ordering::SeqCst) + 1;
            let mut marks = c.marks.lock().unwrap_or_else(PoisonError::into_inner);
            if n == c.warmup {
                marks.0 = Some(now);
            }
            marks.1 = Some(now);
            gst::PadProbeReturn::Ok
        });
        Ok(clock)
    }

    /// Frames that reached the sink.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::SeqCst)
    }

    /// The frames after the warm-up, timed from the arrival of the last warm-up frame to that of the last frame.
    pub fn measure(&self) -> Result<Measure> {
        let n = self.frames();
        let (first, last) = *self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        match first.zip(last) {
            Some((first, last)) => Measure::new(n - self.warmup, last - first),
            None => bail!("{n} frames reached the sink, not more than the {} frames of warm-up", self.warmup),
        }
    }
}

/// The element's `stats` as its `warmup`-th output frame leaves it (on its streaming thread, so no later frame
/// has been counted yet).
pub struct StatsAtWarmup {
    stats: Arc<Mutex<Option<gst::Structure>>>,
}

impl StatsAtWarmup {
    pub fn attach(upscaler: &gst::Element, warmup: u64) -> Result<Self> {
        let stats = Arc::new(Mutex::new(None));
        let (seen, frames, element) = (stats.clone(), AtomicU64::new(0), upscaler.downgrade());
        let pad = upscaler.static_pad("src").context("vfupscale has no src pad")?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if frames.fetch_add(1, Ordering::SeqCst) + 1 == warmup
                && let Some(element) = element.upgrade()
            {
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(element.property("stats"));
            }
            gst::PadProbeReturn::Ok
        });
        Ok(Self { stats })
    }

    /// Stage means over the frames after the warm-up, given the element's `stats` at the end of the run.
    pub fn stage_means(&self, at_end: &gst::Structure) -> Result<StageMeans> {
        let at_warmup = self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
        StageMeans::between(&at_warmup.context("the element's stats were not read at the end of the warm-up")?, at_end)
    }
}

/// Mean milliseconds of each stage of the element (GPU time between its CUDA events) over a window of frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageMeans {
    pub frames: u64,
    pub convert_in_ms: f64,
    pub inference_ms: f64,
    pub convert_out_ms: f64,
}

impl StageMeans {
    /// The means over the frames counted in `after` but not yet in `before` (two readings of `stats` of one run:
    /// each stage is recorded once per frame, so its total is its mean times `frames`).
    pub fn between(before: &gst::Structure, after: &gst::Structure) -> Result<Self> {
        let frames = |s: &gst::Structure| {
            s.get::<u64>(field::FRAMES).with_context(|| format!("stats field {}: {s}", field::FRAMES))
        };
        let (n0, n1) = (frames(before)?, frames(after)?);
        if n1 <= n0 {
            bail!("the element finished no frames between the two readings of its stats ({n0}, then {n1})");
        }
        let mean = |name: &str| -> Result<f64> {
            let read = |s: &gst::Structure| s.get::<f64>(name).with_context(|| format!("stats field {name}: {s}"));
            Ok((read(after)? * n1 as f64 - read(before)? * n0 as f64) / (n1 - n0) as f64)
        };
        Ok(Self {
            frames: n1 - n0,
            convert_in_ms: mean(field::CONVERT_IN_MEAN_MS)?,
            inference_ms: mean(field::INFERENCE_MEAN_MS)?,
            convert_out_ms: mean(field::CONVERT_OUT_MEAN_MS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(frames: u64, convert_in: f64, inference: f64, convert_out: f64) -> gst::Structure {
        gst::Structure::builder("vfupscale-stats")
            .field(field::FRAMES, frames)
            .field(field::CONVERT_IN_MEAN_MS, convert_in)
            .field(field::INFERENCE_MEAN_MS, inference)
            .field(field::CONVERT_OUT_MEAN_MS, convert_out)
            .build()
    }

    #[test]
    fn warm_up_is_taken_out_of_the_means() {
        gst::init().unwrap();
        // 20 warm-up frames averaging 775 ms (one slow first frame), then 80 frames of 262 ms
        let before = stats(20, 1.0, 775.0, 2.0);
        let after = stats(100, (20.0 * 1.0 + 80.0 * 0.5) / 100.0, (20.0 * 775.0 + 80.0 * 262.0) / 100.0, 2.0);
        let m = StageMeans::between(&before, &after).unwrap();
        assert_eq!(m.frames, 80);
        assert!((m.inference_ms - 262.0).abs() < 1e-9, "{m:?}");
        assert!((m.convert_in_ms - 0.5).abs() < 1e-9, "{m:?}");
        assert!((m.convert_out_ms - 2.0).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn readings_without_frames_between_or_fields_are_refused() {
        gst::init().unwrap();
        let e = StageMeans::between(&stats(20, 1.0, 2.0, 3.0), &stats(20, 1.0, 2.0, 3.0)).unwrap_err();
        assert!(e.to_string().contains("no frames"), "{e}");
        let missing = gst::Structure::builder("vfupscale-stats").field(field::FRAMES, 30u64).build();
        let e = StageMeans::between(&stats(20, 1.0, 2.0, 3.0), &missing).unwrap_err();
        assert!(e.to_string().contains(field::CONVERT_IN_MEAN_MS), "{e}");
    }
}
