// SPDX-License-Identifier: MPL-2.0
//! The model contract: what an ONNX model must look like for vfupscale to run it, checked once when it is loaded.
//!
//! One input and one output (initializers listed as inputs by old exporters are ignored), both NCHW with 3
//! channels, float32 or float16; an integer upscale factor, read from our metadata, from static shapes, or (when
//! neither says) measured by one probe run once a session exists (and checked by that run when they do).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::frame::{ElementType, Size};
use crate::onnx::precision::{FloatPrecision, convert};
use crate::onnx::{self, Dim, META_SCALE, ModelProto, data_type, tensor_type};

/// A model file, decoded and checked against the contract once: what every engine is built from.
#[derive(Debug, Clone)]
pub struct Model {
    info: ModelInfo,
    proto: ModelProto,
}

impl Model {
    /// Reads, decodes and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_proto(onnx::read_model(path)?, path)
    }

    /// Checks an already decoded model (`path` names it in messages).
    pub fn from_proto(proto: ModelProto, path: &Path) -> Result<Self> {
        Ok(Self { info: ModelInfo::from_proto(&proto, path)?, proto })
    }

    /// The contract as the file states it.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The decoded file.
    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    /// The float precision of the file's input.
    pub fn precision(&self) -> FloatPrecision {
        match self.info.input_type {
            ElementType::F32 => FloatPrecision::F32,
            ElementType::F16 => FloatPrecision::F16,
        }
    }

    /// The serialised model with all floats in `precision` (converted when the file has another one) and its
    /// contract as it then runs. The contract is not checked again: a conversion only changes element types.
    pub fn encoded_as(&self, precision: FloatPrecision) -> Result<(ModelInfo, Vec<u8>)> {
        let mixed = self.info.output_type != self.info.input_type;
        if precision == self.precision() && !mixed {
            return Ok((self.info.clone(), prost::Message::encode_to_vec(&self.proto)));
        }
        let mut proto = self.proto.clone();
        convert(&mut proto, precision)
            .map_err(|e| Error::model(&self.info.path, format!("converting to {}: {e}", precision.name())))?;
        let element = match precision {
            FloatPrecision::F32 => ElementType::F32,
            FloatPrecision::F16 => ElementType::F16,
        };
        let info = ModelInfo { input_type: element, output_type: element, ..self.info.clone() };
        Ok((info, prost::Message::encode_to_vec(&proto)))
    }
}

/// Smallest spatial size a model must accept for a probe run.
pub const PROBE_SIZE: u32 = 64;

/// What the element needs to know about a model before it creates a session.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: String,
    pub input_name: String,
    pub output_name: String,
    pub input_type: ElementType,
    pub output_type: ElementType,
    pub input_dims: Vec<Dim>,
    pub output_dims: Vec<Dim>,
    /// Integer upscale factor, when known without running the model.
    pub scale: Option<u32>,
    /// The only input size the model accepts, when its height and width are static.
    pub fixed_size: Option<Size>,
    /// The only batch size the model accepts, when its batch axis is static.
    pub fixed_batch: Option<u32>,
    /// Smallest input height/width the model accepts (from our metadata; 1 otherwise).
    pub min_size: u32,
}

fn element_type(path: &Path, what: &str, t: i32) -> Result<ElementType> {
    match t {
        data_type::FLOAT => Ok(ElementType::F32),
        data_type::FLOAT16 => Ok(ElementType::F16),
        other => Err(Error::model(
            path,
            format!("{what} is {}, but only float32 and float16 are supported", data_type::name(other)),
        )),
    }
}

fn check_nchw(path: &Path, what: &str, dims: &Option<Vec<Dim>>) -> Result<Vec<Dim>> {
    let Some(dims) = dims else {
        return Ok(vec![Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown]);
    };
    if dims.len() != 4 {
        return Err(Error::model(path, format!("{what} has {} dimensions, expected 4 (NCHW)", dims.len())));
    }
    match dims[1] {
        Dim::Fixed(3) => {}
        Dim::Param(_) | Dim::Unknown if dims[3] == Dim::Fixed(3) => {
            return Err(Error::model(
                path,
                format!("{what} looks like NHWC (last axis 3, channel axis symbolic); NHWC models are not supported"),
            ));
        }
        Dim::Param(_) | Dim::Unknown => {}
        Dim::Fixed(c) => {
            return Err(Error::model(
                path,
                format!("{what} has {c} channels in NCHW layout, expected 3 (RGB); NHWC models are not supported"),
            ));
        }
    }
    for (axis, d) in dims.iter().enumerate() {
        if let Dim::Fixed(v) = d
            && *v <= 0
        {
            return Err(Error::model(path, format!("{what} dimension {axis} is {v}")));
        }
    }
    Ok(dims.clone())
}

impl ModelInfo {
    /// Reads `path` and checks the contract.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Model::load(path)?.info)
    }

    /// Checks the contract of an already decoded model (`path` names it in messages).
    pub fn from_proto(model: &ModelProto, path: &Path) -> Result<Self> {
        let graph = model.graph.as_ref().ok_or_else(|| Error::model(path, "not an ONNX model (no graph)"))?;
        let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<_> = graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).collect();
        let [input] = inputs[..] else {
            return Err(Error::model(path, format!("has {} inputs, expected exactly one image input", inputs.len())));
        };
        let [output] = &graph.output[..] else {
            return Err(Error::model(path, format!("has {} outputs, expected exactly one", graph.output.len())));
        };
        let (in_t, in_dims) =
            tensor_type(input).ok_or_else(|| Error::model(path, format!("input {} is not a tensor", input.name)))?;
        let (out_t, out_dims) =
            tensor_type(output).ok_or_else(|| Error::model(path, format!("output {} is not a tensor", output.name)))?;
        let input_type = element_type(path, &format!("input {}", input.name), in_t)?;
        let output_type = element_type(path, &format!("output {}", output.name), out_t)?;
        let input_dims = check_nchw(path, &format!("input {}", input.name), &in_dims)?;
        let output_dims = check_nchw(path, &format!("output {}", output.name), &out_dims)?;

        let static_scale = match (&input_dims[2..], &output_dims[2..]) {
            ([Dim::Fixed(ih), Dim::Fixed(iw)], [Dim::Fixed(oh), Dim::Fixed(ow)]) => {
                if oh % ih != 0 || ow % iw != 0 || oh / ih != ow / iw || oh / ih < 1 {
                    return Err(Error::model(
                        path,
                        format!("output {oh}x{ow} is not the same integer multiple of input {ih}x{iw} in both axes"),
                    ));
                }
                Some((oh / ih) as u32)
            }
            _ => None,
        };
        let meta_scale = match onnx::metadata(model, META_SCALE) {
            None => None,
            Some(s) => Some(s.parse::<u32>().ok().filter(|&v| v >= 1).ok_or_else(|| {
                Error::model(path, format!("metadata {META_SCALE} = {s:?} is not a positive integer"))
            })?),
        };
        if let (Some(m), Some(s)) = (meta_scale, static_scale)
            && m != s
        {
            return Err(Error::model(path, format!("metadata says scale {m} but the static shapes say {s}")));
        }
        let fixed_size = match (&input_dims[2], &input_dims[3]) {
            (Dim::Fixed(h), Dim::Fixed(w)) => Some(Size::new(*w as u32, *h as u32)),
            _ => None,
        };
        let min_size = onnx::metadata(model, crate::ncnn::META_MIN_SIZE).and_then(|s| s.parse().ok()).unwrap_or(1);
        let name = if graph.name.is_empty() {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            graph.name.clone()
        };
        Ok(ModelInfo {
            path: path.to_path_buf(),
            name,
            input_name: input.name.clone(),
            output_name: output.name.clone(),
            input_type,
            output_type,
            fixed_batch: input_dims[0].fixed().map(|b| b as u32),
            input_dims,
            output_dims,
            scale: meta_scale.or(static_scale),
            fixed_size,
            min_size,
        })
    }

    /// Checks that the model can take frames of `size` (its static size, its minimum size): a
    /// [negotiation](crate::ErrorKind::Negotiation) error otherwise.
    pub fn check_input_size(&self, size: Size) -> Result<()> {
        let model = self.path.display();
        if let Some(fixed) = self.fixed_size
            && fixed != size
        {
            return Err(Error::Negotiation(format!(
                "model {model}: accepts only {fixed} input (static shape), but the stream is {size}; use a model with \
                 dynamic height and width"
            )));
        }
        if size.width < self.min_size || size.height < self.min_size {
            return Err(Error::Negotiation(format!(
                "model {model}: needs at least {0}x{0} input, but the stream is {size}",
                self.min_size
            )));
        }
        Ok(())
    }

    /// Derives the scale from a probe run's input and output sizes.
    pub fn scale_from_probe(&self, input: Size, output: Size) -> Result<u32> {
        let (sw, sh) = (output.width / input.width.max(1), output.height / input.height.max(1));
        if sw < 1 || sw != sh || output != input.scaled(sw) {
            return Err(Error::model(
                &self.path,
                format!("probe run mapped {input} to {output}: not an integer upscale"),
            ));
        }
        Ok(sw)
    }

    /// One line for logs and `inspect`.
    pub fn summary(&self) -> String {
        let dims = |d: &[Dim]| d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        format!(
            "{} → {} ({} {} → {} {}), scale {}, {}",
            self.input_name,
            self.output_name,
            self.input_type,
            dims(&self.input_dims),
            self.output_type,
            dims(&self.output_dims),
            self.scale.map_or("found by a probe run".into(), |s| format!("x{s}")),
            self.fixed_size.map_or("any input size".into(), |s| format!("input fixed at {s}")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{GraphBuilder, tensor_info};

    fn model(in_dims: &[Dim], out_dims: &[Dim], elem: i32, meta: &[(&str, String)]) -> ModelProto {
        let mut g = GraphBuilder::with_io(elem, in_dims, out_dims);
        g.op_into("Identity", &["input"], "output", vec![]);
        g.into_model("m", meta)
    }

    fn dyn4() -> Vec<Dim> {
        vec![Dim::Param("n".into()), Dim::Fixed(3), Dim::Param("h".into()), Dim::Param("w".into())]
    }

    #[test]
    fn scale_from_metadata_or_static_shapes() {
        let m = model(&dyn4(), &dyn4(), data_type::FLOAT, &[(META_SCALE, "4".into())]);
        let info = ModelInfo::from_proto(&m, Path::new("a.onnx")).unwrap();
        assert_eq!((info.scale, info.fixed_size, info.input_type), (Some(4), None, ElementType::F32));

        let s = |h, w| vec![Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)];
        let m = model(&s(64, 32), &s(128, 64), data_type::FLOAT16, &[]);
        let info = ModelInfo::from_proto(&m, Path::new("b.onnx")).unwrap();
        assert_eq!((info.scale, info.fixed_size), (Some(2), Some(Size::new(32, 64))));
        assert_eq!(info.fixed_batch, Some(1));
        let e = info.check_input_size(Size::new(64, 64)).unwrap_err().to_string();
        assert!(e.contains("b.onnx") && e.contains("only 32x64") && e.contains("64x64"), "{e}");

        let m = model(&dyn4(), &dyn4(), data_type::FLOAT, &[]);
        assert_eq!(ModelInfo::from_proto(&m, Path::new("c.onnx")).unwrap().scale, None);
    }

    #[test]
    fn a_model_converts_to_another_precision_without_a_second_check() {
        let m = Model::from_proto(model(&dyn4(), &dyn4(), data_type::FLOAT, &[]), Path::new("m.onnx")).unwrap();
        assert_eq!(m.precision(), FloatPrecision::F32);
        let (same, bytes) = m.encoded_as(FloatPrecision::F32).unwrap();
        assert_eq!(&same, m.info());
        let (half, converted) = m.encoded_as(FloatPrecision::F16).unwrap();
        assert_eq!((half.input_type, half.output_type), (ElementType::F16, ElementType::F16));
        assert_eq!(half.path, m.info().path);
        // the bytes really are the converted model, whose contract is what was derived without checking it again
        let decoded = onnx::decode_model(&converted, Path::new("m.onnx")).unwrap();
        assert_eq!(ModelInfo::from_proto(&decoded, Path::new("m.onnx")).unwrap(), half);
        assert_ne!(bytes, converted);
    }

    #[test]
    fn contract_violations_name_the_model_and_reason() {
        let err = |m: ModelProto| ModelInfo::from_proto(&m, Path::new("bad.onnx")).unwrap_err().to_string();
        let nhwc = vec![Dim::Fixed(1), Dim::Param("h".into()), Dim::Param("w".into()), Dim::Fixed(3)];
        assert!(err(model(&nhwc, &nhwc, data_type::FLOAT, &[])).contains("NHWC"));
        assert!(err(model(&dyn4(), &dyn4(), data_type::INT64, &[])).contains("int64"));
        let rank3 = vec![Dim::Fixed(3), Dim::Param("h".into()), Dim::Param("w".into())];
        assert!(err(model(&rank3, &rank3, data_type::FLOAT, &[])).contains("3 dimensions"));
        let s = |h| vec![Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(h)];
        assert!(err(model(&s(10), &s(25), data_type::FLOAT, &[])).contains("integer multiple"));
        assert!(
            err(model(&dyn4(), &dyn4(), data_type::FLOAT, &[(META_SCALE, "x".into())])).contains("vfupscale.scale")
        );

        let mut two_inputs = model(&dyn4(), &dyn4(), data_type::FLOAT, &[]);
        let g = two_inputs.graph.as_mut().unwrap();
        g.input.push(tensor_info("mask", data_type::FLOAT, &dyn4()));
        let e = err(two_inputs);
        assert!(e.starts_with("model bad.onnx: has 2 inputs"), "{e}");
    }

    #[test]
    fn missing_and_corrupt_files_are_reported() {
        let e = ModelInfo::load(Path::new("/nonexistent/model.onnx")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/model.onnx") && e.contains("cannot read"), "{e}");
        let dir = std::env::temp_dir().join(format!("vfupscale-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.onnx");
        std::fs::write(&junk, b"this is a text file, not a protobuf model").unwrap();
        let e = ModelInfo::load(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.onnx") && e.contains("not an ONNX model"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
