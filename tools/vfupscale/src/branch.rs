// SPDX-License-Identifier: MPL-2.0
//! The video branch of a job's pipeline, from a parsed stream to the muxer (or an image encoder, or a fakesink):
//!
//! ```text
//! GPU:  [parser] ! nvXdec ! queue ! vfupscale ! [size] ! depth ! queue ! (NVENC | cudadownload ! [videoflip] ! …
//!       (a stream NVDEC does not take: decodebin ! videoconvert ! NV12/P010 ! cudaupload ! queue ! vfupscale …)
//! CPU:  decodebin ! videoconvert ! NV12/P010 ! queue ! vfupscale ! [size] ! depth ! queue ! [videoflip] ! …
//! …  ! videoconvert ! I420/Y444 (10-bit: I420_10LE/Y444_10LE) ! encoder ! parser   (or: image encoder ! …)
//! ```
//! `depth` asks the element for NV12 or P010, as the encoder's bit depth says; the caps carry the colour description
//! and HDR metadata from the decoder to the encoder. 10-bit frames are turned as I420_10LE (videoflip takes no
//! P010).
//! For an input with an orientation tag, `videoflip video-direction=auto` turns the frames as it says: the muxers of
//! GStreamer 1.22 cannot store an orientation, so it is applied to the pixels.

use gst::prelude::*;

use crate::job::{Stage, VideoJob, VideoOutput};
use crate::output::ImageFormat;

/// The built branch and the pads the run watches.
pub struct Branch {
    /// First element's sink pad: the parsed stream links here, and EOS is sent here to stop.
    pub entry: gst::Pad,
    /// Where decoded frames enter the upscaler (or the end of a decode-only branch): the gate.
    pub gate: gst::Pad,
    /// Where upscaled frames leave (counted for progress).
    pub done: gst::Pad,
    /// The last element (linked to the muxer when there is one).
    pub exit: gst::Element,
    pub upscaler: Option<gst::Element>,
    pub decoder: Decoder,
    /// Encoder element and its description, for the summary.
    pub encoder: Option<(gst::Element, String)>,
}

pub enum Decoder {
    Nvdec(&'static str),
    /// decodebin chooses; its name is read once it has (and kept: decodebin empties itself when stopped).
    Software(gst::Element, std::sync::OnceLock<String>),
}

impl Decoder {
    pub fn name(&self) -> String {
        match self {
            Decoder::Nvdec(name) => name.to_string(),
            Decoder::Software(bin, name) => {
                if let Some(name) = name.get() {
                    return name.clone();
                }
                let found = bin
                    .downcast_ref::<gst::Bin>()
                    .map(|b| b.iterate_recurse())
                    .into_iter()
                    .flat_map(|it| it.into_iter().flatten())
                    .find_map(|e| e.factory().filter(|f| f.klass().contains("Decoder")))
                    .map(|f| f.name().to_string());
                match found {
                    Some(n) => name.get_or_init(|| n).clone(),
                    None => "software".to_string(),
                }
            }
        }
    }
}

pub fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory} is not available (missing plugin)"))
}

fn caps_filter(caps: gst::Caps) -> Result<gst::Element, String> {
    gst::ElementFactory::make("capsfilter").property("caps", caps).build().map_err(|e| e.to_string())
}

/// Why NVDEC cannot take a parsed stream, from what its caps say: H.264 only as 8-bit 4:2:0, no 4:2:2, nothing
/// beyond 10 bits (the upscaler takes 8 and 10). Streams that pass may still fail when the decoder opens them:
/// `pipeline` then runs the job again with software decoding.
fn nvdec_refuses(s: &gst::StructureRef) -> Option<String> {
    let depth = crate::media::bit_depth(&gst::Caps::builder_full().structure(s.to_owned()).build());
    let chroma = s.get::<&str>("chroma-format").ok();
    let h264 = s.name() == "video/x-h264";
    if let Some(c) = chroma.filter(|&c| c != "4:2:0" && (h264 || c == "4:2:2")) {
        return Some(format!("{c} chroma"));
    }
    if let Some(p) = s.get::<&str>("profile").ok().filter(|p| h264 && p.contains("4:")) {
        return Some(format!("profile {p}"));
    }
    if depth > 10 || (h264 && depth > 8) {
        return Some(format!("{depth}-bit samples"));
    }
    None
}

/// NVDEC decoder for a parsed stream when GStreamer has one that takes it (profile, chroma, bit depth), with the
/// parser that puts the stream in the form it wants. Its frames (NV12, or P010 for 10-bit streams) go to the
/// upscaler as they are.
fn nvdec_for(caps: &gst::Caps) -> Option<(&'static str, Option<&'static str>)> {
    let s = caps.structure(0)?;
    let (decoder, parser) = match s.name().as_str() {
        "video/x-h264" => ("nvh264dec", Some("h264parse")),
        "video/x-h265" => ("nvh265dec", Some("h265parse")),
        "video/x-vp9" => ("nvvp9dec", Some("vp9parse")),
        "video/x-vp8" => ("nvvp8dec", None),
        "video/x-av1" => ("nvav1dec", Some("av1parse")),
        "video/mpeg" => ("nvmpeg2videodec", Some("mpegvideoparse")),
        _ => return None,
    };
    let factory = gst::ElementFactory::find(decoder)?;
    // compare without what the parser converts
    let mut generic = caps.copy();
    if let Some(s) = generic.make_mut().structure_mut(0) {
        s.remove_fields(["stream-format", "alignment", "codec_data"]);
    }
    let refused = nvdec_refuses(s).or_else(|| (!factory.can_sink_any_caps(&generic)).then(|| generic.to_string()));
    if let Some(why) = refused {
        crate::report::note(&format!("note: {decoder} cannot decode this stream ({why}); decoding in software"));
        return None;
    }
    Some((decoder, parser.filter(|p| gst::ElementFactory::find(p).is_some())))
}

/// Image encoder element for sequences.
pub fn image_encoder(format: ImageFormat) -> Result<gst::Element, String> {
    let factory = match format {
        ImageFormat::Png => "pngenc",
        ImageFormat::Jpeg => "jpegenc",
        ImageFormat::Webp => "webpenc",
        ImageFormat::Tiff => "avenc_tiff",
    };
    let element = make(factory).map_err(|e| format!("{} sequences: {e}", format.name()))?;
    if format == ImageFormat::Png {
        // one file per frame, not a single image
        element.set_property("snapshot", false);
    }
    if format == ImageFormat::Jpeg {
        element.set_property("quality", 95i32);
    }
    Ok(element)
}

/// Builds the branch for a parsed video stream with `caps`, adds it to `pipeline` and brings it to the pipeline's
/// state (not yet linked upstream). A sequence's frames are written into `frames_dir`.
pub fn build(
    pipeline: &gst::Pipeline,
    job: &VideoJob,
    caps: &gst::Caps,
    frames_dir: &std::path::Path,
) -> Result<Branch, String> {
    let stage = job.stage();
    let nvdec = if job.gpu { nvdec_for(caps) } else { None };
    let mut chain: Vec<gst::Element> = Vec::new();
    // frames in CUDA memory from here on: NVDEC's, or software-decoded ones uploaded for a GPU upscaler
    let cuda_frames = nvdec.is_some() || job.upscale.gpu;
    let decoder = match nvdec {
        Some((dec, parser)) => {
            if let Some(parser) = parser {
                chain.push(make(parser)?);
            }
            chain.push(make(dec)?);
            Decoder::Nvdec(dec)
        }
        None => {
            let bin = make("decodebin")?;
            // 10 bits and more stay 10 bits into the element (P010), 8 bits are NV12
            let deep = crate::media::bit_depth(caps) > 8;
            chain.extend([bin.clone(), make("videoconvert")?, raw_format(if deep { "P010_10LE" } else { "NV12" })?]);
            if job.upscale.gpu {
                chain.push(make("cudaupload")?);
            }
            Decoder::Software(bin, Default::default())
        }
    };
    let gate_queue = make("queue")?;
    chain.push(gate_queue);
    let mut upscaler = None;
    let mut encoder = None;
    if stage == Stage::Decode {
        chain.push(fakesink()?);
    } else {
        let element = job.upscale.element()?;
        chain.push(element.clone());
        upscaler = Some(element);
        if job.upscale.size.resizes() {
            chain.push(job.upscale.size_filter()?);
        }
        if let VideoOutput::File { encoder, .. } | VideoOutput::Discard { encoder, .. } = &job.output {
            // the bit depth to encode, written by the element itself (its float output, not a conversion after it)
            chain.push(raw_format(if encoder.depth > 8 { "P010_10LE" } else { "NV12" })?);
        }
        if stage == Stage::Upscale {
            chain.push(fakesink()?);
        } else {
            chain.push(make("queue")?);
            let nvenc = matches!(&job.output, VideoOutput::File { encoder, .. } | VideoOutput::Discard { encoder, .. }
                if encoder.encoder.is_nvenc());
            let mut in_cuda = cuda_frames;
            if in_cuda && (!nvenc || job.media.video.orientation.is_some()) {
                chain.push(make("cudadownload")?);
                in_cuda = false;
            }
            if job.media.video.orientation.is_some() {
                // P010 (10-bit frames) is no format of videoflip's: converted first (a passthrough for NV12)
                chain.extend([make("videoconvert")?, flip()?]);
            }
            match &job.output {
                VideoOutput::File { encoder: settings, .. } | VideoOutput::Discard { encoder: settings, .. } => {
                    if nvenc && !in_cuda {
                        chain.push(make("cudaupload")?);
                    } else if !nvenc {
                        chain.push(make("videoconvert")?);
                    }
                    chain.push(caps_filter(settings.raw_caps())?);
                    let element = settings.build()?;
                    encoder = Some((element.clone(), settings.describe(&element)));
                    chain.push(element);
                    if let Some(parser) = settings.encoder.parser() {
                        chain.push(make(parser)?);
                    }
                }
                VideoOutput::Sequence { pattern, format, .. } => {
                    chain.push(make("videoconvert")?);
                    let element = image_encoder(*format)?;
                    encoder = Some((element.clone(), format!("{} images", format.name())));
                    chain.push(element);
                    let location = frames_dir.join(pattern);
                    let sink = gst::ElementFactory::make("multifilesink")
                        .property("location", location.to_str().ok_or("the sequence folder is not UTF-8")?)
                        .property("index", 1i32)
                        .property("post-messages", false)
                        .build()
                        .map_err(|e| e.to_string())?;
                    chain.push(sink);
                }
            }
        }
    }
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    if let Decoder::Software(bin, _) = &decoder {
        // decodebin's source pad appears once it knows the stream
        let next = chain[1].clone();
        bin.connect_pad_added(move |_, src| {
            if let Some(sink) = next.static_pad("sink")
                && !sink.is_linked()
                && src.query_caps(None).iter().any(|s| s.name().starts_with("video/"))
            {
                let _ = src.link(&sink);
            }
        });
        gst::Element::link_many(&chain[1..]).map_err(|e| format!("cannot link the video branch: {e}"))?;
    } else {
        gst::Element::link_many(&chain).map_err(|e| format!("cannot link the video branch: {e}"))?;
    }
    for e in chain.iter().rev() {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let pad =
        |e: &gst::Element, name: &str| e.static_pad(name).ok_or_else(|| format!("{} has no {name} pad", e.name()));
    let gate_element = upscaler.clone().unwrap_or_else(|| chain.last().unwrap().clone());
    let gate = pad(&gate_element, "sink")?;
    let done = match &upscaler {
        Some(u) => pad(u, "src")?,
        None => gate.clone(),
    };
    Ok(Branch {
        entry: pad(&chain[0], "sink")?,
        gate,
        done,
        exit: chain.last().unwrap().clone(),
        upscaler,
        decoder,
        encoder,
    })
}

/// `videoflip` turning frames as their orientation tag says.
pub fn flip() -> Result<gst::Element, String> {
    let flip = make("videoflip").map_err(|e| format!("the input is rotated: {e}"))?;
    flip.set_property_from_str("video-direction", "auto");
    Ok(flip)
}

/// A caps filter for frames of `format` in any memory.
fn raw_format(format: &str) -> Result<gst::Element, String> {
    caps_filter(gst::Caps::builder("video/x-raw").any_features().field("format", format).build())
}

fn fakesink() -> Result<gst::Element, String> {
    gst::ElementFactory::make("fakesink").property("sync", false).build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(caps: &str) -> Option<String> {
        gst::init().unwrap();
        nvdec_refuses(caps.parse::<gst::Caps>().unwrap().structure(0).unwrap())
    }

    #[test]
    fn nvdec_is_not_given_what_it_cannot_decode() {
        assert_eq!(refused("video/x-h264,profile=high,chroma-format=4:2:0,bit-depth-luma=(uint)8"), None);
        assert_eq!(refused("video/x-h265,profile=main-10,chroma-format=4:2:0,bit-depth-luma=(uint)10"), None);
        assert_eq!(refused("video/x-h265,profile=main-444,chroma-format=4:4:4"), None, "HEVC 4:4:4 is NVDEC's");
        assert_eq!(refused("video/x-h264,profile=high-4:4:4,chroma-format=4:4:4").unwrap(), "4:4:4 chroma");
        assert_eq!(refused("video/x-h264,profile=high-4:4:4").unwrap(), "profile high-4:4:4");
        assert_eq!(refused("video/x-h264,profile=high-10").unwrap(), "10-bit samples");
        assert_eq!(refused("video/x-h265,chroma-format=4:2:2").unwrap(), "4:2:2 chroma");
        assert_eq!(refused("video/x-h265,profile=main-12").unwrap(), "12-bit samples");
    }
}
