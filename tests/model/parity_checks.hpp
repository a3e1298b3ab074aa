// The reference check every transformers-parity test shares (hf_parity_test.cpp, gqa_parity_test.cpp): the
// fixture's batch through a model whose weights hold the fixture's, against the float64 reference.
#pragma once
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "model/hf_fixture.hpp"
#include "model/model.hpp"

namespace r1::test {

// Logits, loss and every gradient in `grads` (by r1hpc name) within 1e-5 of the largest magnitude: r1hpc runs in
// f32 on the CPU, the reference in float64.
inline void expect_matches_reference(Model& model, ParamStore& params, const HfFixture& fx,
                                     const std::map<std::string, Tensor>& grads) {
  const TokenBatch tb = token_batch(fx);
  const DeviceBatch db = model.upload(tb);
  ForwardResult r;
  auto saved = model.forward(db, r);
  Tensor logits = Tensor::host(Model::logits(*saved).shape(), DType::f32);
  copy(logits, Model::logits(*saved));  // before the backward overwrites them
  EXPECT_LE(diff(logits, fx.logits.view(logits.shape())).max_rel, 1e-5) << "logits of " << fx.name;
  const double counted = static_cast<double>(tb.counted());
  Tensor loss = Tensor::host({1}, DType::f32);
  copy(loss, r.loss_sum);
  EXPECT_NEAR(loss.data<float>()[0] / counted, fx.loss, 1e-5 * fx.loss) << "loss of " << fx.name;

  params.zero_grads();
  model.backward(db, *saved, static_cast<float>(1.0 / counted), 0.0f);
  ASSERT_FALSE(grads.empty());
  for (const auto& [name, g] : grads)
    EXPECT_LE(diff(params.get(name).grad, g).max_rel, 1e-5) << "gradient of " << name << " in " << fx.name;
}

}  // namespace r1::test
