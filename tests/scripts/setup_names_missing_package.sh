#!/usr/bin/env bash
# scripts/setup.sh must stop with a non-zero code and name a Debian package it needs but cannot get,
# both when told not to install and when apt has no such package. It must not touch the build.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg=r1hpc-no-such-package
for mode in report install; do
  if [[ $mode == report ]]; then
    out=$(R1HPC_NO_INSTALL=1 R1HPC_EXTRA_PACKAGES=$pkg R1HPC_BUILD_DIR=/nonexistent "$root/scripts/setup.sh" 2>&1)
  else
    out=$(R1HPC_EXTRA_PACKAGES=$pkg R1HPC_BUILD_DIR=/nonexistent "$root/scripts/setup.sh" 2>&1)
  fi
  rc=$?
  echo "--- $mode: exit $rc"
  echo "$out" | tail -5
  [[ $rc -ne 0 ]] || { echo "FAIL: setup succeeded although $pkg is missing"; exit 1; }
  echo "$out" | grep -q "$pkg" || { echo "FAIL: setup did not name $pkg"; exit 1; }
  [[ ! -e /nonexistent ]] || { echo "FAIL: setup configured a build"; exit 1; }
done
echo "PASS"
