// CUDA decode attention over the latent cache, split over the cache length (flash-decoding) so that batch 1
// fills the GPU. Three kernels, each reducing in a fixed order (same bits run to run, no atomics):
//   absorb   grid (B H, ceil(R / 64)): q_lat = q_nope W_UK_h for 64 latent columns, the d_nope reduction split
//            over thread groups (16-byte loads of W_UK rows) and summed in shared memory in group order.
//   partial  grid (B H, splits): block s streams cached tokens [s chunk, min((s + 1) chunk, lengths[b])) in
//            tiles of 64 with an online softmax: each warp scores 4 tokens at once (several 16-byte loads per
//            lane in flight), then thread groups each accumulate a share of the tile's tokens into their own
//            latent sums. Writes (max, sum, unnormalised acc[R]); a block whose chunk starts past the length
//            exits, and the combine never reads its slot. A tile's pool rows (CacheBlocks: contiguous, or through
//            a paged cache's block table) are looked up once into shared memory.
//   combine  grid (B H, v groups): rescales the live splits to their common max in split order,
//            o_lat = acc / sum, then a warp per row of W_UV_h.
// The split (mla_decode_split) depends on the cache capacity, B H and the SM count only, so a decode step
// captured in a CUDA graph replays correctly as the lengths grow. Every head of a sequence still re-reads that
// sequence's latents (from L2); a head-batched tile kernel is the next speed-up.
#include "kernels/cuda/decode.cuh"
#include "kernels/cuda/mla_decode.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kTile = 64;          // cached tokens per online-softmax step (divides kMlaDecodeChunkQuantum)
constexpr int kScoreTokens = 4;    // tokens a warp scores at once
constexpr int kAccTokens = 8;      // tokens whose rows a thread loads at once when accumulating
constexpr int kAbsorbCols = 64;    // latent columns per absorb block
// Resident blocks per SM the register budget must allow: 2 leaves ptxas room to issue every load of an
// unrolled step before the first FMA (without the hint it interleaves them to save registers).
constexpr int kMinBlocks = 2;
static_assert(kMlaDecodeChunkQuantum % kTile == 0, "a split's chunk must be whole tiles");

template <class T>
__global__ void kv_cache_write_kernel(std::int64_t n, std::int64_t S, std::int64_t W, CacheBlocks blocks,
                                      const std::int32_t* start, const T* src, T* cache) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t w = i % W, bs = i / W, b = bs / S, s = bs - b * S;
    cache[blocks.row(b, start[b] + s) * W + w] = src[i];
  }
}

// N consecutive f32 of shared memory (16-byte aligned when N % 4 == 0): float4 accesses, so that lanes
// N floats apart do not serialise on shared-memory banks.
template <int N> __device__ __forceinline__ void load_shared(const float* p, float (&x)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(p)[i];
      x[4 * i] = v.x, x[4 * i + 1] = v.y, x[4 * i + 2] = v.z, x[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = p[k];
  }
}
template <int N> __device__ __forceinline__ void store_shared(float* p, const float (&x)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i)
      reinterpret_cast<float4*>(p)[i] = make_float4(x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]);
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) p[k] = x[k];
  }
}

// a[u] += y[r : n] . rows[u][r : n] over this lane's packs (r = lane N, then every 32 N), U packs per token
// loaded before their FMAs; the lane's partial sums run in element order.
template <int N, int U, class T>
__device__ __forceinline__ void score_rows(const T* const (&rows)[kScoreTokens], const float* y, int r, int n,
                                           float (&a)[kScoreTokens]) {
  for (; r + (U - 1) * 32 * N < n; r += U * 32 * N) {
    float x[U][kScoreTokens][N], yv[U][N];
#pragma unroll
    for (int i = 0; i < U; ++i)
#pragma unroll
      for (int u = 0; u < kScoreTokens; ++u) load_pack<N>(rows[u] + r + i * 32 * N, x[i][u]);
#pragma unroll
    for (int i = 0; i < U; ++i) load_shared<N>(y + r + i * 32 * N, yv[i]);
#pragma unroll
    for (int i = 0; i < U; ++i)
#pragma unroll
      for (int k = 0; k < N; ++k)
#pragma unroll
        for (int u = 0; u < kScoreTokens; ++u) a[u] += yv[i][k] * x[i][u][k];
  }
  if constexpr (U > 1) score_rows<N, 1>(rows, y, r, n, a);
}

// a += sum_j weight(j) row(j)[0 : N] for j = first, first + stride, ... < n, in that order, with U rows loaded
// before their FMAs.
template <int N, int U, class R, class W>
__device__ __forceinline__ void accumulate_rows(const R& row, int first, int stride, int n, const W& weight,
                                                float (&a)[N]) {
  int j = first;
  for (; j + (U - 1) * stride < n; j += U * stride) {
    float x[U][N], w[U];
#pragma unroll
    for (int u = 0; u < U; ++u) load_pack<N>(row(j + u * stride), x[u]);
#pragma unroll
    for (int u = 0; u < U; ++u) w[u] = weight(j + u * stride);
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int k = 0; k < N; ++k) a[k] += w[u] * x[u][k];
  }
  if constexpr (U > 1) accumulate_rows<N, 1>(row, j, stride, n, weight, a);
}

// grid (B H, ceil(R / kAbsorbCols)): q_lat[bh, r] = sum_d q[bh, d] W_UK_h[d, r] for the block's columns.
template <class T, int N>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    absorb_kernel(int H, int dn, int dr, int dv, int R, const T* q, const T* w, float* q_lat) {
  constexpr int kRowThreads = kAbsorbCols / N, kGroups = kThreads / kRowThreads;
  __shared__ float part[kGroups][kAbsorbCols];
  const std::int64_t bh = blockIdx.x, h = bh % H;
  const int tid = threadIdx.x, col = (tid % kRowThreads) * N, g = tid / kRowThreads;
  const int c0 = static_cast<int>(blockIdx.y) * kAbsorbCols, r = c0 + col;
  float a[N] = {};
  if (r < R) {  // N > 1 only when R % N == 0: a pack lies wholly inside or outside the row
    const T* qr = q + bh * (dn + dr);
    const T* wk = w + h * static_cast<std::int64_t>(dn + dv) * R + r;
    accumulate_rows<N, 4>([&](int d) { return wk + static_cast<std::int64_t>(d) * R; }, g, kGroups, dn,
                          [&](int d) { return load_f32(qr[d]); }, a);
  }
#pragma unroll
  for (int k = 0; k < N; ++k) part[g][col + k] = a[k];
  __syncthreads();
  if (tid < kAbsorbCols && c0 + tid < R) {
    float sum = 0.0f;
    for (int gg = 0; gg < kGroups; ++gg) sum += part[gg][tid];
    q_lat[bh * R + c0 + tid] = sum;
  }
}

// Thread groups of the partial kernel's accumulation: each group owns every pack of N latent columns (one
// thread per pack) and a share of each tile's tokens; with R / N >= kThreads a single group loops the packs.
__host__ __device__ constexpr int acc_groups(int packs) { return packs >= kThreads ? 1 : kThreads / packs; }

// grid (B H, splits): the unnormalised attention of (sequence, head) bh over its chunk `split` of the cache.
template <class T, int N>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    partial_kernel(int H, int dn, int dr, int R, CacheBlocks blocks, std::int64_t chunk, float scale, const T* q,
                   const float* q_lat, const T* cache_kv, const T* cache_pe, const std::int32_t* lengths,
                   float* part_ml, float* part_acc) {
  const std::int64_t bh = blockIdx.x, b = bh / H, split = blockIdx.y;
  const std::int64_t j_begin = split * chunk, n = lengths[b];
  if (j_begin >= n) return;  // past this sequence's length: the combine skips the slot
  const std::int64_t j_end = n < j_begin + chunk ? n : j_begin + chunk;
  const int packs = R / N, groups = acc_groups(packs);
  extern __shared__ __align__(16) float sm[];
  float* ql = sm;              // [R]
  float* qpe = ql + R;         // [dr]
  float* acc = qpe + dr;       // [groups, R] each group's unnormalised sum_j p_j c_j
  float* p = acc + groups * R; // [kTile] scores of the current tile
  __shared__ std::int64_t prow[kTile];  // the current tile's pool rows (CacheBlocks)
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (int r = tid; r < R; r += kThreads) ql[r] = q_lat[bh * R + r];
  for (int i = tid; i < groups * R; i += kThreads) acc[i] = 0.0f;
  for (int e = tid; e < dr; e += kThreads) qpe[e] = load_f32(q[bh * (dn + dr) + dn + e]);
  __syncthreads();
  // The accumulation thread's group and first pack (threads past groups x packs only score).
  const int g = tid / packs, pack_stride = groups == 1 ? kThreads : packs;
  float run_max = -INFINITY, run_sum = 0.0f;  // identical in every thread
  for (std::int64_t j0 = j_begin; j0 < j_end; j0 += kTile) {
    const int m = static_cast<int>(j_end - j0 < kTile ? j_end - j0 : kTile);
    if (tid < m) prow[tid] = blocks.row(b, j0 + tid);
    __syncthreads();
    for (int t0 = warp * kScoreTokens; t0 < m; t0 += kWarps * kScoreTokens) {
      const T* c[kScoreTokens];  // the warp's tokens' latent rows
      const T* e[kScoreTokens];  // and rope rows
      float a[kScoreTokens];
#pragma unroll
      for (int u = 0; u < kScoreTokens; ++u) {  // tokens past the tile re-read its last row, then are dropped
        const std::int64_t row = prow[t0 + u < m ? t0 + u : m - 1];
        c[u] = cache_kv + row * R;
        e[u] = cache_pe + row * dr;
        a[u] = 0.0f;
      }
      score_rows<N, 2>(c, ql, lane * N, R, a);  // two packs per token per step: 8 loads in flight per lane
      score_rows<N, 1>(e, qpe, lane * N, dr, a);
#pragma unroll
      for (int u = 0; u < kScoreTokens; ++u) {
        a[u] = warp_sum(a[u]);
        if (lane == 0 && t0 + u < m) p[t0 + u] = a[u] * scale;
      }
    }
    __syncthreads();
    const float alpha = fold_scores(p, m, run_max, run_sum);
    const float new_max = run_max;
    if (g < groups)
      for (int pk = tid % packs; pk < packs; pk += pack_stride) {
        float* ag = acc + g * R + pk * N;
        float a[N];
        load_shared<N>(ag, a);
#pragma unroll
        for (int k = 0; k < N; ++k) a[k] *= alpha;
        accumulate_rows<N, kAccTokens>([&](int jj) { return cache_kv + prow[jj] * R + pk * N; }, g, groups, m,
                                       [&](int jj) { return __expf(p[jj] - new_max); }, a);
        store_shared<N>(ag, a);
      }
    __syncthreads();
  }
  const std::int64_t slot = bh * gridDim.y + split;
  for (int r = tid; r < R; r += kThreads) {
    float sum = acc[r];
    for (int gg = 1; gg < groups; ++gg) sum += acc[gg * R + r];
    part_acc[slot * R + r] = sum;
  }
  if (tid == 0) {
    part_ml[2 * slot] = run_max;
    part_ml[2 * slot + 1] = run_sum;
  }
}

// grid (B H, ceil(dv / rows)): combines bh's live splits, then out[bh, v] = W_UV_h[v, :] . o_lat for the block's
// `rows` rows of W_UV_h, a warp per row.
template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(int H, int dn, int dv, int R, int rows, std::int64_t chunk, int splits, const float* part_ml,
                   const float* part_acc, const std::int32_t* lengths, const T* w, T* out) {
  extern __shared__ __align__(16) float sm[];
  float* o_lat = sm;          // [R] sum_s weight_s acc_s
  float* weight = o_lat + R;  // [splits] exp(max_s - max)
  __shared__ float total;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int live = min(static_cast<int>((lengths[b] + chunk - 1) / chunk), splits);
  const float* ml = part_ml + 2 * bh * splits;
  const float* pa = part_acc + bh * splits * R;
  float m = -INFINITY;
  for (int s = tid; s < live; s += kThreads) m = fmaxf(m, ml[2 * s]);
  m = block_max(m);
  for (int s = tid; s < live; s += kThreads) weight[s] = __expf(ml[2 * s] - m);
  __syncthreads();
  if (tid == 0) {
    float z = 0.0f;
    for (int s = 0; s < live; ++s) z += weight[s] * ml[2 * s + 1];
    total = z;
  }
  for (int r = tid; r < R; r += kThreads) {
    float a = 0.0f;
#pragma unroll 4
    for (int s = 0; s < live; ++s) a += weight[s] * pa[static_cast<std::int64_t>(s) * R + r];
    o_lat[r] = a;
  }
  __syncthreads();
  const float z = total;
  const T* wv = w + (h * static_cast<std::int64_t>(dn + dv) + dn) * R;
  const int v_end = (static_cast<int>(blockIdx.y) + 1) * rows < dv ? (static_cast<int>(blockIdx.y) + 1) * rows : dv;
  for (int v = static_cast<int>(blockIdx.y) * rows + warp; v < v_end; v += kWarps) {
    const T* row = wv + static_cast<std::int64_t>(v) * R;
    float a = 0.0f;
#pragma unroll 2
    for (int r = lane * N; r < R; r += 32 * N) {
      float x[N], y[N];
      load_pack<N>(row + r, x);
      load_shared<N>(o_lat + r, y);
#pragma unroll
      for (int k = 0; k < N; ++k) a += x[k] * y[k];
    }
    a = warp_sum(a);
    if (lane == 0) out[bh * dv + v] = store_as<T>(a / z);
  }
}
}  // namespace

void kv_cache_write(const Context& ctx, const Tensor& src, const Tensor& start, const Tensor& cache,
                    const CacheBlocks& blocks) {
  const std::int64_t n = src.numel();
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(src.dtype(), "kv_cache_write", [&](auto tag) {
    using T = decltype(tag);
    kv_cache_write_kernel<<<l.grid, l.block, 0, l.stream>>>(n, src.dim(1), src.dim(2), blocks,
                                                           start.data<std::int32_t>(), src.data<T>(), cache.data<T>());
  });
  R1_CUDA_LAUNCHED("kv_cache_write");
}

void mla_decode_attention(const Context& ctx, const MlaDecodeShape& s, const Tensor& q, const Tensor& kv_b,
                          const Tensor& cache_kv, const Tensor& cache_pe, const Tensor& lengths, float scale,
                          const Tensor& out) {
  const CudaResources& res = ctx.cuda_resources();
  const std::int64_t bh = s.batch * s.heads, R = s.rank;
  const MlaDecodeSplit split = mla_decode_split(bh, s.max_len, res.sm_count);
  // q_lat [B H, R], then per (bh, split): (max, sum) and acc [R]. All f32.
  const Tensor ws = ctx.empty({bh * (R + split.splits * (R + 2))}, DType::f32);
  float* q_lat = ws.data<float>();
  float* part_ml = q_lat + bh * R;
  float* part_acc = part_ml + bh * split.splits * 2;
  // Combine: enough (bh, row group) blocks to give every SM one, at least two rows per warp.
  const std::int64_t max_groups = std::max<std::int64_t>(1, s.d_v / (2 * kWarps));
  const std::int64_t want_groups = std::clamp<std::int64_t>((res.sm_count + bh - 1) / bh, 1, max_groups);
  const std::int64_t rows = (s.d_v + want_groups - 1) / want_groups, v_groups = (s.d_v + rows - 1) / rows;
  const int H = static_cast<int>(s.heads), dn = static_cast<int>(s.d_nope), dr = static_cast<int>(s.d_rope),
            dv = static_cast<int>(s.d_v), r = static_cast<int>(R);
  with_float_type(q.dtype(), "mla_decode_attention", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    const bool packed = R % n == 0 && s.d_rope % n == 0 && pack_aligned(kv_b, n) && pack_aligned(cache_kv, n) &&
                        pack_aligned(cache_pe, n);
    with_pack<n>(packed, [&](auto pn) {
      constexpr int N = decltype(pn)::value;
      absorb_kernel<T, N><<<dim3(static_cast<unsigned>(bh), static_cast<unsigned>((R + kAbsorbCols - 1) / kAbsorbCols)),
                            kThreads, 0, res.stream>>>(H, dn, dr, dv, r, q.data<T>(), kv_b.data<T>(), q_lat);
      R1_CUDA_LAUNCHED("mla_decode_attention (absorb)");
      // At most (2 * 4096 + 256 + 64) floats (the front end's limits): within the default 48 KiB.
      const std::size_t shared =
          static_cast<std::size_t>(R + s.d_rope + acc_groups(r / N) * R + kTile) * sizeof(float);
      partial_kernel<T, N><<<dim3(static_cast<unsigned>(bh), static_cast<unsigned>(split.splits)), kThreads, shared,
                             res.stream>>>(H, dn, dr, r, s.blocks, split.chunk, scale, q.data<T>(), q_lat,
                                           cache_kv.data<T>(), cache_pe.data<T>(), lengths.data<std::int32_t>(),
                                           part_ml, part_acc);
      R1_CUDA_LAUNCHED("mla_decode_attention (partial)");
      combine_kernel<T, N><<<dim3(static_cast<unsigned>(bh), static_cast<unsigned>(v_groups)), kThreads,
                             static_cast<std::size_t>(R + split.splits) * sizeof(float), res.stream>>>(
          H, dn, dv, r, static_cast<int>(rows), split.chunk, static_cast<int>(split.splits), part_ml, part_acc,
          lengths.data<std::int32_t>(), kv_b.data<T>(), out.data<T>());
      R1_CUDA_LAUNCHED("mla_decode_attention (combine)");
    });
  });
}

}  // namespace r1::kernels::cuda
