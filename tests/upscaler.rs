// SPDX-License-Identifier: MPL-2.0
//! The upscaler on the CPU backend: settings refused when it is made, models named by path or installed name, a
//! model whose declared scale is wrong refused at start, and the host path on the real model.

use vfupscale::frame::{Image, PixelFormat, Size};
use vfupscale::{BackendChoice, ErrorKind, MIN_TILE, TensorLocation, Tiling, Upscaler, UpscalerConfig};
use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, attr_string, data_type, write_model};

#[path = "support/images.rs"]
mod images;
use images::{BT709, psnr, test_image};

fn cpu(model: Option<std::path::PathBuf>, tiling: Tiling) -> vfupscale::Result<Upscaler> {
    Upscaler::new(UpscalerConfig { model, backend: BackendChoice::Cpu, tiling, ..Default::default() })
}

/// A nearest-neighbour x2 model whose metadata says `declared`.
fn nearest_x2(dir: &std::path::Path, declared: u32) -> std::path::PathBuf {
    let dynamic = [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown];
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &dynamic, &dynamic);
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    g.op_into("Resize", &["input", "", &scales], "output", vec![attr_string("mode", "nearest")]);
    let path = dir.join(format!("nearest-x2-declares-x{declared}.onnx"));
    write_model(&path, &g.into_model("nearest", &[(META_SCALE, declared.to_string())])).unwrap();
    path
}

#[test]
fn a_model_that_computes_another_scale_than_it_declares_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let up = cpu(Some(nearest_x2(dir.path(), 2)), Tiling::default()).unwrap();
    assert_eq!(up.scale(), 2);
    let e = cpu(Some(nearest_x2(dir.path(), 4)), Tiling::default()).err().expect("a lying model is refused");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Model, "{msg}");
    assert!(msg.contains("declares scale 4") && msg.contains("computes x2"), "{msg}");
    assert!(msg.contains("nearest-x2-declares-x4.onnx"), "names the model: {msg}");
}

#[test]
fn tiles_below_the_floor_and_overlaps_above_half_a_tile_are_refused_at_start() {
    for (tiling, expected) in [
        (Tiling { tile_size: 1, ..Tiling::default() }, "tile-size 1 is below the smallest tile of 64"),
        (Tiling { tile_size: MIN_TILE, overlap: 40, ..Tiling::default() }, "tile-overlap 40 is more than half"),
    ] {
        let e = cpu(None, tiling).err().expect("refused");
        assert!(e.is_settings() && e.to_string().contains(expected), "{e}");
    }
}

#[test]
fn models_are_found_by_installed_name_and_missing_ones_are_named() {
    let up = cpu(Some(vfupscale::models::DEFAULT_MODEL.into()), Tiling::default()).unwrap();
    assert_eq!(up.model().path, vfupscale::models::default_model_path());
    let e = cpu(Some("no-such-model".into()), Tiling::default()).err().expect("refused");
    assert!(e.is_missing_resource() && e.to_string().starts_with("model no-such-model: no such file"), "{e}");
}

#[test]
fn the_host_path_upscales_whole_frames_and_tiles_alike() {
    let size = Size::new(192, 128);
    let img = test_image("astronaut-192x128.ppm", size);
    let run = |tiling: Tiling| {
        let mut up = cpu(None, tiling).unwrap();
        up.prepare(size, TensorLocation::Host).unwrap();
        let mut out = Image::new(PixelFormat::Nv12, size.scaled(up.scale()));
        up.upscale_host(&img.view(), BT709, &mut out.view_mut(), BT709).unwrap();
        assert_eq!(up.stats().frames, 1);
        // device frames are refused on the CPU backend, as a negotiation problem
        let e = up.prepare(size, TensorLocation::Device).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Negotiation, "{e}");
        (out, up.stats().tiles_per_frame)
    };
    let (whole, n) = run(Tiling::default());
    assert_eq!(n, 1);
    let (tiled, n) = run(Tiling { tile_size: 64, ..Tiling::default() });
    assert!(n > 1);
    let (l, c) = (psnr(&tiled.planes[0], &whole.planes[0]), psnr(&tiled.planes[1], &whole.planes[1]));
    assert!(l >= 50.0 && c >= 50.0, "tiled vs whole on the CPU: luma {l:.1} dB, chroma {c:.1} dB");
}

#[test]
fn the_host_path_upscales_p010_and_rgba_whole_and_tiled_alike() {
    use vfupscale::color::{Colorimetry, Matrix, Range};
    let size = Size::new(192, 128);
    let cases = [
        (PixelFormat::P010, Colorimetry::new(Matrix::Bt2020, Range::Limited)),
        (PixelFormat::Rgba, Colorimetry::new(Matrix::Rgb, Range::Full)),
    ];
    for (format, colour) in cases {
        let mut img = images::test_image_as("astronaut-192x128.ppm", size, format, colour);
        if format.has_alpha() {
            img.planes[0].chunks_mut(4).enumerate().for_each(|(i, p)| p[3] = (i % 256) as u8);
        }
        let run = |tiling: Tiling| {
            let mut up = cpu(None, tiling).unwrap();
            up.prepare(size, TensorLocation::Host).unwrap();
            let mut out = Image::new(format, size.scaled(up.scale()));
            up.upscale_host(&img.view(), colour, &mut out.view_mut(), colour).unwrap();
            (out, up.stats().tiles_per_frame)
        };
        let (whole, _) = run(Tiling::default());
        let (tiled, n) = run(Tiling { tile_size: 64, ..Tiling::default() });
        assert!(n > 1);
        let p = match format {
            PixelFormat::P010 => images::psnr16(&tiled.planes[0], &whole.planes[0], 10),
            _ => psnr(&tiled.planes[0], &whole.planes[0]),
        };
        assert!(p >= 50.0, "{format}: tiled vs whole {p:.1} dB");
        if format.has_alpha() {
            let alpha = |i: &Image| i.planes[0].chunks(4).map(|p| p[3]).collect::<Vec<u8>>();
            assert_eq!(alpha(&tiled), alpha(&whole), "alpha does not depend on the tiles");
            assert!(alpha(&whole).iter().any(|&a| a != 255), "alpha is the input's, not opaque");
        }
        // P010 goes into NV12 (one family); RGBA does not
        let mut other = Image::new(PixelFormat::Nv12, size.scaled(2));
        let mut up = cpu(None, Tiling::default()).unwrap();
        up.prepare(size, TensorLocation::Host).unwrap();
        let nv12 = Colorimetry::new(Matrix::Bt709, Range::Limited);
        let mixed = up.upscale_host(&img.view(), colour, &mut other.view_mut(), nv12);
        match format {
            PixelFormat::Rgba => {
                let e = mixed.unwrap_err();
                assert!(e.to_string().contains("RGBA frames cannot be upscaled into NV12 frames"), "{e}");
            }
            _ => mixed.unwrap(),
        }
    }
}
