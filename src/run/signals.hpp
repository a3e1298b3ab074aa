// Graceful stop: SIGUSR1 (Slurm's warning before the time limit) and SIGTERM set a flag; ranks agree
// on it at a step boundary, checkpoint, and exit with kExitRequeue so the job script requeues.
#pragma once
#include <mpi.h>

namespace r1 {

// Exit codes of r1hpc (docs/running.md). Job scripts rely on these values.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;     // internal or I/O failure (after MPI_Abort)
inline constexpr int kExitUserError = 2;   // bad deck / input / command line; nothing was written
inline constexpr int kExitDiverged = 4;    // training diverged; stopped with the last good checkpoint committed
inline constexpr int kExitWatchdog = 69;   // a collective outlived [parallel] collective_timeout_s (EX_UNAVAILABLE)
inline constexpr int kExitRequeue = 75;    // checkpointed after SIGUSR1/SIGTERM: requeue me (EX_TEMPFAIL)
inline constexpr int kExitCheckpointDamaged = 65;  // --verify-checkpoint found a damaged checkpoint (EX_DATAERR)

// Installs the handlers (idempotent). Only an async-signal-safe flag is touched in the handler.
void install_stop_handlers();
// This rank has received a stop signal (or request_stop() was called).
bool stop_signalled();
// Sets the flag as a signal would (tests, and a time limit reached from the deck).
void request_stop();
// Collective over `comm`: true on every rank when any rank was signalled. Call at step boundaries only.
// Watched (parallel/watched_mpi.hpp): a rank that never arrives ends the job with kExitWatchdog.
bool agree_on_stop(MPI_Comm comm);
// After a checkpointed stop (the job's exit code is kExitRequeue), rank 0 writes the file named by
// R1HPC_STOP_MARKER, when set: the job script's evidence that every rank stopped cleanly, for launchers
// that lose the ranks' exit code (mpirun given SIGTERM itself). Not writing it is only a warning.
void write_stop_marker(int rank);

}  // namespace r1
