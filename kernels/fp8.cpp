#include "kernels/fp8.hpp"

#include "kernels/cpu/fp8.hpp"
#include "kernels/cuda/fp8.hpp"
#include "kernels/gather_rows.hpp"

namespace r1::kernels {

Fp8Tensor make_fp8(const Context& ctx, std::int64_t rows, std::int64_t cols, int block_rows, int block_cols) {
  R1_REQUIRE(block_rows > 0 && block_cols > 0, "fp8: block sizes must be positive, got ", block_rows, "x", block_cols);
  Fp8Tensor q;
  q.block_rows = block_rows;
  q.block_cols = block_cols;
  q.data = ctx.empty({rows, cols}, DType::f8e4m3);
  q.scale_inv = ctx.empty({(rows + block_rows - 1) / block_rows, (cols + block_cols - 1) / block_cols}, DType::f32);
  return q;
}

void check_fp8(const Fp8Tensor& q, const Tensor& dense, const char* op) {
  R1_REQUIRE(dense.rank() == 2 && q.data.rank() == 2 && dense.shape() == q.data.shape(), op, ": dense ", dense.str(),
             " and fp8 data ", q.data.str(), " must be the same 2-D shape");
  R1_REQUIRE(q.data.dtype() == DType::f8e4m3 && q.scale_inv.dtype() == DType::f32, op, ": fp8 data must be f8e4m3 (",
             q.data.str(), ") and scales f32 (", q.scale_inv.str(), ")");
  const Shape want{(dense.dim(0) + q.block_rows - 1) / q.block_rows, (dense.dim(1) + q.block_cols - 1) / q.block_cols};
  R1_REQUIRE(q.scale_inv.shape() == want, op, ": scale_inv ", q.scale_inv.str(), " must be ", want.str(), " for ",
             q.block_rows, "x", q.block_cols, " blocks of ", dense.shape().str());
}

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  require_here(ctx, "quantize_fp8", "x", x);
  require_here(ctx, "quantize_fp8", "data", out.data);
  require_here(ctx, "quantize_fp8", "scale_inv", out.scale_inv);
  check_fp8(out, x, "quantize_fp8");
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::quantize_fp8(ctx, x, out);
#endif
  cpu::quantize_fp8(x, out);
}

void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  require_here(ctx, "quantize_fp8_transposed", "x", x);
  require_here(ctx, "quantize_fp8_transposed", "data", out.data);
  require_here(ctx, "quantize_fp8_transposed", "scale_inv", out.scale_inv);
  R1_REQUIRE(x.rank() == 2 && out.data.rank() == 2 && out.data.dim(0) == x.dim(1) && out.data.dim(1) == x.dim(0),
             "quantize_fp8_transposed: out ", out.data.str(), " must be x ", x.str(), " transposed");
  check_fp8(out, out.data, "quantize_fp8_transposed");
  if (x.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::quantize_fp8_transposed(ctx, x, out);
#endif
  cpu::quantize_fp8_transposed(x, out);
}

void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y) {
  require_here(ctx, "dequantize_fp8", "y", y);
  require_here(ctx, "dequantize_fp8", "data", q.data);
  require_here(ctx, "dequantize_fp8", "scale_inv", q.scale_inv);
  check_fp8(q, y, "dequantize_fp8");
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::dequantize_fp8(ctx, q, y);
#endif
  cpu::dequantize_fp8(q, y);
}

void gather_fp8_rows(const Context& ctx, const Fp8Tensor& src, const Tensor& rows, const Fp8Tensor& dst) {
  require_here(ctx, "gather_fp8_rows", "src", src.data);
  require_here(ctx, "gather_fp8_rows", "dst", dst.data);
  check_fp8(src, src.data, "gather_fp8_rows src");
  check_fp8(dst, dst.data, "gather_fp8_rows dst");
  R1_REQUIRE(src.block_rows == 1 && dst.block_rows == 1 && src.block_cols == dst.block_cols &&
                 src.data.dim(1) == dst.data.dim(1) && rows.rank() == 1 && rows.dtype() == DType::i32 &&
                 rows.numel() == dst.data.dim(0),
             "gather_fp8_rows: src ", src.data.str(), " and dst ", dst.data.str(), " must be in the same 1 x ",
             src.block_cols, " tiles with one i32 row index per dst row, got ", rows.str());
  gather_rows(ctx, src.scale_inv, rows, dst.scale_inv);  // also checks the rows on the CPU
  if (dst.data.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::gather_fp8_rows(ctx, src.data, rows, dst.data);
#endif
  cpu::gather_fp8_rows(src.data, rows, dst.data);
}

}  // namespace r1::kernels
