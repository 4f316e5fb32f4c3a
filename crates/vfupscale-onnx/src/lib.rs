// SPDX-License-Identifier: MPL-2.0
//! vfupscale's model code, without ONNX Runtime, CUDA or GStreamer: the ONNX messages it reads and writes
//! ([`onnx`]: protobuf, graph building, float precision conversion, static statistics) and the ncnn importer
//! ([`ncnn`]: `.param`/`.bin` parsing, network geometry, layer conversion). The `vfupscale` core checks and runs
//! these models; the `vfupscale-model` tool converts and inspects them.

pub mod error;
pub mod ncnn;
pub mod onnx;

pub use error::{Error, Result};
