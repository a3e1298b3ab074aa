// The GRPO loss's gradient in logp_new against central differences (tests/kernels/gradcheck.hpp), for the
// test batches that own their log-probs and view them through tokens().
#pragma once
#include <cstdint>

#include "kernels/gradcheck.hpp"
#include "rl/grpo.hpp"

namespace r1::test {

// grpo_loss's analytic gradient under `norm` and `c` against central differences (eps 1e-3) of its loss.
template <class Batch> GradCheckResult grpo_gradcheck(Batch b, const GrpoNormaliser& norm, const GrpoConfig& c) {
  const GrpoLoss l = grpo_loss(b.tokens(), norm, c);
  const auto T = static_cast<std::int64_t>(b.logp_new.size());
  Tensor x = Tensor::host({T}, DType::f32), analytic = Tensor::host({T}, DType::f32);
  for (std::int64_t t = 0; t < T; ++t) {
    x.data<float>()[t] = b.logp_new[t];
    analytic.data<float>()[t] = static_cast<float>(l.grad_logp_new[t]);
  }
  const auto loss = [&] {
    b.logp_new.assign(x.data<float>(), x.data<float>() + T);
    return grpo_loss(b.tokens(), norm, c).stats.loss;
  };
  return gradcheck(loss, x, analytic, 1e-3);
}

}  // namespace r1::test
