// CUDA decode attention over the GQA cache: one block per (sequence, query head) streams the sequence's
// cached keys and values of its K/V head in tiles of 64 tokens with an online softmax. Warps score a tile's
// tokens (lanes over the head dim, coalesced key rows), then each thread accumulates its own output dims
// over the tile in token order (coalesced value rows): a fixed reduction order, the same bits run to run.
// The grid depends on B H only, never on the lengths, so a decode step captured in a CUDA graph replays as
// they grow. A tile's pool rows (CacheBlocks: contiguous, or a paged cache's block table) are looked up
// once into shared memory. Query heads of one group re-read their K/V head (from L2); a split over the cache length
// (flash-decoding, as kernels/cuda/mla_decode.cu) is the next speed-up for long sequences at small B H.
#include "kernels/attention.hpp"
#include "kernels/cuda/decode.cuh"
#include "kernels/cuda/gqa_decode.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 128, kWarps = kThreads / 32;
constexpr int kTile = 64;  // cached tokens per online-softmax step
constexpr int kDims = static_cast<int>(kAttentionMaxHeadDim) / kThreads;  // output dims per thread
static_assert(kAttentionMaxHeadDim % kThreads == 0, "every head dim must have a thread");

template <class T>
__global__ void __launch_bounds__(kThreads)
    gqa_decode_kernel(int H, int K, int d, CacheBlocks blocks, float scale, const T* q, const T* cache_k, const T* cache_v,
                      const std::int32_t* lengths, T* out) {
  __shared__ float qs[kAttentionMaxHeadDim];
  __shared__ float p[kTile];
  __shared__ std::int64_t prow[kTile];  // the current tile's pool rows (CacheBlocks)
  const std::int64_t bh = blockIdx.x, b = bh / H, kv = bh % H / (H / K), n = lengths[b];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (int e = tid; e < d; e += kThreads) qs[e] = load_f32(q[bh * d + e]);
  __syncthreads();
  const std::int64_t stride = static_cast<std::int64_t>(K) * d;  // between consecutive pool rows
  const T* kb = cache_k + kv * d;
  const T* vb = cache_v + kv * d;
  float acc[kDims] = {};
  float run_max = -INFINITY, run_sum = 0.0f;  // identical in every thread
  for (std::int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int m = static_cast<int>(n - j0 < kTile ? n - j0 : kTile);
    if (tid < m) prow[tid] = blocks.row(b, j0 + tid);
    __syncthreads();
    for (int t = warp; t < m; t += kWarps) {
      const T* kr = kb + prow[t] * stride;
      float a = 0.0f;
      for (int e = lane; e < d; e += 32) a += qs[e] * load_f32(kr[e]);
      a = warp_sum(a);
      if (lane == 0) p[t] = a * scale;
    }
    __syncthreads();
    const float alpha = fold_scores(p, m, run_max, run_sum), new_max = run_max;
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      const int e = tid + i * kThreads;
      if (e >= d) break;
      float a = acc[i] * alpha;
#pragma unroll 4
      for (int t = 0; t < m; ++t) a += __expf(p[t] - new_max) * load_f32(vb[prow[t] * stride + e]);
      acc[i] = a;
    }
    __syncthreads();  // the next tile's scores and rows overwrite p and prow
  }
#pragma unroll
  for (int i = 0; i < kDims; ++i) {
    const int e = tid + i * kThreads;
    if (e < d) out[bh * d + e] = store_as<T>(acc[i] / run_sum);
  }
}
}  // namespace

void gqa_decode_attention(const Context& ctx, const GqaDecodeShape& s, const Tensor& q, const Tensor& cache_k,
                          const Tensor& cache_v, const Tensor& lengths, float scale, const Tensor& out) {
  const CudaResources& res = ctx.cuda_resources();
  with_float_type(q.dtype(), "gqa_decode_attention", [&](auto tag) {
    using T = decltype(tag);
    gqa_decode_kernel<T><<<static_cast<unsigned>(s.batch * s.heads), kThreads, 0, res.stream>>>(
        static_cast<int>(s.heads), static_cast<int>(s.kv_heads), static_cast<int>(s.head_dim), s.blocks, scale,
        q.data<T>(), cache_k.data<T>(), cache_v.data<T>(), lengths.data<std::int32_t>(), out.data<T>());
  });
  R1_CUDA_LAUNCHED("gqa_decode_attention");
}

}  // namespace r1::kernels::cuda
