# Sourced by the end-to-end test scripts: a scratch directory removed on exit (and entered), one OpenMP
# thread per rank (ranks share the cores), and fail() for a clear last line.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export OMP_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
