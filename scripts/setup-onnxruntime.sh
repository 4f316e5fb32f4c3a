#!/usr/bin/env bash
# Installs the ONNX Runtime shared library where vfupscale looks for it (no root needed):
#   ${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-~/.local/share}/vfupscale}/onnxruntime/libonnxruntime.so
# from the official PyPI wheel (the only place this project fetches binaries from).
#
# Usage: scripts/setup-onnxruntime.sh [cpu|gpu]
#   cpu  onnxruntime      (CPU execution provider; default)
#   gpu  onnxruntime-gpu  (CUDA 13 and TensorRT execution providers; needs CUDA 13 runtime, cuBLAS, cuDNN 9)
# Re-running is a no-op when that version and flavour are already installed.
set -euo pipefail
VERSION=${ORT_VERSION:-1.31.1}
flavour=${1:-cpu}
case "$flavour" in
  cpu) package=onnxruntime ;;
  gpu) package=onnxruntime-gpu ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
data=${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale}
dest=$data/onnxruntime
stamp="$dest/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$package==$VERSION" ]; then
  echo "ONNX Runtime $package $VERSION already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 -d "$tmp" "$package==$VERSION"
python3 -m zipfile -e "$tmp"/*.whl "$tmp/wheel"
rm -rf "$dest.new"
mkdir -p "$dest.new"
cp "$tmp"/wheel/onnxruntime/capi/libonnxruntime*.so* "$dest.new/"
ln -sf "libonnxruntime.so.$VERSION" "$dest.new/libonnxruntime.so"
echo "$package==$VERSION" > "$dest.new/.installed"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "installed ONNX Runtime $package $VERSION in $dest"
