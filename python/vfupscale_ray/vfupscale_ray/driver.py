# SPDX-License-Identifier: MPL-2.0
"""The driver and its Ray tasks. Every task runs the `vfupscale` command; the work folder beside the output (on
storage every node sees at the same path) holds the plan, the segments and their records."""
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import ray

# Fault injection for the tests: a task that finds this variable kills its own worker (SIGKILL) once, mid-segment,
# the first time (the marker file it names does not exist yet); Ray then retries the task.
KILL_ONCE_ENV = "VFUPSCALE_RAY_KILL_ONCE"


class JobFailed(RuntimeError):
    """A step of the job failed for a reason a retry does not change (the command's own one-line error)."""


class SegmentCrashed(RuntimeError):
    """The command died of a signal: retried (as Ray retries a task whose worker died)."""


@dataclass
class Result:
    output: str
    frames: int
    segments: int
    resumed: int
    seconds: float
    audio_seconds: float | None
    copied: list = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _die_with_parent():
    """In the child, before exec: SIGKILL when the task's worker dies, so a retry never races an orphan."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _command(binary: str, args: list, what: str, on_line=None) -> str:
    """Runs `binary args`; its stdout. A failure raises JobFailed with the command's error line (SegmentCrashed when
    it died of a signal)."""
    proc = subprocess.Popen([binary, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)
    err = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    out = []
    for line in proc.stdout:
        out.append(line)
        if on_line:
            on_line(line)
    proc.wait()
    reader.join()
    err = "".join(err)
    if proc.returncode < 0:
        raise SegmentCrashed(f"{what}: vfupscale died of signal {-proc.returncode}")
    if proc.returncode != 0:
        lines = [line for line in err.splitlines() if line.startswith("vfupscale: error: ")]
        why = lines[-1].removeprefix("vfupscale: error: ") if lines else f"exit status {proc.returncode}"
        raise JobFailed(f"{what}: {why}")
    return "".join(out)


@ray.remote(num_gpus=0)
def plan_task(binary: str, args: list) -> dict:
    return json.loads(_command(binary, ["segments", "plan", *args], "planning"))


def _run_segment(binary: str, work: str, index: int) -> dict:
    started = time.monotonic()
    args = ["segments", "run", "--work", work, "--index", index, "--progress", "json", "--progress-ms", "200"]
    if ray.get_gpu_ids():
        # Ray gives the task its GPU(s) through CUDA_VISIBLE_DEVICES: the first visible one is device 0
        args += ["--device", "0"]
    marker = os.environ.get(KILL_ONCE_ENV)

    def on_line(line):
        if marker and '"frames"' in line and json.loads(line).get("frames", 0) > 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

    _command(binary, args, f"segment {index}", on_line)
    return {"index": index, "seconds": time.monotonic() - started, "node": ray.get_runtime_context().get_node_id()}


segment_task = ray.remote(_run_segment)


@ray.remote(num_gpus=0)
def merge_task(binary: str, work: str) -> dict:
    return json.loads(_command(binary, ["segments", "merge", "--work", work], "the final mux"))


def upscale(input: str, output: str, args: list | None = None, *, binary: str = "vfupscale", num_gpus: float = 1,
            num_cpus: float = 1, max_retries: int = 3, segment_frames: int | None = None, log=None) -> Result:
    """Upscales `input` into `output` on the Ray cluster this process is connected to (`ray.init()` first).

    `args` are the `vfupscale` options of the run (model, size, encoder, `--frames`, `--no-resume`, …); `binary`
    the command's path on every node; `num_gpus` each segment's share of a GPU (0.5: two segments per GPU);
    `max_retries` how often a segment whose worker died is run again. Input and output must be on storage every
    node sees at the same path (the work folder is made beside the output)."""
    log = log or (lambda text: print(f"vfupscale-ray: {text}", file=sys.stderr, flush=True))
    started = time.monotonic()
    gpus = ray.cluster_resources().get("GPU", 0)
    if num_gpus > 0 and gpus < num_gpus:
        raise JobFailed(f"the Ray cluster has {gpus:g} GPUs, and each segment asks for {num_gpus:g}: start Ray on GPU "
                        "nodes (or with num_gpus=N for logical ones), or give num_gpus=0 for the CPU path")
    run_args = ["-i", os.path.abspath(input), "-o", os.path.abspath(output), *(args or [])]
    if segment_frames:
        run_args += ["--segment-frames", segment_frames]
    plan = ray.get(plan_task.remote(binary, run_args))
    work, segments = plan["work_dir"], plan["segments"]
    done = [s for s in segments if s["done"]]
    if done:
        log(f"resuming: {len(done)} of {len(segments)} segments are done and verified")
    task = segment_task.options(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries,
                                retry_exceptions=[SegmentCrashed])
    pending = {task.remote(binary, work, s["index"]): s for s in segments if not s["done"]}
    log(f"{plan['frames']} frames in {len(segments)} segments, {len(pending)} to do, {num_gpus} GPU each")
    finished = len(done)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            s = pending.pop(ready[0])
            info = ray.get(ready[0])
            finished += 1
            log(f"segment {s['index']} (frames {s['start']}:{s['end']}) done in {info['seconds']:.1f} s "
                f"({finished}/{len(segments)})")
    except Exception:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    merged = ray.get(merge_task.remote(binary, work))
    if merged["frames"] != plan["frames"]:
        raise JobFailed(f"the final mux holds {merged['frames']} frames of the {plan['frames']} planned")
    result = Result(output=merged["output"], frames=merged["frames"], segments=len(segments), resumed=len(done),
                    seconds=time.monotonic() - started, audio_seconds=merged["audio_seconds"],
                    copied=merged["copied"])
    log(f"{result.output}: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.2f} fps)")
    return result
