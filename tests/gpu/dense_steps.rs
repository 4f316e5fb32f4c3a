// SPDX-License-Identifier: MPL-2.0
//! Every kernel path of the native program engine, step by step, against a CPU reference: a small program with
//! random weights that reads the model input (3 channels), writes a dense block's next channels beside the ones it
//! reads, adds one and two residuals, upsamples (nearest, and as a convolution reads its input upsampled by 2), and
//! writes the planar output; and a padded one (waifu2x UpConv7's steps: an edge padding into buffers with a margin,
//! channel counts the kernels take only once fitted, a convolution of more than 64 outputs, a depth to space into the
//! planar output); and a UNet (Real-CUGAN's steps: a program of even sizes only, run at odd ones as the next even
//! size; a space to depth from an odd inset into half-size buffers, squeeze and excitation, a depth to space shifted
//! into its skip connection's layout adding it, one of 3 channels into an NHWC buffer, the final crop adding a
//! residual). Each buffer is compared after the run, so a wrong step is named. Odd sizes (partial 128 × 4 tiles), a
//! frame smaller than the padding and a batch of two.

use vfupscale::Model;
use vfupscale::cuda::GpuDevice;
use vfupscale::frame::Size;
use vfupscale::native::ProgramEngine;
use vfupscale::native::program::{Activation, BufferSpec, ConvStep, Program, Scale, ShiftedResidual, Slice, Step};

use super::program_reference::run_program_any_size;

fn f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn slice(buffer: usize, offset: usize, channels: usize) -> Slice {
    Slice { buffer, offset, channels }
}

fn conv(
    rng: &mut Rng,
    input: Slice,
    output: Slice,
    activation: Activation,
    alpha: f32,
    residuals: Vec<(Slice, f32)>,
) -> Step {
    let (cin, cout) = (input.channels, output.channels);
    let scale = 1.0 / (9.0 * cin as f32).sqrt();
    let weights = (0..cout * cin * 9).map(|_| f16(rng.uniform() * scale * 1.7)).collect();
    let bias = (0..cout).map(|_| f16(rng.uniform() * 0.1)).collect();
    Step::Conv(ConvStep { input, output, weights, bias, activation, alpha, residuals, upsample: 1 })
}

/// `step` reading its input upsampled by 2.
fn up2(step: Step) -> Step {
    let Step::Conv(c) = step else { unreachable!("a convolution") };
    Step::Conv(ConvStep { upsample: 2, ..c })
}

/// The test program: buffers 0 input {3}, 1 dense {96}, 2 {64}, 3 {128} at 2x, 4 output {3} at 2x, 5 {64}.
fn program() -> Program {
    let mut rng = Rng(7);
    let buffers = vec![
        BufferSpec::new(3, 1, 0),
        BufferSpec::new(96, 1, 0),
        BufferSpec::new(64, 1, 0),
        BufferSpec::new(128, 2, 0),
        BufferSpec::new(3, 2, 0),
        BufferSpec::new(64, 1, 0),
    ];
    let steps = vec![
        // from the model input (one chunk of 3 channels), 64 outputs, LeakyReLU
        conv(&mut rng, slice(0, 0, 3), slice(1, 0, 64), Activation::Leaky(0.2), 1.0, vec![]),
        // 32 outputs beside the 64 channels read, in the same buffer
        conv(&mut rng, slice(1, 0, 64), slice(1, 64, 32), Activation::Leaky(0.2), 1.0, vec![]),
        // 96 -> 64, no activation, x 0.2 + one residual
        conv(&mut rng, slice(1, 0, 96), slice(2, 0, 64), Activation::None, 0.2, vec![(slice(1, 0, 64), 1.0)]),
        // 64 -> 64, another slope, two residuals
        conv(
            &mut rng,
            slice(2, 0, 64),
            slice(5, 0, 64),
            Activation::Leaky(0.1),
            0.04,
            vec![(slice(2, 0, 64), 0.2), (slice(1, 0, 64), 1.0)],
        ),
        Step::Nearest { input: slice(5, 0, 64), output: slice(3, 0, 64), factor: 2 },
        // the same upsampled by 2 as a convolution reads it (the four phase convolutions), beside it
        up2(conv(&mut rng, slice(5, 0, 64), slice(3, 64, 64), Activation::Leaky(0.2), 1.0, vec![])),
        // 128 -> 3 into the planar output
        conv(&mut rng, slice(3, 0, 128), slice(4, 0, 3), Activation::None, 1.0, vec![]),
    ];
    Program { buffers, steps, output: slice(4, 0, 3), scale: 2, align: 1 }
}

/// The padded test program: buffers 0 input {3}, 1 {3} and 2 {16}, 3 {128}, 4 {12} with a margin of 3, 5 output
/// {3} at 2x.
fn padded_program() -> Program {
    let mut rng = Rng(5);
    let margin = |channels| BufferSpec::new(channels, 1, 3);
    let buffers =
        vec![BufferSpec::new(3, 1, 0), margin(3), margin(16), margin(128), margin(12), BufferSpec::new(3, 2, 0)];
    let steps = vec![
        Step::EdgePad { input: slice(0, 0, 3), output: slice(1, 0, 3), pad: 3 },
        // 16 outputs: 32 once fitted, the padding written with zeros
        conv(&mut rng, slice(1, 0, 3), slice(2, 0, 16), Activation::Leaky(0.1), 1.0, vec![]),
        // read as 32 channels, 128 outputs in two launches
        conv(&mut rng, slice(2, 0, 16), slice(3, 0, 128), Activation::Leaky(0.1), 1.0, vec![]),
        // four phases of 3 channels
        conv(&mut rng, slice(3, 0, 128), slice(4, 0, 12), Activation::None, 1.0, vec![]),
        Step::Shuffle {
            input: slice(4, 0, 12),
            output: slice(5, 0, 3),
            factor: 2,
            offset: 3,
            shift: 0,
            residual: None,
        },
    ];
    Program { buffers, steps, output: slice(5, 0, 3), scale: 2, align: 1 }
}

/// The UNet test program (even sizes): 0 input {3}, 1 {3} and 2 {64} with a margin of 4, 3 {256} and 4, 5 {64}, 6
/// {256} at half the size plus 3 pixels a side, 7 {64} with a margin of 4 (the skip's layout), 8 {12}, 9 {3} at 2x
/// plus 6 a side, 10 output {3} at 2x.
fn unet_program() -> Program {
    let mut rng = Rng(3);
    let at = |channels, num, den, extra| BufferSpec { channels, scale: Scale::new(num, den), extra };
    let buffers = vec![
        at(3, 1, 1, 0),
        at(3, 1, 1, 8),
        at(64, 1, 1, 8),
        at(256, 1, 2, 3),
        at(64, 1, 2, 3),
        at(64, 1, 2, 3),
        at(256, 1, 2, 3),
        at(64, 1, 1, 8),
        at(12, 1, 1, 8),
        at(3, 2, 1, 12),
        at(3, 2, 1, 0),
    ];
    let mut excite = |channels: usize, hidden: usize| {
        let mut values = |n: usize, scale: f32| (0..n).map(|_| rng.uniform() * scale).collect::<Vec<f32>>();
        Step::SqueezeExcite {
            input: slice(4, 0, channels),
            output: slice(5, 0, channels),
            inset: 1,
            reduce: values(hidden * channels, 0.3),
            reduce_bias: values(hidden, 0.1),
            expand: values(channels * hidden, 0.5),
            expand_bias: values(channels, 0.1),
        }
    };
    let se = excite(64, 8);
    let leaky = Activation::Leaky(0.1);
    let steps = vec![
        Step::EdgePad { input: slice(0, 0, 3), output: slice(1, 0, 3), pad: 4 },
        conv(&mut rng, slice(1, 0, 3), slice(2, 0, 64), leaky, 1.0, vec![]),
        // pairs from an odd inset: (side + 8 - 1) / 2 = side / 2 + 3
        Step::SpaceToDepth { input: slice(2, 0, 64), output: slice(3, 0, 256), offset: 1 },
        conv(&mut rng, slice(3, 0, 256), slice(4, 0, 64), leaky, 1.0, vec![]),
        se,
        // four phases of 64, in four launches
        conv(&mut rng, slice(5, 0, 64), slice(6, 0, 256), leaky, 1.0, vec![]),
        // 2 (side / 2 + 3) + 2 = side + 8, one pixel in, adding the skip connection (buffer 2)
        Step::Shuffle {
            input: slice(6, 0, 256),
            output: slice(7, 0, 64),
            factor: 2,
            offset: 0,
            shift: 1,
            residual: Some(ShiftedResidual { slice: slice(2, 0, 64), beta: 1.0, offset: 0 }),
        },
        conv(&mut rng, slice(7, 0, 64), slice(8, 0, 12), Activation::None, 1.0, vec![]),
        // 3 channels into an NHWC buffer: 2 (side + 8 - 2) = 2 side + 12
        Step::Shuffle {
            input: slice(8, 0, 12),
            output: slice(9, 0, 3),
            factor: 2,
            offset: 1,
            shift: 0,
            residual: None,
        },
        // the crop into the model output, adding a quarter of the cropped pixels again
        Step::Shuffle {
            input: slice(9, 0, 3),
            output: slice(10, 0, 3),
            factor: 1,
            offset: 6,
            shift: 0,
            residual: Some(ShiftedResidual { slice: slice(9, 0, 3), beta: -0.25, offset: 6 }),
        },
    ];
    Program { buffers, steps, output: slice(10, 0, 3), scale: 2, align: 2 }
}

/// Largest difference over the largest reference magnitude.
fn relative_error(gpu: &[f32], cpu: &[f32]) -> f32 {
    let worst = gpu.iter().zip(cpu).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let peak = cpu.iter().map(|v| v.abs()).fold(0.0, f32::max);
    worst / peak.max(1e-6)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn every_program_step_matches_a_cpu_reference() {
    let device = GpuDevice::get(0).unwrap();
    if device.compute_capability() != (9, 0) {
        eprintln!("the dense kernels are Hopper code; this GPU is {:?}", device.compute_capability());
        return;
    }
    let info = Model::load(&vfupscale::models::default_model_path()).unwrap().info().clone();
    let cases = [(Size::new(97, 61), 2usize), (Size::new(130, 9), 1), (Size::new(2, 5), 1)];
    let forms = |c| [(c, "dense", program()), (c, "padded", padded_program()), (c, "unet", unet_program())];
    for ((size, batch), form, lowered) in cases.into_iter().flat_map(forms) {
        let stream = device.new_stream().unwrap();
        let mut engine = ProgramEngine::new(&device, stream.clone(), lowered.clone(), &info).unwrap();
        // the buffers as the kernels hold them
        let p = engine.program().clone();
        let name = format!("{form} {size}");
        engine.bind(batch as u32, size).unwrap();
        let mut rng = Rng(11 + batch as u64);
        let input: Vec<f32> = (0..batch * 3 * size.pixels()).map(|_| f16(0.5 + 0.5 * rng.uniform())).collect();
        let plane = 3 * size.pixels();
        for n in 0..batch {
            engine.input_tensor(n as u32).unwrap().upload_rgb(&stream, &input[n * plane..(n + 1) * plane]).unwrap();
        }
        engine.run().unwrap();
        // the buffers at the size the program runs (odd sizes one larger for the UNet), the output cropped
        let (buffers, output) = run_program_any_size(&p, &input, size, batch, f16);
        let value = |b: u16| half::f16::from_bits(b).to_f32();
        // the repacked input: 32 channels per pixel, the first 3 the image, the rest zero
        let packed = engine.buffer_bits(0).unwrap();
        let packed_rgb: Vec<f32> = packed.chunks(32).flat_map(|px| px[..3].iter().map(|&b| value(b))).collect();
        assert!(packed.chunks(32).all(|px| px[3..].iter().all(|&b| b == 0)), "{name}: channels 3-31 of the input");
        assert_eq!(relative_error(&packed_rgb, &buffers[0]), 0.0, "{name}: the repacked input");
        for (b, expected) in buffers.iter().enumerate().skip(1) {
            if b == p.output.buffer {
                continue;
            }
            let gpu: Vec<f32> = engine.buffer_bits(b).unwrap().into_iter().map(value).collect();
            let e = relative_error(&gpu, expected);
            eprintln!("{name} batch {batch}: buffer {b} ({} channels): relative error {e:.2e}", p.buffers[b].channels);
            assert!(e < 4e-3, "{name} batch {batch}: buffer {b}: relative error {e}");
        }
        let gpu: Vec<f32> = (0..batch as u32)
            .flat_map(|n| engine.output_tensor(n).unwrap().download::<u16>(&stream).unwrap())
            .map(value)
            .collect();
        let e = relative_error(&gpu, &output);
        eprintln!("{name} batch {batch}: planar output: relative error {e:.2e}");
        assert!(e < 4e-3, "{name} batch {batch}: output: relative error {e}");
        // and what the program computes as lowered, before it was fitted to the kernels' widths
        let (_, unfitted) = run_program_any_size(&lowered, &input, size, batch, f16);
        let e = relative_error(&gpu, &unfitted);
        assert!(e < 4e-3, "{name} batch {batch}: output vs the lowered program: relative error {e}");
    }
}

/// Each lowered model's program at 1280×720 without ONNX Runtime (the kernels alone): the profile names every
/// launch (the input's repacking, each convolution, each upsampling, edge padding, depth to space), and one run takes
/// what its launches take.
#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn dense_programs_at_720p_profile_every_launch() {
    let device = GpuDevice::get(0).unwrap();
    if device.compute_capability() != (9, 0) {
        return;
    }
    let size = Size::new(1280, 720);
    for name in [
        "realesrgan-x4plus-anime",
        "realesrgan-x4plus",
        "waifu2x-upconv7-x2",
        "realcugan-up2x",
        "waifu2x-cunet-x2",
        "realcugan-up3x",
        "realcugan-up4x",
    ] {
        let model = Model::load(&vfupscale::models::resolve(Some(name.as_ref())).unwrap()).unwrap();
        let info = model.info();
        let program = vfupscale::native::program::lower(model.proto(), &info.input_name, &info.output_name).unwrap();
        // the network's work, not the fitted program's padding
        let flops = program.flops_per_pixel() * size.pixels() as f64;
        let stream = device.new_stream().unwrap();
        let mut engine = ProgramEngine::new(&device, stream.clone(), program, info).unwrap();
        let launches = 1 + engine.program().steps.len();
        engine.bind(1, size).unwrap();
        let image = vfupscale::probe_image(size);
        engine.input_tensor(0).unwrap().upload_rgb(&stream, &image).unwrap();
        for _ in 0..3 {
            engine.run().unwrap();
        }
        stream.synchronize().unwrap();
        let runs = 5;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            engine.run().unwrap();
        }
        stream.synchronize().unwrap();
        let ms = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        let profile = engine.profile().unwrap();
        assert_eq!(profile.len(), launches, "{name}: one entry per launch");
        let total: f64 = profile.iter().map(|(_, t)| t).sum();
        // by kernel name, in order of first appearance
        let mut kinds: Vec<(String, usize, f64)> = Vec::new();
        for (k, t) in &profile {
            match kinds.iter_mut().find(|(n, _, _)| n == k) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += t;
                }
                None => kinds.push((k.clone(), 1, *t)),
            }
        }
        eprintln!(
            "{name} {size}: {ms:.2} ms per run ({:.0} TFLOP/s useful), profiled launches {total:.2} ms",
            flops / ms / 1e9
        );
        for (k, n, t) in &kinds {
            eprintln!("  {k:<16} x{n:<4} {:>8.1} us each  {t:>7.2} ms", t * 1000.0 / *n as f64);
        }
        assert!((total - ms).abs() < 0.15 * ms, "{name}: launches {total:.2} ms, run {ms:.2} ms");
        let output = engine.output_tensor(0).unwrap().download::<u16>(&stream).unwrap();
        let finite = output.iter().all(|&b| half::f16::from_bits(b).is_finite());
        assert!(finite, "{name}: the output is finite");
    }
}
