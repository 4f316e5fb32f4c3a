#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Builds the kernel labs into .lab/ (git-ignored) on the development machine: g++ and the CUDA headers only (the
# labs open libcuda.so.1 and libnvrtc.so.13 at run time, and compile the kernels with NVRTC on the GPU host).
#   bash tools/kernel-lab/build.sh            CUDA_INCLUDE=... overrides where cuda.h and nvrtc.h come from
# Run on the GPU host from the repository root:
#   .lab/srvgg_lab src/native/kernels 40
#   .lab/rrdb_lab tools/kernel-lab 40
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
include="${CUDA_INCLUDE:-/work/lab/venv/lib/python3.11/site-packages/nvidia/cu13/include}"
if [[ ! -f "$include/cuda.h" || ! -f "$include/nvrtc.h" ]]; then
    echo "build.sh: no cuda.h / nvrtc.h in $include (set CUDA_INCLUDE)" >&2
    exit 1
fi
mkdir -p "$root/.lab"
for lab in srvgg_lab rrdb_lab; do
    g++ -O2 -std=c++17 -Wall -Wno-unused-function -I"$include" -o "$root/.lab/$lab" \
        "$root/tools/kernel-lab/$lab.cpp" -ldl -lpthread
    echo "built .lab/$lab"
done
