// SPDX-License-Identifier: MPL-2.0
//! The lowering of ONNX graphs into native programs (the dense families' path to the GPU kernels): the shipped
//! RRDBNet models lower to what their architecture says, the lowered program computes what ONNX Runtime computes on
//! the model (a CPU interpreter of programs against ONNX Runtime's CPU provider, both fp32), synthetic graphs cover
//! each fusion, and graphs it cannot run are refused with the node named.

#[path = "support/onnx_cpu.rs"]
mod onnx_cpu;
#[path = "support/program_reference.rs"]
mod program_reference;

use onnx_cpu::{installed, onnx_runtime_cpu, random, test_image, up3x_with_strides};
use program_reference::{convs, max_difference, run_program};
use vfupscale::Model;
use vfupscale::frame::Size;
use vfupscale::native::program::{Activation, BufferSpec, ConvStep, Program, Slice, Step, lower};
use vfupscale::native::{NativeForm, check_program, fit_program, native_form};
use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, ModelProto, attr_float, attr_int, attr_ints, attr_string};

fn lowered(name: &str) -> Result<Program, String> {
    let model = Model::load(&installed(name)).unwrap();
    lower(model.proto(), &model.info().input_name, &model.info().output_name)
}

#[test]
fn the_shipped_rrdb_models_lower_to_their_architecture() {
    for (name, blocks) in [("realesrgan-x4plus", 23), ("realesrgan-x4plus-anime", 6)] {
        let p = lowered(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_program(&p).unwrap_or_else(|e| panic!("{name}: the kernels refuse the lowering: {e}"));
        // every width is one the kernels take already: the GPU runs the program as lowered
        assert!(fit_program(p.clone()) == p, "{name}: fitting changed the program");
        // per RRDB: 3 dense blocks of 5 convolutions; plus first, body, two upsampling, hr and last
        assert_eq!(p.convolutions(), blocks * 15 + 6, "{name}");
        // the two nearest x2 upsamplings are folded into conv_up1 and conv_up2, which read the small image
        assert_eq!(p.steps.len(), p.convolutions(), "{name}: only convolutions");
        let up: Vec<(usize, u32)> = convs(&p).map(|c| (c.input.channels, c.upsample)).filter(|c| c.1 != 1).collect();
        assert_eq!(up, [(64, 2), (64, 2)], "{name}: two convolutions read their input upsampled");
        assert_eq!(p.scale, 4, "{name}");
        // every dense block ends in conv5 x 0.2 + x; every RRDB in (that) x 0.2 + its input: 0.04, 0.2 and 1
        let two = convs(&p).filter(|c| c.residuals.len() == 2).collect::<Vec<_>>();
        assert_eq!(two.len(), blocks, "{name}: one conv per RRDB with both residuals");
        for c in &two {
            assert!((c.alpha - 0.04).abs() < 1e-6 && c.activation == Activation::None, "{name}: {}", c.alpha);
            let betas: Vec<f32> = c.residuals.iter().map(|r| r.1).collect();
            assert!((betas[0] - 0.2).abs() < 1e-6 && betas[1] == 1.0, "{name}: {betas:?}");
        }
        let one = convs(&p).filter(|c| c.residuals.len() == 1).count();
        assert_eq!(one, 2 * blocks + 1, "{name}: the other dense blocks and the trunk");
        // a dense block's concatenations are slices of one buffer: conv5 reads 192 channels
        assert!(convs(&p).any(|c| c.input.channels == 192 && p.buffers[c.input.buffer].channels == 192));
        let leaky = convs(&p).filter(|c| c.activation == Activation::Leaky(0.2)).count();
        assert_eq!(leaky, blocks * 12 + 3, "{name}: conv1-4 of each dense block, up1, up2, hr");
        // 35.9 MFLOP per input pixel for x4plus (issue 12)
        eprintln!(
            "{name}: {} steps, {} buffers ({:?}), {:.1} MFLOP per input pixel",
            p.steps.len(),
            p.buffers.len(),
            p.buffers.iter().map(|b| (b.channels, b.scale)).collect::<Vec<_>>(),
            p.flops_per_pixel() / 1e6
        );
        // one buffer per dense block would be 3 x blocks of 192 channels; live at once are at most four: the RRDB's
        // input (its residual), the block being read, the next block's being written, and the one before it
        let dense = p.buffers.iter().filter(|b| b.channels == 192).count();
        assert!(dense <= 4, "{name}: {dense} buffers of 192 channels: liveness should reuse them");
    }
    assert!((lowered("realesrgan-x4plus").unwrap().flops_per_pixel() / 1e6 - 35.9).abs() < 0.1);
}

#[test]
fn each_shipped_model_has_the_native_form_its_family_gets() {
    let form = |name: &str| {
        let model = Model::load(&installed(name)).unwrap();
        native_form(model.proto(), &model.info().input_name, &model.info().output_name)
    };
    for name in ["realesrgan-x4plus", "realesrgan-x4plus-anime"] {
        let f = form(name).unwrap();
        assert!(matches!(f, NativeForm::Program(_)), "{name}");
        assert!(f.summary().starts_with("lowered network (") && f.summary().contains("Hopper"), "{}", f.summary());
    }
    let f = form("realesr-animevideov3-x3").unwrap();
    assert!(matches!(f, NativeForm::Srvgg(_)) && f.summary().contains("16 hidden layers, x3"), "{}", f.summary());
    // the others: both families' reasons, in one line
    let (proto, input, output) = up3x_with_strides(&[2, 2]);
    let why = native_form(&proto, &input, &output).unwrap_err();
    assert!(why.contains("not an SRVGGNetCompact graph") && why.contains("nor a dense one") && !why.contains('\n'));
}

#[test]
fn the_lowered_anime_model_computes_what_onnx_runtime_computes() {
    let name = "realesrgan-x4plus-anime";
    let size = Size::new(13, 9);
    let image = test_image(size);
    let p = lowered(name).unwrap();
    let (_, ours) = run_program(&p, &image, size, 1, |v| v);
    let ort = onnx_runtime_cpu(&installed(name), &image, size, 4);
    let max = max_difference(&ours, &ort);
    eprintln!("{name} {size}: lowered program vs ONNX Runtime CPU (fp32): max difference {max:.2e}");
    assert!(max < 1e-3, "{name}: max difference {max}");
}

/// How a synthetic dense graph is varied.
#[derive(Default, Clone, Copy)]
struct Variant {
    /// What follows the first dense convolution instead of LeakyRelu.
    activation: Option<&'static str>,
    /// Concatenate the first dense output twice (a value at two offsets of one buffer).
    concat_twice: bool,
    /// Concatenate the model input with a feature map.
    concat_input: bool,
    /// Two values concatenated after the same one, so they would share channels.
    shared_channels: bool,
    /// Upsample by 1.5 instead of 2.
    fractional_resize: bool,
    /// The dense block's second convolution strided.
    stride: bool,
}

/// A small RRDB-like network with random weights: first conv, one dense block (conv, conv over the concatenation,
/// conv over the three, x 0.2 + x), the block's output scaled and added to the features twice over (`Mul(c, x)` and
/// a three-input `Sum`), nearest x2, a Relu-activated and a LeakyRelu-activated conv, last conv, Identity.
fn dense_graph(v: Variant) -> ModelProto {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let mut seed = 10;
    let mut conv = |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, stride: i64| {
        seed += 1;
        let gain = 1.2 / ((9 * cin) as f32).sqrt();
        let w = g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, seed, gain));
        let b = g.f32_init("b", &[cout], &random(cout as usize, seed + 100, 0.1));
        let attrs = vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[stride, stride]),
        ];
        g.op("Conv", "conv", &[x, &w, &b], attrs)
    };
    let leaky = |g: &mut GraphBuilder, x: &str| g.op("LeakyRelu", "lrelu", &[x], vec![attr_float("alpha", 0.2)]);
    let feat = conv(&mut g, "input", 3, 64, 1);
    let x1 = conv(&mut g, &feat, 64, 32, 1);
    let x1 = match v.activation {
        Some("PRelu") => {
            let slope = g.f32_init("slope", &[1], &[0.25]);
            g.op("PRelu", "prelu", &[&x1, &slope], vec![])
        }
        Some(op) => g.op(op, "act", &[&x1], vec![]),
        None => leaky(&mut g, &x1),
    };
    let first_concat: Vec<&str> = if v.concat_twice {
        vec![&feat, &x1, &x1]
    } else if v.concat_input {
        vec!["input", &feat, &x1]
    } else {
        vec![&feat, &x1]
    };
    let cin = if v.concat_twice || v.concat_input { 96 + if v.concat_twice { 32 } else { 3 } } else { 96 };
    let c1 = g.op("Concat", "cat", &first_concat, vec![attr_int("axis", 1)]);
    let x2 = conv(&mut g, &c1, cin, 32, if v.stride { 2 } else { 1 });
    let x2 = leaky(&mut g, &x2);
    let (c2, cin) = if v.shared_channels {
        // x2 right after feat, where x1 is too
        (g.op("Concat", "cat", &[&feat, &x2], vec![attr_int("axis", 1)]), 96)
    } else {
        (g.op("Concat", "cat", &[&c1, &x2], vec![attr_int("axis", 1)]), cin + 32)
    };
    let x3 = conv(&mut g, &c2, cin, 64, 1);
    let k = g.f32_init("k", &[1], &[0.2]);
    let x3 = g.op("Mul", "mul", &[&x3, &k], vec![]);
    let block = g.op("Sum", "sum", &[&x3, &feat], vec![]);
    let body = conv(&mut g, &block, 64, 64, 1);
    let half = g.f32_init("half", &[1], &[0.5]);
    let body = g.op("Mul", "mul", &[&half, &body], vec![]);
    let trunk = g.op("Sum", "sum", &[&feat, &body, &block], vec![]);
    let factor = if v.fractional_resize { 1.5 } else { 2.0 };
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, factor, factor]);
    let resize_attrs = vec![
        attr_string("mode", "nearest"),
        attr_string("coordinate_transformation_mode", "asymmetric"),
        attr_string("nearest_mode", "floor"),
    ];
    let up = g.op("Resize", "up", &[&trunk, "", &scales], resize_attrs);
    let up = conv(&mut g, &up, 64, 64, 1);
    let up = g.op("Relu", "relu", &[&up], vec![]);
    let hr = conv(&mut g, &up, 64, 64, 1);
    let hr = leaky(&mut g, &hr);
    let last = conv(&mut g, &hr, 64, 3, 1);
    g.op_into("Identity", &[&last], "output", vec![]);
    g.into_model("synthetic-dense", &[(META_SCALE, "2".to_string())])
}

fn lower_graph(v: Variant) -> Result<Program, String> {
    lower(&dense_graph(v), "input", "output")
}

#[test]
fn each_fusion_of_a_synthetic_dense_graph_computes_what_onnx_runtime_computes() {
    let size = Size::new(11, 7);
    let image = test_image(size);
    for activation in [None, Some("Relu"), Some("PRelu")] {
        let v = Variant { activation, ..Default::default() };
        let p = lower_graph(v).unwrap_or_else(|e| panic!("{activation:?}: {e}"));
        check_program(&p).unwrap();
        // the nearest x2 is folded into the Relu conv after it
        assert_eq!((p.convolutions(), p.steps.len(), p.scale), (8, 8, 2));
        assert_eq!(convs(&p).filter(|c| c.upsample == 2).count(), 1);
        // the body: 0.5 x conv + feat + block, the three-input Sum and Mul(constant, x) in one epilogue
        let body = convs(&p).find(|c| c.residuals.len() == 2).expect("the body takes two residuals");
        assert_eq!(body.alpha, 0.5);
        assert_eq!(body.residuals.iter().map(|r| r.1).collect::<Vec<_>>(), [1.0, 1.0]);
        let path = std::env::temp_dir().join(format!("vfupscale-synthetic-dense-{}.onnx", std::process::id()));
        vfupscale_onnx::onnx::write_model(&path, &dense_graph(v)).unwrap();
        let ort = onnx_runtime_cpu(&path, &image, size, 2);
        std::fs::remove_file(&path).unwrap();
        let (_, ours) = run_program(&p, &image, size, 1, |v| v);
        let max = max_difference(&ours, &ort);
        eprintln!("synthetic dense graph, {activation:?}: max difference {max:.2e}");
        assert!(max < 1e-4, "{activation:?}: max difference {max}");
    }
}

#[test]
fn graphs_the_kernels_cannot_run_are_refused_naming_the_node() {
    for (variant, expected) in [
        (Variant { activation: Some("Sigmoid"), ..Default::default() }, "Sigmoid node"),
        (Variant { concat_twice: true, ..Default::default() }, "two channel offsets"),
        (Variant { concat_input: true, ..Default::default() }, "model input is concatenated"),
        (Variant { shared_channels: true, ..Default::default() }, "share channels"),
        (Variant { fractional_resize: true, ..Default::default() }, "integer factor"),
        (Variant { stride: true, ..Default::default() }, "stride 1"),
    ] {
        let e = lower_graph(variant).expect_err(expected);
        eprintln!("{expected}: {e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
    // another family (SRVGGNetCompact, which its own kernels run) names what it has that the program steps do not
    let name = "realesr-animevideov3-x4";
    let e = lowered(name).expect_err(name);
    eprintln!("{name}: {e}");
    assert!(e.contains("node") || e.contains("Conv") || e.contains("Resize"), "{name}: {e}");
}

#[test]
fn buffers_are_reused_once_dead() {
    let p = lower_graph(Variant::default()).unwrap();
    let shapes: Vec<(usize, u32)> = p.buffers.iter().map(|b| (b.channels, b.scale.num)).collect();
    // input; feat, x1, x2 in one buffer (the concatenations); the block; the trunk; at 2x the Relu conv (which reads
    // the trunk upsampled: no buffer for the upsampled trunk) and the LeakyRelu conv after it; the output
    assert_eq!(shapes, [(3, 1), (128, 1), (64, 1), (64, 1), (64, 2), (64, 2), (3, 2)], "{:?}", p.buffers);
    let x4 = lowered("realesrgan-x4plus").unwrap();
    let bytes_per_pixel: usize = x4.buffers.iter().map(|b| b.channels * (b.scale.num * b.scale.num) as usize * 2).sum();
    eprintln!("realesrgan-x4plus: {} buffers, {bytes_per_pixel} bytes per input pixel", x4.buffers.len());
    // without reuse: 69 dense blocks of 192 channels alone are 26 KB per pixel; with it, the two 64-channel buffers
    // at 4x (conv_up2's output, then conv_hr's) are most of what is left
    assert!(bytes_per_pixel < 8 << 10, "{bytes_per_pixel} bytes per input pixel");
}

/// A graph from the model input: conv 3 → 64, nearest ×`factor`, then what `tail` builds from (graph, the
/// upsampled value, conv helper) up to a 3-channel value, which becomes the output.
fn upsampling_graph(
    factor: f32,
    tail: impl FnOnce(&mut GraphBuilder, &str, &mut dyn FnMut(&mut GraphBuilder, &str, i64, i64) -> String) -> String,
) -> ModelProto {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let mut seed = 40;
    let mut conv = move |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64| {
        seed += 1;
        let w = g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, seed, 0.05));
        let b = g.f32_init("b", &[cout], &random(cout as usize, seed + 100, 0.1));
        g.op("Conv", "conv", &[x, &w, &b], vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])])
    };
    let feat = conv(&mut g, "input", 3, 64);
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, factor, factor]);
    let attrs = vec![
        attr_string("mode", "nearest"),
        attr_string("coordinate_transformation_mode", "asymmetric"),
        attr_string("nearest_mode", "floor"),
    ];
    let up = g.op("Resize", "up", &[&feat, "", &scales], attrs);
    let last = tail(&mut g, &up, &mut conv);
    g.op_into("Identity", &[&last], "output", vec![]);
    g.into_model("upsampling", &[(META_SCALE, format!("{factor}"))])
}

#[test]
fn upsampling_is_folded_only_into_a_convolution_the_phase_kernel_takes() {
    type Tail = fn(&mut GraphBuilder, &str, &mut dyn FnMut(&mut GraphBuilder, &str, i64, i64) -> String) -> String;
    let cases: [(&str, f32, Tail, bool); 7] = [
        (
            "conv 64 -> 64 alone",
            2.0,
            |g, up, conv| {
                let x = conv(g, up, 64, 64);
                conv(g, &x, 64, 3)
            },
            true,
        ),
        (
            "read by two convolutions",
            2.0,
            |g, up, conv| {
                let (a, b) = (conv(g, up, 64, 32), conv(g, up, 64, 32));
                let both = g.op("Concat", "cat", &[&a, &b], vec![attr_int("axis", 1)]);
                conv(g, &both, 64, 3)
            },
            false,
        ),
        (
            "also a residual",
            2.0,
            |g, up, conv| {
                let x = conv(g, up, 64, 64);
                let x = conv(g, &x, 64, 64);
                let sum = g.op("Add", "add", &[&x, up], vec![]);
                conv(g, &sum, 64, 3)
            },
            false,
        ),
        (
            "concatenated",
            2.0,
            |g, up, conv| {
                let x = conv(g, up, 64, 32);
                let both = g.op("Concat", "cat", &[up, &x], vec![attr_int("axis", 1)]);
                conv(g, &both, 96, 3)
            },
            false,
        ),
        (
            "into 32 outputs",
            2.0,
            |g, up, conv| {
                let x = conv(g, up, 64, 32);
                conv(g, &x, 32, 3)
            },
            false,
        ),
        ("the output convolution", 2.0, |g, up, conv| conv(g, up, 64, 3), false),
        (
            "by 3",
            3.0,
            |g, up, conv| {
                let x = conv(g, up, 64, 64);
                conv(g, &x, 64, 3)
            },
            false,
        ),
    ];
    for (name, factor, tail, folded) in cases {
        let p = lower(&upsampling_graph(factor, tail), "input", "output").unwrap_or_else(|e| panic!("{name}: {e}"));
        let nearest = p.steps.len() - p.convolutions();
        let upsampled = convs(&p).filter(|c| c.upsample == 2).count();
        assert_eq!((nearest, upsampled), if folded { (0, 1) } else { (1, 0) }, "{name}");
        // folding never costs a program its GPU kernels, as lowered or as fitted (which the GPU runs)
        check_program(&p).unwrap_or_else(|e| panic!("{name}: the kernels refuse it: {e}"));
        check_program(&fit_program(p.clone())).unwrap_or_else(|e| panic!("{name}: the kernels refuse it fitted: {e}"));
        // and the folded program computes what the graph does
        let size = Size::new(9, 6);
        let image = test_image(size);
        let (_, ours) = run_program(&p, &image, size, 1, |v| v);
        let path = std::env::temp_dir().join(format!("vfupscale-upsampling-{}-{name}.onnx", std::process::id()));
        vfupscale_onnx::onnx::write_model(&path, &upsampling_graph(factor, tail)).unwrap();
        let ort = onnx_runtime_cpu(&path, &image, size, factor as u32);
        std::fs::remove_file(&path).unwrap();
        let max = max_difference(&ours, &ort);
        assert!(max < 1e-4, "{name}: max difference {max} against ONNX Runtime");
    }
}

#[test]
fn the_kernels_refuse_a_convolution_whose_output_is_not_at_its_scale() {
    // input {3} -> buffer 1 {64} -> output {3} at 2x; the first convolution reads its input upsampled by `up`
    let program = |up: u32, hidden_scale: u32| {
        let slice = |buffer, channels| Slice { buffer, offset: 0, channels };
        let conv = |input, output, cin: usize, cout: usize, upsample| {
            let (weights, bias) = (vec![0.01; cout * cin * 9], vec![0.0; cout]);
            let (activation, alpha, residuals) = (Activation::None, 1.0, vec![]);
            Step::Conv(ConvStep { input, output, weights, bias, activation, alpha, residuals, upsample })
        };
        let spec = |channels, scale| BufferSpec::new(channels, scale, 0);
        Program {
            buffers: vec![spec(3, 1), spec(64, hidden_scale), spec(3, 2)],
            steps: vec![conv(slice(0, 3), slice(1, 64), 3, 64, up), conv(slice(1, 64), slice(2, 3), 64, 3, 1)],
            output: slice(2, 3),
            scale: 2,
            align: 1,
        }
    };
    // upsampled into a buffer at twice the input's scale: taken; into one at the input's, or not upsampled into
    // one at twice it: refused
    check_program(&program(2, 2)).unwrap();
    assert!(check_program(&program(1, 2)).unwrap_err().contains("convolution 0: its output"));
    assert!(check_program(&program(2, 1)).unwrap_err().contains("convolution 0: its output"));
}

/// Programs the kernels would run wrongly are refused, each naming what is wrong (the lowering writes none of these;
/// the check is the gate for any program).
#[test]
fn the_kernels_refuse_programs_they_would_run_wrongly() {
    let slice = |buffer, offset, channels| Slice { buffer, offset, channels };
    let conv = |input: Slice, output: Slice, residuals: Vec<(Slice, f32)>| {
        let (cin, cout) = (input.channels, output.channels);
        let (weights, bias) = (vec![0.01; cout * cin * 9], vec![0.0; cout]);
        ConvStep { input, output, weights, bias, activation: Activation::None, alpha: 1.0, residuals, upsample: 1 }
    };
    let spec = |channels, margin| BufferSpec::new(channels, 1, margin);
    // input {3} -> 1 {64} -> 2 {64} -> output {3}
    let program = |edit: &dyn Fn(&mut Vec<Step>)| {
        let mut steps = vec![
            Step::Conv(conv(slice(0, 0, 3), slice(1, 0, 64), vec![])),
            Step::Conv(conv(slice(1, 0, 64), slice(2, 0, 64), vec![(slice(1, 0, 64), 1.0)])),
            Step::Conv(conv(slice(2, 0, 64), slice(3, 0, 3), vec![])),
        ];
        edit(&mut steps);
        Program {
            buffers: vec![spec(3, 0), spec(64, 0), spec(64, 0), spec(3, 0)],
            steps,
            output: slice(3, 0, 3),
            scale: 1,
            align: 1,
        }
    };
    check_program(&program(&|_| {})).unwrap();
    let refusal = |edit: &dyn Fn(&mut Vec<Step>)| check_program(&program(edit)).unwrap_err();
    let narrow_residual = refusal(&|s| {
        if let Step::Conv(c) = &mut s[1] {
            c.residuals[0].0.channels = 32;
        }
    });
    assert!(narrow_residual.contains("convolution 1: a residual is not 64 channels"), "{narrow_residual}");
    let short_weights = refusal(&|s| {
        if let Step::Conv(c) = &mut s[0] {
            c.weights.pop();
        }
    });
    assert!(short_weights.contains("convolution 0: its weights or bias"), "{short_weights}");
    let part_of_the_output = refusal(&|s| {
        if let Step::Conv(c) = &mut s[2] {
            *c = conv(c.input, slice(3, 0, 2), vec![]);
        }
    });
    assert!(part_of_the_output.contains("step 2 writes 2 of the model output's 3 channels"), "{part_of_the_output}");
    let copied_into_fewer = refusal(&|s| {
        s.insert(1, Step::Nearest { input: slice(1, 0, 64), output: slice(2, 0, 32), factor: 1 });
    });
    assert!(copied_into_fewer.contains("step 1 copies 64 channels into 32"), "{copied_into_fewer}");
    // a depth to space writing one plane of the output
    let shuffle = Program {
        buffers: vec![spec(3, 0), spec(32, 1), spec(32, 1), BufferSpec::new(3, 2, 0)],
        steps: vec![
            Step::EdgePad { input: slice(0, 0, 3), output: slice(1, 0, 3), pad: 1 },
            Step::Conv(conv(slice(1, 0, 32), slice(2, 0, 8), vec![])),
            Step::Shuffle {
                input: slice(2, 0, 4),
                output: slice(3, 0, 1),
                factor: 2,
                offset: 1,
                shift: 0,
                residual: None,
            },
        ],
        output: slice(3, 0, 3),
        scale: 2,
        align: 1,
    };
    let why = check_program(&shuffle).unwrap_err();
    assert!(why.contains("writes 1 of the model output's 3 channels"), "{why}");
}

#[test]
fn malformed_graphs_are_refused_not_panicked_on() {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let new = || GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let conv_attrs = || vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])];
    let nearest = || {
        vec![
            attr_string("mode", "nearest"),
            attr_string("coordinate_transformation_mode", "asymmetric"),
            attr_string("nearest_mode", "floor"),
        ]
    };
    // weights shorter than their dimensions say
    let mut g = new();
    let w = g.f32_init("w", &[3, 3, 3, 3], &random(40, 1, 0.1));
    let b = g.f32_init("b", &[3], &[0.0; 3]);
    g.op_into("Conv", &["input", &w, &b], "output", conv_attrs());
    let e = lower(&g.into_model("truncated", &[]), "input", "output").unwrap_err();
    assert!(e.contains("weights hold 40 values"), "{e}");
    // a node with two outputs
    let mut g = new();
    g.op_into("Identity", &["input"], "output", vec![]);
    g.nodes[0].output.push("extra".into());
    let e = lower(&g.into_model("two-outputs", &[]), "input", "output").unwrap_err();
    assert!(e.contains("2 outputs"), "{e}");
    // five nearest x2 upsamplings: 32 times the input
    let mut g = new();
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let mut x = "input".to_string();
    for _ in 0..5 {
        x = g.op("Resize", "up", &[&x, "", &scales], nearest());
    }
    let w = g.f32_init("w", &[3, 3, 3, 3], &random(81, 2, 0.1));
    let b = g.f32_init("b", &[3], &[0.0; 3]);
    g.op_into("Conv", &[&x, &w, &b], "output", conv_attrs());
    let e = lower(&g.into_model("too-large", &[]), "input", "output").unwrap_err();
    assert!(e.contains("past 16x"), "{e}");
    // negative channel counts
    let mut g = new();
    let w = g.f32_init("w", &[3, 3, 3, 3], &random(81, 1, 0.1));
    g.initializers.last_mut().unwrap().dims = vec![-1, 3, 3, 3];
    let b = g.f32_init("b", &[3], &[0.0; 3]);
    g.op_into("Conv", &["input", &w, &b], "output", conv_attrs());
    let e = lower(&g.into_model("negative", &[]), "input", "output").unwrap_err();
    assert!(e.contains("1 to 4096 channels"), "{e}");
    // concatenations nested as deep as the graph is long (the layout's lookups are not recursive)
    let mut g = new();
    let w = g.f32_init("w", &[8, 3, 3, 3], &random(216, 3, 0.1));
    let b = g.f32_init("b", &[8], &[0.0; 8]);
    let mut x = g.op("Conv", "conv", &["input", &w, &b], conv_attrs());
    for k in 0..40_000 {
        // distinct hints: GraphBuilder numbers repeated ones by trying each suffix in turn
        let y = g.op("Conv", &format!("conv{k}"), &["input", &w, &b], conv_attrs());
        x = g.op("Concat", &format!("cat{k}"), &[&x, &y], vec![attr_int("axis", 1)]);
    }
    g.op_into("Identity", &[&x], "output", vec![]);
    let e = lower(&g.into_model("deep", &[]), "input", "output").unwrap_err();
    assert!(e.contains("channels, not 3"), "{e}");
    // an output nothing computes
    let g = new();
    let e = lower(&g.into_model("empty", &[]), "input", "output").unwrap_err();
    assert!(e.contains("output output is not computed"), "{e}");
}

#[test]
fn a_value_written_after_its_buffer_was_last_read_keeps_the_buffer() {
    // feat sits in the unread concatenation [a, feat]: its buffer is last read by b, but a is written into it later,
    // after e's concatenation [e, f] (same shape) was placed; reusing the buffer for [e, f] would let a overwrite e
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let mut seed = 50;
    let mut conv = |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64| {
        seed += 1;
        let w =
            g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, seed, 0.3 / (cin as f32).sqrt()));
        let b = g.f32_init("b", &[cout], &random(cout as usize, seed + 100, 0.1));
        g.op("Conv", "conv", &[x, &w, &b], vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])])
    };
    let feat = conv(&mut g, "input", 3, 64);
    let b = conv(&mut g, &feat, 64, 64);
    let e = conv(&mut g, &b, 64, 64);
    let a = conv(&mut g, &b, 64, 64);
    let f = conv(&mut g, &e, 64, 64);
    g.op("Concat", "dead", &[&a, &feat], vec![attr_int("axis", 1)]);
    let k = g.op("Concat", "cat", &[&e, &f], vec![attr_int("axis", 1)]);
    let last = conv(&mut g, &k, 128, 3);
    g.op_into("Identity", &[&last], "output", vec![]);
    let model = g.into_model("dead-write", &[(META_SCALE, "1".to_string())]);
    let p = lower(&model, "input", "output").unwrap();
    let size = Size::new(9, 6);
    let image = test_image(size);
    let path = std::env::temp_dir().join(format!("vfupscale-dead-write-{}.onnx", std::process::id()));
    vfupscale_onnx::onnx::write_model(&path, &model).unwrap();
    let ort = onnx_runtime_cpu(&path, &image, size, 1);
    std::fs::remove_file(&path).unwrap();
    let (_, ours) = run_program(&p, &image, size, 1, |v| v);
    let max = max_difference(&ours, &ort);
    assert!(max < 1e-4, "max difference {max}: {:?}", p.buffers);
}
