# SPDX-License-Identifier: MPL-2.0
"""Geometry lab: does the margin scheme of src/native/program.rs (every convolution padded over its whole buffer, a
value = buffer + inset) carry over to Real-CUGAN's UNets (stride-2 convolutions, 2x2 transposed convolutions,
squeeze-and-excitation, skip adds of crops)? A numpy model of the scheme, float64, in which every pixel the scheme
gets wrong is poisoned with NaN (convolutions pad with NaN, a shifted operand is NaN where it has no pixels), so a
wrong pixel reaching the output shows; compared with ONNX Runtime's CPU provider. docs/PERFORMANCE.md "Next" has the
result. Buffers here are `scale * H + extra` pixels (`margin` holds extra / 2 rounded down; only `inset` matters for
the tensor).

    target/test-venv/bin/python tools/kernel-lab/margin_scheme.py realcugan-up2x   (after scripts/setup.sh --test)

Status (2026-12-04): see the last lines it prints for each model (sizes of the importer's class: multiples of its
Mod's divisor, 2 or 4); the shape arithmetic is evaluated on the run's sizes, a Shape being the tensor's.
"""
import os
import sys
from fractions import Fraction as F
import numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper

name = sys.argv[1] if len(sys.argv) > 1 else "realcugan-up2x"
models = os.environ.get("VFUPSCALE_MODEL_DIR") or os.path.join(
    os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "vfupscale", "models")
path = os.path.join(models, f"{name}.onnx")
m = onnx.load(path)
g = m.graph
init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
attrs = lambda n: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}

class V:  # a value: buffer [C, Hb, Wb], scale, margin, inset
    def __init__(s, a, scale, margin, inset): s.a, s.scale, s.margin, s.inset = a, scale, margin, inset
    def tensor(s):
        i = s.inset
        return s.a[:, i:s.a.shape[1] - i, i:s.a.shape[2] - i]

def conv_same(a, w, b, pad_value=np.nan):
    """3x3 (any odd k) stride-1 convolution over the whole buffer, padded with pad_value."""
    k = w.shape[2]; p = k // 2
    x = np.pad(a, ((0, 0), (p, p), (p, p)), constant_values=pad_value)
    H, W = a.shape[1:]
    out = np.zeros((w.shape[0], H, W)) + b[:, None, None]
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("oi,ihw->ohw", w[:, :, dy, dx], x[:, dy:dy + H, dx:dx + W])
    return out

def run(x):
    H, W = x.shape[1:]
    vals = {"input": V(x.astype(np.float64), F(1), 0, 0)}
    shapes = {}
    for n in g.node:
        op, ins, out = n.op_type, list(n.input), n.output[0]
        at = attrs(n)
        img = [vals.get(i) for i in ins]
        # the shape arithmetic, on this run's sizes: a Shape is the tensor's (not the buffer's)
        if op == "Shape":
            t = img[0].tensor()
            shapes[out] = np.array([1, *t.shape], dtype=np.int64)
            continue
        if op in ("Slice", "Add", "Sub", "Mod", "Concat", "Mul") and all(i in shapes or i in init or i == "" for i in ins) \
                and any(i in shapes for i in ins):
            arg = lambda i: shapes[i] if i in shapes else init[i].astype(np.int64)
            a = [arg(i) for i in ins if i != ""]
            if op == "Slice":
                shapes[out] = a[0][int(a[1][0]):int(a[2][0])]
            elif op == "Concat":
                shapes[out] = np.concatenate(a)
            else:
                shapes[out] = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Mod": np.mod}[op](a[0], a[1])
            continue
        if op == "Pad":
            # the importer's padding: 18 (Real-CUGAN) or what the graph's constant says, to the even size
            v = img[0]
            # the leading pads are the first constant of the Concat that builds them ([0, 0, p, p]); the end pads
            # are p more the alignment, 0 for the even sizes run here
            pads = shapes[ins[1]]
            assert pads[2] == pads[3] == pads[6] == pads[7], f"{out}: pads {pads} (a size outside the class)"
            pad = int(pads[2])
            vals[out] = V(np.pad(v.a, ((0, 0), (pad, pad), (pad, pad)), mode="edge"), v.scale, v.margin + pad, v.inset)
        elif op == "Conv":
            v, w, b = img[0], init[ins[1]], init[ins[2]] if len(ins) > 2 else 0
            k, st = at.get("kernel_shape", [w.shape[2]])[0], at.get("strides", [1, 1])[0]
            if k == 3 and st == 1 and at.get("pads", [0] * 4) == [0, 0, 0, 0]:
                vals[out] = V(conv_same(v.a, w, b), v.scale, v.margin, v.inset + 1)
            elif k == 1:  # the SE block's 1x1 on a pooled [C, 1, 1]
                vals[out] = V(np.einsum("oi,ihw->ohw", w[:, :, 0, 0], v.a) + b[:, None, None], v.scale, 0, 0)
            elif k == 2 and st == 2:
                # pairs from the tensor's parity: the buffer from pixel `off`, floor((size - off) / 2) outputs
                off = v.inset % 2
                a = v.a[:, off:, off:]
                n = a.shape[1] // 2, a.shape[2] // 2
                o = np.zeros((w.shape[0], *n)) + b[:, None, None]
                for dy in range(2):
                    for dx in range(2):
                        o += np.einsum("oi,ihw->ohw", w[:, :, dy, dx], a[:, dy:2 * n[0]:2, dx:2 * n[1]:2])
                vals[out] = V(o, v.scale / 2, (v.margin - off) // 2, (v.inset - off) // 2)
            else:
                raise SystemExit(f"conv {out}: {at}")
        elif op == "ConvTranspose":
            v, w, b = img[0], init[ins[1]], init[ins[2]]
            k, st, pads = at["kernel_shape"][0], at["strides"][0], at.get("pads", [0] * 4)
            a = v.a
            if k == 2 and st == 2:
                o = np.zeros((w.shape[1], 2 * a.shape[1], 2 * a.shape[2])) + b[:, None, None]
                for dy in range(2):
                    for dx in range(2):
                        o[:, dy::2, dx::2] += np.einsum("io,ihw->ohw", w[:, :, dy, dx], a)
                vals[out] = V(o, v.scale * 2, 2 * v.margin, 2 * v.inset)
            elif pads[0] == pads[1] == pads[2] == pads[3] and k != 4:
                # any other stride and padding over the whole buffer: output pixel s * i + t - p from input pixel i;
                # outputs nearer the tensor's edge than the kernel reaches draw on pixels outside it (NaN there)
                p = pads[0]
                Hb, Wb = a.shape[1:]
                full = np.zeros((w.shape[1], (Hb - 1) * st + k, (Wb - 1) * st + k))
                for dy in range(k):
                    for dx in range(k):
                        full[:, dy:dy + (Hb - 1) * st + 1:st, dx:dx + (Wb - 1) * st + 1:st] += np.einsum(
                            "io,ihw->ohw", w[:, :, dy, dx], a)
                o = full[:, p:full.shape[1] - p, p:full.shape[2] - p] + b[:, None, None]
                vals[out] = V(o, v.scale * st, st * v.margin, st * v.inset)
            elif k == 4 and st == 2 and pads == [3, 3, 3, 3]:
                # as UpConv7's lowering: the 3x3 convolution of the 4 phases, centred one pixel in (NaN-padded)
                Hb, Wb = a.shape[1:]
                xp = np.pad(a, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
                o = np.full((w.shape[1], 2 * Hb, 2 * Wb), np.nan)
                taps = {(0, 0): 3, (0, 1): 1, (1, 1): 2, (1, 2): 0}
                for ry in range(2):
                    for rx in range(2):
                        acc = np.zeros((w.shape[1], Hb, Wb)) + b[:, None, None]
                        for dy in range(3):
                            for dx in range(3):
                                if (ry, dy) in taps and (rx, dx) in taps:
                                    ky, kx = taps[(ry, dy)], taps[(rx, dx)]
                                    acc += np.einsum("io,ihw->ohw", w[:, :, ky, kx], xp[:, dy:dy + Hb, dx:dx + Wb])
                        o[:, ry::2, rx::2] = acc
                # phase (m, n) of the transposed convolution is the window centred on input pixel (m + 1, n + 1):
                # buffer pixel 2j + r holds output 2(j - 1) + r: the output tensor starts two pixels in, and the
                # tensor's own inset (i + 1 on the input, as it loses a ring) doubles
                vals[out] = V(o, v.scale * 2, 2 * v.margin, 2 * (v.inset + 1))
            else:
                raise SystemExit(f"convtranspose {out}: {at}")
        elif op == "LeakyRelu":
            v = img[0]; s = at.get("alpha", 0.01)
            vals[out] = V(np.where(v.a >= 0, v.a, s * v.a), v.scale, v.margin, v.inset)
        elif op == "Relu":
            v = img[0]; vals[out] = V(np.maximum(v.a, 0), v.scale, v.margin, v.inset)
        elif op == "Sigmoid":
            v = img[0]; vals[out] = V(1 / (1 + np.exp(-v.a)), v.scale, v.margin, v.inset)
        elif op == "GlobalAveragePool":
            v = img[0]; t = v.tensor()
            vals[out] = V(t.mean(axis=(1, 2), keepdims=True), v.scale, 0, 0)
        elif op == "Mul" and img[1] is not None and img[1].a.shape[1:] == (1, 1):
            v = img[0]; vals[out] = V(v.a * img[1].a, v.scale, v.margin, v.inset)
        elif op == "Slice" and img[0] is not None and ins[2] not in init:
            # a crop the shape arithmetic computes: by the same amount on every side (an inset), or the final one
            v = img[0]; t = v.tensor()
            arg = lambda i: shapes[i] if i in shapes else init[i].astype(np.int64)
            st, en = arg(ins[1]), arg(ins[2])
            axes = list(arg(ins[3])) if len(ins) > 3 and ins[3] else [0, 1, 2, 3][-len(st):]
            assert axes == [2, 3], (out, axes)
            en = [min(int(e), n) for e, n in zip(en, t.shape[1:])]
            cuts = {int(st[0]), int(st[1]), t.shape[1] - en[0], t.shape[2] - en[1]}
            if len(cuts) == 1:
                vals[out] = V(v.a, v.scale, v.margin, v.inset + cuts.pop())
            else:
                vals[out] = V(t[:, int(st[0]):en[0], int(st[1]):en[1]], v.scale, 0, 0)
        elif op == "DepthToSpace":
            v = img[0]; r = at["blocksize"]; c, hb, wb = v.a.shape
            assert at.get("mode", b"DCR") == b"CRD"
            o = v.a.reshape(c // (r * r), r, r, hb, wb).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), hb * r, wb * r)
            vals[out] = V(o, v.scale * r, r * v.margin, r * v.inset)
        elif op == "Resize":
            v = img[0]; f = int(init[ins[2]][2]); assert v.inset == 0 and v.margin == 0
            vals[out] = V(v.a.repeat(f, axis=1).repeat(f, axis=2), v.scale * f, 0, 0)
        elif op == "Slice" and img[0] is not None and out != g.output[0].name:
            v = img[0]; st, en = init[ins[1]].astype(int), init[ins[2]].astype(int)
            assert st[0] == st[1] == -en[0] == -en[1], (out, st, en)
            vals[out] = V(v.a, v.scale, v.margin, v.inset + int(st[0]))
        elif op in ("Add", "Sum") and all(i is not None for i in img) and img[0].margin == img[1].margin == 0 \
                and img[0].inset == img[1].inset == 0:
            vals[out] = V(img[0].a + img[1].a, img[0].scale, 0, 0)
        elif op in ("Add", "Sum") and all(i is not None for i in img):
            # the result in the layout of the operand whose tensor starts further in; the other shifted into it, NaN
            # where it has no pixels
            a, b2 = sorted(img, key=lambda v: -v.inset)
            ta, tb = a.tensor().shape, b2.tensor().shape
            assert a.scale == b2.scale and ta == tb, (out, [(v.scale, v.margin, v.inset, v.a.shape) for v in img])
            d = a.inset - b2.inset
            shifted = np.full_like(a.a, np.nan)
            hh, ww = min(b2.a.shape[1], a.a.shape[1] - d), min(b2.a.shape[2], a.a.shape[2] - d)
            shifted[:, d:d + hh, d:d + ww] = b2.a[:, :hh, :ww]
            vals[out] = V(a.a + shifted, a.scale, a.margin, a.inset)
            print(f"  {out}: add, layouts {[(str(v.scale), v.a.shape[1], v.inset) for v in img]}")
        elif op == "Slice" and out == g.output[0].name:
            v = img[0]; t = v.tensor(); s = int(v.scale * 1)
            vals[out] = V(t[:, : int(v.scale * H), : int(v.scale * W)], v.scale, 0, 0)
        else:
            raise SystemExit(f"{op} {out}: not handled ({[type(i) for i in img]})")
    return vals[g.output[0].name]

rng = np.random.default_rng(1)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
# the importer pads to a multiple of its Mod's divisor: sizes of that class, both residues of the next multiple
mod = next((n for n in g.node if n.op_type == "Mod"), None)
align = int(init[mod.input[1]][0]) if mod is not None else 1
for (h, w) in [(20, 24), (20 + align, 24 + align)]:
    x = rng.random((3, h, w), dtype=np.float32)
    ref = sess.run(None, {"input": x[None]})[0][0]
    y = run(x)
    t = y.tensor()
    print(name, (h, w), "scale", y.scale, "out", t.shape, "ref", ref.shape, "NaN", int(np.isnan(t).sum()),
          "max diff", float(np.nanmax(np.abs(t - ref))) if t.shape == ref.shape else "shape differs")
