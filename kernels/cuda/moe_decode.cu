// CUDA decode-batch experts: two memory-bound kernels, a warp per dot product, each lane keeping several
// 16-byte weight loads in flight. The first computes a pair's gate and up rows against the token together
// and writes SwiGLU of the rounded pair; the second gives each (output column, slot) of a token its own warp,
// rounds each slot's down-projection dot, and sums them gate-weighted in slot order in shared memory, so
// nothing is accumulated across blocks (no atomics, one order).
#include "kernels/cuda/moe_decode.hpp"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/swiglu_math.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kWarps = 8;     // gate_up: warps per block, one column each
constexpr int kUnroll = 4;    // packs per lane and row loaded before their FMAs
constexpr int kDownWarps = 8; // down: most warps per block, one (column, slot) item each
// Resident blocks per SM the register budget must allow: 2 leaves ptxas room to issue every load of an
// unrolled step before the first FMA (without the hint it interleaves them to save registers).
constexpr int kMinBlocks = 2;

// dot(rows[m], b) over n elements for M rows at once, by one warp (n a multiple of N when N > 1), summed to
// every lane. Each lane loads kUnroll packs of every row (and of b) before using them; its partial sum still
// runs in element order.
template <class T, int N, int M>
__device__ __forceinline__ void warp_dots(const T* const (&rows)[M], const T* b, std::int64_t n, float (&out)[M]) {
  constexpr std::int64_t step = 32 * N;
  float s[M] = {};
  std::int64_t c = static_cast<std::int64_t>(threadIdx.x % 32) * N;
  for (; c + (kUnroll - 1) * step < n; c += kUnroll * step) {
    float va[M][kUnroll][N], vb[kUnroll][N];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      load_pack<N>(b + c + u * step, vb[u]);
#pragma unroll
      for (int m = 0; m < M; ++m) load_pack<N>(rows[m] + c + u * step, va[m][u]);
    }
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int q = 0; q < N; ++q) s[m] += va[m][u][q] * vb[u][q];
  }
#pragma unroll 1
  for (; c < n; c += step) {
    float va[M][N], vb[N];
    load_pack<N>(b + c, vb);
#pragma unroll
    for (int m = 0; m < M; ++m) load_pack<N>(rows[m] + c, va[m]);
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int q = 0; q < N; ++q) s[m] += va[m][q] * vb[q];
  }
#pragma unroll
  for (int m = 0; m < M; ++m) out[m] = warp_sum(s[m]);
}
template <class T> __device__ __forceinline__ float rounded(float v) { return load_f32(store_as<T>(v)); }

// grid (ceil(I / kWarps), T k): warp -> column j of pair p, its gate and up rows dotted together.
template <class T, int N>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    gate_up_kernel(std::int64_t d, std::int64_t inter, int k, const T* x, const std::int32_t* idx, const T* gate_up,
                   T* h) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (j >= inter) return;
  const std::int64_t p = blockIdx.y;
  const T* w = gate_up + static_cast<std::int64_t>(idx[p]) * 2 * inter * d;
  const T* const rows[2] = {w + j * d, w + (inter + j) * d};
  float gu[2];
  warp_dots<T, N, 2>(rows, x + (p / k) * d, d, gu);
  if (threadIdx.x % 32 == 0) h[p * inter + j] = store_as<T>(detail::swiglu(rounded<T>(gu[0]), rounded<T>(gu[1])));
}

// Output columns per down block: enough that cols x k items fill kDownWarps warps, at least one.
int down_cols(int k) { return k >= kDownWarps ? 1 : kDownWarps / k; }

// grid (ceil(D / cols), T), one warp per (column, slot) item while items last: each item's dot, rounded, goes
// to shared memory; then a thread per column sums its slots gate-weighted in slot order.
template <class T, int N>
__global__ void __launch_bounds__(kDownWarps * 32, kMinBlocks)
    down_kernel(std::int64_t d, std::int64_t inter, int k, int cols, const std::int32_t* idx, const float* gates,
                const T* down, const T* h, T* out) {
  extern __shared__ float slot_out[];  // [cols, k]
  const std::int64_t i = blockIdx.y, c0 = static_cast<std::int64_t>(blockIdx.x) * cols;
  const int warps = static_cast<int>(blockDim.x / 32), items = cols * k;
  for (int item = static_cast<int>(threadIdx.x / 32); item < items; item += warps) {
    const int col = item / k, j = item % k;
    if (c0 + col >= d) continue;
    const std::int64_t p = i * k + j;
    const T* const row[1] = {down + (static_cast<std::int64_t>(idx[p]) * d + c0 + col) * inter};
    float y[1];
    warp_dots<T, N, 1>(row, h + p * inter, inter, y);
    if (threadIdx.x % 32 == 0) slot_out[item] = rounded<T>(y[0]);
  }
  __syncthreads();
  const int col = static_cast<int>(threadIdx.x);
  if (col < cols && c0 + col < d) {
    float acc = 0.0f;
    for (int j = 0; j < k; ++j) acc += gates[i * k + j] * slot_out[col * k + j];
    out[i * d + c0 + col] = store_as<T>(acc);
  }
}
}  // namespace

void moe_decode_experts(const Context& ctx, const Tensor& x, const Tensor& expert_idx, const Tensor& gates,
                        const Tensor& gate_up, const Tensor& down, const Tensor& h, const Tensor& out) {
  const std::int64_t t = x.dim(0), d = x.dim(1), inter = h.dim(1);
  const int k = static_cast<int>(expert_idx.dim(1));
  R1_REQUIRE(t * k < 65536, "moe_decode_experts: ", t * k, " (token, slot) pairs exceed the CUDA grid's 65535 rows");
  const cudaStream_t stream = ctx.cuda_resources().stream;
  const int cols = down_cols(k);
  const unsigned down_threads = 32u * static_cast<unsigned>(std::min(cols * k, kDownWarps));
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
      down_kernel<T, N><<<dim3(static_cast<unsigned>((d + cols - 1) / cols), static_cast<unsigned>(t)),
                          down_threads, static_cast<std::size_t>(cols * k) * sizeof(float), stream>>>(
          d, inter, k, cols, expert_idx.data<std::int32_t>(), gates.data<float>(), down.data<T>(), h.data<T>(),
          out.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("moe_decode_experts");
}

}  // namespace r1::kernels::cuda
