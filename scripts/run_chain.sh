#!/usr/bin/env bash
# Runs the whole tiny R1 chain back to back (inputs/pipeline/*_tiny.deck, one phase per mpirun) and ends
# by printing the evaluation table of every checkpoint in the final model's lineage.
#
#   scripts/run_chain.sh [--ranks N] [--dir DIR] [--from PHASE] [--bin PATH] [--python PATH]
#     --ranks N    MPI ranks per phase (default 4; more ranks than cores are oversubscribed)
#     --dir DIR    where runs/tiny/ is written (default: the current directory); it must not hold one yet
#     --from PHASE   start at PHASE (e.g. 03_reasoning_rl), reusing the earlier phases' outputs in DIR
#     --bin PATH   the r1hpc executable (default: $R1HPC_BIN or build/bin/r1hpc)
#     --python PATH  a python3 with h5py for tools/ckpt.py (default: python3 or /usr/bin/python3, the first with h5py)
#
# Phases: 00 pretrain, 01 R1-Zero, 02a+02 cold start (filtered R1-Zero samples + worked solutions, SFT of
# the base), 03 reasoning RL (+ language consistency), 04 rejection sampling, 05 SFT of the base, 06/06b
# reward models (helpfulness, harmlessness), 07 RL for all scenarios, 08a+08 distillation into a dense
# student, 09 evaluation of every checkpoint. Each phase's log is runs/tiny/logs/PHASE.log, its wall time a
# line of runs/tiny/logs/times.tsv (tools/eval_table.py prints them with the scores).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
ranks=4 dir=. from="" bin=${R1HPC_BIN:-$root/build/bin/r1hpc} py=
die() { echo "run_chain: error: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --ranks) ranks=${2:?}; shift 2 ;;
    --dir) dir=${2:?}; shift 2 ;;
    --from) from=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    --python) py=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[[ -x $bin ]] || die "no r1hpc executable at $bin (run scripts/setup.sh, or pass --bin)"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
if [[ -z $py ]]; then  # the Debian h5py (scripts/setup.sh) belongs to the system python3
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import h5py, numpy" 2>/dev/null; then py=$candidate; break; fi
  done
  [[ -n $py ]] || die "no python3 with h5py and numpy for tools/ckpt.py (scripts/setup.sh installs them; or pass --python)"
fi
mkdir -p "$dir"
cd "$dir"
if [[ -z $from ]]; then
  [[ -e runs/tiny ]] && die "$(pwd)/runs/tiny exists: remove it, choose another --dir, or continue it with --from"
else
  [[ -d runs/tiny ]] || die "--from $from: $(pwd)/runs/tiny holds no earlier phases"
fi
mkdir -p runs/tiny/logs
decks=$root/inputs/pipeline
launch=(mpirun -np "$ranks" --oversubscribe)
[[ $(id -u) == 0 ]] && launch+=(--allow-run-as-root)
# One OpenMP thread per rank unless the caller chose: the ranks share the cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

chain_start=$SECONDS
phase() {  # phase NAME DECK [--set ...]
  local name=$1 deck=$2 start=$SECONDS
  shift 2
  [[ -n $from && $name != "$from" ]] && { echo "run_chain: $name skipped (--from $from)"; return; }
  from=""
  if ! "${launch[@]}" "$bin" "$decks/$deck" "$@" >"runs/tiny/logs/$name.log" 2>&1; then
    tail -n 30 "runs/tiny/logs/$name.log" >&2
    die "phase $name ($deck) failed; its log is $(pwd)/runs/tiny/logs/$name.log"
  fi
  printf 'run_chain: %-26s %5ds  (%s)\n' "$name" $((SECONDS - start)) "$deck"
  echo "$name $((SECONDS - start)) 0" >>runs/tiny/logs/times.tsv
}

phase 00_pretrain 00_pretrain_tiny.deck
phase 01_r1zero 01_r1zero_tiny.deck
phase 02a_cold_start_data 02a_cold_start_data_tiny.deck
phase 02_cold_start 02_cold_start_tiny.deck
phase 03_reasoning_rl 03_reasoning_rl_tiny.deck
phase 04_rejection_sampling 04_rejection_sampling_tiny.deck
phase 05_sft 05_sft_tiny.deck
phase 06_reward_model 06_reward_model_tiny.deck
phase 06b_safety_reward_model 06b_safety_reward_model_tiny.deck
phase 07_rl_all 07_rl_all_tiny.deck
phase 08a_distill_data 08a_distill_data_tiny.deck
phase 08_distill 08_distill_tiny.deck

# 09: every checkpoint of the final model's lineage, and the distilled student.
student=(--set model.preset=tiny-qwen2)  # the Qwen2-architecture student of 08_distill_tiny.deck
for run in 00_pretrain 01_r1zero 02_cold_start 03_reasoning_rl 05_sft 07_rl_all 08_distill; do
  extra=()
  [[ $run == 08_distill ]] && extra=("${student[@]}")
  phase "09_evaluate_$run" 09_evaluate_tiny.deck --set "checkpoint.load=runs/tiny/$run/checkpoints" \
    --set "run.output_dir=runs/tiny/09_evaluate/$run" "${extra[@]}"
done
[[ -z $from ]] || die "--from $from: no such phase"
echo "run_chain: the whole chain took $((SECONDS - chain_start))s on $ranks ranks"

# The last checkpoint of the chain is the distilled student: its lineage reaches every phase through the
# data it was trained on (sampled from the final model, phase 7) and that model's parents, data and reward models.
final=runs/tiny/08_distill/checkpoints/$(cat runs/tiny/08_distill/checkpoints/latest)
echo
echo "Lineage of the final checkpoint ($final):"
"$py" "$root/tools/ckpt.py" lineage "$final"
echo
"$py" "$root/tools/eval_table.py" runs/tiny
