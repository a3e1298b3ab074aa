// CUDA sampling: one block per row. The top-k and nucleus sets of kernels/sampling.hpp are found without
// sorting, by bisecting on the logits' 32-bit order keys (32 counting passes for top-k, 32 mass passes for
// top-p, coalesced), then ties at the boundary are admitted in id order as the definition's order does.
// The draw walks the kept set in id order: each thread owns a contiguous chunk, an exclusive scan of the
// chunks' masses gives each its starting sum, and the first crossing over all threads wins. Sums are in
// f64 with a fixed order, so a row's result is the same bits run to run.
#include <cfloat>
#include <climits>

#include "kernels/cuda/launch.cuh"
#include "kernels/sampling.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

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
struct Min {
  template <class T> __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
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

// The kept set: key > k, or key == k and among the first j such ids.
struct KeptSet {
  std::uint32_t k = 0;
  long long j = LLONG_MAX;
};

__global__ void sample_kernel(const float* logits, std::int64_t stride, std::int64_t V, const double* uniforms,
                              float temperature, float top_p, std::int64_t top_k, std::int32_t* tokens,
                              float* logprobs, float* entropies) {
  const float* x = logits + static_cast<std::int64_t>(blockIdx.x) * stride;
  const int t = threadIdx.x;
  const bool greedy = temperature == 0.0f;
  const double inv_t = greedy ? 1.0 : 1.0 / static_cast<double>(temperature);

  float m = -INFINITY;
  for (std::int64_t i = t; i < V; i += kThreads) m = fmaxf(m, x[i]);
  m = block_all(m, -INFINITY, Max{});
  long long first = V;
  for (std::int64_t i = t; i < V; i += kThreads)
    if (x[i] == m) {
      first = i;
      break;
    }
  const long long best = block_all(first, static_cast<long long>(V), Min{});
  const double zmax = static_cast<double>(m) * inv_t;
  const auto weight = [&](std::int64_t i) { return exp(static_cast<double>(x[i]) * inv_t - zmax); };
  double tot = 0.0, wz = 0.0;
  for (std::int64_t i = t; i < V; i += kThreads) {
    const double w = weight(i);
    tot += w;
    if (w > 0.0) wz += w * (static_cast<double>(x[i]) * inv_t);  // masked (-inf) logits add nothing
  }
  const double total = block_all(tot, 0.0, Add{}), weighted = block_all(wz, 0.0, Add{});
  const double lse = zmax + log(total);

  long long token = best;
  if (!greedy) {
    KeptSet set;
    double kept = total;
    const bool use_k = top_k > 0 && top_k < V, use_p = top_p < 1.0f;
    // The first (largest) key K with count{key >= K} >= top_k: the k-th largest value.
    if (use_k) {
      std::uint32_t k = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const std::uint32_t cand = k | (1u << bit);
        long long c = 0;
        for (std::int64_t i = t; i < V; i += kThreads) c += order_key(x[i]) >= cand;
        if (block_all(c, 0LL, Add{}) >= top_k) k = cand;
      }
      long long gt = 0;
      for (std::int64_t i = t; i < V; i += kThreads) gt += order_key(x[i]) > k;
      set = {k, top_k - block_all(gt, 0LL, Add{})};
    }
    // Contiguous chunks for everything that depends on id order.
    const std::int64_t chunk = (V + kThreads - 1) / kThreads, lo = std::min<std::int64_t>(t * chunk, V),
                       hi = std::min<std::int64_t>(lo + chunk, V);
    const auto tie_base = [&](const KeptSet& s) {  // ties at s.k before this thread's chunk
      long long ties = 0;
      for (std::int64_t i = lo; i < hi; ++i) ties += order_key(x[i]) == s.k;
      return block_exclusive_sum(ties);
    };
    const auto kept_mass = [&](const KeptSet& s, long long rank, double* sum_out) {
      double sum = 0.0;
      for (std::int64_t i = lo; i < hi; ++i) {
        const std::uint32_t key = order_key(x[i]);
        if (key > s.k || (key == s.k && rank++ < s.j)) sum += weight(i);
      }
      *sum_out = sum;
    };
    if (use_k && !use_p) {
      double part;
      kept_mass(set, tie_base(set), &part);
      kept = block_all(part, 0.0, Add{});
    }
    if (use_p) {
      // Keys above set.k are all kept, so the mass of {kept, key >= K} is a plain sum there.
      if (use_k) {
        double part;
        kept_mass(set, tie_base(set), &part);
        kept = block_all(part, 0.0, Add{});
      }
      const double target = static_cast<double>(top_p) * kept;
      std::uint32_t k = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const std::uint32_t cand = k | (1u << bit);
        double mass = kept;
        if (cand > set.k) {
          double part = 0.0;
          for (std::int64_t i = t; i < V; i += kThreads)
            if (order_key(x[i]) >= cand) part += weight(i);
          mass = block_all(part, 0.0, Add{});
        }
        if (mass >= target) k = cand;
      }
      double part = 0.0;
      long long ties = 0;
      for (std::int64_t i = t; i < V; i += kThreads) {
        const std::uint32_t key = order_key(x[i]);
        if (key > k) part += weight(i);
        ties += key == k;
      }
      const double above = block_all(part, 0.0, Add{});
      long long n_ties = block_all(ties, 0LL, Add{});
      if (k == set.k) n_ties = n_ties < set.j ? n_ties : set.j;
      // Ties at the boundary share one weight; admit them in id order until the mass reaches the target.
      const double w_tie = exp(static_cast<double>(key_value(k)) * inv_t - zmax);
      long long j = 1;
      double cum = above + w_tie;
      while (cum < target && j < n_ties) {
        cum += w_tie;
        ++j;
      }
      set = {k, j};
      kept = cum;
    }
    // The draw: first id (in id order) where the kept set's cumulative mass exceeds u x kept.
    const double target = uniforms[blockIdx.x] * kept;
    const long long base = tie_base(set);
    double part;
    kept_mass(set, base, &part);
    double cum = block_exclusive_sum(part);
    long long found = V, rank = base;
    for (std::int64_t i = lo; i < hi; ++i) {
      const std::uint32_t key = order_key(x[i]);
      if (key > set.k || (key == set.k && rank++ < set.j)) {
        const double w = weight(i);
        cum += w;
        if (cum > target && w > 0.0) {
          found = i;
          break;
        }
      }
    }
    found = block_all(found, static_cast<long long>(V), Min{});
    if (found < V) token = found;
  }
  if (t == 0) {
    tokens[blockIdx.x] = static_cast<std::int32_t>(token);
    logprobs[blockIdx.x] = static_cast<float>(static_cast<double>(x[token]) * inv_t - lse);
    entropies[blockIdx.x] = static_cast<float>(lse - weighted / total);
  }
}
}  // namespace

void sample_rows(const Context& ctx, const Tensor& logits, const Tensor& uniforms, const SampleOptions& o,
                 const Tensor& tokens, const Tensor& logprobs, const Tensor& entropies) {
  const std::int64_t B = logits.dim(0), V = logits.dim(1);
  const std::int64_t drawable = o.vocab_limit > 0 ? std::min(V, o.vocab_limit) : V;
  sample_kernel<<<static_cast<unsigned>(B), kThreads, 0, ctx.cuda_resources().stream>>>(
      logits.data<float>(), V, drawable, uniforms.data<double>(), o.temperature, o.top_p, o.top_k,
      tokens.data<std::int32_t>(), logprobs.data<float>(), entropies.data<float>());
  R1_CUDA_LAUNCHED("sample_rows");
}

}  // namespace r1::kernels::cuda
