# SPDX-License-Identifier: MPL-2.0
"""`python -m vfupscale_ray -i IN -o OUT [options] [-- vfupscale options]`: one job on a Ray cluster."""
import argparse
import sys

import ray

import vfupscale_ray

from .driver import JobFailed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vfupscale-ray", description=vfupscale_ray.__doc__.split("\n\n")[0])
    p.add_argument("-i", "--input", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--binary", default="vfupscale", help="the vfupscale command on every node")
    p.add_argument("--num-gpus", type=float, default=1.0, help="GPU share of each segment (0.5: two per GPU)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs of each segment")
    p.add_argument("--max-retries", type=int, default=3, help="runs again of a segment whose worker died")
    p.add_argument("--segment-frames", type=int, default=None, help="frames per segment (default: the plan's)")
    p.add_argument("--local-gpus", type=float, default=None,
                   help="GPUs of a local Ray instance (default: those detected; logical ones for tests)")
    p.add_argument("vfupscale_args", nargs="*", help="options for vfupscale, after --")
    a = p.parse_args(argv)
    local = {"num_gpus": a.local_gpus} if a.local_gpus is not None and a.address is None else {}
    ray.init(address=a.address, runtime_env={"py_modules": [vfupscale_ray]}, **local)
    try:
        vfupscale_ray.upscale(a.input, a.output, a.vfupscale_args, binary=a.binary, num_gpus=a.num_gpus,
                              num_cpus=a.num_cpus, max_retries=a.max_retries, segment_frames=a.segment_frames)
    except JobFailed as e:
        print(f"vfupscale-ray: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
