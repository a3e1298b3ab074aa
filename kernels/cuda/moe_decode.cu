// CUDA decode-batch experts: two memory-bound kernels, a warp per output element. The first computes a
// pair's gate and up rows against the token (16-byte loads of the weight rows) and writes SwiGLU of the
// rounded pair; the second computes, per token and output column, every slot's down-projection dot and
// sums them gate-weighted in slot order, so nothing is accumulated across blocks (no atomics, one order).
#include "kernels/cuda/rowwise.cuh"
#include "kernels/moe_decode.hpp"
#include "kernels/swiglu.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kWarps = 8;  // warps per block, one output element each

// dot(a, b) over n elements by one warp (n a multiple of N when N > 1), summed to every lane.
template <class T, int N>
__device__ __forceinline__ float warp_dot(const T* a, const T* b, std::int64_t n) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  float s = 0.0f;
  for (std::int64_t c = static_cast<std::int64_t>(lane) * N; c < n; c += 32 * N) {
    float va[N], vb[N];
    load_pack<N>(a + c, va);
    load_pack<N>(b + c, vb);
#pragma unroll
    for (int q = 0; q < N; ++q) s += va[q] * vb[q];
  }
  return warp_sum(s);
}
template <class T> __device__ __forceinline__ float rounded(float v) { return load_f32(store_as<T>(v)); }

// grid (ceil(I / kWarps), T k): warp -> column j of pair p.
template <class T, int N>
__global__ void gate_up_kernel(std::int64_t d, std::int64_t inter, int k, const T* x, const std::int32_t* idx,
                               const T* gate_up, T* h) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (j >= inter) return;
  const std::int64_t p = blockIdx.y;
  const T* w = gate_up + static_cast<std::int64_t>(idx[p]) * 2 * inter * d;
  const T* xr = x + (p / k) * d;
  const float g = rounded<T>(warp_dot<T, N>(w + j * d, xr, d));
  const float u = rounded<T>(warp_dot<T, N>(w + (inter + j) * d, xr, d));
  if (threadIdx.x % 32 == 0) h[p * inter + j] = store_as<T>(detail::swiglu(g, u));
}

// grid (ceil(D / kWarps), T): warp -> output column c of token i.
template <class T, int N>
__global__ void down_kernel(std::int64_t d, std::int64_t inter, int k, const std::int32_t* idx, const float* gates,
                            const T* down, const T* h, T* out) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (c >= d) return;
  const std::int64_t i = blockIdx.y;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) {
    const std::int64_t p = i * k + j;
    const T* w = down + (static_cast<std::int64_t>(idx[p]) * d + c) * inter;
    acc += gates[p] * rounded<T>(warp_dot<T, N>(w, h + p * inter, inter));
  }
  if (threadIdx.x % 32 == 0) out[i * d + c] = store_as<T>(acc);
}
}  // namespace

void moe_decode_experts(const Context& ctx, const Tensor& x, const Tensor& expert_idx, const Tensor& gates,
                        const Tensor& gate_up, const Tensor& down, const Tensor& h, const Tensor& out) {
  const std::int64_t t = x.dim(0), d = x.dim(1), inter = h.dim(1);
  const int k = static_cast<int>(expert_idx.dim(1));
  R1_REQUIRE(t * k < 65536, "moe_decode_experts: ", t * k, " (token, slot) pairs exceed the CUDA grid's 65535 rows");
  const cudaStream_t stream = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "moe_decode_experts", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    const bool packed = d % n == 0 && inter % n == 0 && pack_aligned(x, n) && pack_aligned(gate_up, n) &&
                        pack_aligned(down, n) && pack_aligned(h, n);
    with_pack<n>(packed, [&](auto pn) {
      constexpr int N = decltype(pn)::value;
      const dim3 block(kWarps * 32);
      gate_up_kernel<T, N><<<dim3(static_cast<unsigned>((inter + kWarps - 1) / kWarps), static_cast<unsigned>(t * k)),
                             block, 0, stream>>>(d, inter, k, x.data<T>(), expert_idx.data<std::int32_t>(),
                                                 gate_up.data<T>(), h.data<T>());
      down_kernel<T, N><<<dim3(static_cast<unsigned>((d + kWarps - 1) / kWarps), static_cast<unsigned>(t)), block, 0,
                          stream>>>(d, inter, k, expert_idx.data<std::int32_t>(), gates.data<float>(),
                                    down.data<T>(), h.data<T>(), out.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("moe_decode_experts");
}

}  // namespace r1::kernels::cuda
