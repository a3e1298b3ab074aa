# shellcheck shell=bash
# Sourced by run.sh and multi_gpu.sh: `run2 CMD ARGS...` runs CMD on two MPI ranks that talk over NCCL, and
# `gpus` says how many GPUs are visible. With two or more GPUs each rank has its own. With one, the two
# ranks share it as two emulated nodes: each names its own host (NCCL_HOSTID), so NCCL joins them through
# its socket transport over loopback, as it joins two nodes without InfiniBand (two ranks on one GPU of one
# node it refuses: "Duplicate GPU detected"). Every two-rank code path runs that way, but the timings are
# not two-GPU timings: the ranks time-slice one GPU and their data crosses host memory and TCP.
# A run that hangs is killed after 300 s.
gpus=$(nvidia-smi -L | wc -l)
if ((gpus >= 2)); then
  run2() { timeout 300 mpirun -np 2 --bind-to none "$@"; }
else
  run2() {
    local net=(NCCL_IB_DISABLE=1 NCCL_NET=Socket NCCL_SOCKET_IFNAME=lo NCCL_SOCKET_NTHREADS=4 NCCL_NSOCKS_PERTHREAD=4)
    timeout 300 mpirun --bind-to none -np 1 env "${net[@]}" NCCL_HOSTID=r1hpc-node0 "$@" \
                                    : -np 1 env "${net[@]}" NCCL_HOSTID=r1hpc-node1 "$@"
  }
fi
