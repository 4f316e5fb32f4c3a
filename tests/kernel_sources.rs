// SPDX-License-Identifier: MPL-2.0
//! build.rs's reading of the CUDA sources: includes resolved once each and cycles refused, the kernels a source
//! defines (macro-generated ones included), the NVRTC options it asks for.

use std::collections::HashSet;
use std::path::Path;

#[path = "../build.rs"]
#[allow(dead_code)]
mod build_script;

use build_script::{Resolved, defined_kernels, options, resolve};

fn inline(path: &Path) -> Result<Resolved, String> {
    let mut out = Resolved { text: String::new(), files: Vec::new() };
    resolve(path, &mut Vec::new(), &mut HashSet::new(), &mut out)?;
    Ok(out)
}

#[test]
fn includes_are_inlined_once_and_cycles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    // a diamond: both headers include common.cuh, which goes in once
    write("common.cuh", "#pragma once\nstruct Common {};\n");
    write("a.cuh", "#include \"common.cuh\"\nstruct A {};\n");
    write("b.cuh", "#include \"common.cuh\"\nstruct B {};\n");
    write("k.cu", "#include \"a.cuh\"\n#include \"b.cuh\"\nextern \"C\" __global__ void k() {}\n");
    let r = inline(&dir.path().join("k.cu")).unwrap();
    assert_eq!(r.text.matches("struct Common").count(), 1, "{}", r.text);
    assert!(!r.text.contains("#include") && !r.text.contains("#pragma once"), "{}", r.text);
    assert_eq!(r.files.len(), 4);

    write("x.cuh", "#include \"y.cuh\"\n");
    write("y.cuh", "#include \"x.cuh\"\n");
    write("cycle.cu", "#include \"x.cuh\"\n");
    let e = inline(&dir.path().join("cycle.cu")).unwrap_err();
    assert!(e.starts_with("include cycle: ") && e.contains("x.cuh -> ") && e.ends_with("x.cuh"), "{e}");

    write("system.cu", "#include <cuda_fp16.h>\n");
    let e = inline(&dir.path().join("system.cu")).unwrap_err();
    assert!(e.contains("only local includes"), "{e}");
    write("missing.cu", "#include \"nowhere.cuh\"\n");
    assert!(inline(&dir.path().join("missing.cu")).unwrap_err().contains("nowhere.cuh"));
}

#[test]
fn kernels_are_found_in_the_source_including_macro_generated_ones() {
    let source = r#"
extern "C" __global__ void plain(int* out) {}
extern "C" __global__ void __launch_bounds__(WARPS * 32, 1)
    bounded(const float* in) {}
#define LAST(NOUT, R)                                              \
    extern "C" __global__ void __launch_bounds__(256) last_##NOUT( \
        const float* in) {}
LAST(16, 2)
LAST(48, 4)
__device__ void helper() {}
"#;
    assert_eq!(defined_kernels(source).unwrap(), ["plain", "bounded", "last_16", "last_48"]);
    assert_eq!(defined_kernels("__device__ void f() {}").unwrap(), Vec::<String>::new());
}

#[test]
fn nvrtc_options_come_from_the_source() {
    let p = Path::new("k.cu");
    let o = options(p, "// nvrtc: fmad=false\n").unwrap();
    assert_eq!((o.arch, o.fmad), (None, false));
    let o = options(p, "// a comment\n// nvrtc: arch=compute_90a\n").unwrap();
    assert_eq!((o.arch.as_deref(), o.fmad), (Some("compute_90a"), true));
    let e = options(p, "// nvrtc: fast=yes\n").err().unwrap();
    assert!(e.contains("unknown NVRTC option `fast=yes`"), "{e}");
}
