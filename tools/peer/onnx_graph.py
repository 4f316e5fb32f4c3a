# SPDX-License-Identifier: MPL-2.0
"""The ONNX side of the PyTorch peer, with no torch in it: the graph, the op inventory, and a plan for one input
shape that evaluates everything known before the run (initializers, constants, `Shape` and the integer arithmetic
on it: the padding and alignment our importer puts in front of unpadded networks) with numpy and gives every other
value its shape. The torch module then runs only the tensor ops, with those values as Python numbers, so nothing
shape-dependent happens inside `torch.compile`'s graph.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops evaluated with numpy when all their inputs are known before the run.
STATIC_OPS = {"Identity", "Cast", "Shape", "Slice", "Concat", "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min",
              "Sum", "Neg", "Unsqueeze", "Squeeze", "Gather", "Constant"}
# Ops the torch module runs on tensors (see torch_peer.TORCH_OPS), with the shape rule below for each.
TENSOR_OPS = {"Conv", "ConvTranspose", "PRelu", "LeakyRelu", "Relu", "Sigmoid", "Tanh", "Softplus", "HardSigmoid",
              "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mod", "DepthToSpace", "Resize",
              "Concat", "Pad", "Slice", "GlobalAveragePool", "GlobalMaxPool", "Identity", "Dropout", "Cast"}
SUPPORTED_OPS = STATIC_OPS | TENSOR_OPS

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


class GraphError(ValueError):
    """A model the peer cannot run, with the node and the reason."""


@dataclass(frozen=True)
class Shaped:
    """A tensor known only by its shape until the run."""
    shape: tuple[int, ...]


def node_label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {node.name or node.output[0]!r}"


def attributes(node: onnx.NodeProto) -> dict:
    """The node's attributes as Python values (strings decoded)."""
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


class Graph:
    """A model's main graph: its nodes in order, its float weights (initializers and float `Constant`s, which the
    torch module holds as parameters) and its other constants (integer initializers and constants, known before the
    run)."""

    def __init__(self, model: onnx.ModelProto, path: str = "<memory>"):
        self.path = path
        g = model.graph
        if len(g.input) - len({i.name for i in g.initializer} & {i.name for i in g.input}) != 1 or len(g.output) != 1:
            raise GraphError(f"{path}: the peer runs models with one input and one output")
        inits = {i.name for i in g.initializer}
        self.input = next(i.name for i in g.input if i.name not in inits)
        self.output = g.output[0].name
        self.input_type = g.input[[i.name for i in g.input].index(self.input)].type.tensor_type.elem_type
        self.weights: dict[str, np.ndarray] = {}
        self.constants: dict[str, np.ndarray] = {}
        for t in g.initializer:
            self._add_constant(t.name, numpy_helper.to_array(t), t.data_type)
        self.nodes = []
        for n in g.node:
            if n.op_type == "Constant":
                value = attributes(n)
                if "value" not in value:
                    raise GraphError(f"{path}: {node_label(n)}: only Constant nodes with a tensor value are supported")
                t = next(a.t for a in n.attribute if a.name == "value")
                self._add_constant(n.output[0], value["value"], t.data_type)
            else:
                self.nodes.append(n)
        self.inventory = collections.Counter(n.op_type for n in g.node)

    def _add_constant(self, name: str, value: np.ndarray, data_type: int):
        (self.weights if data_type in FLOAT_TYPES else self.constants)[name] = value

    @classmethod
    def load(cls, path) -> "Graph":
        try:
            model = onnx.load(str(path))
        except Exception as e:  # onnx raises DecodeError, OSError, …
            raise GraphError(f"{path}: not a readable ONNX model ({e})") from e
        return cls(model, str(path))

    def unsupported(self) -> list[str]:
        """Op types of this graph the peer cannot run, sorted."""
        return sorted(set(self.inventory) - SUPPORTED_OPS)

    def constant(self, name: str):
        """The value of a weight or constant, as numpy."""
        if name in self.constants:
            return self.constants[name]
        return self.weights.get(name)


# --- values known before the run ---------------------------------------------------------------------------------

def int_div(a, b):
    """ONNX integer Div: truncation toward zero (like C), not numpy's floor."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))


def onnx_slices(ndim: int, starts, ends, axes=None, steps=None) -> tuple[slice, ...]:
    """ONNX Slice's inputs as one Python slice per axis (ONNX clamps out-of-range bounds, as Python slicing does)."""
    axes = list(range(len(starts))) if axes is None else [int(a) + ndim if a < 0 else int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    out = [slice(None)] * ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise GraphError("Slice step 0")
        out[axis] = slice(int(start), int(end), step)
    return tuple(out)


def static_eval(node: onnx.NodeProto, ins: list, attrs: dict) -> np.ndarray:
    """`node` on numpy inputs (or, for Shape, on any value with a shape)."""
    op = node.op_type
    if op == "Shape":
        shape = np.array(ins[0].shape, dtype=np.int64)
        return shape[attrs.get("start", 0):attrs.get("end", len(shape))]
    if op in ("Identity",):
        return ins[0]
    if op == "Cast":
        return ins[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if op == "Slice":
        return ins[0][onnx_slices(ins[0].ndim, *(list(v) if v is not None else None for v in ins[1:5]))]
    if op == "Concat":
        return np.concatenate(ins, axis=attrs["axis"])
    if op == "Unsqueeze":
        axes = ins[1] if len(ins) > 1 else attrs["axes"]
        return np.expand_dims(ins[0], tuple(int(a) for a in axes))
    if op == "Squeeze":
        axes = ins[1] if len(ins) > 1 else attrs.get("axes")
        return np.squeeze(ins[0], None if axes is None else tuple(int(a) for a in axes))
    if op == "Gather":
        return np.take(ins[0], ins[1], axis=attrs.get("axis", 0))
    if op == "Neg":
        return -ins[0]
    a = ins[0]
    integer = np.issubdtype(a.dtype, np.integer)
    if op == "Add":
        return a + ins[1]
    if op == "Sub":
        return a - ins[1]
    if op == "Mul":
        return a * ins[1]
    if op == "Div":
        return int_div(a, ins[1]) if integer else a / ins[1]
    if op == "Mod":
        return np.fmod(a, ins[1]) if attrs.get("fmod", 0) else np.mod(a, ins[1])
    if op in ("Max", "Min", "Sum"):
        f = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}[op]
        out = ins[0]
        for v in ins[1:]:
            out = f(out, v)
        return out
    raise GraphError(f"{node_label(node)}: cannot be evaluated before the run")


# --- shapes of the values computed in the run --------------------------------------------------------------------

def conv_pads(node, attrs, spatial: int) -> list[int]:
    """Explicit ONNX pads (all begins, then all ends); auto_pad other than NOTSET/VALID is refused."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return [0] * 2 * spatial
    if auto != "NOTSET":
        raise GraphError(f"{node_label(node)}: auto_pad {auto} is not supported (explicit pads only)")
    return list(attrs.get("pads", [0] * 2 * spatial))


def conv_shape(node, x, w, attrs, transpose=False) -> tuple[int, ...]:
    if len(x) != 4:
        raise GraphError(f"{node_label(node)}: only 2-D convolutions are supported, input is {len(x)}-D")
    k = list(attrs.get("kernel_shape", w[2:]))
    s = list(attrs.get("strides", [1, 1]))
    d = list(attrs.get("dilations", [1, 1]))
    p = conv_pads(node, attrs, 2)
    g = attrs.get("group", 1)
    if transpose:
        if "output_shape" in attrs:
            raise GraphError(f"{node_label(node)}: output_shape is not supported (give pads)")
        op = list(attrs.get("output_padding", [0, 0]))
        hw = [s[i] * (x[2 + i] - 1) + op[i] + d[i] * (k[i] - 1) + 1 - p[i] - p[2 + i] for i in range(2)]
        channels = w[1] * g
    else:
        if x[1] != w[1] * g:
            raise GraphError(f"{node_label(node)}: {x[1]} input channels, the weights take {w[1] * g}")
        hw = [(x[2 + i] + p[i] + p[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
        channels = w[0]
    if min(hw) <= 0:
        raise GraphError(f"{node_label(node)}: input {x} is too small (output {hw})")
    return (x[0], channels, *hw)


def pad_amounts(node, pads, ndim: int, axes=None) -> list[tuple[int, int]]:
    """ONNX Pad's `pads` (begins then ends, for `axes` or all axes) as (begin, end) per axis."""
    pads = [int(p) for p in pads]
    axes = list(range(ndim)) if axes is None else [int(a) + ndim if a < 0 else int(a) for a in axes]
    if len(pads) != 2 * len(axes):
        raise GraphError(f"{node_label(node)}: {len(pads)} pads for {len(axes)} axes")
    out = [(0, 0)] * ndim
    for i, axis in enumerate(axes):
        out[axis] = (pads[i], pads[i + len(axes)])
    return out


def resize_output(node, x, scales, sizes) -> tuple[int, ...]:
    if isinstance(scales, Shaped) or isinstance(sizes, Shaped):
        raise GraphError(f"{node_label(node)}: scales and sizes must be known before the run, not computed in it")
    if sizes is not None and len(sizes):
        return tuple(int(v) for v in sizes)
    if scales is None or not len(scales):
        raise GraphError(f"{node_label(node)}: neither scales nor sizes are known before the run")
    return tuple(int(np.floor(d * float(s))) for d, s in zip(x, scales))


def broadcast(node, shapes) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError as e:
        raise GraphError(f"{node_label(node)}: shapes {list(shapes)} do not broadcast") from e


def tensor_shape(node, ins: list, attrs: dict) -> tuple[int, ...]:
    """The shape of `node`'s output, from its inputs' shapes (and the inputs known before the run)."""
    op = node.op_type
    shape = lambda i: tuple(ins[i].shape)  # noqa: E731
    if op == "Conv":
        return conv_shape(node, shape(0), shape(1), attrs)
    if op == "ConvTranspose":
        return conv_shape(node, shape(0), shape(1), attrs, transpose=True)
    if op in ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus", "HardSigmoid", "Clip", "Identity", "Dropout",
              "Cast"):
        return shape(0)
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mod", "PRelu"):
        return broadcast(node, [tuple(v.shape) for v in ins if v is not None])
    if op == "DepthToSpace":
        n, c, h, w = shape(0)
        b = attrs["blocksize"]
        if c % (b * b):
            raise GraphError(f"{node_label(node)}: {c} channels are not a multiple of {b}²")
        return (n, c // (b * b), h * b, w * b)
    if op == "Resize":
        return resize_output(node, shape(0), *(ins[i] if len(ins) > i else None for i in (2, 3)))
    if op == "Concat":
        axis = attrs["axis"] % len(shape(0))
        out = list(shape(0))
        out[axis] = sum(v.shape[axis] for v in ins)
        return tuple(out)
    if op == "Pad":
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else None
        amounts = pad_amounts(node, ins[1], len(shape(0)), axes)
        return tuple(d + b + e for d, (b, e) in zip(shape(0), amounts))
    if op == "Slice":
        parts = onnx_slices(len(shape(0)), *(list(v) if v is not None else None for v in ins[1:5]))
        return tuple(len(range(*s.indices(d))) for s, d in zip(parts, shape(0)))
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return (*shape(0)[:2], *([1] * (len(shape(0)) - 2)))
    raise GraphError(f"{node_label(node)}: the peer has no rule for {op}")


# --- the plan for one input shape ------------------------------------------------------------------------------

@dataclass
class Plan:
    """What the run of one input shape needs: the nodes that compute tensors (in order), every value known before
    the run (as numpy), and the shape of every tensor."""
    input_shape: tuple[int, ...]
    output: str
    steps: list = field(default_factory=list)
    known: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[self.output]


def plan(graph: Graph, input_shape) -> Plan:
    """Walks `graph` for an input of `input_shape`, node by node: nodes whose inputs are all known before the run
    (integer constants, shapes, results of such nodes) are evaluated now; the others become the run's steps."""
    missing = graph.unsupported()
    if missing:
        raise GraphError(f"{graph.path}: ops the peer cannot run: {', '.join(missing)}")
    p = Plan(tuple(int(d) for d in input_shape), graph.output)
    p.known = dict(graph.constants)
    p.shapes = {graph.input: p.input_shape, **{n: tuple(w.shape) for n, w in graph.weights.items()}}
    for node in graph.nodes:
        attrs = attributes(node)
        # weights are passed as their numpy values (the shape rules read small ones: Resize scales, Clip bounds)
        ins = []
        for name in node.input:
            if name == "":
                ins.append(None)
            elif name in p.known:
                ins.append(p.known[name])
            elif name in graph.weights:
                ins.append(graph.weights[name])
            elif name in p.shapes:
                ins.append(Shaped(p.shapes[name]))
            else:
                raise GraphError(f"{graph.path}: {node_label(node)}: input {name!r} is not computed before it")
        known = all(name == "" or name in p.known for name in node.input)
        try:
            if node.op_type in STATIC_OPS and (known or node.op_type == "Shape"):
                p.known[node.output[0]] = static_eval(node, ins, attrs)
                continue
            if len(node.output) != 1:
                raise GraphError(f"{node_label(node)}: only single-output nodes are supported")
            p.shapes[node.output[0]] = tensor_shape(node, ins, attrs)
        except GraphError as e:
            raise GraphError(f"{graph.path}: {e}") from None
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise GraphError(f"{graph.path}: {node_label(node)}: inputs or attributes it cannot take ({e!r})") from e
        p.steps.append(node)
    if graph.output not in p.shapes or graph.output in graph.weights:
        raise GraphError(f"{graph.path}: the output {graph.output!r} does not depend on the input: nothing to run")
    return p


# --- the reference ------------------------------------------------------------------------------------------------

def check_image(width: int, height: int) -> np.ndarray:
    """A deterministic RGB test image [1, 3, h, w] in 0..1: gradients, edges and noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    planes = [0.5 + 0.3 * np.sin(x * 0.35 + c) * np.cos(y * 0.25) + 0.15 * (((x // 7 + y // 5) % 2) - 0.5)
              for c in range(3)]
    image = np.stack(planes)[None] + rng.normal(0, 0.03, (1, 3, height, width))
    return np.clip(image, 0, 1).astype(np.float32)


def onnx_runtime_cpu(path: Path, image: np.ndarray) -> np.ndarray:
    """ONNX Runtime's CPU output for `image` (fed at the model's input precision), as float32."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return session.run(None, {inp.name: image.astype(dtype)})[0].astype(np.float32)


# --- ONNX attributes as the arguments of the torch calls (pure Python, so they are tested without torch) ---------

def resize_mode(node, attrs) -> tuple[str, bool | None]:
    """The `torch.nn.functional.interpolate` mode and `align_corners` that compute what this Resize computes."""
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if attrs.get("antialias", 0):
        raise GraphError(f"{node_label(node)}: antialiased Resize is not supported")
    if mode == "nearest":
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        if (ctm, nearest) == ("asymmetric", "floor"):
            return "nearest", None
        if (ctm, nearest) == ("half_pixel", "round_prefer_ceil"):
            return "nearest-exact", None
        raise GraphError(f"{node_label(node)}: nearest Resize with {ctm}/{nearest} is not supported "
                         "(asymmetric/floor or half_pixel/round_prefer_ceil)")
    if mode in ("linear", "cubic"):
        if mode == "cubic" and (attrs.get("cubic_coeff_a", -0.75) != -0.75 or attrs.get("exclude_outside", 0)):
            raise GraphError(f"{node_label(node)}: cubic Resize needs cubic_coeff_a -0.75 and exclude_outside 0 "
                             "(PyTorch's bicubic)")
        torch_mode = "bilinear" if mode == "linear" else "bicubic"
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            return torch_mode, False
        if ctm == "align_corners":
            return torch_mode, True
        raise GraphError(f"{node_label(node)}: {mode} Resize with {ctm} is not supported")
    raise GraphError(f"{node_label(node)}: Resize mode {mode!r} is not supported")


def resize_spatial(node, in_shape, out_shape, scales) -> tuple[tuple[float, ...] | None, tuple[int, ...]]:
    """(scale factors or None, output size) of the spatial axes; batch and channels must stay."""
    if tuple(in_shape[:2]) != tuple(out_shape[:2]) or len(in_shape) != 4:
        raise GraphError(f"{node_label(node)}: only spatial 2-D Resize is supported ({in_shape} -> {out_shape})")
    if scales is not None and len(scales):
        return tuple(float(s) for s in scales[2:]), tuple(out_shape[2:])
    return None, tuple(out_shape[2:])


def torch_pad(node, amounts: list[tuple[int, int]], mode: str) -> tuple[tuple[int, ...], tuple[slice, ...] | None]:
    """ONNX pad amounts per axis as `torch.nn.functional.pad`'s argument (last axis first) and, for negative
    amounts (cropping), the slices to apply afterwards."""
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise GraphError(f"{node_label(node)}: Pad mode {mode!r} is not supported")
    if torch_mode != "constant" and any(a != (0, 0) for a in amounts[:2]):
        raise GraphError(f"{node_label(node)}: {mode} padding of the batch or channel axis is not supported")
    # torch pads only the spatial axes in the non-constant modes (and needs all of them then)
    padded = amounts if torch_mode == "constant" else amounts[2:]
    pad = []
    for begin, end in reversed(padded):
        pad += [max(begin, 0), max(end, 0)]
    if all(b >= 0 and e >= 0 for b, e in amounts):
        return tuple(pad), None
    crop = tuple(slice(-min(b, 0), min(e, 0) or None) for b, e in amounts)
    return tuple(pad), crop


def channelwise(slope_shape, channels: int) -> bool:
    """Whether a PRelu slope of this shape is one value per channel (or one value) of a 4-D NCHW tensor."""
    dims = list(slope_shape)
    while dims and dims[0] == 1 and len(dims) > 3:
        dims.pop(0)
    return int(np.prod(dims, dtype=np.int64)) == 1 or (dims[:1] == [channels] and all(d == 1 for d in dims[1:])
                                                       and len(dims) == 3)
