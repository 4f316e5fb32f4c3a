// SPDX-License-Identifier: MPL-2.0
//! Lowering an ONNX graph into a [`Program`]: NOT IMPLEMENTED YET. Until it is, every graph is refused with this
//! reason, so the dense models keep running on ONNX Runtime (the native program engine is never chosen). The
//! rules it must follow are in issue 12's note of 2026-12-02 (conv chains with their activation, constant scales and
//! residuals fused; concat members as channel slices of one buffer; a step may write beside, never over, what it
//! reads; buffers by liveness).
use super::Program;
use crate::onnx::ModelProto;

/// Lowers `model` (image input `input`, output `output`) into a [`Program`], or says why it cannot.
pub fn lower(_model: &ModelProto, _input: &str, _output: &str) -> Result<Program, String> {
    Err("lowering ONNX graphs into native programs is not implemented yet".into())
}
