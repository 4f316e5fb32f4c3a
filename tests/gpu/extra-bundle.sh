#!/usr/bin/env bash
# Adds to the GPU host's GStreamer bundle (shared/gpu/make-bundle.sh) what the command's own GPU checks need
# besides: image codecs, videofilter (videoflip), multifile (image sequences), subparse, debug, audio encoders for the
# test clips, and gst-discoverer-1.0 to read the outputs back. Writes OUTDIR/gst-extra.tar.xz with the same layout
# (gst/plugins, gst/lib, gst/bin); on the host, after setup.sh: tar -C /tmp/vfupscale-gpu -xJf gst-extra.tar.xz
# Usage: tests/gpu/extra-bundle.sh OUTDIR
set -euo pipefail
OUT=${1:?usage: extra-bundle.sh OUTDIR}
need=(gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends "$p" >/dev/null; done
GSTDIR=/usr/lib/x86_64-linux-gnu/gstreamer-1.0
stage=$(mktemp -d)
mkdir -p "$stage/gst/lib" "$stage/gst/plugins" "$stage/gst/bin"
files=(/usr/bin/gst-discoverer-1.0)
for p in png jpeg webp videofilter multifile subparse debug voaacenc lame flac vorbis ogg audiotestsrc; do
  [ -f "$GSTDIR/libgst$p.so" ] && files+=("$GSTDIR/libgst$p.so")
done
for f in "${files[@]}"; do
  case "$f" in
    "$GSTDIR"/*) cp -L "$f" "$stage/gst/plugins/" ;;
    *) cp -L "$f" "$stage/gst/bin/" ;;
  esac
  ldd "$f" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$lib" in
      */libc.so*|*/libm.so*|*/libpthread.so*|*/libdl.so*|*/librt.so*|*/ld-linux*|*/libstdc++.so*|*/libgcc_s.so*) ;;
      *) cp -Ln "$lib" "$stage/gst/lib/" ;;
    esac
  done
done
tar -C "$stage" -cJf "$OUT/gst-extra.tar.xz" gst
rm -rf "$stage"
ls -l "$OUT/gst-extra.tar.xz"
