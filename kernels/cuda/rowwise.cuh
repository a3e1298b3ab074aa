// Device helpers shared by the row-wise and elementwise NN kernels: 16-byte packed loads/stores of f32 or
// bf16 elements with f32 math, and warp/block reductions whose order depends only on the block size.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

// Elements per 16-byte access: 4 f32 or 8 bf16 (one LDG.128 per thread keeps HBM transactions full).
template <class T> constexpr int kPack = static_cast<int>(16 / sizeof(T));

template <class T, int N> struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <int N, class T> __device__ __forceinline__ void load_pack(const T* p, float (&out)[N]) {
  const Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int k = 0; k < N; ++k) out[k] = load_f32(pk.v[k]);
}
template <int N, class T> __device__ __forceinline__ void store_pack(T* p, const float (&in)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int k = 0; k < N; ++k) pk.v[k] = store_as<T>(in[k]);
  *reinterpret_cast<Pack<T, N>*>(p) = pk;
}

// Whether `t` can be accessed in packs of n elements from its start (the caller also checks that row
// lengths and offsets are multiples of n).
inline bool pack_aligned(const Tensor& t, int n) {
  return reinterpret_cast<std::uintptr_t>(t.raw()) % (static_cast<std::uintptr_t>(n) * dtype_size(t.dtype())) == 0;
}

// Calls f(std::integral_constant<int, N>{}) with N = n when `packed`, else N = 1 (the scalar fallback for
// odd widths and unaligned views).
template <int n, class F> void with_pack(bool packed, F&& f) {
  if (packed) f(std::integral_constant<int, n>{});
  else f(std::integral_constant<int, 1>{});
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum (or max) over the whole block, returned to every thread. blockDim.x must be a multiple of 32.
// The leading barrier lets a kernel call these back to back on the same shared slots.
template <bool kMax> __device__ __forceinline__ float block_reduce(float v) {
  __shared__ float warp_vals[32];
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) warp_vals[threadIdx.x / 32] = v;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const float identity = kMax ? -3.402823466e38f : 0.0f;
  v = lane < static_cast<int>(blockDim.x / 32) ? warp_vals[lane] : identity;
  return kMax ? warp_max(v) : warp_sum(v);
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

}  // namespace r1::kernels::cuda
