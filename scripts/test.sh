#!/usr/bin/env bash
# The whole CPU test suite, on a fresh Debian/Ubuntu machine (installs what it needs first):
#   formatting, lints, Rust unit and integration tests (element, CLI, core), and the Python tests
#   (model conversion against ncnn itself, the PyGObject example).
# GPU tests are separate: tests/gpu/run.sh on an NVIDIA host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
target/test-venv/bin/python -m pytest -q tests/python
