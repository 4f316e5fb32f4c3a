// SPDX-License-Identifier: MPL-2.0
//! What an output path asks for (a container, an image format, an image sequence), and writing it safely: every
//! output is written under a temporary `.NAME.vfupscale-PID.part` name beside it and renamed when complete; the
//! [`Part`] guard removes it on every other way out, and [`clean_stale`] removes those of runs that were killed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Image formats, in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    Tiff,
}

impl ImageFormat {
    pub fn from_path(path: &Path) -> Option<Self> {
        match extension(path).as_str() {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            "tif" | "tiff" => Some(Self::Tiff),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WebP",
            Self::Tiff => "TIFF",
        }
    }

    pub fn has_alpha(self) -> bool {
        self != Self::Jpeg
    }
}

/// Containers by extension.
pub fn muxer_for(path: &Path) -> Option<&'static str> {
    match extension(path).as_str() {
        "mp4" | "m4v" => Some("mp4mux"),
        "mkv" => Some("matroskamux"),
        "mov" => Some("qtmux"),
        "webm" => Some("webmmux"),
        _ => None,
    }
}

pub const CONTAINERS: &str = ".mp4, .mkv, .mov, .webm";
pub const IMAGES: &str = ".png, .jpg, .webp, .tif";

/// Extensions of inputs taken from folders: images by their format, videos by a list of common containers.
pub fn is_video_name(path: &Path) -> bool {
    matches!(
        extension(path).as_str(),
        "mp4"
            | "m4v"
            | "mkv"
            | "mov"
            | "webm"
            | "avi"
            | "ts"
            | "m2ts"
            | "mts"
            | "mpg"
            | "mpeg"
            | "flv"
            | "wmv"
            | "ogv"
            | "3gp"
            | "h264"
            | "h265"
            | "264"
            | "265"
            | "y4m"
    )
}

fn extension(path: &Path) -> String {
    path.extension().and_then(OsStr::to_str).map(str::to_ascii_lowercase).unwrap_or_default()
}

/// One output.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A video file in the container its extension names.
    Video { path: PathBuf, muxer: &'static str },
    /// One image.
    Image { path: PathBuf, format: ImageFormat },
    /// Numbered images `dir/PATTERN` (printf-style `%d` / `%0Nd`, numbered from 1).
    Sequence { dir: PathBuf, pattern: String, format: ImageFormat },
}

impl Target {
    /// Reads an output path (not a folder).
    pub fn from_path(path: &Path) -> Result<Target, String> {
        let name = path.file_name().ok_or_else(|| format!("{}: not a file name", path.display()))?;
        if let Some(pattern) = name.to_str().filter(|n| sequence_index(n).is_some()) {
            let format = ImageFormat::from_path(path)
                .ok_or_else(|| format!("{}: an image sequence needs an image extension ({IMAGES})", path.display()))?;
            let dir = parent(path).to_path_buf();
            return Ok(Target::Sequence { dir, pattern: pattern.to_string(), format });
        }
        if let Some(format) = ImageFormat::from_path(path) {
            return Ok(Target::Image { path: path.to_path_buf(), format });
        }
        match muxer_for(path) {
            Some(muxer) => Ok(Target::Video { path: path.to_path_buf(), muxer }),
            None if path.extension().is_none() => Err(format!(
                "{}: no file extension to choose a format from (containers {CONTAINERS}; images {IMAGES})",
                path.display()
            )),
            None => Err(format!(
                "{}: unsupported container .{} (use {CONTAINERS}, or {IMAGES} for images)",
                path.display(),
                extension(path)
            )),
        }
    }

    /// File name of frame `index` of a sequence.
    pub fn frame_name(pattern: &str, index: u64) -> String {
        let Some((start, end, width)) = sequence_index(pattern) else {
            return pattern.to_string();
        };
        format!("{}{index:0width$}{}", &pattern[..start], &pattern[end..])
    }
}

/// Position and zero-padding of the one `%d` / `%0Nd` in a file name.
fn sequence_index(name: &str) -> Option<(usize, usize, usize)> {
    let start = name.find('%')?;
    let rest = &name[start + 1..];
    let digits = rest.find('d')?;
    let spec = &rest[..digits];
    if !spec.bytes().all(|b| b.is_ascii_digit()) || rest[digits + 1..].contains('%') {
        return None;
    }
    let width = if spec.is_empty() { 0 } else { spec.parse().ok()? };
    Some((start, start + 2 + digits, width))
}

pub fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

const PART_TAG: &str = ".vfupscale-";
const PART_SUFFIX: &str = ".part";

/// A temporary output beside its final place: a file, or a folder of sequence frames. Removed when dropped
/// unless [`Part::commit`] moved it into place.
pub struct Part {
    temp: PathBuf,
    is_dir: bool,
}

impl Part {
    /// `.NAME.vfupscale-PID.part` in the folder of `target`.
    pub fn file(target: &Path) -> Result<Part, String> {
        let temp = part_path(target)?;
        std::fs::File::create(&temp).map_err(|e| format!("cannot write in {}: {e}", parent(target).display()))?;
        Ok(Part { temp, is_dir: false })
    }

    /// `.frames.vfupscale-PID.part/` in `dir`, for the frames of a sequence.
    pub fn dir(dir: &Path) -> Result<Part, String> {
        let temp = part_path(&dir.join("frames"))?;
        std::fs::create_dir(&temp).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
        Ok(Part { temp, is_dir: true })
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Moves the file to `target`; a sequence's frames into `target` (a folder). Returns the files written.
    pub fn commit(self, target: &Path) -> Result<Vec<PathBuf>, String> {
        if !self.is_dir {
            std::fs::rename(&self.temp, target).map_err(|e| format!("{}: {e}", target.display()))?;
            return Ok(vec![target.to_path_buf()]);
        }
        let mut names: Vec<_> = std::fs::read_dir(&self.temp)
            .map_err(|e| format!("{}: {e}", self.temp.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        let mut written = Vec::with_capacity(names.len());
        for name in names {
            let to = target.join(&name);
            std::fs::rename(self.temp.join(&name), &to).map_err(|e| format!("{}: {e}", to.display()))?;
            written.push(to);
        }
        Ok(written)
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        // after a commit nothing is left to remove (a sequence's folder is empty)
        let _ = if self.is_dir { std::fs::remove_dir_all(&self.temp) } else { std::fs::remove_file(&self.temp) };
    }
}

fn part_path(target: &Path) -> Result<PathBuf, String> {
    let name = target.file_name().ok_or_else(|| format!("{}: not a file name", target.display()))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!("{PART_TAG}{}{PART_SUFFIX}", std::process::id()));
    Ok(parent(target).join(temp))
}

/// The process id in a `.NAME.vfupscale-PID.part` name.
fn part_pid(name: &OsStr) -> Option<i32> {
    let name = name.as_encoded_bytes();
    let body = name.strip_prefix(b".")?.strip_suffix(PART_SUFFIX.as_bytes())?;
    let tag = body.windows(PART_TAG.len()).rposition(|w| w == PART_TAG.as_bytes())?;
    let pid = std::str::from_utf8(&body[tag + PART_TAG.len()..]).ok()?;
    pid.bytes().all(|b| b.is_ascii_digit()).then(|| pid.parse().ok()).flatten()
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists; it sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the temporary outputs in `dir` left by runs whose process is gone; returns their names.
pub fn clean_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = part_pid(&entry.file_name()) else {
            continue;
        };
        if pid as u32 == std::process::id() || process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_extension() {
        assert_eq!(
            Target::from_path(Path::new("a/b.MKV")),
            Ok(Target::Video { path: "a/b.MKV".into(), muxer: "matroskamux" })
        );
        assert_eq!(
            Target::from_path(Path::new("x.jpeg")),
            Ok(Target::Image { path: "x.jpeg".into(), format: ImageFormat::Jpeg })
        );
        assert_eq!(
            Target::from_path(Path::new("out/%06d.png")),
            Ok(Target::Sequence { dir: "out".into(), pattern: "%06d.png".into(), format: ImageFormat::Png })
        );
        assert!(Target::from_path(Path::new("o.avi")).unwrap_err().contains("unsupported container .avi"));
        assert!(Target::from_path(Path::new("noext")).unwrap_err().contains("no file extension"));
        assert!(Target::from_path(Path::new("f%03d.mkv")).unwrap_err().contains("image sequence"));
    }

    #[test]
    fn sequence_names() {
        assert_eq!(Target::frame_name("%06d.png", 7), "000007.png");
        assert_eq!(Target::frame_name("f-%d.jpg", 12), "f-12.jpg");
        assert_eq!(sequence_index("100%.png"), None);
        assert_eq!(sequence_index("%d-%d.png"), None);
    }

    #[test]
    fn part_names_carry_the_pid() {
        let p = part_path(Path::new("dir/out.mkv")).unwrap();
        assert_eq!(p, PathBuf::from(format!("dir/.out.mkv.vfupscale-{}.part", std::process::id())));
        assert_eq!(part_pid(p.file_name().unwrap()), Some(std::process::id() as i32));
        assert_eq!(part_pid(OsStr::new(".a.vfupscale-x.part")), None);
        assert_eq!(part_pid(OsStr::new("a.vfupscale-12.part")), None);
        assert_eq!(part_pid(OsStr::new(".a.b.vfupscale-12.part")), Some(12));
    }

    #[test]
    fn stale_parts_of_dead_processes_go() {
        let dir = std::env::temp_dir().join(format!("vfupscale-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // a pid above the kernel's limit (4194304) never runs
        let dead = dir.join(".o.mkv.vfupscale-2147483600.part");
        let alive = dir.join(format!(".o.mkv.vfupscale-{}.part", std::process::id()));
        let other = dir.join("o.mkv");
        for p in [&dead, &alive, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(clean_stale(&dir), vec![dead.clone()]);
        assert!(!dead.exists() && alive.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
