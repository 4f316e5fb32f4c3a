// SPDX-License-Identifier: MPL-2.0
//! The source's frames as its demuxer gives them, read once without decoding (`filesrc ! parsebin`, the first
//! video stream's packets into a fakesink): every frame's timestamp and duration in presentation order, which
//! packets are keyframes, and the stream's segment. Ranges and segments are planned from it (where to seek so that a
//! range decodes exactly), and the final mux gives the output the source's own timestamps from it, so a variable
//! frame rate stays exact.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use serde::{Deserialize, Serialize};

use crate::signals;

/// The video stream's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Buffer PTS (ns) of every frame, in presentation order (strictly increasing).
    pub pts: Vec<u64>,
    /// Duration (ns) of every frame: the packet's, else the gap to the next frame, else the previous one's.
    pub duration: Vec<u64>,
    /// For every frame (presentation order), its position in decode order.
    pub decode_position: Vec<u64>,
    /// Frames (presentation indices) the demuxer marks as keyframes, in decode order.
    pub keyframes: Vec<u64>,
    /// The stream's segment: stream time = pts - start + time (what seeks are given in).
    pub segment_start: u64,
    pub segment_time: u64,
}

/// A packet in decode order, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub pts: Option<u64>,
    pub duration: Option<u64>,
    pub keyframe: bool,
}

/// Why there is no timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The stream's packets carry no timestamps (raw elementary streams): it can only be read from start to end.
    NoTimestamps,
    /// Reading failed.
    Failed(String),
    /// A signal arrived while reading (the job is stopped, not failed).
    Interrupted(i32),
}

impl Timeline {
    pub fn frames(&self) -> u64 {
        self.pts.len() as u64
    }

    /// Builds the timeline from packets in decode order.
    pub fn from_packets(packets: &[Packet], segment_start: u64, segment_time: u64) -> Result<Timeline, Unusable> {
        let mut by_pts: Vec<(u64, usize)> = Vec::with_capacity(packets.len());
        for (i, p) in packets.iter().enumerate() {
            by_pts.push((p.pts.ok_or(Unusable::NoTimestamps)?, i));
        }
        by_pts.sort_unstable();
        if let Some(w) = by_pts.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Unusable::Failed(format!(
                "two frames share the timestamp {:.6} s, so frames cannot be told apart by time",
                w[0].0 as f64 / 1e9
            )));
        }
        let pts: Vec<u64> = by_pts.iter().map(|&(t, _)| t).collect();
        let decode_position: Vec<u64> = by_pts.iter().map(|&(_, i)| i as u64).collect();
        let mut presentation = vec![0u64; packets.len()];
        for (rank, &(_, i)) in by_pts.iter().enumerate() {
            presentation[i] = rank as u64;
        }
        let keyframes = packets.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| presentation[i]).collect();
        let mut duration = Vec::with_capacity(pts.len());
        for (rank, &(t, i)) in by_pts.iter().enumerate() {
            let gap = pts.get(rank + 1).map(|next| next - t);
            let d = packets[i].duration.filter(|&d| d > 0).or(gap).or(duration.last().copied()).unwrap_or(0);
            duration.push(d);
        }
        Ok(Timeline { pts, duration, decode_position, keyframes, segment_start, segment_time })
    }

    /// Where to start decoding so that frames `start..` come out exactly: the stream time of the last keyframe
    /// (in decode order) that precedes, in presentation, frame `start` and, in decoding, every frame from `start`
    /// on (so no frame of the range is a leading picture of a later keyframe of an open GOP). `None`: from the
    /// beginning.
    ///
    /// A keyframe with leading pictures of its own (an open GOP's I-frame) is not decoded from either: their
    /// references are in the GOP before, and decoders give such broken pictures with shifted timestamps (avdec_h264
    /// gives the I-frame's timestamp twice); the keyframe before it is, and those pictures precede the range.
    pub fn seek_for(&self, start: u64, first_needed_decode: u64) -> Option<u64> {
        let target = *self.pts.get(start as usize)?;
        let mut candidates = self
            .keyframes
            .iter()
            .rev()
            .copied()
            .filter(|&k| self.decode_position[k as usize] <= first_needed_decode && self.pts[k as usize] <= target);
        let mut keyframe = candidates.next()?;
        if self.has_leading_pictures(keyframe) {
            keyframe = candidates.next()?;
        }
        let at = self.pts[keyframe as usize];
        if self.decode_position[keyframe as usize] == 0 || at < self.segment_start {
            return None;
        }
        Some(at - self.segment_start + self.segment_time)
    }

    /// Whether frames shown before keyframe `k` are decoded after it.
    fn has_leading_pictures(&self, k: u64) -> bool {
        let at = self.decode_position[k as usize];
        self.decode_position[..k as usize].iter().any(|&d| d > at)
    }

    /// For every frame, the first decode position among it and the frames after it.
    pub fn first_decode_from(&self) -> Vec<u64> {
        let mut out = self.decode_position.clone();
        for i in (0..out.len().saturating_sub(1)).rev() {
            out[i] = out[i].min(out[i + 1]);
        }
        out
    }

    /// Running time (ns) of frame `index` in the source.
    pub fn running_time(&self, index: u64) -> u64 {
        self.pts[index as usize].saturating_sub(self.segment_start)
    }
}

/// Reads the frames of the first video stream of `path`.
pub fn read(path: &Path) -> Result<Timeline, Unusable> {
    let failed = |e: String| Unusable::Failed(format!("{}: reading its frames: {e}", path.display()));
    let pipeline = gst::Pipeline::new();
    let src = gst::Element::make_from_uri(gst::URIType::Src, &crate::media::file_uri(path).map_err(failed)?, None)
        .map_err(|e| failed(e.to_string()))?;
    let parse = crate::branch::make("parsebin").map_err(failed)?;
    pipeline.add_many([&src, &parse]).map_err(|e| failed(e.to_string()))?;
    src.link(&parse).map_err(|e| failed(e.to_string()))?;

    let packets: Arc<Mutex<Vec<Packet>>> = Arc::default();
    let segment: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    let linked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let weak = pipeline.downgrade();
    let (p, seg) = (packets.clone(), segment.clone());
    parse.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        if !video || linked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Ok(sink) = gst::ElementFactory::make("fakesink").property("sync", false).build() else {
            return;
        };
        let (p, seg) = (p.clone(), seg.clone());
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => p.lock().unwrap().push(Packet {
                    pts: b.pts().map(|t| t.nseconds()),
                    duration: b.duration().map(|t| t.nseconds()),
                    keyframe: !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                }),
                Some(gst::PadProbeData::Event(e)) => {
                    if let gst::EventView::Segment(s) = e.view()
                        && let Some(s) = s.segment().downcast_ref::<gst::ClockTime>()
                    {
                        let mut seg = seg.lock().unwrap();
                        if seg.is_none() {
                            *seg = Some((s.start().map_or(0, |t| t.nseconds()), s.time().map_or(0, |t| t.nseconds())));
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
        let _ = pipeline.add(&sink);
        let _ = sink.sync_state_with_parent();
        if let Some(sinkpad) = sink.static_pad("sink") {
            let _ = pad.link(&sinkpad);
        }
    });
    let bus = pipeline.bus().ok_or_else(|| failed("no bus".into()))?;
    let _ = pipeline.set_state(gst::State::Playing);
    let result = loop {
        if let Some(signal) = signals::received() {
            break Err(Unusable::Interrupted(signal));
        }
        let Some(msg) = bus
            .timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Eos, gst::MessageType::Error])
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) if packets.lock().unwrap().is_empty() => {
                break Err(failed(e.error().to_string()));
            }
            // a damaged end: what was read before it is the stream
            _ => break Ok(()),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let packets = std::mem::take(&mut *packets.lock().unwrap());
    if packets.is_empty() {
        return Err(failed("no video frame".into()));
    }
    let (start, time) = segment.lock().unwrap().unwrap_or((0, 0));
    Timeline::from_packets(&packets, start, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pts: u64, keyframe: bool) -> Packet {
        Packet { pts: Some(pts), duration: None, keyframe }
    }

    /// An open GOP in decode order: I0 P4 B2 B1 B3 | I8 (open) B6 B5 B7 P12 B10 B9 B11 (times in units of 10).
    fn open_gop() -> Timeline {
        let order = [(0, true), (4, false), (2, false), (1, false), (3, false), (8, true), (6, false), (5, false)];
        let rest = [(7, false), (12, false), (10, false), (9, false), (11, false)];
        let packets: Vec<Packet> = order.iter().chain(rest.iter()).map(|&(t, k)| packet(t * 10, k)).collect();
        Timeline::from_packets(&packets, 0, 0).unwrap()
    }

    #[test]
    fn presentation_order_and_durations() {
        let t = open_gop();
        assert_eq!(t.pts, (0..13).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(t.decode_position[..5], [0, 3, 2, 4, 1]);
        assert_eq!(t.keyframes, vec![0, 8]);
        assert!(t.duration.iter().all(|&d| d == 10));
    }

    #[test]
    fn seeks_avoid_leading_pictures_of_open_gops() {
        let t = open_gop();
        let first = t.first_decode_from();
        // frames 8 and 9 are after I8 in both orders, but I8 has leading pictures (5-7, broken when decoding
        // starts at I8): from the keyframe before, I0
        assert_eq!(t.seek_for(9, first[9]), None);
        assert_eq!(t.seek_for(8, first[8]), None);
        // frames 5-7 are decoded after I8 but shown before it (leading pictures): from I0, i.e. the beginning
        assert_eq!(t.seek_for(6, first[6]), None);
        assert_eq!(t.seek_for(3, first[3]), None);
    }

    #[test]
    fn seeks_use_the_keyframe_before_an_open_one() {
        // I0 .. | I8 (open, leading B6 B5 B7) .. | I16 (open, leading B14 B13 B15) ..: a range from 17 on starts at I8
        let mut packets = vec![packet(0, true), packet(40, false), packet(20, false), packet(10, false)];
        packets.extend(
            [30, 80, 60, 50, 70, 120, 100, 90, 110, 160, 140, 130, 150, 170].map(|t| packet(t, t == 80 || t == 160)),
        );
        let t = Timeline::from_packets(&packets, 0, 0).unwrap();
        let first = t.first_decode_from();
        assert_eq!(t.keyframes, vec![0, 8, 16]);
        assert_eq!(t.seek_for(17, first[17]), Some(80));
        assert_eq!(t.seek_for(16, first[16]), Some(80));
        assert_eq!(t.seek_for(12, first[12]), None);
    }

    #[test]
    fn the_segment_maps_timestamps_to_stream_time() {
        let packets: Vec<Packet> = (0..20).map(|i| packet(1_000 + i * 10, i % 10 == 0)).collect();
        let t = Timeline::from_packets(&packets, 1_000, 0).unwrap();
        assert_eq!(t.seek_for(15, t.first_decode_from()[15]), Some(100));
        assert_eq!(t.running_time(15), 150);
    }

    #[test]
    fn unusable_streams() {
        let none = [Packet { pts: None, duration: None, keyframe: true }];
        assert_eq!(Timeline::from_packets(&none, 0, 0), Err(Unusable::NoTimestamps));
        let twice = [packet(0, true), packet(0, false)];
        assert!(matches!(Timeline::from_packets(&twice, 0, 0), Err(Unusable::Failed(e)) if e.contains("share")));
    }
}
