#include "app/self_check.hpp"

#include <mpi.h>

#include <cmath>
#include <string>
#include <vector>

#include "config/run.hpp"
#include "core/log.hpp"
#include "core/rng.hpp"
#include "core/timer.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/reduce.hpp"
#include "parallel/watched_mpi.hpp"

namespace r1 {

namespace {
using kernels::Context;

Tensor random_host(const Shape& s, std::uint32_t stream) {
  Tensor t = Tensor::host(s, DType::f32);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = random_normal(RngKey{1234, stream}, static_cast<std::uint64_t>(i));
  return t;
}

// Maximum |x - y| relative to max |y|.
double rel_error(const Tensor& x, const Tensor& y) {
  const float* a = x.data<float>();
  const float* b = y.data<float>();
  double err = 0, mag = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    mag = std::max(mag, static_cast<double>(std::fabs(b[i])));
  }
  return err / std::max(mag, 1e-30);
}

Tensor to_host_f32(const Context& ctx, const Tensor& t) {
  Tensor f = ctx.empty(t.shape(), DType::f32);
  kernels::cast(ctx, t, f);
  Tensor h = Tensor::host(t.shape(), DType::f32);
  copy(h, f);
  return h;
}

struct Check {
  std::string name;
  double error;
  double tolerance;
  double gflops;  // < 0: not a throughput check
};

// Runs the checks on `ctx` against the naive-free reference: the CPU backend's own result in f32.
std::vector<Check> check_backend(const Context& ctx, const Context& cpu) {
  std::vector<Check> out;
  const std::int64_t m = 256, n = 384, k = 512;
  const Tensor a = random_host({m, k}, 1), b = random_host({n, k}, 2);
  Tensor ref = Tensor::host({m, n}, DType::f32);
  kernels::gemm(cpu, a, b, ref, {.trans_b = true});

  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor da = ctx.empty(a.shape(), dt), db = ctx.empty(b.shape(), dt), dc = ctx.empty({m, n}, DType::f32);
    kernels::cast(ctx, ctx.to_here(a), da);
    kernels::cast(ctx, ctx.to_here(b), db);
    kernels::gemm(ctx, da, db, dc, {.trans_b = true});
    ctx.synchronize();
    const int reps = 20;
    Stopwatch sw;
    for (int i = 0; i < reps; ++i) kernels::gemm(ctx, da, db, dc, {.trans_b = true});
    ctx.synchronize();
    const double gflops = 2.0 * m * n * k * reps / sw.seconds() * 1e-9;
    // bf16 inputs carry 8 significant bits: errors of ~2^-8 relative to the largest entry are expected.
    out.push_back({detail::concat("gemm ", dtype_name(dt), " ", m, "x", n, "x", k), rel_error(to_host_f32(ctx, dc), ref),
                   dt == DType::f32 ? 1e-5 : 2e-2, gflops});
  }

  const Tensor x = random_host({100003}, 3), y = random_host({100003}, 4);
  Tensor dy = ctx.to_here(y);
  kernels::axpy(ctx, 0.5f, ctx.to_here(x), dy);
  Tensor expect = Tensor::host(y.shape(), DType::f32);
  for (std::int64_t i = 0; i < y.numel(); ++i) expect.data<float>()[i] = y.data<float>()[i] + 0.5f * x.data<float>()[i];
  out.push_back({"axpy f32 100003", rel_error(to_host_f32(ctx, dy), expect), 1e-6, -1});

  for (auto op : {kernels::ReduceOp::sum, kernels::ReduceOp::sum_squares, kernels::ReduceOp::max_abs}) {
    double r = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double v = x.data<float>()[i];
      r = op == kernels::ReduceOp::sum ? r + v : op == kernels::ReduceOp::sum_squares ? r + v * v : std::max(r, std::fabs(v));
    }
    const double got = kernels::reduce_value(ctx, op, ctx.to_here(x));
    out.push_back({detail::concat("reduce ", kernels::reduce_op_name(op)), std::fabs(got - r) / std::max(std::fabs(r), 1.0),
                   1e-5, -1});
  }
  return out;
}
}  // namespace

bool run_self_check([[maybe_unused]] int rank, int world_size) {
  const Context cpu = Context::cpu();
  std::vector<std::pair<std::string, Context>> backends{{"cpu", cpu}};
  const int gpus = Context::cuda_device_count();
#if defined(R1HPC_HAVE_CUDA)
  if (gpus > 0) backends.emplace_back("cuda:" + std::to_string(rank % gpus), Context::cuda(rank % gpus));
#endif
  log_info("self-check on ", world_size, " rank(s); CUDA devices visible to rank 0: ", gpus,
           gpus == 0 ? " (CUDA backend not exercised)" : "");
  bool ok = true;
  for (const auto& [name, ctx] : backends) {
    for (const Check& c : check_backend(ctx, cpu)) {
      const bool pass = c.error <= c.tolerance;
      ok = ok && pass;
      std::string perf = c.gflops > 0 ? detail::concat(", ", static_cast<long>(c.gflops), " GFLOP/s") : "";
      log_info(pass ? "  pass  " : "  FAIL  ", name, "  ", c.name, ": rel. error ", c.error, " (tolerance ", c.tolerance, ")", perf);
      if (!pass) log_error(name, " ", c.name, " failed: rel. error ", c.error, " > ", c.tolerance);
    }
  }
  // No deck here: the agreement waits as long as the deck key's default allows.
  parallel::attach_watch(MPI_COMM_WORLD, {detail::concat("world[0..", world_size - 1, "]"),
                                          ParallelConfig{}.collective_timeout_s});
  int global = ok ? 1 : 0;
  parallel::watched_all_reduce(MPI_COMM_WORLD, "self-check agreement", &global, 1, MPI_INT, MPI_MIN);
  log_info(global ? "self-check passed on every rank" : "self-check FAILED (see the errors above)");
  return global == 1;
}

}  // namespace r1
