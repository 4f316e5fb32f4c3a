// SPDX-License-Identifier: MPL-2.0
//! Placeholder while the lowering is written on its branch.
use super::Program;
use crate::onnx::ModelProto;

/// Lowers `model` (image input `input`, output `output`) into a [`Program`], or says why it cannot.
pub fn lower(_model: &ModelProto, _input: &str, _output: &str) -> Result<Program, String> {
    Err("not yet".into())
}
