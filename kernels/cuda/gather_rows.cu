// CUDA row gather: one block per destination row copies its source row in 16-byte packs (element by
// element for odd widths and unaligned views), bits unchanged.
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/gather_rows.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;

template <class T, int N>
__global__ void gather_rows_kernel(std::int64_t src_rows, std::int64_t width, const T* src, const std::int32_t* rows,
                                   T* dst) {
  const std::int64_t i = blockIdx.x, r = rows[i];
  const bool valid = r >= 0 && r < src_rows;
  for (std::int64_t c = threadIdx.x * N; c < width; c += kThreads * N) {
    Pack<T, N> pk;
    if (valid) {
      pk = *reinterpret_cast<const Pack<T, N>*>(src + r * width + c);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) pk.v[k] = store_as<T>(NAN);
    }
    *reinterpret_cast<Pack<T, N>*>(dst + i * width + c) = pk;
  }
}
}  // namespace

void gather_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const std::int64_t n = dst.dim(0), width = dst.numel() / n;
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(dst.dtype(), "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    constexpr int pack = kPack<T>;
    with_pack<pack>(width % pack == 0 && pack_aligned(src, pack) && pack_aligned(dst, pack), [&](auto pn) {
      gather_rows_kernel<T, decltype(pn)::value><<<static_cast<unsigned>(n), kThreads, 0, s>>>(
          src.dim(0), width, src.data<T>(), rows.data<std::int32_t>(), dst.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("gather_rows");
}

}  // namespace r1::kernels::cuda
