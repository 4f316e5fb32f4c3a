// SPDX-License-Identifier: MPL-2.0
//! GPU tests of the classic, composition and temporal kernels (a module of `gpu_kernels`, run by
//! `tests/gpu/run.sh`): each equals the CPU path bit for bit; the classic upscaler's device path equals its host path
//! byte for byte, and its time per 1080p → 4K frame is printed.

use std::time::Instant;

use vfupscale::classic::{ClassicMethod, Resampler};
use vfupscale::color::{Colorimetry, Matrix, Range};
use vfupscale::compose::{ComposePlan, HostScratch, HostTemporal, Strength, compose_host};
use vfupscale::cuda::{DeviceResampler, FrameBuffer, GpuDevice, PlanarTensor, PlanarTensorMut};
use vfupscale::frame::{Image, PixelFormat, Rect, Size};
use vfupscale::temporal::{TemporalSettings, compute_mask};
use vfupscale::{BackendChoice, DeviceFrames, InputFrame, TensorLocation, Upscaler, UpscalerConfig};

use super::images::{BT709, random_frame, random_values as values, test_image};
use vfupscale::color::{code_to_rgb, rgb_to_code};
use vfupscale::cpu;

/// `got` with the fourth sample of each 4-byte pixel taken from `expected`: fill_extra's, not the composition's.
fn keep_extra(expected: &[u8], got: &[u8]) -> Vec<u8> {
    expected.iter().zip(got).enumerate().map(|(i, (e, g))| if i % 4 == 3 { *e } else { *g }).collect()
}

fn differing_bits(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn resample_kernel_equals_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let cases = [
        (Size::new(1920, 1080), Size::new(3840, 2160)),
        (Size::new(33, 17), Size::new(100, 51)),
        (Size::new(64, 48), Size::new(17, 13)),
        (Size::new(7, 5), Size::new(7, 5)),
    ];
    for method in [ClassicMethod::Lanczos, ClassicMethod::Bicubic] {
        for (n, (from, to)) in cases.into_iter().enumerate() {
            let r = Resampler::new(method, from, to);
            let tables = DeviceResampler::new(&stream, &r).unwrap();
            let src = values(3 * from.pixels(), n as u32 + 1, -0.1, 1.1);
            let mut expected = vec![0f32; 3 * to.pixels()];
            r.resample(&src, &mut expected);
            let input = stream.clone_htod(&src).unwrap();
            let mut out = stream.alloc_zeros::<f32>(3 * to.pixels()).unwrap();
            {
                let t = PlanarTensor::from_view(input.as_view(), &stream, from).unwrap();
                let mut d = PlanarTensorMut::from_view(out.as_view_mut(), &stream, to).unwrap();
                // SAFETY: our allocations, kept until the download below waits.
                unsafe { device.compose_kernels().resample(&stream, &tables, &t, &mut d).unwrap() };
            }
            let got = stream.clone_dtoh(&out).unwrap();
            assert_eq!(differing_bits(&expected, &got), 0, "{method} {from} -> {to} fp32");
            // fp16 sources (the model's output tensors)
            let h: Vec<half::f16> = src.iter().map(|&v| half::f16::from_f32(v)).collect();
            r.resample(&h, &mut expected);
            let input16 = stream.clone_htod(&h.iter().map(|v| v.to_bits()).collect::<Vec<u16>>()).unwrap();
            {
                let t = PlanarTensor::from_view(input16.as_view(), &stream, from).unwrap();
                let mut d = PlanarTensorMut::from_view(out.as_view_mut(), &stream, to).unwrap();
                // SAFETY: as above.
                unsafe { device.compose_kernels().resample(&stream, &tables, &t, &mut d).unwrap() };
            }
            let got = stream.clone_dtoh(&out).unwrap();
            assert_eq!(differing_bits(&expected, &got), 0, "{method} {from} -> {to} fp16");
        }
    }
}

/// The colorimetry frames of `format` take (a YCbCr matrix, or none for R'G'B').
fn colour_of(format: PixelFormat) -> Colorimetry {
    match format.family() {
        vfupscale::format::Family::Yuv => BT709,
        vfupscale::format::Family::Rgb => Colorimetry::new(Matrix::Rgb, Range::Full),
    }
}

/// One composition on the device into a frame of `format`, downloaded: `model` as f32 or f16 bits, the input's RGB,
/// `temporal` as (α, mask, history), which is updated.
fn compose_on_gpu(
    format: PixelFormat,
    plan: &ComposePlan,
    model: Option<(&[f32], bool)>,
    input_rgb: &[f32],
    strength: Strength,
    temporal: Option<(f32, &[f32], &mut Vec<f32>)>,
) -> Image {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let tables = DeviceResampler::new(&stream, &plan.classic).unwrap();
    let shrink = plan.shrink.as_ref().map(|s| DeviceResampler::new(&stream, s).unwrap());
    let rgb = stream.clone_htod(input_rgb).unwrap();
    let (m32, m16);
    let model_tensor = match model {
        Some((m, false)) => {
            m32 = stream.clone_htod(m).unwrap();
            Some(PlanarTensor::from_view(m32.as_view(), &stream, plan.model_output).unwrap())
        }
        Some((m, true)) => {
            m16 = stream.clone_htod(&m.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect::<Vec<_>>()).unwrap();
            Some(PlanarTensor::from_view(m16.as_view(), &stream, plan.model_output).unwrap())
        }
        None => None,
    };
    let rgb_tensor = PlanarTensor::from_view(rgb.as_view(), &stream, plan.input).unwrap();
    let mut dst = FrameBuffer::new(&stream, format, plan.output).unwrap();
    let (mask, mut history) = match &temporal {
        Some((_, mask, history)) => {
            (Some(stream.clone_htod(*mask).unwrap()), Some(stream.clone_htod(history.as_slice()).unwrap()))
        }
        None => (None, None),
    };
    {
        let frame = vfupscale::cuda::ComposeFrame {
            model: model_tensor.as_ref(),
            input_rgb: Some(&rgb_tensor),
            strength,
            temporal: match (&temporal, &mask, &mut history) {
                (Some((alpha, _, _)), Some(m), Some(h)) => Some((*alpha, m, h)),
                _ => None,
            },
            from_rgb: &rgb_to_code(colour_of(format), format.depth()),
        };
        let mut out = dst.view_mut(&stream).unwrap();
        // SAFETY: our allocations, kept until the download below waits.
        unsafe {
            device.compose_kernels().compose(&stream, plan, (&tables, shrink.as_ref()), frame, &mut out).unwrap()
        };
    }
    let image = dst.download(&stream).unwrap();
    if let (Some((_, _, h)), Some(dh)) = (temporal, history) {
        *h = stream.clone_dtoh(&dh).unwrap();
    }
    image
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn compose_kernel_equals_cpu_bit_for_bit() {
    let input = Size::new(97, 61);
    let frame = random_frame(input, 5);
    let mut rgb = vec![0f32; 3 * input.pixels()];
    cpu::frame_to_planar(&frame.view(), &code_to_rgb(BT709, 8), Rect::of_size(input), &mut rgb);
    // (scale, output, strength, model in fp16, no model)
    let cases = [
        (2, Size::new(194, 122), 0.5, false, false),
        (2, Size::new(194, 122), 1.0, true, false),
        (3, Size::new(150, 90), 1.0, false, false),
        (3, Size::new(121, 77), 0.3, true, false),
        (2, Size::new(194, 122), 0.0, false, false),
        (4, Size::new(388, 244), 0.0, false, true),
        (2, Size::new(1, 1), 0.7, false, false),
    ];
    let formats = [PixelFormat::Nv12, PixelFormat::P010, PixelFormat::Rgba, PixelFormat::Rgb];
    for (n, (scale, out, strength, fp16, classic_only)) in cases.into_iter().enumerate() {
        for (method, format) in
            [ClassicMethod::Lanczos, ClassicMethod::Bicubic].into_iter().zip(formats.into_iter().cycle().skip(n))
        {
            let plan = ComposePlan::new(method, input, scale, out).unwrap();
            let model = values(3 * plan.model_output.pixels(), n as u32 + 9, -0.15, 1.15);
            let strength = Strength::new(strength);
            let mut expected = Image::new(format, out);
            let mut scratch = HostScratch::default();
            let to_code = rgb_to_code(colour_of(format), format.depth());
            let model_arg = (!classic_only).then_some((model.as_slice(), fp16));
            let dst = &mut expected.view_mut();
            match model_arg {
                Some((m, true)) => {
                    let h: Vec<half::f16> = m.iter().map(|&v| half::f16::from_f32(v)).collect();
                    compose_host(&plan, Some(&h), &rgb, strength, None, &to_code, &mut scratch, dst)
                }
                Some((m, false)) => compose_host(&plan, Some(m), &rgb, strength, None, &to_code, &mut scratch, dst),
                None => compose_host::<f32>(&plan, None, &rgb, strength, None, &to_code, &mut scratch, dst),
            }
            .unwrap();
            let mut got = compose_on_gpu(format, &plan, model_arg, &rgb, strength, None);
            // the fourth sample is fill_extra's, not the composition's
            if format.layout().extra >= 0 {
                got.planes[0] = keep_extra(&expected.planes[0], &got.planes[0]);
            }
            assert!(
                got == expected,
                "case {n} ({method}, {format}, x{scale} -> {out}, strength {strength:?}, fp16 {fp16})"
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn temporal_mask_and_history_equal_cpu_bit_for_bit() {
    let device = GpuDevice::get(0).unwrap();
    let stream = device.new_stream().unwrap();
    let input = Size::new(120, 68);
    let settings = TemporalSettings::with_strength(0.8);
    for format in [PixelFormat::Nv12, PixelFormat::P010, PixelFormat::Rgba] {
        temporal_sequence(&device, &stream, &settings, format, input);
    }
}

/// A sequence of frames of `format` through the temporal mask and the composition with its history, each step on
/// both paths.
fn temporal_sequence(
    device: &GpuDevice,
    stream: &std::sync::Arc<vfupscale::cuda::CudaStream>,
    settings: &TemporalSettings,
    format: PixelFormat,
    input: Size,
) {
    let colour = colour_of(format);
    let base = super::images::test_image_as("astronaut-192x128.ppm", input, format, colour);
    let step = format.layout().step[0] as usize * format.layout().sample_bytes as usize;
    // static with small noise, a moving patch, static again, a scene cut, static
    let frames: Vec<Image> = (0..6u8)
        .map(|t| {
            let mut f = if t == 4 { super::images::random_frame_of(format, input, 77) } else { base.clone() };
            // small changes in the most significant byte of each sample: noise the mask should see as static (8
            // bits) or as a change (10 bits, where it is 4 code values at 8 bits)
            for (i, v) in f.planes[0].iter_mut().enumerate() {
                *v = v.saturating_add(((i * 7 + t as usize * 3) % 3) as u8);
            }
            if t == 2 {
                for y in 10..30 {
                    f.planes[0][y * 120 * step + 40 * step..y * 120 * step + 70 * step].fill(200);
                }
            }
            f
        })
        .collect();
    let plan = ComposePlan::new(ClassicMethod::Lanczos, input, 2, Size::new(200, 113)).unwrap();
    let strength = Strength::new(0.6);
    let to_yuv = rgb_to_code(colour, format.depth());
    let mut previous = Image::new(format, input);
    let mut prev_gpu = FrameBuffer::new(stream, format, input).unwrap();
    let (mut cpu_history, mut gpu_history) =
        (vec![0f32; 3 * plan.output.pixels()], vec![0f32; 3 * plan.output.pixels()]);
    let mut mask = vec![0f32; input.pixels()];
    let mut scratch = HostScratch::default();
    for (t, f) in frames.iter().enumerate() {
        let valid = t != 0;
        let cut = compute_mask(settings, &f.view(), &previous.view(), valid, &mut mask);
        // frame 0 has no history (its previous frame is blank: a cut, and a zero mask either way); frame 4 is the
        // scene cut and frame 5 the cut back
        assert_eq!(cut, matches!(t, 0 | 4 | 5), "{format} frame {t}");
        // the mask on the device
        let current = FrameBuffer::from_image(stream, &f.view()).unwrap();
        let mut sum = stream.alloc_zeros::<u64>(1).unwrap();
        let mut dmask = stream.alloc_zeros::<f32>(input.pixels()).unwrap();
        {
            let (c, p) = (current.view(stream).unwrap(), prev_gpu.view(stream).unwrap());
            // SAFETY: our allocations, kept until the downloads below wait.
            unsafe {
                device.compose_kernels().temporal_mask(stream, settings, &c, &p, valid, &mut sum, &mut dmask).unwrap()
            };
        }
        let got = stream.clone_dtoh(&dmask).unwrap();
        assert_eq!(differing_bits(&mask, &got), 0, "{format} frame {t}: mask");
        // the composition with the history
        let model = values(3 * plan.model_output.pixels(), t as u32 + 1, 0.0, 1.0);
        let mut rgb = vec![0f32; 3 * input.pixels()];
        cpu::frame_to_planar(&f.view(), &code_to_rgb(colour, format.depth()), Rect::of_size(input), &mut rgb);
        let mut expected = Image::new(format, plan.output);
        let temporal = HostTemporal { alpha: settings.strength, mask: &mask, history: &mut cpu_history };
        compose_host(
            &plan,
            Some(&model),
            &rgb,
            strength,
            Some(temporal),
            &to_yuv,
            &mut scratch,
            &mut expected.view_mut(),
        )
        .unwrap();
        let temporal = Some((settings.strength, got.as_slice(), &mut gpu_history));
        let mut out = compose_on_gpu(format, &plan, Some((model.as_slice(), false)), &rgb, strength, temporal);
        if format.layout().extra >= 0 {
            // the fourth sample is fill_extra's, not the composition's
            out.planes[0] = keep_extra(&expected.planes[0], &out.planes[0]);
        }
        assert!(out == expected, "{format} frame {t}: output");
        assert_eq!(differing_bits(&cpu_history, &gpu_history), 0, "{format} frame {t}: history");
        previous = f.clone();
        prev_gpu = current;
    }
}

/// A classic upscaler (`backend=classic`) to `output` from `size`.
fn classic_upscaler(scale: u32) -> Upscaler {
    let config = UpscalerConfig { backend: BackendChoice::Classic, scale: Some(scale), ..Default::default() };
    Upscaler::new(config).unwrap()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn classic_device_path_equals_host_path_and_its_time_per_4k_frame() {
    for (size, scale, out) in
        [(Size::new(192, 128), 3, Size::new(576, 384)), (Size::new(192, 128), 2, Size::new(301, 200))]
    {
        let img = test_image("astronaut-192x128.ppm", size);
        let mut host = classic_upscaler(scale);
        host.prepare_output(size, out, TensorLocation::Host).unwrap();
        let mut expected = Image::new(PixelFormat::Nv12, out);
        host.upscale_host(&img.view(), BT709, &mut expected.view_mut(), BT709).unwrap();
        let mut up = classic_upscaler(scale);
        assert!(up.supports_device_memory());
        let stream = up.gpu_device().unwrap().new_stream().unwrap();
        up.prepare_output(size, out, TensorLocation::Device).unwrap();
        let src = FrameBuffer::from_image(&stream, &img.view()).unwrap();
        let mut dst = FrameBuffer::new(&stream, PixelFormat::Nv12, out).unwrap();
        stream.synchronize().unwrap();
        up.upscale_device(InputFrame::Device(src.view(&stream).unwrap()), dst.view_mut(&stream).unwrap(), BT709, BT709)
            .unwrap();
        assert!(dst.download(&stream).unwrap() == expected, "x{scale} -> {out}: device and host paths differ");
    }
    // 1080p -> 4K, frames in flight as the element keeps them
    let (size, frames) = (Size::new(1920, 1080), 200);
    let mut up: Upscaler<DeviceFrames> =
        Upscaler::new(UpscalerConfig { backend: BackendChoice::Classic, scale: Some(2), ..Default::default() })
            .unwrap();
    let stream = up.gpu_device().unwrap().new_stream().unwrap();
    up.prepare(size, TensorLocation::Device).unwrap();
    let img = test_image("astronaut-192x128.ppm", size);
    let mut pool: Vec<DeviceFrames> = (0..3)
        .map(|_| DeviceFrames {
            input: FrameBuffer::from_image(&stream, &img.view()).unwrap(),
            output: FrameBuffer::new(&stream, PixelFormat::Nv12, size.scaled(2)).unwrap(),
        })
        .collect();
    stream.synchronize().unwrap();
    let mut started = Instant::now();
    for i in 0..frames {
        if i == 10 {
            started = Instant::now();
        }
        up.queue(pool.pop().unwrap(), BT709, BT709).unwrap();
        if up.frames_in_flight() > 1 {
            pool.push(up.finish_frame().unwrap());
        }
    }
    while up.frames_in_flight() > 0 {
        pool.push(up.finish_frame().unwrap());
    }
    let ms = started.elapsed().as_secs_f64() * 1e3 / (frames - 10) as f64;
    let s = up.stats();
    eprintln!(
        "classic lanczos 1920x1080 -> 3840x2160 on the device path: {ms:.3} ms per frame ({:.0} fps); convert-out mean \
         {:.3} ms (GPU time of the composition)",
        1e3 / ms,
        s.convert_out.mean_ms()
    );
    assert!(ms < 16.0, "{ms:.2} ms per frame");
}
