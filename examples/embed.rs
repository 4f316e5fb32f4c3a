// SPDX-License-Identifier: MPL-2.0

//! Embedding `vfupscale` in a Rust application: decode a file, upscale it, and receive the upscaled frames in
//! the application through an `appsink` (where a real application would display, analyse or stream them).
//!
//! ```text
//! cargo run -p vfupscale-examples --bin embed-upscale -- INPUT [MODEL]
//! ```
//! The element is registered from the linked plugin crate, so no installed plugin is needed; an installed
//! `libgstvfupscale.so` (on `GST_PLUGIN_PATH`) works the same way without that call.

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args.next().ok_or("usage: embed-upscale INPUT [MODEL]")?;
    let model = args.next();

    gst::init()?;
    gstvfupscale::plugin_register_static()?;

    // A portable branch: whatever decoder `decodebin` picks, `videoconvert` hands vfupscale system-memory NV12
    // (the model still runs on the GPU when there is one). For the zero-copy GPU path link the NVDEC decoder
    // straight to vfupscale instead: `nvh264dec ! vfupscale` keeps every frame in CUDA memory (pipelines.md).
    let upscaler = gst::ElementFactory::make("vfupscale").name("upscaler").build()?;
    if let Some(m) = &model {
        upscaler.set_property("model", m);
    }
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc").property("location", &input).build()?;
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let nv12 = gst::ElementFactory::make("capsfilter")
        .property("caps", gst::Caps::builder("video/x-raw").field("format", "NV12").build())
        .build()?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([&src, &decode, &convert, &nv12, &upscaler, sink.upcast_ref()])?;
    src.link(&decode)?;
    gst::Element::link_many([&convert, &nv12, &upscaler, sink.upcast_ref()])?;
    let convert_sink = convert.static_pad("sink").unwrap();
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")));
        if is_video == Some(true) && !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });

    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n == 0 {
                    println!("first upscaled frame: {}", sample.caps().map(|c| c.to_string()).unwrap_or_default());
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null)?;
                return Err(format!("{}: {}", e.src().map(|s| s.path_string()).unwrap_or_default(), e.error()).into());
            }
            _ => {}
        }
    }
    let stats: gst::Structure = upscaler.property("stats");
    pipeline.set_state(gst::State::Null)?;
    println!(
        "received {} frames; scale x{}; {stats}",
        frames.load(std::sync::atomic::Ordering::Relaxed),
        upscaler.property::<u32>("scale")
    );
    Ok(())
}
