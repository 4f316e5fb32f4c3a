// SPDX-License-Identifier: MPL-2.0
//! Frame timing on the GPU: CUDA events recorded on the stream at the stage boundaries of each frame in flight,
//! read when the frame is finished, so measuring costs no synchronisation.
//!
//! Per frame, event 0 is the start; inference run (chunk of tiles) k records `3k+1` once its inputs are converted,
//! `3k+2` once the model ran, `3k+3` once its outputs are blended or converted; a blended frame records one more
//! after the accumulation frame is converted to NV12.

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};

use crate::error::{Error, Result};
use crate::stats::FrameTimes;

/// Event boundaries of one frame: how many runs it took and whether it was blended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameEvents {
    pub slot: usize,
    pub chunks: usize,
    pub blended: bool,
}

impl FrameEvents {
    /// Index of the frame's last event: the one to wait for.
    fn last(&self) -> usize {
        3 * self.chunks + usize::from(self.blended)
    }
}

/// One set of events per frame that can be in flight, grown as a frame needs more.
pub(super) struct FrameTimer {
    stream: Arc<CudaStream>,
    slots: Vec<Vec<CudaEvent>>,
    next: usize,
}

impl FrameTimer {
    /// Events for `frames` frames in flight, each with the four a whole-frame run needs.
    pub fn new(stream: Arc<CudaStream>, frames: usize) -> Result<Self> {
        let mut timer = Self { stream, slots: (0..frames).map(|_| Vec::new()).collect(), next: 0 };
        for slot in 0..frames {
            timer.ensure(slot, 3)?;
        }
        Ok(timer)
    }

    fn ensure(&mut self, slot: usize, i: usize) -> Result<()> {
        let events = &mut self.slots[slot];
        while events.len() <= i {
            // timing enabled (cudarc's default disables it): the stage durations in the statistics come from these
            let event = self.stream.context().new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
            events.push(event.map_err(Error::cuda("cuEventCreate"))?);
        }
        Ok(())
    }

    /// The slot the next queued frame uses.
    pub fn next_slot(&self) -> usize {
        self.next
    }

    /// Moves on to the next slot once a frame has been queued.
    pub fn advance(&mut self) {
        self.next = (self.next + 1) % self.slots.len();
    }

    /// Records event `i` of `slot` on the stream.
    pub fn record(&mut self, slot: usize, i: usize) -> Result<()> {
        self.ensure(slot, i)?;
        self.slots[slot][i].record(&self.stream).map_err(Error::cuda("cuEventRecord"))
    }

    fn elapsed(&self, slot: usize, a: usize, b: usize) -> Result<f64> {
        let events = &self.slots[slot];
        events[a].elapsed_ms(&events[b]).map(f64::from).map_err(Error::cuda("cuEventElapsedTime"))
    }

    /// Waits until the frame's work is done and returns its stage durations.
    pub fn finish(&self, frame: FrameEvents) -> Result<FrameTimes> {
        self.slots[frame.slot][frame.last()].synchronize().map_err(Error::cuda("cuEventSynchronize"))?;
        let mut times = FrameTimes::default();
        for k in (0..3 * frame.chunks).step_by(3) {
            times.convert_in += self.elapsed(frame.slot, k, k + 1)?;
            times.inference += self.elapsed(frame.slot, k + 1, k + 2)?;
            times.convert_out += self.elapsed(frame.slot, k + 2, k + 3)?;
        }
        if frame.blended {
            let e = 3 * frame.chunks;
            times.convert_out += self.elapsed(frame.slot, e, e + 1)?;
        }
        Ok(times)
    }
}
