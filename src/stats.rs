//! Per-frame telemetry: stage timings and the counters that show where frame data moved.

/// A pipeline stage that is timed per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    ConvertIn,
    Inference,
    ConvertOut,
}

/// Count, mean and maximum of one stage's duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageStats {
    pub count: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl StageStats {
    pub fn record(&mut self, ms: f64) {
        self.count += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total_ms / self.count as f64 }
    }
}

/// What an upscaler (and the element around it) did so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Frames upscaled.
    pub frames: u64,
    pub convert_in: StageStats,
    pub inference: StageStats,
    pub convert_out: StageStats,
    /// Frames read directly from CUDA memory of our context (no copy at all).
    pub zero_copy_inputs: u64,
    /// Frames that arrived in CUDA memory of another context and were copied device-to-device into ours.
    pub foreign_context_copies: u64,
    /// Frames that arrived in host memory on the CUDA path and were uploaded.
    pub host_uploads: u64,
    /// Bytes of the bound input and output tensors.
    pub tensor_bytes: u64,
    /// Tiles per frame (1: whole frames) and the tile side in input pixels.
    pub tiles_per_frame: u64,
    pub tile_size: u32,
    /// Times a frame was retried with smaller tiles after running out of device memory.
    pub oom_retries: u64,
}

impl Stats {
    pub fn record(&mut self, stage: Stage, ms: f64) {
        match stage {
            Stage::ConvertIn => self.convert_in.record(ms),
            Stage::Inference => self.inference.record(ms),
            Stage::ConvertOut => self.convert_out.record(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_mean_and_max() {
        let mut s = StageStats::default();
        assert_eq!(s.mean_ms(), 0.0);
        for ms in [2.0, 4.0, 9.0] {
            s.record(ms);
        }
        assert_eq!((s.count, s.mean_ms(), s.max_ms), (3, 5.0, 9.0));
    }
}
