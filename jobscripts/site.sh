# Sourced by submit_pipeline.sh and scaling_study.sh: loads a site file (jobscripts/sites/NAME.env)
# shellcheck shell=bash
# and turns it into sbatch options. Not executable on its own.

# site_load NAME|PATH: sources the site file; an empty name loads nothing.
site_load() {
  local name=$1 file
  [[ -n $name ]] || return 0
  file=$name
  [[ $file == */* || $file == *.env ]] || file=$(dirname "${BASH_SOURCE[0]}")/sites/$name.env
  if [[ ! -f $file ]]; then
    echo "site: no site file $file (R1HPC_SITE / --site)" >&2
    return 2
  fi
  # shellcheck source=/dev/null
  source "$file"
}

# site_sbatch_args NODES RANKS: prints (one per line) the sbatch options of the loaded site for a job of
# RANKS ranks on NODES nodes: partition, account, qos, constraint, one rank per GPU on GPU sites.
site_sbatch_args() {
  local nodes=$1 ranks=$2 per_node
  per_node=$(((ranks + nodes - 1) / nodes))
  [[ -n ${R1HPC_PARTITION:-} ]] && echo "--partition=$R1HPC_PARTITION"
  [[ -n ${R1HPC_ACCOUNT:-} ]] && echo "--account=$R1HPC_ACCOUNT"
  [[ -n ${R1HPC_QOS:-} ]] && echo "--qos=$R1HPC_QOS"
  [[ -n ${R1HPC_CONSTRAINT:-} ]] && echo "--constraint=$R1HPC_CONSTRAINT"
  echo "--nodes=$nodes"
  echo "--ntasks-per-node=$per_node"
  if ((${R1HPC_GPUS_PER_NODE:-0} > 0)); then echo "--gpus-per-node=$per_node"; fi
  [[ -n ${R1HPC_CPUS_PER_TASK:-} ]] && echo "--cpus-per-task=$R1HPC_CPUS_PER_TASK"
  local extra
  read -r -a extra <<< "${R1HPC_SBATCH_ARGS:-}"
  if ((${#extra[@]})); then printf '%s\n' "${extra[@]}"; fi
  return 0
}

# deck_value DECK SECTION KEY: the value of KEY in [SECTION] of DECK as written there (no presets, no
# --set); empty when absent. Decks are INI: '#' starts a comment, values are unquoted (docs/deck.md).
deck_value() {
  awk -v sec="$2" -v key="$3" '
    { sub(/#.*/, "") }
    /^[ \t]*\[.*\][ \t]*$/ { gsub(/[][ \t]/, ""); cur = $0; next }
    cur == sec && index($0, "=") {
      k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (k == key) { print v; exit }
    }' "$1"
}

# shell_words WORD...: the words as one shell line, quoting only those that need it; \$JOB_N stays
# unquoted so the dry-run output runs as a script.
shell_words() {
  local w quoted=()
  for w in "$@"; do
    if [[ $w =~ ^[A-Za-z0-9_@%+=:,./\$-]+$ ]]; then quoted+=("$w"); else quoted+=("$(printf '%q' "$w")"); fi
  done
  echo "${quoted[*]}"
}
