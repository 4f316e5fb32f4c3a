// SPDX-License-Identifier: MPL-2.0
//! From the command line to checked jobs: inputs expanded (folders, globs, several files), each paired with its
//! output, read (sizes, streams), given its model and size, and its encoder configured, all before anything runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::cli::{EncodeArgs, ModelArgs, RunArgs};
use crate::encoder::EncoderSettings;
use crate::job::{ImageJob, Job, Upscale, VideoJob, VideoOutput};
use crate::media::{self, MediaInfo};
use crate::models::Model;
use crate::output::{self, ImageFormat, Target};
use crate::range::Range;
use crate::size::{SizePlan, SizeRequest};
use crate::{report, signals};

/// An input file and what it holds, by its name.
struct Input {
    path: PathBuf,
    image: Option<ImageFormat>,
}

/// Files named by `-i`: files as they are, folders by their images and videos (sorted, not recursive), patterns
/// (`*.png`, quoted so the shell left them) by what they match. True in the second value when a folder or pattern
/// was expanded (the output is then a folder).
fn expand(args: &[PathBuf]) -> Result<(Vec<Input>, bool), String> {
    let mut inputs = Vec::new();
    let mut expanded = false;
    for arg in args {
        let mut add = |path: PathBuf| inputs.push(Input { image: ImageFormat::from_path(&path), path });
        match std::fs::metadata(arg) {
            Ok(m) if m.is_dir() => {
                expanded = true;
                let mut found: Vec<PathBuf> = std::fs::read_dir(arg)
                    .map_err(|e| format!("{}: {e}", arg.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && (ImageFormat::from_path(p).is_some() || output::is_video_name(p)))
                    .collect();
                if found.is_empty() {
                    return Err(format!("{}: no images or videos in this folder", arg.display()));
                }
                found.sort();
                found.into_iter().for_each(add);
            }
            Ok(m) if m.is_file() => {
                std::fs::File::open(arg).map_err(|e| format!("{}: {e}", arg.display()))?;
                add(arg.clone());
            }
            Ok(_) => return Err(format!("{}: not a file", arg.display())),
            Err(e) => {
                let pattern = arg.to_str().filter(|s| s.contains(['*', '?', '[']));
                let Some(pattern) = pattern else {
                    return Err(format!("{}: {e}", arg.display()));
                };
                let paths = glob::glob(pattern).map_err(|e| format!("{pattern}: not a valid pattern ({e})"))?;
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
                if found.is_empty() {
                    return Err(format!("{pattern}: no file matches"));
                }
                expanded = true;
                found.sort();
                found.into_iter().for_each(add);
            }
        }
    }
    Ok((inputs, expanded))
}

fn ends_with_separator(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().last() == Some(&b'/')
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon =
        |p: &Path| p.canonicalize().ok().or_else(|| Some(output::parent(p).canonicalize().ok()?.join(p.file_name()?)));
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

/// The output of `input` inside the folder `dir`: the same name; videos keep their container when vfupscale
/// writes it, else become .mkv.
fn output_in(dir: &Path, input: &Input) -> PathBuf {
    let stem = input.path.file_stem().unwrap_or(OsStr::new("out"));
    let keep = input.image.is_some() || output::muxer_for(&input.path).is_some();
    let ext = if keep { input.path.extension().unwrap_or_default() } else { OsStr::new("mkv") };
    dir.join(stem).with_extension(ext)
}

/// The models, sizes and backend options shared by every job.
pub struct Common {
    pub model: Model,
    pub size: SizeRequest,
    pub args: ModelArgs,
    pub gpu: bool,
}

impl Common {
    pub fn new(model: &ModelArgs, size: &crate::cli::SizeArgs) -> Result<Common, String> {
        let gpu = model.backend != vfupscale::BackendChoice::Cpu && vfupscale::cuda::driver_status().is_ok();
        Ok(Common {
            model: Model::resolve(model.model.as_deref())?,
            size: SizeRequest::from_args(size)?,
            args: model.clone(),
            gpu,
        })
    }

    /// The element's settings for a frame of `input` pixels (`even`: sides of 4:2:0 video).
    pub fn upscale(&self, input: (u32, u32), even: bool) -> Result<Upscale, String> {
        let target = self.size.target(input, even)?;
        let model = match target {
            Some(t) => self.model.clone().covering(SizeRequest::needed_scale(input, t))?,
            None => self.model.clone(),
        };
        let size = SizePlan::new(input, model.scale, target);
        Ok(Upscale {
            model,
            backend: self.args.backend.name(),
            precision: self.args.precision.name(),
            device: self.args.device,
            classic_method: self.args.classic_method.name(),
            strength: self.args.strength,
            fallback: self.args.fallback.name(),
            temporal_stability: self.args.temporal_stability,
            size,
            gpu: self.gpu,
        })
    }
}

/// Settings of the video encoder for a source of `source_depth` bits, configured once to check them (and the
/// container) before the run.
pub fn encoder_for(args: &EncodeArgs, gpu: bool, source_depth: u32, muxer: &str) -> Result<EncoderSettings, String> {
    let settings = EncoderSettings::from_args(args, gpu, source_depth);
    let element = settings.build()?;
    settings.check(&element, Some(muxer))?;
    Ok(settings)
}

/// Every job of the command line, checked.
pub fn plan(args: &RunArgs) -> Result<Vec<Job>, String> {
    let out = args.output.as_deref().ok_or("missing -o OUTPUT (see vfupscale --help)")?;
    let (inputs, expanded) = expand(&args.inputs)?;
    let to_folder = expanded || inputs.len() > 1 || ends_with_separator(out);
    if to_folder && out.is_file() {
        return Err(format!("{}: not a folder (several inputs need -o FOLDER/)", out.display()));
    }
    if !to_folder && out.is_dir() {
        let name = inputs[0].path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        return Err(format!(
            "{}: is a folder (write {}/ to put {name} inside it)",
            out.display(),
            out.display().to_string().trim_end_matches('/')
        ));
    }
    let common = Common::new(&args.model, &args.size)?;
    let encode_given = args.encode.encoder != Default::default()
        || args.encode.crf.is_some()
        || args.encode.bitrate.is_some()
        || args.encode.preset.is_some()
        || !args.encode.encoder_options.is_empty()
        || args.encode.chroma != Default::default()
        || args.encode.bit_depth.is_some();
    let mut jobs = Vec::with_capacity(inputs.len());
    let mut warned_encoder = false;
    for input in &inputs {
        if let Some(signal) = signals::received() {
            return Err(format!("interrupted by {}", signals::name(signal)));
        }
        let path = if to_folder { output_in(out, input) } else { out.to_path_buf() };
        let target = Target::from_path(&path)?;
        check_target(&input.path, &target, args.overwrite, to_folder)?;
        let job = match (input.image, target) {
            (Some(_), Target::Image { path, format }) => {
                let dims = image::image_dimensions(&input.path)
                    .map_err(|e| format!("{}: not an image vfupscale can read ({e})", input.path.display()))?;
                Job::Image(Box::new(ImageJob {
                    input: input.path.clone(),
                    output: path,
                    format,
                    upscale: common.upscale(dims, false)?,
                }))
            }
            (Some(_), _) => {
                return Err(format!(
                    "{}: an image gives an image: write -o NAME{{{}}}",
                    input.path.display(),
                    output::IMAGES.replace(", ", ",")
                ));
            }
            (None, Target::Image { .. }) => {
                return Err(format!(
                    "{}: a video gives many frames: write -o FOLDER/%06d.png for an image sequence, or use \
                     `vfupscale preview` for one frame",
                    path.display()
                ));
            }
            (None, target) => {
                let media = media::probe(&input.path)?;
                let output = match target {
                    Target::Video { path, muxer } => {
                        let encoder = encoder_for(&args.encode, common.gpu, media.video.bit_depth, muxer)?;
                        VideoOutput::File { path, muxer, encoder }
                    }
                    Target::Sequence { dir, pattern, format } => {
                        if encode_given && !warned_encoder {
                            report::warn(
                                "--encoder, --crf, --bitrate, --preset, -e, --chroma and --bit-depth have no effect on image sequences",
                            );
                            warned_encoder = true;
                        }
                        VideoOutput::Sequence { dir, pattern, format }
                    }
                    Target::Image { .. } => unreachable!("refused above"),
                };
                video_job(&input.path, media, &common, output)?
            }
        };
        if encode_given && matches!(job, Job::Image(_)) && !warned_encoder {
            report::warn(
                "--encoder, --crf, --bitrate, --preset, -e, --chroma and --bit-depth have no effect on images",
            );
            warned_encoder = true;
        }
        jobs.push(job);
    }
    // folders are made once every job is known to be possible
    let mut dirs: Vec<&Path> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Video(v) => match &v.output {
                VideoOutput::Sequence { dir, .. } => Some(dir.as_path()),
                _ => None,
            },
            Job::Image(_) => None,
        })
        .collect();
    if to_folder {
        dirs.push(out);
    }
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    }
    Ok(jobs)
}

pub fn video_job(input: &Path, media: MediaInfo, common: &Common, output: VideoOutput) -> Result<Job, String> {
    let upscale = common.upscale((media.video.width, media.video.height), true)?;
    Ok(Job::Video(Box::new(VideoJob {
        input: input.to_path_buf(),
        media,
        upscale,
        output,
        range: Range::All,
        copy_streams: true,
        gpu: common.gpu,
    })))
}

/// The output may be written: not the input, not there already (unless -y), in a folder that exists (or is made:
/// `made`, and a sequence's folder).
fn check_target(input: &Path, target: &Target, overwrite: bool, made: bool) -> Result<(), String> {
    let (path, first) = match target {
        Target::Video { path, .. } | Target::Image { path, .. } => (path.clone(), path.clone()),
        Target::Sequence { dir, pattern, .. } => (dir.join(pattern), dir.join(Target::frame_name(pattern, 1))),
    };
    if same_file(input, &first) {
        return Err(format!("{}: the output would overwrite the input", path.display()));
    }
    if first.is_dir() {
        return Err(format!("{}: is a folder", first.display()));
    }
    // the output an interrupted run wrote is finished by running the same command again
    if first.exists() && !overwrite && !crate::segments::is_partial_output(&first) {
        return Err(format!("{} exists (use -y to replace it)", first.display()));
    }
    let dir = output::parent(&path);
    if !made && !matches!(target, Target::Sequence { .. }) && !dir.is_dir() {
        let why = if dir.exists() { "not a folder" } else { "No such file or directory" };
        return Err(format!("cannot write in {}: {why}", dir.display()));
    }
    Ok(())
}
