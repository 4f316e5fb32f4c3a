"""Frame-exact ranges, segmented runs and resume of the `vfupscale` command (issue 14), on the CPU path with small
generated clips: `--frames` on B-frame, variable-frame-rate and open-GOP inputs gives exactly those frames (decoded
frame hashes and timestamps against the whole run); `--jobs`/`--devices` give the single run's output; `kill -9` in
the middle then the same command again gives the uninterrupted run's output; `--no-resume`; other settings refused.

Outputs are compared by their decoded frames (FFV1 is lossless; x264 with threads=1 is deterministic) and their
timestamps, read by tests/python/frames.py."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, tool
from test_cli import media

SYSTEM_PYTHON = "/usr/bin/python3"  # has PyGObject (python3-gi)
FRAMES = ROOT / "tests/python/frames.py"
CPU = ["--backend", "cpu", "--progress", "none"]
X264_DETERMINISTIC = ["--encoder", "x264", "-e", "threads=1"]


def describe(path: Path) -> dict:
    out = subprocess.run([SYSTEM_PYTHON, FRAMES, "describe", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def gst(description: str):
    subprocess.run(["gst-launch-1.0", "-q", *description.split()], check=True)


def h264_clip(path: Path, frames: int, x264: str, audio: bool) -> Path:
    video = (f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=I420,width=48,height=32,"
             f"framerate=12/1 ! x264enc {x264} ! h264parse ! queue ! mux.")
    sound = (f"audiotestsrc num-buffers={int(frames / 12 * 48000 / 1024)} ! audio/x-raw,rate=48000 ! opusenc ! "
             "opusparse ! queue ! mux." if audio else "")
    gst(f"{video} {sound} matroskamux name=mux ! filesink location={path}")
    return path


def vfupscale(*args):
    return subprocess.run([tool("vfupscale"), *map(str, args)], capture_output=True, text=True)


def run_ok(*args):
    result = vfupscale(*args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("segment-clips")
    vfr = d / "vfr.mkv"
    subprocess.run([SYSTEM_PYTHON, FRAMES, "vfr", vfr, "40"], check=True)
    return {
        "bframes": h264_clip(d / "bframes.mkv", 60, "bframes=2 key-int-max=12", audio=True),
        # open GOP: I-frames that are not IDR, with leading B-frames that reference the GOP before
        "opengop": h264_clip(d / "opengop.mkv", 60, "bframes=3 key-int-max=12 option-string=open-gop=1", audio=False),
        "vfr": vfr,
        "long": h264_clip(d / "long.mkv", 240, "bframes=2 key-int-max=10", audio=True),
    }


@pytest.fixture(scope="module")
def whole(clips, tmp_path_factory):
    """The whole run of each clip (FFV1), described; made once."""
    d = tmp_path_factory.mktemp("whole")
    done = {}

    def get(name):
        if name not in done:
            out = d / f"{name}.mkv"
            run_ok("-i", clips[name], "-o", out, "--encoder", "ffv1", *CPU)
            done[name] = describe(out)
        return done[name]

    return get


def relative(frames, first=None):
    """(timestamp from the first frame, duration, hash) of each frame."""
    base = frames[0][0] if first is None else first
    return [(t - base, d, h) for t, d, h in frames]


@pytest.mark.parametrize("name, start, end", [("bframes", 13, 37), ("bframes", 0, 5), ("bframes", 50, 60),
                                              ("opengop", 13, 37), ("opengop", 12, 13), ("opengop", 24, 25),
                                              ("opengop", 35, 38), ("vfr", 7, 29), ("vfr", 12, 13)])
def test_frames_are_exact(clips, whole, tmp_path, name, start, end):
    out = tmp_path / "range.mkv"
    result = run_ok("-i", clips[name], "-o", out, "--frames", f"{start}:{end}", "--encoder", "ffv1", *CPU)
    assert f": {end - start} frame" in result.stderr
    want = whole(name)["frames"][start:end]
    got = describe(out)["frames"]
    assert len(got) == end - start
    assert relative(got) == relative(want), "the same decoded frames, timestamps and durations"
    if name == "bframes":  # the audio of those frames (whole Opus packets of 20 ms)
        first, end_ns = describe(out)["audio"]
        assert first < 25_000_000 and abs(end_ns - (end - start) * 1e9 / 12) < 100_000_000, (first, end_ns)
    assert not list(tmp_path.glob(".*vfupscale*")), "no work folder or part file left"


def test_a_range_starts_with_an_idr_frame(clips, whole, tmp_path):
    out = tmp_path / "range.mkv"
    run_ok("-i", clips["opengop"], "-o", out, "--frames", "13:37", *X264_DETERMINISTIC, *CPU)
    d = describe(out)
    assert d["packets"][0][1], "the first packet is a keyframe"
    assert 5 in d["first_nal_types"], f"an IDR slice in the first packet: {d['first_nal_types']}"
    assert len(d["frames"]) == 24
    assert [t - d["frames"][0][0] for t, _, _ in d["frames"]] == \
        [t - whole("opengop")["frames"][13][0] for t, _, _ in whole("opengop")["frames"][13:37]]


@pytest.mark.parametrize("frames, message", [("50:70", "--frames 50:70: the video has 60 frames (0:60)"),
                                             ("60:", "--frames 60:: no frame in this range"),
                                             ("9:3", "END must be greater than START"),
                                             ("a:b", "is not START:END")])
def test_bad_ranges_are_one_line_errors(clips, tmp_path, frames, message):
    out = tmp_path / "o.mkv"
    result = vfupscale("-i", clips["bframes"], "-o", out, "--frames", frames, *CPU)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["--jobs", "2", "--segment-frames", "10"], ["--jobs", "3", "--segment-frames", "7"],
                                  ["--devices", "0,1", "--segment-frames", "25"], ["--segment-frames", "12"]])
def test_segmented_runs_equal_the_single_run(clips, whole, tmp_path, args):
    out = tmp_path / "seg.mkv"
    run_ok("-i", clips["bframes"], "-o", out, "--encoder", "ffv1", *args, *CPU)
    got, want = describe(out), whole("bframes")
    assert got["frames"] == want["frames"], "same decoded frames with the same timestamps and durations"
    assert got["audio"] == want["audio"], "the audio copied once, whole"
    assert [p.name for p in tmp_path.iterdir()] == ["seg.mkv"], "the work folder is removed"


@pytest.mark.parametrize("name, size", [("vfr", 9), ("opengop", 12), ("opengop", 11)])
def test_segmented_vfr_and_open_gop(clips, whole, tmp_path, name, size):
    """Variable frame rate: the timestamps stay the source's; open GOP: segments that start at (or just before) an
    I-frame with leading pictures."""
    out = tmp_path / "seg.mkv"
    run_ok("-i", clips[name], "-o", out, "--encoder", "ffv1", "--jobs", "2", "--segment-frames", size, *CPU)
    assert describe(out)["frames"] == whole(name)["frames"]


def start_and_kill(clip: Path, out: Path, *args):
    """Starts a run, `kill -9`s it once three segments are recorded; the work folder it left."""
    work = out.parent / f".{out.name}.vfupscale-work"
    proc = subprocess.Popen([tool("vfupscale"), "-i", clip, "-o", out, *map(str, args)], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (work / "seg-00002.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended ({proc.returncode}) before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the workers die with it (PR_SET_PDEATHSIG)
    deadline = time.time() + 10
    while time.time() < deadline and subprocess.run(["pgrep", "-f", f"segments run .*--work {work}"],
                                                    capture_output=True).returncode == 0:
        time.sleep(0.1)
    assert not out.exists()
    return work


@pytest.fixture(scope="module")
def uninterrupted(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "ref.mkv"
    run_ok("-i", clips["long"], "-o", out, "--segment-frames", "24", *X264_DETERMINISTIC, *CPU)
    return describe(out)


RESUMABLE = ["--segment-frames", "24", *X264_DETERMINISTIC, *CPU]


def test_kill_9_then_the_same_command_gives_the_same_output(clips, uninterrupted, tmp_path):
    out = tmp_path / "k.mkv"
    work = start_and_kill(clips["long"], out, *RESUMABLE)
    assert (work / "manifest.json").exists()
    result = run_ok("-i", clips["long"], "-o", out, *RESUMABLE)
    kept = int(result.stderr.split("resuming: ")[1].split()[0])
    assert 3 <= kept < 10, result.stderr
    assert describe(out) == uninterrupted, "the same packets, decoded frames, timestamps and audio"
    assert not work.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["k.mkv"]


def test_plain_run_resumes_with_automatic_segments(clips, uninterrupted, tmp_path):
    """Without --segment-frames: the same command again resumes the plan the first run made."""
    out = tmp_path / "plain.mkv"
    args = [*X264_DETERMINISTIC, *CPU]
    work = start_and_kill(clips["long"], out, *args, "--segment-frames", "24")
    result = run_ok("-i", clips["long"], "-o", out, *args)
    assert "resuming: " in result.stderr
    assert describe(out) == uninterrupted
    assert not work.exists()


def test_no_resume_starts_over(clips, uninterrupted, tmp_path):
    out = tmp_path / "n.mkv"
    work = start_and_kill(clips["long"], out, *RESUMABLE)
    result = run_ok("-i", clips["long"], "-o", out, *RESUMABLE, "--no-resume")
    assert "resuming" not in result.stderr
    assert describe(out) == uninterrupted
    assert not work.exists()


def test_other_settings_are_refused(clips, tmp_path):
    out = tmp_path / "s.mkv"
    work = start_and_kill(clips["long"], out, *RESUMABLE)
    before = sorted(p.name for p in work.iterdir())
    result = vfupscale("-i", clips["long"], "-o", out, *RESUMABLE, "--crf", "30")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfupscale: error: "), result.stderr
    assert "interrupted run with other settings" in lines[0] and "crf" in lines[0] and "--no-resume" in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in work.iterdir()) == before, "the finished segments are kept"


def test_a_damaged_segment_is_done_again(clips, uninterrupted, tmp_path):
    out = tmp_path / "d.mkv"
    work = start_and_kill(clips["long"], out, *RESUMABLE)
    segment = work / "seg-00001.mkv"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = run_ok("-i", clips["long"], "-o", out, *RESUMABLE)
    assert "segment 1 (frames 24:48) is done again" in result.stderr, result.stderr
    assert describe(out) == uninterrupted


def test_segments_plan_run_merge(clips, whole, tmp_path):
    """The steps a distributed driver runs (python/vfupscale_ray): plan, each segment, merge."""
    out = tmp_path / "p.mkv"
    common = ["-i", clips["bframes"], "-o", out, "--encoder", "ffv1", "--segment-frames", "20", "--backend", "cpu"]
    plan = json.loads(run_ok("segments", "plan", *common).stdout)
    assert [(s["start"], s["end"], s["done"]) for s in plan["segments"]] == \
        [(0, 20, False), (20, 40, False), (40, 60, False)]
    for s in reversed(plan["segments"]):
        run_ok("segments", "run", "--work", plan["work_dir"], "--index", s["index"])
    again = json.loads(run_ok("segments", "plan", *common).stdout)
    assert all(s["done"] for s in again["segments"])
    merged = json.loads(run_ok("segments", "merge", "--work", plan["work_dir"]).stdout)
    assert merged["frames"] == 60
    assert describe(out)["frames"] == whole("bframes")["frames"]
    assert not Path(plan["work_dir"]).exists()
    assert os.listdir(tmp_path) == ["p.mkv"]


@pytest.mark.parametrize("name, ext", [("bframes", "mp4"), ("vfr", "mp4"), ("bframes", "mov")])
def test_segmented_mp4_equals_the_single_run(clips, whole, tmp_path, name, ext):
    """MP4 and MOV store decode timestamps (B-frames: the first ones before the first frame) and take no duration
    per sample: `--jobs 2` equals the single run (the same packets, decoded frames, timestamps and audio), decodes to
    the .mkv output's frames, and keeps the source's timestamps (within MP4's rounding of Matroska's milliseconds)."""
    args = ["--segment-frames", "10", *X264_DETERMINISTIC, *CPU]
    single, jobs, mkv = tmp_path / f"single.{ext}", tmp_path / f"jobs.{ext}", tmp_path / "jobs.mkv"
    run_ok("-i", clips[name], "-o", single, *args)
    run_ok("-i", clips[name], "-o", jobs, "--jobs", "2", *args)
    run_ok("-i", clips[name], "-o", mkv, "--jobs", "2", *args)
    got, ref, source = describe(jobs), describe(mkv), whole(name)["frames"]
    assert got == describe(single), "the same packets, decoded frames, timestamps and audio"
    assert [f[2] for f in got["frames"]] == [f[2] for f in ref["frames"]], "no frame lost, doubled or reordered"
    assert len(got["frames"]) == len(source)
    assert max(abs(g[0] - s[0]) for g, s in zip(got["frames"], source)) <= 1_000_000
    assert got["audio"] == ref["audio"], "the audio copied once, whole"
    # the container's duration is the video's, the reordering delay of the encoder's B-frames not added at the end
    # (the vfr clip's frames carry no durations: Matroska ends at the last frame's start, MP4 gives it the gap
    # before it, 120 ms)
    last = 0.12 if name == "vfr" else 0.0
    durations = media(jobs)["duration"], media(mkv)["duration"]
    assert abs(durations[0] - durations[1] - last) < 0.005, durations
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (single, jobs, mkv))


def test_mp4_ranges_and_resume(clips, tmp_path):
    """`--frames` into .mp4, and `kill -9` in the middle of a plain .mp4 run then the same command again gives the
    uninterrupted run's output."""
    out = tmp_path / "r.mp4"
    run_ok("-i", clips["bframes"], "-o", out, "--frames", "13:37", *X264_DETERMINISTIC, *CPU)
    assert len(describe(out)["frames"]) == 24
    ref = tmp_path / "ref.mp4"
    run_ok("-i", clips["long"], "-o", ref, *RESUMABLE)
    out = tmp_path / "k.mp4"
    work = start_and_kill(clips["long"], out, *RESUMABLE)
    result = run_ok("-i", clips["long"], "-o", out, *RESUMABLE)
    assert "resuming: " in result.stderr
    assert describe(out) == describe(ref), "the same packets, decoded frames, timestamps and audio"
    assert not work.exists()


def test_temporal_stability_runs_as_one_pipeline(clips, tmp_path):
    """Its history runs from frame to frame: segments would restart it, so --jobs is refused and a plain run is not
    segmented (no work folder appears)."""
    result = vfupscale("-i", clips["bframes"], "-o", tmp_path / "j.mkv", "--jobs", "2", "--temporal-stability",
                       "0.5", *CPU)
    assert result.returncode == 1 and "--temporal-stability carries each frame's history" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    # nor does the plan a distributed driver asks for (its workers would run without the history)
    result = vfupscale("segments", "plan", "-i", clips["bframes"], "-o", tmp_path / "p.mkv", "--temporal-stability",
                       "0.5", *CPU)
    assert result.returncode != 0 and "--temporal-stability carries each frame's history" in result.stderr
    assert not list(tmp_path.iterdir())
    out = tmp_path / "t.mkv"
    run_ok("-i", clips["bframes"], "-o", out, "--frames", "0:12", "--temporal-stability", "0.5", *CPU)
    assert len(describe(out)["frames"]) == 12
    assert os.listdir(tmp_path) == ["t.mkv"]
