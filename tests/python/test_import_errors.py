"""Broken ncnn files are refused with a message naming the layer, the parameter or the byte offset, and nothing
is written under the output name (the tool writes to a temporary file and renames only on success)."""
import shutil
import subprocess

import pytest

from conftest import catalog, tool

SOURCE = next(param for name, _, param in catalog() if name == "realesr-animevideov3-x2")


def convert(param, bin_, out):
    return subprocess.run([tool("vfupscale-model"), "import-ncnn", param, bin_, "-o", out], capture_output=True, text=True)


@pytest.fixture
def files(tmp_path):
    param = tmp_path / "m.param"
    bin_ = tmp_path / "m.bin"
    shutil.copy(SOURCE, param)
    shutil.copy(SOURCE.with_suffix(".bin"), bin_)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous content")  # must survive a failed conversion
    return param, bin_, out


def refused(files, *needles):
    param, bin_, out = files
    result = convert(param, bin_, out)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "\n" not in message, f"one line expected: {message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    assert out.read_bytes() == b"previous content", "the output was touched"
    assert [p.name for p in out.parent.iterdir() if ".tmp" in p.name] == [], "a temporary file was left"
    return message


def test_the_unmodified_files_convert(files):
    param, bin_, out = files
    result = convert(param, bin_, out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:2] != b"pr"


def test_truncated_bin(files):
    _, bin_, _ = files
    data = bin_.read_bytes()
    bin_.write_bytes(data[: len(data) // 2])
    refused(files, "layer Conv_", "byte offset", "truncated")


def test_oversized_bin(files):
    _, bin_, _ = files
    size = len(bin_.read_bytes())
    with open(bin_, "ab") as f:
        f.write(b"\0" * 64)
    refused(files, "64 bytes left", f"byte offset {size}", "oversized")


def test_wrong_magic(files):
    param = files[0]
    param.write_text(param.read_text().replace("7767517", "7767518", 1))
    refused(files, "line 1", "wrong magic")


def test_unknown_layer_type(files):
    param = files[0]
    param.write_text(param.read_text().replace("PReLU                    PRelu_1 ", "Frobnicate               PRelu_1 ", 1))
    refused(files, "PRelu_1", "unsupported layer type Frobnicate")


def test_inconsistent_shapes(files):
    # the second convolution's weights are for 64 input channels; make the first produce 32
    param = files[0]
    text = param.read_text().replace("Conv_0                   1 1 input.1_splitncnn_1 54 0=64 1=3 4=1 5=1 6=1728",
                                     "Conv_0                   1 1 input.1_splitncnn_1 54 0=32 1=3 4=1 5=1 6=864", 1)
    assert text != param.read_text()
    param.write_text(text)
    refused(files, "inconsistent shapes")


def test_bad_parameter_value(files):
    param = files[0]
    param.write_text(param.read_text().replace("PixelShuffle             DepthToSpace_35          1 1 105 106 0=4",
                                               "PixelShuffle             DepthToSpace_35          1 1 105 106 0=x", 1))
    refused(files, "DepthToSpace_35", "0=\"x\"")


def test_unknown_blob(files):
    param = files[0]
    param.write_text(param.read_text().replace("PReLU                    PRelu_1                  1 1 54 56",
                                               "PReLU                    PRelu_1                  1 1 nowhere 56", 1))
    refused(files, "PRelu_1", "nowhere", "not produced")


def test_asymmetric_geometry(tmp_path):
    # a transposed convolution whose output is 2n+1: it cannot be cropped evenly to 2n
    param = tmp_path / "odd.param"
    param.write_text("7767517\n2 2\nInput input 0 1 data 0=0 1=0 2=3\n"
                     "Deconvolution up 1 1 data out 0=3 1=3 3=2 5=0 6=81\n")
    param.with_suffix(".bin").write_bytes(b"\0\0\0\0" + b"\0" * 81 * 4)
    out = tmp_path / "odd.onnx"
    result = convert(param, param.with_suffix(".bin"), out)
    assert result.returncode != 0 and "unsupported geometry" in result.stderr, result.stderr
    assert not out.exists()


def test_missing_files(tmp_path):
    result = convert(tmp_path / "absent.param", tmp_path / "absent.bin", tmp_path / "o.onnx")
    assert result.returncode != 0 and "absent.param" in result.stderr
