// SPDX-License-Identifier: MPL-2.0

//! Caps math: the output is the input times the model's scale, or any smaller size downstream asks for (down to one
//! pixel: resampled from the model's output), with the same memory type, framerate, pixel-aspect-ratio, colorimetry
//! (matrix, range, transfer function, primaries), chroma-site, interlace-mode and HDR static metadata
//! (`mastering-display-info`, `content-light-level`). The output format is any of the input's family (NV12 ⇄
//! P010_10LE; RGBA, BGRA, RGBx, BGRx, RGB among themselves), the input's own by default.

use gst::glib;
use gst::prelude::*;
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

/// The smallest and largest value of a width or height (an integer, a range or a list of them).
fn bounds(value: &glib::SendValue) -> Option<(i32, i32)> {
    if let Ok(v) = value.get::<i32>() {
        return Some((v, v));
    }
    if let Ok(r) = value.get::<gst::IntRange<i32>>() {
        return Some((r.min(), r.max()));
    }
    let list = value.get::<gst::List>().ok()?;
    list.iter().filter_map(bounds).reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
}

/// `min..=max` as a caps value (a single integer when they are equal).
fn range(min: i32, max: i32) -> glib::SendValue {
    if min == max { min.to_send_value() } else { gst::IntRange::new(min, max).to_send_value() }
}

/// Maps a width or height between the pads, to the sizes preferred there: towards the source pad outputs from 1
/// pixel up to `value × scale` (smaller ones are resampled from the model's), towards the sink pad the smallest input
/// whose model output covers `value` (`value ÷ scale`, rounded up). `None` when no value can map.
pub fn map_dimension(value: &glib::SendValue, scale: i32, to_src: bool) -> Option<glib::SendValue> {
    let (min, max) = bounds(value)?;
    if max < 1 {
        return None;
    }
    let up = |v: i32| (v.max(1) as i64 + scale as i64 - 1) / scale as i64;
    let up = |v: i32| up(v) as i32;
    Some(if to_src { range(1, max.saturating_mul(scale)) } else { range(up(min), up(max)) })
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

/// The caps on the other pad for `caps` on the pad of `direction`: first the preferred sizes mapped by `scale` (see
/// [`map_dimension`]), then the same structures with any size (any size while the scale is unknown), so that a size
/// the element cannot give still reaches `set_caps`, which refuses it with a message naming it, where an empty
/// intersection would end in a bare not-negotiated; formats widened to their families, structures in CUDA memory
/// dropped unless `cuda_allowed` or in no format the element knows, every other field kept.
pub fn transform(caps: &gst::Caps, direction: gst::PadDirection, scale: Option<u32>, cuda_allowed: bool) -> gst::Caps {
    let scale = scale.map(|s| s as i32);
    let to_src = direction == gst::PadDirection::Sink;
    let mut preferred = gst::Caps::new_empty();
    let mut any = gst::Caps::new_empty();
    let (preferred_mut, any_mut) = (preferred.get_mut().expect("writable"), any.get_mut().expect("writable"));
    for (s, features) in caps.iter_with_features() {
        // ANY features "contain" every feature: in system memory where CUDA memory is not allowed
        let features = match (features.is_any(), features.contains(CAPS_FEATURE_MEMORY_CUDA_MEMORY)) {
            (true, _) if !cuda_allowed => gst::CapsFeatures::new([gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY]),
            (false, true) if !cuda_allowed => continue,
            _ => features.to_owned(),
        };
        let mut s = s.to_owned();
        if let Ok(formats) = s.value("format") {
            match map_formats(formats) {
                Some(v) => s.set_value("format", v),
                None => continue,
            }
        }
        let mut unbounded = s.clone();
        for field in ["width", "height"] {
            unbounded.set_value(field, gst::IntRange::new(1, i32::MAX).to_send_value());
        }
        if let Some(scale) = scale {
            let mut mapped = s.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                match s.value(field).ok().and_then(|v| map_dimension(v, scale, to_src)) {
                    Some(v) => mapped.set_value(field, v),
                    None => ok = false,
                }
            }
            if ok {
                preferred_mut.append_structure_full(mapped, Some(features.clone()));
            }
        }
        any_mut.append_structure_full(unbounded, Some(features));
    }
    preferred_mut.append(any);
    preferred
}

/// `caps` limited to sizes of at most `width × height` (empty when downstream allows none of them).
fn at_most(caps: &gst::Caps, width: i32, height: i32) -> gst::Caps {
    let mut limit = gst::Caps::new_empty();
    let limit_mut = limit.get_mut().expect("new caps are writable");
    for (s, features) in caps.iter_with_features() {
        let bound = gst::Structure::builder(s.name())
            .field("width", gst::IntRange::new(1, width.max(1)))
            .field("height", gst::IntRange::new(1, height.max(1)))
            .build();
        limit_mut.append_structure_full(bound, Some(features.to_owned()));
    }
    caps.intersect_with_mode(&limit, gst::CapsIntersectMode::First)
}

/// Fixates `othercaps` (the other pad's) for the fixed `caps` of the pad of `direction`: towards the source pad the
/// model's size (the input times the scale) where downstream allows it, else the largest size downstream allows up
/// to it, with the input's display aspect where downstream fixes only one side; towards the sink pad the smallest
/// input that gives the output; the input's framerate, pixel-aspect-ratio and [`CARRIED_FIELDS`] where the other pad
/// allows them. `None` when `caps` has no fixed size or the scale is unknown, for the base class's default fixation.
/// Outputs above the model's size are left for `set_caps` to refuse with a clear message.
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
    let (tw, th) = (w.saturating_mul(scale), h.saturating_mul(scale));
    let mut othercaps = match direction {
        gst::PadDirection::Sink => Some(at_most(othercaps, tw, th)).filter(|c| !c.is_empty()),
        _ => None,
    }
    .unwrap_or_else(|| othercaps.clone());
    othercaps.truncate();
    if let Some(s) = othercaps.make_mut().structure_mut(0) {
        if direction == gst::PadDirection::Sink {
            let fixed = |s: &gst::StructureRef, f: &str| s.get::<i32>(f).ok();
            // one side fixed downstream: the other keeps the input's display aspect
            let (tw, th) = match (fixed(s, "width"), fixed(s, "height")) {
                (Some(fw), None) => (fw, ((fw as i64 * h as i64 + w as i64 / 2) / w as i64) as i32),
                (None, Some(fh)) => (((fh as i64 * w as i64 + h as i64 / 2) / h as i64) as i32, fh),
                _ => (tw, th),
            };
            s.fixate_field_nearest_int("width", tw);
            s.fixate_field_nearest_int("height", th);
        } else {
            s.fixate_field_nearest_int("width", (w + scale - 1) / scale);
            s.fixate_field_nearest_int("height", (h + scale - 1) / scale);
        }
        for field in ["framerate", "pixel-aspect-ratio"] {
            // (a field the other pad leaves out stays out: GStreamer refuses to fixate a missing field)
            if let Ok(f) = s_in.get::<gst::Fraction>(field)
                && s.has_field(field)
            {
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
    fn dimensions_map_to_the_sizes_preferred_on_the_other_side() {
        init();
        let range = |v: glib::SendValue| v.get::<gst::IntRange<i32>>().unwrap();
        // downstream: any size up to the model's
        assert_eq!(range(map_dimension(&dim(33), 3, true).unwrap()), gst::IntRange::new(1, 99));
        assert_eq!(range(map_dimension(&dim(gst::IntRange::new(10, 21)), 2, true).unwrap()), gst::IntRange::new(1, 42));
        assert_eq!(map_dimension(&dim(1), 1, true).unwrap().get::<i32>().unwrap(), 1, "one value, not a range");
        assert_eq!(range(map_dimension(&dim(i32::MAX), 2, true).unwrap()), gst::IntRange::new(1, i32::MAX));
        // upstream: the smallest input whose model output covers the size
        assert_eq!(map_dimension(&dim(99), 3, false).unwrap().get::<i32>().unwrap(), 33);
        assert_eq!(map_dimension(&dim(100), 3, false).unwrap().get::<i32>().unwrap(), 34);
        let down = map_dimension(&dim(gst::IntRange::new(100, 300)), 2, false).unwrap();
        assert_eq!(range(down), gst::IntRange::new(50, 150));
        let list = map_dimension(&dim(gst::List::new([3i32, 4, 6])), 2, false).unwrap();
        assert_eq!(range(list), gst::IntRange::new(2, 3));
        assert!(map_dimension(&dim(0), 2, true).is_none(), "no pixels, no size");
    }

    #[test]
    fn transform_keeps_fields_and_memory_and_maps_the_size() {
        init();
        let input = caps(
            "video/x-raw(memory:CUDAMemory),format=NV12,width=64,height=48,framerate=30/1; \
             video/x-raw,format=NV12,width=64,height=48,framerate=30/1,colorimetry=bt709",
        );
        let out = transform(&input, Sink, Some(2), true);
        assert_eq!(out.size(), 4, "preferred sizes, then any size: {out}");
        assert!(out.features(0).unwrap().contains("memory:CUDAMemory"));
        assert!(out.features(1).unwrap().is_equal(&gst::CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
        let sizes = |s: &gst::StructureRef| {
            (s.get::<gst::IntRange<i32>>("width").unwrap(), s.get::<gst::IntRange<i32>>("height").unwrap())
        };
        for (i, s) in out.iter().enumerate() {
            let max = if i < 2 { (128, 96) } else { (i32::MAX, i32::MAX) };
            assert_eq!(sizes(s), (gst::IntRange::new(1, max.0), gst::IntRange::new(1, max.1)), "{out}");
            assert_eq!(s.get::<gst::Fraction>("framerate").unwrap(), gst::Fraction::new(30, 1));
        }
        assert_eq!(out.structure(1).unwrap().get::<&str>("colorimetry").unwrap(), "bt709");

        let no_cuda = transform(&input, Sink, Some(2), false);
        assert_eq!(no_cuda.size(), 2);
        assert!(no_cuda.iter_with_features().all(|(_, f)| !f.contains("memory:CUDAMemory")), "{no_cuda}");
        // any memory (a caps filter naming only a format): system memory without CUDA, kept as it is with it
        let any = caps("video/x-raw(ANY),format=NV12");
        let out = transform(&any, Src, Some(2), false);
        assert_eq!(out.size(), 1, "{out}");
        assert!(out.features(0).unwrap().is_equal(&gst::CAPS_FEATURES_MEMORY_SYSTEM_MEMORY), "{out}");
        assert!(transform(&any, Src, Some(2), true).features(0).unwrap().is_any());

        let back = transform(&caps("video/x-raw,format=NV12,width=128,height=97"), Src, Some(2), true);
        let s = back.structure(0).unwrap();
        assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (64, 49), "{back}");
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
        assert_eq!(out.size(), 1, "{out}");
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
    fn smaller_outputs_are_fixated_within_the_models_size_keeping_the_aspect() {
        init();
        let input = caps("video/x-raw,format=NV12,width=96,height=64,pixel-aspect-ratio=1/1");
        let size = |c: &gst::Caps| {
            let s = c.structure(0).unwrap();
            (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap())
        };
        let fix = |other: &str| size(&fixate(Sink, &input, &caps(other), Some(2)).unwrap());
        assert_eq!(fix("video/x-raw,format=NV12,width=150,height=[1,4096]"), (150, 100), "the height follows");
        assert_eq!(fix("video/x-raw,format=NV12,width=[1,4096],height=90"), (135, 90), "the width follows");
        assert_eq!(fix("video/x-raw,format=NV12,width=[1,100],height=[1,100]"), (100, 100), "the largest allowed");
        assert_eq!(fix("video/x-raw,format=NV12,width={100,140},height=60"), (100, 60), "above the model's: not taken");
        // only larger sizes downstream: left as they are, for set_caps to refuse by name
        assert_eq!(fix("video/x-raw,format=NV12,width=300,height=200"), (300, 200));
    }

    #[test]
    fn memory_follows_the_caps_features() {
        init();
        assert_eq!(Memory::of(&caps("video/x-raw(memory:CUDAMemory),format=NV12")), Memory::Cuda);
        assert_eq!(Memory::of(&caps("video/x-raw,format=NV12")), Memory::System);
    }
}
