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

using namespace r1;

namespace {
struct GqaModel {
  ModelConfig c;
  ParamStore params{kernels::Context::cpu(), DType::f32};
  Model model;
  explicit GqaModel(const char* preset) : c(test::gqa_preset(preset)), model(c, params) { test::init_gqa_weights(params); }
};

Tensor host(const Tensor& t) {
  Tensor h = Tensor::host(t.shape(), t.dtype());
  copy(h, t);
  return h;
}

// The training forward's logits [S, V] (host) over one sequence.
Tensor full_logits(const Model& m, const std::vector<std::int32_t>& seq) {
  TokenBatch tb;
  tb.seq = static_cast<std::int64_t>(seq.size());
  tb.ids = seq;
  tb.targets.assign(seq.size(), -1);
  ForwardResult r;
  auto saved = m.forward(m.upload(tb), r);
  return host(Model::logits(*saved));
}

// max |a[ra] - b[rb]| / max |b[rb]| over rows of f32 [*, V].
double rel_error(const Tensor& a, std::int64_t ra, const Tensor& b, std::int64_t rb) {
  const std::int64_t V = b.dim(1);
  double d = 0, m = 0;
  for (std::int64_t i = 0; i < V; ++i) {
    d = std::max(d, std::fabs(double(a.data<float>()[ra * V + i]) - b.data<float>()[rb * V + i]));
    m = std::max(m, std::fabs(double(b.data<float>()[rb * V + i])));
  }
  return d / m;
}

std::int32_t argmax_row(const Tensor& logits, std::int64_t row) {
  const float* p = logits.data<float>() + row * logits.dim(1);
  return static_cast<std::int32_t>(std::max_element(p, p + logits.dim(1)) - p);
}

const std::vector<std::vector<std::int32_t>> kPrompts{{3, 170, 5}, {9, 1, 220, 300, 4, 4, 11}, {2, 38, 7, 190, 25}};
}  // namespace

TEST(GenerateGqa, DecodeLogitsEqualTheFullForwardAtEveryStep) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GqaModel t(preset);
    const std::vector<std::vector<std::int32_t>> cont{{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1}, {0, 390, 20, 11, 13, 35, 6, 6}};
    std::vector<std::vector<std::int32_t>> seqs = kPrompts;
    std::vector<std::int32_t> slot_of{0, 1, 2};
    KvCache cache = t.model.make_kv_cache(3, 20);
    EXPECT_EQ(cache.gqa_layers.size(), 2u);
    EXPECT_EQ(cache.gqa_layers[0].k.shape(), Shape({3, 20, t.c.kv_heads() * t.c.gqa_head_dim()}));
    Tensor logits = host(t.model.prefill(cache, kPrompts));
    for (std::size_t step = 0;; ++step) {
      for (std::size_t i = 0; i < slot_of.size(); ++i) {
        const auto& seq = seqs[static_cast<std::size_t>(slot_of[i])];
        EXPECT_LE(rel_error(logits, static_cast<std::int64_t>(i), full_logits(t.model, seq),
                            static_cast<std::int64_t>(seq.size()) - 1), 1e-5)
            << "step " << step << " sequence " << slot_of[i];
      }
      if (step == cont[0].size()) break;
      if (step == 4) {  // drop sequence 1 and reorder: the cache follows its slots
        t.model.keep_slots(cache, {2, 0});
        slot_of = {2, 0};
      }
      std::vector<std::int32_t> next;
      for (std::int32_t s : slot_of) {
        next.push_back(cont[static_cast<std::size_t>(s)][step]);
        seqs[static_cast<std::size_t>(s)].push_back(next.back());
      }
      logits = host(t.model.decode(cache, next));
    }
  }
}

TEST(GenerateGqa, GreedyIsTheArgmaxOfRepeatedFullForwards) {
  for (const char* preset : test::kGqaPresets) {
    SCOPED_TRACE(preset);
    GqaModel t(preset);
    std::vector<std::vector<std::int32_t>> want;
    for (const auto& prompt : kPrompts) {
      std::vector<std::int32_t> seq = prompt;
      for (int k = 0; k < 12; ++k) seq.push_back(argmax_row(full_logits(t.model, seq), static_cast<std::int64_t>(seq.size()) - 1));
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
