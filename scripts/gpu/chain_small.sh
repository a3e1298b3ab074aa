#!/usr/bin/env bash
# The whole R1 chain at GPU scale on one GPU: the phases of inputs/pipeline/small.plan (the `small` MoE,
# byte vocabulary, and a Qwen2-architecture student), then every checkpoint of the lineage and the students
# evaluated on the same held-out problems (09_evaluate_small.deck), and by difficulty level
# (09_evaluate_levels_small.deck). About 35 minutes on one GPU after `scripts/gpu/run.sh OUTDIR none` has built
# build-gpu/, in pieces that each stay under the GPU machine's 10-minute command limit; each piece continues
# from the runs/small/ that the pieces before it left, and a phase that ended (exit 0, or 75 at its time
# limit) is not run again, so a piece cut short can simply be run again.
#   scripts/gpu/chain_small.sh OUTDIR base     # 00 pretrain, 01 R1-Zero                                        ~8.5 min
#   scripts/gpu/chain_small.sh OUTDIR mid      # 02a+02 cold start, 03 reasoning RL, 04 rejection sampling, 05 SFT  5-7 min
#   scripts/gpu/chain_small.sh OUTDIR late     # 06/06b reward models, 07 RL for all scenarios, 08a distillation data 5-8 min
#   scripts/gpu/chain_small.sh OUTDIR student  # 00s student base, 08 distillation, 08r GRPO for 08a + 08's time   4-6 min
#   scripts/gpu/chain_small.sh OUTDIR eval     # evaluate 00 01 02 03 05 07 and the students; the table, the curves 4-5 min
#   scripts/gpu/chain_small.sh OUTDIR levels   # the same checkpoints on levels 1-4; the per-level tables         4-7 min
#   scripts/gpu/chain_small.sh OUTDIR zero     # evaluate 00 and 01 only (R1-Zero against its base), plot 01         ~1 min
#   scripts/gpu/chain_small.sh OUTDIR all      # the six in turn; several pieces run in the order given (OUTDIR late student)
# The same-GPU-time rule: 08r_rl_student (GRPO on the student base) gets as its [run] time_limit_minutes the
# measured wall time of the distillation, 08a_distill_data + 08_distill (times.tsv), less what 08r spent in
# an earlier attempt; it stops there with a checkpoint (exit 75).
# OUTDIR gets at most 9 files: chain.log (this piece's phase logs one after another), times.tsv (the wall
# seconds and exit code of every phase run so far), runs.tar.gz (runs/small without its checkpoints:
# metrics, reports, datasets, logs), after `eval` table.md and the curves of 01, 03, 07 and 08r (PNG), after
# `levels` levels.md.
# R1HPC_BIN names another r1hpc executable (default build-gpu/bin/r1hpc).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
usage="usage: scripts/gpu/chain_small.sh OUTDIR base|mid|late|student|eval|levels|zero|all ..."
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
deck[09_evaluate_levels]=inputs/pipeline/09_evaluate_levels_small.deck  # no plan phase: chain_small.sh's `levels`

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

wall_seconds() {  # PHASE...: their wall seconds in times.tsv, every attempt added up
  awk -v names=" $* " 'index(names, " " $1 " ") { s += $2 } END { print s + 0 }' "$logs/times.tsv" 2>/dev/null || echo 0
}

same_gpu_time() {  # minutes left to 08r_rl_student: the distillation's wall time less 08r's earlier attempts
  local distill rl
  distill=$(wall_seconds 08a_distill_data 08_distill)
  rl=$(wall_seconds 08r_rl_student)
  ((distill > 0)) || die "08r_rl_student: no measured time of 08a_distill_data and 08_distill in $logs/times.tsv"
  echo "chain_small: the same GPU time: 08a_distill_data + 08_distill took ${distill}s; 08r_rl_student ${rl}s before" >&2
  ((distill > rl)) || { echo 0.01; return; }
  awk -v s=$((distill - rl)) 'BEGIN { printf "%.3f", s / 60 }'
}

run_plan() {  # the plan's phases FIRST..LAST, after checking that every phase before FIRST has ended
  local first=$1 last=$2 on=0 name kv
  for name in "${order[@]}"; do
    [[ $name == "$first" ]] && on=1
    if ((!on)); then
      [[ -e $logs/$name.done ]] || die "$name has not run yet: run the earlier pieces first (base, mid, late, student)"
      continue
    fi
    local args=()
    for kv in ${sets[$name]}; do args+=(--set "$kv"); done
    if [[ $name == 08r_rl_student && ! -e $logs/$name.done ]]; then
      local minutes
      minutes=$(same_gpu_time) || exit 1
      args+=(--set "run.time_limit_minutes=$minutes")
    fi
    run_phase "$name" "${deck[$name]}" "${args[@]}"
    [[ $name == "$last" ]] && return
  done
}

model_sets() {  # RUN: --set model.KEY=VALUE for each key of RUN's deck's [model] section (the student's preset)
  local k v
  while read -r k _ v; do printf -- '--set\nmodel.%s=%s\n' "$k" "$v"; done \
    < <(sed -n '/^\[model\]/,/^\[/p' "${deck[$1]}" | grep -E '^[a-z_]+ *=')
}

evaluate_each() {  # EVALNAME RUN...: each run's checkpoint with the plan's EVALNAME deck, as its own deck's model
  local eval=$1 run
  shift
  for run in "$@"; do
    [[ -e $logs/$run.done ]] || die "$run has not run yet: run the earlier pieces first (base, mid, late, student)"
    mapfile -t model < <(model_sets "$run")
    run_phase "${eval}_$run" "${deck[$eval]}" --set "checkpoint.load=$runs/$run/checkpoints" \
      --set "run.output_dir=$runs/$eval/$run" "${model[@]}"
  done
}

# The student comparison of eval_table.py: each student against the teacher, distillation against RL.
students=(--teacher 07_rl_all --student 00s_pretrain_student --student 08_distill --student 08r_rl_student
          --distill 08_distill --distill-data 08a_distill_data --rl 08r_rl_student)

evaluate() {  # RUN...: the checkpoints of these phases, then the table of them and the curves of their RL runs
  evaluate_each 09_evaluate "$@"
  local py=python3 run  # tools/ckpt.py needs h5py, plot_metrics.py matplotlib: the Debian ones belong to /usr/bin/python3
  python3 -c "import h5py, matplotlib" 2>/dev/null || py=/usr/bin/python3
  local compare=()
  [[ " $* " == *" 07_rl_all "*" 08r_rl_student "* ]] && compare=("${students[@]}")
  python3 tools/eval_table.py "$runs" "$@" "${compare[@]}" | tee "$out/table.md"
  [[ " $* " == *" 08_distill "* ]] && { "$py" tools/ckpt.py lineage "$runs/08_distill/checkpoints" >>"$out/chain.log" 2>&1 ||
    echo "chain_small: no lineage (tools/ckpt.py needs h5py)"; }
  for run in 01_r1zero 03_reasoning_rl 07_rl_all 08r_rl_student; do
    [[ " $* " == *" $run "* ]] || continue
    "$py" tools/plot_metrics.py "$runs/$run" --out "$out/$run.png" >/dev/null 2>&1 || echo "chain_small: plotting $run failed"
  done
}

levels() {  # RUN...: the checkpoints on problems of every difficulty level, then pass@1 by level
  evaluate_each 09_evaluate_levels "$@"
  python3 tools/eval_table.py "$runs" "$@" --levels | tee "$out/levels.md"
}

# The checkpoints `eval` and `levels` score: the teacher's lineage, then the student base and both students.
lineage=(00_pretrain 01_r1zero 02_cold_start 03_reasoning_rl 05_sft 07_rl_all 00s_pretrain_student 08_distill 08r_rl_student)
for part in "${@:2}"; do
  start=$SECONDS
  case $part in
    base) run_plan 00_pretrain 01_r1zero ;;
    mid) run_plan 02a_cold_start_data 05_sft ;;
    late) run_plan 06_reward_model 08a_distill_data ;;
    student) run_plan 00s_pretrain_student 08r_rl_student ;;
    eval) evaluate "${lineage[@]}" ;;
    levels) levels "${lineage[@]}" ;;
    zero) evaluate 00_pretrain 01_r1zero ;;
    all) run_plan 00_pretrain 08r_rl_student && evaluate "${lineage[@]}" && levels "${lineage[@]}" ;;
    *) die "$usage" ;;
  esac
  pack
  echo "chain_small: $part took $((SECONDS - start))s"
done
