// SPDX-License-Identifier: MPL-2.0
//! GPU tests of the output conversion fused into the Hopper last layer (a module of `gpu_kernels`, run by
//! `tests/gpu/run.sh`): the NV12 and P010 frames it writes equal, byte for byte, the planar output converted by
//! `planar_to_frame`, in the engine (x4 and a shuffle-2 network, natural and odd pitches) and through the upscaler
//! (fused by default, separate with `VFUPSCALE_NO_FUSED_OUTPUT=1`; the x2 model and tiles keep the separate path);
//! profiles name the fused last layer `last-wgmma-nv12` / `last-wgmma-p010`.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use vfupscale::color::{Colorimetry, Matrix, Range, rgb_to_code};
use vfupscale::cuda::{DeviceFrameMut, FrameBuffer, FramePlanes, GpuDevice};
use vfupscale::frame::{Image, PixelFormat, Size};
use vfupscale::native::{NativeEngine, SrvggGraph, match_srvgg};
use vfupscale::{
    BackendChoice, EngineRequest, InputFrame, Model, ModelInfo, Precision, TensorLocation, Tiling, Upscaler,
    UpscalerConfig,
};

use super::images::{BT709, planar_image, test_image_as};

const BT2020: Colorimetry = Colorimetry::new(Matrix::Bt2020, Range::Limited);
const FULL709: Colorimetry = Colorimetry::new(Matrix::Bt709, Range::Full);

fn hopper() -> bool {
    GpuDevice::get(0).unwrap().compute_capability() == (9, 0)
}

/// Runs `f` with `VFUPSCALE_NO_FUSED_OUTPUT=1` in the environment (read when an engine is made).
fn without_fusion<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the GPU tests run on one thread (tests/gpu/run.sh: --test-threads=1); nothing reads the environment
    // concurrently, and the variable is removed right after.
    unsafe { std::env::set_var("VFUPSCALE_NO_FUSED_OUTPUT", "1") };
    let out = f();
    // SAFETY: as above.
    unsafe { std::env::remove_var("VFUPSCALE_NO_FUSED_OUTPUT") };
    out
}

/// The graph and contract of an installed model.
fn graph_of(name: &str) -> (SrvggGraph, ModelInfo) {
    let model = Model::load(&vfupscale::models::resolve(Some(name.as_ref())).unwrap()).unwrap();
    let info = model.info().clone();
    (match_srvgg(model.proto(), &info.input_name, &info.output_name).unwrap(), info)
}

/// The x4 network with its last layer cut to 12 channels and a pixel shuffle by 2 (no such model is installed;
/// its weights are the x4 model's first 12 output channels, so the values have a real network's range).
fn shuffle_2_graph() -> (SrvggGraph, ModelInfo) {
    let (mut graph, info) = graph_of("realesr-animevideov3-x4");
    let last = &mut graph.last;
    let per_channel = last.weights.len() / last.out_channels;
    last.out_channels = 12;
    last.weights.truncate(12 * per_channel);
    last.bias.truncate(12);
    last.slope.truncate(12);
    graph.shuffle = 2;
    (graph, info)
}

/// A frame of `format` and `size` packed at `pitch` in a cudarc allocation, every byte `fill`.
fn frame_memory(stream: &Arc<CudaStream>, format: PixelFormat, size: Size, pitch: usize, fill: u8) -> CudaSlice<u8> {
    stream.clone_htod(&vec![fill; FramePlanes::packed_bytes(format, size, pitch)]).unwrap()
}

/// The bytes of each plane's rows (the padding after them left out).
fn rows(bytes: &[u8], format: PixelFormat, size: Size, pitch: usize) -> Vec<Vec<u8>> {
    let mut start = 0;
    format
        .plane_rows(size)
        .iter()
        .take(format.planes())
        .map(|&(row, count)| {
            let plane = (0..count).flat_map(|y| &bytes[start + y * pitch..][..row]).copied().collect();
            start += pitch * count;
            plane
        })
        .collect()
}

/// The engine's frame of `format` at `pitch` written both ways, for `image` (planar 0..1 of `size`): run, then
/// planar_to_frame into a zeroed frame; run_into_frame into a frame of 0xA5 bytes (a sample it misses shows). With
/// the kernel names of the fused run's profile.
fn both_ways(
    engine: &mut NativeEngine,
    stream: &Arc<CudaStream>,
    (format, colour, pitch): (PixelFormat, Colorimetry, usize),
    out: Size,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>) {
    let device = GpuDevice::get(0).unwrap();
    let from_rgb = rgb_to_code(colour, format.depth());
    let mut separate = frame_memory(stream, format, out, pitch, 0);
    let mut fused = frame_memory(stream, format, out, pitch, 0xA5);
    engine.run().unwrap();
    {
        let tensor = engine.output_tensor(0).unwrap();
        let mut dst = DeviceFrameMut::from_view(separate.as_view_mut(), stream, format, out, pitch).unwrap();
        // SAFETY: the engine's tensor and our allocation, kept until the copies below wait for the stream.
        unsafe { device.kernels().planar_to_frame(stream, &tensor, &from_rgb, &mut dst).unwrap() };
    }
    let kernels = {
        let mut dst = DeviceFrameMut::from_view(fused.as_view_mut(), stream, format, out, pitch).unwrap();
        assert!(engine.writes_frame(format, out), "{format} {out}");
        // SAFETY: our allocation, kept until the copies below wait for the stream.
        unsafe { engine.run_into_frame(&mut dst, &from_rgb).unwrap() };
        // SAFETY: as above; the profile waits for its run.
        let profile = unsafe { engine.profile_into_frame(&mut dst, &from_rgb).unwrap() };
        profile.into_iter().map(|(k, _)| k).collect()
    };
    let (a, b) = (stream.clone_dtoh(&separate).unwrap(), stream.clone_dtoh(&fused).unwrap());
    (rows(&a, format, out, pitch), rows(&b, format, out, pitch), kernels)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn the_fused_last_layer_writes_the_frames_planar_to_frame_writes() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    // partial tiles on both axes and an odd width; the x4 network and one with a pixel shuffle by 2
    let cases = [
        ("x4", graph_of("realesr-animevideov3-x4"), Size::new(250, 142)),
        ("x4", graph_of("realesr-animevideov3-x4"), Size::new(129, 33)),
        ("shuffle 2", shuffle_2_graph(), Size::new(97, 61)),
    ];
    for (label, (graph, info), size) in &cases {
        let mut engine = NativeEngine::new(&device, stream.clone(), graph, info).unwrap();
        engine.bind(1, *size).unwrap();
        let out = size.scaled(graph.shuffle);
        if !hopper() {
            assert!(!engine.writes_frame(PixelFormat::Nv12, out), "only the Hopper kernels write frames");
            eprintln!("not a Hopper GPU: the last layer writes no frames ({label})");
            continue;
        }
        let bits: Vec<u16> =
            planar_image("astronaut-192x128.ppm", *size).iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        engine.input_tensor(0).unwrap().upload(&stream, &bits).unwrap();
        for (format, colour) in [(PixelFormat::Nv12, BT709), (PixelFormat::Nv12, FULL709), (PixelFormat::P010, BT2020)]
        {
            let row = format.plane_rows(out)[0].0;
            // 256-byte rows as our frames have them (the kernel's wide stores), and rows 2 bytes apart from that
            // (one store per sample where a row's samples are not aligned)
            for pitch in [row.next_multiple_of(256), row + 2] {
                let (separate, fused, kernels) = both_ways(&mut engine, &stream, (format, colour, pitch), out);
                for (plane, (a, b)) in separate.iter().zip(&fused).enumerate() {
                    let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                    assert_eq!(differ, 0, "{label} {size} {format} {colour:?} pitch {pitch}: plane {plane}");
                }
                let name = if format == PixelFormat::P010 { "last-wgmma-p010" } else { "last-wgmma-nv12" };
                assert!(kernels.iter().any(|k| k == name), "{kernels:?}");
                assert!(!kernels.iter().any(|k| k == "last-wgmma" || k == "resize"), "{kernels:?}");
            }
            eprintln!("{label} {size} → {format} {colour:?}: fused last layer equals planar_to_frame byte for byte");
        }
        // the planar run keeps its name
        assert!(engine.profile().unwrap().iter().any(|(k, _)| k == "last-wgmma"));
        // formats it does not write: refused with the reason, before anything runs
        assert!(!engine.writes_frame(PixelFormat::Rgba, out));
        let mut rgba = FrameBuffer::new(&stream, PixelFormat::Rgba, out).unwrap();
        // SAFETY: our frame, kept until the synchronisation below (nothing is queued: the call fails first).
        let e = unsafe { engine.run_into_frame(&mut rgba.view_mut(&stream).unwrap(), &rgb_to_code(BT709, 8)) };
        let e = e.unwrap_err().to_string();
        assert!(e.contains("cannot write") && e.contains("NV12 and P010"), "{e}");
        stream.synchronize().unwrap();
    }
    // the x2 model resizes after its shuffle: not fused, and said so
    let (graph, info) = graph_of("realesr-animevideov3-x2");
    let mut engine = NativeEngine::new(&device, stream.clone(), &graph, &info).unwrap();
    let size = Size::new(97, 61);
    engine.bind(1, size).unwrap();
    assert!(!engine.writes_frame(PixelFormat::Nv12, size.scaled(2)));
    // and VFUPSCALE_NO_FUSED_OUTPUT=1 turns it off
    let (graph, info) = graph_of("realesr-animevideov3-x4");
    let mut engine = without_fusion(|| NativeEngine::new(&device, stream.clone(), &graph, &info).unwrap());
    engine.bind(1, size).unwrap();
    assert!(!engine.writes_frame(PixelFormat::Nv12, size.scaled(4)));
}

/// `model`'s output for `img` (of `format`, `colour`) through a native upscaler on the device path, and whether its
/// last layer wrote the frame.
fn upscale_native(model: &str, tiling: Tiling, (img, colour): (&Image, Colorimetry)) -> (Vec<Vec<u8>>, bool) {
    let config = UpscalerConfig {
        model: Some(model.into()),
        backend: BackendChoice::Native,
        precision: Precision::Fp16,
        tiling,
        ..Default::default()
    };
    let mut up: Upscaler = Upscaler::new(config).unwrap();
    let stream = up.gpu_device().unwrap().new_stream().unwrap();
    up.prepare(img.size, TensorLocation::Device).unwrap();
    let src = FrameBuffer::from_image(&stream, &img.view()).unwrap();
    let mut dst = FrameBuffer::new(&stream, img.format, img.size.scaled(up.scale())).unwrap();
    for _ in 0..2 {
        let input = InputFrame::Device(src.view(&stream).unwrap());
        up.upscale_device(input, dst.view_mut(&stream).unwrap(), colour, colour).unwrap();
    }
    (dst.download(&stream).unwrap().planes.to_vec(), up.output_fused())
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn the_upscaler_fuses_the_output_conversion_into_the_last_layer_with_the_same_bytes() {
    let size = Size::new(1920, 1080);
    let hopper = hopper();
    for (format, colour) in [(PixelFormat::Nv12, BT709), (PixelFormat::P010, BT2020)] {
        let img = test_image_as("astronaut-192x128.ppm", size, format, colour);
        for (model, tiling, fusable) in [
            ("realesr-animevideov3-x4", Tiling::default(), true),
            // the x2 model resizes after its last layer; tiles are blended first: the separate conversion
            ("realesr-animevideov3-x2", Tiling::default(), false),
            ("realesr-animevideov3-x4", Tiling { tile_size: 512, ..Tiling::default() }, false),
        ] {
            let (fused, was_fused) = upscale_native(model, tiling, (&img, colour));
            let (separate, was_separate_fused) = without_fusion(|| upscale_native(model, tiling, (&img, colour)));
            assert_eq!(was_fused, fusable && hopper, "{model} {format} tile size {}", tiling.tile_size);
            assert!(!was_separate_fused, "VFUPSCALE_NO_FUSED_OUTPUT=1");
            for (plane, (a, b)) in fused.iter().zip(&separate).enumerate() {
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert_eq!(differ, 0, "{model} {format} tile size {}: plane {plane}", tiling.tile_size);
            }
            eprintln!(
                "{model} {size} → {format}, tile size {}: fused {was_fused}, equal to the separate conversion",
                tiling.tile_size
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn the_engine_profiles_the_fused_last_layer_under_its_own_name() {
    let model =
        Arc::new(Model::load(&vfupscale::models::resolve(Some("realesr-animevideov3-x4".as_ref())).unwrap()).unwrap());
    let request = EngineRequest { backend: BackendChoice::Native, precision: Precision::Fp16, ..Default::default() };
    let mut engine = vfupscale::select_engine(model, &request).unwrap().engine;
    let size = Size::new(1920, 1080);
    engine.bind(1, size, TensorLocation::Device).unwrap();
    let stream = engine.stream().unwrap().clone();
    let mut frame = FrameBuffer::new(&stream, PixelFormat::Nv12, size.scaled(4)).unwrap();
    let planar = engine.profile().unwrap().unwrap();
    assert!(!engine.writes_frame(PixelFormat::Nv12, size) && !engine.writes_frame(PixelFormat::Rgba, size.scaled(4)));
    if !hopper() {
        assert!(!engine.writes_frame(PixelFormat::Nv12, size.scaled(4)));
        return;
    }
    assert!(engine.writes_frame(PixelFormat::Nv12, size.scaled(4)));
    // SAFETY: our frame, on the engine's stream; the profile waits for its run.
    let fused = unsafe { engine.profile_into_frame(&mut frame.view_mut(&stream).unwrap(), &rgb_to_code(BT709, 8)) };
    let fused = fused.unwrap().unwrap();
    let names = |p: &[(String, f64)]| p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let ms = |p: &[(String, f64)], k: &str| p.iter().filter(|(n, _)| n == k).map(|(_, t)| t).sum::<f64>();
    assert_eq!(names(&planar).last().map(String::as_str), Some("last-wgmma"), "{planar:?}");
    assert_eq!(names(&fused).last().map(String::as_str), Some("last-wgmma-nv12"), "{fused:?}");
    assert_eq!(names(&planar).len(), names(&fused).len());
    eprintln!(
        "1080p x4: last layer planar {:.3} ms + planar_to_frame, fused into NV12 {:.3} ms",
        ms(&planar, "last-wgmma"),
        ms(&fused, "last-wgmma-nv12")
    );
}
