// SPDX-License-Identifier: MPL-2.0

//! CPU tests of the element's hybrid features: `backend=classic`, the AI `strength` blend, `fallback=classic` (a
//! missing model, a model that fails on every frame), temporal stabilisation against a noisy fake model (the flicker
//! metric) and outputs smaller than the model's (caps filters downstream).
//!
//! Needs the ONNX Runtime library and the installed models (`scripts/setup.sh` or `.ci/run` provide both).

use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use vfupscale::frame::{Image, PixelFormat, Size};
use vfupscale::stats::field;
use vfupscale::temporal::flicker;
use vfupscale_onnx::onnx::{GraphBuilder, META_SCALE, attr_float, attr_string, data_type, write_model};

mod common;
use common::init;
mod fixtures;
use fixtures::{dynamic, failing_model, nearest_model, real_model, scratch};

/// A test frame: a gradient, edges and a block at `offset` (moving patterns shift it).
fn frame(size: Size, offset: usize) -> Image {
    let mut img = Image::new(PixelFormat::Nv12, size);
    let w = size.width as usize;
    let [luma, chroma] = &mut img.planes;
    for (i, v) in luma.iter_mut().enumerate() {
        let (x, y) = (i % w, i / w);
        let block = (x + w - offset % w) % w < w / 4 && y > 4 && y < 20;
        let edge = if (x / 6 + y / 5) % 2 == 0 { 40 } else { 0 };
        *v = if block { 220 } else { (40 + x * 100 / w + edge) as u8 };
    }
    for (i, p) in chroma.chunks_mut(2).enumerate() {
        p[0] = 110 + (i % 7) as u8;
        p[1] = 140 - (i % 5) as u8;
    }
    img
}

/// A buffer of `img` with GStreamer's default strides (rows padded to 4 bytes).
fn buffer(img: &Image) -> gst::Buffer {
    let video_format = gst_video::VideoFormat::from_string(img.format.name());
    let info = gst_video::VideoInfo::builder(video_format, img.size.width, img.size.height).build().unwrap();
    let mut data = vec![0u8; info.size()];
    let rows = img.format.plane_rows(img.size);
    for (plane, src) in img.planes.iter().enumerate().take(img.format.planes()) {
        let (stride, offset) = (info.stride()[plane] as usize, info.offset()[plane]);
        for (y, row) in src.chunks_exact(rows[plane].0).enumerate() {
            data[offset + y * stride..][..row.len()].copy_from_slice(row);
        }
    }
    gst::Buffer::from_mut_slice(data)
}

/// The image of `format` and `size` in a buffer with GStreamer's default strides.
fn image(format: PixelFormat, size: Size, buf: &gst::Buffer) -> Image {
    let video_format = gst_video::VideoFormat::from_string(format.name());
    let info = gst_video::VideoInfo::builder(video_format, size.width, size.height).build().unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
    let mut img = Image::new(format, size);
    let rows = format.plane_rows(size);
    for (plane, dst) in img.planes.iter_mut().enumerate().take(format.planes()) {
        let stride = frame.plane_stride()[plane] as usize;
        let data = frame.plane_data(plane as u32).unwrap();
        for (y, out) in dst.chunks_exact_mut(rows[plane].0).enumerate() {
            out.copy_from_slice(&data[y * stride..][..rows[plane].0]);
        }
    }
    img
}

/// Runs `frames` through a vfupscale with `properties` (CPU backend unless set) and returns the outputs and stats.
fn run(frames: &[Image], properties: &[(&str, &str)], out: Option<Size>) -> (Vec<Image>, gst::Structure) {
    run_with(frames, properties, out, |_, _, _| {})
}

/// [`run`], with `before(harness, i, buffer)` called before frame `i` is pushed (to flag it or send events).
fn run_with(
    frames: &[Image],
    properties: &[(&str, &str)],
    out: Option<Size>,
    mut before: impl FnMut(&mut Harness, usize, &mut gst::BufferRef),
) -> (Vec<Image>, gst::Structure) {
    init();
    let e = gst::ElementFactory::make("vfupscale").build().unwrap();
    e.set_property_from_str("backend", "cpu");
    for (k, v) in properties {
        e.set_property_from_str(k, v);
    }
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    let (size, format) = (frames[0].size, frames[0].format);
    let colorimetry = if format.planes() == 2 { "bt709" } else { "sRGB" };
    h.set_src_caps_str(&format!(
        "video/x-raw,format={format},width={},height={},colorimetry={colorimetry},framerate=25/1",
        size.width, size.height
    ));
    if let Some(o) = out {
        h.set_sink_caps_str(&format!("video/x-raw,format={format},width={},height={}", o.width, o.height));
    }
    let mut outputs = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let mut buf = buffer(f);
        before(&mut h, i, buf.make_mut());
        h.push(buf).unwrap();
        let buf = h.pull().unwrap();
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let s = caps.structure(0).unwrap();
        let osize = Size::new(s.get::<i32>("width").unwrap() as u32, s.get::<i32>("height").unwrap() as u32);
        outputs.push(image(format, osize, &buf));
    }
    let stats: gst::Structure = e.property("stats");
    (outputs, stats)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

const SIZE: Size = Size::new(96, 64);

#[test]
fn strength_zero_is_the_classic_backend_and_one_is_the_model_alone() {
    let model = real_model();
    let m = model.to_str().unwrap();
    let input = [frame(SIZE, 0)];
    let (classic, stats) = run(&input, &[("backend", "classic"), ("scale", "2")], None);
    assert_eq!(stats.get::<&str>(field::BACKEND).unwrap(), "classic");
    assert_eq!(classic[0].size, Size::new(192, 128));
    let (zero, _) = run(&input, &[("model", m), ("strength", "0")], None);
    assert!(
        zero[0] == classic[0],
        "strength 0 differs from backend=classic (PSNR {:.1} dB)",
        psnr(&zero[0].planes[0], &classic[0].planes[0])
    );
    let (model_only, _) = run(&input, &[("model", m)], None);
    let (one, stats) = run(&input, &[("model", m), ("strength", "1.0")], None);
    assert!(one[0] == model_only[0], "strength 1 differs from the model's output");
    assert_eq!(stats.get::<f64>(field::STRENGTH).unwrap(), 1.0);
    // the blend at 0.5 is the mix of the two (within the rounding of two conversions)
    let (half, stats) = run(&input, &[("model", m), ("strength", "0.5")], None);
    assert_eq!(stats.get::<f64>(field::STRENGTH).unwrap(), 0.5);
    let mix: Vec<u8> = classic[0].planes[0]
        .iter()
        .zip(&one[0].planes[0])
        .map(|(&a, &b)| (a as u16 + b as u16).div_ceil(2) as u8)
        .collect();
    let worst = half[0].planes[0].iter().zip(&mix).map(|(&a, &b)| a.abs_diff(b)).max().unwrap();
    let p = psnr(&half[0].planes[0], &mix);
    eprintln!("strength 0.5 vs the mean of strength 0 and 1: luma {p:.1} dB, largest difference {worst}");
    assert!(worst <= 2 && p >= 45.0, "largest difference {worst}, {p:.1} dB");
    assert!(half[0] != one[0] && half[0] != classic[0], "the blend is neither side");
    // Lanczos and bicubic differ, and both resemble the input
    let (bicubic, stats) = run(&input, &[("backend", "classic"), ("classic-method", "bicubic")], None);
    assert_eq!(stats.get::<&str>(field::CLASSIC_METHOD).unwrap(), "bicubic");
    assert!(bicubic[0] != classic[0]);
    let p = psnr(&bicubic[0].planes[0], &classic[0].planes[0]);
    assert!(p >= 35.0, "bicubic vs Lanczos: {p:.1} dB");
}

#[test]
fn outputs_smaller_than_the_models_are_negotiated_and_larger_ones_refused() {
    let model = nearest_model(2, None);
    let m = model.to_str().unwrap();
    let input = [frame(SIZE, 0)];
    for out in [Size::new(150, 100), Size::new(100, 40), Size::new(96, 64), Size::new(1, 1)] {
        let (o, _) = run(&input, &[("model", m)], Some(out));
        assert_eq!(o[0].size, out, "{out}");
        let (classic, _) = run(&input, &[("backend", "classic"), ("scale", "2")], Some(out));
        let p = psnr(&o[0].planes[0], &classic[0].planes[0]);
        eprintln!("{out}: x2 nearest then Lanczos vs Lanczos from the input: {p:.1} dB");
        assert!(p >= 25.0, "{out}: {p:.1} dB");
    }
    // the same size as the input, from the model's output shrunk by half: a downscale of a nearest-neighbour x2
    // image by two is the image
    let (same, _) = run(&input, &[("model", m)], Some(SIZE));
    let p = psnr(&same[0].planes[0], &input[0].planes[0]);
    assert!(p >= 40.0, "x2 then /2: {p:.1} dB");

    let desc = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=96,height=64 ! vfupscale name=up backend=cpu \
         model=\"{m}\" ! video/x-raw,width=200,height=130 ! fakesink"
    );
    let e = pipeline_error(&desc);
    assert!(e.contains("200x130 is larger than 2 × input 96x64"), "{e}");
}

#[test]
fn a_caps_filter_naming_only_the_format_in_any_memory_negotiates() {
    // what the vfupscale command puts after the element: `video/x-raw(ANY),format=NV12`
    let model = nearest_model(2, None);
    let desc = format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=32,height=32 ! queue ! vfupscale backend=cpu \
         model=\"{}\" ! capsfilter caps=\"video/x-raw(ANY),format=NV12\" ! fakesink name=sink",
        model.display()
    );
    let (messages, buffers) = run_pipeline(&desc);
    assert_eq!(buffers, 3, "{messages:?}");
    assert!(messages.iter().all(|(k, _)| *k != "error"), "{messages:?}");
}

/// Runs `desc` to its end and returns the error posted, or panics.
fn pipeline_error(desc: &str) -> String {
    let (messages, _) = run_pipeline(desc);
    messages.into_iter().find_map(|(kind, text)| (kind == "error").then_some(text)).expect("an error")
}

/// Runs `desc` until EOS or an error; returns the error and warning messages (kind, text with debug) and the
/// buffers that reached the sink named `sink` (if there is one).
fn run_pipeline(desc: &str) -> (Vec<(&'static str, String)>, u32) {
    init();
    let pipeline = gst::parse::launch(desc).unwrap();
    let buffers = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    if let Some(sink) = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("sink") {
        let counter = buffers.clone();
        sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    }
    let _ = pipeline.set_state(gst::State::Playing);
    let mut messages = Vec::new();
    for msg in pipeline.bus().unwrap().iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                messages.push(("error", format!("{} ({})", e.error(), e.debug().unwrap_or_default())));
                break;
            }
            gst::MessageView::Warning(w) => {
                messages.push(("warning", format!("{} ({})", w.error(), w.debug().unwrap_or_default())));
            }
            gst::MessageView::Eos(..) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (messages, buffers.load(std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn a_missing_or_corrupt_model_falls_back_to_classic_output_with_a_warning() {
    let corrupt = scratch().join("corrupt-model.onnx");
    std::fs::write(&corrupt, b"this is not an ONNX model").unwrap();
    for (model, reason) in [("/nonexistent/model.onnx", "No such file"), (corrupt.to_str().unwrap(), "ONNX")] {
        let desc = format!(
            "videotestsrc num-buffers=5 ! video/x-raw,format=NV12,width=64,height=48,framerate=25/1 ! vfupscale \
             name=up backend=cpu model={model} fallback=classic stats-interval=5 ! video/x-raw,width=128,height=96 ! \
             fakesink name=sink"
        );
        let (messages, buffers) = run_pipeline(&desc);
        assert_eq!(buffers, 5, "{model}: every frame, classic: {messages:?}");
        let warning = messages.iter().find(|(k, _)| *k == "warning").map(|(_, t)| t.as_str()).unwrap_or_default();
        assert!(
            warning.contains("classic lanczos output x2 instead") && warning.contains(model),
            "the warning names the cause: {messages:?}"
        );
        assert!(messages.iter().all(|(k, _)| *k != "error"), "{messages:?}");
        // the counters, in the stats posted
        let stats = posted_stats(&desc);
        assert_eq!(stats.get::<u64>(field::FALLBACK_STREAMS).unwrap(), 1, "{model}: {stats}");
        assert_eq!(stats.get::<&str>(field::BACKEND).unwrap(), "classic");
        // without the fallback it is today's error
        let (messages, buffers) = run_pipeline(&desc.replace("fallback=classic", ""));
        assert_eq!(buffers, 0, "{model}");
        assert!(messages.iter().any(|(k, t)| *k == "error" && t.contains(reason)), "{model}: {messages:?}");
    }
}

/// The last `vfupscale-stats` element message posted while running `desc`.
fn posted_stats(desc: &str) -> gst::Structure {
    init();
    let pipeline = gst::parse::launch(desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut last = None;
    for msg in pipeline.bus().unwrap().iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "vfupscale-stats") => {
                last = e.structure().map(|s| s.to_owned());
            }
            gst::MessageView::Eos(..) | gst::MessageView::Error(..) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    last.expect("stats were posted")
}

#[test]
fn frames_whose_inference_fails_fall_back_to_classic_output() {
    init();
    let desc = format!(
        "videotestsrc num-buffers=4 ! video/x-raw,format=NV12,width=16,height=8,framerate=25/1 ! vfupscale name=up \
         backend=cpu fallback=classic stats-interval=4 model={} ! fakesink name=sink",
        failing_model().display()
    );
    let (messages, buffers) = run_pipeline(&desc);
    assert_eq!(buffers, 4, "every frame: {messages:?}");
    let warnings: Vec<&String> = messages.iter().filter(|(k, _)| *k == "warning").map(|(_, t)| t).collect();
    assert_eq!(warnings.len(), 1, "one warning per cause, not per frame: {warnings:?}");
    assert!(
        warnings[0].contains("The model failed on the frame at 0:00:00.000000000, classic output instead")
            && warnings[0].contains("ONNX Runtime"),
        "{warnings:?}"
    );
    let stats = posted_stats(&desc);
    assert_eq!(stats.get::<u64>(field::FALLBACK_FRAMES).unwrap(), 4, "{stats}");
    assert_eq!(stats.get::<u64>(field::FALLBACK_STREAMS).unwrap(), 0);
    assert_eq!(stats.get::<u64>(field::FRAMES).unwrap(), 4);
}

/// A x2 "model" whose output is the nearest-neighbour upscale plus uniform noise of ±`amplitude`, new on every
/// run: frame-wise GAN flicker, exaggerated.
fn noisy_model(amplitude: f32) -> std::path::PathBuf {
    let path = scratch().join(format!("noisy-{amplitude}.onnx"));
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &dynamic(), &dynamic());
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let up = g.op("Resize", "up", &["input", "", &scales], vec![attr_string("mode", "nearest")]);
    let noise =
        g.op("RandomUniformLike", "noise", &[&up], vec![attr_float("low", -amplitude), attr_float("high", amplitude)]);
    g.op_into("Add", &[&up, &noise], "output", vec![]);
    write_model(&path, &g.into_model("noisy", &[(META_SCALE, "2".into())])).unwrap();
    path
}

#[test]
fn temporal_stability_halves_the_flicker_of_static_regions_and_leaves_motion_alone() {
    let model = noisy_model(0.04);
    let m = model.to_str().unwrap();
    let still: Vec<Image> = (0..12).map(|_| frame(SIZE, 0)).collect();
    let (plain, _) = run(&still, &[("model", m)], None);
    let (stable, stats) = run(&still, &[("model", m), ("temporal-stability", "0.8")], None);
    assert_eq!(stats.get::<f64>(field::TEMPORAL_STABILITY).unwrap(), 0.8f32 as f64);
    let (before, after) = (flicker(&still, &plain), flicker(&still, &stable));
    eprintln!("static input, noisy model: flicker {before} without, {after} with temporal-stability 0.8");
    assert!(before.output > 1.0, "the fake model flickers: {before}");
    assert!(after.output <= 0.5 * before.output, "{before} → {after}");

    // a moving block over a static background, with a clean model: the output moves exactly as without
    let clean = nearest_model(2, None);
    let c = clean.to_str().unwrap();
    let moving: Vec<Image> = (0..8).map(|t| frame(SIZE, 8 * t)).collect();
    let (plain, _) = run(&moving, &[("model", c)], None);
    let (stable, _) = run(&moving, &[("model", c), ("temporal-stability", "0.8")], None);
    for (t, (a, b)) in plain.iter().zip(&stable).enumerate() {
        let (l, ch) = (psnr(&a.planes[0], &b.planes[0]), psnr(&a.planes[1], &b.planes[1]));
        assert!(l >= 50.0 && ch >= 50.0, "frame {t}: luma {l:.1} dB, chroma {ch:.1} dB");
    }
    // and with the noisy model the moving frames' quality against the clean output changes by under 1 dB
    let (noisy, _) = run(&moving, &[("model", m)], None);
    let (noisy_stable, _) = run(&moving, &[("model", m), ("temporal-stability", "0.8")], None);
    for t in 1..moving.len() {
        let (a, b) =
            (psnr(&noisy[t].planes[0], &plain[t].planes[0]), psnr(&noisy_stable[t].planes[0], &plain[t].planes[0]));
        eprintln!("moving frame {t}: {a:.2} dB without, {b:.2} dB with temporal-stability 0.8 (vs the clean model)");
        assert!(b >= a - 1.0, "frame {t}: {a:.2} → {b:.2} dB");
    }
}

#[test]
fn temporal_history_starts_afresh_after_a_discontinuity_and_a_flush() {
    let model = nearest_model(2, None);
    let props = [("model", model.to_str().unwrap()), ("temporal-stability", "0.8")];
    let a = frame(SIZE, 0);
    // b differs from a by less than the static threshold everywhere: blended with a's history unless it was reset
    let mut b = a.clone();
    b.planes[0].iter_mut().for_each(|v| *v = v.saturating_add(2));
    let (alone, _) = run(&[b.clone()], &props, None);
    let sequence = [a.clone(), a.clone(), b.clone()];
    let (kept, _) = run(&sequence, &props, None);
    assert!(kept[2] != alone[0], "a static change is blended with the history");
    let (discont, _) = run_with(&sequence, &props, None, |_, i, buf| {
        if i == 2 {
            buf.set_flags(gst::BufferFlags::DISCONT);
        }
    });
    assert!(discont[2] == alone[0], "the history is reset at a discontinuity");
    let (flushed, _) = run_with(&sequence, &props, None, |h, i, _| {
        if i == 2 {
            assert!(h.push_event(gst::event::FlushStart::new()));
            assert!(h.push_event(gst::event::FlushStop::new(true)));
            assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
        }
    });
    assert!(flushed[2] == alone[0], "the history is reset by a flush");
}

/// A test picture in P010 or RGBA: `frame`'s luma as 10-bit luma (chroma varying), or as R, 255 − G, B/2 with alpha
/// opaque on the left half and about 100 on the right.
fn frame_as(format: PixelFormat, size: Size, offset: usize) -> Image {
    let nv12 = frame(size, offset);
    let mut img = Image::new(format, size);
    let (w, l) = (size.width as usize, format.layout());
    for y in 0..size.height as usize {
        for x in 0..w {
            let v = nv12.planes[0][y * w + x] as u16;
            match format {
                PixelFormat::P010 => img.planes[0][2 * (y * w + x)..][..2]
                    .copy_from_slice(&((v * 4 + (x as u16 % 4)) << 6).to_le_bytes()),
                _ => {
                    let px = &mut img.planes[0][(y * w + x) * l.step[0] as usize..];
                    px[..3].copy_from_slice(&[v as u8, (255 - v) as u8, (v / 2) as u8]);
                    px[3] = if x < w / 2 { 255 } else { 100 + (y % 7) as u8 };
                }
            }
        }
    }
    if format == PixelFormat::P010 {
        for (i, c) in img.planes[1].chunks_exact_mut(2).enumerate() {
            c.copy_from_slice(&(((400 + (i % 9) * 20) as u16) << 6).to_le_bytes());
        }
    }
    img
}

#[test]
fn p010_and_rgba_take_the_strength_blend_smaller_outputs_and_keep_alpha() {
    let model = nearest_model(2, None);
    let m = model.to_str().unwrap();
    for format in [PixelFormat::P010, PixelFormat::Rgba] {
        let input = [frame_as(format, SIZE, 0)];
        let (classic, _) = run(&input, &[("backend", "classic"), ("scale", "2")], None);
        let (zero, _) = run(&input, &[("model", m), ("strength", "0")], None);
        assert!(zero[0] == classic[0], "{format}: strength 0 differs from backend=classic");
        assert_eq!(classic[0].format, format);
        let (half, _) = run(&input, &[("model", m), ("strength", "0.5")], Some(Size::new(150, 100)));
        assert_eq!((half[0].format, half[0].size), (format, Size::new(150, 100)));
        let (reference, _) = run(&input, &[("backend", "classic"), ("scale", "2")], Some(Size::new(150, 100)));
        // P010 compared on the high byte of each sample (its 8 most significant bits)
        let msb = |img: &Image| -> Vec<u8> {
            let p = &img.planes[0];
            if format == PixelFormat::P010 { p.iter().skip(1).step_by(2).copied().collect() } else { p.clone() }
        };
        let p = psnr(&msb(&half[0]), &msb(&reference[0]));
        assert!(p >= 30.0, "{format}: the blend at 150x100 vs classic: {p:.1} dB");
        if format == PixelFormat::Rgba {
            // alpha resampled from the input: opaque on the left, about 100..106 on the right
            let alpha = |img: &Image, x: usize, y: usize| img.planes[0][(y * img.size.width as usize + x) * 4 + 3];
            assert_eq!(alpha(&half[0], 10, 50), 255);
            assert!((100..=106).contains(&alpha(&half[0], 140, 50)), "{}", alpha(&half[0], 140, 50));
            assert_eq!(alpha(&zero[0], 10, 10), 255);
        }
    }
}
