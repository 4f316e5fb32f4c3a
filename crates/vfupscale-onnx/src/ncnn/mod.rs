// SPDX-License-Identifier: MPL-2.0
//! ncnn models (`.param` text + `.bin` weights) and their conversion to ONNX.
//!
//! `.param`: line 1 the magic `7767517`, line 2 `layer_count blob_count`, then one layer a line:
//! `Type name n_in n_out in_blobs… out_blobs… key=value…`. A key `-233xx` holds an array for parameter `xx`
//! as `count,v1,v2,…`. `.bin`: each layer's weights in layer order; "tagged" weights start with a 4-byte tag
//! (0: float32, 0x01306B47: float16 padded to 4 bytes), "raw" weights (biases, PReLU slopes, scales) are float32.

mod geometry;
mod import;
mod layers;

use std::collections::HashMap;

pub use geometry::{Geometry, analyse};
pub use import::{
    FORMAT_REVISION, ImportOptions, META_FORMAT, META_GEOMETRY, META_MIN_SIZE, META_SOURCE, import, import_files,
};

use crate::error::{Error, Result};

const MAGIC: &str = "7767517";
const TAG_F16: u32 = 0x0130_6B47;

/// One parameter value as written in the `.param` file.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Int(i32),
    Float(f32),
    Array(Vec<f32>),
}

/// A parsed layer line.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub params: HashMap<i32, ParamValue>,
    /// 1-based line number in the `.param` file, for messages.
    pub line: usize,
}

impl Layer {
    fn describe(&self) -> String {
        format!("layer {} ({}, line {})", self.name, self.kind, self.line)
    }

    pub fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::Import(format!("{}: {what}", self.describe()))
    }

    /// Integer parameter `id`, or `default` when absent.
    pub fn int(&self, id: i32, default: i32) -> Result<i32> {
        match self.params.get(&id) {
            None => Ok(default),
            Some(ParamValue::Int(v)) => Ok(*v),
            Some(other) => Err(self.error(format!("parameter {id} must be an integer, found {other:?}"))),
        }
    }

    /// Float parameter `id` (an integer is accepted), or `default`.
    pub fn float(&self, id: i32, default: f32) -> Result<f32> {
        match self.params.get(&id) {
            None => Ok(default),
            Some(ParamValue::Int(v)) => Ok(*v as f32),
            Some(ParamValue::Float(v)) => Ok(*v),
            Some(other) => Err(self.error(format!("parameter {id} must be a number, found {other:?}"))),
        }
    }

    /// Array parameter `id` (empty when absent).
    pub fn array(&self, id: i32) -> Result<Vec<f32>> {
        match self.params.get(&id) {
            None => Ok(Vec::new()),
            Some(ParamValue::Array(v)) => Ok(v.clone()),
            Some(other) => Err(self.error(format!("parameter {id} must be an array, found {other:?}"))),
        }
    }

    /// Integer array parameter `id`.
    pub fn int_array(&self, id: i32) -> Result<Vec<i32>> {
        self.array(id)?
            .into_iter()
            .map(|v| {
                if v.fract() == 0.0 {
                    Ok(v as i32)
                } else {
                    Err(self.error(format!("parameter {id} must hold integers, found {v}")))
                }
            })
            .collect()
    }
}

/// A parsed `.param` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub layers: Vec<Layer>,
    pub blob_count: usize,
}

fn parse_value(text: &str) -> Option<ParamValue> {
    if text.contains(['.', 'e', 'E']) || text.contains("inf") || text.contains("nan") {
        text.parse::<f32>().ok().map(ParamValue::Float)
    } else {
        text.parse::<i32>().ok().map(ParamValue::Int)
    }
}

impl Param {
    /// Parses the text of a `.param` file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Param> {
        let err = |line: usize, what: String| Error::Import(format!("{origin}, line {line}: {what}"));
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((n, other)) => {
                return Err(err(n, format!("wrong magic: expected {MAGIC}, found {:?}", truncate(other))));
            }
            None => return Err(Error::Import(format!("{origin}: empty file"))),
        }
        let (n, counts) = lines.next().ok_or_else(|| Error::Import(format!("{origin}: no layer and blob counts")))?;
        let counts: Vec<usize> = counts.split_whitespace().filter_map(|t| t.parse().ok()).collect();
        let [layer_count, blob_count] = counts[..] else {
            return Err(err(n, "expected two counts: layers and blobs".into()));
        };
        let mut layers = Vec::with_capacity(layer_count);
        for (n, line) in lines {
            let mut tokens = line.split_whitespace();
            let mut next = |what: &str| tokens.next().ok_or_else(|| err(n, format!("missing {what}")));
            let kind = next("layer type")?.to_string();
            let name = next("layer name")?.to_string();
            let n_in: usize = next("input count")?.parse().map_err(|_| err(n, "input count is not a number".into()))?;
            let n_out: usize =
                next("output count")?.parse().map_err(|_| err(n, "output count is not a number".into()))?;
            let inputs = (0..n_in).map(|_| next("input blob").map(str::to_string)).collect::<Result<Vec<_>>>()?;
            let outputs = (0..n_out).map(|_| next("output blob").map(str::to_string)).collect::<Result<Vec<_>>>()?;
            let mut params = HashMap::new();
            for kv in tokens {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| err(n, format!("layer {name}: parameter {kv:?} is not key=value")))?;
                let key: i32 =
                    k.parse().map_err(|_| err(n, format!("layer {name}: parameter key {k:?} is not a number")))?;
                let (id, value) = if key <= -23300 {
                    let mut items = v.split(',');
                    let count: usize = items
                        .next()
                        .and_then(|c| c.parse().ok())
                        .ok_or_else(|| err(n, format!("layer {name}: array parameter {k} has no count")))?;
                    let values: Vec<f32> = items
                        .map(|t| t.parse::<f32>())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| err(n, format!("layer {name}: array parameter {k} has a non-numeric value")))?;
                    if values.len() != count {
                        return Err(err(
                            n,
                            format!("layer {name}: array parameter {k} declares {count} values, has {}", values.len()),
                        ));
                    }
                    (-key - 23300, ParamValue::Array(values))
                } else {
                    let value = parse_value(v)
                        .ok_or_else(|| err(n, format!("layer {name}: parameter {k}={v:?} is not a number")))?;
                    (key, value)
                };
                params.insert(id, value);
            }
            layers.push(Layer { kind, name, inputs, outputs, params, line: n });
        }
        if layers.len() != layer_count {
            return Err(Error::Import(format!(
                "{origin}: header declares {layer_count} layers, file has {}",
                layers.len()
            )));
        }
        Ok(Param { layers, blob_count })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Sequential reader of a `.bin` weight file.
pub struct WeightReader<'a> {
    data: &'a [u8],
    offset: usize,
    origin: String,
}

impl<'a> WeightReader<'a> {
    pub fn new(data: &'a [u8], origin: &str) -> Self {
        Self { data, offset: 0, origin: origin.into() }
    }

    fn take(&mut self, layer: &Layer, what: &str, len: usize) -> Result<&'a [u8]> {
        let end = self.offset.checked_add(len).filter(|&e| e <= self.data.len()).ok_or_else(|| {
            layer.error(format!(
                "{what} needs {len} bytes at byte offset {} of {}, which has only {} bytes (truncated .bin?)",
                self.offset,
                self.origin,
                self.data.len()
            ))
        })?;
        let bytes = &self.data[self.offset..end];
        self.offset = end;
        Ok(bytes)
    }

    /// Reads `count` raw float32 values.
    pub fn raw(&mut self, layer: &Layer, what: &str, count: usize) -> Result<Vec<f32>> {
        let bytes = self.take(layer, what, count * 4)?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Reads `count` tagged values (float32 or float16 storage).
    pub fn tagged(&mut self, layer: &Layer, what: &str, count: usize) -> Result<Vec<f32>> {
        let at = self.offset;
        let tag_bytes = self.take(layer, &format!("{what} storage tag"), 4)?;
        let tag = u32::from_le_bytes([tag_bytes[0], tag_bytes[1], tag_bytes[2], tag_bytes[3]]);
        match tag {
            0 => self.raw(layer, what, count),
            TAG_F16 => {
                let bytes = self.take(layer, what, (count * 2).next_multiple_of(4))?;
                Ok(bytes[..count * 2]
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect())
            }
            other => Err(layer.error(format!(
                "{what} at byte offset {at} of {} has storage tag 0x{other:08X}; only float32 (0) and float16 \
                 (0x{TAG_F16:08X}) weights are supported (quantised model or misaligned .bin?)",
                self.origin
            ))),
        }
    }

    /// Fails if bytes remain after the last layer's weights.
    pub fn finish(&self) -> Result<()> {
        if self.offset != self.data.len() {
            return Err(Error::Import(format!(
                "{}: {} bytes left after the last layer's weights at byte offset {} (oversized .bin, or a .param \
                 that does not belong to it)",
                self.origin,
                self.data.len() - self.offset,
                self.offset
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "7767517\n3 3\nInput in 0 1 data 0=8 1=8 2=3\n\
        Convolution conv 1 1 data c 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,2.000000e-01\n\
        Eltwise sum 2 1 c c out 0=1 -23301=2,0.2,1\n";

    #[test]
    fn parses_layers_and_array_parameters() {
        let p = Param::parse(SMALL, "t.param").unwrap();
        assert_eq!(p.layers.len(), 3);
        let conv = &p.layers[1];
        assert_eq!(conv.int(0, 0).unwrap(), 4);
        assert_eq!(conv.int(11, conv.int(1, 0).unwrap()).unwrap(), 3);
        assert_eq!(conv.array(10).unwrap(), vec![0.2]);
        assert_eq!(p.layers[2].array(1).unwrap(), vec![0.2, 1.0]);
        assert_eq!(p.layers[2].inputs, vec!["c", "c"]);
    }

    #[test]
    fn rejects_wrong_magic_and_counts() {
        let e = Param::parse("7767518\n0 0\n", "m.param").unwrap_err().to_string();
        assert!(e.contains("m.param, line 1") && e.contains("wrong magic"), "{e}");
        let e = Param::parse("7767517\n2 1\nInput in 0 1 data\n", "c.param").unwrap_err().to_string();
        assert!(e.contains("declares 2 layers, file has 1"), "{e}");
        let e = Param::parse("7767517\n1 1\nInput in 0 1 data 0=x\n", "v.param").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("0=\"x\""), "{e}");
    }

    #[test]
    fn reads_float16_and_float32_weights_and_reports_truncation() {
        let layer = Param::parse(SMALL, "t").unwrap().layers[1].clone();
        let mut bin = Vec::new();
        bin.extend_from_slice(&TAG_F16.to_le_bytes());
        for v in [1.0f32, -2.5, 0.125] {
            bin.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        bin.extend_from_slice(&[0, 0]); // pad to 4 bytes
        bin.extend_from_slice(&0u32.to_le_bytes());
        bin.extend_from_slice(&3.5f32.to_le_bytes());
        bin.extend_from_slice(&7.0f32.to_le_bytes());
        let mut r = WeightReader::new(&bin, "t.bin");
        assert_eq!(r.tagged(&layer, "weight", 3).unwrap(), vec![1.0, -2.5, 0.125]);
        assert_eq!(r.tagged(&layer, "weight", 1).unwrap(), vec![3.5]);
        assert_eq!(r.raw(&layer, "bias", 1).unwrap(), vec![7.0]);
        r.finish().unwrap();
        let e = r.raw(&layer, "bias", 1).unwrap_err().to_string();
        assert!(e.contains("layer conv") && e.contains("byte offset 24") && e.contains("truncated"), "{e}");

        let mut bad = 0x0002_C056u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&[0; 16]);
        let e = WeightReader::new(&bad, "q.bin").tagged(&layer, "weight", 2).unwrap_err().to_string();
        assert!(e.contains("storage tag 0x0002C056") && e.contains("byte offset 0"), "{e}");
        let r = WeightReader::new(&bad, "q.bin");
        assert!(r.finish().unwrap_err().to_string().contains("20 bytes left"));
    }
}
