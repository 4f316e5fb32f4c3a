// SPDX-License-Identifier: MPL-2.0
//! What an input holds, read before anything runs (GStreamer's discoverer): the video's size, frame rate,
//! orientation, bit depth and expected frame count, the other streams, the duration.

use std::path::Path;

use gst_pbutils::prelude::*;

#[derive(Debug, Clone)]
pub struct MediaInfo {
    pub duration: Option<gst::ClockTime>,
    pub video: VideoInfo,
}

#[derive(Debug, Clone)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second (None for still images and variable rates the container does not state).
    pub framerate: Option<gst::Fraction>,
    /// `image-orientation` tag (`rotate-90`, `flip-rotate-180`, …), when the frames are to be shown turned.
    pub orientation: Option<String>,
    /// Bits per luma sample (8 unless the stream says more).
    pub bit_depth: u32,
}

impl MediaInfo {
    /// Frames the container's duration and frame rate promise.
    pub fn expected_frames(&self) -> Option<u64> {
        let fps = self.video.framerate.filter(|f| f.numer() > 0 && f.denom() > 0)?;
        let seconds = self.duration?.nseconds() as f64 / 1e9;
        Some((seconds * fps.numer() as f64 / fps.denom() as f64).round() as u64)
    }

    /// How many frames fewer than [`Self::expected_frames`] still make the whole video: 1 %, and at least what 0.1 s
    /// holds, since the container's duration is its longest stream's and audio often runs a packet or two past the
    /// video (a 30-frame clip at 30 fps with 1.024 s of audio announces 31).
    pub fn frames_short_tolerated(&self, expected: u64) -> u64 {
        let fps = self.video.framerate.filter(|f| f.numer() > 0 && f.denom() > 0);
        let tenth = fps.map_or(0, |f| (0.1 * f.numer() as f64 / f.denom() as f64).ceil() as u64);
        (expected / 100).max(tenth)
    }
}

pub fn file_uri(path: &Path) -> Result<String, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    gst::glib::filename_to_uri(&absolute, None).map(|u| u.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the input's streams (a second or so at most: the discoverer prerolls the file).
pub fn probe(path: &Path) -> Result<MediaInfo, String> {
    let shown = path.display();
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(20)).map_err(|e| e.to_string())?;
    let info = discoverer
        .discover_uri(&file_uri(path)?)
        .map_err(|e| format!("{shown}: not a video file GStreamer can read ({})", e.message().trim_end_matches('.')))?;
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::MissingPlugins => {
            let missing = info.missing_elements_installer_details().join(", ");
            return Err(format!("{shown}: GStreamer has no plugin to read it (missing: {missing})"));
        }
        gst_pbutils::DiscovererResult::Timeout => return Err(format!("{shown}: reading it timed out")),
        _ => return Err(format!("{shown}: not a video file GStreamer can read")),
    }
    let Some(v) = info.video_streams().into_iter().next() else {
        return Err(format!("{shown}: no video stream"));
    };
    let fr = v.framerate();
    let orientation = v
        .tags()
        .and_then(|t| t.get::<gst::tags::ImageOrientation>().map(|o| o.get().to_string()))
        .filter(|o| o != "rotate-0");
    Ok(MediaInfo {
        duration: info.duration(),
        video: VideoInfo {
            width: v.width(),
            height: v.height(),
            framerate: (fr.numer() > 0).then_some(fr),
            orientation,
            bit_depth: v.caps().map_or(8, |c| bit_depth(&c)),
        },
    })
}

/// Bits per luma sample of a stream: from its parser's caps (`bit-depth-luma`), its profile (`main-10`, `high-10`,
/// `main-12`, …) or its raw format; 8 when none says.
pub fn bit_depth(caps: &gst::CapsRef) -> u32 {
    let Some(s) = caps.structure(0) else { return 8 };
    if let Ok(d) = s.get::<u32>("bit-depth-luma") {
        return d;
    }
    if let Ok(profile) = s.get::<&str>("profile") {
        for (tag, depth) in [("16", 16), ("12", 12), ("10", 10)] {
            if profile.split(['-', ' ']).any(|p| p == tag) {
                return depth;
            }
        }
    }
    if s.name() != "video/x-raw" {
        return 8;
    }
    gst_video::VideoInfo::from_caps(caps).ok().and_then(|i| i.format_info().depth().first().copied()).unwrap_or(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_running_past_the_video_is_not_a_truncated_video() {
        let at = |fps: i32, seconds: f64| MediaInfo {
            duration: Some(gst::ClockTime::from_nseconds((seconds * 1e9) as u64)),
            video: VideoInfo {
                width: 8,
                height: 8,
                framerate: Some(gst::Fraction::new(fps, 1)),
                orientation: None,
                bit_depth: 8,
            },
        };
        // 30 frames at 30 fps beside 1.024 s of audio: 31 announced, 30 are the whole video
        let short = at(30, 1.024);
        assert_eq!(short.expected_frames(), Some(31));
        assert_eq!(short.frames_short_tolerated(31), 3);
        // an hour at 24 fps: 1 %
        assert_eq!(at(24, 3600.0).frames_short_tolerated(86_400), 864);
        // 24 fps: three frames short is 0.125 s
        assert_eq!(at(24, 1.0).frames_short_tolerated(24), 3);
        // no frame rate: none (no frames are expected either)
        let still = MediaInfo { video: VideoInfo { framerate: None, ..short.video.clone() }, ..short };
        assert_eq!((still.expected_frames(), still.frames_short_tolerated(10)), (None, 0));
    }

    #[test]
    fn bit_depth_from_parser_caps_profiles_and_raw_formats() {
        gst::init().unwrap();
        let depth = |caps: &str| super::bit_depth(&caps.parse::<gst::Caps>().unwrap());
        assert_eq!(depth("video/x-h265,bit-depth-luma=(uint)10,profile=main"), 10);
        assert_eq!(depth("video/x-h265,profile=main-12"), 12);
        assert_eq!(depth("video/x-h264,profile=high-10-intra"), 10);
        assert_eq!(depth("video/x-h264,profile=high"), 8);
        assert_eq!(depth("video/x-vp9"), 8);
        assert_eq!(depth("video/x-raw,format=P010_10LE,width=4,height=4,framerate=0/1"), 10);
        assert_eq!(depth("video/x-raw,format=NV12,width=4,height=4,framerate=0/1"), 8);
    }
}
