#!/usr/bin/env bash
# The whole R1 chain at GPU scale on one GPU: the phases of inputs/pipeline/small.plan (the `small` MoE,
# byte vocabulary), then every checkpoint of the lineage evaluated on the same held-out problems
# (09_evaluate_small.deck). About 25 minutes on one H200 after `scripts/gpu/run.sh OUTDIR none` has built
# build-gpu/, in pieces that each stay under the GPU machine's 10-minute command limit; each piece continues
# from the runs/small/ that the pieces before it left, and a phase that ended (exit 0, or 75 at its time
# limit) is not run again, so a piece cut short can simply be run again.
#   scripts/gpu/chain_small.sh OUTDIR base   # 00 pretrain, 01 R1-Zero                                         ~8 min
#   scripts/gpu/chain_small.sh OUTDIR mid    # 02a+02 cold start, 03 reasoning RL, 04 rejection sampling, 05 SFT  4-6 min
#   scripts/gpu/chain_small.sh OUTDIR late   # 06/06b reward models, 07 RL for all scenarios, 08a+08 distillation 4-7 min
#   scripts/gpu/chain_small.sh OUTDIR eval   # evaluate 00 01 02 03 05 07 08; print the table, plot the RL runs  ~3 min
#   scripts/gpu/chain_small.sh OUTDIR zero   # evaluate 00 and 01 only (R1-Zero against its base), plot 01          ~1 min
#   scripts/gpu/chain_small.sh OUTDIR all    # the four in turn; several pieces run in the order given (OUTDIR late eval)
# OUTDIR gets at most 7 files: chain.log (this piece's phase logs one after another), times.tsv (the wall
# seconds and exit code of every phase run so far), runs.tar.gz (runs/small without its checkpoints:
# metrics, reports, datasets, logs), and after `eval` table.md and the curves of 01, 03 and 07 (PNG).
# R1HPC_BIN names another r1hpc executable (default build-gpu/bin/r1hpc).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
usage="usage: scripts/gpu/chain_small.sh OUTDIR base|mid|late|eval|zero|all ..."
out=${1:?$usage}
: "${2:?$usage}"
bin=${R1HPC_BIN:-build-gpu/bin/r1hpc}
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on shared machines
runs=runs/small
logs=$runs/logs
plan=inputs/pipeline/small.plan
die() { echo "chain_small: error: $*" >&2; exit 1; }
[[ -x $bin ]] || die "no r1hpc executable at $bin (scripts/gpu/run.sh OUTDIR none builds it)"
mkdir -p "$out" "$logs"

# The plan: NAME DECK [section.key=value ...] per line, in run order.
order=()
declare -A deck sets
while read -r name path overrides; do
  [[ -z $name || $name == \#* ]] && continue
  order+=("$name") deck[$name]=$path sets[$name]=$overrides
done <"$plan"

pack() {  # what comes back: runs/small without checkpoints, and the phase times
  tar czf "$out/runs.tar.gz" --exclude=checkpoints --exclude='*.part-*' "$runs" 2>/dev/null
  cp "$logs/times.tsv" "$out/" 2>/dev/null
  return 0
}

run_phase() {  # NAME DECK [--set ...]: runs once; a phase that ended (0, or 75 at its time limit) is skipped
  local name=$1 path=$2 start=$SECONDS rc
  shift 2
  if [[ -e $logs/$name.done ]]; then echo "chain_small: $name ended before; skipped"; return 0; fi
  local args=("$@")
  # A phase cut short (a killed command) resumes from its own newest checkpoint.
  [[ -e $runs/$name/checkpoints/latest ]] && args+=(--set checkpoint.load=latest)
  local attempt=$logs/$name.attempt
  echo "===== $name: $bin $path ${args[*]}" >"$attempt"
  "$bin" "$path" "${args[@]}" >>"$attempt" 2>&1
  rc=$?
  echo "$name $((SECONDS - start)) $rc" >>"$logs/times.tsv"
  cat "$attempt" >>"$logs/$name.log"
  cat "$attempt" >>"$out/chain.log"
  printf 'chain_small: %-26s %4ds  exit %d%s\n' "$name" $((SECONDS - start)) $rc "$( ((rc == 75)) && echo ' (checkpointed at its time limit)')"
  # The last progress lines: steps, the reward models' held-out accuracy, the rejection and evaluation summaries.
  grep -E "step +[0-9]+/|accepted|overall" "$attempt" | tail -n 3 | cut -c1-220
  if ((rc != 0 && rc != 75)); then
    tail -n 25 "$attempt"
    pack
    die "$name failed (exit $rc); its log is $logs/$name.log (and $out/chain.log)"
  fi
  rm "$attempt"
  touch "$logs/$name.done"
}

run_plan() {  # the plan's phases FIRST..LAST, after checking that every phase before FIRST has ended
  local first=$1 last=$2 on=0 name kv
  for name in "${order[@]}"; do
    [[ $name == "$first" ]] && on=1
    if ((!on)); then
      [[ -e $logs/$name.done ]] || die "$name has not run yet: run the earlier pieces first (base, mid, late)"
      continue
    fi
    local args=()
    for kv in ${sets[$name]}; do args+=(--set "$kv"); done
    run_phase "$name" "${deck[$name]}" "${args[@]}"
    [[ $name == "$last" ]] && return
  done
}

evaluate() {  # RUN...: the checkpoints of these phases, then the table of them and the curves of their RL runs
  # The student's architecture, from its deck's [model] keys.
  local student=() k v run extra
  while read -r k _ v; do student+=(--set "model.$k=$v"); done \
    < <(sed -n '/^\[model\]/,/^\[/p' "${deck[08_distill]}" | grep -E '^[a-z_]+ *=')
  for run in "$@"; do
    [[ -e $logs/$run.done ]] || die "$run has not run yet: run the earlier pieces first (base, mid, late)"
    extra=()
    [[ $run == 08_distill ]] && extra=("${student[@]}")
    run_phase "09_evaluate_$run" "${deck[09_evaluate]}" --set "checkpoint.load=$runs/$run/checkpoints" \
      --set "run.output_dir=$runs/09_evaluate/$run" "${extra[@]}"
  done
  local py=python3  # tools/ckpt.py needs h5py, plot_metrics.py matplotlib: the Debian ones belong to /usr/bin/python3
  python3 -c "import h5py, matplotlib" 2>/dev/null || py=/usr/bin/python3
  python3 tools/eval_table.py "$runs" "$@" | tee "$out/table.md"
  [[ " $* " == *" 08_distill "* ]] && { "$py" tools/ckpt.py lineage "$runs/08_distill/checkpoints" >>"$out/chain.log" 2>&1 ||
    echo "chain_small: no lineage (tools/ckpt.py needs h5py)"; }
  for run in 01_r1zero 03_reasoning_rl 07_rl_all; do
    [[ " $* " == *" $run "* ]] || continue
    "$py" tools/plot_metrics.py "$runs/$run" --out "$out/$run.png" >/dev/null 2>&1 || echo "chain_small: plotting $run failed"
  done
}

lineage=(00_pretrain 01_r1zero 02_cold_start 03_reasoning_rl 05_sft 07_rl_all 08_distill)  # the checkpoints `eval` scores
for part in "${@:2}"; do
  start=$SECONDS
  case $part in
    base) run_plan 00_pretrain 01_r1zero ;;
    mid) run_plan 02a_cold_start_data 05_sft ;;
    late) run_plan 06_reward_model 08_distill ;;
    eval) evaluate "${lineage[@]}" ;;
    zero) evaluate 00_pretrain 01_r1zero ;;
    all) run_plan 00_pretrain 08_distill && evaluate "${lineage[@]}" ;;
    *) die "$usage" ;;
  esac
  pack
  echo "chain_small: $part took $((SECONDS - start))s"
done
