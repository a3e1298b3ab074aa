// Finite-difference gradient checks for CPU reference ops (f32 tensors, central differences).
#pragma once
#include <cmath>
#include <functional>

#include "core/tensor.hpp"

namespace r1::test {

struct GradCheckResult {
  double max_abs_error = 0;  // max_i |analytic_i - numeric_i|
  double max_abs_grad = 0;   // max_i |numeric_i|: the scale the error is judged against
  double relative() const { return max_abs_error / std::max(max_abs_grad, 1e-12); }
};

// Compares `analytic` (dL/dx, same shape as x) with (L(x + eps e_i) - L(x - eps e_i)) / (2 eps) for
// every element i of x (or every `stride`-th one, for big tensors). `loss` recomputes the scalar loss
// from the current contents of x (it is perturbed in place and restored) and should accumulate in
// double so that eps can be small. Typical use: L = sum_j w_j * y_j(x) with fixed random weights w,
// whose gradient dL/dy = w is fed to the op's backward.
inline GradCheckResult gradcheck(const std::function<double()>& loss, const Tensor& x, const Tensor& analytic,
                                 double eps = 1e-3, std::int64_t stride = 1) {
  GradCheckResult r;
  float* px = x.data<float>();
  const float* pg = analytic.data<float>();
  for (std::int64_t i = 0; i < x.numel(); i += stride) {
    const float saved = px[i];
    px[i] = static_cast<float>(saved + eps);
    const double up = loss();
    px[i] = static_cast<float>(saved - eps);
    const double down = loss();
    px[i] = saved;
    // The perturbation actually applied is (float)(x+eps) - (float)(x-eps), not exactly 2 eps.
    const double h = static_cast<double>(static_cast<float>(saved + eps)) - static_cast<float>(saved - eps);
    const double numeric = (up - down) / h;
    r.max_abs_error = std::max(r.max_abs_error, std::fabs(numeric - pg[i]));
    r.max_abs_grad = std::max(r.max_abs_grad, std::fabs(numeric));
  }
  return r;
}

}  // namespace r1::test
