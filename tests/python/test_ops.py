"""Each ncnn layer type the importer converts, checked on its own against ncnn's implementation of it.

Every test writes a small ncnn model (a .param text and a .bin of random weights) around one layer, converts it
with `vfupscale-model import-ncnn`, and compares ONNX Runtime's result with ncnn's on a random image (with the
same border handling, see conftest.ncnn_like_onnx). Layers that need something to act on are fed by a 1x1
convolution; every model ends in 3 channels, as the model contract requires.
"""
import subprocess
import struct

import numpy as np
import pytest

from conftest import geometry, ncnn_like_onnx, run_onnx, tool

TAG_F16 = 0x01306B47
RNG = np.random.default_rng(1234)


class Net:
    """Builds an ncnn model layer by layer."""

    def __init__(self, channels=3):
        self.layers = [f"Input input 0 1 data 0=0 1=0 2={channels}"]
        self.blobs = {"data"}
        self.weights = bytearray()
        self.n = 0

    def blob(self):
        self.n += 1
        return f"b{self.n}"

    def add(self, kind, inputs, params="", n_out=1):
        outs = [self.blob() for _ in range(n_out)]
        self.layers.append(f"{kind} l{len(self.layers)} {len(inputs)} {n_out} {' '.join(inputs)} {' '.join(outs)} {params}")
        self.blobs.update(outs)
        return outs[0] if n_out == 1 else outs

    def tagged(self, values, fp16=False):
        values = np.asarray(values, np.float32).ravel()
        if fp16:
            data = values.astype(np.float16).tobytes()
            self.weights += struct.pack("<I", TAG_F16) + data + b"\0" * (-len(data) % 4)
        else:
            self.weights += struct.pack("<I", 0) + values.tobytes()

    def raw(self, values):
        self.weights += np.asarray(values, np.float32).ravel().tobytes()

    def conv(self, x, c_in, c_out, k=1, params="", bias=True, deconv=False, fp16=False, group=1, act="", kh=None):
        kind = ("Deconvolution" if deconv else "Convolution") + ("DepthWise" if group > 1 else "")
        size = c_out * c_in // group * k * (k if kh is None else kh)
        extra = (f" 7={group}" if group > 1 else "") + (f" 11={kh}" if kh is not None else "")
        out = self.add(kind, [x], f"0={c_out} 1={k} 5={int(bias)} 6={size}{extra} {params} {act}".strip())
        self.tagged(RNG.normal(0, 0.3, size), fp16)
        if bias:
            self.raw(RNG.normal(0, 0.1, c_out))
        return out

    def write(self, path):
        text = "7767517\n" + f"{len(self.layers)} {len(self.blobs)}\n" + "\n".join(self.layers) + "\n"
        param = path / "net.param"
        param.write_text(text)
        param.with_suffix(".bin").write_bytes(bytes(self.weights))
        return param


def check(net, tmp_path, size=(17, 23), tol=2e-4):
    """Converts `net`, runs both, compares; returns the ONNX output."""
    param = net.write(tmp_path)
    onnx_path = tmp_path / "net.onnx"
    result = subprocess.run([tool("vfupscale-model"), "import-ncnn", param, param.with_suffix(".bin"), "-o", onnx_path],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    x = RNG.random((3, *size), dtype=np.float32)
    got = run_onnx(onnx_path, x)
    want = ncnn_like_onnx(param, x, geometry(onnx_path))
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.abs(got - want).max())
    assert err <= tol * max(1.0, float(np.abs(want).max())), f"max |onnx - ncnn| = {err}"
    return got


@pytest.mark.parametrize("params,kh", [
    ("4=1", None),                 # 3x3, pad 1
    ("", None),                    # 3x3, no padding (the importer pads the input)
    ("2=2 4=2", None),             # dilation 2
    ("4=1 14=0", 1),               # 3 wide, 1 high
    ("4=0 14=0 15=2 16=2", None),  # all padding bottom/right
])
def test_convolution(tmp_path, params, kh):
    net = Net()
    net.conv("data", 3, 3, k=3, params=params, kh=kh)
    check(net, tmp_path)


def test_convolution_stride_and_fp16_weights(tmp_path):
    net = Net()
    x = net.conv("data", 3, 8, k=3, params="3=2 4=1", fp16=True)
    x = net.conv(x, 8, 12, k=1)
    net.add("PixelShuffle", [x], "0=2")
    check(net, tmp_path, size=(16, 24))


@pytest.mark.parametrize("act", ["9=1", "9=2 -23310=1,0.2", "9=3 -23310=2,-0.1,0.4", "9=4", "9=5", "9=6 -23310=2,0.2,0.5"])
def test_convolution_fused_activations(tmp_path, act):
    net = Net()
    net.conv("data", 3, 3, k=3, params="4=1", act=act)
    check(net, tmp_path)


def test_depthwise_convolution(tmp_path):
    net = Net()
    x = net.conv("data", 3, 6, k=1)
    x = net.conv(x, 6, 6, k=3, params="4=1", group=3)
    net.conv(x, 6, 3, k=1)
    check(net, tmp_path)


@pytest.mark.parametrize("k,params", [
    (4, "3=2 4=1"),                # the usual x2 upsampler
    (3, "3=2 4=1 18=1 19=1"),      # PyTorch's ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)
    (2, "3=2"),                    # CUNet's x2
    (3, "2=2"),                    # dilated: the border grows by 2 on each side, the importer crops it
])
def test_deconvolution(tmp_path, k, params):
    net = Net()
    net.conv("data", 3, 3, k=k, params=params, deconv=True, act="9=2 -23310=1,0.1")
    check(net, tmp_path, size=(12, 14))


def test_depthwise_deconvolution(tmp_path):
    net = Net()
    x = net.conv("data", 3, 6, k=1)
    x = net.conv(x, 6, 6, k=2, params="3=2", deconv=True, group=2)
    net.conv(x, 6, 3, k=1)
    check(net, tmp_path, size=(10, 12))


@pytest.mark.parametrize("n", [1, 3])
def test_prelu(tmp_path, n):
    net = Net()
    x = net.conv("data", 3, 3)
    net.add("PReLU", [x], f"0={n}")
    net.raw(RNG.normal(0, 0.5, n))
    check(net, tmp_path)


@pytest.mark.parametrize("kind,params", [("ReLU", ""), ("ReLU", "0=0.1"), ("Sigmoid", ""), ("TanH", ""),
                                         ("Clip", "0=-0.2 1=0.3")])
def test_activations(tmp_path, kind, params):
    net = Net()
    x = net.conv("data", 3, 3)
    net.add(kind, [x], params)
    check(net, tmp_path)


@pytest.mark.parametrize("params", ["0=1 1=2.0 2=2.0", "0=2 1=2.0 2=2.0", "0=3 1=2.0 2=2.0", "0=2 1=2.0 2=2.0 6=1"])
def test_interp(tmp_path, params):
    net = Net()
    x = net.conv("data", 3, 3)
    net.add("Interp", [x], params)
    check(net, tmp_path, size=(16, 22), tol=5e-4)


def test_interp_bicubic_downscale_after_upscale(tmp_path):
    # how realesr-animevideov3-x2/x3 are made: the x4 network followed by a bicubic x0.5 / x0.75
    net = Net()
    x = net.add("Interp", [net.conv("data", 3, 3)], "0=1 1=4.0 2=4.0")
    net.add("Interp", [x], "0=3 1=0.75 2=0.75")
    check(net, tmp_path, size=(16, 20), tol=5e-4)


@pytest.mark.parametrize("op", range(9))
def test_binary_op_blobs(tmp_path, op):
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    b = net.conv(b, 3, 3)
    if op in (3, 6, 8):  # division and power need safe operands
        b = net.add("Sigmoid", [b])
    net.add("BinaryOp", [a, b], f"0={op}")
    check(net, tmp_path)


@pytest.mark.parametrize("op", [0, 1, 2, 3, 4, 5, 7, 8])
def test_binary_op_scalar(tmp_path, op):
    net = Net()
    x = net.add("Sigmoid", [net.conv("data", 3, 3)])
    net.add("BinaryOp", [x], f"0={op} 1=1 2=0.75")
    check(net, tmp_path)


@pytest.mark.parametrize("params", ["0=1", "0=1 -23301=2,0.2,1.0", "0=0", "0=2"])
def test_eltwise(tmp_path, params):
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    net.add("Eltwise", [a, net.conv(b, 3, 3)], params)
    check(net, tmp_path)


def test_concat(tmp_path):
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    net.add("Concat", [net.conv(a, 3, 1), net.conv(b, 3, 2)], "0=0")
    check(net, tmp_path)


def test_global_pooling_inner_product_and_scale(tmp_path):
    # the squeeze-and-excitation block of waifu2x CUNet / Real-CUGAN
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    gap = net.add("Pooling", [b], "0=1 4=1")
    fc = net.add("InnerProduct", [gap], "0=2 1=1 2=6 9=1")
    net.tagged(RNG.normal(0, 0.5, 6))
    net.raw(RNG.normal(0, 0.1, 2))
    fc = net.add("InnerProduct", [fc], "0=3 1=1 2=6 9=4")
    net.tagged(RNG.normal(0, 0.5, 6))
    net.raw(RNG.normal(0, 0.1, 3))
    net.add("Scale", [a, fc], "0=-233")
    check(net, tmp_path)


def test_global_max_pooling_and_binary_broadcast(tmp_path):
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    gmp = net.add("Pooling", [b], "0=0 4=1")
    net.add("BinaryOp", [a, gmp], "0=1")
    check(net, tmp_path)


def test_scale_with_weights_and_bias(tmp_path):
    net = Net()
    net.add("Scale", ["data"], "0=3 1=1")
    net.raw(RNG.normal(1, 0.3, 3))
    net.raw(RNG.normal(0, 0.1, 3))
    check(net, tmp_path)


@pytest.mark.parametrize("crop", ["-23309=2,3,3 -23310=2,-3,-3 -23311=2,-2,-1", "0=2 1=2 3=-233 4=-233 5=-233 6=2 7=2"])
def test_crop(tmp_path, crop):
    net = Net()
    net.add("Crop", [net.conv("data", 3, 3)], crop)
    check(net, tmp_path, size=(18, 24))


def test_crop_to_reference(tmp_path):
    # CUNet's skip connection: crop the encoder feature to the decoder's size
    net = Net()
    a, b = net.add("Split", ["data"], "", n_out=2)
    small, reference = net.add("Split", [net.conv(b, 3, 3, k=5)], "", n_out=2)
    cropped = net.add("Crop", [a, reference], "0=2 1=2")
    net.add("Eltwise", [cropped, small], "0=1")
    check(net, tmp_path)
