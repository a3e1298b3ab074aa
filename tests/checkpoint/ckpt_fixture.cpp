// A tiny checkpoint writer/checker for the crash and tool tests, run under mpiexec:
//   ckpt_fixture save DIR STEP [--async] [--parent PATH] [--timeout S]
//                                                          rows of model/layers.0.w split over the ranks,
//                                                          model/norm replicated (rank 0 writes it); with
//                                                          --timeout, the checkpointer's agreements are
//                                                          watched (a timeout aborts with kExitWatchdog)
//   ckpt_fixture check DIR STEP                            `latest` is STEP; every rank reads a column block
// Values are exact functions of (step, index), so a check needs nothing but the step.
// R1HPC_CKPT_FAULT_KILL_RANK=<rank>: that rank dies by SIGKILL once its shard is on disk, before the commit
// (Checkpointer::after_shard_written), as a node lost in the middle of a save (fault_test.sh).
// R1HPC_CKPT_FAULT_FREEZE_RANK=<rank>: that rank stops itself (SIGSTOP) at the same point, as a frozen
// node (tests/run/watchdog_test.sh).
#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "core/log.hpp"
#include "parallel/mesh.hpp"
#include "parallel/watched_mpi.hpp"
#include "run/signals.hpp"

namespace fs = std::filesystem;
using namespace r1;
using namespace r1::ckpt;

namespace {

const Shape kW{8, 6};
float w_value(std::int64_t step, std::int64_t i, std::int64_t j) { return static_cast<float>(step * 1000 + i * 10 + j); }
float norm_value(std::int64_t step, std::int64_t j) { return static_cast<float>(step) + 0.5f * static_cast<float>(j); }

int save(const fs::path& dir, std::int64_t step, bool async, const std::string& parent, int rank, int size) {
  const std::int64_t r0 = kW[0] * rank / size, r1 = kW[0] * (rank + 1) / size;
  Tensor w = Tensor::host({r1 - r0, kW[1]}, DType::f32), m = Tensor::host({r1 - r0, kW[1]}, DType::f32);
  for (std::int64_t i = r0; i < r1; ++i)
    for (std::int64_t j = 0; j < kW[1]; ++j) {
      w.data<float>()[(i - r0) * kW[1] + j] = w_value(step, i, j);
      m.data<float>()[(i - r0) * kW[1] + j] = -w_value(step, i, j);
    }
  std::vector<Slice> mine{{"model/layers.0.w", kW, {r0, 0}, w}, {"optim/exp_avg/layers.0.w", kW, {r0, 0}, m}};
  if (rank == 0) {
    Tensor n = Tensor::host({6}, DType::f32);
    for (std::int64_t j = 0; j < 6; ++j) n.data<float>()[j] = norm_value(step, j);
    mine.push_back({"model/norm", {6}, {0}, n});
  }
  Meta meta;
  meta.stage = "test";
  meta.step = step;
  meta.tokens = step * 100;
  meta.deck = "[run]\nseed = 1\n";
  meta.parent = parent;
  meta.layout = {{"data", size}};
  Checkpointer c(dir, MPI_COMM_WORLD, 0, async);
  const char* kill = std::getenv("R1HPC_CKPT_FAULT_KILL_RANK");
  if (kill != nullptr && *kill != '\0' && std::atoi(kill) == rank) c.after_shard_written = [] { std::raise(SIGKILL); };
  const char* freeze = std::getenv("R1HPC_CKPT_FAULT_FREEZE_RANK");
  if (freeze != nullptr && *freeze != '\0' && std::atoi(freeze) == rank) c.after_shard_written = [] { std::raise(SIGSTOP); };
  c.save(meta, mine);
  c.finish();
  return 0;
}

int check(const fs::path& dir, std::int64_t step, int rank, int size) {
  const auto path = latest(dir);
  if (!path || *path != step_dir(dir, step)) {
    std::fprintf(stderr, "latest is %s, expected %s\n", path ? path->c_str() : "(none)", step_dir(dir, step).c_str());
    return 1;
  }
  const std::int64_t c0 = kW[1] * rank / size, c1 = kW[1] * (rank + 1) / size;
  Tensor w = Tensor::host_zeros({kW[0], c1 - c0}, DType::f32), n = Tensor::host_zeros({6}, DType::f32);
  load(*path, {{"model/layers.0.w", kW, {0, c0}, w}, {"model/norm", {6}, {0}, n}});
  int wrong = 0;
  for (std::int64_t i = 0; i < kW[0]; ++i)
    for (std::int64_t j = c0; j < c1; ++j) wrong += w.data<float>()[i * (c1 - c0) + (j - c0)] != w_value(step, i, j);
  for (std::int64_t j = 0; j < 6; ++j) wrong += n.data<float>()[j] != norm_value(step, j);
  if (wrong > 0) std::fprintf(stderr, "[rank %d] %d wrong values in %s\n", rank, wrong, path->c_str());
  return wrong > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  logger().configure(rank, size, LogLevel::info);
  int rc = 2;
  try {
    const std::string cmd = argc > 3 ? argv[1] : "";
    bool async = false;
    std::string parent;
    for (int a = 4; a < argc; ++a) {
      if (std::strcmp(argv[a], "--async") == 0) async = true;
      if (std::strcmp(argv[a], "--parent") == 0 && a + 1 < argc) parent = argv[++a];
      if (std::strcmp(argv[a], "--timeout") == 0 && a + 1 < argc) {
        std::vector<int> everyone(static_cast<std::size_t>(size));
        std::iota(everyone.begin(), everyone.end(), 0);
        parallel::attach_watch(MPI_COMM_WORLD, {"world[" + parallel::format_ranks(everyone) + "]", std::stod(argv[++a])});
      }
    }
    if (cmd == "save") rc = save(argv[2], std::stoll(argv[3]), async, parent, rank, size);
    else if (cmd == "check") rc = check(argv[2], std::stoll(argv[3]), rank, size);
    else std::fprintf(stderr, "usage: ckpt_fixture save|check DIR STEP [--async] [--parent PATH] [--timeout S]\n");
  } catch (const parallel::WatchdogTimeout& e) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitWatchdog);  // as main: a peer may never come
  } catch (const Error& e) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, e.what());
    rc = 1;
  }
  int worst = rc;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
