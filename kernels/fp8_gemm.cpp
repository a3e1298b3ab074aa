#include "kernels/fp8_gemm.hpp"

#include "kernels/cpu/fp8_gemm.hpp"
#include "kernels/cuda/fp8_gemm.hpp"
#include "kernels/elementwise.hpp"

namespace r1::kernels {

namespace {
std::string operands(const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c) {
  return detail::concat(" (A ", a.data.str(), " in ", a.block_rows, "x", a.block_cols, " tiles, B ", b.data.str(), " in ",
                        b.block_rows, "x", b.block_cols, " tiles, C ", c.str(), ")");
}
}  // namespace

namespace {
void check_operands(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c) {
  R1_REQUIRE(a.data.defined() && b.data.defined() && c.defined(), "fp8_gemm: undefined operand");
  const std::string ops = operands(a, b, c);
  R1_REQUIRE(a.data.rank() == 2 && b.data.rank() == 2 && c.rank() == 2, "fp8_gemm: operands must be 2-D", ops);
  R1_REQUIRE(a.block_rows == 1 && a.block_cols == kFp8Tile, "fp8_gemm: A must be in 1x128 tiles", ops);
  R1_REQUIRE(b.block_cols == kFp8Tile && (b.block_rows == 1 || b.block_rows == kFp8Tile),
             "fp8_gemm: B must be in 128x128 blocks or 1x128 tiles", ops);
  R1_REQUIRE(a.data.dim(1) == b.data.dim(1), "fp8_gemm: inner dimensions differ, K = ", a.data.dim(1), " from A and ",
             b.data.dim(1), " from B", ops);
  R1_REQUIRE(c.dim(0) == a.data.dim(0) && c.dim(1) == b.data.dim(0), "fp8_gemm: C must be [", a.data.dim(0), ", ",
             b.data.dim(0), "]", ops);
  R1_REQUIRE(c.dtype() == DType::f32 || c.dtype() == DType::bf16, "fp8_gemm: C must be f32 or bf16", ops);
  check_fp8(a, a.data, "fp8_gemm A", true);
  check_fp8(b, b.data, "fp8_gemm B", true);
  for (const Tensor* t : {&a.data, &a.scale_inv, &b.data, &b.scale_inv, &c}) require_here(ctx, "fp8_gemm", "operand", *t);
}
}  // namespace

void fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt) {
  check_operands(ctx, a, b, c);
  if (c.numel() == 0) return;
  if (a.data.dim(1) == 0) {  // an empty sum: C = beta * C
    if (opt.beta == 0.0f) return fill(ctx, c, 0.0f);
    return scale(ctx, opt.beta, c);
  }
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::fp8_gemm(ctx, a, b, c, opt);
#endif
  cpu::fp8_gemm(a, b, c, opt);
}

void fp8_gemm_experts(const Context& ctx, std::span<const Fp8Tensor> a, std::span<const Fp8Tensor> b,
                      std::span<const Tensor> c, const Fp8GemmOptions& opt) {
  R1_REQUIRE(a.size() == b.size() && b.size() == c.size(), "fp8_gemm_experts: ", a.size(), " A, ", b.size(), " B and ",
             c.size(), " C operands: one of each per expert");
  std::vector<std::size_t> busy;  // the experts with a product to compute
  for (std::size_t e = 0; e < a.size(); ++e) {
    check_operands(ctx, a[e], b[e], c[e]);
    if (c[e].numel() == 0) continue;
    if (a[e].data.dim(1) > 0) busy.push_back(e);
    else if (opt.beta != 1.0f) fp8_gemm(ctx, a[e], b[e], c[e], opt);  // C = beta C
  }
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::fp8_gemm_experts(ctx, a, b, c, busy, opt);
#endif
  for (std::size_t e : busy) cpu::fp8_gemm(a[e], b[e], c[e], opt);
}

std::int64_t fp8_gemm_plain_calls() {
#if defined(R1HPC_HAVE_CUDA)
  return cuda::fp8_gemm_plain_calls();
#else
  return 0;
#endif
}

Fp8Tensor fp8_rows(const Fp8Tensor& q, std::int64_t begin, std::int64_t end) {
  const std::int64_t rows = q.data.dim(0);
  R1_REQUIRE(!q.gemm_layout, "fp8_rows: ", q.data.str(), " has its scales in the GEMM's layout: take rows before");
  R1_REQUIRE(0 <= begin && begin <= end && end <= rows && begin % q.block_rows == 0 &&
                 (end % q.block_rows == 0 || end == rows),
             "fp8_rows: rows [", begin, ", ", end, ") of ", q.data.str(), " do not start and end on ", q.block_rows,
             "-row tiles");
  Fp8Tensor v = q;
  v.data = q.data.slice(begin, end);
  v.scale_inv = q.scale_inv.slice(begin / q.block_rows, (end + q.block_rows - 1) / q.block_rows);
  return v;
}

}  // namespace r1::kernels
