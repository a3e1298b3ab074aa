#!/usr/bin/env bash
# Runs `r1hpc --dry-run` on one bad deck the way a user would and checks what they get: exit code 2,
# one "r1hpc: error: LOCATION: ..." line holding the expected fragment, and nothing written. The deck's
# header states the expectation (format in bad_deck_test.cpp). Run from tests/deck.
# usage: run_bad_deck.sh R1HPC MPIEXEC DECK SCRATCH_DIR
set -u
r1hpc=$1 mpiexec=$2 deck=$3 scratch=$4

header() { sed -n "s/^# $1: //p" "$deck"; }
error=$(header error | head -n 1)
loc=${error%%: *}
fragment=${error#*: }
case $loc in
  --set*) ;;
  *[!0-9]*) loc="$(dirname "$deck")/$loc" ;;
  *) loc="$deck:$loc" ;;
esac
world=$(header world)
world=${world:-1}

args=(--dry-run "$deck")
grep -qx '# own-output-dir' "$deck" || args+=(--set "run.output_dir=$scratch/out")
while IFS= read -r s; do args+=(--set "$s"); done < <(header set)
launch=("$r1hpc")
[ "$world" -gt 1 ] && launch=("$mpiexec" -n "$world" --oversubscribe "$r1hpc")

rm -rf "$scratch" && mkdir -p "$scratch"
fixtures() { find fixtures -printf '%p %s %T@\n' | sort; }
before=$(fixtures)
"${launch[@]}" "${args[@]}" >"$scratch/stdout" 2>"$scratch/stderr"
rc=$?

fail() {
  echo "FAIL: $deck: $*"
  echo "--- stderr:" && cat "$scratch/stderr"
  exit 1
}
[ "$rc" -eq 2 ] || fail "exit code $rc, expected 2"
grep -qF -- "r1hpc: error: $loc: " "$scratch/stderr" || fail "no 'r1hpc: error: $loc: '"
grep -qF -- "$fragment" "$scratch/stderr" || fail "no '$fragment'"
[ "$(grep -c 'r1hpc: error:' "$scratch/stderr")" -eq 1 ] || fail "not reported exactly once"
[ ! -s "$scratch/stdout" ] || fail "something went to stdout"
[ ! -e "$scratch/out" ] || fail "the output directory was created"
[ "$(fixtures)" = "$before" ] || fail "a fixture changed"
grep 'r1hpc: error:' "$scratch/stderr"
