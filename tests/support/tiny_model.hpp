// The tiny model of the tests (dense layer then MoE layers, MLA without q_lora, 4 routed experts top-2 + 1
// shared): one definition that each test varies through designated fields instead of building a ModelConfig.
#pragma once
#include <cstdint>

#include "model/config.hpp"

namespace r1::test {

// The sizes tests vary, defaulting to the tiny model's: test::tiny_model({.vocab_size = 48, .n_layers = 4}).
struct TinyModel {
  std::int64_t vocab_size = 40, dim = 24, n_layers = 2, n_heads = 2, dense_inter_dim = 32, moe_inter_dim = 8;
  std::int64_t n_routed_experts = 4, n_expert_groups = 2, n_limited_groups = 2;
  std::int64_t q_lora_rank = 0, kv_lora_rank = 12, qk_nope_head_dim = 8, qk_rope_head_dim = 4, v_head_dim = 8;
  std::int64_t max_seq_len = 16;
  double init_std = 0.2;
};

// Those sizes with one dense layer first, one shared expert and top-2 routing; every other field keeps
// ModelConfig's default (sigmoid routing, no MTP, RoPE without YaRN at these lengths).
inline ModelConfig tiny_model(const TinyModel& t = {}) {
  ModelConfig c;
  c.vocab_size = t.vocab_size;
  c.dim = t.dim;
  c.n_layers = t.n_layers;
  c.n_dense_layers = 1;
  c.n_heads = t.n_heads;
  c.dense_inter_dim = t.dense_inter_dim;
  c.moe_inter_dim = t.moe_inter_dim;
  c.n_routed_experts = t.n_routed_experts;
  c.n_shared_experts = 1;
  c.n_activated_experts = 2;
  c.n_expert_groups = t.n_expert_groups;
  c.n_limited_groups = t.n_limited_groups;
  c.q_lora_rank = t.q_lora_rank;
  c.kv_lora_rank = t.kv_lora_rank;
  c.qk_nope_head_dim = t.qk_nope_head_dim;
  c.qk_rope_head_dim = t.qk_rope_head_dim;
  c.v_head_dim = t.v_head_dim;
  c.max_seq_len = t.max_seq_len;
  c.init_std = t.init_std;
  return c;
}

}  // namespace r1::test
