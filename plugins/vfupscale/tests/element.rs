// SPDX-License-Identifier: MPL-2.0

//! CPU tests of the element's contract beyond the pixels: metadata, properties refused while running, settings
//! checked at start with the right error domain, buffers that are not one frame, flow returns, and what answers
//! while a frame is running.
//!
//! Needs the ONNX Runtime library (`scripts/setup.sh` or `.ci/run` provide it).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;

mod common;
use common::init;
mod fixtures;
use fixtures::{element, harness, nearest_model, nv12_buffer, nv12_size, slow_model, start_error_of};

#[test]
fn metadata_reads_like_a_gstreamer_scaler() {
    init();
    let factory = gst::ElementFactory::find("vfupscale").unwrap();
    assert_eq!(factory.metadata(gst::ELEMENT_METADATA_KLASS), Some("Filter/Converter/Video/Scaler"));
    let doc = factory.metadata(gst::ELEMENT_METADATA_DOC_URI).expect("a documentation URI");
    assert!(doc.starts_with(env!("CARGO_PKG_REPOSITORY")) && doc.contains("README.md"), "{doc}");
    for name in ["GstVfUpscaleBackend", "GstVfUpscalePrecision"] {
        let t = gst::glib::Type::from_name(name).unwrap();
        assert!(t.plugin_api_flags().is_some(), "{name} is not marked as plugin API");
    }
    // every number a user sets has bounds of its own, not the type's
    let e = gst::ElementFactory::make("vfupscale").build().unwrap();
    for name in ["tile-size", "tile-overlap", "device-id"] {
        let p = e.find_property(name).unwrap();
        let max = p.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap().maximum();
        assert!(max < u32::MAX, "{name}: {max}");
    }
    for name in ["max-memory", "stats-interval"] {
        let p = e.find_property(name).unwrap();
        let max = p.downcast_ref::<gst::glib::ParamSpecUInt64>().unwrap().maximum();
        assert!(max < u64::MAX, "{name}: {max}");
    }
}

fn serialized(e: &gst::Element, name: &str) -> String {
    e.property_value(name).serialize().unwrap().to_string()
}

/// The next warning message on `bus`.
fn warning(bus: &gst::Bus) -> String {
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Warning]).expect("a warning");
    let gst::MessageView::Warning(w) = msg.view() else { unreachable!() };
    w.error().to_string()
}

#[test]
fn properties_read_at_start_refuse_changes_while_playing() {
    init();
    let model = nearest_model(2, None);
    let desc = format!(
        "videotestsrc is-live=true ! video/x-raw,format=NV12,width=16,height=8,framerate=25/1 ! \
         vfupscale name=up backend=cpu model={} ! fakesink",
        model.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let up = pipeline.by_name("up").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (result, state, _) = pipeline.state(gst::ClockTime::from_seconds(30));
    assert_eq!((result, state), (Ok(gst::StateChangeSuccess::Success), gst::State::Playing));
    let bus = pipeline.bus().unwrap();
    let other = nearest_model(3, None);
    for (name, value) in [
        ("model", other.to_str().unwrap()),
        ("tile-size", "128"),
        ("backend", "auto"),
        ("tile-overlap", "16"),
        ("precision", "fp32"),
        ("async-depth", "0"),
    ] {
        let before = serialized(&up, name);
        up.set_property_from_str(name, value);
        assert_eq!(serialized(&up, name), before, "{name} changed while playing");
        let w = warning(&bus);
        assert!(w.contains(name) && w.contains("NULL or READY"), "{name}: {w}");
    }
    // the one property that may change while playing
    up.set_property("stats-interval", 7u64);
    assert_eq!(up.property::<u64>("stats-interval"), 7);
    pipeline.set_state(gst::State::Ready).unwrap();
    up.set_property("model", other.to_str());
    assert_eq!(up.property::<Option<String>>("model").as_deref(), other.to_str(), "READY takes changes again");
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The error the element posts at start with `properties`, on the nearest-neighbour model.
fn start_error(properties: &str) -> gst::glib::Error {
    let model = nearest_model(2, None);
    start_error_of(
        model.to_str().unwrap(),
        &format!("backend=cpu {properties}"),
        "video/x-raw,format=NV12,width=64,height=48",
    )
}

#[test]
fn tiles_below_the_minimum_and_overlaps_above_half_a_tile_fail_at_start() {
    let e = start_error("tile-size=1");
    assert!(e.matches(gst::LibraryError::Settings), "{e:?}");
    assert!(e.message().contains("tile-size 1 is below the smallest tile of 64 pixels"), "{e}");
    let e = start_error("tile-size=64 tile-overlap=40");
    assert!(e.matches(gst::LibraryError::Settings), "{e:?}");
    assert!(
        e.message().contains(
            "tile-overlap 40 is more than half of tile-size 64: neighbouring tiles may overlap by at most 32"
        ),
        "{e}"
    );
}

#[test]
fn start_errors_carry_the_domain_of_their_cause() {
    let e = start_error_of("/nonexistent/model.onnx", "backend=cpu", "video/x-raw,format=NV12,width=64,height=48");
    assert!(e.matches(gst::ResourceError::NotFound), "{e:?}");
    assert!(e.message().contains("/nonexistent/model.onnx"), "{e}");
    let junk = fixtures::scratch().join("junk-for-domains.onnx");
    std::fs::write(&junk, b"not protobuf \xff").unwrap();
    let e = start_error_of(junk.to_str().unwrap(), "backend=cpu", "video/x-raw,format=NV12,width=64,height=48");
    assert!(e.matches(gst::ResourceError::OpenRead) && e.message().contains("not an ONNX model"), "{e:?}");
}

#[test]
fn the_model_property_takes_installed_names() {
    init();
    // the default model, by its name instead of its path
    fixtures::real_model();
    let name = vfupscale::models::DEFAULT_MODEL;
    let e = gst::ElementFactory::make("vfupscale").property("model", name).property_from_str("backend", "cpu").build();
    let mut h = Harness::with_element(&e.unwrap(), Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=NV12,width=16,height=8");
    h.push(nv12_buffer(16, 8)).unwrap();
    let scale = h.element().unwrap().property::<u32>("scale") as usize;
    assert!(scale >= 2, "{name} loaded: x{scale}");
    assert_eq!(h.pull().unwrap().size(), nv12_size(16 * scale, 8 * scale));
    // a name that is neither a file nor installed says where it was looked for
    let e = start_error_of("no-such-installed-model", "backend=cpu", "video/x-raw,format=NV12,width=64,height=48");
    assert!(e.matches(gst::ResourceError::NotFound), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("no-such-installed-model") && text.contains("no installed model of that name"), "{text}");
    assert!(text.contains(&vfupscale::models::models_dir().display().to_string()), "{text}");
}

/// A harness whose element posts its messages on a bus of the test's.
fn harness_with_bus(caps: &str) -> (Harness, gst::Bus) {
    let h = harness(&nearest_model(2, None), caps);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    (h, bus)
}

fn error_on(bus: &gst::Bus) -> gst::glib::Error {
    let msg = bus.pop_filtered(&[gst::MessageType::Error]).expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
    e.error()
}

#[test]
fn a_buffer_that_is_not_one_frame_is_an_error_naming_the_sizes() {
    let (mut h, bus) = harness_with_bus("video/x-raw,format=NV12,width=64,height=48,framerate=30/1");
    let frame = nv12_size(64, 48);
    let mut doubled = nv12_buffer(64, 96);
    doubled.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    assert_eq!(doubled.size(), 2 * frame);
    assert_eq!(h.push(doubled), Err(gst::FlowError::Error));
    let e = error_on(&bus);
    assert!(e.matches(gst::StreamError::Format), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("holds {} bytes", 2 * frame)) && text.contains("64x48 NV12 frame"), "{text}");
    assert!(text.contains(&frame.to_string()), "{text}");
    assert!(h.try_pull().is_none(), "no output for the refused buffer");
    assert_eq!(h.push(gst::Buffer::with_size(frame - 1).unwrap()), Err(gst::FlowError::Error), "too short");
    // one frame is upscaled as before
    h.push(nv12_buffer(64, 48)).unwrap();
    assert_eq!(h.pull().unwrap().size(), nv12_size(128, 96));
}

#[test]
fn a_padded_frame_with_a_video_meta_gives_exactly_one_output_frame() {
    init();
    let (w, h_, stride) = (64usize, 48usize, 80usize);
    let tight = nv12_buffer(w, h_);
    let tight_data = tight.map_readable().unwrap().to_vec();
    // the same pixels, rows padded to 80 bytes
    let mut padded = vec![0xa5u8; stride * h_ * 3 / 2];
    for (r, row) in tight_data.chunks(w).enumerate() {
        padded[r * stride..r * stride + w].copy_from_slice(row);
    }
    let mut padded = gst::Buffer::from_mut_slice(padded);
    gst_video::VideoMeta::add_full(
        padded.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Nv12,
        w as u32,
        h_ as u32,
        &[0, stride * h_],
        &[stride as i32, stride as i32],
    )
    .unwrap();
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=NV12,width=64,height=48");
    h.push(tight).unwrap();
    let from_tight = h.pull().unwrap();
    h.push(padded).unwrap();
    let from_padded = h.pull().unwrap();
    assert_eq!(from_padded.size(), nv12_size(128, 96), "one output frame, not a multiple of the input size");
    assert!(from_padded.map_readable().unwrap() == from_tight.map_readable().unwrap());
    // a meta of another size than the caps is refused
    let mut wrong = nv12_buffer(32, 48);
    gst_video::VideoMeta::add(
        wrong.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Nv12,
        32,
        48,
    )
    .unwrap();
    assert_eq!(h.push(wrong), Err(gst::FlowError::Error));
}

#[test]
fn buffers_without_accepted_caps_are_not_negotiated() {
    init();
    // no caps at all
    let mut h = Harness::with_element(&element(&nearest_model(2, None)), Some("sink"), Some("src"));
    h.play();
    assert_eq!(h.push(nv12_buffer(16, 8)), Err(gst::FlowError::NotNegotiated));
    // caps the model refuses, after caps it took
    let (mut h, bus) = {
        let h = harness(&nearest_model(2, Some((8, 16))), "video/x-raw,format=NV12,width=16,height=8");
        let bus = gst::Bus::new();
        h.element().unwrap().set_bus(Some(&bus));
        (h, bus)
    };
    h.push(nv12_buffer(16, 8)).unwrap();
    assert_eq!(h.pull().unwrap().size(), nv12_size(32, 16));
    h.set_src_caps_str("video/x-raw,format=NV12,width=32,height=16");
    assert_eq!(h.push(nv12_buffer(32, 16)), Err(gst::FlowError::NotNegotiated));
    let e = error_on(&bus);
    assert!(e.matches(gst::CoreError::Negotiation) && e.message().contains("only 16x8"), "{e:?}");
}

#[test]
fn stats_latency_and_caps_answer_while_a_frame_is_running() {
    init();
    // a frame takes seconds on the CPU (more on a loaded machine); the queries must not wait for it
    let desc = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=384,height=384,framerate=25/1 ! \
         vfupscale name=up backend=cpu model={} ! fakesink",
        slow_model(64, 16).display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let up = pipeline.by_name("up").unwrap();
    let (sink, src) = (up.static_pad("sink").unwrap(), up.static_pad("src").unwrap());
    let (started, finished) = (Arc::new(OnceLock::new()), Arc::new(OnceLock::new()));
    for (pad, at) in [(&sink, started.clone()), (&src, finished.clone())] {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let _ = at.set(Instant::now());
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.get().is_none() {
        assert!(Instant::now() < deadline, "the frame never reached the element");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (mut slowest, mut answered_while_running) = (Duration::ZERO, 0);
    while finished.get().is_none() {
        assert!(Instant::now() < deadline, "the frame never finished");
        let t = Instant::now();
        let stats: gst::Structure = up.property("stats");
        let mut latency = gst::query::Latency::new();
        assert!(src.query(&mut latency), "latency query answered");
        let caps = src.query_caps(None);
        let took = t.elapsed();
        assert!(stats.has_field("frames") && !caps.is_empty());
        slowest = slowest.max(took);
        answered_while_running += usize::from(finished.get().is_none());
        std::thread::sleep(Duration::from_millis(5));
    }
    let frame = *finished.get().unwrap() - *started.get().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    eprintln!("frame {frame:?}: {answered_while_running} rounds of queries answered meanwhile, slowest {slowest:?}");
    assert!(answered_while_running >= 5, "{answered_while_running} rounds in a frame of {frame:?}");
    assert!(slowest < frame / 4, "a round of queries took {slowest:?}, the frame {frame:?}: they waited for it");
}
