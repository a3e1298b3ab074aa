// CPU reference RoPE: one (token, head) row at a time, f32 math.
#include "kernels/cpu/rope.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void rope_apply(const Tensor& x, const Tensor& positions, const RopeTables& tables, std::int64_t offset, bool inverse) {
  const std::int64_t rows = x.numel() / x.dim(-1), row = x.dim(-1), heads = rows / x.dim(0);
  const std::int64_t half = tables.cos.dim(1);
  const std::int32_t* pos = positions.data<std::int32_t>();
  const float* pc = tables.cos.data<float>();
  const float* ps = tables.sin.data<float>();
  const float sign = inverse ? -1.0f : 1.0f;
  with_float_type(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    T* px = x.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t p = pos[r / heads];
      T* v = px + r * row + offset;
      for (std::int64_t i = 0; i < half; ++i) {
        const float c = pc[p * half + i], s = sign * ps[p * half + i];
        const float x0 = load_f32(v[2 * i]), x1 = load_f32(v[2 * i + 1]);
        v[2 * i] = store_as<T>(x0 * c - x1 * s);
        v[2 * i + 1] = store_as<T>(x0 * s + x1 * c);
      }
    }
  });
}

}  // namespace r1::kernels::cpu
