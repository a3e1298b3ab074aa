#include "kernels/gather_rows.hpp"

#include "kernels/cpu/gather_rows.hpp"
#include "kernels/cuda/gather_rows.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

void gather_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const char* op = "gather_rows";
  require_all_here(ctx, op, {{"src", &src}, {"rows", &rows}, {"dst", &dst}});
  for (const Tensor* t : {&src, &dst})
    R1_REQUIRE(t->rank() >= 1 && is_float(t->dtype()), op, ": tensors must be f32 or bf16 [rows, ...], got ", t->str());
  R1_REQUIRE(src.dtype() == dst.dtype(), op, ": src ", src.str(), " and dst ", dst.str(), " must have one dtype");
  bool same_row = src.rank() == dst.rank();
  for (int d = 1; same_row && d < src.rank(); ++d) same_row = src.dim(d) == dst.dim(d);
  R1_REQUIRE(same_row, op, ": src ", src.str(), " and dst ", dst.str(), " must have the same shape past the first dimension");
  require_vector(op, "rows", rows, DType::i32, dst.dim(0), "dst", dst);
  if (rows.on_host()) {  // device rows are the caller's to validate (see the header)
    const std::int32_t* p = rows.data<std::int32_t>();
    for (std::int64_t i = 0; i < rows.numel(); ++i)
      R1_REQUIRE(p[i] >= 0 && p[i] < src.dim(0), op, ": rows[", i, "] = ", p[i], " is not a row of src ", src.str());
  }
  if (dst.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::gather_rows(ctx, src, rows, dst);
#endif
  cpu::gather_rows(src, rows, dst);
}

}  // namespace r1::kernels
