// SPDX-License-Identifier: MPL-2.0
//! The results: one row per configuration, printed as a table and written as JSON (serde), with the ratios computed
//! from numbers of the same run.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::core_api::{KernelTime, NativeAgreement};
use crate::measure::Measure;
use crate::peer::PeerResult;
use crate::probes::StageMeans;

/// One configuration's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub precision: &'static str,
    pub width: u32,
    pub height: u32,
    /// The engine the element chose (and (a) ran): `native`, `cuda`, `tensorrt`.
    pub engine: &'static str,
    /// How the native kernels' output agreed with ONNX Runtime's when they were admitted.
    pub native_agreement: Option<NativeAgreement>,
    /// (a) the model alone on `engine`, on a frame of the clip that (b) and (c) run.
    pub model_only: Measure,
    /// (a) on the peer's kind of input (ripples, checkerboard, noise): what ours / torch.compile compares.
    pub model_on_test_frame: Measure,
    /// (a) on zeros: how much a constant input flatters the model's time (never reported as (a)).
    pub model_on_zeros: Measure,
    /// (a) repeated after (c): the spread of the two runs of (a) (the GPU warmer, its clocks under the power limit).
    pub model_after_pipeline: Measure,
    /// (b) the element alone on frames decoded beforehand.
    pub element: Measure,
    /// (c) the whole pipeline.
    pub pipeline: Measure,
    pub b_over_a: f64,
    pub c_over_a: f64,
    /// The model alone on ONNX Runtime's CUDA provider (equal to `model_only` when that is the engine).
    pub onnx_runtime_cuda_model: Measure,
    pub c_over_onnx_runtime_cuda: f64,
    /// Stage means over the timed frames of (b) and (c).
    pub element_stages: StageMeans,
    pub pipeline_stages: StageMeans,
    /// The native engine's kernels as it names them, mean of ten profiled runs, in launch order.
    pub native_kernels: Option<Vec<KernelTime>>,
    /// PyTorch on the same model, precision and size (`--peer`).
    pub peer: Option<PeerResult>,
    /// Throughput of (a) on the test frame (the peer's kind of input) and of (c) over torch.compile's (above 1:
    /// ours is faster).
    pub a_over_torch_compile: Option<f64>,
    pub c_over_torch_compile: Option<f64>,
}

impl Row {
    /// Adds the peer's numbers for this row and the ratios ours / torch.compile.
    pub fn set_peer(&mut self, peer: PeerResult) {
        let torch = peer.compiled_fps;
        self.a_over_torch_compile = Some(self.model_on_test_frame.fps / torch);
        self.c_over_torch_compile = Some(self.pipeline.fps / torch);
        self.peer = Some(peer);
    }
}

/// The whole run, as written to `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub gpu: String,
    pub device: u32,
    pub cuda_driver_api: String,
    pub onnx_runtime: String,
    pub gstreamer: String,
    pub decoder: String,
    pub framerate: String,
    pub frames: u64,
    pub warmup_frames: u64,
    pub model_runs: u64,
    pub async_depth: u32,
    pub results: Vec<Row>,
    /// Why the run stopped early or the peer failed; the rows above are complete measurements.
    pub failure: Option<String>,
}

impl Report {
    /// Writes the report as JSON to `path` (to a temporary file renamed once complete).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialising the results")?;
        let partial = path.with_extension(format!("json.{}.part", std::process::id()));
        std::fs::write(&partial, text + "\n")
            .and_then(|()| std::fs::rename(&partial, path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&partial);
            })
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn cell(m: &Measure) -> String {
    format!("{:7.2} ms {:6.1}/s", m.ms_per_frame, m.fps)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.3}"))
}

/// The table of all rows, with the peer's columns when any row has them.
pub fn table(rows: &[Row]) -> String {
    let with_peer = rows.iter().any(|r| r.peer.is_some());
    let mut out = format!(
        "{:26} {:5} {:>9} {:>8} | {:>19} | {:>19} | {:>19} | {:>5} {:>5} | {:>19} {:>6} | {:>12}",
        "model",
        "prec",
        "input",
        "engine",
        "(a) model",
        "(b) element",
        "(c) pipeline",
        "b/a",
        "c/a",
        "ORT CUDA model",
        "c/ORT",
        "(c) infer ms"
    );
    if with_peer {
        out += &format!(" | {:>9} {:>19} {:>7} {:>7}", "(a) test", "torch.compile", "a/torch", "c/torch");
    }
    out.push('\n');
    for r in rows {
        out += &format!(
            "{:26} {:5} {:>9} {:>8} | {} | {} | {} | {:5.3} {:5.3} | {} {:6.3} | {:12.3}",
            r.model,
            r.precision,
            format!("{}x{}", r.width, r.height),
            r.engine,
            cell(&r.model_only),
            cell(&r.element),
            cell(&r.pipeline),
            r.b_over_a,
            r.c_over_a,
            cell(&r.onnx_runtime_cuda_model),
            r.c_over_onnx_runtime_cuda,
            r.pipeline_stages.inference_ms
        );
        if with_peer {
            let torch = r.peer.as_ref().map_or_else(
                || format!("{:>19}", "-"),
                |p| format!("{:7.2} ms {:6.1}/s", p.compiled_ms, p.compiled_fps),
            );
            out += &format!(
                " | {:6.2} ms {torch} {:>7} {:>7}",
                r.model_on_test_frame.ms_per_frame,
                ratio(r.a_over_torch_compile),
                ratio(r.c_over_torch_compile)
            );
        }
        out.push('\n');
    }
    // the ratios compare throughput; the issue targets and docs/PERFORMANCE.md speak of time
    out += "ratios divide frames per second (above 1: the first is faster; in time it is the inverse)\n";
    out
}

/// The native engine's profile in one line: each kernel that runs once with its time, repeated ones (the hidden
/// layers) as count × mean (min–max), and the sum.
pub fn kernel_summary(kernels: &[KernelTime]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for k in kernels {
        if !names.contains(&k.kernel.as_str()) {
            names.push(&k.kernel);
        }
    }
    let mut parts = Vec::new();
    for name in names {
        let times: Vec<f64> = kernels.iter().filter(|k| k.kernel == name).map(|k| k.ms).collect();
        if let [ms] = times[..] {
            parts.push(format!("{name} {ms:.3} ms"));
        } else {
            let (min, max) = times.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            parts.push(format!("{name} {} x {mean:.3} ms ({min:.3}-{max:.3})", times.len()));
        }
    }
    let total: f64 = kernels.iter().map(|k| k.ms).sum();
    format!("{}; sum {total:.3} ms", parts.join(", "))
}

/// The stage means of one run in one line.
pub fn stages_summary(s: &StageMeans) -> String {
    format!(
        "convert-in {:.3} ms, inference {:.3} ms, convert-out {:.3} ms (means over the {} timed frames)",
        s.convert_in_ms, s.inference_ms, s.convert_out_ms, s.frames
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(kernel: &str, ms: f64) -> KernelTime {
        KernelTime { kernel: kernel.into(), ms }
    }

    #[test]
    fn kernel_summary_groups_repeated_kernels() {
        let profile = [k("first", 0.16), k("hidden", 0.49), k("hidden", 0.5), k("hidden", 0.51), k("last", 0.5)];
        assert_eq!(
            kernel_summary(&profile),
            "first 0.160 ms, hidden 3 x 0.500 ms (0.490-0.510), last 0.500 ms; sum 2.160 ms"
        );
    }

    #[test]
    fn rows_serialise_with_their_ratios_and_print() {
        let m = |ms: f64| Measure { frames: 10, ms_per_frame: ms, fps: 1e3 / ms };
        let stages = StageMeans { frames: 10, convert_in_ms: 0.1, inference_ms: 3.9, convert_out_ms: 0.1 };
        let mut row = Row {
            model: "m".into(),
            precision: "fp16",
            width: 64,
            height: 48,
            engine: "native",
            native_agreement: Some(NativeAgreement { psnr_db: 70.0, max_difference: 0.01 }),
            model_only: m(4.0),
            model_on_test_frame: m(2.5),
            model_on_zeros: m(3.9),
            model_after_pipeline: m(4.1),
            element: m(4.0),
            pipeline: m(5.0),
            b_over_a: 1.0,
            c_over_a: 0.8,
            onnx_runtime_cuda_model: m(8.0),
            c_over_onnx_runtime_cuda: 1.6,
            element_stages: stages,
            pipeline_stages: stages,
            native_kernels: Some(vec![k("first", 0.2)]),
            peer: None,
            a_over_torch_compile: None,
            c_over_torch_compile: None,
        };
        assert!(!table(std::slice::from_ref(&row)).contains("torch"));
        row.set_peer(PeerResult::for_test(10.0));
        assert_eq!((row.a_over_torch_compile, row.c_over_torch_compile), (Some(4.0), Some(2.0)));
        let text = table(std::slice::from_ref(&row));
        assert!(text.contains("c/torch") && text.contains("4.000") && text.contains("2.000"), "{text}");
        assert!(text.contains("2.50 ms"), "(a) on the test frame beside the peer: {text}");
        assert!(text.contains("ratios divide frames per second"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&row).unwrap();
        assert_eq!(json["pipeline"]["ms_per_frame"], 5.0);
        assert_eq!(json["c_over_torch_compile"], 2.0);
        assert_eq!(json["native_kernels"][0]["kernel"], "first");
        assert_eq!(json["native_agreement"]["psnr_db"], 70.0);
    }
}
