// SPDX-License-Identifier: MPL-2.0

//! CPU tests of the element's formats: caps negotiated both ways for every format pair of a family (NV12 ⇄ P010_10LE,
//! the packed RGB formats among themselves), the pixels of each pair on an exact nearest-neighbour model, 10-bit
//! values and alpha kept, colorimetry and HDR static metadata carried to the output caps, interlaced and odd-sized
//! P010.
//!
//! Needs the ONNX Runtime library (`scripts/setup.sh` or `.ci/run` provide it).

use gst::prelude::*;
use gst_video::{VideoFormat, VideoInfo};

mod common;
mod fixtures;
use fixtures::{harness, nearest_model};

const YUV: [VideoFormat; 2] = [VideoFormat::Nv12, VideoFormat::P01010le];
const RGB: [VideoFormat; 5] =
    [VideoFormat::Rgba, VideoFormat::Bgra, VideoFormat::Rgbx, VideoFormat::Bgrx, VideoFormat::Rgb];

fn name(f: VideoFormat) -> &'static str {
    f.to_str()
}

fn info(format: VideoFormat, w: u32, h: u32) -> VideoInfo {
    VideoInfo::builder(format, w, h).build().unwrap()
}

/// The byte offset of component `c` within its pixel. GStreamer 1.22 gives P010's in samples (V at 1, where its
/// pack functions and decoders put V two bytes after U), NV12's and the packed formats' in bytes.
fn byte_offset(fi: &gst_video::VideoFormatInfo, c: usize) -> usize {
    let bytes = if fi.depth()[c] > 8 { 2 } else { 1 };
    fi.poffset()[c] as usize * bytes
}

/// A frame of `format` with GStreamer's default layout, each component of each pixel given by `value(x, y, c)`
/// (components as the format's own components: Y U V, or R G B A in the format's order), 16-bit samples holding the
/// value in their high bits.
fn frame(format: VideoFormat, w: u32, h: u32, value: impl Fn(u32, u32, usize) -> u16) -> gst::Buffer {
    let info = info(format, w, h);
    let fi = info.format_info();
    let mut data = vec![0u8; info.size()];
    for c in 0..fi.n_components() as usize {
        let (plane, poffset, pstride) = (fi.plane()[c] as usize, byte_offset(&fi, c), fi.pixel_stride()[c]);
        let (ws, hs) = (fi.w_sub()[c], fi.h_sub()[c]);
        let depth = fi.depth()[c];
        for y in 0..h.div_ceil(1 << hs) {
            for x in 0..w.div_ceil(1 << ws) {
                let at = info.offset()[plane]
                    + y as usize * info.stride()[plane] as usize
                    + x as usize * pstride as usize
                    + poffset;
                let v = value(x << ws, y << hs, c);
                if depth > 8 {
                    data[at..at + 2].copy_from_slice(&(v << (16 - depth)).to_le_bytes());
                } else {
                    data[at] = v as u8;
                }
            }
        }
    }
    gst::Buffer::from_mut_slice(data)
}

/// Component `c` of pixel (x, y) of a frame of `info` (as written by [`frame`]).
fn component(info: &VideoInfo, data: &[u8], x: u32, y: u32, c: usize) -> u16 {
    let fi = info.format_info();
    let (plane, poffset, pstride) = (fi.plane()[c] as usize, byte_offset(&fi, c), fi.pixel_stride()[c]);
    let (x, y) = (x >> fi.w_sub()[c], y >> fi.h_sub()[c]);
    let at =
        info.offset()[plane] + y as usize * info.stride()[plane] as usize + x as usize * pstride as usize + poffset;
    match fi.depth()[c] {
        8 => data[at] as u16,
        d => u16::from_le_bytes([data[at], data[at + 1]]) >> (16 - d),
    }
}

/// Runs one `w`×`h` frame of `from` through a nearest-neighbour ×2 element whose downstream takes only `to`; returns
/// the negotiated output caps and the output frame.
fn upscale(
    from: VideoFormat,
    to: VideoFormat,
    w: u32,
    h: u32,
    value: impl Fn(u32, u32, usize) -> u16,
) -> (gst::Caps, Vec<u8>) {
    let mut hx = harness(&nearest_model(2, None), &format!("video/x-raw,format={},width={w},height={h}", name(from)));
    hx.set_sink_caps_str(&format!("video/x-raw,format={}", name(to)));
    hx.push(frame(from, w, h, value)).unwrap();
    let out = hx.pull().unwrap();
    let caps = hx.sinkpad().unwrap().current_caps().unwrap();
    let data = out.map_readable().unwrap().to_vec();
    (caps, data)
}

fn format_of(caps: &gst::Caps) -> String {
    caps.structure(0).unwrap().get::<String>("format").unwrap()
}

#[test]
fn every_yuv_pair_negotiates_downstream_and_keeps_the_picture() {
    // flat chroma in gamut: nearest-neighbour output is the input code for code, at the output's bit depth
    let luma = |x: u32, y: u32| 70 + (x * 13 + y * 29) % 150;
    for from in YUV {
        for to in YUV {
            let from_10 = from == VideoFormat::P01010le;
            let scale_in = if from_10 { 4 } else { 1 };
            let (caps, data) = upscale(from, to, 12, 6, |x, y, c| {
                scale_in * if c == 0 { luma(x, y) as u16 } else { [0, 120, 135][c] }
            });
            assert_eq!(format_of(&caps), name(to), "{} → {}", name(from), name(to));
            let out = VideoInfo::from_caps(&caps).unwrap();
            assert_eq!((out.width(), out.height()), (24, 12));
            assert_eq!(data.len(), out.size());
            let to_10 = to == VideoFormat::P01010le;
            for y in 0..12 {
                for x in 0..24 {
                    let want = luma(x / 2, y / 2) * if to_10 { 4 } else { 1 };
                    let got = component(&out, &data, x, y, 0) as u32;
                    assert_eq!(got, want, "{} → {} luma ({x},{y})", name(from), name(to));
                    for (c, v) in [(1, 120u32), (2, 135)] {
                        let want = v * if to_10 { 4 } else { 1 };
                        assert_eq!(
                            component(&out, &data, x, y, c) as u32,
                            want,
                            "{} → {} chroma",
                            name(from),
                            name(to)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn ten_bit_values_between_the_eight_bit_codes_survive_p010_to_p010() {
    // codes that are no multiple of 4: an 8-bit path would lose them
    let (caps, data) = upscale(VideoFormat::P01010le, VideoFormat::P01010le, 8, 4, |x, _, c| match c {
        0 => 257 + 3 * x as u16,
        _ => 511,
    });
    let out = VideoInfo::from_caps(&caps).unwrap();
    for x in 0..16 {
        assert_eq!(component(&out, &data, x, 0, 0), 257 + 3 * (x / 2) as u16, "luma {x}");
    }
}

#[test]
fn every_rgb_pair_negotiates_downstream_keeping_colour_and_alpha() {
    let colour = |x: u32, y: u32, c: usize| ((x * 37 + y * 11 + c as u32 * 70) % 256) as u16;
    for from in RGB {
        for to in RGB {
            let from_alpha = gst_video::VideoFormatInfo::from_format(from).has_alpha();
            let (caps, data) =
                upscale(from, to, 6, 4, |x, y, c| if c == 3 { (x * 50) as u16 } else { colour(x, y, c) });
            assert_eq!(format_of(&caps), name(to), "{} → {}", name(from), name(to));
            let out = VideoInfo::from_caps(&caps).unwrap();
            assert_eq!((out.width(), out.height(), data.len()), (12, 8, out.size()));
            for y in 0..8 {
                for x in 0..12 {
                    for c in 0..3 {
                        let got = component(&out, &data, x, y, c);
                        assert_eq!(got, colour(x / 2, y / 2, c), "{} → {} ({x},{y}) {c}", name(from), name(to));
                    }
                }
            }
            if out.format_info().has_alpha() {
                // bilinear with centred sampling: output column x samples input column (x + 0.5) / 2 - 0.5
                let alpha: Vec<u16> = (0..12).map(|x| component(&out, &data, x, 0, 3)).collect();
                let want: Vec<u16> = if from_alpha {
                    (0..12)
                        .map(|x| ((x as f64 + 0.5) / 2.0 - 0.5).clamp(0.0, 5.0) * 50.0)
                        .map(|v| v.round() as u16)
                        .collect()
                } else {
                    vec![255; 12]
                };
                assert_eq!(alpha, want, "{} → {} alpha", name(from), name(to));
            }
        }
    }
}

#[test]
fn upstream_caps_offer_the_family_for_every_downstream_format() {
    for (family, others) in [(&YUV[..], &RGB[..]), (&RGB[..], &YUV[..])] {
        for &to in family {
            let mut h =
                harness(&nearest_model(2, None), &format!("video/x-raw,format={},width=64,height=48", name(family[0])));
            h.play();
            h.set_sink_caps_str(&format!("video/x-raw,format={},width=128,height=96", name(to)));
            let caps = h.srcpad().unwrap().peer_query_caps(None);
            let offered: Vec<String> = caps
                .iter()
                .flat_map(|s| match s.get::<gst::List>("format") {
                    Ok(l) => l.iter().map(|v| v.get::<String>().unwrap()).collect(),
                    Err(_) => vec![s.get::<String>("format").unwrap()],
                })
                .collect();
            assert_eq!(offered[0], name(to), "the downstream format first: {caps}");
            for f in family {
                assert!(offered.iter().any(|o| o == name(*f)), "{} offered for {}: {caps}", name(*f), name(to));
            }
            for f in others {
                assert!(!offered.iter().any(|o| o == name(*f)), "{} is of the other family: {caps}", name(*f));
            }
            for s in caps.iter() {
                assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (64, 48));
            }
        }
    }
}

#[test]
fn a_format_of_the_other_family_downstream_does_not_negotiate() {
    let mut h = harness(&nearest_model(2, None), "video/x-raw,format=RGBA,width=8,height=8");
    h.set_sink_caps_str("video/x-raw,format=NV12");
    let result = h.push(frame(VideoFormat::Rgba, 8, 8, |_, _, _| 0));
    assert_eq!(result, Err(gst::FlowError::NotNegotiated));
}

#[test]
fn colorimetry_and_hdr_metadata_are_carried_to_the_output() {
    let mdi = "35400:14600:8500:39850:6550:2300:15635:16450:10000000:1";
    for (to, colorimetry, transfer) in [
        (VideoFormat::P01010le, "bt2100-pq", gst_video::VideoTransferFunction::Smpte2084),
        (VideoFormat::Nv12, "bt2100-hlg", gst_video::VideoTransferFunction::AribStdB67),
    ] {
        let caps = format!(
            "video/x-raw,format=P010_10LE,width=16,height=8,framerate=24/1,colorimetry={colorimetry},\
             chroma-site=mpeg2,mastering-display-info=(string){mdi},content-light-level=(string)1000:400"
        );
        let mut h = harness(&nearest_model(2, None), &caps);
        h.set_sink_caps_str(&format!("video/x-raw,format={}", name(to)));
        h.push(frame(VideoFormat::P01010le, 16, 8, |_, _, c| if c == 0 { 400 } else { 512 })).unwrap();
        h.pull().unwrap();
        let out = h.sinkpad().unwrap().current_caps().unwrap();
        let s = out.structure(0).unwrap();
        assert_eq!(s.get::<String>("format").unwrap(), name(to));
        assert_eq!(s.get::<String>("colorimetry").unwrap(), colorimetry, "{out}");
        assert_eq!(s.get::<String>("chroma-site").unwrap(), "mpeg2", "{out}");
        assert_eq!(s.get::<String>("mastering-display-info").unwrap(), mdi, "{out}");
        assert_eq!(s.get::<String>("content-light-level").unwrap(), "1000:400", "{out}");
        let info = VideoInfo::from_caps(&out).unwrap();
        assert_eq!(info.colorimetry().transfer(), transfer);
        assert_eq!(info.colorimetry().primaries(), gst_video::VideoColorPrimaries::Bt2020);
    }
}

#[test]
fn interlaced_and_odd_sized_p010_is_upscaled_like_nv12() {
    let caps = "video/x-raw,format=P010_10LE,width=33,height=21,interlace-mode=interleaved,framerate=25/1";
    let mut h = harness(&nearest_model(3, None), caps);
    h.push(frame(VideoFormat::P01010le, 33, 21, |x, _, c| if c == 0 { 64 + x as u16 * 20 } else { 512 })).unwrap();
    let out = h.pull().unwrap();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<String>("format").unwrap(), "P010_10LE");
    assert_eq!(s.get::<String>("interlace-mode").unwrap(), "interleaved");
    let info = VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height(), out.size()), (99, 63, info.size()));
    let data = out.map_readable().unwrap();
    assert_eq!(component(&info, &data, 98, 62, 0), 64 + 32 * 20, "the last column of an odd width");
}

#[test]
fn harness_pairs_cover_every_format_the_templates_list() {
    common::init();
    let factory = gst::ElementFactory::find("vfupscale").unwrap();
    for template in factory.static_pad_templates() {
        let caps = template.caps();
        let listed: Vec<String> = caps
            .structure(0)
            .unwrap()
            .get::<gst::List>("format")
            .unwrap()
            .iter()
            .map(|v| v.get::<String>().unwrap())
            .collect();
        let tested: Vec<&str> = YUV.iter().chain(&RGB).map(|f| name(*f)).collect();
        assert_eq!(listed, tested, "{}", template.name_template());
        let memories: Vec<String> = caps.iter_with_features().map(|(_, f)| f.to_string()).collect();
        assert_eq!(memories, ["memory:CUDAMemory", "memory:SystemMemory"]);
    }
}
