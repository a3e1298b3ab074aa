#include "kernels/moe_permute.hpp"

#include "kernels/cpu/moe_permute.hpp"
#include "kernels/cuda/moe_permute.hpp"

namespace r1::kernels {

namespace {
// T, k from row_of (i32 [T, k]); the token-side tensor is [T, D] and the expert-side one [T*k, D].
void check_rows(const Tensor& row_of, const Tensor& tokens, const Tensor& perm, const char* op, const char* tok_name,
                const char* perm_name) {
  R1_REQUIRE(row_of.rank() == 2 && row_of.dtype() == DType::i32, op, ": row_of must be i32 [T, k], got ", row_of.str());
  R1_REQUIRE(tokens.rank() == 2 && tokens.dim(0) == row_of.dim(0), op, ": ", tok_name, " must be [T, D] with T = ",
             row_of.dim(0), " (row_of ", row_of.str(), "), got ", tokens.str());
  R1_REQUIRE(perm.rank() == 2 && perm.dim(0) == row_of.numel() && perm.dim(1) == tokens.dim(1) &&
                 perm.dtype() == tokens.dtype(),
             op, ": ", perm_name, " must be [", row_of.numel(), ", ", tokens.dim(1), "] (T*k rows of ", tok_name, " ",
             tokens.str(), ", same dtype), got ", perm.str());
}
void check_gates(const Tensor& gates, const Tensor& row_of, const char* op, const char* name) {
  R1_REQUIRE(gates.dtype() == DType::f32 && gates.shape() == row_of.shape(), op, ": ", name, " must be f32 ",
             row_of.shape().str(), " like row_of, got ", gates.str());
}
}  // namespace

std::vector<std::int64_t> moe_permute(const Context& ctx, const Tensor& x, const Tensor& expert_idx,
                                      const Tensor& x_perm, const Tensor& row_of, const Tensor& expert_offsets) {
  require_here(ctx, "moe_permute", "x", x);
  require_here(ctx, "moe_permute", "expert_idx", expert_idx);
  require_here(ctx, "moe_permute", "x_perm", x_perm);
  require_here(ctx, "moe_permute", "row_of", row_of);
  require_here(ctx, "moe_permute", "expert_offsets", expert_offsets);
  R1_REQUIRE(expert_idx.dtype() == DType::i32 && row_of.shape() == expert_idx.shape(), "moe_permute: expert_idx ",
             expert_idx.str(), " must be i32 and shaped like row_of ", row_of.str());
  check_rows(row_of, x, x_perm, "moe_permute", "x", "x_perm");
  R1_REQUIRE(expert_offsets.rank() == 1 && expert_offsets.dim(0) >= 2 && expert_offsets.dtype() == DType::i32 &&
                 row_of.numel() < (std::int64_t{1} << 31),
             "moe_permute: expert_offsets must be i32 [E+1] with E >= 1 and T*k < 2^31, got ", expert_offsets.str(),
             " for expert_idx ", expert_idx.str());
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_permute(ctx, x, expert_idx, x_perm, row_of, expert_offsets);
#endif
  return cpu::moe_permute(x, expert_idx, x_perm, row_of, expert_offsets);
}

void moe_permute_backward(const Context& ctx, const Tensor& dx_perm, const Tensor& row_of, const Tensor& dx) {
  require_here(ctx, "moe_permute_backward", "dx_perm", dx_perm);
  require_here(ctx, "moe_permute_backward", "row_of", row_of);
  require_here(ctx, "moe_permute_backward", "dx", dx);
  check_rows(row_of, dx, dx_perm, "moe_permute_backward", "dx", "dx_perm");
  if (dx.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_combine(ctx, dx_perm, row_of, Tensor(), dx);
#endif
  cpu::moe_combine(dx_perm, row_of, Tensor(), dx);
}

void moe_unpermute(const Context& ctx, const Tensor& y_perm, const Tensor& row_of, const Tensor& gates, const Tensor& y) {
  require_here(ctx, "moe_unpermute", "y_perm", y_perm);
  require_here(ctx, "moe_unpermute", "row_of", row_of);
  require_here(ctx, "moe_unpermute", "gates", gates);
  require_here(ctx, "moe_unpermute", "y", y);
  check_rows(row_of, y, y_perm, "moe_unpermute", "y", "y_perm");
  check_gates(gates, row_of, "moe_unpermute", "gates");
  if (y.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_combine(ctx, y_perm, row_of, gates, y);
#endif
  cpu::moe_combine(y_perm, row_of, gates, y);
}

void moe_unpermute_backward(const Context& ctx, const Tensor& dy, const Tensor& y_perm, const Tensor& row_of,
                            const Tensor& gates, const Tensor& dy_perm, const Tensor& dgates) {
  require_here(ctx, "moe_unpermute_backward", "dy", dy);
  require_here(ctx, "moe_unpermute_backward", "y_perm", y_perm);
  require_here(ctx, "moe_unpermute_backward", "row_of", row_of);
  require_here(ctx, "moe_unpermute_backward", "gates", gates);
  require_here(ctx, "moe_unpermute_backward", "dy_perm", dy_perm);
  require_here(ctx, "moe_unpermute_backward", "dgates", dgates);
  check_rows(row_of, dy, y_perm, "moe_unpermute_backward", "dy", "y_perm");
  check_rows(row_of, dy, dy_perm, "moe_unpermute_backward", "dy", "dy_perm");
  check_gates(gates, row_of, "moe_unpermute_backward", "gates");
  check_gates(dgates, row_of, "moe_unpermute_backward", "dgates");
  if (row_of.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_unpermute_backward(ctx, dy, y_perm, row_of, gates, dy_perm, dgates);
#endif
  cpu::moe_unpermute_backward(dy, y_perm, row_of, gates, dy_perm, dgates);
}

}  // namespace r1::kernels
