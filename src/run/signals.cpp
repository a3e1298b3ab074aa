#include "run/signals.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>

#include "core/file_io.hpp"
#include "core/log.hpp"
#include "parallel/watched_mpi.hpp"

namespace r1 {

namespace {
volatile std::sig_atomic_t g_stop = 0;  // the only process-wide state a signal handler may touch
extern "C" void on_stop_signal(int) { g_stop = 1; }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // do not interrupt blocking I/O or MPI progress with EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_signalled() { return g_stop != 0; }

void request_stop() { g_stop = 1; }

bool agree_on_stop(MPI_Comm comm) {
  int any = g_stop ? 1 : 0;
  parallel::watched_all_reduce(comm, "stop agreement at a step boundary", &any, 1, MPI_INT, MPI_MAX);
  return any != 0;
}

void write_stop_marker(int rank) {
  const char* path = std::getenv("R1HPC_STOP_MARKER");
  if (rank != 0 || path == nullptr || *path == '\0') return;
  try {
    write_file_atomic(path, "checkpointed and stopped on request\n");
  } catch (const std::exception& e) {
    log_warn("cannot write the stop marker R1HPC_STOP_MARKER=", path, " (", e.what(), "): a launcher that loses the ",
             "ranks' exit code ", kExitRequeue, " will not be read as a requeue");
  }
}

}  // namespace r1
