//! GPU tests of the core (run on an NVIDIA host by `tests/gpu/run.sh`; ignored elsewhere).
//!
//! The conversion kernels are compiled without FMA contraction and mirror `cpu.rs` operation for operation, so
//! their output must equal the CPU path's bit for bit; the device path of the `Upscaler` must equal its host path
//! up to the model's own GPU/CPU differences.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use vfupscale::color::{Colorimetry, Matrix, Range, rgb_to_yuv, yuv_to_rgb};
use vfupscale::cpu;
use vfupscale::cuda::GpuDevice;
use vfupscale::cuda::launch::{DevicePlanar, blend_tile, nv12_to_planar, planar_to_nv12};
use vfupscale::frame::{DeviceNv12, ElementType, Nv12Image, Rect, Size};
use vfupscale::infer::TensorLocation;
use vfupscale::tiling::TilePlan;
use vfupscale::upscaler::Tiling;
use vfupscale::{BackendChoice, Precision, Upscaler, UpscalerConfig};

#[path = "support/ppm.rs"]
mod ppm;

fn random_frame(size: Size, seed: u64) -> Nv12Image {
    let mut img = Nv12Image::new(size);
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (s >> 56) as u8
    };
    img.y.iter_mut().for_each(|v| *v = next());
    img.uv.iter_mut().for_each(|v| *v = next());
    img
}

/// An NV12 frame in device memory with a pitch wider than the row, as decoders allocate.
struct DeviceFrame {
    y: CudaSlice<u8>,
    uv: CudaSlice<u8>,
    size: Size,
    pitch: usize,
}

impl DeviceFrame {
    fn upload(stream: &Arc<CudaStream>, img: &Nv12Image) -> Self {
        let pitch = (img.size.width as usize + 64).next_multiple_of(256);
        let c = img.size.chroma();
        let mut y = vec![0xAAu8; pitch * img.size.height as usize];
        let mut uv = vec![0xAAu8; pitch * c.height as usize];
        let w = img.size.width as usize;
        for r in 0..img.size.height as usize {
            y[r * pitch..r * pitch + w].copy_from_slice(&img.y[r * w..(r + 1) * w]);
        }
        let cw = 2 * c.width as usize;
        for r in 0..c.height as usize {
            uv[r * pitch..r * pitch + cw].copy_from_slice(&img.uv[r * cw..(r + 1) * cw]);
        }
        Self { y: stream.clone_htod(&y).unwrap(), uv: stream.clone_htod(&uv).unwrap(), size: img.size, pitch }
    }

    fn zeroed(stream: &Arc<CudaStream>, size: Size) -> Self {
        let pitch = (size.width as usize + 64).next_multiple_of(256);
        let rows = size.height as usize;
        let crows = size.chroma().height as usize;
        Self {
            y: stream.alloc_zeros(pitch * rows).unwrap(),
            uv: stream.alloc_zeros(pitch * crows).unwrap(),
            size,
            pitch,
        }
    }

    fn nv12(&mut self, stream: &CudaStream) -> DeviceNv12 {
        let (y, _) = self.y.device_ptr_mut(stream);
        let (uv, _) = self.uv.device_ptr_mut(stream);
        // SAFETY: both allocations hold `size` rows at `pitch` and outlive every use in these tests.
        unsafe { DeviceNv12::new(self.size, y, self.pitch, uv, self.pitch) }
    }

    fn download(&self, stream: &Arc<CudaStream>) -> Nv12Image {
        let (yp, uvp) = (stream.clone_dtoh(&self.y).unwrap(), stream.clone_dtoh(&self.uv).unwrap());
        let mut img = Nv12Image::new(self.size);
        let w = self.size.width as usize;
        for r in 0..self.size.height as usize {
            img.y[r * w..(r + 1) * w].copy_from_slice(&yp[r * self.pitch..r * self.pitch + w]);
        }
        let c = self.size.chroma();
        let cw = 2 * c.width as usize;
        for r in 0..c.height as usize {
            img.uv[r * cw..(r + 1) * cw].copy_from_slice(&uvp[r * self.pitch..r * self.pitch + cw]);
        }
        img
    }
}

const COLOURS: [Colorimetry; 3] = [
    Colorimetry::new(Matrix::Bt601, Range::Limited),
    Colorimetry::new(Matrix::Bt709, Range::Full),
    Colorimetry::new(Matrix::Bt2020, Range::Limited),
];

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn nv12_to_planar_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    for (n, c) in COLOURS.into_iter().enumerate() {
        for (size, region) in
            [(Size::new(1920, 1080), Rect::new(0, 0, 1920, 1080)), (Size::new(33, 17), Rect::new(-5, -3, 45, 25))]
        {
            let img = random_frame(size, n as u64 + 1);
            let mut dev = DeviceFrame::upload(&stream, &img);
            let src = dev.nv12(&stream);
            let count = 3 * region.size().pixels();
            // fp32
            let mut cpu32 = vec![0f32; count];
            cpu::nv12_to_planar(&img.view(), &yuv_to_rgb(c), region, &mut cpu32);
            let mut out32 = stream.alloc_zeros::<f32>(count).unwrap();
            let (ptr, _) = out32.device_ptr_mut(&stream);
            let dst = DevicePlanar { ptr, size: region.size(), element: ElementType::F32 };
            // SAFETY: `src` and `out32` are live allocations of the right sizes in this context.
            unsafe { nv12_to_planar(&device, &stream, &src, &yuv_to_rgb(c), region, dst).unwrap() };
            let gpu32 = stream.clone_dtoh(&out32).unwrap();
            let diff = cpu32.iter().zip(&gpu32).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(diff, 0, "{c:?} {size} fp32: {diff} values differ");
            // fp16
            let mut cpu16 = vec![half::f16::ZERO; count];
            cpu::nv12_to_planar(&img.view(), &yuv_to_rgb(c), region, &mut cpu16);
            let mut out16 = stream.alloc_zeros::<u16>(count).unwrap();
            let (ptr, _) = out16.device_ptr_mut(&stream);
            let dst = DevicePlanar { ptr, size: region.size(), element: ElementType::F16 };
            // SAFETY: as above.
            unsafe { nv12_to_planar(&device, &stream, &src, &yuv_to_rgb(c), region, dst).unwrap() };
            let gpu16 = stream.clone_dtoh(&out16).unwrap();
            let diff = cpu16.iter().zip(&gpu16).filter(|(a, b)| a.to_bits() != **b).count();
            assert_eq!(diff, 0, "{c:?} {size} fp16: {diff} values differ");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn planar_to_nv12_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    for (n, c) in COLOURS.into_iter().enumerate() {
        for size in [Size::new(3840, 2160), Size::new(35, 19)] {
            let mut s = n as u32 * 7 + 3;
            // out-of-range values too: both paths clamp
            let t: Vec<f32> = (0..3 * size.pixels())
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 8) as f32 / 16_777_216.0 * 1.3 - 0.15
                })
                .collect();
            let mut expected = Nv12Image::new(size);
            cpu::planar_to_nv12(&t, &rgb_to_yuv(c), &mut expected.view_mut());
            let src = stream.clone_htod(&t).unwrap();
            let mut out = DeviceFrame::zeroed(&stream, size);
            let dst = out.nv12(&stream);
            let (ptr, _) = src.device_ptr(&stream);
            // SAFETY: live allocations of the right sizes in this context.
            unsafe {
                planar_to_nv12(
                    &device,
                    &stream,
                    DevicePlanar { ptr, size, element: ElementType::F32 },
                    &rgb_to_yuv(c),
                    &dst,
                )
                .unwrap()
            };
            assert_eq!(out.download(&stream), expected, "{c:?} {size} fp32");

            let t16: Vec<half::f16> = t.iter().map(|&v| half::f16::from_f32(v)).collect();
            let mut expected16 = Nv12Image::new(size);
            cpu::planar_to_nv12(&t16, &rgb_to_yuv(c), &mut expected16.view_mut());
            let bits: Vec<u16> = t16.iter().map(|v| v.to_bits()).collect();
            let src16 = stream.clone_htod(&bits).unwrap();
            let (ptr, _) = src16.device_ptr(&stream);
            // SAFETY: as above.
            unsafe {
                planar_to_nv12(
                    &device,
                    &stream,
                    DevicePlanar { ptr, size, element: ElementType::F16 },
                    &rgb_to_yuv(c),
                    &dst,
                )
                .unwrap()
            };
            assert_eq!(out.download(&stream), expected16, "{c:?} {size} fp16");
        }
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn device_path_equals_host_path_on_the_real_model() {
    let model = vfupscale::models::default_model_path();
    assert!(model.exists(), "{} missing: run vfupscale-model fetch", model.display());
    let size = Size::new(320, 180);
    let img = random_frame(size, 42);
    let c = Colorimetry::new(Matrix::Bt709, Range::Limited);
    let run_cpu = {
        let mut up =
            Upscaler::new(UpscalerConfig { model: model.clone(), backend: BackendChoice::Cpu, ..Default::default() })
                .unwrap();
        up.prepare(size, TensorLocation::Host).unwrap();
        let mut out = Nv12Image::new(size.scaled(up.scale()));
        up.upscale_host(&img.view(), c, &mut out.view_mut(), c).unwrap();
        out
    };
    for precision in [Precision::Fp32, Precision::Fp16] {
        let mut up = Upscaler::new(UpscalerConfig {
            model: model.clone(),
            backend: BackendChoice::Cuda,
            precision,
            ..Default::default()
        })
        .unwrap();
        assert!(up.supports_device_memory());
        let device = up.gpu_device().unwrap().clone();
        let stream = device.new_stream().unwrap();
        up.prepare(size, TensorLocation::Device).unwrap();
        let mut src = DeviceFrame::upload(&stream, &img);
        let mut dst = DeviceFrame::zeroed(&stream, size.scaled(up.scale()));
        stream.synchronize().unwrap();
        let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
        // SAFETY: both frames are live allocations of this device's primary context.
        unsafe { up.upscale_device(&s, c, &d, c).unwrap() };
        let gpu = dst.download(&stream);
        let (luma, chroma) = (psnr(&gpu.y, &run_cpu.y), psnr(&gpu.uv, &run_cpu.uv));
        eprintln!("{precision:?}: GPU device path vs CPU path: luma {luma:.1} dB, chroma {chroma:.1} dB");
        assert!(luma >= 40.0 && chroma >= 40.0, "{precision:?}: luma {luma:.1} dB, chroma {chroma:.1} dB");
        let stats = up.stats();
        assert_eq!((stats.frames, stats.host_uploads, stats.foreign_context_copies), (1, 0, 0));
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
        let src32;
        let src16;
        let src = if i % 2 == 0 {
            cpu::blend_tile(&values, tile, &mut expected, out);
            src32 = stream.clone_htod(&values).unwrap();
            DevicePlanar { ptr: src32.device_ptr(&stream).0, size: tile.output.size(), element: ElementType::F32 }
        } else {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            cpu::blend_tile(&h, tile, &mut expected, out);
            src16 = stream.clone_htod(&h.iter().map(|v| v.to_bits()).collect::<Vec<u16>>()).unwrap();
            DevicePlanar { ptr: src16.device_ptr(&stream).0, size: tile.output.size(), element: ElementType::F16 }
        };
        let (acc_ptr, _) = acc.device_ptr_mut(&stream);
        // SAFETY: `src` holds the tile's output, `acc` the whole output frame, both live until the sync below.
        unsafe { blend_tile(&device, &stream, src, tile, acc_ptr, out).unwrap() };
        stream.synchronize().unwrap();
    }
    let got = stream.clone_dtoh(&acc).unwrap();
    let diff = expected.iter().zip(&got).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(diff, 0, "{diff} of {} accumulated values differ", got.len());
}

/// `tests/data/<name>` scaled (bilinear) to `size` and converted to NV12 (BT.709 limited).
fn test_image(name: &str, size: Size) -> Nv12Image {
    let (w, h, rgb) = ppm::read_ppm(&ppm::test_image_path(name));
    let (ow, oh) = (size.width as usize, size.height as usize);
    let mut planar = vec![0f32; 3 * ow * oh];
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * h as f32 / oh as f32 - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * w as f32 / ow as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for k in 0..3 {
                let p = |xx: usize, yy: usize| rgb[(yy * w + xx) * 3 + k] as f32 / 255.0;
                let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
                let bottom = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
                planar[k * ow * oh + y * ow + x] = top * (1.0 - ty) + bottom * ty;
            }
        }
    }
    let mut img = Nv12Image::new(size);
    cpu::planar_to_nv12(&planar, &rgb_to_yuv(BT709), &mut img.view_mut());
    img
}

const BT709: Colorimetry = Colorimetry::new(Matrix::Bt709, Range::Limited);

/// Upscales `img` on the GPU through the device path; returns the output and the upscaler (for its stats).
fn upscale_on_gpu(model: &str, precision: Precision, tiling: Tiling, img: &Nv12Image) -> (Nv12Image, Upscaler) {
    let path = vfupscale::models::model_path(model);
    assert!(path.exists(), "{} missing: run vfupscale-model fetch {model}", path.display());
    let mut up = Upscaler::new(UpscalerConfig {
        model: path,
        backend: BackendChoice::Cuda,
        precision,
        tiling,
        ..Default::default()
    })
    .unwrap();
    let device = up.gpu_device().unwrap().clone();
    let stream = device.new_stream().unwrap();
    up.prepare(img.size, TensorLocation::Device).unwrap();
    let mut src = DeviceFrame::upload(&stream, img);
    let mut dst = DeviceFrame::zeroed(&stream, img.size.scaled(up.scale()));
    stream.synchronize().unwrap();
    let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
    // SAFETY: both frames are live allocations of this device's primary context.
    unsafe { up.upscale_device(&s, BT709, &d, BT709).unwrap() };
    (dst.download(&stream), up)
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
        let (l, c) = (psnr(&tiled.y, &whole.y), psnr(&tiled.uv, &whole.uv));
        eprintln!(
            "{precision:?}: {} tiles of 64 vs whole frame: luma {l:.1} dB, chroma {c:.1} dB",
            up.stats().tiles_per_frame
        );
        assert!(l >= 50.0 && c >= 50.0, "{precision:?}: tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB");
        let (batched, up) = upscale_on_gpu(model, precision, Tiling { batch: 4, ..tiles }, &img);
        assert_eq!(up.stats().tensor_bytes % 4, 0);
        let differing =
            batched.y.iter().chain(&batched.uv).zip(tiled.y.iter().chain(&tiled.uv)).filter(|(a, b)| a != b);
        let n = differing.count();
        let p = psnr(&batched.y, &tiled.y);
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
    max_memory_mib: u64,
    img: &Nv12Image,
    frames: u32,
) -> (DeviceFrame, Upscaler, f64, f64, Arc<CudaStream>) {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let mut src = DeviceFrame::upload(&stream, img);
    let path = vfupscale::models::model_path(model);
    assert!(path.exists(), "{} missing: run vfupscale-model fetch {model}", path.display());
    // the output frame first: it is the pipeline's buffer, not the upscaler's memory
    let scale = vfupscale::infer::load_model(&path).unwrap().0.scale.expect("a model that declares its scale");
    let mut dst = DeviceFrame::zeroed(&stream, img.size.scaled(scale));
    stream.synchronize().unwrap();
    let (free_before, _) = device.memory_info().unwrap();
    let peak = PeakMemory::start(&device);
    let tiling = Tiling { max_memory_mib, ..Tiling::default() };
    let mut up = Upscaler::new(UpscalerConfig {
        model: path,
        backend: BackendChoice::Cuda,
        precision: Precision::Fp16,
        tiling,
        ..Default::default()
    })
    .unwrap();
    up.prepare(img.size, TensorLocation::Device).unwrap();
    let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
    let mut started = Instant::now();
    for i in 0..frames {
        if i == 1 {
            started = Instant::now(); // the first frame includes cuDNN's algorithm search
        }
        // SAFETY: both frames are live allocations of this device's primary context.
        unsafe { up.upscale_device(&s, BT709, &d, BT709).unwrap() };
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
    for (model, budget) in [("realesr-animevideov3-x4", 2048), ("realesrgan-x4plus", 4096)] {
        let (out, up, rise, per_frame, stream) = measured_run(model, budget, &img, 2);
        let memory = up.device_memory().unwrap();
        let s = up.stats();
        eprintln!(
            "{model} fp16, 3840x2160 -> {}, max-memory {budget} MiB: {} tiles of {}px, {:.2} s/frame, oom retries {}; \
             held {:.0} MiB (ONNX Runtime arena {:.0} MiB, limit {:.0} MiB, peak in use {:.0} MiB; own frames {:.0} \
             MiB); device memory rise from before the upscaler existed {rise:.0} MiB (includes the CUDA libraries)",
            out.size,
            s.tiles_per_frame,
            s.tile_size,
            per_frame,
            s.oom_retries,
            memory.held() as f64 / MIB,
            memory.arena.reserved as f64 / MIB,
            memory.arena.limit as f64 / MIB,
            memory.arena.peak_in_use as f64 / MIB,
            memory.own as f64 / MIB,
        );
        assert!(s.tiles_per_frame > 1, "{model}: a 4K x4 frame does not fit {budget} MiB whole");
        assert!(memory.held() <= budget << 20, "{model}: holds {} bytes, over the {budget} MiB limit", memory.held());
        // plausibility: the output box-filtered back to 4K resembles the input
        let out = out.download(&stream);
        let (w, ow) = (size.width as usize, out.size.width as usize);
        let down: Vec<u8> = (0..size.pixels())
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let sum: u32 = (0..16).map(|j| out.y[(4 * y + j / 4) * ow + 4 * x + j % 4] as u32).sum();
                ((sum + 8) / 16) as u8
            })
            .collect();
        let p = psnr(&down, &img.y);
        eprintln!("{model}: output box-filtered to the input size vs input: luma {p:.1} dB");
        assert!(p >= 28.0, "{model}: {p:.1} dB");
        if model == "realesr-animevideov3-x4" {
            let (whole, _, whole_rise, whole_per_frame, _) = measured_run(model, 0, &img, 2);
            let whole = whole.download(&stream);
            let (l, c) = (psnr(&out.y, &whole.y), psnr(&out.uv, &whole.uv));
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
fn memory_hungry_model() -> std::path::PathBuf {
    use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, attr_string, data_type, write_model};
    let path = std::env::temp_dir().join(format!("vfupscale-memory-hungry-{}.onnx", std::process::id()));
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
    let model = memory_hungry_model();
    let (_, proto) = vfupscale::infer::load_model(&model).unwrap();
    // the premise: the estimate sees 12 values per input pixel where the model holds about 200
    assert!(vfupscale_onnx::onnx::stats::model_stats(&proto).peak_activation_per_pixel < 20.0);
    let img = test_image("astronaut-192x128.ppm", Size::new(1920, 1080));
    let run = |max_memory_mib: u64| {
        let tiling = Tiling { max_memory_mib, ..Tiling::default() };
        let config = UpscalerConfig {
            model: model.clone(),
            backend: BackendChoice::Cuda,
            precision: Precision::Fp32,
            tiling,
            ..Default::default()
        };
        let mut up = Upscaler::new(config).unwrap();
        let stream = up.gpu_device().unwrap().new_stream().unwrap();
        up.prepare(img.size, TensorLocation::Device).unwrap();
        let mut src = DeviceFrame::upload(&stream, &img);
        let mut dst = DeviceFrame::zeroed(&stream, img.size.scaled(2));
        stream.synchronize().unwrap();
        let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
        let mut notes = Vec::new();
        for _ in 0..2 {
            // SAFETY: both frames are live allocations of this device's primary context.
            unsafe { up.upscale_device(&s, BT709, &d, BT709).unwrap() };
            notes.extend(up.take_notes());
        }
        (dst.download(&stream), up, notes)
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
    let (l, c) = (psnr(&out.y, &whole.y), psnr(&out.uv, &whole.uv));
    eprintln!("after retries vs whole frame: luma {l:.1} dB, chroma {c:.1} dB");
    assert!(l >= 50.0 && c >= 50.0, "luma {l:.1} dB, chroma {c:.1} dB");
}

/// Runs `engine` and ONNX Runtime's CUDA provider (fp16) on `image` (planar, 0..1) and returns both outputs.
fn native_and_onnx_runtime(path: &std::path::Path, image: &[f32], size: Size) -> (Vec<f32>, Vec<f32>, f64) {
    use vfupscale::infer::{Backend, InferenceSession, SessionOptions};
    use vfupscale::native::{NativeEngine, match_srvgg};
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let (info, proto) = vfupscale::infer::load_model(path).unwrap();
    let graph = match_srvgg(&proto, &info.input_name, &info.output_name).unwrap();
    let mut native = NativeEngine::new(device.clone(), stream.clone(), &graph, &info).unwrap();
    let scale = native.scale();
    let options = SessionOptions {
        backend: BackendChoice::Cuda,
        precision: Precision::Fp16,
        compute_stream: Some(stream.cu_stream() as usize),
        ..Default::default()
    };
    let mut ort = InferenceSession::open_with(&info, &proto, &options, Backend::Cuda).unwrap();
    ort.bind(1, size, scale, TensorLocation::Device).unwrap();
    native.bind(1, size).unwrap();
    let input: Vec<u16> = image.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let n = input.len() * (scale * scale) as usize;
    let (mut ours, mut theirs) = (vec![0u16; n], vec![0u16; n]);
    let s = stream.cu_stream();
    // SAFETY: tensors sized for `size` by `bind`; host buffers outlive the synchronisation.
    unsafe {
        cudarc::driver::result::memcpy_htod_async(native.input_ptr().unwrap(), &input, s).unwrap();
        cudarc::driver::result::memcpy_htod_async(ort.input_ptr().unwrap(), &input, s).unwrap();
    }
    // timing: ten runs each after a warm-up
    let time = |run: &mut dyn FnMut()| {
        run();
        stream.synchronize().unwrap();
        let start = Instant::now();
        for _ in 0..10 {
            run();
        }
        stream.synchronize().unwrap();
        start.elapsed().as_secs_f64() * 100.0
    };
    let native_ms = time(&mut || native.run().unwrap());
    let _ = time(&mut || ort.run().unwrap());
    // SAFETY: as above.
    unsafe {
        cudarc::driver::result::memcpy_dtoh_async(&mut ours, native.output_ptr().unwrap(), s).unwrap();
        cudarc::driver::result::memcpy_dtoh_async(&mut theirs, ort.output_ptr().unwrap(), s).unwrap();
    }
    stream.synchronize().unwrap();
    let f = |v: Vec<u16>| v.into_iter().map(|b| half::f16::from_bits(b).to_f32()).collect::<Vec<f32>>();
    (f(ours), f(theirs), native_ms)
}

fn psnr_unit(a: &[f32], b: &[f32]) -> f64 {
    let mse =
        a.iter().zip(b).map(|(&x, &y)| (x.clamp(0.0, 1.0) as f64 - y.clamp(0.0, 1.0) as f64).powi(2)).sum::<f64>()
            / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

/// `tests/data/<name>` scaled to `size` as planar RGB in 0..1.
fn planar_image(name: &str, size: Size) -> Vec<f32> {
    let img = test_image(name, size);
    let mut planar = vec![0f32; 3 * size.pixels()];
    cpu::nv12_to_planar(&img.view(), &yuv_to_rgb(BT709), Rect::new(0, 0, size.width, size.height), &mut planar);
    planar
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
        let path = vfupscale::models::model_path(name);
        assert!(path.exists(), "{} missing: run vfupscale-model fetch {name}", path.display());
        let (ours, theirs, _) = native_and_onnx_runtime(&path, &image, size);
        let max = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let p = psnr_unit(&ours, &theirs);
        eprintln!("{name}: native vs ONNX Runtime CUDA (both fp16): {p:.1} dB, max difference {max:.4}");
        assert!(p >= 45.0, "{name}: {p:.1} dB");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn native_kernels_at_1080p_and_the_upscaler_picks_them() {
    let size = Size::new(1920, 1080);
    let image = planar_image("astronaut-192x128.ppm", size);
    let path = vfupscale::models::model_path("realesr-animevideov3-x2");
    let (ours, theirs, ms) = native_and_onnx_runtime(&path, &image, size);
    let p = psnr_unit(&ours, &theirs);
    eprintln!("realesr-animevideov3-x2 1080p: native {ms:.2} ms per frame; vs ONNX Runtime CUDA fp16 {p:.1} dB");
    assert!(p >= 45.0, "{p:.1} dB");
    // auto picks the native kernels and says how well they agreed
    let up = Upscaler::new(UpscalerConfig { model: path, ..Default::default() }).unwrap();
    assert_eq!(up.backend(), vfupscale::Backend::Native);
    let db = up.native_agreement_db().unwrap();
    eprintln!("Upscaler: backend {}, probe agreement {db:.1} dB", up.backend());
    assert!(db >= 45.0);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn frames_in_flight_finish_in_order_and_equal_frames_run_one_at_a_time() {
    let size = Size::new(192, 128);
    let images: Vec<Nv12Image> = (0..vfupscale::upscaler::MAX_FRAMES_IN_FLIGHT as u64)
        .map(|i| if i == 0 { test_image("astronaut-192x128.ppm", size) } else { random_frame(size, 40 + i) })
        .collect();
    for tiling in [Tiling::default(), Tiling { tile_size: 64, ..Tiling::default() }] {
        let mut up = Upscaler::new(UpscalerConfig {
            model: vfupscale::models::default_model_path(),
            backend: BackendChoice::Auto,
            tiling,
            ..Default::default()
        })
        .unwrap();
        let device = up.gpu_device().unwrap().clone();
        let stream = device.new_stream().unwrap();
        up.prepare(size, TensorLocation::Device).unwrap();
        let mut sources: Vec<DeviceFrame> = images.iter().map(|img| DeviceFrame::upload(&stream, img)).collect();
        let out_size = size.scaled(up.scale());
        let mut one_at_a_time = Vec::new();
        for src in &mut sources {
            let mut dst = DeviceFrame::zeroed(&stream, out_size);
            stream.synchronize().unwrap();
            let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
            // SAFETY: both frames are live allocations of this device's primary context.
            unsafe { up.upscale_device(&s, BT709, &d, BT709).unwrap() };
            one_at_a_time.push(dst.download(&stream));
        }
        let mut outputs: Vec<DeviceFrame> = sources.iter().map(|_| DeviceFrame::zeroed(&stream, out_size)).collect();
        stream.synchronize().unwrap();
        for (src, dst) in sources.iter_mut().zip(&mut outputs) {
            let (s, d) = (src.nv12(&stream), dst.nv12(&stream));
            // SAFETY: as above; every frame stays allocated until all are finished below.
            unsafe { up.queue_device(&s, BT709, &d, BT709).unwrap() };
        }
        assert_eq!(up.frames_in_flight(), images.len());
        let (s, d) = (sources[0].nv12(&stream), outputs[0].nv12(&stream));
        // SAFETY: as above (refused before anything is queued).
        let refused = unsafe { up.queue_device(&s, BT709, &d, BT709) };
        assert!(refused.is_err(), "a frame beyond the limit must be refused");
        let before = up.stats().frames;
        for left in (0..images.len()).rev() {
            up.finish_frame().unwrap();
            assert_eq!(up.frames_in_flight(), left);
        }
        assert_eq!(up.stats().frames, before + images.len() as u64);
        assert!(up.finish_frame().is_err(), "nothing left to finish");
        for (i, (dst, expected)) in outputs.iter().zip(&one_at_a_time).enumerate() {
            let got = dst.download(&stream);
            assert!(got.y == expected.y && got.uv == expected.uv, "frame {i} (tile size {})", tiling.tile_size);
        }
        eprintln!(
            "{} frames in flight on {} (tile size {}): equal to one at a time",
            images.len(),
            up.backend(),
            tiling.tile_size
        );
    }
}
