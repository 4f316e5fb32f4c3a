//! `vfupscale`: upscale a video file with a super-resolution model.
//!
//! ```text
//! vfupscale -i IN -o OUT [-m MODEL] [-p auto|fp16|fp32] [-d DEVICE]
//!           [--backend auto|native|tensorrt|cuda|cpu|classic] [--scale N] [--classic-method lanczos|bicubic]
//!           [--strength S] [--fallback none|classic] [--temporal-stability T]
//!           [--encoder auto|nvh265enc|nvh264enc|x265enc|x264enc] [--quality N | --bitrate KBPS] [-y] [--quiet]
//! vfupscale info
//! ```
//! On a machine with an NVIDIA GPU it decodes with NVDEC, upscales in CUDA memory and encodes with NVENC when the
//! GPU has it; elsewhere it decodes, upscales and encodes on the CPU. Audio and subtitle streams are copied.

mod info;
mod pipeline;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipeline::{Encoder, Job};

const USAGE: &str = "usage:
  vfupscale -i IN -o OUT [options]     upscale a video file
  vfupscale info                        GPU, decoders/encoders, ONNX Runtime providers, default model

options:
  -i, --input FILE        input video (any container/codec GStreamer can demux and decode)
  -o, --output FILE       output file; the container follows the extension: .mp4, .mkv, .mov
  -m, --model MODEL       ONNX model file, or the name of an installed model (vfupscale-model list);
                          default: realesr-animevideov3-x2
  -p, --precision P       auto (fp16 on GPU, fp32 on CPU), fp16, fp32
  -d, --device N          CUDA device (default 0)
      --backend B         auto (native kernels for SRVGGNetCompact models, else TensorRT, CUDA, CPU),
                          native, tensorrt, cuda, cpu, or classic (Lanczos/bicubic scaling, no model)
      --scale N           scale factor of --backend classic (default 2; with a model: the model's)
      --classic-method M  lanczos (default) or bicubic: the classic filter
      --strength S        AI strength 0..1: S x model + (1 - S) x classic (default 1)
      --fallback F        none (default) or classic: classic output, with a warning, when the model cannot run
      --temporal-stability T  0..1: static regions keep this much of the previous output, against flicker (default 0)
      --encoder E         auto, nvh265enc, nvh264enc, x265enc, x264enc
      --quality N         constant quality: encoder quantizer, lower is better (default 20)
      --bitrate KBPS      target bitrate instead of constant quality
  -y, --overwrite         replace OUT if it exists
  -q, --quiet             no progress output
  -h, --help              this text

Ctrl+C finishes a valid file of what was upscaled so far; a second Ctrl+C aborts and removes it.";

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number(text: &str, flag: &str) -> Result<u32, String> {
    text.parse().map_err(|_| format!("{flag}: {text:?} is not a number"))
}

/// A number in 0..=1.
fn unit(text: &str, flag: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{flag} takes a number from 0 to 1, not {text:?}")),
    }
}

/// One of `names`.
fn choice(text: &str, flag: &str, names: &[&str]) -> Result<String, String> {
    match names.contains(&text) {
        true => Ok(text.to_string()),
        false => Err(format!("{flag} takes {}, not {text:?}", names.join(" or "))),
    }
}

fn parse(args: &[String]) -> Result<Job, String> {
    let mut input = None;
    let mut output = None;
    let mut job = Job::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" | "--input" => input = Some(PathBuf::from(value(&mut it, a)?)),
            "-o" | "--output" => output = Some(PathBuf::from(value(&mut it, a)?)),
            "-m" | "--model" => job.model = Some(value(&mut it, a)?.clone()),
            "-p" | "--precision" => {
                let v = value(&mut it, a)?;
                match v.as_str() {
                    "auto" | "fp16" | "fp32" => job.precision = v.clone(),
                    _ => return Err(format!("--precision takes auto, fp16 or fp32, not {v:?}")),
                }
            }
            "-d" | "--device" => job.device = number(value(&mut it, a)?, a)?,
            "--backend" => {
                let v = value(&mut it, a)?;
                match v.as_str() {
                    "auto" | "native" | "tensorrt" | "cuda" | "cpu" | "classic" => job.backend = v.clone(),
                    _ => {
                        return Err(format!("--backend takes auto, native, tensorrt, cuda, cpu or classic, not {v:?}"));
                    }
                }
            }
            "--scale" => job.scale = Some(number(value(&mut it, a)?, a)?),
            "--classic-method" => job.classic_method = choice(value(&mut it, a)?, a, &["lanczos", "bicubic"])?,
            "--strength" => job.strength = unit(value(&mut it, a)?, a)?,
            "--fallback" => job.fallback = choice(value(&mut it, a)?, a, &["none", "classic"])?,
            "--temporal-stability" => job.temporal_stability = unit(value(&mut it, a)?, a)?,
            "--encoder" => job.encoder = Encoder::parse(value(&mut it, a)?)?,
            "--quality" => job.quality = Some(number(value(&mut it, a)?, a)?),
            "--bitrate" => job.bitrate = Some(number(value(&mut it, a)?, a)?),
            "-y" | "--overwrite" => job.overwrite = true,
            "-q" | "--quiet" => job.quiet = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?} (see vfupscale --help)")),
        }
    }
    if job.quality.is_some() && job.bitrate.is_some() {
        return Err("--quality and --bitrate exclude each other".into());
    }
    job.input = input.ok_or("missing -i INPUT (see vfupscale --help)")?;
    job.output = output.ok_or("missing -o OUTPUT (see vfupscale --help)")?;
    Ok(job)
}

/// The model argument as a path: an existing file, or an installed model's name.
pub fn resolve_model(model: Option<&str>) -> Result<PathBuf, String> {
    let Some(m) = model else {
        let p = vfupscale::models::default_model_path();
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "the default model {} is not installed ({}): run `vfupscale-model fetch`",
                vfupscale::models::DEFAULT_MODEL,
                p.display()
            ))
        };
    };
    let as_path = Path::new(m);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    let installed = vfupscale::models::model_path(m);
    if !m.contains('/') && installed.exists() {
        return Ok(installed);
    }
    Err(format!(
        "model {m}: no such file, and no installed model of that name in {}",
        vfupscale::models::models_dir().display()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("info") {
        return match info::print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vfupscale: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let job = match parse(&args) {
        Ok(job) => job,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vfupscale: {e}");
            return ExitCode::from(2);
        }
    };
    match pipeline::run(job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vfupscale: error: {e}");
            ExitCode::FAILURE
        }
    }
}
