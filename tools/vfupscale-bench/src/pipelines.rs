// SPDX-License-Identifier: MPL-2.0
//! The GStreamer side of the benchmark: the test clip, the element's launch description, and the runs (b) (element
//! alone on frames decoded beforehand) and (c) (the whole decode → upscale pipeline).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use crate::config::{Config, Framerate, Settings};
use crate::core_api::{Backend, BackendChoice, Size, field};
use crate::measure::Measure;
use crate::probes::{FrameClock, StageMeans, StatsAtWarmup};

/// How long a pipeline may take to reach EOS.
const PIPELINE_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(600);

/// One timed run of the element: its throughput and stage means after the warm-up.
pub struct ElementRun {
    pub measure: Measure,
    pub stages: StageMeans,
}

/// The NVDEC H.264 decoder of CUDA device `device`: nvcodec registers one element per GPU (`nvh264dec` for the
/// first, `nvh264deviceNdec` for the others), each telling its device in `cuda-device-id`.
pub fn h264_decoder(device: u32) -> Result<String> {
    let mut seen = Vec::new();
    for factory in gst::ElementFactory::factories_with_type(gst::ElementFactoryType::DECODER, gst::Rank::NONE) {
        let name = factory.name().to_string();
        if !(name == "nvh264dec" || (name.starts_with("nvh264device") && name.ends_with("dec"))) {
            continue;
        }
        let decoder = factory.create().build().with_context(|| format!("creating {name}"))?;
        let id = match decoder.find_property("cuda-device-id") {
            Some(_) => decoder.property::<u32>("cuda-device-id"),
            None if name == "nvh264dec" => 0,
            None => continue,
        };
        if id == device {
            return Ok(name);
        }
        seen.push(format!("{name} (device {id})"));
    }
    match seen.is_empty() {
        true => bail!("no NVDEC H.264 decoder (nvh264dec) is registered: the nvcodec plugin or NVDEC is missing"),
        false => bail!("no NVDEC H.264 decoder for CUDA device {device}; there are {}", seen.join(", ")),
    }
}

/// A moving H.264 test clip of `frames` frames of `size` at `framerate` in `dir`, encoded once and then reused.
pub fn clip(size: Size, frames: u64, framerate: Framerate, dir: &Path) -> Result<PathBuf> {
    let name = format!("bench-{size}-{frames}-{}-{}fps.mp4", framerate.numerator, framerate.denominator);
    let path = dir.join(&name);
    if path.exists() {
        return Ok(path);
    }
    // encoded under another name and renamed once complete, so no interrupted run leaves a clip that looks whole
    let partial = dir.join(format!(".{name}.{}.part", std::process::id()));
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=5 ! \
         video/x-raw,format=I420,width={},height={},framerate={framerate} ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! mp4mux ! filesink location=\"{}\"",
        size.width,
        size.height,
        partial.display()
    );
    let encoded = gst::parse::launch(&desc).map_err(anyhow::Error::from).and_then(|p| run_to_eos(&p));
    if let Err(e) = encoded {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("encoding the test clip {}", path.display())));
    }
    std::fs::rename(&partial, &path).with_context(|| format!("{}", path.display()))?;
    Ok(path)
}

/// Frame `index` of `clip`, decoded by `decoder` and converted to planar RGB in 0..1 (GStreamer's videoconvert):
/// the pictures of (b) and (c), for (a).
pub fn clip_frame_rgb(clip: &Path, decoder: &str, size: Size, index: u64) -> Result<Vec<f32>> {
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {decoder} ! videoconvert ! \
         video/x-raw,format=RGB,width={},height={} ! appsink name=sink sync=false",
        clip.display(),
        size.width,
        size.height
    );
    let pipeline = gst::parse::launch(&desc)?;
    let sink =
        by_name(&pipeline, "sink")?.downcast::<gst_app::AppSink>().map_err(|_| anyhow::anyhow!("not an appsink"))?;
    pipeline.set_state(gst::State::Playing)?;
    let mut sample = None;
    for _ in 0..=index {
        sample = sink.pull_sample().ok();
    }
    pipeline.set_state(gst::State::Null)?;
    let sample = sample.with_context(|| format!("{} has no frame {index}", clip.display()))?;
    let buffer = sample.buffer().context("a decoded sample without a buffer")?;
    let map = buffer.map_readable()?;
    let (w, h) = (size.width as usize, size.height as usize);
    // packed RGB rows, each padded to 4 bytes (GStreamer's default stride for RGB)
    let stride = (3 * w).next_multiple_of(4);
    if map.len() < stride * h {
        bail!("frame {index} of {}: {} bytes for {size} RGB", clip.display(), map.len());
    }
    let mut planar = vec![0.0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                planar[(c * h + y) * w + x] = f32::from(map[y * stride + 3 * x + c]) / 255.0;
            }
        }
    }
    Ok(planar)
}

/// Plays `pipeline` to EOS; the first error message, or a timeout, is an error.
pub fn run_to_eos(pipeline: &gst::Element) -> Result<()> {
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("a pipeline without a bus")?;
    let result = loop {
        match bus.timed_pop_filtered(PIPELINE_TIMEOUT, &[gst::MessageType::Eos, gst::MessageType::Error]) {
            Some(m) => match m.view() {
                gst::MessageView::Eos(..) => break Ok(()),
                gst::MessageView::Error(e) => {
                    let source = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    break Err(anyhow::anyhow!("{source}: {}", e.error()));
                }
                _ => {}
            },
            None => break Err(anyhow::anyhow!("no EOS after {PIPELINE_TIMEOUT}")),
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result
}

/// `vfupscale name=up` with the configuration's model, precision, device, async-depth and `backend`, in launch
/// syntax.
pub fn element_description(cfg: &Config, settings: &Settings, backend: BackendChoice) -> String {
    format!(
        "vfupscale name=up backend={backend} precision={} device-id={} model=\"{}\" async-depth={}",
        cfg.precision,
        settings.device,
        cfg.model.path.display(),
        settings.async_depth
    )
}

fn by_name(bin: &gst::Element, name: &str) -> Result<gst::Element> {
    bin.downcast_ref::<gst::Bin>().and_then(|b| b.by_name(name)).with_context(|| format!("no element {name}"))
}

/// Checks that every frame came out and that the element ran on `backend`.
fn check_run(clock: &FrameClock, stats: &gst::Structure, frames: u64, backend: Backend) -> Result<()> {
    if clock.frames() != frames {
        bail!("{frames} frames in, {} out", clock.frames());
    }
    let ran = stats.get::<String>(field::BACKEND).with_context(|| format!("stats field {}", field::BACKEND))?;
    if ran != backend.name() {
        bail!("the element ran on {ran}, not {backend}");
    }
    Ok(())
}

/// (b): frames decoded beforehand into the element's own CUDA context, through `appsrc ! vfupscale ! fakesink`.
pub fn element_only(cfg: &Config, settings: &Settings, backend: Backend, clip: &Path) -> Result<ElementRun> {
    let up = gst::parse::launch(&element_description(cfg, settings, backend.into()))?;
    up.set_state(gst::State::Ready)?;
    // the element's GstCudaContext (the primary context), for the decoder of the set-up pipeline
    let mut query = gst::query::Context::new("gst.cuda.context");
    if !up.static_pad("sink").context("vfupscale has no sink pad")?.query(&mut query) {
        bail!("vfupscale answered no CUDA context query");
    }
    let context = query.context_owned().context("vfupscale's context query carried no context")?;
    let decode = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {} ! video/x-raw(memory:CUDAMemory),format=NV12 ! \
         appsink name=sink sync=false",
        clip.display(),
        settings.decoder
    ))?;
    decode.set_context(&context);
    let sink =
        by_name(&decode, "sink")?.downcast::<gst_app::AppSink>().map_err(|_| anyhow::anyhow!("not an appsink"))?;
    decode.set_state(gst::State::Playing)?;
    let mut decoded = Vec::new();
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        if caps.is_none() {
            caps = sample.caps_owned();
        }
        decoded.push(sample.buffer_owned().context("a decoded sample without a buffer")?);
    }
    decode.set_state(gst::State::Null)?;
    let caps = caps.with_context(|| format!("nothing was decoded from {}", clip.display()))?;
    let framerate = caps
        .structure(0)
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .with_context(|| format!("the decoded clip has no fixed frame rate: {caps}"))?;
    let duration = gst::ClockTime::SECOND
        .mul_div_floor(framerate.denom() as u64, framerate.numer() as u64)
        .context("frame duration")?;

    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).build();
    let fakesink = gst::ElementFactory::make("fakesink").property("sync", false).build()?;
    pipeline.add_many([src.upcast_ref(), &up, &fakesink])?;
    gst::Element::link_many([src.upcast_ref(), &up, &fakesink])?;
    let clock = FrameClock::attach(&fakesink, settings.warmup)?;
    let at_warmup = StatsAtWarmup::attach(&up, settings.warmup)?;
    pipeline.set_state(gst::State::Playing)?;
    for (i, frame) in decoded.iter().cycle().take(settings.frames as usize).enumerate() {
        let mut buffer = frame.copy();
        let b = buffer.make_mut();
        b.set_pts(duration * i as u64);
        b.set_duration(duration);
        src.push_buffer(buffer).with_context(|| format!("pushing frame {i}"))?;
    }
    src.end_of_stream().context("ending the stream")?;
    let bus = pipeline.bus().context("a pipeline without a bus")?;
    let msg = bus.timed_pop_filtered(PIPELINE_TIMEOUT, &[gst::MessageType::Eos, gst::MessageType::Error]);
    let stats: gst::Structure = up.property("stats");
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => bail!("{}", e.error()),
        None => bail!("no EOS after {PIPELINE_TIMEOUT}"),
        _ => {}
    }
    check_run(&clock, &stats, settings.frames, backend)?;
    let zero_copy = stats.get::<u64>(field::ZERO_COPY_INPUTS).with_context(|| field::ZERO_COPY_INPUTS)?;
    if zero_copy != settings.frames {
        bail!("inputs were not all read in place: {stats}");
    }
    Ok(ElementRun { measure: clock.measure()?, stages: at_warmup.stage_means(&stats)? })
}

/// (c): decode → upscale → fakesink, queues in between.
pub fn full_pipeline(cfg: &Config, settings: &Settings, backend: Backend, clip: &Path) -> Result<ElementRun> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {} ! queue ! {} ! queue ! fakesink name=sink sync=false",
        clip.display(),
        settings.decoder,
        element_description(cfg, settings, backend.into())
    ))?;
    let (up, sink) = (by_name(&pipeline, "up")?, by_name(&pipeline, "sink")?);
    let clock = FrameClock::attach(&sink, settings.warmup)?;
    let at_warmup = StatsAtWarmup::attach(&up, settings.warmup)?;
    run_to_eos(&pipeline)?;
    let stats: gst::Structure = up.property("stats");
    check_run(&clock, &stats, settings.frames, backend)?;
    Ok(ElementRun { measure: clock.measure()?, stages: at_warmup.stage_means(&stats)? })
}
