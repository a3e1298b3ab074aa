// CUDA AdamW: one grid-stride pass, four f32 elements per 16-byte access when the tensors allow.
#include "kernels/adamw_math.hpp"
#include "kernels/cuda/adamw.hpp"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
template <int N>
__global__ void adamw_kernel(std::int64_t n, detail::AdamWCoefficients k, float* p, const float* g, float* m, float* v,
                             bf16* pb) {
  const std::int64_t packs = n / N;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float pv[N], gv[N], mv[N], vv[N];
    load_pack<N>(p + i * N, pv);
    load_pack<N>(g + i * N, gv);
    load_pack<N>(m + i * N, mv);
    load_pack<N>(v + i * N, vv);
#pragma unroll
    for (int j = 0; j < N; ++j) pv[j] = detail::adamw_update(k, pv[j], gv[j], mv[j], vv[j]);
    store_pack<N>(p + i * N, pv);
    store_pack<N>(m + i * N, mv);
    store_pack<N>(v + i * N, vv);
    if (pb) store_pack<N>(pb + i * N, pv);
  }
}
}  // namespace

void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const detail::AdamWCoefficients& k, const Tensor& param_bf16) {
  const std::int64_t n = param.numel();
  constexpr int kN = kPack<float>;
  bool packed = n % kN == 0 && pack_aligned(param, kN) && pack_aligned(grad, kN) && pack_aligned(exp_avg, kN) &&
                pack_aligned(exp_avg_sq, kN);
  if (param_bf16.defined()) packed = packed && pack_aligned(param_bf16, kN);
  bf16* pb = param_bf16.defined() ? param_bf16.data<bf16>() : nullptr;
  with_pack<kN>(packed, [&](auto pn) {
    constexpr int N = decltype(pn)::value;
    const Launch l = elementwise_launch(ctx, n / N);
    adamw_kernel<N><<<l.grid, l.block, 0, l.stream>>>(n, k, param.data<float>(), grad.data<float>(),
                                                      exp_avg.data<float>(), exp_avg_sq.data<float>(), pb);
  });
  R1_CUDA_LAUNCHED("adamw_step");
}

}  // namespace r1::kernels::cuda
