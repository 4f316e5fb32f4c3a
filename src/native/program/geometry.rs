// SPDX-License-Identifier: MPL-2.0
//! What the lowering needs for graphs whose image size changes inside: the importers' shape arithmetic
//! (`Shape → Slice → Add/Sub/Mul/Mod → Concat`, computing a `Pad`'s pads and the final crop from the input's size),
//! evaluated symbolically as affine functions of the input's height and width; and a transposed convolution
//! rewritten as a 3×3 convolution whose outputs are the upsampled phases, for a [`super::Step::Shuffle`].

use std::collections::HashMap;

use crate::native::graph::{Match, attr, attr_int, attr_ints, attr_str, floats};
use crate::onnx::{NodeProto, TensorProto, tensor_i64};

/// `h · H + w · W + c` for an input of height `H` and width `W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Affine {
    pub h: i64,
    pub w: i64,
    pub c: i64,
}

impl Affine {
    pub fn constant(c: i64) -> Self {
        Affine { h: 0, w: 0, c }
    }

    fn as_constant(self) -> Option<i64> {
        (self.h == 0 && self.w == 0).then_some(self.c)
    }

    fn add(self, o: Affine) -> Option<Affine> {
        Some(Affine { h: self.h.checked_add(o.h)?, w: self.w.checked_add(o.w)?, c: self.c.checked_add(o.c)? })
    }

    fn neg(self) -> Option<Affine> {
        Some(Affine { h: self.h.checked_neg()?, w: self.w.checked_neg()?, c: self.c.checked_neg()? })
    }

    fn times(self, k: i64) -> Option<Affine> {
        Some(Affine { h: self.h.checked_mul(k)?, w: self.w.checked_mul(k)?, c: self.c.checked_mul(k)? })
    }
}

/// A 1-D integer tensor of the shape arithmetic; `None` entries are unknown (the batch size).
pub(super) type ShapeValue = Vec<Option<Affine>>;

/// The integers of a shape value, when every element is a constant.
pub(super) fn constants(v: &[Option<Affine>]) -> Option<Vec<i64>> {
    v.iter().map(|e| e.and_then(Affine::as_constant)).collect()
}

/// The shape values computed so far, by name, for input sizes that are multiples of `align`.
pub(super) struct Shapes<'m> {
    values: HashMap<&'m str, ShapeValue>,
    align: i64,
    /// The class a size-dependent `Mod` (or a scale) asked for: a multiple of `align`.
    wanted: i64,
}

impl<'m> Shapes<'m> {
    /// For input heights and widths that are multiples of `align` (at least 1).
    pub fn new(align: i64) -> Self {
        Shapes { values: HashMap::new(), align: align.max(1), wanted: align.max(1) }
    }

    /// The least class that takes what was asked for (`align` when nothing was).
    pub fn wanted(&self) -> i64 {
        self.wanted
    }

    /// Asks for sizes that are multiples of `k` as well.
    pub fn want(&mut self, k: i64) {
        let k = k.unsigned_abs();
        if k > 1 {
            let wanted = self.wanted.unsigned_abs();
            self.wanted = i64::try_from(wanted / super::gcd(wanted, k) * k).unwrap_or(i64::MAX);
        }
    }

    /// The multiple of which the input's sizes are.
    pub fn align(&self) -> i64 {
        self.align
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn insert(&mut self, name: &'m str, value: ShapeValue) {
        self.values.insert(name, value);
    }

    /// `name` as a shape value: one computed before, or an int64 constant.
    pub fn operand(&self, name: &str, init: &dyn Fn(&str) -> Match<&'m TensorProto>) -> Option<ShapeValue> {
        if let Some(v) = self.values.get(name) {
            return Some(v.clone());
        }
        let t = init(name).ok()?;
        Some(tensor_i64(t)?.into_iter().map(|c| Some(Affine::constant(c))).collect())
    }

    /// Evaluates shape node `node` (Slice, Add, Sub, Mul, Mod, Concat over shape values), or says why it cannot.
    pub fn eval(&mut self, node: &'m NodeProto, init: &dyn Fn(&str) -> Match<&'m TensorProto>) -> Match<()> {
        let name = &node.name;
        let op = node.op_type.as_str();
        // by ONNX position: an optional input left out in the middle ("") must not shift the ones after it
        let args: Vec<Option<ShapeValue>> = node
            .input
            .iter()
            .map(|i| match i.as_str() {
                "" => Ok(None),
                i => {
                    self.operand(i, init).map(Some).ok_or_else(|| format!("{op} node {name}: {i} is not a known shape"))
                }
            })
            .collect::<Match<_>>()?;
        let unsupported = || format!("{op} node {name}: shape arithmetic the lowering does not follow");
        let align = self.align;
        let wanted = std::cell::Cell::new(None);
        let overflows = || format!("{op} node {name}: it overflows a 64-bit integer");
        let value = match (op, &args[..]) {
            ("Slice", [Some(data), Some(starts), Some(ends), rest @ ..]) if rest.len() <= 2 => {
                let (starts, ends) =
                    (constants(starts).ok_or_else(unsupported)?, constants(ends).ok_or_else(unsupported)?);
                let (axes, steps) = (rest.first().and_then(Option::as_ref), rest.get(1).and_then(Option::as_ref));
                let axes_ok = axes.is_none_or(|a| constants(a).is_some_and(|a| a == [0] || a == [-1]));
                let steps_ok = steps.is_none_or(|s| constants(s).is_some_and(|s| s == [1]));
                let ([start], [end], true, true) = (&starts[..], &ends[..], axes_ok, steps_ok) else {
                    return Err(unsupported());
                };
                let n = data.len() as i64;
                let clamp = |i: i64| if i < 0 { (i + n).clamp(0, n) } else { i.min(n) } as usize;
                let (a, b) = (clamp(*start), clamp(*end));
                data[a..b.max(a)].to_vec()
            }
            ("Add" | "Sub" | "Mul" | "Mod", [Some(a), Some(b)]) => {
                let n = a.len().max(b.len());
                let at = |v: &ShapeValue, i: usize| if v.len() == 1 { v[0] } else { v.get(i).copied().flatten() };
                if (a.len() != n && a.len() != 1) || (b.len() != n && b.len() != 1) {
                    return Err(unsupported());
                }
                // ONNX Mod of integers: fmod 0 (the default) takes the divisor's sign, like Python's %; fmod 1
                // the dividend's, like C's fmod
                let fmod = attr_int(node, "fmod", 0);
                if op == "Mod" && fmod != 0 && fmod != 1 {
                    return Err(format!("Mod node {name}: fmod {fmod} is neither 0 nor 1"));
                }
                // an unknown element (the batch size) stays unknown; anything else is computed or refused
                let computed: Match<ShapeValue> = (0..n)
                    .map(|i| {
                        let (Some(x), Some(y)) = (at(a, i), at(b, i)) else { return Ok(None) };
                        let v = match op {
                            "Add" => x.add(y).ok_or_else(overflows)?,
                            "Sub" => y.neg().and_then(|y| x.add(y)).ok_or_else(overflows)?,
                            "Mul" => match (x.as_constant(), y.as_constant()) {
                                (_, Some(k)) => x.times(k).ok_or_else(overflows)?,
                                (Some(k), _) => y.times(k).ok_or_else(overflows)?,
                                // a product of sizes is not affine in them
                                _ => return Err(unsupported()),
                            },
                            _ => match (x.as_constant(), y.as_constant()) {
                                (_, Some(0)) => return Err(format!("Mod node {name}: division by zero")),
                                // x mod ±1 is 0 whatever x is (and i64::MIN % -1 would overflow)
                                (_, Some(1 | -1)) => Affine::constant(0),
                                // h · H + w · W + c mod k is c mod k when k divides h · align and w · align
                                (None, Some(k)) if (x.h * align) % k == 0 && (x.w * align) % k == 0 => {
                                    Affine::constant(python_mod(x.c, k, fmod).ok_or_else(overflows)?)
                                }
                                (Some(x), Some(k)) => Affine::constant(python_mod(x, k, fmod).ok_or_else(overflows)?),
                                (None, Some(k)) => {
                                    wanted.set(Some(k));
                                    return Err(format!(
                                        "Mod node {name}: of the image's size by {k}, which is a constant only for \
                                         sizes in a class"
                                    ));
                                }
                                _ => return Err(unsupported()),
                            },
                        };
                        Ok(Some(v))
                    })
                    .collect::<Match<_>>();
                if let Some(k) = wanted.get() {
                    self.want(k);
                }
                computed?
            }
            ("Concat", parts) if attr_int(node, "axis", 0) == 0 && parts.iter().all(Option::is_some) => {
                parts.iter().flatten().flatten().copied().collect()
            }
            _ => return Err(unsupported()),
        };
        if op != "Slice" && value.iter().any(Option::is_none) {
            return Err(format!(
                "{op} node {name}: its result depends on the batch size, which the lowering cannot know"
            ));
        }
        self.values.insert(&node.output[0], value);
        Ok(())
    }
}

/// ONNX's integer `x mod k`: with `fmod` 0 the divisor's sign (Python's %), with 1 the dividend's (C's fmod).
fn python_mod(x: i64, k: i64, fmod: i64) -> Option<i64> {
    let r = x.checked_rem(k)?;
    let python = fmod == 0 && r != 0 && (r < 0) != (k < 0);
    Some(if python { r + k } else { r })
}

/// A transposed convolution of kernel `K`, stride `S` and padding `P` whose taps all fall in a 3×3 window (waifu2x
/// UpConv7's and Real-CUGAN up2x's 4/2/3, Real-CUGAN up3x's 5/3/2) as a 3×3 convolution with `S² · out` outputs,
/// phase `(ry, rx)` at outputs `(S · ry + rx) · out ..`: output pixel `S · m + r − lead` of the transposed convolution
/// (along each axis) is phase `r` of the 3×3 convolution centred on input pixel `m`, with `lead = (S − K + 2P) / 2`.
/// Window position `d` of phase `r` reads input `m + d − 1` with tap `S · (1 − d) + r − lead + P` (when in `0..K`).
/// The output is `S · n − 2 · lead` pixels for `n` in: the phases centred on input pixels `lead / S .. n − lead / S`,
/// less `lead % S` pixels on each side.
pub(super) struct PhaseConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub factor: u32,
    pub lead: u32,
    /// ONNX Conv layout `[S² · out][in][3][3]`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Tap of the `kernel`-tap transposed kernel that window position `d` (0..3) of phase `r` uses, if any.
fn tap(kernel: i64, stride: i64, lead: i64, pad: i64, r: i64, d: i64) -> Option<usize> {
    let k = stride * (1 - d) + r - lead + pad;
    usize::try_from(k).ok().filter(|&k| k < kernel as usize)
}

/// `lead` of a transposed convolution of `kernel`, `stride` and `pad` if each of its taps falls in one window
/// position of one phase (it is a 3×3 convolution of its phases).
fn phase_lead(kernel: i64, stride: i64, pad: i64) -> Option<i64> {
    let twice = stride - kernel + 2 * pad;
    if !(2..=4).contains(&stride) || twice < 0 || twice % 2 != 0 {
        return None;
    }
    let lead = twice / 2;
    let mut used = vec![0; kernel as usize];
    for r in 0..stride {
        for d in 0..3 {
            if let Some(k) = tap(kernel, stride, lead, pad, r, d) {
                used[k] += 1;
            }
        }
    }
    used.iter().all(|&n| n == 1).then_some(lead)
}

pub(super) fn phase_conv<'m>(node: &NodeProto, init: impl Fn(&str) -> Match<&'m TensorProto>) -> Match<PhaseConv> {
    let name = &node.name;
    let [_, w, b] = &node.input[..] else {
        return Err(format!("ConvTranspose {name} has no bias"));
    };
    let wt = init(w)?;
    let dims: Vec<usize> =
        wt.dims.iter().map(|&d| usize::try_from(d).ok().filter(|&d| (1..=4096).contains(&d)).unwrap_or(0)).collect();
    let [cin @ 1..=4096, cout @ 1..=1024, k @ 2..=9, k2] = dims[..] else {
        return Err(format!(
            "ConvTranspose {name} weights {:?} are not square with 1 to 4096 input channels and 1 to 1024 output \
             channels",
            wt.dims
        ));
    };
    if k2 != k {
        return Err(format!("ConvTranspose {name} weights {:?} are not square", wt.dims));
    }
    // the weights say what the kernel is: an attribute saying otherwise is a graph this reads wrong
    let auto_pad = attr_str(node, "auto_pad", "NOTSET");
    if auto_pad != "NOTSET" {
        return Err(format!("ConvTranspose {name} has auto_pad {auto_pad}; only explicit pads (NOTSET) are taken"));
    }
    if let Some(ks) = attr_ints(node, "kernel_shape").filter(|ks| ks[..] != [k as i64, k as i64]) {
        return Err(format!("ConvTranspose {name} has kernel_shape {ks:?}, its weights are {k}x{k}"));
    }
    let strides = attr_ints(node, "strides").unwrap_or(vec![1, 1]);
    let pads = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
    // one stride and one padding for both axes, all the attributes at their defaults but those
    let axes = match (&strides[..], &pads[..]) {
        (&[sy, sx], &[p, ..]) if sy == sx && pads == [p; 4] => Some((sy, p)),
        _ => None,
    };
    let plain = attr_int(node, "group", 1) == 1
        && attr_ints(node, "dilations").unwrap_or(vec![1, 1]) == [1, 1]
        && attr(node, "output_padding").is_none()
        && attr(node, "output_shape").is_none();
    let phases = axes.filter(|_| plain).and_then(|(s, p)| Some((s, p, phase_lead(k as i64, s, p)?)));
    let Some((stride, pad, lead)) = phases else {
        return Err(format!(
            "ConvTranspose {name} (kernel {k}, strides {strides:?}, pads {pads:?}) is not a 3x3 convolution of its \
             phases (as kernel 4, stride 2, padding 3 or kernel 5, stride 3, padding 2)"
        ));
    };
    let weights = floats(wt)?;
    let bias = floats(init(b)?)?;
    if weights.len() != cin * cout * k * k || bias.len() != cout {
        return Err(format!("ConvTranspose {name}: weights or bias do not match {:?}", wt.dims));
    }
    let f = stride as usize;
    let taps = |r: usize, d: usize| tap(k as i64, stride, lead, pad, r as i64, d as i64);
    let mut phase = vec![0.0f32; f * f * cout * cin * 9];
    for ry in 0..f {
        for rx in 0..f {
            for co in 0..cout {
                let o = (f * ry + rx) * cout + co;
                for ci in 0..cin {
                    for dy in 0..3 {
                        for dx in 0..3 {
                            if let (Some(ky), Some(kx)) = (taps(ry, dy), taps(rx, dx)) {
                                phase[((o * cin + ci) * 3 + dy) * 3 + dx] =
                                    weights[((ci * cout + co) * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(PhaseConv {
        in_channels: cin,
        out_channels: cout,
        factor: stride as u32,
        lead: lead as u32,
        weights: phase,
        bias: bias.repeat(f * f),
    })
}
