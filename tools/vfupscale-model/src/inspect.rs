// SPDX-License-Identifier: MPL-2.0
//! `vfupscale-model inspect`: what a model file holds and whether the element can run it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use vfupscale::model::ModelInfo;
use vfupscale_onnx::onnx::stats::model_stats;
use vfupscale_onnx::onnx::{data_type, read_model, tensor_type};

use crate::catalog::MODELS;

/// The model argument as a path: an existing file, else the name of a model installed in the models directory.
/// Anything that looks like a path (a directory part or an `.onnx` ending) stays a path, so that reading it names
/// the file and the reason.
pub fn resolve(model: &str) -> Result<PathBuf, String> {
    let path = Path::new(model);
    if path.exists() || path.components().count() > 1 || path.extension().is_some_and(|e| e == "onnx") {
        return Ok(path.to_path_buf());
    }
    let installed = vfupscale::models::model_path(model);
    if installed.exists() {
        return Ok(installed);
    }
    let dir = vfupscale::models::models_dir();
    if MODELS.iter().any(|e| e.name == model) {
        return Err(format!("model {model}: not installed in {}: run `vfupscale-model fetch {model}`", dir.display()));
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".onnx").map(String::from))
        .collect();
    names.sort();
    let installed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    Err(format!(
        "model {model}: no such file, and no installed model of that name in {} (installed: {installed})",
        dir.display()
    ))
}

/// The report, one fact a line: IO, contract, parameters, FLOPs, operators, metadata.
pub fn inspect(path: &Path) -> Result<String, String> {
    let model = read_model(path).map_err(|e| e.to_string())?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(format!("model {}: no graph", path.display()));
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut lines = vec![
        format!("model: {}", path.display()),
        format!("name: {}", graph.name),
        format!("producer: {} {}", model.producer_name, model.producer_version),
    ];
    let opsets: Vec<String> = model
        .opset_import
        .iter()
        .map(|o| format!("{}{}", if o.domain.is_empty() { "ai.onnx" } else { &o.domain }, o.version))
        .collect();
    lines.push(format!("opset: {}", opsets.join(", ")));
    for (kind, values) in [("input", &graph.input), ("output", &graph.output)] {
        for v in values.iter().filter(|v| !initializers.contains(v.name.as_str())) {
            lines.push(match tensor_type(v) {
                Some((t, dims)) => {
                    let dims = dims.map_or("unknown shape".into(), |d| {
                        format!("[{}]", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
                    });
                    format!("{kind}: {} {} {dims}", v.name, data_type::name(t))
                }
                None => format!("{kind}: {} (not a tensor)", v.name),
            });
        }
    }
    let contract = ModelInfo::from_proto(&model, path);
    lines.push(match &contract {
        Ok(info) => format!("contract: {}", info.summary()),
        Err(e) => format!("contract: NOT USABLE by vfupscale: {e}"),
    });
    if let Ok(info) = &contract {
        lines.push(match vfupscale::native::native_form(&model, &info.input_name, &info.output_name) {
            Ok(form) => format!("native kernels: {}", form.summary()),
            Err(why) => format!("native kernels: no, ONNX Runtime runs it ({why})"),
        });
    }
    let stats = model_stats(&model);
    lines.push(format!("parameters: {}", stats.parameters));
    lines.push(format!(
        "FLOPs per input pixel: {:.0} ({:.2} TFLOP per 1920x1080 frame)",
        stats.flops_per_input_pixel,
        stats.flops_per_input_pixel * 1920.0 * 1080.0 / 1e12
    ));
    if !stats.unknown_ops.is_empty() {
        lines.push(format!("note: FLOPs after {} not counted (size not static)", stats.unknown_ops.join(", ")));
    }
    let ops: Vec<String> = stats.op_counts.iter().map(|(op, n)| format!("{op}×{n}")).collect();
    lines.push(format!("operators: {}", ops.join(" ")));
    lines.extend(model.metadata_props.iter().map(|p| format!("metadata: {} = {}", p.key, p.value)));
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}
