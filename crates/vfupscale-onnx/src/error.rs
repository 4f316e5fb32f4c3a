// SPDX-License-Identifier: MPL-2.0
//! The model code's error type: each variant names the file, layer or tensor and the reason.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is missing, unreadable or not an ONNX model.
    #[error("model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// An ncnn model could not be converted (the message names the file and line, layer or byte offset).
    #[error("ncnn import: {0}")]
    Import(String),
    /// A model or graph this code cannot work on as asked (external data, duplicate names, …).
    #[error("{0}")]
    Unsupported(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Model { path: path.into(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
