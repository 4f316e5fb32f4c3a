# SPDX-License-Identifier: MPL-2.0
"""vfupscale on Ray: the driver plans a run's segments with `vfupscale segments plan`, submits one Ray task per
segment (each runs `vfupscale segments run` for its range into the run's work folder on shared storage, with a GPU
or a fraction of one, retried when its worker dies), then runs `vfupscale segments merge` as a last task: the output
is checked (frame count, every timestamp, audio duration) before it is renamed into place.

    import ray, vfupscale_ray
    ray.init()                      # or ray.init(address="auto") on a node of a cluster (ray start, KubeRay)
    vfupscale_ray.upscale("in.mkv", "out.mkv", ["-m", "realesrgan-x4plus"], num_gpus=0.5)

An interrupted job (driver killed, cluster lost) resumes when started again with the same arguments: the plan keeps
the segments that verify and only the rest are submitted.
"""
from .driver import JobFailed, Result, upscale

__all__ = ["JobFailed", "Result", "upscale"]
