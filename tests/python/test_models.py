"""Every model the project installs, converted from the npm registry's ncnn files (vfupscale-model fetch):

- the ONNX checker accepts it (full check, with shape inference);
- it computes what ncnn itself computes on the original files (with the same border padding), on a real photo;
- its output is a plausible upscale of that photo, aligned with it (no pixel shift);
- its float16 conversion agrees with it.
"""
import subprocess

import numpy as np
import onnx
import pytest

from conftest import MODELS_DIR, bicubic, catalog, geometry, ncnn_like_onnx, psnr, run_onnx, tool

MODELS = catalog()
# GAN-trained models (sharpened, invented texture) land further from a bicubic upscale than PSNR-trained ones;
# for them plausibility is checked against the input instead (the output box-filtered back down).
GAN = {"realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-general-x4v3"}


def model_path(name: str):
    path = MODELS_DIR / f"{name}.onnx"
    assert path.exists(), f"{path} missing: run `vfupscale-model fetch` (scripts/setup.sh does)"
    return path


@pytest.mark.parametrize("name,scale,param", MODELS, ids=[m[0] for m in MODELS])
def test_model(name, scale, param, image, tmp_path):
    path = model_path(name)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]

    out = run_onnx(path, image)
    h, w = image.shape[1:]
    assert out.shape == (3, scale * h, scale * w)
    assert np.isfinite(out).all()

    # the same computation as ncnn's own implementation of the original model
    reference = ncnn_like_onnx(param, image, geometry(path))
    diff = float(np.abs(out - reference).max())
    assert diff < 2e-3, f"max |onnx - ncnn| = {diff}"

    # a plausible upscale, not shifted
    clipped = np.clip(out, 0, 1)
    base = bicubic(image, scale)
    margin = 2 * scale
    crop = lambda a, dy=0, dx=0: a[:, margin + dy:a.shape[1] - margin + dy, margin + dx:a.shape[2] - margin + dx]
    shifts = {(dy, dx): psnr(crop(clipped, dy, dx), crop(base)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    vs_bicubic = shifts[(0, 0)]
    assert max(shifts, key=shifts.get) == (0, 0), f"best alignment at {max(shifts, key=shifts.get)}: {shifts}"
    down = clipped.reshape(3, h, scale, w, scale).mean(axis=(2, 4))
    vs_input = psnr(down, image)
    print(f"{name}: {vs_bicubic:.2f} dB vs bicubic, {vs_input:.2f} dB downscaled vs input, ncnn diff {diff:.1e}")
    if name in GAN:
        assert vs_bicubic >= 20.0 and vs_input >= 26.0, (vs_bicubic, vs_input)
    else:
        assert vs_bicubic >= 25.0, vs_bicubic

    # float16 weights and IO agree with float32
    fp16 = tmp_path / f"{name}-fp16.onnx"
    subprocess.run([tool("vfupscale-model"), "fp16", path, "-o", fp16], check=True, capture_output=True)
    half = onnx.load(str(fp16))
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    onnx.checker.check_model(half, full_check=True)
    agreement = psnr(np.clip(run_onnx(fp16, image), 0, 1), clipped)
    assert agreement >= 45.0, f"fp16 vs fp32: {agreement:.1f} dB"
