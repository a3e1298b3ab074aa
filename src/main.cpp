// r1hpc: the SPMD driver. Parses the command line, runs the requested job on every rank, and turns
// errors into clear messages: user errors exit 2 and a non-finite checkpoint 4 after a clean MPI shutdown,
// internal ones abort.
#include <mpi.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include <string>
#include <vector>

#include "app/plan.hpp"
#include "app/time_model.hpp"
#include "app/self_check.hpp"
#include "app/verify_checkpoint.hpp"
#include "app/version.hpp"
#include "checkpoint/chunk_io.hpp"
#include "core/log.hpp"
#include "deck/deck.hpp"
#include "deck/reference.hpp"
#include "deck/validate.hpp"
#include "parallel/watched_mpi.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"

namespace po = boost::program_options;

namespace {
// Reads and checks the whole deck on every rank before anything is allocated or written, and reads its
// typed configuration once. A dry run plans for `plan_world` ranks (--world-size, else the MPI world)
// and computes nothing.
int run_deck(const std::string& path, const std::vector<std::string>& sets, bool dry_run, int plan_world,
             const std::string& machine, int rank, int size) {
  const r1::Deck deck = r1::Deck::load(path, sets);
  const r1::RunConfig cfg = r1::validate_deck(deck, plan_world);
  r1::logger().configure(rank, size, r1::parse_log_level(cfg.log.level));
  r1::ckpt::set_io_threads(static_cast<int>(cfg.checkpoint.io_threads));
  if (dry_run) {
    if (rank == 0) {
      std::cout << deck.resolved_text();
      r1::print_dry_run(deck, cfg, plan_world, r1::machine_named(machine), std::cout);
    }
    return 0;
  }
  return r1::run_stage(deck, cfg, rank, size);
}
}  // namespace

int main(int argc, char** argv) {
  int provided = 0;  // the overlapped pipeline pairs call MPI from two threads, one at a time
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  r1::logger().configure(rank, size, r1::LogLevel::info);
  int code = 0;
  try {
    po::options_description opts("r1hpc options");
    opts.add_options()("help,h", "print this help")("version", "print version, git commit and backends")(
        "self-check", "check every compute backend against the CPU reference (the default job)")(
        "set", po::value<std::vector<std::string>>()->composing(), "override a deck key: --set section.key=value (repeatable)")(
        "dry-run", "check the deck, print it resolved with the mesh, parameter counts and memory per rank; run nothing")(
        "world-size", po::value<int>(), "with --dry-run: plan for N ranks instead of the MPI world size (one process)")(
        "machine", po::value<std::string>()->default_value("h100"),
        "with --dry-run: the GPU the time model predicts for (h100, h800, h200, or a site file jobscripts/sites/*.env)")(
        "help-deck", po::value<std::string>()->implicit_value("text"), "print every deck key (=markdown: docs/deck.md)")(
        "verify-checkpoint", po::value<std::string>(),
        "read every file of checkpoint DIR (a step directory, or every one of a checkpoints directory), check every "
        "checksum and that every value is finite; exit 0 if intact, 65 if not (run it as one process)");
    po::options_description hidden;
    hidden.add_options()("deck", po::value<std::string>());
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("deck", 1);
    po::variables_map vm;
    try {
      po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
      po::notify(vm);
      if (!vm.count("deck") && (vm.count("set") || vm.count("dry-run"))) throw po::error("--set and --dry-run need a DECK");
      if (vm.count("world-size") && !vm.count("dry-run"))
        throw po::error("--world-size plans a layout and needs --dry-run (a run takes its size from mpirun/srun)");
      if (!vm["machine"].defaulted() && !vm.count("dry-run")) throw po::error("--machine needs --dry-run");
      if (vm.count("world-size") && vm["world-size"].as<int>() < 1) throw po::error("--world-size must be at least 1");
      if (vm.count("verify-checkpoint") && vm.count("deck")) throw po::error("--verify-checkpoint takes no DECK");
    } catch (const po::error& e) {
      R1_FAIL(user, "command line: ", e.what(), " (r1hpc --help lists the options)");
    }
    if (vm.count("help")) {
      if (rank == 0)
        std::cout << "usage: r1hpc [DECK [--set section.key=value ...] [--dry-run [--world-size N] [--machine M]]] [--help-deck[=markdown]]\n"
                     "       r1hpc --verify-checkpoint DIR\n\n"
                  << opts;
    } else if (vm.count("version")) {
      if (rank == 0)
        std::printf("r1hpc %s (commit %s), backends: cpu%s\n", r1::kVersion, r1::kGitCommit, r1::kWithCuda ? ", cuda" : "");
    } else if (vm.count("help-deck")) {
      const std::string format = vm["help-deck"].as<std::string>();
      R1_REQUIRE(format == "text" || format == "markdown", "command line: --help-deck=", format, " (expected text or markdown)");
      if (rank == 0) std::cout << (format == "markdown" ? r1::deck_reference_markdown() : r1::deck_reference_text());
    } else if (vm.count("verify-checkpoint")) {
      if (rank == 0) code = r1::verify_checkpoint_path(vm["verify-checkpoint"].as<std::string>(), std::cout);
    } else if (vm.count("deck")) {
      const auto sets = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
      const int plan_world = vm.count("world-size") ? vm["world-size"].as<int>() : size;
      code = run_deck(vm["deck"].as<std::string>(), sets, vm.count("dry-run") > 0, plan_world, vm["machine"].as<std::string>(),
                      rank, size);
    } else {
      code = r1::run_self_check(rank, size) ? 0 : 1;
    }
  } catch (const r1::parallel::WatchdogTimeout& e) {
    r1::log_error(e.what());
    MPI_Abort(MPI_COMM_WORLD, r1::kExitWatchdog);  // a peer may never come: no clean shutdown
  } catch (const r1::Error& e) {
    if (e.kind() == r1::ErrorKind::diverged) {
      // Every rank agreed on it at the same step (DivergenceGuard): no abort, the last commit stands.
      if (rank == 0) std::fprintf(stderr, "r1hpc: diverged: %s\n", e.what());
      code = r1::kExitDiverged;
    } else if (e.kind() != r1::ErrorKind::user) {
      r1::log_error(r1::error_kind_name(e.kind()), ": ", e.what());
      MPI_Abort(MPI_COMM_WORLD, r1::kExitFailure);
    } else {
      // User errors of the start-up checks are found identically on every rank (same input, same checks):
      // report once. Later ones (a stage's own data on one rank) may be one rank's alone: that rank says so.
      if (rank == 0) std::fprintf(stderr, "r1hpc: error: %s\n", e.what());
      else if (r1::logger().computing()) r1::log_error(e.what());
      code = r1::kExitUserError;
    }
  } catch (const std::exception& e) {
    r1::log_error("internal error: ", e.what());
    MPI_Abort(MPI_COMM_WORLD, r1::kExitFailure);
  }
  if (code == r1::kExitRequeue) r1::write_stop_marker(rank);
  MPI_Finalize();
  return code;
}
