// CUDA sampling: one thread-block cluster per row (up to 8 blocks, 16 for vocabularies past ~150k ids), each
// block holding its slice of the row in shared memory as 32-bit order keys and 64-bit fixed-point weights, so
// the row is read from global memory once and e^(z - zmax) is evaluated once per id. The top-k and nucleus
// sets of kernels/sampling.hpp are found without sorting, by radix selection on the order keys: four 8-bit
// digits, each a shared-memory histogram of counts (top-k) or masses (top-p), summed over the cluster's blocks
// through distributed shared memory. Every mass is an integer (weights rounded to 2^-S, S = 64 - bit length
// of V, so V of them cannot overflow), so histograms built with atomics are the same bits run to run; the
// log-prob and entropy sums are f64 in a fixed order. Ties at a boundary share one weight and are admitted in
// id order. The draw walks the kept set in id order: each thread owns a contiguous chunk, an exclusive scan
// of the chunks' masses over the block and the cluster gives each its starting sum, and the one thread whose
// range holds u x kept walks its chunk.
#include <cooperative_groups.h>

#include <climits>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sampling.hpp"

namespace r1::kernels::cuda {

namespace {
namespace cg = cooperative_groups;
using u64 = unsigned long long;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;         // one 8-bit digit of the order keys
constexpr int kCache = 4;          // histogram entries merged in registers per thread
constexpr int kPortableCluster = 8;
constexpr int kMaxCluster = 16;
constexpr int kBytesPerId = 12;    // u32 key + u64 weight in shared memory

// Unsigned keys in the order of the floats they encode (larger float, larger key); -0 and +0 compare equal,
// so both get the key of +0.
__device__ __forceinline__ std::uint32_t order_key(float x) {
  const std::uint32_t b = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(std::uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Reduction over the block, returned to every thread; the order depends only on the block size.
template <class T, class Op> __device__ T block_all(T v, T identity, Op op) {
  __shared__ T slots[kWarps + 1];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  __syncthreads();
  if (lane == 0) slots[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < kWarps ? slots[lane] : identity;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) w = op(w, __shfl_xor_sync(0xffffffffu, w, off));
    if (lane == 0) slots[kWarps] = w;
  }
  __syncthreads();
  return slots[kWarps];
}
struct Add {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  template <class T> __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

// Exclusive prefix sum over the threads in index order.
template <class T> __device__ T block_exclusive_sum(T v) {
  __shared__ T slots[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  T inc = v;
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    const T n = __shfl_up_sync(0xffffffffu, inc, off);
    if (lane >= off) inc += n;
  }
  const T prev = __shfl_up_sync(0xffffffffu, inc, 1);
  __syncthreads();
  if (lane == 31) slots[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    T w = lane < kWarps ? slots[lane] : T(0);
#pragma unroll
    for (int off = 1; off < 32; off *= 2) {
      const T n = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += n;
    }
    if (lane < kWarps) slots[lane] = w;
  }
  __syncthreads();
  return (warp > 0 ? slots[warp - 1] : T(0)) + (lane > 0 ? prev : T(0));
}

// Over the 32 lanes of a warp, every lane getting the same bits (a butterfly combines the same pairs).
template <class T> __device__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <class T> __device__ T warp_exclusive_sum(T v) {
  const int lane = threadIdx.x % 32;
  T inc = v;
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    const T n = __shfl_up_sync(0xffffffffu, inc, off);
    if (lane >= off) inc += n;
  }
  return inc - v;
}

struct Hist {
  std::uint32_t count[kBins];
  u64 mass[kBins];
};

// Histogram adds merged per thread in a few registers, so a thread whose candidates fall in a few bins (ties,
// or the top digit of logits spanning a few octaves) issues a few shared atomics rather than one per id.
struct BinCache {
  std::uint32_t bin[kCache], count[kCache];
  u64 mass[kCache];
  int next = 0;
  __device__ BinCache() {
#pragma unroll
    for (int e = 0; e < kCache; ++e) count[e] = 0, bin[e] = kBins, mass[e] = 0;
  }
  __device__ void flush(Hist& h, int e) {
    if (count[e] == 0) return;
    atomicAdd(&h.count[bin[e]], count[e]);
    atomicAdd(&h.mass[bin[e]], mass[e]);
  }
  __device__ void add(Hist& h, std::uint32_t b, u64 w) {
    bool hit = false;  // the entries' bins are distinct
#pragma unroll
    for (int e = 0; e < kCache; ++e) {
      const bool match = bin[e] == b;
      count[e] += match;
      mass[e] += match ? w : 0;
      hit |= match;
    }
    if (hit) return;
#pragma unroll
    for (int e = 0; e < kCache; ++e)
      if (e == next) {
        flush(h, e);
        bin[e] = b, count[e] = 1, mass[e] = w;
      }
    next = (next + 1) % kCache;
  }
  __device__ void flush_all(Hist& h) {
#pragma unroll
    for (int e = 0; e < kCache; ++e) flush(h, e);
  }
};

// What each block publishes to the others (through distributed shared memory), and block-local broadcasts.
struct Shared {
  Hist hist[2];                // alternate per digit, so one cluster barrier per digit suffices
  u64 best;                    // max of (key << 32 | ~id): the largest logit, lowest id on ties
  double total, weighted;      // this block's sums of e^(z - zmax) and e^(z - zmax) z
  u64 kept_above, ties;        // this block's kept mass with key > K, and ids with key == K
  struct Pick {
    std::uint32_t digit;
    u64 count_above, mass_above, count, mass;
  } pick;
  u64 tie_base, mass_base, kept;  // over the blocks before this one; kept mass of the row
  double lse, entropy;
};

// Candidates of a selection: ids with key above `key`, plus `count` ids at `key` of total `mass` (the ties a
// top-k boundary admits); every id when !on.
struct Floor {
  bool on = false;
  std::uint32_t key = 0;
  u64 count = 0, mass = 0;
};
// The boundary key K of a selection: the largest key whose candidates at or above it reach the target.
struct Boundary {
  std::uint32_t key = 0;
  u64 count_above = 0, mass_above = 0;  // candidates with key > K
  u64 count_at = 0, mass_at = 0;        // candidates with key == K
  u64 left = 0;                         // target less what the candidates above K hold
};

// This block's part of a row: `n` ids from `begin`, keys and weights in shared memory; thread t owns the
// contiguous chunk [lo, hi) (an odd chunk length keeps the lanes' shared-memory reads on distinct banks).
struct Slice {
  std::int64_t begin;
  int n, lo, hi;
  const std::uint32_t* key;
  const u64* weight;
};

// Radix selection over the cluster: by count (target = top_k) or by mass (target = ceil(fraction x the
// candidates' mass)). `parity` picks the histogram buffer and alternates per digit.
__device__ Boundary select_boundary(const cg::cluster_group& cluster, Shared& s, const Slice& sl, int& parity,
                                    bool by_mass, u64 target, double fraction, const Floor& within) {
  const int t = threadIdx.x;
  const unsigned blocks = cluster.num_blocks();
  Boundary b;
  std::uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8, parity ^= 1) {
    Hist& h = s.hist[parity];
    for (int i = t; i < kBins; i += kThreads) h.count[i] = 0, h.mass[i] = 0;
    __syncthreads();
    if (t == 0) s.pick = {0, 0, 0, 0, 0};  // after the barrier: every thread has read the last digit's pick
    BinCache cache;
    for (int i = sl.lo; i < sl.hi; ++i) {
      const std::uint32_t k = sl.key[i];
      if ((k & mask) != prefix || (within.on && k <= within.key)) continue;
      cache.add(h, (k >> shift) & 0xffu, sl.weight[i]);
    }
    cache.flush_all(h);
    if (within.on && within.count > 0 && cluster.block_rank() == 0 && t == 0 && (within.key & mask) == prefix) {
      atomicAdd(&h.count[(within.key >> shift) & 0xffu], static_cast<std::uint32_t>(within.count));
      atomicAdd(&h.mass[(within.key >> shift) & 0xffu], within.mass);
    }
    cluster.sync();
    // Thread t sums bin 255 - t over the cluster, so the scans run from the highest digit down.
    u64 c = 0, m = 0;
    if (t < kBins) {
#pragma unroll
      for (unsigned r = 0; r < kMaxCluster; ++r)
        if (r < blocks) {
          const Hist* rh = cluster.map_shared_rank(&h, r);
          c += rh->count[kBins - 1 - t];
          m += rh->mass[kBins - 1 - t];
        }
    }
    const u64 c_ex = block_exclusive_sum(c), m_ex = block_exclusive_sum(m);
    if (by_mass && shift == 24)
      target = static_cast<u64>(ceil(fraction * static_cast<double>(block_all(m, 0ull, Add{}))));
    const u64 v_ex = by_mass ? m_ex : c_ex, v = by_mass ? m : c;
    if (t < kBins && v_ex < target && target <= v_ex + v)
      s.pick = {static_cast<std::uint32_t>(kBins - 1 - t), c_ex, m_ex, c, m};
    __syncthreads();
    const Shared::Pick p = s.pick;
    prefix |= p.digit << shift;
    mask |= 0xffu << shift;
    target -= by_mass ? p.mass_above : p.count_above;
    b.count_above += p.count_above;
    b.mass_above += p.mass_above;
    b.count_at = p.count;
    b.mass_at = p.mass;
  }
  b.key = prefix;
  b.left = target;
  return b;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits, std::int64_t stride,
                                                          std::int64_t V, int slice, const double* uniforms,
                                                          float temperature, float top_p, std::int64_t top_k,
                                                          std::int32_t* tokens, float* logprobs, float* entropies) {
  extern __shared__ u64 dynamic_smem[];
  __shared__ Shared s;
  const cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank(), blocks = cluster.num_blocks();
  const std::int64_t row = blockIdx.x / blocks;
  const float* x = logits + row * stride;
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const bool greedy = temperature == 0.0f;
  const double inv_t = greedy ? 1.0 : 1.0 / static_cast<double>(temperature);

  u64* weight = dynamic_smem;
  std::uint32_t* key = reinterpret_cast<std::uint32_t*>(dynamic_smem + slice);
  const std::int64_t begin = static_cast<std::int64_t>(rank) * slice;
  const int n = static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(slice, V - begin)));
  const int chunk = ((slice + kThreads - 1) / kThreads) | 1;
  const int lo = std::min(t * chunk, n), hi = std::min(lo + chunk, n);
  const Slice sl{begin, n, lo, hi, key, weight};

  // The row's only read from global memory: keys into shared memory, and the cluster's argmax.
  u64 best = 0;
  constexpr int kBatch = 16;  // loads in flight per thread
  for (int base = 0; base < n; base += kBatch * kThreads) {
    float v[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * kThreads + t;
      v[b] = i < n ? x[begin + i] : 0.0f;
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * kThreads + t;
      if (i < n) {
        const std::uint32_t k = order_key(v[b]);
        key[i] = k;
        best = std::max(best, static_cast<u64>(k) << 32 | (0xffffffffu - static_cast<std::uint32_t>(begin + i)));
      }
    }
  }
  best = block_all(best, 0ull, Max{});
  if (t == 0) s.best = best;
  cluster.sync();
#pragma unroll
  for (unsigned r = 0; r < kMaxCluster; ++r)
    if (r < blocks) best = std::max(best, *cluster.map_shared_rank(&s.best, r));
  const std::int64_t best_id = 0xffffffffu - static_cast<std::uint32_t>(best);
  const double zmax = static_cast<double>(key_value(static_cast<std::uint32_t>(best >> 32))) * inv_t;

  // Weights, once per id: f64 for the log-prob and entropy sums, fixed point for every mass the sets use.
  const int bits = 64 - __clzll(static_cast<u64>(V));
  const double scale = ldexp(1.0, 64 - bits);
  double tot = 0.0, wz = 0.0;
#pragma unroll 4
  for (int i = lo; i < hi; ++i) {
    const double z = static_cast<double>(key_value(key[i])) * inv_t;
    const double w = exp(z - zmax);
    weight[i] = __double2ull_rn(w * scale);
    tot += w;
    if (w > 0.0) wz += w * z;  // masked (-inf) logits add nothing
  }
  tot = block_all(tot, 0.0, Add{});
  wz = block_all(wz, 0.0, Add{});
  if (t == 0) s.total = tot, s.weighted = wz;

  // The kept set: key > K, or key == K and among the first j such ids; every id (K = j = 0) when neither
  // top-k nor top-p applies.
  std::uint32_t K = 0;
  u64 j = 0, w_K = 0;
  if (!greedy) {
    int parity = 0;
    Floor within;
    if (top_k > 0 && top_k < V) {
      const Boundary b = select_boundary(cluster, s, sl, parity, false, static_cast<u64>(top_k), 0.0, within);
      K = b.key, j = b.left, w_K = b.mass_at / b.count_at;  // the ties at K share one weight
      within = {true, K, j, j * w_K};
    }
    if (top_p < 1.0f) {
      const Boundary b = select_boundary(cluster, s, sl, parity, true, 0, static_cast<double>(top_p), within);
      K = b.key, w_K = b.mass_at / b.count_at;
      j = (b.left + w_K - 1) / w_K;  // the fewest ties at K that reach the target
    }
  }
  u64 above = 0, ties = 0;
  if (!greedy)
    for (int i = lo; i < hi; ++i) {
      const std::uint32_t k = key[i];
      if (k > K) above += weight[i];
      ties += k == K;
    }
  const u64 tie_ex = block_exclusive_sum(ties);
  const u64 block_above = block_all(above, 0ull, Add{}), block_ties = block_all(ties, 0ull, Add{});
  if (t == 0) s.kept_above = block_above, s.ties = block_ties;
  cluster.sync();
  if (warp == 0) {  // lane r stands for block r
    double r_tot = 0.0, r_wz = 0.0;
    u64 r_above = 0, r_ties = 0;
    if (lane < static_cast<int>(blocks)) {
      const Shared* rs = cluster.map_shared_rank(&s, lane);
      r_tot = rs->total, r_wz = rs->weighted, r_above = rs->kept_above, r_ties = rs->ties;
    }
    const u64 tie_base = warp_exclusive_sum(r_ties);
    const u64 admitted = tie_base < j ? std::min(r_ties, j - tie_base) : 0;
    const u64 kept = r_above + admitted * w_K, mass_base = warp_exclusive_sum(kept);
    const u64 all_kept = warp_sum(kept);
    const double total = warp_sum(r_tot), weighted = warp_sum(r_wz);
    if (lane == static_cast<int>(rank)) s.tie_base = tie_base, s.mass_base = mass_base;
    if (lane == 0) {
      s.kept = all_kept;
      s.lse = zmax + log(total);
      s.entropy = s.lse - weighted / total;  // H = lse - E_p[z]
    }
  }
  __syncthreads();
  const double lse = s.lse;
  const auto write = [&](std::int64_t id, float value) {
    tokens[row] = static_cast<std::int32_t>(id);
    logprobs[row] = static_cast<float>(static_cast<double>(value) * inv_t - lse);
    entropies[row] = static_cast<float>(s.entropy);
  };
  const u64 kept = s.kept;
  // The draw: the first id (in id order) where the kept set's cumulative mass exceeds u x kept.
  const u64 target = greedy ? kept : static_cast<u64>(uniforms[row] * static_cast<double>(kept));
  const u64 my_base = s.tie_base + tie_ex;
  const u64 admitted = my_base < j ? std::min(ties, j - my_base) : 0;
  const u64 mine = above + admitted * w_K;
  const u64 start = s.mass_base + block_exclusive_sum(mine);
  if (!greedy && start <= target && target < start + mine) {
    u64 cum = start, tie_rank = my_base;
    for (int i = lo; i < hi; ++i) {
      const std::uint32_t k = key[i];
      if (k > K || (k == K && tie_rank++ < j)) {
        cum += weight[i];
        if (cum > target) {
          write(begin + i, key_value(k));
          break;
        }
      }
    }
  }
  if (target >= kept && rank == 0 && t == 0)  // greedy, or u x kept rounded past the last sum
    write(best_id, key_value(static_cast<std::uint32_t>(best >> 32)));
  cluster.sync();  // no block leaves while another may still read its shared memory
}
}  // namespace

void sample_rows(const Context& ctx, const Tensor& logits, const Tensor& uniforms, const SampleOptions& o,
                 const Tensor& tokens, const Tensor& logprobs, const Tensor& entropies) {
  const std::int64_t B = logits.dim(0), V = logits.dim(1);
  const std::int64_t drawable = o.vocab_limit > 0 ? std::min(V, o.vocab_limit) : V;
  const CudaResources& r = ctx.cuda_resources();
  int optin = 0;
  R1_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, r.device));
  cudaFuncAttributes attr{};
  R1_CUDA(cudaFuncGetAttributes(&attr, sample_kernel));
  const std::int64_t fits = (optin - static_cast<std::int64_t>(attr.sharedSizeBytes)) / kBytesPerId;
  // A block per 4096 ids (rounded up to a power of two) up to the portable cluster of 8, which holds ~150k
  // ids; 16 beyond that.
  std::int64_t blocks = 1;
  while (blocks < kPortableCluster && blocks * 4096 < drawable) blocks *= 2;
  if ((drawable + blocks - 1) / blocks > fits) blocks = kMaxCluster;
  const std::int64_t slice = (drawable + blocks - 1) / blocks;
  R1_REQUIRE(slice <= fits, "sample_rows: a vocabulary of ", drawable, " ids exceeds the CUDA sampler's ",
             fits * kMaxCluster, " (", kMaxCluster, " blocks of shared memory); set vocab_limit or sample on the CPU");
  const std::size_t smem = static_cast<std::size_t>(slice) * kBytesPerId;
  R1_CUDA(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  if (blocks > kPortableCluster)
    R1_CUDA(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));

  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(blocks * B));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = r.stream;
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = static_cast<unsigned>(blocks);
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  cfg.attrs = &cluster;
  cfg.numAttrs = 1;
  if (blocks > kPortableCluster) {
    int fit = 0;
    R1_CUDA(cudaOccupancyMaxActiveClusters(&fit, sample_kernel, &cfg));
    R1_REQUIRE(fit > 0, "sample_rows: this GPU cannot run a cluster of ", blocks, " blocks, which a vocabulary of ",
               drawable, " ids needs; set vocab_limit or sample on the CPU");
  }
  R1_CUDA(cudaLaunchKernelEx(&cfg, sample_kernel, logits.data<float>(), V, drawable, static_cast<int>(slice),
                             uniforms.data<double>(), o.temperature, o.top_p, o.top_k, tokens.data<std::int32_t>(),
                             logprobs.data<float>(), entropies.data<float>()));
  R1_CUDA_LAUNCHED("sample_rows");
}

}  // namespace r1::kernels::cuda
