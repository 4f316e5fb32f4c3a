#!/usr/bin/env bash
# The README's first command: on a fresh Debian/Ubuntu machine, installs what vfupscale needs, builds it, makes a
# short sample clip (generated with GStreamer, with sound) and upscales it x2 with the default model: on the GPU
# when there is a usable NVIDIA one (NVDEC, CUDA memory, ONNX Runtime GPU), on the CPU otherwise.
#
# Usage: scripts/quickstart.sh [OUTPUT_DIR]   (default: ./quickstart)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$(mkdir -p "${1:-quickstart}" && cd "${1:-quickstart}" && pwd)

flavour=""
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  flavour=--gpu
  echo "quickstart: NVIDIA GPU found: $(nvidia-smi -L | head -1)"
else
  echo "quickstart: no NVIDIA GPU: the CPU path will be used (slower, same result)"
fi
bash scripts/setup.sh $flavour
if [ "$flavour" = --gpu ]; then
  export ORT_DYLIB_PATH="${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale}/onnxruntime/libonnxruntime.so"
fi
cargo build --release -q -p vfupscale-cli

sample="$out/sample.mkv"
if [ ! -f "$sample" ]; then
  # 3 seconds of 320x180 at 12 fps with a tone; small so the CPU path finishes in a minute or two
  gst-launch-1.0 -q videotestsrc num-buffers=36 pattern=ball ! \
    video/x-raw,width=320,height=180,framerate=12/1 ! x264enc ! h264parse ! queue ! mux. \
    audiotestsrc num-buffers=141 wave=sine ! audio/x-raw,rate=48000 ! opusenc ! opusparse ! queue ! mux. \
    matroskamux name=mux ! filesink location="$sample"
fi
target/release/vfupscale -i "$sample" -o "$out/sample-x2.mkv" -y
echo "quickstart: upscaled $sample to $out/sample-x2.mkv"
