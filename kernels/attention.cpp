#include "kernels/attention.hpp"

#include <cmath>
#include <optional>

#include "kernels/cpu/attention.hpp"
#include "kernels/profile.hpp"
#include "kernels/cuda/attention.hpp"
#if defined(R1HPC_HAVE_CUDNN)
#include "kernels/cuda/cudnn_attention.hpp"
#endif

namespace r1::kernels {

namespace {
// Checks what forward and backward share; `op` names the entry point in messages.
void check_inputs(const Context& ctx, const char* op, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                  const Tensor& segment_ids, const Tensor& lse) {
  require_here(ctx, op, "q", q);
  require_here(ctx, op, "k", k);
  require_here(ctx, op, "v", v);
  require_here(ctx, op, "lse", lse);
  R1_REQUIRE(q.rank() == 4, op, ": q ", q.str(), " must be [batch, seq, heads, head_dim]");
  R1_REQUIRE(k.rank() == 4 && k.dim(0) == q.dim(0) && k.dim(1) == q.dim(1) && k.dim(3) == q.dim(3) && k.dim(2) >= 1 &&
                 q.dim(2) % k.dim(2) == 0,
             op, ": k ", k.str(), " must be [batch, seq, kv_heads, head_dim] with batch, seq, head_dim of q ", q.str(),
             " and kv_heads dividing its heads");
  R1_REQUIRE(v.rank() == 4 && v.dim(0) == q.dim(0) && v.dim(1) == q.dim(1) && v.dim(2) == k.dim(2), op, ": v ",
             v.str(), " must be [batch, seq, kv_heads, v_head_dim] with batch, seq of q ", q.str(), " and kv_heads of k ",
             k.str());
  R1_REQUIRE(q.dtype() == DType::f32 || q.dtype() == DType::bf16, op, ": q ", q.str(), " must be f32 or bf16");
  R1_REQUIRE(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op, ": q ", q.str(), ", k ", k.str(), " and v ",
             v.str(), " must have one dtype");
  R1_REQUIRE(q.dim(3) >= 1 && q.dim(3) <= kAttentionMaxHeadDim && v.dim(3) >= 1 && v.dim(3) <= kAttentionMaxHeadDim, op,
             ": head dims of q ", q.str(), " and v ", v.str(), " must be in [1, ", kAttentionMaxHeadDim, "]");
  R1_REQUIRE(std::isfinite(scale) && scale > 0.0f, op, ": scale must be positive and finite, got ", scale);
  const Shape lse_shape{q.dim(0), q.dim(2), q.dim(1)};
  R1_REQUIRE(lse.shape() == lse_shape && lse.dtype() == DType::f32, op, ": lse ", lse.str(), " must be f32 ",
             lse_shape.str(), " ([batch, heads, seq]) for q ", q.str());
  if (segment_ids.defined()) {
    require_here(ctx, op, "segment_ids", segment_ids);
    const Shape seg_shape{q.dim(0), q.dim(1)};
    R1_REQUIRE(segment_ids.shape() == seg_shape && segment_ids.dtype() == DType::i32, op, ": segment_ids ",
               segment_ids.str(), " must be i32 ", seg_shape.str(), " ([batch, seq]) for q ", q.str());
  }
}

void check_like(const Context& ctx, const char* op, const char* name, const Tensor& t, const char* like_name,
                const Tensor& like) {
  require_here(ctx, op, name, t);
  R1_REQUIRE(t.shape() == like.shape() && t.dtype() == like.dtype(), op, ": ", name, " ", t.str(),
             " must have the shape and dtype of ", like_name, " ", like.str());
}
// out and dout: [batch, seq, heads of q, v_head_dim], the dtype of v.
void check_out(const Context& ctx, const char* op, const char* name, const Tensor& t, const Tensor& q, const Tensor& v) {
  require_here(ctx, op, name, t);
  const Shape shape{q.dim(0), q.dim(1), q.dim(2), v.dim(3)};
  R1_REQUIRE(t.shape() == shape && t.dtype() == v.dtype(), op, ": ", name, " ", t.str(), " must be ",
             dtype_name(v.dtype()), " ", shape.str(), " ([batch, seq, heads of q, head_dim of v])");
}

#if defined(R1HPC_HAVE_CUDNN)
// The cuDNN backward variant that runs this call, or none (our kernel). Forward and backward of one call ask with
// the same q, k, v, segment ids and context setting, and the answer depends on nothing else (the plans of both
// directions are built before the first answer), so a backward always reads the lse of its own implementation.
std::optional<cuda::CudnnBackward> cudnn_variant(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                                                 const Tensor& segment_ids) {
  std::optional<cuda::CudnnBackward> variant;
  if (ctx.attention_backend() == AttentionBackend::cudnn) variant = cuda::CudnnBackward::deterministic;
  if (ctx.attention_backend() == AttentionBackend::cudnn_nondeterministic) variant = cuda::CudnnBackward::nondeterministic;
  if (variant && !cuda::cudnn_attention_selected(ctx, q, k, v, segment_ids, *variant)) variant.reset();
  return variant;
}
#endif

}  // namespace

void attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& segment_ids, const Tensor& out, const Tensor& lse) {
  check_inputs(ctx, "attention_forward", q, k, v, scale, segment_ids, lse);
  check_out(ctx, "attention_forward", "out", out, q, v);
  if (q.numel() == 0 || v.numel() == 0) return;
  const ProfileRegion region(ctx, "core");  // the fused kernel alone, inside its layer's "attn" region
#if defined(R1HPC_HAVE_CUDNN)
  if (ctx.is_cuda() && cudnn_variant(ctx, q, k, v, segment_ids))
    return cuda::cudnn_attention_forward(ctx, q, k, v, scale, out, lse);
#endif
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::attention_forward(ctx, q, k, v, scale, segment_ids, out, lse);
#endif
  cpu::attention_forward(q, k, v, scale, segment_ids, out, lse);
}

void attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& segment_ids, float scale,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const char* op = "attention_backward";
  check_inputs(ctx, op, q, k, v, scale, segment_ids, lse);
  check_out(ctx, op, "out", out, q, v);
  check_out(ctx, op, "dout", dout, q, v);
  check_like(ctx, op, "dq", dq, "q", q);
  check_like(ctx, op, "dk", dk, "k", k);
  check_like(ctx, op, "dv", dv, "v", v);
  if (q.numel() == 0 || v.numel() == 0) return;
  const ProfileRegion region(ctx, "core");
#if defined(R1HPC_HAVE_CUDNN)
  if (ctx.is_cuda())
    if (const auto variant = cudnn_variant(ctx, q, k, v, segment_ids))
      return cuda::cudnn_attention_backward(ctx, q, k, v, out, dout, lse, scale, dq, dk, dv, *variant);
#endif
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::attention_backward(ctx, q, k, v, out, dout, lse, segment_ids, scale, dq, dk, dv);
#endif
  cpu::attention_backward(q, k, v, out, dout, lse, segment_ids, scale, dq, dk, dv);
}

}  // namespace r1::kernels
