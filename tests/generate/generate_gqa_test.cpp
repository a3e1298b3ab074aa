// Generation with grouped-query attention (tiny-llama, tiny-qwen2, tiny-qwen3 presets; CPU, f32): prefill and
// decode over the GQA KV cache reproduce the training forward's logits at every step (slots dropped and
// reordered), greedy generation is the argmax of repeated full forwards, token for token, under continuous
// and static batching, and sampled completions do not depend on the batching mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "generate/engine.hpp"
#include "generate/gqa_models.hpp"
#include "generate/logit_checks.hpp"

using namespace r1;

namespace {
using test::argmax_row;

struct GqaModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  explicit GqaModel(const char* preset) : c(test::gqa_preset(preset)), model(c, params) { test::init_gqa_weights(params); }
};

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 170, 5}, {9, 1, 220, 300, 4, 4, 11}, {2, 38, 7, 190, 25}};
}  // namespace

TEST(GenerateGqa, DecodeLogitsEqualTheFullForwardAtEveryStep) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GqaModel t(preset);
    KvCache cache = t.model.make_kv_cache(3, 20);
    EXPECT_EQ(cache.gqa_layers.size(), 2u);
    EXPECT_TRUE(cache.layers.empty());
    EXPECT_EQ(cache.gqa_layers[0].k.shape(), Shape({3, 20, t.c.kv_heads() * t.c.gqa_head_dim()}));
    const std::vector<std::vector<std::int32_t>> cont{{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1}, {0, 390, 20, 11, 13, 35, 6, 6}};
    test::expect_decode_equals_full_forward(t.model, kPrompts, cont,
                                            [&](const std::vector<std::int32_t>& seq) { return test::full_forward_logits(t.model, seq); },
                                            1e-5);
  }
}

TEST(GenerateGqa, GreedyIsTheArgmaxOfRepeatedFullForwards) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GqaModel t(preset);
    std::vector<std::vector<std::int32_t>> want;
    for (const auto& prompt : kPrompts) {
      std::vector<std::int32_t> seq = prompt;
      for (int k = 0; k < 12; ++k) seq.push_back(argmax_row(test::full_forward_logits(t.model, seq), static_cast<std::int64_t>(seq.size()) - 1));
      want.emplace_back(seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), seq.end());
    }
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_new_tokens = 12;
    for (const auto& [batching, max_batch] : {std::pair{Batching::continuous, 2}, std::pair{Batching::static_batch, 2},
                                              std::pair{Batching::continuous, 8}}) {
      p.batching = batching;
      const auto out = generate(t.model, kPrompts, 1, p, max_batch);
      ASSERT_EQ(out.size(), kPrompts.size());
      for (std::size_t i = 0; i < kPrompts.size(); ++i)
        EXPECT_EQ(out[i].tokens, want[i]) << "prompt " << i << (batching == Batching::continuous ? " continuous" : " static")
                                          << " max_batch " << max_batch;
    }
  }
}

TEST(GenerateGqa, SampledCompletionsDoNotDependOnBatching) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GqaModel t(preset);
    SamplingParams p;
    p.temperature = 1.0f;
    p.max_new_tokens = 10;
    p.stop_ids = {0, 1, 2};
    p.seed = 5;
    p.batching = Batching::static_batch;
    const auto want = generate(t.model, kPrompts, 3, p, 4);
    p.batching = Batching::continuous;
    const auto got = generate(t.model, kPrompts, 3, p, 3);
    ASSERT_EQ(got.size(), want.size());
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      tokens += want[i].tokens.size();
      EXPECT_EQ(got[i].tokens, want[i].tokens) << "completion " << i;
      EXPECT_EQ(got[i].finished_by, want[i].finished_by) << "completion " << i;
    }
    EXPECT_GT(tokens, want.size()) << "the completions should run past their first token";
  }
}
