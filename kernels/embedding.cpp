#include "kernels/embedding.hpp"

#include "kernels/cpu/embedding.hpp"
#include "kernels/cuda/embedding.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace {
void check_ids(const char* op, const Tensor& ids, std::int64_t vocab, const char* table_name, const Tensor& table) {
  if (!ids.on_host()) return;  // device ids are the caller's to validate (see the header)
  const std::int32_t* p = ids.data<std::int32_t>();
  for (std::int64_t t = 0; t < ids.numel(); ++t)
    R1_REQUIRE(p[t] >= -1 && p[t] < vocab, op, ": ids[", t, "] = ", p[t], " is not a row of ", table_name, " ",
               table.str());
}
}  // namespace

void embedding_forward(const Context& ctx, const Tensor& table, const Tensor& ids, const Tensor& out) {
  require_all_here(ctx, "embedding_forward", {{"table", &table}, {"ids", &ids}, {"out", &out}});
  require_float_matrix("embedding_forward", "table", table);
  require_float_matrix("embedding_forward", "out", out);
  R1_REQUIRE(ids.dtype() == DType::i32 && ids.rank() == 1, "embedding_forward: ids must be i32 [T], got ", ids.str());
  R1_REQUIRE(out.dim(0) == ids.dim(0) && out.dim(1) == table.dim(1), "embedding_forward: out ", out.str(),
             " must be [T, D] = [", ids.dim(0), ", ", table.dim(1), "] for ids ", ids.str(), " and table ", table.str());
  check_ids("embedding_forward", ids, table.dim(0), "table", table);
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::embedding_forward(ctx, table, ids, out);
#endif
  cpu::embedding_forward(table, ids, out);
}

void embedding_backward(const Context& ctx, const Tensor& dout, const Tensor& ids, const Tensor& dtable) {
  require_all_here(ctx, "embedding_backward", {{"dout", &dout}, {"ids", &ids}, {"dtable", &dtable}});
  require_float_matrix("embedding_backward", "dout", dout);
  R1_REQUIRE(dtable.rank() == 2 && dtable.dtype() == DType::f32, "embedding_backward: dtable must be f32 [V, D], got ",
             dtable.str());
  require_vector("embedding_backward", "ids", ids, DType::i32, dout.dim(0), "dout", dout);
  R1_REQUIRE(dout.dim(1) == dtable.dim(1), "embedding_backward: dout ", dout.str(), " and dtable ", dtable.str(),
             " must have the same number of columns");
  check_ids("embedding_backward", ids, dtable.dim(0), "dtable", dtable);
  if (dout.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::embedding_backward(ctx, dout, ids, dtable);
#endif
  cpu::embedding_backward(dout, ids, dtable);
}

}  // namespace r1::kernels
