"""The `vfupscale` command on short generated clips, through the CPU path (CI has no GPU): frame count, output
size, audio kept, duration, Ctrl+C, and one-line errors that leave no file behind."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, tool

SYSTEM_PYTHON = "/usr/bin/python3"  # has PyGObject (python3-gi)


def media(path: Path) -> dict:
    out = subprocess.run([SYSTEM_PYTHON, ROOT / "tests/python/media.py", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def make_clip(path: Path, frames: int, audio: bool, width=96, height=64, fps=12):
    video = (f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={width},height={height},"
             f"framerate={fps}/1 ! x264enc ! h264parse ! queue ! mux.")
    sound = (f"audiotestsrc num-buffers={int(frames / fps * 48000 / 1024) + 1} ! audio/x-raw,rate=48000 ! "
             "opusenc ! opusparse ! queue ! mux." if audio else "")
    muxer = "matroskamux" if path.suffix == ".mkv" else "mp4mux"
    subprocess.run(["gst-launch-1.0", "-q", *f"{video} {sound} {muxer} name=mux ! filesink location={path}".split()],
                   check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "audio": make_clip(d / "audio.mkv", 24, audio=True),
        "silent": make_clip(d / "silent.mp4", 18, audio=False),
        "long": make_clip(d / "long.mkv", 600, audio=True),
    }


def vfupscale(*args, **kwargs):
    return subprocess.run([tool("vfupscale"), *map(str, args)], capture_output=True, text=True, **kwargs)


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


def test_progress_lines_when_not_a_terminal(clips, tmp_path):
    result = vfupscale("-i", clips["long"], "-o", tmp_path / "p.mkv", "-m", "waifu2x-upconv7-x2")
    assert result.returncode == 0, result.stderr
    assert "progress: " in result.stderr and "fps" in result.stderr and "ETA" in result.stderr


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_ctrl_c_finishes_a_playable_file(clips, tmp_path, ext):
    out = tmp_path / f"interrupted.{ext}"
    proc = subprocess.Popen([tool("vfupscale"), "-i", clips["long"], "-o", out], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline and "progress:" not in line:  # upscaling has started
        line = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = int(err.split("holds the first ")[1].split()[0])
    info = media(out)
    assert 0 < done < 600
    # Matroska keeps every frame; MP4 may hide the last B-frame-reordered one behind its edit list
    assert info["video"]["frames"] == done if ext == "mkv" else done - 1 <= info["video"]["frames"] <= done
    no_leftovers(tmp_path)


def test_second_ctrl_c_aborts_and_removes_the_file(clips, tmp_path):
    out = tmp_path / "aborted.mkv"
    proc = subprocess.Popen([tool("vfupscale"), "-i", clips["long"], "-o", out, "-m", "realesrgan-x4plus"],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "aborted" in err
    assert not out.exists()
    no_leftovers(tmp_path)


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


def test_refuses_to_overwrite(clips, tmp_path):
    out = tmp_path / "exists.mkv"
    out.write_bytes(b"keep me")
    assert "use -y" in one_line_error(vfupscale("-i", clips["silent"], "-o", out))
    assert out.read_bytes() == b"keep me"
    assert "overwrite the input" in one_line_error(vfupscale("-i", clips["silent"], "-o", clips["silent"], "-y"))
    result = vfupscale("-i", clips["silent"], "-o", out, "-y", "-q")
    assert result.returncode == 0 and media(out)["video"]["frames"] == 18


def test_info(tmp_path):
    result = vfupscale("info")
    assert result.returncode == 0, result.stderr
    for needle in ("GStreamer: 1.", "ONNX Runtime:", "execution provider CPU: loads", "default model:"):
        assert needle in result.stdout, result.stdout
    if not os.path.exists("/dev/nvidia0"):
        assert "CUDA: CUDA is not available" in result.stdout


def test_classic_backend_strength_fallback_and_temporal_stability(clips, tmp_path):
    out = tmp_path / "classic.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--backend", "classic", "--scale", "3",
                       "--classic-method", "bicubic")
    assert result.returncode == 0, result.stderr
    assert (media(out)["video"]["width"], media(out)["video"]["height"], media(out)["video"]["frames"]) == (288, 192, 18)
    assert "model classic bicubic x3" in result.stderr and "backend classic" in result.stderr, result.stderr
    out = tmp_path / "blend.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "--strength", "0.8", "--temporal-stability", "0.5")
    assert result.returncode == 0, result.stderr
    assert "strength 0.8, temporal-stability 0.5" in result.stderr, result.stderr
    assert media(out)["video"]["frames"] == 18
    # a model that cannot be read: classic output and the warning, instead of the error
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    out = tmp_path / "fallback.mkv"
    result = vfupscale("-i", clips["silent"], "-o", out, "-m", broken, "--fallback", "classic")
    assert result.returncode == 0, result.stderr
    assert media(out)["video"]["frames"] == 18 and "the model could not run: classic output" in result.stderr
    assert "broken.onnx" in result.stderr, "the warning names the model"
    assert "--strength takes a number from 0 to 1" in one_line_error(vfupscale("-i", clips["silent"], "-o", out,
                                                                                "-y", "--strength", "1.5"))
    assert "--fallback takes none or classic" in one_line_error(vfupscale("-i", clips["silent"], "-o", out, "-y",
                                                                           "--fallback", "maybe"))
    no_leftovers(tmp_path)
