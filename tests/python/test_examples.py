"""The examples run: the PyGObject script (with the system Python, which has python3-gi) and the Rust
embedding program, each on a short generated clip, through the CPU path."""
import os
import subprocess

from conftest import ROOT, TARGET, tool
from test_cli import make_clip, media


def plugin_dir():
    tool("gst-plugin-vfupscale")  # builds libgstvfupscale.so
    return TARGET / "release"


def test_python_example(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", 12, audio=False)
    out = tmp_path / "out.mkv"
    env = dict(os.environ, GST_PLUGIN_PATH=str(plugin_dir()), GST_REGISTRY=str(tmp_path / "registry.bin"))
    result = subprocess.run(["/usr/bin/python3", ROOT / "examples/upscale.py", clip, out], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert "x2, 12 frames, backend cpu" in result.stdout, result.stdout
    info = media(out)
    assert info["video"]["frames"] == 12 and (info["video"]["width"], info["video"]["height"]) == (192, 128)


def test_python_example_reports_errors(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", 4, audio=False)
    env = dict(os.environ, GST_PLUGIN_PATH=str(plugin_dir()), GST_REGISTRY=str(tmp_path / "registry.bin"))
    result = subprocess.run(["/usr/bin/python3", ROOT / "examples/upscale.py", clip, tmp_path / "o.mkv", "--model",
                             "/nonexistent.onnx"], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "/nonexistent.onnx" in result.stderr, result.stderr


def test_rust_embedding_example(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", 10, audio=False)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "vfupscale-examples"], cwd=ROOT, check=True)
    result = subprocess.run([TARGET / "release/embed-upscale", clip], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "received 10 frames; scale x2" in result.stdout, result.stdout
    assert "width=(int)192, height=(int)128" in result.stdout
