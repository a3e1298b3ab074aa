#!/usr/bin/env bash
# A throw-away Slurm cluster on localhost for the slurm tests: munged + slurmctld + slurmd in a temp dir,
# from slurm.conf.in with free ports, stopped by PID when the command ends (also when it fails).
#
#   tests/slurm/cluster.sh run COMMAND [ARG...]   start, run COMMAND with SLURM_CONF set, stop; exits
#                                                 with COMMAND's status
#   source tests/slurm/cluster.sh                 only the helpers (job_field, wait_job_end, ...)
#
# R1HPC_KEEP_CLUSTER=1 keeps the temp dir (logs, state) after stopping. Needs root (SlurmUser=root),
# slurm-wlm and munge (scripts/setup.sh installs them).

# The Python with Debian's h5py and matplotlib (scripts/setup.sh), not a pyenv/venv one without them.
PYTHON=${R1HPC_PYTHON:-$(if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else echo python3; fi)}

cluster_log() { echo "[$(date +%H:%M:%S)] cluster: $*" >&2; }

# free_port: a TCP port nobody listens on now.
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.5 s until it succeeds; fails after SECONDS.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= limit)); then
      cluster_log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# job_field JOBID FIELD: one field of `scontrol show job` (JobState, Restarts, ExitCode, StartTime, ...).
job_field() {
  scontrol -o show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

job_ended() {
  case $(job_field "$1" JobState) in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) return 0 ;;
    *) return 1 ;;
  esac
}

# wait_job_end JOBID SECONDS: waits until the job has ended for good (not pending, running or requeued).
wait_job_end() {
  wait_until "$2" "job $1 to end (state $(job_field "$1" JobState))" job_ended "$1"
}

node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; }

cluster_start() {
  local t
  for t in munged mungekey slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$t" >/dev/null || { cluster_log "missing $t: install slurm-wlm and munge (scripts/setup.sh)"; return 1; }
  done
  [[ $(id -u) == 0 ]] || { cluster_log "the test cluster runs its daemons as root (SlurmUser=root)"; return 1; }
  CLUSTER_DIR=$(mktemp -d /tmp/r1hpc-slurm.XXXXXX)
  CLUSTER_PIDS=()
  local s=$CLUSTER_DIR here ctld_port slurmd_port
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  mkdir -p "$s"/{munge,spool/ctld,spool/d,run,log}
  chmod 700 "$s/munge"
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(free_port); done
  sed -e "s|@S@|$s|g" -e "s|@CLUSTER@|r1hpc-test-$$|" -e "s|@CTLD_PORT@|$ctld_port|" \
      -e "s|@SLURMD_PORT@|$slurmd_port|" "$here/slurm.conf.in" > "$s/slurm.conf"
  export SLURM_CONF=$s/slurm.conf
  cluster_log "starting in $s (slurmctld port $ctld_port, slurmd port $slurmd_port)"

  mungekey -c -k "$s/munge/munge.key" >/dev/null
  munged -F -f -S "$s/munge/munge.sock" --key-file="$s/munge/munge.key" --log-file="$s/log/munged.log" \
         --pid-file="$s/run/munged.pid" --seed-file="$s/munge/seed" 2>>"$s/log/munged.log" &
  CLUSTER_PIDS+=($!)
  wait_until 20 "munged's socket" test -S "$s/munge/munge.sock" || return 1
  slurmctld -D -f "$SLURM_CONF" >"$s/log/slurmctld.stdout" 2>&1 &
  CLUSTER_PIDS+=($!)
  slurmd -D -N localhost -f "$SLURM_CONF" >"$s/log/slurmd.stdout" 2>&1 &
  CLUSTER_PIDS+=($!)
  # If this shell is killed without running its traps (SIGKILL, e.g. a test timeout), the watchdog, in a
  # session of its own, stops the same daemons by PID and removes the temp dir.
  # shellcheck disable=SC2016  # expanded by the watchdog's shell
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; dir=$2; shift 2; kill "$@"; sleep 3; rm -rf "$dir"' \
    cluster-watchdog $$ "$s" "${CLUSTER_PIDS[@]}" </dev/null >/dev/null 2>&1 &
  CLUSTER_WATCHDOG=$!
  wait_until 60 "the node to be idle (sinfo)" node_idle || return 1
  cluster_log "up: $(sinfo -h -o '%P %a %D %t %c CPUs')"
}

# cluster_stop [STATUS]: cancels what still runs, stops the daemons this shell started (by PID, the
# reverse order), shows the daemon logs when STATUS is non-zero, removes the temp dir.
cluster_stop() {
  local status=${1:-0} pid i
  [[ -n ${CLUSTER_DIR:-} ]] || return 0
  if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
    cluster_log "cancelling the jobs still queued: $(squeue -h -o %i | tr '\n' ' ')"
    timeout 10 scancel --full --user=root 2>/dev/null || true
    wait_until 30 "the cancelled jobs to go" test -z "$(squeue -h -o %i 2>/dev/null)" || true
  fi
  if [[ -n ${CLUSTER_WATCHDOG:-} ]]; then kill "$CLUSTER_WATCHDOG" 2>/dev/null || true; fi
  for ((i = ${#CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${CLUSTER_PIDS[$i]}
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${CLUSTER_PIDS[@]}"; do
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if ((status != 0)); then
    for f in "$CLUSTER_DIR"/log/slurmctld.log "$CLUSTER_DIR"/log/slurmd.log; do
      [[ -f $f ]] && { echo "--- last lines of $f" >&2; tail -25 "$f" >&2; }
    done
  fi
  if [[ ${R1HPC_KEEP_CLUSTER:-0} == 1 ]]; then
    cluster_log "stopped; kept $CLUSTER_DIR"
  else
    rm -rf "$CLUSTER_DIR"
    cluster_log "stopped and removed $CLUSTER_DIR"
  fi
  CLUSTER_DIR=""
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  [[ ${1:-} == run && $# -ge 2 ]] || { echo "usage: $0 run COMMAND [ARG...]" >&2; exit 2; }
  shift
  command_pid=""
  stop_command() { if [[ -n $command_pid ]]; then kill "$command_pid" 2>/dev/null || true; fi; }
  trap 'status=$?; stop_command; cluster_stop "$status"; exit "$status"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cluster_start
  # In the background, so that INT/TERM stop the cluster at once rather than after the command.
  "$@" &
  command_pid=$!
  wait "$command_pid"
fi
