# SPDX-License-Identifier: MPL-2.0
"""python/vfupscale_ray on a local Ray cluster with two logical GPUs, through the CPU path: one task per segment
(num_gpus 0.5 and 0.25), a worker killed mid-segment and its task retried, the merge as a last task; the output is
the single run's (decoded frames, timestamps, audio), and a bad input fails with the command's own error."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, tool

ray = pytest.importorskip("ray")
sys.path.insert(0, str(ROOT / "python/vfupscale_ray"))
import vfupscale_ray  # noqa: E402
from vfupscale_ray.driver import KILL_ONCE_ENV  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
ARGS = ["--backend", "cpu", "--encoder", "ffv1"]


def describe(path: Path) -> dict:
    out = subprocess.run([SYSTEM_PYTHON, ROOT / "tests/python/frames.py", "describe", path], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    clip = d / "clip.mkv"
    subprocess.run(["gst-launch-1.0", "-q", *(
        "videotestsrc num-buffers=72 pattern=ball ! video/x-raw,format=I420,width=48,height=32,framerate=12/1 ! "
        "x264enc bframes=2 key-int-max=12 ! h264parse ! queue ! mux. audiotestsrc num-buffers=280 ! "
        "audio/x-raw,rate=48000 ! opusenc ! opusparse ! queue ! mux. matroskamux name=mux ! "
        f"filesink location={clip}").split()], check=True)
    single = d / "single.mkv"
    done = subprocess.run([tool("vfupscale"), "-i", clip, "-o", single, *ARGS, "--progress", "none"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    marker = d / "killed-once"
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"py_modules": [vfupscale_ray], "env_vars": {KILL_ONCE_ENV: str(marker)}})
    yield {"clip": clip, "single": describe(single), "marker": marker, "dir": d}
    ray.shutdown()


def test_a_killed_worker_is_retried_and_the_output_is_the_single_runs(setup, tmp_path):
    out = tmp_path / "ray.mkv"
    lines = []
    result = vfupscale_ray.upscale(setup["clip"], out, ARGS, binary=str(tool("vfupscale")), num_gpus=0.5,
                                   segment_frames=12, log=lines.append)
    assert setup["marker"].exists(), "one worker was killed mid-segment"
    assert result.frames == 72 and result.segments == 6 and result.resumed == 0
    assert sum("done in" in line for line in lines) == 6, lines
    got = describe(out)
    assert got["frames"] == setup["single"]["frames"], "same decoded frames, timestamps and durations"
    assert got["audio"] == setup["single"]["audio"]
    assert abs(result.audio_seconds - got["audio"][1] / 1e9) < 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["ray.mkv"], "the work folder is removed"


def test_quarter_gpus_and_a_resumed_plan(setup, tmp_path):
    out = tmp_path / "q.mkv"
    binary = str(tool("vfupscale"))
    # a plan whose first segment a previous job finished
    plan = json.loads(subprocess.run([binary, "segments", "plan", "-i", setup["clip"], "-o", out, *ARGS,
                                      "--segment-frames", "18"], capture_output=True, text=True, check=True).stdout)
    subprocess.run([binary, "segments", "run", "--work", plan["work_dir"], "--index", "0", "--quiet"], check=True)
    lines = []
    result = vfupscale_ray.upscale(setup["clip"], out, ARGS, binary=binary, num_gpus=0.25, log=lines.append)
    assert result.resumed == 1 and result.segments == 4, lines
    assert "resuming: 1 of 4 segments are done and verified" in lines
    assert describe(out)["frames"] == setup["single"]["frames"]


def test_errors_are_the_commands_own(setup, tmp_path):
    missing = tmp_path / "missing.mkv"
    with pytest.raises(vfupscale_ray.JobFailed, match=r"planning: .*missing\.mkv"):
        vfupscale_ray.upscale(missing, tmp_path / "o.mkv", ARGS, binary=str(tool("vfupscale")))
    assert list(tmp_path.iterdir()) == []
