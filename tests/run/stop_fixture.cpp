// Step boundaries without the steps, for the watchdog test (tests/run/watchdog_test.sh), under mpiexec:
//   stop_fixture STEPS TIMEOUT_S     STEPS stop agreements over the world communicator of the bundle kind
//                                    the trainer uses (MPI backend, watchdog limit TIMEOUT_S)
// R1HPC_STOP_FAULT_FREEZE_RANK=<rank>: that rank stops itself (SIGSTOP) at step 2's boundary, before the
// agreement, as a node frozen between steps. A watchdog timeout aborts with kExitWatchdog, as main does.
#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

#include "core/log.hpp"
#include "parallel/comm.hpp"
#include "parallel/watched_mpi.hpp"
#include "run/signals.hpp"

using namespace r1;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  logger().configure(rank, size, LogLevel::info);
  if (argc != 3) {
    std::fprintf(stderr, "usage: stop_fixture STEPS TIMEOUT_S\n");
    MPI_Finalize();
    return kExitUserError;
  }
  const char* freeze = std::getenv("R1HPC_STOP_FAULT_FREEZE_RANK");
  const int frozen = freeze != nullptr && *freeze != '\0' ? std::atoi(freeze) : -1;
  try {
    std::vector<int> everyone(static_cast<std::size_t>(size));
    std::iota(everyone.begin(), everyone.end(), 0);
    const auto world = parallel::make_communicator(parallel::Backend::mpi, "world", everyone, kernels::Context::cpu(),
                                                   std::stod(argv[2]));
    for (int step = 1; step <= std::atoi(argv[1]); ++step) {
      if (step == 2 && rank == frozen) std::raise(SIGSTOP);
      const bool stop = agree_on_stop(world->host_comm());
      log_info("step ", step, ": stop agreed ", stop ? "yes" : "no");
    }
  } catch (const parallel::WatchdogTimeout& e) {
    log_error(e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitWatchdog);
  } catch (const Error& e) {
    log_error(error_kind_name(e.kind()), ": ", e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  }
  MPI_Finalize();
  return kExitOk;
}
