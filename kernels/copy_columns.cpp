#include "kernels/copy_columns.hpp"

#include "kernels/cpu/copy_columns.hpp"
#include "kernels/cuda/copy_columns.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

ColumnLayout column_layout(const Tensor& t) {
  if (t.rank() == 2) return {t.dim(0), 1, t.dim(1)};
  return {t.dim(0), t.dim(1), t.dim(2)};
}

void copy_columns(const Context& ctx, const Tensor& src, std::int64_t src_col, const Tensor& dst, std::int64_t dst_col,
                  std::int64_t width) {
  const char* op = "copy_columns";
  require_all_here(ctx, op, {{"src", &src}, {"dst", &dst}});
  for (const Tensor* t : {&src, &dst})
    R1_REQUIRE((t->rank() == 2 || t->rank() == 3) && is_float(t->dtype()), op,
               ": tensors must be f32 or bf16 [rows, cols] or [rows, groups, cols], got ", t->str());
  R1_REQUIRE(src.dtype() == dst.dtype(), op, ": src ", src.str(), " and dst ", dst.str(), " must have one dtype");
  const ColumnLayout s = column_layout(src), d = column_layout(dst);
  R1_REQUIRE(s.rows == d.rows, op, ": src ", src.str(), " and dst ", dst.str(), " must have the same rows");
  R1_REQUIRE(s.groups == d.groups || s.groups == 1 || d.groups == 1, op, ": groups of src ", src.str(), " and dst ",
             dst.str(), " must be equal, or one of them 1 (broadcast / sum)");
  R1_REQUIRE(width >= 0 && src_col >= 0 && src_col + width <= s.cols && dst_col >= 0 && dst_col + width <= d.cols, op,
             ": columns [", src_col, ", ", src_col + width, ") of src ", src.str(), " or [", dst_col, ", ",
             dst_col + width, ") of dst ", dst.str(), " are out of range");
  if (s.rows == 0 || width == 0 || d.groups == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::copy_columns(ctx, src, src_col, dst, dst_col, width);
#endif
  cpu::copy_columns(src, src_col, dst, dst_col, width);
}

}  // namespace r1::kernels
