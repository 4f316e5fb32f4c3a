// SPDX-License-Identifier: MPL-2.0
//! Reading, building and writing ONNX models without ONNX Runtime: the ncnn importer, the precision converter,
//! model inspection and the element's model-contract checks all work on these messages.

pub mod precision;
pub mod proto;
pub mod stats;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};
pub use proto::*;

/// ONNX opset our importer writes (Resize, Pad, Slice in their current forms).
pub const OPSET: i64 = 17;
/// IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 8;
/// Metadata key carrying the integer upscale factor of models we write.
pub const META_SCALE: &str = "vfupscale.scale";

/// Decodes a model from bytes; `path` is only used in the error message.
pub fn decode_model(bytes: &[u8], path: &Path) -> Result<ModelProto> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::model(path, format!("not an ONNX model (protobuf decoding failed: {e})")))?;
    if model.graph.is_none() || model.opset_import.is_empty() {
        return Err(Error::model(path, "not an ONNX model (no graph or no opset import)"));
    }
    Ok(model)
}

/// Reads and decodes a model file.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| Error::model(path, format!("cannot read: {e}")))?;
    decode_model(&bytes, path)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed into place only once it is
/// complete and flushed: an interrupted write never leaves a truncated file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::Unsupported(format!("{}: not a file name", path.display())))?;
    // unique per process and per call: threads writing the same file must not share (and rename away) a temp file
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp{}-{n}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Encodes and atomically writes a model.
pub fn write_model(path: &Path, model: &ModelProto) -> Result<()> {
    write_atomic(path, &model.encode_to_vec())
}

/// Value of a metadata entry.
pub fn metadata<'m>(model: &'m ModelProto, key: &str) -> Option<&'m str> {
    model.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.as_str())
}

/// Sets (or replaces) a metadata entry.
pub fn set_metadata(model: &mut ModelProto, key: &str, value: impl Into<String>) {
    let value = value.into();
    match model.metadata_props.iter_mut().find(|p| p.key == key) {
        Some(p) => p.value = value,
        None => model.metadata_props.push(StringStringEntryProto { key: key.into(), value }),
    }
}

/// One dimension of a declared tensor shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Param(String),
    Unknown,
}

impl Dim {
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Dim::Fixed(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Param(p) => f.write_str(p),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A value info for a tensor of `elem_type` with the given dimensions.
pub fn tensor_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: match d {
                Dim::Fixed(v) => Some(tensor_shape_proto::dimension::Value::DimValue(*v)),
                Dim::Param(p) => Some(tensor_shape_proto::dimension::Value::DimParam(p.clone())),
                Dim::Unknown => None,
            },
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// Element type and dimensions of a tensor value info, if it describes a tensor.
pub fn tensor_type(info: &ValueInfoProto) -> Option<(i32, Option<Vec<Dim>>)> {
    let Some(TypeProto { value: Some(type_proto::Value::TensorType(t)), .. }) = &info.r#type else {
        return None;
    };
    let dims = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) => Dim::Fixed(*v),
                Some(tensor_shape_proto::dimension::Value::DimParam(p)) => Dim::Param(p.clone()),
                None => Dim::Unknown,
            })
            .collect()
    });
    Some((t.elem_type, dims))
}

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints: ints.to_vec(), ..Default::default() }
}

pub fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f, ..Default::default() }
}

pub fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}

/// Float values of a float32 tensor, whichever field holds them; `None` for other types or external data.
pub fn tensor_f32(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != data_type::FLOAT || t.data_location != 0 {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    } else {
        Some(t.float_data.clone())
    }
}

/// Values of a float16 tensor as `f32`; `None` for other types or external data.
pub fn tensor_f16(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != data_type::FLOAT16 || t.data_location != 0 {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
    } else {
        Some(t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16).to_f32()).collect())
    }
}

/// Integer values of an int64 tensor.
pub fn tensor_i64(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != data_type::INT64 || t.data_location != 0 {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
    } else {
        Some(t.int64_data.clone())
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn f16_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT16,
        raw_data: values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::INT64,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Builds a graph node by node with unique value names.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    names: HashSet<String>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A value name derived from `hint` that no other value of this graph has.
    pub fn unique(&mut self, hint: &str) -> String {
        let base: String = hint.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        let mut name = base.clone();
        let mut n = 1;
        while !self.names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    }

    /// A graph with the model contract's one input `input` and one output `output`, both of `elem_type`, declared
    /// with these dimensions.
    pub fn with_io(elem_type: i32, input_dims: &[Dim], output_dims: &[Dim]) -> Self {
        let mut g = Self::new();
        g.names.extend(["input".to_string(), "output".to_string()]);
        g.inputs.push(tensor_info("input", elem_type, input_dims));
        g.outputs.push(tensor_info("output", elem_type, output_dims));
        g
    }

    /// Reserves an externally chosen name (graph inputs and outputs).
    pub fn reserve(&mut self, name: &str) -> Result<()> {
        if self.names.insert(name.to_string()) {
            Ok(())
        } else {
            Err(Error::Unsupported(format!("value name {name} used twice")))
        }
    }

    /// Adds a node with one output named after `hint`; returns that name.
    pub fn op(&mut self, op_type: &str, hint: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.unique(hint);
        self.op_into(op_type, inputs, &out, attribute);
        out
    }

    /// Adds a node writing to an already reserved output name.
    pub fn op_into(&mut self, op_type: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        let name = format!("{op_type}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name,
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
    }

    pub fn f32_init(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.unique(hint);
        self.initializers.push(f32_tensor(&name, dims, values));
        name
    }

    pub fn i64_init(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.unique(hint);
        self.initializers.push(i64_tensor(&name, dims, values));
        name
    }

    /// Finishes the graph into a model with our opset, IR version and the given metadata.
    pub fn into_model(self, graph_name: &str, metadata: &[(&str, String)]) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: "vfupscale".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: graph_name.into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.clone() })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_atomic_writes_of_one_file_all_succeed() {
        let dir = std::env::temp_dir().join(format!("vfupscale-write-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.onnx");
        std::thread::scope(|s| {
            for i in 0..16u8 {
                let path = &path;
                s.spawn(move || write_atomic(path, &[i; 4096]).unwrap());
            }
        });
        // one writer's complete content, and no temp file left behind
        let content = std::fs::read(&path).unwrap();
        assert!(content.len() == 4096 && content.iter().all(|&b| b == content[0]));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn model_round_trips_through_protobuf() {
        let mut g = GraphBuilder::with_io(data_type::FLOAT, &[Dim::Param("n".into()), Dim::Fixed(3)], &[Dim::Unknown]);
        let w = g.f32_init("w", &[2], &[1.5, -2.0]);
        g.op_into("Mul", &["input", &w], "output", vec![attr_int("x", 3)]);
        let model = g.into_model("g", &[(META_SCALE, "2".into())]);
        let bytes = model.encode_to_vec();
        let back = decode_model(&bytes, Path::new("mem")).unwrap();
        assert_eq!(back, model);
        assert_eq!(metadata(&back, META_SCALE), Some("2"));
        let graph = back.graph.unwrap();
        assert_eq!(tensor_f32(&graph.initializer[0]).unwrap(), vec![1.5, -2.0]);
        let (t, dims) = tensor_type(&graph.input[0]).unwrap();
        assert_eq!(t, data_type::FLOAT);
        assert_eq!(dims.unwrap(), vec![Dim::Param("n".into()), Dim::Fixed(3)]);
    }

    #[test]
    fn garbage_is_not_a_model() {
        let err = decode_model(b"\x08\x07garbage that is not protobuf\xff\xff", Path::new("x.onnx")).unwrap_err();
        assert!(err.to_string().contains("x.onnx") && err.to_string().contains("not an ONNX model"), "{err}");
        let err = decode_model(b"", Path::new("empty.onnx")).unwrap_err();
        assert!(err.to_string().contains("no graph"), "{err}");
    }

    #[test]
    fn unique_names_do_not_collide() {
        let mut g = GraphBuilder::new();
        let a = g.unique("conv.1");
        let b = g.unique("conv.1");
        assert_eq!(a, "conv_1");
        assert_ne!(a, b);
    }
}
