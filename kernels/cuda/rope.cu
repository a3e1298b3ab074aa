// CUDA RoPE: one thread per pack of interleaved pairs (4 bf16 pairs or 2 f32 pairs in one 16-byte access
// when the slice allows), reading the cos/sin tables in matching f32 packs.
#include "kernels/cuda/rope.hpp"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
template <class T, int N>
__global__ void rope_kernel(std::int64_t rows, std::int64_t heads, std::int64_t row, std::int64_t offset,
                            std::int64_t half, float sign, const std::int32_t* pos, const float* cos_t,
                            const float* sin_t, T* x) {
  constexpr int P = N / 2;  // pairs per pack
  const std::int64_t packs_per_row = half / P, n = rows * packs_per_row;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / packs_per_row, pair = (i - r * packs_per_row) * P;
    const std::int64_t p = pos[r / heads];
    T* v = x + r * row + offset + 2 * pair;
    float e[N], c[P], s[P];
    if constexpr (N == 2) {  // scalar fallback: the pair may not be 2-element aligned
      e[0] = load_f32(v[0]);
      e[1] = load_f32(v[1]);
    } else {
      load_pack<N>(v, e);
    }
    load_pack<P>(cos_t + p * half + pair, c);
    load_pack<P>(sin_t + p * half + pair, s);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float x0 = e[2 * k], x1 = e[2 * k + 1], sn = sign * s[k];
      e[2 * k] = x0 * c[k] - x1 * sn;
      e[2 * k + 1] = x0 * sn + x1 * c[k];
    }
    if constexpr (N == 2) {
      v[0] = store_as<T>(e[0]);
      v[1] = store_as<T>(e[1]);
    } else {
      store_pack<N>(v, e);
    }
  }
}
}  // namespace

void rope_apply(const Context& ctx, const Tensor& x, const Tensor& positions, const RopeTables& tables,
                std::int64_t offset, bool inverse) {
  const std::int64_t row = x.dim(-1), rows = x.numel() / row, heads = rows / x.dim(0);
  const std::int64_t half = tables.cos.dim(1);
  with_float_type(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    // Every packed access must start on a 16-byte boundary: row, offset and the slice width in packs.
    const bool packed = row % n == 0 && offset % n == 0 && (2 * half) % n == 0 && pack_aligned(x, n) &&
                        pack_aligned(tables.cos, n / 2) && pack_aligned(tables.sin, n / 2);
    with_pack<n>(packed, [&](auto pn) {
      // The scalar fallback still needs whole pairs: two elements per thread.
      constexpr int N = decltype(pn)::value == 1 ? 2 : decltype(pn)::value;
      const Launch l = elementwise_launch(ctx, rows * (half / (N / 2)));
      rope_kernel<T, N><<<l.grid, l.block, 0, l.stream>>>(rows, heads, row, offset, half, inverse ? -1.0f : 1.0f,
                                                          positions.data<std::int32_t>(), tables.cos.data<float>(),
                                                          tables.sin.data<float>(), x.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("rope");
}

}  // namespace r1::kernels::cuda
