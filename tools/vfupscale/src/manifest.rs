// SPDX-License-Identifier: MPL-2.0
//! The work folder of a segmented run, `.OUT.vfupscale-work/` beside the output (the same file system, so every
//! rename is atomic): `manifest.json` (what was asked, the source it was asked of, the segment plan),
//! `timeline.json` (the source's frames), and per finished segment `seg-NNNNN.mkv` with its record
//! `seg-NNNNN.json` (range, frame count, SHA-256). Every file is written under a temporary name, flushed to disk and
//! renamed, and a segment's record is written after its file: a record that verifies is a finished segment, whatever
//! happened to the process (Ctrl+C, a crash, `kill -9`, a power cut). Each segment has its own record, so workers
//! on other machines (Ray) never write the same file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::output;
use crate::report::Facts;
use crate::timeline::Timeline;

/// The manifest's format; another one is not resumed.
pub const VERSION: u32 = 1;

/// A path in JSON: text when it is UTF-8, else its bytes in hex (file names need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathText {
    Text(String),
    Bytes { hex: String },
}

impl From<&Path> for PathText {
    fn from(p: &Path) -> PathText {
        match p.to_str() {
            Some(s) => PathText::Text(s.to_string()),
            None => {
                PathText::Bytes { hex: p.as_os_str().as_encoded_bytes().iter().map(|b| format!("{b:02x}")).collect() }
            }
        }
    }
}

impl PathText {
    pub fn path(&self) -> PathBuf {
        match self {
            PathText::Text(s) => PathBuf::from(s),
            PathText::Bytes { hex } => {
                let bytes: Vec<u8> =
                    (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
                // SAFETY: the bytes are those `as_encoded_bytes` gave for a path on this platform (Unix: any bytes).
                PathBuf::from(unsafe { OsString::from_encoded_bytes_unchecked(bytes) })
            }
        }
    }
}

/// What was asked: every choice that shapes the output, as the command line gave it (names of enum values), so a
/// worker rebuilds the same job and a resumed run with other settings is told what differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub input: PathText,
    pub output: PathText,
    pub model: Option<PathText>,
    pub precision: String,
    pub backend: String,
    pub classic_method: String,
    pub strength: f64,
    pub fallback: String,
    pub scale: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: Option<(u32, u32)>,
    /// The encoder element chosen for the output (never `auto`: every segment must use the same one).
    pub encoder: String,
    pub crf: Option<u32>,
    pub bitrate: Option<u32>,
    pub preset: Option<String>,
    pub encoder_options: Vec<(String, String)>,
    pub chroma: String,
    /// `--bit-depth` (None: the source's).
    pub bit_depth: Option<u32>,
    /// `--frames` (None: the whole video).
    pub frames: Option<String>,
    /// `--segment-frames` (None: chosen from the video's length).
    pub segment_frames: Option<u64>,
}

/// The source file as it was when planned: a different file (or the same one changed) is not resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceId {
    pub bytes: u64,
    pub modified_ns: u128,
}

impl SourceId {
    pub fn of(path: &Path) -> Result<SourceId, String> {
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        Ok(SourceId { bytes: m.len(), modified_ns: modified.map_or(0, |d| d.as_nanos()) })
    }
}

/// One segment of the plan: frames `start..end` of the timeline, decoded from the keyframe at stream time `seek`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPlan {
    pub index: usize,
    pub start: u64,
    pub end: u64,
    pub seek: Option<u64>,
}

/// An output written after an interrupted run (the frames finished then): a later run of the same command replaces
/// it without `-y`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialOutput {
    pub bytes: u64,
    pub modified_ns: u128,
    pub frames: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub request: Request,
    pub source: SourceId,
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// SHA-256 of `timeline.json`.
    pub timeline_sha256: String,
    /// The frames of the output: `start..end` of the timeline.
    pub start: u64,
    pub end: u64,
    pub segments: Vec<SegmentPlan>,
    pub partial: Option<PartialOutput>,
}

/// A finished (or, after a signal, partial) segment: its file and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub index: usize,
    pub start: u64,
    /// End of the plan's range; frames after `reached` were not upscaled (a partial segment).
    pub end: u64,
    pub reached: u64,
    /// Encoded frames in the file.
    pub frames: u64,
    /// Timeline indices in `start..reached` the decoder did not give (left out, and said so).
    pub skipped: Vec<u64>,
    /// For each packet in decode order, its place in presentation order among the segment's frames.
    pub order: Vec<u64>,
    /// Caps of the encoded video (what the final mux is given).
    pub caps: String,
    pub bytes: u64,
    pub sha256: String,
    /// SHA-256 of the manifest's request when the segment was made.
    pub request_sha256: String,
    pub facts: Facts,
    pub seconds: f64,
}

impl SegmentRecord {
    /// The timeline indices of the frames in the file, in presentation order.
    pub fn present(&self) -> Vec<u64> {
        (self.start..self.reached).filter(|i| self.skipped.binary_search(i).is_err()).collect()
    }
}

/// `.NAME.vfupscale-work` beside `output`.
pub fn work_dir(output: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(output.file_name().unwrap_or_default());
    name.push(".vfupscale-work");
    output::parent(output).join(name)
}

pub fn manifest_path(work: &Path) -> PathBuf {
    work.join("manifest.json")
}

pub fn timeline_path(work: &Path) -> PathBuf {
    work.join("timeline.json")
}

/// `seg-NNNNN.mkv` and `seg-NNNNN.json` (`partial`: `seg-NNNNN.partial.mkv`, … after a signal).
pub fn segment_paths(work: &Path, index: usize, partial: bool) -> (PathBuf, PathBuf) {
    let tag = if partial { ".partial" } else { "" };
    (work.join(format!("seg-{index:05}{tag}.mkv")), work.join(format!("seg-{index:05}{tag}.json")))
}

/// Writes `bytes` to `path` atomically: a temporary file (`.NAME.vfupscale-PID.part`, removed by later runs if this
/// one is killed), flushed, renamed, and the folder flushed so the rename survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let part = output::Part::file(path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(part.path())
        .map_err(|e| format!("{}: {e}", part.path().display()))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
    part.commit(path)?;
    sync_dir(output::parent(path))
}

/// Flushes a file (its contents) to disk.
pub fn sync_file(path: &Path) -> Result<(), String> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Flushes a folder (its entries: renames) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))
}

/// SHA-256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("plain data serializes")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a record of this vfupscale ({e})", path.display()))
}

impl Manifest {
    pub fn load(work: &Path) -> Result<Manifest, String> {
        let m: Manifest = read_json(&manifest_path(work))?;
        if m.version != VERSION {
            return Err(format!("{}: made by another version of vfupscale", manifest_path(work).display()));
        }
        Ok(m)
    }

    pub fn save(&self, work: &Path) -> Result<(), String> {
        write_atomic(&manifest_path(work), &to_json(self))
    }

    /// The fingerprint segments record, so a segment made for other settings is never taken.
    pub fn request_sha256(&self) -> String {
        sha256_bytes(&to_json(&(&self.request, &self.source, &self.model_sha256, &self.timeline_sha256)))
    }

    /// The timeline, checked against the manifest.
    pub fn timeline(&self, work: &Path) -> Result<Timeline, String> {
        let path = timeline_path(work);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if sha256_bytes(&bytes) != self.timeline_sha256 {
            return Err(format!("{}: does not match the manifest", path.display()));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The record of segment `index`, if its file is there and matches it (size and SHA-256).
    pub fn verified_segment(&self, work: &Path, index: usize) -> Result<SegmentRecord, String> {
        let plan = self.segments.get(index).ok_or_else(|| format!("no segment {index} in the plan"))?;
        let (file, record_path) = segment_paths(work, index, false);
        let record: SegmentRecord = read_json(&record_path)?;
        if record.request_sha256 != self.request_sha256() {
            return Err(format!("segment {index} was made with other settings"));
        }
        if (record.index, record.start, record.end, record.reached) != (index, plan.start, plan.end, plan.end) {
            return Err(format!("segment {index}'s record does not match the plan"));
        }
        let (sha, bytes) = sha256_file(&file)?;
        if (sha.as_str(), bytes) != (record.sha256.as_str(), record.bytes) {
            return Err(format!("{}: its contents do not match its record (damaged or incomplete)", file.display()));
        }
        Ok(record)
    }
}

pub fn load_record(path: &Path) -> Result<SegmentRecord, String> {
    read_json(path)
}

/// What differs between two requests, as `name: old → new`.
pub fn differences(old: &Request, new: &Request) -> Vec<String> {
    let as_map = |r: &Request| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(r) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (as_map(old), as_map(new));
    let shown = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "unset".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    a.keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{}: {} → {}", k.replace('_', "-"), shown(a.get(k)), shown(b.get(k))))
        .collect()
}

/// An exclusive lock on a work folder, held while a run writes it: a second run on the same output is refused
/// instead of writing the same segments.
#[derive(Debug)]
pub struct WorkLock(#[allow(dead_code)] std::fs::File);

impl WorkLock {
    pub fn take(work: &Path) -> Result<WorkLock, String> {
        use std::os::fd::AsRawFd;
        let path = work.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; LOCK_NB never blocks, the lock goes with the file.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(format!(
                "another vfupscale run is writing this output (its work folder {} is in use)",
                work.display()
            ));
        }
        Ok(WorkLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_survive_json_whatever_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/out-\xfe.mkv"));
        for p in [Path::new("/tmp/a b.mkv"), odd] {
            let text = PathText::from(p);
            let back: PathText = serde_json::from_slice(&to_json(&text)).unwrap();
            assert_eq!(back.path(), p);
        }
        assert_eq!(work_dir(odd).as_os_str().as_bytes(), b"/tmp/.out-\xfe.mkv.vfupscale-work");
        assert_eq!(work_dir(Path::new("o.mkv")), PathBuf::from("./.o.mkv.vfupscale-work"));
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic(&path, b"[1]").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"[1]");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(sha256_file(&path).unwrap(), (sha256_bytes(b"[1]"), 3));
    }

    #[test]
    fn differences_name_the_settings() {
        let r = Request {
            input: PathText::Text("in.mkv".into()),
            output: PathText::Text("out.mkv".into()),
            model: None,
            precision: "auto".into(),
            backend: "auto".into(),
            classic_method: "lanczos".into(),
            strength: 1.0,
            fallback: "none".into(),
            scale: None,
            width: None,
            height: None,
            size: None,
            encoder: "x264enc".into(),
            crf: Some(20),
            bitrate: None,
            preset: None,
            encoder_options: vec![],
            chroma: "420".into(),
            bit_depth: None,
            frames: None,
            segment_frames: None,
        };
        let other = Request { crf: Some(30), model: Some(PathText::Text("m".into())), ..r.clone() };
        assert_eq!(differences(&r, &other), vec!["crf: 20 → 30", "model: unset → m"]);
        assert!(differences(&r, &r).is_empty());
    }

    #[test]
    fn a_locked_work_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = WorkLock::take(dir.path()).unwrap();
        assert!(WorkLock::take(dir.path()).unwrap_err().contains("another vfupscale run"));
        drop(held);
        assert!(WorkLock::take(dir.path()).is_ok());
    }
}
