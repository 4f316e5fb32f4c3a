// SPDX-License-Identifier: MPL-2.0
//! Spatial geometry of an ncnn network, found by simulating blob sizes through it.
//!
//! Many ncnn super-resolution models (waifu2x, Real-CUGAN) use unpadded convolutions and stride-2 stages: their
//! output for a padded input of size `n` is `scale * n + offset` and only some `n` are valid. The ncnn front ends
//! pad the input themselves; we put that padding into the ONNX graph instead, so that the converted model maps
//! any `H × W` to exactly `scale·H × scale·W`.

use std::collections::HashMap;

use super::Param;
use super::layers::{Crop, Op, resolve_slice};
use crate::error::{Error, Result};

/// How to wrap a network so that it maps any input size to `scale ×` that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Integer upscale factor.
    pub scale: u32,
    /// Input pixels replicated on each side before the network.
    pub pad: u32,
    /// The padded size must be congruent to `residue` modulo `alignment`; the extra pixels go bottom/right.
    pub alignment: u32,
    pub residue: u32,
    /// Output pixels dropped at the top/left after the network.
    pub crop_offset: u32,
    /// Smallest input size (per axis) the wrapped network accepts.
    pub min_size: u32,
}

impl Geometry {
    /// True when the network needs no wrapping.
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && self.alignment == 1 && self.crop_offset == 0
    }

    /// Padded network input size for an input of size `n`.
    pub fn padded(&self, n: u32) -> u32 {
        let base = n + 2 * self.pad;
        let extra = (self.residue + self.alignment - base % self.alignment) % self.alignment;
        base + extra
    }
}

/// Spatial size of a blob along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Extent {
    Spatial(i64),
    /// A per-channel vector (global pooling, InnerProduct): broadcasts over space.
    Vector,
}

/// Output size along `axis` (0: height, 1: width) for input size `n`, and whether every strided layer divided
/// its input exactly; `Ok(None)` if the network cannot take that size at all.
fn simulate(ops: &[(Op, &super::Layer)], axis: usize, n: i64) -> Result<Option<(i64, bool)>> {
    let mut blobs: HashMap<&str, Extent> = HashMap::new();
    let mut last = None;
    let mut exact = true;
    for (op, layer) in ops {
        let get = |name: &str| -> Result<Extent> {
            blobs
                .get(name)
                .copied()
                .ok_or_else(|| layer.error(format!("input blob {name} is not produced by any earlier layer")))
        };
        let first = match layer.inputs.first() {
            Some(b) => Some(get(b)?),
            None => None,
        };
        let spatial = |e: Option<Extent>| -> Result<i64> {
            match e {
                Some(Extent::Spatial(v)) => Ok(v),
                _ => Err(layer.error("expects a spatial input")),
            }
        };
        let out = match op {
            Op::Input => Some(Extent::Spatial(n)),
            Op::Alias | Op::PRelu { .. } | Op::Relu { .. } | Op::Sigmoid | Op::TanH | Op::Clip { .. } => first,
            Op::Conv(p) | Op::Deconv(p) => {
                let out = p.out_size(axis, spatial(first)?, matches!(op, Op::Deconv(_)));
                exact &= out.is_none_or(|(_, e)| e);
                out.map(|(v, _)| Extent::Spatial(v))
            }
            Op::InnerProduct { .. } => match first {
                Some(Extent::Vector) => Some(Extent::Vector),
                _ => return Err(layer.error("InnerProduct is only supported after global pooling")),
            },
            Op::GlobalPool { .. } => Some(Extent::Vector),
            Op::PixelShuffle { factor } => Some(Extent::Spatial(spatial(first)? * *factor as i64)),
            Op::Interp { scale, size, .. } => {
                let v = spatial(first)?;
                Some(Extent::Spatial(match size {
                    Some(s) => s[axis],
                    None => (v as f64 * scale[axis] as f64).floor() as i64,
                }))
            }
            Op::Binary { .. } | Op::Eltwise { .. } | Op::Scale { .. } | Op::Concat { .. } => {
                let mut spatial_sizes = Vec::new();
                for b in &layer.inputs {
                    if let Extent::Spatial(v) = get(b)? {
                        spatial_sizes.push(v);
                    }
                }
                if matches!(op, Op::Concat { .. } | Op::Eltwise { .. }) && spatial_sizes.len() != layer.inputs.len() {
                    return Err(layer.error("cannot combine per-channel vectors with spatial blobs"));
                }
                match spatial_sizes.split_first() {
                    None => Some(Extent::Vector),
                    Some((v, rest)) if rest.iter().all(|r| r == v) => Some(Extent::Spatial(*v)),
                    Some(_) => None,
                }
            }
            Op::Crop(crop) => {
                let v = spatial(first)?;
                let size = match crop {
                    Crop::ToReference { offset } => {
                        let r = spatial(Some(get(&layer.inputs[1])?))?;
                        (offset[axis] >= 0 && offset[axis] + r <= v).then_some(r)
                    }
                    Crop::Offsets { offset, size, end_offset } => {
                        let s = size[axis].unwrap_or(v - offset[axis] - end_offset[axis]);
                        (offset[axis] >= 0 && s >= 1 && offset[axis] + s <= v).then_some(s)
                    }
                    Crop::Slices { ranges } => match ranges[axis] {
                        Some((s, e)) => resolve_slice(s, e, v).map(|(s, e)| e - s),
                        None => Some(v),
                    },
                };
                size.map(Extent::Spatial)
            }
        };
        let Some(out) = out else { return Ok(None) };
        if let Extent::Spatial(v) = out
            && v < 1
        {
            return Ok(None);
        }
        for o in &layer.outputs {
            blobs.insert(o, out);
        }
        last = Some(out);
    }
    match last {
        Some(Extent::Spatial(v)) => Ok(Some((v, exact))),
        _ => Err(Error::Import("the last layer does not produce an image".into())),
    }
}

/// Largest padded size tried; every model family we know settles far below it.
const PROBE_LIMIT: i64 = 512;

/// Sizes examined for the affine fit: large enough that every border effect has settled.
const TAIL: std::ops::RangeInclusive<i64> = PROBE_LIMIT / 2..=PROBE_LIMIT;

/// Finds the geometry of `param`'s network.
///
/// The output size must be `scale·n + offset` on a residue class of input sizes `n ≡ residue (mod alignment)`.
/// The smallest alignment wins; among its classes, one where every stride divides exactly is preferred (that is
/// where encoder and decoder branches line up, as the models' own front ends arrange), and the offset must be
/// even (the border changes by the same amount on both sides).
pub fn analyse(param: &Param) -> Result<Geometry> {
    let ops: Vec<(Op, &super::Layer)> =
        param.layers.iter().map(|l| Op::parse(l).map(|op| (op, l))).collect::<Result<_>>()?;
    // out[n] = Some((output size, exact)) when both axes accept n and agree
    let mut out: Vec<Option<(i64, bool)>> = vec![None];
    for n in 1..=PROBE_LIMIT {
        out.push(match (simulate(&ops, 0, n)?, simulate(&ops, 1, n)?) {
            (Some((h, eh)), Some((w, ew))) if h == w => Some((h, eh && ew)),
            (Some(_), Some(_)) => return Err(Error::Import("the network treats height and width differently".into())),
            _ => None,
        });
    }
    if out.iter().all(Option::is_none) {
        return Err(Error::Import(format!("the network accepts no input size up to {PROBE_LIMIT}")));
    }
    // (alignment, residue, scale, offset) of the first acceptable class
    let mut found = None;
    'search: for m in [1i64, 2, 4, 8, 16, 32, 64] {
        let mut inexact = None;
        for r in 0..m {
            let class: Vec<(i64, i64, bool)> =
                TAIL.filter(|n| n % m == r).filter_map(|n| out[n as usize].map(|(o, e)| (n, o, e))).collect();
            if class.len() != TAIL.filter(|n| n % m == r).count() || class.len() < 2 {
                continue;
            }
            let (n0, o0, _) = class[0];
            let (n1, o1, _) = class[1];
            if (o1 - o0) % (n1 - n0) != 0 {
                continue;
            }
            let scale = (o1 - o0) / (n1 - n0);
            let offset = o0 - scale * n0;
            if scale < 1 || offset % 2 != 0 || class.iter().any(|&(n, o, _)| o != scale * n + offset) {
                continue;
            }
            if class.iter().all(|&(_, _, e)| e) {
                found = Some((m, r, scale, offset));
                break 'search;
            }
            inexact.get_or_insert((m, r, scale, offset));
        }
        if let Some(f) = inexact {
            found = Some(f);
            break;
        }
    }
    let (alignment, residue, scale, offset) = found.ok_or_else(|| {
        Error::Import(
            "unsupported geometry: the output size is not an integer multiple of the input size plus an even \
             constant on any aligned set of sizes (the border must change by the same amount on both sides)"
                .into(),
        )
    })?;
    // output pixels lost (or, when negative, gained) on each side
    let shrink = -offset / 2;
    let pad = if shrink > 0 { (shrink + scale - 1) / scale } else { 0 };
    let crop_offset = scale * pad - shrink;
    let mut g = Geometry {
        scale: scale as u32,
        pad: pad as u32,
        alignment: alignment as u32,
        residue: residue as u32,
        crop_offset: crop_offset as u32,
        min_size: 1,
    };
    let works = |k: u32| {
        let p = g.padded(k) as i64;
        p <= PROBE_LIMIT && out[p as usize].is_some_and(|(o, _)| o == scale * p + offset)
    };
    g.min_size = (1..=PROBE_LIMIT as u32)
        .find(|&n| (n..n + 2 * alignment as u32).all(works))
        .ok_or_else(|| Error::Import("no input size works with the padding found".into()))?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(text: &str) -> Result<Geometry> {
        analyse(&Param::parse(text, "t.param")?)
    }

    #[test]
    fn padded_network_is_already_identity() {
        let g = geometry(
            "7767517\n3 3\nInput in 0 1 a\nConvolution c 1 1 a b 0=12 1=3 4=1 6=324\nPixelShuffle p 1 1 b out 0=2\n",
        )
        .unwrap();
        assert_eq!(g, Geometry { scale: 2, pad: 0, alignment: 1, residue: 0, crop_offset: 0, min_size: 1 });
        assert!(g.is_identity());
    }

    #[test]
    fn unpadded_strided_network_gets_padding_and_alignment() {
        // two valid 3x3 convs (-4), a stride-2 conv (needs even input), a x4 transposed conv
        let g = geometry(
            "7767517\n5 5\nInput in 0 1 a\nConvolution c1 1 1 a b 0=4 1=3 6=108\nConvolution c2 1 1 b c 0=4 1=3 6=144\n\
             Convolution s 1 1 c d 0=4 1=2 3=2 6=64\nDeconvolution up 1 1 d out 0=3 1=8 3=8 6=768\n",
        )
        .unwrap();
        // padded n: ((n - 4) / 2) * 8 = 4n - 16 → scale 4, shrink 8 a side → pad 2, offset 0
        assert_eq!((g.scale, g.pad, g.crop_offset), (4, 2, 0));
        assert_eq!(g.alignment, 2);
        for n in [1, 2, 7, 8, 31] {
            let p = g.padded(n);
            assert_eq!(p % 2, g.residue);
            assert!(4 * p as i64 - 16 >= 4 * n as i64, "covers the image");
        }
    }

    #[test]
    fn mismatched_branches_are_reported() {
        let e = geometry(
            "7767517\n4 4\nInput in 0 1 a\nSplit s 1 2 a b c\nConvolution c1 1 1 b d 0=3 1=3 6=81\nBinaryOp add 2 1 c d out 0=0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no input size"), "{e}");
    }
}
