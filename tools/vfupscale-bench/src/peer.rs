// SPDX-License-Identifier: MPL-2.0
//! `--peer`: the same model, precision and sizes in PyTorch (`tools/peer/torch_peer.py`: eager and
//! `torch.compile(mode="max-autotune-no-cudagraphs")`, channels_last, device-resident input and output, CUDA-event
//! timing after a warm-up), run on the same GPU after our own measurements, its JSON read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Settings};
use crate::core_api::Size;

/// One model, precision and size as the peer measured it (a row of `torch_peer.py`'s JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerResult {
    pub model: String,
    pub precision: String,
    pub width: u32,
    pub height: u32,
    pub warmup: u64,
    pub runs: u64,
    pub eager_ms: f64,
    pub eager_fps: f64,
    pub compiled_ms: f64,
    pub compiled_fps: f64,
    /// Seconds the first compiled call took (tracing, autotuning, code generation; caches as found).
    pub compile_s: f64,
    /// Largest differences on the check input (`check_size`) from ONNX Runtime's CPU output, eager in fp32 and at
    /// `precision`; and of the compiled output from the eager one at this size.
    pub check_size: String,
    pub max_abs_diff_eager_fp32: f64,
    pub max_abs_diff_eager: f64,
    pub max_abs_diff_compiled: f64,
}

#[cfg(test)]
impl PeerResult {
    pub fn for_test(compiled_ms: f64) -> Self {
        Self {
            model: "m".into(),
            precision: "fp16".into(),
            width: 64,
            height: 48,
            warmup: 20,
            runs: 100,
            eager_ms: 2.0 * compiled_ms,
            eager_fps: 500.0 / compiled_ms,
            compiled_ms,
            compiled_fps: 1e3 / compiled_ms,
            compile_s: 20.0,
            check_size: "64x48".into(),
            max_abs_diff_eager_fp32: 1e-6,
            max_abs_diff_eager: 1e-3,
            max_abs_diff_compiled: 1e-3,
        }
    }
}

#[derive(Debug, Deserialize)]
struct PeerReport {
    torch: String,
    gpu: String,
    results: Vec<PeerResult>,
}

/// Where to run the peer from.
pub struct Peer {
    pub python: PathBuf,
    pub script: PathBuf,
}

/// The script: `given`, else `tools/peer/torch_peer.py` under the working directory, else in this source tree.
pub fn find_script(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return match path.is_file() {
            true => Ok(path.to_path_buf()),
            false => bail!("peer script {}: no such file", path.display()),
        };
    }
    let candidates = [
        PathBuf::from("tools/peer/torch_peer.py"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../peer/torch_peer.py"),
    ];
    candidates.iter().find(|p| p.is_file()).cloned().with_context(|| {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!("the peer script is in none of {}: give --peer-script", tried.join(", "))
    })
}

impl Peer {
    /// Runs the peer on `model` at `precision` for every size, with our warm-up and run counts.
    fn run(&self, cfg: &Config, sizes: &[Size], settings: &Settings, out: &Path) -> Result<PeerReport> {
        let sizes: Vec<String> = sizes.iter().map(Size::to_string).collect();
        let mut command = Command::new(&self.python);
        command
            .arg(&self.script)
            .arg(&cfg.model.path)
            .args(["--precision", cfg.precision.name(), "--sizes", &sizes.join(",")])
            .args(["--device", &settings.device.to_string(), "--warmup", &settings.warmup.to_string()])
            .args(["--runs", &settings.model_runs().to_string()])
            .arg("--json")
            .arg(out)
            // its progress goes where ours does; our stdout keeps the table
            .stdout(Stdio::from(std::io::stderr()));
        eprintln!("peer: {command:?}");
        let status = command.status().with_context(|| format!("starting {}", self.python.display()))?;
        if !status.success() {
            bail!("{} {} failed ({status})", self.python.display(), self.script.display());
        }
        let text = std::fs::read_to_string(out).with_context(|| format!("the peer's results {}", out.display()))?;
        serde_json::from_str(&text).with_context(|| format!("the peer's results {}", out.display()))
    }

    /// Runs the peer for every model and precision of `configs` (all their sizes at once) and returns, per
    /// configuration in order, its result.
    pub fn measure(&self, configs: &[Config], settings: &Settings, dir: &Path) -> Result<Vec<PeerResult>> {
        let mut results: Vec<Option<PeerResult>> = vec![None; configs.len()];
        for (i, cfg) in configs.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let group: Vec<usize> = (i..configs.len())
                .filter(|&j| configs[j].model == cfg.model && configs[j].precision == cfg.precision)
                .collect();
            let sizes: Vec<Size> = group.iter().map(|&j| configs[j].size).collect();
            let out = dir.join(format!("peer-{}.json", std::process::id()));
            let report = self.run(cfg, &sizes, settings, &out);
            let _ = std::fs::remove_file(&out);
            let report = report.with_context(|| format!("peer for {} {}", cfg.model.name, cfg.precision))?;
            eprintln!("peer: torch {} on {}", report.torch, report.gpu);
            for &j in &group {
                let size = configs[j].size;
                let found = report.results.iter().find(|r| (r.width, r.height) == (size.width, size.height));
                results[j] =
                    Some(found.cloned().with_context(|| format!("the peer reported no result for {}", configs[j]))?);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of what `torch_peer.py --json` writes (from a run of it; `path` and `mode` are not read).
    const REPORT: &str = r#"{
      "torch": "2.11.0+cu130", "gpu": "NVIDIA H200", "device": "cuda:0", "mode": "max-autotune-no-cudagraphs",
      "cudnn_tf32": true, "failures": [],
      "results": [{
        "model": "realesr-animevideov3-x2", "path": "/m/realesr-animevideov3-x2.onnx", "precision": "fp16",
        "width": 1920, "height": 1080, "warmup": 20, "runs": 120, "check_size": "64x48",
        "max_abs_diff_eager_fp32": 7.45e-07, "max_abs_diff_eager": 0.00102, "compiled_ms": 8.6,
        "compiled_fps": 116.3, "compile_s": 21.0, "max_abs_diff_compiled": 0.0009, "eager_ms": 18.3,
        "eager_fps": 54.6
      }]
    }"#;

    #[test]
    fn the_peers_json_is_read() {
        let report: PeerReport = serde_json::from_str(REPORT).unwrap();
        assert_eq!((report.torch.as_str(), report.gpu.as_str()), ("2.11.0+cu130", "NVIDIA H200"));
        let r = &report.results[0];
        assert_eq!((r.width, r.height, r.compiled_ms, r.max_abs_diff_eager), (1920, 1080, 8.6, 0.00102));
        // a run without torch.compile has no compiled numbers: refused, not read as zero
        let eager_only = REPORT.replace("\"compiled_ms\": 8.6", "\"compiled_ms\": null");
        assert!(serde_json::from_str::<PeerReport>(&eager_only).is_err());
    }

    #[test]
    fn a_missing_script_is_named() {
        let e = find_script(Some(Path::new("/nonexistent/peer.py"))).unwrap_err();
        assert_eq!(e.to_string(), "peer script /nonexistent/peer.py: no such file");
        assert!(find_script(None).unwrap().ends_with("torch_peer.py"), "found in this source tree");
    }
}
