//! Where installed models live and which one is the default.

use std::path::PathBuf;

use crate::infer::runtime::data_dir;

/// The model the element uses when its `model` property is not set.
pub const DEFAULT_MODEL: &str = "realesr-animevideov3-x2";

/// Directory of installed models: `$VFUPSCALE_MODEL_DIR`, else `<data dir>/models`
/// (`~/.local/share/vfupscale/models` by default).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("VFUPSCALE_MODEL_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => data_dir().join("models"),
    }
}

/// Path of an installed model by name (`NAME.onnx` in [`models_dir`]).
pub fn model_path(name: &str) -> PathBuf {
    models_dir().join(format!("{name}.onnx"))
}

/// Path of the default model.
pub fn default_model_path() -> PathBuf {
    model_path(DEFAULT_MODEL)
}
