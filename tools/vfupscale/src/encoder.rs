// SPDX-License-Identifier: MPL-2.0
//! Video encoders: which element, how quality (CRF-like), bitrate and presets map onto its properties, which raw
//! format it is given (4:2:0 unless asked; 10-bit for 10-bit sources unless asked), and which containers can hold
//! its output. The colour description (primaries, transfer, matrix) and HDR metadata come with the frames' caps,
//! which the encoders write into the stream (VUI and SEI), and the parsers and muxers into the container. Everything is applied and
//! checked when the job is planned, so a bad value is a one-line error before anything runs.

use std::ops::RangeInclusive;

use gst::prelude::*;

use crate::cli::{Chroma, EncodeArgs, EncoderChoice};
use crate::props;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    NvH265,
    NvH264,
    X265,
    X264,
    Av1,
    Ffv1,
}

impl Encoder {
    /// The encoder for `choice` at `depth` bits; `auto` takes NVENC when the GPU path runs and GStreamer has it,
    /// else x264enc; at 10 bits nvh265enc (Main 10) or x265enc (Main 10), since H.264 High 10 plays in few places.
    pub fn choose(choice: EncoderChoice, gpu: bool, depth: u32) -> Encoder {
        let have = |f: &str| gst::ElementFactory::find(f).is_some();
        match choice {
            EncoderChoice::Auto if gpu && have("nvh265enc") => Encoder::NvH265,
            EncoderChoice::Auto if depth > 8 => Encoder::X265,
            EncoderChoice::Auto if gpu && have("nvh264enc") => Encoder::NvH264,
            EncoderChoice::Auto | EncoderChoice::X264enc => Encoder::X264,
            EncoderChoice::Nvh265enc => Encoder::NvH265,
            EncoderChoice::Nvh264enc => Encoder::NvH264,
            EncoderChoice::X265enc => Encoder::X265,
            EncoderChoice::Av1enc => Encoder::Av1,
            EncoderChoice::Ffv1 => Encoder::Ffv1,
        }
    }

    pub fn factory(self) -> &'static str {
        match self {
            Encoder::NvH265 => "nvh265enc",
            Encoder::NvH264 => "nvh264enc",
            Encoder::X265 => "x265enc",
            Encoder::X264 => "x264enc",
            Encoder::Av1 => "av1enc",
            Encoder::Ffv1 => "avenc_ffv1",
        }
    }

    /// The parser that puts the encoder's output in the form muxers take.
    pub fn parser(self) -> Option<&'static str> {
        match self {
            Encoder::NvH265 | Encoder::X265 => Some("h265parse"),
            Encoder::NvH264 | Encoder::X264 => Some("h264parse"),
            Encoder::Av1 => Some("av1parse"),
            Encoder::Ffv1 => None,
        }
    }

    pub fn is_nvenc(self) -> bool {
        matches!(self, Encoder::NvH265 | Encoder::NvH264)
    }

    fn codec(self) -> &'static str {
        match self {
            Encoder::NvH265 | Encoder::X265 => "H.265",
            Encoder::NvH264 | Encoder::X264 => "H.264",
            Encoder::Av1 => "AV1",
            Encoder::Ffv1 => "FFV1",
        }
    }

    /// Default constant quality, and the range of `--crf` where no property range says it.
    fn crf(self) -> Option<(u32, RangeInclusive<u32>)> {
        match self {
            Encoder::X264 => Some((20, 0..=50)),
            Encoder::X265 => Some((22, 0..=51)),
            Encoder::Av1 => Some((32, 0..=63)),
            Encoder::NvH264 | Encoder::NvH265 => Some((22, 0..=51)),
            Encoder::Ffv1 => None,
        }
    }

    fn preset_property(self) -> Option<&'static str> {
        match self {
            Encoder::X264 | Encoder::X265 => Some("speed-preset"),
            Encoder::Av1 => Some("cpu-used"),
            Encoder::NvH264 | Encoder::NvH265 => Some("preset"),
            Encoder::Ffv1 => None,
        }
    }
}

/// The encoder and its settings, as asked for.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    pub encoder: Encoder,
    pub crf: Option<u32>,
    pub bitrate: Option<u32>,
    pub preset: Option<String>,
    pub options: Vec<(String, String)>,
    pub chroma: Chroma,
    /// Bits per component written: 8 or 10.
    pub depth: u32,
    /// Bits per component of the source.
    pub source_depth: u32,
}

impl EncoderSettings {
    /// The settings for a source of `source_depth` bits: its depth is kept (10 for 10- and 12-bit sources) unless
    /// `--bit-depth` says otherwise.
    pub fn from_args(args: &EncodeArgs, gpu: bool, source_depth: u32) -> EncoderSettings {
        let depth = args.bit_depth.unwrap_or(if source_depth > 8 { 10 } else { 8 });
        EncoderSettings {
            encoder: Encoder::choose(args.encoder, gpu, depth),
            crf: args.crf,
            bitrate: args.bitrate,
            preset: args.preset.clone(),
            options: args.encoder_options.clone(),
            chroma: args.chroma,
            depth,
            source_depth,
        }
    }

    /// What happened to the bit depth, for the summary: "10-bit", "10-bit from an 8-bit source (--bit-depth 10)",
    /// "8-bit from a 10-bit source (--bit-depth 8)".
    pub fn depth_note(&self) -> String {
        match (self.source_depth.max(8), self.depth) {
            (s, d) if s == d => format!("{d}-bit"),
            (12, 10) => "10-bit from a 12-bit source".into(),
            (s, d) => {
                let article = if s == 8 { "an" } else { "a" };
                format!("{d}-bit from {article} {s}-bit source (--bit-depth {d})")
            }
        }
    }

    /// The configured encoder element. Every value is checked against what the element takes.
    pub fn build(&self) -> Result<gst::Element, String> {
        let enc = self.encoder;
        let factory = enc.factory();
        let element = gst::ElementFactory::make(factory).build().map_err(|_| {
            format!("the encoder {factory} is not available here (its GStreamer plugin is missing; see vfupscale info)")
        })?;
        let mut option_string = None;
        let mut options = Vec::new();
        for (key, value) in &self.options {
            if key == "option-string" && enc == Encoder::X265 {
                option_string = Some(value.clone()); // merged with the quality setting below
            } else {
                options.push((key, value));
            }
        }
        match (self.crf, self.bitrate, enc.crf()) {
            (_, _, None) if self.crf.is_some() || self.bitrate.is_some() => {
                return Err(format!("{factory} is lossless: it takes neither --crf nor --bitrate"));
            }
            (_, _, None) => {}
            (crf, None, Some((default, range))) => {
                let crf = crf.unwrap_or(default);
                self.set_quality(&element, crf, range, &mut option_string)?;
            }
            (_, Some(kbps), Some(_)) => self.set_bitrate(&element, kbps)?,
        }
        if let Some(preset) = &self.preset {
            let prop = enc.preset_property().ok_or_else(|| format!("--preset: {factory} has no presets"))?;
            props::set_from_str(&element, prop, preset).map_err(|e| format!("--preset {preset}: {e}"))?;
        } else if enc == Encoder::Av1 {
            // libaom's own default (cpu-used 0) runs at a few frames per minute at 4K
            props::set(&element, "cpu-used", 6i32)?;
        }
        if let Some(s) = option_string {
            props::set_from_str(&element, "option-string", &s).map_err(|e| format!("-e option-string={s}: {e}"))?;
        }
        for (key, value) in options {
            props::set_from_str(&element, key, value).map_err(|e| format!("-e {key}={value}: {e}"))?;
        }
        Ok(element)
    }

    fn set_quality(
        &self,
        element: &gst::Element,
        crf: u32,
        range: RangeInclusive<u32>,
        option_string: &mut Option<String>,
    ) -> Result<(), String> {
        let factory = self.encoder.factory();
        let out_of_range =
            || format!("--crf {crf}: {factory} takes {} to {} (lower is better)", range.start(), range.end());
        if !range.contains(&crf) {
            return Err(out_of_range());
        }
        match self.encoder {
            Encoder::X264 => {
                props::set_from_str(element, "pass", "qual")?;
                props::set(element, "quantizer", crf).map_err(|_| out_of_range())
            }
            Encoder::X265 => {
                let user = option_string.take().map(|s| format!(":{s}")).unwrap_or_default();
                *option_string = Some(format!("crf={crf}{user}"));
                Ok(())
            }
            Encoder::Av1 => {
                props::set_from_str(element, "end-usage", "q")?;
                props::set(element, "min-quantizer", crf)?;
                props::set(element, "max-quantizer", crf)
            }
            Encoder::NvH264 | Encoder::NvH265 if element.find_property("const-quality").is_some() => {
                props::set_from_str(element, "rc-mode", "vbr")?;
                if element.find_property("bitrate").is_some() {
                    props::set(element, "bitrate", 0u32)?;
                }
                props::set(element, "const-quality", crf as f64).map_err(|_| out_of_range())
            }
            Encoder::NvH264 | Encoder::NvH265 => {
                props::set_from_str(element, "rc-mode", "constqp")?;
                props::set(element, "qp-const", crf as i32).map_err(|_| out_of_range())
            }
            Encoder::Ffv1 => Ok(()),
        }
    }

    fn set_bitrate(&self, element: &gst::Element, kbps: u32) -> Result<(), String> {
        let property = match self.encoder {
            Encoder::Av1 => {
                props::set_from_str(element, "end-usage", "vbr")?;
                "target-bitrate"
            }
            Encoder::NvH264 | Encoder::NvH265 => {
                props::set_from_str(element, "rc-mode", "vbr")?;
                "bitrate"
            }
            _ => "bitrate",
        };
        props::set(element, property, kbps).map_err(|e| match element.find_property(property) {
            Some(pspec) => format!(
                "--bitrate {kbps}: {} takes {} kbit/s",
                self.encoder.factory(),
                props::describe(&pspec).trim_start_matches("an integer from ")
            ),
            None => e,
        })
    }

    /// The raw format the encoder is given (a caps filter after the conversion before it).
    pub fn raw_caps(&self) -> gst::Caps {
        let format = match (self.chroma, self.encoder.is_nvenc(), self.depth > 8) {
            (Chroma::Yuv420, true, false) => "NV12",
            (Chroma::Yuv420, true, true) => "P010_10LE",
            (Chroma::Yuv420, false, false) => "I420",
            (Chroma::Yuv420, false, true) => "I420_10LE",
            (Chroma::Yuv444, _, false) => "Y444",
            (Chroma::Yuv444, true, true) => "Y444_16LE",
            (Chroma::Yuv444, false, true) => "Y444_10LE",
        };
        let mut caps = gst::Caps::builder("video/x-raw").field("format", format).build();
        if self.encoder.is_nvenc() {
            caps.get_mut().unwrap().set_features_simple(Some(gst::CapsFeatures::new(["memory:CUDAMemory"])));
        }
        caps
    }

    /// Refuses, before the run, what the encoder cannot take or the container cannot hold.
    pub fn check(&self, element: &gst::Element, muxer: Option<&str>) -> Result<(), String> {
        let factory = self.encoder.factory();
        let raw = self.raw_caps();
        let takes = element.static_pad("sink").map(|p| p.pad_template_caps()).unwrap_or_else(gst::Caps::new_any);
        if !takes.can_intersect(&raw) {
            let chroma = if self.chroma == Chroma::Yuv444 { "4:4:4" } else { "4:2:0" };
            if self.depth > 8 {
                let why = if self.source_depth > 8 { "the source is 10-bit" } else { "--bit-depth 10" };
                let other = if self.encoder == Encoder::X265 { "--encoder ffv1" } else { "--encoder x265enc" };
                return Err(format!(
                    "{factory} cannot encode 10-bit {chroma} video here ({why}): use {other}, or --bit-depth 8 to \
                     write 8 bits"
                ));
            }
            return Err(format!("--chroma: {factory} does not take {chroma} input here"));
        }
        let Some(muxer) = muxer else {
            return Ok(());
        };
        let gives = element.static_pad("src").map(|p| p.pad_template_caps()).unwrap_or_else(gst::Caps::new_any);
        let names: Vec<String> = gives.iter().map(|s| s.name().to_string()).collect();
        let mux = gst::ElementFactory::find(muxer).ok_or_else(|| format!("the muxer {muxer} is not available"))?;
        let holds = mux.static_pad_templates().iter().any(|t| {
            t.direction() == gst::PadDirection::Sink
                && t.name_template().starts_with("video")
                && t.caps().iter().any(|s| names.iter().any(|n| s.name() == n.as_str()))
        });
        if holds {
            Ok(())
        } else {
            let hint = if muxer == "matroskamux" { "" } else { ": use .mkv" };
            Err(format!("{} ({factory}) cannot be stored by {muxer}{hint}", self.encoder.codec()))
        }
    }

    /// "x264enc crf 20, speed-preset medium, 4:2:0" from the configured element.
    pub fn describe(&self, element: &gst::Element) -> String {
        let enc = self.encoder;
        let mut parts = vec![enc.factory().to_string()];
        match (self.bitrate, enc.crf()) {
            (_, None) => parts.push("lossless".into()),
            (Some(kbps), _) => parts.push(format!("{kbps} kbit/s")),
            (None, Some((default, _))) => parts.push(format!("crf {}", self.crf.unwrap_or(default))),
        }
        if let Some(prop) = enc.preset_property().filter(|p| element.find_property(p).is_some()) {
            let value = element.property_value(prop);
            let shown = value.serialize().map(|s| s.to_string()).unwrap_or_default();
            parts.push(format!("{prop} {shown}"));
        }
        parts.push(if self.chroma == Chroma::Yuv444 { "4:4:4" } else { "4:2:0" }.into());
        if self.depth > 8 {
            parts.push(format!("{}-bit", self.depth));
        }
        let mut text = format!("{} ({})", parts[0], parts[1..].join(", "));
        for (k, v) in &self.options {
            text.push_str(&format!(" {k}={v}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(encoder: Encoder) -> EncoderSettings {
        EncoderSettings {
            encoder,
            crf: None,
            bitrate: None,
            preset: None,
            options: vec![],
            chroma: Chroma::Yuv420,
            depth: 8,
            source_depth: 8,
        }
    }

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn crf_maps_to_each_encoders_quality_mode() {
        init();
        let x264 = EncoderSettings { crf: Some(18), ..settings(Encoder::X264) }.build().unwrap();
        assert_eq!(x264.property::<u32>("quantizer"), 18);
        assert_eq!(x264.property_value("pass").serialize().unwrap(), "qual");
        let x265 = EncoderSettings {
            crf: Some(25),
            options: vec![("option-string".into(), "aq-mode=3".into())],
            ..settings(Encoder::X265)
        }
        .build()
        .unwrap();
        assert_eq!(x265.property::<String>("option-string"), "crf=25:aq-mode=3");
        let av1 = EncoderSettings { crf: Some(40), ..settings(Encoder::Av1) }.build().unwrap();
        assert_eq!((av1.property::<u32>("min-quantizer"), av1.property::<u32>("max-quantizer")), (40, 40));
        assert_eq!(av1.property_value("end-usage").serialize().unwrap(), "q");
    }

    #[test]
    fn out_of_range_values_give_the_range() {
        init();
        let e = EncoderSettings { crf: Some(999), ..settings(Encoder::X264) }.build().unwrap_err();
        assert_eq!(e, "--crf 999: x264enc takes 0 to 50 (lower is better)");
        let e = EncoderSettings { bitrate: Some(200000), ..settings(Encoder::X265) }.build().unwrap_err();
        assert_eq!(e, "--bitrate 200000: x265enc takes 1 to 102400 kbit/s");
        let e = EncoderSettings { bitrate: Some(0), ..settings(Encoder::X264) }.build().unwrap_err();
        assert!(e.starts_with("--bitrate 0: x264enc takes 1 to "), "{e}");
        let e = EncoderSettings { crf: Some(64), ..settings(Encoder::Av1) }.build().unwrap_err();
        assert!(e.contains("av1enc takes 0 to 63"), "{e}");
    }

    #[test]
    fn presets_and_options_are_validated() {
        init();
        let ok = EncoderSettings { preset: Some("veryfast".into()), ..settings(Encoder::X264) }.build().unwrap();
        assert_eq!(ok.property_value("speed-preset").serialize().unwrap(), "veryfast");
        let e = EncoderSettings { preset: Some("fastest".into()), ..settings(Encoder::X264) }.build().unwrap_err();
        assert!(
            e.starts_with("--preset fastest: x264enc: speed-preset=\"fastest\" is not valid")
                && e.contains("ultrafast")
        );
        let e = EncoderSettings { options: vec![("bogus".into(), "1".into())], ..settings(Encoder::X264) }
            .build()
            .unwrap_err();
        assert_eq!(e, "-e bogus=1: x264enc has no property \"bogus\"");
        let e = EncoderSettings { options: vec![("key-int-max".into(), "often".into())], ..settings(Encoder::X264) }
            .build()
            .unwrap_err();
        assert!(e.starts_with("-e key-int-max=often: x264enc: key-int-max=\"often\" is not valid"), "{e}");
        let e = EncoderSettings { crf: Some(3), ..settings(Encoder::Ffv1) }.build().unwrap_err();
        assert!(e.contains("lossless"), "{e}");
        let e = EncoderSettings { preset: Some("fast".into()), ..settings(Encoder::Ffv1) }.build().unwrap_err();
        assert!(e.contains("has no presets"), "{e}");
    }

    #[test]
    fn containers_and_formats() {
        init();
        let ffv1 = settings(Encoder::Ffv1);
        let el = ffv1.build().unwrap();
        assert!(ffv1.check(&el, Some("matroskamux")).is_ok());
        assert_eq!(
            ffv1.check(&el, Some("mp4mux")).unwrap_err(),
            "FFV1 (avenc_ffv1) cannot be stored by mp4mux: use .mkv"
        );
        let av1 = settings(Encoder::Av1);
        assert!(av1.check(&av1.build().unwrap(), Some("mp4mux")).is_ok());
        let x264 = settings(Encoder::X264);
        assert!(x264.check(&x264.build().unwrap(), Some("webmmux")).is_err());
        assert_eq!(x264.raw_caps().to_string(), "video/x-raw, format=(string)I420");
        let x265 = EncoderSettings { chroma: Chroma::Yuv444, ..settings(Encoder::X265) };
        assert!(x265.check(&x265.build().unwrap(), None).is_ok());
        assert_eq!(x265.describe(&x265.build().unwrap()), "x265enc (crf 22, speed-preset medium, 4:4:4)");
    }

    #[test]
    fn ten_bit_sources_stay_ten_bit_and_encoders_that_cannot_are_named() {
        init();
        let args = |depth: Option<u32>, encoder| EncodeArgs { bit_depth: depth, encoder, ..EncodeArgs::default() };
        let ten = EncoderSettings::from_args(&args(None, EncoderChoice::Auto), false, 10);
        assert_eq!((ten.encoder, ten.depth), (Encoder::X265, 10), "auto at 10 bits is HEVC Main 10");
        assert_eq!(ten.raw_caps().to_string(), "video/x-raw, format=(string)I420_10LE");
        assert!(ten.describe(&ten.build().unwrap()).ends_with("4:2:0, 10-bit)"));
        assert_eq!(ten.depth_note(), "10-bit");
        let twelve = EncoderSettings::from_args(&args(None, EncoderChoice::Auto), false, 12);
        assert_eq!((twelve.depth, twelve.depth_note().as_str()), (10, "10-bit from a 12-bit source"));
        let eight = EncoderSettings::from_args(&args(None, EncoderChoice::Auto), false, 8);
        assert_eq!((eight.encoder, eight.depth), (Encoder::X264, 8), "8-bit sources as before");
        let forced = EncoderSettings::from_args(&args(Some(8), EncoderChoice::Auto), false, 10);
        assert_eq!(
            (forced.encoder, forced.depth_note().as_str()),
            (Encoder::X264, "8-bit from a 10-bit source (--bit-depth 8)")
        );
        let up = EncoderSettings::from_args(&args(Some(10), EncoderChoice::Auto), false, 8);
        assert_eq!(up.depth_note(), "10-bit from an 8-bit source (--bit-depth 10)");
        let x264 = EncoderSettings::from_args(&args(None, EncoderChoice::X264enc), false, 10);
        assert_eq!(x264.raw_caps().to_string(), "video/x-raw, format=(string)I420_10LE", "High 10 when chosen");
        let nvenc = EncoderSettings { depth: 10, ..settings(Encoder::NvH265) };
        assert_eq!(nvenc.raw_caps().to_string(), "video/x-raw(memory:CUDAMemory), format=(string)P010_10LE");
        let av1 = EncoderSettings::from_args(&args(None, EncoderChoice::Av1enc), false, 10);
        if let Ok(element) = av1.build() {
            let takes_10 = element.static_pad("sink").unwrap().pad_template_caps().iter().any(|s| {
                s.get::<gst::List>("format").is_ok_and(|l| l.iter().any(|f| f.get::<&str>() == Ok("I420_10LE")))
            });
            if !takes_10 {
                let e = av1.check(&element, None).unwrap_err();
                assert_eq!(
                    e,
                    "av1enc cannot encode 10-bit 4:2:0 video here (the source is 10-bit): use --encoder x265enc, or \
                     --bit-depth 8 to write 8 bits"
                );
            }
        }
    }
}
