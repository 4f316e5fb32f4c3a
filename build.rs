// SPDX-License-Identifier: MPL-2.0
//! Embeds the CUDA kernel sources (`src/cuda/kernels/*.cu`, `src/native/kernels/*.cu`) as typed kernel modules
//! for NVRTC: one `KernelModule` constant per `.cu` file with its source (local `#include "*.cuh"` resolved once,
//! each header at most once, include cycles refused), the `extern "C" __global__` functions it defines (found in
//! the source, macro-generated ones included) and its NVRTC options, given in the source by lines such as
//!
//! ```text
//! // nvrtc: fmad=false
//! // nvrtc: arch=compute_90a
//! ```
//!
//! NVRTC compiles them at run time for the device (without headers on disk); the PTX is cached per device.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A source file with its headers inlined.
#[derive(Debug)]
pub struct Resolved {
    pub text: String,
    pub files: Vec<PathBuf>,
}

/// Inlines the local includes of `path`, depth first. `stack` holds the files being inlined (a cycle is an error),
/// `seen` the headers already inlined (each goes in once, as `#pragma once` would have it).
pub fn resolve(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Resolved,
) -> Result<(), String> {
    if let Some(start) = stack.iter().position(|p| p == path) {
        let cycle: Vec<String> =
            stack[start..].iter().chain([&path.to_path_buf()]).map(|p| p.display().to_string()).collect();
        return Err(format!("include cycle: {}", cycle.join(" -> ")));
    }
    if !seen.insert(path.to_path_buf()) {
        return Ok(());
    }
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    out.files.push(path.to_path_buf());
    stack.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("."));
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("#include") {
            let rest = rest.trim();
            let name = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')).ok_or_else(|| {
                format!(
                    "{}:{}: only local includes (#include \"file\") are supported: {trimmed}",
                    path.display(),
                    n + 1
                )
            })?;
            resolve(&dir.join(name), stack, seen, out)?;
        } else if trimmed != "#pragma once" {
            out.text.push_str(line);
            out.text.push('\n');
        }
    }
    stack.pop();
    Ok(())
}

/// Joins lines continued with a trailing backslash.
pub fn logical_lines(source: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in source.lines() {
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

const KERNEL_MARK: &str = "extern \"C\" __global__";

/// Names of the kernels declared in `code` (`extern "C" __global__ void [__launch_bounds__(…)] name(`).
pub fn kernel_names(code: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(KERNEL_MARK) {
        rest = rest[at + KERNEL_MARK.len()..].trim_start();
        rest = rest.strip_prefix("void").ok_or("a kernel that does not return void")?.trim_start();
        if let Some(after) = rest.strip_prefix("__launch_bounds__") {
            // skip the balanced parentheses of the launch bounds
            let mut depth = 0;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0 && c == ')'
                })
                .ok_or("unbalanced __launch_bounds__")?
                .0;
            rest = after[end + 1..].trim_start();
        }
        let end = rest.find('(').ok_or("a kernel without a parameter list")?;
        let name = rest[..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("cannot read the kernel name in `{}`", &rest[..end.min(60)]));
        }
        names.push(name.to_string());
        rest = &rest[end..];
    }
    Ok(names)
}

/// The kernels a source defines, including those that function-like macros define where they are invoked
/// (`#define LAST_LAYER(NOUT, R) extern "C" __global__ void f_##NOUT(…)` then `LAST_LAYER(16, 2)`).
pub fn defined_kernels(source: &str) -> Result<Vec<String>, String> {
    let lines = logical_lines(source);
    let mut macros: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut plain = String::new();
    for line in &lines {
        let trimmed = line.trim_start();
        if let Some(def) = trimmed.strip_prefix("#define") {
            let def = def.trim_start();
            if let Some(open) = def.find('(')
                && def[..open].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && def.contains(KERNEL_MARK)
            {
                let close = def[open..].find(')').ok_or("unterminated macro parameter list")? + open;
                let params = def[open + 1..close].split(',').map(|p| p.trim().to_string()).collect();
                macros.insert(def[..open].to_string(), (params, def[close + 1..].to_string()));
            }
            continue;
        }
        plain.push_str(line);
        plain.push('\n');
    }
    let mut names = kernel_names(&plain)?;
    for line in &lines {
        let trimmed = line.trim();
        for (name, (params, body)) in &macros {
            let Some(args) = trimmed.strip_prefix(name.as_str()).and_then(|r| r.trim_start().strip_prefix('(')) else {
                continue;
            };
            let args: Vec<&str> = args.trim_end_matches(';').trim_end().trim_end_matches(')').split(',').collect();
            if args.len() != params.len() {
                return Err(format!(
                    "macro {name} invoked with {} arguments, defined with {}",
                    args.len(),
                    params.len()
                ));
            }
            let mut expanded = body.clone();
            for (param, arg) in params.iter().zip(&args) {
                expanded =
                    expanded.replace(&format!("##{param}"), arg.trim()).replace(&format!("{param}##"), arg.trim());
            }
            names.extend(kernel_names(&expanded)?);
        }
    }
    Ok(names)
}

/// NVRTC options asked for by `// nvrtc: key=value …` lines.
pub struct Options {
    pub arch: Option<String>,
    pub fmad: bool,
}

pub fn options(path: &Path, source: &str) -> Result<Options, String> {
    let mut options = Options { arch: None, fmad: true };
    for line in source.lines() {
        let Some(spec) = line.trim().strip_prefix("// nvrtc:") else { continue };
        for item in spec.split_whitespace() {
            match item.split_once('=') {
                Some(("fmad", v)) => options.fmad = v.parse().map_err(|_| format!("{}: fmad={v}", path.display()))?,
                Some(("arch", v)) if v.starts_with("compute_") => options.arch = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "{}: unknown NVRTC option `{item}` (fmad=BOOL, arch=compute_NN[a])",
                        path.display()
                    ));
                }
            }
        }
    }
    Ok(options)
}

/// Writes `OUT_DIR/<out>`: one `KernelModule` constant per `.cu` file in `dir`, named after the file, and `ALL`.
fn embed(dir: &Path, out: &str) -> Result<(), String> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()).map_err(|e| format!("{}: {e}", dir.display())))
        .collect::<Result<_, _>>()?;
    entries.sort();
    let mut generated = String::from("// Generated by build.rs from the .cu files: do not edit.\n\n");
    let mut all = Vec::new();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        if path.extension().is_none_or(|e| e != "cu") {
            continue;
        }
        let mut resolved = Resolved { text: String::new(), files: Vec::new() };
        resolve(&path, &mut Vec::new(), &mut HashSet::new(), &mut resolved)?;
        let functions = defined_kernels(&resolved.text).map_err(|e| format!("{}: {e}", path.display()))?;
        if functions.is_empty() {
            return Err(format!("{}: defines no extern \"C\" __global__ kernel", path.display()));
        }
        let options = options(&path, &resolved.text)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let constant = stem.to_ascii_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        writeln!(
            generated,
            "/// `{}` (from {}).\npub const {constant}: crate::cuda::KernelModule = crate::cuda::KernelModule {{\n    \
             name: {stem:?},\n    source: {:?},\n    functions: &{functions:?},\n    arch: {:?},\n    fmad: {},\n}};\n",
            path.display(),
            resolved.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            resolved.text,
            options.arch,
            options.fmad,
        )
        .map_err(|e| e.to_string())?;
        all.push(constant);
    }
    writeln!(generated, "/// Every module of this directory.\n#[allow(dead_code)] // not every directory's list is used\npub const ALL: &[&crate::cuda::KernelModule] = &[{}];", all.iter().map(|c| format!("&{c}")).collect::<Vec<_>>().join(", ")).map_err(|e| e.to_string())?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    let out = Path::new(&out_dir).join(out);
    std::fs::write(&out, generated).map_err(|e| format!("{}: {e}", out.display()))
}

fn main() -> Result<(), String> {
    // the conversion kernels (any CUDA GPU) and the native engine's (sm_80 and newer)
    embed(Path::new("src/cuda/kernels"), "conversion_kernels.rs")?;
    embed(Path::new("src/native/kernels"), "native_kernels.rs")
}
