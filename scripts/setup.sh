#!/usr/bin/env bash
# Installs the Debian packages r1hpc needs (only the missing ones), then configures and builds Release
# into build/. Idempotent: a second run installs nothing and rebuilds only what changed.
#   R1HPC_ENABLE_CUDA=AUTO|ON|OFF   CUDA backend (default AUTO: on when nvcc is found)
#   R1HPC_BUILD_DIR=build           where to build
#   R1HPC_NO_INSTALL=1              never install: report missing packages and stop
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per package: what r1hpc needs it for is in DESIGN §3 / README "Requirements".
PACKAGES=(
  build-essential cmake ninja-build ccache git
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  libboost-program-options-dev
  libgtest-dev
  nlohmann-json3-dev
  libpcre2-dev libutf8proc-dev
  libhdf5-dev hdf5-tools
  python3 python3-h5py python3-numpy python3-matplotlib
  slurm-wlm munge
)
# Extra packages named by the caller (also how the missing-package report is tested).
read -r -a EXTRA <<< "${R1HPC_EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ "${R1HPC_NO_INSTALL:-0}" == 1 ]]; then
    echo "setup: missing Debian package(s): ${missing[*]}" >&2
    echo "setup: install them with: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=""
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: missing Debian package(s): ${missing[*]}; run as root or install sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || { echo "setup: apt-get update failed; missing package(s): ${missing[*]}" >&2; exit 1; }
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      echo "setup: Debian package '$p' is not available from the configured apt sources" >&2
      exit 1
    fi
  done
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/r1hpc-apt.log 2>&1; then
    tail -20 /tmp/r1hpc-apt.log >&2
    echo "setup: apt-get install failed for: ${missing[*]}" >&2
    exit 1
  fi
fi

build=${R1HPC_BUILD_DIR:-build}
cuda=${R1HPC_ENABLE_CUDA:-AUTO}
if [[ ! -f $build/build.ninja ]] || ! grep -q "^R1HPC_ENABLE_CUDA:STRING=$cuda\$" "$build/CMakeCache.txt" 2>/dev/null; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DR1HPC_ENABLE_CUDA="$cuda"
fi
cmake --build "$build" -j "$(nproc)"
echo "setup: built $build/bin/r1hpc"
