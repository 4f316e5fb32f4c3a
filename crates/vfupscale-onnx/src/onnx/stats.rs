// SPDX-License-Identifier: MPL-2.0
//! Static statistics of a model: parameter count and convolution arithmetic per input pixel.
//!
//! FLOPs are counted for Conv, ConvTranspose, Gemm and MatMul (2 per multiply-add), by propagating each value's
//! spatial area relative to the model input through the graph: strides divide it, transposed-convolution strides,
//! DepthToSpace and constant-scale Resize multiply it, global pooling makes it constant.

use std::collections::HashMap;

use super::proto::{GraphProto, ModelProto, NodeProto};
use super::tensor_f32;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelStats {
    /// Number of float parameters (elements of float initializers).
    pub parameters: u64,
    /// Multiply-add FLOPs of convolutions and matrix products per input pixel (batch 1).
    pub flops_per_input_pixel: f64,
    /// The largest activation (channels × area relative to the input) any layer produces, per input pixel: about
    /// how many values per input pixel the model holds at its peak.
    pub peak_activation_per_pixel: f64,
    /// Operators whose effect on spatial size could not be determined (their FLOPs may be missing).
    pub unknown_ops: Vec<String>,
    /// Operator histogram, most frequent first.
    pub op_counts: Vec<(String, usize)>,
}

fn ints_attr(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

pub fn model_stats(model: &ModelProto) -> ModelStats {
    let empty = GraphProto::default();
    let graph = model.graph.as_ref().unwrap_or(&empty);
    let inits: HashMap<&str, &super::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let parameters = graph
        .initializer
        .iter()
        .filter(|t| matches!(t.data_type, super::data_type::FLOAT | super::data_type::FLOAT16))
        .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
        .sum();

    // Area of each value relative to the model input (None: not spatial or unknown).
    let mut area: HashMap<&str, f64> = HashMap::new();
    for input in &graph.input {
        if !inits.contains_key(input.name.as_str()) {
            area.insert(&input.name, 1.0);
        }
    }
    // channels of each value, where known
    let mut channels: HashMap<&str, f64> = HashMap::new();
    for input in &graph.input {
        if !inits.contains_key(input.name.as_str()) {
            let c = super::tensor_type(input).and_then(|(_, d)| d?.get(1)?.fixed()).unwrap_or(3);
            channels.insert(&input.name, c as f64);
        }
    }
    let mut peak: f64 = 0.0;
    let mut flops = 0.0;
    let mut unknown = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for node in &graph.node {
        *counts.entry(node.op_type.as_str()).or_default() += 1;
        let in_area = node
            .input
            .iter()
            .filter_map(|i| area.get(i.as_str()).copied())
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
        let weight_dims = node.input.get(1).and_then(|w| inits.get(w.as_str())).map(|t| t.dims.clone());
        let stride_area = || ints_attr(node, "strides").map_or(1.0, |s| s.iter().product::<i64>() as f64);
        let out_area = match node.op_type.as_str() {
            "Conv" => in_area.map(|a| {
                let a = a / stride_area();
                if let Some(w) = &weight_dims {
                    flops += 2.0 * w.iter().product::<i64>() as f64 * a;
                }
                a
            }),
            "ConvTranspose" => in_area.map(|a| {
                if let Some(w) = &weight_dims {
                    flops += 2.0 * w.iter().product::<i64>() as f64 * a;
                }
                a * stride_area()
            }),
            "MaxPool" | "AveragePool" => in_area.map(|a| a / stride_area()),
            "GlobalAveragePool" | "GlobalMaxPool" | "ReduceMean" | "Shape" => Some(0.0),
            "DepthToSpace" => in_area.map(|a| a * int_attr(node, "blocksize").unwrap_or(1).pow(2) as f64),
            "SpaceToDepth" => in_area.map(|a| a / int_attr(node, "blocksize").unwrap_or(1).pow(2) as f64),
            "Gemm" | "MatMul" => {
                // After global pooling the area is 0: a per-image cost, nothing per input pixel.
                if let Some(w) = &weight_dims {
                    flops += 2.0 * w.iter().product::<i64>() as f64 * in_area.unwrap_or(0.0);
                }
                in_area
            }
            "Resize" | "Upsample" => {
                let scales = node
                    .input
                    .get(if node.op_type == "Resize" { 2 } else { 1 })
                    .and_then(|s| inits.get(s.as_str()))
                    .and_then(|t| tensor_f32(t));
                match (in_area, scales) {
                    (Some(a), Some(s)) if s.len() == 4 => Some(a * (s[2] * s[3]) as f64),
                    _ => {
                        // target sizes or computed scales: the area is not a constant factor of the input's
                        unknown.push(node.op_type.clone());
                        None
                    }
                }
            }
            _ => in_area,
        };
        let c_in = node.input.iter().find_map(|i| channels.get(i.as_str()).copied());
        let c_out = match node.op_type.as_str() {
            "Conv" => weight_dims.as_ref().map(|w| w[0] as f64),
            "ConvTranspose" => weight_dims.as_ref().map(|w| (w[1] * int_attr(node, "group").unwrap_or(1)) as f64),
            "DepthToSpace" => c_in.map(|c| c / int_attr(node, "blocksize").unwrap_or(1).pow(2) as f64),
            "SpaceToDepth" => c_in.map(|c| c * int_attr(node, "blocksize").unwrap_or(1).pow(2) as f64),
            "Concat" => node.input.iter().map(|i| channels.get(i.as_str()).copied()).sum::<Option<f64>>(),
            "Shape" | "Gemm" | "MatMul" => None,
            _ => c_in,
        };
        if let (Some(c), Some(a)) = (c_out, out_area) {
            peak = peak.max(c * a);
        }
        if let Some(a) = out_area {
            for o in &node.output {
                area.insert(o, a);
                if let Some(c) = c_out {
                    channels.insert(o, c);
                }
            }
        }
    }
    let mut op_counts: Vec<(String, usize)> = counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    op_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    unknown.sort();
    unknown.dedup();
    ModelStats {
        parameters,
        flops_per_input_pixel: flops,
        peak_activation_per_pixel: peak,
        unknown_ops: unknown,
        op_counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{Dim, GraphBuilder, attr_int, attr_ints, data_type};

    #[test]
    fn counts_strided_and_upsampled_convolutions() {
        let mut g = GraphBuilder::with_io(
            data_type::FLOAT,
            &[Dim::Unknown, Dim::Unknown, Dim::Unknown, Dim::Unknown],
            &[Dim::Unknown, Dim::Unknown, Dim::Unknown, Dim::Unknown],
        );
        // 3x3 conv 3->8 at full resolution: 2*8*3*9 = 432 FLOPs per input pixel
        let w1 = g.f32_init("w1", &[8, 3, 3, 3], &[0.0; 216]);
        let c1 = g.op("Conv", "c1", &["input", &w1], vec![attr_ints("pads", &[1, 1, 1, 1])]);
        // stride-2 2x2 conv 8->8: 2*8*8*4 / 4 = 128 per input pixel
        let w2 = g.f32_init("w2", &[8, 8, 2, 2], &[0.0; 256]);
        let c2 = g.op("Conv", "c2", &[&c1, &w2], vec![attr_ints("strides", &[2, 2])]);
        // back up x2 with DepthToSpace: 8 -> 2 channels, area x4
        let d = g.op("DepthToSpace", "d", &[&c2], vec![attr_int("blocksize", 2)]);
        // 1x1 conv 2->3 at full resolution: 2*3*2 = 12
        let w3 = g.f32_init("w3", &[3, 2, 1, 1], &[0.0; 6]);
        g.op_into("Conv", &[&d, &w3], "output", vec![]);
        let s = model_stats(&g.into_model("t", &[]));
        assert_eq!(s.parameters, 216 + 256 + 6);
        assert!((s.flops_per_input_pixel - (432.0 + 128.0 + 12.0)).abs() < 1e-9, "{}", s.flops_per_input_pixel);
        assert!(s.unknown_ops.is_empty());
        assert_eq!(s.op_counts[0], ("Conv".to_string(), 3));
        // widest activation: 8 channels at full resolution (c1), or 8 at 1/4 area (c2), or 2 at 1x: 8
        assert_eq!(s.peak_activation_per_pixel, 8.0);
    }
}
