// CPU reference random fills.
#include "kernels/cpu/random.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void fill_random(const Tensor& x, Distribution d, float a, float b, RngKey key, std::uint64_t offset) {
  with_float_type(x.dtype(), "fill_random", [&](auto tx) {
    using T = decltype(tx);
    T* p = x.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint64_t g = offset + static_cast<std::uint64_t>(i);
      p[i] = store_as<T>(d == Distribution::uniform ? a + (b - a) * random_uniform(key, g) : a + b * random_normal(key, g));
    }
  });
}

}  // namespace r1::kernels::cpu
