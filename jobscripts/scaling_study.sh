#!/usr/bin/env bash
# Strong and weak scaling of a bench deck: one r1hpc.sbatch job per (mode, ranks, layout) point, then one
# CSV of tokens/s, MFU and the step-time breakdown from each run's metrics.jsonl (plot it with
# tools/plot_scaling.py).
#
#   jobscripts/scaling_study.sh submit --deck DECK [OPTIONS] [-- SBATCH OPTIONS FOR EVERY POINT]
#     --mode strong|weak|both   strong: the deck's global batch at every size; weak: the global batch
#                               grows with the ranks (default both)
#     --ranks LIST              world sizes, one rank per GPU (default 1,2,4,8)
#     --layouts LIST            parallel layouts, e.g. tp1,tp2,tp2.pp2,ep4 (tpN: parallel.tensor, ppN:
#                               parallel.pipeline, epN: parallel.expert; data = whatever is left;
#                               default tp1). A layout that does not divide a size is skipped.
#     --global-batch N          weak scaling's global batch at the smallest size (default: the deck's)
#     --steps N                 run.max_steps of every point (default: the deck's)
#     --site NAME               jobscripts/sites/NAME.env (default: $R1HPC_SITE)
#     --per-node N              ranks per node (default: the site's GPUs per node, else its tasks per node)
#     --bin PATH                the r1hpc executable (default: $R1HPC_BIN or build/bin/r1hpc)
#     --out DIR                 study directory: plan.tsv, runs/, logs/ (default: scaling-<date-time>)
#     --dry-run                 print the plan and the sbatch lines, submit nothing
#   jobscripts/scaling_study.sh collect DIR [--csv FILE]   after the jobs ended: DIR/scaling.csv
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=jobscripts/site.sh
source "$here/site.sh"

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "scaling_study: error: $*" >&2; exit 2; }

cmd=${1:-}
(($#)) && shift
case $cmd in
  collect)
    (($#)) || die "collect: which study directory?"
    exec "${R1HPC_PYTHON:-python3}" "$root/tools/scaling_collect.py" "$@" ;;
  submit) ;;
  *) usage ;;
esac

deck="" mode=both ranks_list=1,2,4,8 layouts=tp1 global_batch="" steps="" site=${R1HPC_SITE:-} per_node=""
bin=${R1HPC_BIN:-$root/build/bin/r1hpc} out="scaling-$(date +%Y%m%d-%H%M%S)" dry_run=0 extra=()
while (($#)); do
  case $1 in
    --deck) deck=${2:?}; shift 2 ;;
    --mode) mode=${2:?}; shift 2 ;;
    --ranks) ranks_list=${2:?}; shift 2 ;;
    --layouts) layouts=${2:?}; shift 2 ;;
    --global-batch) global_batch=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --site) site=${2:?}; shift 2 ;;
    --per-node) per_node=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[[ -n $deck ]] || die "--deck: which bench deck?"
[[ -f $deck ]] || die "--deck: no file $deck"
case $mode in strong) modes=(strong) ;; weak) modes=(weak) ;; both) modes=(strong weak) ;; *) die "--mode: strong, weak or both" ;; esac
site_load "$site" || exit 2
if [[ -z $per_node ]]; then
  per_node=$((${R1HPC_GPUS_PER_NODE:-0} > 0 ? R1HPC_GPUS_PER_NODE : ${R1HPC_TASKS_PER_NODE:-1}))
fi
IFS=, read -r -a sizes <<< "$ranks_list"
IFS=, read -r -a layout_list <<< "$layouts"
smallest=${sizes[0]}
for w in "${sizes[@]}"; do
  [[ $w =~ ^[1-9][0-9]*$ ]] || die "--ranks: '$w' is not a positive integer"
  ((w < smallest)) && smallest=$w
done
[[ -n $global_batch ]] || global_batch=$(deck_value "$deck" train global_batch)
if [[ " ${modes[*]} " == *" weak "* && ! $global_batch =~ ^[1-9][0-9]*$ ]]; then
  die "weak scaling needs the global batch at $smallest rank(s): --global-batch N (the deck has '${global_batch}')"
fi

# layout_sets LAYOUT: "tp pp ep" (ep 0: the deck's) from tpN.ppN.epN.
parse_layout() {
  local tp=1 pp=1 ep=0 part
  IFS=. read -r -a parts <<< "$1"
  for part in "${parts[@]}"; do
    case $part in
      tp[1-9]*) tp=${part#tp} ;;
      pp[1-9]*) pp=${part#pp} ;;
      ep[1-9]*) ep=${part#ep} ;;
      *) die "--layouts: '$part' of '$1' is not tpN, ppN or epN" ;;
    esac
  done
  echo "$tp $pp $ep"
}

if ((dry_run)); then plan=/dev/null; else mkdir -p "$out/logs" "$out/runs"; plan=$out/plan.tsv; fi
printf 'mode\tworld\tnodes\tper_node\ttp\tpp\tep\tlayout\tglobal_batch\trun_dir\tjob_id\n' > "$plan"
echo "scaling study of $deck: modes ${modes[*]}, ranks ${sizes[*]}, layouts ${layout_list[*]}, $per_node rank(s) per node, site ${site:-none}, out $out" >&2
printf '%-7s %6s %6s %-14s %13s  %s\n' mode ranks nodes layout global_batch run_dir >&2
points=0
for m in "${modes[@]}"; do
  for w in "${sizes[@]}"; do
    for layout in "${layout_list[@]}"; do
      read -r tp pp ep < <(parse_layout "$layout")
      if ((w % (tp * pp) != 0)) || ((ep > 0 && w % ep != 0)); then
        echo "skip: $m $w rank(s) $layout (tensor x pipeline or expert does not divide $w)" >&2
        continue
      fi
      nodes=$(((w + per_node - 1) / per_node))
      gb=${global_batch:-deck}
      [[ $m == weak ]] && gb=$((global_batch * w / smallest))
      run_dir=$out/runs/$m-n$w-$layout
      sets=(--set run.output_dir="$run_dir" --set parallel.tensor="$tp" --set parallel.pipeline="$pp")
      ((ep > 0)) && sets+=(--set parallel.expert="$ep")
      [[ $m == weak ]] && sets+=(--set train.global_batch="$gb")
      [[ -n $steps ]] && sets+=(--set run.max_steps="$steps")
      mapfile -t site_opts < <(site_sbatch_args "$nodes" "$w")
      line=(sbatch --parsable --job-name="scale-$m-n$w-$layout" --output="$out/logs/%x-%j.out"
            "${site_opts[@]}" "${extra[@]}"
            --export="ALL,R1HPC_ROOT=$root,R1HPC_BIN=$bin,R1HPC_SITE=$site" "$here/r1hpc.sbatch" "$deck" "${sets[@]}")
      printf '%-7s %6s %6s %-14s %13s  %s\n' "$m" "$w" "$nodes" "$layout" "$gb" "$run_dir" >&2
      if ((dry_run)); then
        shell_words "${line[@]}"
        job=-
      else
        job=$("${line[@]}") || die "sbatch failed for $m $w $layout"
        job=${job%%;*}
        echo "submitted $m $w rank(s) $layout: job $job"
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$w" "$nodes" "$((w < per_node ? w : per_node))" \
        "$tp" "$pp" "$ep" "$layout" "$gb" "$run_dir" "$job" >> "$plan"
      points=$((points + 1))
    done
  done
done
((points)) || die "no point of the study fits (see the skip lines)"
if ((!dry_run)); then
  echo "$points job(s); plan in $plan. When they have ended:"
  echo "  $here/scaling_study.sh collect $out && python3 $root/tools/plot_scaling.py $out/scaling.csv -o $out/scaling.png"
fi
