// SPDX-License-Identifier: MPL-2.0

//! GPU tests of the hybrid features (a module of the `gpu` suite, run by `tests/gpu/run.sh`): on NVDEC frames the
//! classic backend, the strength blend, smaller outputs and temporal stabilisation give the CPU path's bytes (with a
//! model that is exact on both: nearest-neighbour x2 on ONNX Runtime's CUDA provider in fp32); the flicker metric
//! before and after on a real clip with the real model; the classic element alone at 1080p → 4K, timed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gst::prelude::*;
use vfupscale::frame::{Image, PixelFormat, Size};
use vfupscale::stats::field;
use vfupscale::temporal::flicker;

use super::{Frame, clip, collect, decoder, model, psnr, run};
use crate::fixtures::nearest_model;

/// A clip with a static background and a moving ball (what temporal stabilisation is for).
fn ball_clip(width: u32, height: u32, frames: u32) -> PathBuf {
    crate::init();
    let path = crate::scratch().join(format!("ball-{width}x{height}-{frames}.mp4"));
    if !path.exists() {
        let desc = format!(
            "videotestsrc num-buffers={frames} pattern=ball background-color=0xff3060a0 ! \
             video/x-raw,format=I420,width={width},height={height},framerate=30/1 ! x264enc speed-preset=ultrafast \
             key-int-max=30 ! h264parse ! mp4mux ! filesink location={}",
            path.display()
        );
        run(&gst::parse::launch(&desc).unwrap());
    }
    path
}

/// NVDEC → vfupscale (`properties`) → cudadownload: every frame's pixels, and the stats.
fn on_gpu(codec: &str, clip: &Path, properties: &str, out_caps: &str) -> (Vec<Frame>, gst::Structure) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale name=up {properties} ! {out_caps} cudadownload ! appsink name=sink \
         sync=false",
        clip.display(),
        decoder(codec)
    ))
    .unwrap();
    let (frames, _) = collect(&pipeline, usize::MAX);
    (frames, super::stats(&pipeline))
}

/// The decoded frames (system memory) and their caps.
fn decoded(codec: &str, clip: &Path) -> (Vec<Frame>, gst::Caps) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! video/x-raw ! appsink name=sink sync=false",
        clip.display(),
        decoder(codec)
    ))
    .unwrap();
    collect(&pipeline, usize::MAX)
}

/// The same frames through `appsrc ! vfupscale backend=cpu (properties) ! (out_caps) appsink`, the first one marked
/// as a discontinuity (as the decoder's first frame is); the outputs tightly packed.
pub fn on_cpu(frames: &[Frame], caps: &gst::Caps, properties: &str, out_caps: &str) -> Vec<Vec<u8>> {
    let desc = format!(
        "appsrc name=src format=time ! vfupscale backend=cpu {properties} ! {out_caps} appsink name=sink sync=false"
    );
    let (pipeline, src, sink) = super::app_pipeline(&desc, caps);
    let out = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut b = gst::Buffer::from_mut_slice(f.pixels.clone());
            let b_mut = b.get_mut().unwrap();
            b_mut.set_pts(f.pts);
            if i == 0 {
                b_mut.set_flags(gst::BufferFlags::DISCONT);
            }
            src.push_buffer(b).unwrap();
            let sample = sink.pull_sample().expect("one output per input");
            let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
            super::packed_planes(
                &gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap(),
            )
        })
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn hybrid_features_on_nvdec_frames_equal_the_cpu_path() {
    let nearest = nearest_model(2, None);
    let exact = format!("model={} precision=fp32", nearest.display());
    // NV12 from H.264, and P010 from HEVC Main 10 (kept as P010 by the element)
    for (codec, clip, format) in
        [("h264", ball_clip(640, 360, 24), "NV12"), ("h265-10", clip("h265-10", 640, 360, 12), "P010_10LE")]
    {
        let (frames, caps) = decoded(codec, &clip);
        let small = format!("video/x-raw(memory:CUDAMemory),format={format},width=1000,height=560 !");
        let small_cpu = format!("video/x-raw,format={format},width=1000,height=560 !");
        let cases = [
            ("backend=classic scale=2".to_string(), String::new(), String::new()),
            ("backend=classic scale=3 classic-method=bicubic".to_string(), String::new(), String::new()),
            (format!("backend=cuda {exact} strength=0.6"), String::new(), String::new()),
            (format!("backend=cuda {exact} strength=0.6"), small.clone(), small_cpu.clone()),
            (format!("backend=cuda {exact} temporal-stability=0.8"), String::new(), String::new()),
            (
                format!("backend=cuda {exact} temporal-stability=0.8 strength=0.7 tile-size=128"),
                String::new(),
                String::new(),
            ),
            (format!("backend=cuda {exact} temporal-stability=0.8 async-depth=2"), small, small_cpu),
        ];
        for (properties, gpu_caps, cpu_caps) in cases {
            let (gpu, stats) = on_gpu(codec, &clip, &properties, &gpu_caps);
            let cpu_properties = properties.replace("backend=cuda", "").replace("async-depth=2", "");
            let cpu = on_cpu(&frames, &caps, &cpu_properties, &cpu_caps);
            assert_eq!(gpu.len(), frames.len(), "{codec} {properties}: frames in = frames out");
            assert_eq!(stats.get::<u64>(field::ZERO_COPY_INPUTS).unwrap(), frames.len() as u64, "{properties}");
            for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                let db = psnr(&g.pixels, c);
                assert!(g.pixels == *c, "{codec} {properties}: frame {i} differs from the CPU path ({db:.1} dB)");
            }
            eprintln!("{codec} {properties} {gpu_caps}: {} frames equal the CPU path; {stats}", gpu.len());
        }
    }
}

/// The luma and chroma of tightly packed NV12 frames of `size` as images.
fn images(frames: &[Frame], size: Size) -> Vec<Image> {
    let luma = size.pixels();
    let planes = |f: &Frame| [f.pixels[..luma].to_vec(), f.pixels[luma..].to_vec()];
    frames.iter().map(|f| Image { format: PixelFormat::Nv12, size, planes: planes(f) }).collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn flicker_before_and_after_temporal_stability_on_real_clips() {
    for (name, clip, size) in [
        ("ball (static background)", ball_clip(640, 360, 60), Size::new(640, 360)),
        ("smpte (moving pattern)", clip("h264", 640, 360, 30), Size::new(640, 360)),
    ] {
        let (input, _) = decoded("h264", &clip);
        let inputs = images(&input, size);
        let model = model();
        let mut measured = Vec::new();
        for stability in ["0", "0.5", "0.8"] {
            let properties = format!("model={} temporal-stability={stability}", model.display());
            let (out, stats) = on_gpu("h264", &clip, &properties, "");
            let _ = stats;
            let scale = ((out[0].pixels.len() * 2 / 3 / size.pixels()) as f64).sqrt().round() as u32;
            let f = flicker(&inputs, &images(&out, size.scaled(scale)));
            eprintln!("{name}, realesr-animevideov3-x2, temporal-stability {stability}: flicker {f}");
            measured.push(f.output);
        }
        assert!(measured[2] <= measured[0], "{name}: stabilisation never adds flicker: {measured:?}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn classic_element_alone_1080p_to_4k() {
    let clip = clip("h264", 1920, 1080, 30);
    let frames = 300;
    let up = gst::ElementFactory::make("vfupscale")
        .name("up")
        .property_from_str("backend", "classic")
        .property("scale", 2u32)
        .build()
        .unwrap();
    up.set_state(gst::State::Ready).unwrap();
    // decode into the element's own context first, as vfupscale-bench's (b) does
    let mut query = gst::query::Context::new("gst.cuda.context");
    assert!(up.static_pad("sink").unwrap().query(&mut query), "a CUDA context query answered");
    let context = query.context_owned().unwrap();
    let decode = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! video/x-raw(memory:CUDAMemory),format=NV12 ! appsink name=sink sync=false",
        clip.display(),
        decoder("h264")
    ))
    .unwrap();
    decode.set_context(&context);
    let sink = decode.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap();
    let sink = sink.downcast::<gst_app::AppSink>().unwrap();
    decode.set_state(gst::State::Playing).unwrap();
    let (mut decoded, mut caps) = (Vec::new(), None);
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
        decoded.push(sample.buffer_owned().unwrap());
    }
    decode.set_state(gst::State::Null).unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder().caps(&caps.unwrap()).format(gst::Format::Time).build();
    let fakesink = gst::ElementFactory::make("fakesink").property("sync", false).build().unwrap();
    pipeline.add_many([src.upcast_ref(), &up, &fakesink]).unwrap();
    gst::Element::link_many([src.upcast_ref(), &up, &fakesink]).unwrap();
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    fakesink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        seen.lock().unwrap().push(Instant::now());
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let duration = gst::ClockTime::from_nseconds(33_333_333);
    for (i, frame) in decoded.iter().cycle().take(frames).enumerate() {
        let mut b = frame.copy();
        let m = b.make_mut();
        m.set_pts(duration * i as u64);
        m.set_duration(duration);
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let stats: gst::Structure = up.property("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(..))), "{msg:?}");
    let times = times.lock().unwrap();
    assert_eq!(times.len(), frames);
    let warm = 20;
    let ms = (times[frames - 1] - times[warm]).as_secs_f64() * 1e3 / (frames - 1 - warm) as f64;
    eprintln!(
        "classic lanczos 1920x1080 -> 3840x2160, the element alone: {ms:.3} ms per frame ({:.0} fps); GPU time of \
         the composition (convert-out mean) {:.3} ms; {stats}",
        1e3 / ms,
        stats.get::<f64>(field::CONVERT_OUT_MEAN_MS).unwrap()
    );
    assert_eq!(stats.get::<&str>(field::BACKEND).unwrap(), "classic");
    assert!(ms < 16.0, "{ms:.2} ms per frame");
}
