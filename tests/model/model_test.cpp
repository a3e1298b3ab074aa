// The whole model on the CPU in f32: initial loss, gradients of the total loss against finite
// differences for parameters of every kind (MLA, dense FFN, MoE, norms, embedding, head, MTP), and full
// recomputation giving the same gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/gradcheck.hpp"
#include "kernels/test_util.hpp"
#include "model/model.hpp"
#include "support/tiny_model.hpp"

using namespace r1;

namespace {
ModelConfig tiny_config(bool mtp) {
  ModelConfig c = test::tiny_model();
  c.seq_aux_alpha = 0.01;
  c.mtp_depth = mtp ? 1 : 0;
  c.mtp_lambda = 0.3;
  return c;
}

TokenBatch tokens(std::int64_t batch, std::int64_t seq, std::int64_t vocab) {
  TokenBatch b;
  b.batch = batch;
  b.seq = seq;
  for (std::int64_t t = 0; t < batch * seq; ++t) {
    b.ids.push_back(static_cast<std::int32_t>((t * 7 + 3) % vocab));
    b.targets.push_back(t % 5 == 4 ? -1 : static_cast<std::int32_t>((t * 11 + 1) % vocab));
  }
  return b;
}

double host_value(const Tensor& t) {
  Tensor h = Tensor::host({1}, DType::f32);
  copy(h, t);
  return h.data<float>()[0];
}

// Total loss as the trainer defines it: mean CE over counted tokens + lambda * mean MTP CE + balance.
double total_loss(const Model& m, const DeviceBatch& db, double counted) {
  ForwardResult r;
  auto s = m.forward(db, r);
  double loss = host_value(r.loss_sum) / counted + host_value(r.balance_loss);
  if (r.mtp_loss_sum.defined()) loss += m.config().mtp_lambda * host_value(r.mtp_loss_sum) / counted;
  return loss;
}
}  // namespace

TEST(Model, InitialLossIsNearLogVocab) {
  const ModelConfig c = tiny_config(false);
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  ps.initialize(1, 0.02);
  const TokenBatch tb = tokens(2, 12, c.vocab_size);
  ForwardResult r;
  m.forward(m.upload(tb), r);
  EXPECT_NEAR(host_value(r.loss_sum) / static_cast<double>(tb.counted()), std::log(40.0), 0.05);
}

TEST(Model, GradientsOfTheTotalLossMatchFiniteDifferences) {
  for (bool mtp : {false, true}) {
    const ModelConfig c = tiny_config(mtp);
    ParamStore ps(kernels::Context::cpu(), DType::f32);
    Model m(c, ps);
    ps.initialize(3, c.init_std);
    const TokenBatch tb = tokens(2, 10, c.vocab_size);
    const DeviceBatch db = m.upload(tb);
    const double counted = static_cast<double>(tb.counted());
    ForwardResult r;
    auto saved = m.forward(db, r);
    m.backward(db, *saved, static_cast<float>(1.0 / counted), 1.0f);
    std::vector<std::string> names = {"embed", "layers.0.attn_norm", "layers.0.attn.q_proj", "layers.0.attn.kv_b_proj",
                                      "layers.0.mlp.gate_up", "layers.1.attn.o_proj", "layers.1.moe.router",
                                      "layers.1.moe.experts.down", "layers.1.moe.shared.gate_up", "norm", "head"};
    if (mtp) names.insert(names.end(), {"mtp.0.proj_e", "mtp.0.hnorm", "mtp.0.block.moe.experts.gate_up", "mtp.0.norm"});
    for (const std::string& name : names) {
      Param& p = ps.get(name);
      const auto res = test::gradcheck([&] { return total_loss(m, db, counted); }, p.master, p.grad, 2e-3,
                                       std::max<std::int64_t>(1, p.master.numel() / 40));
      EXPECT_LT(res.relative(), 5e-3) << name << (mtp ? " (MTP)" : "") << ": max error " << res.max_abs_error
                                      << " of max gradient " << res.max_abs_grad;
    }
  }
}

TEST(Model, DenseStudentHasNoMoeAndCorrectGradients) {
  ModelConfig c = tiny_config(false);
  c.dense = true;
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  EXPECT_EQ(m.moe_layer_count(), 0);
  EXPECT_TRUE(ps.contains("layers.1.mlp.gate_up"));
  EXPECT_FALSE(ps.contains("layers.1.moe.router"));
  EXPECT_EQ(static_cast<double>(ps.numel()), count_params(c).total);
  ps.initialize(9, c.init_std);
  const TokenBatch tb = tokens(2, 8, c.vocab_size);
  const DeviceBatch db = m.upload(tb);
  const double counted = static_cast<double>(tb.counted());
  ForwardResult r;
  auto saved = m.forward(db, r);
  m.backward(db, *saved, static_cast<float>(1.0 / counted), 1.0f);
  for (const char* name : {"layers.1.mlp.down", "layers.1.attn.kv_a_proj", "embed"}) {
    Param& p = ps.get(name);
    const auto res = test::gradcheck([&] { return total_loss(m, db, counted); }, p.master, p.grad, 2e-3,
                                     std::max<std::int64_t>(1, p.master.numel() / 40));
    EXPECT_LT(res.relative(), 5e-3) << name;
  }
}

TEST(Model, ParameterCountMatchesTheFormula) {
  for (bool mtp : {false, true}) {
    const ModelConfig c = tiny_config(mtp);
    ParamStore ps(kernels::Context::cpu(), DType::f32);
    Model m(c, ps);
    const ParamCount n = count_params(c);
    EXPECT_EQ(static_cast<double>(ps.numel()), n.total + n.mtp) << (mtp ? "with MTP" : "without MTP");
  }
}

TEST(Model, PerTokenLossWeightsGiveTheGradientOfTheWeightedSum) {
  ModelConfig c = tiny_config(false);
  c.seq_aux_alpha = 0;
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  ps.initialize(11, c.init_std);
  const TokenBatch tb = tokens(2, 8, c.vocab_size);
  const DeviceBatch db = m.upload(tb);
  Tensor w = Tensor::host({16}, DType::f32);
  for (int t = 0; t < 16; ++t) w.data<float>()[t] = 0.3f * static_cast<float>((t * 5) % 7) - 0.9f;  // signs of advantages
  const auto weighted = [&] {
    ForwardResult r;
    auto s = m.forward(db, r);
    const Tensor& l = Model::token_losses(*s);
    double sum = 0;
    for (int t = 0; t < 16; ++t) sum += static_cast<double>(w.data<float>()[t]) * l.data<float>()[t];
    return sum;
  };
  ForwardResult r;
  auto saved = m.forward(db, r);
  Tensor dloss = Tensor::host({16}, DType::f32);
  copy(dloss, w);
  m.backward(db, *saved, dloss, 0.0f, 0.0f);
  for (const char* name : {"head", "layers.0.attn.q_proj", "layers.1.moe.experts.gate_up", "embed"}) {
    Param& p = ps.get(name);
    const auto res = test::gradcheck(weighted, p.master, p.grad, 2e-3, std::max<std::int64_t>(1, p.master.numel() / 40));
    EXPECT_LT(res.relative(), 5e-3) << name;
  }
}

TEST(Model, BackwardFromTheFinalHiddenStateMatchesFiniteDifferences) {
  ModelConfig c = tiny_config(false);
  c.seq_aux_alpha = 0;
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  ps.initialize(13, c.init_std);
  const TokenBatch tb = tokens(2, 6, c.vocab_size);
  const DeviceBatch db = m.upload(tb);
  const std::int64_t n = 12 * c.dim;
  Tensor w = Tensor::host({12, c.dim}, DType::f32);
  for (std::int64_t i = 0; i < n; ++i) w.data<float>()[i] = 0.1f * static_cast<float>((i * 7) % 11) - 0.5f;
  const auto weighted = [&] {  // L = sum(w * h) over the normalised final hidden state (a scalar head's input)
    ForwardResult r;
    auto s = m.forward(db, r);
    const Tensor& h = Model::final_hidden(*s);
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(w.data<float>()[i]) * h.data<float>()[i];
    return sum;
  };
  ForwardResult r;
  auto saved = m.forward(db, r);
  Tensor dh = Tensor::host({12, c.dim}, DType::f32);
  copy(dh, w);
  m.backward_from_hidden(db, *saved, dh, 0.0f);
  EXPECT_EQ(test::value(ps.get("head").grad, 0), 0.0);  // the LM head is not on this path
  for (const char* name : {"norm", "layers.1.moe.experts.down", "layers.0.attn.kv_b_proj", "embed"}) {
    Param& p = ps.get(name);
    const auto res = test::gradcheck(weighted, p.master, p.grad, 2e-3, std::max<std::int64_t>(1, p.master.numel() / 40));
    EXPECT_LT(res.relative(), 5e-3) << name;
  }
}

TEST(Model, FullRecomputeGivesTheSameGradients) {
  const ModelConfig c = tiny_config(true);
  std::vector<std::vector<float>> grads[2];
  for (int recompute = 0; recompute < 2; ++recompute) {
    ParamStore ps(kernels::Context::cpu(), DType::f32);
    Model m(c, ps);
    m.full_recompute = recompute == 1;
    ps.initialize(5, c.init_std);
    const TokenBatch tb = tokens(2, 10, c.vocab_size);
    const DeviceBatch db = m.upload(tb);
    ForwardResult r;
    auto saved = m.forward(db, r);
    m.backward(db, *saved, 0.05f, 1.0f);
    for (const auto& p : ps.all())
      if (p->trainable) grads[recompute].emplace_back(p->grad.data<float>(), p->grad.data<float>() + p->grad.numel());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (std::size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << "parameter " << i;
}

TEST(Model, RejectsTokensOutsideTheVocabulary) {
  const ModelConfig c = tiny_config(false);
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  TokenBatch tb = tokens(1, 4, c.vocab_size);
  tb.ids[2] = 40;
  EXPECT_THROW(m.upload(tb), Error);
}
