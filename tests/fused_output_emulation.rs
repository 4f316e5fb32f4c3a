// SPDX-License-Identifier: MPL-2.0
//! The output conversion fused into the Hopper last layer (`src/native/kernels/frame_out.cuh`) checked byte for byte
//! against the two-step path on a machine without a GPU: the header is compiled as C++ with the CUDA built-ins it uses
//! written out (`support/fused_output_emulation.cpp`) and run pixel by pixel on random last-layer channels and
//! residual images; the expected frame is what the planar path gives: the pixel shuffle plus residual rounded to fp16
//! (as `ShuffleEpilogue` stores it), converted by `cpu::planar_to_frame` (which `planar_to_frame.cu` equals bit for
//! bit). The GPU suite runs the kernel itself (`tests/gpu/fused_output.rs`). Needs a C++ compiler (`c++`, or `$CXX`)
//! for x86-64 with F16C.

use std::path::Path;
use std::process::Command;

use half::f16;
use vfupscale::color::{Colorimetry, Matrix, Range, rgb_to_code};
use vfupscale::cpu;
use vfupscale::frame::{Image, PixelFormat, Size};

#[path = "support/emulation.rs"]
mod emulation;
#[path = "support/images.rs"]
mod images;
use images::random_values;

/// frame_out.cuh as C++: common.cuh inlined, the PTX conversions swapped for the emulated ones.
fn header_source() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let include = "#include \"../../cuda/kernels/common.cuh\"";
    let header = read("src/native/kernels/frame_out.cuh");
    assert!(header.contains(include), "frame_out.cuh no longer includes common.cuh as this test expects");
    let source = header.replace(include, &read("src/cuda/kernels/common.cuh")).replace("#pragma once", "");
    emulation::emulated("frame_out.cuh", &source)
}

fn bytes_u16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// The frame the planar path makes from the last convolution's `staged` channels (`[h][w][3 r²]` fp16, bias added)
/// and the model input `image` (`[3][h][w]` fp16): the planar output `[3][r h][r w]` rounded to fp16 as the last
/// layer stores it, converted by the CPU path.
fn two_step(
    r: usize,
    (w, h): (usize, usize),
    staged: &[u16],
    image: &[u16],
    format: PixelFormat,
    c: Colorimetry,
) -> Image {
    let (ow, oh) = (r * w, r * h);
    let mut planar = vec![f16::ZERO; 3 * ow * oh];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..3 {
                let res = f16::from_bits(image[(ch * h + y) * w + x]).to_f32();
                for dy in 0..r {
                    for dx in 0..r {
                        let v = f16::from_bits(staged[(y * w + x) * 3 * r * r + ch * r * r + dy * r + dx]).to_f32();
                        planar[(ch * oh + r * y + dy) * ow + r * x + dx] = f16::from_f32(v + res);
                    }
                }
            }
        }
    }
    let mut frame = Image::new(format, Size::new(ow as u32, oh as u32));
    cpu::planar_to_frame(&planar, &rgb_to_code(c, format.depth()), &mut frame.view_mut());
    frame
}

#[test]
fn the_fused_output_conversion_equals_the_planar_output_converted_in_a_cpu_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let colours = [
        (PixelFormat::Nv12, Colorimetry::new(Matrix::Bt709, Range::Limited)),
        (PixelFormat::Nv12, Colorimetry::new(Matrix::Bt601, Range::Full)),
        (PixelFormat::P010, Colorimetry::new(Matrix::Bt2020, Range::Limited)),
    ];
    let mut n = 0;
    for r in [2usize, 4] {
        for (k, (format, colour)) in colours.into_iter().enumerate() {
            // an odd width and height; values past 0..1 on both sides (the clamp), residuals of a real image's range
            let (w, h) = (13, 7);
            let seed = (10 * r + k) as u32;
            let bits = |v: Vec<f32>| v.into_iter().map(|x| f16::from_f32(x).to_bits()).collect::<Vec<u16>>();
            let staged = bits(random_values(3 * r * r * w * h, seed, -0.6, 0.6));
            let image = bits(random_values(3 * w * h, seed + 100, 0.0, 1.0));
            let expected = two_step(r, (w, h), &staged, &image, format, colour);
            let row = format.plane_rows(expected.size)[0].0;
            let matrix: Vec<u8> =
                rgb_to_code(colour, format.depth()).m.concat().iter().flat_map(|v| v.to_ne_bytes()).collect();
            // rows at 16-byte multiples (the wide stores) and 2 bytes past that (one store per sample on some rows)
            for pitch in [row.next_multiple_of(16), row.next_multiple_of(16) + 2] {
                let case = root.join(format!("case{n}"));
                std::fs::create_dir_all(&case).unwrap();
                std::fs::write(case.join("staged"), bytes_u16(&staged)).unwrap();
                std::fs::write(case.join("image"), bytes_u16(&image)).unwrap();
                std::fs::write(case.join("matrix"), &matrix).unwrap();
                std::fs::write(case.join("plane0"), &expected.planes[0]).unwrap();
                std::fs::write(case.join("plane1"), &expected.planes[1]).unwrap();
                let label = format!("shuffle {r}, {format} {colour:?}, pitch {pitch}");
                let p010 = u8::from(format == PixelFormat::P010);
                std::fs::write(case.join("meta"), format!("{r} {p010} {w} {h} {pitch} {label}\n")).unwrap();
                n += 1;
            }
        }
    }
    std::fs::write(root.join("frame_out.inc"), header_source()).unwrap();
    let binary = emulation::compile("fused_output_emulation.cpp", root);
    let run = Command::new(&binary).arg(root).arg(n.to_string()).output().unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    eprintln!("{report}");
    assert_eq!(report.lines().filter(|l| l.contains(" OK (0 bytes differ)")).count(), n, "{report}");
    assert!(run.status.success(), "{report}{}", String::from_utf8_lossy(&run.stderr));
}
