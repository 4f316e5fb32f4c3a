// SPDX-License-Identifier: MPL-2.0
//! Image files in and out. PNG, JPEG and WebP go through GStreamer (`pngdec`/`jpegdec`/`webpdec`, `pngenc`/
//! `jpegenc`/`webpenc`); TIFF through the `image` crate, since GStreamer reads and writes TIFF only with gst-libav.
//! Frames of videos are read the same way, at a given time (an accurate seek), and turned as their orientation
//! tag says.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gst::prelude::*;
use image::RgbaImage;

use crate::branch::make;
use crate::frames::{Frame, STATE_TIMEOUT, sample_to_rgba, wait_sample};
use crate::media::file_uri;
use crate::output::ImageFormat;

/// Reads an image file.
pub fn read(path: &Path, format: ImageFormat) -> Result<Frame, String> {
    if format == ImageFormat::Tiff {
        let decoded =
            image::open(path).map_err(|e| format!("{}: not a TIFF image vfupscale can read ({e})", path.display()))?;
        let has_alpha = decoded.color().has_alpha();
        return Ok(Frame { image: decoded.into_rgba8(), has_alpha });
    }
    grab(path, None).map_err(|e| format!("{}: {e}", path.display()))
}

/// Decodes one frame of a file with GStreamer: the first, or the one shown at `at`; turned as its orientation tag
/// says where `videoflip` is installed.
pub fn grab(path: &Path, at: Option<Duration>) -> Result<Frame, String> {
    let pipeline = gst::Pipeline::new();
    let src = gst::Element::make_from_uri(gst::URIType::Src, &file_uri(path)?, None).map_err(|e| e.to_string())?;
    let decode = make("decodebin")?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "RGBA").build())
        .sync(false)
        .build();
    let mut chain = Vec::new();
    if gst::ElementFactory::find("videoflip").is_some() {
        chain.push(crate::branch::flip()?);
    }
    chain.extend([make("videoconvert")?, sink.clone().upcast()]);
    pipeline.add_many([&src, &decode]).map_err(|e| e.to_string())?;
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    src.link(&decode).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    let has_alpha = Arc::new(AtomicBool::new(false));
    {
        let (flip, has_alpha) = (chain[0].clone(), has_alpha.clone());
        decode.connect_pad_added(move |_, pad| {
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            if caps.structure(0).is_none_or(|s| s.name() != "video/x-raw") {
                return;
            }
            if let Ok(info) = gst_video::VideoInfo::from_caps(&caps) {
                has_alpha.store(info.format_info().has_alpha(), Ordering::SeqCst);
            }
            if let Some(sink) = flip.static_pad("sink").filter(|p| !p.is_linked()) {
                let _ = pad.link(&sink);
            }
        });
    }
    let result = (|| {
        pipeline.set_state(gst::State::Paused).map_err(|_| first_error(&pipeline, "cannot read it"))?;
        wait_async_done(&pipeline)?;
        if let Some(at) = at {
            let position = gst::ClockTime::from_nseconds(at.as_nanos() as u64);
            pipeline
                .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, position)
                .map_err(|_| format!("cannot seek to {position:.3}"))?;
            wait_async_done(&pipeline)?;
        }
        let sample = wait_sample(&pipeline, &sink, true)?;
        Ok(Frame { image: sample_to_rgba(&sample)?, has_alpha: has_alpha.load(Ordering::SeqCst) })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn first_error(pipeline: &gst::Pipeline, fallback: &str) -> String {
    let msg =
        pipeline.bus().and_then(|b| b.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]));
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => e.error().to_string(),
        _ => fallback.to_string(),
    }
}

fn wait_async_done(pipeline: &gst::Pipeline) -> Result<(), String> {
    let bus = pipeline.bus().ok_or("no bus")?;
    let timeout = gst::ClockTime::from_nseconds(STATE_TIMEOUT.as_nanos() as u64);
    match bus
        .timed_pop_filtered(timeout, &[gst::MessageType::AsyncDone, gst::MessageType::Error, gst::MessageType::Eos])
    {
        Some(msg) => match msg.view() {
            gst::MessageView::AsyncDone(_) => Ok(()),
            gst::MessageView::Error(e) => Err(e.error().to_string()),
            _ => Err("the stream ended before that frame".into()),
        },
        None => Err("reading it timed out".into()),
    }
}

/// Writes `image` (with its alpha channel where the format has one and `alpha` says so) to `path`.
pub fn write(image: &RgbaImage, alpha: bool, format: ImageFormat, path: &Path) -> Result<(), String> {
    let alpha = alpha && format.has_alpha();
    if format == ImageFormat::Tiff {
        let result = if alpha {
            image.save_with_format(path, image::ImageFormat::Tiff)
        } else {
            image::DynamicImage::ImageRgba8(image.clone()).into_rgb8().save_with_format(path, image::ImageFormat::Tiff)
        };
        return result.map_err(|e| format!("{}: {e}", path.display()));
    }
    let encoder = match format {
        ImageFormat::Png => make("pngenc")?,
        ImageFormat::Jpeg => {
            let e = make("jpegenc")?;
            e.set_property("quality", 95i32);
            e
        }
        _ => make("webpenc")?,
    };
    let pipeline = gst::Pipeline::new();
    let (w, h) = image.dimensions();
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGBA")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(0, 1))
        .build();
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).build();
    let layout = gst::Caps::builder("video/x-raw").field("format", if alpha { "RGBA" } else { "RGB" }).build();
    let layout = gst::ElementFactory::make("capsfilter").property("caps", layout).build().map_err(|e| e.to_string())?;
    let sink = gst::Element::make_from_uri(gst::URIType::Sink, &file_uri(path)?, None).map_err(|e| e.to_string())?;
    let convert = make("videoconvert")?;
    let elements = [src.upcast_ref(), &convert, &layout, &encoder, &sink];
    pipeline.add_many(elements).map_err(|e| e.to_string())?;
    gst::Element::link_many(elements).map_err(|e| e.to_string())?;
    let result = (|| {
        pipeline.set_state(gst::State::Playing).map_err(|_| first_error(&pipeline, "cannot encode"))?;
        let mut buffer = gst::Buffer::from_mut_slice(image.as_raw().clone());
        buffer.get_mut().expect("new buffer").set_pts(gst::ClockTime::ZERO);
        src.push_buffer(buffer).map_err(|e| format!("cannot encode: {e:?}"))?;
        let _ = src.end_of_stream();
        let bus = pipeline.bus().ok_or("no bus")?;
        match bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error])
        {
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => Ok(()),
                gst::MessageView::Error(e) => Err(format!("{}: {}", path.display(), e.error())),
                _ => unreachable!("filtered"),
            },
            None => Err(format!("{}: encoding timed out", path.display())),
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}
