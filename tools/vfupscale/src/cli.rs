// SPDX-License-Identifier: MPL-2.0
//! The command line: what a user can type, parsed by clap. Paths stay `PathBuf` (any bytes the system allows);
//! values are checked for their type and form here, against the chosen encoder and the input in `plan`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vfupscale::{BackendChoice, ClassicMethod, Fallback, Precision};

#[derive(Debug, Parser)]
#[command(
    name = "vfupscale",
    version,
    about = "Upscale videos and images with a super-resolution model (GPU when there is one, else the CPU)",
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Ctrl+C (or SIGTERM, SIGHUP) stops reading the input and finishes a valid file of what was \
                  upscaled so far; a second one aborts and removes it.\n\
                  Examples:\n  vfupscale -i in.mp4 -o out.mkv\n  vfupscale -i clip.mp4 -o out.mp4 --size 3840x2160 \
                  --encoder x265enc --crf 22\n  vfupscale -i photo.jpg -o photo.png\n  vfupscale -i photos/ -o big/\n  \
                  vfupscale -i in.mp4 -o frames/%06d.png\n  vfupscale preview -i in.mp4 --at 1:23 -o cmp.png"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// GPU, decoders and encoders, ONNX Runtime providers, installed models
    Info,
    /// One frame: the source scaled classically beside the model's output, to look before a long run
    Preview(PreviewArgs),
    /// Time decoding alone, decoding and upscaling, and the whole run on your own file
    Bench(BenchArgs),
    /// Segmented runs step by step, for drivers that spread the segments over machines (see python/vfupscale_ray)
    #[command(subcommand)]
    Segments(SegmentsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Plan a run (or find what an interrupted one finished) and print the plan as JSON
    Plan(Box<RunArgs>),
    /// Upscale one segment of a planned run into its work folder (prints progress as JSON with --progress json)
    Run(SegmentRunArgs),
    /// Join the finished segments into the output (checked, then renamed into place) and remove the work folder
    Merge(WorkArgs),
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// The run's work folder (`work_dir` in the plan)
    #[arg(long, value_name = "DIR")]
    pub work: PathBuf,
}

#[derive(Debug, Args)]
pub struct SegmentRunArgs {
    #[command(flatten)]
    pub work: WorkArgs,
    /// The segment's index in the plan
    #[arg(long, value_name = "K")]
    pub index: usize,
    /// CUDA device (default: the plan's)
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=255))]
    pub device: Option<u32>,
    #[arg(long, value_enum, default_value_t = ProgressMode::None)]
    pub progress: ProgressMode,
    /// Milliseconds between JSON progress objects
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true)]
    pub progress_ms: u64,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input files or folders (videos in any container GStreamer reads; PNG, JPEG, WebP, TIFF images)
    #[arg(short, long = "input", value_name = "IN", num_args = 1.., required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file (container or image format from the extension: .mp4 .mkv .mov .webm, .png .jpg .webp .tif),
    /// image sequence (frames/%06d.png), or folder (out/) for several inputs
    #[arg(short, long, value_name = "OUT", required = true)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub size: SizeArgs,
    #[command(flatten)]
    pub encode: EncodeArgs,
    /// Replace outputs that exist
    #[arg(short = 'y', long = "overwrite")]
    pub overwrite: bool,
    /// Print nothing but errors (same as --progress none, without the summary)
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress display: a bar on a terminal (plain lines elsewhere), plain lines, one JSON object per second on
    /// stdout, or nothing
    #[arg(long, value_enum, default_value_t = ProgressMode::Bar)]
    pub progress: ProgressMode,
    #[command(flatten)]
    pub segments: SegmentArgs,
}

/// Ranges, segments, resume and several GPUs (videos into a container).
#[derive(Debug, Args, Clone, Default)]
pub struct SegmentArgs {
    /// Only frames START:END (indices from 0, END exclusive: 10:20 is ten frames; 100: to the end)
    #[arg(long, value_name = "START:END", value_parser = crate::range::parse_frames)]
    pub frames: Option<crate::range::FrameRange>,
    /// Segments upscaled at the same time, each by its own pipeline (spread over --devices)
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,
    /// CUDA devices to spread the segments over, e.g. 0,1 (default: -d; --jobs defaults to one per device)
    #[arg(long, value_name = "N,…", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(0..=255))]
    pub devices: Vec<u32>,
    /// Frames per segment, the unit of work and of resume (default: about two minutes of video, less with --jobs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_frames: Option<u64>,
    /// Start over instead of keeping the finished segments of an interrupted run of the same command
    #[arg(long)]
    pub no_resume: bool,
}

/// Which model runs where.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// ONNX model file or installed model name (vfupscale-model list); default realesr-animevideov3-x2, or the
    /// model of its family whose scale covers the requested size
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Precision: auto (fp16 on GPU backends, fp32 on the CPU), fp16, fp32
    #[arg(short, long, value_name = "P", default_value_t = Precision::Auto, value_parser = named::<Precision>(Precision::names()))]
    pub precision: Precision,
    /// CUDA device
    #[arg(short, long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub device: u32,
    /// Inference backend: auto (native kernels for SRVGGNetCompact models, on Hopper also RRDBNet, waifu2x
    /// UpConv7 and CUNet, Real-CUGAN up2x/up3x/up4x; else TensorRT, CUDA, CPU)
    #[arg(long, value_name = "B", default_value_t = BackendChoice::Auto, value_parser = named::<BackendChoice>(BackendChoice::names()))]
    pub backend: BackendChoice,
    /// The classic filter (--backend classic, the strength blend, sizes below the model's)
    #[arg(long, value_name = "M", default_value_t = ClassicMethod::Lanczos, value_parser = named::<ClassicMethod>(ClassicMethod::names()))]
    pub classic_method: ClassicMethod,
    /// AI strength 0..1: S × the model's output + (1 − S) × classic scaling
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = unit)]
    pub strength: f64,
    /// What to output when the model cannot run: an error (none), or classic scaling with a warning
    #[arg(long, value_name = "F", default_value_t = Fallback::None, value_parser = named::<Fallback>(Fallback::names()))]
    pub fallback: Fallback,
    /// 0..1: how much static regions keep of the previous output, against the flicker of GAN models (0: off)
    #[arg(long, value_name = "T", default_value_t = 0.0, value_parser = unit)]
    pub temporal_stability: f64,
}

/// A number from 0 to 1.
fn unit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

/// The output size. Without any of these it is the input size times the model's scale.
#[derive(Debug, Args, Clone, Default)]
pub struct SizeArgs {
    /// Scale factor (e.g. 2, 1.5): the output is the input times FACTOR
    #[arg(short, long, value_name = "FACTOR", conflicts_with_all = ["width", "height", "size"])]
    pub scale: Option<f64>,
    /// Output width (the height follows the aspect ratio unless -H is given too)
    #[arg(short = 'W', long, value_name = "PX")]
    pub width: Option<u32>,
    /// Output height (the width follows the aspect ratio unless -W is given too)
    #[arg(short = 'H', long, value_name = "PX")]
    pub height: Option<u32>,
    /// Output size, e.g. 3840x2160
    #[arg(long, value_name = "WxH", value_parser = parse_size, conflicts_with_all = ["width", "height"])]
    pub size: Option<(u32, u32)>,
}

/// How the upscaled video is encoded.
#[derive(Debug, Args, Clone, Default)]
pub struct EncodeArgs {
    /// Video encoder (auto: NVENC when the GPU has it, else x264enc)
    #[arg(long, value_enum, default_value_t = EncoderChoice::Auto)]
    pub encoder: EncoderChoice,
    /// Constant quality (CRF-like; lower is better). Ranges: x264enc 0-50, x265enc 0-51, av1enc 0-63, NVENC 0-51
    #[arg(long, visible_alias = "quality", value_name = "N", conflicts_with = "bitrate")]
    pub crf: Option<u32>,
    /// Target bitrate in kbit/s instead of constant quality
    #[arg(long, value_name = "KBPS")]
    pub bitrate: Option<u32>,
    /// Encoder speed preset (x264enc/x265enc: ultrafast … placebo; av1enc: cpu-used 0-10; NVENC: its presets)
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Set a property of the encoder element (repeatable), e.g. -e key-int-max=120 -e option-string=aq-mode=3
    #[arg(short = 'e', long = "encoder-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub encoder_options: Vec<(String, String)>,
    /// Chroma subsampling of the encoded video
    #[arg(long, value_enum, default_value_t = Chroma::Yuv420)]
    pub chroma: Chroma,
    /// Bits per component of the encoded video (default: the source's, 10 for 10- and 12-bit sources, else 8)
    #[arg(long, value_name = "8|10", value_parser = parse_bit_depth)]
    pub bit_depth: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Input video or image
    #[arg(short, long, value_name = "IN")]
    pub input: PathBuf,
    /// Output image (.png, .jpg, .webp, .tif): the classically scaled source on the left, the model's output on the
    /// right
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Time of the frame (SECONDS, MM:SS or HH:MM:SS[.mmm]); default: the middle of the video
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<Duration>,
    /// Compare only this region of the source (WxH+X+Y, source pixels), enlarged
    #[arg(long, value_name = "WxH+X+Y", value_parser = parse_crop)]
    pub crop: Option<Crop>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub size: SizeArgs,
    /// Replace the output if it exists
    #[arg(short = 'y', long = "overwrite")]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Input video
    #[arg(short, long, value_name = "IN")]
    pub input: PathBuf,
    /// Frames to time in each stage
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub frames: u64,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub size: SizeArgs,
    #[command(flatten)]
    pub encode: EncodeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum EncoderChoice {
    #[default]
    Auto,
    Nvh265enc,
    Nvh264enc,
    #[value(alias = "x265")]
    X265enc,
    #[value(alias = "x264")]
    X264enc,
    #[value(alias = "av1")]
    Av1enc,
    /// FFV1, lossless (Matroska only)
    #[value(name = "ffv1", alias = "avenc_ffv1")]
    Ffv1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Chroma {
    /// 4:2:0, what players and hardware decoders expect
    #[default]
    #[value(name = "420")]
    Yuv420,
    /// 4:4:4 (the upscaler's output is 4:2:0: this stores it in a 4:4:4 profile without further loss)
    #[value(name = "444")]
    Yuv444,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Bar,
    Plain,
    Json,
    None,
}

/// A region of the source frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

/// A parser for one of the core's named values (`BackendChoice`, `Precision`, `ClassicMethod`, `Fallback`): its names are the possible values.
fn named<T>(names: Vec<&'static str>) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name: String| name.parse::<T>().map_err(|_| format!("{name:?} is not a known name")))
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text.split_once(['x', 'X', '×']).ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT"))?;
    let dim = |s: &str| s.trim().parse::<u32>().ok().filter(|&v| v > 0);
    match (dim(w), dim(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("{text:?} is not WIDTHxHEIGHT with positive numbers")),
    }
}

fn parse_crop(text: &str) -> Result<Crop, String> {
    let bad = || format!("{text:?} is not WxH+X+Y (e.g. 320x180+100+50)");
    let (size, offsets) = text.split_once('+').ok_or_else(bad)?;
    let (width, height) = parse_size(size).map_err(|_| bad())?;
    let (x, y) = offsets.split_once('+').ok_or_else(bad)?;
    let (x, y) = (x.parse().map_err(|_| bad())?, y.parse().map_err(|_| bad())?);
    Ok(Crop { width, height, x, y })
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `SECONDS[.frac]`, `MM:SS[.frac]` or `HH:MM:SS[.frac]`.
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a time (SECONDS, MM:SS or HH:MM:SS, e.g. 1:23.5)");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let seconds: f64 = parts.last().unwrap().parse().map_err(|_| bad())?;
    if !(0.0..60.0).contains(&seconds) && parts.len() > 1 || seconds < 0.0 || !seconds.is_finite() {
        return Err(bad());
    }
    let mut whole = 0u64;
    for p in &parts[..parts.len() - 1] {
        let v: u64 = p.parse().map_err(|_| bad())?;
        if whole > 0 && v >= 60 {
            return Err(bad());
        }
        whole = whole * 60 + v;
    }
    Ok(Duration::from_secs(whole * 60) + Duration::from_secs_f64(seconds))
}

fn parse_bit_depth(text: &str) -> Result<u32, String> {
    match text {
        "8" => Ok(8),
        "10" => Ok(10),
        _ => Err(format!("{text:?}: 8 or 10")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_crops() {
        assert_eq!(parse_size("3840x2160"), Ok((3840, 2160)));
        assert_eq!(parse_size("1920×1080"), Ok((1920, 1080)));
        assert!(parse_size("0x10").is_err() && parse_size("12").is_err() && parse_size("axb").is_err());
        assert_eq!(parse_crop("320x180+10+20"), Ok(Crop { width: 320, height: 180, x: 10, y: 20 }));
        assert!(parse_crop("320x180+10").is_err() && parse_crop("320x180").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("83"), Ok(Duration::from_secs(83)));
        assert_eq!(parse_time("1:23"), Ok(Duration::from_secs(83)));
        assert_eq!(parse_time("01:01:23.5"), Ok(Duration::from_millis(3_683_500)));
        assert!(parse_time("1:75").is_err() && parse_time("-3").is_err() && parse_time("1:2:3:4").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("=1").is_err() && parse_key_value("x").is_err());
    }

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
