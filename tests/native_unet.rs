// SPDX-License-Identifier: MPL-2.0
//! The lowering of UNets (Real-CUGAN, waifu2x CUNet: the importer's size class, 2×2 stride-2 convolutions and
//! transposed convolutions, squeeze-and-excitation blocks, skip connections added across layouts, the final crop)
//! into programs, run by the CPU interpreter against ONNX Runtime's CPU provider (fp32), as lowered and as fitted to
//! the GPU kernels, at sizes in the class and outside it (run as the engine runs them: the next size of the class
//! with the last row and column repeated); and the kernels' check of the programs.

#[path = "support/onnx_cpu.rs"]
mod onnx_cpu;
#[path = "support/program_reference.rs"]
mod program_reference;

use onnx_cpu::{installed, onnx_runtime_cpu, test_image, up3x_with_strides};
use program_reference::{max_difference, run_program_any_size};
use vfupscale::Model;
use vfupscale::frame::Size;
use vfupscale::native::program::{Program, Scale, Step, lower};
use vfupscale::native::{check_program, fit_program};

fn lowered(name: &str) -> Result<Program, String> {
    let model = Model::load(&installed(name)).unwrap();
    lower(model.proto(), &model.info().input_name, &model.info().output_name)
}

fn step_kinds(p: &Program) -> String {
    p.steps
        .iter()
        .map(|s| match s {
            Step::Conv(c) if c.is_pointwise() => "1x1",
            Step::Conv(_) => "conv",
            Step::Nearest { .. } => "nearest",
            Step::EdgePad { .. } => "pad",
            Step::Shuffle { factor: 1, .. } => "crop",
            Step::Shuffle { residual: Some(_), .. } => "d2s+skip",
            Step::Shuffle { .. } => "d2s",
            Step::SpaceToDepth { .. } => "s2d",
            Step::SqueezeExcite { .. } => "se",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts the steps of Real-CUGAN up2x's and CUNet's two UNets: three halvings (space to depth), three doublings
/// adding their skip connections, four excitations, and the final crop.
fn assert_two_unets(name: &str, kinds: &str) {
    assert_eq!(kinds.matches("s2d").count(), 3, "{name}: {kinds}");
    assert_eq!(kinds.matches("d2s+skip").count(), 3, "{name}: {kinds}");
    assert_eq!(kinds.matches("se").count(), 4, "{name}: {kinds}");
    assert!(kinds.ends_with("crop"), "{name}: {kinds}");
}

/// Checks `name` against ONNX Runtime as lowered at the first of `sizes` and as fitted at the others (the
/// interpreter is slow without optimisation; the fitted program is the lowered one with zero weights added).
fn matches_onnx_runtime(name: &str, scale: u32, sizes: &[Size]) -> Program {
    let p = lowered(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(p.scale, scale, "{name}");
    let fitted = fit_program(p.clone());
    for (i, &size) in sizes.iter().enumerate() {
        let image = test_image(size);
        let ort = onnx_runtime_cpu(&installed(name), &image, size, scale);
        let form = if i == 0 { [("lowered", &p)] } else { [("fitted", &fitted)] };
        for (form, program) in form {
            let (_, ours) = run_program_any_size(program, &image, size, 1, |v| v);
            let max = max_difference(&ours, &ort);
            eprintln!("{name} {size}: {form} program vs ONNX Runtime CPU (fp32): max difference {max:.2e}");
            assert!(max < 1e-4, "{name} {size} {form}: max difference {max}");
        }
    }
    p
}

/// Real-CUGAN up2x: two UNets. The importer pads by 18 and then to an even size, so the program runs even sizes
/// (odd ones as the next even size); each UNet halves the image with a 2×2 stride-2 convolution (a space to depth and
/// a 1×1 convolution) and doubles it back (a 1×1 convolution of four phases and a depth to space that adds the skip
/// connection in its layout), with squeeze-and-excitation blocks between; the second UNet's inner half pairs pixels
/// from an odd inset. The output is a crop of the last convolution's buffer, adding the first UNet's output.
#[test]
fn realcugan_up2x_lowers_to_a_unet_program_that_computes_what_onnx_runtime_computes() {
    // both residues of the sides mod 4 (the inner UNet's pairing parity) and odd sides (run one larger)
    let sizes = [Size::new(20, 24), Size::new(13, 9), Size::new(22, 31)];
    let p = matches_onnx_runtime("realcugan-up2x", 2, &sizes);
    assert_eq!(p.align, 2, "the importer's class: even sizes");
    let kinds = step_kinds(&p);
    eprintln!("realcugan-up2x: {kinds}");
    assert_two_unets("realcugan-up2x", &kinds);
    let Some(Step::Shuffle { residual, offset, .. }) = p.steps.last() else { unreachable!() };
    assert!(residual.is_some_and(|r| r.offset == *offset), "the crop adds the first UNet's output: {residual:?}");
    let halves: Vec<Scale> = p.buffers.iter().map(|b| b.scale).filter(|s| s.den == 2).collect();
    assert!(!halves.is_empty(), "buffers at half the input's size");
    assert!(p.buffers.iter().any(|b| b.extra % 2 == 1), "a buffer of odd extra: pairs from an odd inset");
}

/// waifu2x CUNet (Real-CUGAN's ancestor): the same two UNets, whose crops of the skip connections take their ends
/// from the `Shape` of the value they are added to, a value the transposed convolution's chain absorbs (its size is
/// followed from the chain's input), and whose sums are `Sum` nodes. The kernels take it as fitted.
#[test]
fn waifu2x_cunet_lowers_to_the_unet_program_that_onnx_runtime_computes() {
    let sizes = [Size::new(20, 24), Size::new(13, 9)];
    let p = matches_onnx_runtime("waifu2x-cunet-x2", 2, &sizes);
    assert_eq!(p.align, 2, "the importer's class: even sizes");
    let kinds = step_kinds(&p);
    eprintln!("waifu2x-cunet-x2: {kinds}");
    assert_two_unets("waifu2x-cunet-x2", &kinds);
    check_program(&fit_program(p)).unwrap_or_else(|why| panic!("the kernels refuse waifu2x-cunet-x2: {why}"));
}

/// Real-CUGAN up4x: the up2x UNets with 64 channels out of the first one's transposed convolution, then a
/// convolution of 12 outputs in CRD order (written in the program's DCR order), a crop, a pixel shuffle by 2 into the
/// output adding the input upsampled by 4 (nearest, from the model input's 3 channels).
#[test]
fn realcugan_up4x_lowers_to_a_unet_program_that_onnx_runtime_computes() {
    let sizes = [Size::new(20, 24), Size::new(13, 9)];
    let p = matches_onnx_runtime("realcugan-up4x", 4, &sizes);
    let kinds = step_kinds(&p);
    eprintln!("realcugan-up4x (align {}): {kinds}", p.align);
    assert!(kinds.ends_with("nearest d2s+skip"), "{kinds}");
    assert_eq!(kinds.matches("se").count(), 4, "{kinds}");
    check_program(&fit_program(p)).unwrap_or_else(|why| panic!("the kernels refuse realcugan-up4x: {why}"));
}

/// The kernels take Real-CUGAN up2x's program as fitted (`native_form` gives it to the GPU engine), and refuse the
/// new steps where their kernels could not run them, naming the step and why.
#[test]
fn the_kernels_take_the_unet_program_and_refuse_its_steps_changed_past_them() {
    let p = fit_program(lowered("realcugan-up2x").unwrap());
    check_program(&p).unwrap_or_else(|why| panic!("the kernels refuse realcugan-up2x: {why}"));
    let refusal = |edit: &dyn Fn(&mut Program)| {
        let mut changed = p.clone();
        edit(&mut changed);
        check_program(&changed).unwrap_err()
    };
    let find = |kind: fn(&Step) -> bool| p.steps.iter().position(kind).unwrap();
    let s2d = find(|s| matches!(s, Step::SpaceToDepth { .. }));
    let why = refusal(&|p| {
        if let Step::SpaceToDepth { offset, .. } = &mut p.steps[s2d] {
            *offset += 2; // the output's size no longer follows
        }
    });
    assert!(why.contains(&format!("space to depth {s2d}: its output is not half its input")), "{why}");
    let se = find(|s| matches!(s, Step::SqueezeExcite { .. }));
    let why = refusal(&|p| {
        if let Step::SqueezeExcite { expand, .. } = &mut p.steps[se] {
            expand.pop();
        }
    });
    assert!(why.contains(&format!("squeeze and excitation {se}:")), "{why}");
    let skip = find(|s| matches!(s, Step::Shuffle { residual: Some(_), factor: 2, .. }));
    let why = refusal(&|p| {
        if let Step::Shuffle { residual: Some(r), .. } = &mut p.steps[skip] {
            r.offset = 1000; // past its buffer
        }
    });
    assert!(why.contains(&format!("depth to space {skip}: its residual")), "{why}");
    // sizes of the class are cropped by the last step, a depth to space: not by a convolution
    let why = refusal(&|p| {
        p.steps.pop();
        let Some(Step::Conv(c)) = p.steps.last_mut() else { unreachable!("a convolution before the crop") };
        c.output = p.output;
    });
    assert!(why.contains("multiples of 2, and its output is written by a convolution"), "{why}");
}

/// Real-CUGAN up3x: the up2x UNets with a 5×5 stride-3 transposed convolution between them, run as the 3×3
/// convolution of its nine phases centred on every pixel of its input and a depth to space by 3 less a pixel on each
/// side (its output is 3n − 2 for n in); the second UNet's output adds a crop of that. The kernels take it fitted.
#[test]
fn realcugan_up3x_lowers_to_a_unet_program_that_onnx_runtime_computes() {
    let sizes = [Size::new(20, 24), Size::new(13, 9)];
    let p = matches_onnx_runtime("realcugan-up3x", 3, &sizes);
    let kinds = step_kinds(&p);
    eprintln!("realcugan-up3x (align {}): {kinds}", p.align);
    assert_two_unets("realcugan-up3x", &kinds);
    let phases = p.steps.iter().find_map(|s| match s {
        Step::Shuffle { factor: 3, input, output, offset, .. } => Some((input.channels, output.channels, *offset)),
        _ => None,
    });
    assert!(phases.is_some_and(|(i, o, _)| (i, o) == (27, 3)), "nine phases of 3 channels: {phases:?}");
    check_program(&fit_program(p)).unwrap_or_else(|why| panic!("the kernels refuse realcugan-up3x: {why}"));
}

/// A transposed convolution whose taps do not fit a 3×3 window of its phases (up3x's, given stride 2, or no strides)
/// is refused naming the node and what it is.
#[test]
fn a_transposed_convolution_past_the_phase_window_is_refused_naming_the_node() {
    let (proto, input, output) = up3x_with_strides(&[2, 2]);
    let why = lower(&proto, &input, &output).unwrap_err();
    eprintln!("realcugan-up3x at stride 2: {why}");
    assert!(why.contains("ConvTranspose ConvTranspose_30 (kernel 5, strides [2, 2]"), "{why}");
    assert!(why.contains("is not a 3x3 convolution of its phases") && !why.contains('\n'), "{why}");
    // an empty strides attribute (a malformed graph) is refused the same way, not indexed
    let (proto, input, output) = up3x_with_strides(&[]);
    let why = lower(&proto, &input, &output).unwrap_err();
    assert!(why.contains("ConvTranspose ConvTranspose_30 (kernel 5, strides []"), "{why}");
}
