// Model configuration (DeepSeek-V3 family and dense students) read from a deck's [model] section, with
// parameter and FLOP counts used by --dry-run, the MFU report and the memory estimate.
#pragma once
#include <cstdint>
#include <string>

#include "parallel/expert_reach.hpp"

namespace r1 {

class Deck;

enum class RouterScore { sigmoid, softmax };

struct ModelConfig {
  std::int64_t vocab_size = 512, dim = 128, n_layers = 2, n_dense_layers = 1, n_heads = 4;
  std::int64_t dense_inter_dim = 256, moe_inter_dim = 64;
  std::int64_t n_routed_experts = 8, n_shared_experts = 1, n_activated_experts = 2;
  std::int64_t n_expert_groups = 1, n_limited_groups = 1;
  RouterScore score_func = RouterScore::sigmoid;
  double route_scale = 1.0;
  bool normalize_gates = true;  // sigmoid routing always normalises; softmax (V2-Lite) does not
  std::int64_t q_lora_rank = 0, kv_lora_rank = 64, qk_nope_head_dim = 32, qk_rope_head_dim = 16, v_head_dim = 32;
  double rope_theta = 10000, rope_factor = 40, beta_fast = 32, beta_slow = 1, mscale = 1.0;
  std::int64_t original_seq_len = 4096, max_seq_len = 256;
  double norm_eps = 1e-6, init_std = 0.006;
  std::int64_t mtp_depth = 0;
  double mtp_lambda = 0.3, bias_update_gamma = 0.001, seq_aux_alpha = 1e-4;
  bool dense = false, tie_embeddings = false;

  std::int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(std::int64_t layer) const { return !dense && layer >= n_dense_layers; }
  // Device-limited routing: the most EP ranks one token's routed experts can reach over `ep` ranks
  // (parallel::expert_ranks_per_token).
  std::int64_t max_expert_ranks_per_token(std::int64_t ep) const {
    return parallel::expert_ranks_per_token(n_routed_experts, n_expert_groups, n_limited_groups, n_activated_experts, ep);
  }
};

ModelConfig model_config_from_deck(const Deck& deck);

// Trainable weights, in the convention of the published sizes (DeepSeek-V3: 671B total, 37B activated):
// the main model without MTP modules (counted apart, as the papers do) and without the router's
// selection bias (a balancing buffer, not trained by gradients).
struct ParamCount {
  double total = 0;      // every weight of the main model
  double activated = 0;  // weights a token's FLOPs pass through: top-k + shared experts, LM head; no embedding
  double mtp = 0;        // the MTP modules (embedding and head shared with the main model)
};
ParamCount count_params(const ModelConfig& c);

// Training FLOPs per token (DESIGN §6, PaLM convention): 6 x activated + attention
// 6 x layers x seq x heads x (d_qk + d_v), no causal halving.
double train_flops_per_token(const ModelConfig& c, std::int64_t seq_len);

std::string describe_model(const ModelConfig& c);  // one line: size, layers, experts, attention

}  // namespace r1
