// SPDX-License-Identifier: MPL-2.0
//! What the CPU emulations of CUDA sources share (`kernel_emulation.rs`, `fused_output_emulation.rs`): the sources
//! made C++ (the PTX fp16 conversions swapped for the emulated ones of `emulation.h`) and the harness compiled
//! without contraction.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `source` (module or header `name`) with its inline PTX conversions swapped for `emulation.h`'s.
pub fn emulated(name: &str, source: &str) -> String {
    let mut source = source.to_string();
    for (ptx, emulated) in [
        (r#"asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));"#, "h = emulated_to_half_bits(f);"),
        (r#"asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));"#, "f = emulated_from_half_bits(h);"),
    ] {
        assert!(source.contains(ptx), "{name}: the PTX conversion `{ptx}` changed: update this test");
        source = source.replace(ptx, emulated);
    }
    assert!(!source.contains("asm("), "{name}: inline PTX this emulation does not know");
    source
}

/// Compiles `tests/support/<harness>` (which includes what was written into `include`) into `include/emulate`:
/// IEEE single precision, no contraction, F16C.
pub fn compile(harness: &str, include: &Path) -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(harness);
    let binary = include.join("emulate");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&compiler)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-fno-strict-aliasing", "-mf16c", "-w", "-I"])
        .arg(include)
        .arg(&harness)
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} (the C++ compiler this test needs) cannot run: {e}"));
    assert!(built.status.success(), "compiling the emulation failed:\n{}", String::from_utf8_lossy(&built.stderr));
    binary
}
