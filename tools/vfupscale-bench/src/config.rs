// SPDX-License-Identifier: MPL-2.0
//! The command line and what it asks for: the configurations to measure (model × precision × input size) and the
//! settings every run shares.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};
use clap::Parser;

use crate::core_api::{DEFAULT_MODEL, Precision, Size};

/// What the element costs on top of the model, measured side by side on an NVIDIA GPU: (a) the model alone,
/// (b) the element alone on frames decoded beforehand, (c) the whole NVDEC → vfupscale pipeline, each after a
/// warm-up; with `--peer`, the same model in PyTorch (torch.compile) on the same GPU afterwards.
#[derive(Debug, Parser)]
#[command(name = "vfupscale-bench", version)]
pub struct Args {
    /// Models to measure, as installed names or ONNX files [default: the matrix of realesr-animevideov3-x2/x4 at
    /// fp16/fp32 and 1280x720/1920x1080, and realesrgan-x4plus fp16 1280x720, restricted to --precisions and
    /// --sizes if given]
    #[arg(long, value_delimiter = ',', value_name = "NAME|PATH,…")]
    pub models: Option<Vec<String>>,
    /// Precisions of each model [default: fp16,fp32]
    #[arg(long, value_delimiter = ',', value_name = "fp16|fp32,…", value_parser = parse_precision)]
    pub precisions: Option<Vec<Precision>>,
    /// Input sizes [default: 1280x720,1920x1080]
    #[arg(long, value_delimiter = ',', value_name = "WxH,…", value_parser = parse_size)]
    pub sizes: Option<Vec<Size>>,
    /// Frames of the test clip, pushed through (b) and (c); warm-up included
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u64).range(2..))]
    pub frames: u64,
    /// Frames (model runs in (a)) before the timed window; stage means exclude them too
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub warmup: u64,
    /// Frame rate of the test clips (and the soak's frames), as N or N/D
    #[arg(long, default_value = "30/1")]
    pub framerate: Framerate,
    /// CUDA device for the element, the model runs, the decoder and the peer
    #[arg(long, default_value_t = 0)]
    pub device: u32,
    /// The element's async-depth in (b), (c) and the soak
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=2))]
    pub async_depth: u32,
    /// Also write the results as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Instead of the benchmark: run FRAMES frames through `videotestsrc ! cudaupload ! queue ! vfupscale ! queue !
    /// fakesink` (one model, precision and size; default model, fp16, 1920x1080) and fail if the device memory in
    /// use at the last frame differs by more than 2 MiB from that after the first 100
    #[arg(long, value_name = "FRAMES", value_parser = clap::value_parser!(u64).range(101..), conflicts_with = "peer")]
    pub soak: Option<u64>,
    /// After our measurements, run the same models in PyTorch with torch.compile on the same GPU
    /// (tools/peer/torch_peer.py) and add the ratio ours / torch.compile to the table
    #[arg(long)]
    pub peer: bool,
    /// The peer script [default: tools/peer/torch_peer.py of the working directory, else of the source tree]
    #[arg(long, value_name = "PATH", requires = "peer")]
    pub peer_script: Option<PathBuf>,
    /// Python interpreter for the peer (torch, onnx and onnxruntime installed)
    #[arg(long, value_name = "PATH", default_value = "python3", requires = "peer")]
    pub python: PathBuf,
}

/// A frame rate `numerator/denominator`, as in caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framerate {
    pub numerator: u32,
    pub denominator: u32,
}

impl FromStr for Framerate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (n, d) = s.split_once('/').unwrap_or((s, "1"));
        let number = |v: &str| v.trim().parse::<u32>().ok().filter(|&v| v > 0);
        match (number(n), number(d)) {
            (Some(numerator), Some(denominator)) => Ok(Self { numerator, denominator }),
            _ => Err(format!("frame rate {s:?} is not N or N/D with positive integers")),
        }
    }
}

impl fmt::Display for Framerate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// A precision a benchmark can ask for: `fp16` or `fp32` (`auto` would hide which one ran).
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    match s.parse::<Precision>() {
        Ok(p) if p != Precision::Auto => Ok(p),
        _ => Err(format!("precision {s:?} is not fp16 or fp32 (auto would hide which one ran)")),
    }
}

pub fn parse_size(s: &str) -> Result<Size, String> {
    let parsed = s.split_once('x').and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok(Size::new(w, h)),
        _ => Err(format!("size {s:?} is not WIDTHxHEIGHT with positive integers")),
    }
}

/// A model to measure: its file, and the name it is shown under (the file's stem: an installed model's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    pub name: String,
    pub path: PathBuf,
}

impl ModelFile {
    pub fn new(path: PathBuf) -> Self {
        let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
        Self { name, path }
    }
}

/// One row of the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub model: ModelFile,
    pub precision: Precision,
    pub size: Size,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.model.name, self.precision, self.size)
    }
}

/// What every run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub frames: u64,
    pub warmup: u64,
    pub framerate: Framerate,
    pub device: u32,
    pub async_depth: u32,
    /// The NVDEC decoder element of `device` (empty until found).
    pub decoder: String,
}

/// Most model-only runs of (a) timed per configuration (they are steadier than the pipelines; this bounds the time
/// a slow model takes).
pub const MAX_MODEL_RUNS: u64 = 120;

impl Settings {
    /// Model runs timed in (a): as many as frames measured in (b) and (c), at most [`MAX_MODEL_RUNS`].
    pub fn model_runs(&self) -> u64 {
        (self.frames - self.warmup).min(MAX_MODEL_RUNS)
    }
}

/// Turns what the user named as a model (a path or an installed model's name) into its file.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Result<PathBuf>;

impl Args {
    /// The configurations to measure, their models found by `resolve` before anything is measured.
    pub fn matrix(&self, resolve: Resolve) -> Result<Vec<Config>> {
        let precisions = self.precisions.clone().unwrap_or_else(|| vec![Precision::Fp16, Precision::Fp32]);
        let sizes = self.sizes.clone().unwrap_or_else(|| vec![Size::new(1280, 720), Size::new(1920, 1080)]);
        let named: Vec<(&str, Precision, Size)> = match &self.models {
            Some(models) => {
                let mut m = Vec::new();
                for model in models {
                    for &precision in &precisions {
                        m.extend(sizes.iter().map(|&size| (model.as_str(), precision, size)));
                    }
                }
                m
            }
            None => default_matrix()
                .into_iter()
                .filter(|&(_, precision, size)| precisions.contains(&precision) && sizes.contains(&size))
                .collect(),
        };
        if named.is_empty() {
            bail!("no configuration of the default matrix has these precisions and sizes: name --models");
        }
        let mut files: Vec<(&str, ModelFile)> = Vec::new();
        let mut matrix = Vec::with_capacity(named.len());
        for (model, precision, size) in named {
            let file = match files.iter().find(|(name, _)| *name == model) {
                Some((_, file)) => file.clone(),
                None => {
                    let file = ModelFile::new(resolve(model)?);
                    files.push((model, file.clone()));
                    file
                }
            };
            matrix.push(Config { model: file, precision, size });
        }
        Ok(matrix)
    }

    /// The one configuration of a soak.
    pub fn soak_config(&self, resolve: Resolve) -> Result<Config> {
        let one = |what: &str, n: usize| match n {
            0 | 1 => Ok(()),
            _ => Err(anyhow::anyhow!("--soak runs one configuration: give one value of --{what}")),
        };
        one("models", self.models.as_ref().map_or(0, Vec::len))?;
        one("precisions", self.precisions.as_ref().map_or(0, Vec::len))?;
        one("sizes", self.sizes.as_ref().map_or(0, Vec::len))?;
        Ok(Config {
            model: ModelFile::new(resolve(self.models.as_ref().map_or(DEFAULT_MODEL, |m| m[0].as_str()))?),
            precision: self.precisions.as_ref().map_or(Precision::Fp16, |p| p[0]),
            size: self.sizes.as_ref().map_or(Size::new(1920, 1080), |s| s[0]),
        })
    }

    /// The shared settings (the decoder is found later); refuses a warm-up that leaves nothing to time.
    pub fn settings(&self) -> Result<Settings> {
        if self.soak.is_none() && self.warmup >= self.frames {
            bail!(
                "--frames {} leaves no frames to measure after {} frames of warm-up (--warmup): give more frames or \
                 less warm-up",
                self.frames,
                self.warmup
            );
        }
        Ok(Settings {
            frames: self.frames,
            warmup: self.warmup,
            framerate: self.framerate,
            device: self.device,
            async_depth: self.async_depth,
            decoder: String::new(),
        })
    }
}

/// The default matrix of issue #6: animevideov3 x2/x4 × fp16/fp32 × 720p/1080p, and realesrgan-x4plus fp16 720p.
fn default_matrix() -> Vec<(&'static str, Precision, Size)> {
    let mut m = Vec::new();
    for model in ["realesr-animevideov3-x2", "realesr-animevideov3-x4"] {
        for precision in [Precision::Fp16, Precision::Fp32] {
            for size in [Size::new(1280, 720), Size::new(1920, 1080)] {
                m.push((model, precision, size));
            }
        }
    }
    m.push(("realesrgan-x4plus", Precision::Fp16, Size::new(1280, 720)));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vfupscale-bench").chain(line.iter().copied()))
    }

    /// Names as installed models of a directory /models, paths as themselves.
    fn installed(given: &str) -> Result<PathBuf> {
        match given.contains('/') {
            true => Ok(PathBuf::from(given)),
            false => Ok(PathBuf::from(format!("/models/{given}.onnx"))),
        }
    }

    #[test]
    fn values_are_parsed_and_bad_ones_named() {
        assert_eq!("60000/1001".parse(), Ok(Framerate { numerator: 60000, denominator: 1001 }));
        assert_eq!("25".parse::<Framerate>().map(|f| f.to_string()), Ok("25/1".into()));
        for bad in ["0", "30/0", "x", "30/"] {
            assert!(bad.parse::<Framerate>().unwrap_err().contains(bad), "{bad}");
        }
        assert_eq!(parse_size("1920x1080"), Ok(Size::new(1920, 1080)));
        for bad in ["1920", "0x10", "axb", "10x"] {
            assert!(parse_size(bad).unwrap_err().contains(bad), "{bad}");
        }
        let e = args(&["--precisions", "fp16,auto"]).unwrap_err().to_string();
        assert!(e.contains("\"auto\" is not fp16 or fp32"), "{e}");
        let e = args(&["--precisions", "fp8"]).unwrap_err().to_string();
        assert!(e.contains("\"fp8\" is not fp16 or fp32"), "{e}");
        assert_eq!(
            args(&["--precisions", "FP32,fp16"]).unwrap().precisions,
            Some(vec![Precision::Fp32, Precision::Fp16])
        );
        assert!(args(&["--async-depth", "3"]).is_err());
        assert!(args(&["--soak", "100"]).is_err(), "a soak needs more than 100 frames");
        assert!(args(&["--soak", "1000", "--peer"]).is_err());
    }

    #[test]
    fn default_matrix_restricted_by_the_options() {
        let all = args(&[]).unwrap().matrix(&installed).unwrap();
        assert_eq!(all.len(), 9);
        assert_eq!(all[8].to_string(), "realesrgan-x4plus fp16 1280x720");
        assert_eq!(all[8].model.path, PathBuf::from("/models/realesrgan-x4plus.onnx"));
        let hd = args(&["--sizes", "1920x1080", "--precisions", "fp16"]).unwrap().matrix(&installed).unwrap();
        assert_eq!(
            hd.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["realesr-animevideov3-x2 fp16 1920x1080", "realesr-animevideov3-x4 fp16 1920x1080"]
        );
        assert!(args(&["--sizes", "640x360"]).unwrap().matrix(&installed).is_err());
        let named = args(&["--models", "a,b", "--precisions", "fp32", "--sizes", "64x48,32x32"]).unwrap();
        assert_eq!(named.matrix(&installed).unwrap().len(), 4);
    }

    #[test]
    fn models_are_names_or_paths_resolved_once_each() {
        let resolved = std::cell::RefCell::new(Vec::new());
        let counting = |given: &str| {
            resolved.borrow_mut().push(given.to_string());
            installed(given)
        };
        let a = args(&["--models", "/tmp/my model.onnx,x2", "--precisions", "fp16,fp32", "--sizes", "64x48"]).unwrap();
        let m = a.matrix(&counting).unwrap();
        assert_eq!(*resolved.borrow(), ["/tmp/my model.onnx", "x2"]);
        assert_eq!(
            m.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["my model fp16 64x48", "my model fp32 64x48", "x2 fp16 64x48", "x2 fp32 64x48"]
        );
        assert_eq!(m[0].model.path, PathBuf::from("/tmp/my model.onnx"));
        let missing = |given: &str| -> Result<PathBuf> { bail!("model {given}: no such file") };
        let e = args(&["--models", "nope"]).unwrap().matrix(&missing).unwrap_err().to_string();
        assert_eq!(e, "model nope: no such file");
    }

    #[test]
    fn a_warm_up_that_leaves_no_frames_is_refused() {
        let e = args(&["--frames", "20"]).unwrap().settings().unwrap_err().to_string();
        assert!(e.contains("--frames 20 leaves no frames") && e.contains("20 frames of warm-up"), "{e}");
        let s = args(&["--frames", "21"]).unwrap().settings().unwrap();
        assert_eq!(s.model_runs(), 1);
        assert_eq!(args(&[]).unwrap().settings().unwrap().model_runs(), MAX_MODEL_RUNS);
    }

    #[test]
    fn a_soak_takes_one_configuration() {
        let c = args(&["--soak", "200"]).unwrap().soak_config(&installed).unwrap();
        assert_eq!(c.to_string(), "realesr-animevideov3-x2 fp16 1920x1080");
        let c = args(&["--soak", "200", "--models", "m", "--sizes", "64x48"]).unwrap().soak_config(&installed).unwrap();
        assert_eq!(c.to_string(), "m fp16 64x48");
        assert!(args(&["--soak", "200", "--sizes", "64x48,32x32"]).unwrap().soak_config(&installed).is_err());
    }
}
