#!/usr/bin/env bash
# Called by meson.build: builds with cargo and copies the artifacts to the paths meson expects.
# Usage: meson-cargo.sh CARGO SOURCE_DIR TARGET_DIR debug|release lib|bin OUTPUT...
set -euo pipefail
cargo=$1 source=$2 target=$3 profile=$4 kind=$5
shift 5
flags=(--manifest-path "$source/Cargo.toml" --target-dir "$target")
[ "$profile" = release ] && flags+=(--release)
if [ "$kind" = lib ]; then
  "$cargo" build "${flags[@]}" -p gst-plugin-vfupscale
  cp "$target/$profile/libgstvfupscale.so" "$1"
else
  # one package per build, as the test suite builds them: features unify per build, so building them together
  # would make other binaries than those the tests ran
  "$cargo" build "${flags[@]}" -p vfupscale-cli
  "$cargo" build "${flags[@]}" -p vfupscale-model
  cp "$target/$profile/vfupscale" "$1"
  cp "$target/$profile/vfupscale-model" "$2"
fi
