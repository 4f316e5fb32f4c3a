#!/usr/bin/env bash
# Builds a Debian package of vfupscale with the meson build (release profile), for Debian 12 / Ubuntu 24.04 hosts:
#   the plugin in GStreamer's own plugin directory (found without GST_PLUGIN_PATH), vfupscale and vfupscale-model in
#   /usr/bin, the ONNX Runtime installer in /usr/share/vfupscale, the licence in /usr/share/doc/vfupscale/copyright.
# ONNX Runtime and the models are not in the package: after installing it, run
#   /usr/share/vfupscale/setup-onnxruntime.sh gpu   (or cpu)   and   vfupscale-model fetch
#
# Usage: packaging/deb/build.sh [OUTDIR]      (default: the current folder; CARGO_TARGET_DIR reuses a cargo build)
# Needs: cargo (>= 1.92), meson, ninja, dpkg-deb, the GStreamer development files (scripts/setup.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath "${1:-.}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
setup=(meson setup "$work/build" "$root" --prefix=/usr)
[ -n "${CARGO_TARGET_DIR:-}" ] && setup+=("-Dcargo_target_dir=$CARGO_TARGET_DIR")
"${setup[@]}" >&2
meson install -C "$work/build" --destdir "$work/pkg" >&2

version=$(meson introspect --projectinfo "$work/build" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
pkg=$work/pkg
doc=$pkg/usr/share/doc/vfupscale
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: vfupscale"
  echo "Source: https://github.com/vfupscale/vfupscale"
  echo
  echo "Files: *"
  echo "Copyright: the vfupscale developers"
  echo "License: MPL-2.0"
  sed -e 's/^$/./' -e 's/^/ /' "$root/LICENSE"
} > "$doc/copyright"
rm -f "$doc/LICENSE"
gzip -9n "$doc/README.md"
# Debian wants stripped binaries; the plugin and commands carry no debug info in the release profile already
mkdir -p "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: vfupscale
Version: $version
Architecture: $arch
Maintainer: vfupscale developers <vfupscale@users.noreply.github.com>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: libc6 (>= 2.34), libgcc-s1, libglib2.0-0 (>= 2.74), libgstreamer1.0-0 (>= 1.22), libgstreamer-plugins-base1.0-0 (>= 1.22), gstreamer1.0-plugins-base (>= 1.22), gstreamer1.0-plugins-good (>= 1.22), gstreamer1.0-plugins-bad (>= 1.22)
Recommends: gstreamer1.0-plugins-ugly, gstreamer1.0-libav, python3-pip
Section: video
Priority: optional
Homepage: https://github.com/vfupscale/vfupscale
Description: GPU video super-resolution for GStreamer
 The vfupscale GStreamer element upscales video with ONNX super-resolution
 models on NVIDIA GPUs (NVDEC to NVENC in CUDA memory) or on the CPU; the
 vfupscale command upscales video files, images, folders and image
 sequences, and vfupscale-model fetches and converts models.
 .
 ONNX Runtime and the models are installed per user after this package:
 /usr/share/vfupscale/setup-onnxruntime.sh gpu, then vfupscale-model fetch.
CONTROL
find "$pkg" -type d -exec chmod 755 {} +
deb="$out/vfupscale_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >&2
echo "$deb"
