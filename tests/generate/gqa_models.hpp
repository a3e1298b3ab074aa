// The generation tests' grouped-query-attention models: the tiny-llama, tiny-qwen2 and tiny-qwen3 presets
// (inputs/models) with weights whose values do not depend on the parallel layout, q/k/v biases and q/k norms
// away from their zero and one starts so that decode must apply them as the training forward does.
#pragma once
#include <functional>
#include <string>

#include "deck/deck.hpp"
#include "kernels/test_util.hpp"
#include "model/model.hpp"

namespace r1::test {

inline const char* const kGqaPresets[] = {"tiny-llama", "tiny-qwen2", "tiny-qwen3"};

// The preset's [model] section, with `n_kv_heads` K/V heads when given (1: replicated over TP2).
inline ModelConfig gqa_preset(const std::string& name, std::int64_t n_kv_heads = 0) {
  ModelConfig c = Deck::parse("[model]\npreset = " + name + "\n", name + ".deck").config().model;
  if (n_kv_heads > 0) c.n_kv_heads = n_kv_heads;
  return c;
}

// Normal weights of std 0.1 (logits far enough apart for greedy decoding to be stable against ulps); biases
// normal too (drawn by global element, like every normal weight, so each shard holds its part); norm weights
// 1 + 0.3 N(0, 1), whole on every rank, drawn from the parameter's name.
inline void init_gqa_weights(ParamStore& params) {
  for (const auto& p : params.all())
    if (p->init == Init::zeros) p->init = Init::normal;
  params.initialize(7, 0.1);
  for (const auto& p : params.all())
    if (p->init == Init::ones) {
      const auto stream = static_cast<std::uint32_t>(std::hash<std::string>{}(p->name));
      const Tensor r = random_tensor(p->master.shape(), DType::f32, stream, 0.3f);
      for (std::int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] += 1.0f;
      copy(p->master, r);  // into the model's memory, host or device
    }
  params.refresh_compute();
}

}  // namespace r1::test
