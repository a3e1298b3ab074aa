#include "kernels/gemm.hpp"

#include "kernels/cpu/gemm.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/elementwise.hpp"

namespace r1::kernels {

namespace {
struct Mat {
  std::int64_t batch, rows, cols;
};
Mat as_matrix(const Tensor& t, const char* name) {
  R1_REQUIRE(t.rank() == 2 || t.rank() == 3, "gemm: ", name, " must be 2-D or 3-D (batched), got ", t.str());
  if (t.rank() == 2) return {1, t.dim(0), t.dim(1)};
  return {t.dim(0), t.dim(1), t.dim(2)};
}
}  // namespace

GemmProblem check_gemm(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& opt) {
  R1_REQUIRE(a.defined() && b.defined() && c.defined(), "gemm: undefined operand");
  const std::string shapes = detail::concat(" (A ", a.str(), opt.trans_a ? " transposed" : "", ", B ", b.str(),
                                            opt.trans_b ? " transposed" : "", ", C ", c.str(), ")");
  R1_REQUIRE(a.dtype() == b.dtype() && (a.dtype() == DType::f32 || a.dtype() == DType::bf16),
             "gemm: A and B must share a dtype, f32 or bf16", shapes);
  R1_REQUIRE(c.dtype() == DType::f32 || c.dtype() == DType::bf16, "gemm: C must be f32 or bf16", shapes);
  const Mat ma = as_matrix(a, "A"), mb = as_matrix(b, "B"), mc = as_matrix(c, "C");
  GemmProblem p;
  p.m = opt.trans_a ? ma.cols : ma.rows;
  p.k = opt.trans_a ? ma.rows : ma.cols;
  const std::int64_t kb = opt.trans_b ? mb.cols : mb.rows;
  p.n = opt.trans_b ? mb.rows : mb.cols;
  R1_REQUIRE(p.k == kb, "gemm: inner dimensions differ, K = ", p.k, " from A and ", kb, " from B", shapes);
  R1_REQUIRE(mc.rows == p.m && mc.cols == p.n, "gemm: C must be [", p.m, ", ", p.n, "]", shapes);
  p.batch = c.rank() == 3 ? mc.batch : 1;
  R1_REQUIRE(c.rank() == 3 || (a.rank() == 2 && b.rank() == 2), "gemm: batched A or B needs a 3-D C", shapes);
  R1_REQUIRE(a.rank() == 2 || ma.batch == p.batch, "gemm: batch of A differs from C", shapes);
  R1_REQUIRE(b.rank() == 2 || mb.batch == p.batch, "gemm: batch of B differs from C", shapes);
  p.stride_a = a.rank() == 3 ? ma.rows * ma.cols : 0;
  p.stride_b = b.rank() == 3 ? mb.rows * mb.cols : 0;
  p.stride_c = p.m * p.n;
  return p;
}

void gemm(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& opt) {
  const GemmProblem p = check_gemm(a, b, c, opt);
  require_here(ctx, "gemm", "A", a);
  require_here(ctx, "gemm", "B", b);
  require_here(ctx, "gemm", "C", c);
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  if (p.k == 0) {  // an empty sum: C = beta * C (BLAS libraries disagree on this edge)
    if (opt.beta == 0.0f) return fill(ctx, c, 0.0f);
    return scale(ctx, opt.beta, c);
  }
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::gemm(ctx, p, a, b, c, opt);
#endif
  cpu::gemm(ctx, p, a, b, c, opt);
}

}  // namespace r1::kernels
