// CUDA FP8 block quantisation, plain or transposed: one thread block per tile (max-abs by block reduction,
// then scale); dequantisation is elementwise.
#include "kernels/cuda/fp8.hpp"
#include "kernels/cuda/fp8_tile.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;

// One thread block per tile of out [out_rows, out_cols]: out element (o, p) is x[o, p], or with Transposed
// x[p, o] (x has `cols` columns). Consecutive threads walk x's contiguous columns, so the loads coalesce.
template <bool Transposed, class T>
__global__ void quantize_kernel(std::int64_t out_rows, std::int64_t out_cols, std::int64_t cols, int br, int bc, bool pow2,
                                const T* x, f8e4m3* q, float* s) {
  const std::int64_t tiles_per_row = (out_cols + bc - 1) / bc;
  const std::int64_t o0 = blockIdx.x / tiles_per_row * br, p0 = blockIdx.x % tiles_per_row * bc;
  const int no = static_cast<int>(min(static_cast<std::int64_t>(br), out_rows - o0));
  const int np = static_cast<int>(min(static_cast<std::int64_t>(bc), out_cols - p0));
  const int n = no * np;
  const auto element = [&](int i, std::int64_t& o, std::int64_t& p) {
    o = o0 + (Transposed ? i % no : i / np);
    p = p0 + (Transposed ? i / no : i % np);
    return Transposed ? p * cols + o : o * cols + p;
  };
  float amax = 0.0f;
  std::int64_t o, p;
  for (int i = threadIdx.x; i < n; i += kThreads) amax = fmaxf(amax, fabsf(load_f32(x[element(i, o, p)])));
  const float scale = fp8_block_scale_inv<kThreads>(amax, pow2);
  if (threadIdx.x == 0) s[blockIdx.x] = scale;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const std::int64_t xi = element(i, o, p);
    q[o * out_cols + p] = to_f8e4m3(load_f32(x[xi]) / scale);
  }
}

template <bool Transposed>
void quantize(const Context& ctx, const Tensor& x, const Fp8Tensor& out, const char* name) {
  if (x.numel() == 0) return;
  const unsigned grid = static_cast<unsigned>(out.scale_inv.numel());  // one block per tile
  with_float_type(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    quantize_kernel<Transposed><<<grid, kThreads, 0, ctx.cuda_resources().stream>>>(
        out.data.dim(0), out.data.dim(1), x.dim(1), out.block_rows, out.block_cols, out.pow2_scales, x.data<T>(),
        out.data.data<f8e4m3>(), out.scale_inv.data<float>());
  });
  R1_CUDA_LAUNCHED(name);
}

template <class T>
__global__ void dequantize_kernel(std::int64_t rows, std::int64_t cols, int br, int bc, std::int64_t tiles_per_row,
                                  const f8e4m3* q, const float* s, T* y) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    y[i] = store_as<T>(to_float(q[i]) * s[(r / br) * tiles_per_row + c / bc]);
  }
}

__global__ void gather_bytes_kernel(std::int64_t rows, std::int64_t cols, const std::int32_t* idx, const f8e4m3* src,
                                    f8e4m3* dst) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    dst[i] = src[static_cast<std::int64_t>(idx[r]) * cols + c];
  }
}
}  // namespace

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out) { quantize<false>(ctx, x, out, "quantize_fp8"); }
void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  quantize<true>(ctx, x, out, "quantize_fp8_transposed");
}

void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y) {
  if (y.numel() == 0) return;
  const Launch l = elementwise_launch(ctx, y.numel());
  with_float_type(y.dtype(), "dequantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    dequantize_kernel<<<l.grid, l.block, 0, l.stream>>>(y.dim(0), y.dim(1), q.block_rows, q.block_cols, q.scale_inv.dim(1),
                                                        q.data.data<f8e4m3>(), q.scale_inv.data<float>(), y.data<T>());
  });
  R1_CUDA_LAUNCHED("dequantize_fp8");
}

void gather_fp8_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const Launch l = elementwise_launch(ctx, dst.numel());
  gather_bytes_kernel<<<l.grid, l.block, 0, l.stream>>>(dst.dim(0), dst.dim(1), rows.data<std::int32_t>(),
                                                        src.data<f8e4m3>(), dst.data<f8e4m3>());
  R1_CUDA_LAUNCHED("gather_fp8_rows");
}

}  // namespace r1::kernels::cuda
