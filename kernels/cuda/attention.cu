// CUDA causal attention, multi-head and grouped-query (query head h reads K/V head h / (H / Hkv) in place: no
// expanded copies). bf16 with head dims (48,32), (64,64), (96,64), (128,128), (192,128): FlashAttention-2
// style tiled kernels on tensor cores (mma.sync m16n8k16, ldmatrix and cp.async from kernels/cuda/tensor_core.cuh;
// double buffering, online softmax in registers). f32, and bf16 with other head dims: a warp-per-row CUDA-core
// path. The backward pass is deterministic: dk/dv by key tiles and dq by a separate pass over query tiles, both
// recomputing P from q, k and the saved lse instead of accumulating dq with atomics; a K/V head's dk/dv sum its
// group's query heads in registers, in head order.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <utility>

#include "core/log.hpp"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_core.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 128;  // 4 warps; in the tiled kernels each warp owns 16 rows of the block's tile
constexpr int kWarps = kThreads / 32;
constexpr int kPad = 8;  // bf16 elements of padding per shared row: 16 bytes, so ldmatrix rows hit distinct banks
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;

// Everything a kernel needs; pointers a pass does not use are null. Row (b, s, h) of q starts at
// ((b S + s) H + h) Dqk, of out/dout at ((b S + s) H + h) Dv; row (b, s, g) of k at ((b S + s) Hkv + g) Dqk, of v
// at ((b S + s) Hkv + g) Dv; lse and delta are [B, H, S].
template <class T>
struct Args {
  const T *q, *k, *v;
  T* out;
  const T* dout;
  T *dq, *dk, *dv;
  float* lse;
  float* delta;  // rowsum(dout * out), the D of the backward pass
  // The tensor-core dk/dv pass may split a K/V head's group over `splits` blocks (when B Hkv key tiles are too
  // few blocks to fill the GPU): each writes f32 partial sums [splits, B, S, Hkv, D] that sum_splits adds in order.
  float *dk_part, *dv_part;
  int splits;
  const std::int32_t* seg;
  int B, S, H, Hkv, Dqk, Dv;
  float scale;
  __device__ int group() const { return H / Hkv; }  // query heads per K/V head
};

// ---------------------------------------------------------------- tile loads and segment ranges

// Copies rows [row0, row0 + ROWS) of one head (global row stride `stride` elements) into a shared tile
// with rows of D + kPad elements. Rows past the sequence end are zero-filled, so they add nothing.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* g, std::int64_t stride, int row0, int S) {
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = threadIdx.x; i < ROWS * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, row = row0 + r;
    const bool ok = row < S;
    cp_async16(s + r * (D + kPad) + c * 8, g + (ok ? row : 0) * stride + c * 8, ok);
  }
}

// Segment-id range [x, y] of rows [r0, r0 + n) below S. Each warp computes it alone, so all warps of a
// block reach the same decision without a barrier.
__device__ __forceinline__ int2 seg_range(const std::int32_t* seg, int r0, int n, int S) {
  int lo = INT_MAX, hi = INT_MIN;
  for (int r = r0 + static_cast<int>(threadIdx.x % 32); r < min(r0 + n, S); r += 32) {
    lo = min(lo, seg[r]);
    hi = max(hi, seg[r]);
  }
  for (int off = 16; off > 0; off /= 2) {
    lo = min(lo, __shfl_xor_sync(kFull, lo, off));
    hi = max(hi, __shfl_xor_sync(kFull, hi, off));
  }
  return make_int2(lo, hi);
}
// The first tile t >= j (of `tiles` tiles of n rows from row0) that may hold a segment id in `range`;
// without segment ids, j. Packed samples thus skip the tiles of other samples instead of masking them.
__device__ __forceinline__ int next_tile(const std::int32_t* seg, int2 range, int j, int tiles, int row0, int n, int S) {
  if (!seg) return j;
  for (; j < tiles; ++j) {
    const int2 r = seg_range(seg, row0 + j * n, n, S);
    if (r.x <= range.y && range.x <= r.y) break;
  }
  return j;
}

// Tile shapes (rows of the block's own tile, rows per step of the loop) and shared-memory bytes.
struct FwdTile {
  static constexpr int M = 64, N = 64;  // M queries per block, N keys per step
  static constexpr int smem(int dqk, int dv) {
    return 2 * (M * (dqk + kPad) + 2 * N * (dqk + kPad) + 2 * N * (dv + kPad));
  }
};
struct DkdvTile {
  static constexpr int N = 64, M = 32;  // N keys per block, M queries per step
  static constexpr int smem(int dqk, int dv) {
    return 2 * (N * (dqk + kPad) + N * (dv + kPad) + 2 * M * (dqk + kPad) + 2 * M * (dv + kPad)) + 4 * 4 * M;
  }
};
struct DqTile {
  static constexpr int M = 64, N = 32;  // M queries per block, N keys per step
  static constexpr int smem(int dqk, int dv) {
    return 2 * (M * (dqk + kPad) + M * (dv + kPad) + 2 * N * (dqk + kPad) + 2 * N * (dv + kPad));
  }
};

// ---------------------------------------------------------------- tensor-core kernels

template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads, 2) forward_tc(Args<bf16> a) {
  constexpr int M = FwdTile::M, N = FwdTile::N, LQ = DQK + kPad, LV = DV + kPad;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sk = sq + M * LQ;      // two buffers
  bf16* sv = sk + 2 * N * LQ;  // two buffers
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
  // Grid (heads, tiles): every head's longest (last) query tile is scheduled first, the short ones fill the tail.
  const int m0 = (gridDim.y - 1 - blockIdx.y) * M;
  const int b = blockIdx.x / a.H, h = blockIdx.x % a.H, g = h / a.group(), S = a.S;
  const std::int64_t qs = static_cast<std::int64_t>(a.H) * DQK, vs = static_cast<std::int64_t>(a.H) * DV;
  const std::int64_t ks = static_cast<std::int64_t>(a.Hkv) * DQK, kvs = static_cast<std::int64_t>(a.Hkv) * DV;
  const bf16* q = a.q + b * S * qs + h * DQK;
  const bf16* k = a.k + b * S * ks + g * DQK;
  const bf16* v = a.v + b * S * kvs + g * DV;
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * S : nullptr;
  const int tiles = (min(S, m0 + M) + N - 1) / N;

  const int2 range = seg ? seg_range(seg, m0, M, S) : int2{};
  int j = next_tile(seg, range, 0, tiles, 0, N, S);

  load_tile<M, DQK>(sq, q, qs, m0, S);
  if (j < tiles) {
    load_tile<N, DQK>(sk, k, ks, j * N, S);
    load_tile<N, DV>(sv, v, kvs, j * N, S);
  }
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  std::uint32_t qf[DQK / 16][4];
#pragma unroll
  for (int kk = 0; kk < DQK / 16; ++kk) a_from_smem<LQ>(qf[kk], sq + warp * 16 * LQ, kk, lane);

  const int row0 = m0 + warp * 16 + lane / 4;  // this thread's rows: row0 and row0 + 8
  int row_seg[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r)
    if (seg && row0 + 8 * r < S) row_seg[r] = seg[row0 + 8 * r];
  const float sl2 = a.scale * kLog2e;  // scores in log2 units, so exp2f does the exponentials
  float o[DV / 8][4], mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
  zero(o);

  for (int it = 0; j < tiles; ++it) {
    const int buf = it & 1, n0 = j * N, next = next_tile(seg, range, j + 1, tiles, 0, N, S);
    if (next < tiles) {
      load_tile<N, DQK>(sk + (buf ^ 1) * N * LQ, k, ks, next * N, S);
      load_tile<N, DV>(sv + (buf ^ 1) * N * LV, v, kvs, next * N, S);
      cp_async_commit();
    }
    float s[N / 8][4];
    zero(s);
    mma_abt<N, DQK, LQ>(s, [&](int kk, std::uint32_t(&f)[4]) {
#pragma unroll
      for (int i = 0; i < 4; ++i) f[i] = qf[kk][i];
    }, sk + buf * N * LQ, lane);
    // Only the diagonal tile (which also holds the sequence end) and segmented batches need a mask.
    if (n0 + N > m0 || seg) {
#pragma unroll
      for (int nb = 0; nb < N / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = row0 + 8 * (e >> 1), col = n0 + nb * 8 + 2 * t + (e & 1);
          if (col > row || col >= S || (seg && seg[col] != row_seg[e >> 1])) s[nb][e] = -INFINITY;
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = mrow[r];
#pragma unroll
      for (int nb = 0; nb < N / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]) * sl2);
      mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
      const float mu = mx == -INFINITY ? 0.0f : mx;  // a row with nothing visible yet stays all zero
      const float alpha = exp2f(mrow[r] - mu);
      mrow[r] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < N / 8; ++nb)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[nb][e] = exp2f(fmaf(s[nb][e], sl2, -mu));
          sum += s[nb][e];
        }
      lrow[r] = lrow[r] * alpha + sum;  // this thread's columns only; the quad is summed at the end
#pragma unroll
      for (int db = 0; db < DV / 8; ++db) {
        o[db][2 * r] *= alpha;
        o[db][2 * r + 1] *= alpha;
      }
    }
    mma_ab<DV, N, LV>(o, [&](int kk, std::uint32_t(&f)[4]) { a_from_acc<N>(f, s, kk); }, sv + buf * N * LV, lane);
    cp_async_wait_all();
    __syncthreads();
    j = next;
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = lrow[r];
    l += __shfl_xor_sync(kFull, l, 1);
    l += __shfl_xor_sync(kFull, l, 2);
    inv[r] = l > 0.0f ? 1.0f / l : 0.0f;
    const int row = row0 + 8 * r;
    if (t == 0 && row < S) a.lse[(static_cast<std::int64_t>(blockIdx.x) * S) + row] = (mrow[r] + log2f(l)) * kLn2;
  }
  store_rows<DV>(a.out + b * S * vs + h * DV, vs, m0 + warp * 16, S, o, inv, lane);
}

// dk and dv of N keys of one K/V head per block (16 keys per warp), looping over the query heads of its group
// (or of its share of the group: Args::splits) and, for each, the query tiles that can see the keys. Computed
// transposed (keys as rows) so that P^T and dS^T are A operands straight from the accumulators.
template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads, 2) backward_dkdv_tc(Args<bf16> a) {
  constexpr int M = DkdvTile::M, N = DkdvTile::N, LQ = DQK + kPad, LV = DV + kPad;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);
  bf16* sv = sk + N * LQ;
  bf16* sq = sv + N * LV;       // two buffers
  bf16* sdo = sq + 2 * M * LQ;  // two buffers
  float* slse = reinterpret_cast<float*>(sdo + 2 * M * LV);  // two buffers, log2 units
  float* sdelta = slse + 2 * M;                              // two buffers
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
  const int n0 = blockIdx.y * N;  // early keys are seen by the most queries: they start first
  const int split = blockIdx.x % a.splits, bg = blockIdx.x / a.splits, b = bg / a.Hkv, g = bg % a.Hkv, S = a.S;
  const int h_first = g * a.group() + split * a.group() / a.splits;
  const int h_end = g * a.group() + (split + 1) * a.group() / a.splits;
  const std::int64_t qs = static_cast<std::int64_t>(a.H) * DQK, vs = static_cast<std::int64_t>(a.H) * DV;
  const std::int64_t ks = static_cast<std::int64_t>(a.Hkv) * DQK, kvs = static_cast<std::int64_t>(a.Hkv) * DV;
  const bf16* k = a.k + b * S * ks + g * DQK;
  const bf16* v = a.v + b * S * kvs + g * DV;
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * S : nullptr;
  const int m_first = n0 / M * M, tiles = (S - m_first + M - 1) / M;
  const int2 range = seg ? seg_range(seg, n0, N, S) : int2{};

  load_tile<N, DQK>(sk, k, ks, n0, S);
  load_tile<N, DV>(sv, v, kvs, n0, S);
  cp_async_commit();

  const int key0 = n0 + warp * 16 + lane / 4;  // this thread's keys: key0 and key0 + 8
  int key_seg[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r)
    if (seg && key0 + 8 * r < S) key_seg[r] = seg[key0 + 8 * r];
  const float sl2 = a.scale * kLog2e;
  float dk[DQK / 8][4], dv[DV / 8][4];
  zero(dk);
  zero(dv);
  const auto k_frag = [&](int kk, std::uint32_t(&f)[4]) { a_from_smem<LQ>(f, sk + warp * 16 * LQ, kk, lane); };
  const auto v_frag = [&](int kk, std::uint32_t(&f)[4]) { a_from_smem<LV>(f, sv + warp * 16 * LV, kk, lane); };

  for (int h = h_first; h < h_end; ++h) {
    const bf16* q = a.q + b * S * qs + h * DQK;
    const bf16* dout = a.dout + b * S * vs + h * DV;
    const float* lse = a.lse + (static_cast<std::int64_t>(b) * a.H + h) * S;
    const float* delta = a.delta + (static_cast<std::int64_t>(b) * a.H + h) * S;
    const auto load_queries = [&](int buf, int m) {
      load_tile<M, DQK>(sq + buf * M * LQ, q, qs, m, S);
      load_tile<M, DV>(sdo + buf * M * LV, dout, vs, m, S);
      for (int i = threadIdx.x; i < M; i += kThreads) {
        const bool ok = m + i < S;
        slse[buf * M + i] = ok ? lse[m + i] * kLog2e : 0.0f;
        sdelta[buf * M + i] = ok ? delta[m + i] : 0.0f;
      }
    };
    int j = next_tile(seg, range, 0, tiles, m_first, M, S);
    if (j < tiles) load_queries(0, m_first + j * M);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    for (int it = 0; j < tiles; ++it) {
      const int buf = it & 1, m = m_first + j * M, next = next_tile(seg, range, j + 1, tiles, m_first, M, S);
      if (next < tiles) {
        load_queries(buf ^ 1, m_first + next * M);
        cp_async_commit();
      }
      const bf16* q_t = sq + buf * M * LQ;
      const bf16* do_t = sdo + buf * M * LV;
      float st[M / 8][4], dpt[M / 8][4];  // S^T and dP^T: keys x queries
      zero(st);
      zero(dpt);
      mma_abt<M, DQK, LQ>(st, k_frag, q_t, lane);
      mma_abt<M, DV, LV>(dpt, v_frag, do_t, lane);
      const bool masked = m < n0 + N || m + M > S || seg;
#pragma unroll
      for (int nb = 0; nb < M / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = nb * 8 + 2 * t + (e & 1), query = m + qi, key = key0 + 8 * (e >> 1);
          const bool ok = !masked || (key <= query && query < S && (!seg || seg[query] == key_seg[e >> 1]));
          const float p = ok ? exp2f(fmaf(st[nb][e], sl2, -slse[buf * M + qi])) : 0.0f;
          st[nb][e] = p;
          dpt[nb][e] = p * (dpt[nb][e] - sdelta[buf * M + qi]);
        }
      mma_ab<DV, M, LV>(dv, [&](int kk, std::uint32_t(&f)[4]) { a_from_acc<M>(f, st, kk); }, do_t, lane);
      mma_ab<DQK, M, LQ>(dk, [&](int kk, std::uint32_t(&f)[4]) { a_from_acc<M>(f, dpt, kk); }, q_t, lane);
      cp_async_wait_all();
      __syncthreads();
      j = next;
    }
  }

  const float one[2] = {1.0f, 1.0f}, scale[2] = {a.scale, a.scale};
  if (a.splits == 1) {
    store_rows<DQK>(a.dk + b * S * ks + g * DQK, ks, n0 + warp * 16, S, dk, scale, lane);
    store_rows<DV>(a.dv + b * S * kvs + g * DV, kvs, n0 + warp * 16, S, dv, one, lane);
    return;
  }
  const std::int64_t part = static_cast<std::int64_t>(split) * a.B * S;  // rows before this split's
  store_rows<DQK>(a.dk_part + (part + b * S) * ks + g * DQK, ks, n0 + warp * 16, S, dk, scale, lane);
  store_rows<DV>(a.dv_part + (part + b * S) * kvs + g * DV, kvs, n0 + warp * 16, S, dv, one, lane);
}

// out[e] = bf16(sum over the splits of part[split][e]), in split order.
__global__ void sum_splits(const float* part, bf16* out, std::int64_t n, int splits) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int sp = 0; sp < splits; ++sp) sum += part[sp * n + e];
    out[e] = store_as<bf16>(sum);
  }
}

// dq of M queries per block (16 per warp), looping over the key tiles they see.
template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads, 2) backward_dq_tc(Args<bf16> a) {
  constexpr int M = DqTile::M, N = DqTile::N, LQ = DQK + kPad, LV = DV + kPad;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sdo = sq + M * LQ;
  bf16* sk = sdo + M * LV;     // two buffers
  bf16* sv = sk + 2 * N * LQ;  // two buffers
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * M;
  const int b = blockIdx.x / a.H, h = blockIdx.x % a.H, g = h / a.group(), S = a.S;
  const std::int64_t qs = static_cast<std::int64_t>(a.H) * DQK, vs = static_cast<std::int64_t>(a.H) * DV;
  const std::int64_t ks = static_cast<std::int64_t>(a.Hkv) * DQK, kvs = static_cast<std::int64_t>(a.Hkv) * DV;
  const bf16* q = a.q + b * S * qs + h * DQK;
  const bf16* k = a.k + b * S * ks + g * DQK;
  const bf16* v = a.v + b * S * kvs + g * DV;
  const bf16* dout = a.dout + b * S * vs + h * DV;
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * S : nullptr;
  const int tiles = (min(S, m0 + M) + N - 1) / N;

  const int2 range = seg ? seg_range(seg, m0, M, S) : int2{};
  int j = next_tile(seg, range, 0, tiles, 0, N, S);

  load_tile<M, DQK>(sq, q, qs, m0, S);
  load_tile<M, DV>(sdo, dout, vs, m0, S);
  if (j < tiles) {
    load_tile<N, DQK>(sk, k, ks, j * N, S);
    load_tile<N, DV>(sv, v, kvs, j * N, S);
  }
  cp_async_commit();

  const int row0 = m0 + warp * 16 + lane / 4;  // this thread's rows: row0 and row0 + 8
  int row_seg[2] = {0, 0};
  float lse2[2] = {0.0f, 0.0f}, dl[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row >= S) continue;
    if (seg) row_seg[r] = seg[row];
    lse2[r] = a.lse[static_cast<std::int64_t>(blockIdx.x) * S + row] * kLog2e;
    dl[r] = a.delta[static_cast<std::int64_t>(blockIdx.x) * S + row];
  }
  const float sl2 = a.scale * kLog2e;
  float dq[DQK / 8][4];
  zero(dq);
  const auto q_frag = [&](int kk, std::uint32_t(&f)[4]) { a_from_smem<LQ>(f, sq + warp * 16 * LQ, kk, lane); };
  const auto do_frag = [&](int kk, std::uint32_t(&f)[4]) { a_from_smem<LV>(f, sdo + warp * 16 * LV, kk, lane); };
  cp_async_wait_all();
  __syncthreads();

  for (int it = 0; j < tiles; ++it) {
    const int buf = it & 1, n0 = j * N, next = next_tile(seg, range, j + 1, tiles, 0, N, S);
    if (next < tiles) {
      load_tile<N, DQK>(sk + (buf ^ 1) * N * LQ, k, ks, next * N, S);
      load_tile<N, DV>(sv + (buf ^ 1) * N * LV, v, kvs, next * N, S);
      cp_async_commit();
    }
    const bf16* k_t = sk + buf * N * LQ;
    float s[N / 8][4], dp[N / 8][4];
    zero(s);
    zero(dp);
    mma_abt<N, DQK, LQ>(s, q_frag, k_t, lane);
    mma_abt<N, DV, LV>(dp, do_frag, sv + buf * N * LV, lane);
    const bool masked = n0 + N > m0 || seg;
#pragma unroll
    for (int nb = 0; nb < N / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, row = row0 + 8 * r, col = n0 + nb * 8 + 2 * t + (e & 1);
        const bool ok = !masked || (col <= row && row < S && (!seg || seg[col] == row_seg[r]));
        const float p = ok ? exp2f(fmaf(s[nb][e], sl2, -lse2[r])) : 0.0f;
        s[nb][e] = p * (dp[nb][e] - dl[r]);
      }
    mma_ab<DQK, N, LQ>(dq, [&](int kk, std::uint32_t(&f)[4]) { a_from_acc<N>(f, s, kk); }, k_t, lane);
    cp_async_wait_all();
    __syncthreads();
    j = next;
  }
  const float scale[2] = {a.scale, a.scale};
  store_rows<DQK>(a.dq + b * S * qs + h * DQK, qs, m0 + warp * 16, S, dq, scale, lane);
}

// ---------------------------------------------------------------- CUDA-core kernels (any float type, any head dim)

constexpr int kMaxPerLane = kAttentionMaxHeadDim / 32;  // head-dim columns each lane owns: lane + 32 r

__device__ __forceinline__ float warp_sum(float x) {
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(kFull, x, off);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int off = 16; off > 0; off /= 2) x = fmaxf(x, __shfl_xor_sync(kFull, x, off));
  return x;
}
template <class T>
__device__ __forceinline__ float dot_row(const float* x, const T* y, int n) {
  float s = 0.0f;
  for (int c = 0; c < n; ++c) s += x[c] * load_f32(y[c]);
  return s;
}
template <class T>
__device__ __forceinline__ void stage_row(float* dst, const T* src, int n, int lane) {
  for (int c = lane; c < n; c += 32) dst[c] = load_f32(src[c]);
}

// Element offsets of row s of batch b: q and out/dout of query head h, k and v of its K/V head.
template <class T>
struct Rows {
  std::int64_t bs;  // b S
  int h, g;
  const Args<T>& a;
  __device__ Rows(const Args<T>& args, int b, int head)
      : bs(static_cast<std::int64_t>(b) * args.S), h(head), g(head / args.group()), a(args) {}
  __device__ std::int64_t q(int s) const { return ((bs + s) * a.H + h) * a.Dqk; }
  __device__ std::int64_t o(int s) const { return ((bs + s) * a.H + h) * a.Dv; }
  __device__ std::int64_t k(int s) const { return ((bs + s) * a.Hkv + g) * a.Dqk; }
  __device__ std::int64_t v(int s) const { return ((bs + s) * a.Hkv + g) * a.Dv; }
};

// One warp per (b, h, query i): lanes take 32 keys at a time, then share each probability to
// accumulate the output columns they own.
template <class T>
__global__ void forward_rows(Args<T> a) {
  __shared__ float sq[kWarps][kAttentionMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (idx >= static_cast<std::int64_t>(a.B) * a.H * a.S) return;
  const int i = static_cast<int>(idx % a.S), bh = static_cast<int>(idx / a.S), b = bh / a.H, h = bh % a.H;
  const Rows r(a, b, h);
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * a.S : nullptr;
  stage_row(sq[warp], a.q + r.q(i), a.Dqk, lane);
  __syncwarp();
  const float sl2 = a.scale * kLog2e;
  float o[kMaxPerLane] = {}, m = -INFINITY, l = 0.0f;
  for (int j0 = 0; j0 <= i; j0 += 32) {
    const int j = j0 + lane;
    const bool ok = j <= i && (!seg || seg[j] == seg[i]);
    const float s = ok ? dot_row(sq[warp], a.k + r.k(j), a.Dqk) * sl2 : -INFINITY;
    const float mx = fmaxf(m, warp_max(s));
    const float mu = mx == -INFINITY ? 0.0f : mx;
    const float alpha = exp2f(m - mu), p = ok ? exp2f(s - mu) : 0.0f;
    l = l * alpha + warp_sum(p);
    m = mx;
#pragma unroll
    for (int c = 0; c < kMaxPerLane; ++c) o[c] *= alpha;
    for (int jj = 0; jj < 32; ++jj) {
      const float pj = __shfl_sync(kFull, p, jj);
      if (pj == 0.0f) continue;  // masked or beyond i: the same for every lane
      const T* vj = a.v + r.v(j0 + jj);
#pragma unroll
      for (int c = 0; c < kMaxPerLane; ++c)
        if (lane + 32 * c < a.Dv) o[c] += pj * load_f32(vj[lane + 32 * c]);
    }
  }
  T* out = a.out + r.o(i);
#pragma unroll
  for (int c = 0; c < kMaxPerLane; ++c)
    if (lane + 32 * c < a.Dv) out[lane + 32 * c] = store_as<T>(o[c] / l);
  if (lane == 0) a.lse[static_cast<std::int64_t>(bh) * a.S + i] = (m + log2f(l)) * kLn2;
}

// delta[b, h, s] = dout . out for one row per warp.
template <class T>
__global__ void delta_rows(Args<T> a) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;  // over (b, s, h)
  if (idx >= static_cast<std::int64_t>(a.B) * a.S * a.H) return;
  float sum = 0.0f;
  for (int c = lane; c < a.Dv; c += 32) sum += load_f32(a.dout[idx * a.Dv + c]) * load_f32(a.out[idx * a.Dv + c]);
  sum = warp_sum(sum);
  const std::int64_t h = idx % a.H, s = idx / a.H % a.S, b = idx / (static_cast<std::int64_t>(a.H) * a.S);
  if (lane == 0) a.delta[(b * a.H + h) * a.S + s] = sum;
}

// dq of one query row per warp.
template <class T>
__global__ void backward_dq_rows(Args<T> a) {
  __shared__ float sq[kWarps][kAttentionMaxHeadDim], sdo[kWarps][kAttentionMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (idx >= static_cast<std::int64_t>(a.B) * a.H * a.S) return;
  const int i = static_cast<int>(idx % a.S), bh = static_cast<int>(idx / a.S), b = bh / a.H, h = bh % a.H;
  const Rows r(a, b, h);
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * a.S : nullptr;
  stage_row(sq[warp], a.q + r.q(i), a.Dqk, lane);
  stage_row(sdo[warp], a.dout + r.o(i), a.Dv, lane);
  __syncwarp();
  const float sl2 = a.scale * kLog2e, lse2 = a.lse[idx] * kLog2e, d = a.delta[idx];
  float acc[kMaxPerLane] = {};
  for (int j0 = 0; j0 <= i; j0 += 32) {
    const int j = j0 + lane;
    float ds = 0.0f;
    if (j <= i && (!seg || seg[j] == seg[i])) {
      const float p = exp2f(dot_row(sq[warp], a.k + r.k(j), a.Dqk) * sl2 - lse2);
      ds = p * (dot_row(sdo[warp], a.v + r.v(j), a.Dv) - d);
    }
    for (int jj = 0; jj < 32; ++jj) {
      const float dsj = __shfl_sync(kFull, ds, jj);
      if (dsj == 0.0f) continue;
      const T* kj = a.k + r.k(j0 + jj);
#pragma unroll
      for (int c = 0; c < kMaxPerLane; ++c)
        if (lane + 32 * c < a.Dqk) acc[c] += dsj * load_f32(kj[lane + 32 * c]);
    }
  }
  T* dq = a.dq + r.q(i);
#pragma unroll
  for (int c = 0; c < kMaxPerLane; ++c)
    if (lane + 32 * c < a.Dqk) dq[lane + 32 * c] = store_as<T>(acc[c] * a.scale);
}

// dk and dv of one key row of one K/V head per warp, over its group's query heads (in order) and the
// queries i >= j.
template <class T>
__global__ void backward_dkdv_rows(Args<T> a) {
  __shared__ float sk[kWarps][kAttentionMaxHeadDim], sv[kWarps][kAttentionMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (idx >= static_cast<std::int64_t>(a.B) * a.Hkv * a.S) return;
  const int j = static_cast<int>(idx % a.S), bg = static_cast<int>(idx / a.S), b = bg / a.Hkv, g = bg % a.Hkv;
  const Rows kv(a, b, g * a.group());
  const std::int32_t* seg = a.seg ? a.seg + static_cast<std::int64_t>(b) * a.S : nullptr;
  stage_row(sk[warp], a.k + kv.k(j), a.Dqk, lane);
  stage_row(sv[warp], a.v + kv.v(j), a.Dv, lane);
  __syncwarp();
  const float sl2 = a.scale * kLog2e;
  float dk[kMaxPerLane] = {}, dv[kMaxPerLane] = {};
  for (int h = g * a.group(); h < (g + 1) * a.group(); ++h) {
    const Rows r(a, b, h);
    const float* lse = a.lse + (static_cast<std::int64_t>(b) * a.H + h) * a.S;
    const float* delta = a.delta + (static_cast<std::int64_t>(b) * a.H + h) * a.S;
    for (int i0 = j; i0 < a.S; i0 += 32) {
      const int i = i0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i < a.S && (!seg || seg[i] == seg[j])) {
        p = exp2f(dot_row(sk[warp], a.q + r.q(i), a.Dqk) * sl2 - lse[i] * kLog2e);
        ds = p * (dot_row(sv[warp], a.dout + r.o(i), a.Dv) - delta[i]);
      }
      for (int ii = 0; ii < 32; ++ii) {
        const float pi = __shfl_sync(kFull, p, ii), dsi = __shfl_sync(kFull, ds, ii);
        if (pi == 0.0f) continue;
        const T* qi = a.q + r.q(i0 + ii);
        const T* doi = a.dout + r.o(i0 + ii);
#pragma unroll
        for (int c = 0; c < kMaxPerLane; ++c) {
          if (lane + 32 * c < a.Dqk) dk[c] += dsi * load_f32(qi[lane + 32 * c]);
          if (lane + 32 * c < a.Dv) dv[c] += pi * load_f32(doi[lane + 32 * c]);
        }
      }
    }
  }
  T* dkj = a.dk + kv.k(j);
  T* dvj = a.dv + kv.v(j);
#pragma unroll
  for (int c = 0; c < kMaxPerLane; ++c) {
    if (lane + 32 * c < a.Dqk) dkj[lane + 32 * c] = store_as<T>(dk[c] * a.scale);
    if (lane + 32 * c < a.Dv) dvj[lane + 32 * c] = store_as<T>(dv[c]);
  }
}

// ---------------------------------------------------------------- host side

template <int Q, int V>
using HeadDims = std::integer_sequence<int, Q, V>;

// Calls f(HeadDims<Q, V>{}) when (dqk, dv) has tensor-core kernels; false when it has none.
template <class F>
bool with_tensor_core_dims(std::int64_t dqk, std::int64_t dv, F&& f) {
  const auto try_dims = [&]<int Q, int V>(HeadDims<Q, V> dims) {
    if (dqk != Q || dv != V) return false;
    f(dims);
    return true;
  };
  return try_dims(HeadDims<48, 32>{}) || try_dims(HeadDims<64, 64>{}) || try_dims(HeadDims<96, 64>{}) ||
         try_dims(HeadDims<128, 128>{}) || try_dims(HeadDims<192, 128>{});
}

bool aligned16(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (reinterpret_cast<std::uintptr_t>(t->raw()) % 16 != 0) return false;
  return true;
}

template <class T>
Args<T> make_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                  const Tensor& segment_ids, float scale) {
  Args<T> a{};
  a.q = q.data<T>();
  a.k = k.data<T>();
  a.v = v.data<T>();
  a.out = out.data<T>();
  a.lse = lse.data<float>();
  a.seg = segment_ids.defined() ? segment_ids.data<std::int32_t>() : nullptr;
  a.B = static_cast<int>(q.dim(0));
  a.S = static_cast<int>(q.dim(1));
  a.H = static_cast<int>(q.dim(2));
  a.Hkv = static_cast<int>(k.dim(2));
  a.Dqk = static_cast<int>(q.dim(3));
  a.Dv = static_cast<int>(v.dim(3));
  a.scale = scale;
  return a;
}

template <class Kernel>
void launch_tc(Kernel kernel, int heads, unsigned tiles, const Args<bf16>& a, int smem, cudaStream_t stream,
               const char* name) {
  R1_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<dim3(static_cast<unsigned>(a.B * heads), tiles), kThreads, smem, stream>>>(a);
  R1_CUDA_LAUNCHED(name);
}

static_assert(FwdTile::M >= 64 && DkdvTile::N >= 64 && DqTile::M >= 64, "check_grid assumes tiles of 64 rows or more");
// Tiled kernels put tiles of 64 rows on grid y (at most 65535); row kernels put 4 rows per block on grid x.
void check_grid(const Tensor& q, const char* op) {
  R1_REQUIRE(q.dim(1) <= 65535 * std::int64_t{64} && q.numel() / q.dim(3) / kWarps < (std::int64_t{1} << 31), op,
             ": q ", q.str(), " exceeds the CUDA grid (sequence <= 4194240, batch x seq x heads < 2^33)");
}

unsigned row_blocks(std::int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

// How many blocks share a K/V head's group in the dk/dv pass: doubled (up to the group size) while the
// blocks would not fill two per SM. Deterministic for a given device and shape.
int dkdv_splits(std::int64_t blocks, int group, int sm_count) {
  int splits = 1;
  while (splits < group && blocks * splits < 2 * static_cast<std::int64_t>(std::max(sm_count, 1))) splits *= 2;
  return std::min(splits, group);
}
unsigned tiles(int n, int tile) { return static_cast<unsigned>((n + tile - 1) / tile); }
}  // namespace

void attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& segment_ids, const Tensor& out, const Tensor& lse) {
  check_grid(q, "attention_forward");
  cudaStream_t stream = ctx.cuda_resources().stream;
  const bool tc = q.dtype() == DType::bf16 && aligned16({&q, &k, &v, &out});
  if (tc && with_tensor_core_dims(q.dim(3), v.dim(3), [&]<int Q, int V>(HeadDims<Q, V>) {
        const Args<bf16> a = make_args<bf16>(q, k, v, out, lse, segment_ids, scale);
        launch_tc(forward_tc<Q, V>, a.H, tiles(a.S, FwdTile::M), a, FwdTile::smem(Q, V), stream, "attention forward_tc");
      }))
    return;
  if (q.dtype() == DType::bf16) {  // a model shape without tiled kernels trains ~10x slower: say so once
    static std::once_flag warned;
    std::call_once(warned, [&] {
      log_warn("attention: bf16 head dims (", q.dim(3), ", ", v.dim(3), ") have no tensor-core kernel (or a ",
               "buffer is not 16-byte aligned); running the much slower CUDA-core path");
    });
  }
  with_float_type(q.dtype(), "attention_forward", [&](auto tag) {
    using T = decltype(tag);
    const Args<T> a = make_args<T>(q, k, v, out, lse, segment_ids, scale);
    forward_rows<<<row_blocks(q.dim(0) * q.dim(1) * q.dim(2)), kThreads, 0, stream>>>(a);
  });
  R1_CUDA_LAUNCHED("attention forward_rows");
}

void attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& segment_ids, float scale,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_grid(q, "attention_backward");
  cudaStream_t stream = ctx.cuda_resources().stream;
  const Tensor delta = ctx.empty(lse.shape(), DType::f32);
  const std::int64_t rows = q.dim(0) * q.dim(1) * q.dim(2);
  const auto args = [&](auto tag) {
    using T = decltype(tag);
    Args<T> a = make_args<T>(q, k, v, out, lse, segment_ids, scale);
    a.splits = 1;
    a.dout = dout.data<T>();
    a.dq = dq.data<T>();
    a.dk = dk.data<T>();
    a.dv = dv.data<T>();
    a.delta = delta.data<float>();
    return a;
  };
  with_float_type(q.dtype(), "attention_backward", [&](auto tag) {
    delta_rows<<<row_blocks(rows), kThreads, 0, stream>>>(args(tag));
  });
  R1_CUDA_LAUNCHED("attention delta_rows");
  const bool tc = q.dtype() == DType::bf16 && aligned16({&q, &k, &v, &dout, &dq, &dk, &dv});
  if (tc && with_tensor_core_dims(q.dim(3), v.dim(3), [&]<int Q, int V>(HeadDims<Q, V>) {
        Args<bf16> a = args(bf16{});
        const std::int64_t blocks = static_cast<std::int64_t>(a.B) * a.Hkv * tiles(a.S, DkdvTile::N);
        Tensor dk_part, dv_part;
        a.splits = dkdv_splits(blocks, a.H / a.Hkv, ctx.cuda_resources().sm_count);
        if (a.splits > 1) {
          dk_part = ctx.empty({a.splits, k.numel()}, DType::f32);
          dv_part = ctx.empty({a.splits, v.numel()}, DType::f32);
          a.dk_part = dk_part.data<float>();
          a.dv_part = dv_part.data<float>();
        }
        launch_tc(backward_dkdv_tc<Q, V>, a.Hkv * a.splits, tiles(a.S, DkdvTile::N), a, DkdvTile::smem(Q, V), stream,
                  "attention backward_dkdv_tc");
        if (a.splits > 1) {
          for (const auto& [part, grad] : {std::pair{&dk_part, &dk}, std::pair{&dv_part, &dv}}) {
            sum_splits<<<row_blocks(grad->numel() / 32), kThreads, 0, stream>>>(part->data<float>(), grad->data<bf16>(),
                                                                               grad->numel(), a.splits);
            R1_CUDA_LAUNCHED("attention sum_splits");
          }
        }
        launch_tc(backward_dq_tc<Q, V>, a.H, tiles(a.S, DqTile::M), a, DqTile::smem(Q, V), stream, "attention backward_dq_tc");
      }))
    return;
  with_float_type(q.dtype(), "attention_backward", [&](auto tag) {
    const auto a = args(tag);
    backward_dkdv_rows<<<row_blocks(q.dim(0) * q.dim(1) * k.dim(2)), kThreads, 0, stream>>>(a);
    R1_CUDA_LAUNCHED("attention backward_dkdv_rows");
    backward_dq_rows<<<row_blocks(rows), kThreads, 0, stream>>>(a);
    R1_CUDA_LAUNCHED("attention backward_dq_rows");
  });
}

}  // namespace r1::kernels::cuda
