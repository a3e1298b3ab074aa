#include "run/signals.hpp"

#include <csignal>

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
  int local = g_stop ? 1 : 0, any = 0;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, comm);
  return any != 0;
}

}  // namespace r1
