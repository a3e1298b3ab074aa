// CPU reference of the decode-batch experts: one (token, slot) pair at a time, plain f32 dot products.
#include "kernels/cpu/moe_decode.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/swiglu_math.hpp"

namespace r1::kernels::cpu {

void moe_decode_experts(const Tensor& x, const Tensor& expert_idx, const Tensor& gates, const Tensor& gate_up,
                        const Tensor& down, const Tensor& h, const Tensor& out) {
  const std::int64_t t = x.dim(0), d = x.dim(1), k = expert_idx.dim(1), e = gate_up.dim(0), inter = h.dim(1);
  const std::int32_t* idx = expert_idx.data<std::int32_t>();
  for (std::int64_t p = 0; p < t * k; ++p)
    R1_REQUIRE(idx[p] >= 0 && idx[p] < e, "moe_decode_experts: expert index ", idx[p], " of token ", p / k,
               " is outside [0, ", e, ")");
  with_float_type(x.dtype(), "moe_decode_experts", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* gu = gate_up.data<T>();
    const T* dn = down.data<T>();
    const float* g = gates.data<float>();
    T* ph = h.data<T>();
    T* po = out.data<T>();
    const auto dot = [](const T* a, const T* b, std::int64_t n) {
      float s = 0.0f;
      for (std::int64_t c = 0; c < n; ++c) s += load_f32(a[c]) * load_f32(b[c]);
      return load_f32(store_as<T>(s));  // a GEMM output in x's dtype
    };
#pragma omp parallel for schedule(static) if (t * k * inter * d > 65536)
    for (std::int64_t p = 0; p < t * k; ++p) {
      const T* w = gu + idx[p] * 2 * inter * d;
      const T* xr = px + p / k * d;
      for (std::int64_t j = 0; j < inter; ++j)
        ph[p * inter + j] = store_as<T>(detail::swiglu(dot(w + j * d, xr, d), dot(w + (inter + j) * d, xr, d)));
    }
#pragma omp parallel for schedule(static) if (t * k * inter * d > 65536)
    for (std::int64_t i = 0; i < t; ++i)
      for (std::int64_t c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t p = i * k + j;
          acc += g[p] * dot(dn + (idx[p] * d + c) * inter, ph + p * inter, inter);
        }
        po[i * d + c] = store_as<T>(acc);
      }
  });
}

}  // namespace r1::kernels::cpu
