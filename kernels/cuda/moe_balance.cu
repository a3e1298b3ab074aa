// CUDA balance loss and bias update. Per-sequence counts by integer atomics (exact, so order-free); the
// probability sums and the loss by fixed-shape double reductions: deterministic run to run.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/moe_balance.hpp"
#include "kernels/moe_routing_math.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;

__global__ void sequence_counts_kernel(std::int64_t n, int k, std::int64_t seq_len, int e, const std::int32_t* idx,
                                       std::int32_t* counts) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int32_t x = idx[i];
    if (x >= 0 && x < e) atomicAdd(&counts[i / k / seq_len * e + x], 1);
  }
}

__global__ void score_sum_kernel(std::int64_t t, int e, const float* s, double* z) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < t) z[i] = moe::score_sum(e, s + i * e);
}

// Block (sequence b, 32 experts): lane = expert, warps stride over the sequence's tokens, then the 8 warp
// sums are added in warp order.
__global__ void prob_kernel(std::int64_t seq_len, int e, const float* s, const double* z, double* prob) {
  const std::int64_t b = blockIdx.x;
  const int x = blockIdx.y * 32 + threadIdx.x % 32, w = threadIdx.x / 32;
  double acc = 0.0;
  if (x < e)
    for (std::int64_t i = b * seq_len + w; i < (b + 1) * seq_len; i += kWarps) acc += s[i * e + x] / z[i];
  __shared__ double part[kWarps][32];
  part[w][threadIdx.x % 32] = acc;
  __syncthreads();
  if (w == 0 && x < e) {
    double sum = 0.0;
    for (int v = 0; v < kWarps; ++v) sum += part[v][threadIdx.x];
    prob[b * e + x] = sum;
  }
}

__device__ double block_sum(double v) {
  __shared__ double part[kBlock];
  part[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  return part[0];
}

// One block: expert totals, and loss = norm * sum_{b,i} count_{b,i} P_{b,i}.
__global__ void balance_loss_kernel(std::int64_t b, int e, double norm, const std::int32_t* seq_counts,
                                    const double* prob, float* loss, std::int32_t* counts) {
  double acc = 0.0;
  for (int x = threadIdx.x; x < e; x += kBlock) {
    std::int32_t total = 0;
    for (std::int64_t sq = 0; sq < b; ++sq) {
      total += seq_counts[sq * e + x];
      acc += seq_counts[sq * e + x] * prob[sq * e + x];
    }
    counts[x] = total;
  }
  const double sum = block_sum(acc);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(norm * sum);
}

__global__ void balance_backward_kernel(ScoreFunc f, std::int64_t t, int e, std::int64_t seq_len, double coef,
                                        const float* s, const std::int32_t* seq_counts, float* dx) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < t) moe::balance_token_backward(f, e, s + i * e, seq_counts + i / seq_len * e, coef, dx + i * e);
}

__global__ void bias_update_kernel(int e, float gamma, const std::int32_t* counts, float* bias) {
  __shared__ long long total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  long long mine = 0;
  for (int x = threadIdx.x; x < e; x += kBlock) mine += counts[x];
  atomicAdd(reinterpret_cast<unsigned long long*>(&total), static_cast<unsigned long long>(mine));
  __syncthreads();
  for (int x = threadIdx.x; x < e; x += kBlock) {
    const long long d = static_cast<long long>(counts[x]) * e - total;  // count - mean, exactly
    bias[x] -= gamma * static_cast<float>((d > 0) - (d < 0));
  }
}

Tensor sequence_counts(const Context& ctx, const Tensor& expert_idx, std::int64_t seq_len, int e) {
  Tensor c = ctx.zeros({expert_idx.dim(0) / seq_len, e}, DType::i32);
  const std::int64_t n = expert_idx.numel();
  if (n == 0) return c;
  const Launch l = elementwise_launch(ctx, n);
  sequence_counts_kernel<<<l.grid, l.block, 0, l.stream>>>(n, static_cast<int>(expert_idx.dim(1)), seq_len, e,
                                                           expert_idx.data<std::int32_t>(), c.data<std::int32_t>());
  R1_CUDA_LAUNCHED("moe_balance sequence_counts");
  return c;
}
}  // namespace

void moe_balance_forward(const Context& ctx, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                         const Tensor& loss, const Tensor& counts) {
  const std::int64_t t = scores.dim(0), l = p.seq_len, b = t / l, k = expert_idx.dim(1);
  const int e = static_cast<int>(scores.dim(1));
  cudaStream_t stream = ctx.cuda_resources().stream;
  const Tensor c = sequence_counts(ctx, expert_idx, l, e);
  Tensor prob = ctx.empty({b, e}, DType::f64);
  if (b > 0) {
    Tensor z = ctx.empty({t}, DType::f64);
    score_sum_kernel<<<static_cast<unsigned>((t + kBlock - 1) / kBlock), kBlock, 0, stream>>>(t, e, scores.data<float>(),
                                                                                               z.data<double>());
    R1_CUDA_LAUNCHED("moe_balance score_sum");
    prob_kernel<<<dim3(static_cast<unsigned>(b), static_cast<unsigned>((e + 31) / 32)), kBlock, 0, stream>>>(
        l, e, scores.data<float>(), z.data<double>(), prob.data<double>());
    R1_CUDA_LAUNCHED("moe_balance prob");
  }
  const double norm = b > 0 ? static_cast<double>(p.alpha) / b * e / (static_cast<double>(k) * l) / l : 0.0;
  balance_loss_kernel<<<1, kBlock, 0, stream>>>(b, e, norm, c.data<std::int32_t>(), prob.data<double>(),
                                                loss.data<float>(), counts.data<std::int32_t>());
  R1_CUDA_LAUNCHED("moe_balance loss");
}

void moe_balance_backward(const Context& ctx, float dloss, const Tensor& scores, const Tensor& expert_idx,
                          const BalanceParams& p, const Tensor& dlogits) {
  const std::int64_t t = scores.dim(0), l = p.seq_len, b = t / l, k = expert_idx.dim(1);
  const int e = static_cast<int>(scores.dim(1));
  const Tensor c = sequence_counts(ctx, expert_idx, l, e);
  const double coef = static_cast<double>(dloss) * p.alpha / b * e / (static_cast<double>(k) * l) / l;
  balance_backward_kernel<<<static_cast<unsigned>((t + 127) / 128), 128, 0, ctx.cuda_resources().stream>>>(
      p.score_func, t, e, l, coef, scores.data<float>(), c.data<std::int32_t>(), dlogits.data<float>());
  R1_CUDA_LAUNCHED("moe_balance_backward");
}

void moe_bias_update(const Context& ctx, const Tensor& counts, float gamma, const Tensor& bias) {
  bias_update_kernel<<<1, kBlock, 0, ctx.cuda_resources().stream>>>(static_cast<int>(counts.numel()), gamma,
                                                                     counts.data<std::int32_t>(), bias.data<float>());
  R1_CUDA_LAUNCHED("moe_bias_update");
}

}  // namespace r1::kernels::cuda
