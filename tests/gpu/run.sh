#!/usr/bin/env bash
# The GPU test suite, in one command, on an NVIDIA host (driver for CUDA 13, GStreamer 1.22 with nvcodec,
# CUDA 13 runtime libraries with cuDNN 9 and NVRTC):
#
#   tests/gpu/run.sh
#
# Builds the plugin, the model and benchmark tools and the GPU test binaries (or takes them prebuilt from
# $VFUPSCALE_PREBUILT: libgstvfupscale.so, vfupscale-model, vfupscale-bench, vfupscale, gpu-core, gpu-plugin), installs the GPU
# build of ONNX Runtime unless ORT_DYLIB_PATH names one, installs the models it needs unless present, then runs
# every GPU test: conversion and blend kernels bit-exact against the CPU path, the device path against the host
# path, tiles against whole frames, 4K input with x4 models under a memory limit, NVDEC → vfupscale →
# cudadownload on H.264/H.265 clips at 720p and 1080p (and HEVC Main 10 HDR10 at 1080p, in P010) against the CPU
# element, every conversion format (NV12, P010, RGB(A)) bit-exact; the vfupscale command
# (tools/vfupscale/tests/gpu.sh: 10-bit and HDR10 kept, the H.264 4:4:4 software fallback); then a soak of
# $VFUPSCALE_SOAK_FRAMES (default 10000; 0 skips it) 1080p frames that fails if device memory grows.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ -n "${VFUPSCALE_PREBUILT:-}" ]; then
  bin=$(cd "$VFUPSCALE_PREBUILT" && pwd)
else
  bin="$root/target/gpu-tests"
  tests/gpu/build.sh "$bin"
fi

if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  scripts/setup-onnxruntime.sh gpu
  export ORT_DYLIB_PATH="${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale}/onnxruntime/libonnxruntime.so"
fi
models=${VFUPSCALE_MODEL_DIR:-${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale}/models}
for m in realesr-animevideov3-x2 realesr-animevideov3-x3 realesr-animevideov3-x4 realesr-general-x4v3 realesrgan-x4plus \
  realesrgan-x4plus-anime realcugan-up2x realcugan-up3x realcugan-up4x waifu2x-cunet-x2 waifu2x-upconv7-x2 waifu2x-upconv7-noise3-x2; do
  if [ ! -f "$models/$m.onnx" ]; then
    "$bin/vfupscale-model" fetch --dir "$models" "$m"
  fi
done
export VFUPSCALE_MODEL_DIR="$models"

echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
echo "== GStreamer: $(gst-inspect-1.0 --version | head -1); nvcodec decoders: $(gst-inspect-1.0 nvcodec 2>/dev/null | grep -oE 'nvh26[45]dec' | sort -u | tr '\n' ' ')"
echo "== ONNX Runtime: $ORT_DYLIB_PATH"
# the installed-plugin view (the test binaries register the plugin statically themselves)
GST_PLUGIN_PATH="$bin" gst-inspect-1.0 vfupscale | grep -E "^  (Version|Filename)"

status=0
for t in gpu-core gpu-plugin; do
  echo "== $t"
  "$bin/$t" --ignored --test-threads=1 --nocapture ${VFUPSCALE_GPU_TESTS:-} || status=1
done
if [ -x "$bin/vfupscale" ]; then
  echo "== vfupscale command (tools/vfupscale/tests/gpu.sh)"
  GST_PLUGIN_PATH="$bin" tools/vfupscale/tests/gpu.sh "$bin/vfupscale" || status=1
fi
soak=${VFUPSCALE_SOAK_FRAMES:-10000}
if [ "$soak" != 0 ]; then
  echo "== soak: $soak frames"
  "$bin/vfupscale-bench" --soak "$soak" || status=1
fi
exit $status
