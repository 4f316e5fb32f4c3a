//! GPU tests of the core (run on an NVIDIA host by `tests/gpu/run.sh`; ignored elsewhere).
//!
//! The conversion kernels are compiled without FMA contraction and mirror `cpu.rs` operation for operation, so
//! their output must equal the CPU path's bit for bit; the device path of the `Upscaler` must equal its host path
//! up to the model's own GPU/CPU differences.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use vfupscale::color::{Colorimetry, Matrix, Range, rgb_to_yuv, yuv_to_rgb};
use vfupscale::cpu;
use vfupscale::cuda::GpuDevice;
use vfupscale::cuda::launch::{DevicePlanar, nv12_to_planar, planar_to_nv12};
use vfupscale::frame::{DeviceNv12, ElementType, Nv12Image, Rect, Size};
use vfupscale::infer::TensorLocation;
use vfupscale::{BackendChoice, Precision, Upscaler, UpscalerConfig};

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
