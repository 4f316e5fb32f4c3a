#!/usr/bin/env bash
# Builds what the GPU suite runs into DIR: the plugin, the commands (release) and the two GPU test binaries
# (gpu-core: tests/gpu_kernels.rs, gpu-plugin: plugins/vfupscale/tests/gpu.rs). Used by run.sh and pack-for-host.sh.
# Usage: tests/gpu/build.sh DIR
set -euo pipefail
mkdir -p "${1:?usage: build.sh DIR}"
bin=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
cargo build --release -p gst-plugin-vfupscale -p vfupscale-model -p vfupscale-bench -p vfupscale-cli
cp target/release/libgstvfupscale.so target/release/vfupscale-model target/release/vfupscale-bench \
  target/release/vfupscale "$bin/"
cargo test --release -p vfupscale --test gpu_kernels -p gst-plugin-vfupscale --test gpu --no-run \
  --message-format=json | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("gpu", "gpu_kernels"):
        shutil.copy(m["executable"], sys.argv[1] + "/" + {"gpu": "gpu-plugin", "gpu_kernels": "gpu-core"}[m["target"]["name"]])
' "$bin"
