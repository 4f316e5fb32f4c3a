// SPDX-License-Identifier: MPL-2.0
//! Float32 ⇄ float16 conversion of a whole model: weights, constants, graph inputs and outputs, intermediate
//! value types and `Cast` targets. Node inputs whose type ONNX fixes to float32 (Resize's `roi` and `scales`,
//! Upsample's `scales`) keep float32: an initializer feeding them gets a float32 twin, a computed value gets a
//! `Cast` back.

use std::collections::HashMap;

use super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, data_type, type_proto};
use super::{attr_int, f16_tensor, f32_tensor, set_metadata, tensor_f16, tensor_f32};
use crate::error::{Error, Result};

/// Metadata key recording the float precision a model was converted to.
pub const META_PRECISION: &str = "vfupscale.precision";

/// Target float precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatPrecision {
    F32,
    F16,
}

impl FloatPrecision {
    fn data_type(self) -> i32 {
        match self {
            FloatPrecision::F32 => data_type::FLOAT,
            FloatPrecision::F16 => data_type::FLOAT16,
        }
    }

    fn other(self) -> i32 {
        match self {
            FloatPrecision::F32 => data_type::FLOAT16,
            FloatPrecision::F16 => data_type::FLOAT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FloatPrecision::F32 => "fp32",
            FloatPrecision::F16 => "fp16",
        }
    }
}

/// `(op_type, input index)` slots that ONNX types as float32 whatever the data type.
const FLOAT32_SLOTS: &[(&str, usize)] = &[("Resize", 1), ("Resize", 2), ("Upsample", 1)];

fn is_float32_slot(op_type: &str, index: usize) -> bool {
    FLOAT32_SLOTS.iter().any(|&(op, i)| op == op_type && i == index)
}

fn convert_tensor(t: &TensorProto, to: FloatPrecision) -> Result<Option<TensorProto>> {
    if t.data_type != to.other() {
        return Ok(None);
    }
    if t.data_location != 0 {
        return Err(Error::Unsupported(format!(
            "tensor {} stores its data externally; convert a model with embedded weights",
            t.name
        )));
    }
    let converted = match to {
        FloatPrecision::F16 => f16_tensor(&t.name, &t.dims, &tensor_f32(t).unwrap_or_default()),
        FloatPrecision::F32 => f32_tensor(&t.name, &t.dims, &tensor_f16(t).unwrap_or_default()),
    };
    let expected: i64 = t.dims.iter().product();
    let got = converted.raw_data.len() as i64 / if to == FloatPrecision::F16 { 2 } else { 4 };
    if got != expected {
        return Err(Error::Unsupported(format!("tensor {} holds {got} values for dims {:?}", t.name, t.dims)));
    }
    Ok(Some(TensorProto { doc_string: t.doc_string.clone(), ..converted }))
}

fn convert_attribute(a: &mut AttributeProto, op_type: &str, to: FloatPrecision) -> Result<()> {
    if !a.graphs.is_empty() || a.g.is_some() {
        return Err(Error::Unsupported(format!(
            "{op_type} node has a subgraph; control-flow models are not converted"
        )));
    }
    if let Some(t) = &a.t
        && let Some(c) = convert_tensor(t, to)?
    {
        a.t = Some(c);
    }
    if op_type == "Cast" && a.name == "to" && a.i == i64::from(to.other()) {
        *a = attr_int("to", i64::from(to.data_type()));
    }
    Ok(())
}

fn retype_values(g: &mut GraphProto, to: FloatPrecision) {
    for info in g.input.iter_mut().chain(g.output.iter_mut()).chain(g.value_info.iter_mut()) {
        if let Some(type_proto::Value::TensorType(t)) = info.r#type.as_mut().and_then(|t| t.value.as_mut())
            && t.elem_type == to.other()
        {
            t.elem_type = to.data_type();
        }
    }
}

/// Converts every float tensor of `model` to `to`, in place. Converting to the precision a model already has is a
/// no-op.
pub fn convert(model: &mut ModelProto, to: FloatPrecision) -> Result<()> {
    if !model.functions.is_empty() || !model.training_info.is_empty() {
        return Err(Error::Unsupported("models with local functions or training information are not converted".into()));
    }
    let graph = model.graph.as_mut().ok_or_else(|| Error::Unsupported("model has no graph".into()))?;
    if !graph.sparse_initializer.is_empty() {
        return Err(Error::Unsupported("models with sparse initializers are not converted".into()));
    }

    // Initializers feeding float32-only slots keep a float32 twin; computed values get a Cast when going to fp16.
    let originals: HashMap<String, TensorProto> =
        graph.initializer.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let mut twins: HashMap<String, String> = HashMap::new();
    let mut twin_tensors = Vec::new();
    let mut casts = Vec::new();
    for (n, node) in graph.node.iter_mut().enumerate() {
        for (i, input) in node.input.iter_mut().enumerate() {
            if input.is_empty() || !is_float32_slot(&node.op_type, i) {
                continue;
            }
            if let Some(init) = originals.get(input.as_str()) {
                if init.data_type != data_type::FLOAT16 && init.data_type != data_type::FLOAT {
                    continue;
                }
                let twin = twins.entry(input.clone()).or_insert_with(|| {
                    let name = format!("{input}_float32");
                    let mut t = init.clone();
                    if t.data_type == data_type::FLOAT16 {
                        t = f32_tensor(&name, &t.dims, &tensor_f16(&t).unwrap_or_default());
                    }
                    t.name = name.clone();
                    twin_tensors.push(t);
                    name
                });
                *input = twin.clone();
            } else if to == FloatPrecision::F16 {
                let cast_out = format!("{input}_cast_float32_{n}_{i}");
                casts.push((
                    n,
                    NodeProto {
                        input: vec![input.clone()],
                        output: vec![cast_out.clone()],
                        name: format!("Cast_float32_{n}_{i}"),
                        op_type: "Cast".into(),
                        attribute: vec![attr_int("to", i64::from(data_type::FLOAT))],
                        ..Default::default()
                    },
                ));
                *input = cast_out;
            }
        }
    }
    for (n, cast) in casts.into_iter().rev() {
        graph.node.insert(n, cast);
    }

    for t in graph.initializer.iter_mut() {
        if let Some(c) = convert_tensor(t, to)? {
            *t = c;
        }
    }
    graph.initializer.extend(twin_tensors);
    for node in graph.node.iter_mut() {
        let op_type = node.op_type.clone();
        for a in node.attribute.iter_mut() {
            convert_attribute(a, &op_type, to)?;
        }
    }
    retype_values(graph, to);
    set_metadata(model, META_PRECISION, to.name());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{Dim, GraphBuilder, attr_string, tensor_type};

    fn resize_model() -> ModelProto {
        let mut g = GraphBuilder::with_io(
            data_type::FLOAT,
            &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(4), Dim::Fixed(4)],
            &[Dim::Unknown, Dim::Unknown, Dim::Unknown, Dim::Unknown],
        );
        let w = g.f32_init("w", &[3, 1, 1], &[0.5, 1.0, 2.0]);
        let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        let m = g.op("Mul", "m", &["input", &w], vec![]);
        g.op_into("Resize", &[&m, "", &scales], "output", vec![attr_string("mode", "nearest")]);
        g.into_model("t", &[])
    }

    #[test]
    fn fp16_keeps_resize_scales_float32_and_round_trips() {
        let mut m = resize_model();
        convert(&mut m, FloatPrecision::F16).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(tensor_type(&g.input[0]).unwrap().0, data_type::FLOAT16);
        assert_eq!(tensor_type(&g.output[0]).unwrap().0, data_type::FLOAT16);
        let w = g.initializer.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(tensor_f16(w).unwrap(), vec![0.5, 1.0, 2.0]);
        let resize = g.node.iter().find(|n| n.op_type == "Resize").unwrap();
        let scales = g.initializer.iter().find(|t| t.name == resize.input[2]).unwrap();
        assert_eq!(scales.data_type, data_type::FLOAT);
        assert_eq!(tensor_f32(scales).unwrap(), vec![1.0, 1.0, 2.0, 2.0]);

        convert(&mut m, FloatPrecision::F32).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(tensor_type(&g.input[0]).unwrap().0, data_type::FLOAT);
        let w = g.initializer.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(tensor_f32(w).unwrap(), vec![0.5, 1.0, 2.0]);
    }

    #[test]
    fn computed_float32_slot_gets_a_cast() {
        let mut g = GraphBuilder::with_io(
            data_type::FLOAT,
            &[Dim::Unknown, Dim::Unknown, Dim::Unknown, Dim::Unknown],
            &[Dim::Unknown, Dim::Unknown, Dim::Unknown, Dim::Unknown],
        );
        let two = g.f32_init("two", &[4], &[1.0, 1.0, 2.0, 2.0]);
        let scales = g.op("Identity", "scales", &[&two], vec![]);
        g.op_into("Resize", &["input", "", &scales], "output", vec![]);
        let mut m = g.into_model("t", &[]);
        convert(&mut m, FloatPrecision::F16).unwrap();
        let g = m.graph.unwrap();
        let cast = g.node.iter().find(|n| n.op_type == "Cast").expect("a Cast before Resize");
        assert_eq!(cast.input[0], scales);
        let resize = g.node.iter().find(|n| n.op_type == "Resize").unwrap();
        assert_eq!(resize.input[2], cast.output[0]);
        let pos = |op: &str| g.node.iter().position(|n| n.op_type == op).unwrap();
        assert!(pos("Identity") < pos("Cast") && pos("Cast") < pos("Resize"), "topological order kept");
    }
}
