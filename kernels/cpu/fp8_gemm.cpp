// CPU reference block-scaled FP8 GEMM, an exact emulation: each 128-element tile product is summed exactly
// in double (products of two E4M3 values carry 8 significant bits, 128 of them at most 43), scaled by both
// tiles' scale_inv and accumulated in double; C gets one rounding at the end.
#include <array>
#include <cmath>
#include <vector>

#include "kernels/cpu/fp8_gemm.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

namespace {
const std::array<float, 256>& e4m3_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[static_cast<std::size_t>(i)] = to_float(f8e4m3{static_cast<std::uint8_t>(i)});
    return t;
  }();
  return table;
}

std::vector<float> widen(const Tensor& q) {
  const auto& v = e4m3_values();
  std::vector<float> out(static_cast<std::size_t>(q.numel()));
  const f8e4m3* p = q.data<f8e4m3>();
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = v[p[i].bits];
  return out;
}
}  // namespace

void fp8_gemm(const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt) {
  const std::int64_t m = a.data.dim(0), n = b.data.dim(0), k = a.data.dim(1), kt = (k + kFp8Tile - 1) / kFp8Tile;
  const Fp8ScaleIndex ia = fp8_scale_index(a), ib = fp8_scale_index(b);
  const std::vector<float> fa = widen(a.data), fb = widen(b.data);
  const float* sa = a.scale_inv.data<float>();
  const float* sb = b.scale_inv.data<float>();
  with_float_type(c.dtype(), "fp8_gemm", [&](auto tag) {
    using T = decltype(tag);
    T* pc = c.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        const float* ra = fa.data() + i * k;
        const float* rb = fb.data() + j * k;
        double acc = 0.0;
        for (std::int64_t t = 0; t < kt; ++t) {
          const std::int64_t k0 = t * kFp8Tile, k1 = std::min(k, k0 + kFp8Tile);
          double tile = 0.0;
          for (std::int64_t q = k0; q < k1; ++q) tile += static_cast<double>(ra[q]) * rb[q];
          acc += tile * sa[ia(i, t)] * sb[ib(j / b.block_rows, t)];
        }
        double out = static_cast<double>(opt.alpha) * acc;
        if (opt.beta != 0.0f) out += static_cast<double>(opt.beta) * load_f32(pc[i * n + j]);
        pc[i * n + j] = store_as<T>(static_cast<float>(out));
      }
  });
}

}  // namespace r1::kernels::cpu
