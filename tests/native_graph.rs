// SPDX-License-Identifier: MPL-2.0
//! The SRVGGNetCompact matcher behind the native kernels: which graphs it takes, what it refuses and why, and that
//! the network it extracts computes what ONNX Runtime computes on the model (a float64 reference forward pass here
//! against ONNX Runtime's CPU provider), so that the GPU kernels only have to match this extraction.

#[path = "support/onnx_cpu.rs"]
mod onnx_cpu;

use onnx_cpu::{installed, onnx_runtime_cpu, random, test_image};
use vfupscale::Model;
use vfupscale::frame::Size;
use vfupscale::native::graph::{Conv3x3, SrvggGraph};
use vfupscale::native::match_srvgg;
use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, attr_float, attr_int, attr_ints, attr_string, data_type};

fn matched(name: &str) -> Result<SrvggGraph, String> {
    let model = Model::load(&installed(name)).unwrap();
    match_srvgg(model.proto(), &model.info().input_name, &model.info().output_name)
}

#[test]
fn the_shipped_srvgg_models_match() {
    for (name, hidden, factor, scale) in [
        ("realesr-animevideov3-x2", 16, Some(0.5), 2.0),
        ("realesr-animevideov3-x3", 16, Some(0.75), 3.0),
        ("realesr-animevideov3-x4", 16, None, 4.0),
        ("realesr-general-x4v3", 32, None, 4.0),
    ] {
        let g = matched(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(g.hidden.len(), hidden, "{name}");
        assert_eq!(g.shuffle, 4, "{name}");
        assert_eq!(g.resize.map(|r| r.factor), factor, "{name}");
        assert_eq!(g.scale(), scale, "{name}");
        assert_eq!((g.first.in_channels, g.first.out_channels, g.last.out_channels), (3, 64, 48), "{name}");
    }
}

#[test]
fn other_architectures_are_refused_with_a_reason() {
    for name in ["realesrgan-x4plus", "realcugan-up2x", "waifu2x-cunet-x2", "waifu2x-upconv7-x2"] {
        let e = matched(name).expect_err(name);
        assert!(!e.is_empty(), "{name}");
        eprintln!("{name}: {e}");
    }
}

/// A small SRVGG-like graph (64 features, `hidden` layers, random weights) with the variations the matcher takes.
struct Synthetic {
    r: i64,
    hidden: usize,
    dcr: bool,
    activation: &'static str,
    extra_node: bool,
    stride: i64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self { r: 2, hidden: 2, dcr: false, activation: "PRelu", extra_node: false, stride: 1 }
    }
}

fn synthetic(spec: &Synthetic) -> vfupscale_onnx::onnx::ModelProto {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &dynamic, &dynamic);
    let mut seed = 1;
    let mut conv = |g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, stride: i64| {
        seed += 1;
        let w = g.f32_init("w", &[cout, cin, 3, 3], &random((cout * cin * 9) as usize, seed, 0.12));
        let b = g.f32_init("b", &[cout], &random(cout as usize, seed + 100, 0.1));
        g.op(
            "Conv",
            "conv",
            &[x, &w, &b],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_ints("strides", &[stride, stride]),
            ],
        )
    };
    let activate = |g: &mut GraphBuilder, x: &str, seed: u32| match spec.activation {
        "PRelu" => {
            let slope = g.f32_init("slope", &[64, 1, 1], &random(64, seed, 0.5));
            g.op("PRelu", "act", &[x, &slope], vec![])
        }
        "LeakyRelu" => g.op("LeakyRelu", "act", &[x], vec![attr_float("alpha", 0.1)]),
        _ => g.op("Relu", "act", &[x], vec![]),
    };
    let mut x = conv(&mut g, "input", 3, 64, 1);
    x = activate(&mut g, &x, 500);
    for i in 0..spec.hidden {
        x = conv(&mut g, &x, 64, 64, if i == 0 { spec.stride } else { 1 });
        x = activate(&mut g, &x, 600 + i as u32);
    }
    let r = spec.r;
    x = conv(&mut g, &x, 64, 3 * r * r, 1);
    let mode = if spec.dcr { "DCR" } else { "CRD" };
    let shuffled = g.op("DepthToSpace", "shuffle", &[&x], vec![attr_int("blocksize", r), attr_string("mode", mode)]);
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, r as f32, r as f32]);
    let up = g.op(
        "Resize",
        "up",
        &["input", "", &scales],
        vec![
            attr_string("mode", "nearest"),
            attr_string("coordinate_transformation_mode", "asymmetric"),
            attr_string("nearest_mode", "floor"),
        ],
    );
    if spec.extra_node {
        let sum = g.op("Add", "sum", &[&shuffled, &up], vec![]);
        let half = g.f32_init("half", &[1], &[0.5]);
        g.op_into("Mul", &[&sum, &half], "output", vec![]);
    } else {
        g.op_into("Add", &[&shuffled, &up], "output", vec![]);
    }
    g.into_model("synthetic-srvgg", &[(META_SCALE, r.to_string())])
}

fn match_synthetic(spec: &Synthetic) -> Result<SrvggGraph, String> {
    match_srvgg(&synthetic(spec), "input", "output")
}

#[test]
fn synthetic_variants_match_and_their_limits_are_refused() {
    for (r, dcr, activation) in [(2, false, "PRelu"), (3, true, "LeakyRelu"), (4, true, "Relu")] {
        let g = match_synthetic(&Synthetic { r, dcr, activation, ..Default::default() })
            .unwrap_or_else(|e| panic!("r {r} dcr {dcr} {activation}: {e}"));
        assert_eq!((g.shuffle, g.hidden.len(), g.last.out_channels), (r as u32, 2, (3 * r * r) as usize));
        let expected_slope = match activation {
            "LeakyRelu" => 0.1,
            "Relu" => 0.0,
            _ => g.first.slope[0],
        };
        assert_eq!(g.first.slope[0], expected_slope);
    }
    let e = match_synthetic(&Synthetic { extra_node: true, ..Default::default() }).unwrap_err();
    assert!(e.contains("Mul"), "{e}");
    let e = match_synthetic(&Synthetic { stride: 2, ..Default::default() }).unwrap_err();
    assert!(e.contains("stride 1"), "{e}");
}

#[test]
fn dcr_order_is_rewritten_to_crd() {
    let crd = match_synthetic(&Synthetic { r: 3, dcr: false, ..Default::default() }).unwrap();
    let dcr = match_synthetic(&Synthetic { r: 3, dcr: true, ..Default::default() }).unwrap();
    // same weights in the file; the matcher reorders DCR's (k, c) channels to CRD's (c, k)
    let row = |conv: &Conv3x3, i: usize| conv.weights[i * 64 * 9..(i + 1) * 64 * 9].to_vec();
    for c in 0..3 {
        for k in 0..9 {
            assert_eq!(row(&dcr.last, c * 9 + k), row(&crd.last, k * 3 + c), "c {c} k {k}");
            assert_eq!(dcr.last.bias[c * 9 + k], crd.last.bias[k * 3 + c]);
        }
    }
}

/// The extracted network evaluated directly in float64: planar `[3, h, w]` in, planar `[3, s·h, s·w]` out.
fn reference_forward(g: &SrvggGraph, image: &[f64], size: Size) -> (Vec<f64>, Size) {
    let (h, w) = (size.height as usize, size.width as usize);
    let conv = |x: &[f64], c: &Conv3x3| -> Vec<f64> {
        let mut out = vec![0.0; c.out_channels * h * w];
        for co in 0..c.out_channels {
            for y in 0..h {
                for xx in 0..w {
                    let mut a = c.bias[co] as f64;
                    for ci in 0..c.in_channels {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (sy, sx) = (y as i64 + ky as i64 - 1, xx as i64 + kx as i64 - 1);
                                if sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                                    continue;
                                }
                                let wv = c.weights[((co * c.in_channels + ci) * 3 + ky) * 3 + kx] as f64;
                                a += wv * x[(ci * h + sy as usize) * w + sx as usize];
                            }
                        }
                    }
                    out[(co * h + y) * w + xx] = if a >= 0.0 { a } else { a * c.slope[co] as f64 };
                }
            }
        }
        out
    };
    let mut x = conv(image, &g.first);
    for layer in &g.hidden {
        x = conv(&x, layer);
    }
    let last = conv(&x, &g.last);
    let r = g.shuffle as usize;
    let (rh, rw) = (h * r, w * r);
    let mut shuffled = vec![0.0; 3 * rh * rw];
    for c in 0..3 {
        for y in 0..rh {
            for xx in 0..rw {
                let (sy, sx, k) = (y / r, xx / r, (y % r) * r + xx % r);
                shuffled[(c * rh + y) * rw + xx] =
                    last[((c * r * r + k) * h + sy) * w + sx] + image[(c * h + sy) * w + sx];
            }
        }
    }
    let Some(resize) = g.resize else { return (shuffled, Size::new(rw as u32, rh as u32)) };
    // ONNX Resize, cubic, half_pixel, exclude_outside 0
    let a = resize.a as f64;
    let coeffs = |t: f64| {
        let (t1, u, u1) = (t + 1.0, 1.0 - t, 2.0 - t);
        [
            ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a,
            ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
            ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0,
            ((a * u1 - 5.0 * a) * u1 + 8.0 * a) * u1 - 4.0 * a,
        ]
    };
    let f = resize.factor as f64;
    let (dh, dw) = ((rh as f64 * f).floor() as usize, (rw as f64 * f).floor() as usize);
    let mut out = vec![0.0; 3 * dh * dw];
    for c in 0..3 {
        for y in 0..dh {
            let fy = (y as f64 + 0.5) / f - 0.5;
            let (by, cy) = (fy.floor(), coeffs(fy - fy.floor()));
            for xx in 0..dw {
                let fx = (xx as f64 + 0.5) / f - 0.5;
                let (bx, cx) = (fx.floor(), coeffs(fx - fx.floor()));
                let mut sum = 0.0;
                for (i, wy) in cy.iter().enumerate() {
                    let sy = (by as i64 - 1 + i as i64).clamp(0, rh as i64 - 1) as usize;
                    for (j, wx) in cx.iter().enumerate() {
                        let sx = (bx as i64 - 1 + j as i64).clamp(0, rw as i64 - 1) as usize;
                        sum += wy * wx * shuffled[(c * rh + sy) * rw + sx];
                    }
                }
                out[(c * dh + y) * dw + xx] = sum;
            }
        }
    }
    (out, Size::new(dw as u32, dh as u32))
}

#[test]
fn the_extracted_network_computes_what_onnx_runtime_computes() {
    let size = Size::new(11, 7);
    let image = test_image(size);
    let image64: Vec<f64> = image.iter().map(|&v| v as f64).collect();
    for (name, scale) in
        [("realesr-animevideov3-x2", 2), ("realesr-animevideov3-x3", 3), ("realesr-animevideov3-x4", 4)]
    {
        let graph = matched(name).unwrap();
        let (reference, out_size) = reference_forward(&graph, &image64, size);
        assert_eq!(out_size, size.scaled(scale), "{name}");
        let ort = onnx_runtime_cpu(&installed(name), &image, size, scale);
        let max = reference.iter().zip(&ort).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        eprintln!("{name}: reference forward pass vs ONNX Runtime CPU: max difference {max:.2e}");
        assert!(max < 1e-4, "{name}: max difference {max}");
    }
    // a synthetic DCR graph with r = 3 and LeakyRelu, written to a file for ONNX Runtime
    let spec = Synthetic { r: 3, dcr: true, activation: "LeakyRelu", ..Default::default() };
    let path = std::env::temp_dir().join(format!("vfupscale-synthetic-srvgg-{}.onnx", std::process::id()));
    vfupscale_onnx::onnx::write_model(&path, &synthetic(&spec)).unwrap();
    let (reference, _) = reference_forward(&match_synthetic(&spec).unwrap(), &image64, size);
    let ort = onnx_runtime_cpu(&path, &image, size, 3);
    let max = reference.iter().zip(&ort).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
    assert!(max < 1e-4, "synthetic DCR graph: max difference {max}");
    std::fs::remove_file(&path).unwrap();
}
