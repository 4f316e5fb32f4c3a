// SPDX-License-Identifier: MPL-2.0
//! GPU tests of the core (run on an NVIDIA host by `tests/gpu/run.sh`; ignored elsewhere).
//!
//! The conversion kernels are compiled without FMA contraction and mirror `cpu.rs` operation for operation, so
//! their output must equal the CPU path's bit for bit; the device path of the `Upscaler` must equal its host path
//! up to the model's own GPU/CPU differences.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cudarc::driver::CudaStream;
use vfupscale::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
use vfupscale::cpu;
use vfupscale::cuda::{FrameBuffer, GpuDevice, PlanarTensor, PlanarTensorMut, PtxCache, PtxOrigin};
use vfupscale::frame::{Image, PixelFormat, Rect, Size};
use vfupscale::tiling::TilePlan;
use vfupscale::{
    BackendChoice, DeviceFrames, EngineRequest, InputFrame, Model, Precision, TensorLocation, Tiling, Upscaler,
    UpscalerConfig,
};

#[path = "support/images.rs"]
mod images;
use images::{BT709, planar_image, psnr, psnr16, random_frame, random_frame_of, test_image};
// the classic, composition and temporal kernels
#[path = "gpu/compose_kernels.rs"]
mod compose_kernels;
// the output conversion fused into the Hopper last layer
#[path = "gpu/fused_output.rs"]
mod fused_output;

// RRDBNet on the native program kernels
#[path = "gpu/dense_models.rs"]
mod dense_models;
#[path = "gpu/dense_steps.rs"]
mod dense_steps;
#[path = "support/program_reference.rs"]
mod program_reference;

const COLOURS: [Colorimetry; 3] = [
    Colorimetry::new(Matrix::Bt601, Range::Limited),
    Colorimetry::new(Matrix::Bt709, Range::Full),
    Colorimetry::new(Matrix::Bt2020, Range::Limited),
];

/// `frame` on the device (a pitch wider than the row, as decoders allocate).
fn upload(stream: &Arc<CudaStream>, frame: &Image) -> FrameBuffer {
    FrameBuffer::from_image(stream, &frame.view()).unwrap()
}

/// Every format with the colorimetries the tests run it with: YCbCr matrices for NV12 and P010, none for RGB.
fn formats_and_colours() -> Vec<(PixelFormat, Colorimetry)> {
    let rgb = [Colorimetry::new(Matrix::Rgb, Range::Full), Colorimetry::new(Matrix::Rgb, Range::Limited)];
    PixelFormat::ALL
        .into_iter()
        .flat_map(|f| {
            let colours: Vec<Colorimetry> = if f.planes() == 2 { COLOURS.to_vec() } else { rgb.to_vec() };
            colours.into_iter().map(move |c| (f, c))
        })
        .collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn frame_to_planar_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    for (n, (format, c)) in formats_and_colours().into_iter().enumerate() {
        let to_rgb = code_to_rgb(c, format.depth());
        for (size, region) in
            [(Size::new(1920, 1080), Rect::new(0, 0, 1920, 1080)), (Size::new(33, 17), Rect::new(-5, -3, 45, 25))]
        {
            let img = random_frame_of(format, size, n as u64 + 1);
            let dev = upload(&stream, &img);
            let src = dev.view(&stream).unwrap();
            let count = 3 * region.size().pixels();
            // fp32
            let mut cpu32 = vec![0f32; count];
            cpu::frame_to_planar(&img.view(), &to_rgb, region, &mut cpu32);
            let mut out32 = stream.alloc_zeros::<f32>(count).unwrap();
            let mut dst = PlanarTensorMut::from_view(out32.as_view_mut(), &stream, region.size()).unwrap();
            // SAFETY: `src` and `out32` are live allocations of this context, kept until the copy below waits.
            unsafe { device.kernels().frame_to_planar(&stream, &src, &to_rgb, region, &mut dst).unwrap() };
            drop(dst);
            let gpu32 = stream.clone_dtoh(&out32).unwrap();
            let diff = cpu32.iter().zip(&gpu32).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(diff, 0, "{format} {c:?} {size} fp32: {diff} values differ");
            // fp16
            let mut cpu16 = vec![half::f16::ZERO; count];
            cpu::frame_to_planar(&img.view(), &to_rgb, region, &mut cpu16);
            let mut out16 = stream.alloc_zeros::<u16>(count).unwrap();
            let mut dst = PlanarTensorMut::from_view(out16.as_view_mut(), &stream, region.size()).unwrap();
            // SAFETY: as above.
            unsafe { device.kernels().frame_to_planar(&stream, &src, &to_rgb, region, &mut dst).unwrap() };
            drop(dst);
            let gpu16 = stream.clone_dtoh(&out16).unwrap();
            let diff = cpu16.iter().zip(&gpu16).filter(|(a, b)| a.to_bits() != **b).count();
            assert_eq!(diff, 0, "{format} {c:?} {size} fp16: {diff} values differ");
        }
        eprintln!("{format} {c:?}: frame → planar kernel equals the CPU path (fp32, fp16)");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn planar_to_frame_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    for (n, (format, c)) in formats_and_colours().into_iter().enumerate() {
        let from_rgb = rgb_to_code(c, format.depth());
        for size in [Size::new(3840, 2160), Size::new(35, 19)] {
            let mut s = n as u32 * 7 + 3;
            // out-of-range values too: both paths clamp
            let t: Vec<f32> = (0..3 * size.pixels())
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 8) as f32 / 16_777_216.0 * 1.3 - 0.15
                })
                .collect();
            // the fourth byte is not the conversion's: zero on both sides
            let mut expected = Image::new(format, size);
            cpu::planar_to_frame(&t, &from_rgb, &mut expected.view_mut());
            let src = stream.clone_htod(&t).unwrap();
            let mut out = FrameBuffer::new(&stream, format, size).unwrap();
            {
                let tensor = PlanarTensor::from_view(src.as_view(), &stream, size).unwrap();
                let mut dst = out.view_mut(&stream).unwrap();
                // SAFETY: live allocations of this context, kept until the download below waits.
                unsafe { device.kernels().planar_to_frame(&stream, &tensor, &from_rgb, &mut dst).unwrap() };
            }
            assert_eq!(out.download(&stream).unwrap(), expected, "{format} {c:?} {size} fp32");

            let t16: Vec<half::f16> = t.iter().map(|&v| half::f16::from_f32(v)).collect();
            let mut expected16 = Image::new(format, size);
            cpu::planar_to_frame(&t16, &from_rgb, &mut expected16.view_mut());
            let bits: Vec<u16> = t16.iter().map(|v| v.to_bits()).collect();
            let src16 = stream.clone_htod(&bits).unwrap();
            {
                let tensor = PlanarTensor::from_view(src16.as_view(), &stream, size).unwrap();
                let mut dst = out.view_mut(&stream).unwrap();
                // SAFETY: as above.
                unsafe { device.kernels().planar_to_frame(&stream, &tensor, &from_rgb, &mut dst).unwrap() };
            }
            assert_eq!(out.download(&stream).unwrap(), expected16, "{format} {c:?} {size} fp16");
        }
        eprintln!("{format} {c:?}: planar → frame kernel equals the CPU path (fp32, fp16)");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn fill_extra_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let pairs = [
        (PixelFormat::Rgba, PixelFormat::Rgba),
        (PixelFormat::Bgra, PixelFormat::Rgba),
        (PixelFormat::Rgba, PixelFormat::Bgrx),
        (PixelFormat::Rgb, PixelFormat::Bgra),
        (PixelFormat::Rgbx, PixelFormat::Rgbx),
    ];
    for (n, (from, to)) in pairs.into_iter().enumerate() {
        for (size, scale) in [(Size::new(1920, 1080), 2), (Size::new(37, 23), 3), (Size::new(5, 1), 4)] {
            let img = random_frame_of(from, size, n as u64 + 30);
            let out_size = size.scaled(scale);
            let mut expected = Image::new(to, out_size);
            cpu::fill_extra(&img.view(), &mut expected.view_mut());
            let src = upload(&stream, &img);
            let mut out = FrameBuffer::new(&stream, to, out_size).unwrap();
            {
                let (src, mut dst) = (src.view(&stream).unwrap(), out.view_mut(&stream).unwrap());
                // SAFETY: live allocations of this context, kept until the download below waits.
                unsafe { device.kernels().fill_extra(&stream, &src, &mut dst).unwrap() };
            }
            assert_eq!(out.download(&stream).unwrap(), expected, "{from} → {to} {size} x{scale}");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn blend_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    // uneven tiles and overlaps, scale 3: every ramp shape and edge case
    let plan = TilePlan::new(Size::new(203, 121), 3, 64, 20);
    assert!(plan.tiles.len() > 4);
    let out = plan.frame.scaled(plan.scale);
    let mut expected = vec![0f32; 3 * out.pixels()];
    let mut acc = stream.alloc_zeros::<f32>(3 * out.pixels()).unwrap();
    for (i, tile) in plan.tiles.iter().enumerate() {
        let n = 3 * tile.output.size().pixels();
        let mut s = i as u32 + 11;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / 16_777_216.0
            })
            .collect();
        // odd tiles in fp16, even tiles in fp32: both kernels into one frame
        let (src32, src16);
        let src = if i % 2 == 0 {
            cpu::blend_tile(&values, tile, &mut expected, out);
            src32 = stream.clone_htod(&values).unwrap();
            PlanarTensor::from_view(src32.as_view(), &stream, tile.output.size()).unwrap()
        } else {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            cpu::blend_tile(&h, tile, &mut expected, out);
            src16 = stream.clone_htod(&h.iter().map(|v| v.to_bits()).collect::<Vec<u16>>()).unwrap();
            PlanarTensor::from_view(src16.as_view(), &stream, tile.output.size()).unwrap()
        };
        let mut frame = PlanarTensorMut::from_view(acc.as_view_mut(), &stream, out).unwrap();
        // SAFETY: `src` holds the tile's output, `acc` the whole output frame, both live until the sync below.
        unsafe { device.kernels().blend_tile(&stream, &src, tile, &mut frame).unwrap() };
        stream.synchronize().unwrap();
    }
    let got = stream.clone_dtoh(&acc).unwrap();
    let diff = expected.iter().zip(&got).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(diff, 0, "{diff} of {} accumulated values differ", got.len());
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn a_second_start_reads_the_kernels_from_the_ptx_cache() {
    let device = GpuDevice::get(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = PtxCache::new(dir.path());
    let cc = device.compute_capability();
    for module in vfupscale::cuda::conversion::ALL {
        let start = Instant::now();
        let (first, origin) = vfupscale::cuda::load_module(device.context(), module, cc, &cache).unwrap();
        let compiled_ms = start.elapsed().as_secs_f64() * 1e3;
        assert_eq!(origin, PtxOrigin::Compiled, "{}", module.name);
        let start = Instant::now();
        let (second, origin) = vfupscale::cuda::load_module(device.context(), module, cc, &cache).unwrap();
        let cached_ms = start.elapsed().as_secs_f64() * 1e3;
        assert_eq!(origin, PtxOrigin::Cached, "{}: NVRTC ran again", module.name);
        for f in module.functions {
            first.function(f).unwrap();
            second.function(f).unwrap();
        }
        eprintln!("{}: NVRTC {compiled_ms:.1} ms, from the cache {cached_ms:.1} ms", module.name);
    }
    eprintln!("modules of the device: {:?}", device.module_origins());
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn device_path_equals_host_path_on_the_real_model() {
    let size = Size::new(320, 180);
    let img = random_frame(size, 42);
    let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
    let run_cpu = {
        let mut up: Upscaler =
            Upscaler::new(UpscalerConfig { backend: BackendChoice::Cpu, ..Default::default() }).unwrap();
        up.prepare(size, TensorLocation::Host).unwrap();
        let mut out = Image::new(PixelFormat::Nv12, size.scaled(up.scale()));
        up.upscale_host(&img.view(), c, &mut out.view_mut(), c).unwrap();
        out
    };
    for precision in [Precision::Fp32, Precision::Fp16] {
        let mut up: Upscaler =
            Upscaler::new(UpscalerConfig { backend: BackendChoice::Cuda, precision, ..Default::default() }).unwrap();
        assert!(up.supports_device_memory());
        let device = up.gpu_device().unwrap().clone();
        let stream = device.new_stream().unwrap();
        up.prepare(size, TensorLocation::Device).unwrap();
        let src = upload(&stream, &img);
        let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, size.scaled(up.scale())).unwrap();
        stream.synchronize().unwrap();
        up.upscale_device(InputFrame::Device(src.view(&stream).unwrap()), dst.view_mut(&stream).unwrap(), c, c)
            .unwrap();
        let gpu = dst.download(&stream).unwrap();
        let (luma, chroma) = (psnr(&gpu.planes[0], &run_cpu.planes[0]), psnr(&gpu.planes[1], &run_cpu.planes[1]));
        eprintln!("{precision:?}: GPU device path vs CPU path: luma {luma:.1} dB, chroma {chroma:.1} dB");
        assert!(luma >= 40.0 && chroma >= 40.0, "{precision:?}: luma {luma:.1} dB, chroma {chroma:.1} dB");
        let stats = up.stats();
        assert_eq!(
            (stats.frames, stats.zero_copy_inputs, stats.host_uploads, stats.foreign_context_copies),
            (1, 1, 0, 0)
        );
        // the same frame from host memory goes through an upload, with the same result (into a fresh frame)
        let mut uploaded = FrameBuffer::new(&stream, PixelFormat::Nv12, size.scaled(up.scale())).unwrap();
        up.upscale_device(InputFrame::Host(img.view()), uploaded.view_mut(&stream).unwrap(), c, c).unwrap();
        assert_eq!(uploaded.download(&stream).unwrap(), gpu, "{precision:?}: uploaded input");
        assert_eq!((up.stats().frames, up.stats().host_uploads), (2, 1));
    }
}

/// PSNR of every plane of two frames of one format (16-bit samples as values of the format's depth).
fn plane_psnrs(a: &Image, b: &Image) -> Vec<f64> {
    let depth = a.format.depth();
    (0..a.format.planes())
        .map(|i| if depth > 8 { psnr16(&a.planes[i], &b.planes[i], depth) } else { psnr(&a.planes[i], &b.planes[i]) })
        .collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn device_path_equals_host_path_for_every_format_pair_whole_and_tiled() {
    let size = Size::new(192, 128);
    let yuv = Colorimetry::new(Matrix::Bt2020, Range::Limited);
    let rgb = Colorimetry::new(Matrix::Rgb, Range::Full);
    let pairs = [
        (PixelFormat::P010, PixelFormat::P010, yuv),
        (PixelFormat::Nv12, PixelFormat::P010, yuv),
        (PixelFormat::P010, PixelFormat::Nv12, yuv),
        (PixelFormat::Rgba, PixelFormat::Rgba, rgb),
        (PixelFormat::Bgrx, PixelFormat::Rgb, rgb),
    ];
    for tiling in [Tiling::default(), Tiling { tile_size: 64, ..Tiling::default() }] {
        let config = |backend| UpscalerConfig { backend, precision: Precision::Fp32, tiling, ..Default::default() };
        let mut host: Upscaler = Upscaler::new(config(BackendChoice::Cpu)).unwrap();
        let mut gpu: Upscaler = Upscaler::new(config(BackendChoice::Cuda)).unwrap();
        host.prepare(size, TensorLocation::Host).unwrap();
        gpu.prepare(size, TensorLocation::Device).unwrap();
        let stream = gpu.gpu_device().unwrap().new_stream().unwrap();
        let out_size = size.scaled(gpu.scale());
        for (from, to, c) in pairs {
            let mut img = images::test_image_as("astronaut-192x128.ppm", size, from, c);
            if from.has_alpha() {
                // a gradient of alpha, to be upscaled bilinearly on both paths
                img.planes[0].chunks_mut(4).enumerate().for_each(|(i, p)| p[3] = (i % 251) as u8);
            }
            let mut expected = Image::new(to, out_size);
            host.upscale_host(&img.view(), c, &mut expected.view_mut(), c).unwrap();
            let src = upload(&stream, &img);
            let mut dst = FrameBuffer::new(&stream, to, out_size).unwrap();
            stream.synchronize().unwrap();
            gpu.upscale_device(InputFrame::Device(src.view(&stream).unwrap()), dst.view_mut(&stream).unwrap(), c, c)
                .unwrap();
            let got = dst.download(&stream).unwrap();
            let p = plane_psnrs(&got, &expected);
            eprintln!("{from} → {to}, tile size {}: GPU vs CPU {p:.1?} dB", tiling.tile_size);
            assert!(p.iter().all(|&db| db >= 40.0), "{from} → {to}: {p:.1?} dB");
            if to.has_alpha() {
                let alpha = |i: &Image| i.planes[0].chunks(4).map(|p| p[3]).collect::<Vec<u8>>();
                assert_eq!(alpha(&got), alpha(&expected), "{from} → {to}: alpha is the same bilinear upscale");
            }
        }
    }
}

/// Upscales `img` on the GPU through the device path; returns the output and the upscaler (for its stats).
fn upscale_on_gpu(model: &str, precision: Precision, tiling: Tiling, img: &Image) -> (Image, Upscaler) {
    let mut up = Upscaler::new(UpscalerConfig {
        model: Some(model.into()),
        backend: BackendChoice::Cuda,
        precision,
        tiling,
        ..Default::default()
    })
    .unwrap();
    let device = up.gpu_device().unwrap().clone();
    let stream = device.new_stream().unwrap();
    up.prepare(img.size, TensorLocation::Device).unwrap();
    let src = upload(&stream, img);
    let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, img.size.scaled(up.scale())).unwrap();
    stream.synchronize().unwrap();
    up.upscale_device(InputFrame::Device(src.view(&stream).unwrap()), dst.view_mut(&stream).unwrap(), BT709, BT709)
        .unwrap();
    (dst.download(&stream).unwrap(), up)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn tiled_device_path_matches_whole_frames_and_batches_agree() {
    let img = test_image("astronaut-192x128.ppm", Size::new(192, 128));
    let model = vfupscale::models::DEFAULT_MODEL;
    for precision in [Precision::Fp32, Precision::Fp16] {
        let (whole, up) = upscale_on_gpu(model, precision, Tiling::default(), &img);
        assert_eq!(up.stats().tiles_per_frame, 1);
        let tiles = Tiling { tile_size: 64, ..Tiling::default() };
        let (tiled, up) = upscale_on_gpu(model, precision, tiles, &img);
        assert!(up.stats().tiles_per_frame > 1);
        let (l, c) = (psnr(&tiled.planes[0], &whole.planes[0]), psnr(&tiled.planes[1], &whole.planes[1]));
        eprintln!(
            "{precision:?}: {} tiles of 64 vs whole frame: luma {l:.1} dB, chroma {c:.1} dB",
            up.stats().tiles_per_frame
        );
        assert!(l >= 50.0 && c >= 50.0, "{precision:?}: tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB");
        let (batched, up) = upscale_on_gpu(model, precision, Tiling { batch: 4, ..tiles }, &img);
        assert_eq!(up.stats().tensor_bytes % 4, 0);
        let differing = batched.planes[0]
            .iter()
            .chain(&batched.planes[1])
            .zip(tiled.planes[0].iter().chain(&tiled.planes[1]))
            .filter(|(a, b)| a != b);
        let n = differing.count();
        let p = psnr(&batched.planes[0], &tiled.planes[0]);
        eprintln!("{precision:?}: batch 4 vs batch 1: {n} bytes differ, luma {p:.1} dB");
        // the same kernels on the same tiles: cuDNN may pick another algorithm for another batch shape, which can
        // move a value across a rounding boundary, never more
        assert!(p >= 60.0, "{precision:?}: batch 4 vs batch 1: luma {p:.1} dB");
    }
}

/// Lowest free device memory seen while it runs: polls cuMemGetInfo every half millisecond from its own thread.
struct PeakMemory {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl PeakMemory {
    fn start(device: &Arc<GpuDevice>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, device) = (stop.clone(), device.clone());
        let thread = std::thread::spawn(move || {
            device.bind_to_thread().unwrap();
            let mut min_free = usize::MAX;
            while !flag.load(Ordering::Relaxed) {
                min_free = min_free.min(device.memory_info().unwrap().0);
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            min_free
        });
        Self { stop, thread: Some(thread) }
    }

    /// The lowest free memory seen.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

const MIB: f64 = 1048576.0;

/// Upscales `input` (in device memory) with `model` under `max_memory_mib`, measuring device memory from before the
/// upscaler exists to the end: returns the output frame, the upscaler, the peak rise and the seconds per frame.
fn measured_run(
    model: &str,
    backend: BackendChoice,
    max_memory_mib: u64,
    img: &Image,
    frames: u32,
) -> (FrameBuffer, Upscaler, f64, f64, Arc<CudaStream>) {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let src = upload(&stream, img);
    let path = vfupscale::models::resolve(Some(model.as_ref())).unwrap();
    // the output frame first: it is the pipeline's buffer, not the upscaler's memory
    let scale = Model::load(&path).unwrap().info().scale.expect("a model that declares its scale");
    let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, img.size.scaled(scale)).unwrap();
    stream.synchronize().unwrap();
    let (free_before, _) = device.memory_info().unwrap();
    let peak = PeakMemory::start(&device);
    let tiling = Tiling { max_memory_mib, ..Tiling::default() };
    let mut up = Upscaler::new(UpscalerConfig {
        model: Some(path),
        backend,
        precision: Precision::Fp16,
        tiling,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(up.scale(), scale);
    up.prepare(img.size, TensorLocation::Device).unwrap();
    let mut started = Instant::now();
    for i in 0..frames {
        if i == 1 {
            started = Instant::now(); // the first frame includes cuDNN's algorithm search
        }
        let input = InputFrame::Device(src.view(&stream).unwrap());
        up.upscale_device(input, dst.view_mut(&stream).unwrap(), BT709, BT709).unwrap();
    }
    let per_frame = started.elapsed().as_secs_f64() / (frames.max(2) - 1) as f64;
    let rise = (free_before - peak.finish()) as f64 / MIB;
    (dst, up, rise, per_frame, stream)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn four_k_input_is_tiled_with_x4_models_within_the_memory_limit() {
    let size = Size::new(3840, 2160);
    let img = test_image("astronaut-192x128.ppm", size);
    // ONNX Runtime's CUDA provider and the native kernels (SRVGGNetCompact; RRDBNet on Hopper GPUs)
    for (model, backend, budget) in [
        ("realesr-animevideov3-x4", BackendChoice::Cuda, 2048),
        ("realesrgan-x4plus", BackendChoice::Cuda, 4096),
        ("realesr-animevideov3-x4", BackendChoice::Auto, 2048),
        ("realesrgan-x4plus", BackendChoice::Auto, 4096),
    ] {
        let (out, up, rise, per_frame, stream) = measured_run(model, backend, budget, &img, 2);
        let memory = up.device_memory().unwrap();
        let s = up.stats();
        let mib = |b: Option<u64>| b.map_or("unknown".into(), |b| format!("{:.0} MiB", b as f64 / MIB));
        eprintln!(
            "{model} fp16 on {}, 3840x2160 -> {}, max-memory {budget} MiB: {} tiles of {}px, {:.2} s/frame, oom retries {}; \
             held {:.0} MiB (engine {:.0} MiB, limit {}, peak in use {}; own frames {:.0} MiB); device memory rise \
             from before the upscaler existed {rise:.0} MiB (includes the CUDA libraries)",
            up.backend(),
            out.size(),
            s.tiles_per_frame,
            s.tile_size,
            per_frame,
            s.oom_retries,
            memory.held() as f64 / MIB,
            memory.engine.held as f64 / MIB,
            mib(memory.engine.limit),
            mib(memory.engine.peak),
            memory.own as f64 / MIB,
        );
        assert!(s.tiles_per_frame > 1, "{model}: a 4K x4 frame does not fit {budget} MiB whole");
        assert!(memory.held() <= budget << 20, "{model}: holds {} bytes, over the {budget} MiB limit", memory.held());
        // plausibility: the output box-filtered back to 4K resembles the input
        let out = out.download(&stream).unwrap();
        let scale = up.scale() as usize;
        let (w, ow) = (size.width as usize, out.size.width as usize);
        let down: Vec<u8> = (0..size.pixels())
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let n = scale * scale;
                let sum: usize =
                    (0..n).map(|j| out.planes[0][(scale * y + j / scale) * ow + scale * x + j % scale] as usize).sum();
                ((sum + n / 2) / n) as u8
            })
            .collect();
        let p = psnr(&down, &img.planes[0]);
        eprintln!("{model}: output box-filtered to the input size vs input: luma {p:.1} dB");
        assert!(p >= 28.0, "{model}: {p:.1} dB");
        if model == "realesr-animevideov3-x4" && backend == BackendChoice::Cuda {
            let (whole, _, whole_rise, whole_per_frame, _) = measured_run(model, backend, 0, &img, 2);
            let whole = whole.download(&stream).unwrap();
            let (l, c) = (psnr(&out.planes[0], &whole.planes[0]), psnr(&out.planes[1], &whole.planes[1]));
            eprintln!(
                "{model}: whole frame: device memory rise {whole_rise:.0} MiB, {whole_per_frame:.2} s/frame; \
                 tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB"
            );
            assert!(l >= 50.0 && c >= 50.0, "tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB");
        }
    }
}

/// An x2 model that holds 64 copies of its input at full resolution (Tile, which the memory estimate cannot see
/// through), averages them back with a 1×1 convolution and upscales by nearest neighbour: its output is exact, its
/// memory need about 800 bytes per input pixel.
fn memory_hungry_model(dir: &std::path::Path) -> std::path::PathBuf {
    use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, attr_string, data_type, write_model};
    let path = dir.join("memory-hungry.onnx");
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &dynamic, &dynamic);
    let copies = 64;
    let repeats = g.i64_init("repeats", &[4], &[1, copies, 1, 1]);
    let tiled = g.op("Tile", "copies", &["input", &repeats], vec![]);
    // output channel k averages input channels k, k+3, k+6, … of the copies
    let weights: Vec<f32> = (0..3 * 3 * copies as usize)
        .map(|i| if (i / (3 * copies as usize)) == (i % (3 * copies as usize)) % 3 { 1.0 / copies as f32 } else { 0.0 })
        .collect();
    let w = g.f32_init("average", &[3, 3 * copies, 1, 1], &weights);
    let averaged = g.op("Conv", "average", &[&tiled, &w], vec![]);
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    g.op_into("Resize", &[&averaged, "", &scales], "output", vec![attr_string("mode", "nearest")]);
    write_model(&path, &g.into_model("memory-hungry", &[(META_SCALE, "2".into())])).unwrap();
    path
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn running_out_of_device_memory_retries_with_smaller_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let model = memory_hungry_model(dir.path());
    // the premise: the estimate sees 12 values per input pixel where the model holds about 200
    let proto = Model::load(&model).unwrap();
    assert!(vfupscale_onnx::onnx::stats::model_stats(proto.proto()).peak_activation_per_pixel < 20.0);
    let img = test_image("astronaut-192x128.ppm", Size::new(1920, 1080));
    let run = |max_memory_mib: u64| {
        let tiling = Tiling { max_memory_mib, ..Tiling::default() };
        let config = UpscalerConfig {
            model: Some(model.clone()),
            backend: BackendChoice::Cuda,
            precision: Precision::Fp32,
            tiling,
            ..Default::default()
        };
        let mut up: Upscaler = Upscaler::new(config).unwrap();
        let stream = up.gpu_device().unwrap().new_stream().unwrap();
        up.prepare(img.size, TensorLocation::Device).unwrap();
        let src = upload(&stream, &img);
        let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, img.size.scaled(up.scale())).unwrap();
        stream.synchronize().unwrap();
        let mut notes = Vec::new();
        for _ in 0..2 {
            let input = InputFrame::Device(src.view(&stream).unwrap());
            up.upscale_device(input, dst.view_mut(&stream).unwrap(), BT709, BT709).unwrap();
            notes.extend(up.take_notes());
        }
        (dst.download(&stream).unwrap(), up, notes)
    };
    let (whole, _, _) = run(0);
    let budget = 1024;
    let (out, up, notes) = run(budget);
    let s = up.stats();
    let held = up.device_memory().unwrap().held();
    eprintln!(
        "max-memory {budget} MiB: {} oom retries, then {} tiles of {}px; holds {:.0} MiB; notes: {notes:?}",
        s.oom_retries,
        s.tiles_per_frame,
        s.tile_size,
        held as f64 / MIB
    );
    assert!(s.oom_retries >= 1, "the whole frame should not have fit");
    assert!(notes.iter().any(|n| n.contains("out of device memory") && n.contains("retrying")), "{notes:?}");
    assert_eq!(s.frames, 2, "the failed attempt is not counted, no frame is lost");
    assert!(s.tiles_per_frame > 1);
    assert!(held <= budget << 20, "holds {held} bytes");
    let (l, c) = (psnr(&out.planes[0], &whole.planes[0]), psnr(&out.planes[1], &whole.planes[1]));
    eprintln!("after retries vs whole frame: luma {l:.1} dB, chroma {c:.1} dB");
    assert!(l >= 50.0 && c >= 50.0, "luma {l:.1} dB, chroma {c:.1} dB");
}

/// The native kernels and ONNX Runtime's CUDA provider (fp16) for `name`, chosen as the upscaler chooses them, run on
/// `image` (planar, 0..1): their agreement and the native kernels' milliseconds per run.
fn native_and_onnx_runtime(name: &str, image: &[f32], size: Size) -> (vfupscale::Agreement, f64) {
    let model = Arc::new(Model::load(&vfupscale::models::resolve(Some(name.as_ref())).unwrap()).unwrap());
    let request = |backend| EngineRequest { backend, precision: Precision::Fp16, ..Default::default() };
    let mut native = vfupscale::select_engine(model.clone(), &request(BackendChoice::Native)).unwrap().engine;
    let mut ort = vfupscale::select_engine(model, &request(BackendChoice::Cuda)).unwrap().engine;
    let (agreement, _, _) = vfupscale::compare_engines(&mut native, &mut ort, image, size).unwrap();
    // timing: ten runs after a warm-up
    let stream = native.stream().unwrap().clone();
    native.run().unwrap();
    stream.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..10 {
        native.run().unwrap();
    }
    stream.synchronize().unwrap();
    let profile = native.profile().unwrap().expect("the native kernels are profiled");
    // the engine the upscaler chooses runs the Hopper kernels on a Hopper GPU
    let hidden = if GpuDevice::get(0).unwrap().compute_capability() == (9, 0) { "hidden-wgmma" } else { "hidden" };
    assert!(profile.iter().any(|(k, _)| k == hidden), "{profile:?}");
    (agreement, start.elapsed().as_secs_f64() * 100.0)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn native_kernels_agree_with_onnx_runtime_on_every_srvgg_model() {
    // partial tiles on both axes
    let size = Size::new(250, 142);
    let image = planar_image("astronaut-192x128.ppm", size);
    for name in
        ["realesr-animevideov3-x2", "realesr-animevideov3-x3", "realesr-animevideov3-x4", "realesr-general-x4v3"]
    {
        let (a, _) = native_and_onnx_runtime(name, &image, size);
        eprintln!(
            "{name}: native vs ONNX Runtime CUDA (both fp16): {:.1} dB, max difference {:.4}",
            a.psnr_db, a.max_difference
        );
        assert!(a.psnr_db >= 60.0, "{name}: {:.1} dB", a.psnr_db);
    }
}

/// The native engine's output (fp16 bits) for `image`, on the kernels it chooses or forced onto the mma.sync ones,
/// and the kernel names of its profile. Needs only the driver and NVRTC (no ONNX Runtime).
fn native_output(name: &str, mma_sync: bool, image: &[f32], size: Size) -> (Vec<u16>, Vec<String>) {
    let model = Model::load(&vfupscale::models::resolve(Some(name.as_ref())).unwrap()).unwrap();
    let info = model.info();
    let graph = vfupscale::native::match_srvgg(model.proto(), &info.input_name, &info.output_name).unwrap();
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    if mma_sync {
        // SAFETY: the GPU tests run on one thread (tests/gpu/run.sh: --test-threads=1); nothing reads the
        // environment concurrently, and the variable is removed right after the engine is made.
        unsafe { std::env::set_var("VFUPSCALE_NATIVE_KERNELS", "mma") };
    }
    let engine = vfupscale::native::NativeEngine::new(&device, stream.clone(), &graph, info);
    if mma_sync {
        // SAFETY: as above.
        unsafe { std::env::remove_var("VFUPSCALE_NATIVE_KERNELS") };
    }
    let mut engine = engine.unwrap();
    engine.bind(1, size).unwrap();
    let bits: Vec<u16> = image.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    engine.input_tensor(0).unwrap().upload(&stream, &bits).unwrap();
    engine.run().unwrap();
    let out = engine.output_tensor(0).unwrap().download::<u16>(&stream).unwrap();
    let kernels = engine.profile().unwrap().into_iter().map(|(k, _)| k).collect();
    (out, kernels)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn hopper_kernels_match_the_mma_sync_kernels_in_the_engine() {
    let device = GpuDevice::get(0).unwrap();
    let hopper = device.compute_capability() == (9, 0);
    // odd sizes, widths under and just over one 128-pixel tile, batch-of-one edge rows; x4, x2 (shuffle 4 + resize)
    for (name, size) in [
        ("realesr-animevideov3-x4", Size::new(250, 142)),
        ("realesr-animevideov3-x2", Size::new(97, 61)),
        ("realesr-general-x4v3", Size::new(129, 33)),
    ] {
        let image = planar_image("astronaut-192x128.ppm", size);
        let (ours, kernels) = native_output(name, false, &image, size);
        let (reference, mma_kernels) = native_output(name, true, &image, size);
        assert!(mma_kernels.iter().all(|k| !k.contains("wgmma")), "{mma_kernels:?}");
        if !hopper {
            assert!(kernels.iter().all(|k| !k.contains("wgmma")), "{kernels:?}");
            continue;
        }
        assert!(
            kernels.iter().any(|k| k == "hidden-wgmma") && kernels.iter().any(|k| k == "last-wgmma"),
            "{kernels:?}"
        );
        let value = |b: u16| half::f16::from_bits(b).to_f32().clamp(0.0, 1.0) as f64;
        let mse =
            ours.iter().zip(&reference).map(|(&a, &b)| (value(a) - value(b)).powi(2)).sum::<f64>() / ours.len() as f64;
        let db = 10.0 * (1.0 / mse.max(1e-20)).log10();
        eprintln!("{name} {size}: wgmma vs mma.sync kernels in the engine: {db:.1} dB");
        assert!(db >= 60.0, "{name}: {db:.1} dB");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn native_kernels_at_1080p_and_the_upscaler_picks_them() {
    let size = Size::new(1920, 1080);
    let image = planar_image("astronaut-192x128.ppm", size);
    let (a, ms) = native_and_onnx_runtime("realesr-animevideov3-x2", &image, size);
    let p = a.psnr_db;
    eprintln!("realesr-animevideov3-x2 1080p: native {ms:.2} ms per frame; vs ONNX Runtime CUDA fp16 {p:.1} dB");
    assert!(p >= 60.0, "{p:.1} dB");
    // auto picks the native kernels and says how well they agreed
    let up: Upscaler =
        Upscaler::new(UpscalerConfig { model: Some("realesr-animevideov3-x2".into()), ..Default::default() }).unwrap();
    assert_eq!(up.backend(), vfupscale::Backend::Native);
    let db = up.native_agreement().unwrap().psnr_db;
    eprintln!("Upscaler: backend {}, probe agreement {db:.1} dB", up.backend());
    assert!(db >= 45.0);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn frames_in_flight_finish_in_order_and_equal_frames_run_one_at_a_time() {
    let size = Size::new(192, 128);
    let images: Vec<Image> = (0..vfupscale::MAX_FRAMES_IN_FLIGHT as u64)
        .map(|i| if i == 0 { test_image("astronaut-192x128.ppm", size) } else { random_frame(size, 40 + i) })
        .collect();
    for tiling in [Tiling::default(), Tiling { tile_size: 64, ..Tiling::default() }] {
        let mut up: Upscaler<DeviceFrames> =
            Upscaler::new(UpscalerConfig { backend: BackendChoice::Auto, tiling, ..Default::default() }).unwrap();
        let device = up.gpu_device().unwrap().clone();
        let stream = device.new_stream().unwrap();
        up.prepare(size, TensorLocation::Device).unwrap();
        let out_size = size.scaled(up.scale());
        let mut one_at_a_time = Vec::new();
        for img in &images {
            let src = upload(&stream, img);
            let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, out_size).unwrap();
            stream.synchronize().unwrap();
            let input = InputFrame::Device(src.view(&stream).unwrap());
            up.upscale_device(input, dst.view_mut(&stream).unwrap(), BT709, BT709).unwrap();
            one_at_a_time.push(dst.download(&stream).unwrap());
        }
        let frames = |img: &Image| DeviceFrames {
            input: upload(&stream, img),
            output: FrameBuffer::new(&stream, PixelFormat::Nv12, out_size).unwrap(),
        };
        for img in &images {
            up.queue(frames(img), BT709, BT709).unwrap();
        }
        assert_eq!(up.frames_in_flight(), images.len());
        let refused = up.queue(frames(&images[0]), BT709, BT709);
        assert!(refused.is_err(), "a frame beyond the limit must be refused");
        let before = up.stats().frames;
        let mut finished = Vec::new();
        for left in (0..images.len()).rev() {
            finished.push(up.finish_frame().unwrap());
            assert_eq!(up.frames_in_flight(), left);
        }
        assert_eq!(up.stats().frames, before + images.len() as u64);
        assert_eq!(up.stats().zero_copy_inputs, 2 * images.len() as u64);
        assert!(up.finish_frame().is_err(), "nothing left to finish");
        for (i, (frames, expected)) in finished.iter().zip(&one_at_a_time).enumerate() {
            let got = frames.output.download(&stream).unwrap();
            assert!(
                got.planes[0] == expected.planes[0] && got.planes[1] == expected.planes[1],
                "frame {i} (tile size {})",
                tiling.tile_size
            );
        }
        eprintln!(
            "{} frames in flight on {} (tile size {}): equal to one at a time",
            images.len(),
            up.backend(),
            tiling.tile_size
        );
    }
}
