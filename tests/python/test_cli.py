"""The `vfupscale` command on short generated clips, through the CPU path (CI has no GPU): frame count, output
size, audio kept, duration, signals, one-line errors that leave no file behind, encoders, subtitles, rotation,
damaged inputs, sizes, images, folders, sequences, preview, machine-readable progress, bench, installation."""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TARGET, tool

SYSTEM_PYTHON = "/usr/bin/python3"  # has PyGObject (python3-gi)


def media(path: Path) -> dict:
    out = subprocess.run([SYSTEM_PYTHON, ROOT / "tests/python/media.py", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def make_clip(path: Path, frames: int, audio: bool, width=96, height=64, fps=12, subtitles: Path | None = None):
    # 8-bit 4:4:4 (videotestsrc would otherwise give x264enc 10 bits, which the command keeps)
    video = (f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=Y444,width={width},"
             f"height={height},framerate={fps}/1 ! x264enc ! h264parse ! queue ! mux.")
    sound = (f"audiotestsrc num-buffers={int(frames / fps * 48000 / 1024) + 1} ! audio/x-raw,rate=48000 ! "
             "opusenc ! opusparse ! queue ! mux." if audio else "")
    text = f"filesrc location={subtitles} ! subparse ! queue ! mux." if subtitles else ""
    muxer = "matroskamux" if path.suffix == ".mkv" else "mp4mux"
    subprocess.run(["gst-launch-1.0", "-q", *f"{video} {sound} {text} {muxer} name=mux ! filesink location={path}"
                    .split()], check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    srt = d / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,900\nHello & <i>world</i>\n\n"
                   "2\n00:00:01,000 --> 00:00:01,800\nSecond line 2 < 3\n\n")
    return {
        "audio": make_clip(d / "audio.mkv", 24, audio=True),
        "silent": make_clip(d / "silent.mp4", 18, audio=False),
        "long": make_clip(d / "long.mkv", 600, audio=True),
        "subtitled": make_clip(d / "subtitled.mkv", 24, audio=False, subtitles=srt),
    }


def vfupscale(*args, **kwargs):
    return subprocess.run([tool("vfupscale"), *args], capture_output=True, text=True, **kwargs)


def no_leftovers(directory: Path):
    assert [p.name for p in directory.iterdir() if ".part" in p.name] == []


def test_upscales_with_audio_copied(clips, tmp_path):
    out = tmp_path / "out.mkv"
    result = vfupscale("-i", clips["audio"], "-o", out)
    assert result.returncode == 0, result.stderr
    src, dst = media(clips["audio"]), media(out)
    assert dst["video"]["frames"] == src["video"]["frames"] == 24
    assert (dst["video"]["width"], dst["video"]["height"]) == (192, 128)
    assert dst["audio"] is not None and dst["audio"]["codec"] == "audio/x-opus", "audio copied, not re-encoded"
    assert abs(dst["duration"] - src["duration"]) < 0.1
    assert "24 frames" in result.stderr and "backend cpu" in result.stderr and "copied audio" in result.stderr
    no_leftovers(tmp_path)


def test_upscales_without_audio_into_mp4(clips, tmp_path):
    out = tmp_path / "out.mp4"
    result = vfupscale("-i", clips["silent"], "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "--quiet prints nothing on success"
    dst = media(out)
    assert dst["video"]["frames"] == 18 and dst["audio"] is None
    assert (dst["video"]["width"], dst["video"]["height"]) == (192, 128)


def test_model_by_name_and_options(clips, tmp_path):
    out = tmp_path / "x3.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "-m", "realesr-animevideov3-x3", "-p", "fp32",
                       "--backend", "cpu", "--encoder", "x264enc", "--bitrate", "500")
    assert result.returncode == 0, result.stderr
    assert (media(out)["video"]["width"], media(out)["video"]["height"]) == (288, 192)


def test_start_line_and_summary(clips, tmp_path):
    result = vfupscale("-i", clips["silent"], "-o", tmp_path / "o.mkv", "-p", "fp16", "-d", "3")
    assert result.returncode == 0, result.stderr
    start = next(line for line in result.stderr.splitlines() if line.startswith("vfupscale: backend"))
    assert "96×64 → 192×128" in start and "model realesr-animevideov3-x2" in start and "encoder x264enc" in start
    # options the CPU backend ignores are named
    assert "-p fp16 gains nothing on the CPU backend" in result.stderr
    assert "-d 3 has no effect" in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert "18 frames in" in summary and summary.endswith(" KB") and "0.0 MB" not in summary, summary


def test_progress_lines_when_not_a_terminal(clips, tmp_path):
    result = vfupscale("-i", clips["long"], "-o", tmp_path / "p.mkv", "-m", "waifu2x-upconv7-x2")
    assert result.returncode == 0, result.stderr
    assert "progress: " in result.stderr and "fps" in result.stderr and "ETA" in result.stderr


def test_progress_json(clips, tmp_path):
    result = vfupscale("-i", clips["long"], "-o", tmp_path / "p.mkv", "-m", "waifu2x-upconv7-x2", "--progress",
                       "json")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) >= 2 and all(set(o) >= {"frames", "total", "fps", "eta_s", "done"} for o in objects)
    assert [o["done"] for o in objects] == [False] * (len(objects) - 1) + [True]
    assert objects[-1]["frames"] == objects[-1]["total"] == 600
    assert all(a["frames"] <= b["frames"] for a, b in zip(objects, objects[1:]))


def start(*args):
    """Runs vfupscale in the background; returns the process once the first frame is upscaled."""
    proc = subprocess.Popen([tool("vfupscale"), *map(str, args)], stderr=subprocess.PIPE, text=True)
    line = ""
    deadline = time.time() + 60
    while time.time() < deadline and not line.startswith("vfupscale: backend"):
        line = proc.stderr.readline()
    assert line.startswith("vfupscale: backend"), line
    return proc


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_ctrl_c_finishes_a_playable_file(clips, tmp_path, ext):
    out = tmp_path / f"interrupted.{ext}"
    proc = subprocess.Popen([tool("vfupscale"), "-i", clips["long"], "-o", out], stderr=subprocess.PIPE, text=True)
    seen = read_until(proc, "progress:")  # upscaling has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "interrupted" in err
    # the summary describes the run even when no segment had finished (it once said "0×0 → 0×0", "(x0)")
    assert "0×0" not in err and "(x0)" not in err and "backend cpu" in err.split("frames in")[-1], err
    done = int(err.split("holds the first ")[1].split()[0])
    info = media(out)
    assert 0 < done < 600
    # Matroska keeps every frame; MP4 may hide the last B-frame-reordered one behind its edit list
    assert info["video"]["frames"] == done if ext == "mkv" else done - 1 <= info["video"]["frames"] <= done
    no_leftovers(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_finish_the_file_promptly(clips, tmp_path, sig):
    out = tmp_path / "stopped.mkv"
    proc = start("-i", clips["long"], "-o", out)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 128 + sig, err
    done = int(err.split("holds the first ")[1].split()[0])
    # what was read ahead (a second of decoded frames) is dropped, not upscaled: the old command went on for 31 s
    assert took < 2.0, f"{took:.2f} s from the signal to the end"
    assert 0 < done < 40 and media(out)["video"]["frames"] == done
    no_leftovers(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_before_the_first_frame_writes_nothing(clips, tmp_path, sig):
    for delay in (0.05, 0.3):
        out = tmp_path / "early.mkv"
        proc = subprocess.Popen([tool("vfupscale"), "-i", clips["long"], "-o", out, "-m", "realesrgan-x4plus"],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err
        assert "nothing written" in err or "not written" in err, err
        assert not out.exists()
        no_leftovers(tmp_path)


def test_a_crash_says_so_with_its_stack_and_dies_of_its_signal(clips, tmp_path):
    """A fault (here a SIGSEGV sent from outside) is not swallowed: one line naming it, the stack, then the process
    dies of that signal as it would have."""
    proc = subprocess.Popen([tool("vfupscale"), "-i", clips["long"], "-o", tmp_path / "c.mkv"], stderr=subprocess.PIPE,
                            text=True)
    seen = read_until(proc, "progress:")
    proc.send_signal(signal.SIGSEGV)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGSEGV, seen + err
    assert "vfupscale: crashed (SIGSEGV, sent by another process); please report it with the stack below:" in err, err
    assert "libc.so" in err, "the stack is printed"


def test_audio_mp4_cannot_hold_is_refused_before_anything_runs(tmp_path):
    """Vorbis cannot go into MP4 as it is: said at once, in one line, and nothing is written."""
    clip = tmp_path / "vorbis.mkv"
    subprocess.run(["gst-launch-1.0", "-q", *(
        "videotestsrc num-buffers=12 ! video/x-raw,format=I420,width=96,height=64,framerate=12/1 ! x264enc ! "
        "h264parse ! queue ! mux. audiotestsrc num-buffers=12 ! vorbisenc ! queue ! mux. matroskamux name=mux ! "
        f"filesink location={clip}").split()], check=True)
    out = tmp_path / "out.mp4"
    result = vfupscale("-i", clip, "-o", out)
    assert result.returncode == 1, result.stderr
    assert "the audio stream (audio/x-vorbis) cannot be copied into" in result.stderr and "use .mkv" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vorbis.mkv"]


def test_second_ctrl_c_aborts_and_removes_the_file(tmp_path):
    """A second Ctrl+C while the first is finishing the file aborts: nothing is written. Each 192×128 frame takes
    x4plus on the CPU long enough (a second or more) that the second signal lands while a frame is in flight, on a
    fast machine as on a slow one; the signals follow what the command prints, not a guessed time."""
    clip = make_clip(tmp_path / "big.mkv", 60, audio=True, width=192, height=128)
    out = tmp_path / "aborted.mkv"
    proc = subprocess.Popen([tool("vfupscale"), "-i", clip, "-o", out, "-m", "realesrgan-x4plus"],
                            stderr=subprocess.PIPE, text=True)
    seen = read_until(proc, r"progress: [1-9]")  # a frame is done: the next ones are in flight
    proc.send_signal(signal.SIGINT)
    seen += read_until(proc, "finishing the file")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = seen + err
    assert proc.returncode == 130 and "aborted by a second Ctrl+C" in err, err
    assert not out.exists()
    no_leftovers(tmp_path)


def read_until(proc, pattern: str, timeout=120) -> str:
    """Lines of `proc`'s stderr up to and including the first that matches `pattern`."""
    seen, deadline = "", time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        assert line, f"the command ended before printing {pattern!r}:\n{seen}"
        seen += line
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no {pattern!r} in {timeout} s:\n{seen}")


def one_line_error(result):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfupscale: "), result.stderr
    return lines[0]


def test_bad_input_gives_one_line_and_no_file(clips, tmp_path):
    out = tmp_path / "o.mkv"
    assert "No such file" in one_line_error(vfupscale("-i", tmp_path / "missing.mkv", "-o", out))
    text = tmp_path / "text.mkv"
    text.write_text("not a video")
    assert "not a video file" in one_line_error(vfupscale("-i", text, "-o", out))
    audio_only = tmp_path / "audio-only.mkv"
    subprocess.run(["gst-launch-1.0", "-q", "audiotestsrc", "num-buffers=20", "!", "opusenc", "!", "matroskamux", "!",
                    "filesink", f"location={audio_only}"], check=True)
    assert "no video stream" in one_line_error(vfupscale("-i", audio_only, "-o", out))
    assert "unsupported container .avi" in one_line_error(vfupscale("-i", clips["audio"], "-o", tmp_path / "o.avi"))
    assert "cannot write" in one_line_error(vfupscale("-i", clips["audio"], "-o", tmp_path / "no/such/dir/o.mkv"))
    assert "no installed model" in one_line_error(vfupscale("-i", clips["audio"], "-o", out, "-m", "nonesuch"))
    assert "--precision" in one_line_error(vfupscale("-i", clips["audio"], "-o", out, "-p", "fp8"))
    assert not out.exists()
    no_leftovers(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--bitrate", "0"], "--bitrate 0: x264enc takes 1 to 2048000 kbit/s"),
    (["--bitrate", "5000000"], "--bitrate 5000000: x264enc takes 1 to 2048000 kbit/s"),
    (["--encoder", "x265enc", "--bitrate", "200000"], "--bitrate 200000: x265enc takes 1 to 102400 kbit/s"),
    (["--crf", "999"], "--crf 999: x264enc takes 0 to 50"),
    (["--quality", "999"], "--crf 999: x264enc takes 0 to 50"),
    (["--encoder", "av1enc", "--crf", "64"], "--crf 64: av1enc takes 0 to 63"),
    (["-e", "bogus=1"], "-e bogus=1: x264enc has no property \"bogus\""),
    (["-e", "key-int-max=often"], "key-int-max=\"often\" is not valid: key-int-max takes an integer"),
    (["--preset", "fastest"], "speed-preset=\"fastest\" is not valid: speed-preset takes one of"),
    (["--encoder", "ffv1", "--crf", "3"], "avenc_ffv1 is lossless"),
    (["--encoder", "ffv1", "-o", "OUT.mp4"], "FFV1 (avenc_ffv1) cannot be stored by mp4mux: use .mkv"),
])
def test_values_are_checked_before_the_run(clips, tmp_path, args, message):
    out = tmp_path / "o.mkv"
    args = [str(tmp_path / "o.mp4") if a == "OUT.mp4" else a for a in args]
    if "-o" not in args:
        args += ["-o", str(out)]
    started = time.monotonic()
    result = vfupscale("-i", clips["audio"], *args)
    assert message in one_line_error(result)
    assert result.returncode == 1, "an error, not a crash"
    assert time.monotonic() - started < 10, "refused before the run"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_as_output_is_refused_at_once(clips, tmp_path):
    folder = tmp_path / "out.mkv"
    folder.mkdir()
    started = time.monotonic()
    assert "is a folder" in one_line_error(vfupscale("-i", clips["long"], "-o", folder))
    assert time.monotonic() - started < 10
    assert list(folder.iterdir()) == []


def test_non_utf8_file_names(clips, tmp_path):
    name = os.fsencode(tmp_path) + b"/in-\xff.mkv"
    shutil.copy(clips["audio"], name)
    out = os.fsencode(tmp_path) + b"/out-\xfe.mkv"
    result = subprocess.run([tool("vfupscale"), b"-i", name, b"-o", out, b"-q"], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(out) > 0
    no_leftovers(tmp_path)


def test_stale_part_files_of_killed_runs_are_removed(clips, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".o.mkv.vfupscale-{dead.pid}.part"
    stale.write_bytes(b"left by a killed run")
    mine = tmp_path / f".o.mkv.vfupscale-{os.getpid()}.part"  # a live process's: kept
    mine.write_bytes(b"in use")
    result = vfupscale("-i", clips["silent"], "-o", tmp_path / "o.mkv")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and mine.exists()
    assert f"removed {stale}" in result.stderr


def test_refuses_to_overwrite(clips, tmp_path):
    out = tmp_path / "exists.mkv"
    out.write_bytes(b"keep me")
    assert "use -y" in one_line_error(vfupscale("-i", clips["silent"], "-o", out))
    assert out.read_bytes() == b"keep me"
    assert "overwrite the input" in one_line_error(vfupscale("-i", clips["silent"], "-o", clips["silent"], "-y"))
    result = vfupscale("-i", clips["silent"], "-o", out, "-y", "-q")
    assert result.returncode == 0 and media(out)["video"]["frames"] == 18


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["-V"], ["info", "--help"], ["preview", "-h"],
                                  ["bench", "--help"]])
def test_help_and_version_exit_0(args):
    result = vfupscale(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("vfupscale 0.") if "-V" in args or "--version" in args else "Usage:" in result.stdout


def test_info(tmp_path):
    result = vfupscale("info")
    assert result.returncode == 0, result.stderr
    for needle in ("GStreamer: 1.", "ONNX Runtime:", "execution provider CPU: loads", "default model:"):
        assert needle in result.stdout, result.stdout
    if not os.path.exists("/dev/nvidia0"):
        assert "CUDA: CUDA is not available" in result.stdout


# --- encoders ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder, codec, profile", [
    ("x264enc", "video/x-h264", "high"),
    ("x265enc", "video/x-h265", "main"),
    ("av1enc", "video/x-av1", "main"),
])
def test_encoders_write_4_2_0(clips, tmp_path, encoder, codec, profile):
    # the clips are High 4:4:4 (videotestsrc's default format): the output is 4:2:0 all the same
    assert media(clips["audio"])["video"]["chroma"] == "4:4:4"
    for ext in ("mkv", "mp4"):
        out = tmp_path / f"o.{ext}"
        result = vfupscale("-i", clips["audio"], "-o", out, "--encoder", encoder, "-y")
        assert result.returncode == 0, result.stderr
        v = media(out)["video"]
        assert (v["codec"], v["profile"], v["chroma"], v["frames"]) == (codec, profile, "4:2:0", 24), v
        assert f"encoder {encoder} (crf " in result.stderr


def test_chroma_444_when_asked(clips, tmp_path):
    out = tmp_path / "o.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--encoder", "x265enc", "--chroma", "444")
    assert result.returncode == 0, result.stderr
    assert (media(out)["video"]["profile"], media(out)["video"]["chroma"]) == ("main-444", "4:4:4")


def test_ffv1_is_lossless_in_matroska(clips, tmp_path):
    out = tmp_path / "o.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--encoder", "ffv1")
    assert result.returncode == 0, result.stderr
    assert media(out)["video"]["codec"] == "video/x-ffv" and media(out)["video"]["frames"] == 18
    assert "avenc_ffv1 (lossless" in result.stderr


def test_crf_presets_and_encoder_options_take_effect(clips, tmp_path):
    sizes = {}
    for crf in (10, 45):
        out = tmp_path / f"crf{crf}.mkv"
        result = vfupscale("-i", clips["silent"], "-o", out, "--crf", str(crf), "--preset", "veryfast", "-e",
                           "key-int-max=6")
        assert result.returncode == 0, result.stderr
        assert f"x264enc (crf {crf}, speed-preset veryfast, 4:2:0) key-int-max=6" in result.stderr
        sizes[crf] = out.stat().st_size
    assert sizes[10] > 1.5 * sizes[45], sizes
    out = tmp_path / "x265.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--encoder", "x265", "--crf", "30", "-e",
                       "option-string=keyint=6")
    assert result.returncode == 0 and media(out)["video"]["frames"] == 18, result.stderr


# --- streams ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_subtitles_are_kept(clips, tmp_path, ext):
    out = tmp_path / f"o.{ext}"
    result = vfupscale("-i", clips["subtitled"], "-o", out)
    assert result.returncode == 0, result.stderr
    assert "left out" not in result.stderr
    assert "copied subtitles" in result.stderr
    texts = media(out)["subtitles"][0]["texts"]
    # Pango markup is turned back into text: entities decoded (the demuxer of the check escapes them again)
    assert [t.replace("&amp;", "&").replace("&lt;", "<") for t in texts] == ["Hello & world", "Second line 2 < 3"]


def rotate_90(src: Path, dst: Path):
    """An MP4 whose video track says rotate-90, as phones write them (qtmux cannot: its matrix is patched)."""
    data = bytearray(src.read_bytes())
    tkhd = data.find(b"tkhd")
    assert tkhd > 0 and data[tkhd + 4] == 0, "version-0 track header"
    matrix = tkhd + 4 + 4 + 20 + 8 + 8
    assert data[matrix:matrix + 36] == struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    data[matrix:matrix + 36] = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_rotation_is_kept(clips, tmp_path, ext):
    rotated = tmp_path / "rotated.mp4"
    rotate_90(clips["silent"], rotated)
    assert media(rotated)["video"]["orientation"] == "rotate-90"
    out = tmp_path / f"o.{ext}"
    result = vfupscale("-i", rotated, "-o", out)
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    # turned in the pixels (this GStreamer's muxers cannot store an orientation), so shown the same way
    assert (v["width"], v["height"], v["orientation"], v["frames"]) == (128, 192, None, 18), v
    assert "rotation rotate-90 applied to the frames" in result.stderr


def test_truncated_input_is_reported(clips, tmp_path):
    full = make_clip(tmp_path / "full.mkv", 60, audio=False)
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    result = vfupscale("-i", truncated, "-o", tmp_path / "o.mkv")
    assert result.returncode == 0, result.stderr
    done = media(tmp_path / "o.mkv")["video"]["frames"]
    assert 0 < done < 60
    assert f"the video ended after {done} of the 60 frames its container announces" in result.stderr
    assert "truncated or damaged" in result.stderr
    clean = vfupscale("-i", full, "-o", tmp_path / "full-out.mkv")
    assert clean.returncode == 0 and "may be truncated" not in clean.stderr


# --- sizes ------------------------------------------------------------------------------------------------------

def test_sizes_choose_the_model_that_covers_them(clips, tmp_path):
    cases = [(["--size", "288x192"], (288, 192), "realesr-animevideov3-x3"),
             (["-s", "4"], (384, 256), "realesr-animevideov3-x4"),
             (["-W", "192"], (192, 128), "realesr-animevideov3-x2"),
             (["-H", "256"], (384, 256), "realesr-animevideov3-x4")]
    for args, size, model in cases:
        out = tmp_path / "o.mkv"
        result = vfupscale("-i", clips["silent"], "-o", out, "-y", *args)
        assert result.returncode == 0, result.stderr
        v = media(out)["video"]
        assert (v["width"], v["height"]) == size and f"model {model}" in result.stderr, (args, result.stderr)


def test_sizes_beyond_the_model(clips, tmp_path):
    out = tmp_path / "o.mkv"
    e = one_line_error(vfupscale("-i", clips["silent"], "-o", out, "-m", "realesr-animevideov3-x2", "--size",
                                 "384x256"))
    assert "model realesr-animevideov3-x2 is x2: this size needs x4 or more" in e
    e = one_line_error(vfupscale("-i", clips["silent"], "-o", out, "-s", "9"))
    assert "needs a x9 model" in e and "installed of this family: x2, x3, x4" in e
    assert "smaller than the input" in one_line_error(vfupscale("-i", clips["silent"], "-o", out, "-W", "50"))
    assert "--size" in one_line_error(vfupscale("-i", clips["silent"], "-o", out, "--size", "3840"))


@pytest.mark.parametrize("args, size", [(["-s", "1.5"], (144, 96)), (["--size", "200x100"], (200, 100)),
                                        (["-W", "150"], (150, 100))])
def test_sizes_the_element_scales_to(clips, tmp_path, args, size):
    out = tmp_path / "o.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, *args)
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["width"], v["height"], v["frames"]) == (*size, 18)
    image = tmp_path / "o.png"
    result = vfupscale("-i", png_with_alpha(tmp_path / "in.png"), "-o", image, *args)
    assert result.returncode == 0, result.stderr


def test_classic_backend_strength_and_temporal_stability(clips, tmp_path):
    out = tmp_path / "classic.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--backend", "classic", "--classic-method", "bicubic",
                       "-m", "realesr-animevideov3-x3")
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["width"], v["height"], v["frames"]) == (288, 192, 18)
    assert "model classic bicubic (x3)" in result.stderr and "backend classic" in result.stderr, result.stderr
    out = tmp_path / "blend.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--strength", "0.8", "--temporal-stability", "0.5",
                       "-W", "150")
    assert result.returncode == 0, result.stderr
    assert "strength 0.8, temporal-stability 0.5" in result.stderr, result.stderr
    v = media(out)["video"]
    assert (v["width"], v["height"], v["frames"]) == (150, 100, 18)
    assert "0 to 1" in one_line_error(vfupscale("-i", clips["silent"], "-o", out, "-y", "--strength", "1.5"))
    no_leftovers(tmp_path)


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="needs a machine where the CUDA backend cannot run")
def test_fallback_to_classic_output_is_told(clips, tmp_path):
    out = tmp_path / "fallback.mkv"
    assert "CUDA" in one_line_error(vfupscale("-i", clips["silent"], "-o", out, "--backend", "cuda"))
    result = vfupscale("-i", clips["silent"], "-o", out, "--backend", "cuda", "--fallback", "classic")
    assert result.returncode == 0, result.stderr
    assert "The model cannot be used: classic lanczos output x2 instead" in result.stderr, result.stderr
    assert "the model could not be used: classic output" in result.stderr, result.stderr
    v = media(out)["video"]
    assert (v["width"], v["height"], v["frames"]) == (192, 128, 18)
    no_leftovers(tmp_path)


# --- images, folders, sequences, preview ------------------------------------------------------------------------

def png_with_alpha(path: Path) -> Path:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = np.arange(60)[None, :] * 4
    rgba[..., 1] = 100
    rgba[..., 2] = np.arange(40)[:, None] * 6
    rgba[..., 3] = np.where(np.arange(60)[None, :] < 30, 255, 80)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_images_in_and_out(tmp_path):
    src = png_with_alpha(tmp_path / "a.png")
    rgb = Image.open(src).convert("RGB")
    rgb.save(tmp_path / "b.jpg", quality=95)
    Image.open(src).save(tmp_path / "c.tif")
    rgb.save(tmp_path / "d.webp", lossless=True)
    for name, out, mode in [("a.png", "a-x2.png", "RGBA"), ("b.jpg", "b-x2.png", "RGB"), ("c.tif", "c-x2.tif", "RGBA"),
                            ("d.webp", "d-x2.webp", "RGB"), ("a.png", "a-x2.jpg", "RGB")]:
        result = vfupscale("-i", tmp_path / name, "-o", tmp_path / out)
        assert result.returncode == 0, result.stderr
        img = Image.open(tmp_path / out)
        assert (img.size, img.mode) == ((120, 80), mode), (out, img.size, img.mode)
        # the model's output resembles the source
        small = np.asarray(img.convert("RGB").resize((60, 40), Image.BICUBIC), np.float64)
        assert np.abs(small - np.asarray(rgb, np.float64)).mean() < 12, out
    # the alpha channel is the source's, scaled bicubically
    alpha = np.asarray(Image.open(tmp_path / "a-x2.png"))[..., 3].astype(np.float64)
    expected = np.asarray(Image.open(src).getchannel("A").resize((120, 80), Image.BICUBIC), np.float64)
    assert np.abs(alpha - expected).max() <= 12 and alpha[:, :50].min() > 240 and alpha[:, 70:].max() < 100
    result = vfupscale("-i", src, "-o", tmp_path / "again.png")
    assert "alpha scaled bicubically" in result.stderr
    assert "alpha dropped (JPEG has none)" in vfupscale("-i", src, "-o", tmp_path / "x.jpg").stderr
    no_leftovers(tmp_path)


def test_images_and_videos_do_not_mix_up(clips, tmp_path):
    src = png_with_alpha(tmp_path / "a.png")
    assert "an image gives an image" in one_line_error(vfupscale("-i", src, "-o", tmp_path / "o.mp4"))
    assert "a video gives many frames" in one_line_error(vfupscale("-i", clips["silent"], "-o", tmp_path / "o.png"))


def test_folders_and_several_inputs(clips, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    png_with_alpha(frames / "one.png")
    Image.open(frames / "one.png").convert("RGB").save(frames / "two.jpg")
    (frames / "notes.txt").write_text("not an image")
    result = vfupscale("-i", frames, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.png", "two.jpg"]
    assert Image.open(tmp_path / "out/one.png").size == (120, 80)
    result = vfupscale("-i", clips["silent"], clips["audio"], "-o", tmp_path / "videos/")
    assert result.returncode == 0, result.stderr
    assert media(tmp_path / "videos/silent.mp4")["video"]["frames"] == 18
    assert media(tmp_path / "videos/audio.mkv")["audio"]["codec"] == "audio/x-opus"
    result = vfupscale("-i", str(frames / "*.png"), "-o", tmp_path / "glob/")
    assert result.returncode == 0 and [p.name for p in (tmp_path / "glob").iterdir()] == ["one.png"], result.stderr
    assert "no file matches" in one_line_error(vfupscale("-i", str(frames / "*.gif"), "-o", tmp_path / "g/"))
    assert "not a folder" in one_line_error(vfupscale("-i", clips["silent"], clips["audio"], "-o", clips["silent"]))
    no_leftovers(tmp_path / "out")


def test_image_sequence_output(clips, tmp_path):
    result = vfupscale("-i", clips["silent"], "-o", tmp_path / "seq/%04d.png")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert names == [f"{i:04d}.png" for i in range(1, 19)], names
    assert Image.open(tmp_path / "seq/0001.png").size == (192, 128)
    assert "18 frames" in result.stderr and "in 18 files" in result.stderr
    assert "exists" in one_line_error(vfupscale("-i", clips["silent"], "-o", tmp_path / "seq/%04d.png"))


def test_preview(clips, tmp_path):
    out = tmp_path / "cmp.png"
    result = vfupscale("preview", "-i", clips["long"], "--at", "0:20", "-o", out)
    assert result.returncode == 0, result.stderr
    img = np.asarray(Image.open(out).convert("RGB"), np.float64)
    assert img.shape == (128, 192 * 2 + 8, 3)
    left, right = img[:, :192], img[:, 200:]
    assert 0 < np.abs(left - right).mean() < 20, "bicubic and model output differ, and show the same frame"
    assert "frame at 20.000 s" in result.stderr and "left bicubic, right realesr-animevideov3-x2" in result.stderr
    crop = tmp_path / "crop.png"
    result = vfupscale("preview", "-i", clips["long"], "--crop", "24x16+10+20", "-o", crop)
    assert result.returncode == 0, result.stderr
    # 48×32 of output pixels, enlarged 8× (towards 480 px, at most 8×)
    assert Image.open(crop).size == (384 * 2 + 8, 256)
    assert "outside the 96×64 frame" in one_line_error(vfupscale("preview", "-i", clips["long"], "--crop",
                                                                  "50x50+60+0", "-o", tmp_path / "c.png"))
    assert "the video lasts" in one_line_error(vfupscale("preview", "-i", clips["long"], "--at", "5:00", "-o",
                                                         tmp_path / "c.png"))


def test_bench(clips):
    result = vfupscale("bench", "-i", clips["long"], "--frames", "24")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert [r.split("  ")[0] for r in rows[:3]] == ["decode", "decode + upscale", "decode + upscale + encode"]
    assert all(" 24 frames " in r and " fps " in r for r in rows[:3]), result.stdout
    assert rows[3].startswith("bounded by ") and "fps" in rows[3]


# --- installation -----------------------------------------------------------------------------------------------

def test_meson_install_into_a_scratch_prefix(tmp_path):
    tool("vfupscale"), tool("vfupscale-model"), tool("gst-plugin-vfupscale")  # meson then reuses these builds
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    subprocess.run(["meson", "setup", build, ROOT, f"--prefix={prefix}", f"-Dcargo_target_dir={TARGET}",
                    f"-Dplugins_dir={prefix}/lib/gstreamer-1.0"], check=True, capture_output=True)
    options = {o["name"]: o["value"] for o in json.loads(subprocess.run(
        ["meson", "introspect", "--buildoptions", build], check=True, capture_output=True, text=True).stdout)}
    assert options["buildtype"] == "release"
    subprocess.run(["meson", "install", "-C", build], check=True, capture_output=True)
    plugin = prefix / "lib/gstreamer-1.0/libgstvfupscale.so"
    assert plugin.stat().st_size < 8 << 20, "a release build"
    assert (prefix / "bin/vfupscale").exists() and (prefix / "share/doc/vfupscale/LICENSE").exists()
    env = dict(os.environ, GST_PLUGIN_SYSTEM_PATH=str(prefix / "lib/gstreamer-1.0"),
               GST_REGISTRY=str(tmp_path / "registry.bin"))
    env.pop("GST_PLUGIN_PATH", None)
    inspect = subprocess.run(["gst-inspect-1.0", "vfupscale"], capture_output=True, text=True, env=env)
    assert inspect.returncode == 0 and "vfupscale" in inspect.stdout, inspect.stderr
    # without -Dplugins_dir the plugin goes where this GStreamer looks on its own
    default = tmp_path / "default"
    subprocess.run(["meson", "setup", default, ROOT, f"-Dcargo_target_dir={TARGET}"], check=True, capture_output=True)
    installed = json.loads(subprocess.run(["meson", "introspect", "--installed", default], check=True,
                                          capture_output=True, text=True).stdout)
    pluginsdir = subprocess.run(["pkg-config", "--variable=pluginsdir", "gstreamer-1.0"], check=True,
                                capture_output=True, text=True).stdout.strip()
    assert installed[str(default / "libgstvfupscale.so")] == f"{pluginsdir}/libgstvfupscale.so"


def test_debian_package(tmp_path):
    tool("vfupscale"), tool("vfupscale-model"), tool("gst-plugin-vfupscale")
    result = subprocess.run(["bash", ROOT / "packaging/deb/build.sh", tmp_path], capture_output=True, text=True,
                            env=dict(os.environ, CARGO_TARGET_DIR=str(TARGET)))
    assert result.returncode == 0, result.stderr
    deb = next(tmp_path.glob("vfupscale_*_amd64.deb"))
    contents = subprocess.run(["dpkg-deb", "--contents", deb], check=True, capture_output=True, text=True).stdout
    pluginsdir = subprocess.run(["pkg-config", "--variable=pluginsdir", "gstreamer-1.0"], check=True,
                                capture_output=True, text=True).stdout.strip()
    for path in (f".{pluginsdir}/libgstvfupscale.so", "./usr/bin/vfupscale", "./usr/bin/vfupscale-model",
                 "./usr/share/doc/vfupscale/copyright"):
        assert path in contents, contents
    control = subprocess.run(["dpkg-deb", "--field", deb, "Depends"], check=True, capture_output=True, text=True)
    assert "gstreamer1.0-plugins-good" in control.stdout
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    env = dict(os.environ, GST_PLUGIN_SYSTEM_PATH=str(root) + pluginsdir, GST_REGISTRY=str(tmp_path / "r.bin"))
    inspect = subprocess.run(["gst-inspect-1.0", "vfupscale"], capture_output=True, text=True, env=env)
    assert inspect.returncode == 0, inspect.stderr
