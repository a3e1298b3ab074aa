// r1hpc: the SPMD driver. Parses the command line, runs the requested job on every rank, and turns
// errors into clear messages: user errors exit 2 after a clean MPI shutdown, internal ones abort.
#include <mpi.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "app/self_check.hpp"
#include "app/version.hpp"
#include "core/log.hpp"

namespace po = boost::program_options;

namespace {
constexpr int kExitUserError = 2;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  r1::logger().configure(rank, size, r1::LogLevel::info);
  int code = 0;
  try {
    po::options_description opts("r1hpc options");
    opts.add_options()("help,h", "print this help")("version", "print version, git commit and backends")(
        "self-check", "check every compute backend against the CPU reference (the default job)");
    po::variables_map vm;
    try {
      po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      R1_FAIL(user, "command line: ", e.what(), " (r1hpc --help lists the options)");
    }
    if (vm.count("help")) {
      if (rank == 0) std::cout << "usage: r1hpc [--self-check] [--version]\n\n" << opts;
    } else if (vm.count("version")) {
      if (rank == 0)
        std::printf("r1hpc %s (commit %s), backends: cpu%s\n", r1::kVersion, r1::kGitCommit, r1::kWithCuda ? ", cuda" : "");
    } else {
      code = r1::run_self_check(rank, size) ? 0 : 1;
    }
  } catch (const r1::Error& e) {
    if (e.kind() != r1::ErrorKind::user) {
      r1::log_error(r1::error_kind_name(e.kind()), ": ", e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    // User errors are found identically on every rank (same input, same checks): report once.
    if (rank == 0) std::fprintf(stderr, "r1hpc: error: %s\n", e.what());
    code = kExitUserError;
  } catch (const std::exception& e) {
    r1::log_error("internal error: ", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}
