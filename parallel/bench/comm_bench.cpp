// Communication benchmark: all-reduce (f32 sum) and all-to-all bandwidth over all ranks, for the MPI
// backend (host buffers) and the NCCL backend (device buffers, GPU = rank % visible GPUs). NCCL-tests
// conventions: bytes = one rank's buffer, algbw = bytes / time, busbw = algbw x 2(n-1)/n for all-reduce
// and x (n-1)/n for all-to-all, time = mean per op on the slowest rank, GB = 1e9 bytes.
//   mpirun -np N r1hpc-bench-comm [--backend mpi|nccl|all] [--min-bytes B] [--max-bytes B]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/timer.hpp"
#include "parallel/comm.hpp"

using namespace r1;
using namespace r1::parallel;
using kernels::Context;

namespace {
struct Options {
  std::string backend;  // empty: all that this machine has
  std::int64_t min_bytes = 1 << 10;
  std::int64_t max_bytes = 0;  // 0: 32 MiB on host buffers, 1 GiB on device buffers
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    R1_REQUIRE(i + 1 < argc && (a == "--backend" || a == "--min-bytes" || a == "--max-bytes"), "unknown option '",
               a, "' (usage: r1hpc-bench-comm [--backend mpi|nccl|all] [--min-bytes B] [--max-bytes B])");
    const std::string v = argv[++i];
    if (a == "--backend") {
      o.backend = v == "all" ? "" : backend_name(parse_backend(v));
    } else {
      const long long n = std::atoll(v.c_str());
      R1_REQUIRE(n > 0, a, " must be a positive number of bytes, got '", v, "'");
      (a == "--min-bytes" ? o.min_bytes : o.max_bytes) = n;
    }
  }
  return o;
}

enum class Op { all_reduce, all_to_all };

// Times one op at one size and prints a line from rank 0.
void measure(Communicator& comm, const Context& ctx, Op op, std::int64_t bytes) {
  const int n = comm.size();
  std::int64_t count = bytes / 4;
  if (op == Op::all_to_all) count -= count % n;
  if (count == 0) return;
  const Tensor a = ctx.zeros({count}, DType::f32), b = ctx.zeros({count}, DType::f32);
  const auto run = [&] {
    if (op == Op::all_reduce) {
      comm.all_reduce(a);
    } else {
      comm.all_to_all(a, b);
    }
  };
  const int iters = static_cast<int>(std::clamp<std::int64_t>((std::int64_t{1} << 30) / (count * 4), 5, 200));
  for (int i = 0; i < 3; ++i) run();
  comm.barrier();
  const Stopwatch clock;
  for (int i = 0; i < iters; ++i) run();
  comm.wait();
  const double mine = clock.seconds() / iters;
  double t = 0;
  MPI_Allreduce(&mine, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  const double moved = static_cast<double>(count) * 4, algbw = moved / t * 1e-9;
  const double factor = op == Op::all_reduce ? 2.0 * (n - 1) / n : static_cast<double>(n - 1) / n;
  if (comm.rank() == 0)
    std::printf("%-5s %-10s %4d %12.0f %5d %12.2f %10.3f %10.3f\n", backend_name(comm.backend()),
                op == Op::all_reduce ? "all_reduce" : "all_to_all", n, moved, iters, t * 1e6, algbw, algbw * factor);
  std::fflush(stdout);
}

void bench(Backend backend, const Options& o, int world) {
  const bool device = backend == Backend::nccl;
#if defined(R1HPC_HAVE_CUDA)
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const Context ctx = device ? Context::cuda(rank % std::max(1, Context::cuda_device_count())) : Context::cpu();
#else
  const Context ctx = Context::cpu();
#endif
  std::vector<int> all(world);
  for (int r = 0; r < world; ++r) all[r] = r;
  auto comm = make_communicator(backend, "world", all, ctx, 600);
  const std::int64_t max_bytes = o.max_bytes ? o.max_bytes : device ? std::int64_t{1} << 30 : std::int64_t{32} << 20;
  for (Op op : {Op::all_reduce, Op::all_to_all})
    for (std::int64_t bytes = o.min_bytes; bytes <= max_bytes; bytes *= 4) measure(*comm, ctx, op, bytes);
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  logger().configure(rank, world, LogLevel::warn);
  int code = 0;
  try {
    const Options o = parse(argc, argv);
    std::vector<Backend> backends;
    if (o.backend.empty() || o.backend == "mpi") backends.push_back(Backend::mpi);
    if (o.backend == "nccl" || (o.backend.empty() && Context::cuda_device_count() > 0))
      backends.push_back(Backend::nccl);
    if (rank == 0)
      std::printf("# backend op ranks bytes iters time_us algbw_GB/s busbw_GB/s\n");
    for (Backend b : backends) bench(b, o, world);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::user) {
      log_error(error_kind_name(e.kind()), ": ", e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) std::fprintf(stderr, "r1hpc-bench-comm: error: %s\n", e.what());
    code = 2;
  }
  MPI_Finalize();
  return code;
}
