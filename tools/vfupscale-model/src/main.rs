//! `vfupscale-model`: bring super-resolution models into the form the `vfupscale` element runs.
//!
//! ```text
//! vfupscale-model fetch [--dir DIR] [--cache DIR] [--force] [NAME…]
//! vfupscale-model list
//! vfupscale-model import-ncnn MODEL.param MODEL.bin -o OUT.onnx [--fp16] [--add-input nearest]
//! vfupscale-model fp16 IN.onnx -o OUT.onnx
//! vfupscale-model inspect MODEL.onnx
//! ```
//! Every output is written to a temporary file and renamed into place only on success.

mod catalog;
mod fetch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vfupscale::model::ModelInfo;
use vfupscale_onnx::ncnn::{ImportOptions, import_files};
use vfupscale_onnx::onnx::precision::{FloatPrecision, convert};
use vfupscale_onnx::onnx::stats::model_stats;
use vfupscale_onnx::onnx::{read_model, tensor_type, write_model};

const USAGE: &str = "usage:
  vfupscale-model fetch [--dir DIR] [--cache DIR] [--force] [NAME…]   (default: every model of `list`)
  vfupscale-model list
  vfupscale-model import-ncnn MODEL.param MODEL.bin -o OUT.onnx [--fp16] [--add-input nearest]
  vfupscale-model fp16 IN.onnx -o OUT.onnx
  vfupscale-model inspect MODEL.onnx";

/// Positional arguments and the value of `-o`, with `--fp16` as a flag.
struct Args {
    positional: Vec<String>,
    output: Option<PathBuf>,
    dir: Option<PathBuf>,
    cache: Option<PathBuf>,
    force: bool,
    fp16: bool,
    add_input: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        positional: Vec::new(),
        output: None,
        dir: None,
        cache: None,
        force: false,
        fp16: false,
        add_input: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => parsed.output = Some(it.next().ok_or("-o needs a file name")?.into()),
            "--dir" => parsed.dir = Some(it.next().ok_or("--dir needs a directory")?.into()),
            "--cache" => parsed.cache = Some(it.next().ok_or("--cache needs a directory")?.into()),
            "--fp16" => parsed.fp16 = true,
            "--force" => parsed.force = true,
            "--add-input" => match it.next().map(String::as_str) {
                Some("nearest") => parsed.add_input = true,
                other => return Err(format!("--add-input takes \"nearest\", found {other:?}")),
            },
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            _ => parsed.positional.push(a.clone()),
        }
    }
    Ok(parsed)
}

fn run(argv: &[String]) -> Result<(), String> {
    let Some((command, rest)) = argv.split_first() else {
        return Err(USAGE.into());
    };
    let args = parse(rest)?;
    let output = || args.output.clone().ok_or_else(|| format!("{command}: -o OUT.onnx is required"));
    match (command.as_str(), &args.positional[..]) {
        ("fetch", names) => fetch::fetch(args.dir.clone(), args.cache.clone(), names, args.force),
        ("list", []) => {
            fetch::list();
            Ok(())
        }
        ("import-ncnn", [param, bin]) => {
            let out = output()?;
            let model = import_files(
                Path::new(param),
                Path::new(bin),
                &ImportOptions { fp16: args.fp16, add_input: args.add_input },
            )
            .map_err(|e| e.to_string())?;
            write_model(&out, &model).map_err(|e| e.to_string())?;
            let info = ModelInfo::from_proto(&model, &out).map_err(|e| e.to_string())?;
            println!("{}: {}", out.display(), info.summary());
            Ok(())
        }
        ("fp16", [input]) => {
            let out = output()?;
            let mut model = read_model(Path::new(input)).map_err(|e| e.to_string())?;
            convert(&mut model, FloatPrecision::F16).map_err(|e| format!("{input}: {e}"))?;
            write_model(&out, &model).map_err(|e| e.to_string())?;
            println!("{}: float16 weights and IO", out.display());
            Ok(())
        }
        ("inspect", [input]) => inspect(Path::new(input)),
        _ => Err(USAGE.into()),
    }
}

fn inspect(path: &Path) -> Result<(), String> {
    let model = read_model(path).map_err(|e| e.to_string())?;
    let graph = model.graph.as_ref().expect("read_model checks the graph");
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    println!("model: {}", path.display());
    println!("producer: {} {}", model.producer_name, model.producer_version);
    let opsets: Vec<String> = model
        .opset_import
        .iter()
        .map(|o| format!("{}{}", if o.domain.is_empty() { "ai.onnx" } else { &o.domain }, o.version))
        .collect();
    println!("opset: {}", opsets.join(", "));
    for (kind, values) in [("input", &graph.input), ("output", &graph.output)] {
        for v in values.iter().filter(|v| !initializers.contains(v.name.as_str())) {
            match tensor_type(v) {
                Some((t, dims)) => {
                    let dims = dims.map_or("unknown shape".into(), |d| {
                        format!("[{}]", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
                    });
                    println!("{kind}: {} {} {dims}", v.name, vfupscale_onnx::onnx::data_type::name(t));
                }
                None => println!("{kind}: {} (not a tensor)", v.name),
            }
        }
    }
    match ModelInfo::from_proto(&model, path) {
        Ok(info) => println!("contract: {}", info.summary()),
        Err(e) => println!("contract: NOT USABLE by vfupscale: {e}"),
    }
    let stats = model_stats(&model);
    println!("parameters: {}", stats.parameters);
    println!(
        "FLOPs per input pixel: {:.0} ({:.2} TFLOP per 1920x1080 frame)",
        stats.flops_per_input_pixel,
        stats.flops_per_input_pixel * 1920.0 * 1080.0 / 1e12
    );
    if !stats.unknown_ops.is_empty() {
        println!("note: FLOPs after {} not counted (size not static)", stats.unknown_ops.join(", "));
    }
    let ops: Vec<String> = stats.op_counts.iter().map(|(op, n)| format!("{op}×{n}")).collect();
    println!("operators: {}", ops.join(" "));
    for p in &model.metadata_props {
        println!("metadata: {} = {}", p.key, p.value);
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale-model: {e}");
            ExitCode::FAILURE
        }
    }
}
