#!/usr/bin/env bash
# Packs everything the GPU suite, the benchmark and the command's GPU scripts need on a bare GPU host into one tar,
# split into pieces that each fit one device call (61 MiB, beside the ~2 MiB working tree), with a checksum:
#   OUTDIR/all.tar.part0 … all.tar.partN, OUTDIR/all.tar.sha256
# Contents: the GStreamer + ONNX Runtime GPU bundle of ../shared/gpu/make-bundle.sh (gst.tar.xz, setup.sh, the wheel
# pieces joined), tests/gpu/extra-bundle.sh's gst-extra.tar.xz, the release binaries and the two GPU test binaries
# (bin/), the models the suite uses (models/), and, if RAY_WHEELS names a folder of wheels, ray-wheels.tar.
#
# Usage: tests/gpu/pack-for-host.sh BUNDLEDIR OUTDIR   (BUNDLEDIR: where make-bundle.sh and extra-bundle.sh wrote)
# On the host, one call per piece carrying stage.sh and the piece (`bash stage.sh` joins them once all are there),
# then in the last one: tar -C /tmp/vf-stage -xf /tmp/vf-stage/all.tar && rm /tmp/vf-stage/all.tar, stage.sh again
# (it unpacks the runtime and writes /tmp/vf-stage/env.sh), and
# tar -C /tmp/vfupscale-gpu -xJf /tmp/vf-stage/gst-extra.tar.xz. Then: source /tmp/vf-stage/env.sh,
# VFUPSCALE_PREBUILT=/tmp/vf-stage/bin VFUPSCALE_MODEL_DIR=/tmp/vf-stage/models tests/gpu/run.sh.
set -euo pipefail
bundle=$(cd "${1:?usage: pack-for-host.sh BUNDLEDIR OUTDIR}" && pwd)
mkdir -p "${2:?usage: pack-for-host.sh BUNDLEDIR OUTDIR}"
out=$(cd "$2" && pwd)
cd "$(dirname "$0")/../.."
models=${VFUPSCALE_MODEL_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/vfupscale/models}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/models"
tests/gpu/build.sh "$root/bin"
cp "$bundle/gst.tar.xz" "$bundle/setup.sh" "$root/"
[ -f "$bundle/gst-extra.tar.xz" ] && cp "$bundle/gst-extra.tar.xz" "$root/"
if [ -f "$bundle/onnxruntime-gpu.whl" ]; then
  cp "$bundle/onnxruntime-gpu.whl" "$root/"
else
  cat $(ls "$bundle"/onnxruntime-gpu.whl.part* | sort -V) > "$root/onnxruntime-gpu.whl"
fi
for m in realesr-animevideov3-x2 realesr-animevideov3-x3 realesr-animevideov3-x4 realesr-general-x4v3 realesrgan-x4plus \
  realesrgan-x4plus-anime waifu2x-upconv7-x2 waifu2x-upconv7-noise3-x2 realcugan-up2x waifu2x-cunet-x2 realcugan-up3x realcugan-up4x; do
  cp "$models/$m.onnx" "$root/models/"
done
if [ -n "${RAY_WHEELS:-}" ]; then
  tar -C "$(dirname "$RAY_WHEELS")" -cf "$root/ray-wheels.tar" "$(basename "$RAY_WHEELS")"
fi
rm -f "$out"/all.tar.part*
tar -C "$root" -cf "$out/all.tar" .
# as few pieces as fit, of equal size (none over 61 MiB)
piece=$((61 * 1024 * 1024))
pieces=$(( ($(stat -c %s "$out/all.tar") + piece - 1) / piece ))
(cd "$out" && sha256sum all.tar > all.tar.sha256 && split -n "$pieces" -d -a 1 all.tar all.tar.part && rm all.tar)
ls -l "$out"/all.tar.*
