// CUDA decode attention over the latent cache: one block per (sequence, head). The block absorbs W_UK into
// its query, streams the cached tokens in tiles (a warp per token score, online softmax, each thread
// accumulating its own latent columns), then applies W_UV. Memory-bound like FlashMLA's decode, but
// every head of a sequence re-reads that sequence's latents (from L2); a head-batched tile kernel is the
// next speed-up.
#include "kernels/cuda/rowwise.cuh"
#include "kernels/mla_decode.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kTile = 64;  // cached tokens scored per pass

template <class T>
__global__ void kv_cache_write_kernel(std::int64_t n, std::int64_t S, std::int64_t W, std::int64_t L,
                                      const std::int32_t* start, const T* src, T* cache) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t w = i % W, bs = i / W, b = bs / S, s = bs - b * S;
    cache[(b * L + start[b] + s) * W + w] = src[i];
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    mla_decode_kernel(int H, int dn, int dr, int dv, int R, std::int64_t L, float scale, const T* q, const T* w,
                      const T* cache_kv, const T* cache_pe, const std::int32_t* lengths, T* out) {
  extern __shared__ float sm[];
  float* q_lat = sm;         // [R]
  float* q_pe = q_lat + R;   // [dr]
  float* acc = q_pe + dr;    // [R] unnormalised sum_j p_j c_j
  float* p = acc + R;        // [kTile] scores, then probabilities of the current tile
  __shared__ float run_max, run_sum, rescale;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
  const T* qr = q + bh * (dn + dr);
  const T* wk = w + h * static_cast<std::int64_t>(dn + dv) * R;
  const T* wv = wk + static_cast<std::int64_t>(dn) * R;
  for (int r = tid; r < R; r += blockDim.x) {
    float a = 0.0f;
    for (int d = 0; d < dn; ++d) a += load_f32(qr[d]) * load_f32(wk[static_cast<std::int64_t>(d) * R + r]);
    q_lat[r] = a;
    acc[r] = 0.0f;
  }
  for (int e = tid; e < dr; e += blockDim.x) q_pe[e] = load_f32(qr[dn + e]);
  if (tid == 0) {
    run_max = -INFINITY;
    run_sum = 0.0f;
  }
  __syncthreads();
  const std::int64_t n = lengths[b];
  const T* ckv = cache_kv + b * L * R;
  const T* cpe = cache_pe + b * L * dr;
  for (std::int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int m = static_cast<int>(n - j0 < kTile ? n - j0 : kTile);
    for (int jj = warp; jj < m; jj += warps) {
      const T* c = ckv + (j0 + jj) * R;
      const T* pe = cpe + (j0 + jj) * dr;
      float a = 0.0f;
      for (int r = lane; r < R; r += 32) a += q_lat[r] * load_f32(c[r]);
      for (int e = lane; e < dr; e += 32) a += q_pe[e] * load_f32(pe[e]);
      a = warp_sum(a);
      if (lane == 0) p[jj] = a * scale;
    }
    __syncthreads();
    if (warp == 0) {
      float tmax = -INFINITY;
      for (int jj = lane; jj < m; jj += 32) tmax = fmaxf(tmax, p[jj]);
      const float new_max = fmaxf(run_max, warp_max(tmax));
      float sum = 0.0f;
      for (int jj = lane; jj < m; jj += 32) {
        p[jj] = __expf(p[jj] - new_max);
        sum += p[jj];
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        rescale = __expf(run_max - new_max);  // 0 on the first tile (run_max = -inf)
        run_sum = run_sum * rescale + sum;
        run_max = new_max;
      }
    }
    __syncthreads();
    const float alpha = rescale;
    for (int r = tid; r < R; r += blockDim.x) {
      float a = acc[r] * alpha;
      for (int jj = 0; jj < m; ++jj) a += p[jj] * load_f32(ckv[(j0 + jj) * R + r]);
      acc[r] = a;
    }
    __syncthreads();
  }
  const float inv = 1.0f / run_sum;
  for (int v = warp; v < dv; v += warps) {
    float a = 0.0f;
    for (int r = lane; r < R; r += 32) a += load_f32(wv[static_cast<std::int64_t>(v) * R + r]) * acc[r];
    a = warp_sum(a);
    if (lane == 0) out[bh * dv + v] = store_as<T>(a * inv);
  }
}
}  // namespace

void kv_cache_write(const Context& ctx, const Tensor& src, const Tensor& start, const Tensor& cache) {
  const std::int64_t n = src.numel();
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(src.dtype(), "kv_cache_write", [&](auto tag) {
    using T = decltype(tag);
    kv_cache_write_kernel<<<l.grid, l.block, 0, l.stream>>>(n, src.dim(1), src.dim(2), cache.dim(1),
                                                           start.data<std::int32_t>(), src.data<T>(), cache.data<T>());
  });
  R1_CUDA_LAUNCHED("kv_cache_write");
}

void mla_decode_attention(const Context& ctx, const MlaDecodeShape& s, const Tensor& q, const Tensor& kv_b,
                          const Tensor& cache_kv, const Tensor& cache_pe, const Tensor& lengths, float scale,
                          const Tensor& out) {
  // At most (2 * 4096 + 256 + 64) floats (the front end's limits): within the default 48 KiB.
  const std::size_t shared = static_cast<std::size_t>(2 * s.rank + s.d_rope + kTile) * sizeof(float);
  const unsigned grid = static_cast<unsigned>(s.batch * s.heads);
  const cudaStream_t stream = ctx.cuda_resources().stream;
  with_float_type(q.dtype(), "mla_decode_attention", [&](auto tag) {
    using T = decltype(tag);
    mla_decode_kernel<T><<<grid, kThreads, shared, stream>>>(
        static_cast<int>(s.heads), static_cast<int>(s.d_nope), static_cast<int>(s.d_rope), static_cast<int>(s.d_v),
        static_cast<int>(s.rank), s.max_len, scale, q.data<T>(), kv_b.data<T>(), cache_kv.data<T>(),
        cache_pe.data<T>(), lengths.data<std::int32_t>(), out.data<T>());
  });
  R1_CUDA_LAUNCHED("mla_decode_attention");
}

}  // namespace r1::kernels::cuda
