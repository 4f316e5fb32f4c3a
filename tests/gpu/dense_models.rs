// SPDX-License-Identifier: MPL-2.0
//! The models lowered to native programs (RRDBNet: realesrgan-x4plus, realesrgan-x4plus-anime; waifu2x UpConv7;
//! Real-CUGAN up2x) on
//! the native program kernels: their output against ONNX Runtime's CUDA provider (both fp16), batches against single
//! images, and what the upscaler chooses for them.

use std::sync::Arc;
use std::time::Instant;

use vfupscale::frame::Size;
use vfupscale::{Backend, BackendChoice, Engine, EngineRequest, Model, Precision, TensorLocation};

use super::images::planar_image;

const DENSE: [&str; 2] = ["realesrgan-x4plus-anime", "realesrgan-x4plus"];
/// Every installed model the program kernels run.
const LOWERED: [&str; 8] = [
    "realesrgan-x4plus-anime",
    "realesrgan-x4plus",
    "waifu2x-upconv7-x2",
    "waifu2x-upconv7-noise3-x2",
    "realcugan-up2x",
    "waifu2x-cunet-x2",
    "realcugan-up3x",
    "realcugan-up4x",
];

fn engine(name: &str, backend: BackendChoice) -> Engine {
    let model = Arc::new(Model::load(&vfupscale::models::resolve(Some(name.as_ref())).unwrap()).unwrap());
    let request = EngineRequest { backend, precision: Precision::Fp16, ..Default::default() };
    vfupscale::select_engine(model, &request).unwrap().engine
}

/// Mean milliseconds of `runs` runs of `engine` on its bound tensors, after one.
fn time(engine: &mut Engine, runs: u32) -> f64 {
    let stream = engine.stream().unwrap().clone();
    engine.run().unwrap();
    stream.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..runs {
        engine.run().unwrap();
    }
    stream.synchronize().unwrap();
    start.elapsed().as_secs_f64() * 1000.0 / runs as f64
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn dense_native_kernels_agree_with_onnx_runtime() {
    // partial tiles on both axes (128 x 4 pixel tiles), and the tail at 4x
    let size = Size::new(250, 142);
    let image = planar_image("astronaut-192x128.ppm", size);
    for name in LOWERED {
        let mut native = engine(name, BackendChoice::Native);
        assert_eq!(native.backend(), Backend::Native, "{name}");
        let mut ort = engine(name, BackendChoice::Cuda);
        let (a, _, _) = vfupscale::compare_engines(&mut native, &mut ort, &image, size).unwrap();
        let (ours, theirs) = (time(&mut native, 5), time(&mut ort, 5));
        let profile = native.profile().unwrap().expect("the native kernels are profiled");
        let convs = profile.iter().filter(|(k, _)| k.starts_with("conv")).count();
        eprintln!(
            "{name} {size}: native vs ONNX Runtime CUDA (both fp16): {:.1} dB, max difference {:.4}; {convs} \
             convolutions, {ours:.2} ms vs {theirs:.2} ms",
            a.psnr_db, a.max_difference
        );
        let signature = match name {
            _ if DENSE.contains(&name) => "conv192-64+r",
            "realcugan-up2x" | "waifu2x-cunet-x2" | "realcugan-up3x" | "realcugan-up4x" => "squeeze-excite",
            _ => "depth-to-space",
        };
        assert!(profile.iter().any(|(k, _)| k == signature), "{name}: {profile:?}");
        assert!(a.psnr_db >= 60.0, "{name}: {:.1} dB", a.psnr_db);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn dense_batches_equal_single_images_bit_for_bit() {
    let size = Size::new(97, 61);
    let name = DENSE[0];
    let images = [planar_image("astronaut-192x128.ppm", size), planar_image("astronaut-192x128.ppm", size)];
    // the second image mirrored, so the two slots differ
    let mirrored: Vec<f32> =
        images[1].chunks(size.width as usize).flat_map(|row| row.iter().rev().copied().collect::<Vec<_>>()).collect();
    let images = [images[0].clone(), mirrored];
    let mut native = engine(name, BackendChoice::Native);
    let stream = native.stream().unwrap().clone();
    let run = |native: &mut Engine, batch: u32, inputs: &[&Vec<f32>]| -> Vec<Vec<u16>> {
        native.bind(batch, size, TensorLocation::Device).unwrap();
        for (slot, image) in inputs.iter().enumerate() {
            native.input_tensor(slot as u32).unwrap().upload_rgb(&stream, image).unwrap();
        }
        native.run().unwrap();
        (0..batch).map(|slot| native.output_tensor(slot).unwrap().download::<u16>(&stream).unwrap()).collect()
    };
    let batched = run(&mut native, 2, &[&images[0], &images[1]]);
    for (slot, image) in images.iter().enumerate() {
        let single = run(&mut native, 1, &[image]).remove(0);
        let differing = single.iter().zip(&batched[slot]).filter(|(a, b)| a != b).count();
        eprintln!("{name} {size}: slot {slot} of a batch of 2 vs alone: {differing} values differ");
        assert_eq!(differing, 0, "slot {slot}");
    }
    assert_ne!(batched[0], batched[1], "the two slots hold different images");
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn the_upscaler_runs_dense_models_on_the_native_kernels_and_says_how_well_they_agreed() {
    for name in LOWERED {
        let up: vfupscale::Upscaler =
            vfupscale::Upscaler::new(vfupscale::UpscalerConfig { model: Some(name.into()), ..Default::default() })
                .unwrap();
        let db = up.native_agreement().map(|a| a.psnr_db);
        eprintln!("{name}: Upscaler backend {}, probe agreement {db:?} dB", up.backend());
        assert_eq!(up.backend(), Backend::Native, "{name}");
        assert!(db.unwrap() >= 45.0, "{name}: {db:?}");
    }
}
