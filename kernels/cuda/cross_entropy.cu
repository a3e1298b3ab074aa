// CUDA cross-entropy: one block per token row. The forward reads the row once, keeping a running
// (max, sum of exp) per thread that is rescaled when the max grows (online softmax), then combines the
// threads' pairs; the backward is a second elementwise pass over the row using the saved lse.
#include <cfloat>

#include "kernels/cuda/cross_entropy.hpp"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 512;

template <class T, int N>
__global__ void forward_kernel(std::int64_t v, const T* logits, const std::int32_t* targets, float* losses, float* lse) {
  const std::int64_t t = blockIdx.x;
  const T* xr = logits + t * v;
  // -FLT_MAX, not -inf, so that exp(m - new_max) stays 1 for a thread that has seen only -inf logits.
  float m = -FLT_MAX, s = 0.0f;
  for (std::int64_t c = threadIdx.x * N; c < v; c += kThreads * N) {
    float e[N];
    load_pack<N>(xr + c, e);
    float pm = e[0];
#pragma unroll
    for (int k = 1; k < N; ++k) pm = fmaxf(pm, e[k]);
    const float nm = fmaxf(m, pm);  // one rescale per pack, not per element
    s *= expf(m - nm);
#pragma unroll
    for (int k = 0; k < N; ++k) s += expf(e[k] - nm);
    m = nm;
  }
  const float gm = block_max(m);
  s = block_sum(s * expf(m - gm));
  if (threadIdx.x == 0) {
    const float l = gm + logf(s);
    const std::int32_t tgt = targets[t];
    lse[t] = l;
    losses[t] = tgt == -1 ? 0.0f : tgt == kTargetElsewhere ? l : (tgt < 0 || tgt >= v) ? NAN : l - load_f32(xr[tgt]);
  }
}

template <class T, int N>
__global__ void backward_kernel(std::int64_t v, const T* logits, const std::int32_t* targets, const float* lse,
                                const float* dloss, T* dlogits) {
  const std::int64_t t = blockIdx.x;
  const std::int32_t tgt = targets[t];
  const float d = tgt == -1 ? 0.0f : (tgt != kTargetElsewhere && (tgt < 0 || tgt >= v)) ? NAN : dloss[t];
  const float l = lse[t];
  for (std::int64_t c = threadIdx.x * N; c < v; c += kThreads * N) {
    float e[N];
    load_pack<N>(logits + t * v + c, e);
#pragma unroll
    for (int k = 0; k < N; ++k) e[k] = (expf(e[k] - l) - (c + k == tgt ? 1.0f : 0.0f)) * d;
    store_pack<N>(dlogits + t * v + c, e);
  }
}
}  // namespace

void cross_entropy_forward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& losses,
                           const Tensor& lse) {
  const std::int64_t rows = logits.dim(0), v = logits.dim(1);
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(logits.dtype(), "cross_entropy_forward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    with_pack<n>(v % n == 0 && pack_aligned(logits, n), [&](auto pn) {
      forward_kernel<T, decltype(pn)::value><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          v, logits.data<T>(), targets.data<std::int32_t>(), losses.data<float>(), lse.data<float>());
    });
  });
  R1_CUDA_LAUNCHED("cross_entropy_forward");
}

void cross_entropy_backward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& dloss, const Tensor& dlogits) {
  const std::int64_t rows = logits.dim(0), v = logits.dim(1);
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    with_pack<n>(v % n == 0 && pack_aligned(logits, n) && pack_aligned(dlogits, n), [&](auto pn) {
      backward_kernel<T, decltype(pn)::value><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          v, logits.data<T>(), targets.data<std::int32_t>(), lse.data<float>(), dloss.data<float>(), dlogits.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("cross_entropy_backward");
}

}  // namespace r1::kernels::cuda
