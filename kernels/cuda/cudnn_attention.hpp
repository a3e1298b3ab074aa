// cuDNN's fused flash attention (backend graph API) as a second CUDA path of kernels/attention.hpp: the same
// contract (layouts, causal mask, lse), for the calls its engines take. CUDA builds with cuDNN only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/context.hpp"

namespace r1::kernels::cuda {

// Whether cuDNN runs this attention call on ctx's device, forward and backward alike: bf16, no segment ids,
// head dims multiples of 8 up to 256, a sequence length that is a multiple of 128 (below that cuDNN 9.14's
// backward needs a padding-mask workaround this path does not build), 16-byte aligned q, k, v, and an engine
// for both the forward graph and the backward graph of `variant`. Builds and caches both plans at the first
// call of a shape, so forward and backward of one call always agree. When false, `why` (if given) says why.
// The answer depends only on the shapes, dtypes, alignment, variant and device: never on which direction asks.
enum class CudnnBackward : std::uint8_t {
  deterministic,     // dQ written directly, no f32 atomic accumulation (cudnn-frontend's deterministic form on
                     // Hopper); kernels_cudnn_attention_gpu_test checks the same bits run to run
  nondeterministic,  // dQ accumulated in f32 with atomics (the frontend's default graph): faster, order varies
};
bool cudnn_attention_supported(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& segment_ids, CudnnBackward variant, std::string* why = nullptr);
// cudnn_attention_supported for the dispatch: when false, warns once per reason (naming it and the shape) that
// our kernel runs instead.
bool cudnn_attention_selected(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& segment_ids, CudnnBackward variant);

// kernels::attention_forward / attention_backward through cuDNN; callers check cudnn_attention_supported first
// (a call it rejects throws). lse is cuDNN's softmax stats, max + log(sum exp(s - max)) of the scaled, masked
// scores in f32: the natural-log logsumexp our contract names, so either backward can consume it.
void cudnn_attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                             const Tensor& out, const Tensor& lse);
void cudnn_attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& dout, const Tensor& lse, float scale, const Tensor& dq, const Tensor& dk,
                              const Tensor& dv, CudnnBackward variant);

// What the cached plans of a supported shape chose (for the benchmark): cuDNN's engine index, its workspace,
// and whether cuDNN flags the backward engine non-deterministic.
struct CudnnAttentionPlanInfo {
  long long forward_engine = -1, backward_engine = -1;
  std::size_t forward_workspace = 0, backward_workspace = 0;  // bytes, our own f32 intermediates included
  bool backward_flagged_nondeterministic = false;
};
CudnnAttentionPlanInfo cudnn_attention_plan_info(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                                                 CudnnBackward variant);
int cudnn_version();  // cudnnGetVersion() of the library loaded at run time, e.g. 91400

}  // namespace r1::kernels::cuda
