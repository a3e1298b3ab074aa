// CUDA SwiGLU: elementwise over packs of output columns; each thread reads the matching gate and up
// packs of its row (16-byte accesses when H allows), so the backward can run in place.
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
