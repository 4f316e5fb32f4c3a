// SPDX-License-Identifier: MPL-2.0
//! Where installed models live, which one is the default, and how a model the user names (a path or an installed
//! model's name) becomes a file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "realesr-animevideov3-x2";

/// Directory of installed models: `$VFUPSCALE_MODEL_DIR`, else `<data dir>/models`
/// (`~/.local/share/vfupscale/models` by default).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("VFUPSCALE_MODEL_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => crate::paths::data_dir().join("models"),
    }
}

/// Path of an installed model by name (`NAME.onnx` in [`models_dir`]), whether or not it exists.
pub fn model_path(name: &str) -> PathBuf {
    models_dir().join(format!("{name}.onnx"))
}

/// Path of the default model, whether or not it is installed.
pub fn default_model_path() -> PathBuf {
    model_path(DEFAULT_MODEL)
}

/// The model file for what a user gave: `None` is the default model; a path that exists is that path (the loader
/// says what it cannot read there); otherwise a bare name (no directory part, with or without `.onnx`) is an
/// installed model in [`models_dir`]. Anything else is an [`Error::ModelNotFound`] that says where it looked.
pub fn resolve(model: Option<&Path>) -> Result<PathBuf> {
    let Some(given) = model else {
        let path = default_model_path();
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::ModelNotFound {
                model: DEFAULT_MODEL.into(),
                reason: format!("the default model is not installed ({}): run `vfupscale-model fetch`", path.display()),
            })
        };
    };
    let missing = match std::fs::metadata(given) {
        Ok(_) => return Ok(given.to_path_buf()),
        Err(e) => e,
    };
    let bare_name = given.components().count() == 1 && !given.as_os_str().is_empty();
    if bare_name && let Some(name) = given.to_str() {
        let installed = model_path(name.strip_suffix(".onnx").unwrap_or(name));
        if installed.is_file() {
            return Ok(installed);
        }
    }
    let reason = if bare_name {
        format!("no such file, and no installed model of that name in {}", models_dir().display())
    } else {
        format!("cannot read: {missing}")
    };
    Err(Error::ModelNotFound { model: given.display().to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_themselves_and_unknown_names_say_where_they_were_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.onnx");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(resolve(Some(&file)).unwrap(), file);

        let e = resolve(Some(Path::new("no-such-model-name"))).unwrap_err();
        assert!(e.is_missing_resource());
        let msg = e.to_string();
        assert!(msg.starts_with("model no-such-model-name: no such file, and no installed model"), "{msg}");
        assert!(msg.contains(&models_dir().display().to_string()), "{msg}");

        let e = resolve(Some(&dir.path().join("missing.onnx"))).unwrap_err().to_string();
        assert!(e.contains("missing.onnx: cannot read: No such file or directory"), "{e}");
        // a directory exists: the loader says it cannot read it
        assert_eq!(resolve(Some(dir.path())).unwrap(), dir.path());
    }
}
