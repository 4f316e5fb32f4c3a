// SPDX-License-Identifier: MPL-2.0

//! GPU suite of the element (run on an NVIDIA host by `tests/gpu/run.sh`; ignored elsewhere).
//!
//! Real H.264/H.265 clips are encoded on the spot, decoded with NVDEC into CUDA memory, upscaled, and compared
//! with the CPU path on the same decoded frames. The `stats` counters show how every input frame was read: zero
//! copy (decoded into our context), copied from another context, or uploaded from host memory.

use std::path::{Path, PathBuf};

use gst::prelude::*;
use gst_video::prelude::*;
use vfupscale::Backend;
use vfupscale::stats::field;

mod common;
use common::init;
mod fixtures;
// classic backend, strength, smaller outputs and temporal stabilisation on NVDEC frames; the classic benchmark
mod gpu_hybrid;

/// This suite's scratch directory.
fn scratch() -> PathBuf {
    common::scratch_dir("gpu-tests")
}

/// Runs a pipeline to EOS, failing on any error.
fn run(pipeline: &gst::Element) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null).unwrap();
                panic!("{}: {} ({:?})", e.src().map(|s| s.path_string()).unwrap_or_default(), e.error(), e.debug());
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// HDR10 description of the Main 10 clips: x265enc writes it into the stream, h265parse reads it back into caps.
const HDR10: &str = "colorimetry=bt2100-pq,mastering-display-info=(string)35400:14600:8500:39850:6550:2300:15635:16450:\
                     10000000:1,content-light-level=(string)1000:400";

/// Encodes a moving test clip (B-frames for H.264, so decode order differs from presentation order); `h265-10` is
/// HEVC Main 10 with HDR10 metadata.
fn clip(codec: &str, width: u32, height: u32, frames: u32) -> PathBuf {
    init();
    let path = scratch().join(format!("{codec}-{width}x{height}-{frames}.mp4"));
    if path.exists() {
        return path;
    }
    let (format, encoder) = match codec {
        "h264" => ("I420", "x264enc speed-preset=ultrafast bframes=2 key-int-max=12 ! h264parse"),
        "h265" => ("I420", "x265enc speed-preset=ultrafast key-int-max=12 ! h265parse"),
        "h265-10" => (&*format!("I420_10LE,{HDR10}"), "x265enc speed-preset=ultrafast key-int-max=12 ! h265parse"),
        other => panic!("codec {other}"),
    };
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=7 ! \
         video/x-raw,format={format},width={width},height={height},framerate=30/1 ! {encoder} ! mp4mux ! \
         filesink location={}",
        path.display()
    );
    run(&gst::parse::launch(&desc).unwrap());
    path
}

/// A decoded or upscaled frame: timestamp and tightly packed planes (NV12 or P010).
struct Frame {
    pts: Option<gst::ClockTime>,
    pixels: Vec<u8>,
}

/// The planes of `frame` without row padding.
fn packed_planes(frame: &gst_video::VideoFrameRef<&gst::BufferRef>) -> Vec<u8> {
    let fi = frame.format_info();
    let mut out = Vec::new();
    for plane in 0..frame.n_planes() {
        // the plane's first component: its subsampling and bytes per pixel
        let c = (0..fi.n_components() as usize).find(|&c| fi.plane()[c] == plane).unwrap();
        let (w, h) = (frame.width().div_ceil(1 << fi.w_sub()[c]), frame.height().div_ceil(1 << fi.h_sub()[c]));
        let row = w as usize * fi.pixel_stride()[c] as usize;
        let stride = frame.plane_stride()[plane as usize] as usize;
        let data = frame.plane_data(plane).unwrap();
        for r in 0..h as usize {
            out.extend_from_slice(&data[r * stride..r * stride + row]);
        }
    }
    out
}

/// Collects frames from `appsink name=sink`, keeping the pixels of the first `keep`.
fn collect(pipeline: &gst::Element, keep: usize) -> (Vec<Frame>, gst::Caps) {
    let sink = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap();
    let sink = sink.downcast::<gst_app::AppSink>().unwrap();
    let frames = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), None::<gst::Caps>)));
    let f = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let caps = sample.caps().unwrap().to_owned();
                let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
                let buffer = sample.buffer().unwrap();
                let mut guard = f.lock().unwrap();
                let pixels = if guard.0.len() < keep {
                    // a host map: GStreamer downloads CUDA memory for this test's own comparison
                    packed_planes(&gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap())
                } else {
                    Vec::new()
                };
                guard.0.push(Frame { pts: buffer.pts(), pixels });
                guard.1.get_or_insert(caps);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    run(pipeline);
    let mut guard = frames.lock().unwrap();
    (std::mem::take(&mut guard.0), guard.1.take().expect("at least one frame"))
}

fn decoder(codec: &str) -> String {
    let codec = codec.trim_end_matches("-10");
    format!("qtdemux ! {codec}parse ! nv{codec}dec")
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// PSNR of P010 planes, on their 10-bit values.
fn psnr10(a: &[u8], b: &[u8]) -> f64 {
    let values =
        |p: &[u8]| -> Vec<f64> { p.chunks(2).map(|w| (u16::from_le_bytes([w[0], w[1]]) >> 6) as f64).collect() };
    let (a, b) = (values(a), values(b));
    let mse = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (1023.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// With `VFUPSCALE_TEST_DUMP=DIR`, writes the input and both outputs of a comparison as raw NV12 for inspection.
fn dump(name: &str, input: &[u8], gpu: &[u8], cpu: &[u8]) {
    if let Some(dir) = std::env::var_os("VFUPSCALE_TEST_DUMP") {
        for (what, data) in [("input", input), ("gpu", gpu), ("cpu", cpu)] {
            std::fs::write(Path::new(&dir).join(format!("{name}-{what}.pixels")), data).unwrap();
        }
    }
}

fn model() -> PathBuf {
    installed(vfupscale::models::DEFAULT_MODEL)
}

fn installed(name: &str) -> PathBuf {
    let p = vfupscale::models::model_path(name);
    assert!(p.exists(), "{} missing: run vfupscale-model fetch", p.display());
    p
}

/// Upscales system-memory frames described by `caps` (the same caps the GPU path saw, colorimetry included) with
/// the CPU backend: `appsrc ! vfupscale backend=cpu ! appsink`.
fn cpu_upscale(frames: &[Frame], caps: &gst::Caps, model: &Path) -> Vec<Vec<u8>> {
    gpu_hybrid::on_cpu(frames, caps, &format!("model={}", model.display()), "")
}

fn stats(pipeline: &gst::Element) -> gst::Structure {
    pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("up").unwrap().property("stats")
}

/// The scale of the model `vfupscale name=up` ran (kept after the pipeline stopped).
fn scale(pipeline: &gst::Element) -> u32 {
    let scale = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("up").unwrap().property::<u32>("scale");
    assert!(scale > 1, "the element reports its model's scale");
    scale
}

fn gpu_matches_cpu(codec: &str, width: u32, height: u32) {
    gpu_model_matches_cpu(codec, width, height, &model());
}

/// NVDEC → vfupscale (auto: the native kernels) → cudadownload against the CPU element on the decoded frames.
fn gpu_model_matches_cpu(codec: &str, width: u32, height: u32, model: &Path) {
    let frames = 20;
    let compare = 2;
    let clip = clip(codec, width, height, frames);
    // NVDEC decodes Main 10 into P010, which the element keeps
    let (format, bytes) = if codec == "h265-10" { ("P010_10LE", 2) } else { ("NV12", 1) };

    // frames in: what NVDEC decodes, in system memory
    let reference = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! video/x-raw,format={format} ! appsink name=sink sync=false",
        clip.display(),
        decoder(codec)
    ))
    .unwrap();
    let (decoded, decoded_caps) = collect(&reference, compare);

    // frames out: decode into CUDA memory, upscale on the GPU, download at the end
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale name=up model={} ! cudadownload ! video/x-raw,format={format} ! \
         appsink name=sink sync=false",
        clip.display(),
        decoder(codec),
        model.display()
    ))
    .unwrap();
    let up = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("up").unwrap();
    let up_caps = std::sync::Arc::new(std::sync::Mutex::new(None::<gst::Caps>));
    let seen = up_caps.clone();
    up.static_pad("src").unwrap().add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && let gst::EventView::Caps(c) = e.view()
        {
            *seen.lock().unwrap() = Some(c.caps_owned());
        }
        gst::PadProbeReturn::Ok
    });
    let (upscaled, caps) = collect(&pipeline, compare);
    let stats = stats(&pipeline);
    let scale = scale(&pipeline);
    eprintln!("{codec} {width}x{height} x{scale}: {stats}");

    assert_eq!(decoded.len(), frames as usize, "decoder output");
    assert_eq!(upscaled.len(), decoded.len(), "frames in == frames out");
    let pts_in: Vec<_> = decoded.iter().map(|f| f.pts).collect();
    let pts_out: Vec<_> = upscaled.iter().map(|f| f.pts).collect();
    assert_eq!(pts_in, pts_out, "identical timestamps");
    let s = caps.structure(0).unwrap();
    assert_eq!(
        (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()),
        ((scale * width) as i32, (scale * height) as i32)
    );
    // what vfupscale itself output (before cudadownload): CUDA memory, the decoder's format, its colour description
    let up_caps = up_caps.lock().unwrap().clone().expect("caps on vfupscale's src pad");
    assert!(up_caps.features(0).unwrap().contains("memory:CUDAMemory"), "{up_caps}");
    let out = up_caps.structure(0).unwrap();
    assert_eq!(out.get::<&str>("format").unwrap(), format);
    if codec == "h265-10" {
        let s_in = decoded_caps.structure(0).unwrap();
        for field in ["colorimetry", "mastering-display-info", "content-light-level"] {
            let given =
                s_in.get::<&str>(field).unwrap_or_else(|_| panic!("{field} in the decoded caps {decoded_caps}"));
            assert_eq!(out.get::<&str>(field).ok(), Some(given), "{field} carried: {up_caps}");
        }
    }
    // the default model (SRVGGNetCompact), realesrgan-x4plus (RRDBNet) and realcugan-up2x (on a Hopper GPU) run on the
    // native kernels
    assert_eq!(stats.get::<&str>("backend").unwrap(), "native");
    assert_eq!(stats.get::<u64>("frames").unwrap(), frames as u64);
    assert_eq!(stats.get::<u64>("zero-copy-inputs").unwrap(), frames as u64, "every frame read in place");
    assert_eq!(stats.get::<u64>("foreign-context-copies").unwrap(), 0);
    assert_eq!(stats.get::<u64>("host-uploads").unwrap(), 0);

    let cpu = cpu_upscale(&decoded[..compare], &decoded_caps, model);
    dump(&format!("{codec}-{height}p"), &decoded[0].pixels, &upscaled[0].pixels, &cpu[0]);
    let luma = (scale * width * scale * height) as usize * bytes;
    let psnr = if bytes == 2 { psnr10 } else { psnr };
    for (i, (gpu, cpu)) in upscaled.iter().zip(&cpu).enumerate() {
        let (l, c) = (psnr(&gpu.pixels[..luma], &cpu[..luma]), psnr(&gpu.pixels[luma..], &cpu[luma..]));
        eprintln!("{codec} {width}x{height} frame {i}: GPU (fp16) vs CPU (fp32) luma {l:.1} dB, chroma {c:.1} dB");
        assert!(l >= 40.0, "frame {i}: luma PSNR {l:.1} dB");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h264_720p_gpu_matches_cpu() {
    gpu_matches_cpu("h264", 1280, 720);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h264_realesrgan_x4plus_gpu_matches_cpu() {
    // the native dense kernels (RRDBNet) end to end; small, as the CPU reference runs 36 MFLOP per pixel
    gpu_model_matches_cpu("h264", 320, 184, &installed("realesrgan-x4plus"));
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h265_realcugan_up2x_gpu_matches_cpu() {
    // the native UNet kernels (space to depth, squeeze and excitation, the skip adds, the crop) end to end; a height
    // of 2 mod 4 pairs the inner UNet's rows from the other parity (widths stay multiples of 4: the CPU reference
    // pushes tightly packed rows)
    gpu_model_matches_cpu("h265", 480, 270, &installed("realcugan-up2x"));
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h265_720p_gpu_matches_cpu() {
    gpu_matches_cpu("h265", 1280, 720);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h264_1080p_gpu_matches_cpu() {
    gpu_matches_cpu("h264", 1920, 1080);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h265_1080p_gpu_matches_cpu() {
    gpu_matches_cpu("h265", 1920, 1080);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn h265_main10_hdr10_1080p_gpu_matches_cpu_in_p010() {
    gpu_matches_cpu("h265-10", 1920, 1080);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn outputs_cuda_memory_nv12_for_encoders() {
    init();
    let clip = clip("h264", 640, 360, 6);
    // the caps nvh265enc accepts: video/x-raw(memory:CUDAMemory), format=NV12
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale model={} ! video/x-raw(memory:CUDAMemory),format=NV12 ! \
         appsink name=sink sync=false",
        clip.display(),
        decoder("h264"),
        model().display()
    ))
    .unwrap();
    let sink = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap();
    let appsink = sink.downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = appsink.pull_sample().expect("a sample");
    let caps = sample.caps().unwrap();
    assert!(caps.features(0).unwrap().contains("memory:CUDAMemory"), "{caps}");
    assert_eq!(caps.structure(0).unwrap().get::<&str>("format").unwrap(), "NV12");
    let mem = sample.buffer().unwrap().peek_memory(0);
    // GST_CUDA_MEMORY_TYPE_NAME
    assert!(mem.is_type("gst.cuda.memory"), "output buffers hold GstCudaMemory, not {:?}", mem.allocator());
    pipeline.set_state(gst::State::Null).unwrap();
}

/// CUDA buffers made by `cudaupload` in a pipeline of its own, hence in a CUDA context GStreamer created itself.
fn foreign_cuda_buffers(n: u32) -> (Vec<gst::Buffer>, gst::Caps, Vec<Frame>, gst::Caps) {
    let desc = "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,format=NV12,width=320,height=240,framerate=30/1 ! \
                tee name=t ! queue ! cudaupload ! video/x-raw(memory:CUDAMemory) ! appsink name=sink sync=false \
                t. ! queue ! appsink name=host sync=false";
    let pipeline = gst::parse::launch(&desc.replace("{n}", &n.to_string())).unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let host = bin.by_name("host").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut buffers = Vec::new();
    let mut caps = None;
    while let Ok(s) = sink.pull_sample() {
        caps.get_or_insert_with(|| s.caps().unwrap().to_owned());
        buffers.push(s.buffer_owned().unwrap());
    }
    let mut frames = Vec::new();
    let mut host_caps = None;
    while let Ok(s) = host.pull_sample() {
        host_caps.get_or_insert_with(|| s.caps().unwrap().to_owned());
        let b = s.buffer().unwrap();
        frames.push(Frame { pts: b.pts(), pixels: b.map_readable().unwrap().to_vec() });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (buffers, caps.unwrap(), frames, host_caps.unwrap())
}

/// `desc` (with an `appsrc name=src` taking `caps` and an `appsink name=sink`), playing: the pipeline, its source
/// and its sink.
fn app_pipeline(desc: &str, caps: &gst::Caps) -> (gst::Element, gst_app::AppSrc, gst_app::AppSink) {
    let pipeline = gst::parse::launch(desc).unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    src.set_caps(Some(caps));
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, src, sink)
}

/// Pushes `buffers` through `appsrc ! vfupscale ! cudadownload ! appsink`; returns outputs, stats and the bytes of
/// an output frame's luma plane.
fn push_through(buffers: Vec<gst::Buffer>, caps: &gst::Caps) -> (Vec<Vec<u8>>, gst::Structure, usize) {
    let desc = format!(
        "appsrc name=src format=time ! vfupscale name=up model={} ! cudadownload ! video/x-raw,format=NV12 ! \
         appsink name=sink sync=false",
        model().display()
    );
    let (pipeline, src, sink) = app_pipeline(&desc, caps);
    let n = buffers.len();
    for b in buffers {
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let s = sink.pull_sample().expect("one output per input");
        out.push(s.buffer().unwrap().map_readable().unwrap().to_vec());
    }
    let stats = stats(&pipeline);
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let scale = scale(&pipeline);
    pipeline.set_state(gst::State::Null).unwrap();
    (out, stats, (scale * info.width() * scale * info.height()) as usize)
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn buffers_from_another_cuda_context_are_copied_not_rejected() {
    init();
    let (buffers, caps, host_frames, host_caps) = foreign_cuda_buffers(6);
    assert_eq!(buffers.len(), 6);
    let (out, stats, luma) = push_through(buffers, &caps);
    eprintln!("foreign context: {stats}");
    assert_eq!(stats.get::<u64>("foreign-context-copies").unwrap(), 6);
    assert_eq!(stats.get::<u64>("zero-copy-inputs").unwrap(), 0);
    let cpu = cpu_upscale(&host_frames, &host_caps, &model());
    for (i, (g, c)) in out.iter().zip(&cpu).enumerate() {
        let l = psnr(&g[..luma], &c[..luma]);
        assert!(l >= 40.0, "frame {i}: luma PSNR {l:.1} dB");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn host_memory_under_cuda_caps_is_uploaded() {
    init();
    let (_, caps, host_frames, host_caps) = foreign_cuda_buffers(4);
    let buffers: Vec<gst::Buffer> = host_frames.iter().map(|f| gst::Buffer::from_mut_slice(f.pixels.clone())).collect();
    let (out, stats, luma) = push_through(buffers, &caps);
    assert_eq!(stats.get::<u64>("host-uploads").unwrap(), 4);
    let cpu = cpu_upscale(&host_frames, &host_caps, &model());
    for (g, c) in out.iter().zip(&cpu) {
        assert!(psnr(&g[..luma], &c[..luma]) >= 40.0);
    }
}

/// Without TensorRT (the H100/H200 hosts): asked for, a clear error; auto falls back to CUDA. With
/// `VFUPSCALE_EXPECT_TENSORRT` set (a host with TensorRT): asked for, it runs, and auto picks it first.
#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn tensorrt_without_its_libraries_fails_cleanly_and_auto_falls_back() {
    init();
    let clip = clip("h264", 640, 360, 6);
    let base = format!(
        "filesrc location={} ! {} ! vfupscale name=up model={}",
        clip.display(),
        decoder("h264"),
        model().display()
    );
    if std::env::var_os("VFUPSCALE_EXPECT_TENSORRT").is_some() {
        // fp32 for auto, so that the native kernels (fp16 only) are not a candidate
        for properties in ["backend=tensorrt", "precision=fp32"] {
            let pipeline = gst::parse::launch(&format!("{base} {properties} ! fakesink")).unwrap();
            run(&pipeline);
            let stats = stats(&pipeline);
            eprintln!("{properties}: {stats}");
            assert_eq!(stats.get::<&str>("backend").unwrap(), "tensorrt", "{properties}");
            assert_eq!(stats.get::<u64>("frames").unwrap(), 6, "{properties}");
        }
        return;
    }
    // explicitly requested: a clear error
    let pipeline = gst::parse::launch(&format!("{base} backend=tensorrt ! fakesink")).unwrap();
    // start() fails, so the state change may fail synchronously; the error message is what matters
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Error, gst::MessageType::Eos])
        .unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else { panic!("expected an error, got {msg:?}") };
    let text = e.error().to_string();
    eprintln!("backend=tensorrt: {text}");
    assert!(text.contains("tensorrt") || text.contains("TensorRT"), "{text}");
    // auto: falls back to CUDA and runs (fp32, so that the native kernels, fp16 only, are not a candidate)
    let pipeline = gst::parse::launch(&format!("{base} precision=fp32 ! fakesink")).unwrap();
    run(&pipeline);
    assert_eq!(stats(&pipeline).get::<&str>("backend").unwrap(), "cuda");
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn fp32_precision_on_the_gpu_is_close_to_the_cpu() {
    init();
    let clip = clip("h264", 640, 360, 3);
    let model = model();
    let reference = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! video/x-raw,format=NV12 ! appsink name=sink sync=false",
        clip.display(),
        decoder("h264")
    ))
    .unwrap();
    let (decoded, decoded_caps) = collect(&reference, 3);
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale name=up precision=fp32 model={} ! cudadownload ! appsink name=sink sync=false",
        clip.display(),
        decoder("h264"),
        model.display()
    ))
    .unwrap();
    let (upscaled, _) = collect(&pipeline, 3);
    let scale = scale(&pipeline);
    let luma = (scale * 640 * scale * 360) as usize;
    let cpu = cpu_upscale(&decoded, &decoded_caps, &model);
    dump("fp32", &decoded[0].pixels, &upscaled[0].pixels, &cpu[0]);
    for (g, c) in upscaled.iter().zip(&cpu) {
        let l = psnr(&g.pixels[..luma], &c[..luma]);
        eprintln!("fp32 GPU vs CPU: luma {l:.1} dB");
        assert!(l >= 50.0, "luma PSNR {l:.1} dB");
    }
}

/// Decodes `clip` with NVDEC and upscales it with `properties`; returns the frames, the element's stats as read
/// while the last frame was in flight (once stopped, the element holds no device memory) and the model's scale.
fn upscale_clip(codec: &str, clip: &Path, properties: &str, keep: usize) -> (Vec<Frame>, gst::Structure, u32) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale name=up model={} {properties} ! cudadownload ! \
         video/x-raw,format=NV12 ! appsink name=sink sync=false",
        clip.display(),
        decoder(codec),
        model().display()
    ))
    .unwrap();
    let up = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("up").unwrap();
    let live = std::sync::Arc::new(std::sync::Mutex::new(None::<gst::Structure>));
    let seen = live.clone();
    up.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let element = pad.parent_element().unwrap();
        *seen.lock().unwrap() = Some(element.property("stats"));
        gst::PadProbeReturn::Ok
    });
    let (frames, _) = collect(&pipeline, keep);
    let stats = live.lock().unwrap().take().expect("stats read while running");
    (frames, stats, scale(&pipeline))
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn a_memory_limit_tiles_nvdec_frames_and_is_reported() {
    let (width, height, frames) = (1920, 1080, 10);
    let clip = clip("h264", width, height, frames);
    let (whole, whole_stats, scale) = upscale_clip("h264", &clip, "", 2);
    let budget = 384u64;
    let (tiled, stats, _) = upscale_clip("h264", &clip, &format!("max-memory={budget}"), 2);
    eprintln!("whole frames: {whole_stats}\nmax-memory {budget} MiB: {stats}");
    assert_eq!(tiled.len(), frames as usize, "frames in == frames out");
    assert_eq!(whole_stats.get::<u64>("tiles-per-frame").unwrap(), 1);
    assert!(stats.get::<u64>("tiles-per-frame").unwrap() > 1, "1080p x{scale} does not fit {budget} MiB whole");
    let held = stats.get::<u64>("device-memory-bytes").unwrap();
    let whole_held = whole_stats.get::<u64>("device-memory-bytes").unwrap();
    eprintln!(
        "device memory held: whole frames {:.0} MiB, max-memory {budget}: {:.0} MiB",
        whole_held as f64 / 1048576.0,
        held as f64 / 1048576.0
    );
    assert!(held > 0 && held <= budget << 20, "holds {held} bytes with max-memory {budget} MiB");
    assert!(whole_held > held, "tiles hold less than whole frames");
    assert_eq!(stats.get::<u64>("zero-copy-inputs").unwrap(), frames as u64);
    let luma = (scale * width * scale * height) as usize;
    for (i, (t, w)) in tiled.iter().zip(&whole).take(2).enumerate() {
        let (l, c) = (psnr(&t.pixels[..luma], &w.pixels[..luma]), psnr(&t.pixels[luma..], &w.pixels[luma..]));
        eprintln!("frame {i}: tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB");
        assert!(l >= 50.0 && c >= 50.0, "frame {i}: tiled vs whole: luma {l:.1} dB, chroma {c:.1} dB");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn the_arena_peak_is_reported_only_where_onnx_runtime_keeps_it() {
    let clip = clip("h264", 640, 360, 3);
    // the default model on the native kernels, then on ONNX Runtime's CUDA provider
    let (_, native, _) = upscale_clip("h264", &clip, "", 3);
    let (_, onnx, _) = upscale_clip("h264", &clip, "backend=cuda", 3);
    eprintln!(
        "native: {native}
ONNX Runtime: {onnx}"
    );
    assert_eq!(native.get::<&str>(field::BACKEND).unwrap(), Backend::Native.name());
    assert!(native.get::<u64>(field::INFERENCE_ARENA_BYTES).unwrap() > 0, "the native kernels' tensors and weights");
    assert!(!native.has_field(field::INFERENCE_ARENA_PEAK_BYTES), "no arena peak is made up for the native kernels");
    assert_eq!(onnx.get::<&str>(field::BACKEND).unwrap(), Backend::Cuda.name());
    let (peak, arena) = (
        onnx.get::<u64>(field::INFERENCE_ARENA_PEAK_BYTES).unwrap(),
        onnx.get::<u64>(field::INFERENCE_ARENA_BYTES).unwrap(),
    );
    assert!(peak > 0 && peak <= arena, "arena peak {peak} of {arena} bytes reserved");
}

/// Latency `vfupscale` reports (its own plus upstream's) once `properties` are set and the pipeline prerolled.
fn reported_latency(clip: &Path, properties: &str) -> gst::ClockTime {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} ! vfupscale name=up model={} {properties} ! fakesink sync=false",
        clip.display(),
        decoder("h264"),
        model().display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(120));
    result.expect("prerolls");
    let up = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("up").unwrap();
    let mut q = gst::query::Latency::new();
    assert!(up.static_pad("src").unwrap().query(&mut q), "latency query answered");
    pipeline.set_state(gst::State::Null).unwrap();
    q.result().1
}

#[test]
#[ignore = "needs an NVIDIA GPU: run tests/gpu/run.sh"]
fn frames_in_flight_keep_every_frame_and_pixel_and_add_their_latency() {
    let (width, height, frames) = (1280, 720, 12);
    let clip = clip("h264", width, height, frames);
    let (synchronous, sync_stats, _) = upscale_clip("h264", &clip, "async-depth=0", 3);
    let (in_flight, stats, _) = upscale_clip("h264", &clip, "async-depth=2", 3);
    eprintln!("async-depth 0: {sync_stats}\nasync-depth 2: {stats}");
    assert_eq!(synchronous.len(), frames as usize, "frames in == frames out (async-depth 0)");
    assert_eq!(in_flight.len(), frames as usize, "frames in == frames out (async-depth 2)");
    let pts = |f: &[Frame]| f.iter().map(|f| f.pts).collect::<Vec<_>>();
    assert_eq!(pts(&synchronous), pts(&in_flight), "identical timestamps");
    for (i, (a, b)) in synchronous.iter().zip(&in_flight).take(3).enumerate() {
        assert!(a.pixels == b.pixels, "frame {i}: async-depth 2 output differs from async-depth 0");
    }
    // 30 fps: each frame in flight adds 1/30 s
    let (l0, l2) = (reported_latency(&clip, "async-depth=0"), reported_latency(&clip, "async-depth=2"));
    eprintln!("reported latency: async-depth 0 {l0}, async-depth 2 {l2}");
    let frame = gst::ClockTime::SECOND.mul_div_floor(1, 30).unwrap();
    assert_eq!(l2, l0 + 2 * frame, "two frames in flight add two frames of latency");
}
