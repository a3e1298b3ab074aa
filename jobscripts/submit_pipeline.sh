#!/usr/bin/env bash
# Submits the R1 phases as a chain of r1hpc.sbatch jobs: each phase starts after the previous one
# succeeded (--dependency=afterok) and from its checkpoint (--set checkpoint.load=PARENT_CHECKPOINT_DIR).
#
#   jobscripts/submit_pipeline.sh [OPTIONS] [-- SBATCH OPTIONS FOR EVERY PHASE]
#     --plan FILE        phases, one per line: NAME DECK [section.key=value ...] [--sbatch-option ...]
#                        ('#' comments); default: inputs/pipeline/*.deck in name order, NAME = file name
#     --site NAME        jobscripts/sites/NAME.env (default: $R1HPC_SITE)
#     --nodes N          nodes per phase (default 1)
#     --ranks N          ranks per phase (default: GPUs per node x nodes on GPU sites, else 1)
#     --bin PATH         the r1hpc executable the jobs run (default: $R1HPC_BIN or build/bin/r1hpc)
#     --log-dir DIR      where the job logs go, DIR/NAME-JOBID.out (default: slurm-logs)
#     --after JOBID      the first phase also waits for JOBID to succeed
#     --dry-run          print the sbatch lines (the plan goes to stderr) and submit nothing
#
# A phase's parent is the phase before it. Its checkpoint directory is [checkpoint] dir, or
# [run] output_dir/checkpoints, read from the parent's deck and plan overrides (not from presets or
# ${VAR}s). A phase whose deck names a checkpoint path in [checkpoint] load keeps it; otherwise (empty
# or 'latest') it gets --set checkpoint.load=<parent checkpoint dir>: r1hpc starts from the checkpoint
# that directory's `latest` names when the phase starts. A phase after one that writes no checkpoint
# (stage rejection_sampling or evaluate) gets nothing added: it starts where its deck says (e.g. a
# distillation student from scratch on the data the phase before sampled). Paths are relative to the directory this
# script is run from, which is where the jobs start.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=jobscripts/site.sh
source "$here/site.sh"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "submit_pipeline: error: $*" >&2; exit 2; }

plan="" site=${R1HPC_SITE:-} nodes=1 ranks="" bin=${R1HPC_BIN:-$root/build/bin/r1hpc}
log_dir=slurm-logs after="" dry_run=0
extra=()
while (($#)); do
  case $1 in
    --plan) plan=${2:?}; shift 2 ;;
    --site) site=${2:?}; shift 2 ;;
    --nodes) nodes=${2:?}; shift 2 ;;
    --ranks) ranks=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    --log-dir) log_dir=${2:?}; shift 2 ;;
    --after) after=${2:?}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
site_load "$site" || exit 2
if [[ -z $ranks ]]; then
  ranks=$((${R1HPC_GPUS_PER_NODE:-0} > 0 ? R1HPC_GPUS_PER_NODE * nodes : 1))
fi

# --- the phases -------------------------------------------------------------------------------------
names=() decks=() sets=() opts=()   # sets/opts: one tab-free, space-separated string per phase
if [[ -n $plan ]]; then
  [[ -f $plan ]] || die "--plan: no file $plan"
  lineno=0
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    line=${line%%#*}
    read -r -a words <<< "$line"
    ((${#words[@]})) || continue
    ((${#words[@]} >= 2)) || die "$plan:$lineno: expected NAME DECK [section.key=value ...] [--sbatch-option ...]"
    [[ -f ${words[1]} ]] || die "$plan:$lineno: no deck ${words[1]}"
    s="" o=""
    for w in "${words[@]:2}"; do
      if [[ $w == -* ]]; then o+="$w "
      elif [[ $w == *.*=* ]]; then s+="$w "
      else die "$plan:$lineno: '$w' is neither section.key=value nor an sbatch --option"
      fi
    done
    names+=("${words[0]}") decks+=("${words[1]}") sets+=("$s") opts+=("$o")
  done < "$plan"
else
  for d in "$root"/inputs/pipeline/*.deck; do
    [[ -f $d ]] || continue
    n=$(basename "$d" .deck)
    names+=("$n") decks+=("$d") sets+=("") opts+=("")
  done
fi
((${#names[@]})) || die "no phases (empty plan, or no inputs/pipeline/*.deck)"

# value KEY PHASE: section.key as the phase will see it: its plan override (the last one), else its deck.
value() {
  local key=$1 i=$2 v="" w
  for w in ${sets[$i]}; do [[ $w == "$key="* ]] && v=${w#*=}; done
  [[ -n $v ]] && { echo "$v"; return; }
  deck_value "${decks[$i]}" "${key%%.*}" "${key#*.}"
}
checkpoint_dir() {
  local d out
  d=$(value checkpoint.dir "$1")
  [[ -n $d ]] && { echo "$d"; return; }
  out=$(value run.output_dir "$1")
  echo "${out:-runs/default}/checkpoints"
}

# --- the lineage plan and the sbatch lines ----------------------------------------------------------
((dry_run)) || mkdir -p "$log_dir"
echo "pipeline: ${#names[@]} phase(s), $ranks rank(s) on $nodes node(s) each, site ${site:-none}, from $PWD" >&2
prev_job=$after
job_ids=()
for i in "${!names[@]}"; do
  name=${names[$i]} deck=${decks[$i]}
  read -r -a phase_sets <<< "${sets[$i]}"
  read -r -a phase_opts <<< "${opts[$i]}"
  from="its deck ([checkpoint] load = $(value checkpoint.load "$i"))"
  [[ $from == *"= )" ]] && from="scratch (no [checkpoint] load)"
  if ((i > 0)); then
    load=$(value checkpoint.load "$i")
    parent_dir=$(checkpoint_dir $((i - 1)))
    parent_stage=$(value run.stage $((i - 1)))
    if [[ $parent_stage == rejection_sampling || $parent_stage == evaluate ]]; then
      # A data or report phase writes no checkpoint: the phase after it starts where its deck says.
      [[ -z $load || $load == latest ]] && from="scratch (no [checkpoint] load; phase ${names[$((i - 1))]} writes no checkpoint)"
    elif [[ -z $load || $load == latest ]]; then
      phase_sets+=("checkpoint.load=$parent_dir")
      from="the newest checkpoint in $parent_dir (phase ${names[$((i - 1))]})"
    else
      from="$load (named by its deck; parent phase ${names[$((i - 1))]} writes $parent_dir)"
    fi
  fi
  echo "phase $((i + 1)) $name: deck $deck -> $(checkpoint_dir "$i"); starts from $from" >&2

  mapfile -t site_opts < <(site_sbatch_args "$nodes" "$ranks")
  cmd=(sbatch --parsable --job-name="r1-$name" --output="$log_dir/%x-%j.out" --kill-on-invalid-dep=yes
       "${site_opts[@]}" "${extra[@]}" "${phase_opts[@]}")
  if [[ -n $prev_job ]]; then cmd+=(--dependency="afterok:$prev_job"); fi
  cmd+=(--export="ALL,R1HPC_ROOT=$root,R1HPC_BIN=$bin,R1HPC_SITE=$site,R1HPC_CHECKPOINT_DIR=$(checkpoint_dir "$i")"
       "$here/r1hpc.sbatch" "$deck")
  for kv in "${phase_sets[@]}"; do cmd+=(--set "$kv"); done

  if ((dry_run)); then
    echo "JOB_$((i + 1))=\$($(shell_words "${cmd[@]}"))"
    prev_job="\$JOB_$((i + 1))"
  else
    out=$("${cmd[@]}") || die "sbatch failed for phase $name"
    prev_job=${out%%;*}
    dep=""
    ((i > 0)) && dep=" (runs after job ${job_ids[$((i - 1))]} succeeds)"
    job_ids+=("$prev_job")
    echo "phase $((i + 1)) $name: job $prev_job$dep"
  fi
done
