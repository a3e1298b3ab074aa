// A tiny checkpoint writer/checker for the crash and tool tests, run under mpiexec:
//   ckpt_fixture save DIR STEP [--async] [--parent PATH] [--router-bias] [--timeout S]
//       rows of model/layers.0.w and its optim/exp_avg split over the ranks, model/norm replicated (rank 0
//       writes it); --router-bias: also model/layers.0.moe.router_bias, a buffer the last rank writes; with
//       --timeout, the checkpointer's agreements are watched (a timeout aborts with kExitWatchdog)
//   ckpt_fixture check DIR STEP     `latest` is STEP; every rank reads a column block
//   ckpt_fixture resume DIR STEP    the same through latest_intact: a damaged newest checkpoint passed over
// Values are exact functions of (step, index), so a check needs nothing but the step.
// R1HPC_CKPT_FAULT_KILL_RANK=<rank>: that rank dies by SIGKILL once its shard is on disk, before the commit
// (Checkpointer::after_shard_written), as a node lost in the middle of a save (fault_test.sh).
// R1HPC_CKPT_FAULT_FREEZE_RANK=<rank>: that rank stops itself (SIGSTOP) at the same point, as a frozen
// node (tests/run/watchdog_test.sh).
// R1HPC_CKPT_FAULT_NONFINITE=<tensor>@<rank>=<nan|inf>: that rank puts the value into its slice of the
// tensor before the save (integrity_test.sh); the exit code is r1hpc's for the error (4 for non-finite).
#include <mpi.h>

#include <csignal>
#include <limits>
#include <stdexcept>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/verify.hpp"
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

// R1HPC_CKPT_FAULT_NONFINITE: a NaN or Inf in the first element of this rank's slice of the named tensor.
void inject_non_finite(std::vector<Slice>& slices, int rank) {
  const char* spec = std::getenv("R1HPC_CKPT_FAULT_NONFINITE");
  if (spec == nullptr || *spec == '\0') return;
  const std::string s(spec);
  const std::size_t at = s.rfind('@'), eq = s.rfind('=');
  if (at == std::string::npos || eq == std::string::npos || eq < at) throw std::runtime_error("bad R1HPC_CKPT_FAULT_NONFINITE " + s);
  if (std::stoi(s.substr(at + 1, eq - at - 1)) != rank) return;
  const float value = s.substr(eq + 1) == "nan" ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  for (Slice& slice : slices)
    if (slice.name == s.substr(0, at)) slice.data.data<float>()[0] = value;
}

int save(const fs::path& dir, std::int64_t step, bool async, const std::string& parent, bool router_bias, int rank, int size) {
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
  if (router_bias && rank == size - 1) {
    Tensor b = Tensor::host({4}, DType::f32);
    for (std::int64_t e = 0; e < 4; ++e) b.data<float>()[e] = 0.25f * static_cast<float>(e);
    mine.push_back({"model/layers.0.moe.router_bias", {4}, {0}, b});
  }
  inject_non_finite(mine, rank);
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

int check(const fs::path& dir, std::int64_t step, bool intact, int rank, int size) {
  const auto path = intact ? latest_intact(dir) : latest(dir);
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
    bool async = false, router_bias = false;
    std::string parent;
    for (int a = 4; a < argc; ++a) {
      if (std::strcmp(argv[a], "--async") == 0) async = true;
      if (std::strcmp(argv[a], "--router-bias") == 0) router_bias = true;
      if (std::strcmp(argv[a], "--parent") == 0 && a + 1 < argc) parent = argv[++a];
      if (std::strcmp(argv[a], "--timeout") == 0 && a + 1 < argc) {
        std::vector<int> everyone(static_cast<std::size_t>(size));
        std::iota(everyone.begin(), everyone.end(), 0);
        parallel::attach_watch(MPI_COMM_WORLD, {"world[" + parallel::format_ranks(everyone) + "]", std::stod(argv[++a])});
      }
    }
    if (cmd == "save") rc = save(argv[2], std::stoll(argv[3]), async, parent, router_bias, rank, size);
    else if (cmd == "check" || cmd == "resume") rc = check(argv[2], std::stoll(argv[3]), cmd == "resume", rank, size);
    else std::fprintf(stderr, "usage: ckpt_fixture save|check|resume DIR STEP [--async] [--parent PATH] [--router-bias] [--timeout S]\n");
  } catch (const parallel::WatchdogTimeout& e) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitWatchdog);  // as main: a peer may never come
  } catch (const Error& e) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, e.what());
    rc = e.kind() == ErrorKind::diverged ? kExitDiverged : 1;
  }
  int worst = rc;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
