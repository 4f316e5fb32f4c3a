//! Embeds the CUDA kernel sources (`src/cuda/kernels/*.cu`, `src/native/kernels/*.cu`) for NVRTC, with their
//! local `#include "*.cuh"` lines inlined: NVRTC compiles them at run time for the device's architecture, without
//! headers on disk.

use std::fmt::Write as _;
use std::path::Path;

fn inline_includes(dir: &Path, source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("#include \"") {
            let name = rest.trim_end_matches('"');
            let header = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push_str(&inline_includes(dir, &header));
        } else if trimmed != "#pragma once" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Writes `OUT_DIR/<out>`: a `SOURCES` table of the `.cu` files in `dir`, includes inlined.
fn embed(dir: &Path, out: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    let mut generated =
        String::from("/// Kernel sources by file name, includes inlined.\npub const SOURCES: &[(&str, &str)] = &[\n");
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        if path.extension().is_some_and(|e| e == "cu") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = inline_includes(dir, &std::fs::read_to_string(&path).expect("kernel source"));
            writeln!(generated, "    ({name:?}, {source:?}),").unwrap();
        }
    }
    generated.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join(out);
    std::fs::write(out, generated).expect("write the kernel table");
}

fn main() {
    // the conversion kernels (any CUDA GPU) and the native engine's (sm_80 and newer), compiled separately
    embed(Path::new("src/cuda/kernels"), "kernels.rs");
    embed(Path::new("src/native/kernels"), "native_kernels.rs");
}
