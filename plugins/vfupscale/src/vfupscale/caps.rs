// SPDX-License-Identifier: MPL-2.0

//! Caps math: the output is the input times the model's scale, with the same memory type, framerate,
//! pixel-aspect-ratio, colorimetry (matrix, range, transfer function, primaries), chroma-site, interlace-mode and HDR
//! static metadata (`mastering-display-info`, `content-light-level`). The output format is any of the input's family
//! (NV12 ⇄ P010_10LE; RGBA, BGRA, RGBx, BGRx, RGB among themselves), the input's own by default.

use gst::glib;
use gst::prelude::*;
use gst_video::VideoInfo;
use vfupscale::format::PixelFormat;

use crate::gstcuda::ffi::CAPS_FEATURE_MEMORY_CUDA_MEMORY;

/// Fields fixated to the input's value when the other pad allows it: the stream's description, carried over.
const CARRIED_FIELDS: [&str; 6] =
    ["format", "colorimetry", "chroma-site", "interlace-mode", "mastering-display-info", "content-light-level"];

/// Where the pads' frames live (the same on both sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    System,
    Cuda,
}

impl Memory {
    /// The memory of the first structure of `caps`.
    pub fn of(caps: &gst::CapsRef) -> Memory {
        match caps.features(0) {
            Some(f) if f.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY) => Memory::Cuda,
            _ => Memory::System,
        }
    }
}

/// Maps a width or height between the pads: `value × scale` towards the source pad, `value ÷ scale` (exact
/// multiples only) towards the sink pad. `None` when no value can map.
pub fn map_dimension(value: &glib::SendValue, scale: i32, to_src: bool) -> Option<glib::SendValue> {
    let up = |v: i32| v.checked_mul(scale);
    let down = |v: i32| (v % scale == 0).then_some(v / scale);
    if let Ok(v) = value.get::<i32>() {
        return if to_src { up(v) } else { down(v) }.filter(|&v| v > 0).map(|v| v.to_send_value());
    }
    if let Ok(r) = value.get::<gst::IntRange<i32>>() {
        let (min, max) = (r.min(), r.max());
        return if to_src {
            // the largest multiple of the scale that fits (ranges reaching i32::MAX saturate)
            let top = max.saturating_mul(scale);
            let (min, top) = (up(min)?, top - top % scale);
            match min.cmp(&top) {
                std::cmp::Ordering::Less => Some(gst::IntRange::with_step(min, top, scale).to_send_value()),
                std::cmp::Ordering::Equal => Some(min.to_send_value()),
                std::cmp::Ordering::Greater => None,
            }
        } else {
            let min = ((min + scale - 1) / scale).max(1);
            let max = max / scale;
            (min <= max)
                .then(|| if min == max { min.to_send_value() } else { gst::IntRange::new(min, max).to_send_value() })
        };
    }
    if let Ok(list) = value.get::<gst::List>() {
        let mapped: Vec<glib::SendValue> = list.iter().filter_map(|v| map_dimension(v, scale, to_src)).collect();
        return (!mapped.is_empty()).then(|| gst::List::new(mapped).to_send_value());
    }
    None
}

/// The formats of the other pad for a `format` field: those given (that the element knows), then the other formats
/// of their families. `None` when the field names none the element knows.
pub fn map_formats(value: &glib::SendValue) -> Option<glib::SendValue> {
    let given: Vec<PixelFormat> = if let Ok(name) = value.get::<&str>() {
        PixelFormat::from_name(name).into_iter().collect()
    } else if let Ok(list) = value.get::<gst::List>() {
        list.iter().filter_map(|v| v.get::<&str>().ok().and_then(PixelFormat::from_name)).collect()
    } else {
        Vec::new()
    };
    let mut formats = given.clone();
    for f in PixelFormat::ALL {
        if !formats.contains(&f) && given.iter().any(|g| g.family() == f.family()) {
            formats.push(f);
        }
    }
    match formats.as_slice() {
        [] => None,
        [one] => Some(one.name().to_send_value()),
        many => Some(gst::List::new(many.iter().map(|f| f.name())).to_send_value()),
    }
}

/// The caps on the other pad for `caps` on the pad of `direction`: sizes mapped by `scale` (any size while the scale
/// is unknown), formats widened to their families, structures in CUDA memory dropped unless `cuda_allowed`, every
/// other field kept.
pub fn transform(caps: &gst::Caps, direction: gst::PadDirection, scale: Option<u32>, cuda_allowed: bool) -> gst::Caps {
    let scale = scale.map(|s| s as i32);
    let to_src = direction == gst::PadDirection::Sink;
    let mut out = gst::Caps::new_empty();
    let out_mut = out.get_mut().expect("new caps are writable");
    for (s, features) in caps.iter_with_features() {
        if features.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY) && !cuda_allowed {
            continue;
        }
        let mut s = s.to_owned();
        let mut ok = true;
        for field in ["width", "height"] {
            let mapped = match (scale, s.value(field)) {
                (Some(scale), Ok(v)) => map_dimension(v, scale, to_src),
                _ => Some(gst::IntRange::new(1, i32::MAX).to_send_value()),
            };
            match mapped {
                Some(v) => s.set_value(field, v),
                None => ok = false,
            }
        }
        if let Ok(formats) = s.value("format") {
            match map_formats(formats) {
                Some(v) => s.set_value("format", v),
                None => ok = false,
            }
        }
        if ok {
            out_mut.append_structure_full(s, Some(features.to_owned()));
        }
    }
    out
}

/// Fixates `othercaps` (the other pad's) for the fixed `caps` of the pad of `direction`: the size nearest the exact
/// multiple, the input's framerate, pixel-aspect-ratio and [`CARRIED_FIELDS`] where the other pad allows them.
/// `None` when `caps` has no fixed size or the scale is unknown, for the base class's default fixation.
pub fn fixate(
    direction: gst::PadDirection,
    caps: &gst::Caps,
    othercaps: &gst::Caps,
    scale: Option<u32>,
) -> Option<gst::Caps> {
    let scale = scale? as i32;
    let Some(s_in) = caps.structure(0) else {
        return Some(othercaps.clone());
    };
    let (w, h) = (s_in.get::<i32>("width").ok()?, s_in.get::<i32>("height").ok()?);
    let (tw, th) = if direction == gst::PadDirection::Sink {
        (w.saturating_mul(scale), h.saturating_mul(scale))
    } else {
        (w / scale, h / scale)
    };
    let mut othercaps = othercaps.clone();
    othercaps.truncate();
    if let Some(s) = othercaps.make_mut().structure_mut(0) {
        s.fixate_field_nearest_int("width", tw);
        s.fixate_field_nearest_int("height", th);
        for field in ["framerate", "pixel-aspect-ratio"] {
            if let Ok(f) = s_in.get::<gst::Fraction>(field) {
                s.fixate_field_nearest_fraction(field, f);
            }
        }
        for field in CARRIED_FIELDS {
            if let Ok(v) = s_in.get::<&str>(field) {
                s.fixate_field_str(field, v);
            }
        }
    }
    othercaps.fixate();
    Some(othercaps)
}

/// Checks that the output frame is the input frame times `scale`.
pub fn check_scaled(input: &VideoInfo, output: &VideoInfo, scale: u32) -> Result<(), String> {
    let (iw, ih, ow, oh) = (input.width(), input.height(), output.width(), output.height());
    let expected = (iw.checked_mul(scale), ih.checked_mul(scale));
    if expected != (Some(ow), Some(oh)) {
        return Err(format!("output {ow}x{oh} is not {scale} × input {iw}x{ih}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::PadDirection::{Sink, Src};

    fn init() {
        gst::init().unwrap();
    }

    fn caps(s: &str) -> gst::Caps {
        s.parse().unwrap()
    }

    fn dim(v: impl ToSendValue) -> glib::SendValue {
        v.to_send_value()
    }

    #[test]
    fn dimensions_scale_up_and_divide_exactly() {
        init();
        assert_eq!(map_dimension(&dim(33), 3, true).unwrap().get::<i32>().unwrap(), 99);
        assert_eq!(map_dimension(&dim(99), 3, false).unwrap().get::<i32>().unwrap(), 33);
        assert!(map_dimension(&dim(100), 3, false).is_none(), "no multiple of the scale");
        assert!(map_dimension(&dim(i32::MAX), 2, true).is_none(), "overflow");
        let up = map_dimension(&dim(gst::IntRange::new(10, 21)), 2, true).unwrap();
        assert_eq!(up.get::<gst::IntRange<i32>>().unwrap(), gst::IntRange::with_step(20, 42, 2));
        let down = map_dimension(&dim(gst::IntRange::new(100, 300)), 2, false).unwrap();
        assert_eq!(down.get::<gst::IntRange<i32>>().unwrap(), gst::IntRange::new(50, 150));
        let single = map_dimension(&dim(gst::IntRange::new(5, 7)), 3, false).unwrap();
        assert_eq!(single.get::<i32>().unwrap(), 2, "a range holding one multiple becomes that value");
        assert!(map_dimension(&dim(gst::IntRange::new(5, 7)), 4, false).is_none(), "no multiple of 4 in 5..=7");
        // ranges reaching the largest i32: saturated, down to a single value or nothing, never an empty range
        let edge = map_dimension(&dim(gst::IntRange::new(i32::MAX / 2, i32::MAX)), 2, true).unwrap();
        assert_eq!(edge.get::<i32>().unwrap(), i32::MAX - 1);
        assert!(map_dimension(&dim(gst::IntRange::new(i32::MAX / 2 + 1, i32::MAX)), 2, true).is_none());
        let list = map_dimension(&dim(gst::List::new([3i32, 4, 6])), 2, false).unwrap();
        let values: Vec<i32> = list.get::<gst::List>().unwrap().iter().map(|v| v.get().unwrap()).collect();
        assert_eq!(values, [2, 3]);
    }

    #[test]
    fn transform_keeps_fields_and_memory_and_maps_the_size() {
        init();
        let input = caps(
            "video/x-raw(memory:CUDAMemory),format=NV12,width=64,height=48,framerate=30/1; \
             video/x-raw,format=NV12,width=64,height=48,framerate=30/1,colorimetry=bt709",
        );
        let out = transform(&input, Sink, Some(2), true);
        assert_eq!(out.size(), 2);
        assert!(out.features(0).unwrap().contains("memory:CUDAMemory"));
        assert!(out.features(1).unwrap().is_equal(&gst::CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
        for s in out.iter() {
            assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (128, 96));
            assert_eq!(s.get::<gst::Fraction>("framerate").unwrap(), gst::Fraction::new(30, 1));
        }
        assert_eq!(out.structure(1).unwrap().get::<&str>("colorimetry").unwrap(), "bt709");

        let no_cuda = transform(&input, Sink, Some(2), false);
        assert_eq!(no_cuda.size(), 1);
        assert!(!no_cuda.features(0).unwrap().contains("memory:CUDAMemory"), "{no_cuda}");

        let back = transform(&caps("video/x-raw,format=NV12,width=128,height=97"), Src, Some(2), true);
        assert!(back.is_empty(), "an odd height has no input at x2: {back}");
    }

    #[test]
    fn formats_widen_to_their_family_with_the_given_ones_first() {
        init();
        let names = |caps: &gst::Caps| -> Vec<String> {
            let s = caps.structure(0).unwrap();
            match s.get::<gst::List>("format") {
                Ok(l) => l.iter().map(|v| v.get::<String>().unwrap()).collect(),
                Err(_) => vec![s.get::<String>("format").unwrap()],
            }
        };
        let out = transform(&caps("video/x-raw,format=P010_10LE,width=8,height=8"), Sink, Some(2), true);
        assert_eq!(names(&out), ["P010_10LE", "NV12"]);
        let out = transform(&caps("video/x-raw,format=NV12,width=8,height=8"), Src, Some(2), true);
        assert_eq!(names(&out), ["NV12", "P010_10LE"]);
        let out = transform(&caps("video/x-raw,format=BGRx,width=8,height=8"), Sink, Some(2), true);
        assert_eq!(names(&out), ["BGRx", "RGBA", "BGRA", "RGBx", "RGB"]);
        let out = transform(&caps("video/x-raw,format={RGB,I420,NV12},width=8,height=8"), Sink, Some(2), true);
        assert_eq!(names(&out), ["RGB", "NV12", "P010_10LE", "RGBA", "BGRA", "RGBx", "BGRx"]);
        let out = transform(&caps("video/x-raw,format=I420,width=8,height=8"), Sink, Some(2), true);
        assert!(out.is_empty(), "no format the element knows: {out}");
    }

    #[test]
    fn fixation_keeps_the_input_format_and_hdr_metadata_where_allowed() {
        init();
        let mdi = "35400:14600:8500:39850:6550:2300:15635:16450:10000000:1";
        let input = caps(&format!(
            "video/x-raw,format=P010_10LE,width=40,height=30,colorimetry=bt2100-pq,\
             mastering-display-info=(string){mdi},content-light-level=(string)1000:400"
        ));
        let other = transform(&input, Sink, Some(2), false);
        let fixed = fixate(Sink, &input, &other, Some(2)).unwrap();
        let s = fixed.structure(0).unwrap();
        assert_eq!(s.get::<&str>("format").unwrap(), "P010_10LE");
        assert_eq!(s.get::<&str>("colorimetry").unwrap(), "bt2100-pq");
        assert_eq!(s.get::<&str>("mastering-display-info").unwrap(), mdi);
        assert_eq!(s.get::<&str>("content-light-level").unwrap(), "1000:400");
        // downstream wants 8 bits: NV12 it is
        let nv12 = caps("video/x-raw,format=NV12,width=[1,4096],height=[1,4096]");
        let fixed = fixate(Sink, &input, &other.intersect(&nv12), Some(2)).unwrap();
        assert_eq!(fixed.structure(0).unwrap().get::<&str>("format").unwrap(), "NV12");
    }

    #[test]
    fn without_a_scale_any_size_maps() {
        init();
        let out = transform(&caps("video/x-raw,format=NV12,width=64,height=48"), Src, None, false);
        let s = out.structure(0).unwrap();
        assert_eq!(s.get::<gst::IntRange<i32>>("width").unwrap(), gst::IntRange::new(1, i32::MAX));
        // the format is kept, first of its family (the output may also be 10-bit)
        let formats = s.get::<gst::List>("format").unwrap();
        assert_eq!(formats.iter().next().unwrap().get::<&str>().unwrap(), "NV12");
    }

    #[test]
    fn fixation_picks_the_multiple_and_carries_the_stream_fields() {
        init();
        let input = caps(
            "video/x-raw,format=NV12,width=40,height=30,framerate=10/1,pixel-aspect-ratio=4/3,\
             colorimetry=bt601,interlace-mode=progressive",
        );
        let other = caps(
            "video/x-raw,format=NV12,width=[1,4096],height=[1,4096],framerate=[0/1,100/1],\
             pixel-aspect-ratio=[1/100,100/1],colorimetry={bt709,bt601},interlace-mode={interleaved,progressive}",
        );
        let fixed = fixate(Sink, &input, &other, Some(2)).unwrap();
        assert!(fixed.is_fixed());
        let s = fixed.structure(0).unwrap();
        assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (80, 60));
        assert_eq!(s.get::<gst::Fraction>("framerate").unwrap(), gst::Fraction::new(10, 1));
        assert_eq!(s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(), gst::Fraction::new(4, 3));
        assert_eq!(s.get::<&str>("colorimetry").unwrap(), "bt601");
        assert_eq!(s.get::<&str>("interlace-mode").unwrap(), "progressive");

        let up = fixate(Src, &caps("video/x-raw,width=81,height=60"), &other, Some(3)).unwrap();
        let s = up.structure(0).unwrap();
        assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (27, 20));

        assert!(fixate(Sink, &input, &other, None).is_none(), "unknown scale: default fixation");
        assert!(fixate(Sink, &caps("video/x-raw,format=NV12"), &other, Some(2)).is_none(), "no size to scale");
    }

    #[test]
    fn the_output_must_be_the_input_times_the_scale() {
        init();
        let info = |w, h| VideoInfo::builder(gst_video::VideoFormat::Nv12, w, h).build().unwrap();
        assert!(check_scaled(&info(64, 48), &info(128, 96), 2).is_ok());
        let e = check_scaled(&info(64, 48), &info(128, 98), 2).unwrap_err();
        assert_eq!(e, "output 128x98 is not 2 × input 64x48");
    }

    #[test]
    fn memory_follows_the_caps_features() {
        init();
        assert_eq!(Memory::of(&caps("video/x-raw(memory:CUDAMemory),format=NV12")), Memory::Cuda);
        assert_eq!(Memory::of(&caps("video/x-raw,format=NV12")), Memory::System);
    }
}
