// SPDX-License-Identifier: MPL-2.0
//! Audio and subtitle streams, copied to the muxer without re-encoding. Subtitles that demuxers give as Pango
//! markup (Matroska's and MP4's own text tracks, SubRip) are turned back into the UTF-8 text with SubRip-style tags
//! (`<i>`, `<b>`, `<u>`, `<s>`) that the muxers store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

/// What a buffer probe returns to discard the buffer. `Handled` rather than `Drop`: the bindings (0.25) take the
/// buffer out of the probe info and release it themselves, and GStreamer then unrefs the emptied info of a dropped
/// buffer again (a critical warning per buffer); for a handled one it does not.
pub const DISCARD: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

/// Timestamps outside `[start, cut)` are dropped from copied streams, so they end with the video after a stop.
#[derive(Debug, Default)]
pub struct Window {
    pub start: AtomicU64,
    /// u64::MAX until a stop decides where the video ends.
    pub cut: AtomicU64,
    /// The bounds are running times (the final mux), not buffer timestamps.
    pub running_time: bool,
}

impl Window {
    pub fn new(start: Option<gst::ClockTime>) -> Arc<Window> {
        Arc::new(Window {
            start: AtomicU64::new(start.map_or(0, |s| s.nseconds())),
            cut: AtomicU64::new(u64::MAX),
            running_time: false,
        })
    }

    /// Running times `[start, cut)`.
    pub fn running(start: u64, cut: u64) -> Arc<Window> {
        Arc::new(Window { start: AtomicU64::new(start), cut: AtomicU64::new(cut), running_time: true })
    }

    pub fn contains(&self, pts: Option<gst::ClockTime>) -> bool {
        pts.is_none_or(|t| {
            t.nseconds() >= self.start.load(Ordering::Relaxed) && t.nseconds() < self.cut.load(Ordering::Relaxed)
        })
    }

    /// Whether a buffer at `pts` leaving `pad` lies inside (its running time, for a window of running times).
    pub fn admits(&self, pad: &gst::Pad, pts: Option<gst::ClockTime>) -> bool {
        if !self.running_time || pts.is_none() {
            return self.contains(pts);
        }
        let segment = pad.sticky_event::<gst::event::Segment>(0);
        let running = segment
            .as_ref()
            .and_then(|s| s.segment().downcast_ref::<gst::ClockTime>().and_then(|s| s.to_running_time(pts)));
        running.is_some_and(|t| self.contains(Some(t)))
    }
}

/// What a parsed stream of these caps is when copied: "audio", "subtitles", or None (not copied).
pub fn copied_kind(name: &str) -> Option<&'static str> {
    if name.starts_with("audio/") {
        Some("audio")
    } else if name.starts_with("text/")
        || name.starts_with("subpicture/")
        || name.starts_with("application/x-sub")
        || name.starts_with("application/x-ass")
        || name.starts_with("application/x-ssa")
    {
        Some("subtitles")
    } else {
        None
    }
}

/// How a copied stream reaches the muxer.
pub enum Copy {
    /// As it is.
    Direct(gst::Pad),
    /// Converted from Pango markup to UTF-8 text on the way.
    MarkupToText(gst::Pad),
}

/// Whether one of `muxer`'s input templates takes `caps` (as they are or after the subtitle conversion), asked
/// without requesting a pad.
pub fn muxer_takes(muxer: &gst::Element, caps: &gst::Caps) -> bool {
    let markup =
        caps.structure(0).is_some_and(|s| s.name() == "text/x-raw" && s.get::<&str>("format") == Ok("pango-markup"));
    muxer.pad_template_list().iter().any(|t| {
        t.direction() == gst::PadDirection::Sink
            && (t.caps().can_intersect(caps) || markup && t.caps().can_intersect(&text_caps()))
    })
}

/// The muxer pad that can take `caps` as they are or after the subtitle conversion, if any.
pub fn muxer_pad(muxer: &gst::Element, pad: &gst::Pad, caps: &gst::Caps) -> Option<Copy> {
    if let Some(p) = muxer.compatible_pad(pad, Some(caps)) {
        return Some(Copy::Direct(p));
    }
    let markup =
        caps.structure(0).is_some_and(|s| s.name() == "text/x-raw" && s.get::<&str>("format") == Ok("pango-markup"));
    if !markup {
        return None;
    }
    let utf8 = text_caps();
    let template = muxer.pad_template_list().into_iter().find(|t| {
        t.direction() == gst::PadDirection::Sink
            && t.presence() == gst::PadPresence::Request
            && t.caps().can_intersect(&utf8)
    })?;
    muxer.request_pad(&template, None, Some(&utf8)).map(Copy::MarkupToText)
}

fn text_caps() -> gst::Caps {
    gst::Caps::builder("text/x-raw").field("format", "utf8").build()
}

/// Copies the parsed stream `pad` (of `caps`, a `kind` of [`copied_kind`]) into `muxer` of the output `out`:
/// linked, with the queue's entry pad (where EOS stops it) and what the summary says (`audio (audio/x-opus)`), or
/// None for subtitles the container cannot hold (with a warning). Audio that cannot be copied is an error.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    kind: &str,
    out: &std::path::Path,
    window: Arc<Window>,
    bounded: bool,
) -> Result<Option<(gst::Pad, String)>, String> {
    let what = caps.structure(0).map_or("?".into(), |s| s.name().to_string());
    let Some(copy) = muxer_pad(muxer, pad, caps) else {
        if kind == "audio" {
            return Err(format!(
                "the audio stream ({what}) cannot be copied into {} without re-encoding; use .mkv",
                out.display()
            ));
        }
        crate::report::warn(&format!("subtitles ({what}) cannot be stored in this container and are left out"));
        return Ok(None);
    };
    let converted = matches!(copy, Copy::MarkupToText(_));
    let entry = link(pipeline, pad, copy, window, bounded)?;
    let note = if converted { ", converted from Pango markup" } else { "" };
    Ok(Some((entry, format!("{kind} ({what}{note})"))))
}

/// Links `pad` through an unbounded queue (and, for markup, `capssetter` and a probe that rewrites the text) to the
/// muxer. Returns the queue's sink pad (where EOS is sent to stop).
///
/// `bounded`: the queue holds a few seconds (the final mux, where the video comes from files as fast as the
/// muxer takes it and an unbounded queue would take in the whole audio track).
pub fn link(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    copy: Copy,
    window: Arc<Window>,
    bounded: bool,
) -> Result<gst::Pad, String> {
    // Unbounded while upscaling: the muxer interleaves, so copied streams run ahead of the (slow) upscaled video by
    // the video branch's latency, encoder lookahead included; a bounded queue there would block the demuxer and
    // deadlock.
    let time: u64 = if bounded { gst::ClockTime::from_seconds(5).nseconds() } else { 0 };
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", time)
        .build()
        .map_err(|e| e.to_string())?;
    let queue_src = queue.static_pad("src").ok_or("queue without src pad")?;
    queue_src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| match info.buffer() {
        Some(b) if !window.admits(pad, b.pts()) => DISCARD,
        _ => gst::PadProbeReturn::Ok,
    });
    let mut chain = vec![queue.clone()];
    let mux_pad = match copy {
        Copy::Direct(p) => p,
        Copy::MarkupToText(p) => {
            let setter = gst::ElementFactory::make("capssetter")
                .property("caps", text_caps())
                .build()
                .map_err(|_| "GStreamer element capssetter is not available (missing plugin)".to_string())?;
            setter.static_pad("src").ok_or("capssetter without src pad")?.add_probe(
                gst::PadProbeType::BUFFER,
                |_, info| {
                    if let Some(buffer) = info.buffer_mut() {
                        let text = buffer.map_readable().ok().map(|m| markup_to_text(&String::from_utf8_lossy(&m)));
                        if let Some(text) = text {
                            let mut out = gst::Buffer::from_mut_slice(text.into_bytes());
                            let o = out.get_mut().expect("new buffer");
                            o.set_pts(buffer.pts());
                            o.set_duration(buffer.duration());
                            *buffer = out;
                        }
                    }
                    gst::PadProbeReturn::Ok
                },
            );
            chain.push(setter);
            p
        }
    };
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    let last = chain.last().expect("a queue at least").static_pad("src").ok_or("no src pad")?;
    last.link(&mux_pad).map_err(|e| format!("{e:?}"))?;
    for e in chain.iter().rev() {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sink = queue.static_pad("sink").ok_or("queue without sink pad")?;
    pad.link(&sink).map_err(|e| format!("{e:?}"))?;
    Ok(sink)
}

/// Pango markup to SubRip-style text: entities decoded, `<i> <b> <u> <s>` kept, other tags removed.
pub fn markup_to_text(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    let mut rest = markup;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            let Some(end) = rest.find('>') else {
                out.push_str(rest);
                return out;
            };
            let tag = &rest[1..end];
            let name = tag.trim_start_matches('/').split_whitespace().next().unwrap_or("");
            if matches!(name, "i" | "b" | "u" | "s") && !tag.contains(' ') {
                out.push_str(&rest[..=end]);
            }
            rest = &rest[end + 1..];
        } else {
            let end = rest.find(';').filter(|&e| e <= 10);
            let decoded = end.and_then(|e| entity(&rest[1..e]));
            match (end, decoded) {
                (Some(e), Some(c)) => {
                    out.push(c);
                    rest = &rest[e + 1..];
                }
                _ => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = name.strip_prefix('#')?;
            let value = match code.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => code.parse().ok()?,
            };
            char::from_u32(value)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_subrip_text() {
        assert_eq!(markup_to_text("Hello &amp; <i>world</i>"), "Hello & <i>world</i>");
        assert_eq!(markup_to_text("2 &lt; 3 &gt; 1 &#233;&#x263A;"), "2 < 3 > 1 é☺");
        assert_eq!(markup_to_text("<span foreground=\"red\">red</span> <b>bold</b>"), "red <b>bold</b>");
        assert_eq!(markup_to_text("AT&T; a & b"), "AT&T; a & b");
        assert_eq!(markup_to_text("unclosed <i"), "unclosed <i");
        assert_eq!(markup_to_text("line one\nline two"), "line one\nline two");
    }

    #[test]
    fn window_keeps_what_lies_inside() {
        let w = Window::new(Some(gst::ClockTime::from_seconds(1)));
        assert!(!w.contains(Some(gst::ClockTime::from_mseconds(999))));
        assert!(w.contains(Some(gst::ClockTime::from_seconds(5))) && w.contains(None));
        w.cut.store(gst::ClockTime::from_seconds(2).nseconds(), Ordering::Relaxed);
        assert!(!w.contains(Some(gst::ClockTime::from_seconds(2))));
    }
}
