// SPDX-License-Identifier: MPL-2.0
//! The lowering of padded graphs (waifu2x UpConv7's family: an edge padding, unpadded convolutions, crops, a 4×4
//! stride-2 transposed convolution) into programs whose buffers carry a margin: the shipped UpConv7 models and a
//! synthetic graph with a real crop computed by shape arithmetic, each run by the CPU interpreter against ONNX
//! Runtime's CPU provider (fp32), and the variants the program cannot hold refused with the node named.

#[path = "support/onnx_cpu.rs"]
mod onnx_cpu;
#[path = "support/program_reference.rs"]
mod program_reference;

use onnx_cpu::{installed, onnx_runtime_cpu, random, test_image};
use program_reference::{convs, max_difference, run_program};
use vfupscale::Model;
use vfupscale::frame::Size;
use vfupscale::native::check_program;
use vfupscale::native::program::{Activation, Program, Step, lower};
use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, ModelProto, attr_float, attr_ints, attr_string};

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
            assert_eq!((spec.scale, spec.margin), expected, "{name}: buffer {b}");
        }
        // odd sizes and a frame smaller than the padding
        for size in [Size::new(13, 9), Size::new(5, 6)] {
            let image = test_image(size);
            let (_, ours) = run_program(&p, &image, size, 1, |v| v);
            let ort = onnx_runtime_cpu(&installed(name), &image, size, 2);
            let max = max_difference(&ours, &ort);
            eprintln!("{name} {size}: lowered program vs ONNX Runtime CPU (fp32): max difference {max:.2e}");
            assert!(max < 1e-4, "{name} {size}: max difference {max}");
        }
        // until the GPU has kernels for these steps, the selection keeps the model on ONNX Runtime
        let why = check_program(&p).unwrap_err();
        assert!(why.contains("no GPU kernel"), "{why}");
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
}

const PADDED: Padded = Padded { pad: 4, mode: "edge", second_padding: 0, crop: (1, 1), transpose_stride: 2 };

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
    let short = g.i64_init("short", &[2], &[v.crop.1, v.crop.1]);
    let ends = g.op("Sub", "ends", &[&hw, &short], vec![]);
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
        (Padded { transpose_stride: 3, ..PADDED }, "is not kernel 4, stride 2, padding 3"),
    ] {
        let e = lower(&padded_graph(v), "input", "output").expect_err(expected);
        eprintln!("{expected}: {e}");
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}
