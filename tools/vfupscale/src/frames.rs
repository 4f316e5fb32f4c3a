// SPDX-License-Identifier: MPL-2.0
//! Single frames through the element, for images and previews:
//! `appsrc (RGBA) ! videoconvert ! RGBA ! [cudaupload ! RGBA(CUDAMemory)] ! vfupscale ! [size] ! [cudadownload] ! videoconvert ! RGBA !
//! appsink` (CUDA memory where the GPU path is usable, as the element's GPU backends expect), one pipeline kept
//! playing for every frame of a run (the model loads once; sizes may change from frame to frame). The element sees
//! RGBA; an alpha channel is scaled classically (Catmull-Rom bicubic here) and put back.

use std::time::Duration;

use gst::prelude::*;
use gst_video::prelude::*;
use image::{GrayImage, RgbaImage, imageops};

use crate::branch::make;
use crate::job::Upscale;
use crate::signals;

/// A decoded frame and whether its source had an alpha channel.
pub struct Frame {
    pub image: RgbaImage,
    pub has_alpha: bool,
}

pub struct FrameUpscaler {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    size: gst::Element,
    upscaler: gst::Element,
    key: (std::path::PathBuf, &'static str, &'static str, u32),
    pushed: u64,
}

fn rgba_caps(w: u32, h: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGBA")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(0, 1))
        .build()
}

fn filter(caps: gst::Caps) -> Result<gst::Element, String> {
    gst::ElementFactory::make("capsfilter").property("caps", caps).build().map_err(|e| e.to_string())
}

/// Copies a sample's RGBA frame out (rows may be padded).
pub fn sample_to_rgba(sample: &gst::Sample) -> Result<RgbaImage, String> {
    let caps = sample.caps().ok_or("a frame without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| format!("unexpected frame caps {caps}"))?;
    let buffer = sample.buffer().ok_or("a sample without a frame")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|_| "cannot map a frame")?;
    let (w, h) = (info.width(), info.height());
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|_| "cannot read a frame")?;
    let row = w as usize * 4;
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    RgbaImage::from_raw(w, h, out).ok_or_else(|| "frame size mismatch".to_string())
}

/// Waits for a sample from `sink`, watching the bus for errors and for signals.
pub fn wait_sample(pipeline: &gst::Pipeline, sink: &gst_app::AppSink, preroll: bool) -> Result<gst::Sample, String> {
    let bus = pipeline.bus().ok_or("no bus")?;
    loop {
        let timeout = gst::ClockTime::from_mseconds(100);
        let sample = if preroll { sink.try_pull_preroll(timeout) } else { sink.try_pull_sample(timeout) };
        if let Some(s) = sample {
            return Ok(s);
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
            let reason = if e.debug().is_some_and(|d| d.contains("not-negotiated")) { " (not-negotiated)" } else { "" };
            return Err(format!("{src}: {}{reason}", e.error()));
        }
        if sink.is_eos() {
            return Err("the stream ended without a frame".into());
        }
        if let Some(sig) = signals::received() {
            return Err(format!("interrupted by {}", signals::name(sig)));
        }
    }
}

impl FrameUpscaler {
    pub fn new(upscale: &Upscale) -> Result<FrameUpscaler, String> {
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder().format(gst::Format::Time).build();
        // the element takes RGBA as it is: no 4:2:0 round trip
        let rgba = gst::Caps::builder("video/x-raw").field("format", "RGBA").build();
        let upscaler = upscale.element()?;
        // one frame at a time, each awaited before the next is pushed: the element must not keep a CUDA frame in
        // flight for a next frame that only comes once this one is out (it did, and images hung on the GPU path)
        upscaler.set_property("async-depth", 0u32);
        let size = filter(gst::Caps::builder("video/x-raw").any_features().build())?;
        let sink = gst_app::AppSink::builder()
            .caps(&gst::Caps::builder("video/x-raw").field("format", "RGBA").build())
            .sync(false)
            .build();
        let mut elements = vec![src.clone().upcast(), make("videoconvert")?, filter(rgba)?];
        if upscale.gpu {
            // cudaupload passes system memory through where downstream takes it, and the element's native kernels
            // take CUDA memory only: ask for CUDA memory
            let cuda =
                gst::Caps::builder("video/x-raw").features(["memory:CUDAMemory"]).field("format", "RGBA").build();
            elements.extend([make("cudaupload")?, filter(cuda)?]);
        }
        elements.extend([upscaler.clone(), size.clone()]);
        if upscale.gpu {
            elements.push(make("cudadownload")?);
        }
        elements.extend([make("videoconvert")?, sink.clone().upcast()]);
        pipeline.add_many(&elements).map_err(|e| e.to_string())?;
        gst::Element::link_many(&elements).map_err(|e| e.to_string())?;
        let key = (upscale.model.path.clone(), upscale.backend, upscale.precision, upscale.device);
        Ok(FrameUpscaler { pipeline, src, sink, size, upscaler, key, pushed: 0 })
    }

    /// True when this pipeline runs the model and settings `upscale` asks for.
    pub fn runs(&self, upscale: &Upscale) -> bool {
        self.key == (upscale.model.path.clone(), upscale.backend, upscale.precision, upscale.device)
    }

    pub fn upscaler(&self) -> &gst::Element {
        &self.upscaler
    }

    /// The frame enlarged as `upscale.size` says.
    pub fn upscale(&mut self, frame: &Frame, upscale: &Upscale) -> Result<RgbaImage, String> {
        let (w, h) = frame.image.dimensions();
        let (ow, oh) = upscale.size.output;
        let size = if upscale.size.resizes() {
            gst::Caps::builder("video/x-raw")
                .any_features()
                .field("width", ow as i32)
                .field("height", oh as i32)
                .build()
        } else {
            gst::Caps::builder("video/x-raw").any_features().build()
        };
        self.size.set_property("caps", size);
        self.src.set_caps(Some(&rgba_caps(w, h)));
        if self.pushed == 0 {
            self.pipeline.set_state(gst::State::Playing).map_err(|_| self.error_or("cannot start the upscaler"))?;
        }
        let mut buffer = gst::Buffer::from_mut_slice(frame.image.as_raw().clone());
        {
            let b = buffer.get_mut().expect("new buffer");
            b.set_pts(gst::ClockTime::from_seconds(self.pushed));
            b.set_duration(gst::ClockTime::SECOND);
        }
        self.pushed += 1;
        self.src.push_buffer(buffer).map_err(|e| format!("cannot push the frame: {e:?}"))?;
        let sample = wait_sample(&self.pipeline, &self.sink, false)?;
        let mut out = sample_to_rgba(&sample)?;
        if frame.has_alpha {
            let alpha = GrayImage::from_fn(w, h, |x, y| image::Luma([frame.image.get_pixel(x, y)[3]]));
            let (ow, oh) = out.dimensions();
            let scaled = imageops::resize(&alpha, ow, oh, imageops::FilterType::CatmullRom);
            for (p, a) in out.pixels_mut().zip(scaled.pixels()) {
                p[3] = a[0];
            }
        }
        Ok(out)
    }

    fn error_or(&self, fallback: &str) -> String {
        let bus = self.pipeline.bus();
        match bus.and_then(|b| b.pop_filtered(&[gst::MessageType::Error])) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => fallback.into(),
            },
            None => fallback.into(),
        }
    }
}

impl Drop for FrameUpscaler {
    fn drop(&mut self) {
        let _ = self.src.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A short wait for state changes of small pipelines.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(30);
