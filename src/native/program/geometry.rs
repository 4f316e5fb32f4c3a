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

/// A transposed convolution, kernel 4, stride 2, padding 3 (waifu2x UpConv7's last layer), as a 3×3 convolution
/// with `4 · out` outputs, phase `(ry, rx)` at outputs `(2 · ry + rx) · out ..`: output pixel `(2m + ry, 2n + rx)` of
/// the transposed convolution is that phase of the 3×3 convolution centred on input pixel `(m + 1, n + 1)`.
/// Along one axis, output `2m` takes input `m` with tap 3 and `m + 1` with tap 1; output `2m + 1` takes `m + 1` with
/// tap 2 and `m + 2` with tap 0.
pub(super) struct PhaseConv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// ONNX Conv layout `[4 · out][in][3][3]`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Tap of the 4-tap transposed kernel that window position `d` (0..3) of phase `r` uses, if any.
fn tap(r: usize, d: usize) -> Option<usize> {
    match (r, d) {
        (0, 0) => Some(3),
        (0, 1) => Some(1),
        (1, 1) => Some(2),
        (1, 2) => Some(0),
        _ => None,
    }
}

pub(super) fn phase_conv<'m>(node: &NodeProto, init: impl Fn(&str) -> Match<&'m TensorProto>) -> Match<PhaseConv> {
    let name = &node.name;
    let [_, w, b] = &node.input[..] else {
        return Err(format!("ConvTranspose {name} has no bias"));
    };
    let wt = init(w)?;
    let dims: Vec<usize> =
        wt.dims.iter().map(|&d| usize::try_from(d).ok().filter(|&d| (1..=4096).contains(&d)).unwrap_or(0)).collect();
    let [cin @ 1..=4096, cout @ 1..=1024, 4, 4] = dims[..] else {
        return Err(format!(
            "ConvTranspose {name} weights {:?} are not 4x4 with 1 to 4096 input channels and 1 to 1024 output channels",
            wt.dims
        ));
    };
    // the weights say what the kernel is: an attribute saying otherwise is a graph this reads wrong
    let auto_pad = attr_str(node, "auto_pad", "NOTSET");
    if auto_pad != "NOTSET" {
        return Err(format!("ConvTranspose {name} has auto_pad {auto_pad}; only explicit pads (NOTSET) are taken"));
    }
    if let Some(k) = attr_ints(node, "kernel_shape").filter(|k| k[..] != [4, 4]) {
        return Err(format!("ConvTranspose {name} has kernel_shape {k:?}, its weights are 4x4"));
    }
    if attr_int(node, "group", 1) != 1
        || attr_ints(node, "strides") != Some(vec![2, 2])
        || attr_ints(node, "pads") != Some(vec![3, 3, 3, 3])
        || attr_ints(node, "dilations").unwrap_or(vec![1, 1]) != vec![1, 1]
        || attr(node, "output_padding").is_some()
        || attr(node, "output_shape").is_some()
    {
        return Err(format!("ConvTranspose {name} is not kernel 4, stride 2, padding 3"));
    }
    let weights = floats(wt)?;
    let bias = floats(init(b)?)?;
    if weights.len() != cin * cout * 16 || bias.len() != cout {
        return Err(format!("ConvTranspose {name}: weights or bias do not match {:?}", wt.dims));
    }
    let mut phase = vec![0.0f32; 4 * cout * cin * 9];
    for ry in 0..2 {
        for rx in 0..2 {
            for co in 0..cout {
                let o = (2 * ry + rx) * cout + co;
                for ci in 0..cin {
                    for dy in 0..3 {
                        for dx in 0..3 {
                            if let (Some(ky), Some(kx)) = (tap(ry, dy), tap(rx, dx)) {
                                phase[((o * cin + ci) * 3 + dy) * 3 + dx] =
                                    weights[((ci * cout + co) * 4 + ky) * 4 + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(PhaseConv { in_channels: cin, out_channels: cout, weights: phase, bias: bias.repeat(4) })
}
