// CUDA RMSNorm: one block per row (forward) or per fixed chunk of rows (backward), 16-byte packed
// accesses, f32 math. The weight gradient is deterministic: each backward block keeps its partial sums
// in shared memory and writes them out; a second kernel adds the partials in block order.
#include "kernels/cuda/rmsnorm.hpp"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;
// The backward uses at most this many blocks, each owning a contiguous chunk of rows (8 at the bench's
// 8192 tokens): enough resident threads to keep HBM busy through the per-row block reductions, while
// the partial buffer (1024 x D f32, 8 MB at D = 2048) stays small beside the 3 x T x D activations.
constexpr std::int64_t kMaxPartials = 1024;

template <class X, int N>
__global__ void forward_kernel(std::int64_t d, float eps, const X* x, const float* w, X* y, float* rstd) {
  const std::int64_t t = blockIdx.x;
  const X* xr = x + t * d;
  float ss = 0.0f;
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
    float v[N];
    load_pack<N>(xr + c, v);
#pragma unroll
    for (int k = 0; k < N; ++k) ss += v[k] * v[k];
  }
  ss = block_sum(ss);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) rstd[t] = r;
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
    float v[N], wv[N];
    load_pack<N>(xr + c, v);
    load_pack<N>(w + c, wv);
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = v[k] * r * wv[k];
    store_pack<N>(y + t * d + c, v);
  }
}

// Rows [blockIdx.x * rows_per_block, ...): dx per row, and this block's share of dweight into partial.
template <class X, class G, int N>
__global__ void backward_kernel(std::int64_t rows, std::int64_t d, std::int64_t rows_per_block, const G* dy,
                                const X* x, const float* w, const float* rstd, G* dx, float* partial) {
  extern __shared__ float dw[];  // [d]; each thread only touches the columns of its own packs
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N)
#pragma unroll
    for (int k = 0; k < N; ++k) dw[c + k] = 0.0f;
  const std::int64_t t0 = blockIdx.x * rows_per_block, t1 = min(rows, t0 + rows_per_block);
  for (std::int64_t t = t0; t < t1; ++t) {
    const float r = rstd[t];
    const G* dyr = dy + t * d;
    const X* xr = x + t * d;
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
      float g[N], xv[N], wv[N];
      load_pack<N>(dyr + c, g);
      load_pack<N>(xr + c, xv);
      load_pack<N>(w + c, wv);
#pragma unroll
      for (int k = 0; k < N; ++k) s += g[k] * wv[k] * xv[k];
    }
    s = block_sum(s);
    const float kk = r * r * s / static_cast<float>(d);
    for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N) {
      float g[N], xv[N], wv[N], out[N];
      load_pack<N>(dyr + c, g);
      load_pack<N>(xr + c, xv);
      load_pack<N>(w + c, wv);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        out[k] = r * (wv[k] * g[k] - xv[k] * kk);
        dw[c + k] += g[k] * xv[k] * r;
      }
      store_pack<N>(dx + t * d + c, out);
    }
  }
  for (std::int64_t c = threadIdx.x * N; c < d; c += kThreads * N)
#pragma unroll
    for (int k = 0; k < N; ++k) partial[blockIdx.x * d + c + k] = dw[c + k];
}

// dweight[j] += sum over b of partial[b, j], b in order: 32 columns per block, 8 row groups each summing
// a strided subset in order, then the 8 group sums added in order.
__global__ void reduce_partials_kernel(std::int64_t blocks, std::int64_t d, const float* partial, float* dweight) {
  __shared__ float group[8][33];
  const std::int64_t j = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.0f;
  if (j < d)
    for (std::int64_t b = threadIdx.y; b < blocks; b += 8) acc += partial[b * d + j];
  group[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < d) {
    float sum = 0.0f;
    for (int g = 0; g < 8; ++g) sum += group[g][threadIdx.x];
    dweight[j] += sum;
  }
}
}  // namespace

void rmsnorm_forward(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y,
                     const Tensor& rstd) {
  const std::int64_t rows = x.dim(0), d = x.dim(1);
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "rmsnorm_forward", [&](auto tag) {
    using X = decltype(tag);
    constexpr int n = kPack<X>;
    const bool packed = d % n == 0 && pack_aligned(x, n) && pack_aligned(y, n) && pack_aligned(weight, n);
    with_pack<n>(packed, [&](auto pn) {
      forward_kernel<X, decltype(pn)::value><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          d, eps, x.data<X>(), weight.data<float>(), y.data<X>(), rstd.data<float>());
    });
  });
  R1_CUDA_LAUNCHED("rmsnorm_forward");
}

void rmsnorm_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight) {
  const std::int64_t rows = x.dim(0), d = x.dim(1);
  const std::size_t smem = static_cast<std::size_t>(d) * sizeof(float);
  int max_smem = 0;
  R1_CUDA(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device()));
  R1_REQUIRE(smem <= static_cast<std::size_t>(max_smem), "rmsnorm_backward: x ", x.str(),
             " has more features than this GPU's shared memory holds (", max_smem / 4, ")");
  const std::int64_t rows_per_block = (rows + kMaxPartials - 1) / kMaxPartials;
  const std::int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  Tensor partial = ctx.empty({blocks, d}, DType::f32);
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "rmsnorm_backward", [&](auto xtag) {
    with_float_type(dy.dtype(), "rmsnorm_backward", [&](auto gtag) {
      using X = decltype(xtag);
      using G = decltype(gtag);
      // One pack width for both dtypes: the narrower type's 16-byte pack (8 elements when either is bf16).
      constexpr int n = std::max(kPack<X>, kPack<G>);
      const bool packed = d % n == 0 && pack_aligned(x, n) && pack_aligned(dy, n) && pack_aligned(dx, n) &&
                          pack_aligned(weight, n);
      with_pack<n>(packed, [&](auto pn) {
        auto kernel = backward_kernel<X, G, decltype(pn)::value>;
        if (smem > 48 * 1024)
          R1_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
        kernel<<<static_cast<unsigned>(blocks), kThreads, smem, s>>>(rows, d, rows_per_block, dy.data<G>(), x.data<X>(),
                                                                      weight.data<float>(), rstd.data<float>(),
                                                                      dx.data<G>(), partial.data<float>());
      });
    });
  });
  R1_CUDA_LAUNCHED("rmsnorm_backward");
  reduce_partials_kernel<<<static_cast<unsigned>((d + 31) / 32), dim3(32, 8), 0, s>>>(blocks, d, partial.data<float>(),
                                                                                   dweight.data<float>());
  R1_CUDA_LAUNCHED("rmsnorm_dweight");
}

}  // namespace r1::kernels::cuda
