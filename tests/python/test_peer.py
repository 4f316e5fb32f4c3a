# SPDX-License-Identifier: MPL-2.0
"""The PyTorch peer of vfupscale-bench (tools/peer): its ONNX graph walking without torch — the op inventory, the
values evaluated before the run and the shape of every tensor, checked against ONNX Runtime on every installed
model — and, where torch is importable, the converted module against ONNX Runtime."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import MODELS_DIR, ROOT

sys.path.insert(0, str(ROOT / "tools/peer"))
import onnx_graph as og  # noqa: E402

SCRIPT = ROOT / "tools/peer/torch_peer.py"
MODELS = sorted(MODELS_DIR.glob("*.onnx"))


def ort_output_shape(path: Path, h: int, w: int) -> tuple:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = og.check_image(w, h)
    return session.run(None, {session.get_inputs()[0].name: x})[0].shape


def test_every_installed_model_is_covered():
    assert len(MODELS) >= 5, f"models are installed by scripts/setup.sh --test in {MODELS_DIR}"
    for path in MODELS:
        graph = og.Graph.load(path)
        assert graph.unsupported() == [], path.name
        assert sum(graph.inventory.values()) == len(onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_planned_output_shape_is_onnx_runtimes(path):
    # odd sizes exercise the padding and alignment arithmetic our importer puts in front of unpadded networks
    graph = og.Graph.load(path)
    for h, w in [(19, 27)]:
        p = og.plan(graph, (1, 3, h, w))
        assert p.output_shape == ort_output_shape(path, h, w)
        assert all(n.op_type in og.TENSOR_OPS for n in p.steps)
        assert not any(n.op_type == "Shape" for n in p.steps), "shapes are known before the run"


def alignment_model(mode="edge") -> onnx.ModelProto:
    """The importer's front end in small: pad by 2 and up to a multiple of 4 from the input's own shape, then a
    2x2 convolution; input [1, 3, H, W]."""
    i64 = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Slice", ["shape", "two", "four"], ["hw"]),
        helper.make_node("Add", ["hw", "twice_pad"], ["base"]),
        helper.make_node("Sub", ["zero2", "base"], ["short"]),
        helper.make_node("Mod", ["short", "align"], ["extra"]),
        helper.make_node("Add", ["extra", "pad2"], ["end"]),
        helper.make_node("Concat", ["begin", "zero2", "end"], ["pads"], axis=0),
        helper.make_node("Pad", ["input", "pads"], ["padded"], mode=mode),
        helper.make_node("Conv", ["padded", "w"], ["output"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [i64("two", [2]), i64("four", [4]), i64("twice_pad", [4, 4]), i64("zero2", [0, 0]), i64("align", [4, 4]),
             i64("pad2", [2, 2]), i64("begin", [0, 0, 2, 2]),
             helper.make_tensor("w", TensorProto.FLOAT, [5, 3, 2, 2], np.linspace(-1, 1, 60, dtype=np.float32))]
    graph = helper.make_graph(nodes, "align", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                             [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_shape_arithmetic_is_evaluated_before_the_run():
    model = alignment_model()
    graph = og.Graph(model)
    p = og.plan(graph, (1, 3, 7, 10))
    # 7 + 4 = 11 → 1 more to 12; 10 + 4 = 14 → 2 more to 16
    assert p.known["pads"].tolist() == [0, 0, 2, 2, 0, 0, 3, 4]
    assert [n.op_type for n in p.steps] == ["Pad", "Conv"]
    assert p.shapes["padded"] == (1, 3, 12, 16) and p.output_shape == (1, 5, 6, 8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.zeros((1, 3, 7, 10), np.float32)})[0]
    assert out.shape == p.output_shape


def test_unsupported_ops_and_bad_graphs_are_named():
    model = alignment_model()
    model.graph.node.append(helper.make_node("LSTM", ["output"], ["lstm"]))
    graph = og.Graph(model, "m.onnx")
    assert graph.unsupported() == ["LSTM"]
    with pytest.raises(og.GraphError, match=r"m.onnx: ops the peer cannot run: LSTM"):
        og.plan(graph, (1, 3, 8, 8))
    model = alignment_model()
    model.graph.node[-1].attribute.append(helper.make_attribute("group", 2))
    with pytest.raises(og.GraphError, match=r"Conv node 'output': 3 input channels, the weights take 6"):
        og.plan(og.Graph(model), (1, 3, 8, 8))
    conv = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"], name="c", kernel_shape=[3, 3])], "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.zeros(108, np.float32))])
    with pytest.raises(og.GraphError, match=r"Conv node 'c': input \(1, 3, 2, 9\) is too small \(output \[0, 7\]\)"):
        og.plan(og.Graph(helper.make_model(conv)), (1, 3, 2, 9))


def test_static_values_follow_onnx():
    pad_node = helper.make_node("Pad", ["x", "pads"], ["y"], name="p")
    assert og.int_div(np.array([-7, 7, -8]), np.array([2, -2, 2])).tolist() == [-3, -3, -4]
    assert og.onnx_slices(3, [1, -2], [100, 10**18], [2, 0]) == (slice(-2, 10**18, 1), slice(None), slice(1, 100, 1))
    assert og.pad_amounts(pad_node, [1, 2, 3, 4], 4, axes=[-1, 2]) == [(0, 0), (0, 0), (2, 4), (1, 3)]
    pad, crop = og.torch_pad(pad_node, [(0, 0), (0, 0), (2, -1), (-3, 4)], "edge")
    assert pad == (0, 4, 2, 0)  # W first, then H; the negative ones crop afterwards
    x = np.arange(5 * 6).reshape(1, 1, 5, 6)
    padded = np.pad(x, [(0, 0), (0, 0), (2, 0), (0, 4)], mode="edge")
    assert padded[crop].shape == (1, 1, 6, 7)
    assert og.torch_pad(pad_node, [(0, 0), (1, 0), (1, 1), (1, 1)], "constant")[0] == (1, 1, 1, 1, 1, 0, 0, 0)
    with pytest.raises(og.GraphError, match="Pad node 'p': reflect padding of the batch or channel axis"):
        og.torch_pad(pad_node, [(0, 0), (1, 0), (0, 0), (0, 0)], "reflect")
    assert og.channelwise((64, 1, 1), 64) and og.channelwise((1,), 64) and not og.channelwise((64,), 64)


def resize_node(**attrs):
    return helper.make_node("Resize", ["x", "", "scales"], ["y"], name="r", **attrs)


def test_resize_modes_map_to_interpolate_or_are_refused():
    assert og.resize_mode(resize_node(mode="nearest", coordinate_transformation_mode="asymmetric",
                                      nearest_mode="floor"), {"mode": "nearest",
                                                              "coordinate_transformation_mode": "asymmetric",
                                                              "nearest_mode": "floor"}) == ("nearest", None)
    assert og.resize_mode(resize_node(), {"mode": "cubic", "cubic_coeff_a": -0.75}) == ("bicubic", False)
    assert og.resize_mode(resize_node(), {"mode": "linear", "coordinate_transformation_mode": "align_corners"}) == (
        "bilinear", True)
    for attrs, why in [({"mode": "cubic", "cubic_coeff_a": -0.5}, "cubic_coeff_a -0.75"),
                       ({"mode": "nearest"}, "half_pixel/round_prefer_floor"),
                       ({"mode": "linear", "antialias": 1}, "antialiased"),
                       ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "not supported")]:
        node = resize_node()
        with pytest.raises(og.GraphError, match=why) as e:
            og.resize_mode(node, attrs)
        assert "Resize node 'r'" in str(e.value)


def run_peer(*args, python=sys.executable):
    return subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_the_script_refuses_missing_and_unsupported_models_before_importing_torch(tmp_path):
    r = run_peer("no-such-model", "--device", "cpu")
    assert r.returncode == 1 and "model no-such-model: not installed" in r.stderr, r.stderr
    model = alignment_model()
    model.graph.node.append(helper.make_node("LSTM", ["output"], ["lstm"]))
    path = tmp_path / "lstm.onnx"
    onnx.save(model, path)
    r = run_peer(str(path), "--device", "cpu")
    assert r.returncode == 1 and "ops the peer cannot run: LSTM" in r.stderr, r.stderr
    r = run_peer(str(path), "--sizes", "12by8")
    assert r.returncode == 2 and "'12by8' is not WIDTHxHEIGHT" in r.stderr, r.stderr


def test_the_peer_runs_eager_against_onnx_runtime(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "peer.json"
    names = ["realesr-animevideov3-x2", "waifu2x-upconv7-x2"]
    r = run_peer(*names, "--device", "cpu", "--precision", "fp32", "--sizes", "40x24,31x17", "--warmup", "1",
                 "--runs", "1", "--check-size", "33x21", "--no-compile", "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["failures"] == []
    assert [(row["model"], row["width"], row["height"]) for row in report["results"]] == [
        (n, w, h) for n in names for w, h in [(40, 24), (31, 17)]]
    for row in report["results"]:
        assert row["max_abs_diff_eager_fp32"] <= 1e-3 and row["eager_ms"] > 0, row
        assert row["compiled_ms"] is None
