#!/usr/bin/env bash
# The vfupscale command end to end on an NVIDIA host (what CI cannot run): H.264 and H.265 clips, 8- and 10-bit, with
# audio, through NVDEC and the GPU backends (the default model, and the UNets on the native kernels); 10-bit
# kept (HDR10 metadata too); the software fallback for H.264 4:4:4;
# a prompt Ctrl+C; images, preview and bench on the GPU path.
#
# Usage: tools/vfupscale/tests/gpu.sh [VFUPSCALE]   (default target/release/vfupscale; GStreamer, ONNX Runtime and the
#        models must be findable, e.g. after `source /tmp/vf-stage/env.sh` on the project's GPU host)
# Prints what it checks; exits non-zero at the first failure.
set -euo pipefail
bin=$(realpath "${1:-target/release/vfupscale}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*"; }

clip() { # NAME ENCODER FORMAT FRAMES
  gst-launch-1.0 -q videotestsrc num-buffers="$4" pattern=ball ! "video/x-raw,format=$3,width=1920,height=1080,framerate=30/1" \
    ! $2 ! queue ! mux. audiotestsrc num-buffers=$(($4 * 48000 / 30 / 1024 + 1)) ! audio/x-raw,rate=48000 ! opusenc \
    ! queue ! mux. matroskamux name=mux ! filesink location="$1"
}

"$bin" info
clip h264.mkv "x264enc speed-preset=ultrafast ! h264parse" I420 60
clip h265.mkv "x265enc speed-preset=ultrafast ! h265parse" I420 60
clip h265-10.mkv "x265enc speed-preset=ultrafast ! h265parse" I420_10LE 60 || { rm -f h265-10.mkv; echo "(no 10-bit x265 here: 10-bit skipped)"; }

for input in h264.mkv h265.mkv h265-10.mkv; do
  [ -f "$input" ] || continue
  say "$input → 4K"
  "$bin" -i "$input" -o "up-$input" -y 2> err.txt || { cat err.txt; fail "$input"; }
  cat err.txt
  grep -q "backend \(native\|cuda\|tensorrt\) on " err.txt || fail "$input: not on a GPU backend"
  grep -q "decoder nv" err.txt || echo "(decoded in software: no NVDEC for this stream)"
  grep -q "1920×1080 → 3840×2160" err.txt || fail "$input: sizes"
  grep -q "60 frames in" err.txt || fail "$input: frame count"
  grep -q "copied audio" err.txt || fail "$input: audio"
done

if [ -f up-h265-10.mkv ]; then
  say "10-bit stays 10-bit: NVDEC P010 → element → Main 10"
  grep -q "decoder nvh265dec" err.txt || echo "(h265-10 was not decoded by NVDEC)"
  # read into a file: with pipefail, grep -q ending the pipe early would fail it
  gst-launch-1.0 -v filesrc location=up-h265-10.mkv ! matroskademux ! h265parse ! fakesink > caps10.txt 2>&1
  grep -qF "profile=(string)main-10" caps10.txt || fail "up-h265-10.mkv is not Main 10"
fi

say "the UNets on the native kernels (Real-CUGAN up2x/up3x/up4x, waifu2x CUNet) on 720p H.264 and H.265 Main 10 with audio"
clip720() { # NAME ENCODER FORMAT
  gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball ! "video/x-raw,format=$3,width=1280,height=720,framerate=30/1" \
    ! $2 ! queue ! mux. audiotestsrc num-buffers=48 ! audio/x-raw,rate=48000 ! opusenc ! queue ! mux. \
    matroskamux name=mux ! filesink location="$1"
}
clip720 cugan-h264.mkv "x264enc speed-preset=ultrafast ! h264parse" I420
clip720 cugan-h265-10.mkv "x265enc speed-preset=ultrafast ! h265parse" I420_10LE || rm -f cugan-h265-10.mkv
# MODEL:INPUT:OUTPUT SIZE (Main 10 for one model of each factor the 10-bit path scales by)
for run in realcugan-up2x:cugan-h264.mkv:2560×1440 realcugan-up2x:cugan-h265-10.mkv:2560×1440 \
  waifu2x-cunet-x2:cugan-h264.mkv:2560×1440 realcugan-up3x:cugan-h265-10.mkv:3840×2160; do
  IFS=: read -r model input size <<< "$run"
  [ -f "$input" ] || continue
  say "$model on $input"
  "$bin" -i "$input" -o "up-$model-$input" -m "$model" -y 2> err.txt || { cat err.txt; fail "$model $input"; }
  cat err.txt
  grep -q "backend native on " err.txt || fail "$model $input: not on the native kernels"
  grep -q "1280×720 → $size" err.txt || fail "$model $input: sizes"
  grep -q "30 frames in" err.txt || fail "$model $input: frame count"
  grep -q "copied audio" err.txt || fail "$model $input: audio"
done
# x4 of 720p is 5120×2880, past H.264 level 5.2 (4096 wide): encoded as HEVC, as the README's limits advise
say "realcugan-up4x on cugan-h264.mkv → 5120×2880 (x265enc)"
"$bin" -i cugan-h264.mkv -o up-x4.mkv -m realcugan-up4x --encoder x265enc --preset ultrafast -y 2> err.txt \
  || { cat err.txt; fail "realcugan-up4x"; }
cat err.txt
grep -q "backend native on " err.txt || fail "realcugan-up4x: not on the native kernels"
grep -q "1280×720 → 5120×2880" err.txt && grep -q "30 frames in" err.txt || fail "realcugan-up4x: sizes or frames"
grep -q "copied audio" err.txt || fail "realcugan-up4x: audio"

mdi=35400:14600:8500:39850:6550:2300:15635:16450:10000000:1
say "HEVC Main 10 HDR10 (BT.2020 PQ, mastering display, content light level) keeps its description"
gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=smpte \
  ! "video/x-raw,format=I420_10LE,width=1920,height=1080,framerate=30/1,colorimetry=bt2100-pq,mastering-display-info=(string)$mdi,content-light-level=(string)1000:400" \
  ! x265enc speed-preset=ultrafast ! h265parse ! mp4mux ! filesink location=hdr10.mp4
"$bin" -i hdr10.mp4 -o up-hdr10.mp4 -y --encoder x265enc --preset ultrafast 2> err.txt || { cat err.txt; fail hdr10; }
cat err.txt
grep -q "30 frames in" err.txt || fail "hdr10: frame count"
grep -q "10-bit, bt2100-pq, HDR metadata kept" err.txt || fail "hdr10: summary"
gst-launch-1.0 -v filesrc location=up-hdr10.mp4 ! qtdemux ! h265parse ! fakesink > caps.txt 2>&1
for want in "profile=(string)main-10" "colorimetry=(string)bt2100-pq" "mastering-display-info=(string)$mdi" \
  "content-light-level=(string)1000:400"; do
  grep -qF "$want" caps.txt || fail "up-hdr10.mp4 lacks $want"
done

say "H.264 High 4:4:4 (NVDEC cannot decode it) falls back to software decoding with a note"
gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball ! video/x-raw,format=Y444,width=640,height=360,framerate=30/1 \
  ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location=h264-444.mp4
status=0
"$bin" -i h264-444.mp4 -o up-444.mkv -y 2> err.txt || status=$?
cat err.txt
grep -q "could not be negotiated" err.txt && fail "444: negotiation failure instead of the fallback"
if gst-inspect-1.0 avdec_h264 > /dev/null 2>&1; then
  grep -q "decoding in software" err.txt || fail "444: no note about software decoding"
  [ "$status" = 0 ] || fail "444: exit status $status"
  grep -q "30 frames in" err.txt || fail "444: frame count"
else
  # without any decoder for the stream the probe says so, in one line, before a pipeline is built
  [ "$status" != 0 ] && [ "$(wc -l < err.txt)" = 1 ] && grep -q "missing a plug-in" err.txt \
    || fail "444 without a software decoder: not the one-line missing-plug-in error"
  echo "(no software H.264 decoder in this GStreamer: refused in one line, status $status)"
fi

say "--size 3840x2160 from 1080p takes the x2 model; x4 by -s 4"
"$bin" -i h264.mkv -o size.mkv --size 3840x2160 -y 2> err.txt && grep -q "model realesr-animevideov3-x2" err.txt || fail size
"$bin" -i h264.mkv -o s4.mkv -s 4 -y --encoder x265enc --preset ultrafast 2> err.txt || { cat err.txt; fail "-s 4"; }
grep -q "7680×4320" err.txt || fail "-s 4 size"

say "--size 3840x2160 with a ×4 model: 7680×4320 from the model, downscaled on the GPU; fps and what bounds it"
"$bin" -i h264.mkv -o size4.mkv --size 3840x2160 -m realesr-animevideov3-x4 -y 2> err.txt || { cat err.txt; fail "size x4"; }
cat err.txt
grep -q "1920×1080 → 3840×2160" err.txt || fail "size x4: sizes"
grep -q "60 frames in" err.txt || fail "size x4: frame count"
gst-launch-1.0 -v filesrc location=size4.mkv ! matroskademux ! fakesink > caps4.txt 2>&1
grep -q "width=(int)3840, height=(int)2160" caps4.txt || fail "size4.mkv is not 3840×2160"
"$bin" bench -i h264.mkv --frames 60 --size 3840x2160 -m realesr-animevideov3-x4 | tee bench4.txt
grep -q "^bounded by " bench4.txt || fail "bench --size x4"

say "Ctrl+C finishes the file promptly"
clip long.mkv "x264enc speed-preset=ultrafast ! h264parse" I420 1800
"$bin" -i long.mkv -o stopped.mkv -y --progress plain 2> err.txt &
pid=$!
for _ in $(seq 600); do grep -q "^vfupscale: backend" err.txt && break; sleep 0.1; done
sleep 2
start=$(date +%s%N)
kill -INT "$pid"
status=0
wait "$pid" || status=$?
took=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
cat err.txt
[ "$status" = 130 ] || fail "exit status $status after Ctrl+C"
echo "stopped ${took} s after Ctrl+C"
awk -v t="$took" 'BEGIN { exit !(t < 2) }' || fail "took ${took} s"
ls -a | grep -q '\.part' && fail "a .part file is left"

if gst-inspect-1.0 pngenc > /dev/null 2>&1; then
  say "images and preview on the GPU path"
  gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=640,height=360 ! pngenc \
    ! filesink location=frame.png
  "$bin" -i frame.png -o frame-x2.png -y 2> err.txt || { cat err.txt; fail image; }
  cat err.txt
  grep -q "640×360 → 1280×720" err.txt || fail "image size"
  "$bin" preview -i h264.mkv -o cmp.png -y || fail preview
else
  echo "(GStreamer's png plugin is not installed here: images and preview skipped)"
fi
say "bench on the GPU path"
"$bin" bench -i h264.mkv --frames 60 | tee bench.txt
grep -q "^bounded by " bench.txt || fail bench
say "all passed"
