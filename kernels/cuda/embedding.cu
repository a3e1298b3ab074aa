// CUDA embedding. Forward: one block per token copies (and converts) its table row in 16-byte packs.
// Backward, deterministic without atomics: a stable radix sort of (id, token) pairs groups each id's
// tokens in token order; the block at the start of each run sums the run's gradient rows in that order
// and adds the sum to the table row once. A very frequent id makes one long serial run.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/embedding.hpp"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;

template <class TT, class TO, int N>
__global__ void forward_kernel(std::int64_t vocab, std::int64_t d, const TT* table, const std::int32_t* ids, TO* out) {
  const std::int64_t t = blockIdx.x;
  const std::int64_t id = ids[t];
  const bool valid = id >= 0 && id < vocab;
  const float fill = id == -1 ? 0.0f : NAN;  // -1: a row of another vocabulary shard
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
    float v[N];
    if (valid) {
      load_pack<N>(table + id * d + c, v);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = fill;
    }
    store_pack<N>(out + t * d + c, v);
  }
}

__global__ void iota_kernel(std::int64_t n, std::int32_t* p) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<std::int32_t>(i);
}

// Block i handles the run of equal ids starting at sorted position i (other blocks exit at once).
template <class G, int N>
__global__ void backward_kernel(std::int64_t rows, std::int64_t vocab, std::int64_t d, const std::int32_t* sorted_ids,
                                const std::int32_t* tokens, const G* dout, float* dtable) {
  const std::int64_t i = blockIdx.x;
  const std::int32_t id = sorted_ids[i];
  if ((i > 0 && sorted_ids[i - 1] == id) || id < 0 || id >= vocab) return;
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
    float acc[N] = {}, g[N];
    for (std::int64_t k = i; k < rows && sorted_ids[k] == id; ++k) {
      load_pack<N>(dout + static_cast<std::int64_t>(tokens[k]) * d + c, g);
#pragma unroll
      for (int j = 0; j < N; ++j) acc[j] += g[j];
    }
    float cur[N];
    load_pack<N>(dtable + id * d + c, cur);
#pragma unroll
    for (int j = 0; j < N; ++j) cur[j] += acc[j];
    store_pack<N>(dtable + id * d + c, cur);
  }
}
}  // namespace

void embedding_forward(const Context& ctx, const Tensor& table, const Tensor& ids, const Tensor& out) {
  const std::int64_t rows = out.dim(0), d = out.dim(1);
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(table.dtype(), "embedding_forward", [&](auto ttag) {
    with_float_type(out.dtype(), "embedding_forward", [&](auto otag) {
      using TT = decltype(ttag);
      using TO = decltype(otag);
      constexpr int n = std::max(kPack<TT>, kPack<TO>);
      with_pack<n>(d % n == 0 && pack_aligned(table, n) && pack_aligned(out, n), [&](auto pn) {
        forward_kernel<TT, TO, decltype(pn)::value><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
            table.dim(0), d, table.data<TT>(), ids.data<std::int32_t>(), out.data<TO>());
      });
    });
  });
  R1_CUDA_LAUNCHED("embedding_forward");
}

void embedding_backward(const Context& ctx, const Tensor& dout, const Tensor& ids, const Tensor& dtable) {
  const std::int64_t rows = dout.dim(0), d = dout.dim(1);
  R1_REQUIRE(rows <= INT32_MAX, "embedding_backward: dout ", dout.str(), " has more tokens than the sort handles");
  cudaStream_t s = ctx.cuda_resources().stream;
  Tensor tokens = ctx.empty({rows}, DType::i32), sorted_ids = ctx.empty({rows}, DType::i32);
  Tensor sorted_tokens = ctx.empty({rows}, DType::i32);
  const Launch l = elementwise_launch(ctx, rows);
  iota_kernel<<<l.grid, l.block, 0, s>>>(rows, tokens.data<std::int32_t>());
  R1_CUDA_LAUNCHED("embedding_iota");
  std::size_t temp_bytes = 0;
  const int n = static_cast<int>(rows);
  R1_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids.data<std::int32_t>(), sorted_ids.data<std::int32_t>(),
                                          tokens.data<std::int32_t>(), sorted_tokens.data<std::int32_t>(), n, 0, 32, s));
  Tensor temp = ctx.empty({static_cast<std::int64_t>(std::max<std::size_t>(temp_bytes, 1))}, DType::u8);
  R1_CUDA(cub::DeviceRadixSort::SortPairs(temp.raw(), temp_bytes, ids.data<std::int32_t>(),
                                          sorted_ids.data<std::int32_t>(), tokens.data<std::int32_t>(),
                                          sorted_tokens.data<std::int32_t>(), n, 0, 32, s));
  with_float_type(dout.dtype(), "embedding_backward", [&](auto tag) {
    using G = decltype(tag);
    constexpr int np = kPack<G>;
    with_pack<np>(d % np == 0 && pack_aligned(dout, np) && pack_aligned(dtable, np), [&](auto pn) {
      backward_kernel<G, decltype(pn)::value><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          rows, dtable.dim(0), d, sorted_ids.data<std::int32_t>(), sorted_tokens.data<std::int32_t>(), dout.data<G>(),
          dtable.data<float>());
    });
  });
  R1_CUDA_LAUNCHED("embedding_backward");
}

}  // namespace r1::kernels::cuda
