#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""The PyTorch peer of vfupscale-bench: one of our ONNX models in PyTorch, eager and with
`torch.compile(mode="max-autotune-no-cudagraphs")`, channels_last, fp16 (or fp32), input and output in device memory,
timed with CUDA events after a warm-up, at each given size.

    python3 tools/peer/torch_peer.py realesr-animevideov3-x4 --sizes 1280x720,1920x1080 --precision fp16 \\
        --device 0 --json peer.json

MODEL is an .onnx path or the name of an installed model. The model is converted by walking its ONNX graph
(onnx_graph.py: the ops our importer writes — Conv, ConvTranspose, PRelu, LeakyRelu, Relu, Sigmoid, Tanh, Softplus,
HardSigmoid, Clip, Add/Sub/Mul/Div/Pow/Max/Min/Sum/Mod, DepthToSpace, Resize nearest/bilinear/bicubic, Concat, Pad,
Slice, Global{Average,Max}Pool, Identity, Constant, and the Shape arithmetic of the padding front end), not by
torch.onnx. Before timing, the torch output is checked against ONNX Runtime's CPU run of the same model on a small
input (eager, fp32 and the measured precision), and the compiled output against the eager one at each size; the
largest differences are printed and written, and a difference beyond the limits below is an error (exit 1).
Prints one line per size and writes JSON (`--json`): ms per frame, fps, compile time, the differences.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_graph as og  # noqa: E402

def models_dir() -> Path:
    """Where installed models are, as vfupscale looks: $VFUPSCALE_MODEL_DIR, else <data dir>/models."""
    if os.environ.get("VFUPSCALE_MODEL_DIR"):
        return Path(os.environ["VFUPSCALE_MODEL_DIR"])
    if os.environ.get("VFUPSCALE_DATA_DIR"):
        return Path(os.environ["VFUPSCALE_DATA_DIR"]) / "models"
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    return base / "vfupscale" / "models"


def resolve_model(arg: str) -> Path:
    """A path to an .onnx file, or the name of an installed model."""
    path = Path(arg)
    if path.suffix == ".onnx" or os.sep in arg:
        if not path.is_file():
            raise og.GraphError(f"model {arg}: no such file")
        return path
    installed = models_dir() / f"{arg}.onnx"
    if not installed.is_file():
        raise og.GraphError(f"model {arg}: not installed ({installed} is missing)")
    return installed


def parse_size(s: str) -> tuple[int, int]:
    """WIDTHxHEIGHT."""
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {s!r} is not WIDTHxHEIGHT") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size {s!r} is not WIDTHxHEIGHT with positive integers")
    return w, h


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", metavar="MODEL", help="ONNX file or installed model name")
    ap.add_argument("--sizes", default="1280x720,1920x1080", help="input sizes WxH,… (default: %(default)s)")
    ap.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--device", default="0", help="CUDA device number, or cpu (for testing; the wall clock times it)")
    ap.add_argument("--warmup", type=int, default=10, help="runs before timing (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs (default: %(default)s)")
    ap.add_argument("--check-size", type=parse_size, default=(64, 48), help="input of the ONNX Runtime check")
    ap.add_argument("--no-compile", action="store_true", help="eager only (no torch.compile)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    if args.warmup < 1 or args.runs < 1:
        ap.error("--warmup and --runs must be at least 1")
    try:
        paths = [resolve_model(m) for m in args.models]
        for path in paths:
            missing = og.Graph.load(path).unsupported()
            if missing:
                raise og.GraphError(f"{path}: ops the peer cannot run: {', '.join(missing)}")
    except og.GraphError as e:
        print(f"torch_peer: {e}", file=sys.stderr)
        return 1
    try:
        import torch_graph as tg
    except ImportError as e:
        print(f"torch_peer: PyTorch is not importable here ({e})", file=sys.stderr)
        return 1
    try:
        report = tg.measure_all(paths, args, sizes)
    except og.GraphError as e:
        print(f"torch_peer: {e}", file=sys.stderr)
        return 1
    if args.json:
        partial = args.json.with_name(f".{args.json.name}.{os.getpid()}.part")
        partial.write_text(json.dumps(report, indent=2) + "\n")
        partial.replace(args.json)
    for failure in report["failures"]:
        print(f"torch_peer: {failure}", file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
