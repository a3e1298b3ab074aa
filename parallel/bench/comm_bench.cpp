// Communication benchmark: all-reduce (f32 sum) and all-to-all bandwidth over all ranks, for the MPI
// backend (host buffers) and the NCCL backend (device buffers, GPU = rank % visible GPUs). NCCL-tests
// conventions: bytes = one rank's buffer, algbw = bytes / time, busbw = algbw x 2(n-1)/n for all-reduce
// and x (n-1)/n for all-to-all, time = mean per op on the slowest rank, GB = 1e9 bytes.
// Then overlap: a started op (Communicator::start_*) with a chain of GEMMs of about its duration queued
// behind it; hidden = (t_comm + t_compute - t_both) / min(t_comm, t_compute), the share of the shorter one
// that ran concurrently (100%: perfect overlap, 0: serialised).
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
#include "kernels/gemm.hpp"
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

// Seconds per call of f (after a warm-up), the slowest rank's.
template <class F> double timed(Communicator& comm, const Context& ctx, int iters, F&& f) {
  f();
  comm.wait();
  ctx.synchronize();
  comm.barrier();
  const Stopwatch clock;
  for (int i = 0; i < iters; ++i) f();
  comm.wait();
  ctx.synchronize();
  const double mine = clock.seconds() / iters;
  double t = 0;
  MPI_Allreduce(&mine, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

void measure_overlap(Communicator& comm, const Context& ctx, Op op, std::int64_t bytes) {
  const int n = comm.size();
  std::int64_t count = bytes / 4;
  count -= count % n;
  const Tensor a = ctx.zeros({count}, DType::f32), b = ctx.zeros({count}, DType::f32);
  const std::vector<std::int64_t> counts(n, count / n), displs = packed_displacements(counts);
  const auto start = [&] {
    if (op == Op::all_reduce) comm.start_all_reduce(a);
    else comm.start_all_to_allv(a, counts, displs, b, counts, displs);
  };
  const std::int64_t dim = ctx.is_cuda() ? 4096 : 256;
  const DType dt = ctx.is_cuda() ? DType::bf16 : DType::f32;
  const Tensor x = ctx.zeros({dim, dim}, dt), w = ctx.zeros({dim, dim}, dt), y = ctx.zeros({dim, dim}, dt);
  const double t_comm = timed(comm, ctx, 10, [&] {
    start();
    comm.finish_started();
  });
  const double t_gemm = timed(comm, ctx, 10, [&] { kernels::gemm(ctx, x, w, y, {.trans_b = true}); });
  int gemms = static_cast<int>(std::clamp(t_comm / t_gemm, 1.0, 2000.0));
  MPI_Allreduce(MPI_IN_PLACE, &gemms, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  const auto compute = [&] {
    for (int i = 0; i < gemms; ++i) kernels::gemm(ctx, x, w, y, {.trans_b = true});
  };
  const double t_compute = timed(comm, ctx, 10, compute);
  const double t_both = timed(comm, ctx, 10, [&] {
    start();
    compute();
    comm.finish_started();
  });
  const double hidden = (t_comm + t_compute - t_both) / std::min(t_comm, t_compute);
  if (comm.rank() == 0)
    std::printf("%-5s %-10s %4d %12.0f %10.1f %10.1f %5d %10.1f %9.0f%%\n", backend_name(comm.backend()),
                op == Op::all_reduce ? "all_reduce" : "all_to_all", n, static_cast<double>(count) * 4, t_comm * 1e6,
                t_compute * 1e6, gemms, t_both * 1e6, 100 * hidden);
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
  if (comm->rank() == 0)
    std::printf("# overlap: backend op ranks bytes comm_us compute_us gemms both_us hidden\n");
  std::vector<std::int64_t> sizes{std::min(std::int64_t{16} << 20, max_bytes)};  // 16 MiB and the largest
  if (max_bytes > sizes[0]) sizes.push_back(max_bytes);
  for (Op op : {Op::all_reduce, Op::all_to_all})
    for (std::int64_t bytes : sizes) measure_overlap(*comm, ctx, op, bytes);
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
