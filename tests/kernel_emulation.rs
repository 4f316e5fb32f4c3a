// SPDX-License-Identifier: MPL-2.0
//! The classic, composition, temporal and output conversion kernels checked bit for bit against the CPU path on a
//! machine without a GPU: the kernel sources (as build.rs embeds them for NVRTC) are compiled as C++ with the CUDA
//! built-ins they use written out (`support/kernel_emulation.cpp`) and run one thread at a time on cases written
//! here with the CPU path's results. The GPU suite checks the same on the device (`tests/gpu/compose_kernels.rs`);
//! this catches a kernel that drifted from `cpu.rs`, `classic.rs`, `compose.rs` or `temporal.rs` before it gets
//! there. Needs a C++ compiler (`c++`, or `$CXX`) for x86-64 with F16C.

use std::path::Path;
use std::process::Command;

use vfupscale::classic::{AxisFilter, ClassicMethod, Resampler};
use vfupscale::color::{Colorimetry, Matrix, Range, code_to_rgb, rgb_to_code};
use vfupscale::compose::{ComposePlan, HostScratch, HostTemporal, Strength, compose_host};
use vfupscale::cpu;
use vfupscale::cuda::conversion;
use vfupscale::format::FormatLayout;
use vfupscale::frame::{Image, PixelFormat, Rect, Size};
use vfupscale::temporal::{TemporalSettings, compute_mask, difference_sum};

#[path = "support/emulation.rs"]
mod emulation;
#[path = "support/images.rs"]
mod images;
#[allow(unused_imports)]
use images::random_frame_of;
use images::{random_frame as frame, random_values as values};

/// Plain values as the bytes the harness reads.
trait Bytes {
    fn bytes(&self) -> Vec<u8>;
}

macro_rules! bytes {
    ($($t:ty),*) => {
        $(impl Bytes for [$t] {
            fn bytes(&self) -> Vec<u8> {
                self.iter().flat_map(|v| v.to_ne_bytes()).collect()
            }
        })*
    };
}
bytes!(f32, u16, u8, i32);

/// One case's directory: arrays as raw files, numbers in `meta`.
struct Case(std::path::PathBuf);

impl Case {
    fn new(root: &Path, name: String) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn put(&self, name: &str, data: &(impl Bytes + ?Sized)) -> &Self {
        std::fs::write(self.0.join(name), data.bytes()).unwrap();
        self
    }

    fn axis(&self, name: &str, f: &AxisFilter) -> &Self {
        self.put(&format!("{name}_start"), f.start.as_slice()).put(&format!("{name}_weights"), f.weights.as_slice())
    }

    /// A frame's planes as `plane0`, `plane1`.
    fn frame(&self, prefix: &str, img: &Image) -> &Self {
        self.put(&format!("{prefix}plane0"), img.planes[0].as_slice())
            .put(&format!("{prefix}plane1"), img.planes[1].as_slice())
    }

    fn meta(&self, numbers: &[String]) {
        std::fs::write(self.0.join("meta"), numbers.join(" ") + "\n").unwrap();
    }
}

fn f16_bits(v: &[f32]) -> (Vec<u16>, Vec<half::f16>) {
    let bits: Vec<u16> = v.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
    let halves = bits.iter().map(|&b| half::f16::from_bits(b)).collect();
    (bits, halves)
}

const BT709: Colorimetry = Colorimetry::new(Matrix::Bt709, Range::Limited);
const RGB: Colorimetry = Colorimetry::new(Matrix::Rgb, Range::Full);

fn colour_of(format: PixelFormat) -> Colorimetry {
    if format.planes() == 2 { BT709 } else { RGB }
}

/// A layout's numbers, in `struct FormatLayout`'s order, and the plane row bytes of a frame of `size`.
fn layout_numbers(format: PixelFormat, size: Size) -> Vec<String> {
    let l: FormatLayout = format.layout();
    let rows = format.plane_rows(size);
    [l.sample_bytes, l.shift, l.max_code, l.step[0], l.step[1], l.plane[0], l.plane[1], l.plane[2]]
        .into_iter()
        .chain([l.offset[0], l.offset[1], l.offset[2], l.extra])
        .chain([rows[0].0 as i32, rows[0].1 as i32, rows[1].0 as i32, rows[1].1 as i32])
        .map(|v| v.to_string())
        .collect()
}

/// Resampling cases; returns how many.
fn resample_cases(root: &Path) -> usize {
    let sizes = [
        (Size::new(33, 17), Size::new(100, 51)),
        (Size::new(64, 48), Size::new(17, 13)),
        (Size::new(40, 30), Size::new(160, 120)),
    ];
    let mut n = 0;
    for method in [ClassicMethod::Lanczos, ClassicMethod::Bicubic] {
        for (from, to) in sizes {
            let case = Case::new(root, format!("resample{n}"));
            n += 1;
            let r = Resampler::new(method, from, to);
            let src = values(3 * from.pixels(), n as u32, -0.1, 1.1);
            let (bits, halves) = f16_bits(&src);
            let (mut expected, mut expected16) = (vec![0f32; 3 * to.pixels()], vec![0f32; 3 * to.pixels()]);
            r.resample(&src, &mut expected);
            r.resample(&halves, &mut expected16);
            case.put("src", src.as_slice()).put("src16", bits.as_slice()).put("expected", expected.as_slice());
            case.put("expected16", expected16.as_slice()).axis("x", &r.x).axis("y", &r.y);
            case.meta(&[from.width, from.height, to.width, to.height, r.x.taps, r.y.taps].map(|v| v.to_string()));
        }
    }
    n
}

/// Composition cases (strength, shrink, fp16, classic only, temporal); returns how many.
fn compose_cases(root: &Path) -> usize {
    let input = Size::new(37, 21);
    // (scale, output, strength, fp16, classic only, temporal)
    let cases = [
        (2, Size::new(74, 42), 0.5f32, false, false, false),
        (2, Size::new(74, 42), 1.0, true, false, false),
        (3, Size::new(50, 30), 1.0, false, false, false),
        (3, Size::new(41, 27), 0.3, true, false, false),
        (2, Size::new(74, 42), 0.0, false, false, false),
        (4, Size::new(148, 84), 0.0, false, true, false),
        (2, Size::new(1, 1), 0.7, false, false, false),
        (2, Size::new(60, 33), 0.6, false, false, true),
        (2, Size::new(74, 42), 1.0, true, false, true),
    ];
    let formats = [PixelFormat::Nv12, PixelFormat::P010, PixelFormat::Rgba, PixelFormat::Rgb, PixelFormat::Bgrx];
    for (k, (scale, out, s, fp16, classic_only, temporal)) in cases.into_iter().enumerate() {
        let case = Case::new(root, format!("compose{k}"));
        let format = formats[k % formats.len()];
        let to_yuv = rgb_to_code(colour_of(format), format.depth());
        let method = if k % 2 == 0 { ClassicMethod::Lanczos } else { ClassicMethod::Bicubic };
        let plan = ComposePlan::new(method, input, scale, out).unwrap();
        let mut rgb = vec![0f32; 3 * input.pixels()];
        cpu::frame_to_planar(
            &frame(input, k as u64 + 3).view(),
            &code_to_rgb(BT709, 8),
            Rect::of_size(input),
            &mut rgb,
        );
        let model = values(3 * plan.model_output.pixels(), k as u32 + 9, -0.15, 1.15);
        let (bits, halves) = f16_bits(&model);
        let mask: Vec<f32> = values(input.pixels(), 5, -0.5, 1.5).into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
        let history_in = values(3 * out.pixels(), 11, 0.0, 1.0);
        let mut history = history_in.clone();
        let strength = Strength::new(s);
        let mut expected = Image::new(format, out);
        let mut scratch = HostScratch::default();
        let t = temporal.then(|| HostTemporal { alpha: 0.8, mask: &mask, history: &mut history });
        let dst = &mut expected.view_mut();
        match (classic_only, fp16) {
            (true, _) => compose_host::<f32>(&plan, None, &rgb, strength, t, &to_yuv, &mut scratch, dst),
            (false, true) => compose_host(&plan, Some(&halves), &rgb, strength, t, &to_yuv, &mut scratch, dst),
            (false, false) => compose_host(&plan, Some(&model), &rgb, strength, t, &to_yuv, &mut scratch, dst),
        }
        .unwrap();
        case.put("model", model.as_slice()).put("model16", bits.as_slice()).put("rgb", rgb.as_slice());
        case.put("mask", mask.as_slice()).put("history_in", history_in.as_slice());
        case.put("history_out", history.as_slice()).frame("", &expected);
        case.axis("cx", &plan.classic.x).axis("cy", &plan.classic.y).put("matrix", to_yuv.m.concat().as_slice());
        let (sx, sy) = match &plan.shrink {
            Some(r) => {
                case.axis("sx", &r.x).axis("sy", &r.y);
                (r.x.taps, r.y.taps)
            }
            None => (0, 0),
        };
        let (m, o) = (plan.model_output, out);
        let ints = [input.width, input.height, m.width, m.height, o.width, o.height].map(|v| v.to_string());
        let flags = [fp16, classic_only, temporal].map(|b| (b as i32).to_string());
        let taps = [plan.classic.x.taps, plan.classic.y.taps, sx, sy].map(|v| v.to_string());
        let strengths = [strength.model, strength.classic].map(|v| format!("{v:e}"));
        case.meta(&[&ints[..], &strengths[..], &flags[..], &taps[..], &layout_numbers(format, out)[..]].concat());
    }
    cases.len()
}

/// Temporal mask cases: a few changed pixels, no history, a scene cut; in 8 and 10-bit Y'CbCr and in RGBA. Returns
/// how many.
fn mask_cases(root: &Path) -> usize {
    let settings = TemporalSettings::with_strength(0.8);
    let size = Size::new(45, 23);
    let mut n = 0;
    for format in [PixelFormat::Nv12, PixelFormat::P010, PixelFormat::Rgba] {
        for k in 0..3 {
            let case = Case::new(root, format!("mask{n}"));
            n += 1;
            let previous = images::random_frame_of(format, size, 1);
            let mut current = previous.clone();
            for (i, v) in current.planes[0].iter_mut().enumerate() {
                if k == 2 {
                    *v = v.wrapping_add(90);
                } else if i % 17 < 3 {
                    *v = v.saturating_add((i % 13) as u8);
                }
            }
            let valid = k != 1;
            let mut mask = vec![0f32; size.pixels()];
            let cut = compute_mask(&settings, &current.view(), &previous.view(), valid, &mut mask);
            assert_eq!(cut, k == 2, "{format} case {k}");
            let sum = difference_sum(&current.view(), &previous.view());
            case.frame("cur", &current).frame("prev", &previous).put("mask", mask.as_slice());
            let numbers = [
                size.width.to_string(),
                size.height.to_string(),
                settings.static_below.to_string(),
                settings.moving_above.to_string(),
                sum.to_string(),
                settings.cut_limit(size).to_string(),
                (valid as i32).to_string(),
            ];
            case.meta(&[&numbers[..], &layout_numbers(format, size)[..]].concat());
        }
    }
    n
}

/// Output conversion cases (the vector and per-sample paths, odd sizes, every layout); returns how many.
fn conversion_cases(root: &Path) -> usize {
    let sizes = [Size::new(64, 32), Size::new(35, 19), Size::new(40, 19), Size::new(48, 16), Size::new(8, 2)];
    let formats = [PixelFormat::Nv12, PixelFormat::P010, PixelFormat::Rgba, PixelFormat::Rgb];
    let mut n = 0;
    for format in formats {
        let to_code = rgb_to_code(colour_of(format), format.depth());
        for size in sizes {
            let case = Case::new(root, format!("p2n{n}"));
            n += 1;
            let t = values(3 * size.pixels(), n as u32 + 40, -0.2, 1.2);
            let (bits, halves) = f16_bits(&t);
            let (mut e, mut e16) = (Image::new(format, size), Image::new(format, size));
            cpu::planar_to_frame(&t, &to_code, &mut e.view_mut());
            cpu::planar_to_frame(&halves, &to_code, &mut e16.view_mut());
            case.put("t", t.as_slice()).put("t16", bits.as_slice()).frame("", &e).frame("f16_", &e16);
            case.put("matrix", to_code.m.concat().as_slice());
            case.meta(
                &[&[size.width.to_string(), size.height.to_string()][..], &layout_numbers(format, size)[..]].concat(),
            );
        }
    }
    n
}

/// The kernel modules as C++: one namespace each, the PTX conversions swapped for the emulated ones.
fn kernels_source() -> String {
    let mut out = String::new();
    for module in [&conversion::RESAMPLE, &conversion::COMPOSE, &conversion::TEMPORAL, &conversion::PLANAR_TO_FRAME] {
        let source = emulation::emulated(module.name, module.source);
        out.push_str(&format!("namespace mod_{} {{\n{source}\n}}\n", module.name));
    }
    out
}

#[test]
fn kernels_equal_the_cpu_path_bit_for_bit_in_a_cpu_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let resamples = resample_cases(root);
    let composes = compose_cases(root);
    let masks = mask_cases(root);
    let conversions = conversion_cases(root);
    std::fs::write(root.join("kernels.inc"), kernels_source()).unwrap();
    let binary = emulation::compile("kernel_emulation.cpp", root);
    let run = Command::new(&binary)
        .arg(root)
        .args([resamples, composes, masks, conversions].map(|n| n.to_string()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    eprintln!("{report}");
    let checks = report.lines().filter(|l| l.contains(" OK ")).count();
    assert!(
        run.status.success(),
        "kernels differ from the CPU path:\n{report}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // 2 per resampling case, 2 or 3 per composition, 1 per mask, 12 per conversion case (3 pitches, 2 precisions, 2
    // planes)
    assert_eq!(checks, 2 * resamples + 2 * composes + 2 + masks + 12 * conversions, "{report}");
}
