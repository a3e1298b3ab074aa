#include "kernels/reduce.hpp"

#include "kernels/cpu/reduce.hpp"
#include "kernels/cuda/reduce.hpp"

namespace r1::kernels {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::sum_squares: return "sum_squares";
    case ReduceOp::max_abs: return "max_abs";
  }
  return "?";
}

void reduce(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out) {
  require_here(ctx, "reduce", "x", x);
  require_here(ctx, "reduce", "out", out);
  R1_REQUIRE(out.dtype() == DType::f32 && out.numel() == 1, "reduce: out must be f32[1], got ", out.str());
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::reduce(ctx, op, x, out);
#endif
  cpu::reduce(op, x, out);
}

void reduce_rows(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out) {
  require_here(ctx, "reduce_rows", "x", x);
  require_here(ctx, "reduce_rows", "out", out);
  R1_REQUIRE(x.rank() == 2, "reduce_rows: x must be [rows, cols], got ", x.str());
  R1_REQUIRE(out.dtype() == DType::f32 && out.numel() == x.dim(0), "reduce_rows: out must be f32[", x.dim(0), "], got ",
             out.str());
  if (x.dim(0) == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::reduce_rows(ctx, op, x, out);
#endif
  cpu::reduce_rows(op, x, out);
}

void reduce_each(const Context& ctx, ReduceOp op, std::span<const Tensor> xs, const Tensor& out) {
  require_here(ctx, "reduce_each", "out", out);
  R1_REQUIRE(out.dtype() == DType::f32 && out.numel() == static_cast<std::int64_t>(xs.size()),
             "reduce_each: out must be f32[", xs.size(), "], got ", out.str());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    require_here(ctx, "reduce_each", "xs[i]", xs[i]);
    R1_REQUIRE(xs[i].dtype() == xs[0].dtype(), "reduce_each: xs[", i, "] ", xs[i].str(), " is not ",
               dtype_name(xs[0].dtype()), " like xs[0]");
  }
  if (xs.empty()) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::reduce_each(ctx, op, xs, out);
#endif
  cpu::reduce_each(op, xs, out);
}

float reduce_value(const Context& ctx, ReduceOp op, const Tensor& x) {
  Tensor out = ctx.empty({1}, DType::f32);
  reduce(ctx, op, x, out);
  Tensor h = Tensor::host({1}, DType::f32);
  copy(h, out);
  return h.data<float>()[0];
}

}  // namespace r1::kernels
