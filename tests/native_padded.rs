// SPDX-License-Identifier: MPL-2.0
//! The lowering of padded graphs (waifu2x UpConv7's family: an edge padding, unpadded convolutions, crops, a 4×4
//! stride-2 transposed convolution) into programs whose buffers carry a margin: the shipped UpConv7 models and a
//! synthetic graph with a real crop computed by shape arithmetic, each run by the CPU interpreter against ONNX
//! Runtime's CPU provider (fp32), as lowered and as fitted to the GPU kernels, and the variants the program cannot hold
//! refused with the node named.

#[path = "support/onnx_cpu.rs"]
mod onnx_cpu;
#[path = "support/program_reference.rs"]
mod program_reference;

use onnx_cpu::{installed, onnx_runtime_cpu, random, test_image};
use program_reference::{convs, max_difference, run_program};
use vfupscale::Model;
use vfupscale::frame::Size;
use vfupscale::native::program::{Activation, Program, Step, lower};
use vfupscale::native::{check_program, fit_program};
use vfupscale_onnx::onnx::{
    Dim, GraphBuilder, META_SCALE, ModelProto, NodeProto, attr_float, attr_int, attr_ints, attr_string, i64_tensor,
};

fn lowered(name: &str) -> Result<Program, String> {
    let model = Model::load(&installed(name)).unwrap();
    lower(model.proto(), &model.info().input_name, &model.info().output_name)
}

/// waifu2x UpConv7: its importer's edge padding (7 pixels, from the shape arithmetic), six unpadded convolutions,
/// the 4×4 stride-2 transposed convolution and the final crop become one margin of 7 on every buffer, six padded
/// convolutions, a 3×3 convolution of the four phases and a depth-to-space from 7 pixels in.
#[test]
fn waifu2x_upconv7_lowers_to_a_padded_program_that_computes_what_onnx_runtime_computes() {
    for name in ["waifu2x-upconv7-x2", "waifu2x-upconv7-noise3-x2"] {
        let p = lowered(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.scale, 2, "{name}");
        let kinds: Vec<&str> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::Conv(_) => "conv",
                Step::EdgePad { pad: 7, .. } => "pad7",
                Step::Shuffle { factor: 2, offset: 7, .. } => "shuffle",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["pad7", "conv", "conv", "conv", "conv", "conv", "conv", "conv", "shuffle"], "{name}");
        let outs: Vec<usize> = convs(&p).map(|c| c.output.channels).collect();
        assert_eq!(outs, [16, 32, 64, 128, 128, 256, 12], "{name}: the last one holds the 4 phases of 3 channels");
        assert!(convs(&p).take(6).all(|c| c.activation == Activation::Leaky(0.1)), "{name}");
        // the input as it is, every working buffer 7 pixels larger on each side, the output twice the input
        for (b, spec) in p.buffers.iter().enumerate() {
            let expected = match b {
                Program::INPUT => (1, 0),
                b if b == p.output.buffer => (2, 0),
                _ => (1, 7),
            };
            assert_eq!((spec.scale.num, spec.extra / 2), expected, "{name}: buffer {b}");
        }
        // as the GPU runs it: buffers of whole chunks, the 12 phase outputs as 16, 128 and 256 outputs in launches of 64
        let fitted = fit_program(p.clone());
        check_program(&fitted).unwrap_or_else(|why| panic!("{name}: the kernels refuse it: {why}"));
        let outs: Vec<usize> = convs(&fitted).map(|c| c.output.channels).collect();
        assert_eq!(outs, [16, 32, 64, 64, 64, 64, 64, 64, 64, 64, 64, 16], "{name}");
        let ins: Vec<usize> = convs(&fitted).map(|c| c.input.channels).collect();
        assert_eq!(ins, [32, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256], "{name}: whole chunks read");
        // as lowered, its buffers are narrower than the kernels' copies (the edge padding's 3 channels are copied as 8)
        let why = check_program(&p).unwrap_err();
        assert!(why.contains("edge padding 0 of 3 channels is not 8-channel aligned"), "{name}: {why}");
        // odd sizes and a frame smaller than the padding
        for size in [Size::new(13, 9), Size::new(5, 6)] {
            let image = test_image(size);
            let ort = onnx_runtime_cpu(&installed(name), &image, size, 2);
            for (form, program) in [("lowered", &p), ("fitted", &fitted)] {
                let (_, ours) = run_program(program, &image, size, 1, |v| v);
                let max = max_difference(&ours, &ort);
                eprintln!("{name} {size}: {form} program vs ONNX Runtime CPU (fp32): max difference {max:.2e}");
                assert!(max < 1e-4, "{name} {size} {form}: max difference {max}");
            }
        }
    }
}

/// How the synthetic padded graph is varied.
#[derive(Clone, Copy)]
struct Padded {
    pad: i64,
    mode: &'static str,
    /// Padding of the second convolution (0: unpadded).
    second_padding: i64,
    /// The crop's start and how far before the end it stops, on both axes.
    crop: (i64, i64),
    transpose_stride: i64,
    /// The crop's ends from the height and width before it and `crop.1`: [`hw_less`] unless the shape arithmetic
    /// itself is tested.
    ends: fn(&mut GraphBuilder, &str, i64) -> String,
}

const PADDED: Padded =
    Padded { pad: 4, mode: "edge", second_padding: 0, crop: (1, 1), transpose_stride: 2, ends: hw_less };

/// `hw - [short, short]`.
fn hw_less(g: &mut GraphBuilder, hw: &str, short: i64) -> String {
    let short = g.i64_init("short", &[2], &[short, short]);
    g.op("Sub", "ends", &[hw, &short], vec![])
}

/// Edge padding, two unpadded convolutions (LeakyRelu, Relu), a crop whose end is computed from the shape
/// (`Shape → Slice → Sub`), a 4×4 stride-2 transposed convolution: twice the input's size when `pad` is 4.
fn padded_graph(v: Padded) -> ModelProto {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let pads = g.i64_init("pads", &[8], &[0, 0, v.pad, v.pad, 0, 0, v.pad, v.pad]);
    let x = g.op("Pad", "pad", &["input", &pads], vec![attr_string("mode", v.mode)]);
    let conv = |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, pad: i64, seed: u32| {
        let w = g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, seed, 1.0 / (9 * cin) as f32));
        let b = g.f32_init("b", &[cout], &random(cout as usize, seed + 1, 0.1));
        let attrs = vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[pad; 4])];
        g.op("Conv", "conv", &[x, &w, &b], attrs)
    };
    let x = conv(&mut g, &x, 3, 8, 0, 1);
    let x = g.op("LeakyRelu", "lrelu", &[&x], vec![attr_float("alpha", 0.1)]);
    let x = conv(&mut g, &x, 8, 8, v.second_padding, 3);
    let x = g.op("Relu", "relu", &[&x], vec![]);
    let shape = g.op("Shape", "shape", &[&x], vec![]);
    let (two, four) = (g.i64_init("two", &[1], &[2]), g.i64_init("four", &[1], &[4]));
    let hw = g.op("Slice", "hw", &[&shape, &two, &four], vec![]);
    let ends = (v.ends)(&mut g, &hw, v.crop.1);
    let starts = g.i64_init("starts", &[2], &[v.crop.0, v.crop.0]);
    let axes = g.i64_init("axes", &[2], &[2, 3]);
    let x = g.op("Slice", "crop", &[&x, &starts, &ends, &axes], vec![]);
    let w = g.f32_init("wt", &[8, 3, 4, 4], &random(8 * 3 * 16, 5, 0.1));
    let b = g.f32_init("bt", &[3], &random(3, 6, 0.1));
    let s = v.transpose_stride;
    let attrs = vec![attr_ints("kernel_shape", &[4, 4]), attr_ints("strides", &[s, s]), attr_ints("pads", &[3; 4])];
    g.op_into("ConvTranspose", &[&x, &w, &b], "output", attrs);
    g.into_model("synthetic-padded", &[(META_SCALE, "2".to_string())])
}

#[test]
fn a_synthetic_padded_graph_with_a_real_crop_computes_what_onnx_runtime_computes() {
    let p = lower(&padded_graph(PADDED), "input", "output").unwrap();
    let kinds: Vec<&str> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::EdgePad { pad: 4, .. } => "pad4",
            Step::Conv(_) => "conv",
            // two unpadded convolutions and a crop of 1: the phases are centred 4 pixels in
            Step::Shuffle { factor: 2, offset: 4, .. } => "shuffle",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["pad4", "conv", "conv", "conv", "shuffle"]);
    let path = std::env::temp_dir().join(format!("vfupscale-synthetic-padded-{}.onnx", std::process::id()));
    vfupscale_onnx::onnx::write_model(&path, &padded_graph(PADDED)).unwrap();
    for size in [Size::new(11, 7), Size::new(3, 4)] {
        let image = test_image(size);
        let ort = onnx_runtime_cpu(&path, &image, size, 2);
        let (_, ours) = run_program(&p, &image, size, 1, |v| v);
        let max = max_difference(&ours, &ort);
        eprintln!("synthetic padded graph {size}: max difference {max:.2e}");
        assert!(max < 1e-5, "{size}: max difference {max}");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn padded_graphs_a_program_cannot_hold_are_refused_naming_the_node() {
    for (v, expected) in [
        (Padded { mode: "reflect", ..PADDED }, "is not an edge padding"),
        (Padded { crop: (1, 2), ..PADDED }, "is not a crop of the image by the same amount"),
        (Padded { second_padding: 1, ..PADDED }, "pads an image smaller than its buffer"),
        (Padded { pad: 1, ..PADDED }, "shrinks the image past the padding"),
        (Padded { pad: 3, ..PADDED }, "ConvTranspose"),
        (Padded { transpose_stride: 3, ..PADDED }, "is not a 3x3 convolution of its phases"),
    ] {
        let e = lower(&padded_graph(v), "input", "output").expect_err(expected);
        eprintln!("{expected}: {e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}

/// The `n`th node (from 0) of type `op` in `m`.
fn node<'m>(m: &'m mut ModelProto, op: &str, n: usize) -> &'m mut NodeProto {
    m.graph.as_mut().unwrap().node.iter_mut().filter(|x| x.op_type == op).nth(n).unwrap()
}

/// Adds an int64 constant `name` to `m`; returns its name.
fn constant(m: &mut ModelProto, name: &str, values: &[i64]) -> String {
    m.graph.as_mut().unwrap().initializer.push(i64_tensor(name, &[values.len() as i64], values));
    name.to_string()
}

/// [`PADDED`] changed by `edit`.
fn edited(edit: impl FnOnce(&mut ModelProto)) -> ModelProto {
    let mut m = padded_graph(PADDED);
    edit(&mut m);
    m
}

/// Why `m` does not lower.
fn refusal(m: &ModelProto) -> String {
    lower(m, "input", "output").expect_err("a refusal")
}

/// `[x, x]` as a shape value (the lowering evaluates shape arithmetic only over values computed from a `Shape`).
fn known(g: &mut GraphBuilder, hw: &str, x: i64) -> String {
    let zero = g.op("Sub", "zero", &[hw, hw], vec![]);
    let x = g.i64_init("x", &[2], &[x, x]);
    g.op("Add", "known", &[&zero, &x], vec![])
}

/// `hw + (x mod k)`, `fmod` unless it is `None`.
fn plus_mod(g: &mut GraphBuilder, hw: &str, x: i64, k: i64, fmod: Option<i64>) -> String {
    let x = known(g, hw, x);
    let k = g.i64_init("k", &[2], &[k, k]);
    let r = g.op("Mod", "r", &[&x, &k], fmod.map(|f| vec![attr_int("fmod", f)]).unwrap_or_default());
    g.op("Add", "ends", &[hw, &r], vec![])
}

// the crop's ends computed with Mod: each is hw - 1, as the crop (1, 1) needs, only as ONNX defines Mod
fn plus_3_mod_minus_2(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    plus_mod(g, hw, 3, -2, None) // -1: the divisor's sign, like Python's %
}
fn plus_minus_3_mod_minus_2(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    plus_mod(g, hw, -3, -2, None) // -1
}
fn plus_minus_3_fmod_2(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    plus_mod(g, hw, -3, 2, Some(1)) // -1: the dividend's sign, like C's fmod
}
fn min_mod_minus_1_less_1(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    let r = plus_mod(g, hw, i64::MIN, -1, None); // hw + 0, where i64::MIN % -1 overflows
    hw_less(g, &r, 1)
}
fn min_fmod_minus_1_less_1(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    let r = plus_mod(g, hw, i64::MIN, -1, Some(1));
    hw_less(g, &r, 1)
}
fn plus_3_mod_0(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    plus_mod(g, hw, 3, 0, None)
}
fn plus_3_fmod_2_as_2(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    plus_mod(g, hw, 3, 2, Some(2))
}
/// `hw + [i64::MIN, i64::MIN]`: computable, but how far before the extent it ends is not an i64.
fn hw_plus_min(g: &mut GraphBuilder, hw: &str, _: i64) -> String {
    let min = g.i64_init("min", &[2], &[i64::MIN, i64::MIN]);
    g.op("Add", "ends", &[hw, &min], vec![])
}

#[test]
fn mod_in_shape_arithmetic_takes_the_sign_onnx_runtime_takes() {
    let expected = lower(&padded_graph(PADDED), "input", "output").unwrap();
    let checked_by_ort = [plus_3_mod_minus_2, plus_minus_3_mod_minus_2, plus_minus_3_fmod_2];
    for (k, ends) in checked_by_ort.into_iter().chain([min_mod_minus_1_less_1, min_fmod_minus_1_less_1]).enumerate() {
        let model = padded_graph(Padded { ends, ..PADDED });
        let p = lower(&model, "input", "output").unwrap_or_else(|e| panic!("variant {k}: {e}"));
        assert_eq!(p, expected, "variant {k}");
        if k >= checked_by_ort.len() {
            continue; // i64::MIN % -1 overflows a plain remainder: ONNX Runtime is not asked
        }
        let path = std::env::temp_dir().join(format!("vfupscale-padded-mod-{k}-{}.onnx", std::process::id()));
        vfupscale_onnx::onnx::write_model(&path, &model).unwrap();
        let size = Size::new(6, 5);
        let image = test_image(size);
        let ort = onnx_runtime_cpu(&path, &image, size, 2);
        let (_, ours) = run_program(&p, &image, size, 1, |v| v);
        std::fs::remove_file(&path).unwrap();
        assert!(max_difference(&ours, &ort) < 1e-5, "variant {k}");
    }
}

#[test]
fn optional_inputs_and_attributes_the_lowering_would_misread_are_refused_naming_the_node() {
    let hw = |m: &mut ModelProto| node(m, "Slice", 0).output[0].clone();
    let cases: Vec<(ModelProto, &str)> = vec![
        // Mod
        (padded_graph(Padded { ends: plus_3_mod_0, ..PADDED }), "Mod node Mod_9: division by zero"),
        (padded_graph(Padded { ends: plus_3_fmod_2_as_2, ..PADDED }), "Mod node Mod_9: fmod 2"),
        // arithmetic past i64
        (padded_graph(Padded { crop: (1, i64::MIN), ..PADDED }), "Sub node Sub_7: it overflows"),
        (padded_graph(Padded { ends: hw_plus_min, ..PADDED }), "Slice Slice_8: its end overflows"),
        // a shape Slice with its axes left out and steps of -1 (not axes of -1)
        (
            edited(|m| {
                let steps = constant(m, "minus_one", &[-1]);
                node(m, "Slice", 0).input.extend(["".to_string(), steps]);
            }),
            "Slice node Slice_6: shape arithmetic the lowering does not follow",
        ),
        // the crop's steps: not constant
        (
            edited(|m| {
                let steps = hw(m);
                node(m, "Slice", 1).input.push(steps);
            }),
            "Slice Slice_8: its steps are not constant 1s",
        ),
        // Pad's axes (opset 18): the pads on the batch and channels
        (
            edited(|m| {
                let axes = constant(m, "pad_axes", &[2, 3, 0, 1]);
                node(m, "Pad", 0).input.extend(["".to_string(), axes]);
            }),
            "Pad Pad_0 pads axes [2, 3, 0, 1]",
        ),
        // ConvTranspose's attributes
        (
            edited(|m| node(m, "ConvTranspose", 0).attribute.push(attr_string("auto_pad", "SAME_UPPER"))),
            "ConvTranspose ConvTranspose_9 has auto_pad SAME_UPPER",
        ),
        (
            edited(|m| node(m, "ConvTranspose", 0).attribute[0] = attr_ints("kernel_shape", &[3, 3])),
            "ConvTranspose ConvTranspose_9 has kernel_shape [3, 3], its weights are 4x4",
        ),
        (
            edited(|m| {
                let g = m.graph.as_mut().unwrap();
                g.initializer.iter_mut().find(|t| t.name == "wt").unwrap().dims = vec![8, 2000, 4, 4];
            }),
            "1 to 4096 input channels and 1 to 1024 output channels",
        ),
    ];
    // every case checked, then all that failed named
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(model, expected)| match lower(&model, "input", "output") {
            Err(e) if e.contains(expected) => None,
            Err(e) => Some(format!("expected {expected:?} in {e:?}")),
            Ok(_) => Some(format!("expected {expected:?}, but the graph lowered")),
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn optional_inputs_and_attributes_given_their_defaults_lower_as_when_left_out() {
    let expected = lower(&padded_graph(PADDED), "input", "output").unwrap();
    let one = |m: &mut ModelProto| constant(m, "one", &[1]);
    let variants: Vec<(&str, ModelProto)> = vec![
        (
            "a shape Slice with its axes left out and steps 1",
            edited(|m| {
                let steps = one(m);
                node(m, "Slice", 0).input.extend(["".to_string(), steps]);
            }),
        ),
        (
            "a crop's steps of 1s",
            edited(|m| {
                let steps = constant(m, "ones", &[1, 1]);
                node(m, "Slice", 1).input.push(steps);
            }),
        ),
        ("a crop's steps left out", edited(|m| node(m, "Slice", 1).input.push(String::new()))),
        (
            "Pad's axes all four",
            edited(|m| {
                let axes = constant(m, "pad_axes", &[0, 1, 2, 3]);
                node(m, "Pad", 0).input.extend(["".to_string(), axes]);
            }),
        ),
        (
            "Pad's axes all four, from the end",
            edited(|m| {
                let axes = constant(m, "pad_axes", &[-4, -3, -2, -1]);
                node(m, "Pad", 0).input.extend(["".to_string(), axes]);
            }),
        ),
        ("Pad's axes left out", edited(|m| node(m, "Pad", 0).input.extend(["".to_string(), "".to_string()]))),
        (
            "ConvTranspose auto_pad NOTSET",
            edited(|m| node(m, "ConvTranspose", 0).attribute.push(attr_string("auto_pad", "NOTSET"))),
        ),
        // ONNX's default pads are 0: the unpadded convolutions need not say so
        (
            "Conv without pads",
            edited(|m| {
                for k in 0..2 {
                    node(m, "Conv", k).attribute.retain(|a| a.name != "pads");
                }
            }),
        ),
    ];
    let failed: Vec<String> = variants
        .into_iter()
        .filter_map(|(what, model)| match lower(&model, "input", "output") {
            Ok(p) if p == expected => None,
            Ok(_) => Some(format!("{what}: another program")),
            Err(e) => Some(format!("{what}: {e}")),
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn messages_say_what_is_wrong() {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let conv = |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, pad: i64| {
        let w = g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, 1, 0.1));
        let b = g.f32_init("b", &[cout], &random(cout as usize, 2, 0.1));
        g.op("Conv", "conv", &[x, &w, &b], vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[pad; 4])])
    };
    // an unpadded convolution of the input itself: there is no padding before it
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let x = conv(&mut g, "input", 3, 3, 0);
    g.op_into("Identity", &[&x], "output", vec![]);
    let e = refusal(&g.into_model("unpadded", &[]));
    assert!(e.contains("Conv Conv_0 is unpadded with no edge Pad before it"), "{e}");
    // nor before a transposed convolution of the input
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let w = g.f32_init("wt", &[3, 3, 4, 4], &random(3 * 3 * 16, 5, 0.1));
    let b = g.f32_init("bt", &[3], &random(3, 6, 0.1));
    let attrs = vec![attr_ints("kernel_shape", &[4, 4]), attr_ints("strides", &[2, 2]), attr_ints("pads", &[3; 4])];
    g.op_into("ConvTranspose", &["input", &w, &b], "output", attrs);
    let e = refusal(&g.into_model("unpadded-transpose", &[]));
    assert!(e.contains("ConvTranspose ConvTranspose_0 has no edge Pad before it"), "{e}");
    // the input next to the same size read from a padded buffer two pixels in
    let mut g = GraphBuilder::with_io(vfupscale_onnx::onnx::data_type::FLOAT, &dynamic, &dynamic);
    let pads = g.i64_init("pads", &[8], &[0, 0, 2, 2, 0, 0, 2, 2]);
    let x = g.op("Pad", "pad", &["input", &pads], vec![attr_string("mode", "edge")]);
    let x = conv(&mut g, &x, 3, 3, 0);
    let x = conv(&mut g, &x, 3, 3, 0);
    let x = g.op("Concat", "cat", &["input", &x], vec![attr_int("axis", 1)]);
    let x = conv(&mut g, &x, 6, 3, 1);
    g.op_into("Identity", &[&x], "output", vec![]);
    let e = refusal(&g.into_model("layouts", &[]));
    assert!(e.contains("Concat Concat_3 joins images of the same size in different layouts"), "{e}");
}
