# SPDX-License-Identifier: MPL-2.0
"""The torch half of the peer: an ONNX graph (planned by onnx_graph for one input shape) as a torch module, and the
measurements of torch_peer.py (eager and compiled timing, the checks against ONNX Runtime)."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

import onnx_graph as og

MODE = "max-autotune-no-cudagraphs"
# Largest absolute differences accepted (outputs are RGB in 0..1): eager fp32 against ONNX Runtime fp32 (TF32 off)
# checks the conversion itself; the others allow for fp16 rounding and TF32 convolutions.
LIMITS = {"fp32": {"eager": 1e-3, "compiled": 5e-2}, "fp16": {"eager": 1e-1, "compiled": 1e-1}}

# Small weights are also kept as Python values, for the ops that read them as parameters (Resize scales, Clip
# bounds, Pad values); larger ones are only tensors.
SMALL = 64


class Step:
    """One tensor op of the plan: where each input comes from (a tensor computed earlier: `env` name; a weight:
    its index; or absent) and the op's parameters, all decided before the run."""

    def __init__(self, node, plan: og.Plan, weight_index: dict, graph: og.Graph):
        self.op = node.op_type
        self.output = node.output[0]
        self.label = og.node_label(node)
        self.attrs = og.attributes(node)
        self.refs = []  # (name in env or None, weight index or None)
        self.values = []  # the input's value when known before the run (Python lists), else None
        for name in node.input:
            known = plan.known.get(name, graph.weights.get(name))
            small = known is not None and np.size(known) <= SMALL
            self.values.append(np.asarray(known).tolist() if small or name in plan.known else None)
            if name == "" or name in plan.known:
                self.refs.append((None, None))
            elif name in weight_index:
                self.refs.append((None, weight_index[name]))
            else:
                self.refs.append((name, None))
        self.in_shapes = [plan.shapes.get(n) for n in node.input]
        self.out_shape = plan.shapes[self.output]
        PREPARE.get(self.op, lambda s, n: None)(self, node)

    def value(self, i):
        if i >= len(self.values) or self.values[i] is None:
            raise og.GraphError(f"{self.label}: input {i} must be known before the run")
        return self.values[i]


def prepare_conv(s: Step, node):
    p = og.conv_pads(node, s.attrs, 2)
    s.stride = tuple(s.attrs.get("strides", [1, 1]))
    s.dilation = tuple(s.attrs.get("dilations", [1, 1]))
    s.groups = s.attrs.get("group", 1)
    s.output_padding = tuple(s.attrs.get("output_padding", [0, 0]))
    s.symmetric = p[0] == p[2] and p[1] == p[3]
    s.padding = (p[0], p[1]) if s.symmetric else (0, 0)
    s.pre_pad = None if s.symmetric else (p[1], p[3], p[0], p[2])
    s.crop = None if s.symmetric else (slice(p[0], -p[2] or None), slice(p[1], -p[3] or None))


def prepare_resize(s: Step, node):
    s.mode, s.align_corners = og.resize_mode(node, s.attrs)
    scales = s.values[2] if len(s.values) > 2 else None
    s.scale_factor, s.size = og.resize_spatial(node, s.in_shapes[0], s.out_shape, scales)
    if s.scale_factor is not None and s.align_corners:
        s.scale_factor = None  # align_corners maps corners to corners: only the size matters


def prepare_pad(s: Step, node):
    axes = s.value(3) if len(s.values) > 3 and s.values[3] is not None else None
    amounts = og.pad_amounts(node, s.value(1), len(s.in_shapes[0]), axes)
    s.mode = s.attrs.get("mode", "constant")
    s.pad, s.crop = og.torch_pad(node, amounts, s.mode)
    s.torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[s.mode]
    value = s.values[2] if len(s.values) > 2 and s.values[2] is not None else 0.0
    s.fill = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0


def prepare_slice(s: Step, node):
    args = [s.values[i] if len(s.values) > i else None for i in range(1, 5)]
    if args[0] is None or args[1] is None:
        raise og.GraphError(f"{s.label}: starts and ends must be known before the run")
    s.slices = og.onnx_slices(len(s.in_shapes[0]), *args)
    if any(sl.step is not None and sl.step < 0 for sl in s.slices):
        raise og.GraphError(f"{s.label}: negative Slice steps are not supported")


def prepare_prelu(s: Step, node):
    s.channelwise = og.channelwise(s.in_shapes[1], s.in_shapes[0][1]) and len(s.in_shapes[0]) == 4


def prepare_clip(s: Step, node):
    lo = s.values[1] if len(s.values) > 1 and s.values[1] is not None else s.attrs.get("min")
    hi = s.values[2] if len(s.values) > 2 and s.values[2] is not None else s.attrs.get("max")
    s.bounds = tuple(None if v is None else float(np.asarray(v).reshape(-1)[0]) for v in (lo, hi))


def prepare_depth_to_space(s: Step, node):
    s.block = s.attrs["blocksize"]
    s.dcr = s.attrs.get("mode", "DCR") == "DCR"


def prepare_cast(s: Step, node):
    np_type = og.helper.tensor_dtype_to_np_dtype(s.attrs["to"])
    # float to float keeps the precision the module runs at
    s.dtype = None if np.issubdtype(np_type, np.floating) else getattr(torch, np.dtype(np_type).name)


PREPARE = {"Conv": prepare_conv, "ConvTranspose": prepare_conv, "Resize": prepare_resize, "Pad": prepare_pad,
           "Slice": prepare_slice, "PRelu": prepare_prelu, "Clip": prepare_clip,
           "DepthToSpace": prepare_depth_to_space, "Cast": prepare_cast}


def conv(s, t):
    x = t[0] if s.pre_pad is None else F.pad(t[0], s.pre_pad)
    return F.conv2d(x, t[1], t[2] if len(t) > 2 else None, s.stride, s.padding, s.dilation, s.groups)


def conv_transpose(s, t):
    y = F.conv_transpose2d(t[0], t[1], t[2] if len(t) > 2 else None, s.stride, s.padding, s.output_padding,
                           s.groups, s.dilation)
    return y if s.crop is None else y[..., s.crop[0], s.crop[1]]


def operand(s, t, i):
    """Input `i` as a tensor, or as a Python number when it is a known scalar."""
    if t[i] is not None:
        return t[i]
    v = s.value(i)
    if np.size(v) == 1:
        return float(np.asarray(v).reshape(-1)[0])
    raise og.GraphError(f"{s.label}: input {i} is a constant tensor that is neither a weight nor a scalar")


def reduce(f):
    def run(s, t):
        out = operand(s, t, 0)
        for i in range(1, len(t)):
            out = f(out, operand(s, t, i))
        return out
    return run


def prelu(s, t):
    if s.channelwise:
        return F.prelu(t[0], t[1].reshape(-1))
    return torch.where(t[0] >= 0, t[0], t[0] * t[1])


def depth_to_space(s, t):
    if not s.dcr:
        return F.pixel_shuffle(t[0], s.block)
    n, c, h, w = t[0].shape
    b = s.block
    return t[0].reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def resize(s, t):
    if s.scale_factor is not None:
        return F.interpolate(t[0], scale_factor=s.scale_factor, mode=s.mode, align_corners=s.align_corners,
                             recompute_scale_factor=False)
    return F.interpolate(t[0], size=s.size, mode=s.mode, align_corners=s.align_corners)


def pad(s, t):
    y = F.pad(t[0], s.pad, mode=s.torch_mode, value=s.fill if s.torch_mode == "constant" else None)
    return y if s.crop is None else y[s.crop]


def clip(s, t):
    lo, hi = s.bounds
    return torch.clamp(t[0], lo, hi)


def mod(s, t):
    f = torch.fmod if s.attrs.get("fmod", 0) else torch.remainder
    return f(operand(s, t, 0), operand(s, t, 1))


def spatial_dims(x):
    return tuple(range(2, x.dim()))


TORCH_OPS = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "PRelu": prelu,
    "LeakyRelu": lambda s, t: F.leaky_relu(t[0], s.attrs.get("alpha", 0.01)),
    "Relu": lambda s, t: F.relu(t[0]),
    "Sigmoid": lambda s, t: torch.sigmoid(t[0]),
    "Tanh": lambda s, t: torch.tanh(t[0]),
    "Softplus": lambda s, t: F.softplus(t[0]),
    "HardSigmoid": lambda s, t: torch.clamp(s.attrs.get("alpha", 0.2) * t[0] + s.attrs.get("beta", 0.5), 0, 1),
    "Clip": clip,
    "Add": reduce(lambda a, b: a + b),
    "Sub": reduce(lambda a, b: a - b),
    "Mul": reduce(lambda a, b: a * b),
    "Div": reduce(lambda a, b: a / b),
    "Pow": reduce(lambda a, b: a ** b),
    "Sum": reduce(lambda a, b: a + b),
    "Max": reduce(torch.maximum),
    "Min": reduce(torch.minimum),
    "Mod": mod,
    "DepthToSpace": depth_to_space,
    "Resize": resize,
    "Concat": lambda s, t: torch.cat([x for x in t if x is not None], dim=s.attrs["axis"]),
    "Pad": pad,
    "Slice": lambda s, t: t[0][s.slices],
    "GlobalAveragePool": lambda s, t: t[0].mean(dim=spatial_dims(t[0]), keepdim=True),
    "GlobalMaxPool": lambda s, t: t[0].amax(dim=spatial_dims(t[0]), keepdim=True),
    "Identity": lambda s, t: t[0],
    "Dropout": lambda s, t: t[0],
    "Cast": lambda s, t: t[0] if s.dtype is None else t[0].to(s.dtype),
}
assert set(TORCH_OPS) == og.TENSOR_OPS, set(TORCH_OPS) ^ og.TENSOR_OPS


class Weights(torch.nn.Module):
    """A graph's float weights as parameters of one dtype (4-D ones channels_last)."""

    def __init__(self, graph: og.Graph, dtype, device, channels_last=True):
        super().__init__()
        self.index = {name: i for i, name in enumerate(graph.weights)}
        params = []
        for w in graph.weights.values():
            t = torch.tensor(np.asarray(w), device=device, dtype=dtype)
            if channels_last and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            params.append(torch.nn.Parameter(t, requires_grad=False))
        self.params = torch.nn.ParameterList(params)


class SizedGraph(torch.nn.Module):
    """The graph for one input shape: only tensor ops, every shape-dependent value fixed beforehand."""

    def __init__(self, graph: og.Graph, weights: Weights, input_shape):
        super().__init__()
        self.plan = og.plan(graph, input_shape)
        self.weights = weights
        self.input = graph.input
        self.output = graph.output
        self.steps = [Step(n, self.plan, weights.index, graph) for n in self.plan.steps]
        self.fns = [TORCH_OPS[s.op] for s in self.steps]
        # each value is dropped after its last reader, as a runtime frees it (holding all of x4plus's at 720p takes
        # 77 GB: more than an H100 has)
        last = {}
        for i, step in enumerate(self.steps):
            for name, _ in step.refs:
                if name is not None:
                    last[name] = i
        self.frees = [[] for _ in self.steps]
        for name, i in last.items():
            if name != self.output:
                self.frees[i].append(name)

    def forward(self, x):
        env = {self.input: x}
        params = self.weights.params
        for step, fn, frees in zip(self.steps, self.fns, self.frees):
            t = [env[name] if name is not None else (params[w] if w is not None else None) for name, w in step.refs]
            env[step.output] = fn(step, t)
            for name in frees:
                del env[name]
        return env[self.output]


# --- measurements ------------------------------------------------------------------------------------------------

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def timed(fn, x, warmup: int, runs: int, device) -> float:
    """Mean ms per call over `runs` calls after `warmup` (CUDA events on the GPU; the wall clock on the CPU)."""
    for _ in range(warmup):
        fn(x)
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(runs):
            fn(x)
        return (time.perf_counter() - start) * 1e3 / runs
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        fn(x)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / runs


def device_input(image: np.ndarray, dtype, device):
    return torch.from_numpy(image).to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)


def max_abs_diff(a, b) -> float:
    a = a.float().cpu().numpy() if isinstance(a, torch.Tensor) else a
    b = b.float().cpu().numpy() if isinstance(b, torch.Tensor) else b
    if a.shape != b.shape:
        raise og.GraphError(f"output shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def eager_check(graph, path, precision, check_size, device) -> dict:
    """Eager fp32 (TF32 off) and eager at `precision` against ONNX Runtime's CPU output on the check image."""
    w, h = check_size
    image = og.check_image(w, h)
    reference = og.onnx_runtime_cpu(path, image)
    out = {}
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for name in sorted({"fp32", precision}, key=["fp32", "fp16"].index):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = name != "fp32"
        try:
            module = SizedGraph(graph, Weights(graph, DTYPES[name], device), image.shape)
            with torch.inference_mode():
                out[name] = max_abs_diff(module(device_input(image, DTYPES[name], device)), reference)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return out


def measure_model(path, args, sizes, device) -> tuple[list[dict], list[str]]:
    """Each size of one model: eager and compiled timing; and the failed checks."""
    graph = og.Graph.load(path)
    name = path.stem
    check = eager_check(graph, path, args.precision, args.check_size, device)
    limits = LIMITS[args.precision]
    print(f"{name}: {len(graph.nodes)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(graph.inventory.items()))})")
    print(f"{name}: check {args.check_size[0]}x{args.check_size[1]} against ONNX Runtime CPU: max |diff| eager fp32 "
          f"{check['fp32']:.2e}, eager {args.precision} {check[args.precision]:.2e}")
    failures = []
    # a float16 model file runs in fp16 on ONNX Runtime too: then the reference itself has fp16 rounding
    reference = "fp16" if graph.input_type == og.onnx.TensorProto.FLOAT16 else "fp32"
    for what, diff, limit in [("eager fp32", check["fp32"], LIMITS[reference]["eager"]),
                              (f"eager {args.precision}", check[args.precision], limits["eager"])]:
        if not diff <= limit:
            failures.append(f"{name}: {what} differs from ONNX Runtime by {diff:.3g} (limit {limit:g})")
    dtype = DTYPES[args.precision]
    weights = Weights(graph, dtype, device)
    results = []
    for w, h in sizes:
        module = SizedGraph(graph, weights, (1, 3, h, w))
        x = device_input(og.check_image(w, h), dtype, device)
        row = {"model": name, "path": str(path), "precision": args.precision, "width": w, "height": h,
               "warmup": args.warmup, "runs": args.runs, "check_size": f"{args.check_size[0]}x{args.check_size[1]}",
               "max_abs_diff_eager_fp32": check["fp32"], "max_abs_diff_eager": check[args.precision],
               "compiled_ms": None, "compiled_fps": None, "compile_s": None, "max_abs_diff_compiled": None}
        with torch.inference_mode():
            eager_out = module(x)
            if tuple(eager_out.shape) != module.plan.output_shape:
                raise og.GraphError(f"{name}: torch output {tuple(eager_out.shape)}, the plan said "
                                    f"{module.plan.output_shape}")
            row["eager_ms"] = timed(module, x, args.warmup, args.runs, device)
            row["eager_fps"] = 1e3 / row["eager_ms"]
            if not args.no_compile:
                compiled = torch.compile(module, mode=MODE, dynamic=False)
                start = time.perf_counter()
                compiled_out = compiled(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                row["compile_s"] = time.perf_counter() - start
                row["max_abs_diff_compiled"] = max_abs_diff(compiled_out, eager_out)
                row["compiled_ms"] = timed(compiled, x, args.warmup, args.runs, device)
                row["compiled_fps"] = 1e3 / row["compiled_ms"]
                if not row["max_abs_diff_compiled"] <= limits["compiled"]:
                    failures.append(f"{name} {w}x{h}: compiled differs from eager by "
                                    f"{row['max_abs_diff_compiled']:.3g} (limit {limits['compiled']:g})")
        line = f"{name} {args.precision} {w}x{h}: eager {row['eager_ms']:.2f} ms ({row['eager_fps']:.1f}/s)"
        if row["compiled_ms"] is not None:
            line += (f", torch.compile {row['compiled_ms']:.2f} ms ({row['compiled_fps']:.1f}/s, compiled in "
                     f"{row['compile_s']:.1f} s, max |diff| vs eager {row['max_abs_diff_compiled']:.2e})")
        print(line, flush=True)
        results.append(row)
    return results, failures


def measure_all(paths, args, sizes) -> dict:
    """Every model at every size, on `args.device`: the report torch_peer.py writes."""
    if args.device == "cpu":
        device = torch.device("cpu")
        gpu = "cpu"
    else:
        if not torch.cuda.is_available():
            raise og.GraphError("CUDA is not available to PyTorch (give --device cpu to run eager on the CPU)")
        device = torch.device(f"cuda:{int(args.device)}")
        gpu = torch.cuda.get_device_name(device)
        torch.cuda.set_device(device)
    # one compilation per model and size, all kept (the default limit is 8 per code object)
    limit = next(n for n in ("recompile_limit", "cache_size_limit") if hasattr(torch._dynamo.config, n))
    setattr(torch._dynamo.config, limit, max(64, 2 * len(paths) * len(sizes)))
    results, failures = [], []
    for path in paths:
        rows, failed = measure_model(path, args, sizes, device)
        results += rows
        failures += failed
    return {"torch": torch.__version__, "gpu": gpu, "device": str(device), "mode": MODE,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32, "results": results, "failures": failures}
