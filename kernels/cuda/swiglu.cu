// CUDA SwiGLU: elementwise over packs of output columns; each thread reads the matching gate and up
// packs of its row (16-byte accesses when H allows), so the backward can run in place. The FP8 forward
// runs a block per 1 x 128 output tile, to quantise the tile it has just computed.
#include "kernels/cuda/fp8_tile.cuh"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/swiglu.hpp"
#include "kernels/swiglu_math.hpp"

namespace r1::kernels::cuda {

namespace {
template <class T, int N>
__global__ void forward_kernel(std::int64_t rows, std::int64_t h, const T* gu, T* out) {
  const std::int64_t packs_per_row = h / N, n = rows * packs_per_row;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t t = i / packs_per_row, c = (i - t * packs_per_row) * N;
    float g[N], u[N];
    load_pack<N>(gu + t * 2 * h + c, g);
    load_pack<N>(gu + t * 2 * h + h + c, u);
#pragma unroll
    for (int k = 0; k < N; ++k) g[k] = detail::swiglu(g[k], u[k]);
    store_pack<N>(out + t * h + c, g);
  }
}

// One 128-thread block per 1 x 128 tile of out: each thread its element, rounded to T as swiglu_forward
// stores it; the tile's scale, then the E4M3 values, as quantize_fp8 makes them.
constexpr int kTile = 128;
template <class T>
__global__ void forward_fp8_kernel(std::int64_t h, bool pow2, const T* gu, T* out, f8e4m3* q, float* s) {
  const std::int64_t tiles = (h + kTile - 1) / kTile;
  const std::int64_t t = blockIdx.x / tiles, c = (blockIdx.x % tiles) * kTile + threadIdx.x;
  float v = 0.0f;
  if (c < h) {
    const T y = store_as<T>(detail::swiglu(load_f32(gu[t * 2 * h + c]), load_f32(gu[t * 2 * h + h + c])));
    out[t * h + c] = y;
    v = load_f32(y);
  }
  const float scale = fp8_block_scale_inv<kTile>(fabsf(v), pow2);
  if (threadIdx.x == 0) s[blockIdx.x] = scale;
  if (c < h) q[t * h + c] = to_f8e4m3(v / scale);
}

template <class X, class G, int N>
__global__ void backward_kernel(std::int64_t rows, std::int64_t h, const G* dout, const X* gu, G* dgu) {
  const std::int64_t packs_per_row = h / N, n = rows * packs_per_row;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t t = i / packs_per_row, c = (i - t * packs_per_row) * N;
    float g[N], u[N], d[N];
    load_pack<N>(gu + t * 2 * h + c, g);
    load_pack<N>(gu + t * 2 * h + h + c, u);
    load_pack<N>(dout + t * h + c, d);
#pragma unroll
    for (int k = 0; k < N; ++k) detail::swiglu_grad(g[k], u[k], d[k], g[k], u[k]);
    store_pack<N>(dgu + t * 2 * h + c, g);
    store_pack<N>(dgu + t * 2 * h + h + c, u);
  }
}
}  // namespace

void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out) {
  const std::int64_t rows = out.dim(0), h = out.dim(1);
  with_float_type(gate_up.dtype(), "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int n = kPack<T>;
    const bool packed = h % n == 0 && pack_aligned(gate_up, n) && pack_aligned(out, n);
    with_pack<n>(packed, [&](auto pn) {
      constexpr int N = decltype(pn)::value;
      const Launch l = elementwise_launch(ctx, rows * (h / N));
      forward_kernel<T, N><<<l.grid, l.block, 0, l.stream>>>(rows, h, gate_up.data<T>(), out.data<T>());
    });
  });
  R1_CUDA_LAUNCHED("swiglu_forward");
}

void swiglu_forward_fp8(const Context& ctx, const Tensor& gate_up, const Tensor& out, const Fp8Tensor& q) {
  const std::int64_t h = out.dim(1);
  const unsigned grid = static_cast<unsigned>(q.scale_inv.numel());  // one block per tile
  with_float_type(gate_up.dtype(), "swiglu_forward_fp8", [&](auto tag) {
    using T = decltype(tag);
    forward_fp8_kernel<T><<<grid, kTile, 0, ctx.cuda_resources().stream>>>(
        h, q.pow2_scales, gate_up.data<T>(), out.data<T>(), q.data.data<f8e4m3>(), q.scale_inv.data<float>());
  });
  R1_CUDA_LAUNCHED("swiglu_forward_fp8");
}

void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const std::int64_t rows = dout.dim(0), h = dout.dim(1);
  with_float_type(gate_up.dtype(), "swiglu_backward", [&](auto xtag) {
    with_float_type(dout.dtype(), "swiglu_backward", [&](auto gtag) {
      using X = decltype(xtag);
      using G = decltype(gtag);
      constexpr int n = std::max(kPack<X>, kPack<G>);
      const bool packed = h % n == 0 && pack_aligned(gate_up, n) && pack_aligned(dout, n) && pack_aligned(dgate_up, n);
      with_pack<n>(packed, [&](auto pn) {
        constexpr int N = decltype(pn)::value;
        const Launch l = elementwise_launch(ctx, rows * (h / N));
        backward_kernel<X, G, N><<<l.grid, l.block, 0, l.stream>>>(rows, h, dout.data<G>(), gate_up.data<X>(),
                                                                   dgate_up.data<G>());
      });
    });
  });
  R1_CUDA_LAUNCHED("swiglu_backward");
}

}  // namespace r1::kernels::cuda
