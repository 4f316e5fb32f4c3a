//! `vfupscale-bench`: what the element costs on top of the model, measured side by side on an NVIDIA GPU.
//!
//! For each configuration (model, precision, input size), in one run:
//! - (a) model only: the same ONNX Runtime session options the element uses, input and output bound to device
//!   tensors, run in a loop (one stream synchronisation per run, as in the element);
//! - (b) element only: frames decoded beforehand into CUDA memory of the element's context, pushed through
//!   `appsrc ! vfupscale ! fakesink`;
//! - (c) full pipeline: `filesrc ! qtdemux ! h264parse ! nvh264dec ! queue ! vfupscale ! queue ! fakesink`.
//!
//! Each is reported as ms/frame and fps after a warm-up, with the throughput ratios b/a and c/a (1.0: the element
//! or pipeline costs nothing beyond the model). `--json FILE` writes the same numbers.
//!
//! ```text
//! vfupscale-bench [--models NAME,…] [--precisions fp16,fp32] [--sizes 1280x720,1920x1080] [--frames N]
//!                 [--async-depth N] [--json FILE]
//! vfupscale-bench --soak FRAMES [--models NAME] [--precisions P] [--sizes WxH]
//! ```
//!
//! `--soak` instead runs FRAMES frames (default model, fp16, 1920x1080) through
//! `videotestsrc ! cudaupload ! queue ! vfupscale ! queue ! fakesink` and fails unless the device memory in use at
//! the last frame is within 2 MiB of that after the first 100 (and every frame came out).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use vfupscale::frame::Size;
use vfupscale::{BackendChoice, EngineRequest, Model, Precision, TensorLocation, select_engine};

#[derive(Debug, Clone)]
struct Config {
    model: String,
    precision: Precision,
    size: Size,
    /// The element's `async-depth` in (b), (c) and the soak.
    async_depth: u32,
}

#[derive(Debug, Clone, Default)]
struct Measure {
    frames: u64,
    ms_per_frame: f64,
}

impl Measure {
    fn fps(&self) -> f64 {
        if self.ms_per_frame > 0.0 { 1000.0 / self.ms_per_frame } else { 0.0 }
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Fp16 => "fp16",
        Precision::Fp32 => "fp32",
        Precision::Auto => "auto",
    }
}

/// The default matrix of issue #6: animevideov3 x2/x4 × fp16/fp32 × 720p/1080p, and realesrgan-x4plus fp16 720p.
fn default_matrix(async_depth: u32) -> Vec<Config> {
    let mut m = Vec::new();
    for model in ["realesr-animevideov3-x2", "realesr-animevideov3-x4"] {
        for precision in [Precision::Fp16, Precision::Fp32] {
            for size in [Size::new(1280, 720), Size::new(1920, 1080)] {
                m.push(Config { model: model.into(), precision, size, async_depth });
            }
        }
    }
    let size = Size::new(1280, 720);
    m.push(Config { model: "realesrgan-x4plus".into(), precision: Precision::Fp16, size, async_depth });
    m
}

/// Times `run` (which queues one inference on `stream`) over `iterations` runs after a warm-up.
fn time_runs(
    stream: &cudarc::driver::CudaStream,
    iterations: u64,
    mut run: impl FnMut() -> Result<(), String>,
) -> Result<Measure, String> {
    let mut step = || -> Result<(), String> {
        run()?;
        stream.synchronize().map_err(|e| format!("{e:?}"))
    };
    for _ in 0..5 {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        step()?;
    }
    Ok(Measure { frames: iterations, ms_per_frame: start.elapsed().as_secs_f64() * 1e3 / iterations as f64 })
}

/// The engine for `cfg` on `backend`, chosen as the element chooses it, bound for device IO at the clip size.
fn engine(cfg: &Config, backend: BackendChoice) -> Result<vfupscale::Engine, String> {
    let path = vfupscale::models::model_path(&cfg.model);
    let model = Arc::new(Model::load(&path).map_err(|e| e.to_string())?);
    let request = EngineRequest { backend, precision: cfg.precision, ..Default::default() };
    let mut engine = select_engine(model, &request).map_err(|e| e.to_string())?.engine;
    engine.bind(1, cfg.size, TensorLocation::Device).map_err(|e| e.to_string())?;
    Ok(engine)
}

/// (a) with ONNX Runtime's CUDA provider: the element's session options, device IO, one run per synchronisation.
fn model_only_onnx_runtime(cfg: &Config, iterations: u64) -> Result<Measure, String> {
    let mut engine = engine(cfg, BackendChoice::Cuda)?;
    let stream = engine.stream().cloned().ok_or("the CUDA provider runs without a stream")?;
    time_runs(&stream, iterations, || engine.run().map_err(|e| e.to_string()))
}

/// (a) with the native kernels, when they run the model (SRVGGNetCompact, fp16): `None` otherwise.
fn model_only_native(cfg: &Config, iterations: u64) -> Result<Option<Measure>, String> {
    if cfg.precision == Precision::Fp32 {
        return Ok(None);
    }
    let model = Model::load(&vfupscale::models::model_path(&cfg.model)).map_err(|e| e.to_string())?;
    let info = model.info();
    if vfupscale::native::match_srvgg(model.proto(), &info.input_name, &info.output_name).is_err() {
        return Ok(None);
    }
    let mut engine = engine(cfg, BackendChoice::Native)?;
    let stream = engine.stream().cloned().ok_or("the native kernels run without a stream")?;
    let measure = time_runs(&stream, iterations, || engine.run().map_err(|e| e.to_string()))?;
    // where the time goes, kernel by kernel (the mean of ten profiled runs)
    let mut totals: Vec<(String, f64)> = Vec::new();
    for _ in 0..10 {
        for (i, (name, ms)) in engine.profile().map_err(|e| e.to_string())?.unwrap_or_default().into_iter().enumerate()
        {
            if i == totals.len() {
                totals.push((name, 0.0));
            }
            totals[i].1 += ms / 10.0;
        }
    }
    let hidden: Vec<f64> = totals.iter().filter(|(n, _)| n == "hidden").map(|(_, ms)| *ms).collect();
    let others: Vec<String> =
        totals.iter().filter(|(n, _)| n != "hidden").map(|(n, ms)| format!("{n} {ms:.3} ms")).collect();
    eprintln!(
        "  native kernels: {}, hidden {} x {:.3} ms (min {:.3}, max {:.3})",
        others.join(", "),
        hidden.len(),
        hidden.iter().sum::<f64>() / hidden.len().max(1) as f64,
        hidden.iter().copied().fold(f64::INFINITY, f64::min),
        hidden.iter().copied().fold(0.0, f64::max)
    );
    Ok(Some(measure))
}

/// Encodes a moving test clip of `size` (H.264) for (b) and (c).
fn clip(size: Size, frames: u64, dir: &std::path::Path) -> Result<PathBuf, String> {
    let path = dir.join(format!("bench-{}x{}-{frames}.mp4", size.width, size.height));
    if path.exists() {
        return Ok(path);
    }
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=5 ! video/x-raw,format=I420,width={},height={},\
         framerate=30/1 ! x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! mp4mux ! filesink location={}",
        size.width,
        size.height,
        path.display()
    );
    run_to_eos(&gst::parse::launch(&desc).map_err(|e| e.to_string())?)?;
    Ok(path)
}

fn run_to_eos(pipeline: &gst::Element) -> Result<(), String> {
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().unwrap();
    let result = loop {
        match bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error])
        {
            Some(m) => match m.view() {
                gst::MessageView::Eos(..) => break Ok(()),
                gst::MessageView::Error(e) => {
                    break Err(format!("{}: {}", e.src().map(|s| s.name().to_string()).unwrap_or_default(), e.error()));
                }
                _ => {}
            },
            None => break Err("timeout".into()),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// `vfupscale name=up` with the configuration's model, precision, async-depth and `backend`, in launch syntax.
fn element_description(cfg: &Config, backend: &str) -> String {
    format!(
        "vfupscale name=up backend={backend} precision={} model=\"{}\" async-depth={}",
        precision_name(cfg.precision),
        vfupscale::models::model_path(&cfg.model).display(),
        cfg.async_depth
    )
}

fn upscaler(cfg: &Config, backend: &str) -> Result<gst::Element, String> {
    gst::parse::launch(&element_description(cfg, backend)).map_err(|e| e.to_string())
}

/// Counts buffers reaching a sink and notes when the `warmup`-th and the last arrive.
struct FrameClock {
    warmup: u64,
    frames: AtomicU64,
    /// (when the warm-up ended, when the last frame arrived)
    marks: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl FrameClock {
    fn attach(sink: &gst::Element, warmup: u64) -> Arc<FrameClock> {
        let clock = Arc::new(FrameClock { warmup, frames: AtomicU64::new(0), marks: Mutex::new((None, None)) });
        let c = clock.clone();
        sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = c.frames.fetch_add(1, Ordering::SeqCst) + 1;
            let mut marks = c.marks.lock().unwrap();
            if n == c.warmup {
                marks.0 = Some(Instant::now());
            }
            marks.1 = Some(Instant::now());
            gst::PadProbeReturn::Ok
        });
        clock
    }

    fn measure(&self) -> Result<Measure, String> {
        let n = self.frames.load(Ordering::SeqCst);
        let (first, last) = *self.marks.lock().unwrap();
        let (first, last) = first.zip(last).ok_or("too few frames to measure")?;
        let frames = n - self.warmup;
        Ok(Measure { frames, ms_per_frame: (last - first).as_secs_f64() * 1e3 / frames.max(1) as f64 })
    }
}

/// (b): pre-decoded CUDA frames of the element's own context through `appsrc ! vfupscale ! fakesink`.
fn element_only(
    cfg: &Config,
    backend: &str,
    clip: &std::path::Path,
    frames: u64,
    warmup: u64,
) -> Result<Measure, String> {
    let up = upscaler(cfg, backend)?;
    up.set_state(gst::State::Ready).map_err(|e| e.to_string())?;
    // the element's GstCudaContext (the primary context), for the decoder of the set-up pipeline
    let mut query = gst::query::Context::new("gst.cuda.context");
    if !up.static_pad("sink").unwrap().query(&mut query) {
        return Err("vfupscale answered no CUDA context query".into());
    }
    let context = query.context_owned().ok_or("no CUDA context")?;
    let decode = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! nvh264dec ! video/x-raw(memory:CUDAMemory),format=NV12 ! \
         appsink name=sink sync=false",
        clip.display()
    ))
    .map_err(|e| e.to_string())?;
    decode.set_context(&context);
    let sink =
        decode.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    decode.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let mut decoded = Vec::new();
    let mut caps = None;
    while let Ok(s) = sink.pull_sample() {
        caps.get_or_insert_with(|| s.caps().unwrap().to_owned());
        decoded.push(s.buffer_owned().unwrap());
    }
    decode.set_state(gst::State::Null).map_err(|e| e.to_string())?;
    let caps = caps.ok_or("nothing decoded")?;

    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).build();
    let fakesink = gst::ElementFactory::make("fakesink").property("sync", false).build().map_err(|e| e.to_string())?;
    pipeline.add_many([src.upcast_ref(), &up, &fakesink]).map_err(|e| e.to_string())?;
    gst::Element::link_many([src.upcast_ref(), &up, &fakesink]).map_err(|e| e.to_string())?;
    let clock = FrameClock::attach(&fakesink, warmup);
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let duration = gst::ClockTime::from_nseconds(1_000_000_000 / 30);
    for i in 0..frames {
        let mut b = decoded[(i as usize) % decoded.len()].copy();
        {
            let b = b.get_mut().unwrap();
            b.set_pts(duration * i);
            b.set_duration(duration);
        }
        src.push_buffer(b).map_err(|e| format!("push: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| format!("{e:?}"))?;
    let bus = pipeline.bus().unwrap();
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let stats: gst::Structure = up.property("stats");
    pipeline.set_state(gst::State::Null).map_err(|e| e.to_string())?;
    if let Some(m) = msg
        && let gst::MessageView::Error(e) = m.view()
    {
        return Err(e.error().to_string());
    }
    if stats.get::<u64>("zero-copy-inputs").unwrap_or(0) != frames {
        return Err(format!("inputs were not all read in place: {stats}"));
    }
    clock.measure()
}

/// (c): decode → upscale → fakesink, queues in between.
fn full_pipeline(
    cfg: &Config,
    backend: &str,
    clip: &std::path::Path,
    warmup: u64,
) -> Result<(Measure, gst::Structure), String> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! nvh264dec ! queue ! {} ! queue ! fakesink name=sink sync=false",
        clip.display(),
        element_description(cfg, backend)
    ))
    .map_err(|e| e.to_string())?;
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let (up, sink) = (bin.by_name("up").unwrap(), bin.by_name("sink").unwrap());
    let clock = FrameClock::attach(&sink, warmup);
    run_to_eos(&pipeline)?;
    let stats: gst::Structure = up.property("stats");
    Ok((clock.measure()?, stats))
}

/// Device memory in use (cuMemGetInfo: total − free), what the element reports holding, and how many distinct
/// frames (pool buffers) went into and out of it so far, at frame `frame`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MemorySample {
    frame: u64,
    used: usize,
    held: u64,
    input_frames: usize,
    output_frames: usize,
}

/// Most a soak may grow the device memory in use between frame 100 and its last frame.
const SOAK_TOLERANCE: usize = 2 << 20;

/// Counts the distinct memory blocks of the buffers crossing `pad`: a pool's size, once it has cycled.
fn distinct_buffers(pad: &gst::Pad) -> Arc<Mutex<std::collections::HashSet<usize>>> {
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let s = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            s.lock().unwrap().insert(buffer.peek_memory(0).as_ptr() as usize);
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

fn soak(cfg: &Config, frames: u64, device: &Arc<vfupscale::cuda::GpuDevice>) -> Result<(), String> {
    if frames <= 100 {
        return Err("--soak needs more than 100 frames".into());
    }
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=NV12,width={},height={},framerate=30/1 ! \
         cudaupload ! video/x-raw(memory:CUDAMemory) ! queue ! {} ! queue ! fakesink name=sink sync=false",
        cfg.size.width,
        cfg.size.height,
        element_description(cfg, "auto")
    ))
    .map_err(|e| e.to_string())?;
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let (up, sink) = (bin.by_name("up").unwrap(), bin.by_name("sink").unwrap());
    let inputs = distinct_buffers(&up.static_pad("sink").unwrap());
    let outputs = distinct_buffers(&up.static_pad("src").unwrap());
    let samples = Arc::new(Mutex::new(Vec::<MemorySample>::new()));
    let (seen, count, dev, probed) = (samples.clone(), Arc::new(AtomicU64::new(0)), device.clone(), up.clone());
    let counter = count.clone();
    let start = Instant::now();
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if n % 100 == 0 || n == frames {
            let memory = dev.bind_to_thread().and_then(|_| dev.memory_info());
            if let Ok((free, total)) = memory {
                let held = probed.property::<gst::Structure>("stats").get::<u64>("device-memory-bytes").unwrap_or(0);
                let (input_frames, output_frames) = (inputs.lock().unwrap().len(), outputs.lock().unwrap().len());
                seen.lock().unwrap().push(MemorySample {
                    frame: n,
                    used: total - free,
                    held,
                    input_frames,
                    output_frames,
                });
            }
        }
        gst::PadProbeReturn::Ok
    });
    run_to_eos(&pipeline)?;
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::SeqCst);
    let samples = samples.lock().unwrap();
    let mib = |b: f64| b / 1048576.0;
    let backend = up.property::<gst::Structure>("stats").get::<String>("backend").unwrap_or_default();
    println!(
        "soak: {} {} {} on {backend}: {n} frames in {elapsed:.1} s ({:.1}/s)",
        cfg.model,
        precision_name(cfg.precision),
        cfg.size,
        n as f64 / elapsed
    );
    // every 100 frames were sampled; print the first, the last, and every change
    println!(
        "{:>7} {:>16} {:>18} {:>13} {:>14}",
        "frame", "device used MiB", "element held MiB", "input frames", "output frames"
    );
    let mut previous: Option<&MemorySample> = None;
    for (i, s) in samples.iter().enumerate() {
        let changed = previous.is_none_or(|p| {
            (p.used, p.held, p.input_frames, p.output_frames) != (s.used, s.held, s.input_frames, s.output_frames)
        });
        if changed || i + 1 == samples.len() {
            println!(
                "{:>7} {:>16.2} {:>18.2} {:>13} {:>14}",
                s.frame,
                mib(s.used as f64),
                mib(s.held as f64),
                s.input_frames,
                s.output_frames
            );
        }
        previous = Some(s);
    }
    if n != frames {
        return Err(format!("{frames} frames in, {n} out"));
    }
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) if f.frame == 100 && l.frame == frames => (f, l),
        _ => return Err("device memory could not be read at frame 100 and at the last frame".into()),
    };
    let growth = last.used as i64 - first.used as i64;
    println!("device memory in use, last frame vs frame 100: {:+.2} MiB (tolerance ±2 MiB)", mib(growth as f64));
    if growth.unsigned_abs() as usize > SOAK_TOLERANCE {
        return Err(format!("device memory changed by {:+.2} MiB over the soak", mib(growth as f64)));
    }
    Ok(())
}

fn parse_size(s: &str) -> Result<Size, String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("size {s:?} is not WxH"))?;
    Ok(Size::new(
        w.parse().map_err(|_| format!("bad width in {s}"))?,
        h.parse().map_err(|_| format!("bad height in {s}"))?,
    ))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut models: Option<Vec<String>> = None;
    let mut precisions = vec![Precision::Fp16, Precision::Fp32];
    let mut sizes = vec![Size::new(1280, 720), Size::new(1920, 1080)];
    let mut frames = 240u64;
    let mut json: Option<PathBuf> = None;
    let mut soak_frames: Option<u64> = None;
    let mut sizes_given = false;
    let mut async_depth = 1u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--models" => models = Some(value()?.split(',').map(str::to_string).collect()),
            "--precisions" => {
                precisions = value()?
                    .split(',')
                    .map(|p| match p {
                        "fp16" => Ok(Precision::Fp16),
                        "fp32" => Ok(Precision::Fp32),
                        other => Err(format!("precision {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--sizes" => {
                sizes = value()?.split(',').map(parse_size).collect::<Result<_, _>>()?;
                sizes_given = true;
            }
            "--frames" => frames = value()?.parse().map_err(|_| "--frames takes a number")?,
            "--json" => json = Some(value()?.into()),
            "--async-depth" => async_depth = value()?.parse().map_err(|_| "--async-depth takes a number")?,
            "--soak" => soak_frames = Some(value()?.parse().map_err(|_| "--soak takes a number of frames")?),
            "-h" | "--help" => {
                println!(
                    "vfupscale-bench [--models A,B] [--precisions fp16,fp32] [--sizes WxH,…] [--frames N] [--async-depth N] \
                     [--json FILE]\n\
                     vfupscale-bench --soak FRAMES [--models A] [--precisions P] [--sizes WxH]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let soak_config = Config {
        model: models.as_ref().map_or(vfupscale::models::DEFAULT_MODEL.to_string(), |m| m[0].clone()),
        precision: precisions[0],
        size: if sizes_given { sizes[0] } else { Size::new(1920, 1080) },
        async_depth,
    };
    let matrix = match models {
        None => default_matrix(async_depth),
        Some(ms) => {
            let mut m = Vec::new();
            for model in &ms {
                for &precision in &precisions {
                    for &size in &sizes {
                        m.push(Config { model: model.clone(), precision, size, async_depth });
                    }
                }
            }
            m
        }
    };
    gst::init().map_err(|e| e.to_string())?;
    gstvfupscale::plugin_register_static().map_err(|e| e.to_string())?;
    let device = vfupscale::cuda::GpuDevice::get(0).map_err(|e| e.to_string())?;
    let (drv_major, drv_minor) = vfupscale::cuda::driver_version().unwrap_or((0, 0));
    println!(
        "GPU: {} (CUDA driver API {drv_major}.{drv_minor}); ONNX Runtime {}; GStreamer {}",
        device.name(),
        vfupscale::infer::runtime::version().unwrap_or_default(),
        gst::version_string()
    );
    if let Some(frames) = soak_frames {
        return soak(&soak_config, frames, &device);
    }
    println!("element async-depth {async_depth} in (b) and (c)");
    let dir = std::env::temp_dir().join("vfupscale-bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let warmup = 20u64;
    let mut rows = Vec::new();
    println!(
        "{:26} {:5} {:>9} {:>6} | {:>14} | {:>14} | {:>14} | {:>5} {:>5} | {:>14} {:>6}",
        "model",
        "prec",
        "input",
        "engine",
        "(a) model",
        "(b) element",
        "(c) pipeline",
        "b/a",
        "c/a",
        "ORT CUDA model",
        "c/ORT"
    );
    for cfg in &matrix {
        let clip = clip(cfg.size, frames, &dir)?;
        let ort = model_only_onnx_runtime(cfg, frames.min(120))?;
        let native = model_only_native(cfg, frames.min(120))?;
        let engine = if native.is_some() { "native" } else { "cuda" };
        let a = native.unwrap_or_else(|| ort.clone());
        let b = element_only(cfg, engine, &clip, frames, warmup)?;
        let (c, stats) = full_pipeline(cfg, engine, &clip, warmup)?;
        let backend = stats.get::<String>("backend").unwrap_or_default();
        if backend != engine {
            return Err(format!("the element ran on {backend}, the model-only run on {engine}"));
        }
        let fmt = |m: &Measure| format!("{:6.2} ms {:5.1}/s", m.ms_per_frame, m.fps());
        let (ba, ca, c_ort) = (b.fps() / a.fps(), c.fps() / a.fps(), c.fps() / ort.fps());
        println!(
            "{:26} {:5} {:>9} {:>6} | {} | {} | {} | {:5.3} {:5.3} | {} {:6.2}",
            cfg.model,
            precision_name(cfg.precision),
            cfg.size.to_string(),
            engine,
            fmt(&a),
            fmt(&b),
            fmt(&c),
            ba,
            ca,
            fmt(&ort),
            c_ort
        );
        eprintln!(
            "  stages in the pipeline: convert-in {:.3} ms, inference {:.2} ms, convert-out {:.3} ms (means over {} frames)",
            stats.get::<f64>("convert-in-mean-ms").unwrap_or(0.0),
            stats.get::<f64>("inference-mean-ms").unwrap_or(0.0),
            stats.get::<f64>("convert-out-mean-ms").unwrap_or(0.0),
            stats.get::<u64>("frames").unwrap_or(0)
        );
        rows.push(format!(
            "{{\"model\":\"{}\",\"precision\":\"{}\",\"width\":{},\"height\":{},\"engine\":\"{engine}\",\
             \"model_ms\":{:.4},\"element_ms\":{:.4},\"pipeline_ms\":{:.4},\"model_fps\":{:.3},\"element_fps\":{:.3},\
             \"pipeline_fps\":{:.3},\"b_over_a\":{ba:.4},\"c_over_a\":{ca:.4},\"onnx_runtime_cuda_model_ms\":{:.4},\
             \"c_over_onnx_runtime\":{c_ort:.4},\"async_depth\":{},\"frames\":{}}}",
            cfg.model,
            precision_name(cfg.precision),
            cfg.size.width,
            cfg.size.height,
            a.ms_per_frame,
            b.ms_per_frame,
            c.ms_per_frame,
            a.fps(),
            b.fps(),
            c.fps(),
            ort.ms_per_frame,
            cfg.async_depth,
            c.frames
        ));
    }
    if let Some(path) = json {
        let text = format!("{{\"gpu\":\"{}\",\"results\":[{}]}}\n", device.name(), rows.join(","));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
