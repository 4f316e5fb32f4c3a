// SPDX-License-Identifier: MPL-2.0
//! `--soak FRAMES`: device memory over a long run of the element, which must not grow.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use crate::config::{Config, Settings};
use crate::core_api::{BackendChoice, Gpu, field};
use crate::pipelines::{element_description, run_to_eos};

/// Device memory in use (cuMemGetInfo: total − free), what the element reports holding, and how many distinct
/// frames (pool buffers) went into and out of it so far, at frame `frame`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MemorySample {
    frame: u64,
    used: usize,
    held: u64,
    input_frames: usize,
    output_frames: usize,
}

/// The frame after which device memory is the reference, and the interval between samples.
const SOAK_SAMPLE_EVERY: u64 = 100;

/// Most a soak may grow the device memory in use between frame 100 and its last frame.
const SOAK_TOLERANCE: usize = 2 << 20;

/// Counts the distinct memory blocks of the buffers crossing `pad`: a pool's size, once it has cycled.
fn distinct_buffers(pad: &gst::Pad) -> Arc<Mutex<HashSet<usize>>> {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            s.lock().unwrap_or_else(PoisonError::into_inner).insert(buffer.peek_memory(0).as_ptr() as usize);
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

fn mib(bytes: f64) -> f64 {
    bytes / 1048576.0
}

pub fn soak(cfg: &Config, settings: &Settings, frames: u64, gpu: &Gpu) -> Result<()> {
    if frames <= SOAK_SAMPLE_EVERY {
        bail!("--soak needs more than {SOAK_SAMPLE_EVERY} frames");
    }
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=NV12,width={},height={},framerate={} ! \
         cudaupload cuda-device-id={} ! video/x-raw(memory:CUDAMemory) ! queue ! {} ! queue ! \
         fakesink name=sink sync=false",
        cfg.size.width,
        cfg.size.height,
        settings.framerate,
        settings.device,
        element_description(cfg, settings, BackendChoice::Auto)
    ))?;
    let bin = pipeline.downcast_ref::<gst::Bin>().context("a pipeline that is not a bin")?;
    let (up, sink) = (bin.by_name("up").context("no element up")?, bin.by_name("sink").context("no sink")?);
    let inputs = distinct_buffers(&up.static_pad("sink").context("vfupscale has no sink pad")?);
    let outputs = distinct_buffers(&up.static_pad("src").context("vfupscale has no src pad")?);
    let samples = Arc::new(Mutex::new(Vec::<MemorySample>::new()));
    let (seen, count, gpu_seen, probed) = (samples.clone(), Arc::new(AtomicU64::new(0)), gpu.clone(), up.downgrade());
    let counter = count.clone();
    let start = Instant::now();
    sink.static_pad("sink").context("the sink has no pad")?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if (n % SOAK_SAMPLE_EVERY == 0 || n == frames)
            && let (Ok(used), Some(up)) = (gpu_seen.memory_in_use(), probed.upgrade())
        {
            let held = up.property::<gst::Structure>("stats").get::<u64>(field::DEVICE_MEMORY_BYTES).unwrap_or(0);
            let lock = |s: &Mutex<HashSet<usize>>| s.lock().unwrap_or_else(PoisonError::into_inner).len();
            let sample =
                MemorySample { frame: n, used, held, input_frames: lock(&inputs), output_frames: lock(&outputs) };
            seen.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
        }
        gst::PadProbeReturn::Ok
    });
    run_to_eos(&pipeline)?;
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::SeqCst);
    let samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
    let stats = up.property::<gst::Structure>("stats");
    let backend = stats.get::<String>(field::BACKEND).unwrap_or_else(|_| "unknown".into());
    println!(
        "soak: {} {} {} on {backend}: {n} frames in {elapsed:.1} s ({:.1}/s)",
        cfg.model.name,
        cfg.precision,
        cfg.size,
        n as f64 / elapsed
    );
    // every 100 frames were sampled; print the first, the last, and every change
    println!(
        "{:>7} {:>16} {:>18} {:>13} {:>14}",
        "frame", "device used MiB", "element held MiB", "input frames", "output frames"
    );
    let mut previous: Option<&MemorySample> = None;
    for (i, s) in samples.iter().enumerate() {
        let changed = previous.is_none_or(|p| {
            (p.used, p.held, p.input_frames, p.output_frames) != (s.used, s.held, s.input_frames, s.output_frames)
        });
        if changed || i + 1 == samples.len() {
            println!(
                "{:>7} {:>16.2} {:>18.2} {:>13} {:>14}",
                s.frame,
                mib(s.used as f64),
                mib(s.held as f64),
                s.input_frames,
                s.output_frames
            );
        }
        previous = Some(s);
    }
    if n != frames {
        bail!("{frames} frames in, {n} out");
    }
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) if f.frame == SOAK_SAMPLE_EVERY && l.frame == frames => (f, l),
        _ => bail!("device memory could not be read at frame {SOAK_SAMPLE_EVERY} and at the last frame"),
    };
    let growth = last.used as i64 - first.used as i64;
    println!(
        "device memory in use, last frame vs frame {SOAK_SAMPLE_EVERY}: {:+.2} MiB (tolerance ±2 MiB)",
        mib(growth as f64)
    );
    if growth.unsigned_abs() as usize > SOAK_TOLERANCE {
        bail!("device memory changed by {:+.2} MiB over the soak", mib(growth as f64));
    }
    Ok(())
}
