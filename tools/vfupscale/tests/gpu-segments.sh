#!/usr/bin/env bash
# Segmented runs on an NVIDIA host (issue 14): a 1080p → 4K clip with audio upscaled by 1, 2 and 4 concurrent
# segments with `--jobs`, and by Ray tasks with num_gpus=0.5 and 0.25 on one GPU, all with the CLI's own encoder
# (x264enc where there is no NVENC); prints the throughput of each and checks that every output is the same: the
# same encoded video packets (so the same decoded frames) with the same timestamps, the same frame count, audio.
#
# Usage: VFUPSCALE_PREBUILT=DIR tools/vfupscale/tests/gpu-segments.sh
#   DIR holds `vfupscale` and `libgstvfupscale.so` (as for tests/gpu/run.sh); GStreamer, ONNX Runtime and the models
#   must be findable (e.g. `source /tmp/vf-stage/env.sh` on the project's GPU host).
#   VFUPSCALE_RAY_WHEELS=DIR (or a .tar of it): wheels of ray and its dependencies for this host's python3, installed
#   into a scratch folder when `import ray` fails; without Ray the Ray runs are reported as skipped.
#   VFUPSCALE_SEGMENT_FRAMES (default 30), VFUPSCALE_CLIP_FRAMES (default 240): the plan's sizes.
#   A dry run of the script on a machine without GPU: VFUPSCALE_CLIP_SIZE=96x64 VFUPSCALE_ARGS="--backend cpu"
#   VFUPSCALE_RAY_LOCAL_GPUS=1 (Ray's logical GPUs).
# Exits non-zero at the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=$(cd "${VFUPSCALE_PREBUILT:?the folder with vfupscale and libgstvfupscale.so}" && pwd)
export GST_PLUGIN_PATH="$bin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
vf="$bin/vfupscale"
frames=${VFUPSCALE_CLIP_FRAMES:-240}
seg=${VFUPSCALE_SEGMENT_FRAMES:-30}
size=${VFUPSCALE_CLIP_SIZE:-1920x1080}
w=${size%x*} h=${size#*x}
read -r -a extra <<< "${VFUPSCALE_ARGS:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*"; }

say "clip: $frames frames of ${w}×${h} at 30 fps, H.264 with Opus audio"
gst-launch-1.0 -q videotestsrc num-buffers="$frames" pattern=ball ! "video/x-raw,format=I420,width=$w,height=$h,framerate=30/1" \
  ! x264enc speed-preset=ultrafast key-int-max=30 bframes=2 ! h264parse ! queue ! mux. \
  audiotestsrc num-buffers=$((frames * 48000 / 30 / 1024)) ! audio/x-raw,rate=48000 ! opusenc ! queue ! mux. \
  matroskamux name=mux ! filesink location=clip.mkv

# Encoded video packets (byte-stream) and their timestamps: equal files of these mean equal outputs.
packets() { # FILE → FILE.h264 FILE.pts
  gst-launch-1.0 -q filesrc location="$1" ! matroskademux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
    ! filesink location="$1.h264"
  gst-launch-1.0 -v filesrc location="$1" ! matroskademux name=d d.video_0 ! h264parse ! fakesink silent=false sync=false 2>/dev/null \
    | grep -o 'pts: [0-9:.]*, duration: [0-9:.]*' > "$1.pts"
  gst-launch-1.0 -v filesrc location="$1" ! matroskademux name=d d.audio_0 ! fakesink silent=false sync=false 2>/dev/null \
    | grep -c 'chain' > "$1.audio"
}

declare -A fps
run_jobs() { # N
  local out="jobs$1.mkv"
  say "--jobs $1 (segments of $seg frames)"
  "$vf" -i clip.mkv -o "$out" --jobs "$1" --segment-frames "$seg" --progress none "${extra[@]}" 2> err.txt \
    || { cat err.txt; fail "--jobs $1"; }
  cat err.txt
  if [ ${#extra[@]} = 0 ]; then
    grep -q "backend \(native\|cuda\|tensorrt\) on " err.txt || fail "--jobs $1: not on a GPU backend"
  fi
  grep -q "${w}×${h} → $((w * 2))×$((h * 2))" err.txt || fail "--jobs $1: sizes"
  grep -q ": $frames frames in" err.txt || fail "--jobs $1: frame count"
  grep -q "copied audio" err.txt || fail "--jobs $1: audio"
  fps[jobs$1]=$(grep -o '([0-9.]* fps)' err.txt | tail -1 | tr -d '()')
  [ ! -e ".$out.vfupscale-work" ] || fail "--jobs $1: the work folder is left"
  packets "$out"
}
for n in 1 2 4; do run_jobs "$n"; done

py=${PYTHON:-python3}
if ! "$py" -c 'import ray' 2> /dev/null && [ -n "${VFUPSCALE_RAY_WHEELS:-}" ]; then
  say "installing ray from $VFUPSCALE_RAY_WHEELS"
  wheels=$VFUPSCALE_RAY_WHEELS
  if [ -f "$wheels" ]; then mkdir -p wheels && tar -xf "$wheels" -C wheels && wheels=$(dirname "$(find wheels -name 'ray-*.whl' | head -1)"); fi
  "$py" -m pip install --quiet --no-index --find-links "$wheels" --target "$work/site" ray || fail "ray does not install"
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
ray_runs=()
if "$py" -c 'import ray' 2> /dev/null; then
  export PYTHONPATH="$root/python/vfupscale_ray${PYTHONPATH:+:$PYTHONPATH}" RAY_AUTH_MODE=disabled
  for share in 0.5 0.25; do
    out="ray$share.mkv"
    say "Ray: num_gpus=$share (up to $(awk -v s="$share" 'BEGIN { print int(1 / s) }') segments on the GPU at once)"
    "$py" -m vfupscale_ray -i clip.mkv -o "$out" --binary "$vf" --num-gpus "$share" --segment-frames "$seg" \
      ${VFUPSCALE_RAY_LOCAL_GPUS:+--local-gpus "$VFUPSCALE_RAY_LOCAL_GPUS"} \
      -- "${extra[@]}" 2> err.txt || { grep -v '^\(.*INFO\|.*WARNING\)' err.txt | tail -20; fail "Ray num_gpus=$share"; }
    grep '^vfupscale-ray' err.txt
    fps[ray$share]=$(grep -o '([0-9.]* fps)' err.txt | tail -1 | tr -d '()')
    packets "$out"
    ray_runs+=("$out")
  done
else
  echo "(SKIPPED Ray: python3 has no ray; set VFUPSCALE_RAY_WHEELS)"
fi

say "every output equals --jobs 1's (encoded packets, timestamps, audio packets)"
for out in jobs2.mkv jobs4.mkv "${ray_runs[@]}"; do
  cmp -s jobs1.mkv.h264 "$out.h264" || fail "$out: its video packets differ from jobs1.mkv's"
  cmp -s jobs1.mkv.pts "$out.pts" || fail "$out: its timestamps differ from jobs1.mkv's"
  cmp -s jobs1.mkv.audio "$out.audio" || fail "$out: its audio differs from jobs1.mkv's"
  echo "$out = jobs1.mkv ($(wc -l < "$out.pts") frames, $(cat "$out.audio") audio packets)"
done
[ "$(wc -l < jobs1.mkv.pts)" = "$frames" ] || fail "jobs1.mkv has $(wc -l < jobs1.mkv.pts) frames"

say "throughput, ${w}×${h} → $((w * 2))×$((h * 2)), $frames frames (fps over the whole job: plan, segments, final mux)"
for k in jobs1 jobs2 jobs4 ray0.5 ray0.25; do
  if [ -n "${fps[$k]:-}" ]; then printf '%-8s %s\n' "$k" "${fps[$k]}"; fi
done
say "all passed"
