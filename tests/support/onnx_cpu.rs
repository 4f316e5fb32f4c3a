// SPDX-License-Identifier: MPL-2.0
//! What the native-path CPU tests share: installed models, deterministic weights and images, and ONNX Runtime's CPU
//! provider in fp32 as the reference a graph's extraction or lowering must reproduce.

#![allow(dead_code)] // each test binary uses some of these

use std::path::{Path, PathBuf};

use vfupscale::frame::{HostTensor, HostTensorMut, Size};
use vfupscale::infer::{InferenceSession, SessionOptions};
use vfupscale::{Backend, Model, Precision, TensorLocation};

/// The installed model `name` (scripts/setup.sh installs them all).
pub fn installed(name: &str) -> PathBuf {
    let p = vfupscale::models::model_path(name);
    assert!(p.exists(), "{} is missing: run `vfupscale-model fetch` (scripts/setup.sh does)", p.display());
    p
}

/// Real-CUGAN up3x with its 5×5 transposed convolution's `strides` attribute set to `strides` (at `[2, 2]` no native
/// form takes it: its taps do not fit a 3×3 window of phases), with the model's input and output names.
pub fn up3x_with_strides(strides: &[i64]) -> (vfupscale_onnx::onnx::ModelProto, String, String) {
    let model = Model::load(&installed("realcugan-up3x")).unwrap();
    let mut proto = model.proto().clone();
    let graph = proto.graph.as_mut().unwrap();
    let node = graph.node.iter_mut().find(|n| n.name == "ConvTranspose_30").unwrap();
    node.attribute.iter_mut().find(|a| a.name == "strides").unwrap().ints = strides.to_vec();
    (proto, model.info().input_name.clone(), model.info().output_name.clone())
}

/// `n` values uniform in `[-scale/2, scale/2)`, the same for the same seed.
pub fn random(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / 16_777_216.0 - 0.5) * scale
        })
        .collect()
}

/// A smooth planar RGB image in `[0, 1]` with an edge down the middle.
pub fn test_image(size: Size) -> Vec<f32> {
    let (w, h) = (size.width as usize, size.height as usize);
    (0..3 * w * h)
        .map(|i| {
            let (c, y, x) = (i / (w * h), (i / w) % h, i % w);
            (0.5 + 0.3 * ((x as f32 * 0.7 + c as f32).sin() * (y as f32 * 0.5).cos())
                + if x > w / 2 { 0.1 } else { -0.1 })
            .clamp(0.0, 1.0)
        })
        .collect()
}

/// The model at `path` on ONNX Runtime's CPU provider in fp32: planar `[3, h, w]` in, `[3, s·h, s·w]` out.
pub fn onnx_runtime_cpu(path: &Path, image: &[f32], size: Size, scale: u32) -> Vec<f32> {
    let model = Model::load(path).unwrap();
    let options = SessionOptions::new(0, Precision::Fp32);
    let mut session = InferenceSession::open_with(&model, &options, Backend::Cpu).unwrap();
    session.bind(1, size, scale, TensorLocation::Host).unwrap();
    let HostTensorMut::F32(input) = session.input_host().unwrap() else { panic!("fp32 input expected") };
    input.copy_from_slice(image);
    session.run().unwrap();
    let HostTensor::F32(output) = session.output_host().unwrap() else { panic!("fp32 output expected") };
    output.to_vec()
}
