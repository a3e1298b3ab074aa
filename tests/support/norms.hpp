// The relative L2 distance of two f32 host tensors, as the layout-against-one-rank tests compare parameters.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/tensor.hpp"

namespace r1::test {

// |a - ref|_2 / |ref|_2 (the absolute distance when ref is all zero).
inline double rel_l2(const Tensor& a, const Tensor& ref) {
  double d = 0, n = 0;
  for (std::int64_t i = 0; i < ref.numel(); ++i) {
    const double x = a.data<float>()[i], y = ref.data<float>()[i];
    d += (x - y) * (x - y);
    n += y * y;
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

}  // namespace r1::test
