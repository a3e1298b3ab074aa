#!/usr/bin/env bash
# On the development machine: downloads into .deps/ the Debian packages the GPU machine lacks
# (Boost.ProgramOptions compiled library with its matching headers, nlohmann-json, PCRE2 and utf8proc with
# their shared libraries). .deps/ is
# git-ignored and travels with the tree; scripts/gpu/run.sh unpacks it there.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deps
cd .deps
pkgs=(libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev nlohmann-json3-dev
      libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2)
for p in "${pkgs[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p" 2>/dev/null || { echo "fetch_deps: could not download $p" >&2; exit 1; }
done
du -sh .
