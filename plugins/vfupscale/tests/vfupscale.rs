// SPDX-License-Identifier: MPL-2.0

//! CPU tests of the `vfupscale` element: negotiation both ways, buffers and events, properties, bad input, and
//! the system-memory path end to end on a real super-resolution model against an independent reference.
//!
//! Needs the ONNX Runtime library and the installed models (`scripts/setup.sh` or `.ci/run` provide both).

use gst::prelude::*;
use gst_check::Harness;
#[path = "../../../tests/support/ppm.rs"]
mod ppm;
use ppm::{read_ppm, test_image_path};
use vfupscale::stats::field;
use vfupscale_onnx::onnx::{Dim, GraphBuilder, data_type, write_model};

mod common;
use common::init;
mod fixtures;
use fixtures::{
    dynamic, element, failing_model, harness, nearest_model, nv12_buffer, nv12_size, real_model, scratch,
    start_error_of,
};

fn caps_field<T: for<'a> gst::glib::value::FromValue<'a> + 'static>(caps: &gst::Caps, field: &str) -> T {
    caps.structure(0).unwrap().get::<T>(field).unwrap()
}

#[test]
fn negotiates_scaled_caps_downstream_and_carries_fields_over() {
    let caps = "video/x-raw,format=NV12,width=64,height=48,framerate=30/1,pixel-aspect-ratio=4/3,\
                colorimetry=bt601,interlace-mode=progressive";
    // the default backend (auto): on a GPU host CUDA caps could be offered, and must not be for system memory
    init();
    let e = gst::ElementFactory::make("vfupscale").property("model", nearest_model(2, None).to_str()).build().unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(caps);
    h.push(nv12_buffer(64, 48)).unwrap();
    let out = h.pull().unwrap();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps_field::<i32>(&caps, "width"), 128);
    assert_eq!(caps_field::<i32>(&caps, "height"), 96);
    assert_eq!(caps_field::<gst::Fraction>(&caps, "framerate"), gst::Fraction::new(30, 1));
    assert_eq!(caps_field::<gst::Fraction>(&caps, "pixel-aspect-ratio"), gst::Fraction::new(4, 3));
    assert_eq!(caps_field::<String>(&caps, "colorimetry"), "bt601");
    assert_eq!(caps_field::<String>(&caps, "interlace-mode"), "progressive");
    let features = caps.features(0).unwrap();
    assert!(features.is_equal(&gst::CAPS_FEATURES_MEMORY_SYSTEM_MEMORY), "system memory in, system memory out: {caps}");
    assert_eq!(out.size(), 128 * 96 * 3 / 2);
}

#[test]
fn negotiates_odd_sizes_with_a_x3_model() {
    let mut h = harness(&nearest_model(3, None), "video/x-raw,format=NV12,width=33,height=21,framerate=25/1");
    h.push(nv12_buffer(33, 21)).unwrap();
    let out = h.pull().unwrap();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!((caps_field::<i32>(&caps, "width"), caps_field::<i32>(&caps, "height")), (99, 63));
    assert_eq!(out.size(), nv12_size(99, 63));
}

#[test]
fn upstream_caps_prefer_the_input_whose_model_output_is_downstreams_size() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=64,height=48");
    h.play();
    h.set_sink_caps_str("video/x-raw,format=NV12,width=256,height=192,framerate=30/1");
    let caps = h.srcpad().unwrap().peer_query_caps(None);
    let size = |s: &gst::StructureRef| (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap());
    assert_eq!(size(caps.structure(0).unwrap()), (128, 96), "{caps}");
    // then any size: other inputs are resampled to it, or refused with a message when too small
    let any = caps.structure(caps.size() - 1).unwrap();
    assert_eq!(any.get::<gst::IntRange<i32>>("width").unwrap(), gst::IntRange::new(1, i32::MAX), "{caps}");
    // a downstream size that is no multiple of the scale prefers the next larger input
    h.set_sink_caps_str("video/x-raw,format=NV12,width=255,height=192");
    let caps = h.srcpad().unwrap().peer_query_caps(None);
    assert_eq!(size(caps.structure(0).unwrap()), (128, 96), "{caps}");
    // ranges map to ranges
    h.set_sink_caps_str("video/x-raw,format=NV12,width=[100,300],height=[50,60]");
    let caps = h.srcpad().unwrap().peer_query_caps(None);
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<gst::IntRange<i32>>("width").unwrap(), gst::IntRange::new(50, 150));
    assert_eq!(s.get::<gst::IntRange<i32>>("height").unwrap(), gst::IntRange::new(25, 30));
}

#[test]
fn fixates_to_the_exact_multiple_within_a_downstream_range() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=40,height=30,framerate=10/1");
    h.set_sink_caps_str("video/x-raw,format=NV12,width=[1,4096],height=[1,4096],framerate=[0/1,100/1]");
    h.push(nv12_buffer(40, 30)).unwrap();
    h.pull().unwrap();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!((caps_field::<i32>(&caps, "width"), caps_field::<i32>(&caps, "height")), (80, 60));
    assert_eq!(caps_field::<gst::Fraction>(&caps, "framerate"), gst::Fraction::new(10, 1));
}

#[test]
fn one_output_per_input_with_timestamps_and_flags() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=16,height=8,framerate=30/1");
    let n = 6u64;
    for i in 0..n {
        let mut b = nv12_buffer(16, 8);
        {
            let b = b.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(1000 + 33 * i));
            b.set_dts(gst::ClockTime::from_mseconds(990 + 33 * i));
            b.set_duration(gst::ClockTime::from_mseconds(33));
            b.set_offset(i);
            b.set_flags(if i == 0 { gst::BufferFlags::DISCONT } else { gst::BufferFlags::DELTA_UNIT });
        }
        h.push(b).unwrap();
    }
    for i in 0..n {
        let out = h.pull().unwrap();
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(1000 + 33 * i)));
        assert_eq!(out.dts(), Some(gst::ClockTime::from_mseconds(990 + 33 * i)));
        assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(33)));
        assert_eq!(out.offset(), i);
        let want = if i == 0 { gst::BufferFlags::DISCONT } else { gst::BufferFlags::DELTA_UNIT };
        assert!(out.flags().contains(want), "buffer {i}: {:?}", out.flags());
    }
    assert!(h.try_pull().is_none(), "no extra output");
    let stats: gst::Structure = h.element().unwrap().property("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), n);
    assert_eq!(stats.get::<&str>("backend").unwrap(), "cpu");
    assert_eq!(stats.get::<u64>("device-memory-bytes").unwrap(), 0, "the CPU path holds no device memory");
    assert_eq!(stats.get::<u64>(field::INFERENCE_ARENA_BYTES).unwrap(), 0);
    assert!(!stats.has_field(field::INFERENCE_ARENA_PEAK_BYTES), "no arena peak is made up on the CPU: {stats}");
    let reported: Vec<&str> = stats.fields().map(|f| f.as_str()).collect();
    let expected: Vec<&str> = field::ALL.iter().copied().filter(|&f| f != field::INFERENCE_ARENA_PEAK_BYTES).collect();
    assert_eq!(reported, expected);
}

#[test]
fn nearest_model_output_is_exact() {
    // a flat-chroma frame, in gamut everywhere (so no RGB clamping), survives nearest-neighbour upscaling code
    // value for code value
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=8,height=4,colorimetry=bt709");
    let mut data = vec![0u8; 8 * 4 + 8 * 2];
    for (i, v) in data[..32].iter_mut().enumerate() {
        *v = 60 + (i as u8 * 4);
    }
    for p in data[32..].chunks_mut(2) {
        p[0] = 120;
        p[1] = 135;
    }
    h.push(gst::Buffer::from_mut_slice(data.clone())).unwrap();
    let out = h.pull().unwrap();
    let out = out.map_readable().unwrap();
    for y in 0..8 {
        for x in 0..16 {
            assert_eq!(out[y * 16 + x], data[(y / 2) * 8 + x / 2], "luma ({x},{y})");
        }
    }
    for p in out[128..].chunks(2) {
        assert_eq!(p, [120, 135]);
    }
}

#[test]
fn eos_and_flushes_pass_through() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=16,height=8");
    h.push(nv12_buffer(16, 8)).unwrap();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
    h.push(nv12_buffer(16, 8)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    let mut buffers = 0;
    while h.try_pull().is_some() {
        buffers += 1;
    }
    assert_eq!(buffers, 2);
    let mut saw_eos = false;
    while let Some(e) = h.try_pull_event() {
        saw_eos |= e.type_() == gst::EventType::Eos;
    }
    assert!(saw_eos);
}

#[test]
fn properties_have_documented_defaults_and_scale_is_known_after_start() {
    init();
    let e = gst::ElementFactory::make("vfupscale").build().unwrap();
    assert_eq!(e.property::<Option<String>>("model"), None);
    assert_eq!(e.property::<u32>("device-id"), 0);
    assert_eq!(e.property::<u32>("scale"), 0);
    let backend = e.property_value("backend");
    assert_eq!(gst::glib::EnumValue::from_value(&backend).unwrap().1.nick(), "auto");
    let precision = e.property_value("precision");
    assert_eq!(gst::glib::EnumValue::from_value(&precision).unwrap().1.nick(), "auto");
    // the model's scale once started; settable for classic output without a model
    let scale = e.find_property("scale").unwrap();
    let range = scale.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
    assert_eq!((range.minimum(), range.maximum(), range.default_value()), (0, 16, 0));
    assert_eq!(e.property::<f64>("strength"), 1.0);
    assert_eq!(e.property::<f64>("temporal-stability"), 0.0);
    for (name, nick) in [("fallback", "none"), ("classic-method", "lanczos")] {
        let v = e.property_value(name);
        assert_eq!(gst::glib::EnumValue::from_value(&v).unwrap().1.nick(), nick, "{name}");
    }
    assert_eq!(e.property::<u32>("async-depth"), 1);
    let depth = e.find_property("async-depth").unwrap();
    let range = depth.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
    assert_eq!((range.minimum(), range.maximum()), (0, vfupscale::MAX_FRAMES_IN_FLIGHT as u32 - 1));

    let mut h = harness(&nearest_model(3, None), "video/x-raw,format=NV12,width=16,height=8");
    h.play();
    assert_eq!(h.element().unwrap().property::<u32>("scale"), 3);
}

/// Runs `videotestsrc ! vfupscale model=… ! fakesink` to PAUSED and returns the text of the error posted.
fn start_error(model: &str, extra: &str, caps: &str) -> String {
    start_error_of(model, extra, caps).to_string()
}

const SMALL: &str = "video/x-raw,format=NV12,width=64,height=48";

#[test]
fn bad_models_fail_with_the_path_and_reason() {
    let dir = scratch();
    let e = start_error("/nonexistent/model.onnx", "backend=cpu", SMALL);
    assert!(e.contains("/nonexistent/model.onnx") && e.contains("No such file"), "{e}");

    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, b"definitely not protobuf \xff\xfe").unwrap();
    let e = start_error(junk.to_str().unwrap(), "backend=cpu", SMALL);
    assert!(e.contains("junk.onnx") && e.contains("not an ONNX model"), "{e}");

    let unreadable = dir.join("directory.onnx");
    std::fs::create_dir_all(&unreadable).unwrap();
    let e = start_error(unreadable.to_str().unwrap(), "backend=cpu", SMALL);
    assert!(e.contains("directory.onnx") && e.contains("cannot read"), "{e}");

    // NHWC, as exported from TensorFlow
    let nhwc = dir.join("nhwc.onnx");
    let d = vec![Dim::Param("n".into()), Dim::Param("h".into()), Dim::Param("w".into()), Dim::Fixed(3)];
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &d, &d);
    g.op_into("Identity", &["input"], "output", vec![]);
    write_model(&nhwc, &g.into_model("nhwc", &[])).unwrap();
    let e = start_error(nhwc.to_str().unwrap(), "backend=cpu", SMALL);
    assert!(e.contains("nhwc.onnx") && e.contains("NHWC"), "{e}");

    // an integer image model
    let ints = dir.join("uint8.onnx");
    let mut g = GraphBuilder::with_io(data_type::UINT8, &dynamic(), &dynamic());
    g.op_into("Identity", &["input"], "output", vec![]);
    write_model(&ints, &g.into_model("u8", &[])).unwrap();
    let e = start_error(ints.to_str().unwrap(), "backend=cpu", SMALL);
    assert!(e.contains("uint8.onnx") && e.contains("uint8") && e.contains("float32"), "{e}");
}

#[test]
fn fixed_size_model_rejects_other_frame_sizes() {
    let model = nearest_model(2, Some((32, 32)));
    let e = start_error(model.to_str().unwrap(), "backend=cpu", SMALL);
    assert!(e.contains("only 32x32") && e.contains("64x48"), "{e}");
    // and works for its own size, with the scale taken from the static shapes
    let mut h = harness(&model, "video/x-raw,format=NV12,width=32,height=32");
    h.push(nv12_buffer(32, 32)).unwrap();
    assert_eq!(h.pull().unwrap().size(), 64 * 64 * 3 / 2);
}

#[test]
fn fp16_on_the_cpu_backend_agrees_with_fp32() {
    let model = real_model();
    let (w, h, rgb8) = read_ppm(&test_image_path("astronaut-96x64.ppm"));
    let rgb: Vec<f64> = rgb8.iter().map(|&v| v as f64 / 255.0).collect();
    let nv12 = rgb_to_nv12(w, h, &rgb);
    let caps = format!("video/x-raw,format=NV12,width={w},height={h},colorimetry=bt601");
    let run = |precision: &str| {
        let e = element(&model);
        e.set_property_from_str("precision", precision);
        let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps_str(&caps);
        h.push(gst::Buffer::from_mut_slice(nv12.clone())).unwrap();
        h.pull().unwrap().map_readable().unwrap().to_vec()
    };
    let (fp16, fp32) = (run("fp16"), run("fp32"));
    let luma = 4 * w * h;
    let p = psnr(&fp16[..luma], &fp32[..luma]);
    eprintln!("CPU fp16 vs fp32: luma PSNR {p:.1} dB");
    assert!(p >= 45.0, "luma PSNR {p:.1} dB");
}

/// Set in the child process that runs a test with every CUDA device hidden.
const GPU_HIDDEN: &str = "VFUPSCALE_TEST_GPU_HIDDEN";

/// Runs the test `name` of this binary again in a child process that sees no CUDA device, and checks it passed.
fn run_without_gpu(name: &str) {
    assert!(std::env::var_os(GPU_HIDDEN).is_none(), "CUDA_VISIBLE_DEVICES= did not hide the GPU from {name}");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("CUDA_VISIBLE_DEVICES", "")
        .env(GPU_HIDDEN, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("1 passed"), "{name} without a GPU:\n{stdout}\n{stderr}");
}

#[test]
fn without_a_gpu_only_system_memory_is_offered_and_gpu_backends_fail_clearly() {
    let reason = match vfupscale::cuda::driver_status() {
        // a GPU host: the same, in a process that sees no device
        Ok(_) => return run_without_gpu("without_a_gpu_only_system_memory_is_offered_and_gpu_backends_fail_clearly"),
        Err(e) => e.to_string(),
    };
    init();
    let e = gst::ElementFactory::make("vfupscale").build().unwrap();
    e.set_state(gst::State::Ready).unwrap();
    let caps = e.static_pad("sink").unwrap().query_caps(None);
    e.set_state(gst::State::Null).unwrap();
    assert!(!caps.is_empty());
    for (_, features) in caps.iter_with_features() {
        assert!(!features.contains("memory:CUDAMemory"), "{caps}");
    }
    let model = nearest_model(2, None);
    for backend in ["native", "cuda", "tensorrt"] {
        let e = start_error(model.to_str().unwrap(), &format!("backend={backend}"), SMALL);
        assert!(e.contains(&reason), "{backend}: {e} does not say why CUDA is unusable ({reason})");
        if std::env::var_os(GPU_HIDDEN).is_none() {
            // no driver library at all
            assert!(e.contains("CUDA is not available") && e.contains("libcuda"), "{backend}: {e}");
        }
    }
    // auto falls back to the CPU and runs
    let mut h = Harness::with_element(
        &gst::ElementFactory::make("vfupscale").property("model", model.to_str().unwrap()).build().unwrap(),
        Some("sink"),
        Some("src"),
    );
    h.set_src_caps_str("video/x-raw,format=NV12,width=16,height=8");
    h.push(nv12_buffer(16, 8)).unwrap();
    assert_eq!(h.pull().unwrap().size(), 32 * 16 * 3 / 2);
}

/// BT.601 limited range, written out per pixel in float64 (independent of the element's code).
mod bt601 {
    pub const KR: f64 = 0.299;
    pub const KB: f64 = 0.114;

    pub fn rgb_to_ycbcr(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
        let y = KR * r + (1.0 - KR - KB) * g + KB * b;
        (16.0 + 219.0 * y, 128.0 + 112.0 * (b - y) / (1.0 - KB), 128.0 + 112.0 * (r - y) / (1.0 - KR))
    }

    pub fn ycbcr_to_rgb(y: f64, cb: f64, cr: f64) -> (f64, f64, f64) {
        let (y, pb, pr) = ((y - 16.0) / 219.0, (cb - 128.0) / 224.0, (cr - 128.0) / 224.0);
        let r = y + 2.0 * (1.0 - KR) * pr;
        let b = y + 2.0 * (1.0 - KB) * pb;
        (r, (y - KR * r - KB * b) / (1.0 - KR - KB), b)
    }
}

/// NV12 (tight) from 8-bit RGB: per-pixel luma, chroma of each 2×2 block's mean colour.
fn rgb_to_nv12(w: usize, h: usize, rgb: &[f64]) -> Vec<u8> {
    let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    let px = |x: usize, y: usize| (rgb[3 * (y * w + x)], rgb[3 * (y * w + x) + 1], rgb[3 * (y * w + x) + 2]);
    let mut out = vec![0u8; w * h + w * h / 2];
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            out[y * w + x] = q(bt601::rgb_to_ycbcr(r, g, b).0);
        }
    }
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            let mut m = (0.0, 0.0, 0.0);
            for (x, y) in [(2 * cx, 2 * cy), (2 * cx + 1, 2 * cy), (2 * cx, 2 * cy + 1), (2 * cx + 1, 2 * cy + 1)] {
                let p = px(x, y);
                m = (m.0 + p.0 / 4.0, m.1 + p.1 / 4.0, m.2 + p.2 / 4.0);
            }
            let (_, cb, cr) = bt601::rgb_to_ycbcr(m.0, m.1, m.2);
            out[w * h + cy * w + 2 * cx] = q(cb);
            out[w * h + cy * w + 2 * cx + 1] = q(cr);
        }
    }
    out
}

/// Planar RGB in 0..1 from NV12 with centred chroma interpolated bilinearly (float64).
fn nv12_to_rgb_planes(w: usize, h: usize, nv12: &[u8]) -> Vec<f32> {
    let (cw, ch) = (w / 2, h / 2);
    let chroma = |cx: f64, cy: f64, k: usize| {
        let (x0, y0) = (cx.floor(), cy.floor());
        let (fx, fy) = (cx - x0, cy - y0);
        let s = |i: f64, j: f64| {
            let (i, j) = (i.clamp(0.0, cw as f64 - 1.0) as usize, j.clamp(0.0, ch as f64 - 1.0) as usize);
            nv12[w * h + j * w + 2 * i + k] as f64
        };
        let top = s(x0, y0) * (1.0 - fx) + s(x0 + 1.0, y0) * fx;
        let bottom = s(x0, y0 + 1.0) * (1.0 - fx) + s(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    let mut planes = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let (cx, cy) = ((x as f64 - 0.5) / 2.0, (y as f64 - 0.5) / 2.0);
            let (r, g, b) = bt601::ycbcr_to_rgb(nv12[y * w + x] as f64, chroma(cx, cy, 0), chroma(cx, cy, 1));
            for (k, v) in [r, g, b].into_iter().enumerate() {
                planes[k * w * h + y * w + x] = v.clamp(0.0, 1.0) as f32;
            }
        }
    }
    planes
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn cpu_path_matches_an_independent_reference_on_a_real_model() {
    let model = real_model();
    let (w, h, rgb8) = read_ppm(&test_image_path("astronaut-96x64.ppm"));
    let rgb: Vec<f64> = rgb8.iter().map(|&v| v as f64 / 255.0).collect();
    let nv12 = rgb_to_nv12(w, h, &rgb);

    // the element
    let caps = format!("video/x-raw,format=NV12,width={w},height={h},colorimetry=bt601,framerate=1/1");
    let mut harness = harness(&model, &caps);
    harness.push(gst::Buffer::from_mut_slice(nv12.clone())).unwrap();
    let out = harness.pull().unwrap();
    let out = out.map_readable().unwrap();
    let (ow, oh) = (2 * w, 2 * h);
    assert_eq!(out.len(), ow * oh * 3 / 2);

    // the reference: float64 conversions above, ONNX Runtime called directly
    let rt = vfupscale::infer::runtime::runtime().expect("ONNX Runtime");
    let mut session = ort::session::Session::builder(&rt.environment).unwrap().commit_from_file(&model).unwrap();
    let input = ort::value::Tensor::from_array(([1usize, 3, h, w], nv12_to_rgb_planes(w, h, &nv12))).unwrap();
    let outputs = session.run(ort::inputs!["input" => input]).unwrap();
    let (shape, planes) = outputs["output"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(&shape[..], &[1, 3, oh as i64, ow as i64]);
    let upscaled: Vec<f64> = (0..ow * oh)
        .flat_map(|i| (0..3).map(move |k| (k, i)))
        .map(|(k, i)| (planes[k * ow * oh + i] as f64).clamp(0.0, 1.0))
        .collect();
    let reference = rgb_to_nv12(ow, oh, &upscaled);

    let luma = psnr(&out[..ow * oh], &reference[..ow * oh]);
    let chroma = psnr(&out[ow * oh..], &reference[ow * oh..]);
    eprintln!("element vs reference: luma PSNR {luma:.1} dB, chroma PSNR {chroma:.1} dB");
    assert!(luma >= 40.0, "luma PSNR {luma:.1} dB");
    assert!(chroma >= 40.0, "chroma PSNR {chroma:.1} dB");

    // and it is an upscale of the picture, not of noise: compare with the input, 2x2-averaged back down
    let down: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            let s: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|(dx, dy)| out[(2 * y + dy) * ow + 2 * x + dx] as u32)
                .sum();
            ((s + 2) / 4) as u8
        })
        .collect();
    let consistency = psnr(&down, &nv12[..w * h]);
    assert!(consistency >= 28.0, "downscaled output vs input: {consistency:.1} dB");
}

/// Upscales one frame of `image` (a PPM in tests/data) with the real model and the given element properties.
fn upscale_image(image: &str, properties: &[(&str, &str)]) -> (usize, usize, Vec<u8>, gst::Structure) {
    let (w, h, rgb8) = read_ppm(&test_image_path(image));
    let rgb: Vec<f64> = rgb8.iter().map(|&v| v as f64 / 255.0).collect();
    let e = element(&real_model());
    for (k, v) in properties {
        e.set_property_from_str(k, v);
    }
    let mut h_ = Harness::with_element(&e, Some("sink"), Some("src"));
    h_.set_src_caps_str(&format!("video/x-raw,format=NV12,width={w},height={h},colorimetry=bt709"));
    h_.push(gst::Buffer::from_mut_slice(rgb_to_nv12(w, h, &rgb))).unwrap();
    let out = h_.pull().unwrap().map_readable().unwrap().to_vec();
    let stats: gst::Structure = e.property("stats");
    (w, h, out, stats)
}

#[test]
fn tiled_output_matches_whole_frame_output() {
    let (w, h, whole, _) = upscale_image("astronaut-192x128.ppm", &[]);
    let luma = 4 * w * h;
    let mut previous = (0.0, 0.0);
    for overlap in ["8", "16", "32"] {
        let (_, _, tiled, stats) =
            upscale_image("astronaut-192x128.ppm", &[("tile-size", "64"), ("tile-overlap", overlap)]);
        let (l, c) = (psnr(&tiled[..luma], &whole[..luma]), psnr(&tiled[luma..], &whole[luma..]));
        let tiles = stats.get::<u64>("tiles-per-frame").unwrap();
        eprintln!(
            "overlap {overlap}: {tiles} tiles of {}px: luma {l:.1} dB, chroma {c:.1} dB vs whole frame",
            stats.get::<u32>("tile-size").unwrap()
        );
        assert!(tiles > 1, "overlap {overlap}: 64 px tiles of a 192x128 frame");
        // even small overlaps blend without visible seams, and more overlap is never worse
        assert!(l >= 60.0 && c >= 60.0, "overlap {overlap}: luma {l:.1} dB, chroma {c:.1} dB");
        assert!(l >= previous.0 && c >= previous.1, "overlap {overlap} is worse than a smaller one: {previous:?}");
        previous = (l, c);
        if overlap == vfupscale::DEFAULT_TILE_OVERLAP.to_string() {
            assert!(l >= 50.0 && c >= 50.0, "default overlap: luma {l:.1} dB, chroma {c:.1} dB");
        }
    }
}

#[test]
fn batched_tiles_equal_one_tile_at_a_time() {
    let (_, _, one, s1) = upscale_image("astronaut-192x128.ppm", &[("tile-size", "64")]);
    let (_, _, four, s4) = upscale_image("astronaut-192x128.ppm", &[("tile-size", "64"), ("batch-size", "4")]);
    assert_eq!(s1.get::<u64>("tiles-per-frame").unwrap(), s4.get::<u64>("tiles-per-frame").unwrap());
    // 4 tiles a run: the bound tensors hold four tiles
    assert_eq!(s4.get::<u64>("tensor-bytes").unwrap(), 4 * s1.get::<u64>("tensor-bytes").unwrap());
    assert!(one == four, "batch 4 differs from batch 1 (PSNR {:.1} dB)", psnr(&one, &four));
}

#[test]
fn a_memory_budget_chooses_smaller_tiles_and_keeps_the_picture() {
    let (w, h, whole, _) = upscale_image("astronaut-192x128.ppm", &[]);
    let luma = 4 * w * h;
    // the estimate is the model's peak activations plus a fixed workspace reserve (96 MiB): 192x128 fits whole
    // in 1 GiB, and the budget is tightened until only the smallest tiles fit
    let mut previous = u32::MAX;
    for budget in ["1024", "112", "105"] {
        let (_, _, out, s) = upscale_image("astronaut-192x128.ppm", &[("max-memory", budget)]);
        let (tile, tiles) = (s.get::<u32>("tile-size").unwrap(), s.get::<u64>("tiles-per-frame").unwrap());
        let l = psnr(&out[..luma], &whole[..luma]);
        eprintln!("max-memory {budget} MiB: {tiles} tiles of {tile}px, luma {l:.1} dB vs whole frame");
        if budget == "1024" {
            assert_eq!((tile, tiles), (192, 1), "a generous budget keeps the whole frame");
        } else {
            assert!(tiles > 1, "max-memory {budget} MiB should need tiles");
        }
        assert!(tile <= previous, "a smaller budget never chooses larger tiles");
        assert!(l >= 50.0, "max-memory {budget} MiB changed the picture: {l:.1} dB");
        previous = tile;
    }
    let e = start_error_of(
        real_model().to_str().unwrap(),
        "backend=cpu max-memory=1",
        "video/x-raw,format=NV12,width=192,height=128",
    );
    assert!(e.matches(gst::LibraryError::Settings), "a budget that cannot work is a setting: {e:?}");
    let e = e.to_string();
    assert!(e.contains("max-memory 1 MiB is too small") && e.contains("192x128"), "{e}");
}

#[test]
fn resolution_changes_mid_stream_are_renegotiated() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=32,height=16,framerate=30/1");
    h.push(nv12_buffer(32, 16)).unwrap();
    assert_eq!(h.pull().unwrap().size(), nv12_size(64, 32));
    h.set_src_caps_str("video/x-raw,format=NV12,width=48,height=40,framerate=30/1");
    h.push(nv12_buffer(48, 40)).unwrap();
    assert_eq!(h.pull().unwrap().size(), nv12_size(96, 80));
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!((caps_field::<i32>(&caps, "width"), caps_field::<i32>(&caps, "height")), (96, 80));
    h.set_src_caps_str("video/x-raw,format=NV12,width=32,height=16,framerate=30/1");
    h.push(nv12_buffer(32, 16)).unwrap();
    assert_eq!(h.pull().unwrap().size(), nv12_size(64, 32));
    let stats: gst::Structure = h.element().unwrap().property("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 3);
}

#[test]
fn an_inference_failure_ends_the_stream_with_an_error_naming_the_frame() {
    // a model that declares x2 but reshapes to a fixed size: ONNX Runtime fails on any other frame size
    init();
    let path = failing_model();
    let desc = format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=16,height=8,framerate=25/1 ! vfupscale name=up \
         backend=cpu model={} ! fakesink name=sink",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    let buffers = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = buffers.clone();
    let sink = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap();
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error, gst::MessageType::Eos])
        .expect("the stream ends");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else { panic!("expected an error, got {msg:?}") };
    let text = e.error().to_string();
    assert!(
        text.contains("Upscaling the frame at 0:00:00.000000000 failed") && text.contains("ONNX Runtime"),
        "{text}"
    );
    assert_eq!(buffers.load(std::sync::atomic::Ordering::SeqCst), 0, "no output buffer for the failed frame");
}

#[test]
fn stats_are_posted_as_element_messages_at_the_chosen_interval() {
    init();
    let desc = format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=NV12,width=16,height=8,framerate=25/1 ! vfupscale name=up \
         backend=cpu stats-interval=2 model={} ! fakesink",
        nearest_model(2, None).display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut posted = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                assert_eq!(s.name(), "vfupscale-stats");
                assert_eq!(msg.src().unwrap().name(), "up");
                posted.push(s.get::<u64>("frames").unwrap());
            }
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(posted, [2, 4]);
}
