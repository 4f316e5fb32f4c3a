// SPDX-License-Identifier: MPL-2.0
//! Which decoded frames a run keeps: all of them, the first N (benchmarks), or frames START..END of the source's
//! timeline (`--frames`, segments). A span knows the timestamp of every frame it wants, so the gate before the
//! upscaler names each decoded frame by its timestamp: what precedes START is dropped, a frame the decoder did not
//! give is recorded (never silently lost), and the run stops once END is reached.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// `--frames START:END`: frame indices from 0, END exclusive; either side may be left out (`100:`, `:50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FrameRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl FrameRange {
    /// The range within a video of `total` frames, checked: `(start, end)`.
    pub fn within(self, total: u64) -> Result<(u64, u64), String> {
        let end = self.end.unwrap_or(total);
        if end > total {
            return Err(format!("--frames {self}: the video has {total} frames (0:{total})"));
        }
        if self.start >= end {
            return Err(format!("--frames {self}: no frame in this range (the video has {total} frames)"));
        }
        Ok((self.start, end))
    }
}

impl std::fmt::Display for FrameRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.end {
            Some(end) => write!(f, "{}:{end}", self.start),
            None => write!(f, "{}:", self.start),
        }
    }
}

/// Parses `START:END`, `START:` or `:END`.
pub fn parse_frames(text: &str) -> Result<FrameRange, String> {
    let bad = || format!("{text:?} is not START:END (frame indices from 0, END exclusive: 10:20 is ten frames)");
    let (start, end) = text.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let start = if start.trim().is_empty() { 0 } else { number(start)? };
    let end = if end.trim().is_empty() { None } else { Some(number(end)?) };
    if end.is_some_and(|e| e <= start) {
        return Err(format!("{text:?}: END must be greater than START (END is exclusive: 10:20 is ten frames)"));
    }
    Ok(FrameRange { start, end })
}

/// Which decoded frames a run keeps.
#[derive(Debug, Clone, Default)]
pub enum Range {
    #[default]
    All,
    /// The first N frames (benchmarks).
    First(u64),
    /// Frames of the source's timeline, known by their timestamps.
    Span(Arc<Span>),
}

/// Frames `first .. first + pts.len()` of the source's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Index of the first frame in the timeline.
    pub first: u64,
    /// Timestamps (buffer PTS, ns) of the frames, in presentation order.
    pub pts: Vec<u64>,
    /// Where decoding starts: a seek to this stream time (ns) of a keyframe before the first frame; `None` reads
    /// from the beginning.
    pub seek: Option<u64>,
}

impl Span {
    pub fn end(&self) -> u64 {
        self.first + self.pts.len() as u64
    }
}

/// What the gate does with a decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Before the range: dropped.
    Drop,
    /// In the range.
    Pass,
    /// The range's last frame: the run stops after it.
    PassLast,
    /// Past the range (or the seek landed too late): dropped, and the run stops.
    Stop,
    /// Not a frame of the timeline: the run fails.
    Fail(String),
}

/// What the gate saw, once the run is over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames passed to the upscaler.
    pub passed: u64,
    /// Timeline indices of frames in the range that were passed over (the decoder did not give them).
    pub skipped: Vec<u64>,
    /// Timeline index of the first frame not reached (the span's end when it was reached).
    pub reached: u64,
    /// After a seek, the first frame decoded was later than the range's start: the demuxer's index is not exact
    /// enough, and the span must be read from the beginning.
    pub landed_late: bool,
}

#[derive(Debug, Default)]
struct State {
    passed: u64,
    /// Index into the span of the next frame expected.
    next: usize,
    skipped: Vec<u64>,
    landed_late: bool,
}

/// Decides, frame by frame, what enters the upscaler.
#[derive(Debug, Default)]
pub struct Gate {
    range: Range,
    state: Mutex<State>,
}

impl Gate {
    pub fn new(range: Range) -> Gate {
        Gate { range, state: Mutex::new(State::default()) }
    }

    /// The frame with timestamp `pts` (ns) arrives.
    pub fn admit(&self, pts: Option<u64>) -> Admit {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &self.range {
            Range::All => {
                s.passed += 1;
                Admit::Pass
            }
            Range::First(n) => {
                s.passed += 1;
                if s.passed >= *n { Admit::PassLast } else { Admit::Pass }
            }
            Range::Span(span) => {
                let Some(pts) = pts else {
                    return Admit::Fail("a decoded frame has no timestamp, so it cannot be placed in the range".into());
                };
                if span.pts.first().is_none_or(|&first| pts < first) {
                    return Admit::Drop;
                }
                let index = match span.pts.binary_search(&pts) {
                    Ok(i) => i,
                    Err(i) if i == span.pts.len() => {
                        // past the range: what was not reached stays unreached
                        return Admit::Stop;
                    }
                    Err(_) => {
                        return Admit::Fail(format!(
                            "the decoder gave a frame at {:.6} s that the source's timeline does not list",
                            pts as f64 / 1e9
                        ));
                    }
                };
                if index < s.next {
                    return Admit::Fail(format!(
                        "the decoder gave frame {} (at {:.6} s) twice or out of order",
                        span.first + index as u64,
                        pts as f64 / 1e9
                    ));
                }
                if s.passed == 0 && index > 0 && span.seek.is_some() {
                    s.landed_late = true;
                    return Admit::Stop;
                }
                let first = span.first;
                let missed = s.next..index;
                s.skipped.extend(missed.map(|i| first + i as u64));
                s.next = index + 1;
                s.passed += 1;
                if s.next == span.pts.len() { Admit::PassLast } else { Admit::Pass }
            }
        }
    }

    /// What the run did.
    pub fn outcome(&self) -> Outcome {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let reached = match &self.range {
            Range::Span(span) => span.first + s.next as u64,
            _ => s.passed,
        };
        Outcome { passed: s.passed, skipped: s.skipped.clone(), reached, landed_late: s.landed_late }
    }

    /// Timestamp of the range's first frame, when the range starts at a known one.
    pub fn start(&self) -> Option<u64> {
        match &self.range {
            Range::Span(span) => span.pts.first().copied(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u64, pts: &[u64], seek: Option<u64>) -> Gate {
        Gate::new(Range::Span(Arc::new(Span { first, pts: pts.to_vec(), seek })))
    }

    #[test]
    fn frames_parse_and_check() {
        assert_eq!(parse_frames("10:20"), Ok(FrameRange { start: 10, end: Some(20) }));
        assert_eq!(parse_frames("5:"), Ok(FrameRange { start: 5, end: None }));
        assert_eq!(parse_frames(":7"), Ok(FrameRange { start: 0, end: Some(7) }));
        assert!(parse_frames("20:10").unwrap_err().contains("END must be greater"));
        assert!(parse_frames("10").is_err() && parse_frames("a:b").is_err() && parse_frames("-1:3").is_err());
        let r = parse_frames("10:20").unwrap();
        assert_eq!(r.within(100), Ok((10, 20)));
        assert_eq!(r.within(15).unwrap_err(), "--frames 10:20: the video has 15 frames (0:15)");
        assert!(parse_frames("15:").unwrap().within(15).unwrap_err().contains("no frame in this range"));
        assert_eq!(r.to_string(), "10:20");
    }

    #[test]
    fn a_span_drops_what_precedes_it_and_stops_after_it() {
        let g = span(3, &[30, 40, 50], Some(0));
        assert_eq!(g.admit(Some(10)), Admit::Drop);
        assert_eq!(g.admit(Some(20)), Admit::Drop);
        assert_eq!(g.admit(Some(30)), Admit::Pass);
        assert_eq!(g.admit(Some(40)), Admit::Pass);
        assert_eq!(g.admit(Some(50)), Admit::PassLast);
        assert_eq!(g.outcome(), Outcome { passed: 3, skipped: vec![], reached: 6, landed_late: false });
    }

    #[test]
    fn frames_the_decoder_did_not_give_are_named() {
        let g = span(0, &[0, 10, 20, 30, 40], None);
        assert_eq!(g.admit(Some(0)), Admit::Pass);
        assert_eq!(g.admit(Some(30)), Admit::Pass);
        assert_eq!(g.admit(Some(60)), Admit::Stop);
        let o = g.outcome();
        assert_eq!((o.passed, o.skipped, o.reached), (2, vec![1, 2], 4));
        // from the beginning, missing first frames are skipped frames; after a seek, the seek was too late
        let g = span(0, &[0, 10], None);
        assert_eq!(g.admit(Some(10)), Admit::PassLast);
        assert_eq!(g.outcome().skipped, vec![0]);
        let g = span(5, &[50, 60], Some(0));
        assert_eq!(g.admit(Some(60)), Admit::Stop);
        assert!(g.outcome().landed_late);
    }

    #[test]
    fn frames_off_the_timeline_fail() {
        let g = span(0, &[0, 10, 20], None);
        assert_eq!(g.admit(Some(0)), Admit::Pass);
        assert!(matches!(g.admit(Some(15)), Admit::Fail(e) if e.contains("does not list")));
        assert!(matches!(g.admit(Some(0)), Admit::Fail(e) if e.contains("twice or out of order")));
        assert!(matches!(g.admit(None), Admit::Fail(_)));
    }

    #[test]
    fn first_n_frames() {
        let g = Gate::new(Range::First(2));
        assert_eq!(g.admit(None), Admit::Pass);
        assert_eq!(g.admit(None), Admit::PassLast);
    }
}
