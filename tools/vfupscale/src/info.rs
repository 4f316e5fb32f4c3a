// SPDX-License-Identifier: MPL-2.0
//! `vfupscale info`: what this machine offers the upscaler.

use sha2::{Digest, Sha256};
use vfupscale::infer::{probe_providers, runtime};

pub fn print() -> Result<(), String> {
    println!("vfupscale {}", env!("CARGO_PKG_VERSION"));
    let (major, minor, micro, _) = gst::version();
    println!("GStreamer: {major}.{minor}.{micro}");
    match vfupscale::cuda::driver_status() {
        Ok(count) => {
            let (maj, min) = vfupscale::cuda::driver_version().unwrap_or((0, 0));
            println!("CUDA driver: supports CUDA {maj}.{min}, {count} device(s)");
            for i in 0..count as u32 {
                match vfupscale::cuda::GpuDevice::get(i) {
                    Ok(d) => {
                        let native = match vfupscale::native::device_support(&d) {
                            Ok(()) => "native kernels: yes".to_string(),
                            Err(e) => format!("{e}"),
                        };
                        let (free, total) = d.memory_info().unwrap_or((0, 0));
                        let (cc_major, cc_minor) = d.compute_capability();
                        println!(
                            "  GPU {i}: {} (compute {cc_major}.{cc_minor}, {:.1} of {:.1} GiB free, kernels compiled with NVRTC; \
                             {native})",
                            d.name(),
                            free as f64 / (1u64 << 30) as f64,
                            total as f64 / (1u64 << 30) as f64
                        );
                    }
                    Err(e) => println!("  GPU {i}: not usable: {e}"),
                }
            }
        }
        Err(e) => println!("CUDA: {e}"),
    }
    let present = |names: &[&str]| -> String {
        let found: Vec<&str> = names.iter().copied().filter(|n| gst::ElementFactory::find(n).is_some()).collect();
        if found.is_empty() { "none".into() } else { found.join(" ") }
    };
    println!("NVDEC decoders: {}", present(&["nvh264dec", "nvh265dec", "nvvp9dec", "nvav1dec"]));
    println!("NVENC encoders: {}", present(&["nvh264enc", "nvh265enc"]));
    println!("software encoders: {}", present(&["x264enc", "x265enc"]));
    match runtime::runtime() {
        Ok(rt) => println!("ONNX Runtime: {} ({})", runtime::version().unwrap_or_default(), rt.library.display()),
        Err(e) => println!("ONNX Runtime: {e}"),
    }
    for (backend, result) in probe_providers(0) {
        let name = backend.title();
        match result {
            Ok(()) => println!("  execution provider {name}: loads"),
            Err(e) => println!("  execution provider {name}: unavailable: {}", e.lines().next().unwrap_or_default()),
        }
    }
    let dir = vfupscale::models::models_dir();
    let default = vfupscale::models::default_model_path();
    match std::fs::read(&default) {
        Ok(bytes) => {
            let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            let scale = vfupscale::model::ModelInfo::load(&default).ok().and_then(|i| i.scale).unwrap_or(0);
            println!("default model: {} (x{scale}, sha256 {hash})", default.display());
            if let Ok(model) = vfupscale::Model::load(&default) {
                let info = model.info();
                match vfupscale::native::native_form(model.proto(), &info.input_name, &info.output_name) {
                    Ok(form) => println!("  native kernels: {}", form.summary()),
                    Err(why) => println!("  runs on ONNX Runtime: {why}"),
                }
            }
        }
        Err(_) => println!("default model: not installed at {} (run vfupscale-model fetch)", default.display()),
    }
    let installed = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "onnx")).count())
        .unwrap_or(0);
    println!("models directory: {} ({installed} models)", dir.display());
    Ok(())
}
