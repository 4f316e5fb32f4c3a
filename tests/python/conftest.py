"""Shared fixtures of the Python test suite: paths, the test image, model runners and image metrics.

The suite needs `scripts/setup.sh --test` (ONNX Runtime library, models, this Python environment) and a release
build of vfupscale-model; `scripts/test.sh` does both.
"""
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DATA_DIR = Path(os.environ.get("VFUPSCALE_DATA_DIR") or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "vfupscale")
MODELS_DIR = Path(os.environ.get("VFUPSCALE_MODEL_DIR") or DATA_DIR / "models")
NPM_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vfupscale/npm"
IMAGE = ROOT / "tests/data/astronaut-96x64.ppm"


PACKAGES = {"vfupscale": "vfupscale-cli", "gst-plugin-vfupscale": "gst-plugin-vfupscale"}
ARTIFACTS = {"gst-plugin-vfupscale": "libgstvfupscale.so"}
_built = set()


def tool(name: str) -> Path:
    """A release build of one of this workspace's programs (built once per test session, so tests never run a
    stale binary)."""
    if name not in _built:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", PACKAGES.get(name, name)], cwd=ROOT, check=True)
        _built.add(name)
    return TARGET / "release" / ARTIFACTS.get(name, name)


def catalog():
    """(name, scale, ncnn .param path in the npm cache) of every installable model."""
    out = subprocess.run([tool("vfupscale-model"), "list"], capture_output=True, text=True, check=True).stdout
    entries = []
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+x(\d+)\s+(\S+)@(\S+):(\S+)", line)
        assert m, line
        name, scale, package, version, param = m.groups()
        entries.append((name, int(scale), NPM_CACHE / f"{package}-{version}" / param))
    return entries


def load_image() -> np.ndarray:
    """The real test photo as float32 CHW RGB in 0..1."""
    return (np.asarray(Image.open(IMAGE).convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(peak * peak / max(mse, 1e-20))


def bicubic(chw: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale (PIL), CHW float in 0..1."""
    h, w = chw.shape[1:]
    img = Image.fromarray((np.clip(chw.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(img.resize((w * scale, h * scale), Image.BICUBIC), np.float32).transpose(2, 0, 1) / 255.0


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, chw: np.ndarray) -> np.ndarray:
    session = ort_session(path)
    dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    return session.run(None, {session.get_inputs()[0].name: chw[None].astype(dtype)})[0][0].astype(np.float32)


def metadata(path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def geometry(path: Path) -> dict:
    """The importer's wrapping of the ncnn network (see vfupscale.geometry in the model's metadata)."""
    meta = metadata(path)
    g = dict(kv.split("=") for kv in meta["vfupscale.geometry"].split())
    return {k: (v if k == "add_input" else int(v)) for k, v in g.items()} | {"scale": int(meta["vfupscale.scale"])}


def ncnn_io(param: Path):
    """Input blob (of the Input layer) and output blob (produced, never consumed) of an ncnn .param file."""
    lines = [line.split() for line in param.read_text().splitlines()[2:] if line.strip()]
    consumed, produced, first_input = set(), [], None
    for t in lines:
        n_in, n_out = int(t[2]), int(t[3])
        ins, outs = t[4:4 + n_in], t[4 + n_in:4 + n_in + n_out]
        consumed.update(ins)
        produced += outs
        if t[0] == "Input" and first_input is None:
            first_input = outs[0]
    finals = [b for b in produced if b not in consumed]
    assert len(finals) == 1, finals
    return first_input, finals[0]


def run_ncnn(param: Path, chw: np.ndarray) -> np.ndarray:
    """ncnn's own CPU float32 result for a CHW input."""
    import ncnn

    net = ncnn.Net()
    for flag in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                 "use_bf16_storage", "use_packing_layout", "use_int8_inference"):
        setattr(net.opt, flag, False)
    assert net.load_param(str(param)) == 0, f"ncnn cannot load {param}"
    assert net.load_model(str(param.with_suffix(".bin"))) == 0, f"ncnn cannot load {param.with_suffix('.bin')}"
    blob_in, blob_out = ncnn_io(param)
    ex = net.create_extractor()
    # an ncnn-allocated Mat: one wrapping numpy memory crashes ncnn's in-place layers on the input blob
    mat = ncnn.Mat(chw.shape[2], chw.shape[1], chw.shape[0])
    np.asarray(mat)[:] = chw
    ex.input(blob_in, mat)
    ret, out = ex.extract(blob_out)
    assert ret == 0, f"ncnn extract failed ({ret})"
    return np.array(out)


def ncnn_like_onnx(param: Path, chw: np.ndarray, geo: dict) -> np.ndarray:
    """What the converted ONNX model must compute, done with ncnn: replicate-pad the input as the importer's
    geometry says, run ncnn, crop, add the nearest-upscaled input where the front end does."""
    h, w = chw.shape[1:]
    p, m, r, s = geo["pad"], geo["alignment"], geo["residue"], geo["scale"]
    extra = [(r - (n + 2 * p)) % m for n in (h, w)]
    padded = np.pad(chw, ((0, 0), (p, p + extra[0]), (p, p + extra[1])), mode="edge")
    out = run_ncnn(param, padded)
    o = geo["crop_offset"]
    out = out[:, o:o + s * h, o:o + s * w]
    if geo["add_input"] == "nearest":
        out = out + np.repeat(np.repeat(chw, s, axis=1), s, axis=2)
    return out


@pytest.fixture(scope="session")
def image():
    return load_image()


_scales_output = []


def element_scales_output() -> bool:
    """Whether the vfupscale element negotiates an output smaller than input × scale (48x48 from 32x32 with an x2
    model): what `vfupscale -s 1.5`, `-W`, `-H` and `--size` need for sizes no model's scale gives. Checked once, by
    running the element."""
    if not _scales_output:
        plugin = tool("gst-plugin-vfupscale")
        env = dict(os.environ, GST_PLUGIN_PATH=str(plugin.parent), GST_REGISTRY=str(Path(tempfile.gettempdir()) / f"vfupscale-scale-registry-{os.getpid()}.bin"))
        model = MODELS_DIR / "realesr-animevideov3-x2.onnx"
        launch = (f"videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=32,height=32 ! "
                  f"vfupscale model={model} backend=cpu ! video/x-raw,width=48,height=48 ! fakesink")
        try:
            result = subprocess.run(["gst-launch-1.0", "-q", *launch.split()], capture_output=True, text=True,
                                    env=env, timeout=120)
            _scales_output.append(result.returncode == 0)
        except subprocess.TimeoutExpired:
            _scales_output.append(False)
    return _scales_output[0]


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_output_scaling: runs once the vfupscale element scales its output to a "
                                       "size other than input × scale (detected by running it)")


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("needs_output_scaling")]
    if marked and not element_scales_output():
        skip = pytest.mark.skip(reason="the vfupscale element does not yet negotiate an output smaller than "
                                       "input × scale")
        for item in marked:
            item.add_marker(skip)


@pytest.fixture(name="element_scales_output", scope="session")
def element_scales_output_fixture():
    return element_scales_output()
