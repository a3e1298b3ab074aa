// CUDA permutation. The routing map is a stable counting sort over chunks of 1024 (token, slot) pairs:
// per-chunk expert counts, one block scanning them into per-chunk bases and the expert offsets, then each
// pair's rank among the earlier same-expert pairs of its chunk. Rows move in 16-byte vectors when aligned.
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/moe_permute.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kChunk = 1024;  // pairs per chunk (one block): fewer chunks keep the serial scan short
constexpr int kBlock = 256;

__global__ void chunk_count_kernel(std::int64_t n, int e, const std::int32_t* idx, std::int32_t* chunk_counts,
                                   std::int32_t* bad) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kChunk) + threadIdx.x;
  if (i >= n) return;
  const std::int32_t x = idx[i];
  if (x >= 0 && x < e) atomicAdd(&chunk_counts[blockIdx.x * static_cast<std::int64_t>(e) + x], 1);
  else atomicOr(bad, 1);
}

// One block. info[0..E] = expert offsets; chunk_counts become each chunk's first row per expert.
__global__ void chunk_scan_kernel(std::int64_t chunks, int e, std::int32_t* chunk_counts, std::int32_t* info,
                                  std::int32_t* offsets) {
  for (int x = threadIdx.x; x < e; x += blockDim.x) {
    std::int32_t total = 0;
    for (std::int64_t c = 0; c < chunks; ++c) total += chunk_counts[c * e + x];
    info[x + 1] = total;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    info[0] = 0;
    for (int x = 0; x < e; ++x) info[x + 1] += info[x];
  }
  __syncthreads();
  for (int x = threadIdx.x; x < e; x += blockDim.x) {
    std::int32_t running = info[x];
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int32_t here = chunk_counts[c * e + x];
      chunk_counts[c * e + x] = running;
      running += here;
    }
  }
  for (int x = threadIdx.x; x <= e; x += blockDim.x) offsets[x] = info[x];
}

__global__ void chunk_rank_kernel(std::int64_t n, int e, const std::int32_t* idx, const std::int32_t* chunk_base,
                                  std::int32_t* row_of) {
  __shared__ std::int32_t sidx[kChunk];
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kChunk) + threadIdx.x;
  const std::int32_t x = i < n ? idx[i] : -1;
  sidx[threadIdx.x] = x;
  __syncthreads();
  if (i >= n) return;
  if (x < 0 || x >= e) {
    row_of[i] = -1;
    return;
  }
  std::int32_t rank = 0;
  for (int j = 0; j < static_cast<int>(threadIdx.x); ++j) rank += sidx[j] == x;
  row_of[i] = chunk_base[blockIdx.x * static_cast<std::int64_t>(e) + x] + rank;
}

// Block i copies the row of pair i (token i / k) to its permuted row, in units of U.
template <class U>
__global__ void copy_rows_kernel(std::int64_t units, int k, const std::int32_t* row_of, const U* src, U* dst) {
  const std::int64_t i = blockIdx.x;
  const std::int32_t r = row_of[i];
  if (r < 0) return;
  const U* s = src + i / k * units;
  U* d = dst + r * units;
  for (std::int64_t c = threadIdx.x; c < units; c += blockDim.x) d[c] = s[c];
}

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Block t: y[t] = sum_j w_j * src[row_of[t, j]], V elements per thread step.
template <class T, int V>
__global__ void combine_kernel(std::int64_t d, int k, const std::int32_t* row_of, const float* gates, const T* src,
                               T* y) {
  const std::int64_t t = blockIdx.x;
  for (std::int64_t c = threadIdx.x * static_cast<std::int64_t>(V); c < d; c += static_cast<std::int64_t>(blockDim.x) * V) {
    float acc[V] = {};
    for (int j = 0; j < k; ++j) {
      const float w = gates ? gates[t * k + j] : 1.0f;
      const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(src + row_of[t * k + j] * d + c);
      for (int v = 0; v < V; ++v) acc[v] += w * load_f32(p.v[v]);
    }
    Pack<T, V> out;
    for (int v = 0; v < V; ++v) out.v[v] = store_as<T>(acc[v]);
    *reinterpret_cast<Pack<T, V>*>(y + t * d + c) = out;
  }
}

__device__ float block_sum(float v) {
  __shared__ float warp_sum[kBlock / 32];
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0.0f;
  for (int w = 0; w < kBlock / 32; ++w) s += warp_sum[w];
  __syncthreads();  // warp_sum is reused by the next call
  return s;
}

template <class T, int V>
__global__ void unpermute_backward_kernel(std::int64_t d, int k, const std::int32_t* row_of, const float* gates,
                                          const T* dy, const T* y_perm, T* dy_perm, float* dgates) {
  const std::int64_t t = blockIdx.x;
  for (int j = 0; j < k; ++j) {
    const std::int64_t r = row_of[t * k + j];
    const float w = gates[t * k + j];
    float dot = 0.0f;
    for (std::int64_t c = threadIdx.x * static_cast<std::int64_t>(V); c < d; c += static_cast<std::int64_t>(kBlock) * V) {
      const Pack<T, V> g = *reinterpret_cast<const Pack<T, V>*>(dy + t * d + c);
      const Pack<T, V> yv = *reinterpret_cast<const Pack<T, V>*>(y_perm + r * d + c);
      Pack<T, V> out;
      for (int v = 0; v < V; ++v) {
        const float gv = load_f32(g.v[v]);
        out.v[v] = store_as<T>(w * gv);
        dot += gv * load_f32(yv.v[v]);
      }
      *reinterpret_cast<Pack<T, V>*>(dy_perm + r * d + c) = out;
    }
    dot = block_sum(dot);
    if (threadIdx.x == 0) dgates[t * k + j] = dot;
  }
}

bool aligned16(const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.raw()) % 16 == 0; }

// Calls f(std::integral_constant<int, V>) with V = 16 bytes of T when every row of every tensor starts 16-byte
// aligned, else V = 1.
template <class T, class F>
void with_vector_width(std::int64_t d, std::initializer_list<const Tensor*> ts, F&& f) {
  constexpr int wide = 16 / sizeof(T);
  bool ok = d % wide == 0;
  for (const Tensor* t : ts) ok = ok && aligned16(*t);
  if (ok) return f(std::integral_constant<int, wide>{});
  f(std::integral_constant<int, 1>{});
}

unsigned row_block(std::int64_t units) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((units + 31) / 32 * 32, 32, kBlock));
}
}  // namespace

std::vector<std::int64_t> moe_permute(const Context& ctx, const Tensor& x, const Tensor& expert_idx,
                                      const Tensor& x_perm, const Tensor& row_of, const Tensor& expert_offsets) {
  const std::int64_t n = expert_idx.numel(), k = expert_idx.dim(1);
  const int e = static_cast<int>(expert_offsets.dim(0) - 1);
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  cudaStream_t stream = ctx.cuda_resources().stream;
  Tensor info = ctx.zeros({e + 2}, DType::i32);  // offsets [E+1], then the bad-index flag
  Tensor chunk = ctx.zeros({std::max<std::int64_t>(chunks, 1), e}, DType::i32);
  std::int32_t* pinfo = info.data<std::int32_t>();
  if (n > 0) {
    chunk_count_kernel<<<static_cast<unsigned>(chunks), kChunk, 0, stream>>>(n, e, expert_idx.data<std::int32_t>(),
                                                                              chunk.data<std::int32_t>(), pinfo + e + 1);
    R1_CUDA_LAUNCHED("moe_permute count");
  }
  chunk_scan_kernel<<<1, 1024, 0, stream>>>(chunks, e, chunk.data<std::int32_t>(), pinfo,
                                            expert_offsets.data<std::int32_t>());
  R1_CUDA_LAUNCHED("moe_permute scan");
  if (n > 0) {
    chunk_rank_kernel<<<static_cast<unsigned>(chunks), kChunk, 0, stream>>>(
        n, e, expert_idx.data<std::int32_t>(), chunk.data<std::int32_t>(), row_of.data<std::int32_t>());
    R1_CUDA_LAUNCHED("moe_permute rank");
  }
  const std::int64_t row_bytes = x.dim(1) * static_cast<std::int64_t>(dtype_size(x.dtype()));
  if (n > 0 && row_bytes > 0) {
    const auto launch = [&](auto unit) {
      using U = decltype(unit);
      const std::int64_t units = row_bytes / static_cast<std::int64_t>(sizeof(U));
      copy_rows_kernel<U><<<static_cast<unsigned>(n), row_block(units), 0, stream>>>(
          units, static_cast<int>(k), row_of.data<std::int32_t>(), static_cast<const U*>(x.raw()),
          static_cast<U*>(x_perm.raw()));
    };
    const auto addr = reinterpret_cast<std::uintptr_t>(x.raw()) | reinterpret_cast<std::uintptr_t>(x_perm.raw()) |
                      static_cast<std::uintptr_t>(row_bytes);
    if (addr % 16 == 0) launch(uint4{});
    else if (addr % 8 == 0) launch(uint2{});
    else if (addr % 4 == 0) launch(std::uint32_t{});
    else if (addr % 2 == 0) launch(std::uint16_t{});
    else launch(std::uint8_t{});
    R1_CUDA_LAUNCHED("moe_permute copy_rows");
  }
  Tensor host = Tensor::host({e + 2}, DType::i32);
  copy(host, info);  // synchronises: the grouped GEMM needs the sizes on the host
  const std::int32_t* h = host.data<std::int32_t>();
  R1_REQUIRE(h[e + 1] == 0, "moe_permute: expert_idx ", expert_idx.str(), " holds an expert index outside [0, ", e, ")");
  return std::vector<std::int64_t>(h, h + e + 1);
}

void moe_combine(const Context& ctx, const Tensor& src, const Tensor& row_of, const Tensor& gates, const Tensor& y) {
  const std::int64_t t = y.dim(0), d = y.dim(1);
  const int k = static_cast<int>(row_of.dim(1));
  const float* g = gates.defined() ? gates.data<float>() : nullptr;
  with_float_type(y.dtype(), "moe_combine", [&](auto tag) {
    using T = decltype(tag);
    with_vector_width<T>(d, {&src, &y}, [&](auto vw) {
      constexpr int V = decltype(vw)::value;
      combine_kernel<T, V><<<static_cast<unsigned>(t), row_block(d / V), 0, ctx.cuda_resources().stream>>>(
          d, k, row_of.data<std::int32_t>(), g, src.data<T>(), y.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("moe_combine");
}

void moe_unpermute_backward(const Context& ctx, const Tensor& dy, const Tensor& y_perm, const Tensor& row_of,
                            const Tensor& gates, const Tensor& dy_perm, const Tensor& dgates) {
  const std::int64_t t = dy.dim(0), d = dy.dim(1);
  const int k = static_cast<int>(row_of.dim(1));
  with_float_type(dy.dtype(), "moe_unpermute_backward", [&](auto tag) {
    using T = decltype(tag);
    with_vector_width<T>(d, {&dy, &y_perm, &dy_perm}, [&](auto vw) {
      constexpr int V = decltype(vw)::value;
      unpermute_backward_kernel<T, V><<<static_cast<unsigned>(t), kBlock, 0, ctx.cuda_resources().stream>>>(
          d, k, row_of.data<std::int32_t>(), gates.data<float>(), dy.data<T>(), y_perm.data<T>(), dy_perm.data<T>(),
          dgates.data<float>());
    });
  });
  R1_CUDA_LAUNCHED("moe_unpermute_backward");
}

}  // namespace r1::kernels::cuda
