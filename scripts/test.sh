#!/usr/bin/env bash
# Runs setup (install, configure, build), then every test but the `gpu` label. Non-zero on any failure.
# Arguments are passed to ctest (e.g. -L mpi, -R deck).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${R1HPC_BUILD_DIR:-build}
ctest --test-dir "$build" -LE gpu --output-on-failure -j "$(nproc)" "$@"
